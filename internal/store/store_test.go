package store_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/ivr-bridge/ivr-bridge/internal/callsession"
	"github.com/ivr-bridge/ivr-bridge/internal/store"
	"github.com/ivr-bridge/ivr-bridge/internal/store/storetest"
)

// TestSuite runs the store suite on miniredis always, and on the real server at REDIS_URL
// when it is set (CI).
func TestSuite(t *testing.T) {
	mr := miniredis.RunT(t)
	mc := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { mc.Close() })
	// miniredis' clock (TIME) stands still until Elapse moves it with the TTLs, so the
	// limiter's windows are tested without sleeping (and events share a microsecond).
	now := time.Now()
	mr.SetTime(now)
	storetest.Run(t, storetest.Backend{Name: "miniredis", Client: mc,
		Elapse: func(_ *testing.T, d time.Duration) { now = now.Add(d); mr.SetTime(now); mr.FastForward(d) }})
	if url := os.Getenv("REDIS_URL"); url != "" {
		b, err := store.Open(context.Background(), store.Options{URL: url})
		if err != nil {
			t.Fatalf("REDIS_URL: %v", err)
		}
		t.Cleanup(func() { b.Close() })
		storetest.Run(t, storetest.Backend{Name: "redis", Client: b.Client,
			Elapse: func(_ *testing.T, d time.Duration) { time.Sleep(d) }})
	}
}

var t0 = time.Date(2026, 11, 24, 18, 5, 0, 0, time.UTC)

func session(ref string, at time.Time) *callsession.Session {
	return storetest.Session(ref, at)
}

func TestStorageDownIsErrStorage(t *testing.T) {
	mr := miniredis.RunT(t)
	b, err := store.Open(context.Background(), store.Options{URL: "redis://" + mr.Addr() + "/0"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s := store.NewRedis(b.Client)
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
	b, err := store.Open(context.Background(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if !b.Embedded {
		t.Fatal("no URL did not give the embedded Redis")
	}
	s := store.NewRedis(b.Client)
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
		if _, err := store.Open(context.Background(), store.Options{URL: u}); err == nil {
			t.Errorf("store.Open(%q) accepted", u)
		}
	}
	// go-redis quotes the path it cannot read; with a password's unescaped "/" that is
	// the password's tail.
	_, err := store.Open(context.Background(), store.Options{URL: "redis://:2024/hunter2@127.0.0.1:6379/0"})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("want an error without the password: %v", err)
	}
	_, err = store.Open(context.Background(), store.Options{URL: "redis://127.0.0.1:6379/x"})
	if err == nil || !strings.Contains(err.Error(), "invalid database number") {
		t.Errorf("without a password, go-redis' reason is kept: %v", err)
	}
}
