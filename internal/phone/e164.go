package phone

import (
	"strconv"

	"github.com/nyaruka/phonenumbers"
)

// parseE164 is phonenumbers.Parse for the form nearly every start arrives in, "+" and
// digits, without the library's general machinery: for such input its extension pattern
// (a long case-insensitive regexp tried at every position, the largest cost of a start's
// number handling), its viability pattern and its punctuation handling can find nothing.
// What is left is the library's parseHelper for a number with a plus sign: the calling code
// is the first 1-3 digits that name one (extractCountryCode), the rest is the national
// number. ok is false, and the caller asks the library, for anything else: other
// characters, a calling code the library does not know, a national number whose length it
// would refuse, one starting with 0 (Italian leading zeros), and one its region's national
// prefix for parsing matches (the library may strip that prefix, with a transform rule).
// TestParseE164AgreesWithLibphonenumber and FuzzParseE164 hold it to the library's answers.
func parseE164(s string) (pn *phonenumbers.PhoneNumber, ok bool) {
	const (
		maxCallingCode = 3     // MAX_LENGTH_COUNTRY_CODE
		minNSN, maxNSN = 2, 17 // MIN_LENGTH_FOR_NSN, MAX_LENGTH_FOR_NSN
	)
	if len(s) < 2 || s[0] != '+' || s[1] == '0' {
		return nil, false
	}
	digits := s[1:]
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return nil, false
		}
	}
	if len(digits) <= minNSN {
		return nil, false // the library's "too short after IDD"
	}
	for i := 1; i <= maxCallingCode && i <= len(digits); i++ {
		cc, _ := strconv.Atoi(digits[:i])
		regions := phonenumbers.GetRegionCodesForCountryCode(cc)
		if len(regions) == 0 {
			continue
		}
		national := digits[i:]
		if len(national) < minNSN || len(national) > maxNSN || national[0] == '0' {
			return nil, false
		}
		// The metadata the library strips a national prefix with: its calling code's main
		// region, or the non-geographic entity.
		p := patternsFor(cc, regions[0])
		if p == nil || (p.nationalPrefix != nil && p.nationalPrefix.MatchString(national)) {
			return nil, false
		}
		nn, err := strconv.ParseUint(national, 10, 64)
		if err != nil {
			return nil, false
		}
		c32 := int32(cc)
		return &phonenumbers.PhoneNumber{CountryCode: &c32, NationalNumber: &nn}, true
	}
	return nil, false
}
