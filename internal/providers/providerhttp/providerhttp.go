// Package providerhttp is the HTTP plumbing every provider client shares: a pooled client
// with a deadline, bounded reads of answers, and one classification of failures into
// callsession.ProviderError kinds (rejected, unavailable, timeout, not found).
package providerhttp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/ivr-bridge/ivr-bridge/internal/callsession"
	"github.com/ivr-bridge/ivr-bridge/internal/jsonerr"
	"github.com/ivr-bridge/ivr-bridge/internal/phone"
)

// maxAnswer bounds how much of a provider's answer is read: a real one is a few hundred bytes.
const maxAnswer = 1 << 20

// DefaultTimeout bounds one provider call, so the whole IVR answer fits in 5 s (DESIGN §7).
const DefaultTimeout = 4 * time.Second

// ErrorDecoder reads a provider's own error form from a non-2xx answer and returns its error
// code and description (either may be empty).
type ErrorDecoder func(status int, body []byte) (code, message string)

// Client sends requests to one provider.
type Client struct {
	Provider callsession.ProviderName
	HTTP     *http.Client
	Timeout  time.Duration
}

// New returns a Client for many concurrent calls: HTTP/2 to an HTTPS provider that speaks
// it, with connections opened as the calls need them (see pool), otherwise HTTP/1.1 with up
// to 1,024 idle connections kept.
func New(provider callsession.ProviderName, timeout time.Duration) *Client {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 1024
	tr.MaxIdleConnsPerHost = 1024
	tr.IdleConnTimeout = 90 * time.Second
	// An HTTP/2 connection carries many calls: one a load balancer dropped silently is
	// found by a ping after 30 s without frames, not by the calls it would swallow.
	tr.HTTP2 = &http.HTTP2Config{SendPingTimeout: 30 * time.Second, PingTimeout: 15 * time.Second}
	return &Client{Provider: provider, HTTP: &http.Client{Transport: newPool(tr)}, Timeout: timeout}
}

// Do sends req under the client's deadline (or the context's, if sooner) and returns the
// status and body of a 2xx answer. Any other outcome is a *callsession.ProviderError:
// a transport failure or 5xx/429 is ProviderUnavailable, a deadline is ProviderTimeout,
// 404 is ProviderNotFound and any other 4xx is ProviderRejected.
func (c *Client) Do(req *http.Request, decode ErrorDecoder) (int, []byte, error) {
	ctx := req.Context()
	// A send already runs under the service's provider deadline, the same duration: a
	// second timer (and a copy of the request to carry it) would change nothing.
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > c.Timeout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
		req = req.WithContext(ctx)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return 0, nil, c.transportError(ctx, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return resp.StatusCode, nil, c.transportError(ctx, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp.StatusCode, body, nil
	}
	perr := &callsession.ProviderError{Provider: c.Provider, HTTPStatus: resp.StatusCode}
	if decode != nil {
		perr.Code, perr.Message = decode(resp.StatusCode, body)
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		perr.Kind = callsession.ProviderUnavailable
		perr.RetryAfter = retryAfter(resp.Header.Get("Retry-After"))
	case resp.StatusCode >= 500:
		perr.Kind = callsession.ProviderUnavailable
	case resp.StatusCode == http.StatusNotFound:
		perr.Kind = callsession.ProviderNotFound
	default:
		perr.Kind = callsession.ProviderRejected
	}
	return resp.StatusCode, body, perr
}

// Malformed reports an answer that came back 2xx but cannot be read: the provider is not
// behaving, which is unavailability, not the caller's fault. A JSON decoder's error is
// kept as its kind only: its text quotes up to 32 bytes of the answer, which may hold the
// caller's number or a code, and this error is logged and recorded in the session's events.
// Any other error (a client's own check, which may quote a value of the answer) is masked
// as the provider's words are.
func (c *Client) Malformed(err error) error {
	return &callsession.ProviderError{Provider: c.Provider, Kind: callsession.ProviderUnavailable,
		Message: "malformed answer", Err: errors.New(phone.MaskText(jsonerr.Describe(err).Error()))}
}

func (c *Client) transportError(ctx context.Context, err error) error {
	kind := callsession.ProviderUnavailable
	var nerr net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) ||
		(errors.As(err, &nerr) && nerr.Timeout()) {
		kind = callsession.ProviderTimeout
	}
	return &callsession.ProviderError{Provider: c.Provider, Kind: kind, Err: fmt.Errorf("request: %w", err)}
}

func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil && secs >= 0 {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}
