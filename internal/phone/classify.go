package phone

import (
	"regexp"
	"slices"
	"sync"

	"github.com/nyaruka/phonenumbers"
)

// classify answers libphonenumber's GetRegionCodeForNumber and GetNumberType for a parsed
// number in one pass, over the library's own metadata (phonenumbers.MetadataCollection),
// with each pattern compiled once.
//
// Why not the two calls: for every pattern it tries, the library builds the string
// "^(?:" + pattern + ")$" (GB's run to hundreds of bytes) and looks it up in a locked cache,
// twice per number type; and for a country code shared by several regions (+1, +44, +7…)
// it finds the region by classifying the number, then GetNumberType finds the region again
// and classifies once more. Under load that was a third of the allocations of a start.
// The rules below are the library's (getRegionCodeForNumberFromRegionList,
// getNumberTypeHelper) line for line; TestClassifyAgreesWithLibphonenumber and
// FuzzClassify hold them to its answers.
func classify(pn *phonenumbers.PhoneNumber) (region string, t phonenumbers.PhoneNumberType) {
	cc := int(pn.GetCountryCode())
	regions := phonenumbers.GetRegionCodesForCountryCode(cc)
	if len(regions) == 0 {
		return "", phonenumbers.UNKNOWN
	}
	nsn := phonenumbers.GetNationalSignificantNumber(pn)
	if len(regions) == 1 {
		p := patternsFor(cc, regions[0])
		if p == nil {
			return regions[0], phonenumbers.UNKNOWN
		}
		return regions[0], p.numberType(nsn)
	}
	for _, r := range regions {
		p := patternsFor(cc, r)
		if p == nil {
			continue
		}
		if p.leadingDigits != nil {
			if p.leadingDigits.MatchString(nsn) {
				return r, p.numberType(nsn)
			}
		} else if t := p.numberType(nsn); t != phonenumbers.UNKNOWN {
			return r, t
		}
	}
	return "", phonenumbers.UNKNOWN
}

// descPattern is one number type of a region: its possible lengths and its pattern.
type descPattern struct {
	lengths []int32
	re      *regexp.Regexp
}

func compileDesc(d *phonenumbers.PhoneNumberDesc) descPattern {
	return descPattern{
		lengths: d.GetPossibleLength(),
		re:      regexp.MustCompile("^(?:" + d.GetNationalNumberPattern() + ")$"),
	}
}

// matches is the library's isNumberMatchingDesc: a possible length, then the pattern.
func (d descPattern) matches(nsn string) bool {
	if len(d.lengths) > 0 && !slices.Contains(d.lengths, int32(len(nsn))) {
		return false
	}
	return d.re.MatchString(nsn)
}

// regionPatterns is a region's metadata, compiled.
type regionPatterns struct {
	leadingDigits *regexp.Regexp // nil: the region has none, a full check decides
	// nationalPrefix is the region's national_prefix_for_parsing anchored at the start (nil:
	// none): parseE164 leaves every number it matches to the library, which may strip it.
	nationalPrefix *regexp.Regexp
	general, premiumRate, tollFree, sharedCost, voip, personalNumber, pager, uan, voicemail,
	fixedLine, mobile descPattern
	sameMobileAndFixedLine bool
}

// numberType is the library's getNumberTypeHelper, in its order.
func (p *regionPatterns) numberType(nsn string) phonenumbers.PhoneNumberType {
	if !p.general.matches(nsn) {
		return phonenumbers.UNKNOWN
	}
	for _, c := range []struct {
		d descPattern
		t phonenumbers.PhoneNumberType
	}{
		{p.premiumRate, phonenumbers.PREMIUM_RATE}, {p.tollFree, phonenumbers.TOLL_FREE},
		{p.sharedCost, phonenumbers.SHARED_COST}, {p.voip, phonenumbers.VOIP},
		{p.personalNumber, phonenumbers.PERSONAL_NUMBER}, {p.pager, phonenumbers.PAGER},
		{p.uan, phonenumbers.UAN}, {p.voicemail, phonenumbers.VOICEMAIL},
	} {
		if c.d.matches(nsn) {
			return c.t
		}
	}
	if p.fixedLine.matches(nsn) {
		if p.sameMobileAndFixedLine || p.mobile.matches(nsn) {
			return phonenumbers.FIXED_LINE_OR_MOBILE
		}
		return phonenumbers.FIXED_LINE
	}
	if !p.sameMobileAndFixedLine && p.mobile.matches(nsn) {
		return phonenumbers.MOBILE
	}
	return phonenumbers.UNKNOWN
}

// regionEntry is one region's metadata and, once first used, its compiled patterns:
// compiling all ≈250 regions up front would cost every process start and its idle memory.
type regionEntry struct {
	md       *phonenumbers.PhoneMetadata
	once     sync.Once
	patterns *regionPatterns
}

// regionEntries are the library's embedded metadata by region, and by calling code for the
// non-geographic entities ("001"), as its own container keys it.
var regionEntries = sync.OnceValue(func() (m struct {
	byRegion map[string]*regionEntry
	nonGeo   map[int]*regionEntry
}) {
	m.byRegion = map[string]*regionEntry{}
	m.nonGeo = map[int]*regionEntry{}
	coll, err := phonenumbers.MetadataCollection()
	if err != nil {
		return m // the library panics at init on the same error; unreachable
	}
	for _, md := range coll.GetMetadata() {
		if md.GetId() == nonGeoRegion {
			m.nonGeo[int(md.GetCountryCode())] = &regionEntry{md: md}
		} else {
			m.byRegion[md.GetId()] = &regionEntry{md: md}
		}
	}
	return m
})

const nonGeoRegion = "001"

// patternsFor is the compiled metadata of region (of calling code cc for "001"), nil when
// the library has none.
func patternsFor(cc int, region string) *regionPatterns {
	entries := regionEntries()
	e := entries.byRegion[region]
	if region == nonGeoRegion {
		e = entries.nonGeo[cc]
	}
	if e == nil {
		return nil
	}
	e.once.Do(func() { e.patterns = compileRegion(e.md) })
	return e.patterns
}

func compileRegion(md *phonenumbers.PhoneMetadata) *regionPatterns {
	p := &regionPatterns{
		general: compileDesc(md.GetGeneralDesc()), premiumRate: compileDesc(md.GetPremiumRate()),
		tollFree: compileDesc(md.GetTollFree()), sharedCost: compileDesc(md.GetSharedCost()),
		voip: compileDesc(md.GetVoip()), personalNumber: compileDesc(md.GetPersonalNumber()),
		pager: compileDesc(md.GetPager()), uan: compileDesc(md.GetUan()),
		voicemail: compileDesc(md.GetVoicemail()), fixedLine: compileDesc(md.GetFixedLine()),
		mobile: compileDesc(md.GetMobile()), sameMobileAndFixedLine: md.GetSameMobileAndFixedLinePattern(),
	}
	if ld := md.GetLeadingDigits(); ld != "" {
		p.leadingDigits = regexp.MustCompile("^(?:" + ld + ")")
	}
	if np := md.GetNationalPrefixForParsing(); np != "" {
		p.nationalPrefix = regexp.MustCompile("^(?:" + np + ")")
	}
	return p
}
