package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/ivr-bridge/ivr-bridge/internal/callsession"
)

// backend is a Redis to run the suite on, and how to make its keys expire.
type backend struct {
	name   string
	client redis.UniversalClient
	// elapse makes d pass for the server's TTLs.
	elapse func(t *testing.T, d time.Duration)
}

// backends are miniredis always, and the real server at REDIS_URL when it is set: the same
// suite runs on both.
func backends(t *testing.T) []backend {
	mr := miniredis.RunT(t)
	mc := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { mc.Close() })
	out := []backend{{name: "miniredis", client: mc, elapse: func(_ *testing.T, d time.Duration) { mr.FastForward(d) }}}
	if url := os.Getenv("REDIS_URL"); url != "" {
		b, err := Open(context.Background(), Options{URL: url})
		if err != nil {
			t.Fatalf("REDIS_URL: %v", err)
		}
		t.Cleanup(func() { b.Close() })
		out = append(out, backend{name: "redis", client: b.Client, elapse: func(_ *testing.T, d time.Duration) { time.Sleep(d) }})
	}
	return out
}

// eachBackend runs fn on each backend with a store of its own key prefix.
func eachBackend(t *testing.T, fn func(t *testing.T, b backend, s *Redis)) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			prefix := fmt.Sprintf("test:%d:", time.Now().UnixNano())
			t.Cleanup(func() { cleanup(b.client, prefix) })
			fn(t, b, NewRedis(b.client, WithPrefix(prefix)))
		})
	}
}

func cleanup(c redis.UniversalClient, prefix string) {
	ctx := context.Background()
	iter := c.Scan(ctx, 0, prefix+"*", 500).Iterator()
	for iter.Next(ctx) {
		c.Del(ctx, iter.Val())
	}
	iter = c.Scan(ctx, 0, "rate:"+prefix+"*", 500).Iterator()
	for iter.Next(ctx) {
		c.Del(ctx, iter.Val())
	}
}

var t0 = time.Date(2026, 11, 24, 18, 5, 0, 0, time.UTC)

func session(ref string, at time.Time) *callsession.Session {
	exp := at.Add(10 * time.Minute)
	return &callsession.Session{
		ReferenceID: ref, Provider: callsession.ProviderAuthsignal, Channel: callsession.ChannelSMS,
		PhoneNumber: "+14155552671", Country: "US", Status: callsession.StatusSent, ChallengeID: "ch_" + ref,
		UserID: "u1", Locale: "en-US", Attempts: 0, MaxAttempts: 5, Sends: 1, ExpiresAt: &exp,
		CreatedAt: at, UpdatedAt: at, Fingerprint: "fp-" + ref,
		Events: []callsession.Event{{At: at, Type: callsession.EventCreated, Detail: "created"}, {At: at, Type: callsession.EventSent}},
	}
}

func TestCreateGetRoundTrip(t *testing.T) {
	eachBackend(t, func(t *testing.T, _ backend, s *Redis) {
		ctx := context.Background()
		in := session("CA1", t0)
		if existing, created, err := s.Create(ctx, in, time.Hour); err != nil || !created || existing != nil {
			t.Fatalf("Create = %v, %v, %v", existing, created, err)
		}
		got, err := s.Get(ctx, "CA1")
		if err != nil {
			t.Fatal(err)
		}
		if got.ChallengeID != "ch_CA1" || got.Fingerprint != "fp-CA1" || !got.ExpiresAt.Equal(*in.ExpiresAt) ||
			!got.CreatedAt.Equal(t0) || len(got.Events) != 2 || got.Events[1].Type != callsession.EventSent || got.MaxAttempts != 5 {
			t.Fatalf("round trip: %+v", got)
		}
		if _, err := s.Get(ctx, "nope"); !errors.Is(err, callsession.ErrNotFound) {
			t.Fatalf("Get missing = %v", err)
		}
	})
}

func TestCreateKeepsTheFirst(t *testing.T) {
	eachBackend(t, func(t *testing.T, _ backend, s *Redis) {
		ctx := context.Background()
		if _, _, err := s.Create(ctx, session("CA1", t0), time.Hour); err != nil {
			t.Fatal(err)
		}
		other := session("CA1", t0.Add(time.Second))
		other.PhoneNumber = "+447400123456"
		existing, created, err := s.Create(ctx, other, time.Hour)
		if err != nil || created || existing == nil || existing.PhoneNumber != "+14155552671" {
			t.Fatalf("second Create = %+v, %v, %v", existing, created, err)
		}
		if got, _ := s.Get(ctx, "CA1"); got.PhoneNumber != "+14155552671" {
			t.Fatal("the second create overwrote the first")
		}
	})
}

func TestConcurrentCreatesOneWinner(t *testing.T) {
	eachBackend(t, func(t *testing.T, _ backend, s *Redis) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		for i := 0; i < 50; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, created, err := s.Create(context.Background(), session("CA-race", t0), time.Hour)
				if err != nil {
					t.Error(err)
				}
				if created {
					mu.Lock()
					wins++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if wins != 1 {
			t.Fatalf("%d creates won, want 1", wins)
		}
	})
}

func TestUpdateIsCompareAndSet(t *testing.T) {
	eachBackend(t, func(t *testing.T, _ backend, s *Redis) {
		ctx := context.Background()
		if _, _, err := s.Create(ctx, session("CA1", t0), time.Hour); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for i := 0; i < 50; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.Update(ctx, "CA1", time.Hour, func(cur *callsession.Session) error {
					cur.Attempts++
					return nil
				}); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if got, _ := s.Get(ctx, "CA1"); got.Attempts != 50 {
			t.Fatalf("attempts = %d after 50 concurrent increments", got.Attempts)
		}
	})
}

func TestUpdateMissingAndAborted(t *testing.T) {
	eachBackend(t, func(t *testing.T, _ backend, s *Redis) {
		ctx := context.Background()
		if _, err := s.Update(ctx, "nope", time.Hour, func(*callsession.Session) error { return nil }); !errors.Is(err, callsession.ErrNotFound) {
			t.Fatalf("Update missing = %v", err)
		}
		if _, _, err := s.Create(ctx, session("CA1", t0), time.Hour); err != nil {
			t.Fatal(err)
		}
		stop := errors.New("stop")
		_, err := s.Update(ctx, "CA1", time.Hour, func(cur *callsession.Session) error {
			cur.Status = callsession.StatusVerified
			return stop
		})
		if !errors.Is(err, stop) {
			t.Fatalf("Update aborted = %v", err)
		}
		if got, _ := s.Get(ctx, "CA1"); got.Status != callsession.StatusSent {
			t.Fatal("an aborted update was written")
		}
	})
}

func TestTTLSetRefreshedAndExpires(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend, s *Redis) {
		ctx := context.Background()
		if _, _, err := s.Create(ctx, session("CA1", t0), time.Hour); err != nil {
			t.Fatal(err)
		}
		ttl := b.client.PTTL(ctx, s.key("CA1")).Val()
		if ttl <= 59*time.Minute || ttl > time.Hour {
			t.Fatalf("PTTL after create = %s", ttl)
		}
		if _, err := s.Update(ctx, "CA1", 2*time.Hour, func(cur *callsession.Session) error { cur.Attempts++; return nil }); err != nil {
			t.Fatal(err)
		}
		if ttl := b.client.PTTL(ctx, s.key("CA1")).Val(); ttl <= time.Hour {
			t.Fatalf("PTTL after update = %s, want refreshed to 2h", ttl)
		}
		if ttl := b.client.PTTL(ctx, s.indexKey()).Val(); ttl <= 0 {
			t.Fatalf("the index has no TTL (%s)", ttl)
		}
		if _, _, err := s.Create(ctx, session("CA-short", t0), 300*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		b.elapse(t, 600*time.Millisecond)
		if _, err := s.Get(ctx, "CA-short"); !errors.Is(err, callsession.ErrNotFound) {
			t.Fatalf("Get after TTL = %v", err)
		}
		page, err := s.List(ctx, callsession.ListQuery{Limit: 10})
		if err != nil || len(page.Sessions) != 1 || page.Sessions[0].ReferenceID != "CA1" {
			t.Fatalf("List after expiry = %+v, %v", page, err)
		}
		if b.client.ZScore(ctx, s.indexKey(), "CA-short").Err() != redis.Nil {
			t.Fatal("the expired session stayed in the index")
		}
	})
}

func TestDelete(t *testing.T) {
	eachBackend(t, func(t *testing.T, _ backend, s *Redis) {
		ctx := context.Background()
		if _, _, err := s.Create(ctx, session("CA1", t0), time.Hour); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, "CA1"); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, "CA1"); err != nil {
			t.Fatalf("second Delete = %v", err)
		}
		if _, err := s.Get(ctx, "CA1"); !errors.Is(err, callsession.ErrNotFound) {
			t.Fatalf("Get after Delete = %v", err)
		}
		if page, _ := s.List(ctx, callsession.ListQuery{Limit: 10}); len(page.Sessions) != 0 {
			t.Fatalf("listed after Delete: %+v", page.Sessions)
		}
	})
}

func listAll(t *testing.T, s *Redis, q callsession.ListQuery) []string {
	t.Helper()
	var out []string
	for pages := 0; pages < 100; pages++ {
		page, err := s.List(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range page.Sessions {
			out = append(out, x.ReferenceID)
		}
		if page.NextCursor == "" {
			return out
		}
		q.Cursor = page.NextCursor
	}
	t.Fatal("paging did not end")
	return nil
}

func TestListNewestFirstPagedAndFiltered(t *testing.T) {
	eachBackend(t, func(t *testing.T, _ backend, s *Redis) {
		ctx := context.Background()
		var want []string
		for i := 0; i < 25; i++ {
			ref := fmt.Sprintf("CA%02d", i)
			at := t0.Add(time.Duration(i/3) * time.Second) // three per millisecond: ties broken by reference
			sess := session(ref, at)
			if i%4 == 0 {
				sess.Status = callsession.StatusVerified
			}
			if _, _, err := s.Create(ctx, sess, time.Hour); err != nil {
				t.Fatal(err)
			}
			want = append([]string{ref}, want...)
		}
		got := listAll(t, s, callsession.ListQuery{Limit: 4})
		if fmt.Sprint(got) != fmt.Sprint(sortedNewestFirst(t, s, want)) {
			t.Fatalf("listed %v", got)
		}
		verified := listAll(t, s, callsession.ListQuery{Limit: 2, Status: callsession.StatusVerified})
		if len(verified) != 7 {
			t.Fatalf("verified %v, want 7", verified)
		}
		for _, bad := range []string{"%%%", "bm90LWEtY3Vyc29y", "OnJlZg"} {
			if _, err := s.List(ctx, callsession.ListQuery{Limit: 2, Cursor: bad}); !errors.Is(err, ErrBadCursor) {
				t.Fatalf("cursor %q: %v", bad, err)
			}
		}
	})
}

// sortedNewestFirst orders refs by (creation time desc, reference desc), the list's order.
func sortedNewestFirst(t *testing.T, s *Redis, refs []string) []string {
	t.Helper()
	out := append([]string(nil), refs...)
	created := map[string]time.Time{}
	for _, r := range refs {
		x, err := s.Get(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		created[r] = x.CreatedAt
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0; j-- {
			a, b := out[j-1], out[j]
			if created[a].Before(created[b]) || created[a].Equal(created[b]) && a < b {
				out[j-1], out[j] = b, a
			}
		}
	}
	return out
}

func TestListPagesWithoutGapsWhileSessionsArrive(t *testing.T) {
	eachBackend(t, func(t *testing.T, _ backend, s *Redis) {
		ctx := context.Background()
		for i := 0; i < 30; i++ {
			if _, _, err := s.Create(ctx, session(fmt.Sprintf("old%02d", i), t0.Add(time.Duration(i)*time.Millisecond)), time.Hour); err != nil {
				t.Fatal(err)
			}
		}
		seen := map[string]int{}
		q := callsession.ListQuery{Limit: 7}
		for n := 0; ; n++ {
			page, err := s.List(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range page.Sessions {
				seen[x.ReferenceID]++
			}
			// New sessions arrive between pages.
			for k := 0; k < 3; k++ {
				ref := fmt.Sprintf("new%d-%d", n, k)
				if _, _, err := s.Create(ctx, session(ref, t0.Add(time.Hour+time.Duration(n*3+k)*time.Millisecond)), time.Hour); err != nil {
					t.Fatal(err)
				}
			}
			if page.NextCursor == "" {
				break
			}
			q.Cursor = page.NextCursor
		}
		for i := 0; i < 30; i++ {
			if ref := fmt.Sprintf("old%02d", i); seen[ref] != 1 {
				t.Fatalf("%s seen %d times", ref, seen[ref])
			}
		}
		for ref, n := range seen {
			if n != 1 {
				t.Fatalf("%s seen %d times", ref, n)
			}
		}
	})
}

func TestLimiterAndDeduper(t *testing.T) {
	eachBackend(t, func(t *testing.T, _ backend, s *Redis) {
		ctx := context.Background()
		for i := 0; i < 3; i++ {
			ok, _, err := s.Allow(ctx, "num:+1415", 3, time.Minute)
			if err != nil || !ok {
				t.Fatalf("allow %d = %v, %v", i+1, ok, err)
			}
		}
		ok, retry, err := s.Allow(ctx, "num:+1415", 3, time.Minute)
		if err != nil || ok || retry <= 0 || retry > time.Minute {
			t.Fatalf("4th allow = %v, %s, %v", ok, retry, err)
		}
		if ok, _, _ := s.Allow(ctx, "num:other", 3, time.Minute); !ok {
			t.Fatal("budgets are not per key")
		}
		for i := 0; i < 10; i++ {
			if ok, _, err := s.Allow(ctx, "off", 0, time.Minute); !ok || err != nil {
				t.Fatal("a zero limit limited")
			}
		}
		first, err := s.FirstSeen(ctx, "evt_1", time.Minute)
		if err != nil || !first {
			t.Fatalf("FirstSeen = %v, %v", first, err)
		}
		if again, _ := s.FirstSeen(ctx, "evt_1", time.Minute); again {
			t.Fatal("a repeated key was first seen twice")
		}
	})
}

func TestStorageDownIsErrStorage(t *testing.T) {
	mr := miniredis.RunT(t)
	b, err := Open(context.Background(), Options{URL: "redis://" + mr.Addr() + "/0"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s := NewRedis(b.Client)
	ctx := context.Background()
	if _, _, err := s.Create(ctx, session("CA1", t0), time.Hour); err != nil {
		t.Fatal(err)
	}
	mr.Close()
	checks := map[string]error{}
	_, _, checks["create"] = s.Create(ctx, session("CA2", t0), time.Hour)
	_, checks["get"] = s.Get(ctx, "CA1")
	_, checks["update"] = s.Update(ctx, "CA1", time.Hour, func(*callsession.Session) error { return nil })
	_, checks["list"] = s.List(ctx, callsession.ListQuery{Limit: 5})
	_, _, checks["allow"] = s.Allow(ctx, "k", 1, time.Second)
	_, checks["dedup"] = s.FirstSeen(ctx, "k", time.Second)
	checks["delete"] = s.Delete(ctx, "CA1")
	checks["ping"] = s.Ping(ctx)
	for op, err := range checks {
		if !errors.Is(err, callsession.ErrStorage) {
			t.Errorf("%s with Redis down = %v, want ErrStorage", op, err)
		}
	}
}

func TestOpenEmbeddedExpiresInRealTime(t *testing.T) {
	b, err := Open(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if !b.Embedded {
		t.Fatal("no URL did not give the embedded Redis")
	}
	s := NewRedis(b.Client)
	ctx := context.Background()
	if _, _, err := s.Create(ctx, session("CA1", t0), 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := s.Get(ctx, "CA1")
		if errors.Is(err, callsession.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the embedded Redis never expired the key: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRejectsBadURL(t *testing.T) {
	for _, u := range []string{"ftp://x", "redis://host:notaport", "://"} {
		if _, err := Open(context.Background(), Options{URL: u}); err == nil {
			t.Errorf("Open(%q) accepted", u)
		}
	}
}
