package authsignal

import (
	"errors"
	"strconv"
	"testing"
	"time"
)

const testSecret = "whsec_test_secret"

func TestSignVerifyRoundTrip(t *testing.T) {
	now := time.Unix(1_790_000_000, 0)
	body := []byte(`{"id":"evt_1","type":"call.finished"}`)
	h := Sign(testSecret, now, body)
	if err := Verify(testSecret, h, body, now.Add(30*time.Second)); err != nil {
		t.Fatalf("Verify(Sign()) = %v", err)
	}
}

// TestVerifyKnownVector pins the algorithm to Authsignal's definition: v2 is the unpadded
// base64 of HMAC-SHA256(secret, "<t>.<body>"), as computed independently by the openssl command below.
func TestVerifyKnownVector(t *testing.T) {
	// printf '%s' '1700000000.{"a":1}' | openssl dgst -sha256 -hmac secret -binary | base64 | tr -d =
	const v2 = "SfJOU3QHdD+koCQrtjuUuaR+6Zy74HHM2KIlUK5BFoY"
	got := Sign("secret", time.Unix(1_700_000_000, 0), []byte(`{"a":1}`))
	if got != "t=1700000000,v2="+v2 {
		t.Fatalf("Sign = %s", got)
	}
}

func TestVerifyRefusals(t *testing.T) {
	now := time.Unix(1_790_000_000, 0)
	body := []byte(`{"id":"evt_1"}`)
	good := Sign(testSecret, now, body)
	ts := strconv.FormatInt(now.Unix(), 10)
	cases := []struct {
		name, secret, header string
		body                 []byte
		at                   time.Time
		want                 error
	}{
		{"no secret configured", "", good, body, now, ErrNoSecret},
		{"no header", testSecret, "", body, now, ErrSignatureFormat},
		{"no timestamp", testSecret, "v2=abc", body, now, ErrSignatureFormat},
		{"no v2", testSecret, "t=" + ts, body, now, ErrSignatureFormat},
		{"timestamp not a number", testSecret, "t=yesterday,v2=abc", body, now, ErrSignatureFormat},
		{"wrong secret", "other_secret", good, body, now, ErrSignatureMismatch},
		{"body changed", testSecret, good, []byte(`{"id":"evt_2"}`), now, ErrSignatureMismatch},
		{"stale by six minutes", testSecret, good, body, now.Add(6 * time.Minute), ErrSignatureStale},
		{"from the future", testSecret, good, body, now.Add(-6 * time.Minute), ErrSignatureStale},
		{"v1 only", testSecret, "t=" + ts + ",v1=" + good[len("t="+ts+",v2="):], body, now, ErrSignatureFormat},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := Verify(tc.secret, tc.header, tc.body, tc.at); !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestVerifyAcceptsAnyOfSeveralSignatures(t *testing.T) {
	now := time.Unix(1_790_000_000, 0)
	body := []byte(`{"id":"evt_1"}`)
	good := Sign(testSecret, now, body)
	ts := strconv.FormatInt(now.Unix(), 10)
	sig := good[len("t="+ts+",v2="):]
	for _, h := range []string{
		"t=" + ts + ",v2=bm9wZQ,v2=" + sig, // rotating secrets: the old one first
		"t=" + ts + ", v2=" + sig + "=",    // padded, with a space
	} {
		if err := Verify(testSecret, h, body, now); err != nil {
			t.Errorf("Verify(%q) = %v", h, err)
		}
	}
}

// FuzzVerify: any header and body give an answer, never a panic, and a body signed with the
// secret always verifies while a changed body never does.
func FuzzVerify(f *testing.F) {
	now := time.Unix(1_790_000_000, 0)
	f.Add("t=1790000000,v2=abc", []byte(`{}`))
	f.Add("t=,v2=", []byte(``))
	f.Add(",,,=,t=1,v2=x,v2=y", []byte(`{"id":"e"}`))
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		_ = Verify(testSecret, header, body, now)
		good := Sign(testSecret, now, body)
		if err := Verify(testSecret, good, body, now); err != nil {
			t.Fatalf("own signature refused: %v", err)
		}
		if err := Verify(testSecret, good, append(append([]byte{}, body...), 'x'), now); err == nil {
			t.Fatal("a changed body verified")
		}
	})
}
