package providerhttp

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// pool carries calls to HTTPS providers over HTTP/2 connections it opens only as the calls
// waiting need them; calls to other origins, and to an HTTPS origin that does not multiplex,
// go through the Transport's own pool (HTTP/1.1).
//
// Why not the Transport's own HTTP/2 pool: when every connection's streams are in use, each
// call that finds none free dials a connection of its own, and every dial runs to its end
// even once another connection has come up. A burst of 3,000 calls to a server allowing 250
// streams per connection opened 5,972 TLS connections (TestBurstSharesConnections with the
// plain Transport), each a handshake for the bridge and for the provider, which sees a
// flood. Here a burst opens about burst ÷ streams connections, dialled in parallel (not one
// after another as golang.org/x/net/http2's pool does: at an internet round trip that
// queues a burst behind each handshake in turn). Built on http.Transport.NewClientConn, the
// standard library's way to a pool of one's own.
type pool struct {
	t       *http.Transport
	mu      sync.Mutex // guards origins and each origin's fields but its wake-up ones
	origins map[string]*origin
}

// origin is the pool's state for one host:port.
type origin struct {
	conns []*http.ClientConn
	// dialing: connections being opened. A dial starts when the connections being opened
	// would not hold the calls waiting.
	dialing int
	// perConn is how many streams a connection of this origin took when it was opened
	// (HTTP/2 recommends servers allow at least 100).
	perConn int
	// failures counts failed dials, dialErr is the last: a call waiting when a dial failed
	// gets its error, instead of dialling again in a loop until its deadline.
	failures int
	dialErr  error
	// serial: the origin answered with a connection of one stream at a time (HTTP/1.1); its
	// calls go through the Transport, whose pool suits that.
	serial bool

	// The waiting calls have a lock of their own: a connection's state hook wakes them, and
	// net/http may run that hook synchronously inside Reserve or Close, which are called
	// with mu held. Lock order: mu, then waitMu.
	waitMu sync.Mutex
	// waiting: the calls waiting for a stream, oldest first, each woken by a send on its
	// channel (buffered), one per stream that came free: waking them all at every answer
	// would have thousands look, and fail, a few thousand times a second.
	waiting list.List // of waiter
}

type waiter chan struct{}

const (
	defaultStreamsPerConn = 100
	// maxDialsPerOrigin bounds the dials in flight to one origin, whatever the burst.
	maxDialsPerOrigin = 32
	// dialTimeout bounds opening one connection (TCP and TLS), which serves many calls, so
	// it runs on its own deadline, not on the call's that started it.
	dialTimeout = 15 * time.Second
)

func newPool(t *http.Transport) *pool { return &pool{t: t, origins: map[string]*origin{}} }

// RoundTrip sends req on a reserved stream of an HTTP/2 connection to its origin, or
// through the Transport when the origin is not HTTPS or does not multiplex.
func (p *pool) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "https" {
		return p.t.RoundTrip(req)
	}
	addr := hostPort(req.URL)
	for attempt := 1; ; attempt++ {
		cc, err := p.reserve(req.Context(), addr)
		if err != nil {
			if req.Body != nil {
				req.Body.Close() // a RoundTripper closes the body, sent or not
			}
			return nil, err
		}
		if cc == nil { // an origin without HTTP/2
			return p.t.RoundTrip(req)
		}
		resp, err := cc.RoundTrip(req)
		if err == nil || attempt == maxAttempts || !unprocessed(err) {
			return resp, err
		}
		// The provider did not process the call: send it again, as the Transport does.
		if req, err = rewound(req); err != nil {
			return nil, err
		}
	}
}

// maxAttempts bounds the sends of one call the provider refused unprocessed.
const maxAttempts = 5

// streamError has the fields of net/http's HTTP/2 stream error (and golang.org/x/net's),
// which errors.As fills in for any struct of that shape.
type streamError struct {
	StreamID uint32
	Code     uint32
	Cause    error
}

func (e streamError) Error() string {
	return fmt.Sprintf("stream %d: error code %d", e.StreamID, e.Code)
}

// unprocessed reports an error net/http's own HTTP/2 pool sends again: a stream the server
// refused (RFC 9113 §8.7: it did not process it; as a connection's first calls may, sent
// before the server's limit on streams arrives), or a connection that shut down before the
// call went out.
func unprocessed(err error) bool {
	const refusedStream = 0x7
	if se := (streamError{}); errors.As(err, &se) && se.Code == refusedStream {
		return true
	}
	msg := err.Error()
	return strings.HasSuffix(msg, "http2: client conn not usable") ||
		strings.HasSuffix(msg, "http2: Transport received Server's graceful shutdown GOAWAY")
}

// rewound is req ready to be sent again: its body from the start.
func rewound(req *http.Request) (*http.Request, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return req, nil
	}
	if req.GetBody == nil {
		return nil, errors.New("the provider refused the call and its body cannot be sent again")
	}
	body, err := req.GetBody()
	if err != nil {
		return nil, err
	}
	again := *req
	again.Body = body
	return &again, nil
}

// CloseIdleConnections closes the pool's connections without calls in flight and the
// Transport's idle ones.
func (p *pool) CloseIdleConnections() {
	p.mu.Lock()
	var idle []*http.ClientConn
	for _, o := range p.origins {
		for _, cc := range o.conns {
			if cc.InFlight() == 0 {
				idle = append(idle, cc)
			}
		}
	}
	p.mu.Unlock()
	for _, cc := range idle {
		cc.Close()
	}
	p.t.CloseIdleConnections()
}

// reserve returns a connection to addr with a stream reserved for one call, or nil when
// the origin's calls go through the Transport. It waits, at most until ctx ends, for a
// stream to come free or a connection to come up, opening connections as the calls
// waiting need them.
func (p *pool) reserve(ctx context.Context, addr string) (*http.ClientConn, error) {
	p.mu.Lock()
	o := p.origins[addr]
	if o == nil {
		o = &origin{perConn: defaultStreamsPerConn}
		p.origins[addr] = o
	}
	failures := o.failures
	p.mu.Unlock()
	if cc, err, done := p.look(o, addr, failures, false); done {
		return cc, err
	}
	for {
		// In the queue before looking again: a stream that comes free after the look
		// wakes this call, so it is not missed.
		w := make(waiter, 1)
		o.waitMu.Lock()
		e := o.waiting.PushBack(w)
		o.waitMu.Unlock()
		if cc, err, done := p.look(o, addr, failures, true); done {
			o.leave(e)
			return cc, err
		}
		select {
		case <-w: // taken off the queue by the waker
		case <-ctx.Done():
			o.leave(e)
			return nil, ctx.Err()
		}
	}
}

// look reserves a stream on one of the origin's connections if one is free; otherwise, for
// a call in the queue (queued), it starts a dial if the ones under way cannot hold the
// calls waiting. done: the call has its connection, or nil for the Transport, or the error
// of a dial that failed since the call began (failures is the count then).
func (p *pool) look(o *origin, addr string, failures int, queued bool) (cc *http.ClientConn, err error, done bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if o.serial {
		return nil, nil, true
	}
	live := o.conns[:0]
	for _, c := range o.conns {
		if c.Err() == nil {
			live = append(live, c)
		}
	}
	clear(o.conns[len(live):])
	o.conns = live
	for _, c := range o.conns {
		if c.Reserve() == nil {
			return c, nil, true
		}
	}
	if o.failures != failures {
		return nil, o.dialErr, true
	}
	if queued {
		o.waitMu.Lock()
		waiting := o.waiting.Len()
		o.waitMu.Unlock()
		if o.dialing*o.perConn < waiting && o.dialing < maxDialsPerOrigin {
			o.dialing++
			go p.dial(o, addr)
		}
	}
	return nil, nil, false
}

// dial opens a connection to addr and adds it to the origin's, or records why not.
func (p *pool) dial(o *origin, addr string) {
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	cc, err := p.t.NewClientConn(ctx, "https", addr)
	if err == nil && cc.Available() > 1 {
		// A stream that comes free wakes a waiting call; a connection that closes, all.
		cc.SetStateHook(func(cc *http.ClientConn) {
			if cc.Err() != nil {
				o.wake(-1)
			} else {
				o.wake(cc.Available())
			}
		})
	}
	p.mu.Lock()
	o.dialing--
	wake := -1
	switch {
	case err != nil:
		o.failures++
		o.dialErr = fmt.Errorf("connecting to %s: %w", addr, err)
	case cc.Available() <= 1 && cc.InFlight() == 0:
		// One call at a time (HTTP/1.1, or HTTP/2 allowing a single stream): the
		// Transport's pool, which opens a connection per concurrent call, carries them.
		o.serial = true
	default:
		o.perConn = max(cc.Available(), 2)
		o.conns = append(o.conns, cc)
		wake, cc = cc.Available(), nil
	}
	p.mu.Unlock()
	if cc != nil {
		cc.Close()
	}
	o.wake(wake)
}

// wake takes up to n waiting calls off the queue, oldest first, and wakes them to look
// again; n < 0: all of them.
func (o *origin) wake(n int) {
	o.waitMu.Lock()
	defer o.waitMu.Unlock()
	o.wakeLocked(n)
}

func (o *origin) wakeLocked(n int) {
	for ; n != 0 && o.waiting.Len() > 0; n-- {
		w := o.waiting.Remove(o.waiting.Front()).(waiter)
		w <- struct{}{}
	}
}

// leave takes a call that no longer waits off the queue. Woken meanwhile (off the queue,
// its channel holding the wake), it hands the wake to the next call, whose stream it was.
func (o *origin) leave(e *list.Element) {
	o.waitMu.Lock()
	defer o.waitMu.Unlock()
	w := e.Value.(waiter)
	o.waiting.Remove(e) // nothing when the waker took it off already
	select {
	case <-w:
		o.wakeLocked(1)
	default:
	}
}

// hostPort is the URL's host and port, the HTTPS port when it names none.
func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "443"
	}
	return net.JoinHostPort(u.Hostname(), port)
}
