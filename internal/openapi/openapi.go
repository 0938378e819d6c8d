// Package openapi serves the OpenAPI 3 description of ivr-bridge's HTTP contract (DESIGN §4,
// §6, §8) at GET /openapi.json. The document is written by hand, once, and kept true by a
// test that compares it with the routes the server registers and validates real requests
// and answers against it.
package openapi

import (
	_ "embed"
	"net/http"

	"github.com/labstack/echo/v4"
)

//go:embed openapi.json
var document []byte

// Document is the OpenAPI description, as JSON.
func Document() []byte { return document }

// Handler serves the document.
type Handler struct{}

// Register adds GET /openapi.json.
func (Handler) Register(e *echo.Echo) {
	e.GET("/openapi.json", func(c echo.Context) error {
		return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, document)
	})
}
