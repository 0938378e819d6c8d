package main

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"github.com/ivr-bridge/ivr-bridge/internal/app"
	"github.com/ivr-bridge/ivr-bridge/internal/callsession"
	"github.com/ivr-bridge/ivr-bridge/internal/config"
	"github.com/ivr-bridge/ivr-bridge/internal/logging"
	"github.com/ivr-bridge/ivr-bridge/internal/providers/providerhttp"
	"github.com/ivr-bridge/ivr-bridge/internal/store"
)

// The program runs its servers as child processes of itself, so each is measured on its
// own (CPU, RSS, sockets) like the real binary: LOADBENCH_ROLE picks the role and the rest
// of the environment is the bridge's own variables.
const (
	roleEnv         = "LOADBENCH_ROLE"
	roleBaseline    = "baseline"
	roleBridge      = "bridge" // app.New in this program, the wiring of cmd/ivr-bridge
	cpuProfileEnv   = "LOADBENCH_CPUPROFILE"
	baselinePrefEnv = "LOADBENCH_BASELINE_PREFIX"
)

// serveRole runs a child role until SIGTERM and returns the exit code.
func serveRole(role string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	var err error
	switch role {
	case roleBaseline:
		err = serveBaseline(ctx)
	case roleBridge:
		err = serveBridge(ctx)
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadbench", role+":", err)
		return 1
	}
	return 0
}

// listen serves h on addr until ctx ends, then drains.
func listen(ctx context.Context, addr string, h http.Handler) error {
	hs := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.ListenAndServe() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return hs.Shutdown(sctx)
}

// serveBridge is cmd/ivr-bridge's wiring (config from the environment, app.New, an
// http.Server with the same timeouts), optionally under the CPU profiler: the bridge binary
// exposes no pprof, and this is the same code.
func serveBridge(ctx context.Context) error {
	cfg, err := config.Load(os.Getenv)
	if err != nil {
		return err
	}
	log, closeLog := logging.Open(os.Stderr, cfg.LogLevel, cfg.LogFlushInterval)
	defer closeLog()
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	if path := os.Getenv(cpuProfileEnv); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	return listen(ctx, cfg.Addr, a.Handler)
}

// baseline is the floor: the work a start cannot avoid and nothing else. It checks the API
// key, decodes the body, makes one atomic Redis create with a TTL, calls the provider and
// encodes the answer. No number parsing, no session document, no index, no status update,
// no logs, no metrics but the two timings the comparison reads (four atomic adds a start).
// Its Redis client is the bridge's kind: unless REDIS_AUTOPIPELINE=false, a command goes
// straight on a pooled connection while one is free and through the auto-pipeliner beyond,
// as the bridge's store sends them, so the comparison measures the bridge's work, not a
// client setting.
type baseline struct {
	rdb         *redis.Client
	send        *store.Sender // as the bridge's store sends
	http        *http.Client
	prefix      string
	apiKey      string
	providerURL string
	secret      string
	timeout     time.Duration
	// What the bridge's /metrics times, kept the cheapest way (see metrics): the handler's
	// time for the starts, and the provider calls' time, in nanoseconds.
	starts, handlerNS, calls, providerNS atomic.Int64
}

// timed counts a start and the time its handler took, as the bridge's metrics middleware does.
func (b *baseline) timed(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		t0 := time.Now()
		err := next(c)
		b.handlerNS.Add(int64(time.Since(t0)))
		b.starts.Add(1)
		return err
	}
}

// metrics serves the four series of the bridge's /metrics that time a start
// (readServerTimes), so both servers' time inside is read alike.
func (b *baseline) metrics(c echo.Context) error {
	sec := func(ns int64) string { return strconv.FormatFloat(float64(ns)/1e9, 'f', -1, 64) }
	return c.String(http.StatusOK, fmt.Sprintf("%s %s\n%s %d\n%s %s\n%s %d\n",
		handlerSum, sec(b.handlerNS.Load()), handlerCount, b.starts.Load(),
		providerSum, sec(b.providerNS.Load()), providerCount, b.calls.Load()))
}

type baselineStart struct {
	ReferenceID string `json:"referenceId"`
	PhoneNumber string `json:"phoneNumber"`
	Country     string `json:"country,omitempty"`
	Channel     string `json:"channel,omitempty"`
}

type baselineAnswer struct {
	ReferenceID string `json:"referenceId"`
	Provider    string `json:"provider"`
	Channel     string `json:"channel"`
	PhoneNumber string `json:"phoneNumber"`
	Status      string `json:"status"`
	MessageID   string `json:"messageId"`
}

func serveBaseline(ctx context.Context) error {
	opts, err := redis.ParseURL(os.Getenv("REDIS_URL"))
	if err != nil {
		return err
	}
	timeout, err := time.ParseDuration(os.Getenv("PROVIDER_TIMEOUT"))
	if err != nil {
		return fmt.Errorf("PROVIDER_TIMEOUT: %w", err)
	}
	// The provider's HTTP client is the bridge's (its pools, HTTP/1.1 and HTTP/2): the
	// comparison is of the work around the call, not of how calls are carried.
	providerClient := providerhttp.New(callsession.ProviderCallConnect, timeout).HTTP
	opts.ContextTimeoutEnabled = true // as store.Open sets it
	client := redis.NewClient(opts)
	defer client.Close()
	b := &baseline{
		rdb: client, http: providerClient,
		prefix: os.Getenv(baselinePrefEnv), apiKey: os.Getenv("IVR_BRIDGE_API_KEYS"),
		providerURL: strings.TrimRight(os.Getenv("CALLCONNECT_BASE_URL"), "/") + "/call/start",
		secret:      os.Getenv("CALLCONNECT_SECRET"), timeout: timeout,
	}
	var ap *redis.AutoPipeliner
	if os.Getenv("REDIS_AUTOPIPELINE") != "false" {
		if ap, err = client.AsyncAutoPipeline(); err != nil { // the store's (WithAutoPipeline)
			return err
		}
	}
	b.send = store.NewSender(client, ap)
	if err := b.rdb.Ping(ctx).Err(); err != nil {
		return err
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.POST("/v1/sessions", b.start, b.timed)
	e.GET("/metrics", b.metrics)
	e.GET("/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok") })
	return listen(ctx, os.Getenv("IVR_BRIDGE_ADDR"), e)
}

// setNX is the one Redis command of a start, sent as the bridge's store sends its own.
func (b *baseline) setNX(ctx context.Context, key string, val []byte) (bool, error) {
	cmd := b.rdb.Pipeline().SetNX(ctx, key, val, time.Hour) // a pipeline never run: it builds the command
	if err := b.send.Process(ctx, cmd); err != nil {
		return false, err
	}
	return cmd.Val(), nil
}

var errProviderAnswer = errors.New("the provider's answer is not a sent message")

type providerAnswer struct {
	MessageID string `json:"messageId"`
	Channel   string `json:"channel"`
}

// call makes the provider call and reads its answer, timed as the bridge's metrics time it.
func (b *baseline) call(req *http.Request) (providerAnswer, error) {
	t0 := time.Now()
	defer func() { b.providerNS.Add(int64(time.Since(t0))); b.calls.Add(1) }()
	var ans providerAnswer
	resp, err := b.http.Do(req)
	if err != nil {
		return ans, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&ans) != nil || ans.MessageID == "" {
		return ans, errProviderAnswer
	}
	return ans, nil
}

func fail(c echo.Context, status int, code string) error {
	return c.JSON(status, map[string]map[string]string{"error": {"code": code}})
}

func (b *baseline) start(c echo.Context) error {
	auth := c.Request().Header.Get("Authorization")
	if subtle.ConstantTimeCompare([]byte(auth), []byte("Bearer "+b.apiKey)) != 1 {
		return fail(c, http.StatusUnauthorized, "unauthorized")
	}
	var req baselineStart
	if err := json.NewDecoder(c.Request().Body).Decode(&req); err != nil || req.ReferenceID == "" || req.PhoneNumber == "" {
		return fail(c, http.StatusBadRequest, "invalid_request")
	}
	ctx := c.Request().Context()
	rec, _ := json.Marshal(baselineAnswer{ReferenceID: req.ReferenceID, PhoneNumber: req.PhoneNumber, Status: "pending"})
	created, err := b.setNX(ctx, b.prefix+req.ReferenceID, rec)
	if err != nil {
		return fail(c, http.StatusServiceUnavailable, "storage_unavailable")
	}
	if !created {
		return fail(c, http.StatusConflict, "conflict")
	}
	body, _ := json.Marshal(baselineStart{ReferenceID: req.ReferenceID, PhoneNumber: req.PhoneNumber, Channel: "SMS"})
	pctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(pctx, http.MethodPost, b.providerURL, bytes.NewReader(body))
	if err != nil {
		return fail(c, http.StatusServiceUnavailable, "provider_unavailable")
	}
	hreq.SetBasicAuth(b.secret, "")
	hreq.Header.Set("Content-Type", "application/json")
	ans, err := b.call(hreq)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fail(c, http.StatusGatewayTimeout, "provider_timeout")
		}
		if errors.Is(err, errProviderAnswer) {
			return fail(c, http.StatusBadGateway, "provider_error")
		}
		return fail(c, http.StatusServiceUnavailable, "provider_unavailable")
	}
	return c.JSON(http.StatusCreated, baselineAnswer{ReferenceID: req.ReferenceID, Provider: "callconnect",
		Channel: ans.Channel, PhoneNumber: req.PhoneNumber, Status: "sent", MessageID: ans.MessageID})
}
