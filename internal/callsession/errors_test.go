package callsession

import (
	"strings"
	"testing"
)

// TestProviderErrorBoundsTheProvidersWords: a provider's code and description, however long
// (Authentix's are not cut when decoded), are shown masked and at most maxProviderWords
// bytes each, since they end up in every log line and event about the failure.
func TestProviderErrorBoundsTheProvidersWords(t *testing.T) {
	long := strings.Repeat("the destination +14155552671 is refused; ", 100)
	shown := (&ProviderError{Provider: ProviderAuthentix, Kind: ProviderRejected, Code: long, Message: long}).Error()
	prefix := "authentix: rejected "
	code, msg, ok := strings.Cut(strings.TrimPrefix(shown, prefix), ": ")
	if !ok || len(code) > maxProviderWords || len(msg) > maxProviderWords || len(code) < maxProviderWords-10 {
		t.Fatalf("shown %d + %d bytes of the provider's words, want at most %d each:\n%s", len(code), len(msg), maxProviderWords, shown)
	}
	if strings.Contains(shown, "5552671") {
		t.Fatalf("the number is shown: %s", shown)
	}
}
