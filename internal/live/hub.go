// Package live carries session changes to agent desktops on every replica. Each change is
// appended to a Redis Stream of its session (`<prefix>{<ref>}:events`, on the session's
// cluster slot, capped and expiring with the session), and a notice naming the sessions of
// each written batch is published on one Pub/Sub channel. Each replica holds a single
// subscription to that channel and wakes its local viewers of the sessions named, who read
// their streams from where they are: so a reconnecting viewer (Last-Event-ID) misses nothing
// and sees nothing twice.
package live

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	// encoding/json's drop-in, as in the store: every change is encoded here once.
	json "github.com/segmentio/encoding/json"

	"github.com/ivr-bridge/ivr-bridge/internal/callsession"
)

// Event is one change of a session: its stream ID and the session JSON.
type Event struct {
	ID   string
	Data []byte
}

// Hub publishes changes and fans them out to local viewers.
type Hub struct {
	c      redis.UniversalClient
	prefix string
	ttl    time.Duration
	log    *slog.Logger
	view   func(*callsession.Session) any

	mu       sync.Mutex
	watchers map[string]map[chan struct{}]struct{}

	// changes queue what Publish was given for the writer goroutine, which sends them in
	// pipelined batches: the call path never waits on the live view.
	changes chan change
}

type change struct {
	ref  string
	data []byte
}

// queueLength bounds the changes waiting to be written; beyond it a change is dropped (and
// logged): a screen a moment stale is better than a call held up.
const queueLength = 8192

// noticeSep separates the references of one notice; a reference never holds a newline
// (callsession.ValidReferenceID).
const noticeSep = '\n'

// streamLength caps each session's stream: a session has a few dozen changes at most.
const streamLength = 200

// NewHub returns a hub on c. Streams live for ttl (the session TTL); view is the JSON form
// of a session that viewers receive.
func NewHub(c redis.UniversalClient, prefix string, ttl time.Duration, view func(*callsession.Session) any, log *slog.Logger) *Hub {
	if log == nil {
		log = slog.Default()
	}
	return &Hub{c: c, prefix: prefix, ttl: ttl, view: view, log: log, watchers: map[string]map[chan struct{}]struct{}{},
		changes: make(chan change, queueLength)}
}

func (h *Hub) streamKey(ref string) string { return h.prefix + "{" + ref + "}:events" }
func (h *Hub) channel() string             { return h.prefix + "live" }

// Publish implements callsession.Publisher: the change is queued, and Run's writer appends
// it to the session's stream and announces it. Failures are logged, never returned: a late
// screen must not fail a call.
func (h *Hub) Publish(ctx context.Context, s *callsession.Session) {
	data, err := json.Marshal(h.view(s))
	if err != nil {
		h.log.ErrorContext(ctx, "live: encoding a session", "err", err)
		return
	}
	select {
	case h.changes <- change{ref: s.ReferenceID, data: data}:
	default:
		h.log.WarnContext(ctx, "live: too many changes queued, one dropped", "reference_id", s.ReferenceID)
	}
}

// maxBatch bounds one pipeline of the writer.
const maxBatch = 256

// write sends queued changes, in order, in pipelined batches, until ctx ends.
func (h *Hub) write(ctx context.Context) {
	batch := make([]change, 0, maxBatch)
	for {
		select {
		case <-ctx.Done():
			// Shutting down: what was written to the sessions still gets announced.
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			ctx = fctx
			select {
			case c := <-h.changes:
				batch = append(batch[:0], c)
			default:
				return
			}
		case c := <-h.changes:
			batch = append(batch[:0], c)
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case c := <-h.changes:
				batch = append(batch, c)
			default:
				break fill
			}
		}
		pipe := h.c.Pipeline()
		var notice strings.Builder
		for i, c := range batch {
			key := h.streamKey(c.ref)
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: key, MaxLen: streamLength, Approx: true, Values: []any{"d", c.data}})
			pipe.PExpire(ctx, key, h.ttl)
			if i > 0 {
				notice.WriteByte(noticeSep)
			}
			notice.WriteString(c.ref)
		}
		// One notice for the whole batch, after its appends: on a cluster every PUBLISH is
		// relayed to every node, and each notice is a message every replica reads.
		pipe.Publish(ctx, h.channel(), notice.String())
		if _, err := pipe.Exec(ctx); err != nil && ctx.Err() == nil {
			h.log.Warn("live: publishing changes", "changes", len(batch), "err", err)
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
		// they re-read their streams.
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

// retryRead is how soon a viewer re-reads its stream after a failed read, should no notice
// come first.
const retryRead = time.Second

// Subscribe returns ref's events after the stream ID after ("": from the stream's start),
// then each one written later, through any replica, until ctx ends (the channel is then
// closed). Every read starts after the last event delivered, so nothing comes twice and
// nothing is skipped, whether notices are lost or Redis drops meanwhile. The first read's
// error is returned (ErrBadEventID when after is not a stream ID); later ones are logged
// and retried.
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

// ErrBadEventID is Since's answer to a Last-Event-ID that is not a stream ID.
var ErrBadEventID = errors.New("not an event id")

// Since returns ref's events after the stream ID after ("" for all), oldest first.
func (h *Hub) Since(ctx context.Context, ref, after string) ([]Event, error) {
	start := "-"
	if after != "" {
		if !validID(after) {
			return nil, ErrBadEventID
		}
		start = "(" + after
	}
	msgs, err := h.c.XRange(ctx, h.streamKey(ref), start, "+").Result()
	if err != nil {
		return nil, err
	}
	out := make([]Event, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, toEvent(m))
	}
	return out, nil
}

// Event returns ref's event id; ok is false when the stream no longer holds it.
func (h *Hub) Event(ctx context.Context, ref, id string) (ev Event, ok bool, err error) {
	if !validID(id) {
		return Event{}, false, ErrBadEventID
	}
	msgs, err := h.c.XRange(ctx, h.streamKey(ref), id, id).Result()
	if err != nil || len(msgs) == 0 {
		return Event{}, false, err
	}
	return toEvent(msgs[0]), true, nil
}

func toEvent(m redis.XMessage) Event {
	d, _ := m.Values["d"].(string)
	return Event{ID: m.ID, Data: []byte(d)}
}

// Latest is the ID of ref's newest event, "" when it has none.
func (h *Hub) Latest(ctx context.Context, ref string) (string, error) {
	msgs, err := h.c.XRevRangeN(ctx, h.streamKey(ref), "+", "-", 1).Result()
	if err != nil || len(msgs) == 0 {
		return "", err
	}
	return msgs[0].ID, nil
}

// validID reports whether s is a stream ID: "<ms>-<seq>".
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
