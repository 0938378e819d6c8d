package httpapi_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ivr-bridge/ivr-bridge/internal/app/apptest"
	"github.com/ivr-bridge/ivr-bridge/internal/callsession"
	"github.com/ivr-bridge/ivr-bridge/internal/live"
)

type sse struct {
	id, event, data string
	comment         bool
}

// stream opens the event stream and delivers what it reads until it ends.
func stream(t *testing.T, s *apptest.Stack, ref string, headers map[string]string, query string) (*http.Response, <-chan sse, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/v1/sessions/"+ref+"/events"+query, nil)
	if query == "" {
		req.Header.Set("Authorization", "Bearer "+apptest.APIKey)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	out := make(chan sse, 64)
	go func() {
		defer close(out)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var cur sse
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if cur != (sse{}) {
					out <- cur
				}
				cur = sse{}
			case strings.HasPrefix(line, ":"):
				out <- sse{comment: true}
			case strings.HasPrefix(line, "id: "):
				cur.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				cur.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				cur.data = line[6:]
			}
		}
	}()
	t.Cleanup(cancel)
	return resp, out, cancel
}

// next is the next event (skipping heartbeats), failing after a deadline.
func next(t *testing.T, ch <-chan sse) (sse, bool) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return sse{}, false
			}
			if ev.comment {
				continue
			}
			return ev, true
		case <-deadline:
			t.Fatal("no event within 5 s")
		}
	}
}

func TestSessionEventStream(t *testing.T) {
	s := apptest.New(t, nil)
	ref := ref()
	r := start(s, map[string]any{"referenceId": ref, "phoneNumber": ukMobile, "provider": "authsignal"})
	code := s.Authsignal.CodeFor(r.JSON(t)["challengeId"].(string))

	resp, events, _ := stream(t, s, ref, nil, "")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") || resp.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
	first, _ := next(t, events)
	if first.event != "session" || first.id == "" || !strings.Contains(first.data, `"status":"sent"`) || strings.Contains(first.data, "fingerprint") {
		t.Fatalf("first event %+v", first)
	}
	// Every change comes as an event of its own, each version after the one before, each
	// code's answer shows, and the stream ends after "verified".
	all := []sse{first}
	for _, step := range []struct{ code, shows string }{
		{"00000000"[:len(code)], `"type":"code_rejected"`},
		{code, `"status":"verified"`},
	} {
		// (A code is two changes: the attempt counted, then the provider's answer.)
		s.Do("POST", "/v1/sessions/"+ref+"/code", map[string]string{"code": step.code})
		for shown := false; !shown; {
			ev, open := next(t, events)
			if !open || !nextVersion(ev.id, all[len(all)-1].id) {
				t.Fatalf("after code %q: %+v (open %v), want the change after %s", step.code, ev, open, all[len(all)-1].id)
			}
			all = append(all, ev)
			shown = strings.Contains(ev.data, step.shows)
		}
	}
	if ev, open := next(t, events); open {
		t.Fatalf("an event after the final status: %+v", ev)
	}
	last := all[len(all)-1]

	// A viewer reconnecting with the ID it last saw gets the state now (its history holds
	// every change since), never one it has seen, and the end after a final status.
	for name, resume := range map[string]func() <-chan sse{
		"Last-Event-ID": func() <-chan sse {
			_, ch, _ := stream(t, s, ref, map[string]string{"Last-Event-ID": first.id}, "")
			return ch
		},
		// The form of EventSource polyfills: lastEventId and the key in the query.
		"lastEventId": func() <-chan sse {
			_, ch, _ := stream(t, s, ref, nil, "?key="+apptest.APIKey+"&lastEventId="+first.id)
			return ch
		},
	} {
		replay := resume()
		if ev, open := next(t, replay); !open || ev.id != last.id || ev.data != last.data {
			t.Fatalf("%s: resumed with %+v, want the state now, %s", name, ev, last.id)
		}
		if _, open := next(t, replay); open {
			t.Fatalf("%s: the resumed stream stayed open after a final status", name)
		}
	}
	// EventSource reconnects even after the final status: 204 tells it that is all.
	if resp, _, _ := stream(t, s, ref, map[string]string{"Last-Event-ID": last.id}, ""); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("reconnecting after the final status: %d, want 204", resp.StatusCode)
	}
}

func TestSessionEventStreamHeartbeatAndAccess(t *testing.T) {
	s := apptest.New(t, nil)
	ref := ref()
	start(s, map[string]any{"referenceId": ref, "phoneNumber": ukMobile, "provider": "authsignal"})

	// EventSource sends no headers: the key in the query works, here only.
	resp, events, cancel := stream(t, s, ref, nil, "?key="+apptest.APIKey)
	if resp.StatusCode != 200 {
		t.Fatalf("key in the query: %d", resp.StatusCode)
	}
	next(t, events)
	deadline := time.After(5 * time.Second)
	for beat := false; !beat; {
		select {
		case ev := <-events:
			beat = ev.comment
		case <-deadline:
			t.Fatal("no heartbeat on an idle stream")
		}
	}
	cancel()

	for name, tc := range map[string]struct {
		query   string
		headers map[string]string
		status  int
	}{
		"wrong key in query": {"?key=nope", nil, 401},
		"no key":             {"?", nil, 401},
		"unknown session":    {"", nil, 404},
		"bad Last-Event-ID":  {"", map[string]string{"Last-Event-ID": "yesterday"}, 400},
	} {
		target := ref
		if name == "unknown session" {
			target = "nope-" + ref
		}
		resp, _, cancel := stream(t, s, target, tc.headers, tc.query)
		cancel()
		if resp.StatusCode != tc.status {
			t.Errorf("%s: %d, want %d", name, resp.StatusCode, tc.status)
		}
	}
	if r := s.Do("GET", "/v1/sessions?key="+apptest.APIKey, nil, "Authorization", ""); r.Status != 401 {
		t.Fatalf("the query key must work on the event stream only: %d", r.Status)
	}
}

// nextVersion reports whether event ID a ("<created ms>-<version>") is the version after b's
// of the same session.
func nextVersion(a, b string) bool {
	var am, av, bm, bv int64
	fmt.Sscanf(a, "%d-%d", &am, &av)
	fmt.Sscanf(b, "%d-%d", &bm, &bv)
	return am == bm && av == bv+1
}

// A session that expires by time alone ends its stream with "expired", although nothing else
// reads the session (the expiry is written by whoever reads it next).
func TestSessionEventStreamEndsAtExpiry(t *testing.T) {
	s := apptest.New(t, map[string]string{"LINK_TTL": "1s"})
	ref := ref()
	mustStart(t, s, map[string]any{"referenceId": ref, "phoneNumber": ukMobile})
	_, events, _ := stream(t, s, ref, nil, "")
	first, _ := next(t, events)
	if !strings.Contains(first.data, `"status":"sent"`) {
		t.Fatalf("first event %+v", first)
	}
	// The stream ends after the expired session, which comes as a change of its own. (What
	// comes before it is the session as started: the start's changes may still be on their
	// way to the stream when it opens, and then come again.)
	var last sse
	for {
		ev, open := next(t, events)
		if !open {
			break
		}
		if last.data != "" && !strings.Contains(last.data, `"status":"sent"`) && !strings.Contains(last.data, `"status":"pending"`) {
			t.Fatalf("an event after %+v", last)
		}
		last = ev
	}
	if !strings.Contains(last.data, `"status":"expired"`) || !strings.Contains(last.data, `"type":"expired"`) || last.id == "" {
		t.Fatalf("the stream ended after %+v, want the expired session under its ID", last)
	}
	if r := s.Do("GET", "/v1/sessions/"+ref, nil); r.JSON(t)["status"] != "expired" {
		t.Fatalf("GET after the stream ended: %s", r.Body)
	}
}

// TestSessionEventStreamShowsChangesWhoseNoticeIsLost: changes written straight to the store
// (as when the hub's queue is full or its PUBLISH fails: no notice) still show, at the
// stream's next heartbeat, under their IDs; a final one ends the stream, and a reconnect with
// its ID gets 204.
func TestSessionEventStreamShowsChangesWhoseNoticeIsLost(t *testing.T) {
	s := apptest.New(t, nil)
	ref := ref()
	mustStart(t, s, map[string]any{"referenceId": ref, "phoneNumber": ukMobile})
	_, events, _ := stream(t, s, ref, nil, "")
	first, _ := next(t, events)
	if !strings.Contains(first.data, `"status":"sent"`) {
		t.Fatalf("first event %+v", first)
	}
	write := func(fn func(*callsession.Session)) *callsession.Session {
		t.Helper()
		out, err := s.App.Store.Update(context.Background(), ref, time.Hour, func(cur *callsession.Session) error {
			fn(cur)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	counted := write(func(cur *callsession.Session) { cur.Attempts = 2 })
	if ev, open := next(t, events); !open || ev.id != live.EventID(counted) || !strings.Contains(ev.data, `"attempts":2`) {
		t.Fatalf("after an attempt counted without a notice: %+v, want %s", ev, live.EventID(counted))
	}
	verified := write(func(cur *callsession.Session) { cur.Status = callsession.StatusVerified })
	var last sse
	for {
		ev, open := next(t, events)
		if !open {
			break
		}
		last = ev
	}
	if !strings.Contains(last.data, `"status":"verified"`) || last.id != live.EventID(verified) {
		t.Fatalf("the stream ended after %+v, want the verified session under %s", last, live.EventID(verified))
	}
	if resp, _, _ := stream(t, s, ref, map[string]string{"Last-Event-ID": last.id}, ""); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("reconnecting after the final status: %d, want 204", resp.StatusCode)
	}
}

// A Last-Event-ID that is not a state before the stored one (a history lost in a failover,
// or the ID of a stream entry of the live events this bridge used to keep, which is later
// than the session's creation) gets the stored state, not silence.
func TestSessionEventStreamAfterAnIDAheadOfTheStore(t *testing.T) {
	s := apptest.New(t, nil)
	ref := ref()
	mustStart(t, s, map[string]any{"referenceId": ref, "phoneNumber": ukMobile})
	stored, err := s.App.Store.Get(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	now := live.EventID(stored)
	ahead := fmt.Sprintf("%d-%d", stored.CreatedAt.UnixMilli(), stored.Version+5)
	streamEntry := fmt.Sprintf("%d-0", stored.CreatedAt.UnixMilli()+5000)
	for _, last := range []string{ahead, streamEntry} {
		_, events, cancel := stream(t, s, ref, map[string]string{"Last-Event-ID": last}, "")
		if ev, open := next(t, events); !open || ev.id != now || !strings.Contains(ev.data, `"status":"sent"`) {
			t.Fatalf("after %s: %+v (open %v), want the stored state %s", last, ev, open, now)
		}
		cancel()
	}
}
