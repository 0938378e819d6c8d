package vonage

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/labstack/echo/v4"
)

// FuzzRead: whatever body and query Vonage (or anyone) sends, reading the event answers or
// refuses, never panics, and a refused body is never half-read into an event.
func FuzzRead(f *testing.F) {
	f.Add([]byte(`{"uuid":"u","from":"447400123456","dtmf":{"digits":"1234"}}`), "uuid=u&from=447400123456")
	f.Add([]byte(`{"dtmf":"x"}`), "")
	f.Add([]byte(`[]`), "%zz")
	e := echo.New()
	f.Fuzz(func(t *testing.T, body []byte, query string) {
		req := &http.Request{Method: http.MethodPost, Header: http.Header{},
			URL: &url.URL{Path: AnswerPath, RawQuery: query}}
		c := e.NewContext(req, httptest.NewRecorder())
		c.Set(bodyKey, body)
		ev, ok := read(c)
		if ok {
			_ = ev.reference()
		}
	})
}
