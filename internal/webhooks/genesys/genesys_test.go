package genesys

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
	testUser       = "genesys-user"
	testPassword   = "s3cret-pass"
	conversationID = "b2c7a1f4-6e0d-4a6b-9c1e-2f8d3a5e7b90"
)

// bridge is the adapter behind the real HTTP edge (middleware, body limit, error handler).
type bridge struct {
	t    *testing.T
	fake *fakeService
	srv  http.Handler
	logs *syncBuffer
}

func newBridge(t *testing.T, user, password string) *bridge {
	t.Helper()
	b := &bridge{t: t, fake: newFake(), logs: &syncBuffer{}}
	log := slog.New(slog.NewJSONHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := New(Config{Username: user, Password: password, Flow: callflow.Flow{Service: b.fake}, Logger: log})
	b.srv = httpapi.New(httpapi.Deps{Logger: log, Adapters: []httpapi.Adapter{h}}).Echo
	return b
}

type answer struct {
	status int
	header http.Header
	fields map[string]string // the flat answer (200)
	code   string            // the DESIGN §7 error code (4xx)
	raw    string
}

type creds struct{ user, password string }

// post sends body with Basic credentials c (nil: none).
func (b *bridge) post(body []byte, c *creds) answer {
	b.t.Helper()
	req := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if c != nil {
		req.SetBasicAuth(c.user, c.password)
	}
	rec := httptest.NewRecorder()
	b.srv.ServeHTTP(rec, req)
	a := answer{status: rec.Code, header: rec.Header(), raw: rec.Body.String()}
	if rec.Code == http.StatusOK {
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

// request reads a testdata request and sets fields on it ("" removes one).
func request(t *testing.T, file string, set ...string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	if len(set) == 0 {
		return raw
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(set); i += 2 {
		if set[i+1] == "" {
			delete(m, set[i])
			continue
		}
		m[set[i]] = set[i+1]
	}
	out, _ := json.Marshal(m)
	return out
}

func sentTo(provider, step string) map[string]string {
	return map[string]string{
		"step": step, "referenceId": conversationID, "status": "sent", "provider": provider,
		"channel": "SMS", "attempts": "0", "attemptsLeft": "3",
	}
}

// refused is a refusal about the conversation of the test requests.
func refused(code string) map[string]string {
	return map[string]string{"step": "refused", "error": code, "referenceId": conversationID}
}

var good = &creds{testUser, testPassword}

func TestRequests(t *testing.T) {
	for _, tc := range []struct {
		name    string
		open    bool // no credentials configured
		creds   *creds
		body    []byte
		sendErr error
		status  int
		want    map[string]string // the flat answer, "message" aside
		code    string            // the error code of a non-200 answer
	}{
		{name: "start", creds: good, body: request(t, "start.json"), status: 200, want: sentTo("authsignal", "enter_code")},
		{name: "no credentials", body: request(t, "start.json"), status: 401, code: "unauthorized"},
		{name: "wrong password", creds: &creds{testUser, testPassword + "x"}, body: request(t, "start.json"), status: 401, code: "unauthorized"},
		{name: "wrong user", creds: &creds{"genesys-usex", testPassword}, body: request(t, "start.json"), status: 401, code: "unauthorized"},
		{name: "swapped", creds: &creds{testPassword, testUser}, body: request(t, "start.json"), status: 401, code: "unauthorized"},
		{name: "empty", creds: &creds{}, body: request(t, "start.json"), status: 401, code: "unauthorized"},
		{name: "open endpoint", open: true, body: request(t, "start.json"), status: 200, want: sentTo("authsignal", "enter_code")},
		{name: "ani with spaces", creds: good, body: request(t, "start.json", "ani", "tel: +1 415 555 2671"), status: 200, want: sentTo("authsignal", "enter_code")},
		{name: "ani E.164", creds: good, body: request(t, "start.json", "ani", "+14155552671"), status: 200, want: sentTo("authsignal", "enter_code")},
		{name: "ani national with country", creds: good, body: request(t, "start.json", "ani", "(415) 555-2671", "country", "USA"),
			status: 200, want: sentTo("authsignal", "enter_code")},
		{name: "call connect sends a link", creds: good, body: request(t, "start.json", "provider", "callconnect"),
			status: 200, want: sentTo("callconnect", "link_sent")},
		{name: "withheld caller", creds: good, body: request(t, "start.json", "ani", "tel:anonymous"), status: 200, want: refused("phone_number_withheld")},
		{name: "no ani", creds: good, body: request(t, "start.json", "ani", ""), status: 200, want: refused("phone_number_withheld")},
		{name: "landline caller", creds: good, body: request(t, "start.json", "ani", "tel:+442079460000"), status: 200, want: refused("not_mobile")},
		{name: "invalid caller", creds: good, body: request(t, "start.json", "ani", "tel:+1234567890"), status: 200, want: refused("invalid_phone_number")},
		{name: "country not ISO", creds: good, body: request(t, "start.json", "country", "XYZ"), status: 200, want: refused("invalid_request")},
		{name: "provider failure", creds: good, body: request(t, "start.json"),
			sendErr: &callsession.Error{Code: callsession.CodeProviderTimeout, Message: "authsignal did not answer in time"},
			status:  200, want: map[string]string{"step": "error", "error": "provider_timeout", "referenceId": conversationID,
				"status": "error", "provider": "authsignal", "channel": "SMS", "attempts": "0"}}, // the session records the failure
		{name: "code for an unknown call", creds: good, body: request(t, "code.json"), status: 200, want: refused("not_found")},
		{name: "status of an unknown call", creds: good, body: request(t, "status.json"), status: 200, want: refused("not_found")},
		{name: "action case", creds: good, body: request(t, "start.json", "action", "Start"), status: 200, want: sentTo("authsignal", "enter_code")},
		// An action the bridge does not know is refused in the flat form (DESIGN §6, §7), on the
		// Success path the flow maps, like any refusal.
		{name: "unknown action", creds: good, body: request(t, "start.json", "action", "resend"), status: 200, want: refused("invalid_request")},
		{name: "no action", creds: good, body: request(t, "start.json", "action", ""), status: 200, want: refused("invalid_request")},
		{name: "no conversation", creds: good, body: request(t, "start.json", "conversationId", ""), status: 400, code: "invalid_request"},
		{name: "not JSON", creds: good, body: []byte("conversationId=1"), status: 400, code: "invalid_request"},
		{name: "number where a string goes", creds: good, body: []byte(`{"conversationId":"c1","action":"code","code":123456}`), status: 400, code: "invalid_request"},
		{name: "too large", creds: good, body: request(t, "start.json", "userId", strings.Repeat("x", 70<<10)), status: 413, code: "payload_too_large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			user, password := testUser, testPassword
			if tc.open {
				user, password = "", ""
			}
			b := newBridge(t, user, password)
			b.fake.sendErr = tc.sendErr
			a := b.post(tc.body, tc.creds)
			if a.status != tc.status {
				t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.raw)
			}
			if tc.status != 200 {
				if a.code != tc.code {
					t.Fatalf("error %q, want %q", a.code, tc.code)
				}
				if tc.status == 401 {
					if len(b.fake.starts) != 0 {
						t.Fatal("an unauthenticated request reached the service")
					}
					if !strings.HasPrefix(a.header.Get("WWW-Authenticate"), "Basic ") {
						t.Fatalf("WWW-Authenticate %q", a.header.Get("WWW-Authenticate"))
					}
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

func TestStartRequest(t *testing.T) {
	b := newBridge(t, "", "")
	body := request(t, "start.json", "ani", "tel:+1 415 555 2671", "provider", " AuthSignal ", "channel", "whatsapp",
		"country", "us", "userId", "user-42", "username", "jdoe", "email", "caller@example.com")
	if a := b.post(body, nil); a.status != 200 {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	want := callsession.StartRequest{
		ReferenceID: conversationID, PhoneNumber: "tel:+1 415 555 2671", Country: "us", Provider: "authsignal",
		Channel: "whatsapp", UserID: "user-42", Username: "jdoe", Email: "caller@example.com", Locale: "en-US",
	}
	if len(b.fake.starts) != 1 || b.fake.starts[0] != want {
		t.Fatalf("start requests %+v\nwant %+v", b.fake.starts, want)
	}
}

// A whole call as an Architect flow plays it.
func TestWholeCall(t *testing.T) {
	b := newBridge(t, testUser, testPassword)
	at := func(step, status, attempts, left string) map[string]string {
		return map[string]string{
			"step": step, "referenceId": conversationID, "status": status, "provider": "authsignal", "channel": "SMS",
			"attempts": attempts, "attemptsLeft": left,
		}
	}
	for i, s := range []struct {
		body []byte
		want map[string]string
	}{
		{request(t, "start.json"), sentTo("authsignal", "enter_code")},
		{request(t, "status.json"), sentTo("authsignal", "enter_code")},
		{request(t, "code.json", "code", "654321"), at("retry", "sent", "1", "2")},
		{request(t, "code.json", "code", "65"), at("retry", "sent", "1", "2")}, // not a code: no attempt
		{request(t, "code.json", "code", " 123456 "), at("verified", "verified", "2", "1")},
		{request(t, "status.json"), at("verified", "verified", "2", "1")},
	} {
		a := b.post(s.body, good)
		if a.status != 200 || !maps.Equal(a.fields, s.want) {
			t.Fatalf("step %d: %d %v\nwant %v", i, a.status, a.fields, s.want)
		}
	}
	if got := strings.Join(b.fake.submitted, ","); got != "654321,123456" {
		t.Fatalf("codes submitted: %s", got)
	}
	logs := b.logs.String()
	for _, secret := range []string{"4155552671", "123456", "654321"} {
		if strings.Contains(logs, secret) {
			t.Fatalf("logs hold %q:\n%s", secret, logs)
		}
	}
}

// Genesys retries a data action that timed out, and a flow may loop back: the same start
// twice makes one send and the same answer.
func TestDuplicateStart(t *testing.T) {
	b := newBridge(t, testUser, testPassword)
	body := request(t, "start.json")
	var wg sync.WaitGroup
	answers := make([]answer, 4)
	for i := range answers {
		wg.Go(func() { answers[i] = b.post(body, good) })
	}
	wg.Wait()
	for i, a := range answers {
		if a.status != 200 || !maps.Equal(a.fields, sentTo("authsignal", "enter_code")) {
			t.Fatalf("delivery %d: %d %v", i, a.status, a.fields)
		}
	}
	if b.fake.sends != 1 {
		t.Fatalf("%d sends", b.fake.sends)
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
