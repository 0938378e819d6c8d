package e2e

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// openStream opens a session's event stream on b and sends each event's data line.
func openStream(t *testing.T, b *bridge, ref, lastID string) <-chan string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.url+"/v1/sessions/"+ref+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+b.apiKey)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("events on %s: %v %v", b.url, err, resp)
	}
	out := make(chan string, 64)
	go func() {
		defer close(out)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		id := ""
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "id: ") {
				id = line[4:]
			}
			if strings.HasPrefix(line, "data: ") {
				out <- id + " " + line[6:]
			}
		}
	}()
	return out
}

// receive is the next event of a stream, failing after a generous deadline (no timing is
// asserted with it: it only keeps a broken stream from hanging the test).
func receive(t *testing.T, events <-chan string, what string) string {
	t.Helper()
	select {
	case ev, open := <-events:
		if !open {
			t.Fatalf("%s: the stream ended", what)
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: nothing within 10 s", what)
	}
	return ""
}

// TestLiveEventsAcrossReplicas: a change made through replica A reaches a stream opened on
// replica B within a second; a stream still open does not hold up a graceful shutdown.
func TestLiveEventsAcrossReplicas(t *testing.T) {
	env := map[string]string{"REDIS_URL": sharedRedis(t)}
	a := start(t, env)
	b := a.replica(env)

	ref := reference()
	sess := a.startSession(map[string]any{"referenceId": ref, "phoneNumber": mobile(t), "provider": "authsignal"})
	code := a.authsignal.CodeFor(sess["challengeId"].(string))
	events := openStream(t, b, ref, "")
	first := receive(t, events, "the first event on B")
	if !strings.Contains(first, `"status":"sent"`) {
		t.Fatalf("first event on B: %s", first)
	}
	if r := a.code(ref, code); r.status != http.StatusOK || r.json(t)["status"] != "verified" {
		t.Fatalf("code on A: %d %s", r.status, r.body)
	}
	verifiedAt := time.Now()
	deadline := time.After(time.Second)
	for seen := false; !seen; {
		select {
		case ev, open := <-events:
			if !open {
				t.Fatal("the stream on B ended before showing the verification")
			}
			seen = strings.Contains(ev, `"status":"verified"`)
		case <-deadline:
			t.Fatal("the verification on A did not reach the stream on B within a second")
		}
	}
	t.Logf("A → B in %s", time.Since(verifiedAt))

	// An agent reconnecting to replica A with the first event's ID gets what followed, the
	// verification last, and the stream ends there.
	firstID, _, _ := strings.Cut(first, " ")
	resumed := openStream(t, a, ref, firstID)
	for {
		ev := receive(t, resumed, "resuming on A")
		if id, _, _ := strings.Cut(ev, " "); id == firstID {
			t.Fatalf("resuming after %s repeated it", firstID)
		}
		if strings.Contains(ev, `"status":"verified"`) {
			break
		}
	}
	select {
	case ev, open := <-resumed:
		if open {
			t.Fatalf("an event after the final status: %s", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the resumed stream stayed open after the final status")
	}

	// Left open on purpose: at the end of the test both bridges get SIGTERM and must still
	// exit 0 within their 15 s drain.
	other := reference()
	a.startSession(map[string]any{"referenceId": other, "phoneNumber": mobile(t), "provider": "authsignal"})
	receive(t, openStream(t, a, other, ""), "a stream left open on A")
	receive(t, openStream(t, b, other, ""), "a stream left open on B")
}
