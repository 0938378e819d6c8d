// Package connect is the Amazon Connect adapter: a contact flow's "Invoke AWS Lambda
// function" block runs a tiny forwarding Lambda (cmd/connect-forwarder) that posts the
// contact-flow event here unchanged, and this package answers the flat map of strings the
// flow branches on.
//
// Event format: https://docs.aws.amazon.com/connect/latest/adminguide/connect-lambda-functions.html
// (Details.ContactData, Details.Parameters, Name "ContactFlowEvent").
package connect

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/ivr-bridge/ivr-bridge/internal/callsession"
	"github.com/ivr-bridge/ivr-bridge/internal/httpapi"
	"github.com/ivr-bridge/ivr-bridge/internal/phone"
	"github.com/ivr-bridge/ivr-bridge/internal/webhooks/callflow"
)

// Path is where the forwarding Lambda posts contact-flow events (DESIGN §6).
const Path = "/v1/webhooks/connect"

// HeaderAPIKey carries CONNECT_API_KEY from the forwarding Lambda.
const HeaderAPIKey = "X-Api-Key"

// Actions a contact flow asks for in Details.Parameters.action.
const (
	ActionStart  = "start"
	ActionCode   = "code"
	ActionStatus = "status"
)

// Config is what the adapter needs.
type Config struct {
	APIKey string // CONNECT_API_KEY; empty: the endpoint is open
	Flow   callflow.Flow
	Logger *slog.Logger
}

// Handler answers Amazon Connect contact-flow events.
//
// Connect waits at most 8 s for a Lambda (InvocationTimeLimitSeconds ≤ 8), forwarding
// included. The answer fits well inside: the service bounds every provider call
// (PROVIDER_TIMEOUT, 4 s by default) and a repeated start waits no longer than that for the
// first one to finish.
type Handler struct {
	flow   callflow.Flow
	log    *slog.Logger
	keySum *[sha256.Size]byte // nil: no key configured
}

// New returns the adapter; register it with the server as an httpapi.Adapter.
func New(cfg Config) *Handler {
	h := &Handler{flow: cfg.Flow, log: cfg.Logger}
	if h.log == nil {
		h.log = slog.Default()
	}
	if cfg.APIKey != "" {
		sum := sha256.Sum256([]byte(cfg.APIKey))
		h.keySum = &sum
	}
	return h
}

// Register adds the route.
func (h *Handler) Register(e *echo.Echo) { e.POST(Path, h.handle, h.requireKey) }

// requireKey checks X-Api-Key when a key is configured. Digests are compared so that
// neither the key's content nor its length leaks through timing.
func (h *Handler) requireKey(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if h.keySum == nil {
			return next(c)
		}
		got := sha256.Sum256([]byte(c.Request().Header.Get(HeaderAPIKey)))
		if subtle.ConstantTimeCompare(got[:], h.keySum[:]) != 1 {
			return httpapi.NewError(http.StatusUnauthorized, "unauthorized", "missing or invalid "+HeaderAPIKey)
		}
		return next(c)
	}
}

// Event is the part of Amazon Connect's contact-flow Lambda event the bridge reads; every
// other field is ignored.
type Event struct {
	Name    string `json:"Name"` // "ContactFlowEvent"
	Details struct {
		ContactData ContactData `json:"ContactData"`
		// Parameters are the "Function input parameters" the flow block sends.
		Parameters StringMap `json:"Parameters"`
	} `json:"Details"`
}

// ContactData is the contact the flow runs for.
type ContactData struct {
	ContactID        string    `json:"ContactId"`
	Channel          string    `json:"Channel"`
	CustomerEndpoint *Endpoint `json:"CustomerEndpoint"` // null on chat contacts
	Attributes       StringMap `json:"Attributes"`
}

// Endpoint is a party of the contact; for a voice call the customer's is their number.
type Endpoint struct {
	Address string `json:"Address"`
	Type    string `json:"Type"`
}

// StringMap is a JSON object of strings. Connect sends strings only; a number (a flow that
// typed the code as one) is kept as written, and any other value is ignored rather than
// failing the contact.
type StringMap map[string]string

func (m *StringMap) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	out := make(StringMap, len(raw))
	for k, v := range raw {
		var s string
		if json.Unmarshal(v, &s) == nil {
			out[k] = s
			continue
		}
		var n json.Number
		if json.Unmarshal(v, &n) == nil {
			out[k] = n.String()
		}
	}
	*m = out
	return nil
}

// param is a flow parameter, or for the start's options the contact attribute of the same
// name, so a flow may set them once with "Set contact attributes".
func (ev *Event) param(name string, orAttribute bool) string {
	if v := strings.TrimSpace(ev.Details.Parameters[name]); v != "" || !orAttribute {
		return v
	}
	return strings.TrimSpace(ev.Details.ContactData.Attributes[name])
}

// callerNumber is the customer's number, "" when the contact has none (chat, a withheld
// caller sent as such) so the service answers phone_number_withheld.
func (ev *Event) callerNumber() string {
	ep := ev.Details.ContactData.CustomerEndpoint
	if ep == nil {
		return ""
	}
	switch ep.Type {
	case "", "TELEPHONE_NUMBER", "VOIP":
		return ep.Address
	}
	return ""
}

func (ev *Event) startRequest() callsession.StartRequest {
	return callsession.StartRequest{
		ReferenceID: ev.Details.ContactData.ContactID,
		PhoneNumber: ev.callerNumber(),
		Country:     ev.param("country", true),
		Provider:    callsession.ProviderName(strings.ToLower(ev.param("provider", true))),
		Channel:     callsession.Channel(ev.param("channel", true)),
		UserID:      ev.param("userId", true),
		Username:    ev.param("username", true),
		Email:       ev.param("email", true),
		Locale:      ev.param("locale", true),
	}
}

func (h *Handler) handle(c echo.Context) error {
	ev, err := decode(c.Request().Body)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	ref := ev.Details.ContactData.ContactID
	action := strings.ToLower(ev.param("action", false))
	var res callflow.Result
	switch action {
	case ActionStart:
		res = h.flow.Start(ctx, ev.startRequest())
	case ActionCode:
		res = h.flow.Code(ctx, ref, ev.param("code", false))
	case ActionStatus:
		res = h.flow.Status(ctx, ref)
	default:
		res = callflow.UnknownAction(ref, "Details.Parameters.action must be start, code or status")
	}
	attrs := []any{"reference_id", ref, "action", action, "step", res.Step}
	if action == ActionStart {
		attrs = append(attrs, "phone", phone.Mask(ev.callerNumber()))
	}
	if res.Code != "" {
		attrs = append(attrs, "code", res.Code)
	}
	h.log.InfoContext(ctx, "connect contact", attrs...)
	// Caller problems (withheld, landline, wrong code, provider failure) are answers, not
	// HTTP errors: the flow branches on "step" and "error".
	return c.JSON(http.StatusOK, res.Fields())
}

// decode reads a contact-flow event. The body limit's error is passed on as is (413).
func decode(body io.Reader) (*Event, error) {
	raw, err := io.ReadAll(body)
	if err != nil {
		var he *echo.HTTPError
		if errors.As(err, &he) {
			return nil, he
		}
		return nil, invalid("could not read the request body")
	}
	var ev Event
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&ev); err != nil || dec.More() {
		return nil, invalid("the body is not an Amazon Connect contact-flow event")
	}
	if ev.Details.ContactData.ContactID == "" {
		return nil, invalid("Details.ContactData.ContactId is required")
	}
	return &ev, nil
}

func invalid(msg string) error {
	return httpapi.NewError(http.StatusBadRequest, string(callsession.CodeInvalidRequest), msg)
}
