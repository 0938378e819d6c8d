// Package live carries session changes to agent desktops on every replica. A change is
// announced on one Pub/Sub channel (one notice per batch of changes written, naming their
// sessions); each replica holds a single subscription to it and wakes its local viewers of
// the sessions named, who read the session as stored and send it if it is newer than what
// they sent last. An event is the session itself, labelled `<created ms>-<version>` (the
// store's compare-and-set version): so a reconnecting viewer (Last-Event-ID) gets the state
// it has not seen, never one it has, and nothing is kept per change. A session's own event
// history carries every change, so the newest state shows all of them; two changes that
// land before a viewer reads come as one event.
//
// (Each change used to be appended to a Redis Stream of its session: a stream's first node is
// preallocated, 4.7 KB per session, five times the session itself, and creating one cost
// Redis 15 µs per start. docs/performance.md.)
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
	// encoding/json's drop-in, as in the store.
	json "github.com/segmentio/encoding/json"

	"github.com/ivr-bridge/ivr-bridge/internal/callsession"
)

// Event is one state of a session: its ID (`<created ms>-<version>`) and the session JSON.
type Event struct {
	ID   string
	Data []byte
}

// Reader reads a session as stored (callsession.ErrNotFound when there is none), with its
// Version: the store's Get, which never writes.
type Reader func(ctx context.Context, ref string) (*callsession.Session, error)

// Hub announces changes and wakes local viewers.
type Hub struct {
	c      redis.UniversalClient
	prefix string
	read   Reader
	log    *slog.Logger
	view   func(*callsession.Session) any

	mu       sync.Mutex
	watchers map[string]map[chan struct{}]struct{}

	// changes queue the references Publish was given for the writer goroutine, which
	// announces them in batches: the call path never waits on the live view.
	changes chan string
}

// queueLength bounds the changes waiting to be announced; beyond it a change is dropped (and
// logged): a screen a moment stale is better than a call held up. A viewer whose notice was
// dropped still gets the state at its stream's next heartbeat (internal/httpapi).
const queueLength = 8192

// noticeSep separates the references of one notice; a reference never holds a newline
// (callsession.ValidReferenceID).
const noticeSep = '\n'

// NewHub returns a hub on c; read gives the stored session, and view is the JSON form of a
// session that viewers receive.
func NewHub(c redis.UniversalClient, prefix string, read Reader, view func(*callsession.Session) any, log *slog.Logger) *Hub {
	if log == nil {
		log = slog.Default()
	}
	return &Hub{c: c, prefix: prefix, read: read, view: view, log: log, watchers: map[string]map[chan struct{}]struct{}{},
		changes: make(chan string, queueLength)}
}

func (h *Hub) channel() string { return h.prefix + "live" }

// Publish implements callsession.Publisher: the change (already stored) is queued, and Run's
// writer announces it. Failures are logged, never returned: a late screen must not fail a
// call.
func (h *Hub) Publish(ctx context.Context, s *callsession.Session) {
	select {
	case h.changes <- s.ReferenceID:
	default:
		h.log.WarnContext(ctx, "live: too many changes queued, one dropped", "reference_id", s.ReferenceID)
	}
}

// maxBatch bounds the references of one notice.
const maxBatch = 256

// write announces queued changes, one notice per batch, until ctx ends.
func (h *Hub) write(ctx context.Context) {
	batch := make([]string, 0, maxBatch)
	var notice strings.Builder
	for {
		select {
		case <-ctx.Done():
			// Shutting down: what was written to the sessions still gets announced.
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			ctx = fctx
			select {
			case ref := <-h.changes:
				batch = append(batch[:0], ref)
			default:
				return
			}
		case ref := <-h.changes:
			batch = append(batch[:0], ref)
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case ref := <-h.changes:
				batch = append(batch, ref)
			default:
				break fill
			}
		}
		// One notice for the whole batch: on a cluster every PUBLISH is relayed to every
		// node, and each notice is a message every replica reads.
		notice.Reset()
		for i, ref := range batch {
			if i > 0 {
				notice.WriteByte(noticeSep)
			}
			notice.WriteString(ref)
		}
		if err := h.c.Publish(ctx, h.channel(), notice.String()).Err(); err != nil && ctx.Err() == nil {
			h.log.Warn("live: announcing changes", "changes", len(batch), "err", err)
		}
	}
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
		// Viewers may have missed notices while the subscription was down: wake them all,
		// they re-read their sessions.
		h.wakeAll()
		// go-redis reconnects a dropped subscription by itself and says so only with a new
		// subscription confirmation (Channel hides those): each one means notices may have
		// been lost in between, so everyone re-reads.
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
					for ref := range strings.SplitSeq(m.Payload, string(noticeSep)) {
						h.wake(ref)
					}
				case *redis.Subscription:
					h.log.InfoContext(ctx, "live: subscription restored", "channel", m.Channel)
					h.wakeAll()
				}
			}
		}
		_ = sub.Close()
	}
}

// retryRead is how soon a viewer re-reads its session after a failed read, should no notice
// come first.
const retryRead = time.Second

// Subscribe returns ref's state if it is newer than the event ID after ("": whatever it is),
// then each newer state, through any replica, until ctx ends (the channel is then closed).
// Every read compares with the last event delivered, so no state comes twice and the newest
// always comes, whether notices are lost or Redis drops meanwhile. The first read's error
// is returned (ErrBadEventID when after is not an event ID); later ones are logged and
// retried.
func (h *Hub) Subscribe(ctx context.Context, ref, after string) (<-chan Event, error) {
	if after != "" && !validID(after) {
		return nil, ErrBadEventID
	}
	// Watch first, then read: a change in between is never missed.
	notify, stop := h.watch(ref)
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
				select {
				case out <- ev:
					after = ev.ID
				case <-ctx.Done():
					return
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-notify:
			case <-retry.C:
			}
			if backlog, err = h.Since(ctx, ref, after); err != nil {
				if ctx.Err() != nil {
					return
				}
				h.log.WarnContext(ctx, "live: reading a session's changes", "reference_id", ref, "err", err)
				retry.Reset(retryRead)
			}
		}
	}()
	return out, nil
}

// watch registers a viewer of ref: the channel receives a signal when ref may have changed.
func (h *Hub) watch(ref string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	if h.watchers[ref] == nil {
		h.watchers[ref] = map[chan struct{}]struct{}{}
	}
	h.watchers[ref][ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.watchers[ref], ch)
		if len(h.watchers[ref]) == 0 {
			delete(h.watchers, ref)
		}
		h.mu.Unlock()
	}
}

func (h *Hub) wake(ref string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.watchers[ref] {
		select {
		case ch <- struct{}{}:
		default: // already signalled: the viewer reads everything new anyway
		}
	}
}

func (h *Hub) wakeAll() {
	h.mu.Lock()
	refs := make([]string, 0, len(h.watchers))
	for ref := range h.watchers {
		refs = append(refs, ref)
	}
	h.mu.Unlock()
	for _, ref := range refs {
		h.wake(ref)
	}
}

// ErrBadEventID is Since's answer to a Last-Event-ID that is not an event ID.
var ErrBadEventID = errors.New("not an event id")

// eventID labels a stored state: the session's creation (a reference used again after its
// session expired starts over at version 1) and its version.
func eventID(s *callsession.Session) string {
	return strconv.FormatInt(s.CreatedAt.UnixMilli(), 10) + "-" + strconv.FormatInt(s.Version, 10)
}

// newer reports whether the state labelled id comes after the event after: the same session
// at a higher version, or another session under the reference (or an ID of the streams the
// hub used to keep) whatever its version.
func newer(id, after string) bool {
	created, version, _ := strings.Cut(id, "-")
	afterCreated, afterVersion, _ := strings.Cut(after, "-")
	if created != afterCreated {
		return true
	}
	v, _ := strconv.ParseInt(version, 10, 64)
	av, _ := strconv.ParseInt(afterVersion, 10, 64)
	return v > av
}

// current is ref's stored state as an event; ok is false when there is no session.
func (h *Hub) current(ctx context.Context, ref string) (ev Event, ok bool, err error) {
	s, err := h.read(ctx, ref)
	if errors.Is(err, callsession.ErrNotFound) {
		return Event{}, false, nil
	}
	if err != nil {
		return Event{}, false, err
	}
	data, err := json.Marshal(h.view(s))
	if err != nil {
		return Event{}, false, err
	}
	return Event{ID: eventID(s), Data: data}, true, nil
}

// Since returns ref's state if it is newer than the event ID after ("": whatever it is):
// one event or none.
func (h *Hub) Since(ctx context.Context, ref, after string) ([]Event, error) {
	if after != "" && !validID(after) {
		return nil, ErrBadEventID
	}
	ev, ok, err := h.current(ctx, ref)
	if err != nil || !ok || (after != "" && !newer(ev.ID, after)) {
		return nil, err
	}
	return []Event{ev}, nil
}

// Event returns ref's state if its ID is id; ok is false when the session has moved on (or
// is gone).
func (h *Hub) Event(ctx context.Context, ref, id string) (ev Event, ok bool, err error) {
	if !validID(id) {
		return Event{}, false, ErrBadEventID
	}
	ev, ok, err = h.current(ctx, ref)
	if err != nil || !ok || ev.ID != id {
		return Event{}, false, err
	}
	return ev, true, nil
}

// Latest is the ID of ref's stored state, "" when there is no session.
func (h *Hub) Latest(ctx context.Context, ref string) (string, error) {
	ev, _, err := h.current(ctx, ref)
	return ev.ID, err
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
