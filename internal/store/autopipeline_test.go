package store_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ivr-bridge/ivr-bridge/internal/callsession"
	"github.com/ivr-bridge/ivr-bridge/internal/store"
	"github.com/ivr-bridge/ivr-bridge/internal/store/storetest"
)

// silentRedis accepts connections and reads what it is sent, but never answers: a Redis
// that hangs. stop closes it and every connection, so what waits on it fails at once.
func silentRedis(t *testing.T) (addr string, stop func()) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go io.Copy(io.Discard, c)
		}
	}()
	return l.Addr().String(), func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	}
}

// The auto-pipeliner runs a queued command on its own context: the store bounds each
// caller's wait by the caller's context, so a hung Redis answers a call when its deadline
// says, not after the client's read timeouts and retries (seconds).
func TestAutoPipelinedCallsEndWithTheirContext(t *testing.T) {
	// Through the pipeliner, and (ContextTimeoutEnabled, as store.Open sets it) straight on
	// pooled connections while some are free.
	for _, direct := range []bool{false, true} {
		t.Run(map[bool]string{false: "pipelined", true: "direct"}[direct], func(t *testing.T) {
			callsEndWithTheirContext(t, direct)
		})
	}
}

func callsEndWithTheirContext(t *testing.T, direct bool) {
	addr, stop := silentRedis(t)
	c := redis.NewClient(&redis.Options{Addr: addr, ReadTimeout: 10 * time.Second, MaxRetries: 1, ContextTimeoutEnabled: direct})
	t.Cleanup(func() {
		stop() // first: what the pipeliner still has in flight then fails, and Close is quick
		c.Close()
	})
	r := store.NewRedis(c, store.WithAutoPipeline())
	if !r.AutoPipelined() {
		t.Fatal("WithAutoPipeline did not take")
	}
	sess := storetest.Session("CAhung", time.Now())
	for name, op := range map[string]func(context.Context) error{
		"get": func(ctx context.Context) error { _, err := r.Get(ctx, "CAhung"); return err },
		"create": func(ctx context.Context) error {
			_, _, err := r.Create(ctx, sess, time.Hour)
			return err
		},
		"allow": func(ctx context.Context) error { _, _, err := r.Allow(ctx, "k", 5, time.Minute); return err },
		"seen":  func(ctx context.Context) error { _, err := r.Seen(ctx, "k"); return err },
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		done := make(chan error, 1)
		go func() { done <- op(ctx) }()
		select {
		case err := <-done:
			if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, callsession.ErrStorage) {
				t.Errorf("%s: %v, want a storage error for the deadline", name, err)
			}
		case <-time.After(5 * time.Second): // the client's own timeouts would take 10 s and more
			t.Errorf("%s: still waiting 5 s after its 100 ms deadline", name)
		}
		cancel()
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Get(ctx, "CAhung"); !errors.Is(err, context.Canceled) {
		t.Errorf("get with a context already done: %v", err)
	}
}

// A Redis that lost its scripts (restarted, SCRIPT FLUSH) gets them again, auto-pipelined
// or not: every script of a call's path runs after a flush. Miniredis, and the real Redis
// at REDIS_URL.
func TestScriptsAfterAFlush(t *testing.T) {
	for name, o := range storetest.Servers(t) {
		c := redis.NewClient(o)
		t.Cleanup(func() { c.Close() })
		for mode, opts := range map[string][]store.Option{"plain": nil, "autopipelined": {store.WithAutoPipeline()}} {
			t.Run(name+"/"+mode, func(t *testing.T) {
				ctx := context.Background()
				prefix := fmt.Sprintf("test:%d:", time.Now().UnixNano())
				t.Cleanup(func() { storetest.Cleanup(c, prefix) })
				r := store.NewRedis(c, append([]store.Option{store.WithPrefix(prefix)}, opts...)...)
				if err := c.ScriptFlush(ctx).Err(); err != nil {
					t.Fatal(err)
				}
				if _, created, err := r.Create(ctx, storetest.Session("CAflush", time.Now()), time.Hour); err != nil || !created {
					t.Fatalf("create after a flush: %v, %v", created, err)
				}
				c.ScriptFlush(ctx)
				if _, err := r.Update(ctx, "CAflush", time.Hour, func(s *callsession.Session) error {
					s.Attempts++
					return nil
				}); err != nil {
					t.Fatalf("update after a flush: %v", err)
				}
				c.ScriptFlush(ctx)
				if ok, _, err := r.Allow(ctx, "flush", 1, time.Minute); err != nil || !ok {
					t.Fatalf("limit after a flush: %v, %v", ok, err)
				}
				if got, err := r.Get(ctx, "CAflush"); err != nil || got.Attempts != 1 {
					t.Fatalf("get: %+v, %v", got, err)
				}
			})
		}
	}
}

// With the client bounding commands by their context (as store.Open makes it), commands go
// straight on pooled connections while some are free and through the pipeliner beyond:
// with a pool of 4 (2 slots straight), 60 concurrent calls take both ways at once, and
// every one is right:
// one winner of a contended create, every other create and update its own, an exact limit.
func TestDirectAndPipelinedTogether(t *testing.T) {
	for name, o := range storetest.Servers(t) {
		t.Run(name, func(t *testing.T) {
			o := *o
			o.PoolSize, o.ContextTimeoutEnabled = 4, true
			c := redis.NewClient(&o)
			if n := store.DirectSlots(c); n != 2 {
				t.Fatalf("%d slots straight for a pool of 4", n)
			}
			t.Cleanup(func() { c.Close() })
			prefix := fmt.Sprintf("test:%d:", time.Now().UnixNano())
			t.Cleanup(func() { storetest.Cleanup(c, prefix) })
			r := store.NewRedis(c, store.WithPrefix(prefix), store.WithAutoPipeline())
			ctx := context.Background()
			var wg sync.WaitGroup
			var mu sync.Mutex
			won, allowed := 0, 0
			for i := range 60 {
				wg.Go(func() {
					ref := fmt.Sprintf("CAboth%d", i)
					if _, created, err := r.Create(ctx, storetest.Session(ref, time.Now()), time.Hour); err != nil || !created {
						t.Errorf("create %s: %v, %v", ref, created, err)
						return
					}
					if _, err := r.Update(ctx, ref, time.Hour, func(s *callsession.Session) error { s.Attempts = i; return nil }); err != nil {
						t.Errorf("update %s: %v", ref, err)
					}
					_, created, err := r.Create(ctx, storetest.Session("CAcontended", time.Now()), time.Hour)
					ok, _, lerr := r.Allow(ctx, "both", 25, time.Minute)
					mu.Lock()
					defer mu.Unlock()
					if err != nil || lerr != nil {
						t.Errorf("contended create or limit: %v, %v", err, lerr)
					}
					if created {
						won++
					}
					if ok {
						allowed++
					}
				})
			}
			wg.Wait()
			if won != 1 || allowed != 25 {
				t.Errorf("%d creates of one reference won, %d of 60 calls allowed by a limit of 25", won, allowed)
			}
			for i := range 60 {
				if s, err := r.Get(ctx, fmt.Sprintf("CAboth%d", i)); err != nil || s.Attempts != i {
					t.Fatalf("session %d: %+v, %v", i, s, err)
				}
			}
		})
	}
}

// How many commands go straight: the pool less two, or MaxActiveConns less two when lower
// (past it go-redis fails a command); none without ContextTimeoutEnabled, or for a pool
// too small to spare two.
func TestDirectSlots(t *testing.T) {
	for _, c := range []struct {
		o    redis.Options
		want int
	}{
		{redis.Options{PoolSize: 20, ContextTimeoutEnabled: true}, 18},
		{redis.Options{PoolSize: 20, MaxActiveConns: 5, ContextTimeoutEnabled: true}, 3},
		{redis.Options{PoolSize: 20, MaxActiveConns: 50, ContextTimeoutEnabled: true}, 18},
		{redis.Options{PoolSize: 20}, 0},
		{redis.Options{PoolSize: 2, ContextTimeoutEnabled: true}, 0},
	} {
		c.o.Addr = "127.0.0.1:1"
		cl := redis.NewClient(&c.o)
		if got := store.DirectSlots(cl); got != c.want {
			t.Errorf("%+v: %d, want %d", c.o, got, c.want)
		}
		cl.Close()
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}, PoolSize: 10, ContextTimeoutEnabled: true})
	defer cc.Close()
	if got := store.DirectSlots(cc); got != 8 {
		t.Errorf("cluster: %d, want 8", got)
	}
}
