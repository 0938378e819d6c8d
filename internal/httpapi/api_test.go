package httpapi_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ivr-bridge/ivr-bridge/internal/app/apptest"
	"github.com/ivr-bridge/ivr-bridge/internal/httpapi"
	"github.com/ivr-bridge/ivr-bridge/internal/logging"
)

// A UK mobile, a US number (fixed line or mobile) and a UK landline, all valid.
const (
	ukMobile   = "+447400123456"
	usNumber   = "+14155552671"
	ukLandline = "+442079460018"
)

func ref() string { return "CA" + apptest.RandomID() }

func start(s *apptest.Stack, body map[string]any) *apptest.Response {
	return s.Do(http.MethodPost, "/v1/sessions", body)
}

// mustStart starts a session and fails the test unless it was created.
func mustStart(t *testing.T, s *apptest.Stack, body map[string]any) {
	t.Helper()
	if r := start(s, body); r.Status != 201 {
		t.Fatalf("start: %d %s", r.Status, r.Body)
	}
}

func wantError(t *testing.T, r *apptest.Response, status int, code string) {
	t.Helper()
	if r.Status != status || r.ErrorCode() != code {
		t.Fatalf("answer %d %s, want %d %s: %s", r.Status, r.ErrorCode(), status, code, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("error Content-Type %q", ct)
	}
	var msg string
	if m, ok := r.JSON(t)["error"].(map[string]any); ok {
		msg, _ = m["message"].(string)
	}
	if msg == "" {
		t.Fatalf("error without a message: %s", r.Body)
	}
}

func TestHealthAndRequestID(t *testing.T) {
	s := apptest.New(t, nil)
	for _, path := range []string{"/healthz", "/readyz"} {
		r := s.Do(http.MethodGet, path, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("%s: %d %s", path, r.Status, r.Body)
		}
		if !regexp.MustCompile(`^[0-9a-f]{24}$`).MatchString(r.Header.Get("X-Request-Id")) {
			t.Fatalf("%s: X-Request-Id %q", path, r.Header.Get("X-Request-Id"))
		}
	}
	r := s.Do(http.MethodGet, "/healthz", nil, "X-Request-Id", "trace-abc-123")
	if got := r.Header.Get("X-Request-Id"); got != "trace-abc-123" {
		t.Fatalf("X-Request-Id not echoed: %q", got)
	}
	// A request ID with spaces or control characters would forge log fields: replaced.
	r = s.Do(http.MethodGet, "/healthz", nil, "X-Request-Id", "evil id\tinjected")
	if got := r.Header.Get("X-Request-Id"); got == "" || strings.Contains(got, " ") {
		t.Fatalf("unsafe X-Request-Id kept: %q", got)
	}
	// Every log line of a request names its ID.
	s.Do(http.MethodGet, "/v1/sessions/nope", nil, "X-Request-Id", "trace-log-check")
	if !strings.Contains(s.Logs.String(), `"request_id":"trace-log-check"`) {
		t.Fatalf("request log does not carry the request ID:\n%s", s.Logs.String())
	}
}

// The metrics listener (IVR_BRIDGE_METRICS_ADDR) is served outside Echo: it gets the same
// request IDs, in its answers and in its handlers' log context.
func TestRequestIDOutsideEcho(t *testing.T) {
	var seen string
	h := httpapi.WithRequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = logging.RequestID(r.Context())
	}))
	for _, tc := range []struct{ sent, want string }{
		{"trace-abc-123", "trace-abc-123"},
		{"", ""},
		{"evil id\tinjected", ""},
		{strings.Repeat("a", 65), ""},
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		if tc.sent != "" {
			req.Header.Set("X-Request-Id", tc.sent)
		}
		h.ServeHTTP(rec, req)
		got := rec.Header().Get("X-Request-Id")
		if tc.want != "" && got != tc.want || tc.want == "" && !regexp.MustCompile(`^[0-9a-f]{24}$`).MatchString(got) {
			t.Fatalf("sent %q: X-Request-Id %q", tc.sent, got)
		}
		if seen != got {
			t.Fatalf("sent %q: the handler's context names %q, the answer %q", tc.sent, seen, got)
		}
	}
}

func TestAPIKeys(t *testing.T) {
	s := apptest.New(t, nil)
	cases := []struct{ name, header string }{
		{"missing", ""},
		{"wrong key", "Bearer not-the-key"},
		{"key prefix", "Bearer " + apptest.APIKey[:4]},
		{"basic scheme", "Basic " + apptest.APIKey},
		{"bare key", apptest.APIKey},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := s.Do(http.MethodGet, "/v1/sessions", nil, "Authorization", tc.header)
			wantError(t, r, http.StatusUnauthorized, "unauthorized")
			if r.Header.Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
		})
	}
	if r := s.Do(http.MethodGet, "/v1/sessions", nil, "Authorization", "bearer "+apptest.APIKey); r.Status != http.StatusOK {
		t.Fatalf("lower-case scheme refused: %d %s", r.Status, r.Body)
	}
	if strings.Contains(s.Logs.String(), apptest.APIKey) {
		t.Fatal("the API key appears in the logs")
	}
	// Health checks need no key.
	if r := s.Do(http.MethodGet, "/healthz", nil, "Authorization", ""); r.Status != http.StatusOK {
		t.Fatalf("/healthz without key: %d", r.Status)
	}
}

func TestNoAPIKeysConfiguredLeavesAPIOpen(t *testing.T) {
	s := apptest.New(t, map[string]string{"IVR_BRIDGE_API_KEYS": ""})
	if r := s.Do(http.MethodGet, "/v1/sessions", nil, "Authorization", ""); r.Status != http.StatusOK {
		t.Fatalf("open API refused: %d %s", r.Status, r.Body)
	}
}

func TestMalformedRequests(t *testing.T) {
	s := apptest.New(t, nil)
	big := `{"referenceId":"x","phoneNumber":"` + strings.Repeat("1", 70*1024) + `"}`
	cases := []struct {
		name, method, path string
		body               any
		headers            []string
		status             int
		code               string
	}{
		{"unknown route", "GET", "/v1/nothing-here", nil, nil, 404, "not_found"},
		{"wrong method", "DELETE", "/v1/sessions", nil, nil, 405, "invalid_request"},
		{"body too large", "POST", "/v1/sessions", big, nil, 413, "payload_too_large"},
		{"form body", "POST", "/v1/sessions", "referenceId=x", []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"},
		{"no content type", "POST", "/v1/sessions", `{"referenceId":"x"}`, []string{"Content-Type", ""}, 415, "unsupported_media_type"},
		{"empty body", "POST", "/v1/sessions", "", nil, 400, "invalid_request"},
		{"deeply nested", "POST", "/v1/sessions", `{"referenceId":"r1","phoneNumber":"+14155552671","x":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`, nil, 400, "invalid_request"},
		{"header injection in referenceId", "POST", "/v1/sessions", `{"referenceId":"r1\r\nX-Evil: 1","phoneNumber":"+14155552671"}`, nil, 400, "invalid_request"},
		{"code too long", "POST", "/v1/sessions/r1/code", `{"code":"12345678901"}`, nil, 400, "invalid_request"},
		{"not json", "POST", "/v1/sessions", `{"referenceId":`, nil, 400, "invalid_request"},
		{"array", "POST", "/v1/sessions", `[1,2]`, nil, 400, "invalid_request"},
		{"two objects", "POST", "/v1/sessions", `{} {}`, nil, 400, "invalid_request"},
		{"invalid utf-8", "POST", "/v1/sessions", []byte("{\"referenceId\":\"\xff\xfe\",\"phoneNumber\":\"+14155552671\"}"), nil, 400, "invalid_request"},
		{"referenceId a number", "POST", "/v1/sessions", `{"referenceId":12,"phoneNumber":"+14155552671"}`, nil, 400, "invalid_request"},
		{"phoneNumber a number", "POST", "/v1/sessions", `{"referenceId":"r1","phoneNumber":14155552671}`, nil, 400, "invalid_request"},
		{"referenceId missing", "POST", "/v1/sessions", `{"phoneNumber":"+14155552671"}`, nil, 400, "invalid_request"},
		{"phoneNumber missing", "POST", "/v1/sessions", `{"referenceId":"r1"}`, nil, 400, "invalid_request"},
		{"phoneNumber null", "POST", "/v1/sessions", `{"referenceId":"r1","phoneNumber":null}`, nil, 400, "invalid_request"},
		{"phoneNumber empty", "POST", "/v1/sessions", `{"referenceId":"r1","phoneNumber":""}`, nil, 422, "phone_number_withheld"}, // DESIGN §5: empty is withheld
		{"phoneNumber blank", "POST", "/v1/sessions", `{"referenceId":"r1","phoneNumber":"   "}`, nil, 422, "phone_number_withheld"},
		{"referenceId with space", "POST", "/v1/sessions", `{"referenceId":"a b","phoneNumber":"+14155552671"}`, nil, 400, "invalid_request"},
		{"referenceId too long", "POST", "/v1/sessions", fmt.Sprintf(`{"referenceId":%q,"phoneNumber":"+14155552671"}`, strings.Repeat("r", 129)), nil, 400, "invalid_request"},
		{"unknown provider", "POST", "/v1/sessions", `{"referenceId":"r1","phoneNumber":"+14155552671","provider":"acme"}`, nil, 400, "invalid_request"},
		{"unknown channel", "POST", "/v1/sessions", `{"referenceId":"r1","phoneNumber":"+14155552671","channel":"PIGEON"}`, nil, 400, "invalid_request"},
		{"email channel without email", "POST", "/v1/sessions", `{"referenceId":"r1","phoneNumber":"+14155552671","provider":"authsignal","channel":"EMAIL"}`, nil, 400, "invalid_request"},
		{"call connect by email", "POST", "/v1/sessions", `{"referenceId":"r1","phoneNumber":"+14155552671","channel":"EMAIL","email":"a@b.example"}`, nil, 400, "invalid_request"},
		{"bad country", "POST", "/v1/sessions", `{"referenceId":"r1","phoneNumber":"4155552671","country":"XYZ"}`, nil, 400, "invalid_request"},
		{"withheld", "POST", "/v1/sessions", `{"referenceId":"r1","phoneNumber":"anonymous"}`, nil, 422, "phone_number_withheld"},
		{"twilio withheld", "POST", "/v1/sessions", `{"referenceId":"r1","phoneNumber":"+266696687"}`, nil, 422, "phone_number_withheld"},
		{"not a number", "POST", "/v1/sessions", `{"referenceId":"r1","phoneNumber":"call me"}`, nil, 422, "invalid_phone_number"},
		{"local without country", "POST", "/v1/sessions", `{"referenceId":"r1","phoneNumber":"4155552671"}`, nil, 422, "invalid_phone_number"},
		{"landline by sms", "POST", "/v1/sessions", `{"referenceId":"r1","phoneNumber":"` + ukLandline + `"}`, nil, 422, "not_mobile"},
		{"code not digits", "POST", "/v1/sessions/r1/code", `{"code":"12ab"}`, nil, 400, "invalid_request"},
		{"code too short", "POST", "/v1/sessions/r1/code", `{"code":"123"}`, nil, 400, "invalid_request"},
		{"code a number", "POST", "/v1/sessions/r1/code", `{"code":123456}`, nil, 400, "invalid_request"},
		{"code of unknown session", "POST", "/v1/sessions/r-unknown/code", `{"code":"123456"}`, nil, 404, "not_found"},
		{"unknown session", "GET", "/v1/sessions/r-unknown", nil, nil, 404, "not_found"},
		{"list limit zero", "GET", "/v1/sessions?limit=0", nil, nil, 400, "invalid_request"},
		{"list limit too big", "GET", "/v1/sessions?limit=201", nil, nil, 400, "invalid_request"},
		{"list bad cursor", "GET", "/v1/sessions?cursor=@@@", nil, nil, 400, "invalid_request"},
		{"list bad status", "GET", "/v1/sessions?status=happy", nil, nil, 400, "invalid_request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := s.Do(tc.method, tc.path, tc.body, tc.headers...)
			wantError(t, r, tc.status, tc.code)
		})
	}
	if n := s.CallConnect.Count() + s.Authsignal.Count() + s.Authentix.Count(); n != 0 {
		t.Fatalf("refused requests reached providers %d times", n)
	}
	// Nothing half-written: the refused starts left no session behind.
	if r := s.Do("GET", "/v1/sessions/r1", nil); r.Status != 404 {
		t.Fatalf("a refused start left a session: %d %s", r.Status, r.Body)
	}
}

func TestStartIsIdempotentAndConflicts(t *testing.T) {
	s := apptest.New(t, nil)
	id := ref()
	body := map[string]any{"referenceId": id, "phoneNumber": "07400 123456", "country": "GBR"}
	r := start(s, body)
	if r.Status != http.StatusCreated {
		t.Fatalf("start: %d %s", r.Status, r.Body)
	}
	m := r.JSON(t)
	if m["status"] != "sent" || m["phoneNumber"] != ukMobile || m["country"] != "GB" || m["provider"] != "callconnect" ||
		m["messageId"] == nil || m["challengeId"] != nil || m["fingerprint"] != nil {
		t.Fatalf("session: %s", r.Body)
	}
	// The same call, the number in another format: the same session, no second SMS.
	again := start(s, map[string]any{"referenceId": id, "phoneNumber": ukMobile})
	if again.Status != http.StatusOK || again.JSON(t)["messageId"] != m["messageId"] {
		t.Fatalf("repeat: %d %s", again.Status, again.Body)
	}
	if n := s.CallConnect.Sends(); n != 1 {
		t.Fatalf("provider sends = %d, want 1", n)
	}
	other := start(s, map[string]any{"referenceId": id, "phoneNumber": "+447400999999"})
	wantError(t, other, http.StatusConflict, "conflict")

	got := s.Do("GET", "/v1/sessions/"+id, nil)
	if got.Status != 200 || got.JSON(t)["messageId"] != m["messageId"] {
		t.Fatalf("get: %d %s", got.Status, got.Body)
	}
}

func TestConcurrentDuplicateStartsSendOnce(t *testing.T) {
	s := apptest.New(t, nil)
	id := ref()
	var wg sync.WaitGroup
	statuses := make([]int, 20)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = start(s, map[string]any{"referenceId": id, "phoneNumber": ukMobile}).Status
		}()
	}
	wg.Wait()
	created := 0
	for _, st := range statuses {
		switch st {
		case http.StatusCreated:
			created++
		case http.StatusOK:
		default:
			t.Fatalf("statuses %v", statuses)
		}
	}
	if created != 1 || s.CallConnect.Sends() != 1 {
		t.Fatalf("created %d, sends %d; want 1 and 1 (%v)", created, s.CallConnect.Sends(), statuses)
	}
}

func TestAuthsignalCodeFlow(t *testing.T) {
	s := apptest.New(t, nil)
	id := ref()
	r := start(s, map[string]any{"referenceId": id, "phoneNumber": usNumber, "provider": "authsignal", "channel": "sms", "userId": "u-42"})
	if r.Status != http.StatusCreated {
		t.Fatalf("start: %d %s", r.Status, r.Body)
	}
	sess := r.JSON(t)
	challenge, _ := sess["challengeId"].(string)
	if challenge == "" || sess["status"] != "sent" || sess["userId"] != "u-42" || sess["messageId"] != nil {
		t.Fatalf("session: %s", r.Body)
	}
	code := s.Authsignal.CodeFor(challenge)
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	r = s.Do("POST", "/v1/sessions/"+id+"/code", map[string]string{"code": wrong})
	if m := r.JSON(t); r.Status != 200 || m["status"] != "sent" || m["attempts"] != float64(1) {
		t.Fatalf("wrong code: %d %s", r.Status, r.Body)
	}
	r = s.Do("POST", "/v1/sessions/"+id+"/code", map[string]string{"code": code})
	if m := r.JSON(t); r.Status != 200 || m["status"] != "verified" || m["attempts"] != float64(2) {
		t.Fatalf("right code: %d %s", r.Status, r.Body)
	}
	// Final: a further code is refused without a provider call.
	calls := s.Authsignal.Count()
	wantError(t, s.Do("POST", "/v1/sessions/"+id+"/code", map[string]string{"code": code}), http.StatusConflict, "invalid_state")
	if s.Authsignal.Count() != calls {
		t.Fatal("a code on a verified session reached Authsignal")
	}
	types := eventTypes(t, s.Do("GET", "/v1/sessions/"+id, nil))
	if strings.Join(types, ",") != "created,sent,code_rejected,code_accepted,verified" {
		t.Fatalf("events %v", types)
	}
	logs := s.Logs.String()
	if strings.Contains(logs, code) || strings.Contains(logs, "4155552671") {
		t.Fatal("a code or a whole number appears in the logs")
	}
}

func TestAuthentixCodeFlowAndAttemptsRunOut(t *testing.T) {
	s := apptest.New(t, map[string]string{"LIMIT_CODE_ATTEMPTS": "2"})
	id := ref()
	r := start(s, map[string]any{"referenceId": id, "phoneNumber": ukMobile, "provider": "authentix"})
	sess := r.JSON(t)
	if r.Status != http.StatusCreated || sess["authenticationId"] == nil || sess["status"] != "sent" {
		t.Fatalf("start: %d %s", r.Status, r.Body)
	}
	for i, want := range []string{"sent", "failed"} {
		r = s.Do("POST", "/v1/sessions/"+id+"/code", map[string]string{"code": "99999999"[:6]})
		if m := r.JSON(t); r.Status != 200 || m["status"] != want {
			t.Fatalf("attempt %d: %d %s", i+1, r.Status, r.Body)
		}
	}
	wantError(t, s.Do("POST", "/v1/sessions/"+id+"/code", map[string]string{"code": "123456"}), http.StatusConflict, "invalid_state")
}

func TestCallConnectCodeIsInvalidState(t *testing.T) {
	s := apptest.New(t, nil)
	id := ref()
	mustStart(t, s, map[string]any{"referenceId": id, "phoneNumber": ukMobile})
	wantError(t, s.Do("POST", "/v1/sessions/"+id+"/code", map[string]string{"code": "123456"}), http.StatusConflict, "invalid_state")
}

func TestResendAndCancel(t *testing.T) {
	s := apptest.New(t, map[string]string{"LIMIT_SENDS_PER_SESSION": "2"})
	id := ref()
	mustStart(t, s, map[string]any{"referenceId": id, "phoneNumber": ukMobile, "provider": "authsignal"})
	r := s.Do("POST", "/v1/sessions/"+id+"/resend", map[string]string{"channel": "WHATSAPP"})
	if m := r.JSON(t); r.Status != 200 || m["channel"] != "WHATSAPP" || m["status"] != "sent" {
		t.Fatalf("resend: %d %s", r.Status, r.Body)
	}
	r = s.Do("POST", "/v1/sessions/"+id+"/resend", nil)
	wantError(t, r, http.StatusTooManyRequests, "rate_limited")
	if r.Header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	r = s.Do("POST", "/v1/sessions/"+id+"/cancel", nil)
	if r.Status != 200 || r.JSON(t)["status"] != "cancelled" {
		t.Fatalf("cancel: %d %s", r.Status, r.Body)
	}
	// Cancelling again is harmless; resending a cancelled session is not allowed.
	if r = s.Do("POST", "/v1/sessions/"+id+"/cancel", nil); r.Status != 200 {
		t.Fatalf("second cancel: %d %s", r.Status, r.Body)
	}
	wantError(t, s.Do("POST", "/v1/sessions/"+id+"/resend", nil), http.StatusConflict, "invalid_state")
	if s.Authsignal.Sends() != 2 {
		t.Fatalf("Authsignal sends %d, want 2", s.Authsignal.Sends())
	}
}

func TestListNewestFirstWithPaging(t *testing.T) {
	s := apptest.New(t, map[string]string{"LIMIT_SENDS_PER_NUMBER": "0"})
	var ids []string
	for i := 0; i < 5; i++ {
		id := fmt.Sprintf("list-%d-%s", i, apptest.RandomID())
		ids = append(ids, id)
		mustStart(t, s, map[string]any{"referenceId": id, "phoneNumber": ukMobile})
		s.Clock.Advance(1e9) // distinct creation times
	}
	s.Do("POST", "/v1/sessions/"+ids[1]+"/cancel", nil)
	var seen []string
	cursor := ""
	for page := 0; page < 10; page++ {
		path := "/v1/sessions?limit=2"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		r := s.Do("GET", path, nil)
		if r.Status != 200 {
			t.Fatalf("list: %d %s", r.Status, r.Body)
		}
		m := r.JSON(t)
		for _, x := range m["sessions"].([]any) {
			seen = append(seen, x.(map[string]any)["referenceId"].(string))
		}
		var ok bool
		if cursor, ok = m["nextCursor"].(string); !ok {
			t.Fatalf("page without nextCursor: %s", r.Body) // DESIGN §4: always there, "" on the last page
		}
		if cursor == "" {
			break
		}
	}
	want := []string{ids[4], ids[3], ids[2], ids[1], ids[0]}
	if strings.Join(seen, ",") != strings.Join(want, ",") {
		t.Fatalf("listed %v, want %v", seen, want)
	}
	r := s.Do("GET", "/v1/sessions?status=cancelled", nil)
	list := r.JSON(t)["sessions"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["referenceId"] != ids[1] {
		t.Fatalf("status filter: %s", r.Body)
	}
}

func TestStartsPerKeyLimit(t *testing.T) {
	s := apptest.New(t, map[string]string{"LIMIT_STARTS_PER_KEY": "2", "LIMIT_SENDS_PER_NUMBER": "0"})
	limited := 0
	began := time.Now()
	for i := 0; i < 6; i++ {
		r := start(s, map[string]any{"referenceId": ref(), "phoneNumber": ukMobile})
		if r.Status == http.StatusTooManyRequests {
			wantError(t, r, http.StatusTooManyRequests, "rate_limited")
			if r.Header.Get("Retry-After") == "" {
				t.Fatal("429 without Retry-After")
			}
			limited++
		}
	}
	// The budget is two in any second, no burst on top: six starts within one second are four
	// over it (and six in under three seconds at least two, however slow the machine).
	if elapsed := time.Since(began); (elapsed < time.Second && limited != 4) || limited < 2 {
		t.Fatalf("%d of 6 starts limited in %s", limited, elapsed)
	}
}

func TestProviderFailuresAnswerInDesignForm(t *testing.T) {
	s := apptest.New(t, nil)
	s.CallConnect.FailNext(1, http.StatusServiceUnavailable, `{"error":"down"}`)
	wantError(t, start(s, map[string]any{"referenceId": ref(), "phoneNumber": ukMobile}), http.StatusServiceUnavailable, "provider_unavailable")
	s.CallConnect.FailNext(1, http.StatusUnauthorized, `{"error":"unauthorized"}`)
	wantError(t, start(s, map[string]any{"referenceId": ref(), "phoneNumber": ukMobile}), http.StatusBadGateway, "provider_error")

	noAuthentix := apptest.New(t, map[string]string{"AUTHENTIX_API_KEY": ""})
	wantError(t, start(noAuthentix, map[string]any{"referenceId": ref(), "phoneNumber": ukMobile, "provider": "authentix"}),
		http.StatusServiceUnavailable, "provider_unavailable")
}

func eventTypes(t *testing.T, r *apptest.Response) []string {
	t.Helper()
	var out []string
	for _, e := range r.JSON(t)["events"].([]any) {
		out = append(out, e.(map[string]any)["type"].(string))
	}
	return out
}

// The status filter matches the status a session reads with: one past its expiry is listed
// under expired (as GET shows it) and no longer under sent.
func TestListStatusFilterSeesExpiry(t *testing.T) {
	s := apptest.New(t, map[string]string{"LIMIT_SENDS_PER_NUMBER": "0", "LINK_TTL": "5m", "SESSION_TTL": "1h"})
	old, fresh := "exp-old-"+apptest.RandomID(), "exp-new-"+apptest.RandomID()
	mustStart(t, s, map[string]any{"referenceId": old, "phoneNumber": ukMobile})
	s.Clock.Advance(6 * time.Minute) // old's link has expired; the session is still stored
	mustStart(t, s, map[string]any{"referenceId": fresh, "phoneNumber": ukMobile})
	listed := func(status string) []string {
		r := s.Do("GET", "/v1/sessions?status="+status, nil)
		if r.Status != 200 {
			t.Fatalf("list %s: %d %s", status, r.Status, r.Body)
		}
		var refs []string
		for _, x := range r.JSON(t)["sessions"].([]any) {
			m := x.(map[string]any)
			if m["status"] != status {
				t.Fatalf("?status=%s listed a session reading %v", status, m["status"])
			}
			refs = append(refs, m["referenceId"].(string))
		}
		return refs
	}
	if got := listed("expired"); len(got) != 1 || got[0] != old {
		t.Fatalf("?status=expired = %v, want [%s]", got, old)
	}
	if got := listed("sent"); len(got) != 1 || got[0] != fresh {
		t.Fatalf("?status=sent = %v, want [%s]", got, fresh)
	}
}

// A referenceId may hold any printable ASCII but the space (DESIGN §3): a SIP call ID's '@',
// a URI's ':' and '/', a '%'. Percent-encoded in the path, as the agent page's
// encodeURIComponent does, it reaches its session on every route.
func TestEncodedReferenceIDReachesItsSession(t *testing.T) {
	s := apptest.New(t, map[string]string{"LIMIT_SENDS_PER_NUMBER": "0"})
	for _, id := range []string{
		"sip:" + apptest.RandomID() + "@pbx.example/leg-1",
		"50%off-" + apptest.RandomID(),    // '%' alone: the decoded path is also the encoded one
		"a%2Fb-" + apptest.RandomID(),     // what looks like an escape is the reference's own text
		"q?x=1&y#z+" + apptest.RandomID(), // what a path would otherwise cut or read
	} {
		t.Run(id, func(t *testing.T) {
			mustStart(t, s, map[string]any{"referenceId": id, "phoneNumber": ukMobile, "provider": "authsignal"})
			path := "/v1/sessions/" + url.QueryEscape(id) // escapes what encodeURIComponent does, and !'()* too
			r := s.Do(http.MethodGet, path, nil)
			if r.Status != 200 || r.JSON(t)["referenceId"] != id {
				t.Fatalf("GET %s: %d %s", path, r.Status, r.Body)
			}
			if r = s.Do(http.MethodPost, path+"/code", map[string]string{"code": "000000"}); r.Status != 200 || r.JSON(t)["attempts"] != float64(1) {
				t.Fatalf("code: %d %s", r.Status, r.Body)
			}
			if r = s.Do(http.MethodPost, path+"/resend", nil); r.Status != 200 || r.JSON(t)["referenceId"] != id {
				t.Fatalf("resend: %d %s", r.Status, r.Body)
			}
			resp, events, cancel := stream(t, s, url.QueryEscape(id), nil, "")
			if resp.StatusCode != 200 {
				t.Fatalf("events: %d", resp.StatusCode)
			}
			if ev, ok := next(t, events); !ok || !strings.Contains(ev.data, `"status":"sent"`) {
				t.Fatalf("events: first %+v", ev)
			}
			cancel()
			if r = s.Do(http.MethodPost, path+"/cancel", nil); r.Status != 200 || r.JSON(t)["status"] != "cancelled" {
				t.Fatalf("cancel: %d %s", r.Status, r.Body)
			}
		})
	}
}

// A path whose escapes do not decode is refused in the DESIGN §7 form. net/http refuses such
// a request line itself; a request built in process (or by a proxy's own parser) reaches the
// router with it.
func TestUndecodableReferenceIDInPath(t *testing.T) {
	s := apptest.New(t, nil)
	for _, raw := range []string{"/v1/sessions/a%zz", "/v1/sessions/a%2/events", "/v1/sessions/%/code"} {
		method := http.MethodGet
		if strings.HasSuffix(raw, "/code") {
			method = http.MethodPost
		}
		req := httptest.NewRequest(method, "/v1/sessions/x", strings.NewReader(`{"code":"123456"}`))
		req.URL.Path, req.URL.RawPath = raw, raw
		req.Header.Set("Authorization", "Bearer "+apptest.APIKey)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		s.App.Handler.ServeHTTP(rec, req)
		wantError(t, &apptest.Response{Status: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}, http.StatusBadRequest, "invalid_request")
	}
}
