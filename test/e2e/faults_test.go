package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ivr-bridge/ivr-bridge/internal/redistest"
)

// startRedisServer runs a real redis-server with AOF fsynced on every write, in a directory
// of the test, so it can be killed and started again on the same data.
func startRedisServer(t *testing.T) *redistest.Server {
	t.Helper()
	needRedisServer(t)
	port, err := redistest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	rs := &redistest.Server{Port: port, Args: []string{"--dir", t.TempDir(), "--appendonly", "yes", "--appendfsync", "always", "--save", ""}}
	if err := rs.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rs.Kill)
	return rs
}

func TestRedisRestartLosesNothingAcknowledged(t *testing.T) {
	rs := startRedisServer(t)
	b := start(t, map[string]string{"REDIS_URL": rs.URL(), "LIMIT_SENDS_PER_NUMBER": "0"})
	var refs []string
	for i := 0; i < 20; i++ {
		ref := reference()
		b.startSession(map[string]any{"referenceId": ref, "phoneNumber": mobile(t)})
		refs = append(refs, ref)
	}
	rs.Kill()

	// Redis down: quick 503s, never a hang past the IVR's deadline.
	for _, probe := range []func() response{
		func() response { return b.do("GET", "/readyz", nil) },
		func() response { return b.do("GET", "/v1/sessions/"+refs[0], nil) },
		func() response {
			return b.do("POST", "/v1/sessions", map[string]any{"referenceId": reference(), "phoneNumber": mobile(t)})
		},
	} {
		began := time.Now()
		r := probe()
		if r.status != http.StatusServiceUnavailable || r.errorCode() != "storage_unavailable" {
			t.Fatalf("with Redis down: %d %s", r.status, r.body)
		}
		if el := time.Since(began); el > 5*time.Second {
			t.Fatalf("answered after %s, beyond the IVR's 5 s", el)
		}
	}

	if err := rs.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for b.do("GET", "/readyz", nil).status != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("the bridge did not recover when Redis came back")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, ref := range refs {
		if s := b.session(ref); s["status"] != "sent" || s["messageId"] == nil {
			t.Fatalf("session %s after the restart: %v", ref, s)
		}
	}
}

func TestHundredIdenticalStartsMakeOneProviderCall(t *testing.T) {
	b := start(t, nil)
	b.callConnect.SetDelay(300 * time.Millisecond) // all of them arrive while the first is in flight
	body := map[string]any{"referenceId": reference(), "phoneNumber": mobile(t)}
	b.mustNotLog(body["phoneNumber"].(string))
	var wg sync.WaitGroup
	statuses := make([]int, 100)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = b.do("POST", "/v1/sessions", body).status
		}()
	}
	wg.Wait()
	created := 0
	for _, s := range statuses {
		if s == http.StatusCreated {
			created++
		} else if s != http.StatusOK {
			t.Fatalf("statuses %v", statuses)
		}
	}
	if created != 1 || b.callConnect.Sends() != 1 {
		t.Fatalf("created %d, provider sends %d; want 1 and 1", created, b.callConnect.Sends())
	}
}

func TestHundredIdenticalPlatformDeliveriesMakeOneProviderCall(t *testing.T) {
	b := start(t, nil)
	b.authsignal.SetDelay(300 * time.Millisecond)
	caller := mobile(t)
	b.mustNotLog(caller)
	event := connectEvent(t, "contact-"+randomDigits(10), caller, map[string]string{"action": "start", "provider": "authsignal"})
	var wg sync.WaitGroup
	steps := make([]string, 100)
	for i := range steps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := b.do("POST", "/v1/webhooks/connect", event)
			var m map[string]string
			_ = json.Unmarshal(r.body, &m)
			steps[i] = m["step"]
		}()
	}
	wg.Wait()
	for _, s := range steps {
		if s != "enter_code" && s != "waiting" {
			t.Fatalf("steps %v", steps)
		}
	}
	if n := b.authsignal.Sends(); n != 1 {
		t.Fatalf("Authsignal sends %d, want 1", n)
	}
}

func TestSIGTERMDrainsInFlightRequests(t *testing.T) {
	b := start(t, map[string]string{"LIMIT_SENDS_PER_NUMBER": "0"})
	b.callConnect.SetDelay(time.Second)
	var wg sync.WaitGroup
	results := make([]int, 20)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := postNoFatal(b, map[string]any{"referenceId": reference(), "phoneNumber": mobile(t)})
			if err != nil {
				results[i] = -1
				return
			}
			results[i] = r
		}()
	}
	// Wait until every request reached the provider, then ask the bridge to stop.
	deadline := time.Now().Add(10 * time.Second)
	for b.callConnect.Count() < len(results) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d requests reached the provider", b.callConnect.Count())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i, s := range results {
		if s != http.StatusCreated {
			t.Fatalf("in-flight request %d: %d (%v)", i, s, results)
		}
	}
	// New requests are refused once it has stopped (the cleanup checks the exit code is 0).
	select {
	case <-b.done:
		if b.exitErr != nil {
			t.Fatalf("exit after SIGTERM: %v", b.exitErr)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("did not exit after draining")
	}
	if _, err := postNoFatal(b, map[string]any{"referenceId": reference(), "phoneNumber": mobile(t)}); err == nil {
		t.Fatal("a request was answered after shutdown")
	}
}

func postNoFatal(b *bridge, body map[string]any) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, b.url+"/v1/sessions", bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+b.apiKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
