package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ivr-bridge/ivr-bridge/internal/callsession"
)

func TestRequestsCountedByRoutePattern(t *testing.T) {
	m := New()
	e := echo.New()
	e.Use(m.Middleware)
	e.GET("/v1/sessions/:ref", func(c echo.Context) error {
		if c.Param("ref") == "missing" {
			return echo.NewHTTPError(http.StatusNotFound)
		}
		return c.String(http.StatusOK, "ok")
	})
	m.Register(e)
	for _, p := range []string{"/v1/sessions/a", "/v1/sessions/b", "/v1/sessions/missing", "/nowhere"} {
		e.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, p, nil))
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("GET", "/v1/sessions/:ref", "200")); got != 2 {
		t.Errorf("200s on the pattern = %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("GET", "/v1/sessions/:ref", "404")); got != 1 {
		t.Errorf("404s on the pattern = %v, want 1", got)
	}
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{"ivr_bridge_http_requests_total", "ivr_bridge_http_request_duration_seconds_bucket", "go_goroutines"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(string(body), `route="/v1/sessions/a"`) {
		t.Error("a raw path became a label")
	}
}

type stubProvider struct {
	sendErr  error
	outcome  callsession.CheckOutcome
	checkErr error
}

func (stubProvider) Name() callsession.ProviderName { return callsession.ProviderAuthsignal }
func (p stubProvider) Send(context.Context, callsession.SendRequest) (callsession.SendResult, error) {
	return callsession.SendResult{ProviderRef: "ch_1"}, p.sendErr
}
func (p stubProvider) Check(context.Context, *callsession.Session, string) (callsession.CheckOutcome, error) {
	return p.outcome, p.checkErr
}
func (stubProvider) Cancel(context.Context, *callsession.Session) error { return nil }

func TestProviderCallsCountedByOutcome(t *testing.T) {
	m := New()
	ctx := context.Background()
	ok := m.Provider(stubProvider{outcome: callsession.CodeRejected})
	down := m.Provider(stubProvider{sendErr: fmt.Errorf("send: %w", &callsession.ProviderError{Kind: callsession.ProviderUnavailable})})
	if ok.Name() != callsession.ProviderAuthsignal {
		t.Fatal("the wrapper changed the name")
	}
	if res, err := ok.Send(ctx, callsession.SendRequest{}); err != nil || res.ProviderRef != "ch_1" {
		t.Fatal("the wrapper changed the answer")
	}
	_, _ = ok.Check(ctx, &callsession.Session{}, "123456")
	_, _ = down.Send(ctx, callsession.SendRequest{})
	_, _ = down.Send(ctx, callsession.SendRequest{})
	for labels, want := range map[[3]string]float64{
		{"authsignal", "send", "ok"}:             1,
		{"authsignal", "send", "unavailable"}:    2,
		{"authsignal", "check", "code_rejected"}: 1,
	} {
		if got := testutil.ToFloat64(m.calls.WithLabelValues(labels[:]...)); got != want {
			t.Errorf("%v = %v, want %v", labels, got, want)
		}
	}
	if n := testutil.CollectAndCount(m.callTime); n != 2 {
		t.Errorf("latency series = %d, want 2 (send, check)", n)
	}
	if outcomeOf(errors.New("plain")) != "error" {
		t.Error("an unclassified error is not 'error'")
	}
}

func TestSessionStatusChanges(t *testing.T) {
	m := New()
	ctx := context.Background()
	for _, st := range []callsession.Status{callsession.StatusPending, callsession.StatusSent, callsession.StatusVerified, callsession.StatusSent} {
		m.StatusEntered(ctx, &callsession.Session{Status: st})
	}
	for st, want := range map[string]float64{"pending": 1, "sent": 2, "verified": 1, "failed": 0} {
		if got := testutil.ToFloat64(m.statuses.WithLabelValues(st)); got != want {
			t.Errorf("%s = %v, want %v", st, got, want)
		}
	}
}
