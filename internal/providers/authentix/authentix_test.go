package authentix_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ivr-bridge/ivr-bridge/internal/callsession"
	"github.com/ivr-bridge/ivr-bridge/internal/providers/authentix"
	"github.com/ivr-bridge/ivr-bridge/internal/providers/authentix/authentixfake"
)

const (
	user, key, configID = "api-user", "api-key", "CID0123456789"
	number              = "+237671234567"
)

func newClient(t *testing.T, f *authentixfake.Fake, mutate func(*authentix.Config)) *authentix.Client {
	t.Helper()
	cfg := authentix.Config{BaseURL: f.URL(), APIUser: user, APIKey: key, ConfigurationID: configID, Timeout: time.Second}
	if mutate != nil {
		mutate(&cfg)
	}
	c, err := authentix.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func providerError(t *testing.T, err error) *callsession.ProviderError {
	t.Helper()
	var pe *callsession.ProviderError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v is not a ProviderError", err)
	}
	if strings.Contains(err.Error(), number) || strings.Contains(err.Error(), "671234567") {
		t.Fatalf("the error names the number: %v", err)
	}
	return pe
}

func TestNewValidatesConfiguration(t *testing.T) {
	base := authentix.Config{BaseURL: "https://api.example/rest/authentix/v1", APIUser: user, APIKey: key, ConfigurationID: configID}
	for name, mutate := range map[string]func(*authentix.Config){
		"template map not JSON":   func(c *authentix.Config) { c.TemplateDataMap = "{'a': 1}" },
		"payment info not object": func(c *authentix.Config) { c.PaymentInfo = `[1,2]` },
		"code length 3":           func(c *authentix.Config) { c.CodeLength = 3 },
		"code length 11":          func(c *authentix.Config) { c.CodeLength = 11 },
		"base URL not http":       func(c *authentix.Config) { c.BaseURL = "ftp://x" },
		"configuration with path": func(c *authentix.Config) { c.ConfigurationID = "a/b" },
	} {
		cfg := base
		mutate(&cfg)
		if _, err := authentix.New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := authentix.New(base); err != nil {
		t.Fatalf("valid configuration refused: %v", err)
	}
}

func TestSendSMSAndEmailAsTheSeedDefines(t *testing.T) {
	f := authentixfake.New(user, key)
	defer f.Close()
	c := newClient(t, f, func(c *authentix.Config) {
		c.ServiceName, c.TemplateID = "Acme Bank", "TPL1"
		c.TemplateDataMap, c.PaymentInfo = `{"sender_email":"me@acme.example"}`, `{"payee":"ACME","amount":"1000","currency":"xaf"}`
		c.CodeLength = 8
	})
	res, err := c.Send(context.Background(), callsession.SendRequest{PhoneNumber: number, Channel: callsession.ChannelSMS})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(res.ProviderRef, "VID") || res.Channel != callsession.ChannelSMS || res.MaxAttempts != authentixfake.DefaultMaxControls ||
		res.ExpiresAt.Before(time.Now().Add(4*time.Minute)) {
		t.Fatalf("result %+v", res)
	}
	r := f.Requests()[0]
	if r.Path != "/rest/authentix/v1/configurations/"+configID+"/authentications" || r.Status != http.StatusCreated {
		t.Fatalf("request %s → %d", r.Path, r.Status)
	}
	for k, want := range map[string]string{"dest": number, "channel": "sms", "serviceName": "Acme Bank", "templateId": "TPL1",
		"templateDataMap": `{"sender_email":"me@acme.example"}`} {
		if got := r.Form.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if code := r.Form.Get("customCode"); len(code) != 8 || f.CodeFor(res.ProviderRef) != code {
		t.Errorf("customCode %q", code)
	}
	if r.Header.Get("Accept") != "application/json" || r.Header.Get("ApiUser") != user {
		t.Errorf("headers %v", r.Header)
	}

	res, err = c.Send(context.Background(), callsession.SendRequest{PhoneNumber: number, Email: "caller@example.com", Channel: callsession.ChannelEmail})
	if err != nil || res.Channel != callsession.ChannelEmail {
		t.Fatalf("email: %+v, %v", res, err)
	}
	if got := f.Requests()[1].Form.Get("dest"); got != "caller@example.com" {
		t.Fatalf("email dest %q", got)
	}
	if _, err := c.Send(context.Background(), callsession.SendRequest{PhoneNumber: number, Channel: callsession.ChannelWhatsApp}); providerError(t, err).Kind != callsession.ProviderRejected {
		t.Fatal("WhatsApp accepted")
	}
}

func TestCheckOutcomes(t *testing.T) {
	f := authentixfake.New(user, key)
	defer f.Close()
	f.SetMaxControls(2)
	c := newClient(t, f, nil)
	ctx := context.Background()
	send := func() *callsession.Session {
		res, err := c.Send(ctx, callsession.SendRequest{PhoneNumber: number, Channel: callsession.ChannelSMS})
		if err != nil {
			t.Fatal(err)
		}
		return &callsession.Session{AuthenticationID: res.ProviderRef}
	}
	s := send()
	code := f.CodeFor(s.AuthenticationID)
	wrong := "0000"
	if code[:4] == wrong {
		wrong = "1111"
	}
	if out, err := c.Check(ctx, s, wrong); err != nil || out != callsession.CodeRejected {
		t.Fatalf("wrong code: %v, %v", out, err)
	}
	if out, err := c.Check(ctx, s, code); err != nil || out != callsession.CodeAccepted {
		t.Fatalf("right code: %v, %v", out, err)
	}
	// No longer awaiting: 404, which the domain interprets.
	if _, err := c.Check(ctx, s, code); providerError(t, err).Kind != callsession.ProviderNotFound {
		t.Fatalf("control after approval: %v", err)
	}
	s2 := send()
	for i := 0; i < 2; i++ {
		_, _ = c.Check(ctx, s2, wrong)
	}
	if _, err := c.Check(ctx, s2, f.CodeFor(s2.AuthenticationID)); providerError(t, err).Kind != callsession.ProviderNotFound {
		t.Fatalf("control after max controls: %v", err)
	}
	s3 := send()
	f.Expire(s3.AuthenticationID)
	if _, err := c.Check(ctx, s3, "123456"); providerError(t, err).Kind != callsession.ProviderNotFound {
		t.Fatalf("control after expiry: %v", err)
	}
}

func TestCancelIsIdempotent(t *testing.T) {
	f := authentixfake.New(user, key)
	defer f.Close()
	c := newClient(t, f, nil)
	ctx := context.Background()
	res, err := c.Send(ctx, callsession.SendRequest{PhoneNumber: number, Channel: callsession.ChannelSMS})
	if err != nil {
		t.Fatal(err)
	}
	s := &callsession.Session{AuthenticationID: res.ProviderRef}
	for i := 0; i < 2; i++ {
		if err := c.Cancel(ctx, s); err != nil {
			t.Fatalf("cancel %d: %v", i+1, err)
		}
	}
	r := f.Requests()[1]
	if r.Path != "/rest/authentix/v1/configurations/"+configID+"/authentications/"+res.ProviderRef || r.Form.Get("status") != "canceled" || r.Status != 200 {
		t.Fatalf("cancel request %+v", r)
	}
	if _, err := c.Check(ctx, s, "123456"); providerError(t, err).Kind != callsession.ProviderNotFound {
		t.Fatal("a cancelled authentication still takes codes")
	}
}

func TestErrorsMapToKinds(t *testing.T) {
	cases := []struct {
		name   string
		setup  func(f *authentixfake.Fake)
		req    callsession.SendRequest
		kind   callsession.ProviderErrorKind
		status int
	}{
		{"bad credentials", nil, callsession.SendRequest{PhoneNumber: number}, callsession.ProviderRejected, 401},
		{"invalid destination", nil, callsession.SendRequest{PhoneNumber: "+1"}, callsession.ProviderBadDestination, 400},
		{"too many requests", func(f *authentixfake.Fake) {
			f.FailNext(1, 429, `{"status":429,"errorCode":20429,"errorMessage":"Too many requests"}`)
		}, callsession.SendRequest{PhoneNumber: number}, callsession.ProviderUnavailable, 429},
		{"server error", func(f *authentixfake.Fake) { f.FailNext(1, 503, `<html>down</html>`) }, callsession.SendRequest{PhoneNumber: number}, callsession.ProviderUnavailable, 503},
		{"malformed answer", func(f *authentixfake.Fake) { f.MalformedNext(1) }, callsession.SendRequest{PhoneNumber: number}, callsession.ProviderUnavailable, 0},
		{"timeout", func(f *authentixfake.Fake) { f.SetDelay(3 * time.Second) }, callsession.SendRequest{PhoneNumber: number}, callsession.ProviderTimeout, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := authentixfake.New(user, key)
			defer f.Close()
			if tc.setup != nil {
				tc.setup(f)
			}
			c := newClient(t, f, func(c *authentix.Config) {
				if tc.name == "bad credentials" {
					c.APIKey = "wrong"
				}
				c.Timeout = 300 * time.Millisecond
			})
			tc.req.Channel = callsession.ChannelSMS
			_, err := c.Send(context.Background(), tc.req)
			pe := providerError(t, err)
			if pe.Kind != tc.kind || pe.HTTPStatus != tc.status {
				t.Fatalf("kind %v status %d, want %v %d: %v", pe.Kind, pe.HTTPStatus, tc.kind, tc.status, err)
			}
			if f.Count() != 1 {
				t.Fatalf("%d requests: a send must never be retried", f.Count())
			}
		})
	}
}

func TestFakeRefusesWhatTheSeedWould(t *testing.T) {
	f := authentixfake.New(user, key)
	defer f.Close()
	post := func(path, contentType, accept, body string) int {
		req, _ := http.NewRequest(http.MethodPost, f.URL()+path, strings.NewReader(body))
		req.Header.Set("ApiUser", user)
		req.Header.Set("ApiKey", key)
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	start := "/configurations/" + configID + "/authentications"
	form, js := "application/x-www-form-urlencoded", "application/json"
	for name, tc := range map[string]struct {
		path, ct, accept, body string
		want                   int
	}{
		"json body":            {start, js, js, `{"dest":"+237671234567","channel":"sms"}`, 415},
		"no accept":            {start, form, "", "dest=%2B237671234567&channel=sms", 406},
		"no dest":              {start, form, js, "channel=sms", 400},
		"not e164":             {start, form, js, "dest=671234567&channel=sms", 400},
		"bad channel":          {start, form, js, "dest=%2B237671234567&channel=whatsapp", 400},
		"bad custom code":      {start, form, js, "dest=%2B237671234567&channel=sms&customCode=12", 400},
		"template map not map": {start, form, js, "dest=%2B237671234567&channel=sms&templateDataMap=x", 400},
		"unknown path":         {"/nothing", form, js, "", 404},
		"valid":                {start, form, js, "dest=%2B237671234567&channel=sms", 201},
	} {
		if got := post(tc.path, tc.ct, tc.accept, tc.body); got != tc.want {
			t.Errorf("%s: %d, want %d", name, got, tc.want)
		}
	}
}
