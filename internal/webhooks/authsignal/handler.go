package authsignal

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/ivr-bridge/ivr-bridge/internal/callsession"
	"github.com/ivr-bridge/ivr-bridge/internal/httpapi"
)

// Path is where Authsignal delivers webhooks (DESIGN §6).
const Path = "/v1/providers/authsignal/webhook"

// Event is Authsignal's webhook envelope.
type Event struct {
	Version  int             `json:"version"`
	ID       string          `json:"id"`
	Source   string          `json:"source"`
	Time     string          `json:"time"`
	TenantID string          `json:"tenantId"`
	Type     string          `json:"type"`
	Data     json.RawMessage `json:"data"`
}

// outcomeData is the part of an event's data that settles a Call Connect session: the
// reference the IVR gave at /call/start and the state, as Call Connect's /call/finish has it.
type outcomeData struct {
	ReferenceID string `json:"referenceId"`
	State       string `json:"state"`
}

// Call Connect's final states.
const (
	StateSucceeded = "CHALLENGE_SUCCEEDED"
	StateFailed    = "CHALLENGE_FAILED"
)

// Webhook handles Authsignal's deliveries.
type Webhook struct {
	Service *callsession.Service
	Secret  string
	Clock   callsession.Clock
	Logger  *slog.Logger
}

// Register adds the webhook route.
func (w *Webhook) Register(e *echo.Echo) { e.POST(Path, w.handle) }

type answer struct {
	Received bool `json:"received"`
	Applied  bool `json:"applied"`
}

func (w *Webhook) handle(c echo.Context) error {
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		var he *echo.HTTPError
		if errors.As(err, &he) {
			return he
		}
		return httpapi.NewError(http.StatusBadRequest, string(callsession.CodeInvalidRequest), "could not read the body")
	}
	if err := Verify(w.Secret, c.Request().Header.Get("X-Signature-V2"), body, w.Clock.Now()); err != nil {
		return &httpapi.APIError{Status: http.StatusUnauthorized, Code: "invalid_signature", Message: err.Error(), Err: err}
	}
	var ev Event
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&ev); err != nil || ev.ID == "" {
		return httpapi.NewError(http.StatusBadRequest, string(callsession.CodeInvalidRequest), "the body is not an Authsignal event envelope")
	}
	ctx := c.Request().Context()
	var d outcomeData
	if len(ev.Data) == 0 || json.Unmarshal(ev.Data, &d) != nil || d.ReferenceID == "" ||
		(d.State != StateSucceeded && d.State != StateFailed) {
		// Authsignal sends many event types; those that settle no call are accepted and ignored.
		w.Logger.InfoContext(ctx, "authsignal event ignored", "event_id", ev.ID, "type", ev.Type)
		return c.JSON(http.StatusOK, answer{Received: true})
	}
	applied, err := w.Service.ApplyOutcome(ctx, callsession.Outcome{
		EventID: ev.ID, ReferenceID: d.ReferenceID, Verified: d.State == StateSucceeded, Detail: ev.Type + " " + d.State,
	})
	if err != nil {
		return err // storage: Authsignal retries the delivery
	}
	w.Logger.InfoContext(ctx, "authsignal event", "event_id", ev.ID, "type", ev.Type, "reference_id", d.ReferenceID,
		"state", d.State, "applied", applied)
	return c.JSON(http.StatusOK, answer{Received: true, Applied: applied})
}
