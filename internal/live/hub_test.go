package live

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/ivr-bridge/ivr-bridge/internal/callsession"
	"github.com/ivr-bridge/ivr-bridge/internal/store/storetest"
)

// clients are miniredis always, and the real Redis at REDIS_URL when set.
func clients(t *testing.T) map[string]redis.UniversalClient {
	out := map[string]redis.UniversalClient{}
	for name, o := range storetest.Servers(t) {
		c := redis.NewClient(o)
		t.Cleanup(func() { c.Close() })
		out[name] = c
	}
	return out
}

func view(s *callsession.Session) any { return s }

// sessions stands in for the store: the hub reads sessions through it, and tests write them
// as the service does (a write stores a new version, then publishes).
type sessions struct {
	mu    sync.Mutex
	m     map[string]*callsession.Session
	reads atomic.Int64
}

func newSessions() *sessions { return &sessions{m: map[string]*callsession.Session{}} }

func (t *sessions) read(_ context.Context, ref string) (*callsession.Session, error) {
	t.reads.Add(1)
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.m[ref]
	if !ok {
		return nil, callsession.ErrNotFound
	}
	c := *s
	return &c, nil
}

// write stores ref's next version with the status and attempts given (a new session at
// version 1, created at created).
func (t *sessions) write(ref string, created time.Time, st callsession.Status, attempts int) *callsession.Session {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.m[ref]
	if s == nil || !s.CreatedAt.Equal(created) {
		s = &callsession.Session{ReferenceID: ref, CreatedAt: created}
	}
	next := *s
	next.Version, next.Status, next.Attempts = s.Version+1, st, attempts
	t.m[ref] = &next
	c := next
	return &c
}

var created = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

// twoReplicas starts two hubs on one Redis under a fresh prefix, reading one store: two
// replicas of the bridge. They run until the test ends.
func twoReplicas(t *testing.T, c redis.UniversalClient) (context.Context, *sessions, *Hub, *Hub) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	prefix := fmt.Sprintf("livetest:%d:", time.Now().UnixNano())
	store := newSessions()
	a, b := NewHub(c, prefix, store.read, view, nil), NewHub(c, prefix, store.read, view, nil)
	go a.Run(ctx)
	go b.Run(ctx)
	return ctx, store, a, b
}

// receive is the next change handed to w, failing after a deadline.
func receive(t *testing.T, w *watcher) Event {
	t.Helper()
	select {
	case ev := <-w.events:
		return ev
	case <-time.After(3 * time.Second):
		t.Fatal("no change handed to the viewer within 3 s")
	}
	return Event{}
}

func TestNoticesAndStates(t *testing.T) {
	for name, c := range clients(t) {
		t.Run(name, func(t *testing.T) {
			ctx, store, a, b := twoReplicas(t, c)
			viewer, stop := b.watch("CA1")
			defer stop()
			other, stopOther := b.watch("CA2")
			defer stopOther()
			time.Sleep(100 * time.Millisecond) // b's subscription is up
			// When its subscription comes up, a hub tells every viewer to read (they may have
			// missed notices meanwhile): drain that.
			for _, w := range []*watcher{viewer, other} {
				select {
				case <-w.resync:
				default:
				}
			}

			if got, err := a.Since(ctx, "CA1", ""); err != nil || len(got) != 0 {
				t.Fatalf("Since of nothing = %v, %v", got, err)
			}
			a.Publish(ctx, store.write("CA1", created, callsession.StatusSent, 0))
			ev := receive(t, viewer)
			want := fmt.Sprintf("%d-1", created.UnixMilli())
			if ev.ID != want || !strings.Contains(string(ev.Data), `"status":"sent"`) {
				t.Fatalf("replica b's viewer got %s %s, want the change made through a, %s", ev.ID, ev.Data, want)
			}
			select {
			case ev := <-other.events:
				t.Fatalf("a viewer of another session got %s", ev.ID)
			case <-other.resync:
				t.Fatal("a viewer of another session was told to read")
			default:
			}
			first, err := b.Since(ctx, "CA1", "")
			if err != nil || len(first) != 1 || first[0].ID != want || string(first[0].Data) != string(ev.Data) {
				t.Fatalf("Since(all) = %+v, %v; want the state announced", first, err)
			}
			if again, err := b.Since(ctx, "CA1", first[0].ID); err != nil || len(again) != 0 {
				t.Fatalf("Since(the state itself) = %+v, %v; want nothing", again, err)
			}
			a.Publish(ctx, store.write("CA1", created, callsession.StatusVerified, 1))
			if ev := receive(t, viewer); !Newer(ev.ID, first[0].ID) || !strings.Contains(string(ev.Data), `"status":"verified"`) {
				t.Fatalf("second change: %s %s", ev.ID, ev.Data)
			}
			rest, err := b.Since(ctx, "CA1", first[0].ID)
			if err != nil || len(rest) != 1 || !strings.Contains(string(rest[0].Data), `"status":"verified"`) {
				t.Fatalf("Since(first) = %+v, %v", rest, err)
			}
			// The reference used again after its session expired: the new session is newer
			// than any state of the old one, whatever the versions; so is any state after the
			// ID of a stream entry (the form of the IDs live events had before).
			store.write("CA1", created.Add(time.Hour), callsession.StatusPending, 0)
			for _, after := range []string{rest[0].ID, "1764669600000-0"} {
				if got, err := b.Since(ctx, "CA1", after); err != nil || len(got) != 1 || got[0].ID != fmt.Sprintf("%d-1", created.Add(time.Hour).UnixMilli()) {
					t.Fatalf("Since(%s) across sessions = %+v, %v", after, got, err)
				}
			}
			for _, bad := range []string{"x", "1-", "-1", "1-2-3", "12a-3"} {
				if _, err := b.Since(ctx, "CA1", bad); !errors.Is(err, ErrBadEventID) {
					t.Errorf("Since(%q) = %v", bad, err)
				}
				if Newer(bad, "") || Newer("1-1", bad) {
					t.Errorf("Newer takes %q for an event ID", bad)
				}
			}
			if keys := c.Keys(ctx, a.prefix+"*").Val(); len(keys) != 0 {
				t.Fatalf("the live view keeps keys of its own: %v", keys)
			}
		})
	}
}

// A viewer that keeps up gets every change, as it was stored, in order, and nothing it
// has seen: from the notices alone, without reading the store.
func TestEveryChangeReachesAViewer(t *testing.T) {
	for name, c := range clients(t) {
		t.Run(name, func(t *testing.T) {
			ctx, store, a, b := twoReplicas(t, c)
			first := store.write("CA1", created, callsession.StatusPending, 0)
			sub, err := b.Subscribe(ctx, "CA1", EventID(first))
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond) // b's subscription is up
			readsBefore := store.reads.Load()
			const n = viewerBacklog - 1
			for i := 1; i <= n; i++ {
				a.Publish(ctx, store.write("CA1", created, status(i), i))
			}
			for i, ev := range collect(t, sub, n) {
				var got callsession.Session
				if err := json.Unmarshal(ev.Data, &got); err != nil || version(t, ev.ID) != int64(i+2) || got.Attempts != i+1 {
					t.Fatalf("change %d: %s %s (%v)", i, ev.ID, ev.Data, err)
				}
			}
			if reads := store.reads.Load() - readsBefore; reads != 0 {
				t.Fatalf("the viewer read the store %d times", reads)
			}
			select {
			case ev := <-sub:
				t.Fatalf("an extra event %s", ev.ID)
			case <-time.After(200 * time.Millisecond):
			}
		})
	}
}

// collect reads n events from ch, failing after a deadline.
func collect(t *testing.T, ch <-chan Event, n int) []Event {
	t.Helper()
	deadline := time.After(5 * time.Second)
	var out []Event
	for len(out) < n {
		select {
		case ev, open := <-ch:
			if !open {
				t.Fatalf("the subscription ended after %d of %d events", len(out), n)
			}
			out = append(out, ev)
		case <-deadline:
			t.Fatalf("%d of %d events within 5 s", len(out), n)
		}
	}
	return out
}

func status(i int) callsession.Status {
	return []callsession.Status{callsession.StatusPending, callsession.StatusSent}[i%2]
}

// version is the version in an event ID.
func version(t *testing.T, id string) int64 {
	t.Helper()
	_, v, _ := strings.Cut(id, "-")
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		t.Fatalf("event ID %q: %v", id, err)
	}
	return n
}

// TestSubscribeFollowsNewerStates: a viewer on replica b resuming after a state gets the
// state now, then the states both replicas write while it watches: each newer than the one
// before, never one twice, the last one written always, each as it was stored.
func TestSubscribeFollowsNewerStates(t *testing.T) {
	for name, c := range clients(t) {
		t.Run(name, func(t *testing.T) {
			ctx, store, a, b := twoReplicas(t, c)
			var seen *callsession.Session
			for i := range 3 {
				seen = store.write("CA1", created, status(i), i)
				a.Publish(ctx, seen)
			}
			subCtx, endSub := context.WithCancel(ctx)
			sub, err := b.Subscribe(subCtx, "CA1", fmt.Sprintf("%d-1", created.UnixMilli()))
			if err != nil {
				t.Fatal(err)
			}
			if ev := collect(t, sub, 1)[0]; version(t, ev.ID) != 3 {
				t.Fatalf("resumed after version 1: got %s, want the state now (version 3)", ev.ID)
			}
			const more = 40
			go func() {
				for i := 3; i < 3+more; i++ {
					hub := a
					if i%3 == 0 {
						hub = b
					}
					hub.Publish(ctx, store.write("CA1", created, status(i), i))
				}
			}()
			last := int64(3)
			for last < 3+more {
				ev := collect(t, sub, 1)[0]
				v := version(t, ev.ID)
				if v <= last {
					t.Fatalf("state %d after state %d: repeated or out of order", v, last)
				}
				var got callsession.Session
				if err := json.Unmarshal(ev.Data, &got); err != nil || int64(got.Attempts) != v-1 || got.Status != status(int(v-1)) {
					t.Fatalf("state %d holds %+v (%v), not what version %d stored", v, got, err, v)
				}
				last = v
			}
			select {
			case ev := <-sub:
				t.Fatalf("an extra event %s", ev.ID)
			case <-time.After(200 * time.Millisecond):
			}

			if _, err := b.Subscribe(ctx, "CA1", "yesterday"); !errors.Is(err, ErrBadEventID) {
				t.Fatalf("Subscribe after a bad ID: %v", err)
			}
			endSub()
			select {
			case _, open := <-sub:
				for open {
					_, open = <-sub
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the subscription outlived its context")
			}
		})
	}
}

// TestSubscribeSurvivesRedisRestart: notices published while a replica's subscription is
// down are lost; when it comes back, its viewers re-read their sessions and miss nothing.
func TestSubscribeSurvivesRedisRestart(t *testing.T) {
	mr := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store := newSessions()
	h := NewHub(c, "livetest:", store.read, view, nil)
	go h.Run(ctx)
	h.Publish(ctx, store.write("CA1", created, callsession.StatusSent, 0))
	sub, err := h.Subscribe(ctx, "CA1", "")
	if err != nil {
		t.Fatal(err)
	}
	collect(t, sub, 1) // the state now

	mr.Close()
	// Written while the replica cannot hear of it: no notice will ever name it.
	h.Publish(ctx, store.write("CA1", created, callsession.StatusVerified, 0))
	if err := mr.Restart(); err != nil {
		t.Fatal(err)
	}
	if ev := collect(t, sub, 1)[0]; version(t, ev.ID) != 2 || !strings.Contains(string(ev.Data), `"status":"verified"`) {
		t.Fatalf("after the restart: %s %s", ev.ID, ev.Data)
	}
}

// A batch of changes is announced by one notice naming each session: the other replica
// wakes the viewers of every one of them, and no one else.
func TestOneNoticePerBatch(t *testing.T) {
	for name, c := range clients(t) {
		t.Run(name, func(t *testing.T) {
			// Replica a's writer is not running yet: the three changes below are queued
			// when it starts, so its first batch holds them all.
			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(cancel)
			prefix := fmt.Sprintf("livetest:%d:", time.Now().UnixNano())
			store := newSessions()
			a, b := NewHub(c, prefix, store.read, view, nil), NewHub(c, prefix, store.read, view, nil)
			go b.Run(ctx)
			refs := []string{"CB1", "CB2", "CB3"}
			var viewers []*watcher
			for _, ref := range refs {
				w, stop := b.watch(ref)
				defer stop()
				viewers = append(viewers, w)
			}
			bystander, stopBystander := b.watch("CB9")
			defer stopBystander()
			time.Sleep(100 * time.Millisecond) // b's subscription is up
			for _, w := range append(viewers, bystander) {
				select { // the read every viewer is told to make when a subscription comes up
				case <-w.resync:
				default:
				}
			}

			sub := c.Subscribe(ctx, a.channel())
			defer sub.Close()
			if _, err := sub.Receive(ctx); err != nil {
				t.Fatal(err)
			}
			for _, ref := range refs {
				a.Publish(ctx, store.write(ref, created, callsession.StatusSent, 0))
			}
			go a.write(ctx)

			msg, err := sub.ReceiveMessage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			records := strings.Split(msg.Payload, "\n")
			if len(records) != len(refs) {
				t.Fatalf("notice = %q, want one record per change, one notice for the batch", msg.Payload)
			}
			for i, w := range viewers {
				fields := strings.SplitN(records[i], "\t", 3)
				if len(fields) != 3 || fields[0] != refs[i] || fields[1] != fmt.Sprintf("%d-1", created.UnixMilli()) || !strings.HasPrefix(fields[2], "{") {
					t.Fatalf("record %d = %q", i, records[i])
				}
				if ev := receive(t, w); ev.ID != fields[1] || string(ev.Data) != fields[2] {
					t.Fatalf("the viewer of %s on replica b got %s %s", refs[i], ev.ID, ev.Data)
				}
			}
			select {
			case ev := <-bystander.events:
				t.Fatalf("a viewer of a session not in the notice %q got %s", msg.Payload, ev.ID)
			case <-bystander.resync:
				t.Fatalf("a viewer of a session not in the notice %q was told to read", msg.Payload)
			case <-time.After(200 * time.Millisecond):
			}
		})
	}
}

// A replica shutting down announces what is still queued, at once, then stops.
func TestShutdownAnnouncesWhatIsQueued(t *testing.T) {
	for name, c := range clients(t) {
		t.Run(name, func(t *testing.T) {
			prefix := fmt.Sprintf("livetest:%d:", time.Now().UnixNano())
			store := newSessions()
			h := NewHub(c, prefix, store.read, view, nil)
			sub := c.Subscribe(context.Background(), h.channel())
			defer sub.Close()
			if _, err := sub.Receive(context.Background()); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			for _, ref := range []string{"CD1", "CD2"} {
				h.Publish(ctx, store.write(ref, created, callsession.StatusSent, 0))
			}
			cancel() // the replica is stopping before its writer ran
			done := make(chan struct{})
			go func() {
				h.write(ctx)
				close(done)
			}()
			msg, err := sub.ReceiveMessage(context.Background())
			if err != nil || strings.Count(msg.Payload, "\n") != 1 || !strings.HasPrefix(msg.Payload, "CD1\t") {
				t.Fatalf("notice at shutdown = %q, %v; want both changes", msg.Payload, err)
			}
			select {
			case <-done:
			case <-time.After(time.Second): // the flush's own bound is 2 s
				t.Fatal("the writer waited on after announcing everything queued")
			}
		})
	}
}

// Event IDs order by creation, then version: a late notice of a session the reference held
// before is not newer than the session it holds now, and neither is anything after an ID
// that is not one.
func TestNewer(t *testing.T) {
	for _, tc := range []struct {
		id, after string
		want      bool
	}{
		{"100-2", "100-1", true},
		{"100-1", "100-1", false},
		{"100-1", "100-2", false},
		{"200-1", "100-9", true},  // the reference used again
		{"100-9", "200-1", false}, // a late notice of the session before
		{"100-1", "", true},
		{"x", "", false},
		{"100-1", "x", false},
		{"99-1", "100-1", false}, // numbers, not strings
		{"1000-1", "999-5", true},
	} {
		if got := Newer(tc.id, tc.after); got != tc.want {
			t.Errorf("Newer(%q, %q) = %v, want %v", tc.id, tc.after, got, tc.want)
		}
	}
}

// The writer waits a moment after a change for others to share its notice: changes that come
// while it waits go out together, and a replica stopping cuts the wait short.
func TestGatherWaitsForChangesToShareANotice(t *testing.T) {
	store := newSessions()
	h := NewHub(nil, "gathertest:", store.read, view, nil)
	h.gatherFor = time.Hour // only the stop ends this wait
	ctx, cancel := context.WithCancel(context.Background())
	var notice strings.Builder
	h.append(&notice, change{ref: "CG1", ev: Event{ID: "1-1", Data: []byte("{}")}})
	got := make(chan int)
	go func() { got <- h.gather(ctx, &notice, 1) }()
	for _, ref := range []string{"CG2", "CG3"} {
		h.Publish(ctx, store.write(ref, created, callsession.StatusSent, 0))
	}
	for deadline := time.Now().Add(10 * time.Second); len(h.changes) > 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the waiting writer did not take the changes queued meanwhile")
		}
	}
	cancel()
	if n := <-got; n != 3 || strings.Count(notice.String(), "\n") != 2 || !strings.Contains(notice.String(), "CG3\t") {
		t.Fatalf("gathered %d: %q; want the three changes in one notice", n, notice.String())
	}

	// Without a stop, the wait ends by itself.
	h.gatherFor = 10 * time.Millisecond
	notice.Reset()
	if n := h.gather(context.Background(), &notice, 0); n != 0 || notice.Len() != 0 {
		t.Fatalf("gathered %d from an empty queue: %q", n, notice.String())
	}
}

// ValidID is Newer's reading of an ID: what it cannot order is not an event ID.
func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{
		"1700000000000-3": true, "0-0": true, "": false, "12": false, "-1": false, "1-": false,
		"1-2-3": false, "a-1": false, "99999999999999999999-1": false, // past int64
	} {
		if got := ValidID(id); got != want || got != Newer(id, "") {
			t.Errorf("ValidID(%q) = %v, Newer(%q, \"\") = %v; want %v", id, got, id, Newer(id, ""), want)
		}
	}
}
