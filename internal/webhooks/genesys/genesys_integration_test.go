package genesys_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/ivr-bridge/ivr-bridge/internal/app/apptest"
	"github.com/ivr-bridge/ivr-bridge/internal/webhooks/genesys"
)

const (
	genesysUser     = "genesys-integration"
	genesysPassword = "integration-password"
)

func basic(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// action posts a data action request as Genesys does and returns the flat answer.
func action(t *testing.T, s *apptest.Stack, req genesys.Request, auth string) (int, map[string]string) {
	t.Helper()
	r := s.Do(http.MethodPost, genesys.Path, req, "Authorization", auth)
	var m map[string]string
	if r.Status == http.StatusOK {
		if err := json.Unmarshal(r.Body, &m); err != nil {
			t.Fatalf("answer is not a flat map of strings: %v: %s", err, r.Body)
		}
	}
	return r.Status, m
}

// A whole call through the real wiring: start (run twice), a wrong code, the right code,
// the status. The ANI comes as Architect's Call.Ani, with spaces.
func TestGenesysCallEndToEnd(t *testing.T) {
	s := apptest.New(t, map[string]string{"GENESYS_USERNAME": genesysUser, "GENESYS_PASSWORD": genesysPassword})
	auth := basic(genesysUser, genesysPassword)
	ref := "b2c7a1f4-" + apptest.RandomID()
	start := genesys.Request{ConversationID: ref, ANI: "tel:+44 7400 123456", Action: "start", Provider: "authsignal"}

	for name, a := range map[string]string{
		"no credentials": "", "wrong password": basic(genesysUser, "nope"), "wrong user": basic("nobody", genesysPassword),
		"API key instead": "Bearer " + apptest.APIKey,
	} {
		if status, _ := action(t, s, start, a); status != http.StatusUnauthorized {
			t.Fatalf("%s: %d", name, status)
		}
	}
	for i := range 2 {
		status, m := action(t, s, start, auth)
		if status != 200 || m["step"] != "enter_code" || m["status"] != "sent" || m["referenceId"] != ref || m["provider"] != "authsignal" {
			t.Fatalf("start %d: %d %v", i, status, m)
		}
	}
	if n := s.Authsignal.Sends(); n != 1 {
		t.Fatalf("%d codes sent for one start run twice", n)
	}

	r := s.Do(http.MethodGet, "/v1/sessions/"+ref, nil)
	id, _ := r.JSON(t)["challengeId"].(string)
	right := s.Authsignal.CodeFor(id)
	if right == "" {
		t.Fatalf("no code for the session: %s", r.Body)
	}
	wrong := "000000"
	if right == wrong {
		wrong = "999999"
	}
	// Genesys retries a data action that timed out: the same digits delivered twice are one
	// check at the provider and one attempt, answered the same both times.
	for i := range 2 {
		if status, m := action(t, s, genesys.Request{ConversationID: ref, Action: "code", Code: wrong}, auth); status != 200 ||
			m["step"] != "retry" || m["attempts"] != "1" || m["attemptsLeft"] != "4" {
			t.Fatalf("wrong code, delivery %d: %d %v", i+1, status, m)
		}
	}
	if n := s.Authsignal.Attempts(id); n != 1 {
		t.Fatalf("the provider checked %d codes for one code delivered twice", n)
	}
	if status, m := action(t, s, genesys.Request{ConversationID: ref, Action: "code", Code: right}, auth); status != 200 ||
		m["step"] != "verified" || m["status"] != "verified" {
		t.Fatalf("right code: %d %v", status, m)
	}
	if status, m := action(t, s, genesys.Request{ConversationID: ref, Action: "status"}, auth); status != 200 || m["step"] != "verified" {
		t.Fatalf("status: %d %v", status, m)
	}
}

// Caller problems are answers (the data action's Success path), through the real service.
func TestGenesysCallerProblems(t *testing.T) {
	s := apptest.New(t, nil) // no Genesys credentials: open
	for ani, want := range map[string]string{
		"tel:anonymous":     "phone_number_withheld",
		"":                  "phone_number_withheld",
		"tel:+442079460000": "not_mobile",
		"tel:+1234567890":   "invalid_phone_number",
	} {
		req := genesys.Request{ConversationID: apptest.RandomID(), ANI: ani, Action: "start", Provider: "authsignal"}
		status, m := action(t, s, req, "")
		if status != 200 || m["step"] != "refused" || m["error"] != want || m["message"] == "" {
			t.Errorf("%q: %d %v, want refused %s", ani, status, m, want)
		}
	}
	if n := s.Authsignal.Sends(); n != 0 {
		t.Fatalf("%d sends for refused callers", n)
	}
}
