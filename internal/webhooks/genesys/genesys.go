// Package genesys is the Genesys Cloud adapter: an Architect flow calls a web services data
// action whose contract ships in contract/ (paste or import it), and the action posts the
// call here. The answer is a flat JSON object of strings the action's output contract maps
// one to one, so the flow branches on step and error.
//
// Genesys treats any non-2xx answer as the action's Failure path: only a request that is
// not authenticated or not a data-action request gets one; caller problems are answers.
package genesys

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

// Path is the data action's endpoint (DESIGN §6).
const Path = "/v1/webhooks/genesys"

// Actions the flow asks for in the request's action.
const (
	ActionStart  = "start"
	ActionCode   = "code"
	ActionStatus = "status"
)

// Config is what the adapter needs.
type Config struct {
	// Username and Password are GENESYS_USERNAME and GENESYS_PASSWORD, the data actions
	// integration's "Basic Auth" credentials. Both empty: the endpoint is open.
	Username, Password string
	Flow               callflow.Flow
	Logger             *slog.Logger
}

// Handler answers Genesys Cloud data action requests.
type Handler struct {
	flow   callflow.Flow
	log    *slog.Logger
	auth   bool
	user   [sha256.Size]byte
	passwd [sha256.Size]byte
}

// New returns the adapter; register it with the server as an httpapi.Adapter.
func New(cfg Config) *Handler {
	h := &Handler{flow: cfg.Flow, log: cfg.Logger}
	if h.log == nil {
		h.log = slog.Default()
	}
	if cfg.Username != "" || cfg.Password != "" {
		h.auth = true
		h.user, h.passwd = sha256.Sum256([]byte(cfg.Username)), sha256.Sum256([]byte(cfg.Password))
	}
	return h
}

// Register adds the route.
func (h *Handler) Register(e *echo.Echo) { e.POST(Path, h.handle, h.requireBasicAuth) }

// requireBasicAuth checks the Basic credentials when configured. Both the user and the
// password are compared, always, as digests in constant time, so timing tells neither
// which one was wrong nor anything of their lengths.
func (h *Handler) requireBasicAuth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !h.auth {
			return next(c)
		}
		user, passwd, _ := c.Request().BasicAuth()
		u, p := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(passwd))
		if subtle.ConstantTimeCompare(u[:], h.user[:])&subtle.ConstantTimeCompare(p[:], h.passwd[:]) != 1 {
			c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Basic realm="ivr-bridge"`)
			return httpapi.NewError(http.StatusUnauthorized, "unauthorized", "missing or invalid Basic credentials")
		}
		return next(c)
	}
}

// Request is the data action's input: the input contract's properties, posted as they are
// by the request template ${input.rawRequest}. contract/ is tested against these fields.
type Request struct {
	ConversationID string `json:"conversationId"` // Call.ConversationId
	ANI            string `json:"ani"`            // Call.Ani: "tel:+13175551212", sometimes with spaces
	Action         string `json:"action"`         // start | code | status
	Code           string `json:"code"`           // the digits keyed in, for code
	Provider       string `json:"provider"`
	Channel        string `json:"channel"`
	Country        string `json:"country"`
	Locale         string `json:"locale"`
	UserID         string `json:"userId"`
	Username       string `json:"username"`
	Email          string `json:"email"`
}

func (r *Request) startRequest() callsession.StartRequest {
	return callsession.StartRequest{
		ReferenceID: r.ConversationID,
		PhoneNumber: r.ANI, // tel: URIs and spaces are the phone package's to read
		Country:     strings.TrimSpace(r.Country),
		Provider:    callsession.ProviderName(strings.ToLower(strings.TrimSpace(r.Provider))),
		Channel:     callsession.Channel(strings.TrimSpace(r.Channel)),
		UserID:      strings.TrimSpace(r.UserID),
		Username:    strings.TrimSpace(r.Username),
		Email:       strings.TrimSpace(r.Email),
		Locale:      strings.TrimSpace(r.Locale),
	}
}

func (h *Handler) handle(c echo.Context) error {
	r, err := decode(c.Request().Body)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	action := strings.ToLower(strings.TrimSpace(r.Action))
	var res callflow.Result
	switch action {
	case ActionStart:
		res = h.flow.Start(ctx, r.startRequest())
	case ActionCode:
		res = h.flow.Code(ctx, r.ConversationID, strings.TrimSpace(r.Code))
	case ActionStatus:
		res = h.flow.Status(ctx, r.ConversationID)
	default:
		res = callflow.UnknownAction(r.ConversationID, "action must be start, code or status")
	}
	attrs := []any{"reference_id", r.ConversationID, "action", action, "step", res.Step}
	if action == ActionStart {
		attrs = append(attrs, "phone", phone.Mask(r.ANI))
	}
	if res.Code != "" {
		attrs = append(attrs, "code", res.Code)
	}
	h.log.InfoContext(ctx, "genesys data action", attrs...)
	return c.JSON(http.StatusOK, res.Fields())
}

// decode reads a data action request. The body limit's error is passed on as is (413).
func decode(body io.Reader) (*Request, error) {
	raw, err := io.ReadAll(body)
	if err != nil {
		var he *echo.HTTPError
		if errors.As(err, &he) {
			return nil, he
		}
		return nil, invalid("could not read the request body")
	}
	var r Request
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&r); err != nil || dec.More() {
		return nil, invalid("the body is not a JSON object of the data action's input contract")
	}
	if r.ConversationID == "" {
		return nil, invalid("conversationId is required")
	}
	return &r, nil
}

func invalid(msg string) error {
	return httpapi.NewError(http.StatusBadRequest, string(callsession.CodeInvalidRequest), msg)
}
