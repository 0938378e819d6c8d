package store_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/ivr-bridge/ivr-bridge/internal/callsession"
	"github.com/ivr-bridge/ivr-bridge/internal/store"
	"github.com/ivr-bridge/ivr-bridge/internal/store/storetest"
)

// benchStore is a store on the real Redis at REDIS_URL when set, else on miniredis, with its
// own prefix. The figures printed are operations per second from one goroutine per CPU.
func benchStore(b *testing.B) *store.Redis {
	var opts store.Options
	if url := os.Getenv("REDIS_URL"); url != "" {
		opts.URL = url
	}
	be, err := store.Open(context.Background(), opts)
	if err != nil {
		b.Fatal(err)
	}
	prefix := fmt.Sprintf("bench:%d:", time.Now().UnixNano())
	b.Cleanup(func() { storetest.Cleanup(be.Client, prefix); be.Close() })
	return store.NewRedis(be.Client, store.WithPrefix(prefix))
}

func report(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

func BenchmarkCreate(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	i := 0
	for b.Loop() {
		if _, _, err := s.Create(ctx, session(fmt.Sprintf("CA%d", i), t0), time.Hour); err != nil {
			b.Fatal(err)
		}
		i++
	}
	report(b)
}

func BenchmarkGet(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	if _, _, err := s.Create(ctx, session("CA1", t0), time.Hour); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := s.Get(ctx, "CA1"); err != nil {
			b.Fatal(err)
		}
	}
	report(b)
}

func BenchmarkUpdate(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	if _, _, err := s.Create(ctx, session("CA1", t0), time.Hour); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := s.Update(ctx, "CA1", time.Hour, func(c *callsession.Session) error { c.Attempts++; return nil }); err != nil {
			b.Fatal(err)
		}
	}
	report(b)
}

func BenchmarkList50(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	for i := 0; i < 500; i++ {
		if _, _, err := s.Create(ctx, session(fmt.Sprintf("CA%d", i), t0.Add(time.Duration(i)*time.Millisecond)), time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		if _, err := s.List(ctx, callsession.ListQuery{Limit: 50}); err != nil {
			b.Fatal(err)
		}
	}
	report(b)
}
