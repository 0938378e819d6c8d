package httpapi

import (
	"errors"
	"math"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/ivr-bridge/ivr-bridge/internal/callsession"
)

// Codes of DESIGN §7 that only the HTTP edge produces.
const (
	codeUnauthorized         = "unauthorized"
	codeInvalidSignature     = "invalid_signature"
	codePayloadTooLarge      = "payload_too_large"
	codeUnsupportedMediaType = "unsupported_media_type"
	codeInternal             = "internal_error"
)

// APIError is an error answer: the HTTP status and the {"error": {"code", "message"}} body.
// Handlers return errors; ErrorHandler alone writes them.
type APIError struct {
	Status     int
	Code       string
	Message    string
	RetryAfter int // seconds, for 429 and 503
	Err        error
}

func (e *APIError) Error() string { return e.Code + ": " + e.Message }
func (e *APIError) Unwrap() error { return e.Err }

// NewError makes an APIError.
func NewError(status int, code, message string) *APIError {
	return &APIError{Status: status, Code: code, Message: message}
}

// statusOf maps the domain's codes to HTTP statuses (DESIGN §7).
var statusOf = map[callsession.Code]int{
	callsession.CodeInvalidRequest:      http.StatusBadRequest,
	callsession.CodeNotFound:            http.StatusNotFound,
	callsession.CodeConflict:            http.StatusConflict,
	callsession.CodeInvalidState:        http.StatusConflict,
	callsession.CodeInvalidPhoneNumber:  http.StatusUnprocessableEntity,
	callsession.CodePhoneNumberWithheld: http.StatusUnprocessableEntity,
	callsession.CodeNotMobile:           http.StatusUnprocessableEntity,
	callsession.CodeRateLimited:         http.StatusTooManyRequests,
	callsession.CodeProviderError:       http.StatusBadGateway,
	callsession.CodeProviderUnavailable: http.StatusServiceUnavailable,
	callsession.CodeProviderTimeout:     http.StatusGatewayTimeout,
	callsession.CodeStorageUnavailable:  http.StatusServiceUnavailable,
}

// ToAPIError turns any error a handler returns into the answer to write.
func ToAPIError(err error) *APIError {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae
	}
	var de *callsession.Error
	if errors.As(err, &de) {
		status, ok := statusOf[de.Code]
		if !ok {
			status = http.StatusInternalServerError
		}
		out := &APIError{Status: status, Code: string(de.Code), Message: de.Message, Err: err}
		if de.RetryAfter > 0 {
			out.RetryAfter = int(math.Ceil(de.RetryAfter.Seconds()))
		} else if status == http.StatusTooManyRequests {
			out.RetryAfter = 1
		}
		return out
	}
	if errors.Is(err, callsession.ErrStorage) {
		return &APIError{Status: http.StatusServiceUnavailable, Code: string(callsession.CodeStorageUnavailable),
			Message: "session storage is unavailable", Err: err}
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		return fromEchoError(he)
	}
	return &APIError{Status: http.StatusInternalServerError, Code: codeInternal, Message: "internal error", Err: err}
}

// fromEchoError maps the errors Echo and its middleware make (no route, body limit, …).
func fromEchoError(he *echo.HTTPError) *APIError {
	out := &APIError{Status: he.Code, Err: he}
	switch he.Code {
	case http.StatusNotFound:
		out.Code, out.Message = string(callsession.CodeNotFound), "no such route"
	case http.StatusMethodNotAllowed:
		out.Code, out.Message = string(callsession.CodeInvalidRequest), "method not allowed on this route"
	case http.StatusRequestEntityTooLarge:
		out.Code, out.Message = codePayloadTooLarge, "request body is larger than 64 KiB"
	case http.StatusUnsupportedMediaType:
		out.Code, out.Message = codeUnsupportedMediaType, "send application/json"
	case http.StatusUnauthorized:
		out.Code, out.Message = codeUnauthorized, "missing or invalid API key"
	case http.StatusTooManyRequests:
		out.Code, out.Message, out.RetryAfter = string(callsession.CodeRateLimited), "too many requests", 1
	case http.StatusServiceUnavailable:
		out.Code, out.Message = string(callsession.CodeStorageUnavailable), "service unavailable"
	default:
		if he.Code >= 400 && he.Code < 500 {
			out.Code, out.Message = string(callsession.CodeInvalidRequest), "invalid request"
		} else {
			out.Status, out.Code, out.Message = http.StatusInternalServerError, codeInternal, "internal error"
		}
	}
	return out
}

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// writeError writes an APIError in the DESIGN §7 form.
func writeError(c echo.Context, ae *APIError) error {
	if ae.RetryAfter > 0 {
		c.Response().Header().Set("Retry-After", strconv.Itoa(ae.RetryAfter))
	}
	var b errorBody
	b.Error.Code, b.Error.Message = ae.Code, ae.Message
	if c.Request().Method == http.MethodHead {
		return c.NoContent(ae.Status)
	}
	return c.JSON(ae.Status, b)
}
