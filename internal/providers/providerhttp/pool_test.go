package providerhttp

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ivr-bridge/ivr-bridge/internal/callsession"
)

// tlsProvider is an HTTPS server counting the connections it accepts and the protocol of
// each call; with h2 it speaks HTTP/2 allowing that many streams per connection.
type tlsProvider struct {
	*httptest.Server
	conns, http1, http2 atomic.Int64
}

func newTLSProvider(t testing.TB, h2Streams uint32, h http.HandlerFunc) *tlsProvider {
	t.Helper()
	p := &tlsProvider{}
	p.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 {
			p.http2.Add(1)
		} else {
			p.http1.Add(1)
		}
		h(w, r)
	}))
	p.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			p.conns.Add(1)
		}
	}
	if h2Streams > 0 {
		p.EnableHTTP2 = true
		p.Config.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: int(h2Streams)}
	}
	p.StartTLS()
	t.Cleanup(p.Close)
	return p
}

// client is providerhttp.New trusting the test server's certificate.
func (p *tlsProvider) client() *Client {
	c := New(callsession.ProviderCallConnect, 10*time.Second)
	roots := x509.NewCertPool()
	roots.AddCert(p.Certificate())
	c.HTTP.Transport.(*pool).t.TLSClientConfig = &tls.Config{RootCAs: roots}
	return c
}

func post(ctx context.Context, c *Client, url, body string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	return c.Do(req, nil)
}

// burst sends n calls at once and returns how many failed (the first error kept).
func burst(c *Client, url string, n int) (failed int64, first error) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var fails atomic.Int64
	for i := range n {
		wg.Go(func() {
			body := `{"n":` + strings.Repeat("1", i%7+1) + `}`
			_, got, err := post(context.Background(), c, url, body)
			if err == nil && string(got) != body {
				err = errors.New("answer " + string(got) + " for " + body)
			}
			if err != nil {
				fails.Add(1)
				mu.Lock()
				first = cmp.Or(first, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return fails.Load(), first
}

// echoSlowly answers the request's body after a while, so a burst's calls overlap.
func echoSlowly(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	time.Sleep(200 * time.Millisecond)
	_, _ = w.Write(b)
}

// A burst of calls to an HTTP/2 provider opens about burst ÷ streams connections, not one
// per call: 1,000 calls at a server allowing 50 streams per connection.
func TestBurstSharesConnections(t *testing.T) {
	p := newTLSProvider(t, 50, echoSlowly)
	c := p.client()
	if failed, err := burst(c, p.URL, 1000); failed > 0 {
		t.Fatalf("%d of 1000 calls failed: %v", failed, err)
	}
	// 20 connections hold the burst (fewer if its first calls are answered before its last
	// are made); dials under way when streams came free, at most maxDialsPerOrigin, may add
	// some. The Transport's own pool opens about one per call (BenchmarkBurst).
	if n := p.conns.Load(); n > 20+maxDialsPerOrigin {
		t.Errorf("%d connections opened for 1000 calls at 50 streams each, want at most %d", n, 20+maxDialsPerOrigin)
	}
	if p.http2.Load() != 1000 || p.http1.Load() != 0 {
		t.Errorf("calls over HTTP/2: %d, over HTTP/1.1: %d", p.http2.Load(), p.http1.Load())
	}
}

// Until an origin's limit is known, a burst probes it over at most maxDialsPerOrigin
// connections, one call each: a server allowing exactly the 100 streams net/http assumes
// says nothing of its limit before an answer, and without that bound each dial that ended
// started another, a connection per call (a burst of 300 opened about 300).
func TestColdBurstProbesOverAtMostMaxDials(t *testing.T) {
	release := make(chan struct{})
	p := newTLSProvider(t, assumedStreams, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		<-release
		_, _ = w.Write(b)
	})
	c := p.client()
	done := make(chan int64, 1)
	go func() {
		failed, err := burst(c, p.URL, 300)
		if err != nil {
			t.Errorf("%d of 300 calls failed: %v", failed, err)
		}
		done <- failed
	}()
	for deadline := time.Now().Add(10 * time.Second); p.http2.Load() < maxDialsPerOrigin && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	// The calls in flight are held. Waiting calls look again after relookAfter at the
	// latest: a dial free to start would have by then.
	time.Sleep(relookAfter + 500*time.Millisecond)
	conns, inFlight := p.conns.Load(), p.http2.Load()
	close(release)
	<-done
	if conns != maxDialsPerOrigin || inFlight != maxDialsPerOrigin {
		t.Errorf("before the first answer: %d connections, %d calls at the provider; want %d of each",
			conns, inFlight, maxDialsPerOrigin)
	}
	if p.http2.Load() != 300 {
		t.Errorf("%d calls reached the provider, want 300", p.http2.Load())
	}
}

// Connections draining after a GOAWAY take no call, so they do not count against the
// cold-start bound: 32 of them, each holding an answer, leave a new call free to dial.
// (A server that closes each connection after its answer never tells its limit.)
func TestDrainingConnectionsDoNotHoldBackDials(t *testing.T) {
	release := make(chan struct{})
	// No holding call is answered before all have arrived, each on a connection of its own:
	// an answer that came before its GOAWAY would tell the origin's limit, and later calls
	// would share connections about to drain.
	var arrived atomic.Int64
	allArrived := make(chan struct{})
	p := newTLSProvider(t, assumedStreams, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if string(b) == `{"hold":1}` {
			if arrived.Add(1) == maxDialsPerOrigin {
				close(allArrived)
			}
			<-allArrived
			w.Header().Set("Connection", "close") // net/http's HTTP/2 server: a GOAWAY
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			<-release
		}
		_, _ = w.Write(b)
	})
	defer close(release)
	c := p.client()
	pl, addr := c.HTTP.Transport.(*pool), hostPort(mustURL(t, p.URL))
	bodies := make(chan io.ReadCloser, maxDialsPerOrigin)
	for range maxDialsPerOrigin {
		go func() {
			req, _ := http.NewRequest(http.MethodPost, p.URL, strings.NewReader(`{"hold":1}`))
			resp, err := c.HTTP.Do(req) // the answer's headers; its body held
			if err != nil {
				t.Errorf("holding call: %v", err)
				bodies <- io.NopCloser(strings.NewReader(""))
				return
			}
			bodies <- resp.Body
		}()
	}
	for range maxDialsPerOrigin {
		defer (<-bodies).Close()
	}
	// Every connection has its GOAWAY: none has a stream free.
	draining := func() bool {
		pl.mu.Lock()
		defer pl.mu.Unlock()
		o := pl.origins[addr]
		return len(o.conns) == maxDialsPerOrigin && o.takingCalls() == 0
	}
	for deadline := time.Now().Add(10 * time.Second); !draining() && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if !draining() {
		t.Fatal("the held connections are not all draining")
	}
	pl.mu.Lock()
	pl.origins[addr].streams = 0 // as when no answer told the limit before its GOAWAY
	pl.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, got, err := post(ctx, c, p.URL, `{"late":1}`); err != nil || string(got) != `{"late":1}` {
		t.Fatalf("a call beside 32 draining connections: %q, %v", got, err)
	}
}

// Servers allowing fewer streams than net/http assumes before their SETTINGS arrive (100)
// get no more than they allow: no call waits for good behind the ones reserved beyond the
// limit (golang/go#70809), none is refused for good.
func TestBurstAtASmallStreamLimit(t *testing.T) {
	for _, streams := range []uint32{1, 2, 5, 12, 100, 150} {
		// A stream or two per connection carry fewer calls in the calls' 10 s (a
		// connection's TLS handshake is slow under -race, beside the other packages' tests).
		calls := 400
		if streams <= 2 {
			calls = 100
		}
		p := newTLSProvider(t, streams, echoSlowly)
		if failed, err := burst(p.client(), p.URL, calls); failed > 0 {
			t.Errorf("%d streams: %d of %d calls failed: %v", streams, failed, calls, err)
		}
	}
}

// A dial that fails while the origin has a connection, busy, fails no call: they wait for
// its streams.
func TestFailedDialBesideALiveConnection(t *testing.T) {
	release := make(chan struct{})
	p := newTLSProvider(t, 2, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if string(b) == `{"hold":1}` {
			<-release
		}
		_, _ = w.Write(b)
	})
	c := p.client()
	tr := c.HTTP.Transport.(*pool).t
	var dials atomic.Int64
	d := &net.Dialer{}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if dials.Add(1) > 1 {
			return nil, errors.New("simulated dial failure")
		}
		return d.DialContext(ctx, network, addr)
	}
	// A first call answered: the connection has the server's limit, 2 streams.
	if _, _, err := post(context.Background(), c, p.URL, `{}`); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	call := func() {
		wg.Go(func() {
			_, _, err := post(context.Background(), c, p.URL, `{"hold":1}`)
			errs <- err
		})
	}
	call()
	call()
	for deadline := time.Now().Add(5 * time.Second); p.http2.Load() < 3 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	call() // finds both streams taken: dials, the dial fails, it waits
	for deadline := time.Now().Add(5 * time.Second); dials.Load() < 2 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // the failed dial reported
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("a call failed: %v", err)
		}
	}
	if dials.Load() != 2 {
		t.Errorf("%d dials, want 2: the third call tries another connection", dials.Load())
	}
}

// BenchmarkBurst prints the connections a burst of 1,000 calls opens to an HTTP/2 provider
// allowing 50 streams per connection, through the pool and through the Transport alone
// (what the pool replaced), and how long the burst takes (each call 200 ms at the provider).
func BenchmarkBurst(b *testing.B) {
	for _, via := range []string{"pool", "transport"} {
		b.Run(via, func(b *testing.B) {
			var conns, failed int64
			for range b.N {
				p := newTLSProvider(b, 50, echoSlowly)
				c := p.client()
				if via == "transport" {
					c.HTTP.Transport = c.HTTP.Transport.(*pool).t
				}
				n, _ := burst(c, p.URL, 1000)
				failed += n
				conns += p.conns.Load()
				c.HTTP.CloseIdleConnections()
				p.Close()
			}
			b.ReportMetric(float64(conns)/float64(b.N), "conns/burst")
			b.ReportMetric(float64(failed)/float64(b.N), "failed/burst")
		})
	}
}

// Calls one after another share one connection.
func TestSequentialCallsShareAConnection(t *testing.T) {
	p := newTLSProvider(t, 100, func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(w, r.Body) })
	c := p.client()
	for i := range 50 {
		if _, _, err := post(context.Background(), c, p.URL, `{}`); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if n := p.conns.Load(); n != 1 {
		t.Errorf("%d connections for 50 calls in turn, want 1", n)
	}
}

// A provider without HTTP/2 gets every call, whole, over HTTP/1.1 through the Transport,
// many at once.
func TestHTTP1ProviderGoesThroughTheTransport(t *testing.T) {
	p := newTLSProvider(t, 0, echoSlowly)
	c := p.client()
	if failed, err := burst(c, p.URL, 100); failed > 0 {
		t.Fatalf("%d of 100 calls failed: %v", failed, err)
	}
	if p.http1.Load() != 100 || p.http2.Load() != 0 {
		t.Errorf("calls over HTTP/1.1: %d, over HTTP/2: %d", p.http1.Load(), p.http2.Load())
	}
	if !c.HTTP.Transport.(*pool).origins[hostPort(mustURL(t, p.URL))].serial {
		t.Error("the origin is not marked for the Transport")
	}
	// Concurrent calls over HTTP/1.1 need a connection each: not one at a time.
	if n := p.conns.Load(); n < 50 {
		t.Errorf("%d connections for 100 concurrent calls over HTTP/1.1", n)
	}
}

// Plain HTTP is the Transport's, untouched.
func TestPlainHTTPGoesThroughTheTransport(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(w, r.Body) }))
	defer srv.Close()
	c := New(callsession.ProviderCallConnect, time.Second)
	if _, got, err := post(context.Background(), c, srv.URL, `{"a":1}`); err != nil || string(got) != `{"a":1}` {
		t.Fatalf("answer %q, %v", got, err)
	}
	if len(c.HTTP.Transport.(*pool).origins) != 0 {
		t.Error("a plain HTTP call went through the pool")
	}
}

// A provider that cannot be reached fails every call waiting on the dial with its error, at
// once, not at the calls' deadlines.
func TestDialFailureFailsTheWaitingCalls(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	c := New(callsession.ProviderCallConnect, time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	var unavailable atomic.Int64
	for range 20 {
		wg.Go(func() {
			_, _, err := post(ctx, c, "https://"+addr+"/call/start", `{}`)
			var perr *callsession.ProviderError
			if errors.As(err, &perr) && perr.Kind == callsession.ProviderUnavailable && strings.Contains(err.Error(), "refused") {
				unavailable.Add(1)
			} else {
				t.Errorf("want unavailable, connection refused: %v", err)
			}
		})
	}
	wg.Wait()
	if unavailable.Load() != 20 || time.Since(start) > 10*time.Second {
		t.Errorf("%d of 20 calls failed as unavailable, in %v", unavailable.Load(), time.Since(start))
	}
}

// Connections the provider closes are dropped; the next call opens another.
func TestClosedConnectionsAreReplaced(t *testing.T) {
	p := newTLSProvider(t, 100, func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(w, r.Body) })
	c := p.client()
	for i := range 3 {
		if _, _, err := post(context.Background(), c, p.URL, `{}`); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		p.CloseClientConnections()
		deadline := time.Now().Add(5 * time.Second)
		for c.HTTP.Transport.(*pool).liveConns(hostPort(mustURL(t, p.URL))) > 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if n := p.conns.Load(); n != 3 {
		t.Errorf("%d connections for 3 calls each after the last one closed, want 3", n)
	}
}

// A call waiting for a stream gives up at its deadline, and the stream it would have had
// goes to the next call.
func TestWaitingCallStopsAtItsDeadline(t *testing.T) {
	release := make(chan struct{})
	p := newTLSProvider(t, 2, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if string(b) != `{}` {
			<-release
		}
		_, _ = w.Write(b)
	})
	c := p.client()
	pl := c.HTTP.Transport.(*pool)
	// A first call answered: the connection has the server's limit, 2 streams.
	if _, _, err := post(context.Background(), c, p.URL, `{}`); err != nil {
		t.Fatal(err)
	}
	// Two calls hold the connection's two streams; no other connection may be opened.
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if _, _, err := post(context.Background(), c, p.URL, `{"hold":1}`); err != nil {
				t.Errorf("holding call: %v", err)
			}
		})
	}
	addr := hostPort(mustURL(t, p.URL))
	for deadline := time.Now().Add(5 * time.Second); p.http2.Load() < 3 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	pl.mu.Lock()
	pl.origins[addr].dialing = maxDialsPerOrigin // as if every dial allowed were under way
	pl.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, _, err := post(ctx, c, p.URL, `{"hold":1}`)
	var perr *callsession.ProviderError
	if !errors.As(err, &perr) || perr.Kind != callsession.ProviderTimeout {
		t.Errorf("want a timeout: %v", err)
	}
	o := pl.origins[addr]
	o.waitMu.Lock()
	left := o.waiting.Len()
	o.waitMu.Unlock()
	if left != 0 {
		t.Errorf("%d calls left in the queue", left)
	}
	// A call waiting now gets a stream when one comes free.
	done := make(chan error, 1)
	go func() {
		_, _, err := post(context.Background(), c, p.URL, `{"late":1}`)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	if err := <-done; err != nil {
		t.Errorf("the waiting call: %v", err)
	}
	if n := p.conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

// liveConns is how many of the origin's connections are usable.
func (p *pool) liveConns(addr string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	if o := p.origins[addr]; o != nil {
		for _, c := range o.conns {
			if c.cc.Err() == nil {
				n++
			}
		}
	}
	return n
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestHostPort(t *testing.T) {
	for in, want := range map[string]string{
		"https://api.example.com/v1":      "api.example.com:443",
		"https://api.example.com:8443/v1": "api.example.com:8443",
		"https://[::1]/x":                 "[::1]:443",
		"https://[::1]:9443/x":            "[::1]:9443",
	} {
		if got := hostPort(mustURL(t, in)); got != want {
			t.Errorf("hostPort(%s) = %s, want %s", in, got, want)
		}
	}
}

// What is sent again: a refused stream (in the shape of net/http's own stream error, which
// errors.As converts), a connection unusable or shutting down before the call went out;
// nothing else, and with the body from its start.
func TestUnprocessedCallsAreSentAgain(t *testing.T) {
	for err, want := range map[error]int{
		fmt.Errorf("post: %w", streamError{StreamID: 3, Code: 0x7}):                                       refused,
		streamError{StreamID: 3, Code: 0x2}:                                                               processed,
		errors.New("http2: client conn not usable"):                                                       notSent,
		errors.New("http2: client conn could not be established"):                                         notSent,
		fmt.Errorf("post: %w", errors.New("http2: Transport received Server's graceful shutdown GOAWAY")): notSent,
		context.DeadlineExceeded:                                                                          processed,
		errors.New("read: connection reset by peer"):                                                      processed,
	} {
		if got := unprocessed(err); got != want {
			t.Errorf("unprocessed(%v) = %v, want %v", err, got, want)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, "https://p.example/x", strings.NewReader(`{"a":1}`))
	_, _ = io.ReadAll(req.Body) // sent once
	again, err := rewound(req, errors.New("refused"))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(again.Body); string(b) != `{"a":1}` {
		t.Errorf("sent again with body %q", b)
	}
	req.GetBody = nil
	if _, err := rewound(req, errors.New("refused")); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Error("a body that cannot be read again was sent again")
	}
}
