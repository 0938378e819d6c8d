package phone

import (
	"math"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
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

// digitRun is a run of digits of any script, possibly with a leading plus and the separators
// numbers are written with: spaces of every kind, dashes, brackets, dots, slashes,
// underscores, and the commas and apostrophes of a number printed as an amount
// ("4,155,552,671"), in their ASCII and full-width forms. A separator not among these
// (":", letters) ends the run: "18:20" is two runs of two digits.
var digitRun = regexp.MustCompile(`[+＋]?\p{Nd}(?:[\s\p{Zs}\p{Pd}\x{2212}()\[\]（）［］.．/／_＿,，'’·]*\p{Nd})*`)

// emailAddress is an address as free text quotes it: a local part of RFC 5322's characters
// (and any script's letters and digits), "@", a domain. It is tried before digitRun, so the
// number a local part may be made of ("+14155552671@sms.example") goes with its address.
var emailAddress = regexp.MustCompile(`[\p{L}\p{M}\p{N}.!#$%&'*+/=?^_` + "`" + `{|}~-]+@[\p{L}\p{M}\p{N}-]+(?:\.[\p{L}\p{M}\p{N}-]+)*`)

// personalData is what MaskText hides: an e-mail address, or a run of digits.
var personalData = regexp.MustCompile(emailAddress.String() + `|` + digitRun.String())

// MaskText hides what may be personal data in free text, such as a provider's error message
// quoting the destination or the code. An e-mail address is shown as MaskEmail shows it. In
// a run of digits (written in any script, with the separators of digitRun), only a part that
// can be one phone number keeps its last four digits; any other part of 4 or more digits (a
// code, perhaps joined to the words around it: "123456 (1 of 5)") is hidden whole, and so is
// what merely looks like one: a date ("2026-12-02"), an amount, an IP address. See
// maskDigitRun.
func MaskText(s string) string {
	return MaskTextUpTo(s, math.MaxInt)
}

// MaskTextUpTo is MaskText(s) cut to at most n bytes, at a character boundary, for text of
// any length that must be kept short. It masks before it cuts: a number cut first could
// lose the digits that make it read as a number, and show the rest. It stops once it has n
// bytes, so a long text costs only the part shown.
func MaskTextUpTo(s string, n int) string {
	var b strings.Builder
	for s != "" && b.Len() < n {
		at := personalData.FindStringIndex(s)
		if at == nil {
			at = []int{len(s), len(s)}
		}
		writeUpTo(&b, s[:at[0]], n) // holds no digit: every digit is in a match
		if m := s[at[0]:at[1]]; strings.Contains(m, "@") {
			writeUpTo(&b, MaskEmail(m), n)
		} else if m != "" {
			writeUpTo(&b, maskDigitRun(m), n)
		}
		s = s[at[1]:]
	}
	return b.String()
}

// writeUpTo appends s to b, cut at a character boundary so that b holds at most n bytes.
func writeUpTo(b *strings.Builder, s string, n int) {
	if room := n - b.Len(); len(s) > room {
		for room > 0 && !utf8.RuneStart(s[room]) {
			room--
		}
		s = s[:room]
	}
	b.WriteString(s)
}

// maskDigitRun masks a run of digits part by part: a part that can be one phone number keeps
// its last four digits, as Mask shows them; any other part of four or more digits is hidden
// whole, and a shorter one ("HTTP 503", "2 of 5") is left as it is.
//
// A run may hold more than one thing ("+14155552671 123456": a number, then a code). Judged
// whole, it would show the code's last four digits as the number's; so it is cut where a
// number ends (numberEnd) and each part is judged alone: "***2671 ***".
func maskDigitRun(run string) string {
	groups := digitGroups(run)
	if len(digitsIn(groups)) < 4 {
		return run
	}
	plus := strings.HasPrefix(run, "+") || strings.HasPrefix(run, "＋")
	var b strings.Builder
	for len(groups) > 0 {
		n, number := numberEnd(groups, plus)
		part, digits := groups[:n], digitsIn(groups[:n])
		switch {
		case number:
			b.WriteString(Mask(digits))
		case len(digits) >= 4:
			b.WriteString("***")
		default:
			b.WriteString(run[part[0].start:part[n-1].end])
		}
		if groups, plus = groups[n:], false; len(groups) > 0 {
			b.WriteString(run[part[n-1].end:groups[0].start]) // the separators between parts
		}
	}
	return b.String()
}

// maxNumberDigits is the most digits a phone number has (E.164, calling code included).
const maxNumberDigits = 15

// numberEnd says how many of a run's groups make its first part, and whether that part is
// one phone number.
//
// An international part (after + or 00) is the longest that is as long as its country's
// numbers are (libphonenumber's possible lengths): "+1 415 555 2671" then " 1234", which
// would make 15 digits, too many for a number of +1. When no such part starts the run, it
// is all one part, and not a number.
//
// Any other part has no country to measure it by. It ends at the group that brings it to 10
// digits, about what a national number with its area code has (or international digits
// without +), and it is a number if that makes it no more than 15: "4155552671 12345" is a
// number and a code, not one number of 15 digits. A part that never reaches 10 is not a
// number: shorter national numbers exist, but a code (4 to 10 digits) would pass for one.
// In numbering plans whose numbers vary in length (Germany's), a code written right after
// a number, with only spaces between, can still be read as the number's end.
func numberEnd(groups []digitGroup, plus bool) (n int, number bool) {
	if plus || strings.HasPrefix(groups[0].digits, "00") {
		skip := 0 // the 00 is not part of the number
		if !plus {
			skip = 2
		}
		most := 0 // the most groups that hold no more digits than a number
		for count := -skip; most < len(groups); most++ {
			if count += len(groups[most].digits); count > maxNumberDigits {
				break
			}
		}
		for i := most; i > 0; i-- {
			if possibleInternational(digitsIn(groups[:i])[skip:]) {
				return i, true
			}
		}
		return len(groups), false
	}
	count := 0
	for i, g := range groups {
		if count += len(g.digits); count >= 10 {
			return i + 1, count <= maxNumberDigits
		}
	}
	return len(groups), false
}

// possibleInternational reports whether digits, after a +, are as long as the numbers of
// their country calling code are. Possible, not valid: a number need not be assigned for
// its digits to be someone's.
func possibleInternational(digits string) bool {
	pn, ok := parseE164("+" + digits)
	if !ok {
		var err error
		if pn, err = phonenumbers.Parse("+"+digits, ""); err != nil {
			return false
		}
	}
	return phonenumbers.IsPossibleNumberWithReason(pn) == phonenumbers.IS_POSSIBLE
}

// digitGroup is a stretch of a run holding digits only: its place in the run (the first
// group starts at 0, with the run's plus) and its digits, in ASCII.
type digitGroup struct {
	start, end int
	digits     string
}

func digitGroups(run string) []digitGroup {
	var groups []digitGroup
	start := -1
	flush := func(end int) {
		if start >= 0 {
			groups = append(groups, digitGroup{start: start, end: end, digits: digitsOf(run[start:end])})
			start = -1
		}
	}
	for i, r := range run {
		if _, ok := digitValue(r); !ok {
			flush(i)
		} else if start < 0 {
			start = i
		}
	}
	flush(len(run))
	groups[0].start = 0
	return groups
}

func digitsIn(groups []digitGroup) string {
	var b strings.Builder
	for _, g := range groups {
		b.WriteString(g.digits)
	}
	return b.String()
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
