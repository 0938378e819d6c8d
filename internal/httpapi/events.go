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

// EventSource is where a session's changes are read and waited for (live.Hub).
type EventSource interface {
	// Subscribe delivers ref's state if newer than the event ID after, then each newer one.
	Subscribe(ctx context.Context, ref, after string) (<-chan live.Event, error)
	// Event returns ref's state if its ID is id, ok=false when the session has moved on.
	Event(ctx context.Context, ref, id string) (ev live.Event, ok bool, err error)
	// Latest is the ID of ref's state, "" when there is no session.
	Latest(ctx context.Context, ref string) (string, error)
}

// DefaultHeartbeat is how often an idle stream gets a comment, so proxies keep it open.
const DefaultHeartbeat = 15 * time.Second

// sessionEvents streams a session as Server-Sent Events: its state now, then one
// `event: session` per change (id = `<created ms>-<version>` of the state sent, so a
// Last-Event-ID resumes with the state not yet seen, never one seen), a heartbeat comment
// when idle, and the end after a final status.
//
// Expiry and a pending start that never finished are written by whoever reads the session
// next (Service.Get settles them), not when their time comes: so when that time comes the
// stream reads the session itself, and the change it writes comes back through the hub like
// any other, to every viewer on every replica.
func (s *Server) sessionEvents(c echo.Context) error {
	if s.deps.Events == nil {
		return NewError(http.StatusNotFound, string(callsession.CodeNotFound), "live events are not enabled")
	}
	ctx, cancel := context.WithCancel(c.Request().Context())
	defer cancel() // ends the subscription
	ref := c.Param("ref")
	last := c.Request().Header.Get("Last-Event-ID")
	if last == "" {
		last = c.QueryParam("lastEventId") // EventSource polyfills that cannot set the header
	}

	var sess *callsession.Session
	var first []live.Event
	if last == "" {
		// The current state, labelled with the newest change it includes (read before the
		// session, so the state is at least that new; a change in between comes again,
		// under its own ID).
		id, err := s.deps.Events.Latest(ctx, ref)
		if err != nil {
			return storageFailure(err)
		}
		sess, err = s.deps.Service.Get(ctx, ref)
		if err != nil {
			return err
		}
		data, err := json.Marshal(View(sess))
		if err != nil {
			return err
		}
		first, last = []live.Event{{ID: id, Data: data}}, id
	} else {
		var err error
		sess, err = s.deps.Service.Get(ctx, ref)
		if err != nil {
			return err
		}
		if sess.Status.Final() {
			// A browser's EventSource reconnects whenever a stream ends, even after the final
			// status. When that status is what the viewer saw last, nothing more will ever
			// come: 204 is the answer that tells EventSource to stop reconnecting.
			ev, ok, err := s.deps.Events.Event(ctx, ref, last)
			if err != nil {
				return eventsFailure(err)
			}
			if ok && sessionOf(ev.Data).Status.Final() {
				return c.NoContent(http.StatusNoContent)
			}
		}
	}
	events, err := s.deps.Events.Subscribe(ctx, ref, last)
	if err != nil {
		return eventsFailure(err)
	}

	w := c.Response()
	w.Header().Set(echo.HeaderContentType, "text/event-stream")
	w.Header().Set(echo.HeaderCacheControl, "no-cache")
	w.Header().Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	send := func(ev live.Event) *callsession.Session {
		if ev.ID != "" {
			fmt.Fprintf(w, "id: %s\n", ev.ID)
		}
		fmt.Fprintf(w, "event: session\ndata: %s\n\n", ev.Data)
		w.Flush()
		return sessionOf(ev.Data)
	}
	for _, ev := range first {
		if send(ev).Status.Final() {
			return nil
		}
	}
	if len(first) == 0 {
		w.Flush() // the headers, at once: the viewer knows the stream is open
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
	// recheck reads the session as GET does, which writes what time has decided; ended is
	// true when the stream has nothing more to wait for.
	var finalRead time.Time // when a recheck first found the session final before its change came
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
		if cur.Status.Final() {
			// Final, yet its change has not come. Usually it is on its way (this very read may
			// have written it): give it a heartbeat's time. Still not there, its notice was
			// lost (the hub's queue full, or its PUBLISH failed): the session as read, without an ID
			// (the viewer's Last-Event-ID stays at the last change it had), and the end.
			if finalRead.IsZero() {
				finalRead = time.Now()
			}
			if time.Since(finalRead) < heartbeat {
				settle.Stop()
				return false
			}
			if data, err := json.Marshal(View(cur)); err == nil {
				send(live.Event{Data: data})
			}
			return true
		}
		// A final status written now arrives on the stream, which then ends.
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
			// One read per heartbeat: what is due gets settled, and a final status whose
			// change never reached the stream still ends it.
			if recheck() {
				return nil
			}
		case ev, open := <-events:
			if !open {
				return nil
			}
			shown := send(ev)
			if shown.Status.Final() {
				return nil
			}
			schedule(shown)
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
