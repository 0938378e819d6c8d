// Package httpapi is ivr-bridge's HTTP edge: the Echo server, its middleware (request IDs,
// logs, API keys, body limits), the JSON session API of DESIGN §4, health checks, and the
// one error handler that writes every failure in the DESIGN §7 form.
package httpapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/ivr-bridge/ivr-bridge/internal/callsession"
	"github.com/ivr-bridge/ivr-bridge/internal/logging"
)

// MaxBody is the largest request body accepted (DESIGN §7).
const MaxBody = "64K"

// Deps are what the HTTP edge needs.
type Deps struct {
	Service *callsession.Service
	Store   callsession.Store // for /readyz
	Limiter callsession.Limiter
	Logger  *slog.Logger
	APIKeys []string
	// StartsPerKey bounds session starts per second per API key (0: no bound).
	StartsPerKey int
	// Adapters are the platform and provider webhook endpoints; each registers its routes.
	Adapters []Adapter
	// Middleware runs on every request inside the request ID and log middleware (metrics).
	Middleware []echo.MiddlewareFunc
	// Events serves GET /v1/sessions/{ref}/events; Heartbeat is its idle interval.
	Events    EventSource
	Heartbeat time.Duration
}

// Adapter is a platform's or provider's endpoint set: adding a platform is adding a package
// that implements it, not editing a switch.
type Adapter interface {
	Register(e *echo.Echo)
}

// Server is the configured Echo instance; Routes lets platform adapters add their routes.
type Server struct {
	Echo *echo.Echo
	deps Deps
	keys [][sha256.Size]byte

	// streamsDone closes when the server shuts down: event streams never end by themselves,
	// and a graceful shutdown waits for every open request.
	streamsDone chan struct{}
	closeOnce   sync.Once
}

// CloseStreams ends every open event stream (call it when shutdown begins).
func (s *Server) CloseStreams() { s.closeOnce.Do(func() { close(s.streamsDone) }) }

// New builds the server with every API route registered.
func New(d Deps) *Server {
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	s := &Server{Echo: e, deps: d, streamsDone: make(chan struct{})}
	for _, k := range d.APIKeys {
		s.keys = append(s.keys, sha256.Sum256([]byte(k)))
	}
	e.HTTPErrorHandler = s.handleError
	e.JSONSerializer = responseJSON{}
	e.Use(requestID, s.logRequests)
	e.Use(d.Middleware...)
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{
		// Echo would print the panic in its own text format; every log line is JSON here.
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			s.deps.Logger.ErrorContext(c.Request().Context(), "panic", "err", err, "stack", string(stack))
			return err
		},
	}), middleware.BodyLimit(MaxBody))

	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)

	// The key is checked per route, not on a group: a group with middleware catches every
	// path under it, and a wrong method would answer 404 instead of 405.
	key := s.requireAPIKey
	e.POST("/v1/sessions", s.startSession, key, s.limitStarts)
	e.GET("/v1/sessions", s.listSessions, key)
	e.GET("/v1/sessions/:ref", s.getSession, key)
	e.POST("/v1/sessions/:ref/code", s.submitCode, key)
	e.POST("/v1/sessions/:ref/resend", s.resend, key)
	e.POST("/v1/sessions/:ref/cancel", s.cancel, key)
	e.GET("/v1/sessions/:ref/events", s.sessionEvents, s.requireAPIKeyOrQuery)

	for _, a := range d.Adapters {
		a.Register(e)
	}
	return s
}

// handleError is Echo's one error handler: every error a handler or middleware returns is
// written here, in the DESIGN §7 form, and logged once.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	ae := ToAPIError(err)
	ctx := c.Request().Context()
	if ae.Status >= 500 {
		s.deps.Logger.ErrorContext(ctx, "request failed", "code", ae.Code, "err", err)
	} else {
		s.deps.Logger.DebugContext(ctx, "request refused", "code", ae.Code, "err", err)
	}
	if werr := writeError(c, ae); werr != nil {
		s.deps.Logger.ErrorContext(ctx, "writing error answer", "err", werr)
	}
}

// requestID takes X-Request-Id from the request when it is a sane token (so a caller cannot
// inject into headers or logs) or makes one, answers with it, and puts it in the context for
// every log line of the request.
func requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := requestIDOf(c.Request())
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		req := c.Request()
		c.SetRequest(req.WithContext(logging.WithRequestID(req.Context(), id)))
		return next(c)
	}
}

// requestIDOf is the request's own X-Request-Id when it is a safe one (no spaces or control
// characters, at most 64 characters: it goes into logs and headers), else a fresh one.
func requestIDOf(req *http.Request) string {
	id := req.Header.Get(echo.HeaderXRequestID)
	if !callsession.ValidReferenceID(id) || len(id) > 64 {
		var b [12]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	return id
}

// WithRequestID gives handlers served outside the Echo server (the metrics listener) the
// same X-Request-Id on every response and in the request's log context (DESIGN §8).
func WithRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		id := requestIDOf(req)
		w.Header().Set(echo.HeaderXRequestID, id)
		next.ServeHTTP(w, req.WithContext(logging.WithRequestID(req.Context(), id)))
	})
}

// logRequests writes one line per request: route, status, latency. Paths carry references,
// never phone numbers or codes (those travel in bodies).
func (s *Server) logRequests(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		level := slog.LevelInfo
		if c.Path() == "/healthz" || c.Path() == "/readyz" {
			level = slog.LevelDebug
		}
		s.deps.Logger.Log(c.Request().Context(), level, "request",
			"method", c.Request().Method, "route", c.Path(), "status", c.Response().Status,
			"duration_ms", float64(time.Since(start).Microseconds())/1000)
		return nil
	}
}

// requireAPIKey checks `Authorization: Bearer <key>` against the configured keys. Keys are
// compared as SHA-256 digests in constant time, every key tried, so neither a key's content
// nor its length leaks through timing. No keys configured: the API is open.
func (s *Server) requireAPIKey(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if len(s.keys) == 0 {
			return next(c)
		}
		key, ok := bearer(c.Request().Header.Get(echo.HeaderAuthorization))
		if ok && s.knownKey(key) {
			c.Set(ctxKeyAPIKey, key)
			return next(c)
		}
		c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="ivr-bridge"`)
		return NewError(http.StatusUnauthorized, codeUnauthorized, "missing or invalid API key")
	}
}

const ctxKeyAPIKey = "apiKey"

// requireAPIKeyOrQuery is requireAPIKey that also takes the key as ?key=, for the event
// stream only: a browser's EventSource cannot send headers. The key then appears in the
// URL, so access logs must not record query strings (ours log the route only).
func (s *Server) requireAPIKeyOrQuery(next echo.HandlerFunc) echo.HandlerFunc {
	check := s.requireAPIKey(next)
	return func(c echo.Context) error {
		if k := c.QueryParam("key"); k != "" && len(s.keys) > 0 && c.Request().Header.Get(echo.HeaderAuthorization) == "" {
			if !s.knownKey(k) {
				return NewError(http.StatusUnauthorized, codeUnauthorized, "missing or invalid API key")
			}
			c.Set(ctxKeyAPIKey, k)
			return next(c)
		}
		return check(c)
	}
}

func (s *Server) knownKey(key string) bool {
	sum := sha256.Sum256([]byte(key))
	match := 0
	for i := range s.keys {
		match |= subtle.ConstantTimeCompare(sum[:], s.keys[i][:])
	}
	return match == 1
}

func bearer(h string) (string, bool) {
	const prefix = "Bearer "
	if len(h) <= len(prefix) || !equalFoldASCII(h[:len(prefix)], prefix) {
		return "", false
	}
	return h[len(prefix):], true
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i]|0x20, b[i]|0x20
		if x != y {
			return false
		}
	}
	return true
}

// limitStarts bounds session starts per second per API key (DESIGN §7), shared by every
// replica through the Limiter.
func (s *Server) limitStarts(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.deps.Limiter == nil || s.deps.StartsPerKey <= 0 {
			return next(c)
		}
		key, _ := c.Get(ctxKeyAPIKey).(string)
		sum := sha256.Sum256([]byte(key))
		ok, retry, err := s.deps.Limiter.Allow(c.Request().Context(), "starts:key:"+hex.EncodeToString(sum[:8]),
			s.deps.StartsPerKey, time.Second)
		if err != nil {
			return err
		}
		if !ok {
			return &callsession.Error{Code: callsession.CodeRateLimited, Message: "too many session starts for this API key", RetryAfter: retry}
		}
		return next(c)
	}
}

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), time.Second)
	defer cancel()
	if err := s.deps.Store.Ping(ctx); err != nil {
		return &APIError{Status: http.StatusServiceUnavailable, Code: string(callsession.CodeStorageUnavailable),
			Message: "Redis does not answer", Err: err}
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}
