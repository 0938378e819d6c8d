package phone

import "testing"

func TestMask(t *testing.T) {
	for in, want := range map[string]string{
		"+14155552671":        "***2671",
		"+1 (415) 555-2671":   "***2671",
		"tel:+44-7400-123456": "***3456",
		"123456":              "***3456",
		"1234":                "***",
		"":                    "***",
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

func TestMaskText(t *testing.T) {
	checkMaskText(t, map[string]string{
		"invalid destination +1 (415) 555-2671": "invalid destination ***2671",
		"number 447400123456 is not reachable":  "number ***3456 is not reachable",
		"code 123456 is wrong":                  "code *** is wrong",
		"code 482913 (1 of 5)":                  "code *** of 5)",
		"code 123456 - 3 attempts":              "code *** attempts",
		"call 555-2671 later":                   "call *** later",
		"pin 0000":                              "pin ***",
		"HTTP 429, retry in 60 s":               "HTTP 429, retry in 60 s",
		"error E12":                             "error E12",
		"":                                      "",
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
