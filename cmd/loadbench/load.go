package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// loadSpec is one measured run against one server.
type loadSpec struct {
	url, apiKey string
	concurrency int           // workers, each with one request in flight at a time
	requests    int           // bound on requests
	duration    time.Duration // bound on time
	timeout     time.Duration // client timeout of one request
	refPrefix   string        // references are refPrefix + index
	// burst: every request waits at a gate and all are released at once (concurrency must
	// equal requests); predial opens that many connections first, in batches, so the burst
	// measures the server and not the listen backlog.
	burst, predial bool
	// stagger spreads the workers' first requests evenly over this long, as calls arrive in a
	// contact center, instead of all at once; settle: requests that start before this long
	// after the first are made but not measured, so the figures are of the steady state and
	// not of the ramp. The bounds (requests, duration) count from the end of settle.
	stagger, settle time.Duration
	// onStart is called when measuring begins (to sample the server meanwhile): as the
	// requests are released, or at the end of settle. onEnd, with settle, when the last
	// measured request starts: the steady window ends there (see loadResult.window).
	onStart, onEnd func()
}

// loadResult is what a run measured.
type loadResult struct {
	issued      int // requests sent (references used: refPrefix + 0..issued-1)
	ok          int // 2xx answers
	statuses    map[int]int
	errs        map[string]int // transport errors by kind
	elapsed     time.Duration
	lat         []time.Duration // of the 2xx answers, sorted
	maxInFlight int64
	// settle's requests, made and not measured, and how many of them failed (in errs: a
	// failed answer as "settle <status>", a transport error by its kind).
	settleIssued, settleFailed int
	// With settle, the steady window: from the end of settle to the start of the last
	// measured request (onStart to onEnd), when as many requests are in flight as at its
	// beginning, half-done alike; windowDone requests (measured or not) were answered in
	// it, windowOK of them 2xx. Costs per request and the throughput are of this window, so
	// neither the work settle's requests still had to do at its start nor the drain at the
	// end skews them.
	window               time.Duration
	windowDone, windowOK int
	// predialed: how long opening the connections took. The server starts its header
	// timeout (5 s) when it accepts one, so connections opened longer ago than that before
	// the release are closed under their first request (an EOF at the client).
	predialed time.Duration
}

func (r loadResult) failed() int { return r.issued - r.ok + r.settleFailed }

func (r loadResult) throughput() float64 {
	if r.window > 0 {
		return float64(r.windowOK) / r.window.Seconds()
	}
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.ok) / r.elapsed.Seconds()
}

// answered is what a cost measured over the run (or its steady window) is divided by.
func (r loadResult) answered() int {
	if r.window > 0 {
		return max(1, r.windowDone)
	}
	return max(1, r.issued)
}

// mean of the latencies of the 2xx answers.
func (r loadResult) mean() time.Duration {
	var sum time.Duration
	for _, d := range r.lat {
		sum += d
	}
	return sum / time.Duration(max(len(r.lat), 1))
}

// pct is the q-quantile (0..1) of the latencies, nearest rank.
func (r loadResult) pct(q float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	i := int(q*float64(len(r.lat))+0.5) - 1
	return r.lat[max(0, min(i, len(r.lat)-1))]
}

func (r loadResult) errorSummary() string {
	var parts []string
	for s, n := range r.statuses {
		if s < 200 || s >= 300 {
			parts = append(parts, fmt.Sprintf("%d×%d", n, s))
		}
	}
	for e, n := range r.errs {
		parts = append(parts, fmt.Sprintf("%d×%s", n, e))
	}
	sort.Strings(parts)
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// startBody is a valid start for a random UK mobile number.
func startBody(ref string) string {
	return `{"referenceId":"` + ref + `","phoneNumber":"+447400` + fmt.Sprintf("%06d", rand.IntN(1000000)) + `"}`
}

// predialer hands out connections opened beforehand, then dials as usual.
type predialer struct {
	conns chan net.Conn
	d     net.Dialer
}

func (p *predialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	select {
	case c := <-p.conns:
		return c, nil
	default:
		return p.d.DialContext(ctx, network, addr)
	}
}

func (p *predialer) open(addr string, n int) error {
	const batch = 500
	for done := 0; done < n; done += batch {
		var wg sync.WaitGroup
		var mu sync.Mutex
		var firstErr error
		for i := done; i < min(n, done+batch); i++ {
			wg.Go(func() {
				c, err := p.d.Dial("tcp", addr)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					firstErr = cmp.Or(firstErr, err)
					return
				}
				p.conns <- c
			})
		}
		wg.Wait()
		if firstErr != nil {
			return firstErr
		}
	}
	return nil
}

func (p *predialer) close() {
	for {
		select {
		case c := <-p.conns:
			c.Close()
		default:
			return
		}
	}
}

// errKind names a transport error briefly, for the error summary.
func errKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		return "client-timeout"
	case strings.Contains(err.Error(), "connection refused"):
		return "refused"
	case strings.Contains(err.Error(), "connection reset"):
		return "reset"
	case strings.Contains(err.Error(), "too many open files"):
		return "EMFILE"
	case errors.Is(err, io.EOF) || strings.Contains(err.Error(), "EOF"):
		return "EOF"
	}
	return "transport"
}

// drive runs spec and returns what it measured.
func drive(ctx context.Context, spec loadSpec) (loadResult, error) {
	pd := &predialer{conns: make(chan net.Conn, spec.concurrency), d: net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}}
	tr := &http.Transport{
		DialContext:         pd.DialContext,
		MaxIdleConns:        spec.concurrency,
		MaxIdleConnsPerHost: spec.concurrency, // the default 2 would close and reopen connections all along
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	client := &http.Client{Transport: tr, Timeout: spec.timeout}
	defer tr.CloseIdleConnections()
	defer pd.close()
	var predialed time.Duration
	if spec.predial {
		t0 := time.Now()
		if err := pd.open(strings.TrimPrefix(spec.url, "http://"), spec.concurrency); err != nil {
			return loadResult{}, fmt.Errorf("opening %d connections: %w", spec.concurrency, err)
		}
		predialed = time.Since(t0)
	}

	lat := make([]time.Duration, spec.requests)
	status := make([]int16, spec.requests)
	var (
		next, inFlight, maxInFlight atomic.Int64
		mu                          sync.Mutex
		errs                        = map[string]int{}
	)
	var (
		settling, settleFailed, windowDone, windowOK atomic.Int64
		endAt                                        atomic.Int64 // unix ns of the last measured start
		measuring, ended                             atomic.Bool
	)
	inWindow := func(ok bool) {
		if spec.settle > 0 && measuring.Load() && !ended.Load() {
			windowDone.Add(1)
			if ok {
				windowOK.Add(1)
			}
		}
	}
	// one makes request i, or with i < 0 one of settle's, whose answer is not measured (its
	// error is: an error is an error whenever it comes).
	one := func(i int) {
		ref := spec.refPrefix + strconv.Itoa(i)
		if i < 0 {
			ref = spec.refPrefix + "s" + strconv.FormatInt(settling.Add(1), 10)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, spec.url+"/v1/sessions", strings.NewReader(startBody(ref)))
		if err != nil {
			panic(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+spec.apiKey)
		n := inFlight.Add(1)
		for peak := maxInFlight.Load(); n > peak && !maxInFlight.CompareAndSwap(peak, n); peak = maxInFlight.Load() {
		}
		t0 := time.Now()
		resp, err := client.Do(req)
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		d := time.Since(t0)
		inFlight.Add(-1)
		inWindow(err == nil && resp.StatusCode >= 200 && resp.StatusCode < 300)
		if err != nil {
			if i < 0 {
				settleFailed.Add(1)
			}
			mu.Lock()
			errs[errKind(err)]++
			mu.Unlock()
			return
		}
		if i >= 0 {
			lat[i], status[i] = d, int16(resp.StatusCode)
		} else if resp.StatusCode < 200 || resp.StatusCode >= 300 {
			settleFailed.Add(1)
			mu.Lock()
			errs["settle "+strconv.Itoa(resp.StatusCode)]++
			mu.Unlock()
		}
	}

	gate := make(chan struct{})
	var wg sync.WaitGroup
	var deadline time.Time // set before the gate opens
	if spec.burst {
		for i := 0; i < spec.requests; i++ {
			wg.Go(func() { <-gate; one(i) })
		}
		next.Store(int64(spec.requests))
	} else {
		for w := 0; w < spec.concurrency; w++ {
			wg.Go(func() {
				<-gate
				time.Sleep(spec.stagger * time.Duration(w) / time.Duration(spec.concurrency))
				for ctx.Err() == nil && time.Now().Before(deadline) {
					if !measuring.Load() {
						one(-1)
						continue
					}
					i := int(next.Add(1) - 1)
					if i >= spec.requests {
						return
					}
					if i == spec.requests-1 && spec.settle > 0 {
						if spec.onEnd != nil {
							spec.onEnd()
						}
						endAt.Store(time.Now().UnixNano())
						ended.Store(true)
					}
					one(i)
				}
			})
		}
	}
	deadline = time.Now().Add(spec.settle + spec.duration)
	var measured, windowEnd time.Time
	if spec.settle <= 0 {
		if spec.onStart != nil {
			spec.onStart()
		}
		measured = time.Now()
		measuring.Store(true)
		close(gate)
	} else {
		close(gate)
		time.Sleep(spec.settle)
		// The snapshot first, then the switch: no measured request starts before it.
		if spec.onStart != nil {
			spec.onStart()
		}
		measured = time.Now()
		measuring.Store(true)
	}
	wg.Wait()
	windowEnd = time.Now() // the time bound ended the run: the window runs to its end
	if ns := endAt.Load(); ns != 0 {
		windowEnd = time.Unix(0, ns)
	}
	res := loadResult{elapsed: time.Since(measured), statuses: map[int]int{}, errs: errs, maxInFlight: maxInFlight.Load(),
		settleIssued: int(settling.Load()), settleFailed: int(settleFailed.Load()), predialed: predialed}
	if spec.settle > 0 {
		res.window, res.windowDone, res.windowOK = windowEnd.Sub(measured), int(windowDone.Load()), int(windowOK.Load())
	}
	res.issued = min(int(next.Load()), spec.requests)
	for i := 0; i < res.issued; i++ {
		if status[i] == 0 {
			continue
		}
		res.statuses[int(status[i])]++
		if status[i] >= 200 && status[i] < 300 {
			res.ok++
			res.lat = append(res.lat, lat[i])
		}
	}
	slices.Sort(res.lat)
	return res, nil
}
