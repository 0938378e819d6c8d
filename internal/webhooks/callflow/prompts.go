package callflow

import (
	"fmt"
	"strings"
)

// phrases are what the voice platforms say to the caller, per language. Keys are steps, or
// "refused:<code>" for a refusal with that code; "refused" and "error" are the fallbacks.
var phrases = map[string]map[string]string{
	"en": {
		"enter_code":                    "We have sent you a verification code. Please enter it now, followed by the pound key.",
		"retry":                         "That code was not right. Please try again, followed by the pound key.",
		"retry_left":                    "That code was not right. You have %d attempts left. Please enter it again, followed by the pound key.",
		"link_sent":                     "We have sent you a link by text message. Please open it to verify your identity.",
		"waiting":                       "One moment please.",
		"verified":                      "Thank you. You are verified.",
		"failed":                        "Sorry, we could not verify you.",
		"expired":                       "Sorry, the code has expired.",
		"cancelled":                     "The verification was cancelled.",
		"no_input":                      "We did not receive a code. Goodbye.",
		"refused:phone_number_withheld": "Your number is withheld, so we cannot send you a code.",
		"refused:not_mobile":            "Your number cannot receive text messages, so we cannot send you a code.",
		"refused:invalid_phone_number":  "We cannot send a code to your number.",
		"refused:rate_limited":          "Too many codes have been sent. Please try again later.",
		"refused":                       "Sorry, we cannot verify you this way.",
		"error":                         "Sorry, verification is not available right now. Please try again later.",
	},
	"es": {
		"enter_code":                    "Le hemos enviado un código de verificación. Introdúzcalo ahora, seguido de la tecla numeral.",
		"retry":                         "El código no es correcto. Inténtelo de nuevo, seguido de la tecla numeral.",
		"retry_left":                    "El código no es correcto. Le quedan %d intentos. Introdúzcalo de nuevo, seguido de la tecla numeral.",
		"link_sent":                     "Le hemos enviado un enlace por mensaje de texto. Ábralo para verificar su identidad.",
		"waiting":                       "Un momento, por favor.",
		"verified":                      "Gracias. Su identidad está verificada.",
		"failed":                        "Lo sentimos, no hemos podido verificarle.",
		"expired":                       "Lo sentimos, el código ha caducado.",
		"cancelled":                     "La verificación se ha cancelado.",
		"no_input":                      "No hemos recibido ningún código. Adiós.",
		"refused:phone_number_withheld": "Su número está oculto, no podemos enviarle un código.",
		"refused:not_mobile":            "Su número no puede recibir mensajes de texto, no podemos enviarle un código.",
		"refused:invalid_phone_number":  "No podemos enviar un código a su número.",
		"refused:rate_limited":          "Se han enviado demasiados códigos. Inténtelo más tarde.",
		"refused":                       "Lo sentimos, no podemos verificarle de esta forma.",
		"error":                         "Lo sentimos, la verificación no está disponible ahora. Inténtelo más tarde.",
	},
	"fr": {
		"enter_code":                    "Nous vous avons envoyé un code de vérification. Veuillez le saisir maintenant, suivi de la touche dièse.",
		"retry":                         "Ce code n'est pas correct. Veuillez réessayer, suivi de la touche dièse.",
		"retry_left":                    "Ce code n'est pas correct. Il vous reste %d essais. Veuillez le saisir à nouveau, suivi de la touche dièse.",
		"link_sent":                     "Nous vous avons envoyé un lien par SMS. Veuillez l'ouvrir pour confirmer votre identité.",
		"waiting":                       "Un instant, s'il vous plaît.",
		"verified":                      "Merci. Votre identité est vérifiée.",
		"failed":                        "Désolé, nous n'avons pas pu vous vérifier.",
		"expired":                       "Désolé, le code a expiré.",
		"cancelled":                     "La vérification a été annulée.",
		"no_input":                      "Nous n'avons reçu aucun code. Au revoir.",
		"refused:phone_number_withheld": "Votre numéro est masqué, nous ne pouvons pas vous envoyer de code.",
		"refused:not_mobile":            "Votre numéro ne peut pas recevoir de SMS, nous ne pouvons pas vous envoyer de code.",
		"refused:invalid_phone_number":  "Nous ne pouvons pas envoyer de code à votre numéro.",
		"refused:rate_limited":          "Trop de codes ont été envoyés. Veuillez réessayer plus tard.",
		"refused":                       "Désolé, nous ne pouvons pas vous vérifier de cette façon.",
		"error":                         "Désolé, la vérification n'est pas disponible pour le moment. Veuillez réessayer plus tard.",
	},
	"de": {
		"enter_code":                    "Wir haben Ihnen einen Bestätigungscode gesendet. Bitte geben Sie ihn jetzt ein, gefolgt von der Rautetaste.",
		"retry":                         "Der Code war nicht richtig. Bitte versuchen Sie es erneut, gefolgt von der Rautetaste.",
		"retry_left":                    "Der Code war nicht richtig. Sie haben noch %d Versuche. Bitte geben Sie ihn erneut ein, gefolgt von der Rautetaste.",
		"link_sent":                     "Wir haben Ihnen einen Link per SMS gesendet. Bitte öffnen Sie ihn, um sich zu bestätigen.",
		"waiting":                       "Einen Moment bitte.",
		"verified":                      "Danke. Sie sind bestätigt.",
		"failed":                        "Leider konnten wir Sie nicht bestätigen.",
		"expired":                       "Leider ist der Code abgelaufen.",
		"cancelled":                     "Die Bestätigung wurde abgebrochen.",
		"no_input":                      "Wir haben keinen Code erhalten. Auf Wiederhören.",
		"refused:phone_number_withheld": "Ihre Nummer ist unterdrückt, daher können wir Ihnen keinen Code senden.",
		"refused:not_mobile":            "Ihre Nummer kann keine SMS empfangen, daher können wir Ihnen keinen Code senden.",
		"refused:invalid_phone_number":  "Wir können an Ihre Nummer keinen Code senden.",
		"refused:rate_limited":          "Es wurden zu viele Codes gesendet. Bitte versuchen Sie es später erneut.",
		"refused":                       "Leider können wir Sie auf diesem Weg nicht bestätigen.",
		"error":                         "Die Bestätigung ist gerade nicht verfügbar. Bitte versuchen Sie es später erneut.",
	},
}

// voiceTags are the language tags the platforms' text-to-speech takes.
var voiceTags = map[string]string{"en": "en-US", "es": "es-ES", "fr": "fr-FR", "de": "de-DE"}

// language picks the phrase language for a locale ("es-MX" → "es"); English by default.
func language(locale string) string {
	l := strings.ToLower(locale)
	if i := strings.IndexAny(l, "-_"); i > 0 {
		l = l[:i]
	}
	if _, ok := phrases[l]; ok {
		return l
	}
	return "en"
}

// VoiceLanguage is the text-to-speech language tag for a locale: the locale itself when it
// is a full tag of a language the prompts exist in ("es-MX"), else that language's default.
func VoiceLanguage(locale string) string {
	lang := language(locale)
	if base, region, ok := strings.Cut(locale, "-"); ok && strings.EqualFold(base, lang) && isRegionSubtag(region) {
		return lang + "-" + strings.ToUpper(region)
	}
	return voiceTags[lang]
}

// isRegionSubtag reports whether s is a BCP 47 region: two ASCII letters or three digits.
// Anything else (the locale comes from the platform's request) falls back to the default tag.
func isRegionSubtag(s string) bool {
	isLetter := func(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }
	isDigit := func(c byte) bool { return c >= '0' && c <= '9' }
	switch len(s) {
	case 2:
		return isLetter(s[0]) && isLetter(s[1])
	case 3:
		return isDigit(s[0]) && isDigit(s[1]) && isDigit(s[2])
	}
	return false
}

// Prompt is what the caller hears for r, in the locale's language.
func Prompt(r Result, locale string) string {
	p := phrases[language(locale)]
	switch r.Step {
	case StepRetry:
		if n := r.AttemptsLeft(); n > 0 {
			return fmt.Sprintf(p["retry_left"], n)
		}
		return p["retry"]
	case StepRefused:
		if s, ok := p["refused:"+string(r.Code)]; ok {
			return s
		}
		return p["refused"]
	case StepError:
		return p["error"]
	}
	if s, ok := p[string(r.Step)]; ok {
		return s
	}
	return p["error"]
}

// NoInput is what the caller hears when they key in nothing.
func NoInput(locale string) string { return phrases[language(locale)]["no_input"] }
