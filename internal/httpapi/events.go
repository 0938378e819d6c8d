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
	Watch(ref string) (<-chan struct{}, func())
	Since(ctx context.Context, ref, after string) ([]live.Event, error)
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
	ctx := c.Request().Context()
	ref := c.Param("ref")
	last := c.Request().Header.Get("Last-Event-ID")
	if last == "" {
		last = c.QueryParam("lastEventId")
	}
	// Watch first, then read: a change between the two is never missed.
	notify, stop := s.deps.Events.Watch(ref)
	defer stop()

	var backlog []live.Event
	if last == "" {
		// The current state, labelled with the newest change it includes (read before the
		// session, so the state is at least that new).
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
		backlog, last = []live.Event{{ID: id, Data: data}}, id
	} else {
		if _, err := s.deps.Service.Get(ctx, ref); err != nil {
			return err
		}
		evs, err := s.deps.Events.Since(ctx, ref, last)
		if errors.Is(err, live.ErrBadEventID) {
			return invalid("Last-Event-ID is not an event ID of this stream")
		} else if err != nil {
			return storageFailure(err)
		}
		backlog = evs
	}

	w := c.Response()
	w.Header().Set(echo.HeaderContentType, "text/event-stream")
	w.Header().Set(echo.HeaderCacheControl, "no-cache")
	w.Header().Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	send := func(evs []live.Event) (final bool) {
		for _, ev := range evs {
			if ev.ID != "" {
				fmt.Fprintf(w, "id: %s\n", ev.ID)
				last = ev.ID
			}
			fmt.Fprintf(w, "event: session\ndata: %s\n\n", ev.Data)
			final = final || isFinal(ev.Data)
		}
		w.Flush()
		return final
	}
	if send(backlog) {
		return nil
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
		case <-notify:
			evs, err := s.deps.Events.Since(ctx, ref, last)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				s.deps.Logger.WarnContext(ctx, "live: reading a session's changes", "reference_id", ref, "err", err)
				continue // the next notice or reconnect retries
			}
			if send(evs) {
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

func storageFailure(err error) error {
	return &APIError{Status: http.StatusServiceUnavailable, Code: string(callsession.CodeStorageUnavailable),
		Message: "session storage is unavailable", Err: err}
}
