package authsignal_test

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ivr-bridge/ivr-bridge/internal/callsession"
	"github.com/ivr-bridge/ivr-bridge/internal/providers/authsignal"
	"github.com/ivr-bridge/ivr-bridge/internal/providers/authsignal/authsignalfake"
)

const secret = "as_secret_test"

func sendRequest(ch callsession.Channel) callsession.SendRequest {
	return callsession.SendRequest{
		ReferenceID: "CA1234567890ABCDE", PhoneNumber: "+14155552671", Country: "US", Channel: ch,
		IdempotencyKey: "ivr:CA1234567890ABCDE:1",
	}
}

func newClient(f *authsignalfake.Fake, timeout time.Duration) *authsignal.Client {
	return authsignal.New(authsignal.Config{BaseURL: f.URL(), Secret: secret, Action: "ivrVerification", Timeout: timeout})
}

func TestSendRequestAsReceived(t *testing.T) {
	email := sendRequest(callsession.ChannelEmail)
	email.Email, email.UserID, email.Locale, email.Username = "ana@example.com", "usr_1", "fr", "not-sent"
	whatsapp := sendRequest(callsession.ChannelWhatsApp)
	whatsapp.UserID = "usr_2"

	cases := []struct {
		name     string
		base     func(f *authsignalfake.Fake) string
		req      callsession.SendRequest
		wantBody map[string]string // exactly the fields sent
	}{
		{"SMS", func(f *authsignalfake.Fake) string { return f.URL() }, sendRequest(callsession.ChannelSMS),
			map[string]string{"verificationMethod": "SMS", "action": "ivrVerification", "idempotencyKey": "ivr:CA1234567890ABCDE:1",
				"phoneNumber": "+14155552671"}},
		{"WhatsApp, base URL with a trailing slash", func(f *authsignalfake.Fake) string { return f.URL() + "/" }, whatsapp,
			map[string]string{"verificationMethod": "WHATSAPP", "action": "ivrVerification", "idempotencyKey": "ivr:CA1234567890ABCDE:1",
				"phoneNumber": "+14155552671", "userId": "usr_2"}},
		{"email OTP", func(f *authsignalfake.Fake) string { return f.URL() }, email,
			map[string]string{"verificationMethod": "EMAIL_OTP", "action": "ivrVerification", "idempotencyKey": "ivr:CA1234567890ABCDE:1",
				"email": "ana@example.com", "userId": "usr_1", "locale": "fr"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := authsignalfake.New(secret) // served under /v1, like https://api.authsignal.com/v1
			defer f.Close()
			c := authsignal.New(authsignal.Config{BaseURL: tc.base(f), Secret: secret, Action: "ivrVerification", Timeout: 2 * time.Second})
			before := time.Now()
			res, err := c.Send(context.Background(), tc.req)
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			reqs := f.Requests()
			if len(reqs) != 1 || !reqs[0].Accepted() {
				t.Fatalf("fake got %+v, want one accepted request", reqs)
			}
			r := reqs[0]
			if r.Method != http.MethodPost || r.Path != "/v1/challenge" {
				t.Errorf("request %s %s, want POST /v1/challenge", r.Method, r.Path)
			}
			wantAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte(secret+":"))
			if got := r.Header.Get("Authorization"); got != wantAuth {
				t.Errorf("Authorization %q, want %q", got, wantAuth)
			}
			if got := r.Header.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type %q", got)
			}
			if len(r.Fields) != len(tc.wantBody) {
				t.Errorf("body %v, want exactly %v", r.Fields, tc.wantBody)
			}
			for k, v := range tc.wantBody {
				if got, _ := r.Fields[k].(string); got != v {
					t.Errorf("body %s = %v, want %q", k, r.Fields[k], v)
				}
			}
			if res.ProviderRef == "" || f.CodeFor(res.ProviderRef) == "" {
				t.Errorf("ProviderRef %q is not the fake's challengeId", res.ProviderRef)
			}
			if res.Channel != tc.req.Channel {
				t.Errorf("channel %s, want %s", res.Channel, tc.req.Channel)
			}
			// The fake's challenges live 10 minutes; expiresAt comes in whole seconds.
			wantExp := before.Add(authsignalfake.ChallengeTTL)
			if res.ExpiresAt.Before(wantExp.Add(-2*time.Second)) || res.ExpiresAt.After(wantExp.Add(2*time.Second)) {
				t.Errorf("ExpiresAt %s, want about %s", res.ExpiresAt, wantExp)
			}
			if f.Sends() != 1 {
				t.Errorf("sends %d, want 1", f.Sends())
			}
		})
	}
}

func TestSendMapsTheAnswer(t *testing.T) {
	cases := []struct {
		name    string
		answer  string
		wantRef string
		wantExp time.Time
	}{
		{"expiresAt in seconds", `{"challengeId":"3a991a14-690c-492b-a5e5-02b9056a4b7d","idempotencyKey":"k","expiresAt":1790000000}`,
			"3a991a14-690c-492b-a5e5-02b9056a4b7d", time.Unix(1790000000, 0).UTC()},
		{"fractional expiresAt", `{"challengeId":"c2","idempotencyKey":"k","expiresAt":1790000000.5}`,
			"c2", time.Unix(1790000000, 5e8).UTC()},
		{"no expiresAt", `{"challengeId":"c3","idempotencyKey":"k"}`, "c3", time.Time{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := authsignalfake.New(secret)
			defer f.Close()
			f.FailNext(1, 200, tc.answer)
			res, err := newClient(f, time.Second).Send(context.Background(), sendRequest(callsession.ChannelSMS))
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			if res.ProviderRef != tc.wantRef || !res.ExpiresAt.Equal(tc.wantExp) || res.Channel != callsession.ChannelSMS {
				t.Errorf("result %+v, want ref %q expiry %s", res, tc.wantRef, tc.wantExp)
			}
		})
	}
}

func TestSendErrors(t *testing.T) {
	cases := []struct {
		name       string
		timeout    time.Duration // 0: one second, room for three attempts
		setup      func(f *authsignalfake.Fake)
		secret     string
		req        func() callsession.SendRequest
		wantKind   callsession.ProviderErrorKind
		wantStatus int
		wantCode   string
		wantRetry  time.Duration
		wantCount  int // requests the fake got: 1 when not retried, 3 when every attempt failed
		wantSends  int // codes the fake sent
	}{
		{name: "wrong secret", secret: "wrong", wantKind: callsession.ProviderRejected, wantStatus: 401, wantCode: "unauthorized", wantCount: 1},
		{name: "number not E.164", req: func() callsession.SendRequest {
			r := sendRequest(callsession.ChannelSMS)
			r.PhoneNumber = "004415555267"
			return r
		}, wantKind: callsession.ProviderBadDestination, wantStatus: 400, wantCode: "invalid_request", wantCount: 1},
		{name: "email refused", req: func() callsession.SendRequest {
			r := sendRequest(callsession.ChannelEmail)
			r.Email = "ana@"
			return r
		}, wantKind: callsession.ProviderBadDestination, wantStatus: 400, wantCode: "invalid_request", wantCount: 1},
		{name: "400 not retried", setup: func(f *authsignalfake.Fake) {
			f.FailNext(1, 400, `{"error":"invalid_request","errorDescription":"action is required"}`)
		}, wantKind: callsession.ProviderRejected, wantStatus: 400, wantCode: "invalid_request", wantCount: 1},
		{name: "422 number refused", setup: func(f *authsignalfake.Fake) {
			f.FailNext(1, 422, `{"errorCode":"invalid_request","errorDescription":"phoneNumber is not a valid phone number"}`)
		}, wantKind: callsession.ProviderBadDestination, wantStatus: 422, wantCode: "invalid_request", wantCount: 1},
		{name: "404", setup: func(f *authsignalfake.Fake) { f.FailNext(1, 404, "") },
			wantKind: callsession.ProviderNotFound, wantStatus: 404, wantCode: "not_found", wantCount: 1},
		{name: "429 with Retry-After, not retried", setup: func(f *authsignalfake.Fake) {
			f.FailNextHeader(1, 429, http.Header{"Retry-After": {"12"}}, "")
		}, wantKind: callsession.ProviderUnavailable, wantStatus: 429, wantCode: "too_many_requests", wantRetry: 12 * time.Second, wantCount: 1},
		{name: "500 on every attempt", setup: func(f *authsignalfake.Fake) { f.FailNext(5, 500, "") },
			wantKind: callsession.ProviderUnavailable, wantStatus: 500, wantCode: "internal_error", wantCount: 3},
		{name: "503 on every attempt", setup: func(f *authsignalfake.Fake) { f.FailNext(5, 503, "") },
			wantKind: callsession.ProviderUnavailable, wantStatus: 503, wantCode: "internal_error", wantCount: 3},
		{name: "unreadable 2xx on every attempt", setup: func(f *authsignalfake.Fake) { f.SetMalformed(true) },
			wantKind: callsession.ProviderUnavailable, wantCount: 3, wantSends: 1},
		{name: "2xx without challengeId on every attempt", setup: func(f *authsignalfake.Fake) { f.FailNext(5, 200, `{"expiresAt":1}`) },
			wantKind: callsession.ProviderUnavailable, wantCount: 3},
		// 300ms leave no room for a second attempt.
		{name: "no answer within the timeout", setup: func(f *authsignalfake.Fake) { f.SetDelay(5 * time.Second) },
			timeout: 300 * time.Millisecond, wantKind: callsession.ProviderTimeout, wantCount: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := authsignalfake.New(secret)
			defer f.Close()
			if tc.setup != nil {
				tc.setup(f)
			}
			sec := secret
			if tc.secret != "" {
				sec = tc.secret
			}
			timeout := time.Second
			if tc.timeout != 0 {
				timeout = tc.timeout
			}
			c := authsignal.New(authsignal.Config{BaseURL: f.URL(), Secret: sec, Timeout: timeout})
			req := sendRequest(callsession.ChannelSMS)
			if tc.req != nil {
				req = tc.req()
			}
			start := time.Now()
			_, err := c.Send(context.Background(), req)
			elapsed := time.Since(start)

			pe := providerError(t, err)
			if pe.Kind != tc.wantKind || pe.HTTPStatus != tc.wantStatus || pe.Code != tc.wantCode || pe.RetryAfter != tc.wantRetry {
				t.Errorf("got kind %d status %d code %q retry %s, want kind %d status %d code %q retry %s (%v)",
					pe.Kind, pe.HTTPStatus, pe.Code, pe.RetryAfter, tc.wantKind, tc.wantStatus, tc.wantCode, tc.wantRetry, err)
			}
			if pe.Provider != callsession.ProviderAuthsignal {
				t.Errorf("provider %q", pe.Provider)
			}
			if elapsed > timeout+200*time.Millisecond {
				t.Errorf("Send took %s, beyond its timeout %s", elapsed, timeout)
			}
			if n := f.Count(); n != tc.wantCount {
				t.Errorf("fake got %d requests, want %d", n, tc.wantCount)
			}
			if f.Sends() != tc.wantSends {
				t.Errorf("the fake sent %d codes, want %d", f.Sends(), tc.wantSends)
			}
		})
	}
}

func TestSendRetriesWithTheSameIdempotencyKey(t *testing.T) {
	cases := []struct {
		name  string
		setup func(f *authsignalfake.Fake)
		// timeout bounds Send; wantCount requests reach the fake.
		timeout   time.Duration
		wantCount int
	}{
		{"503 then 200", func(f *authsignalfake.Fake) { f.FailNext(1, 503, "") }, time.Second, 2},
		{"500, 502 then 200", func(f *authsignalfake.Fake) { f.FailNext(1, 500, ""); f.FailNext(1, 502, "<html>") }, time.Second, 3},
		// The first attempt creates the challenge and sends the code, but its answer is lost.
		{"unreadable answer, then the same challenge", func(f *authsignalfake.Fake) { f.MalformedNext(1) }, time.Second, 2},
		// A hung first attempt gets half the budget, then the retry finds the answer.
		{"first attempt hangs", func(f *authsignalfake.Fake) { f.DelayNext(1, 10*time.Second) }, 2400 * time.Millisecond, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := authsignalfake.New(secret)
			defer f.Close()
			tc.setup(f)
			start := time.Now()
			res, err := newClient(f, tc.timeout).Send(context.Background(), sendRequest(callsession.ChannelSMS))
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			if el := time.Since(start); el > tc.timeout+time.Second { // slack for a loaded -race run
				t.Errorf("took %s, beyond the timeout %s", el, tc.timeout)
			}
			reqs := f.Requests()
			if len(reqs) != tc.wantCount {
				t.Fatalf("fake got %d requests, want %d", len(reqs), tc.wantCount)
			}
			for i, r := range reqs {
				if r.Challenge.IdempotencyKey != "ivr:CA1234567890ABCDE:1" {
					t.Errorf("attempt %d idempotencyKey %q", i+1, r.Challenge.IdempotencyKey)
				}
			}
			if f.Sends() != 1 {
				t.Errorf("%d codes sent, want exactly 1", f.Sends())
			}
			if f.CodeFor(res.ProviderRef) == "" {
				t.Errorf("ProviderRef %q is not the challenge sent", res.ProviderRef)
			}
		})
	}
}

func TestSendWithoutIdempotencyKeyIsNotRetried(t *testing.T) {
	f := authsignalfake.New(secret)
	defer f.Close()
	f.FailNext(1, 503, "")
	req := sendRequest(callsession.ChannelSMS)
	req.IdempotencyKey = ""
	_, err := newClient(f, time.Second).Send(context.Background(), req)
	if pe := providerError(t, err); pe.Kind != callsession.ProviderUnavailable {
		t.Errorf("kind %d: %v", pe.Kind, err)
	}
	if f.Count() != 1 {
		t.Errorf("fake got %d requests: a start without idempotency key must not be repeated", f.Count())
	}
	if f.Requests()[0].Has("idempotencyKey") {
		t.Errorf("an empty idempotencyKey was sent")
	}
}

func TestSendStaysInsideTheCallersDeadline(t *testing.T) {
	f := authsignalfake.New(secret)
	defer f.Close()
	f.SetDelay(5 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := newClient(f, 4*time.Second).Send(ctx, sendRequest(callsession.ChannelSMS))
	if pe := providerError(t, err); pe.Kind != callsession.ProviderTimeout {
		t.Errorf("kind %d, want timeout: %v", pe.Kind, err)
	}
	if el := time.Since(start); el > 3*time.Second { // the fake holds its answer 5s
		t.Errorf("took %s, beyond the caller's deadline of 200ms", el)
	}
}

func TestSendConnectionRefused(t *testing.T) {
	f := authsignalfake.New(secret)
	url := f.URL()
	f.Close()
	c := authsignal.New(authsignal.Config{BaseURL: url, Secret: secret, Timeout: time.Second})
	start := time.Now()
	_, err := c.Send(context.Background(), sendRequest(callsession.ChannelSMS))
	if pe := providerError(t, err); pe.Kind != callsession.ProviderUnavailable || pe.HTTPStatus != 0 {
		t.Errorf("got kind %d status %d, want unavailable: %v", pe.Kind, pe.HTTPStatus, err)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("took %s", el)
	}
}

func TestSendRefusedBeforeAnyCall(t *testing.T) {
	cases := []struct {
		name     string
		base     string
		req      func() callsession.SendRequest
		wantKind callsession.ProviderErrorKind
	}{
		{"unknown channel", "", func() callsession.SendRequest { return sendRequest("VOICE") }, callsession.ProviderRejected},
		{"email channel without an email", "", func() callsession.SendRequest { return sendRequest(callsession.ChannelEmail) }, callsession.ProviderRejected},
		{"SMS without a number", "", func() callsession.SendRequest {
			r := sendRequest(callsession.ChannelSMS)
			r.PhoneNumber = ""
			return r
		}, callsession.ProviderRejected},
		{"relative base URL", "api.authsignal.com/v1", func() callsession.SendRequest { return sendRequest(callsession.ChannelSMS) }, callsession.ProviderUnavailable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := authsignalfake.New(secret)
			defer f.Close()
			base := tc.base
			if base == "" {
				base = f.URL()
			}
			c := authsignal.New(authsignal.Config{BaseURL: base, Secret: secret})
			_, err := c.Send(context.Background(), tc.req())
			if pe := providerError(t, err); pe.Kind != tc.wantKind {
				t.Errorf("kind %d, want %d: %v", pe.Kind, tc.wantKind, err)
			}
			if f.Count() != 0 {
				t.Errorf("fake got %d requests, want none", f.Count())
			}
		})
	}
}

func TestDefaultActionAndBaseURL(t *testing.T) {
	f := authsignalfake.New(secret)
	defer f.Close()
	c := authsignal.New(authsignal.Config{BaseURL: f.URL(), Secret: secret})
	if _, err := c.Send(context.Background(), sendRequest(callsession.ChannelSMS)); err != nil {
		t.Fatal(err)
	}
	if got := f.Requests()[0].Challenge.Action; got != authsignal.DefaultAction {
		t.Errorf("action %q, want %q", got, authsignal.DefaultAction)
	}

	// No base URL: Authsignal's US region (a cancelled context keeps the request home).
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := authsignal.New(authsignal.Config{Secret: secret}).Check(ctx, &callsession.Session{ChallengeID: "c"}, "123456")
	if err == nil || !strings.Contains(err.Error(), "https://api.authsignal.com/v1/verify") {
		t.Errorf("got %v, want a request to https://api.authsignal.com/v1/verify", err)
	}
}

func TestCheck(t *testing.T) {
	type step struct {
		code func(right string) string
		want callsession.CheckOutcome
	}
	right := func(r string) string { return r }
	wrong := func(r string) string {
		if r == "000000" {
			return "111111"
		}
		return "000000"
	}
	cases := []struct {
		name  string
		setup func(f *authsignalfake.Fake, challengeID string)
		steps []step
	}{
		{"right code", nil, []step{{right, callsession.CodeAccepted}}},
		{"wrong, then right", nil, []step{{wrong, callsession.CodeRejected}, {right, callsession.CodeAccepted}}},
		{"a code verifies once", nil, []step{{right, callsession.CodeAccepted}, {right, callsession.CodeRejected}}},
		{"expired: rejected, the session's clock decides", func(f *authsignalfake.Fake, id string) { f.Expire(id) },
			[]step{{right, callsession.CodeRejected}}},
		{"attempts run out at the provider", func(f *authsignalfake.Fake, _ string) { f.SetMaxAttempts(2) },
			[]step{{wrong, callsession.CodeRejected}, {wrong, callsession.CodeRejected}, {right, callsession.CheckFailed}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := authsignalfake.New(secret)
			defer f.Close()
			c := newClient(f, time.Second)
			res, err := c.Send(context.Background(), sendRequest(callsession.ChannelSMS))
			if err != nil {
				t.Fatal(err)
			}
			if tc.setup != nil {
				tc.setup(f, res.ProviderRef)
			}
			sess := &callsession.Session{ReferenceID: "CA1234567890ABCDE", Provider: callsession.ProviderAuthsignal, ChallengeID: res.ProviderRef}
			code := f.CodeFor(res.ProviderRef)
			for i, s := range tc.steps {
				got, err := c.Check(context.Background(), sess, s.code(code))
				if err != nil || got != s.want {
					t.Errorf("step %d: got %d, %v; want %d", i+1, got, err, s.want)
				}
			}
			if n := f.Attempts(res.ProviderRef); n != len(tc.steps) {
				t.Errorf("the provider counted %d attempts, want %d (one per Check)", n, len(tc.steps))
			}
		})
	}
}

func TestCheckRequestAsReceived(t *testing.T) {
	f := authsignalfake.NewWithPrefix(secret, "/gw/authsignal/v1")
	defer f.Close()
	c := newClient(f, time.Second)
	res, err := c.Send(context.Background(), sendRequest(callsession.ChannelSMS))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Check(context.Background(), &callsession.Session{ChallengeID: res.ProviderRef}, "042042"); err != nil {
		t.Fatal(err)
	}
	r := f.Requests()[1]
	if r.Method != http.MethodPost || r.Path != "/gw/authsignal/v1/verify" {
		t.Errorf("request %s %s, want POST /gw/authsignal/v1/verify", r.Method, r.Path)
	}
	if user, pass, ok := r.BasicAuth(); !ok || user != secret || pass != "" {
		t.Errorf("Basic auth %q:%q (%v)", user, pass, ok)
	}
	if r.Header.Get("Content-Type") != "application/json" {
		t.Errorf("Content-Type %q", r.Header.Get("Content-Type"))
	}
	if len(r.Fields) != 2 || r.Verify.ChallengeID != res.ProviderRef || r.Verify.VerificationCode != "042042" {
		t.Errorf("body %v", r.Fields)
	}
}

func TestCheckAnswers(t *testing.T) {
	cases := []struct {
		name       string
		status     int
		header     http.Header
		body       string
		wantOut    callsession.CheckOutcome
		wantKind   callsession.ProviderErrorKind // 0: no error
		wantStatus int
		wantRetry  time.Duration
	}{
		{name: "verified", status: 200, body: `{"isVerified":true,"phoneNumber":"+14155552671"}`, wantOut: callsession.CodeAccepted},
		{name: "invalid or expired", status: 200, body: `{"isVerified":false,"failureReason":"CODE_INVALID_OR_EXPIRED"}`, wantOut: callsession.CodeRejected},
		{name: "no reason", status: 200, body: `{"isVerified":false}`, wantOut: callsession.CodeRejected},
		{name: "undocumented reason", status: 200, body: `{"isVerified":false,"failureReason":"SOMETHING_NEW"}`, wantOut: callsession.CodeRejected},
		{name: "max attempts", status: 200, body: `{"isVerified":false,"failureReason":"MAX_ATTEMPTS_EXCEEDED"}`, wantOut: callsession.CheckFailed},
		{name: "no isVerified", status: 200, body: `{"failureReason":"CODE_INVALID_OR_EXPIRED"}`, wantKind: callsession.ProviderUnavailable},
		{name: "unreadable", status: 200, body: `{"isVerified":`, wantKind: callsession.ProviderUnavailable},
		{name: "401", status: 401, body: `{"error":"unauthorized","errorDescription":"Invalid credentials"}`,
			wantKind: callsession.ProviderRejected, wantStatus: 401},
		{name: "unknown challenge", status: 404, body: "", wantKind: callsession.ProviderNotFound, wantStatus: 404},
		{name: "429", status: 429, header: http.Header{"Retry-After": {"60"}}, body: "",
			wantKind: callsession.ProviderUnavailable, wantStatus: 429, wantRetry: time.Minute},
		{name: "503 not retried", status: 503, body: "", wantKind: callsession.ProviderUnavailable, wantStatus: 503},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := authsignalfake.New(secret)
			defer f.Close()
			f.FailNextHeader(1, tc.status, tc.header, tc.body)
			out, err := newClient(f, time.Second).Check(context.Background(), &callsession.Session{ChallengeID: "c-1"}, "123456")
			if tc.wantKind == 0 {
				if err != nil || out != tc.wantOut {
					t.Errorf("got %d, %v; want %d", out, err, tc.wantOut)
				}
			} else {
				pe := providerError(t, err)
				if pe.Kind != tc.wantKind || pe.HTTPStatus != tc.wantStatus || pe.RetryAfter != tc.wantRetry {
					t.Errorf("got kind %d status %d retry %s, want %d %d %s (%v)", pe.Kind, pe.HTTPStatus, pe.RetryAfter,
						tc.wantKind, tc.wantStatus, tc.wantRetry, err)
				}
			}
			if f.Count() != 1 {
				t.Errorf("fake got %d requests: /verify is never retried", f.Count())
			}
		})
	}
}

func TestCheckUnknownChallengeAtTheFake(t *testing.T) {
	f := authsignalfake.New(secret)
	defer f.Close()
	_, err := newClient(f, time.Second).Check(context.Background(), &callsession.Session{ChallengeID: "no-such"}, "123456")
	if pe := providerError(t, err); pe.Kind != callsession.ProviderNotFound {
		t.Errorf("kind %d: %v", pe.Kind, err)
	}
}

func TestCheckTimeoutAndRefusal(t *testing.T) {
	f := authsignalfake.New(secret)
	defer f.Close()
	f.SetDelay(3 * time.Second)
	c := newClient(f, 200*time.Millisecond)
	start := time.Now()
	_, err := c.Check(context.Background(), &callsession.Session{ChallengeID: "c"}, "123456")
	if pe := providerError(t, err); pe.Kind != callsession.ProviderTimeout {
		t.Errorf("kind %d, want timeout: %v", pe.Kind, err)
	}
	if el := time.Since(start); el > 2*time.Second { // the fake holds its answer 3s
		t.Errorf("took %s", el)
	}
	if f.Count() != 1 {
		t.Errorf("fake got %d requests, want 1", f.Count())
	}

	_, err = c.Check(context.Background(), &callsession.Session{ReferenceID: "r"}, "123456")
	if pe := providerError(t, err); pe.Kind != callsession.ProviderRejected {
		t.Errorf("a session without challengeId: kind %d: %v", pe.Kind, err)
	}
	if f.Count() != 1 {
		t.Errorf("a session without challengeId reached the provider")
	}
}

func TestCancelAndName(t *testing.T) {
	f := authsignalfake.New(secret)
	defer f.Close()
	c := newClient(f, time.Second)
	if err := c.Cancel(context.Background(), &callsession.Session{ChallengeID: "c"}); err != nil {
		t.Errorf("Cancel: %v", err)
	}
	if f.Count() != 0 {
		t.Errorf("Cancel called the provider")
	}
	if c.Name() != callsession.ProviderAuthsignal {
		t.Errorf("Name %q", c.Name())
	}
}

func providerError(t *testing.T, err error) *callsession.ProviderError {
	t.Helper()
	var pe *callsession.ProviderError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *callsession.ProviderError", err, err)
	}
	return pe
}
