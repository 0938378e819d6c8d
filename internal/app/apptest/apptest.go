// Package apptest runs the whole bridge in-process for tests: the real wiring (app.New) on
// the store the suite is configured for (miniredis, or the real Redis at REDIS_URL), with
// every provider pointed at its in-process fake, behind a real HTTP server.
package apptest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ivr-bridge/ivr-bridge/internal/app"
	"github.com/ivr-bridge/ivr-bridge/internal/config"
	"github.com/ivr-bridge/ivr-bridge/internal/logging"
	"github.com/ivr-bridge/ivr-bridge/internal/providers/authentix/authentixfake"
	"github.com/ivr-bridge/ivr-bridge/internal/providers/authsignal/authsignalfake"
	"github.com/ivr-bridge/ivr-bridge/internal/providers/callconnect/callconnectfake"
	"github.com/ivr-bridge/ivr-bridge/internal/store"
)

// Credentials the stack configures and its fakes accept.
const (
	APIKey            = "test-api-key"
	CallConnectSecret = "cc_test_secret"
	AuthsignalSecret  = "as_test_secret"
	WebhookSecret     = "whsec_test"
	AuthentixUser     = "authentix-user"
	AuthentixKey      = "authentix-key"
	AuthentixConfigID = "CF0123456789abcdef"
)

// Stack is a running bridge and its fakes.
type Stack struct {
	t           testing.TB
	URL         string
	App         *app.App
	Config      config.Config
	CallConnect *callconnectfake.Fake
	Authsignal  *authsignalfake.Fake
	Authentix   *authentixfake.Fake
	Clock       *Clock
	Logs        *SyncBuffer
}

// New starts a stack. env overrides the configuration the stack sets (IVR_BRIDGE_API_KEYS,
// the provider credentials and base URLs); an empty value removes a variable.
func New(t testing.TB, env map[string]string) *Stack {
	t.Helper()
	s := &Stack{
		t:           t,
		CallConnect: callconnectfake.New(CallConnectSecret),
		Authsignal:  authsignalfake.New(AuthsignalSecret),
		Authentix:   authentixfake.New(AuthentixUser, AuthentixKey),
		Clock:       &Clock{},
		Logs:        &SyncBuffer{},
	}
	t.Cleanup(s.CallConnect.Close)
	t.Cleanup(s.Authsignal.Close)
	t.Cleanup(s.Authentix.Close)
	vars := map[string]string{
		"IVR_BRIDGE_API_KEYS":        APIKey,
		"REDIS_URL":                  os.Getenv("REDIS_URL"),
		"CALLCONNECT_SECRET":         CallConnectSecret,
		"CALLCONNECT_BASE_URL":       s.CallConnect.URL(),
		"AUTHSIGNAL_SECRET":          AuthsignalSecret,
		"AUTHSIGNAL_BASE_URL":        s.Authsignal.URL(),
		"AUTHSIGNAL_WEBHOOK_SECRET":  WebhookSecret,
		"AUTHENTIX_API_USER":         AuthentixUser,
		"AUTHENTIX_API_KEY":          AuthentixKey,
		"AUTHENTIX_CONFIGURATION_ID": AuthentixConfigID,
		"AUTHENTIX_BASE_URL":         s.Authentix.URL(),
		"PROVIDER_TIMEOUT":           "2s",
		"LOG_LEVEL":                  "debug",
	}
	for k, v := range env {
		vars[k] = v
	}
	cfg, err := config.Load(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	s.Config = cfg
	log := logging.New(s.Logs, cfg.LogLevel)
	// A prefix per stack keeps tests apart on a shared real Redis, limiter budgets included.
	a, err := app.New(context.Background(), cfg, log, app.WithClock(s.Clock), app.WithHeartbeat(200*time.Millisecond),
		app.WithStoreOptions(store.WithPrefix("test:"+RandomID()+":")))
	if err != nil {
		t.Fatalf("app: %v", err)
	}
	t.Cleanup(func() { _ = a.Close() })
	s.App = a
	srv := httptest.NewServer(a.Handler)
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// Response is an answer of the bridge.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body as an object.
func (r *Response) JSON(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("answer %d is not a JSON object: %v: %s", r.Status, err, r.Body)
	}
	return m
}

// ErrorCode is the DESIGN §7 error code of the answer, "" when it has none.
func (r *Response) ErrorCode() string {
	var b struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	_ = json.Unmarshal(r.Body, &b)
	return b.Error.Code
}

// Do sends a request to the bridge with the stack's API key. body is sent as is when it is
// a string or []byte, as JSON otherwise. headers are name, value pairs and override defaults.
func (s *Stack) Do(method, path string, body any, headers ...string) *Response {
	s.t.Helper()
	var rd io.Reader
	contentType := ""
	switch b := body.(type) {
	case nil:
	case string:
		rd, contentType = strings.NewReader(b), "application/json"
	case []byte:
		rd, contentType = bytes.NewReader(b), "application/json"
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			s.t.Fatalf("marshal: %v", err)
		}
		rd, contentType = bytes.NewReader(raw), "application/json"
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		s.t.Fatalf("request: %v", err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Authorization", "Bearer "+APIKey)
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("reading answer: %v", err)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: raw}
}

// RandomID is a fresh identifier, for references and key prefixes.
func RandomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Clock is the real time plus an offset tests move forward.
type Clock struct {
	mu     sync.Mutex
	offset time.Duration
}

// Now is the shifted time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().UTC().Add(c.offset)
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// SyncBuffer collects log output written from many goroutines.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String is everything written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
