// Package e2e builds the real ivr-bridge binary and drives it over HTTP, with the providers
// faked in this process and the store it is given: the real Redis at REDIS_URL when set
// (CI), the embedded miniredis otherwise.
package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ivr-bridge/ivr-bridge/internal/app/apptest"
	"github.com/ivr-bridge/ivr-bridge/internal/phone"
	"github.com/ivr-bridge/ivr-bridge/internal/providers/authentix/authentixfake"
	"github.com/ivr-bridge/ivr-bridge/internal/providers/authsignal/authsignalfake"
	"github.com/ivr-bridge/ivr-bridge/internal/providers/callconnect/callconnectfake"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ivr-bridge-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "ivr-bridge")
	build := exec.Command("go", "build", "-race", "-o", binary, "../../cmd/ivr-bridge")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building ivr-bridge:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const (
	ccSecret      = "cc_e2e_secret"
	asSecret      = "as_e2e_secret"
	webhookSecret = "whsec_e2e"
	axUser        = "ax-user"
	axKey         = "ax-key"
	axConfig      = "CFe2e0123456789"
)

// bridge is a running ivr-bridge process and the fakes it talks to.
type bridge struct {
	t           *testing.T
	url, apiKey string
	cmd         *exec.Cmd
	stderr      *apptest.SyncBuffer
	done        chan struct{} // closed when the process has exited, exitErr then set
	exitErr     error
	callConnect *callconnectfake.Fake
	authsignal  *authsignalfake.Fake
	authentix   *authentixfake.Fake

	mu      sync.Mutex
	secrets []string // numbers and codes that must never appear whole in the logs
}

// start runs the binary with env on top of the stack's defaults; a variable set to ""
// is left out. At the end of the test it is stopped with SIGTERM, must exit 0, and its logs
// must hold no number or code in full.
func start(t *testing.T, env map[string]string) *bridge {
	t.Helper()
	b := &bridge{
		t: t, apiKey: "key-" + randomDigits(12),
		callConnect: callconnectfake.New(ccSecret),
		authsignal:  authsignalfake.New(asSecret),
		authentix:   authentixfake.New(axUser, axKey),
	}
	t.Cleanup(b.callConnect.Close)
	t.Cleanup(b.authsignal.Close)
	t.Cleanup(b.authentix.Close)
	return b.launch(env)
}

// replica starts another process of the same deployment as b: same fakes, same API key,
// same environment on top of env.
func (b *bridge) replica(env map[string]string) *bridge {
	r := &bridge{t: b.t, apiKey: b.apiKey, callConnect: b.callConnect, authsignal: b.authsignal, authentix: b.authentix}
	return r.launch(env)
}

func (b *bridge) launch(env map[string]string) *bridge {
	t := b.t
	t.Helper()
	b.stderr, b.done = &apptest.SyncBuffer{}, make(chan struct{})
	addr := freeAddr(t)
	b.url = "http://" + addr
	vars := map[string]string{
		"PATH":                       os.Getenv("PATH"),
		"IVR_BRIDGE_ADDR":            addr,
		"IVR_BRIDGE_API_KEYS":        b.apiKey,
		"REDIS_URL":                  os.Getenv("REDIS_URL"),
		"CALLCONNECT_SECRET":         ccSecret,
		"CALLCONNECT_BASE_URL":       b.callConnect.URL(),
		"AUTHSIGNAL_SECRET":          asSecret,
		"AUTHSIGNAL_BASE_URL":        b.authsignal.URL(),
		"AUTHSIGNAL_WEBHOOK_SECRET":  webhookSecret,
		"AUTHENTIX_API_USER":         axUser,
		"AUTHENTIX_API_KEY":          axKey,
		"AUTHENTIX_CONFIGURATION_ID": axConfig,
		"AUTHENTIX_BASE_URL":         b.authentix.URL(),
		"LOG_LEVEL":                  "debug",
		// Info lines reach the log only at a warning or at exit, so stop can tell that exit
		// writes out what is buffered.
		"LOG_FLUSH_INTERVAL": "1h",
	}
	for k, v := range env {
		vars[k] = v
	}
	b.cmd = exec.Command(binary)
	for k, v := range vars {
		if v != "" {
			b.cmd.Env = append(b.cmd.Env, k+"="+v)
		}
	}
	b.cmd.Stderr = b.stderr
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("starting ivr-bridge: %v", err)
	}
	go func() {
		b.exitErr = b.cmd.Wait()
		close(b.done)
	}()
	t.Cleanup(b.stop)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(b.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return b
			}
		}
		select {
		case <-b.done:
			t.Fatalf("ivr-bridge exited at start: %v\n%s", b.exitErr, b.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("ivr-bridge did not answer /healthz:\n%s", b.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM: the bridge drains and exits 0 (DESIGN §8).
func (b *bridge) stop() {
	t := b.t
	select {
	case <-b.done:
	default:
		_ = b.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-b.done:
		if b.exitErr != nil {
			t.Errorf("ivr-bridge did not exit 0 after SIGTERM: %v\n%s", b.exitErr, b.stderr)
		}
	case <-time.After(20 * time.Second):
		_ = b.cmd.Process.Kill()
		t.Errorf("ivr-bridge did not stop within 20s of SIGTERM")
	}
	logs := b.stderr.String()
	if b.exitErr == nil && !strings.Contains(logs, `"msg":"stopped"`) {
		// Info lines are buffered (LOG_FLUSH_INTERVAL): the last of them must be written out at exit.
		t.Errorf("the log lacks the last line, \"stopped\":\n%s", logs)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, s := range b.secrets {
		if logsHold(logs, s) {
			t.Errorf("the logs hold %q in full", phone.Mask(s))
		}
	}
	if strings.Contains(logs, ccSecret) || strings.Contains(logs, asSecret) || strings.Contains(logs, axKey) || strings.Contains(logs, b.apiKey) {
		t.Errorf("the logs hold a secret")
	}
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		if line != "" && !json.Valid([]byte(line)) && !strings.HasPrefix(line, "WARNING: DATA RACE") {
			t.Errorf("log line is not JSON: %s", line)
		}
	}
	if strings.Contains(logs, "DATA RACE") {
		t.Errorf("the race detector found a race:\n%s", logs)
	}
}

// logsHold reports whether s is in the logs, reading each JSON line without its time and
// request_id: a 6-digit code turns up by chance in a timestamp's nanoseconds or a request ID
// now and then, and nothing the bridge logs of a caller goes in either.
func logsHold(logs, s string) bool {
	for _, line := range strings.Split(logs, "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil {
			delete(rec, "time")
			delete(rec, "request_id")
			b, err := json.Marshal(rec)
			if err != nil {
				return true // cannot tell: count it
			}
			line = string(b)
		}
		if strings.Contains(line, s) {
			return true
		}
	}
	return false
}

// mustNotLog registers a number or code that must never appear whole in the logs.
func (b *bridge) mustNotLog(s ...string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, x := range s {
		b.secrets = append(b.secrets, x, strings.TrimPrefix(x, "+"))
	}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("answer %d is not a JSON object: %s", r.status, r.body)
	}
	return m
}

func (r response) errorCode() string {
	var b struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal(r.body, &b)
	return b.Error.Code
}

// do calls the bridge's API with its key.
func (b *bridge) do(method, path string, body any, headers ...string) response {
	b.t.Helper()
	var rd io.Reader
	if body != nil {
		raw, ok := body.([]byte)
		if !ok {
			raw, _ = json.Marshal(body)
		}
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, b.url+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+b.apiKey)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: raw}
}

// startSession starts a session and fails the test unless it is created.
func (b *bridge) startSession(body map[string]any) map[string]any {
	b.t.Helper()
	if n, ok := body["phoneNumber"].(string); ok {
		b.mustNotLog(n)
	}
	r := b.do(http.MethodPost, "/v1/sessions", body)
	if r.status != http.StatusCreated {
		b.t.Fatalf("start: %d %s", r.status, r.body)
	}
	return r.json(b.t)
}

func (b *bridge) session(ref string) map[string]any {
	b.t.Helper()
	r := b.do(http.MethodGet, "/v1/sessions/"+ref, nil)
	if r.status != http.StatusOK {
		b.t.Fatalf("get %s: %d %s", ref, r.status, r.body)
	}
	return r.json(b.t)
}

func (b *bridge) code(ref, code string) response {
	b.mustNotLog(code)
	return b.do(http.MethodPost, "/v1/sessions/"+ref+"/code", map[string]string{"code": code})
}

// mobile is a fresh valid UK mobile number, so runs against a shared Redis never meet the
// per-number limit of an earlier run.
func mobile(t *testing.T) string {
	for i := 0; i < 100; i++ {
		n, err := phone.Parse("+447"+randomDigits(9), "")
		if err == nil && n.Type == phone.TypeMobile {
			return n.E164
		}
	}
	t.Fatal("no valid UK mobile number found")
	return ""
}

func reference() string { return "CA" + randomDigits(16) }

func randomDigits(n int) string {
	var sb strings.Builder
	for i := 0; i < n; i++ {
		d, _ := rand.Int(rand.Reader, big.NewInt(10))
		sb.WriteString(d.String())
	}
	return sb.String()
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
