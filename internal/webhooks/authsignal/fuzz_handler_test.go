package authsignal_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/ivr-bridge/ivr-bridge/internal/app/apptest"
	"github.com/ivr-bridge/ivr-bridge/internal/webhooks/authsignal"
)

// FuzzWebhookEnvelope: whatever a correctly signed delivery holds, the webhook answers 200
// (applied or ignored) or a DESIGN §7 error for the sender's mistake, never a 500 or a panic.
// The bodies are signed here so that fuzzing reaches the envelope parsing behind the check.
func FuzzWebhookEnvelope(f *testing.F) {
	s := apptest.New(f, nil)
	ref := startCall(f, s)
	f.Add(event("evt_1", "call.finished", ref, authsignal.StateSucceeded))
	f.Add(event("evt_2", "user.updated", "nobody", "SOMETHING"))
	f.Add([]byte(`{"version":1,"id":"evt_3","data":{"referenceId":1}}`))
	f.Add([]byte(`{"id":"evt_4","data":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := http.NewRequest(http.MethodPost, s.URL+authsignal.Path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Signature-V2", authsignal.Sign(apptest.WebhookSecret, s.Clock.Now(), body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		switch resp.StatusCode {
		case http.StatusOK:
			var a struct{ Received bool }
			if json.Unmarshal(raw, &a) != nil || !a.Received {
				t.Fatalf("200 without {received:true}: %s", raw)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			var e struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			if json.Unmarshal(raw, &e) != nil || e.Error.Code == "" || e.Error.Message == "" {
				t.Fatalf("%d is not a DESIGN §7 error: %s", resp.StatusCode, raw)
			}
		default:
			t.Fatalf("body %q: answered %d %s", body, resp.StatusCode, raw)
		}
	})
}
