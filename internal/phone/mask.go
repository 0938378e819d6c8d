package phone

import (
	"math"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
)

// Mask hides a number for logs: only its last four digits show, and the length does not.
// A string with four digits or fewer is hidden entirely. Of a tel: or sip: URI, as platforms
// send callers, the number is masked, not the host's digits after it ("@10.0.0.1").
func Mask(s string) string {
	d := digitsOf(uriUser(s))
	if len(d) <= 4 {
		return "***"
	}
	return "***" + d[len(d)-4:]
}

// digitRun is a run of digits of any script, possibly with a leading plus and the separators
// numbers are written with: spaces of every kind, dashes, brackets, dots, slashes,
// underscores, and the commas and apostrophes of a number printed as an amount
// ("4,155,552,671"), in their ASCII and full-width forms; and the invisible ones, format
// characters (a zero-width space, a soft hyphen) and combining marks (a keycap's, "4️⃣"),
// which would otherwise split a number into runs too short to be masked. A separator not
// among these (":", letters) ends the run: "18:20" is two runs of two digits.
var digitRun = regexp.MustCompile(`[+＋]?\p{Nd}(?:[\s\p{Zs}\p{Pd}\x{2212}()\[\]（）［］.．/／_＿,，'’·\p{Cf}\p{Mn}\p{Me}]*\p{Nd})*`)

// An e-mail address as free text quotes it: a local part of RFC 5322's characters (and any
// script's letters and digits), "@" (or its full-width form), a domain. Found around each
// "@" (nextAddress), the parts bounded as RFC 5321 bounds them: at most 64 characters
// before it, and up to 9 labels of 63 after. A regular expression did this before, and cost
// microseconds a byte on a long text without an "@" (a base64 blob), a second for every
// few hundred kilobytes a provider may answer.
const (
	maxLocalPart   = 64
	maxLabel       = 63
	maxLabels      = 9
	localPartMarks = ".!#$%&'*+/=?^_`{|}~-"
)

func isLocalChar(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsMark(r) || unicode.IsNumber(r) || strings.ContainsRune(localPartMarks, r)
}

func isDomainChar(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsMark(r) || unicode.IsNumber(r) || r == '-'
}

// span is where a match lies in a text: [start, end).
type span struct{ start, end int }

// nextAddress is the local part and at sign of the first address in s that starts at from
// or after it, as the leftmost match of a pattern would be: it begins as far back from its
// "@" as the local part goes, but not before from, and a domain follows. It tries each "@"
// once. The domain is not in the span: MaskText reads it as text, so a run of digits that
// goes on past its end (or past a label cut at 63) is masked as one.
func nextAddress(s string, from int) (span, bool) {
	for i := from; i < len(s); {
		j := strings.IndexAny(s[i:], "@＠")
		if j < 0 {
			return span{}, false
		}
		at := i + j
		_, atLen := utf8.DecodeRuneInString(s[at:])
		start := at
		for k := 0; k < maxLocalPart && start > from; k++ {
			r, size := utf8.DecodeLastRuneInString(s[from:start])
			if !isLocalChar(r) {
				break
			}
			start -= size
		}
		if start < at && domainEnd(s, at+atLen) > at+atLen {
			return span{start, at + atLen}, true
		}
		i = at + atLen
	}
	return span{}, false
}

// domainEnd is where the domain that starts at p ends: labels joined by dots.
func domainEnd(s string, p int) int {
	end := p
	for label := 0; label < maxLabels; label++ {
		q := end
		if label > 0 {
			if q >= len(s) || s[q] != '.' {
				break
			}
			q++
		}
		n := 0
		for n < maxLabel && q < len(s) {
			r, size := utf8.DecodeRuneInString(s[q:])
			if !isDomainChar(r) {
				break
			}
			q += size
			n++
		}
		if n == 0 {
			break
		}
		end = q
	}
	return end
}

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
// bytes. It reads s whole in the worst case (no match in it), in time linear in its length
// (BenchmarkMaskTextUpTo). s is not cut before: a run cut in two could be judged as a
// shorter one and show other digits.
func MaskTextUpTo(s string, n int) string {
	var b strings.Builder
	// The next address and the next run of digits from pos, each found once and kept until
	// passed: an address is taken where it starts no later than the run (a number as its
	// local part goes with it), else the run.
	pos := 0
	addr, hasAddr := nextAddress(s, 0)
	run, hasRun := nextDigitRun(s, 0)
	for pos < len(s) && b.Len() < n {
		if hasAddr && addr.start < pos {
			addr, hasAddr = nextAddress(s, pos)
		}
		if hasRun && run.start < pos {
			run, hasRun = nextDigitRun(s, pos)
		}
		var m span
		switch {
		case hasAddr && (!hasRun || addr.start <= run.start):
			m = addr
			writeUpTo(&b, s[pos:m.start], n)
			writeUpTo(&b, hiddenLocalPart, n)
		case hasRun:
			m = run
			writeUpTo(&b, s[pos:m.start], n) // holds no digit: every digit is in a run
			writeUpTo(&b, maskDigitRun(s[m.start:m.end]), n)
		default:
			m = span{len(s), len(s)}
			writeUpTo(&b, s[pos:], n)
		}
		pos = m.end
	}
	return b.String()
}

// nextDigitRun is the first run of digits in s at from or after it.
func nextDigitRun(s string, from int) (span, bool) {
	at := digitRun.FindStringIndex(s[from:])
	if at == nil {
		return span{}, false
	}
	return span{from + at[0], from + at[1]}, true
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
		if rest := len(digitsIn(groups[n:])); number && !plus && n > 1 && rest > 0 && rest < 4 {
			// A national number in groups with a few digits after it: where it ends is a
			// guess ("2026-12-02 482 913" would show 2482 and then 913, the code whole).
			b.WriteString("***")
			break
		}
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
			// Written in groups, a national number ends in a group of four digits or fewer
			// ("415 555 2671", "06 12 34 56 78"); a longer last group is a code after other
			// digits ("1234 482913", "2026-12-02 482913"), and showing its last four would
			// show the code's. Hiding a number written "07400 123456" whole is the safe
			// mistake.
			return i + 1, count <= maxNumberDigits && (i == 0 || len(g.digits) <= 4)
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
	at, sign := strings.LastIndexByte(email, '@'), len("@")
	if wide := strings.LastIndex(email, "＠"); wide > at {
		at, sign = wide, len("＠")
	}
	if at <= 0 || at+sign == len(email) {
		return "***"
	}
	return hiddenLocalPart + MaskText(email[at+sign:])
}

// hiddenLocalPart is what shows of an address before its domain.
const hiddenLocalPart = "***@"
