package live

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/ivr-bridge/ivr-bridge/internal/callsession"
)

// clients are miniredis always, and the real Redis at REDIS_URL when set.
func clients(t *testing.T) map[string]redis.UniversalClient {
	mr := miniredis.RunT(t)
	out := map[string]redis.UniversalClient{"miniredis": redis.NewClient(&redis.Options{Addr: mr.Addr()})}
	if url := os.Getenv("REDIS_URL"); url != "" {
		o, err := redis.ParseURL(url)
		if err != nil {
			t.Fatal(err)
		}
		out["redis"] = redis.NewClient(o)
	}
	for _, c := range out {
		t.Cleanup(func() { c.Close() })
	}
	return out
}

func view(s *callsession.Session) any { return s }

// sessions stands in for the store: the hub reads sessions through it, and tests write them
// as the service does (a write stores a new version, then publishes).
type sessions struct {
	mu sync.Mutex
	m  map[string]*callsession.Session
}

func newSessions() *sessions { return &sessions{m: map[string]*callsession.Session{}} }

func (t *sessions) read(_ context.Context, ref string) (*callsession.Session, error) {
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

func TestNoticesAndStates(t *testing.T) {
	for name, c := range clients(t) {
		t.Run(name, func(t *testing.T) {
			ctx, store, a, b := twoReplicas(t, c)
			notify, stop := b.watch("CA1")
			defer stop()
			other, stopOther := b.watch("CA2")
			defer stopOther()
			time.Sleep(100 * time.Millisecond) // b's subscription is up
			// When its subscription comes up, a hub wakes every viewer once (they may have
			// missed notices meanwhile): drain that.
			for _, ch := range []<-chan struct{}{notify, other} {
				select {
				case <-ch:
				default:
				}
			}

			if id, err := a.Latest(ctx, "CA1"); err != nil || id != "" {
				t.Fatalf("Latest of nothing = %q, %v", id, err)
			}
			if got, err := a.Since(ctx, "CA1", ""); err != nil || len(got) != 0 {
				t.Fatalf("Since of nothing = %v, %v", got, err)
			}
			a.Publish(ctx, store.write("CA1", created, callsession.StatusSent, 0))
			select {
			case <-notify:
			case <-time.After(3 * time.Second):
				t.Fatal("replica b was not told of a change made through a")
			}
			select {
			case <-other:
				t.Fatal("a viewer of another session was woken")
			default:
			}
			first, err := b.Since(ctx, "CA1", "")
			want := fmt.Sprintf("%d-1", created.UnixMilli())
			if err != nil || len(first) != 1 || first[0].ID != want || !strings.Contains(string(first[0].Data), `"status":"sent"`) {
				t.Fatalf("Since(all) = %+v, %v; want one state %s", first, err, want)
			}
			if again, err := b.Since(ctx, "CA1", first[0].ID); err != nil || len(again) != 0 {
				t.Fatalf("Since(the state itself) = %+v, %v; want nothing", again, err)
			}
			a.Publish(ctx, store.write("CA1", created, callsession.StatusVerified, 1))
			<-notify
			rest, err := b.Since(ctx, "CA1", first[0].ID)
			if err != nil || len(rest) != 1 || !newer(rest[0].ID, first[0].ID) || !strings.Contains(string(rest[0].Data), `"status":"verified"`) {
				t.Fatalf("Since(first) = %+v, %v", rest, err)
			}
			if latest, _ := b.Latest(ctx, "CA1"); latest != rest[0].ID {
				t.Fatalf("Latest = %s, want %s", latest, rest[0].ID)
			}
			if ev, ok, err := b.Event(ctx, "CA1", rest[0].ID); err != nil || !ok || string(ev.Data) != string(rest[0].Data) {
				t.Fatalf("Event(the current state) = %s, %v, %v", ev.Data, ok, err)
			}
			if _, ok, err := b.Event(ctx, "CA1", first[0].ID); ok || err != nil {
				t.Fatalf("Event(a state moved on from) = %v, %v", ok, err)
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
			}
			if keys := c.Keys(ctx, a.prefix+"*").Val(); len(keys) != 0 {
				t.Fatalf("the live view keeps keys of its own: %v", keys)
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
			var woken []<-chan struct{}
			for _, ref := range refs {
				ch, stop := b.watch(ref)
				defer stop()
				woken = append(woken, ch)
			}
			bystander, stopBystander := b.watch("CB9")
			defer stopBystander()
			time.Sleep(100 * time.Millisecond) // b's subscription is up
			for _, ch := range append(woken, bystander) {
				select { // the wake-up every viewer gets when a subscription comes up
				case <-ch:
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
			if want := strings.Join(refs, "\n"); msg.Payload != want {
				t.Fatalf("notice = %q, want %q (one for the batch)", msg.Payload, want)
			}
			for i, ch := range woken {
				select {
				case <-ch:
				case <-time.After(3 * time.Second):
					t.Fatalf("the viewer of %s on replica b was not woken (notice %q)", refs[i], msg.Payload)
				}
			}
			select {
			case <-bystander:
				t.Fatalf("a viewer of a session not in the notice %q was woken", msg.Payload)
			case <-time.After(200 * time.Millisecond):
			}
		})
	}
}
