package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/ivr-bridge/ivr-bridge/internal/callsession"
)

// downStore is a Store whose backend does not answer; only Ping is reached in these tests.
type downStore struct{ callsession.Store }

func (downStore) Ping(context.Context) error {
	return fmt.Errorf("%w: connection refused", callsession.ErrStorage)
}

type panicAdapter struct{}

func (panicAdapter) Register(e *echo.Echo) {
	e.GET("/boom", func(echo.Context) error { panic("a bug") })
	e.GET("/plain-error", func(echo.Context) error { return errors.New("something internal: +14155552671") })
}

func serve(t *testing.T, d Deps, method, path string) (*http.Response, map[string]any) {
	t.Helper()
	d.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	srv := New(d)
	rec := httptest.NewRecorder()
	srv.Echo.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	var body map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &body)
	return rec.Result(), body
}

func TestReadyzWhenStorageIsDown(t *testing.T) {
	resp, body := serve(t, Deps{Store: downStore{}}, http.MethodGet, "/readyz")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if e, _ := body["error"].(map[string]any); e["code"] != "storage_unavailable" {
		t.Fatalf("body %v", body)
	}
	// Liveness does not depend on Redis.
	if resp, _ := serve(t, Deps{Store: downStore{}}, http.MethodGet, "/healthz"); resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz %d", resp.StatusCode)
	}
}

func TestPanicsAndUnknownErrorsAreJSON500sWithoutDetail(t *testing.T) {
	for _, path := range []string{"/boom", "/plain-error"} {
		resp, body := serve(t, Deps{Store: downStore{}, Adapters: []Adapter{panicAdapter{}}}, http.MethodGet, path)
		e, _ := body["error"].(map[string]any)
		if resp.StatusCode != http.StatusInternalServerError || e["code"] != "internal_error" {
			t.Fatalf("%s: %d %v", path, resp.StatusCode, body)
		}
		if msg, _ := e["message"].(string); strings.Contains(msg, "4155552671") || strings.Contains(msg, "bug") {
			t.Fatalf("%s: internal detail leaked: %q", path, msg)
		}
	}
}

func TestToAPIErrorMapsEveryDomainCode(t *testing.T) {
	want := map[callsession.Code]int{
		callsession.CodeInvalidRequest: 400, callsession.CodeNotFound: 404, callsession.CodeConflict: 409,
		callsession.CodeInvalidState: 409, callsession.CodeInvalidPhoneNumber: 422, callsession.CodePhoneNumberWithheld: 422,
		callsession.CodeNotMobile: 422, callsession.CodeRateLimited: 429, callsession.CodeProviderError: 502,
		callsession.CodeProviderUnavailable: 503, callsession.CodeStorageUnavailable: 503, callsession.CodeProviderTimeout: 504,
	}
	for code, status := range want {
		ae := ToAPIError(fmt.Errorf("wrapped: %w", callsession.Errorf(code, "x")))
		if ae.Status != status || ae.Code != string(code) {
			t.Errorf("%s → %d %s, want %d", code, ae.Status, ae.Code, status)
		}
	}
	if ae := ToAPIError(callsession.Errorf(callsession.CodeRateLimited, "slow down")); ae.RetryAfter < 1 {
		t.Errorf("429 without Retry-After")
	}
	if ae := ToAPIError(fmt.Errorf("get: %w", callsession.ErrStorage)); ae.Status != 503 || ae.Code != "storage_unavailable" {
		t.Errorf("bare storage error → %d %s", ae.Status, ae.Code)
	}
}
