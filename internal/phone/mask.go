package phone

import (
	"regexp"
	"strings"
)

// Mask hides a number for logs: only its last four digits show, and the length does not.
// A string with four digits or fewer is hidden entirely.
func Mask(s string) string {
	d := digitsOf(s)
	if len(d) <= 4 {
		return "***"
	}
	return "***" + d[len(d)-4:]
}

// digitRun is a run of digits, possibly with the separators numbers are written with.
var digitRun = regexp.MustCompile(`\+?\d(?:[\d ().-]*\d)?`)

// MaskText hides what may be personal data in free text, such as a provider's error message
// quoting the destination or the code. A run that reads as a phone number (it starts with +,
// or holds 10 to 15 digits) keeps only its last four digits; any other run of 4 or more
// digits (a code, perhaps joined to the words around it: "123456 (1 of 5)") is hidden whole.
func MaskText(s string) string {
	return digitRun.ReplaceAllStringFunc(s, func(run string) string {
		n := len(digitsOf(run))
		switch {
		case n >= 7 && (strings.HasPrefix(run, "+") || n >= 10 && n <= 15):
			return Mask(run)
		case n >= 4:
			return "***"
		}
		return run
	})
}

// MaskEmail hides an address for logs: the first letter of the local part and the domain.
func MaskEmail(email string) string {
	at := strings.LastIndexByte(email, '@')
	if at <= 0 {
		return "***"
	}
	return email[:1] + "***" + email[at:]
}
