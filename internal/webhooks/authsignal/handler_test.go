package authsignal_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/ivr-bridge/ivr-bridge/internal/app/apptest"
	"github.com/ivr-bridge/ivr-bridge/internal/webhooks/authsignal"
)

func startCall(t testing.TB, s *apptest.Stack) string {
	t.Helper()
	ref := "CA" + apptest.RandomID()
	r := s.Do(http.MethodPost, "/v1/sessions", map[string]any{"referenceId": ref, "phoneNumber": "+447400123456"})
	if r.Status != http.StatusCreated {
		t.Fatalf("start: %d %s", r.Status, r.Body)
	}
	return ref
}

func event(id, typ, ref, state string) []byte {
	data := map[string]any{"referenceId": ref, "state": state}
	b, _ := json.Marshal(map[string]any{"version": 1, "id": id, "source": "https://authsignal.com",
		"time": time.Now().UTC().Format(time.RFC3339), "tenantId": "tenant-1", "type": typ, "data": data})
	return b
}

func deliver(s *apptest.Stack, body []byte, signature string) *apptest.Response {
	return s.Do(http.MethodPost, authsignal.Path, body, "X-Signature-V2", signature, "Authorization", "")
}

func signed(s *apptest.Stack, body []byte) string {
	return authsignal.Sign(apptest.WebhookSecret, s.Clock.Now(), body)
}

func status(t *testing.T, s *apptest.Stack, ref string) string {
	t.Helper()
	return s.Do(http.MethodGet, "/v1/sessions/"+ref, nil).JSON(t)["status"].(string)
}

func TestOutcomeSettlesTheSession(t *testing.T) {
	s := apptest.New(t, nil)
	for _, tc := range []struct{ state, want string }{
		{authsignal.StateSucceeded, "verified"},
		{authsignal.StateFailed, "failed"},
	} {
		ref := startCall(t, s)
		body := event("evt_"+apptest.RandomID(), "call.finished", ref, tc.state)
		r := deliver(s, body, signed(s, body))
		if m := r.JSON(t); r.Status != 200 || m["applied"] != true {
			t.Fatalf("%s: %d %s", tc.state, r.Status, r.Body)
		}
		if got := status(t, s, ref); got != tc.want {
			t.Fatalf("%s: status %s, want %s", tc.state, got, tc.want)
		}
	}
}

func TestRepeatedAndLateEventsChangeNothing(t *testing.T) {
	s := apptest.New(t, nil)
	ref := startCall(t, s)
	ok := event("evt_"+apptest.RandomID(), "call.finished", ref, authsignal.StateSucceeded)
	if r := deliver(s, ok, signed(s, ok)); r.JSON(t)["applied"] != true {
		t.Fatalf("first delivery: %s", r.Body)
	}
	// Authsignal retries a delivery it thinks failed: same id, applied once.
	if r := deliver(s, ok, signed(s, ok)); r.Status != 200 || r.JSON(t)["applied"] != false {
		t.Fatalf("repeat: %d %s", r.Status, r.Body)
	}
	// A later, contrary event cannot move a final session.
	fail := event("evt_"+apptest.RandomID(), "call.finished", ref, authsignal.StateFailed)
	if r := deliver(s, fail, signed(s, fail)); r.Status != 200 || r.JSON(t)["applied"] != false {
		t.Fatalf("late event: %d %s", r.Status, r.Body)
	}
	if got := status(t, s, ref); got != "verified" {
		t.Fatalf("status %s, want verified", got)
	}
}

func TestUnknownEventsAndReferencesAreAcceptedAndIgnored(t *testing.T) {
	s := apptest.New(t, nil)
	ref := startCall(t, s)
	for name, body := range map[string][]byte{
		"other type":        event("evt_a", "user.enrolled", "", ""),
		"unknown reference": event("evt_b", "call.finished", "no-such-call", authsignal.StateSucceeded),
		"other state":       event("evt_c", "call.updated", ref, "CHALLENGE_STARTED"),
	} {
		r := deliver(s, body, signed(s, body))
		if r.Status != 200 || r.JSON(t)["applied"] != false {
			t.Fatalf("%s: %d %s", name, r.Status, r.Body)
		}
	}
	if got := status(t, s, ref); got != "sent" {
		t.Fatalf("status %s, want sent", got)
	}
}

func TestBadSignaturesAreRefused(t *testing.T) {
	s := apptest.New(t, nil)
	ref := startCall(t, s)
	body := event("evt_"+apptest.RandomID(), "call.finished", ref, authsignal.StateSucceeded)
	for name, sig := range map[string]string{
		"none":         "",
		"wrong secret": authsignal.Sign("not-the-secret", s.Clock.Now(), body),
		"stale":        authsignal.Sign(apptest.WebhookSecret, s.Clock.Now().Add(-10*time.Minute), body),
		"other body":   authsignal.Sign(apptest.WebhookSecret, s.Clock.Now(), []byte(`{}`)),
		"garbage":      "t=abc,v2=!!",
	} {
		r := deliver(s, body, sig)
		if r.Status != http.StatusUnauthorized || r.ErrorCode() != "invalid_signature" {
			t.Fatalf("%s: %d %s", name, r.Status, r.Body)
		}
	}
	if got := status(t, s, ref); got != "sent" {
		t.Fatalf("status %s after refused deliveries, want sent", got)
	}
}

func TestWithoutSecretEveryDeliveryIsRefused(t *testing.T) {
	s := apptest.New(t, map[string]string{"AUTHSIGNAL_WEBHOOK_SECRET": ""})
	ref := startCall(t, s)
	body := event("evt_1", "call.finished", ref, authsignal.StateSucceeded)
	if r := deliver(s, body, signed(s, body)); r.Status != http.StatusUnauthorized || r.ErrorCode() != "invalid_signature" {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
}

func TestSignedButMalformedBody(t *testing.T) {
	s := apptest.New(t, nil)
	for _, body := range []string{`not json`, `{"type":"x"}`, `[]`} {
		r := deliver(s, []byte(body), signed(s, []byte(body)))
		if r.Status != http.StatusBadRequest || r.ErrorCode() != "invalid_request" {
			t.Fatalf("%s: %d %s", body, r.Status, r.Body)
		}
	}
}
