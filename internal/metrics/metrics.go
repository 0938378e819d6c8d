// Package metrics is what operators see of ivr-bridge on GET /metrics (DESIGN §8), with the
// Prometheus client library: HTTP requests by route and status, provider calls by provider
// and outcome with latency histograms, and session status changes. Each process has its own
// registry, so tests and several servers in one process never collide.
package metrics

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ivr-bridge/ivr-bridge/internal/callsession"
)

// Metrics holds the collectors of one process.
type Metrics struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	calls    *prometheus.CounterVec
	callTime *prometheus.HistogramVec
	statuses *prometheus.CounterVec
}

// New registers the collectors (and Go's runtime ones) on a fresh registry.
func New() *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ivr_bridge_http_requests_total", Help: "HTTP requests answered, by route and status.",
		}, []string{"method", "route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ivr_bridge_http_request_duration_seconds", Help: "Time to answer HTTP requests, by route.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2, 3, 4, 5},
		}, []string{"method", "route"}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ivr_bridge_provider_calls_total", Help: "Provider calls, by provider, operation and outcome.",
		}, []string{"provider", "operation", "outcome"}),
		callTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ivr_bridge_provider_call_duration_seconds", Help: "Provider call latency, by provider and operation.",
			Buckets: []float64{.025, .05, .1, .25, .5, 1, 2, 3, 4, 5},
		}, []string{"provider", "operation"}),
		statuses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ivr_bridge_session_status_changes_total", Help: "Sessions entering each status.",
		}, []string{"status"}),
	}
	m.registry.MustRegister(m.requests, m.latency, m.calls, m.callTime, m.statuses,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in Prometheus' text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// Middleware counts every request by its route pattern (never the raw path: references would
// make the label set unbounded) and status.
func (m *Metrics) Middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err) // write the answer now, so its status is the one counted
		}
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		method := c.Request().Method
		m.requests.WithLabelValues(method, route, strconv.Itoa(c.Response().Status)).Inc()
		m.latency.WithLabelValues(method, route).Observe(time.Since(start).Seconds())
		return nil
	}
}

// Register serves GET /metrics on e.
func (m *Metrics) Register(e *echo.Echo) { e.GET("/metrics", echo.WrapHandler(m.Handler())) }

// Provider wraps p so every call is counted and timed.
func (m *Metrics) Provider(p callsession.Provider) callsession.Provider {
	return &instrumented{Provider: p, m: m, name: string(p.Name())}
}

type instrumented struct {
	callsession.Provider
	m    *Metrics
	name string
}

func (i *instrumented) observe(op string, start time.Time, outcome string) {
	i.m.calls.WithLabelValues(i.name, op, outcome).Inc()
	i.m.callTime.WithLabelValues(i.name, op).Observe(time.Since(start).Seconds())
}

func (i *instrumented) Send(ctx context.Context, req callsession.SendRequest) (callsession.SendResult, error) {
	start := time.Now()
	res, err := i.Provider.Send(ctx, req)
	i.observe("send", start, outcomeOf(err))
	return res, err
}

func (i *instrumented) Check(ctx context.Context, s *callsession.Session, code string) (callsession.CheckOutcome, error) {
	start := time.Now()
	out, err := i.Provider.Check(ctx, s, code)
	outcome := outcomeOf(err)
	if err == nil {
		outcome = checkOutcomes[out]
	}
	i.observe("check", start, outcome)
	return out, err
}

func (i *instrumented) Cancel(ctx context.Context, s *callsession.Session) error {
	start := time.Now()
	err := i.Provider.Cancel(ctx, s)
	i.observe("cancel", start, outcomeOf(err))
	return err
}

var checkOutcomes = map[callsession.CheckOutcome]string{
	callsession.CodeAccepted: "code_accepted", callsession.CodeRejected: "code_rejected",
	callsession.CheckFailed: "check_failed", callsession.CheckExpired: "check_expired",
}

var kindNames = map[callsession.ProviderErrorKind]string{
	callsession.ProviderRejected: "rejected", callsession.ProviderUnavailable: "unavailable",
	callsession.ProviderTimeout: "timeout", callsession.ProviderNotFound: "not_found",
	callsession.ProviderBadDestination: "bad_destination",
}

func outcomeOf(err error) string {
	if err == nil {
		return "ok"
	}
	var pe *callsession.ProviderError
	if errors.As(err, &pe) {
		if n, ok := kindNames[pe.Kind]; ok {
			return n
		}
	}
	return "error"
}

// StatusEntered implements callsession.StatusObserver: a session entered its status.
func (m *Metrics) StatusEntered(_ context.Context, s *callsession.Session) {
	m.statuses.WithLabelValues(string(s.Status)).Inc()
}
