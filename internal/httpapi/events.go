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
	// Subscribe delivers ref's events after the stream ID after, then each new one.
	Subscribe(ctx context.Context, ref, after string) (<-chan live.Event, error)
	// Event returns one event of ref's stream, ok=false when the stream no longer holds it.
	Event(ctx context.Context, ref, id string) (ev live.Event, ok bool, err error)
	// Latest is the ID of ref's newest event, "" when none.
	Latest(ctx context.Context, ref string) (string, error)
}

// DefaultHeartbeat is how often an idle stream gets a comment, so proxies keep it open.
const DefaultHeartbeat = 15 * time.Second

// sessionEvents streams a session as Server-Sent Events: its state now, then one
// `event: session` per change (id = the change's stream ID, so Last-Event-ID resumes without
// gaps or repeats), a heartbeat comment when idle, and the end after a final status.
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

	var first []live.Event
	if last == "" {
		// The current state, labelled with the newest change it includes (read before the
		// session, so the state is at least that new; a change in between comes again,
		// under its own ID).
		id, err := s.deps.Events.Latest(ctx, ref)
		if err != nil {
			return storageFailure(err)
		}
		sess, err := s.deps.Service.Get(ctx, ref)
		if err != nil {
			return err
		}
		data, err := json.Marshal(View(sess))
		if err != nil {
			return err
		}
		first, last = []live.Event{{ID: id, Data: data}}, id
	} else {
		sess, err := s.deps.Service.Get(ctx, ref)
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
			if ok && isFinal(ev.Data) {
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
	send := func(ev live.Event) (final bool) {
		if ev.ID != "" {
			fmt.Fprintf(w, "id: %s\n", ev.ID)
		}
		fmt.Fprintf(w, "event: session\ndata: %s\n\n", ev.Data)
		w.Flush()
		return isFinal(ev.Data)
	}
	for _, ev := range first {
		if send(ev) {
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
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.streamsDone:
			return nil
		case <-tick.C:
			fmt.Fprint(w, ": heartbeat\n\n")
			w.Flush()
		case ev, open := <-events:
			if !open || send(ev) {
				return nil
			}
		}
	}
}

func isFinal(data []byte) bool {
	var v struct {
		Status callsession.Status `json:"status"`
	}
	return json.Unmarshal(data, &v) == nil && v.Status.Final()
}

// eventsFailure maps an error of the event source: a Last-Event-ID that is no stream ID is
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
