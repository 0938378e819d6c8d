package phone

import (
	"strconv"
	"testing"

	"github.com/nyaruka/phonenumbers"
	"google.golang.org/protobuf/proto"
)

// TestParseE164AgreesWithLibphonenumber: wherever parseE164 answers, it answers what
// phonenumbers.Parse does, field for field, on every example number and its neighbours, each
// also with a 0, a 1, an 8 and a 9 put after the calling code (national prefixes, kept or
// stripped by the library), and with the calling code's digits changed.
func TestParseE164AgreesWithLibphonenumber(t *testing.T) {
	compared, fast := 0, 0
	for _, ex := range exampleNumbers(t) {
		cc := strconv.Itoa(int(ex.GetCountryCode()))
		for _, pn := range variants(ex) {
			nsn := phonenumbers.GetNationalSignificantNumber(pn)
			inputs := []string{"+" + cc + nsn, "+" + cc + "0" + nsn, "+" + cc + "1" + nsn, "+" + cc + "8" + nsn,
				"+" + cc + "9" + nsn, "+" + cc[:len(cc)-1] + nsn, "+" + cc + "0"}
			for _, s := range inputs {
				compared++
				if assertParsedAsLibrary(t, s) {
					fast++
				}
			}
		}
	}
	// The fast path must be the common one, or it saves nothing; and it must not be taken
	// for everything, or the comparison never saw the library refuse or strip.
	if fast < compared/3 || fast == compared {
		t.Fatalf("fast path for %d of %d inputs", fast, compared)
	}
	t.Logf("%d inputs compared, %d on the fast path", compared, fast)
	for _, s := range []string{"+447400123456", "+14155552671", "+33612345678", "+4915123456789", "+61412345678"} {
		if _, ok := parseE164(s); !ok {
			t.Errorf("%s took the slow path", s)
		}
	}
}

// assertParsedAsLibrary reports whether parseE164 answered s, failing when its answer is not
// the library's.
// parseValid asks parseE164 whatever the caller's region, so the library's answer for each
// of regions (none: "") must be the same.
func assertParsedAsLibrary(t *testing.T, s string, regions ...string) bool {
	t.Helper()
	got, ok := parseE164(s)
	if !ok {
		return false
	}
	if len(regions) == 0 {
		regions = []string{""}
	}
	for _, region := range regions {
		want, err := phonenumbers.Parse(s, region)
		if err != nil {
			t.Fatalf("%q: parseE164 = %v, libphonenumber (region %q) refuses it: %v", s, got, region, err)
		}
		if !proto.Equal(got, want) {
			t.Fatalf("%q: parseE164 = %v, libphonenumber (region %q) = %v", s, got, region, want)
		}
	}
	return true
}

func FuzzParseE164(f *testing.F) {
	for _, s := range []string{"+447400123456", "+4407400123456", "+14155552671", "+390612345678", "+5491123456789", "+80012345678", "+999", "+1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		assertParsedAsLibrary(t, s, "", "GB", "US", "IT", "AR")
		// Most of what the fuzzer makes has letters in it; its digits alone, after a plus,
		// are the input the fast path is for.
		if d := digitsOf(s); d != "" {
			assertParsedAsLibrary(t, "+"+d, "", "GB", "US", "IT", "AR")
		}
	})
}

func BenchmarkParseE164(b *testing.B) {
	const s = "+447400123456"
	b.Run("parseE164", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			parseE164(s)
		}
	})
	b.Run("libphonenumber", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := phonenumbers.Parse(s, ""); err != nil {
				b.Fatal(err)
			}
		}
	})
}
