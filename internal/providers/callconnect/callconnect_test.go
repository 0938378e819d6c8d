package callconnect_test

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ivr-bridge/ivr-bridge/internal/callsession"
	"github.com/ivr-bridge/ivr-bridge/internal/providers/callconnect"
	"github.com/ivr-bridge/ivr-bridge/internal/providers/callconnect/callconnectfake"
)

const secret = "cc_secret_test"

func sendRequest() callsession.SendRequest {
	return callsession.SendRequest{
		ReferenceID: "CA1234567890ABCDE", PhoneNumber: "+14155552671", Country: "US",
		Channel: callsession.ChannelSMS, IdempotencyKey: "ignored-by-call-connect",
	}
}

func TestSendRequestAsReceived(t *testing.T) {
	full := sendRequest()
	full.Channel = callsession.ChannelWhatsApp
	full.UserID, full.Username, full.Email, full.Locale = "usr_1", "cust-42", "ana@example.com", "en-US"

	cases := []struct {
		name     string
		base     func(f *callconnectfake.Fake) string
		req      callsession.SendRequest
		wantBody map[string]string // fields that must be present, with their values
		absent   []string          // fields that must not be sent
	}{
		{
			name: "minimal, base URL with a path prefix",
			base: func(f *callconnectfake.Fake) string { return f.URL() },
			req:  sendRequest(),
			wantBody: map[string]string{"referenceId": "CA1234567890ABCDE", "phoneNumber": "+14155552671",
				"channel": "SMS"},
			absent: []string{"userId", "username", "email", "locale", "country"},
		},
		{
			name: "every optional field, base URL with a trailing slash",
			base: func(f *callconnectfake.Fake) string { return f.URL() + "/" },
			req:  full,
			wantBody: map[string]string{"referenceId": "CA1234567890ABCDE", "phoneNumber": "+14155552671",
				"channel": "WHATSAPP", "userId": "usr_1", "username": "cust-42", "email": "ana@example.com", "locale": "en-US"},
			absent: []string{"country"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := callconnectfake.NewWithPrefix(secret, "/gw/callconnect")
			defer f.Close()
			c := callconnect.New(callconnect.Config{BaseURL: tc.base(f), Secret: secret, Timeout: 2 * time.Second})

			res, err := c.Send(context.Background(), tc.req)
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			reqs := f.Requests()
			if len(reqs) != 1 {
				t.Fatalf("fake got %d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if !r.Accepted() {
				t.Fatalf("fake refused the request: %d %s %s", r.Status, r.ErrorCode, r.ErrorDescription)
			}
			if r.Method != http.MethodPost || r.Path != "/gw/callconnect/call/start" {
				t.Errorf("request %s %s, want POST /gw/callconnect/call/start", r.Method, r.Path)
			}
			wantAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte(secret+":"))
			if got := r.Header.Get("Authorization"); got != wantAuth {
				t.Errorf("Authorization %q, want %q", got, wantAuth)
			}
			if got := r.Header.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type %q, want application/json", got)
			}
			for k, v := range tc.wantBody {
				if got, _ := r.Fields[k].(string); got != v {
					t.Errorf("body %s = %v, want %q", k, r.Fields[k], v)
				}
			}
			for _, k := range tc.absent {
				if r.Has(k) {
					t.Errorf("body carries %s, which must be left out", k)
				}
			}
			if len(r.Fields) != len(tc.wantBody) {
				t.Errorf("body has %d fields %v, want %d", len(r.Fields), r.Fields, len(tc.wantBody))
			}
			if res.ProviderRef == "" || res.Channel != tc.req.Channel {
				t.Errorf("result %+v, want a messageId and channel %s", res, tc.req.Channel)
			}
			if f.Sends() != 1 {
				t.Errorf("fake sent %d messages, want 1", f.Sends())
			}
		})
	}
}

func TestSendMapsTheAnswer(t *testing.T) {
	cases := []struct {
		name    string
		asked   callsession.Channel
		answer  string
		wantRef string
		wantCh  callsession.Channel
	}{
		{"messageId and the channel used", callsession.ChannelSMS, `{"messageId":"ef6b3212-6121-4a9e-92ef-09d819e36e93","channel":"WHATSAPP"}`,
			"ef6b3212-6121-4a9e-92ef-09d819e36e93", callsession.ChannelWhatsApp},
		{"no channel in the answer: the one asked for", callsession.ChannelWhatsApp, `{"messageId":"m-2"}`, "m-2", callsession.ChannelWhatsApp},
		{"unknown channel in the answer: the one asked for", callsession.ChannelSMS, `{"messageId":"m-3","channel":"PIGEON"}`, "m-3", callsession.ChannelSMS},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := callconnectfake.New(secret)
			defer f.Close()
			f.FailNext(1, http.StatusOK, tc.answer)
			c := callconnect.New(callconnect.Config{BaseURL: f.URL(), Secret: secret})
			req := sendRequest()
			req.Channel = tc.asked
			res, err := c.Send(context.Background(), req)
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			if res.ProviderRef != tc.wantRef || res.Channel != tc.wantCh {
				t.Errorf("result %+v, want ref %q channel %s", res, tc.wantRef, tc.wantCh)
			}
			if !res.ExpiresAt.IsZero() || res.MaxAttempts != 0 {
				t.Errorf("result %+v claims an expiry or attempt limit Call Connect never gives", res)
			}
		})
	}
}

func TestSendErrors(t *testing.T) {
	const timeout = 300 * time.Millisecond
	cases := []struct {
		name       string
		setup      func(f *callconnectfake.Fake)
		secret     string
		phone      string
		wantKind   callsession.ProviderErrorKind
		wantStatus int
		wantCode   string
		wantRetry  time.Duration
	}{
		{name: "wrong secret", secret: "wrong", wantKind: callsession.ProviderRejected, wantStatus: 401, wantCode: "unauthorized"},
		{name: "number not E.164", phone: "4155552671", wantKind: callsession.ProviderBadDestination, wantStatus: 400, wantCode: "invalid_request"},
		{name: "400 invalid request", setup: func(f *callconnectfake.Fake) {
			f.FailNext(1, 400, `{"error":"invalid_request","errorDescription":"referenceId is required"}`)
		}, wantKind: callsession.ProviderRejected, wantStatus: 400, wantCode: "invalid_request"},
		{name: "422 number refused", setup: func(f *callconnectfake.Fake) {
			f.FailNext(1, 422, `{"error":"invalid_request","errorCode":"invalid_phone_number","errorDescription":"The phone number is not a valid mobile number"}`)
		}, wantKind: callsession.ProviderBadDestination, wantStatus: 422, wantCode: "invalid_phone_number"},
		{name: "404", setup: func(f *callconnectfake.Fake) { f.FailNext(1, 404, "") },
			wantKind: callsession.ProviderNotFound, wantStatus: 404, wantCode: "not_found"},
		{name: "429 with Retry-After", setup: func(f *callconnectfake.Fake) {
			f.FailNextHeader(1, 429, http.Header{"Retry-After": {"7"}}, "")
		}, wantKind: callsession.ProviderUnavailable, wantStatus: 429, wantCode: "too_many_requests", wantRetry: 7 * time.Second},
		{name: "500", setup: func(f *callconnectfake.Fake) { f.FailNext(1, 500, "") },
			wantKind: callsession.ProviderUnavailable, wantStatus: 500, wantCode: "internal_error"},
		{name: "503 not retried", setup: func(f *callconnectfake.Fake) { f.FailNext(1, 503, "") },
			wantKind: callsession.ProviderUnavailable, wantStatus: 503, wantCode: "internal_error"},
		{name: "502 from a proxy, not JSON", setup: func(f *callconnectfake.Fake) { f.FailNext(1, 502, "<html>Bad Gateway</html>") },
			wantKind: callsession.ProviderUnavailable, wantStatus: 502},
		{name: "2xx unreadable", setup: func(f *callconnectfake.Fake) { f.SetMalformed(true) },
			wantKind: callsession.ProviderUnavailable},
		{name: "2xx without messageId", setup: func(f *callconnectfake.Fake) { f.FailNext(1, 200, `{"channel":"SMS"}`) },
			wantKind: callsession.ProviderUnavailable},
		// The decoder's error quotes what it read; the error is logged and kept in events.
		{name: "2xx not JSON, quoting the number", setup: func(f *callconnectfake.Fake) { f.FailNext(1, 200, `sent to +14155552671`) },
			wantKind: callsession.ProviderUnavailable},
		{name: "2xx with the number where a string belongs", setup: func(f *callconnectfake.Fake) {
			f.FailNext(1, 200, `{"messageId":14155552671}`)
		}, wantKind: callsession.ProviderUnavailable},
		{name: "no answer within the timeout", setup: func(f *callconnectfake.Fake) { f.SetDelay(5 * time.Second) },
			wantKind: callsession.ProviderTimeout},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := callconnectfake.New(secret)
			defer f.Close()
			if tc.setup != nil {
				tc.setup(f)
			}
			sec := secret
			if tc.secret != "" {
				sec = tc.secret
			}
			c := callconnect.New(callconnect.Config{BaseURL: f.URL(), Secret: sec, Timeout: timeout})
			req := sendRequest()
			if tc.phone != "" {
				req.PhoneNumber = tc.phone
			}
			start := time.Now()
			_, err := c.Send(context.Background(), req)
			elapsed := time.Since(start)

			pe := providerError(t, err)
			if pe.Kind != tc.wantKind || pe.HTTPStatus != tc.wantStatus || pe.Code != tc.wantCode || pe.RetryAfter != tc.wantRetry {
				t.Errorf("got kind %d status %d code %q retry %s, want kind %d status %d code %q retry %s (%v)",
					pe.Kind, pe.HTTPStatus, pe.Code, pe.RetryAfter, tc.wantKind, tc.wantStatus, tc.wantCode, tc.wantRetry, err)
			}
			if pe.Provider != callsession.ProviderCallConnect {
				t.Errorf("provider %q", pe.Provider)
			}
			if strings.Contains(err.Error(), "5552671") {
				t.Errorf("the error quotes the number: %v", err)
			}
			if elapsed > timeout+time.Second {
				t.Errorf("Send took %s, want about the timeout %s at most", elapsed, timeout)
			}
			if n := f.Count(); n != 1 {
				t.Errorf("fake got %d requests, want exactly 1: /call/start is never retried", n)
			}
		})
	}
}

func TestSendTimeoutIsPrompt(t *testing.T) {
	f := callconnectfake.New(secret)
	defer f.Close()
	f.SetDelay(3 * time.Second)
	const timeout = 200 * time.Millisecond
	c := callconnect.New(callconnect.Config{BaseURL: f.URL(), Secret: secret, Timeout: timeout})
	start := time.Now()
	_, err := c.Send(context.Background(), sendRequest())
	elapsed := time.Since(start)
	if pe := providerError(t, err); pe.Kind != callsession.ProviderTimeout {
		t.Fatalf("kind %d, want timeout: %v", pe.Kind, err)
	}
	if elapsed < timeout || elapsed > timeout+1500*time.Millisecond {
		t.Errorf("timed out after %s, want about %s", elapsed, timeout)
	}
}

func TestSendCallerDeadlineWins(t *testing.T) {
	f := callconnectfake.New(secret)
	defer f.Close()
	f.SetDelay(3 * time.Second)
	c := callconnect.New(callconnect.Config{BaseURL: f.URL(), Secret: secret, Timeout: 2 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Send(ctx, sendRequest())
	if pe := providerError(t, err); pe.Kind != callsession.ProviderTimeout {
		t.Fatalf("kind %d, want timeout: %v", pe.Kind, err)
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second { // the fake holds its answer 3s
		t.Errorf("took %s: the caller's deadline of 150ms was not honoured", elapsed)
	}
}

func TestSendConnectionRefused(t *testing.T) {
	f := callconnectfake.New(secret)
	url := f.URL()
	f.Close()
	c := callconnect.New(callconnect.Config{BaseURL: url, Secret: secret, Timeout: time.Second})
	_, err := c.Send(context.Background(), sendRequest())
	if pe := providerError(t, err); pe.Kind != callsession.ProviderUnavailable || pe.HTTPStatus != 0 {
		t.Errorf("got kind %d status %d, want unavailable without status: %v", pe.Kind, pe.HTTPStatus, err)
	}
}

func TestSendRefusedBeforeAnyCall(t *testing.T) {
	cases := []struct {
		name     string
		base     string
		channel  callsession.Channel
		wantKind callsession.ProviderErrorKind
	}{
		{"email is not a Call Connect channel", "", callsession.ChannelEmail, callsession.ProviderRejected},
		{"relative base URL", "us-connect.authsignal.com", callsession.ChannelSMS, callsession.ProviderUnavailable},
		{"unparseable base URL", "http://[::1", callsession.ChannelSMS, callsession.ProviderUnavailable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := callconnectfake.New(secret)
			defer f.Close()
			base := tc.base
			if base == "" {
				base = f.URL()
			}
			c := callconnect.New(callconnect.Config{BaseURL: base, Secret: secret})
			req := sendRequest()
			req.Channel = tc.channel
			_, err := c.Send(context.Background(), req)
			if pe := providerError(t, err); pe.Kind != tc.wantKind {
				t.Errorf("kind %d, want %d: %v", pe.Kind, tc.wantKind, err)
			}
			if f.Count() != 0 {
				t.Errorf("fake got %d requests, want none", f.Count())
			}
		})
	}
}

func TestDefaultBaseURL(t *testing.T) {
	// An empty base URL means Call Connect's US region; a caller whose context is already
	// cancelled makes sure no request leaves the machine.
	c := callconnect.New(callconnect.Config{Secret: secret})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.Send(ctx, sendRequest())
	pe := providerError(t, err)
	if pe.Kind != callsession.ProviderUnavailable || !strings.Contains(err.Error(), "us-connect.authsignal.com/call/start") {
		t.Errorf("got %v, want a cancelled request to https://us-connect.authsignal.com/call/start", err)
	}
}

func TestCheckIsRefused(t *testing.T) {
	f := callconnectfake.New(secret)
	defer f.Close()
	c := callconnect.New(callconnect.Config{BaseURL: f.URL(), Secret: secret})
	out, err := c.Check(context.Background(), &callsession.Session{ReferenceID: "r", MessageID: "m"}, "123456")
	pe := providerError(t, err)
	if out != 0 || pe.Kind != callsession.ProviderRejected || !strings.Contains(pe.Message, "not checked by Call Connect") {
		t.Errorf("got %d, %v; want a rejection saying codes are not checked by Call Connect", out, err)
	}
	if f.Count() != 0 {
		t.Errorf("Check called the provider %d times", f.Count())
	}
}

func TestCancelAndName(t *testing.T) {
	f := callconnectfake.New(secret)
	defer f.Close()
	c := callconnect.New(callconnect.Config{BaseURL: f.URL(), Secret: secret})
	if err := c.Cancel(context.Background(), &callsession.Session{ReferenceID: "r", MessageID: "m"}); err != nil {
		t.Errorf("Cancel: %v", err)
	}
	if f.Count() != 0 {
		t.Errorf("Cancel called the provider %d times", f.Count())
	}
	if c.Name() != callsession.ProviderCallConnect {
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
