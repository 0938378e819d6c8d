package live

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
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

// twoReplicas starts two hubs on one Redis under a fresh prefix: two replicas of the bridge.
// They run until the test ends.
func twoReplicas(t *testing.T, c redis.UniversalClient) (context.Context, *Hub, *Hub) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	prefix := fmt.Sprintf("livetest:%d:", time.Now().UnixNano())
	a, b := NewHub(c, prefix, time.Minute, view, nil), NewHub(c, prefix, time.Minute, view, nil)
	go a.Run(ctx)
	go b.Run(ctx)
	return ctx, a, b
}

func TestStreamAndNotices(t *testing.T) {
	for name, c := range clients(t) {
		t.Run(name, func(t *testing.T) {
			ctx, a, b := twoReplicas(t, c)
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
			a.Publish(ctx, &callsession.Session{ReferenceID: "CA1", Status: callsession.StatusSent})
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
			a.Publish(ctx, &callsession.Session{ReferenceID: "CA1", Status: callsession.StatusVerified})
			<-notify
			all, err := b.Since(ctx, "CA1", "")
			if err != nil || len(all) != 2 {
				t.Fatalf("Since(all) = %d events, %v", len(all), err)
			}
			rest, err := b.Since(ctx, "CA1", all[0].ID)
			if err != nil || len(rest) != 1 || rest[0].ID != all[1].ID || string(rest[0].Data) != string(all[1].Data) {
				t.Fatalf("Since(first) = %+v, %v", rest, err)
			}
			if latest, _ := b.Latest(ctx, "CA1"); latest != all[1].ID {
				t.Fatalf("Latest = %s, want %s", latest, all[1].ID)
			}
			if ttl := c.PTTL(ctx, a.streamKey("CA1")).Val(); ttl <= 0 || ttl > time.Minute {
				t.Fatalf("stream TTL %s", ttl)
			}
			for _, bad := range []string{"x", "1-", "-1", "1-2-3", "12a-3"} {
				if _, err := b.Since(ctx, "CA1", bad); !errors.Is(err, ErrBadEventID) {
					t.Errorf("Since(%q) = %v", bad, err)
				}
			}
			c.Del(ctx, a.streamKey("CA1"))
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

// TestSubscribeReplaysThenFollows: a viewer on replica b resuming after an event gets what
// followed, then the changes both replicas write while it watches: exactly the stream, in its
// order, nothing twice, nothing skipped.
func TestSubscribeReplaysThenFollows(t *testing.T) {
	for name, c := range clients(t) {
		t.Run(name, func(t *testing.T) {
			ctx, a, b := twoReplicas(t, c)
			defer c.Del(context.Background(), a.streamKey("CA1"))

			for i := range 3 {
				a.Publish(ctx, &callsession.Session{ReferenceID: "CA1", Status: status(i), Attempts: i})
			}
			var before []Event
			for deadline := time.Now().Add(5 * time.Second); len(before) < 3; time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the first changes were not written")
				}
				before, _ = a.Since(ctx, "CA1", "")
			}

			subCtx, endSub := context.WithCancel(ctx)
			sub, err := b.Subscribe(subCtx, "CA1", before[0].ID)
			if err != nil {
				t.Fatal(err)
			}
			const more = 40
			go func() {
				for i := 3; i < 3+more; i++ {
					hub := a
					if i%3 == 0 {
						hub = b
					}
					hub.Publish(ctx, &callsession.Session{ReferenceID: "CA1", Status: status(i), Attempts: i})
				}
			}()
			got := collect(t, sub, 2+more)
			want, err := a.Since(ctx, "CA1", before[0].ID)
			if err != nil || len(want) != len(got) {
				t.Fatalf("the stream holds %d events after the first (%v), the viewer got %d", len(want), err, len(got))
			}
			for i := range want {
				if got[i].ID != want[i].ID || string(got[i].Data) != string(want[i].Data) {
					t.Fatalf("event %d: got %s, the stream has %s", i, got[i].ID, want[i].ID)
				}
			}
			select {
			case ev := <-sub:
				t.Fatalf("an extra event %s", ev.ID)
			case <-time.After(200 * time.Millisecond):
			}

			if _, err := b.Subscribe(ctx, "CA1", "yesterday"); !errors.Is(err, ErrBadEventID) {
				t.Fatalf("Subscribe after a bad ID: %v", err)
			}
			if ev, ok, err := b.Event(ctx, "CA1", want[0].ID); err != nil || !ok || string(ev.Data) != string(want[0].Data) {
				t.Fatalf("Event(%s) = %s, %v, %v", want[0].ID, ev.Data, ok, err)
			}
			if _, ok, err := b.Event(ctx, "CA1", "1-1"); ok || err != nil {
				t.Fatalf("Event of a trimmed or unknown ID: %v, %v", ok, err)
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
// down are lost; when it comes back, its viewers re-read their streams and miss nothing.
func TestSubscribeSurvivesRedisRestart(t *testing.T) {
	mr := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := NewHub(c, "livetest:", time.Minute, view, nil)
	go h.Run(ctx)
	sub, err := h.Subscribe(ctx, "CA1", "")
	if err != nil {
		t.Fatal(err)
	}
	h.Publish(ctx, &callsession.Session{ReferenceID: "CA1", Status: callsession.StatusSent})
	collect(t, sub, 1) // the subscription is up

	mr.Close()
	// Written while the replica cannot hear of it: no notice will ever name it.
	id, err := mr.XAdd(h.streamKey("CA1"), "*", []string{"d", `{"status":"verified"}`})
	if err != nil {
		t.Fatal(err)
	}
	if err := mr.Restart(); err != nil {
		t.Fatal(err)
	}
	if ev := collect(t, sub, 1)[0]; ev.ID != id || string(ev.Data) != `{"status":"verified"}` {
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
			a, b := NewHub(c, prefix, time.Minute, view, nil), NewHub(c, prefix, time.Minute, view, nil)
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
				a.changes <- change{ref: ref, data: []byte(`{}`)}
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
				if got, err := a.Since(ctx, refs[i], ""); err != nil || len(got) != 1 {
					t.Fatalf("stream of %s = %d events, %v; want 1", refs[i], len(got), err)
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
