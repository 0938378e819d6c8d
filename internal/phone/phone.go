// Package phone turns what IVR platforms send as the caller's number into E.164, and says
// why when it cannot: a withheld caller, a number that is not valid, a country code that is
// not ISO 3166. It also masks numbers, codes and e-mail addresses for logs and events. It
// knows nothing of HTTP or providers.
package phone

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/biter777/countries"
	"github.com/nyaruka/phonenumbers"
)

var (
	// ErrWithheld: the caller hid the number (or the platform did not get one).
	ErrWithheld = errors.New("phone: number withheld")
	// ErrInvalidNumber: the input is not a number, or not a valid one for its region.
	ErrInvalidNumber = errors.New("phone: invalid number")
	// ErrInvalidCountry: the country is neither an ISO 3166 alpha-2 nor an alpha-3 code.
	ErrInvalidCountry = errors.New("phone: invalid country")
)

// Type is what kind of line a number is, as libphonenumber's metadata says.
type Type string

const (
	TypeMobile         Type = "mobile"
	TypeFixedLine      Type = "fixed_line"
	TypeFixedOrMobile  Type = "fixed_line_or_mobile"
	TypeTollFree       Type = "toll_free"
	TypePremiumRate    Type = "premium_rate"
	TypeSharedCost     Type = "shared_cost"
	TypeVoIP           Type = "voip"
	TypePersonalNumber Type = "personal_number"
	TypePager          Type = "pager"
	TypeUAN            Type = "uan"
	TypeVoicemail      Type = "voicemail"
	TypeUnknown        Type = "unknown"
)

var typeNames = map[phonenumbers.PhoneNumberType]Type{
	phonenumbers.MOBILE:               TypeMobile,
	phonenumbers.FIXED_LINE:           TypeFixedLine,
	phonenumbers.FIXED_LINE_OR_MOBILE: TypeFixedOrMobile,
	phonenumbers.TOLL_FREE:            TypeTollFree,
	phonenumbers.PREMIUM_RATE:         TypePremiumRate,
	phonenumbers.SHARED_COST:          TypeSharedCost,
	phonenumbers.VOIP:                 TypeVoIP,
	phonenumbers.PERSONAL_NUMBER:      TypePersonalNumber,
	phonenumbers.PAGER:                TypePager,
	phonenumbers.UAN:                  TypeUAN,
	phonenumbers.VOICEMAIL:            TypeVoicemail,
}

// Number is a valid caller number.
type Number struct {
	E164   string // +14155552671
	Region string // ISO 3166 alpha-2 of the number itself (not of the request), e.g. "US"
	Type   Type
}

// CanReceiveSMS reports whether texts (and WhatsApp) can reach the number. Only mobile
// numbers, and numbering plans that do not tell mobile from fixed (US, CA), qualify: a
// landline would swallow the message and the caller would wait for nothing.
func (n Number) CanReceiveSMS() bool {
	return n.Type == TypeMobile || n.Type == TypeFixedOrMobile
}

// Region turns an ISO 3166 alpha-2 or alpha-3 code, in any case, into alpha-2. The empty
// string is no country and is returned as is.
//
// The error names what was refused only when it is as short as a code ("UK"): a caller may
// have put anything in the field, a phone number included, and the error is logged. A
// longer value is described by its length.
func Region(country string) (string, error) {
	c := strings.ToUpper(strings.TrimSpace(country))
	if c == "" {
		return "", nil
	}
	if len(c) != 2 && len(c) != 3 {
		return "", fmt.Errorf("%w: %d characters, not an alpha-2 or alpha-3 code", ErrInvalidCountry, utf8.RuneCountInString(c))
	}
	// countries.ByName also takes names and exceptional codes ("UK"); only exact ISO codes
	// are part of the contract, so the answer must round-trip.
	code := countries.ByName(c)
	if !code.IsValid() || (code.Alpha2() != c && code.Alpha3() != c) {
		return "", fmt.Errorf("%w: %q is not an ISO 3166 alpha-2 or alpha-3 code", ErrInvalidCountry, c)
	}
	return code.Alpha2(), nil
}

// withheldNames are what platforms put in the caller field when the caller hid the number.
var withheldNames = map[string]bool{
	"": true, "anonymous": true, "restricted": true, "unknown": true, "private": true,
	"unavailable": true, "withheld": true, "blocked": true,
}

// twilioWithheld are the numbers Twilio puts in From for a hidden caller: the keypad
// spellings of ANONYMOUS, RESTRICTED, BLOCKED and UNKNOWN.
var twilioWithheld = map[string]bool{
	"+266696687": true, "+7378742833": true, "+2562533": true, "+8656696": true,
}

// Parse normalizes a caller number given in any of the forms of DESIGN §5: E.164, national
// format with country (alpha-2 or alpha-3), international digits without "+", tel: and
// sip: URIs. country may be empty when the number is international.
func Parse(raw, country string) (Number, error) {
	region, err := Region(country)
	if err != nil {
		return Number{}, err
	}
	s := uriUser(strings.TrimSpace(raw))
	if withheldNames[strings.ToLower(s)] {
		return Number{}, ErrWithheld
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r > 0x7e || r < 0x20 }) || len(s) > 64 {
		return Number{}, ErrInvalidNumber
	}
	digits := digitsOf(s)
	if strings.HasPrefix(s, "+") && twilioWithheld["+"+digits] {
		return Number{}, ErrWithheld
	}
	if digits == "" {
		return Number{}, ErrInvalidNumber
	}
	if strings.HasPrefix(s, "+") {
		return parseValid(s, region)
	}
	if region == "" && strings.HasPrefix(digits, "00") {
		return parseValid("+"+digits[2:], "") // the international prefix most of the world dials
	}
	// Without "+", a national number for the region is the likelier reading; when that is
	// not valid (or there is no region) it may be international digits, as Vonage sends.
	if region != "" {
		if n, err := parseValid(s, region); err == nil {
			return n, nil
		}
	}
	return parseValid("+"+digits, "")
}

func parseValid(s, region string) (Number, error) {
	pn, ok := parseE164(s)
	if !ok {
		var err error
		if pn, err = phonenumbers.Parse(s, region); err != nil {
			return Number{}, ErrInvalidNumber
		}
	}
	// A number whose type libphonenumber cannot tell is exactly one IsValidNumber refuses,
	// so the type alone decides validity; classify finds it with the region in one pass.
	home, pt := classify(pn)
	if pt == phonenumbers.UNKNOWN {
		return Number{}, ErrInvalidNumber
	}
	t, ok := typeNames[pt]
	if !ok {
		t = TypeUnknown
	}
	return Number{
		E164:   phonenumbers.Format(pn, phonenumbers.E164),
		Region: home,
		Type:   t,
	}, nil
}

// uriUser takes the number out of a tel: or sip: URI ("<sip:+1415…@host;user=phone>",
// "tel:+1-415-555-2671;phone-context=…"); anything else is returned unchanged.
func uriUser(s string) string {
	if i := strings.IndexByte(s, '<'); i >= 0 {
		if j := strings.IndexByte(s[i:], '>'); j > 0 {
			s = s[i+1 : i+j]
		}
	}
	lower := strings.ToLower(s)
	for _, scheme := range []string{"tel:", "sip:", "sips:"} {
		if strings.HasPrefix(lower, scheme) {
			s = s[len(scheme):]
			if i := strings.IndexByte(s, '@'); i >= 0 {
				s = s[:i]
			}
			if i := strings.IndexByte(s, ';'); i >= 0 {
				s = s[:i]
			}
			return strings.TrimSpace(s)
		}
	}
	return s
}

// digitsOf is the decimal digits in s, of any script, in ASCII: "+1 415 ５５５ ٢٦٧١" holds
// "14155552671".
func digitsOf(s string) string {
	var b strings.Builder
	for _, r := range s {
		if d, ok := digitValue(r); ok {
			b.WriteByte('0' + d)
		}
	}
	return b.String()
}

// digitValue is the value of a decimal digit of any script (Unicode's Nd). Unicode assigns
// those only in runs of ten, 0 to 9 in order, so a digit's value is its distance from the
// start of its range in unicode.Nd, modulo 10 (TestDigitValue holds the table to it).
func digitValue(r rune) (byte, bool) {
	if r < utf8.RuneSelf {
		return byte(r - '0'), r >= '0' && r <= '9'
	}
	for _, rg := range unicode.Nd.R16 {
		if r >= rune(rg.Lo) && r <= rune(rg.Hi) {
			return byte((r - rune(rg.Lo)) % 10), true
		}
	}
	for _, rg := range unicode.Nd.R32 {
		if r >= rune(rg.Lo) && r <= rune(rg.Hi) {
			return byte((r - rune(rg.Lo)) % 10), true
		}
	}
	return 0, false
}
