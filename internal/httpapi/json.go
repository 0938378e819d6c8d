package httpapi

import (
	"github.com/labstack/echo/v4"
	// encoding/json's drop-in, as in the store: every answer is encoded here.
	json "github.com/segmentio/encoding/json"
)

// responseJSON is Echo's JSON serializer with segmentio's encoder for answers: the same
// bytes as encoding/json, in about a third of the time. Bodies are read by decodeJSON with
// encoding/json, whose errors name the field that was wrong.
type responseJSON struct{ echo.DefaultJSONSerializer }

// Serialize writes i as Echo's default does.
func (responseJSON) Serialize(c echo.Context, i any, indent string) error {
	enc := json.NewEncoder(c.Response())
	if indent != "" {
		enc.SetIndent("", indent)
	}
	return enc.Encode(i)
}
