// Package authsignal is the client of Authsignal's Server API for one-time codes:
// POST /challenge sends a code by SMS, WhatsApp or email, POST /verify checks the code the
// caller keys in.
//
// References: docs.authsignal.com/api-reference/server-api/initiate-challenge (the seed
// 001) and .../verify-challenge; docs.authsignal.com/sdks/server/challenges. Regional base
// URLs: US https://api.authsignal.com/v1, AU https://au.api.authsignal.com/v1, EU
// https://eu.api.authsignal.com/v1, CA https://ca.api.authsignal.com/v1 (a 401
// "unauthorized" also answers a base URL of the wrong region). Authsignal limits sends to 6
// SMS OTP and 12 email OTP per 10 minutes, and verifications to 10 per 5 minutes per
// authenticator type (docs.authsignal.com/learn/faqs).
package authsignal

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/cenkalti/backoff/v5"
	json "github.com/segmentio/encoding/json"

	"github.com/ivr-bridge/ivr-bridge/internal/callsession"
	"github.com/ivr-bridge/ivr-bridge/internal/providers/authsignal/authsignalapi"
	"github.com/ivr-bridge/ivr-bridge/internal/providers/providerhttp"
)

// Defaults of the configuration (DESIGN §2).
const (
	DefaultBaseURL = "https://api.authsignal.com/v1"
	DefaultAction  = "ivrVerification"
)

// Failure reasons of /verify when isVerified is false (the SDKs' VerificationFailureReason;
// the reference documents no others).
const (
	ReasonInvalidOrExpired    = "CODE_INVALID_OR_EXPIRED"
	ReasonMaxAttemptsExceeded = "MAX_ATTEMPTS_EXCEEDED"
)

// Bounds of the retries of /challenge.
const (
	maxSendAttempts = 3
	// minAttempt is the least time worth starting another attempt with.
	minAttempt = 250 * time.Millisecond
	// minFirstAttempt: the first attempt gets half the budget, so a hung connection leaves
	// room for a retry, but never less than this (or the whole budget when it is shorter).
	minFirstAttempt = time.Second
)

// Config configures the client.
type Config struct {
	BaseURL string        // e.g. DefaultBaseURL, with its /v1
	Secret  string        // the Server API secret key
	Action  string        // the action code challenges are recorded under; "": DefaultAction
	Timeout time.Duration // bound on one Send (all its attempts) or Check; 0: providerhttp.DefaultTimeout
}

// Client talks to Authsignal's Server API. It is safe for concurrent use.
type Client struct {
	http                    *providerhttp.Client
	secret, action          string
	challengeURL, verifyURL string
	urlErr                  error
	backOff                 func() backoff.BackOff
}

var _ callsession.Provider = (*Client)(nil)

// New returns a client. An unusable BaseURL is reported by every call as unavailability,
// like a provider that cannot be reached; configuration validation should catch it first.
func New(cfg Config) *Client {
	c := &Client{
		http:   providerhttp.New(callsession.ProviderAuthsignal, cfg.Timeout),
		secret: cfg.Secret, action: cfg.Action,
		backOff: func() backoff.BackOff {
			return &backoff.ExponentialBackOff{InitialInterval: 100 * time.Millisecond,
				RandomizationFactor: 0.5, Multiplier: 2, MaxInterval: time.Second}
		},
	}
	if c.action == "" {
		c.action = DefaultAction
	}
	base := cfg.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	c.challengeURL, c.urlErr = authsignalapi.Endpoint(base, "challenge")
	if c.urlErr == nil {
		c.verifyURL, c.urlErr = authsignalapi.Endpoint(base, "verify")
	}
	return c
}

// Name returns callsession.ProviderAuthsignal.
func (c *Client) Name() callsession.ProviderName { return callsession.ProviderAuthsignal }

type challengeRequest struct {
	VerificationMethod string `json:"verificationMethod"`
	Action             string `json:"action"`
	IdempotencyKey     string `json:"idempotencyKey,omitempty"`
	PhoneNumber        string `json:"phoneNumber,omitempty"`
	Email              string `json:"email,omitempty"`
	UserID             string `json:"userId,omitempty"`
	Locale             string `json:"locale,omitempty"`
}

type challengeAnswer struct {
	ChallengeID    string  `json:"challengeId"`
	IdempotencyKey string  `json:"idempotencyKey"`
	ExpiresAt      float64 `json:"expiresAt"` // Unix seconds
}

// Send initiates a challenge, which sends the code. The request carries the session's
// idempotency key, which makes a repeated start return the same challenge rather than send
// again (DESIGN §6), so Send retries what may be passing: a timeout, a transport failure, a
// 5xx, an unreadable 2xx. At most 3 attempts, with exponential backoff, all inside the
// earlier of the caller's deadline and the configured timeout. A 4xx is never retried (the
// request is wrong, or 429: Authsignal's send limits count per 10 minutes, far beyond an
// IVR's wait), and without an idempotency key nothing is retried. A failure is a
// *callsession.ProviderError.
func (c *Client) Send(ctx context.Context, req callsession.SendRequest) (callsession.SendResult, error) {
	if c.urlErr != nil {
		return callsession.SendResult{}, c.fail(callsession.ProviderUnavailable, "invalid base URL", c.urlErr)
	}
	body, err := c.challengeBody(req)
	if err != nil {
		return callsession.SendResult{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.http.Timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()

	if req.IdempotencyKey == "" {
		return c.challenge(ctx, body, req.Channel)
	}
	tries := uint(maxSendAttempts)
	budget := time.Until(deadline)
	if budget < 2*minAttempt {
		tries = 1
	}
	attempt := 0
	var last error
	res, err := backoff.Retry(ctx, func() (callsession.SendResult, error) {
		attempt++
		actx, acancel := context.WithTimeout(ctx, attemptTimeout(time.Until(deadline), attempt))
		defer acancel()
		res, err := c.challenge(actx, body, req.Channel)
		if err == nil {
			return res, nil
		}
		last = err
		if !retryable(err) {
			return res, backoff.Permanent(err)
		}
		return res, err
	},
		backoff.WithBackOff(c.backOff()),
		backoff.WithMaxTries(tries),
		// No wait may end with less than minAttempt left for the next try.
		backoff.WithMaxElapsedTime(max(budget-minAttempt, time.Nanosecond)),
	)
	if err != nil {
		return callsession.SendResult{}, last // the provider's answer, not the retry loop's reason to stop
	}
	return res, nil
}

func (c *Client) challengeBody(req callsession.SendRequest) (challengeRequest, error) {
	body := challengeRequest{Action: c.action, IdempotencyKey: req.IdempotencyKey, UserID: req.UserID, Locale: req.Locale}
	switch req.Channel {
	case callsession.ChannelSMS, callsession.ChannelWhatsApp:
		body.VerificationMethod, body.PhoneNumber = string(req.Channel), req.PhoneNumber
	case callsession.ChannelEmail:
		body.VerificationMethod, body.Email = "EMAIL_OTP", req.Email
	default:
		return body, c.fail(callsession.ProviderRejected, fmt.Sprintf("Authsignal cannot send on channel %q", req.Channel), nil)
	}
	if body.PhoneNumber == "" && body.Email == "" {
		return body, c.fail(callsession.ProviderRejected, "no destination for "+body.VerificationMethod, nil)
	}
	return body, nil
}

// challenge makes one attempt at /challenge.
func (c *Client) challenge(ctx context.Context, body challengeRequest, ch callsession.Channel) (callsession.SendResult, error) {
	hreq, err := authsignalapi.NewRequest(ctx, c.challengeURL, c.secret, body)
	if err != nil {
		return callsession.SendResult{}, c.fail(callsession.ProviderUnavailable, "build request", err)
	}
	_, answer, err := c.http.Do(hreq, authsignalapi.Decode)
	if err != nil {
		return callsession.SendResult{}, authsignalapi.Refine(err)
	}
	var out challengeAnswer
	if err := json.Unmarshal(answer, &out); err != nil {
		return callsession.SendResult{}, c.http.Malformed(err)
	}
	if out.ChallengeID == "" {
		return callsession.SendResult{}, c.http.Malformed(errors.New("answer without challengeId"))
	}
	res := callsession.SendResult{ProviderRef: out.ChallengeID, Channel: ch}
	if out.ExpiresAt > 0 {
		sec, frac := math.Modf(out.ExpiresAt)
		res.ExpiresAt = time.Unix(int64(sec), int64(frac*1e9)).UTC()
	}
	return res, nil
}

// attemptTimeout gives an attempt half of what is left, so that a hung connection leaves
// time for another, except the last attempt and short budgets, which get all of it.
func attemptTimeout(left time.Duration, attempt int) time.Duration {
	if attempt >= maxSendAttempts || left/2 < minFirstAttempt {
		return left
	}
	return left / 2
}

// retryable reports whether a failed /challenge may pass when repeated with the same
// idempotency key.
func retryable(err error) bool {
	var pe *callsession.ProviderError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Kind {
	case callsession.ProviderTimeout:
		return true
	case callsession.ProviderUnavailable:
		return pe.HTTPStatus == 0 || pe.HTTPStatus >= http.StatusInternalServerError
	}
	return false
}

type verifyRequest struct {
	ChallengeID      string `json:"challengeId"`
	VerificationCode string `json:"verificationCode"`
}

type verifyAnswer struct {
	IsVerified    *bool  `json:"isVerified"`
	FailureReason string `json:"failureReason"`
}

// Check verifies a code with /verify. It is not retried: Authsignal counts every call
// against the challenge's attempts, and an answer lost on the way back may have counted.
//
// isVerified true is CodeAccepted. false with MAX_ATTEMPTS_EXCEEDED is CheckFailed: the
// challenge takes no more codes. false with CODE_INVALID_OR_EXPIRED, with no reason, or
// with a reason Authsignal does not document is CodeRejected: the reason does not tell a
// wrong code from an expired one, and the session's own clock and attempt count decide
// expiry and failure.
func (c *Client) Check(ctx context.Context, s *callsession.Session, code string) (callsession.CheckOutcome, error) {
	if c.urlErr != nil {
		return 0, c.fail(callsession.ProviderUnavailable, "invalid base URL", c.urlErr)
	}
	if s.ChallengeID == "" {
		return 0, c.fail(callsession.ProviderRejected, "the session has no challengeId", nil)
	}
	hreq, err := authsignalapi.NewRequest(ctx, c.verifyURL, c.secret, verifyRequest{ChallengeID: s.ChallengeID, VerificationCode: code})
	if err != nil {
		return 0, c.fail(callsession.ProviderUnavailable, "build request", err)
	}
	_, answer, err := c.http.Do(hreq, authsignalapi.Decode)
	if err != nil {
		return 0, err
	}
	var out verifyAnswer
	if err := json.Unmarshal(answer, &out); err != nil {
		return 0, c.http.Malformed(err)
	}
	if out.IsVerified == nil {
		return 0, c.http.Malformed(errors.New("answer without isVerified"))
	}
	switch {
	case *out.IsVerified:
		return callsession.CodeAccepted, nil
	case out.FailureReason == ReasonMaxAttemptsExceeded:
		return callsession.CheckFailed, nil
	default:
		return callsession.CodeRejected, nil
	}
}

// Cancel does nothing: Authsignal's Server API has no call to cancel or revoke a challenge
// (its challenge calls are initiate, verify, claim, get and validate:
// docs.authsignal.com/sdks/server/challenges); an unused challenge simply expires.
func (c *Client) Cancel(context.Context, *callsession.Session) error { return nil }

func (c *Client) fail(kind callsession.ProviderErrorKind, msg string, err error) error {
	return &callsession.ProviderError{Provider: callsession.ProviderAuthsignal, Kind: kind, Message: msg, Err: err}
}
