// Package agentpage serves the agent desktop at GET /: one small HTML page, embedded in the
// binary, that lists recent verifications live and follows one call's events. It carries no
// data: it asks for the API key and reads everything through the session API.
package agentpage

import (
	_ "embed"
	"net/http"

	"github.com/labstack/echo/v4"
)

//go:embed index.html
var page []byte

// Handler serves the page.
type Handler struct{}

// Register adds GET /.
func (Handler) Register(e *echo.Echo) {
	e.GET("/", func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Cache-Control", "no-cache")
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		return c.HTMLBlob(http.StatusOK, page)
	})
}
