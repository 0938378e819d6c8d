// Command ivr-bridge runs the bridge between IVR platforms and caller-verification
// providers. It only wires: configuration → dependencies → server → graceful shutdown.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/ivr-bridge/ivr-bridge/internal/app"
	"github.com/ivr-bridge/ivr-bridge/internal/config"
	"github.com/ivr-bridge/ivr-bridge/internal/httpapi"
	"github.com/ivr-bridge/ivr-bridge/internal/logging"
)

func main() {
	checkOnly := flag.Bool("check-config", false, "validate the configuration from the environment and exit")
	probeURL := flag.String("probe", "", "GET this URL (e.g. http://127.0.0.1:8080/readyz) and exit 0 if it answers 200, else 1: a container health check for an image without curl")
	flag.Parse()

	if *probeURL != "" {
		if err := probe(*probeURL, 3*time.Second); err != nil {
			fmt.Fprintln(os.Stderr, "ivr-bridge: probe:", err)
			os.Exit(1)
		}
		return
	}

	cfg, err := config.Load(os.Getenv)
	if err == nil {
		_, err = app.Providers(cfg)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ivr-bridge:", err)
		os.Exit(2)
	}
	if *checkOnly {
		fmt.Println("ivr-bridge: configuration is valid")
		return
	}
	log, closeLog := logging.Open(os.Stderr, cfg.LogLevel, cfg.LogFlushInterval)
	defer func() {
		// A panic on this goroutine (the wiring, the shutdown) would leave the info lines
		// before it in the buffer: write them out, then let the panic go on.
		if p := recover(); p != nil {
			log.Error("ivr-bridge panicked", "panic", fmt.Sprint(p))
			_ = closeLog()
			panic(p)
		}
	}()
	err = run(cfg, log)
	if err != nil {
		log.Error("ivr-bridge stopped", "err", err)
	}
	if cerr := closeLog(); cerr != nil {
		fmt.Fprintln(os.Stderr, "ivr-bridge: writing the last log lines:", cerr)
	}
	if err != nil {
		os.Exit(1)
	}
}

func run(cfg config.Config, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	switch {
	case a.Embedded:
		log.Warn("using the embedded in-memory Redis (miniredis): sessions are lost at exit; set REDIS_URL for a real one")
	case len(cfg.RedisClusterAddrs) > 0:
		log.Info("using Redis Cluster", "seeds", len(cfg.RedisClusterAddrs))
	case len(cfg.RedisSentinelAddrs) > 0:
		log.Info("using Redis Sentinel", "master", cfg.RedisSentinelMaster, "sentinels", len(cfg.RedisSentinelAddrs))
	default:
		log.Info("using Redis", "url", redactURL(cfg.RedisURL))
	}
	if cfg.RedisAutoPipeline && !a.Store.AutoPipelined() {
		log.Warn("REDIS_AUTOPIPELINE: the Redis client refused an auto-pipeliner; every command takes a pooled connection")
	}
	enabled := cfg.EnabledProviders()
	if len(enabled) == 0 {
		log.Warn("no provider has credentials: every start will answer provider_unavailable")
	}
	log.Info("providers", "enabled", enabled, "default", cfg.Session.DefaultProvider, "fallback", cfg.Session.Fallback)
	if len(cfg.APIKeys) == 0 {
		log.Warn("IVR_BRIDGE_API_KEYS is empty: the /v1/sessions API is open to anyone who can reach it")
	}

	hs := &http.Server{Addr: cfg.Addr, Handler: a.Handler, ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout: 10 * time.Second, WriteTimeout: 0, IdleTimeout: 120 * time.Second}
	hs.RegisterOnShutdown(a.CloseStreams)
	errc := make(chan error, 2)
	go func() {
		log.Info("listening", "addr", cfg.Addr)
		errc <- hs.ListenAndServe()
	}()
	var ms *http.Server
	if cfg.MetricsAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", a.Metrics)
		ms = &http.Server{Addr: cfg.MetricsAddr, Handler: httpapi.WithRequestID(mux), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			log.Info("metrics listening", "addr", cfg.MetricsAddr)
			errc <- ms.ListenAndServe()
		}()
	}
	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	case <-ctx.Done():
	}
	log.Info("shutting down: draining in-flight requests")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if ms != nil {
		_ = ms.Shutdown(sctx)
	}
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("draining: %w", err)
	}
	log.Info("stopped")
	return nil
}

// redactURL is a Redis URL for the log: its scheme, user, host and database, not its
// password, and not its query or fragment (config refuses a URL where a password's
// unescaped /, ? or # would have moved part of it there; this is the log's own guard).
func redactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		if strings.Contains(raw, "#") || strings.ContainsAny(u.Path+u.RawQuery, "@:") {
			return "(not shown: a password's /, ? or # may have cut it)"
		}
		u.RawQuery = ""
		return u.Redacted()
	}
	return "(unparseable)"
}

// probe GETs url and succeeds only on a 200 within timeout.
func probe(url string, timeout time.Duration) error {
	c := &http.Client{Timeout: timeout}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %d", url, resp.StatusCode)
	}
	return nil
}
