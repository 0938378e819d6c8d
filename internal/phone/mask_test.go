package phone

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestMask(t *testing.T) {
	for in, want := range map[string]string{
		"+14155552671":                            "***2671",
		"+1 (415) 555-2671":                       "***2671",
		"tel:+44-7400-123456":                     "***3456",
		"sip:+14155552671@10.0.0.1;user=phone":    "***2671", // not the host's digits
		"<sip:+14155552671@carrier.example:5060>": "***2671",
		"+1415555２６７１":                            "***2671", // full-width digits count as digits
		"123456":                                  "***3456",
		"1234":                                    "***",
		"":                                        "***",
	} {
		if got := Mask(in); got != want {
			t.Errorf("Mask(%q) = %q, want %q", in, got, want)
		}
	}
	if got := MaskEmail("alice@example.com"); got != "***@example.com" {
		t.Errorf("MaskEmail = %q", got)
	}
	for _, bad := range []string{"", "@example.com", "no-at-sign", "alice@"} {
		if got := MaskEmail(bad); got != "***" {
			t.Errorf("MaskEmail(%q) = %q, want ***", bad, got)
		}
	}
}

// TestMaskText is the shapes a number or a code can take in a provider's message, as one
// trying to get past the masking would write them, and the ordinary text that must stay
// readable. Dates, amounts and addresses of four digits or more are hidden as codes are:
// telling them from a code is guessing, and hiding them costs a reader little.
func TestMaskText(t *testing.T) {
	checkMaskText(t, map[string]string{
		"invalid destination +1 (415) 555-2671": "invalid destination ***2671",
		"number 447400123456 is not reachable":  "number ***3456 is not reachable",
		"code 123456 is wrong":                  "code *** is wrong",
		"code 482913 (1 of 5)":                  "code *** of 5)",
		"code 123456 - 3 attempts":              "code *** attempts",
		"call 555-2671 later":                   "call *** later",
		"pin 0000":                              "pin ***",
		"":                                      "",

		// separators numbers are written with
		"to 415/555/2671":             "to ***2671",
		"to 415_555_2671":             "to ***2671",
		"to 415.555.2671":             "to ***2671",
		"to 415\u00a0555\u00a02671":   "to ***2671", // no-break space
		"to +1\u202f415\u202f5552671": "to ***2671", // narrow no-break space
		"to +1\u2009415\u20095552671": "to ***2671", // thin space
		"to +1\u3000415\u30005552671": "to ***2671", // ideographic space
		"to 415\u2013555\u20132671":   "to ***2671", // en dash
		"to 415\u2212555\u22122671":   "to ***2671", // minus sign
		"to 4,155,552,671":            "to ***2671", // printed as an amount
		"to 4 1 5 5 5 5 2 6 7 1":      "to ***2671",
		"to (415) 555-2671":           "to (***2671",
		"to 0044 7400 123456":         "to ***3456",

		// digits of other scripts
		"to ＋１ ４１５ ５５５ ２６７１":     "to ***2671", // full-width
		"to ٤١٥٥٥٥٢٦٧١":          "to ***2671", // Arabic-Indic
		"to +1 415 555 ۲۶۷۱":     "to ***2671", // Persian, after ASCII
		"code १२३४५६":            "code ***",   // Devanagari
		"code 𝟏𝟐𝟑𝟒𝟓𝟔":            "code ***",   // mathematical bold
		"code １２３４":              "code ***",
		"to +1415555２６７１ please": "to ***2671 please",

		// a number and a code in one run: the code is hidden whole
		"+14155552671 123456":      "***2671 ***",
		"+14155552671 1234":        "***2671 ***", // 15 digits, too many for a +1 number
		"+1 415 555 2671 12345678": "***2671 ***",
		"+14155552671/123456":      "***2671/***",
		"+447400123456 123456":     "***3456 ***",
		"00447400123456 1234":      "***3456 ***",
		"4155552671 12345":         "***2671 ***",
		"4155552671-123456":        "***2671-***",
		"415-555-2671-1234":        "***2671-***",
		"123456 4155552671":        "***", // 16 digits: not one number
		// a code after other digits: no number ends in a group of more than four
		"1234 482913":             "***",
		"2026-12-02 482913":       "***",
		"error 40001 482913":      "error ***",
		"612345678 482913":        "***",
		"07400 123456":            "***",      // a UK mobile written so: hidden whole, the safe mistake
		"sent 2026-12-02 482 913": "sent ***", // a number's end would be a guess: all hidden
		"415 555 2671 12":         "***",

		// invisible separators
		"to 4\u200b1\u200b5\u200b5\u200b5\u200b5\u200b2\u200b6\u200b7\u200b1": "to ***2671", // zero-width space
		"code 48\u00ad29\u206013":                                   "code ***",             // soft hyphen, word joiner
		"code 4\ufe0f\u20e38\ufe0f\u20e32\ufe0f\u20e39\ufe0f\u20e3": "code ***\ufe0f\u20e3", // keycaps
		"+14155552671 12":                                           "***2671 12",

		// more digits than a number has, or not a number of any country
		"+1415555267112345678": "***",
		"41555526711234567":    "***",
		"+999 1234 5678":       "***",
		"+1 555 0100":          "***", // too short for +1
		"code 1 2 3 4 5 6":     "code ***",
		"code 12-34-56":        "code ***",
		"code 12 34":           "code ***",
		"+12 and 34":           "+12 and 34",

		// ordinary text stays readable
		"HTTP 503":                "HTTP 503",
		"attempt 2 of 5":          "attempt 2 of 5",
		"HTTP 429, retry in 60 s": "HTTP 429, retry in 60 s",
		"error E12":               "error E12",
		"expires at 18:20":        "expires at 18:20",
		"between 4 and 10 digits": "between 4 and 10 digits",
		"v1.2, 3 left":            "v1.2, 3 left",
		// hidden as codes are
		"expired on 2026-12-02":        "expired on ***",
		"expired 2026-12-02T10:30:00Z": "expired ***T10:30:00Z",
		"retry after 3600 s":           "retry after *** s",
		"from 10.0.0.12":               "from ***",
		// a date and an hour make 10 digits, which is shown as a number would be
		"at 2026-12-02 10:30": "at ***0210:30",
	})
}

// TestMaskTextEmail: a provider's message quoting the address it refused, in the forms
// addresses take, keeps the domain and nothing of the local part.
func TestMaskTextEmail(t *testing.T) {
	checkMaskText(t, map[string]string{
		"email jane.doe@example.com is invalid":        "email ***@example.com is invalid",
		"Invalid email address: Jane.Doe@Example.COM.": "Invalid email address: ***@Example.COM.",
		"to <o'brien+otp@mail.example.co.uk>":          "to <***@mail.example.co.uk>",
		"józef.żółć@example.pl bounced":                "***@example.pl bounced",
		"user@localhost":                               "***@localhost",
		// an e-mail-to-SMS gateway, and a SIP URI: the number is the local part
		"4155552671@txt.att.net rejected":  "***@txt.att.net rejected",
		"sip:+14155552671@carrier.example": "sip:***@carrier.example",
		// a number in the domain is masked as a number anywhere else is
		"jane@4155552671.example": "***@***2671.example",
		"a@b and c@d":             "***@b and ***@d",
		"no address @ here":       "no address @ here",
		"jane.doe＠example.com":    "***@example.com", // the full-width at sign
		// a run of digits that goes on past the domain's end, or past a label cut at 63
		"x@b.123 456":                             "***@b.***",
		"x@example.com.482 913":                   "***@example.com.***",
		"x@" + strings.Repeat("a", 60) + "123456": "***@" + strings.Repeat("a", 60) + "***",
		"x@a.b.c.d.e.f.g.h.i12.345":               "***@a.b.c.d.e.f.g.h.i***",
		"@@a@b@":                                  "@@***@b@",
		// the local part is at most 64 characters: what comes before is text
		strings.Repeat("x", 70) + "@example.com": "xxxxxx***@example.com",
	})
}

func checkMaskText(t *testing.T, cases map[string]string) {
	t.Helper()
	for in, want := range cases {
		if got := MaskText(in); got != want {
			t.Errorf("MaskText(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestMaskTextUpTo: cut at any length, the text is MaskText's (masked first, so what a cut
// leaves of a number is never shown as it was), no longer than asked, and cut between
// characters, not inside one.
func TestMaskTextUpTo(t *testing.T) {
	for _, s := range []string{
		"refused +1 (415) 555-2671, code 123456",
		"to ＋１ ４１５ ５５５ ２６７１ for jane.doe@example.com: ünïcödé",
		"no digits at all",
	} {
		whole := MaskText(s)
		for n := 0; n <= len(whole)+2; n++ {
			got := MaskTextUpTo(s, n)
			if len(got) > n || !strings.HasPrefix(whole, got) || len(got) < min(n, len(whole))-utf8.UTFMax+1 {
				t.Fatalf("MaskTextUpTo(%q, %d) = %q; want a prefix of %q of %d bytes at most", s, n, got, whole, n)
			}
			if !utf8.ValidString(got) {
				t.Fatalf("MaskTextUpTo(%q, %d) = %q cuts a character", s, n, got)
			}
		}
	}
}

// TestDigitValue holds unicode.Nd to what digitValue assumes of it: ranges of stride 1, each
// made of whole runs of ten digits, 0 to 9.
func TestDigitValue(t *testing.T) {
	check := func(lo, hi, stride uint32) {
		if stride != 1 || (hi-lo+1)%10 != 0 {
			t.Errorf("Nd range %U-%U (stride %d) is not runs of ten", lo, hi, stride)
		}
	}
	for _, rg := range unicode.Nd.R16 {
		check(uint32(rg.Lo), uint32(rg.Hi), uint32(rg.Stride))
	}
	for _, rg := range unicode.Nd.R32 {
		check(rg.Lo, rg.Hi, rg.Stride)
	}
	for r, want := range map[rune]byte{'0': 0, '7': 7, '٣': 3, '۹': 9, '５': 5, '३': 3, '๘': 8, '𝟗': 9, '𝟬': 0} {
		if got, ok := digitValue(r); !ok || got != want {
			t.Errorf("digitValue(%q) = %d, %v; want %d", r, got, ok, want)
		}
	}
	for _, r := range []rune{'a', '/', '²', '½', 'Ⅳ', '〇'} { // not decimal digits (No, Nl, Lo)
		if _, ok := digitValue(r); ok {
			t.Errorf("digitValue(%q) is a digit", r)
		}
	}
}

// fiveDigits is five digits in a row, of any script: more than masked text may show.
var fiveDigits = regexp.MustCompile(`\p{Nd}{5}`)

// FuzzMaskText: whatever the text, the masked text shows no five digits in a row, keeps
// valid UTF-8 valid, and never panics.
func FuzzMaskText(f *testing.F) {
	for _, s := range []string{"+14155552671 123456", "to ＋１ ４１５ ５５５ ２６７１", "jane@4155552671.example",
		"4,155,552,671", "code 12-34-56", "x@" + strings.Repeat("a", 60) + "123456", "HTTP 503", "+44 (0) 20 7946 0018", "0044 7400 123456 1234"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := MaskText(s)
		if fiveDigits.MatchString(got) {
			t.Fatalf("MaskText(%q) = %q shows five digits in a row", s, got)
		}
		if utf8.ValidString(s) && !utf8.ValidString(got) {
			t.Fatalf("MaskText(%q) = %q is not valid UTF-8", s, got)
		}
	})
}

// BenchmarkMaskTextUpTo masks a provider's longest answer (1 MiB) cut to 200 bytes, in the
// shapes that cost the most: no "@" nor digit, letters and digits mixed, one long run. The
// time grows with the length, not its square (an earlier pattern took 18 s for 40 KB).
func BenchmarkMaskTextUpTo(b *testing.B) {
	for name, s := range map[string]string{
		"letters": strings.Repeat("ab", 1<<19), "mixed": strings.Repeat("1a", 1<<19),
		"run": strings.Repeat("1 ", 1<<19), "addresses": strings.Repeat("a@", 1<<19),
	} {
		for _, size := range []int{len(s) / 4, len(s)} {
			b.Run(fmt.Sprintf("%s/%dKiB", name, size>>10), func(b *testing.B) {
				b.SetBytes(int64(size))
				for b.Loop() {
					MaskTextUpTo(s[:size], 200)
				}
			})
		}
	}
}
