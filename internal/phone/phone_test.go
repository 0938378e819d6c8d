package phone

import (
	"errors"
	"strings"
	"testing"

	"github.com/biter777/countries"
	"github.com/nyaruka/phonenumbers"
)

func TestParse(t *testing.T) {
	cases := []struct {
		name, raw, country string
		e164, region       string
		typ                Type
		err                error
	}{
		{"e164", "+14155552671", "", "+14155552671", "US", TypeFixedOrMobile, nil},
		{"e164 with spaces", " +1 (415) 555-2671 ", "", "+14155552671", "US", TypeFixedOrMobile, nil},
		{"national alpha-2", "(415) 555-2671", "US", "+14155552671", "US", TypeFixedOrMobile, nil},
		{"national alpha-3", "415-555-2671", "USA", "+14155552671", "US", TypeFixedOrMobile, nil},
		{"lower-case alpha-2", "07400 123456", "gb", "+447400123456", "GB", TypeMobile, nil},
		{"alpha-3 GBR", "07400123456", "GBR", "+447400123456", "GB", TypeMobile, nil},
		{"uk landline", "020 7946 0018", "GB", "+442079460018", "GB", TypeFixedLine, nil},
		{"australia mobile alpha-3", "0412 345 678", "AUS", "+61412345678", "AU", TypeMobile, nil},
		{"germany mobile", "01512 3456789", "DEU", "+4915123456789", "DE", TypeMobile, nil},
		{"e164 overrides country", "+447400123456", "US", "+447400123456", "GB", TypeMobile, nil},
		{"international digits (Vonage)", "447400123456", "", "+447400123456", "GB", TypeMobile, nil},
		{"international digits with other country", "447400123456", "US", "+447400123456", "GB", TypeMobile, nil},
		{"00 prefix without country", "00447400123456", "", "+447400123456", "GB", TypeMobile, nil},
		{"us digits with trunk 1", "14155552671", "US", "+14155552671", "US", TypeFixedOrMobile, nil},
		{"tel uri", "tel:+1-415-555-2671", "", "+14155552671", "US", TypeFixedOrMobile, nil},
		{"tel uri with params", "tel:+1-415-555-2671;phone-context=example.com", "", "+14155552671", "US", TypeFixedOrMobile, nil},
		{"sip uri", "sip:+14155552671@carrier.example;user=phone", "", "+14155552671", "US", TypeFixedOrMobile, nil},
		{"sips uri in brackets", `"Alice" <sips:+447400123456@pbx.example>`, "", "+447400123456", "GB", TypeMobile, nil},
		{"SIP upper-case scheme", "SIP:+447400123456@pbx.example", "", "+447400123456", "GB", TypeMobile, nil},

		{"empty", "", "US", "", "", "", ErrWithheld},
		{"blank", "   ", "US", "", "", "", ErrWithheld},
		{"anonymous", "anonymous", "", "", "", "", ErrWithheld},
		{"Restricted", "Restricted", "", "", "", "", ErrWithheld},
		{"UNKNOWN", "UNKNOWN", "", "", "", "", ErrWithheld},
		{"private", "private", "", "", "", "", ErrWithheld},
		{"unavailable", "unavailable", "", "", "", "", ErrWithheld},
		{"sip anonymous", "sip:anonymous@anonymous.invalid", "", "", "", "", ErrWithheld},
		{"twilio anonymous", "+266696687", "", "", "", "", ErrWithheld},
		{"twilio restricted", "+7378742833", "US", "", "", "", ErrWithheld},
		{"twilio blocked", "+2562533", "", "", "", "", ErrWithheld},
		{"twilio unknown", "+8656696", "", "", "", "", ErrWithheld},

		{"letters", "call me maybe", "US", "", "", "", ErrInvalidNumber},
		{"too short", "12", "US", "", "", "", ErrInvalidNumber},
		{"not valid for region", "+1 555 0100", "", "", "", "", ErrInvalidNumber},
		{"unassigned us area code", "(099) 555-2671", "US", "", "", "", ErrInvalidNumber},
		{"national without country", "4155552671", "", "", "", "", ErrInvalidNumber},
		{"control characters", "+1415\x005552671", "", "", "", "", ErrInvalidNumber},
		{"non-ascii", "+1415５５５2671", "", "", "", "", ErrInvalidNumber},
		{"absurdly long", "+1" + strings.Repeat("5", 80), "", "", "", "", ErrInvalidNumber},

		{"country not iso", "4155552671", "XX", "", "", "", ErrInvalidCountry},
		{"country name", "4155552671", "united states", "", "", "", ErrInvalidCountry},
		{"country exceptional code", "07400123456", "UK", "", "", "", ErrInvalidCountry},
		{"country four letters", "4155552671", "USAA", "", "", "", ErrInvalidCountry},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n, err := Parse(tc.raw, tc.country)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Parse(%q, %q) = %+v, %v; want %v", tc.raw, tc.country, n, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q, %q): %v", tc.raw, tc.country, err)
			}
			if n.E164 != tc.e164 || n.Region != tc.region || n.Type != tc.typ {
				t.Fatalf("Parse(%q, %q) = %+v; want %s %s %s", tc.raw, tc.country, n, tc.e164, tc.region, tc.typ)
			}
		})
	}
}

func TestCanReceiveSMS(t *testing.T) {
	for raw, want := range map[string]bool{
		"+447400123456": true,  // UK mobile
		"+14155552671":  true,  // US: fixed line or mobile
		"+442079460018": false, // UK landline
		"+61298765432":  false, // Sydney landline
		"+18005550199":  false, // toll free
	} {
		n, err := Parse(raw, "")
		if err != nil {
			t.Fatalf("Parse(%s): %v", raw, err)
		}
		if got := n.CanReceiveSMS(); got != want {
			t.Errorf("%s (%s) CanReceiveSMS = %v, want %v", raw, n.Type, got, want)
		}
	}
}

func TestRegion(t *testing.T) {
	for in, want := range map[string]string{"US": "US", "usa": "US", "gb": "GB", "GBR": "GB", "DEU": "DE", "nz": "NZ", "XKX": "XK", "": ""} {
		got, err := Region(in)
		if err != nil || got != want {
			t.Errorf("Region(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"X", "ZZ", "ZZZ", "UK", "U.S.", "Germany", "12"} {
		if _, err := Region(in); !errors.Is(err, ErrInvalidCountry) {
			t.Errorf("Region(%q) err = %v, want ErrInvalidCountry", in, err)
		}
	}
}

// TestRegionDoesNotEchoWhatItRefuses: a country field holding a phone number or an address
// is refused without quoting it (the error is logged); one as short as a code is named.
func TestRegionDoesNotEchoWhatItRefuses(t *testing.T) {
	for _, country := range []string{"+14155552671", "4155552671", "jane.doe@example.com", " +1 (415) 555-2671 "} {
		_, regionErr := Region(country)
		_, parseErr := Parse("+14155552671", country)
		for _, err := range []error{regionErr, parseErr} {
			if !errors.Is(err, ErrInvalidCountry) {
				t.Fatalf("country %q: err = %v, want ErrInvalidCountry", country, err)
			}
			if msg := err.Error(); strings.Contains(msg, "5552671") || strings.Contains(msg, "555-2671") || strings.Contains(msg, "jane") {
				t.Errorf("country %q: the error quotes it: %s", country, msg)
			}
		}
	}
	if _, err := Region("uk"); err == nil || !strings.Contains(err.Error(), `"UK"`) {
		t.Errorf(`Region("uk") = %v; want an error naming "UK"`, err)
	}
}

// FuzzParse: whatever an IVR sends, Parse answers a valid E.164 number or one of its errors,
// and never panics.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"+14155552671", "tel:+1-415-555-2671", "sip:+1@x;y", "<sip:", "anonymous", "00", "+", "0044", "(415) 555-2671"} {
		f.Add(s, "US")
	}
	f.Fuzz(func(t *testing.T, raw, country string) {
		n, err := Parse(raw, country)
		if err != nil {
			if !errors.Is(err, ErrWithheld) && !errors.Is(err, ErrInvalidNumber) && !errors.Is(err, ErrInvalidCountry) {
				t.Fatalf("Parse(%q, %q): unexpected error %v", raw, country, err)
			}
			return
		}
		if !strings.HasPrefix(n.E164, "+") || len(n.E164) < 8 || len(n.E164) > 16 || n.Region == "" {
			t.Fatalf("Parse(%q, %q) = %+v: not E.164", raw, country, n)
		}
		again, err := Parse(n.E164, "")
		if err != nil || again != n {
			t.Fatalf("E.164 %s does not round-trip: %+v, %v", n.E164, again, err)
		}
		if pn, err := phonenumbers.Parse(n.E164, ""); err != nil || !phonenumbers.IsValidNumber(pn) {
			t.Fatalf("%s accepted but libphonenumber's IsValidNumber refuses it", n.E164)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	inputs := []struct{ raw, country string }{
		{"+14155552671", ""}, {"(415) 555-2671", "USA"}, {"tel:+44-7400-123456", ""}, {"sip:+61412345678@x;user=phone", ""},
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		in := inputs[i%len(inputs)]
		if _, err := Parse(in.raw, in.country); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "parses/s")
}

// TestEveryRegionHasItsAlpha3 checks the country table against libphonenumber's own list:
// every region it can parse numbers for is reachable by its ISO alpha-3 code too. The few
// regions that are not ISO 3166 countries (Ascension, Tristan da Cunha, the non-geographic
// "001") are the only ones allowed out.
func TestEveryRegionHasItsAlpha3(t *testing.T) {
	notISO := map[string]bool{"AC": true, "TA": true, "001": true}
	n := 0
	for region := range phonenumbers.GetSupportedRegions() {
		if notISO[region] {
			continue
		}
		code := countries.ByName(region)
		a3 := code.Alpha3()
		got, err := Region(a3)
		if err != nil || got != region {
			t.Errorf("region %s: alpha-3 %q gives %q, %v", region, a3, got, err)
		}
		n++
	}
	if n < 240 {
		t.Fatalf("only %d regions checked", n)
	}
}
