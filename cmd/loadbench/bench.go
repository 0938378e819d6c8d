package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ivr-bridge/ivr-bridge/internal/store"
)

const (
	apiKey   = "loadbench-key"
	ccSecret = "loadbench_cc_secret"
	// bridgePrefix is the store's default key prefix: the binary has no setting for it.
	bridgePrefix = "ivr:"
)

// bench holds what one run of the program shares: the fake, the Redis, the children's
// executables and the run's name, which every key it writes carries.
type bench struct {
	o       options
	w       io.Writer
	dir     string
	runID   string
	rdb     *redis.Client
	fake    *fakeCallConnect
	exe     string // the bridge's executable
	dbsize0 int64
}

func newBench(ctx context.Context, o options, w io.Writer) (*bench, error) {
	b := &bench{o: o, w: w, runID: fmt.Sprintf("lb%x", time.Now().UnixNano()&0xffffffffff)}
	var err error
	if b.dir, err = os.MkdirTemp("", "loadbench"); err != nil {
		return nil, err
	}
	ropts, err := redis.ParseURL(o.redisURL)
	if err != nil {
		b.close()
		return nil, fmt.Errorf("-redis-url: %w", store.URLError(o.redisURL, err))
	}
	b.rdb = redis.NewClient(ropts)
	if err := b.rdb.Ping(ctx).Err(); err != nil {
		b.close()
		return nil, fmt.Errorf("Redis at %s: %w", ropts.Addr, err)
	}
	b.dbsize0, _ = b.rdb.DBSize(ctx).Result()
	if b.fake, err = startFake(ccSecret, o.latency, o.providerTLS, b.dir); err != nil {
		b.close()
		return nil, err
	}
	b.fake.SetJitter(o.jitter)
	switch {
	case o.inprocess:
		b.exe = o.self
	case o.binary != "":
		b.exe = o.binary
	default:
		b.exe = filepath.Join(b.dir, "ivr-bridge")
		fmt.Fprintf(w, "  building: go build -o %s github.com/ivr-bridge/ivr-bridge/cmd/ivr-bridge\n", b.exe)
		cmd := exec.CommandContext(ctx, "go", "build", "-o", b.exe, "github.com/ivr-bridge/ivr-bridge/cmd/ivr-bridge")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			b.close()
			return nil, fmt.Errorf("building ivr-bridge: %w", err)
		}
	}
	proto := "HTTP/1.1"
	if o.providerTLS {
		proto = "HTTPS, HTTP/2"
	}
	what := "binary " + b.exe
	if o.inprocess {
		what = "app.New in this program (cmd/ivr-bridge's wiring)"
	}
	latency := o.latency.String()
	if o.jitter > 0 {
		latency += " ± " + o.jitter.String()
	}
	fmt.Fprintf(w, "  redis %s; fake Call Connect %s, %s latency (%s); bridge: %s\n", ropts.Addr, b.fake.URL(), latency, proto, what)
	return b, nil
}

func (b *bench) close() {
	if b.fake != nil {
		b.fake.Close()
	}
	if b.rdb != nil {
		n := b.cleanup(context.Background())
		size, _ := b.rdb.DBSize(context.Background()).Result()
		fmt.Fprintf(b.w, "cleanup: removed %d keys of run %s; the database holds %d keys (%d before the run)\n", n, b.runID, size, b.dbsize0)
		b.rdb.Close()
	}
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
}

// cleanup removes every key of the run and the run's entries of the bridge's index.
func (b *bench) cleanup(ctx context.Context) int {
	n := 0
	iter := b.rdb.Scan(ctx, 0, "*"+b.runID+"*", 1000).Iterator()
	var batch []string
	flush := func() {
		if len(batch) > 0 {
			n += int(b.rdb.Unlink(ctx, batch...).Val())
			batch = batch[:0]
		}
	}
	for iter.Next(ctx) {
		if batch = append(batch, iter.Val()); len(batch) == 1000 {
			flush()
		}
	}
	flush()
	zi := b.rdb.ZScan(ctx, bridgePrefix+"index", 0, b.runID+"*", 1000).Iterator()
	var members []any
	for zi.Next(ctx) {
		members = append(members, zi.Val())
		_ = zi.Next(ctx) // the score
	}
	for len(members) > 0 {
		k := min(len(members), 1000)
		b.rdb.ZRem(ctx, bridgePrefix+"index", members[:k]...)
		members = members[k:]
	}
	return n
}

// env is the servers' environment: the bridge's variables (the baseline reads the same).
func (b *bench) env(target string) map[string]string {
	env := map[string]string{
		"REDIS_URL":              b.o.redisURL,
		"CALLCONNECT_SECRET":     ccSecret,
		"CALLCONNECT_BASE_URL":   b.fake.URL(),
		"IVR_BRIDGE_API_KEYS":    apiKey,
		"LIMIT_SENDS_PER_NUMBER": "0",
		"LIMIT_STARTS_PER_KEY":   "0",
		"PROVIDER_TIMEOUT":       b.o.providerTimeout.String(),
		"LOG_LEVEL":              b.o.logLevel,
		"LOG_FLUSH_INTERVAL":     b.o.logFlush.String(),
		"REDIS_AUTOPIPELINE":     strconv.FormatBool(b.o.autoPipeline),
	}
	if b.fake.caFile != "" {
		env["SSL_CERT_FILE"] = b.fake.caFile
	}
	switch {
	case target == roleBaseline:
		env[roleEnv] = roleBaseline
		env[baselinePrefEnv] = "lbbase:"
	case b.o.inprocess:
		env[roleEnv] = roleBridge
		if b.o.cpuprofile != "" {
			env[cpuProfileEnv] = b.o.cpuprofile
		}
	}
	return env
}

func (b *bench) start(target string) (*server, error) {
	exe := b.exe
	if target == roleBaseline {
		exe = b.o.self
	}
	return startServer(target, exe, b.env(target), b.dir)
}

// peaks are the highest figures sampled from a server during a run.
type peaks struct {
	rssKB      int64
	socks, fds int
	goroutines int64
	samples    int
}

// sample reads the server's figures every interval until the returned stop is called;
// withGoroutines also scrapes /metrics (the bridge's only).
func sample(s *server, interval time.Duration, withGoroutines bool) (stop func() peaks) {
	var p peaks
	done := make(chan struct{})
	var wg sync.WaitGroup
	mc := &http.Client{Timeout: 2 * time.Second}
	take := func() {
		p.samples++
		p.rssKB = max(p.rssKB, rssKB(s.pid()))
		// Telling sockets from other descriptors takes a readlink per descriptor, thousands
		// per sample, on the cores the servers are measured on; counting descriptors takes
		// one directory read. Sockets are counted only when the descriptors reach a new peak.
		if fds := fdCount(s.pid()); fds > p.fds {
			socks, fds := sockets(s.pid())
			p.socks, p.fds = max(p.socks, socks), max(p.fds, fds)
		}
		if withGoroutines {
			if g, err := goroutines(context.Background(), mc, s.url); err == nil {
				p.goroutines = max(p.goroutines, g)
			}
		}
	}
	wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				take()
			}
		}
	})
	return func() peaks {
		close(done)
		wg.Wait()
		take()
		mc.CloseIdleConnections()
		return p
	}
}

// measured is one target's run with the server's own figures.
type measured struct {
	name     string
	res      loadResult
	cpu      time.Duration // the server's CPU time during the run
	loadCPU  time.Duration // this program's (load, fake)
	redisCPU time.Duration // the Redis server's (INFO cpu)
	peaks    peaks
	idleRSS  int64
	logLines int
	round    int // compare mode: which round, from 1
	// times: what the server timed itself over the measured run (its /metrics); timesErr
	// when it could not be read.
	times    serverTimes
	timesErr error
}

// split is where a measured request's time went, as means in milliseconds: the provider
// call, the rest of the server's handler, and outside the handler (the client, the
// kernel, queues before the handler runs and after it returns). The client's mean is of
// the measured requests, the server's of the requests answered in the run's window: the
// same steady state, not the same requests.
type split struct{ provider, handlerRest, outside float64 }

func (m measured) split() split {
	h := m.times.handlerMean()
	return split{provider: m.times.providerMean(), handlerRest: h - m.times.providerMean(), outside: float64(m.res.mean())/1e6 - h}
}

// perRequest is d per request answered (in the steady window when there is one), in
// microseconds.
func (m measured) perRequest(d time.Duration) float64 {
	return float64(d.Microseconds()) / float64(m.res.answered())
}

// cpuPerStart is the server's and Redis' CPU per request, in microseconds.
func (m measured) cpuPerStart() float64 { return m.perRequest(m.cpu + m.redisCPU) }

// runTarget starts target, warms it up, measures one run and stops it.
func (b *bench) runTarget(ctx context.Context, target string) (measured, error) {
	m := measured{name: target}
	s, err := b.start(target)
	if err != nil {
		return m, err
	}
	defer s.stop()
	m.idleRSS = rssKB(s.pid())
	spec := loadSpec{url: s.url, apiKey: apiKey, concurrency: b.o.concurrency, duration: b.o.duration,
		timeout: b.o.providerTimeout + 5*time.Second}
	if warm := b.o.warmup; warm != 0 {
		if warm < 0 {
			warm = b.o.concurrency
		}
		ws := spec
		ws.requests, ws.refPrefix = warm, b.runID+"-"+target+"-w"
		if _, err := drive(ctx, ws); err != nil {
			return m, err
		}
	}
	spec.requests, spec.refPrefix = b.o.requests, b.runID+"-"+target+"-"
	if b.o.stagger {
		spec.stagger = b.o.latency
	}
	spec.settle = b.o.settle
	// CPU, Redis' CPU and the peaks are of the measured run: from the end of settle to the
	// start of the last measured request (the steady window), or to the run's end.
	// snap is the CPU used so far by the server, this program and Redis.
	snap := func() [3]time.Duration { return [3]time.Duration{cpuTime(s.pid()), selfCPU(), redisCPU(ctx, b.rdb)} }
	var stop func() peaks
	var at0, at1 [3]time.Duration
	// The server's own timings, read before the first CPU snapshot and after the last (a
	// read costs the server a little CPU: outside the window).
	mc := &http.Client{Timeout: 2 * time.Second}
	defer mc.CloseIdleConnections()
	var t0, t1 serverTimes
	var t0Err, t1Err error
	spec.onStart = func() {
		t0, t0Err = readServerTimes(ctx, mc, s.url)
		stop = sample(s, 250*time.Millisecond, false)
		at0 = snap()
	}
	ended := false
	spec.onEnd = func() {
		at1, ended = snap(), true
		t1, t1Err = readServerTimes(ctx, mc, s.url)
	}
	m.res, err = drive(ctx, spec)
	if !ended {
		at1 = snap()
		t1, t1Err = readServerTimes(ctx, mc, s.url)
	}
	m.cpu, m.loadCPU, m.redisCPU = at1[0]-at0[0], at1[1]-at0[1], at1[2]-at0[2]
	m.times, m.timesErr = t1.sub(t0), cmp.Or(t0Err, t1Err)
	if stop != nil {
		m.peaks = stop()
	}
	if err != nil {
		return m, err
	}
	if err := s.stop(); err != nil {
		return m, err
	}
	m.logLines = countLines(s.logPath)
	return m, nil
}

func countLines(path string) int {
	b, _ := os.ReadFile(path)
	return strings.Count(string(b), "\n")
}

func ms(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 1, 64) }

func (b *bench) compareMode(ctx context.Context) error {
	if b.o.stagger && b.o.settle > 0 && b.o.settle < b.o.latency+b.o.jitter {
		// Settle must outlast the ramp, or the ramp is measured.
		return fmt.Errorf("-settle %v is shorter than the ramp of -stagger (one provider latency, %v)", b.o.settle, b.o.latency+b.o.jitter)
	}
	fmt.Fprintf(b.w, "  load: %d concurrent, %d requests (warm-up %d first), at most %v each; POST /v1/sessions, unique referenceIds, random UK mobiles\n",
		b.o.concurrency, b.o.requests, warmupCount(b.o), b.o.duration)
	start := "all workers at once"
	if b.o.stagger {
		start = fmt.Sprintf("workers' first requests spread over %v", b.o.latency)
	}
	fmt.Fprintf(b.w, "  %s; measured from %v on (the requests before are made, not counted)\n", start, b.o.settle)
	fmt.Fprintf(b.w, "  Redis clients auto-pipelined (REDIS_AUTOPIPELINE): %v, bridge and baseline alike\n", b.o.autoPipeline)
	// Rounds alternate the targets, so a slow spell of the shared machine falls on both.
	var runs []measured
	for round := range max(b.o.rounds, 1) {
		for _, target := range []string{roleBridge, roleBaseline} {
			m, err := b.runTarget(ctx, target)
			if err != nil {
				return fmt.Errorf("%s: %w", target, err)
			}
			m.round = round + 1
			runs = append(runs, m)
			b.cleanup(ctx)
		}
	}
	width := 8
	label := func(m measured) string { return m.name }
	if b.o.rounds > 1 {
		width, label = 11, func(m measured) string { return fmt.Sprintf("%s#%d", m.name, m.round) }
	}
	fmt.Fprintf(b.w, "\n%-*s %8s %7s %9s %11s %8s %8s %8s %8s %10s %9s %8s\n", width, "target", "answered", "errors",
		"elapsed", "throughput", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "CPU µs/req", "peak RSS", "sockets")
	for _, m := range runs {
		r := m.res
		fmt.Fprintf(b.w, "%-*s %8d %7d %8.2fs %9.0f/s %8s %8s %8s %8s %10.0f %7dMB %8d\n", width, label(m), r.ok, r.failed(),
			r.elapsed.Seconds(), r.throughput(), ms(r.pct(.5)), ms(r.pct(.99)), ms(r.pct(.999)), ms(r.pct(1)),
			m.perRequest(m.cpu), m.peaks.rssKB/1024, m.peaks.socks)
	}
	for _, m := range runs {
		fmt.Fprintf(b.w, "%-*s errors: %s; CPU µs/req of this program (load+fake) %.0f, of Redis %.0f; %d log lines", width, label(m), m.res.errorSummary(),
			m.perRequest(m.loadCPU), m.perRequest(m.redisCPU), m.logLines)
		if r := m.res; r.window > 0 {
			fmt.Fprintf(b.w, "; settle %d requests (%d failed); steady window %.2fs, %d answered in it", r.settleIssued, r.settleFailed, r.window.Seconds(), r.windowDone)
		}
		fmt.Fprintln(b.w)
	}
	fmt.Fprintf(b.w, "\nwhere a request's time went, means in ms (client: measured requests; server: answered in the window):\n")
	for _, m := range runs {
		if m.timesErr != nil {
			fmt.Fprintf(b.w, "%-*s server timings unread: %v\n", width, label(m), m.timesErr)
			continue
		}
		sp := m.split()
		fmt.Fprintf(b.w, "%-*s client %.1f = provider call %.1f + rest of the handler %.1f + outside the handler %.1f\n",
			width, label(m), float64(m.res.mean())/1e6, sp.provider, sp.handlerRest, sp.outside)
	}
	cmp := compareRuns(runs)
	if cmp.failed > 0 {
		fmt.Fprintf(b.w, "\nWARNING: a target had errors; the ratios below compare unlike runs\n")
	}
	of := ""
	if cmp.rounds > 1 {
		of = fmt.Sprintf(" (median of %d rounds)", cmp.rounds)
	}
	fmt.Fprintf(b.w, "\nbridge/baseline%s: throughput %.2f× (target ≥ 0.80×: %s); p99 overhead %+.1f ms (target ≤ 2 ms: %s); p50 overhead %+.1f ms; p99.9 overhead %+.1f ms\n",
		of, cmp.ratio, verdict(cmp.ratio >= 0.8), ms64(cmp.p99), cmp.p99Verdict(2*time.Millisecond), ms64(cmp.p50), ms64(cmp.p999))
	fmt.Fprintf(b.w, "CPU per start, server and Redis: bridge %.1f× the baseline's%s\n", cmp.cpu, of)
	if cmp.split != nil {
		fmt.Fprintf(b.w, "the bridge's mean overhead%s: %+.1f ms = provider call %+.1f + rest of the handler %+.1f + outside the handler %+.1f\n",
			of, cmp.split.provider+cmp.split.handlerRest+cmp.split.outside, cmp.split.provider, cmp.split.handlerRest, cmp.split.outside)
	}
	if cmp.rounds > 1 {
		fmt.Fprintf(b.w, "between rounds of the same target: baseline p99 spread %.1f ms, throughput %.0f–%.0f/s; bridge p99 spread %.1f ms, throughput %.0f–%.0f/s\n",
			ms64(cmp.baseline.p99Spread), cmp.baseline.minTput, cmp.baseline.maxTput, ms64(cmp.bridge.p99Spread), cmp.bridge.minTput, cmp.bridge.maxTput)
	}
	if b.o.cpuprofile != "" {
		b.printProfile(ctx)
	}
	if cmp.failed > 0 {
		return fmt.Errorf("errors: %d requests failed", cmp.failed)
	}
	return nil
}

func ms64(d time.Duration) float64 { return float64(d) / 1e6 }

// comparison is bridge against baseline over rounds: the median of each round's ratio and
// overheads, and how far rounds of one target differ from each other. That spread is what
// the shared machine alone moves a figure by, so an overhead smaller than the baseline's
// own p99 spread cannot be told from noise.
type comparison struct {
	rounds, failed int
	ratio          float64
	// cpu is the bridge's CPU per start, its own and its Redis', over the baseline's: unlike
	// latency it barely moves with the machine's slow spells, so it tells a change's effect
	// where one run's p99 cannot.
	cpu              float64
	p50, p99, p999   time.Duration
	bridge, baseline spread
	// split: the medians of the bridge's mean time minus the baseline's, per part; nil
	// when a round's server timings could not be read.
	split *split
}

type spread struct {
	p99Spread        time.Duration
	minTput, maxTput float64
}

// compareRuns pairs runs round by round (bridge, then baseline).
func compareRuns(runs []measured) comparison {
	var c comparison
	var ratios, cpus []float64
	var p50s, p99s, p999s []time.Duration
	var provs, rests, outs []float64
	timed := true
	for i := 0; i+1 < len(runs); i += 2 {
		br, bl := runs[i].res, runs[i+1].res
		if runs[i].timesErr != nil || runs[i+1].timesErr != nil {
			timed = false
		}
		sb, sl := runs[i].split(), runs[i+1].split()
		provs, rests, outs = append(provs, sb.provider-sl.provider), append(rests, sb.handlerRest-sl.handlerRest), append(outs, sb.outside-sl.outside)
		c.failed += br.failed() + bl.failed()
		ratios = append(ratios, br.throughput()/max(bl.throughput(), 1e-9))
		cpus = append(cpus, runs[i].cpuPerStart()/max(runs[i+1].cpuPerStart(), 1e-9))
		p50s = append(p50s, br.pct(.5)-bl.pct(.5))
		p99s = append(p99s, br.pct(.99)-bl.pct(.99))
		p999s = append(p999s, br.pct(.999)-bl.pct(.999))
	}
	c.rounds = len(ratios)
	c.ratio, c.p50, c.p99, c.p999 = median(ratios), median(p50s), median(p99s), median(p999s)
	c.cpu = median(cpus)
	if timed && c.rounds > 0 {
		c.split = &split{provider: median(provs), handlerRest: median(rests), outside: median(outs)}
	}
	c.bridge, c.baseline = spreadOf(runs, roleBridge), spreadOf(runs, roleBaseline)
	return c
}

// p99Verdict judges the p99 overhead against target. Under target it is "met" only when
// rounds of each target differ by less than target too: an overhead the machine's own
// spread could hide or make is not decided by its median (a saturated 2-core machine has
// shown medians from -29 to +84 ms for one build).
func (c comparison) p99Verdict(target time.Duration) string {
	if c.p99 > target {
		return "MISSED"
	}
	if c.rounds < 2 {
		return "met in one round, whose noise is not known: use -rounds 3"
	}
	if noise := max(c.bridge.p99Spread, c.baseline.p99Spread); noise > target {
		return fmt.Sprintf("not decided: rounds of one target differ by up to %.1f ms", ms64(noise))
	}
	return "met"
}

func spreadOf(runs []measured, target string) spread {
	var s spread
	var lo, hi time.Duration
	first := true
	for _, m := range runs {
		if m.name != target {
			continue
		}
		p, t := m.res.pct(.99), m.res.throughput()
		if first {
			lo, hi, s.minTput, s.maxTput, first = p, p, t, t, false
		}
		lo, hi = min(lo, p), max(hi, p)
		s.minTput, s.maxTput = min(s.minTput, t), max(s.maxTput, t)
	}
	s.p99Spread = hi - lo
	return s
}

// median of xs (the mean of the middle two for an even count); zero for none.
func median[T int64 | float64 | time.Duration](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

func warmupCount(o options) int {
	if o.warmup < 0 {
		return o.concurrency
	}
	return o.warmup
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// printProfile prints the top functions of the bridge's CPU profile (go tool pprof).
func (b *bench) printProfile(ctx context.Context) {
	fmt.Fprintf(b.w, "\nCPU profile of the bridge (warm-up and measured run): %s\n", b.o.cpuprofile)
	for _, args := range [][]string{{"-top", "-nodecount=25"}, {"-top", "-cum", "-nodecount=45"}} {
		cmd := exec.CommandContext(ctx, "go", append(append([]string{"tool", "pprof"}, args...), b.o.cpuprofile)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			fmt.Fprintf(b.w, "go tool pprof: %v\n", err)
		}
		b.w.Write(out)
	}
}

// scaleMode releases -concurrency sessions at once against the bridge, then the baseline,
// and reports each one's peak.
func (b *bench) scaleMode(ctx context.Context) error {
	fmt.Fprintf(b.w, "  scale: %d sessions released at once (connections opened first), provider %v, PROVIDER_TIMEOUT %v\n",
		b.o.concurrency, b.o.latency, b.o.providerTimeout)
	failed := 0
	for _, target := range []string{roleBridge, roleBaseline} {
		n, err := b.scaleTarget(ctx, target)
		if err != nil {
			return fmt.Errorf("%s: %w", target, err)
		}
		failed += n
		b.cleanup(ctx)
	}
	if b.o.cpuprofile != "" {
		b.printProfile(ctx)
	}
	if failed > 0 {
		return fmt.Errorf("%d sessions failed", failed)
	}
	return nil
}

func (b *bench) scaleTarget(ctx context.Context, target string) (failed int, err error) {
	s, err := b.start(target)
	if err != nil {
		return 0, err
	}
	defer s.stop()
	bridge := target == roleBridge
	mc := &http.Client{Timeout: 2 * time.Second}
	defer mc.CloseIdleConnections()
	var idleG int64
	if bridge {
		idleG, _ = goroutines(ctx, mc, s.url)
	}
	idleRSS := rssKB(s.pid())
	idleSocks, _ := sockets(s.pid())
	connsStart := b.fake.conns.Load()
	// A short warm-up opens the provider and Redis connections.
	if _, err := drive(ctx, loadSpec{url: s.url, apiKey: apiKey, concurrency: 100, requests: 200, duration: time.Minute,
		timeout: b.o.providerTimeout + 5*time.Second, refPrefix: b.runID + "-" + target + "-w"}); err != nil {
		return 0, err
	}
	b.fake.resetPeak()
	var stop func() peaks
	spec := loadSpec{url: s.url, apiKey: apiKey, concurrency: b.o.concurrency, requests: b.o.concurrency, duration: time.Hour,
		timeout: b.o.providerTimeout + 6*time.Second, refPrefix: b.runID + "-" + target + "-", burst: true, predial: true,
		onStart: func() { stop = sample(s, 100*time.Millisecond, bridge) }}
	cpu0, self0, conns0 := cpuTime(s.pid()), selfCPU(), b.fake.conns.Load()
	res, err := drive(ctx, spec)
	cpu, self := cpuTime(s.pid())-cpu0, selfCPU()-self0
	if stop == nil {
		return 0, err
	}
	p := stop()
	if err != nil {
		return 0, err
	}
	g := func(n int64) string {
		if !bridge {
			return "-"
		}
		return strconv.FormatInt(n, 10)
	}
	fmt.Fprintf(b.w, "\n%s: idle %s goroutines, %d sockets, RSS %d MB\n", target, g(idleG), idleSocks, idleRSS/1024)
	fmt.Fprintf(b.w, "  connections opened in %.2fs; in flight at once: %d at the client, %d held at the provider; connections to the provider: %d opened in the warm-up, %d in the burst\n",
		res.predialed.Seconds(), res.maxInFlight, b.fake.maxInFlight.Load(), conns0-connsStart, b.fake.conns.Load()-conns0)
	fmt.Fprintf(b.w, "  answered %d/%d, errors %d (%s), all answered within %.2fs\n", res.ok, res.issued, res.failed(), res.errorSummary(), res.elapsed.Seconds())
	fmt.Fprintf(b.w, "  latency p50 %s ms, p99 %s ms, p99.9 %s ms, max %s ms (provider %v)\n",
		ms(res.pct(.5)), ms(res.pct(.99)), ms(res.pct(.999)), ms(res.pct(1)), b.o.latency)
	fmt.Fprintf(b.w, "  at the peak: %s goroutines, %d open sockets (%d descriptors), RSS %d MB; CPU %.2fs (%.0f µs/session), this program %.2fs\n",
		g(p.goroutines), p.socks, p.fds, p.rssKB/1024, cpu.Seconds(), float64(cpu.Microseconds())/float64(max(1, res.issued)), self.Seconds())
	if err := s.stop(); err != nil {
		return 0, err
	}
	if n := s.logCount("provider send failed"); n > 0 {
		fmt.Fprintf(b.w, "  log: %d failed provider sends\n", n)
	}
	return res.failed(), nil
}

// memoryMode prints the idle bridge's RSS and what a stored session costs in Redis.
func (b *bench) memoryMode(ctx context.Context) error {
	s, err := b.start(roleBridge)
	if err != nil {
		return err
	}
	defer s.stop()
	time.Sleep(b.o.idleWait)
	idle := rssKB(s.pid())
	fmt.Fprintf(b.w, "\nidle bridge RSS (%v after /healthz answered): %.1f MB (target ≤ 40 MB: %s)\n",
		b.o.idleWait, float64(idle)/1024, verdict(idle <= 40*1024))

	used0 := usedMemory(ctx, b.rdb)
	b.fake.SetLatency(time.Millisecond)
	n := b.o.memorySessions
	res, err := drive(ctx, loadSpec{url: s.url, apiKey: apiKey, concurrency: 50, requests: n, duration: 5 * time.Minute,
		timeout: b.o.providerTimeout + 5*time.Second, refPrefix: b.runID + "-m"})
	if err != nil {
		return err
	}
	if res.failed() > 0 {
		return fmt.Errorf("storing sessions: %d errors (%s)", res.failed(), res.errorSummary())
	}
	used1 := usedMemory(ctx, b.rdb)
	// Every key a session has (all carry its hash tag): MEMORY USAGE of each, counted whole
	// (SAMPLES 0), over all the sessions stored.
	var keyBytes, dataBytes, keys int64
	iter := b.rdb.Scan(ctx, 0, bridgePrefix+"{"+b.runID+"-m*", 1000).Iterator()
	for iter.Next(ctx) {
		keyBytes += b.rdb.MemoryUsage(ctx, iter.Val(), 0).Val()
		keys++
		if strings.HasSuffix(iter.Val(), "}") {
			dataBytes += b.rdb.HStrLen(ctx, iter.Val(), "d").Val()
		}
	}
	if err := iter.Err(); err != nil {
		return err
	}
	idx := bridgePrefix + "index"
	idxBytes := b.rdb.MemoryUsage(ctx, idx, 0).Val()
	idxCard := b.rdb.ZCard(ctx, idx).Val()
	perKey := float64(keyBytes) / float64(n)
	perIdx := float64(idxBytes) / float64(max(idxCard, 1))
	fmt.Fprintf(b.w, "stored %d sessions (status sent, 2 events) in %d keys; MEMORY USAGE of their keys: %.0f B per session (JSON document %.0f B)\n",
		n, keys, perKey, float64(dataBytes)/float64(n))
	fmt.Fprintf(b.w, "index %s: %d B for %d entries = %.0f B per session\n", idx, idxBytes, idxCard, perIdx)
	fmt.Fprintf(b.w, "per session: %.0f B (target ≤ 1024 B: %s); INFO used_memory grew %.0f B per session\n",
		perKey+perIdx, verdict(perKey+perIdx <= 1024), float64(used1-used0)/float64(n))
	fmt.Fprintf(b.w, "bridge RSS after storing them: %.1f MB\n", float64(rssKB(s.pid()))/1024)
	return s.stop()
}

// redisCPU is the Redis server's own CPU time so far (INFO cpu: used_cpu_sys + used_cpu_user):
// Redis shares the machine's cores with the server measured, so its work per request counts.
func redisCPU(ctx context.Context, rdb *redis.Client) time.Duration {
	info, _ := rdb.Info(ctx, "cpu").Result()
	var total float64
	for _, line := range strings.Split(info, "\r\n") {
		for _, field := range []string{"used_cpu_sys:", "used_cpu_user:"} {
			if v, ok := strings.CutPrefix(line, field); ok {
				f, _ := strconv.ParseFloat(v, 64)
				total += f
			}
		}
	}
	return time.Duration(total * float64(time.Second))
}

func usedMemory(ctx context.Context, rdb *redis.Client) int64 {
	info, _ := rdb.Info(ctx, "memory").Result()
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}
