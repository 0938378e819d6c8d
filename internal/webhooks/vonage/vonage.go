// Package vonage lets Vonage Voice drive a verification: the answer webhook starts it and
// answers an NCCO that speaks and collects the code by DTMF, the input webhook checks the
// digits. A caller problem is always a spoken NCCO; only a bad signature is refused (401).
package vonage

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/labstack/echo/v4"

	"github.com/ivr-bridge/ivr-bridge/internal/callsession"
	"github.com/ivr-bridge/ivr-bridge/internal/httpapi"
	"github.com/ivr-bridge/ivr-bridge/internal/phone"
	"github.com/ivr-bridge/ivr-bridge/internal/webhooks/callflow"
)

// Paths of the endpoints (DESIGN §6).
const (
	AnswerPath = "/v1/webhooks/vonage/answer"
	InputPath  = "/v1/webhooks/vonage/input"
)

// Config configures the endpoints.
type Config struct {
	// SignatureSecret, when set, makes the signed JWT in Authorization: Bearer required.
	SignatureSecret string
	PublicURL       string // the bridge's external base URL, for the NCCO's eventUrl
	Flow            callflow.Flow
	Logger          *slog.Logger
}

// Handler serves Vonage's voice webhooks.
type Handler struct{ cfg Config }

// New returns the handler.
func New(cfg Config) *Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	return &Handler{cfg: cfg}
}

// Register adds the routes.
func (h *Handler) Register(e *echo.Echo) {
	e.GET(AnswerPath, h.answer, h.verify)
	e.POST(AnswerPath, h.answer, h.verify)
	e.POST(InputPath, h.input, h.verify)
}

// Action is one NCCO action (talk or input).
type Action struct {
	Action      string   `json:"action"`
	Text        string   `json:"text,omitempty"`
	Language    string   `json:"language,omitempty"`
	Type        []string `json:"type,omitempty"`
	DTMF        *DTMF    `json:"dtmf,omitempty"`
	EventURL    []string `json:"eventUrl,omitempty"`
	EventMethod string   `json:"eventMethod,omitempty"`
}

// DTMF configures an input action.
type DTMF struct {
	MaxDigits    int  `json:"maxDigits"`
	TimeOut      int  `json:"timeOut"`
	SubmitOnHash bool `json:"submitOnHash"`
}

// Claims are those of Vonage's signed webhooks.
type Claims struct {
	PayloadHash string `json:"payload_hash,omitempty"`
	jwt.RegisteredClaims
}

// Sign makes the token Vonage would send for body (tests and tools).
func Sign(secret string, body []byte, at time.Time) (string, error) {
	var jti [12]byte
	_, _ = rand.Read(jti[:])
	c := Claims{RegisteredClaims: jwt.RegisteredClaims{IssuedAt: jwt.NewNumericDate(at), ID: hex.EncodeToString(jti[:])}}
	if len(body) > 0 {
		sum := sha256.Sum256(body)
		c.PayloadHash = hex.EncodeToString(sum[:])
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(secret))
}

// VerifyToken checks a signed-webhook token: HS256 with the secret (no other algorithm),
// issued at most 5 minutes from now, and when it carries payload_hash, the SHA-256 of body.
func VerifyToken(secret, token string, body []byte, now time.Time) error {
	var c Claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return []byte(secret), nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}), jwt.WithIssuedAt(), jwt.WithLeeway(5*time.Minute),
		jwt.WithTimeFunc(func() time.Time { return now }))
	if err != nil {
		return err
	}
	if c.IssuedAt == nil || now.Sub(c.IssuedAt.Time) > 5*time.Minute {
		return errors.New("token issued more than 5 minutes ago")
	}
	if c.PayloadHash != "" || len(body) > 0 {
		sum := sha256.Sum256(body)
		if subtle.ConstantTimeCompare([]byte(strings.ToLower(c.PayloadHash)), []byte(hex.EncodeToString(sum[:]))) != 1 {
			return errors.New("payload_hash does not match the body")
		}
	}
	return nil
}

// verify is the signature middleware; it keeps the body for the handler.
func (h *Handler) verify(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		body, err := io.ReadAll(c.Request().Body)
		if err != nil {
			var he *echo.HTTPError
			if errors.As(err, &he) {
				return he
			}
			return httpapi.NewError(http.StatusBadRequest, string(callsession.CodeInvalidRequest), "could not read the body")
		}
		c.Set(bodyKey, body)
		if h.cfg.SignatureSecret == "" {
			return next(c)
		}
		token, ok := strings.CutPrefix(c.Request().Header.Get(echo.HeaderAuthorization), "Bearer ")
		if !ok || VerifyToken(h.cfg.SignatureSecret, token, body, time.Now()) != nil {
			h.cfg.Logger.WarnContext(c.Request().Context(), "vonage: invalid signature")
			return httpapi.NewError(http.StatusUnauthorized, "invalid_signature", "the signed JWT is missing or does not verify")
		}
		return next(c)
	}
}

const bodyKey = "vonageBody"

// event holds the fields of Vonage's answer and input webhooks the bridge reads.
type event struct {
	UUID             string `json:"uuid"`
	ConversationUUID string `json:"conversation_uuid"`
	From             string `json:"from"`
	To               string `json:"to"`
	DTMF             struct {
		Digits   string `json:"digits"`
		TimedOut bool   `json:"timed_out"`
	} `json:"dtmf"`
}

// read takes the event from the query (Vonage's default GET answer webhook) or the JSON body.
func read(c echo.Context) (event, bool) {
	var ev event
	body, _ := c.Get(bodyKey).([]byte)
	if len(strings.TrimSpace(string(body))) > 0 {
		if json.Unmarshal(body, &ev) != nil {
			return ev, false
		}
	}
	q := c.QueryParams()
	if ev.UUID == "" {
		ev.UUID = q.Get("uuid")
	}
	if ev.ConversationUUID == "" {
		ev.ConversationUUID = q.Get("conversation_uuid")
	}
	if ev.From == "" {
		ev.From = q.Get("from")
	}
	return ev, true
}

// reference is the call leg's uuid: both webhooks of one call carry it (conversation_uuid
// when a platform omits it).
func (ev event) reference() string {
	if ev.UUID != "" {
		return ev.UUID
	}
	return ev.ConversationUUID
}

func (h *Handler) answer(c echo.Context) error {
	locale := c.QueryParam("locale")
	ev, ok := read(c)
	if !ok || ev.reference() == "" {
		h.cfg.Logger.WarnContext(c.Request().Context(), "vonage: answer webhook without uuid")
		return c.JSON(http.StatusOK, h.ncco(c, callflow.Result{Step: callflow.StepError}, locale))
	}
	r := h.cfg.Flow.Start(c.Request().Context(), callsession.StartRequest{
		ReferenceID: ev.reference(), PhoneNumber: ev.From, Country: c.QueryParam("country"),
		Provider: callsession.ProviderName(strings.ToLower(c.QueryParam("provider"))),
		Channel:  callsession.Channel(strings.ToUpper(c.QueryParam("channel"))), Locale: locale,
	})
	h.cfg.Logger.InfoContext(c.Request().Context(), "vonage call", "reference_id", ev.reference(), "from", phone.Mask(ev.From), "step", r.Step, "error", r.Code)
	return c.JSON(http.StatusOK, h.ncco(c, r, locale))
}

func (h *Handler) input(c echo.Context) error {
	locale := c.QueryParam("locale")
	ev, ok := read(c)
	if !ok || ev.reference() == "" {
		return c.JSON(http.StatusOK, h.ncco(c, callflow.Result{Step: callflow.StepError}, locale))
	}
	if ev.DTMF.Digits == "" {
		// No digits: the input timed out (dtmf.timed_out) or the caller pressed only #. Twilio
		// then falls through its <Gather> to the no-input <Say> and <Hangup/>; do the same, so
		// a silent caller is not told forever that a code they never keyed in was wrong. An
		// NCCO that ends with a talk ends the call. Nothing is submitted: no attempt is spent.
		h.cfg.Logger.InfoContext(c.Request().Context(), "vonage no input", "reference_id", ev.reference(), "timed_out", ev.DTMF.TimedOut)
		return c.JSON(http.StatusOK, []Action{{Action: "talk", Text: callflow.NoInput(locale), Language: callflow.VoiceLanguage(locale)}})
	}
	r := h.cfg.Flow.Code(c.Request().Context(), ev.reference(), ev.DTMF.Digits)
	h.cfg.Logger.InfoContext(c.Request().Context(), "vonage code", "reference_id", ev.reference(), "step", r.Step)
	return c.JSON(http.StatusOK, h.ncco(c, r, locale))
}

// ncco is the NCCO for where the call stands.
func (h *Handler) ncco(c echo.Context, r callflow.Result, locale string) []Action {
	lang := callflow.VoiceLanguage(locale)
	talk := Action{Action: "talk", Text: callflow.Prompt(r, locale), Language: lang}
	switch r.Step {
	case callflow.StepEnterCode, callflow.StepRetry, callflow.StepWaiting:
		if r.Step == callflow.StepWaiting {
			talk.Text = callflow.Prompt(callflow.Result{Step: callflow.StepEnterCode}, locale)
		}
		event := h.base(c) + InputPath
		if locale != "" {
			event += "?" + url.Values{"locale": {locale}}.Encode()
		}
		digits, _ := r.CodeDigits()
		return []Action{talk, {Action: "input", Type: []string{"dtmf"},
			DTMF: &DTMF{MaxDigits: digits, TimeOut: 10, SubmitOnHash: true}, EventURL: []string{event}, EventMethod: http.MethodPost}}
	}
	return []Action{talk}
}

func (h *Handler) base(c echo.Context) string {
	if h.cfg.PublicURL != "" {
		return h.cfg.PublicURL
	}
	req := c.Request()
	scheme := "http"
	if req.TLS != nil || req.Header.Get("X-Forwarded-Proto") == "https" {
		scheme = "https"
	}
	return scheme + "://" + req.Host
}
