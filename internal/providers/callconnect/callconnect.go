// Package callconnect is the client of Authsignal Call Connect: POST /call/start sends the
// caller a link by SMS or WhatsApp, and the outcome comes back later through Authsignal's
// webhook (DESIGN §6), so this provider never checks codes.
//
// Reference: docs.authsignal.com/api-reference/call-connect-api/start-call-connect (the
// seed 000). Regional base URLs (the API's OpenAPI "servers"): US
// https://us-connect.authsignal.com, AU https://au-connect.api.authsignal.com, EU
// https://eu-connect.api.authsignal.com, CA https://ca-connect.api.authsignal.com.
package callconnect

import (
	"context"
	"errors"
	"fmt"
	"time"

	json "github.com/segmentio/encoding/json"

	"github.com/ivr-bridge/ivr-bridge/internal/callsession"
	"github.com/ivr-bridge/ivr-bridge/internal/providers/authsignal/authsignalapi"
	"github.com/ivr-bridge/ivr-bridge/internal/providers/providerhttp"
)

// DefaultBaseURL is Call Connect in Authsignal's US region.
const DefaultBaseURL = "https://us-connect.authsignal.com"

// Config configures the client.
type Config struct {
	BaseURL string        // e.g. DefaultBaseURL; may carry a path prefix
	Secret  string        // the Call Connect API secret key (not the Server API's)
	Timeout time.Duration // bound on one call; 0: providerhttp.DefaultTimeout
}

// Client talks to Call Connect. It is safe for concurrent use.
type Client struct {
	http     *providerhttp.Client
	secret   string
	startURL string
	urlErr   error
}

var _ callsession.Provider = (*Client)(nil)

// New returns a client. An unusable BaseURL is reported by every call as unavailability,
// like a provider that cannot be reached; configuration validation should catch it first.
func New(cfg Config) *Client {
	c := &Client{http: providerhttp.New(callsession.ProviderCallConnect, cfg.Timeout), secret: cfg.Secret}
	base := cfg.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	c.startURL, c.urlErr = authsignalapi.Endpoint(base, "call/start")
	return c
}

// Name returns callsession.ProviderCallConnect.
func (c *Client) Name() callsession.ProviderName { return callsession.ProviderCallConnect }

// startRequest is the /call/start body. country is never sent: numbers are already E.164
// and Call Connect only uses it to read a number in local format.
type startRequest struct {
	ReferenceID string `json:"referenceId"`
	PhoneNumber string `json:"phoneNumber"`
	Channel     string `json:"channel,omitempty"`
	UserID      string `json:"userId,omitempty"`
	Username    string `json:"username,omitempty"`
	Email       string `json:"email,omitempty"`
	Locale      string `json:"locale,omitempty"`
}

type startAnswer struct {
	MessageID string `json:"messageId"`
	Channel   string `json:"channel"`
}

// Send starts a Call Connect session, which sends the link. It is never retried here: Call
// Connect takes no idempotency key, so a repeated start after a lost answer would send a
// second message. A failure is a *callsession.ProviderError.
func (c *Client) Send(ctx context.Context, req callsession.SendRequest) (callsession.SendResult, error) {
	if c.urlErr != nil {
		return callsession.SendResult{}, c.fail(callsession.ProviderUnavailable, "invalid base URL", c.urlErr)
	}
	switch req.Channel {
	case callsession.ChannelSMS, callsession.ChannelWhatsApp, "":
	default:
		return callsession.SendResult{}, c.fail(callsession.ProviderRejected,
			fmt.Sprintf("Call Connect sends on SMS or WHATSAPP, not %s", req.Channel), nil)
	}
	hreq, err := authsignalapi.NewRequest(ctx, c.startURL, c.secret, startRequest{
		ReferenceID: req.ReferenceID, PhoneNumber: req.PhoneNumber, Channel: string(req.Channel),
		UserID: req.UserID, Username: req.Username, Email: req.Email, Locale: req.Locale,
	})
	if err != nil {
		return callsession.SendResult{}, c.fail(callsession.ProviderUnavailable, "build request", err)
	}

	_, answer, err := c.http.Do(hreq, authsignalapi.Decode)
	if err != nil {
		return callsession.SendResult{}, authsignalapi.Refine(err)
	}
	var out startAnswer
	if err := json.Unmarshal(answer, &out); err != nil {
		return callsession.SendResult{}, c.http.Malformed(err)
	}
	if out.MessageID == "" {
		return callsession.SendResult{}, c.http.Malformed(errors.New("answer without messageId"))
	}
	ch := callsession.Channel(out.Channel)
	if ch != callsession.ChannelSMS && ch != callsession.ChannelWhatsApp {
		ch = req.Channel // not said, or not one we know: the one asked for
	}
	return callsession.SendResult{ProviderRef: out.MessageID, Channel: ch}, nil
}

// Check is never called for Call Connect: the caller proves possession by opening the link,
// and Authsignal reports the outcome by webhook. It refuses, so a wiring mistake shows.
func (c *Client) Check(context.Context, *callsession.Session, string) (callsession.CheckOutcome, error) {
	return 0, c.fail(callsession.ProviderRejected,
		"codes are not checked by Call Connect: the caller opens the link and the outcome comes by webhook", nil)
}

// Cancel does nothing: Call Connect has no call to cancel a started session (its API has
// /call/start and /call/finish only, and /call/finish reports an outcome, which a
// cancellation is not).
func (c *Client) Cancel(context.Context, *callsession.Session) error { return nil }

func (c *Client) fail(kind callsession.ProviderErrorKind, msg string, err error) error {
	return &callsession.ProviderError{Provider: callsession.ProviderCallConnect, Kind: kind, Message: msg, Err: err}
}
