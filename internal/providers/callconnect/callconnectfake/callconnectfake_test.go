package callconnectfake_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ivr-bridge/ivr-bridge/internal/providers/callconnect/callconnectfake"
)

const secret = "cc_secret_test"

const validBody = `{"referenceId":"CA1","phoneNumber":"+14155552671","channel":"SMS"}`

type call struct {
	method, path, auth, contentType, body string
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func valid() call {
	return call{method: http.MethodPost, path: "/call/start", auth: basic(secret, ""), contentType: "application/json", body: validBody}
}

func do(t *testing.T, base string, c call) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(c.method, base+c.path, strings.NewReader(c.body))
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
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("answer Content-Type %q", ct)
	}
	return resp.StatusCode, out
}

func TestAcceptsAValidStart(t *testing.T) {
	for _, body := range []string{
		validBody,
		`{"referenceId":"CA1","phoneNumber":"+447700900123"}`,
		`{"referenceId":"CA1","phoneNumber":"+61412345678","channel":"WHATSAPP","userId":"u","username":"n","email":"a@example.com","locale":"en","country":"AUS","actionCode":"call"}`,
	} {
		f := callconnectfake.New(secret)
		c := valid()
		c.body = body
		c.contentType = "application/json; charset=utf-8"
		status, out := do(t, f.URL(), c)
		if status != http.StatusOK || out["messageId"] == "" || out["messageId"] == nil {
			t.Errorf("%s: got %d %v, want 200 with a messageId", body, status, out)
		}
		if ch := out["channel"]; ch != "SMS" && ch != "WHATSAPP" {
			t.Errorf("%s: channel %v", body, ch)
		}
		if f.Sends() != 1 || f.Count() != 1 || !f.Requests()[0].Accepted() {
			t.Errorf("%s: sends %d count %d", body, f.Sends(), f.Count())
		}
		f.Close()
	}
}

func TestRejectsMalformedRequests(t *testing.T) {
	cases := []struct {
		name       string
		edit       func(c *call)
		wantStatus int
		wantCode   string
	}{
		{"wrong secret", func(c *call) { c.auth = basic("other", "") }, 401, "unauthorized"},
		{"no auth", func(c *call) { c.auth = "" }, 401, "unauthorized"},
		{"secret as password", func(c *call) { c.auth = basic("", secret) }, 401, "unauthorized"},
		{"non-empty password", func(c *call) { c.auth = basic(secret, "x") }, 401, "unauthorized"},
		{"bearer instead of basic", func(c *call) { c.auth = "Bearer " + secret }, 401, "unauthorized"},
		{"form content type", func(c *call) { c.contentType = "application/x-www-form-urlencoded" }, 415, "invalid_request"},
		{"no content type", func(c *call) { c.contentType = "" }, 415, "invalid_request"},
		{"GET", func(c *call) { c.method = http.MethodGet; c.body = "" }, 405, "invalid_request"},
		{"wrong path", func(c *call) { c.path = "/call/begin" }, 404, "not_found"},
		{"doubled slash", func(c *call) { c.path = "//call/start" }, 404, "not_found"},
		{"not JSON", func(c *call) { c.body = "referenceId=CA1" }, 400, "invalid_request"},
		{"two JSON values", func(c *call) { c.body = validBody + validBody }, 400, "invalid_request"},
		{"unknown field", func(c *call) { c.body = `{"referenceId":"CA1","phoneNumber":"+14155552671","phone":"+1"}` }, 400, "invalid_request"},
		{"field of the wrong type", func(c *call) { c.body = `{"referenceId":12,"phoneNumber":"+14155552671"}` }, 400, "invalid_request"},
		{"no referenceId", func(c *call) { c.body = `{"phoneNumber":"+14155552671"}` }, 400, "invalid_request"},
		{"no phoneNumber", func(c *call) { c.body = `{"referenceId":"CA1"}` }, 400, "invalid_request"},
		{"channel not in the enum", func(c *call) { c.body = `{"referenceId":"CA1","phoneNumber":"+14155552671","channel":"sms"}` }, 400, "invalid_request"},
		{"channel EMAIL", func(c *call) { c.body = `{"referenceId":"CA1","phoneNumber":"+14155552671","channel":"EMAIL"}` }, 400, "invalid_request"},
		{"number without +", func(c *call) { c.body = `{"referenceId":"CA1","phoneNumber":"14155552671"}` }, 400, "invalid_request"},
		{"national number", func(c *call) { c.body = `{"referenceId":"CA1","phoneNumber":"(415) 555-2671"}` }, 400, "invalid_request"},
		{"number with spaces", func(c *call) { c.body = `{"referenceId":"CA1","phoneNumber":"+1 415 555 2671"}` }, 400, "invalid_request"},
		{"country code 0", func(c *call) { c.body = `{"referenceId":"CA1","phoneNumber":"+0415555267"}` }, 400, "invalid_request"},
		{"too short", func(c *call) { c.body = `{"referenceId":"CA1","phoneNumber":"+123456"}` }, 400, "invalid_request"},
		{"too long", func(c *call) { c.body = `{"referenceId":"CA1","phoneNumber":"+1234567890123456"}` }, 400, "invalid_request"},
		{"bad email", func(c *call) {
			c.body = `{"referenceId":"CA1","phoneNumber":"+14155552671","email":"not-an-email"}`
		}, 400, "invalid_request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := callconnectfake.New(secret)
			defer f.Close()
			c := valid()
			tc.edit(&c)
			status, out := do(t, f.URL(), c)
			if status != tc.wantStatus || out["error"] != tc.wantCode || out["errorCode"] != tc.wantCode {
				t.Errorf("got %d %v, want %d with error and errorCode %q", status, out, tc.wantStatus, tc.wantCode)
			}
			if d, _ := out["errorDescription"].(string); d == "" {
				t.Errorf("no errorDescription in %v", out)
			}
			if f.Sends() != 0 {
				t.Errorf("a refused start was sent")
			}
			reqs := f.Requests()
			if len(reqs) != 1 || reqs[0].Accepted() || reqs[0].Status != tc.wantStatus || reqs[0].ErrorCode != tc.wantCode {
				t.Errorf("recorded %+v, want one refused request", reqs)
			}
		})
	}
}

func TestPrefix(t *testing.T) {
	f := callconnectfake.NewWithPrefix(secret, "/gw")
	defer f.Close()
	if !strings.HasSuffix(f.URL(), "/gw") {
		t.Fatalf("URL %q does not carry the prefix", f.URL())
	}
	if status, _ := do(t, f.URL(), valid()); status != 200 {
		t.Errorf("under the prefix: %d", status)
	}
	if status, _ := do(t, strings.TrimSuffix(f.URL(), "/gw"), valid()); status != 404 {
		t.Errorf("without the prefix: %d, want 404", status)
	}
}

func TestRequestsAreDecodedCopies(t *testing.T) {
	f := callconnectfake.New(secret)
	defer f.Close()
	do(t, f.URL(), valid())
	r := f.Requests()[0]
	if r.Start.ReferenceID != "CA1" || r.Start.PhoneNumber != "+14155552671" || r.Start.Channel != "SMS" {
		t.Errorf("decoded body %+v", r.Start)
	}
	if user, pass, ok := r.BasicAuth(); !ok || user != secret || pass != "" {
		t.Errorf("recorded auth %q %q %v", user, pass, ok)
	}
	r.Header.Set("Authorization", "tampered")
	r.Raw[0] = 'X'
	r.Fields["referenceId"] = "tampered"
	again := f.Requests()[0]
	if again.Header.Get("Authorization") == "tampered" || again.Raw[0] != '{' || again.Fields["referenceId"] != "CA1" {
		t.Errorf("Requests shares its record with the caller: %+v", again)
	}
}

func TestKnobs(t *testing.T) {
	t.Run("FailNext answers n requests then recovers", func(t *testing.T) {
		f := callconnectfake.New(secret)
		defer f.Close()
		f.FailNext(2, 503, "")
		for i, want := range []int{503, 503, 200} {
			if status, out := do(t, f.URL(), valid()); status != want {
				t.Errorf("request %d: %d %v, want %d", i, status, out, want)
			}
		}
		if f.Sends() != 1 || f.Count() != 3 {
			t.Errorf("sends %d count %d, want 1 and 3", f.Sends(), f.Count())
		}
	})
	t.Run("FailNext with a body", func(t *testing.T) {
		f := callconnectfake.New(secret)
		defer f.Close()
		f.FailNext(1, 422, `{"error":"invalid_request","errorDescription":"Invalid phone number"}`)
		status, out := do(t, f.URL(), valid())
		if status != 422 || out["errorDescription"] != "Invalid phone number" {
			t.Errorf("got %d %v", status, out)
		}
		if r := f.Requests()[0]; r.ErrorCode != "invalid_request" || r.ErrorDescription != "Invalid phone number" {
			t.Errorf("recorded %+v", r)
		}
	})
	t.Run("FailNextHeader adds headers", func(t *testing.T) {
		f := callconnectfake.New(secret)
		defer f.Close()
		f.FailNextHeader(1, 429, http.Header{"Retry-After": {"30"}}, "")
		req, _ := http.NewRequest(http.MethodPost, f.URL()+"/call/start", strings.NewReader(validBody))
		req.SetBasicAuth(secret, "")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "30" {
			t.Errorf("got %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	})
	t.Run("SetMalformed answers 200 with broken JSON", func(t *testing.T) {
		f := callconnectfake.New(secret)
		defer f.Close()
		f.SetMalformed(true)
		req, _ := http.NewRequest(http.MethodPost, f.URL()+"/call/start", strings.NewReader(validBody))
		req.SetBasicAuth(secret, "")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || json.Valid(raw) {
			t.Errorf("got %d %q, want 200 with invalid JSON", resp.StatusCode, raw)
		}
		// A refused request is still refused in its own form.
		c := valid()
		c.auth = ""
		if status, _ := do(t, f.URL(), c); status != 401 {
			t.Errorf("malformed mode changed a 401 into %d", status)
		}
	})
	t.Run("SetDelay honours the caller going away", func(t *testing.T) {
		f := callconnectfake.New(secret)
		defer f.Close()
		f.SetDelay(5 * time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, f.URL()+"/call/start", strings.NewReader(validBody))
		req.SetBasicAuth(secret, "")
		req.Header.Set("Content-Type", "application/json")
		start := time.Now()
		if _, err := http.DefaultClient.Do(req); err == nil {
			t.Fatal("the delayed request answered before the caller's deadline")
		}
		if time.Since(start) > 3*time.Second { // the fake holds its answer 5s
			t.Errorf("gave up after %s", time.Since(start))
		}
		deadline := time.Now().Add(2 * time.Second)
		for f.Count() != 1 || f.Requests()[0].Status != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("count %d, requests %+v", f.Count(), f.Requests())
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(50 * time.Millisecond)
		if f.Sends() != 0 {
			t.Errorf("an abandoned start was sent")
		}
	})
	t.Run("SetDelay delays", func(t *testing.T) {
		f := callconnectfake.New(secret)
		defer f.Close()
		f.SetDelay(150 * time.Millisecond)
		start := time.Now()
		if status, _ := do(t, f.URL(), valid()); status != 200 {
			t.Errorf("status %d", status)
		}
		if el := time.Since(start); el < 150*time.Millisecond {
			t.Errorf("answered after %s, want at least 150ms", el)
		}
	})
	t.Run("Close does not wait for held answers", func(t *testing.T) {
		f := callconnectfake.New(secret)
		f.SetDelay(time.Hour)
		go func() {
			req, _ := http.NewRequest(http.MethodPost, f.URL()+"/call/start", strings.NewReader(validBody))
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
		for f.Count() == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		start := time.Now()
		f.Close()
		if el := time.Since(start); el > 2*time.Second {
			t.Errorf("Close took %s", el)
		}
	})
}

func TestConcurrentUse(t *testing.T) {
	f := callconnectfake.New(secret)
	defer f.Close()
	const n = 20
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, f.URL()+"/call/start", strings.NewReader(validBody))
			req.SetBasicAuth(secret, "")
			req.Header.Set("Content-Type", "application/json")
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
			_ = f.Requests()
		})
	}
	wg.Wait()
	if f.Count() != n || f.Sends() != n {
		t.Errorf("count %d sends %d, want %d", f.Count(), f.Sends(), n)
	}
	ids := map[string]bool{}
	for _, r := range f.Requests() {
		ids[r.Start.ReferenceID] = true
	}
	if !ids["CA1"] {
		t.Errorf("requests not decoded: %v", ids)
	}
}
