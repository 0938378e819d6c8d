// Package live carries session changes to agent desktops on every replica. Each change, once
// stored, is announced on one Pub/Sub channel with the session as viewers see it (one notice
// per batch of changes written); each replica holds a single subscription to it and hands
// every change to its local viewers of that session. An event is a state of the session,
// labelled `<created ms>-<version>` (the store's compare-and-set version, EventID), so a
// viewer sends only states newer than the last it sent. What a viewer cannot have heard
// (it connects or reconnects with Last-Event-ID, its subscription was down, it fell behind)
// it reads from the stored session: the newest state, whose event history holds every
// change. Nothing is kept per change.
//
// (Each change used to be appended to a Redis Stream of its session: a stream's first node
// is preallocated, 4.7 KB per session, five times the session itself, and creating one cost
// Redis about 15 µs per start; docs/performance.md.)
package live

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	// encoding/json's drop-in, as in the store: every change is encoded here once.
	json "github.com/segmentio/encoding/json"

	"github.com/ivr-bridge/ivr-bridge/internal/callsession"
)

// Event is one state of a session: its ID (EventID) and the session JSON.
type Event struct {
	ID   string
	Data []byte
}

// EventID labels a stored state of s: its creation (a reference used again after its session
// expired starts over at version 1) and its version.
func EventID(s *callsession.Session) string {
	return strconv.FormatInt(s.CreatedAt.UnixMilli(), 10) + "-" + strconv.FormatInt(s.Version, 10)
}

// Newer reports whether the state labelled id comes after the event after: a session
// created later (a reference used again after its session expired), or the same session at a
// higher version. Nothing is newer than an ID that is not one, and after "" is before all.
func Newer(id, after string) bool {
	c, v, ok := parseID(id)
	if !ok {
		return false
	}
	if after == "" {
		return true
	}
	ac, av, ok := parseID(after)
	return ok && (c > ac || c == ac && v > av)
}

// ValidID reports whether id is an event ID (as a Last-Event-ID must be).
func ValidID(id string) bool {
	_, _, ok := parseID(id)
	return ok
}

func parseID(id string) (created, version int64, ok bool) {
	if !validID(id) {
		return 0, 0, false
	}
	cs, vs, _ := strings.Cut(id, "-")
	created, err1 := strconv.ParseInt(cs, 10, 64)
	version, err2 := strconv.ParseInt(vs, 10, 64)
	return created, version, err1 == nil && err2 == nil
}

// Reader reads a session as stored, with its Version (callsession.ErrNotFound when there is
// none): the store's Get, which never writes.
type Reader func(ctx context.Context, ref string) (*callsession.Session, error)

// Hub announces changes and hands them to local viewers.
type Hub struct {
	c      redis.UniversalClient
	prefix string
	read   Reader
	log    *slog.Logger
	view   func(*callsession.Session) any

	mu       sync.Mutex
	watchers map[string]map[*watcher]struct{}

	// changes queue what Publish was given for the writer goroutine, which announces them
	// in batches: the call path never waits on the live view.
	changes   chan change
	gatherFor time.Duration // defaultGatherFor; tests set their own
}

type change struct {
	ref string
	ev  Event
}

// watcher is one viewer: the changes announced for its session, and a signal to read the
// stored session instead when it may have missed some.
type watcher struct {
	events chan Event
	resync chan struct{}
}

// Bounds: changes waiting to be announced (beyond it a change is dropped, and logged: a
// screen a moment stale is better than a call held up; its viewers still get the state at
// the next change or their stream's next heartbeat), changes waiting for one viewer (beyond
// it the viewer reads the stored state), and changes in one notice.
const (
	queueLength   = 8192
	viewerBacklog = 16
	maxBatch      = 256
	maxBatchBytes = 256 << 10
)

// defaultGatherFor is how long the writer waits, after a change, for others to share its notice.
// Each notice costs Redis a PUBLISH and a message to every replica, and each replica a read:
// at a few hundred starts a second, with nothing else queued at that moment, every change
// went out alone (two notices per start). A viewer sees a change this much later.
const defaultGatherFor = 5 * time.Millisecond

// A notice is records separated by recordSep, each `<ref> <id> <session JSON>` separated by
// fieldSep: a reference holds neither (callsession.ValidReferenceID), an ID is digits and a
// dash, and compact JSON holds no raw control character.
const (
	recordSep = '\n'
	fieldSep  = '\t'
)

// NewHub returns a hub on c; read gives the stored session, and view is the JSON form of a
// session that viewers receive.
func NewHub(c redis.UniversalClient, prefix string, read Reader, view func(*callsession.Session) any, log *slog.Logger) *Hub {
	if log == nil {
		log = slog.Default()
	}
	return &Hub{c: c, prefix: prefix, read: read, view: view, log: log, watchers: map[string]map[*watcher]struct{}{},
		changes: make(chan change, queueLength), gatherFor: defaultGatherFor}
}

func (h *Hub) channel() string { return h.prefix + "live" }

// Publish implements callsession.Publisher: the change (already stored, s carrying its
// version) is queued, and Run's writer announces it. Failures are logged, never returned: a
// late screen must not fail a call.
func (h *Hub) Publish(ctx context.Context, s *callsession.Session) {
	data, err := json.Marshal(h.view(s))
	if err != nil {
		h.log.ErrorContext(ctx, "live: encoding a session", "err", err)
		return
	}
	select {
	case h.changes <- change{ref: s.ReferenceID, ev: Event{ID: EventID(s), Data: data}}:
	default:
		h.log.WarnContext(ctx, "live: too many changes queued, one dropped", "reference_id", s.ReferenceID)
	}
}

// write announces queued changes, one notice per batch, until ctx ends; then what is still
// queued, within 2 s.
func (h *Hub) write(ctx context.Context) {
	var notice strings.Builder
	// A notice is sent on a context ctx's end does not cancel: a change stored is announced
	// even as the replica shuts down (the client's timeouts bound each PUBLISH).
	pctx := context.WithoutCancel(ctx)
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(pctx, 2*time.Second)
			defer cancel()
			for h.announce(fctx, &notice, 0) {
			}
			return
		case c := <-h.changes:
			h.append(&notice, c)
			h.announce(pctx, &notice, h.gather(ctx, &notice, 1))
		}
	}
}

// gather adds the changes that come within h.gatherFor to notice, which holds n, up to a
// batch, and returns how many it then holds; ctx's end cuts the wait short.
func (h *Hub) gather(ctx context.Context, notice *strings.Builder, n int) int {
	timer := time.NewTimer(h.gatherFor)
	defer timer.Stop()
	for n < maxBatch && notice.Len() < maxBatchBytes {
		select {
		case c := <-h.changes:
			h.append(notice, c)
			n++
		case <-timer.C:
			return n
		case <-ctx.Done():
			return n
		}
	}
	return n
}

// announce adds queued changes to notice, which holds n, up to a batch, and publishes it;
// it reports whether it published anything.
func (h *Hub) announce(ctx context.Context, notice *strings.Builder, n int) bool {
fill:
	for n < maxBatch && notice.Len() < maxBatchBytes {
		select {
		case c := <-h.changes:
			h.append(notice, c)
			n++
		default:
			break fill
		}
	}
	if n == 0 {
		return false
	}
	// One notice for the whole batch: on a cluster every PUBLISH is relayed to every node,
	// and each notice is a message every replica reads.
	if err := h.c.Publish(ctx, h.channel(), notice.String()).Err(); err != nil {
		h.log.Warn("live: announcing changes", "changes", n, "err", err)
	}
	notice.Reset()
	return true
}

func (h *Hub) append(notice *strings.Builder, c change) {
	if notice.Len() > 0 {
		notice.WriteByte(recordSep)
	}
	notice.WriteString(c.ref)
	notice.WriteByte(fieldSep)
	notice.WriteString(c.ev.ID)
	notice.WriteByte(fieldSep)
	notice.Write(c.ev.Data)
}

// Run writes the queued changes and holds this replica's one subscription until ctx ends,
// reconnecting when Redis drops.
func (h *Hub) Run(ctx context.Context) {
	var writer sync.WaitGroup
	writer.Add(1)
	go func() {
		defer writer.Done()
		h.write(ctx)
	}()
	defer writer.Wait()
	for ctx.Err() == nil {
		sub := h.c.Subscribe(ctx, h.channel())
		if _, err := sub.Receive(ctx); err != nil {
			_ = sub.Close()
			h.log.WarnContext(ctx, "live: subscribing", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		// Viewers may have missed notices while the subscription was down: they all read
		// their sessions.
		h.resyncAll()
		// go-redis reconnects a dropped subscription by itself and says so only with a new
		// subscription confirmation (Channel hides those): each one means notices may have
		// been lost in between, so everyone reads.
		ch := sub.ChannelWithSubscriptions()
	loop:
		for {
			select {
			case <-ctx.Done():
				_ = sub.Close()
				return
			case m, ok := <-ch:
				if !ok {
					break loop
				}
				switch m := m.(type) {
				case *redis.Message:
					h.deliverNotice(m.Payload)
				case *redis.Subscription:
					h.log.InfoContext(ctx, "live: subscription restored", "channel", m.Channel)
					h.resyncAll()
				}
			}
		}
		_ = sub.Close()
	}
}

// deliverNotice hands each change of a notice to the viewers of its session; a record it
// cannot read makes them read the stored session.
func (h *Hub) deliverNotice(payload string) {
	for record := range strings.SplitSeq(payload, string(recordSep)) {
		ref, rest, _ := strings.Cut(record, string(fieldSep))
		id, data, ok := strings.Cut(rest, string(fieldSep))
		ok = ok && validID(id)
		h.mu.Lock()
		if ws := h.watchers[ref]; len(ws) > 0 {
			ev := Event{ID: id, Data: []byte(data)} // one copy for all: viewers only read it
			for w := range ws {
				if !ok {
					w.signal()
					continue
				}
				select {
				case w.events <- ev:
				default: // the viewer is behind: it reads the stored state, the newest
					w.signal()
				}
			}
		}
		h.mu.Unlock()
	}
}

func (w *watcher) signal() {
	select {
	case w.resync <- struct{}{}:
	default: // already signalled
	}
}

// retryRead is how soon a viewer reads its session again after a failed read, should no
// change come first.
const retryRead = time.Second

// Subscribe returns ref's stored state if it is newer than the event ID after ("": whatever
// it is), then each newer state, through any replica, until ctx ends (the channel is then
// closed). A state is sent only if newer than the last one sent, so none comes twice; what
// the viewer may have missed (notices lost while Redis dropped, a viewer fallen behind) it
// reads from the store, so the newest always comes. The first read's error is returned
// (ErrBadEventID when after is not an event ID); later ones are logged and retried.
func (h *Hub) Subscribe(ctx context.Context, ref, after string) (<-chan Event, error) {
	// Watch first, then read: a change in between is never missed.
	w, stop := h.watch(ref)
	backlog, err := h.Since(ctx, ref, after)
	if err != nil {
		stop()
		return nil, err
	}
	out := make(chan Event)
	go func() {
		defer close(out)
		defer stop()
		retry := time.NewTimer(retryRead)
		retry.Stop()
		defer retry.Stop()
		for {
			for _, ev := range backlog {
				if after != "" && !Newer(ev.ID, after) {
					continue
				}
				select {
				case out <- ev:
					after = ev.ID
				case <-ctx.Done():
					return
				}
			}
			backlog = backlog[:0]
			select {
			case <-ctx.Done():
				return
			case ev := <-w.events:
				backlog = append(backlog, ev)
				continue
			case <-w.resync:
			case <-retry.C:
			}
			if backlog, err = h.Since(ctx, ref, after); err != nil {
				if ctx.Err() != nil {
					return
				}
				h.log.WarnContext(ctx, "live: reading a session", "reference_id", ref, "err", err)
				retry.Reset(retryRead)
			}
		}
	}()
	return out, nil
}

// watch registers a viewer of ref.
func (h *Hub) watch(ref string) (*watcher, func()) {
	w := &watcher{events: make(chan Event, viewerBacklog), resync: make(chan struct{}, 1)}
	h.mu.Lock()
	if h.watchers[ref] == nil {
		h.watchers[ref] = map[*watcher]struct{}{}
	}
	h.watchers[ref][w] = struct{}{}
	h.mu.Unlock()
	return w, func() {
		h.mu.Lock()
		delete(h.watchers[ref], w)
		if len(h.watchers[ref]) == 0 {
			delete(h.watchers, ref)
		}
		h.mu.Unlock()
	}
}

func (h *Hub) resyncAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ws := range h.watchers {
		for w := range ws {
			w.signal()
		}
	}
}

// ErrBadEventID is Since's answer to a Last-Event-ID that is not an event ID.
var ErrBadEventID = errors.New("not an event id")

// Since returns ref's stored state if it is newer than the event ID after ("": whatever it
// is): one event or none.
func (h *Hub) Since(ctx context.Context, ref, after string) ([]Event, error) {
	if after != "" && !validID(after) {
		return nil, ErrBadEventID
	}
	s, err := h.read(ctx, ref)
	if errors.Is(err, callsession.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	id := EventID(s)
	if after != "" && !Newer(id, after) {
		return nil, nil
	}
	data, err := json.Marshal(h.view(s))
	if err != nil {
		return nil, err
	}
	return []Event{{ID: id, Data: data}}, nil
}

// validID reports whether s is an event ID: "<digits>-<digits>".
func validID(s string) bool {
	dash := false
	if s == "" || len(s) > 41 {
		return false
	}
	for i, r := range s {
		switch {
		case r == '-' && !dash && i > 0 && i < len(s)-1:
			dash = true
		case r < '0' || r > '9':
			return false
		}
	}
	return dash
}
