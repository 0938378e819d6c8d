package connect

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ivr-bridge/ivr-bridge/internal/callsession"
	"github.com/ivr-bridge/ivr-bridge/internal/httpapi"
	"github.com/ivr-bridge/ivr-bridge/internal/webhooks/callflow"
)

const (
	testKey    = "connect-test-key"
	contactID  = "4a573372-1f28-4e26-b97b-0f3c1e6d9a21"
	callerE164 = "+14155552671"
)

// bridge is the adapter behind the real HTTP edge (middleware, body limit, error handler).
type bridge struct {
	t    *testing.T
	fake *fakeService
	srv  http.Handler
	logs *syncBuffer
}

func newBridge(t *testing.T, apiKey string) *bridge {
	t.Helper()
	b := &bridge{t: t, fake: newFake(), logs: &syncBuffer{}}
	log := slog.New(slog.NewJSONHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := New(Config{APIKey: apiKey, Flow: callflow.Flow{Service: b.fake}, Logger: log})
	b.srv = httpapi.New(httpapi.Deps{Logger: log, Adapters: []httpapi.Adapter{h}}).Echo
	return b
}

type answer struct {
	status int
	fields map[string]string // the flat answer (200)
	code   string            // the DESIGN §7 error code (4xx)
	raw    string
}

// post sends body with key in X-Api-Key ("" for none).
func (b *bridge) post(body []byte, key string) answer {
	b.t.Helper()
	req := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set(HeaderAPIKey, key)
	}
	rec := httptest.NewRecorder()
	b.srv.ServeHTTP(rec, req)
	a := answer{status: rec.Code, raw: rec.Body.String()}
	if rec.Code == http.StatusOK {
		// Connect takes string values only: decoding into map[string]string proves it.
		if err := json.Unmarshal(rec.Body.Bytes(), &a.fields); err != nil {
			b.t.Fatalf("200 answer is not a flat map of strings: %v: %s", err, rec.Body)
		}
		return a
	}
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
		b.t.Fatalf("%d answer is not a DESIGN §7 error: %s", rec.Code, rec.Body)
	}
	a.code = e.Error.Code
	return a
}

// event reads a testdata event and applies edits to its decoded form.
func event(t *testing.T, file string, edits ...func(map[string]any)) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	if len(edits) == 0 {
		return raw
	}
	var ev map[string]any
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	for _, e := range edits {
		e(ev)
	}
	out, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func contactData(ev map[string]any) map[string]any {
	return ev["Details"].(map[string]any)["ContactData"].(map[string]any)
}

func param(k, v string) func(map[string]any) {
	return func(ev map[string]any) {
		ps := ev["Details"].(map[string]any)["Parameters"].(map[string]any)
		if v == "" {
			delete(ps, k)
			return
		}
		ps[k] = v
	}
}

func attribute(k, v string) func(map[string]any) {
	return func(ev map[string]any) { contactData(ev)["Attributes"].(map[string]any)[k] = v }
}

func caller(address string) func(map[string]any) {
	return func(ev map[string]any) {
		contactData(ev)["CustomerEndpoint"] = map[string]any{"Address": address, "Type": "TELEPHONE_NUMBER"}
	}
}

func contact(id string) func(map[string]any) {
	return func(ev map[string]any) { contactData(ev)["ContactId"] = id }
}

// sentTo is the flat answer for a session just sent with the fake's 3 attempts.
func sentTo(provider, step string) map[string]string {
	return map[string]string{
		"step": step, "referenceId": contactID, "status": "sent", "provider": provider,
		"channel": "SMS", "attempts": "0", "attemptsLeft": "3",
	}
}

// refused is a refusal about the contact of the test events.
func refused(code string) map[string]string {
	return map[string]string{"step": "refused", "error": code, "referenceId": contactID}
}

func TestEvents(t *testing.T) {
	for _, tc := range []struct {
		name    string
		apiKey  string // configured; "" leaves the endpoint open
		key     string // sent
		body    []byte
		sendErr error
		status  int
		want    map[string]string // the flat answer, "message" aside
		code    string            // the error code of a non-200 answer
	}{
		{name: "start", apiKey: testKey, key: testKey, body: event(t, "start.json"),
			status: 200, want: sentTo("authsignal", "enter_code")},
		{name: "start without a key", apiKey: testKey, body: event(t, "start.json"), status: 401, code: "unauthorized"},
		{name: "start with a wrong key", apiKey: testKey, key: "connect-test-kez", body: event(t, "start.json"), status: 401, code: "unauthorized"},
		{name: "start with a key prefix", apiKey: testKey, key: "connect", body: event(t, "start.json"), status: 401, code: "unauthorized"},
		{name: "open endpoint", body: event(t, "start.json"), status: 200, want: sentTo("authsignal", "enter_code")},
		{name: "open endpoint ignores a key", key: "anything", body: event(t, "start.json"), status: 200, want: sentTo("authsignal", "enter_code")},
		{name: "call connect sends a link", body: event(t, "start.json", param("provider", "callconnect")),
			status: 200, want: sentTo("callconnect", "link_sent")},
		{name: "provider from a contact attribute", body: event(t, "start.json", param("provider", ""), attribute("provider", "authentix")),
			status: 200, want: sentTo("authentix", "enter_code")},
		{name: "parameter wins over attribute", body: event(t, "start.json", attribute("provider", "callconnect")),
			status: 200, want: sentTo("authsignal", "enter_code")},
		{name: "withheld caller", body: event(t, "start.json", caller("anonymous")), status: 200, want: refused("phone_number_withheld")},
		{name: "chat contact has no number", body: event(t, "chat.json"), status: 200,
			want: map[string]string{"step": "refused", "error": "phone_number_withheld", "referenceId": "5ca32fbd-8f92-46af-92a5-6b0f970f0efe"}},
		{name: "landline caller", body: event(t, "start.json", caller("+442079460000")), status: 200, want: refused("not_mobile")},
		{name: "invalid caller (the AWS example's number)", body: event(t, "aws-docs-example.json", param("action", "start")),
			status: 200, want: map[string]string{"step": "refused", "error": "invalid_phone_number", "referenceId": "4a573372-1f28-4e26-b97b-XXXXXXXXXXX"}},
		{name: "country not ISO", body: event(t, "start.json", param("country", "XYZ")), status: 200, want: refused("invalid_request")},
		{name: "contact id not a reference", body: event(t, "start.json", contact("has spaces in it")), status: 200,
			want: map[string]string{"step": "refused", "error": "invalid_request"}}, // not echoed
		{name: "provider failure", body: event(t, "start.json"), sendErr: refuse(callsession.CodeProviderUnavailable, "authsignal is unavailable"),
			status: 200, want: map[string]string{"step": "error", "error": "provider_unavailable", "referenceId": contactID,
				"status": "error", "provider": "authsignal", "channel": "SMS", "attempts": "0"}}, // the session records the failure
		{name: "status of an unknown contact (older event form)", body: event(t, "contact-flow-execution.json"),
			status: 200, want: map[string]string{"step": "refused", "error": "not_found", "referenceId": "ASDAcxcasDFSSDFs"}},
		{name: "code for an unknown contact", body: event(t, "code.json"), status: 200, want: refused("not_found")},
		{name: "action case and spaces", body: event(t, "start.json", param("action", " START ")), status: 200, want: sentTo("authsignal", "enter_code")},
		// An action the bridge does not know is refused in Connect's flat form (DESIGN §6, §7),
		// so the flow branches on it; a 400 would reach it as the forwarder's bridge_unavailable.
		{name: "the AWS example names no action", body: event(t, "aws-docs-example.json"), status: 200,
			want: map[string]string{"step": "refused", "error": "invalid_request", "referenceId": "4a573372-1f28-4e26-b97b-XXXXXXXXXXX"}},
		{name: "unknown action", body: event(t, "start.json", param("action", "resend")), status: 200, want: refused("invalid_request")},
		{name: "no contact id", body: event(t, "start.json", contact("")), status: 400, code: "invalid_request"},
		{name: "not JSON", body: []byte("Details=1"), status: 400, code: "invalid_request"},
		{name: "a JSON array", body: []byte(`[{"Details":{}}]`), status: 400, code: "invalid_request"},
		{name: "two objects", body: append(event(t, "start.json"), event(t, "start.json")...), status: 400, code: "invalid_request"},
		{name: "wrong types", body: []byte(`{"Details":{"ContactData":{"ContactId":7}}}`), status: 400, code: "invalid_request"},
		{name: "too large", body: event(t, "start.json", attribute("blob", strings.Repeat("x", 70<<10))), status: 413, code: "payload_too_large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBridge(t, tc.apiKey)
			b.fake.sendErr = tc.sendErr
			a := b.post(tc.body, tc.key)
			if a.status != tc.status {
				t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.raw)
			}
			if tc.status != 200 {
				if a.code != tc.code {
					t.Fatalf("error %q, want %q", a.code, tc.code)
				}
				if tc.status == 401 && len(b.fake.starts) != 0 {
					t.Fatal("an unauthorized event reached the service")
				}
				return
			}
			got := maps.Clone(a.fields)
			if got["error"] != "" && got["message"] == "" {
				t.Fatalf("an error without a message: %v", got)
			}
			delete(got, "message")
			if !maps.Equal(got, tc.want) {
				t.Fatalf("answer %v\nwant   %v", got, tc.want)
			}
		})
	}
}

// The event's contact and parameters become the start request; contact attributes fill
// what the parameters leave out.
func TestStartRequest(t *testing.T) {
	b := newBridge(t, "")
	body := event(t, "start.json",
		param("provider", "AuthSignal"), param("channel", "whatsapp"), param("country", "usa"), param("locale", "en-US"),
		param("userId", "user-42"), attribute("email", "caller@example.com"), attribute("username", "jdoe"),
		attribute("locale", "fr-FR"))
	if a := b.post(body, ""); a.status != 200 {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	want := callsession.StartRequest{
		ReferenceID: contactID, PhoneNumber: callerE164, Country: "usa", Provider: "authsignal", Channel: "whatsapp",
		UserID: "user-42", Username: "jdoe", Email: "caller@example.com", Locale: "en-US",
	}
	if len(b.fake.starts) != 1 || b.fake.starts[0] != want {
		t.Fatalf("start requests %+v\nwant %+v", b.fake.starts, want)
	}
}

// A whole call as a contact flow plays it: start, a wrong code, digits that are no code,
// the right code, then the status.
func TestWholeCall(t *testing.T) {
	b := newBridge(t, testKey)
	steps := []struct {
		body []byte
		want map[string]string
	}{
		{event(t, "start.json"), sentTo("authsignal", "enter_code")},
		{event(t, "code.json", param("code", "000000")), map[string]string{
			"step": "retry", "referenceId": contactID, "status": "sent", "provider": "authsignal", "channel": "SMS",
			"attempts": "1", "attemptsLeft": "2",
		}},
		{event(t, "code.json", param("code", "12#")), map[string]string{ // no attempt spent
			"step": "retry", "referenceId": contactID, "status": "sent", "provider": "authsignal", "channel": "SMS",
			"attempts": "1", "attemptsLeft": "2",
		}},
		{event(t, "code.json"), map[string]string{
			"step": "verified", "referenceId": contactID, "status": "verified", "provider": "authsignal", "channel": "SMS",
			"attempts": "2", "attemptsLeft": "1",
		}},
		{event(t, "code.json", param("action", "status")), map[string]string{
			"step": "verified", "referenceId": contactID, "status": "verified", "provider": "authsignal", "channel": "SMS",
			"attempts": "2", "attemptsLeft": "1",
		}},
		{event(t, "code.json"), map[string]string{ // a late repeat of the code: where it stands
			"step": "verified", "referenceId": contactID, "status": "verified", "provider": "authsignal", "channel": "SMS",
			"attempts": "2", "attemptsLeft": "1",
		}},
	}
	for i, s := range steps {
		a := b.post(s.body, testKey)
		if a.status != 200 || !maps.Equal(a.fields, s.want) {
			t.Fatalf("step %d: %d %v\nwant %v", i, a.status, a.fields, s.want)
		}
	}
	if got := strings.Join(b.fake.submitted, ","); got != "000000,123456,123456" {
		t.Fatalf("codes submitted: %s", got)
	}
	// Logs name the call, never the whole number nor a code.
	logs := b.logs.String()
	for _, secret := range []string{"4155552671", "123456", "000000"} {
		if strings.Contains(logs, secret) {
			t.Fatalf("logs hold %q:\n%s", secret, logs)
		}
	}
	if !strings.Contains(logs, contactID) {
		t.Fatalf("logs do not name the contact:\n%s", logs)
	}
}

// Connect (or the forwarder) may deliver the same start twice: one provider send, the same
// answer.
func TestDuplicateStart(t *testing.T) {
	b := newBridge(t, testKey)
	body := event(t, "start.json")
	var wg sync.WaitGroup
	answers := make([]answer, 4)
	for i := range answers {
		wg.Go(func() { answers[i] = b.post(body, testKey) })
	}
	wg.Wait()
	for i, a := range answers {
		if a.status != 200 || !maps.Equal(a.fields, sentTo("authsignal", "enter_code")) {
			t.Fatalf("delivery %d: %d %v", i, a.status, a.fields)
		}
	}
	if b.fake.sends != 1 || len(b.fake.starts) != len(answers) {
		t.Fatalf("%d sends for %d starts", b.fake.sends, len(b.fake.starts))
	}
	for _, r := range b.fake.starts[1:] {
		if r != b.fake.starts[0] {
			t.Fatalf("the same event made different requests: %+v vs %+v", r, b.fake.starts[0])
		}
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}
