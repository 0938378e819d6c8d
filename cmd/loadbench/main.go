// Command loadbench measures ivr-bridge against a bare baseline, side by side, in one run.
//
// It starts the real ivr-bridge binary (built here unless -binary names one) on a real Redis,
// with an in-process fake Call Connect that answers after -provider-latency, and beside it a
// baseline: a minimal Echo handler (this program, run as a child process) doing only what a
// start cannot avoid — decode the body, one atomic Redis create, the provider call, encode
// the answer. Both get the same load (POST /v1/sessions, unique references, random valid
// numbers, -concurrency workers, at most -requests and -duration) and it prints throughput,
// p50/p99/p99.9 latency, errors and the ratios bridge/baseline.
//
//	go run ./cmd/loadbench                        # 1,000 concurrent, 200 ms provider
//	go run ./cmd/loadbench -scale                 # 10,000 sessions in flight, 2 s provider
//	go run ./cmd/loadbench -memory                # idle RSS, Redis bytes per session
//	go run ./cmd/loadbench -cpuprofile cpu.pprof  # bridge wiring in this program, profiled
//
// Everything listens on 127.0.0.1 only. Keys are written in the -redis-url database (15 by
// default) under references naming the run, and removed at the end.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"
)

// options are the command's flags.
type options struct {
	binary          string
	redisURL        string
	latency         time.Duration
	jitter          time.Duration
	concurrency     int
	requests        int
	duration        time.Duration
	warmup          int
	stagger         bool
	settle          time.Duration
	providerTimeout time.Duration
	providerTLS     bool
	logLevel        string
	logFlush        time.Duration
	autoPipeline    bool
	scale, memory   bool
	inprocess       bool
	cpuprofile      string
	memorySessions  int
	rounds          int
	idleWait        time.Duration
	// self is the executable the child roles run from (this program, or a test binary
	// whose TestMain dispatches LOADBENCH_ROLE).
	self string
}

func defaults() options {
	return options{
		redisURL: "redis://127.0.0.1:6379/15", latency: 200 * time.Millisecond, concurrency: 1000,
		requests: 20000, duration: 60 * time.Second, warmup: -1, stagger: true, settle: time.Second, providerTimeout: 4 * time.Second,
		logLevel: "info", logFlush: time.Second, autoPipeline: true, memorySessions: 1000, idleWait: 2 * time.Second, rounds: 1,
	}
}

func main() {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(serveRole(role))
	}
	o := defaults()
	flag.StringVar(&o.binary, "binary", "", "path of an ivr-bridge binary; empty: go build ./cmd/ivr-bridge into a temporary directory")
	flag.StringVar(&o.redisURL, "redis-url", o.redisURL, "Redis for the bridge and the baseline (REDIS_URL); keys of the run are removed at the end")
	flag.DurationVar(&o.latency, "provider-latency", o.latency, "how long the fake Call Connect takes to answer (-scale: 2s unless set)")
	flag.DurationVar(&o.jitter, "provider-jitter", 0, "spread of the fake's answers: each takes the latency ± up to this, uniformly (0: all exactly the latency)")
	flag.IntVar(&o.concurrency, "concurrency", o.concurrency, "sessions in flight at once (-scale: 10000 unless set)")
	flag.IntVar(&o.requests, "requests", o.requests, "requests per measured run, at most (-scale: = concurrency)")
	flag.DurationVar(&o.duration, "duration", o.duration, "bound on each measured run")
	flag.IntVar(&o.warmup, "warmup", o.warmup, "unmeasured requests first, to open connections (-1: one per worker)")
	flag.BoolVar(&o.stagger, "stagger", o.stagger, "compare mode: start the workers spread evenly over one provider latency, as calls arrive, instead of all at once")
	flag.DurationVar(&o.settle, "settle", o.settle, "compare mode: requests starting this long after the first are measured, the ones before only made (the ramp to the steady state)")
	flag.DurationVar(&o.providerTimeout, "provider-timeout", o.providerTimeout, "PROVIDER_TIMEOUT of the bridge (and the baseline)")
	flag.BoolVar(&o.providerTLS, "provider-tls", false, "serve the fake over HTTPS with HTTP/2 (always with -scale)")
	flag.StringVar(&o.logLevel, "log-level", o.logLevel, "LOG_LEVEL of the bridge")
	flag.DurationVar(&o.logFlush, "log-flush-interval", o.logFlush, "LOG_FLUSH_INTERVAL of the bridge (0: each log line written at once)")
	flag.BoolVar(&o.autoPipeline, "redis-autopipeline", o.autoPipeline, "REDIS_AUTOPIPELINE of the bridge, and the baseline's Redis client auto-pipelined alike")
	flag.BoolVar(&o.scale, "scale", false, "scale mode: one burst of -concurrency sessions at once, peak goroutines, sockets, RSS")
	flag.BoolVar(&o.memory, "memory", false, "memory mode: idle RSS of the bridge and Redis bytes per stored session")
	flag.IntVar(&o.rounds, "rounds", o.rounds, "compare mode: measure bridge and baseline this many times, alternating; print medians and the spread between rounds")
	flag.IntVar(&o.memorySessions, "memory-sessions", o.memorySessions, "sessions stored by -memory")
	flag.BoolVar(&o.inprocess, "inprocess", false, "run the bridge as app.New inside this program (cmd/ivr-bridge's wiring) instead of the binary")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the bridge's measured run here and print its top functions (implies -inprocess)")
	flag.Parse()
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.scale {
		if !set["provider-latency"] {
			o.latency = 2 * time.Second
		}
		if !set["concurrency"] {
			o.concurrency = 10000
		}
		// On a small machine the burst starves every process of CPU for seconds, the
		// fake's answers included: a 4 s bound times out sends the provider answered on time
		// (the baseline's too). The bridge's timeout is an operator's setting; the figure
		// asked for is whether 10,000 sessions complete.
		if !set["provider-timeout"] {
			o.providerTimeout = 8 * time.Second
		}
		o.requests = o.concurrency
		o.providerTLS = true
	}
	if o.cpuprofile != "" {
		o.inprocess = true
		if abs, err := filepath.Abs(o.cpuprofile); err == nil {
			o.cpuprofile = abs
		}
	}
	var err error
	if o.self, err = os.Executable(); err != nil {
		fmt.Fprintln(os.Stderr, "loadbench:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadbench:", err)
		os.Exit(1)
	}
}

// run carries out the mode o asks for and prints its figures to w.
func run(ctx context.Context, o options, w io.Writer) error {
	soft, hard := nofile()
	fmt.Fprintf(w, "loadbench: %s, %d CPUs, GOMAXPROCS %d, RLIMIT_NOFILE soft %d hard %d\n",
		runtime.Version(), runtime.NumCPU(), runtime.GOMAXPROCS(0), soft, hard)
	need := uint64(o.concurrency) + 64
	if o.scale {
		// This process holds one client connection per session; the bridge the same plus
		// its provider connections (few: HTTP/2).
		fmt.Fprintf(w, "  needs ≈%d descriptors in this process and in the bridge\n", need)
	}
	if soft < need {
		fmt.Fprintf(w, "  WARNING: RLIMIT_NOFILE %d < %d: raise it (ulimit -n) or expect EMFILE\n", soft, need)
	}
	b, err := newBench(ctx, o, w)
	if err != nil {
		return err
	}
	defer b.close()
	switch {
	case o.memory:
		return b.memoryMode(ctx)
	case o.scale:
		return b.scaleMode(ctx)
	default:
		return b.compareMode(ctx)
	}
}
