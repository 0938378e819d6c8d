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
// even once another connection has come up. A burst of 1,000 calls to a server allowing 50
// streams per connection opened 2,360 TLS connections (BenchmarkBurst), each a handshake
// for the bridge and for the provider, which sees a flood. Here the same burst opens 20 to
// 32 (32 on a cold start, when the origin's limit is not known yet: see conn and
// maxDialsPerOrigin), dialled in parallel,
// not one after another as golang.org/x/net/http2's pool does (at an internet round trip
// that queues a burst behind each handshake in turn). Built on
// http.Transport.NewClientConn, the standard library's way to a pool of one's own.
type pool struct {
	t       *http.Transport
	mu      sync.Mutex // guards origins and each origin's fields but its queue
	origins map[string]*origin
}

// origin is the pool's state for one host:port.
type origin struct {
	conns []*conn
	// dialing: connections being opened. A dial starts when the connections being opened
	// would not hold the calls waiting.
	dialing int
	// streams is how many streams the origin's connections allow, once one has told
	// (its SETTINGS); 0 until then.
	streams int
	// dialErr is the last dial's failure; until retryAt no dial starts, and a call that
	// finds no connection to wait for gets the error at once, instead of dialling again and
	// again until its deadline.
	dialErr error
	retryAt time.Time
	// serial: the origin answered with a connection of one stream at a time (HTTP/1.1); its
	// calls go through the Transport, whose pool suits that.
	serial bool

	// The queue has a lock of its own: a connection's state hook wakes calls, and net/http
	// may run that hook synchronously inside Reserve, which is called with mu held. Lock
	// order: mu, then waitMu.
	waitMu sync.Mutex
	// waiting: the calls waiting for a stream, oldest first, each woken by a send on its
	// channel (buffered), about one per stream that came free: waking them all at every
	// answer would have thousands look, and fail, thousands of times a second.
	waiting list.List // of waiter
}

type waiter chan struct{}

// conn is one HTTP/2 connection of an origin.
type conn struct {
	cc *http.ClientConn
	// settled: the connection has the server's limit on streams. Until then net/http
	// assumes 100, and a server allowing fewer would refuse the calls beyond its limit or,
	// its SETTINGS arriving while they wait to be sent, have them wait behind each other
	// for good (golang/go#70809); so an unsettled connection takes no more calls than the
	// origin is known to allow, or probeStreams.
	settled bool
}

const (
	// assumedStreams is the limit net/http assumes before a server's SETTINGS arrive.
	assumedStreams = 100
	// probeStreams is how many calls a connection takes before its origin's limit is known:
	// one, for a server may allow as few (golang/go#70809 is reachable with any more).
	// The price is at a cold start: a first burst to a server allowing exactly 100 streams
	// (nothing tells them from the assumed 100 but an answer) has one call per connection,
	// at most maxDialsPerOrigin of them, until the first answers come back; a server
	// allowing more or fewer says so in its SETTINGS, one round trip after the handshake.
	probeStreams = 1
	// maxDialsPerOrigin bounds the dials in flight to one origin, whatever the burst.
	maxDialsPerOrigin = 32
	// redialAfter is how long after a failed dial the next may start.
	redialAfter = time.Second
	// relookAfter: a waiting call looks again at least this often.
	relookAfter = time.Second
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
	for attempt, refusals := 1, 0; ; {
		o, c, err := p.reserve(req.Context(), addr)
		if err != nil {
			if req.Body != nil {
				req.Body.Close() // a RoundTripper closes the body, sent or not
			}
			return nil, err
		}
		if c == nil { // an origin without HTTP/2
			return p.t.RoundTrip(req)
		}
		resp, err := c.cc.RoundTrip(req)
		if err == nil {
			p.answered(o, c)
			return resp, nil
		}
		// The provider did not process the call: send it again. A refused stream is a
		// connection that took more calls than its server allows before it knew the limit:
		// those are sent again as long as the call's deadline allows (at most maxRefusals);
		// other errors of a call that did not go out, maxAttempts times in all.
		switch kind := unprocessed(err); {
		case kind == refused && refusals < maxRefusals:
			refusals++
		case kind == notSent && attempt < maxAttempts:
			attempt++
		default:
			return resp, err
		}
		if req, err = rewound(req, err); err != nil {
			return nil, err
		}
	}
}

// CloseIdleConnections closes the pool's connections without calls in flight and the
// Transport's idle ones.
func (p *pool) CloseIdleConnections() {
	var idle []*http.ClientConn
	p.mu.Lock()
	for _, o := range p.origins {
		// Taken out under mu, where calls reserve, so none is reserved on them meanwhile.
		kept := o.conns[:0]
		for _, c := range o.conns {
			if c.cc.InFlight() == 0 {
				idle = append(idle, c.cc)
			} else {
				kept = append(kept, c)
			}
		}
		clear(o.conns[len(kept):])
		o.conns = kept
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
func (p *pool) reserve(ctx context.Context, addr string) (*origin, *conn, error) {
	p.mu.Lock()
	o := p.origins[addr]
	if o == nil {
		o = &origin{}
		p.origins[addr] = o
	}
	p.mu.Unlock()
	// A call takes a free stream at once only when no other is waiting: the waiting ones
	// are first.
	if c, err, done := p.look(o, addr, nil); done {
		return o, c, err
	}
	w := make(waiter, 1)
	front := false
	for {
		// In the queue before looking again: a stream that comes free after the look
		// wakes this call, so it is not missed. A call woken that found nothing goes back
		// to the front.
		o.waitMu.Lock()
		var e *list.Element
		if front {
			e = o.waiting.PushFront(w)
		} else {
			e = o.waiting.PushBack(w)
		}
		o.waitMu.Unlock()
		if c, err, done := p.look(o, addr, e); done {
			o.leave(e)
			return o, c, err
		}
		// Looked at again each second anyway: a dial held back after a failure may start
		// then, and a change of a connection's state the hook did not report is seen.
		relook := time.NewTimer(relookAfter)
		select {
		case <-w: // taken off the queue by the waker
			front = true
		case <-relook.C:
			o.leave(e)
			front = true
		case <-ctx.Done():
			relook.Stop()
			o.leave(e)
			return o, nil, ctx.Err()
		}
		relook.Stop()
	}
}

// look reserves a stream on one of the origin's connections if one is free; queued is the
// call's place in the queue, nil for a call not in it yet, which looks only when the queue
// is empty. A queued call that finds nothing starts a dial if the ones under way cannot
// hold the calls waiting. done: the call has its connection, or nil for the Transport, or
// the error of the last dial, which failed less than redialAfter ago, when no connection is
// left to wait for.
func (p *pool) look(o *origin, addr string, queued *list.Element) (c *conn, err error, done bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if o.serial {
		return nil, nil, true
	}
	o.waitMu.Lock()
	waiting := o.waiting.Len()
	o.waitMu.Unlock()
	if queued == nil && waiting > 0 {
		return nil, nil, false
	}
	live := o.conns[:0]
	for _, c := range o.conns {
		if c.cc.Err() == nil {
			live = append(live, c)
		}
	}
	clear(o.conns[len(live):])
	o.conns = live
	for _, c := range o.conns {
		if !c.settled {
			o.settle(c, false)
		}
		if !c.settled && c.cc.InFlight() >= o.unsettledLimit() {
			continue
		}
		if c.cc.Reserve() == nil {
			return c, nil, true
		}
	}
	now := time.Now()
	if len(o.conns) == 0 && o.dialing == 0 && o.dialErr != nil && now.Before(o.retryAt) {
		return nil, o.dialErr, true
	}
	if queued != nil && !now.Before(o.retryAt) {
		perConn := o.streams
		if perConn == 0 {
			perConn = probeStreams
		}
		// Until the origin's limit is known, its connections that can take a call, open or
		// being dialled, are at most maxDialsPerOrigin: each takes probeStreams calls, and
		// a burst would otherwise have a dial start as each ends, one connection per call,
		// while the SETTINGS that would have told them hold 50 or 1,000 are on their way.
		// One draining after a GOAWAY takes no call, and does not count: a server that
		// closes each connection after an answer never tells its limit.
		probing := o.streams == 0 && o.dialing+o.takingCalls() >= maxDialsPerOrigin
		if o.dialing*perConn < waiting && o.dialing < maxDialsPerOrigin && !probing {
			o.dialing++
			go p.dial(o, addr)
		}
	}
	return nil, nil, false
}

// takingCalls is how many of the origin's connections have a stream free: not those
// draining after a GOAWAY. While the limit is not known this is every connection that is
// not draining, as each takes probeStreams calls of the 100 net/http assumes. mu is held.
func (o *origin) takingCalls() int {
	n := 0
	for _, c := range o.conns {
		if c.cc.Available() > 0 {
			n++
		}
	}
	return n
}

// unsettledLimit is how many calls a connection without the server's limit yet may take:
// as many as the origin's connections allow, once one has told, or probeStreams. mu is held.
func (o *origin) unsettledLimit() int {
	if o.streams > 0 {
		return min(o.streams, assumedStreams)
	}
	return probeStreams
}

// settle records that c has the server's limit on streams, when it does: its limit is no
// longer the one net/http assumes, or (answered) a call on it was answered, which comes
// after the server's SETTINGS. A connection with no stream free says nothing of its limit
// (what it counts is what is in flight, and a draining one has none free): it settles
// later. mu is held.
func (o *origin) settle(c *conn, answered bool) {
	free := c.cc.Available()
	if free == 0 {
		return
	}
	limit := free + c.cc.InFlight()
	if !answered && limit == assumedStreams {
		return
	}
	c.settled, o.streams = true, limit
}

// answered settles the connection a call was answered on, and tells the waiting calls
// what it may hold now.
func (p *pool) answered(o *origin, c *conn) {
	p.mu.Lock()
	wasSettled := c.settled
	if !wasSettled {
		o.settle(c, true)
	}
	free := c.cc.Available()
	p.mu.Unlock()
	if !wasSettled {
		o.wake(free)
	}
}

// dial opens a connection to addr and adds it to the origin's, or records why not.
func (p *pool) dial(o *origin, addr string) {
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	cc, err := p.t.NewClientConn(ctx, "https", addr)
	if err == nil && cc.Err() != nil {
		err = cc.Err() // closed before it could be used
	}
	multiplexed := err == nil && (cc.Available() > 1 || cc.InFlight() > 0)
	if multiplexed {
		// A stream that comes free, a limit that rises (the server's SETTINGS) or a
		// connection that closes wakes waiting calls to look again: about as many as
		// there are free streams, at least one (a connection draining after a GOAWAY has
		// none, and a call must see it go to dial another), all when it closed.
		cc.SetStateHook(func(cc *http.ClientConn) {
			if cc.Err() != nil {
				o.wake(-1)
			} else {
				o.wake(max(cc.Available(), 1))
			}
		})
	}
	p.mu.Lock()
	o.dialing--
	wake := -1
	switch {
	case err != nil:
		o.dialErr = fmt.Errorf("connecting to %s: %w", addr, err)
		o.retryAt = time.Now().Add(redialAfter)
		if len(o.conns) > 0 {
			wake = 0 // the calls waiting keep waiting for the streams of those
		}
	case !multiplexed:
		// One call at a time, HTTP/1.1: the Transport's pool, which opens a connection per
		// concurrent call, carries them. (An HTTP/2 server allowing one stream looks
		// multiplexed here, its SETTINGS not in yet, and the pool carries it at its limit.)
		o.serial = true
	default:
		o.dialErr, o.retryAt = nil, time.Time{}
		c := &conn{cc: cc}
		o.settle(c, false)
		o.conns = append(o.conns, c)
		wake, cc = o.unsettledLimit(), nil
		if c.settled {
			wake = c.cc.Available()
		}
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
// its channel holding the wake), it hands the wake to the next call.
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

const (
	// maxAttempts bounds the sends of one call lost with its connection before it went out.
	maxAttempts = 5
	// maxRefusals bounds the sends of one call whose stream the server refused.
	maxRefusals = 50
)

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

// How a call the provider did not process failed.
const (
	processed = iota // or not known not to be
	refused          // its stream was refused (RFC 9113 §8.7: the server did not process it)
	notSent          // its connection could not be used or was shutting down
)

// unprocessed says whether err is of a call the provider did not process, which can be sent
// again: a refused stream, or a connection unusable, not established or shutting down
// before the call went out (net/http's HTTP/2 pool sends these again, but for the
// connection not established, which it never hands out).
func unprocessed(err error) int {
	const refusedStream = 0x7
	if se := (streamError{}); errors.As(err, &se) && se.Code == refusedStream {
		return refused
	}
	msg := err.Error()
	if strings.HasSuffix(msg, "http2: client conn not usable") ||
		strings.HasSuffix(msg, "http2: client conn could not be established") ||
		strings.HasSuffix(msg, "http2: Transport received Server's graceful shutdown GOAWAY") {
		return notSent
	}
	return processed
}

// rewound is req ready to be sent again, its body from the start; cause is why it must be.
func rewound(req *http.Request, cause error) (*http.Request, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return req, nil
	}
	if req.GetBody == nil {
		return nil, fmt.Errorf("%w (the body cannot be sent again)", cause)
	}
	body, err := req.GetBody()
	if err != nil {
		return nil, fmt.Errorf("%w (reading the body again: %v)", cause, err)
	}
	again := *req
	again.Body = body
	return &again, nil
}

// hostPort is the URL's host and port, the HTTPS port when it names none.
func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "443"
	}
	return net.JoinHostPort(u.Hostname(), port)
}
