package vonage_test

import (
	"testing"
	"time"

	"github.com/ivr-bridge/ivr-bridge/internal/webhooks/vonage"
)

// TestVerifyIndependentVector checks VerifyToken against a token made outside Go, with the
// claims Vonage's signed webhooks carry (iat, jti, iss "Vonage", payload_hash, api_key,
// application_id): base64url header and claims, HMAC-SHA256 with the secret, built by hand
// in Python's hmac/hashlib.
func TestVerifyIndependentVector(t *testing.T) {
	const (
		secret = "vonage-vector-secret"
		token  = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." +
			"eyJpYXQiOjE3OTAwMDAwMDAsImp0aSI6ImM1YmE4ZjI0LTFhMTQtNGMxMC1iZmRmLTNmYmU4Y2U1MTFiNSIsImlzcyI6IlZvbmFnZSIsInBheWxvYWRfaGFzaCI6ImZiNjJkYmI0YzU3MDc2YjBlYzk4OTg0ODgzZjAwNWNmNDk4ZWY0Njk5NzFlZmEzMmU2MzFiNjdjZmYzMTNkYjQiLCJhcGlfa2V5IjoiYTFiMmMzZDQiLCJhcHBsaWNhdGlvbl9pZCI6ImFhYWFhYWFhLTAwMDAtMDAwMC0wMDAwLTAwMDAwMDAwMDAwMCJ9." +
			"KmTHDkSqncmkv5DesCQr9AIDsbTaIbbogFo6TB5FwYk"
		body = `{"from":"447700900001","to":"447700900000","uuid":"aaaaaaaa-bbbb-cccc-dddd-0123456789ab","conversation_uuid":"CON-aaaaaaaa-bbbb-cccc-dddd-0123456789ab"}`
	)
	at := time.Unix(1_790_000_000, 0).Add(30 * time.Second)
	if err := vonage.VerifyToken(secret, token, []byte(body), at); err != nil {
		t.Fatalf("the vector does not verify: %v", err)
	}
	if vonage.VerifyToken(secret, token, []byte(body+" "), at) == nil {
		t.Fatal("the vector verified for another body")
	}
	if vonage.VerifyToken("other-secret", token, []byte(body), at) == nil {
		t.Fatal("the vector verified with another secret")
	}
	if vonage.VerifyToken(secret, token, []byte(body), at.Add(10*time.Minute)) == nil {
		t.Fatal("a token 10 minutes old verified")
	}
}

// TestVerifyVonageSDKVector checks VerifyToken against the token and signature secret that
// Vonage's own Python SDK tests verify_signature with (vonage-python-sdk,
// jwt/tests/test_verify_jwt.py): HS256, iat 1697634680, no payload_hash (so, no body).
func TestVerifyVonageSDKVector(t *testing.T) {
	const (
		token = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9." +
			"eyJpc3MiOiJPbmxpbmUgSldUIEJ1aWxkZXIiLCJpYXQiOjE2OTc2MzQ2ODAsImV4cCI6MzMyNTQ1NDA4MjgsImF1ZCI6IiIsInN1YiI6IiJ9." +
			"88vJc3I2HhuqEDixHXVhc9R30tA6U_HQHZTC29y6CGM"
		validSecret   = "qwertyuiopasdfghjklzxcvbnm123456"
		invalidSecret = "asdf"
	)
	at := time.Unix(1697634680, 0).Add(time.Minute)
	if err := vonage.VerifyToken(validSecret, token, nil, at); err != nil {
		t.Fatalf("the SDK's valid vector does not verify: %v", err)
	}
	if vonage.VerifyToken(invalidSecret, token, nil, at) == nil {
		t.Fatal("the SDK's vector verified with its invalid secret")
	}
	if vonage.VerifyToken(validSecret, "asdf", nil, at) == nil {
		t.Fatal("a malformed token verified")
	}
	if vonage.VerifyToken(validSecret, token, []byte(`{"uuid":"x"}`), at) == nil {
		t.Fatal("a token without payload_hash verified for a body")
	}
}
