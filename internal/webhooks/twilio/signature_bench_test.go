package twilio

import (
	"net/url"
	"testing"
)

// BenchmarkValidSignature is the check on every Twilio webhook: HMAC-SHA1 over the URL and
// the sorted form, tried against the URL's variants (with and without the port) when the
// first does not match.
func BenchmarkValidSignature(b *testing.B) {
	const token = "12345"
	const u = "https://bridge.example.com/webhooks/twilio/voice?referenceId=CA1234567890ABCDE"
	form := url.Values{
		"CallSid": {"CA1234567890ABCDE"}, "From": {"+14158675310"}, "To": {"+18005551212"},
		"AccountSid": {"ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"}, "CallStatus": {"ringing"}, "Direction": {"inbound"},
		"Digits": {"123456"}, "Caller": {"+14158675310"}, "FromCountry": {"US"}, "ApiVersion": {"2010-04-01"},
	}
	good := Sign(token, u, form)
	for _, c := range []struct {
		name, sig string
		want      bool
	}{{"valid", good, true}, {"mismatch", Sign("other", u, form), false}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if ValidSignature(token, c.sig, u, form) != c.want {
					b.Fatal("unexpected result")
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checks/s")
		})
	}
}
