package httpapi

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

// FuzzDecodeJSON: any body gives a decoded start or a 400/413/415 APIError, never a panic
// nor another kind of error.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{`{"referenceId":"a","phoneNumber":"+1"}`, `{"referenceId":1}`, `[`, `{}{}`,
		strings.Repeat("[", 20000), `{"a":` + strings.Repeat(`{"a":`, 200) + `1` + strings.Repeat("}", 201), "\xff"} {
		f.Add([]byte(s), "application/json")
	}
	f.Add([]byte(`a=b`), "application/x-www-form-urlencoded")
	e := echo.New()
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		req := httptest.NewRequest(http.MethodPost, "/v1/sessions", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", contentType)
		c := e.NewContext(req, httptest.NewRecorder())
		var b startBody
		err := decodeJSON(c, &b, true)
		if err == nil {
			return
		}
		var ae *APIError
		if !errors.As(err, &ae) || (ae.Status != 400 && ae.Status != 413 && ae.Status != 415) {
			t.Fatalf("decodeJSON(%q, %q) = %v", body, contentType, err)
		}
	})
}
