package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ivr-bridge/ivr-bridge/internal/callsession"
	"github.com/ivr-bridge/ivr-bridge/internal/live"
)

// EventSource is where a session's changes are waited for (live.Hub).
type EventSource interface {
	// Subscribe delivers ref's state if newer than the event ID after, then each newer one.
	Subscribe(ctx context.Context, ref, after string) (<-chan live.Event, error)
}

// DefaultHeartbeat is how often an idle stream gets a comment, so proxies keep it open.
const DefaultHeartbeat = 15 * time.Second

// sessionEvents streams a session as Server-Sent Events: its state now, then one
// `event: session` per change (id = `<created ms>-<version>` of the state sent, live.EventID;
// a Last-Event-ID resumes with the state now if the viewer has not seen it, never one it
// has), a heartbeat comment when idle, and the end after a final status. Each heartbeat reads
// the session too, so a change whose notice was lost still shows.
//
// Expiry and a pending start that never finished are written by whoever reads the session
// next (Service.Get settles them), not when their time comes: so when that time comes the
// stream reads the session itself, and the change it writes comes back through the hub like
// any other, to every viewer on every replica.
func (s *Server) sessionEvents(c echo.Context) error {
	if s.deps.Events == nil {
		return NewError(http.StatusNotFound, string(callsession.CodeNotFound), "live events are not enabled")
	}
	ref, err := refParam(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(c.Request().Context())
	defer cancel() // ends the subscription
	last := c.Request().Header.Get("Last-Event-ID")
	if last == "" {
		last = c.QueryParam("lastEventId") // EventSource polyfills that cannot set the header
	}
	if last != "" && !live.ValidID(last) {
		return eventsFailure(live.ErrBadEventID)
	}
	// The state now (Get writes first what time has decided), under its own ID.
	sess, err := s.deps.Service.Get(ctx, ref)
	if err != nil {
		return err
	}
	now := live.EventID(sess)
	if last != "" && last != now && !live.Newer(now, last) {
		// The viewer's state is not one before this (a history the store no longer has,
		// lost in a failover; or an ID of the streams live events used to keep): it is shown
		// the stored state, and follows from there.
		last = ""
	}
	if now == last && sess.Status.Final() {
		// A browser's EventSource reconnects whenever a stream ends, even after the final
		// status. When that status is what the viewer saw last, nothing more will ever
		// come: 204 is the answer that tells EventSource to stop reconnecting.
		return c.NoContent(http.StatusNoContent)
	}
	// The hub brings every state after this one; the heartbeat's read may bring one too.
	events, err := s.deps.Events.Subscribe(ctx, ref, now)
	if err != nil {
		return eventsFailure(err)
	}

	w := c.Response()
	w.Header().Set(echo.HeaderContentType, "text/event-stream")
	w.Header().Set(echo.HeaderCacheControl, "no-cache")
	w.Header().Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	w.Flush() // the headers, at once: the viewer knows the stream is open
	// send writes a state the viewer has not seen, newer than the last it has (last), and
	// returns it; nil for one it has.
	send := func(ev live.Event) *callsession.Session {
		if last != "" && !live.Newer(ev.ID, last) {
			return nil
		}
		fmt.Fprintf(w, "id: %s\nevent: session\ndata: %s\n\n", ev.ID, ev.Data)
		w.Flush()
		last = ev.ID
		return sessionOf(ev.Data)
	}
	// sendRead sends a state read from the store, encoding it only if the viewer has not
	// seen it (every heartbeat reads the session, which has mostly not changed).
	sendRead := func(cur *callsession.Session) *callsession.Session {
		id := live.EventID(cur)
		if last != "" && !live.Newer(id, last) {
			return nil
		}
		data, err := json.Marshal(View(cur))
		if err != nil {
			return nil
		}
		return send(live.Event{ID: id, Data: data})
	}
	if shown := sendRead(sess); shown != nil && shown.Status.Final() {
		return nil
	}
	heartbeat := s.deps.Heartbeat
	if heartbeat <= 0 {
		heartbeat = DefaultHeartbeat
	}
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()

	// due is when time alone may next change the session (zero: never); settle fires then.
	var due time.Time
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	defer settle.Stop()
	schedule := func(st *callsession.Session) {
		due = s.deps.Service.SettlesAt(st)
		if due.IsZero() {
			settle.Stop()
			return
		}
		settle.Reset(max(time.Until(due), 0))
	}
	// recheck reads the session as GET does, which writes what time has decided, and sends
	// it if the viewer has not seen it (its change's notice may have been lost: the hub's
	// queue full, or its PUBLISH failed); ended is true when the stream has nothing more to
	// wait for.
	recheck := func() (ended bool) {
		cur, err := s.deps.Service.Get(ctx, ref)
		if err != nil {
			if code, _ := callsession.CodeOf(err); ctx.Err() != nil || code == callsession.CodeNotFound {
				return true
			}
			// The next heartbeat tries again; only a session due to settle is worth a line
			// (every open stream reads at each heartbeat: a Redis outage would flood the log).
			if !due.IsZero() && !time.Now().Before(due) {
				s.deps.Logger.WarnContext(ctx, "events: reading a session due to settle", "reference_id", ref, "err", err)
			}
			return false
		}
		sendRead(cur)
		if cur.Status.Final() {
			return true
		}
		due = s.deps.Service.SettlesAt(cur)
		if due.After(time.Now()) {
			settle.Reset(time.Until(due))
		} else {
			// Not settled although due (the service's clock is behind this one): the
			// heartbeats try again, rather than a busy loop.
			settle.Stop()
		}
		return false
	}
	schedule(sess)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.streamsDone:
			return nil
		case <-settle.C:
			if recheck() {
				return nil
			}
		case <-tick.C:
			fmt.Fprint(w, ": heartbeat\n\n")
			w.Flush()
			// One read per heartbeat: what is due gets settled, and a change whose notice
			// never came still shows (and a final one ends the stream).
			if recheck() {
				return nil
			}
		case ev, open := <-events:
			if !open {
				return nil
			}
			if shown := send(ev); shown != nil {
				if shown.Status.Final() {
					return nil
				}
				schedule(shown)
			}
		}
	}
}

// sessionOf reads an event's session JSON; an unreadable one reads as an empty session,
// which is neither final nor due to settle.
func sessionOf(data []byte) *callsession.Session {
	var sess callsession.Session
	if json.Unmarshal(data, &sess) != nil {
		return &callsession.Session{}
	}
	return &sess
}

// eventsFailure maps an error of the event source: a Last-Event-ID that is no event ID is
// the viewer's mistake, anything else is Redis.
func eventsFailure(err error) error {
	if errors.Is(err, live.ErrBadEventID) {
		return invalid("Last-Event-ID is not an event ID of this stream")
	}
	return storageFailure(err)
}

func storageFailure(err error) error {
	return &APIError{Status: http.StatusServiceUnavailable, Code: string(callsession.CodeStorageUnavailable),
		Message: "session storage is unavailable", Err: err}
}
