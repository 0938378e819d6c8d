package phone

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

// numberTypes are every type libphonenumber has example numbers for.
var numberTypes = []phonenumbers.PhoneNumberType{
	phonenumbers.FIXED_LINE, phonenumbers.MOBILE, phonenumbers.FIXED_LINE_OR_MOBILE,
	phonenumbers.TOLL_FREE, phonenumbers.PREMIUM_RATE, phonenumbers.SHARED_COST,
	phonenumbers.VOIP, phonenumbers.PERSONAL_NUMBER, phonenumbers.PAGER, phonenumbers.UAN,
	phonenumbers.VOICEMAIL,
}

// variants are a number and its neighbours: each last digit, one digit fewer and one more,
// so both sides of every pattern's edge are compared, valid and not.
func variants(pn *phonenumbers.PhoneNumber) []*phonenumbers.PhoneNumber {
	nsn := phonenumbers.GetNationalSignificantNumber(pn)
	cc := strconv.Itoa(int(pn.GetCountryCode()))
	var out []*phonenumbers.PhoneNumber
	add := func(national string) {
		if v, err := phonenumbers.Parse("+"+cc+national, ""); err == nil {
			out = append(out, v)
		}
	}
	add(nsn)
	for d := '0'; d <= '9'; d++ {
		add(nsn[:len(nsn)-1] + string(d))
		add(nsn + string(d))
	}
	add(nsn[:len(nsn)-1])
	return out
}

// TestClassifyAgreesWithLibphonenumber holds classify to the library's own answers for
// every region's (and non-geographic entity's) example number of every type, and the
// numbers around each.
func TestClassifyAgreesWithLibphonenumber(t *testing.T) {
	compared, valid := 0, 0
	for _, ex := range exampleNumbers(t) {
		for _, pn := range variants(ex) {
			compared++
			if assertClassifiedAsLibrary(t, pn) != phonenumbers.UNKNOWN {
				valid++
			}
		}
	}
	// Both sides of the edge must have been exercised, or the comparison says little.
	if valid < compared/4 || valid > compared*3/4 {
		t.Fatalf("%d of %d compared numbers valid: the variants do not straddle the patterns", valid, compared)
	}
	t.Logf("%d numbers compared, %d valid", compared, valid)
}

// exampleNumbers are the library's example number of every type for every region and
// non-geographic entity.
func exampleNumbers(t *testing.T) []*phonenumbers.PhoneNumber {
	t.Helper()
	var examples []*phonenumbers.PhoneNumber
	for region := range phonenumbers.GetSupportedRegions() {
		for _, typ := range numberTypes {
			if pn := phonenumbers.GetExampleNumberForType(region, typ); pn != nil {
				examples = append(examples, pn)
			}
		}
	}
	for cc := range phonenumbers.GetSupportedGlobalNetworkCallingCodes() {
		if pn := phonenumbers.GetExampleNumberForNonGeoEntity(cc); pn != nil {
			examples = append(examples, pn)
		}
	}
	if len(examples) < 1000 {
		t.Fatalf("only %d example numbers: the metadata did not load", len(examples))
	}
	return examples
}

func assertClassifiedAsLibrary(t *testing.T, pn *phonenumbers.PhoneNumber) phonenumbers.PhoneNumberType {
	t.Helper()
	region, typ := classify(pn)
	wantRegion, wantType := phonenumbers.GetRegionCodeForNumber(pn), phonenumbers.GetNumberType(pn)
	if typ != wantType || (wantType != phonenumbers.UNKNOWN && region != wantRegion) {
		t.Fatalf("%s: classify = %s %v, libphonenumber = %s %v", phonenumbers.Format(pn, phonenumbers.E164),
			region, typ, wantRegion, wantType)
	}
	return typ
}

func FuzzClassify(f *testing.F) {
	for _, s := range []string{"+447400123456", "+14155552671", "+79123456789", "+80012345678", "+390612345678", "+1684"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		pn, err := phonenumbers.Parse(s, "")
		if err != nil {
			return
		}
		assertClassifiedAsLibrary(t, pn)
	})
}

func BenchmarkClassify(b *testing.B) {
	for _, s := range []string{"+447400123456", "+14155552671", "+33612345678"} {
		pn, err := phonenumbers.Parse(s, "")
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("cc=%d", pn.GetCountryCode()), func(b *testing.B) {
			b.Run("classify", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					classify(pn)
				}
			})
			b.Run("libphonenumber", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					phonenumbers.GetNumberType(pn)
					phonenumbers.GetRegionCodeForNumber(pn)
				}
			})
		})
	}
}
