package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
)

// TestMain runs the children (baseline, in-process bridge) when this test binary is started
// as one, like main does.
func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(serveRole(role))
	}
	os.Exit(m.Run())
}

// smokeOptions is a small run: on the Redis at REDIS_URL when set, else on a miniredis of
// the test's own.
func smokeOptions(t *testing.T) options {
	t.Helper()
	o := defaults()
	o.requests, o.concurrency, o.warmup = 200, 20, 20
	o.latency, o.duration, o.idleWait = 10*time.Millisecond, 20*time.Second, 100*time.Millisecond
	o.memorySessions = 50
	if url := os.Getenv("REDIS_URL"); url != "" {
		o.redisURL = url
	} else {
		mr := miniredis.RunT(t)
		o.redisURL = "redis://" + mr.Addr() + "/0"
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	o.self = self
	return o
}

func runSmoke(t *testing.T, o options, want ...string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and starts the bridge")
	}
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := run(ctx, o, &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range want {
		if !strings.Contains(out.String(), w) {
			t.Errorf("the output lacks %q", w)
		}
	}
	if !strings.Contains(out.String(), "cleanup: removed") {
		t.Errorf("no cleanup line")
	}
	return out.String()
}

// TestCompareSmoke builds the binary and runs both targets briefly: every request answered,
// the figures printed.
func TestCompareSmoke(t *testing.T) {
	out := runSmoke(t, smokeOptions(t), "bridge/baseline: throughput", "\nbridge      ", "\nbaseline    ")
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "bridge ") || strings.HasPrefix(line, "baseline ") {
			if f := strings.Fields(line); len(f) > 2 && f[1] != "errors:" && (f[1] != "200" || f[2] != "0") {
				t.Errorf("want 200 answered and 0 errors: %s", line)
			}
		}
	}
}

// TestScaleSmoke runs the burst path (HTTPS/HTTP/2 fake, connections opened first, peaks
// sampled) with the bridge wired in this program.
func TestScaleSmoke(t *testing.T) {
	o := smokeOptions(t)
	o.scale, o.providerTLS, o.inprocess = true, true, true
	o.concurrency, o.requests, o.latency = 100, 100, 50*time.Millisecond
	runSmoke(t, o, "answered 100/100, errors 0", "at the peak:")
}

// TestMemorySmoke runs the memory mode.
func TestMemorySmoke(t *testing.T) {
	o := smokeOptions(t)
	o.memory = true
	runSmoke(t, o, "idle bridge RSS", "per session:")
}
