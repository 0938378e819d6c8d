package vonage

import (
	"testing"
	"time"
)

// BenchmarkVerifyToken is the check on every signed Vonage webhook: an HS256 JWT, its
// issue time, and the SHA-256 of the body against its payload_hash.
func BenchmarkVerifyToken(b *testing.B) {
	const secret = "vonage-signature-secret-0123456789"
	body := []byte(`{"uuid":"aaaaaaaa-bbbb-cccc-dddd-0123456789ab","conversation_uuid":"CON-aaaaaaaa","from":"447700900000","to":"447700900001","dtmf":{"digits":"123456","timed_out":false}}`)
	now := time.Now()
	token, err := Sign(secret, body, now)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := VerifyToken(secret, token, body, now); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checks/s")
}
