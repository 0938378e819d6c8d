package callflow

import (
	"testing"

	"github.com/ivr-bridge/ivr-bridge/internal/callsession"
)

func TestVoiceLanguage(t *testing.T) {
	for locale, want := range map[string]string{
		"":       "en-US",
		"es-MX":  "es-MX",
		"es-mx":  "es-MX",
		"ES-419": "es-419",
		"fr":     "fr-FR",
		"de_DE":  "de-DE", // an underscore picks the language, not the region
		"pt-BR":  "en-US", // no Portuguese prompts: English
		"-":      "en-US", // once a panic (slicing past the end)
		"e-":     "en-US",
		"es-":    "es-ES",
		"es-M":   "es-ES",
		"es-ÑX":  "es-ES",
		"es-MX-": "es-ES",
		"en-US;": "en-US",
	} {
		if got := VoiceLanguage(locale); got != want {
			t.Errorf("VoiceLanguage(%q) = %q, want %q", locale, got, want)
		}
	}
}

// FuzzVoiceLanguage: whatever locale a platform sends, the answer is one of the tags the
// prompts exist in, never a panic.
func FuzzVoiceLanguage(f *testing.F) {
	for _, s := range []string{"", "-", "es-MX", "fr_FR", "de-", "en-001"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, locale string) {
		tag := VoiceLanguage(locale)
		lang := language(locale)
		if tag != voiceTags[lang] && (len(tag) < 5 || tag[:len(lang)+1] != lang+"-" || !isRegionSubtag(tag[len(lang)+1:])) {
			t.Fatalf("VoiceLanguage(%q) = %q: not a tag of language %q", locale, tag, lang)
		}
		for _, step := range []Step{StepEnterCode, StepLinkSent, StepRetry, StepVerified, StepFailed, StepExpired,
			StepCancelled, StepWaiting, StepRefused, StepError} {
			if Prompt(Result{Step: step, Code: callsession.CodeNotMobile}, locale) == "" {
				t.Fatalf("Prompt(%s, %q) is empty", step, locale)
			}
		}
	})
}
