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

// emailAddress is an address as free text quotes it: a local part of RFC 5322's characters
// (and any script's letters and digits), "@", a domain. It is tried before digitRun, so the
// number a local part may be made of ("+14155552671@sms.example") goes with its address.
var emailAddress = regexp.MustCompile(`[\p{L}\p{M}\p{N}.!#$%&'*+/=?^_` + "`" + `{|}~-]+@[\p{L}\p{M}\p{N}-]+(?:\.[\p{L}\p{M}\p{N}-]+)*`)

// personalData is what MaskText hides: an e-mail address, or a run of digits.
var personalData = regexp.MustCompile(emailAddress.String() + `|` + digitRun.String())

// MaskText hides what may be personal data in free text, such as a provider's error message
// quoting the destination or the code. An e-mail address is shown as MaskEmail shows it. A
// run of digits that reads as a phone number (it starts with +, or holds 10 to 15 digits)
// keeps only its last four digits; any other run of 4 or more digits (a code, perhaps joined
// to the words around it: "123456 (1 of 5)") is hidden whole.
func MaskText(s string) string {
	return personalData.ReplaceAllStringFunc(s, func(m string) string {
		if strings.Contains(m, "@") {
			return MaskEmail(m)
		}
		return maskDigitRun(m)
	})
}

func maskDigitRun(run string) string {
	n := len(digitsOf(run))
	switch {
	case n >= 7 && (strings.HasPrefix(run, "+") || n >= 10 && n <= 15):
		return Mask(run)
	case n >= 4:
		return "***"
	}
	return run
}

// MaskEmail hides an address for logs: the local part wholly, the domain kept, for an
// operator to see which mail system refused, with its digits masked as MaskText masks them
// ("***@example.com"). Not even the local part's first letter shows: with a domain of few
// users, it can be enough to tell who it is.
func MaskEmail(email string) string {
	at := strings.LastIndexByte(email, '@')
	if at <= 0 || at == len(email)-1 {
		return "***"
	}
	return "***@" + digitRun.ReplaceAllStringFunc(email[at+1:], maskDigitRun)
}
