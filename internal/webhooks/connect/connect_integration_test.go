package connect_test

import (
	"encoding/json"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/ivr-bridge/ivr-bridge/internal/app/apptest"
	"github.com/ivr-bridge/ivr-bridge/internal/webhooks/connect"
)

const connectKey = "connect-integration-key"

// contactEvent is testdata/start.json (the AWS documentation's event shape) for another
// contact, caller and parameters.
func contactEvent(t *testing.T, contactID, caller string, params map[string]string) []byte {
	t.Helper()
	raw, err := os.ReadFile("testdata/start.json")
	if err != nil {
		t.Fatal(err)
	}
	var ev map[string]any
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	details := ev["Details"].(map[string]any)
	cd := details["ContactData"].(map[string]any)
	cd["ContactId"], cd["InitialContactId"] = contactID, contactID
	cd["CustomerEndpoint"] = map[string]any{"Address": caller, "Type": "TELEPHONE_NUMBER"}
	details["Parameters"] = params
	out, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// invoke posts an event as the forwarding Lambda does and returns the flat answer.
func invoke(t *testing.T, s *apptest.Stack, body []byte, key string) (int, map[string]string) {
	t.Helper()
	r := s.Do(http.MethodPost, connect.Path, body, "X-Api-Key", key, "Authorization", "")
	var m map[string]string
	if r.Status == http.StatusOK {
		if err := json.Unmarshal(r.Body, &m); err != nil {
			t.Fatalf("answer is not a flat map of strings: %v: %s", err, r.Body)
		}
	}
	return r.Status, m
}

func challengeID(t *testing.T, s *apptest.Stack, ref string) string {
	t.Helper()
	r := s.Do(http.MethodGet, "/v1/sessions/"+ref, nil)
	id, _ := r.JSON(t)["challengeId"].(string)
	if id == "" {
		t.Fatalf("no challengeId: %s", r.Body)
	}
	return id
}

// A whole call through the real wiring: start (delivered twice), a wrong code, the right
// code, the status.
func TestConnectCallEndToEnd(t *testing.T) {
	s := apptest.New(t, map[string]string{"CONNECT_API_KEY": connectKey})
	ref := apptest.RandomID() + "-1f28-4e26-b97b"
	start := contactEvent(t, ref, "+447400123456", map[string]string{"action": "start", "provider": "authsignal"})

	if status, _ := invoke(t, s, start, ""); status != http.StatusUnauthorized {
		t.Fatalf("no key: %d", status)
	}
	if status, _ := invoke(t, s, start, "wrong"); status != http.StatusUnauthorized {
		t.Fatalf("wrong key: %d", status)
	}
	for i := range 2 {
		status, m := invoke(t, s, start, connectKey)
		if status != 200 || m["step"] != "enter_code" || m["status"] != "sent" || m["referenceId"] != ref || m["provider"] != "authsignal" {
			t.Fatalf("start %d: %d %v", i, status, m)
		}
	}
	if n := s.Authsignal.Sends(); n != 1 {
		t.Fatalf("%d codes sent for one start delivered twice", n)
	}

	right := s.Authsignal.CodeFor(challengeID(t, s, ref))
	wrong := "000000"
	if right == wrong {
		wrong = "999999"
	}
	code := func(digits string) map[string]string {
		status, m := invoke(t, s, contactEvent(t, ref, "+447400123456", map[string]string{"action": "code", "code": digits}), connectKey)
		if status != 200 {
			t.Fatalf("code: %d", status)
		}
		return m
	}
	if m := code(wrong); m["step"] != "retry" || m["status"] != "sent" || m["attempts"] != "1" {
		t.Fatalf("wrong code: %v", m)
	}
	if m := code(right); m["step"] != "verified" || m["status"] != "verified" {
		t.Fatalf("right code: %v", m)
	}
	status, m := invoke(t, s, contactEvent(t, ref, "+447400123456", map[string]string{"action": "status"}), connectKey)
	if status != 200 || m["step"] != "verified" {
		t.Fatalf("status: %d %v", status, m)
	}
	if got := s.Do(http.MethodGet, "/v1/sessions/"+ref, nil).JSON(t)["status"]; got != "verified" {
		t.Fatalf("session %v", got)
	}
}

// Caller problems are answers the flow branches on, through the real service.
func TestConnectCallerProblems(t *testing.T) {
	s := apptest.New(t, nil) // no CONNECT_API_KEY: open
	for caller, want := range map[string]string{
		"anonymous":     "phone_number_withheld",
		"+442079460000": "not_mobile",
		"+1234567890":   "invalid_phone_number",
	} {
		ev := contactEvent(t, apptest.RandomID(), caller, map[string]string{"action": "start", "provider": "authsignal"})
		status, m := invoke(t, s, ev, "")
		if status != 200 || m["step"] != "refused" || m["error"] != want || m["message"] == "" {
			t.Errorf("%s: %d %v, want refused %s", caller, status, m, want)
		}
	}
	if n := s.Authsignal.Sends(); n != 0 {
		t.Fatalf("%d sends for refused callers", n)
	}
}

// The whole Connect answer comes inside 5 s (DESIGN §7), also for a repeated delivery of a
// code while the provider stalls: the first check times out at PROVIDER_TIMEOUT (3 s here),
// and the repeat, which waited for it, has no time left for a check of its own.
func TestConnectRepeatedCodeWhileTheProviderStalls(t *testing.T) {
	s := apptest.New(t, map[string]string{"PROVIDER_TIMEOUT": "3s"})
	ref := apptest.RandomID()
	status, m := invoke(t, s, contactEvent(t, ref, "+447400123456", map[string]string{"action": "start", "provider": "authsignal"}), "")
	if status != 200 || m["step"] != "enter_code" {
		t.Fatalf("start: %d %v", status, m)
	}
	s.Authsignal.SetDelay(time.Minute) // every check stalls past the provider deadline
	codeEvent := contactEvent(t, ref, "+447400123456", map[string]string{"action": "code", "code": "123456"})
	type answer struct {
		status int
		fields map[string]string
		took   time.Duration
	}
	deliver := func(out chan<- answer) {
		began := time.Now()
		status, m := invoke(t, s, codeEvent, "")
		out <- answer{status, m, time.Since(began)}
	}
	first, again := make(chan answer, 1), make(chan answer, 1)
	go deliver(first)
	time.Sleep(200 * time.Millisecond) // the first delivery's check is under way
	go deliver(again)
	for name, ch := range map[string]chan answer{"first": first, "repeat": again} {
		a := <-ch
		if a.status != 200 || a.fields["step"] != "error" || a.fields["error"] != "provider_timeout" {
			t.Errorf("%s: %d %v", name, a.status, a.fields)
		}
		if a.took >= 5*time.Second {
			t.Errorf("%s answered after %v, past DESIGN §7's 5 s", name, a.took)
		}
	}
}
