// Package authsignal receives Authsignal's webhooks (the Call Connect outcome of a call) and
// settles the session they name.
package authsignal

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Tolerance is how far the signed timestamp may be from now: Authsignal's SDKs use 5 minutes
// to stop replays of captured deliveries.
const Tolerance = 5 * time.Minute

// Errors of signature checking; all are answered 401 invalid_signature.
var (
	ErrNoSecret          = errors.New("AUTHSIGNAL_WEBHOOK_SECRET is not configured")
	ErrSignatureFormat   = errors.New("X-Signature-V2 is not of the form t=<unix>,v2=<signature>")
	ErrSignatureStale    = errors.New("the signed timestamp is outside the 5-minute window")
	ErrSignatureMismatch = errors.New("no v2 signature matches")
)

// Sign returns the X-Signature-V2 header value for body at t, as Authsignal makes it:
// v2 is the unpadded base64 of HMAC-SHA256(secret, "<t>.<raw body>").
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v2=" + mac(secret, ts, body)
}

func mac(secret, ts string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return base64.RawStdEncoding.EncodeToString(m.Sum(nil))
}

// Verify checks header against body. Several v2 values may be present while Authsignal
// rotates secrets; one match is enough. Signatures are compared in constant time.
func Verify(secret, header string, body []byte, now time.Time) error {
	if secret == "" {
		return ErrNoSecret
	}
	ts, sigs := "", []string{}
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			ts = v
		case "v2":
			sigs = append(sigs, v)
		}
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrSignatureFormat
	}
	if d := now.Sub(time.Unix(unix, 0)); d > Tolerance || d < -Tolerance {
		return ErrSignatureStale
	}
	want := []byte(mac(secret, ts, body))
	match := 0
	for _, s := range sigs {
		// Tolerate a padded signature: Authsignal strips '=' but a relay might not.
		if hmac.Equal([]byte(strings.TrimRight(s, "=")), want) {
			match = 1
		}
	}
	if match == 0 {
		return ErrSignatureMismatch
	}
	return nil
}
