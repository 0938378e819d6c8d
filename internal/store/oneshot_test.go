package store_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ivr-bridge/ivr-bridge/internal/callsession"
	"github.com/ivr-bridge/ivr-bridge/internal/store"
	"github.com/ivr-bridge/ivr-bridge/internal/store/storetest"
)

// replyLosingProxy forwards connections to the Redis at target; once armed, it swallows the
// next reply Redis sends on any connection and closes that connection: a command Redis ran
// whose answer the client never gets.
type replyLosingProxy struct {
	addr  string
	armed atomic.Bool
}

func newReplyLosingProxy(t *testing.T, target string) *replyLosingProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &replyLosingProxy{addr: l.Addr().String()}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			client, err := l.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", target)
			if err != nil {
				client.Close()
				continue
			}
			t.Cleanup(func() { client.Close(); server.Close() })
			go func() { io.Copy(server, client); server.Close() }()
			go func() {
				buf := make([]byte, 64<<10)
				for {
					n, err := server.Read(buf)
					if err != nil {
						client.Close()
						return
					}
					if p.armed.CompareAndSwap(true, false) {
						client.Close() // the reply is lost with the connection
						server.Close()
						return
					}
					if _, err := client.Write(buf[:n]); err != nil {
						return
					}
				}
			}()
		}
	})
	return p
}

// storeThroughProxy is a store on target reached through a replyLosingProxy, go-redis'
// retries on (3), under a key prefix of its own that is removed at the end.
func storeThroughProxy(t *testing.T, target *redis.Options, opts []store.Option) (*store.Redis, *replyLosingProxy) {
	t.Helper()
	proxy := newReplyLosingProxy(t, target.Addr)
	o := *target
	o.Addr, o.MaxRetries = proxy.addr, 3
	c := redis.NewClient(&o)
	t.Cleanup(func() { c.Close() })
	prefix := fmt.Sprintf("test:%d:", time.Now().UnixNano())
	t.Cleanup(func() { storetest.Cleanup(c, prefix) })
	return store.NewRedis(c, append([]store.Option{store.WithPrefix(prefix)}, opts...)...), proxy
}

// A write whose reply is lost is not sent again: go-redis retries a command after a broken
// connection, and a compare-and-set run twice would answer a conflict, so Update would apply
// its change a second time (an attempt counted twice). The caller gets a storage error
// instead (the IVR retries), and the change is stored once. Both modes; miniredis, and the
// real Redis at REDIS_URL.
func TestAWriteWhoseReplyIsLostRunsOnce(t *testing.T) {
	for name, target := range storetest.Servers(t) {
		for mode, opts := range map[string][]store.Option{"plain": nil, "autopipelined": {store.WithAutoPipeline()}} {
			t.Run(name+"/"+mode, func(t *testing.T) {
				ctx := context.Background()
				r, proxy := storeThroughProxy(t, target, opts) // retries on: the script must still run once
				sess := storetest.Session("CAonce", time.Now())
				_, created, err := r.Create(ctx, sess, time.Hour)
				if err != nil || !created || sess.Version != 1 {
					t.Fatalf("create: %v, %v", created, err)
				}
				count := func(s *callsession.Session) error {
					s.Attempts++
					return nil
				}
				// Once with every reply: Redis knows the script (the reply lost must be the
				// write's, not a NOSCRIPT's).
				if sess, err = r.UpdateKnown(ctx, sess, time.Hour, count); err != nil {
					t.Fatal(err)
				}
				before := sess.Attempts
				proxy.armed.Store(true)
				if _, err = r.UpdateKnown(ctx, sess, time.Hour, count); err == nil {
					t.Fatal("the compare-and-set's reply was lost, yet the update answered success")
				}
				got, err := r.Get(ctx, "CAonce")
				if err != nil {
					t.Fatal(err)
				}
				if got.Attempts != before+1 {
					t.Fatalf("attempts %d → %d: the change was applied %d times", before, got.Attempts, got.Attempts-before)
				}
			})
		}
	}
}

// A first delivery stays first when its SET's reply is lost: go-redis sends the SET NX again
// on a new connection, which finds the key the first run set; the token in it says that run
// was this call's. A second call is still a repeat. Both modes; miniredis, and the real
// Redis at REDIS_URL.
func TestFirstSeenWhoseReplyIsLostIsStillFirst(t *testing.T) {
	for name, target := range storetest.Servers(t) {
		for mode, opts := range map[string][]store.Option{"plain": nil, "autopipelined": {store.WithAutoPipeline()}} {
			t.Run(name+"/"+mode, func(t *testing.T) {
				ctx := context.Background()
				r, proxy := storeThroughProxy(t, target, opts)
				if err := r.Ping(ctx); err != nil { // a connection up: the reply lost is the SET's
					t.Fatal(err)
				}
				proxy.armed.Store(true)
				first, err := r.FirstSeen(ctx, "evt_lost", time.Minute)
				if err != nil || !first {
					t.Fatalf("first delivery, its reply lost: FirstSeen = %v, %v; want true", first, err)
				}
				if proxy.armed.Load() {
					t.Fatal("no reply was lost: the test did not test")
				}
				if again, err := r.FirstSeen(ctx, "evt_lost", time.Minute); err != nil || again {
					t.Fatalf("second delivery: FirstSeen = %v, %v; want false", again, err)
				}
			})
		}
	}
}
