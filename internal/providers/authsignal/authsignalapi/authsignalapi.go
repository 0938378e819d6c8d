// Package authsignalapi holds what Authsignal's HTTP APIs have in common, for the two
// clients that call them (authsignal: the Server API's /challenge and /verify; callconnect:
// Call Connect's /call/start): a JSON POST authenticated with HTTP Basic auth, the secret
// key as username and an empty password (docs.authsignal.com/api-reference/server-api/
// overview; the Call Connect reference says the same), and one error form.
//
// The error form is a JSON object with "error", "errorCode" and "errorDescription".
// Authsignal's Node SDK reads the code from "error" (src/error.ts), its Go SDK from
// "errorCode" (client/error.go); the server SDK docs (docs.authsignal.com/sdks/server/
// error-handling) name the codes invalid_configuration, invalid_credential,
// invalid_request, too_many_requests and unauthorized (a wrong secret key or a base URL of
// the wrong region), and say the description is for logs only.
package authsignalapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	json "github.com/segmentio/encoding/json"

	"github.com/ivr-bridge/ivr-bridge/internal/callsession"
)

// Body is Authsignal's error answer.
type Body struct {
	Error            string `json:"error,omitempty"`
	ErrorCode        string `json:"errorCode,omitempty"`
	ErrorDescription string `json:"errorDescription,omitempty"`
}

// The error codes Authsignal documents for its Server API.
const (
	CodeInvalidConfiguration = "invalid_configuration"
	CodeInvalidCredential    = "invalid_credential"
	CodeInvalidRequest       = "invalid_request"
	CodeTooManyRequests      = "too_many_requests"
	CodeUnauthorized         = "unauthorized"
)

// Decode is a providerhttp.ErrorDecoder for Authsignal's error form. An answer that is not
// that form (a proxy's HTML page, an empty 502) gives empty code and message: the HTTP
// status alone then classifies it.
func Decode(_ int, body []byte) (code, message string) {
	var b Body
	if err := json.Unmarshal(body, &b); err != nil {
		return "", ""
	}
	code = b.ErrorCode
	if code == "" {
		code = b.Error
	}
	// Kept whole: ProviderError masks it, then cuts it short, when it is shown. Cut here,
	// a number at the cut would lose the digits that make it read as a number.
	return code, strings.TrimSpace(b.ErrorDescription)
}

// Refine turns a ProviderRejected error whose code or description says the destination
// (phone number or email) is not valid into ProviderBadDestination, so the API answers
// invalid_phone_number rather than a generic provider_error. Authsignal documents no
// dedicated code for it (a bad number comes back as invalid_request), so the description
// decides. Any other error is returned as it is.
func Refine(err error) error {
	var pe *callsession.ProviderError
	if errors.As(err, &pe) && pe.Kind == callsession.ProviderRejected && BadDestination(pe.Code, pe.Message) {
		pe.Kind = callsession.ProviderBadDestination
	}
	return err
}

// BadDestination reports whether an error code and description say the phone number or
// email address was refused as a destination: a code naming one (invalid_phone_number), or
// a description naming one together with a word of refusal ("Invalid phone number",
// "phoneNumber must be in E.164 format"). A field merely missing is not a refused
// destination.
func BadDestination(code, message string) bool {
	c := strings.ToLower(code)
	if strings.Contains(c, "phone") || strings.Contains(c, "email") || strings.Contains(c, "destination") {
		return true
	}
	m := strings.ToLower(message)
	if !strings.Contains(m, "phone") && !strings.Contains(m, "email") && !strings.Contains(m, "e.164") {
		return false
	}
	for _, w := range []string{"invalid", "not valid", "not a valid", "malformed", "e.164", "unsupported", "not supported", "not mobile", "landline"} {
		if strings.Contains(m, w) {
			return true
		}
	}
	return false
}

// Endpoint joins an API base URL, which may carry a path prefix with or without a trailing
// slash (https://api.authsignal.com/v1), and an endpoint path, without doubling slashes.
func Endpoint(base, path string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("base URL %q is not an absolute http(s) URL", base)
	}
	return u.JoinPath(path).String(), nil
}

// NewRequest builds a POST of body as JSON to endpoint, authenticated with secret.
func NewRequest(ctx context.Context, endpoint, secret string, body any) (*http.Request, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(secret, "") // base64(secret + ":")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	return req, nil
}
