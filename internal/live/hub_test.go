package live

import (
	"context"
	"errors"
	"fmt"
	"os"
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

func TestStreamAndNotices(t *testing.T) {
	for name, c := range clients(t) {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			prefix := fmt.Sprintf("livetest:%d:", time.Now().UnixNano())
			// Two hubs on one Redis are two replicas.
			a, b := NewHub(c, prefix, time.Minute, view, nil), NewHub(c, prefix, time.Minute, view, nil)
			go a.Run(ctx)
			go b.Run(ctx)
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
