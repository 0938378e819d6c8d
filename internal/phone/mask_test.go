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
	if got := MaskEmail("alice@example.com"); got != "a***@example.com" {
		t.Errorf("MaskEmail = %q", got)
	}
	for _, bad := range []string{"", "@example.com", "no-at-sign"} {
		if got := MaskEmail(bad); got != "***" {
			t.Errorf("MaskEmail(%q) = %q, want ***", bad, got)
		}
	}
}

func TestMaskText(t *testing.T) {
	for in, want := range map[string]string{
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
	} {
		if got := MaskText(in); got != want {
			t.Errorf("MaskText(%q) = %q, want %q", in, got, want)
		}
	}
}
