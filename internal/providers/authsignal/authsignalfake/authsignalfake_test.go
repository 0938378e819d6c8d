package authsignalfake_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ivr-bridge/ivr-bridge/internal/providers/authsignal/authsignalfake"
)

const secret = "as_secret_test"

const smsBody = `{"verificationMethod":"SMS","action":"ivrVerification","idempotencyKey":"k1","phoneNumber":"+14155552671"}`

type call struct {
	method, path, auth, contentType, body string
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func challengeCall(body string) call {
	return call{method: http.MethodPost, path: "/challenge", auth: basic(secret, ""), contentType: "application/json", body: body}
}

func verifyCall(id, code string) call {
	b, _ := json.Marshal(map[string]string{"challengeId": id, "verificationCode": code})
	return call{method: http.MethodPost, path: "/verify", auth: basic(secret, ""), contentType: "application/json", body: string(b)}
}

func do(t *testing.T, f *authsignalfake.Fake, c call) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(c.method, f.URL()+c.path, strings.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	}
	if c.contentType != "" {
		req.Header.Set("Content-Type", c.contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("answer %d is not JSON: %q", resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

func TestChallenge(t *testing.T) {
	cases := []struct {
		name string
		body string
	}{
		{"SMS", smsBody},
		{"WhatsApp", `{"verificationMethod":"WHATSAPP","action":"a","phoneNumber":"+447700900123","locale":"en","userId":"u"}`},
		{"email OTP", `{"verificationMethod":"EMAIL_OTP","action":"a","email":"ana@example.com"}`},
		{"every documented field", `{"verificationMethod":"SMS","action":"a","idempotencyKey":"k","phoneNumber":"+64270000000",
			"userId":"u","scope":"add:authenticators","locale":"en","ipAddress":"192.0.2.1","userAgent":"ua","deviceId":"d",
			"custom":{"tier":"gold","n":3},"smsChannel":"DEFAULT"}`},
	}
	code := regexp.MustCompile(`^\d{6}$`)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := authsignalfake.New(secret)
			defer f.Close()
			before := time.Now()
			status, out := do(t, f, challengeCall(tc.body))
			if status != http.StatusOK {
				t.Fatalf("got %d %v", status, out)
			}
			id, _ := out["challengeId"].(string)
			if id == "" || out["idempotencyKey"] == "" || out["idempotencyKey"] == nil {
				t.Errorf("answer %v lacks challengeId or idempotencyKey", out)
			}
			exp, _ := out["expiresAt"].(float64)
			if want := before.Add(authsignalfake.ChallengeTTL).Unix(); exp < float64(want-2) || exp > float64(want+2) {
				t.Errorf("expiresAt %v, want about %d (Unix seconds, 10 minutes on)", exp, want)
			}
			if !code.MatchString(f.CodeFor(id)) {
				t.Errorf("code %q is not 6 digits", f.CodeFor(id))
			}
			if f.Sends() != 1 {
				t.Errorf("sends %d", f.Sends())
			}
			if f.Requests()[0].Challenge.Action == "" {
				t.Errorf("recorded body not decoded: %+v", f.Requests()[0])
			}
		})
	}
}

func TestIdempotency(t *testing.T) {
	f := authsignalfake.New(secret)
	defer f.Close()
	_, first := do(t, f, challengeCall(smsBody))
	_, again := do(t, f, challengeCall(smsBody))
	if first["challengeId"] != again["challengeId"] || first["idempotencyKey"] != "k1" || again["expiresAt"] != first["expiresAt"] {
		t.Errorf("same key and action: %v then %v, want the same challenge", first, again)
	}
	if f.Sends() != 1 {
		t.Errorf("same key and action sent %d codes, want 1", f.Sends())
	}
	_, other := do(t, f, challengeCall(strings.Replace(smsBody, `"ivrVerification"`, `"otherAction"`, 1)))
	_, next := do(t, f, challengeCall(strings.Replace(smsBody, `"k1"`, `"k2"`, 1)))
	if other["challengeId"] == first["challengeId"] || next["challengeId"] == first["challengeId"] || other["challengeId"] == next["challengeId"] {
		t.Errorf("another action or key must be another challenge: %v %v %v", first, other, next)
	}
	noKey := `{"verificationMethod":"SMS","action":"a","phoneNumber":"+14155552671"}`
	_, a := do(t, f, challengeCall(noKey))
	_, b := do(t, f, challengeCall(noKey))
	if a["challengeId"] == b["challengeId"] || a["idempotencyKey"] == "" || a["idempotencyKey"] == b["idempotencyKey"] {
		t.Errorf("without a key each challenge is new, with a key of its own: %v %v", a, b)
	}
	if f.Sends() != 5 {
		t.Errorf("sends %d, want 5", f.Sends())
	}
}

func TestVerify(t *testing.T) {
	f := authsignalfake.New(secret)
	defer f.Close()
	newChallenge := func(key string) (string, string) {
		_, out := do(t, f, challengeCall(strings.Replace(smsBody, `"k1"`, `"`+key+`"`, 1)))
		id := out["challengeId"].(string)
		return id, f.CodeFor(id)
	}
	wrong := func(code string) string {
		if code == "999999" {
			return "000000"
		}
		return "999999"
	}

	t.Run("right code, once", func(t *testing.T) {
		id, code := newChallenge("v1")
		status, out := do(t, f, verifyCall(id, code))
		if status != 200 || out["isVerified"] != true || out["phoneNumber"] != "+14155552671" || out["failureReason"] != nil {
			t.Errorf("got %d %v", status, out)
		}
		_, out = do(t, f, verifyCall(id, code))
		if out["isVerified"] != false || out["failureReason"] != "CODE_INVALID_OR_EXPIRED" {
			t.Errorf("second use: %v", out)
		}
	})
	t.Run("wrong code", func(t *testing.T) {
		id, code := newChallenge("v2")
		_, out := do(t, f, verifyCall(id, wrong(code)))
		if out["isVerified"] != false || out["failureReason"] != "CODE_INVALID_OR_EXPIRED" || out["phoneNumber"] != nil {
			t.Errorf("got %v", out)
		}
		if f.Attempts(id) != 1 {
			t.Errorf("attempts %d", f.Attempts(id))
		}
	})
	t.Run("expired", func(t *testing.T) {
		id, code := newChallenge("v3")
		if !f.Expire(id) || f.Expire("nope") {
			t.Fatal("Expire did not report existence")
		}
		_, out := do(t, f, verifyCall(id, code))
		if out["isVerified"] != false || out["failureReason"] != "CODE_INVALID_OR_EXPIRED" {
			t.Errorf("got %v", out)
		}
	})
	t.Run("max attempts, default 5", func(t *testing.T) {
		id, code := newChallenge("v4")
		for i := range authsignalfake.DefaultMaxAttempts {
			if _, out := do(t, f, verifyCall(id, wrong(code))); out["failureReason"] != "CODE_INVALID_OR_EXPIRED" {
				t.Errorf("attempt %d: %v", i+1, out)
			}
		}
		_, out := do(t, f, verifyCall(id, code))
		if out["isVerified"] != false || out["failureReason"] != "MAX_ATTEMPTS_EXCEEDED" {
			t.Errorf("right code after the attempts ran out: %v", out)
		}
	})
	t.Run("max attempts configurable", func(t *testing.T) {
		f.SetMaxAttempts(1)
		defer f.SetMaxAttempts(authsignalfake.DefaultMaxAttempts)
		id, code := newChallenge("v5")
		do(t, f, verifyCall(id, wrong(code)))
		if _, out := do(t, f, verifyCall(id, code)); out["failureReason"] != "MAX_ATTEMPTS_EXCEEDED" {
			t.Errorf("got %v", out)
		}
	})
	t.Run("email OTP answers with the email", func(t *testing.T) {
		_, out := do(t, f, challengeCall(`{"verificationMethod":"EMAIL_OTP","action":"a","email":"ana@example.com"}`))
		id := out["challengeId"].(string)
		_, out = do(t, f, verifyCall(id, f.CodeFor(id)))
		if out["isVerified"] != true || out["email"] != "ana@example.com" || out["phoneNumber"] != nil {
			t.Errorf("got %v", out)
		}
	})
	t.Run("unknown challenge", func(t *testing.T) {
		status, out := do(t, f, verifyCall("no-such-challenge", "123456"))
		if status != 404 || out["error"] != "not_found" {
			t.Errorf("got %d %v", status, out)
		}
	})
}

func TestRejectsMalformedRequests(t *testing.T) {
	cases := []struct {
		name       string
		c          call
		edit       func(c *call)
		wantStatus int
		wantCode   string
	}{
		{"wrong secret", challengeCall(smsBody), func(c *call) { c.auth = basic("other", "") }, 401, "unauthorized"},
		{"no auth", challengeCall(smsBody), func(c *call) { c.auth = "" }, 401, "unauthorized"},
		{"non-empty password", challengeCall(smsBody), func(c *call) { c.auth = basic(secret, secret) }, 401, "unauthorized"},
		{"verify with wrong secret", verifyCall("c", "123456"), func(c *call) { c.auth = basic("x", "") }, 401, "unauthorized"},
		{"text content type", challengeCall(smsBody), func(c *call) { c.contentType = "text/plain" }, 415, "invalid_request"},
		{"no content type on verify", verifyCall("c", "1"), func(c *call) { c.contentType = "" }, 415, "invalid_request"},
		{"GET", challengeCall(smsBody), func(c *call) { c.method = http.MethodGet; c.body = "" }, 405, "invalid_request"},
		{"unknown endpoint", challengeCall(smsBody), func(c *call) { c.path = "/challenges" }, 404, "not_found"},
		{"not JSON", challengeCall("verificationMethod=SMS"), nil, 400, "invalid_request"},
		{"unknown field", challengeCall(`{"verificationMethod":"SMS","action":"a","phone":"+14155552671"}`), nil, 400, "invalid_request"},
		{"field of the wrong type", challengeCall(`{"verificationMethod":"SMS","action":"a","phoneNumber":14155552671}`), nil, 400, "invalid_request"},
		{"no verificationMethod", challengeCall(`{"action":"a","phoneNumber":"+14155552671"}`), nil, 400, "invalid_request"},
		{"verificationMethod not in the enum", challengeCall(`{"verificationMethod":"EMAIL","action":"a","email":"a@example.com"}`), nil, 400, "invalid_request"},
		{"no action", challengeCall(`{"verificationMethod":"SMS","phoneNumber":"+14155552671"}`), nil, 400, "invalid_request"},
		{"SMS without phoneNumber", challengeCall(`{"verificationMethod":"SMS","action":"a","email":"a@example.com"}`), nil, 400, "invalid_request"},
		{"WhatsApp without phoneNumber", challengeCall(`{"verificationMethod":"WHATSAPP","action":"a"}`), nil, 400, "invalid_request"},
		{"email OTP without email", challengeCall(`{"verificationMethod":"EMAIL_OTP","action":"a","phoneNumber":"+14155552671"}`), nil, 400, "invalid_request"},
		{"number not E.164", challengeCall(`{"verificationMethod":"SMS","action":"a","phoneNumber":"+1 (415) 555-2671"}`), nil, 400, "invalid_request"},
		{"number without +", challengeCall(`{"verificationMethod":"SMS","action":"a","phoneNumber":"14155552671"}`), nil, 400, "invalid_request"},
		{"number too long", challengeCall(`{"verificationMethod":"SMS","action":"a","phoneNumber":"+1415555267123456"}`), nil, 400, "invalid_request"},
		{"bad email", challengeCall(`{"verificationMethod":"EMAIL_OTP","action":"a","email":"Ana <ana@example.com>"}`), nil, 400, "invalid_request"},
		{"bad smsChannel", challengeCall(`{"verificationMethod":"SMS","action":"a","phoneNumber":"+14155552671","smsChannel":"VOICE"}`), nil, 400, "invalid_request"},
		{"verify without code", verifyCall("c", ""), nil, 400, "invalid_request"},
		{"verify without challengeId", verifyCall("", "123456"), nil, 400, "invalid_request"},
		{"verify with a numeric code", call{method: http.MethodPost, path: "/verify", auth: basic(secret, ""), contentType: "application/json",
			body: `{"challengeId":"c","verificationCode":123456}`}, nil, 400, "invalid_request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := authsignalfake.New(secret)
			defer f.Close()
			c := tc.c
			if tc.edit != nil {
				tc.edit(&c)
			}
			status, out := do(t, f, c)
			if status != tc.wantStatus || out["error"] != tc.wantCode || out["errorCode"] != tc.wantCode {
				t.Errorf("got %d %v, want %d with error and errorCode %q", status, out, tc.wantStatus, tc.wantCode)
			}
			if d, _ := out["errorDescription"].(string); d == "" {
				t.Errorf("no errorDescription in %v", out)
			}
			if f.Sends() != 0 {
				t.Errorf("a refused challenge was sent")
			}
			if r := f.Requests(); len(r) != 1 || r[0].Accepted() || r[0].ErrorCode != tc.wantCode {
				t.Errorf("recorded %+v", r)
			}
		})
	}
}

func TestServedUnderV1(t *testing.T) {
	f := authsignalfake.New(secret)
	defer f.Close()
	if !strings.HasSuffix(f.URL(), "/v1") {
		t.Errorf("URL %q, want the /v1 base like https://api.authsignal.com/v1", f.URL())
	}
	do(t, f, challengeCall(smsBody))
	if p := f.Requests()[0].Path; p != "/v1/challenge" {
		t.Errorf("path %q", p)
	}
}

func TestKnobsAndRecords(t *testing.T) {
	f := authsignalfake.New(secret)
	defer f.Close()
	f.FailNext(1, 503, "")
	if status, out := do(t, f, challengeCall(smsBody)); status != 503 || out["error"] != "internal_error" {
		t.Errorf("injected: %d %v", status, out)
	}
	if f.Sends() != 0 {
		t.Errorf("an injected failure sent a code")
	}
	f.MalformedNext(1)
	req, _ := http.NewRequest(http.MethodPost, f.URL()+"/challenge", strings.NewReader(smsBody))
	req.SetBasicAuth(secret, "")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || json.Valid(raw) || f.Sends() != 1 {
		t.Errorf("malformed: %d %q sends %d; want 200, broken JSON, the code sent", resp.StatusCode, raw, f.Sends())
	}
	if status, out := do(t, f, challengeCall(smsBody)); status != 200 || out["challengeId"] == nil {
		t.Errorf("MalformedNext(1) spoiled more than one answer: %d %v", status, out)
	}
	_, out := do(t, f, challengeCall(smsBody))
	id := out["challengeId"].(string)
	do(t, f, verifyCall(id, "123"))

	reqs := f.Requests()
	if len(reqs) != 5 || f.Count() != 5 {
		t.Fatalf("recorded %d, count %d, want 5", len(reqs), f.Count())
	}
	if reqs[0].Status != 503 || reqs[0].Challenge.IdempotencyKey != "k1" {
		t.Errorf("first record %+v", reqs[0])
	}
	last := reqs[4]
	if last.Verify.ChallengeID != id || last.Verify.VerificationCode != "123" || last.Challenge.Action != "" {
		t.Errorf("verify record decoded as %+v / %+v", last.Verify, last.Challenge)
	}
	if user, pass, ok := last.BasicAuth(); !ok || user != secret || pass != "" {
		t.Errorf("recorded auth %q:%q", user, pass)
	}
}
