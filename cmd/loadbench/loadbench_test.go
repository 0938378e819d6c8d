package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/labstack/echo/v4"
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
	out := runSmoke(t, smokeOptions(t), "bridge/baseline: throughput", "\nbridge      ", "\nbaseline    ",
		"where a request's time went", "the bridge's mean overhead: ")
	// Each server's own timings were read: its provider calls take at least the fake's
	// latency (10 ms), and no more than the client waited.
	splits := 0
	for _, line := range strings.Split(out, "\n") {
		var name string
		var client, provider, rest, outside float64
		if _, err := fmt.Sscanf(line, "%s client %f = provider call %f + rest of the handler %f + outside the handler %f",
			&name, &client, &provider, &rest, &outside); err != nil {
			continue
		}
		splits++
		if provider < 10 || provider > client || rest < 0 {
			t.Errorf("%s: provider call %.1f ms, rest of the handler %.1f ms, client %.1f ms", name, provider, rest, client)
		}
	}
	if splits != 2 || strings.Contains(out, "server timings unread") {
		t.Errorf("want the time split of both servers, found %d", splits)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "bridge ") || strings.HasPrefix(line, "baseline ") {
			if f := strings.Fields(line); len(f) > 2 && f[1] != "errors:" && f[1] != "client" && (f[1] != "200" || f[2] != "0") {
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

// TestCompareRounds runs two alternating rounds: four runs printed, medians and the spread
// between rounds of each target.
func TestCompareRounds(t *testing.T) {
	o := smokeOptions(t)
	o.rounds, o.requests = 2, 100
	out := runSmoke(t, o, "(median of 2 rounds)", "\nbridge#1   ", "\nbaseline#1 ", "\nbridge#2   ", "\nbaseline#2 ",
		"between rounds of the same target: baseline p99 spread")
	if strings.Count(out, "errors: none") != 4 {
		t.Errorf("want four runs without errors")
	}
}

// TestCompareRunsMedians checks the pairing and the medians on made-up runs.
func TestCompareRunsMedians(t *testing.T) {
	run := func(name string, tput float64, p99 time.Duration, cpuPerReq time.Duration) measured {
		// 100 answers in 1 s; the 99th of 100 sorted latencies is the p99.
		lat := make([]time.Duration, 100)
		for i := range lat {
			lat[i] = time.Duration(i) * time.Millisecond
		}
		lat[98], lat[99] = p99, p99+time.Millisecond
		// Half of the CPU the server's, half Redis'.
		cpu := cpuPerReq * time.Duration(tput) / 2
		return measured{name: name, res: loadResult{issued: int(tput), ok: int(tput), elapsed: time.Second, lat: lat},
			cpu: cpu, redisCPU: cpu}
	}
	runs := []measured{
		// 0.8, +50 ms, CPU 2×; 0.9, +10 ms, 1.5×; 0.5, +130 ms, 3×
		run(roleBridge, 80, 300*time.Millisecond, 400*time.Microsecond), run(roleBaseline, 100, 250*time.Millisecond, 200*time.Microsecond),
		run(roleBridge, 90, 260*time.Millisecond, 300*time.Microsecond), run(roleBaseline, 100, 250*time.Millisecond, 200*time.Microsecond),
		run(roleBridge, 50, 400*time.Millisecond, 600*time.Microsecond), run(roleBaseline, 100, 270*time.Millisecond, 200*time.Microsecond),
	}
	c := compareRuns(runs)
	if c.rounds != 3 || c.failed != 0 {
		t.Fatalf("rounds %d, failed %d", c.rounds, c.failed)
	}
	if c.ratio != 0.8 || c.p99 != 50*time.Millisecond {
		t.Errorf("median ratio %.2f, p99 overhead %v; want 0.80, 50ms", c.ratio, c.p99)
	}
	if c.cpu != 2 {
		t.Errorf("median CPU ratio %.2f, want 2", c.cpu)
	}
	if c.baseline.p99Spread != 20*time.Millisecond || c.bridge.p99Spread != 140*time.Millisecond {
		t.Errorf("p99 spreads: baseline %v, bridge %v; want 20ms, 140ms", c.baseline.p99Spread, c.bridge.p99Spread)
	}
	if c.bridge.minTput != 50 || c.bridge.maxTput != 90 {
		t.Errorf("bridge throughput %v–%v, want 50–90", c.bridge.minTput, c.bridge.maxTput)
	}
	if got := median([]float64{3, 1, 2, 10}); got != 2.5 {
		t.Errorf("median of an even count = %v, want 2.5", got)
	}
}

// TestServerTimes: the four series are read from the bridge's /metrics text, other lines
// (a histogram's buckets, other routes) ignored; the baseline serves them alike; a server
// without them is an error, not zeros.
func TestServerTimes(t *testing.T) {
	bridge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "# HELP x\n%s 4.5\n%s 20\n", handlerSum, handlerCount)
		fmt.Fprintf(w, "ivr_bridge_http_request_duration_seconds_bucket{method=\"POST\",route=\"/v1/sessions\",le=\"0.25\"} 19\n")
		fmt.Fprintf(w, "ivr_bridge_http_request_duration_seconds_sum{method=\"GET\",route=\"/healthz\"} 99\n")
		fmt.Fprintf(w, "%s 4\n%s 19\n", providerSum, providerCount)
	}))
	defer bridge.Close()
	got, err := readServerTimes(context.Background(), http.DefaultClient, bridge.URL)
	if err != nil || got != (serverTimes{starts: 20, handler: 4.5, calls: 19, provider: 4}) {
		t.Fatalf("bridge: %+v, %v", got, err)
	}
	if h, p := got.sub(serverTimes{starts: 10, handler: 2, calls: 9, provider: 2}).handlerMean(), got.providerMean(); h != 250 || p != 4000.0/19 {
		t.Errorf("handler mean %v ms, provider mean %v ms", h, p)
	}

	b := &baseline{}
	b.starts.Store(3)
	b.handlerNS.Store(int64(750 * time.Millisecond))
	b.calls.Store(2)
	b.providerNS.Store(int64(400 * time.Millisecond))
	e := echo.New()
	e.GET("/metrics", b.metrics)
	base := httptest.NewServer(e)
	defer base.Close()
	got, err = readServerTimes(context.Background(), http.DefaultClient, base.URL)
	if err != nil || got != (serverTimes{starts: 3, handler: 0.75, calls: 2, provider: 0.4}) {
		t.Fatalf("baseline: %+v, %v", got, err)
	}

	none := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s 1\n", handlerSum)
	}))
	defer none.Close()
	if _, err := readServerTimes(context.Background(), http.DefaultClient, none.URL); err == nil {
		t.Error("a /metrics without the series read as zeros")
	}
}

// TestCompareRunsSplit: the bridge's mean overhead is split into the medians over rounds of
// its parts' differences from the baseline's; a round whose server timings were not read
// leaves the split out rather than print zeros.
func TestCompareRunsSplit(t *testing.T) {
	run := func(name string, provider, rest, outside float64) measured {
		client := time.Duration((provider + rest + outside) * 1e6) // the mean of one latency
		return measured{name: name, res: loadResult{issued: 1, ok: 1, elapsed: time.Second, lat: []time.Duration{client}},
			times: serverTimes{starts: 10, handler: (provider + rest) / 100, calls: 10, provider: provider / 100}}
	}
	runs := []measured{
		// bridge minus baseline per round: provider +1, +2, +9; rest +20, +10, +30; outside +3, -1, +1
		run(roleBridge, 210, 30, 10), run(roleBaseline, 209, 10, 7),
		run(roleBridge, 212, 20, 8), run(roleBaseline, 210, 10, 9),
		run(roleBridge, 219, 40, 11), run(roleBaseline, 210, 10, 10),
	}
	c := compareRuns(runs)
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-6 }
	if c.split == nil || !near(c.split.provider, 2) || !near(c.split.handlerRest, 20) || !near(c.split.outside, 1) {
		t.Fatalf("split %+v, want provider +2, rest +20, outside +1", c.split)
	}
	runs[3].timesErr = errors.New("no /metrics")
	if c := compareRuns(runs); c.split != nil {
		t.Fatalf("split %+v from a round without timings", c.split)
	}
}

// TestFakeJitter: answers spread uniformly around the latency, never outside it.
func TestFakeJitter(t *testing.T) {
	f := &fakeCallConnect{}
	f.SetLatency(200 * time.Millisecond)
	if f.wait() != 200*time.Millisecond {
		t.Fatal("without jitter every answer takes the latency")
	}
	f.SetJitter(50 * time.Millisecond)
	var below, above int
	for range 2000 {
		d := f.wait()
		if d < 150*time.Millisecond || d > 250*time.Millisecond {
			t.Fatalf("wait %v outside 200ms ± 50ms", d)
		}
		if d < 190*time.Millisecond {
			below++
		}
		if d > 210*time.Millisecond {
			above++
		}
	}
	if below < 600 || above < 600 { // 40 % of 2000 each, expected 800
		t.Errorf("not spread: %d below 190ms, %d above 210ms of 2000", below, above)
	}
}

// TestDriveMeasuresTheSteadyWindow: with settle, the requests before it are made and not
// measured (their failures still count), and costs and throughput are of the window from its
// end to the start of the last measured request.
func TestDriveMeasuresTheSteadyWindow(t *testing.T) {
	for _, failSettle := range []bool{false, true} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			time.Sleep(5 * time.Millisecond)
			if failSettle && strings.Contains(string(body), `"t-s`) {
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
			w.WriteHeader(http.StatusCreated)
		}))
		var starts, ends int
		const requests, concurrency = 300, 10
		res, err := drive(context.Background(), loadSpec{url: srv.URL, apiKey: "k", concurrency: concurrency, requests: requests,
			duration: 20 * time.Second, timeout: 5 * time.Second, refPrefix: "t-", stagger: 5 * time.Millisecond,
			settle: 100 * time.Millisecond, onStart: func() { starts++ }, onEnd: func() { ends++ }})
		srv.Close()
		if err != nil {
			t.Fatal(err)
		}
		if res.ok != requests || len(res.lat) != requests || starts != 1 || ends != 1 {
			t.Fatalf("ok %d, latencies %d, onStart %d×, onEnd %d×: want %d, %d, 1, 1", res.ok, len(res.lat), starts, ends, requests, requests)
		}
		if res.settleIssued == 0 || res.window <= 0 || res.window > res.elapsed {
			t.Fatalf("settle made %d requests; window %v of %v", res.settleIssued, res.window, res.elapsed)
		}
		// As many in flight at the window's start as at its end: about the measured count.
		if res.windowDone < requests-2*concurrency || res.windowDone > requests+2*concurrency {
			t.Fatalf("%d answered in the window, want about %d", res.windowDone, requests)
		}
		if got, want := res.throughput(), float64(res.windowOK)/res.window.Seconds(); got != want || res.answered() != res.windowDone {
			t.Fatalf("throughput %v, want %v; divisor %d, want %d", got, want, res.answered(), res.windowDone)
		}
		if failSettle {
			if res.settleFailed != res.settleIssued || res.failed() != res.settleFailed || !strings.Contains(res.errorSummary(), "settle 500") {
				t.Fatalf("settle: %d made, %d failed; failed() %d; errors %s", res.settleIssued, res.settleFailed, res.failed(), res.errorSummary())
			}
		} else if res.failed() != 0 {
			t.Fatalf("failed %d: %s", res.failed(), res.errorSummary())
		}
	}
}

// TestP99VerdictNeedsTheNoiseBelowTheTarget: a median overhead under the target is "met" only
// when rounds of each target differ by less than the target as well.
func TestP99VerdictNeedsTheNoiseBelowTheTarget(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct {
		c    comparison
		want string
	}{
		{comparison{rounds: 3, p99: 5 * ms}, "MISSED"},
		{comparison{rounds: 3, p99: -29 * ms, bridge: spread{p99Spread: 71 * ms}, baseline: spread{p99Spread: 66 * ms}}, "not decided: rounds of one target differ by up to 71.0 ms"},
		{comparison{rounds: 3, p99: ms, bridge: spread{p99Spread: ms}, baseline: spread{p99Spread: ms / 2}}, "met"},
		{comparison{rounds: 1, p99: ms}, "met in one round, whose noise is not known: use -rounds 3"},
	} {
		if got := c.c.p99Verdict(2 * ms); got != c.want {
			t.Errorf("%+v: %q, want %q", c.c, got, c.want)
		}
	}
}

// The comparison refuses a settle shorter than the ramp (it would measure the ramp); the
// scale mode, whose provider takes 2 s, has no settle and is not refused (TestScaleSmoke).
func TestCompareRefusesASettleShorterThanTheRamp(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the bridge")
	}
	o := smokeOptions(t)
	o.latency, o.settle = 2*time.Second, time.Second
	err := run(context.Background(), o, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "-settle 1s is shorter than the ramp") {
		t.Fatalf("run = %v, want the refusal", err)
	}
}

// The Redis URL's password is not printed: the output is pasted into reports.
func TestRedisPasswordNotPrinted(t *testing.T) {
	mr := miniredis.RunT(t)
	mr.RequireAuth("hunter2")
	o := smokeOptions(t)
	o.redisURL, o.inprocess = "redis://:hunter2@"+mr.Addr()+"/0", true
	var out bytes.Buffer
	b, err := newBench(context.Background(), o, &out)
	if err != nil {
		t.Fatal(err)
	}
	b.close()
	if !strings.Contains(out.String(), mr.Addr()) || strings.Contains(out.String(), "hunter2") {
		t.Errorf("want the address and no password: %s", out.String())
	}
}
