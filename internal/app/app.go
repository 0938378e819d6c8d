// Package app wires ivr-bridge together: configuration in, an HTTP handler out. The command
// and the end-to-end tests build the service the same way, through New, so what is tested is
// what runs.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ivr-bridge/ivr-bridge/internal/agentpage"
	"github.com/ivr-bridge/ivr-bridge/internal/callsession"
	"github.com/ivr-bridge/ivr-bridge/internal/config"
	"github.com/ivr-bridge/ivr-bridge/internal/httpapi"
	"github.com/ivr-bridge/ivr-bridge/internal/live"
	"github.com/ivr-bridge/ivr-bridge/internal/metrics"
	"github.com/ivr-bridge/ivr-bridge/internal/openapi"
	"github.com/ivr-bridge/ivr-bridge/internal/providers/authentix"
	"github.com/ivr-bridge/ivr-bridge/internal/providers/authsignal"
	"github.com/ivr-bridge/ivr-bridge/internal/providers/breaker"
	"github.com/ivr-bridge/ivr-bridge/internal/providers/callconnect"
	"github.com/ivr-bridge/ivr-bridge/internal/store"
	authsignalhook "github.com/ivr-bridge/ivr-bridge/internal/webhooks/authsignal"
	"github.com/ivr-bridge/ivr-bridge/internal/webhooks/callflow"
	"github.com/ivr-bridge/ivr-bridge/internal/webhooks/connect"
	"github.com/ivr-bridge/ivr-bridge/internal/webhooks/genesys"
	"github.com/ivr-bridge/ivr-bridge/internal/webhooks/twilio"
	"github.com/ivr-bridge/ivr-bridge/internal/webhooks/vonage"
)

// App is a wired service.
type App struct {
	Handler http.Handler
	// Metrics serves /metrics; it is also on Handler unless IVR_BRIDGE_METRICS_ADDR asks for
	// a listener of its own.
	Metrics  http.Handler
	Service  *callsession.Service
	Store    *store.Redis
	Embedded bool // the store is the in-process miniredis
	// CloseStreams ends the open event streams, so a graceful shutdown does not wait on them.
	CloseStreams func()
	close        func() error
}

// Close releases the store connection (and stops the embedded Redis).
func (a *App) Close() error { return a.close() }

// Option adjusts the wiring, for tests.
type Option func(*options)

type options struct {
	clock     callsession.Clock
	storeOpts []store.Option
	heartbeat time.Duration
}

// WithHeartbeat sets the event streams' idle heartbeat (tests shorten it).
func WithHeartbeat(d time.Duration) Option { return func(o *options) { o.heartbeat = d } }

// WithClock replaces the system clock.
func WithClock(c callsession.Clock) Option { return func(o *options) { o.clock = c } }

// WithStoreOptions passes options to the Redis store (a key prefix, in tests sharing a Redis).
func WithStoreOptions(opts ...store.Option) Option {
	return func(o *options) { o.storeOpts = append(o.storeOpts, opts...) }
}

// New opens the store, builds the provider clients and the HTTP server.
func New(ctx context.Context, cfg config.Config, log *slog.Logger, opts ...Option) (*App, error) {
	o := options{clock: callsession.SystemClock{}}
	for _, opt := range opts {
		opt(&o)
	}
	providers, err := Providers(cfg)
	if err != nil {
		return nil, err
	}
	m := metrics.New()
	for i, p := range providers {
		providers[i] = m.Provider(breaker.Wrap(p, breaker.Settings{Logger: log}))
	}
	backend, err := store.Open(ctx, store.Options{URL: cfg.RedisURL, ClusterAddrs: cfg.RedisClusterAddrs,
		SentinelAddrs: cfg.RedisSentinelAddrs, SentinelMaster: cfg.RedisSentinelMaster, Password: cfg.RedisPassword,
		TLS: cfg.RedisTLS, CAFile: cfg.RedisTLSCAFile})
	if err != nil {
		return nil, fmt.Errorf("opening Redis: %w", err)
	}
	storeOpts := []store.Option{store.WithWaitReplicas(cfg.RedisWaitReplicas, cfg.RedisWaitTimeout)}
	if cfg.RedisAutoPipeline {
		storeOpts = append(storeOpts, store.WithAutoPipeline())
	}
	storeOpts = append(storeOpts, o.storeOpts...)
	rs := store.NewRedis(backend.Client, storeOpts...)
	hub := live.NewHub(backend.Client, rs.Prefix(), rs.Get,
		func(s *callsession.Session) any { return httpapi.View(s) }, log)
	svc := callsession.NewService(cfg.Session, rs, providers,
		callsession.WithLogger(log), callsession.WithLimiter(rs), callsession.WithClock(o.clock),
		callsession.WithStatusObserver(m), callsession.WithPublisher(hub))
	flow := callflow.Flow{Service: svc, Dedup: rs, CheckTimeout: svc.Config().ProviderTimeout}
	adapters := []httpapi.Adapter{
		&authsignalhook.Webhook{Service: svc, Secret: cfg.Authsignal.WebhookSecret, Clock: o.clock, Logger: log},
		connect.New(connect.Config{APIKey: cfg.ConnectAPIKey, Flow: flow, Logger: log}),
		genesys.New(genesys.Config{Username: cfg.GenesysUsername, Password: cfg.GenesysPassword, Flow: flow, Logger: log}),
		twilio.New(twilio.Config{AuthToken: cfg.TwilioAuthToken, PublicURL: cfg.PublicURL, Flow: flow, Logger: log}),
		vonage.New(vonage.Config{SignatureSecret: cfg.VonageSignatureSecret, PublicURL: cfg.PublicURL, Flow: flow, Logger: log}),
		openapi.Handler{},
		agentpage.Handler{},
	}
	if cfg.MetricsAddr == "" {
		adapters = append(adapters, m)
	}
	srv := httpapi.New(httpapi.Deps{
		Service: svc, Store: rs, Limiter: rs, Logger: log,
		APIKeys: cfg.APIKeys, StartsPerKey: cfg.StartsPerKey,
		Middleware: []echo.MiddlewareFunc{m.Middleware},
		Adapters:   adapters,
		Events:     hub, Heartbeat: o.heartbeat,
	})
	// The hub's one subscription lives as long as the app.
	hubCtx, stopHub := context.WithCancel(context.WithoutCancel(ctx))
	hubDone := make(chan struct{})
	go func() {
		defer close(hubDone)
		hub.Run(hubCtx)
	}()
	closeAll := func() error {
		stopHub()
		<-hubDone
		return backend.Close()
	}
	return &App{Handler: srv.Echo, Metrics: m.Handler(), Service: svc, Store: rs, Embedded: backend.Embedded,
		CloseStreams: srv.CloseStreams, close: closeAll}, nil
}

// Providers makes a client for every provider whose credentials are given. A configuration
// error (an Authentix template map that is not JSON) is reported before anything starts.
func Providers(cfg config.Config) ([]callsession.Provider, error) {
	timeout := cfg.Session.ProviderTimeout
	var out []callsession.Provider
	if cfg.CallConnect.Enabled() {
		out = append(out, callconnect.New(callconnect.Config{BaseURL: cfg.CallConnect.BaseURL, Secret: cfg.CallConnect.Secret, Timeout: timeout}))
	}
	if cfg.Authsignal.Enabled() {
		out = append(out, authsignal.New(authsignal.Config{BaseURL: cfg.Authsignal.BaseURL, Secret: cfg.Authsignal.Secret,
			Action: cfg.Authsignal.Action, Timeout: timeout}))
	}
	if cfg.Authentix.Enabled() {
		a := cfg.Authentix
		p, err := authentix.New(authentix.Config{BaseURL: a.BaseURL, APIUser: a.APIUser, APIKey: a.APIKey,
			ConfigurationID: a.ConfigurationID, ServiceName: a.ServiceName, TemplateID: a.TemplateID,
			TemplateDataMap: a.TemplateDataMap, PaymentInfo: a.Payment, CodeLength: a.CodeLength, Timeout: timeout})
		if err != nil {
			return nil, fmt.Errorf("config: AUTHENTIX: %w", err)
		}
		out = append(out, p)
	}
	return out, nil
}
