package main

import (
	"context"
	"io"
	"os"
	"testing"
	"time"

	"github.com/ivr-bridge/ivr-bridge/internal/redistest"
)

// TestFaultCheckLosesNothing runs a small fault check: Redis killed and restarted under load,
// every acknowledged session still there.
func TestFaultCheckLosesNothing(t *testing.T) {
	if err := redistest.Installed(); err != nil {
		if os.Getenv("REDIS_URL") != "" {
			t.Fatal("REDIS_URL is set but no redis-server binary is installed")
		}
		t.Skip("no redis-server binary: this check runs where a real Redis is installed (CI)")
	}
	rep, err := run(context.Background(), options{requests: 300, concurrency: 10, rate: 500,
		outage: 300 * time.Millisecond, latency: 5 * time.Millisecond, maxTime: 90 * time.Second}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Lost != 0 || rep.Failed != 0 || rep.Answered != rep.Sent || rep.Sent != 300 || rep.Acknowledged == 0 {
		t.Fatalf("report %+v", rep)
	}
}
