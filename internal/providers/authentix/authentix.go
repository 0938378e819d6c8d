// Package authentix is the client of Reach Authentix (TalkyLabs): a code sent by SMS or email
// (seed 002, "Start an Authentication"), checked with an authentication control. Requests are
// form-encoded with ApiUser/ApiKey headers and ask for JSON answers; errors come as
// {"status", "errorCode", "errorMessage"}.
package authentix

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	json "github.com/segmentio/encoding/json"

	"github.com/ivr-bridge/ivr-bridge/internal/callsession"
	"github.com/ivr-bridge/ivr-bridge/internal/providers/providerhttp"
)

// DefaultBaseURL is Authentix's API root.
const DefaultBaseURL = "https://api.reach.talkylabs.com/rest/authentix/v1"

// Config configures the client.
type Config struct {
	BaseURL, APIUser, APIKey, ConfigurationID string
	ServiceName, TemplateID                   string // optional overrides of the configuration's
	TemplateDataMap, PaymentInfo              string // JSON objects, sent as the strings Authentix wants
	CodeLength                                int    // 4–10: the bridge makes the code (customCode); 0: Authentix does
	Timeout                                   time.Duration
}

// Client talks to Authentix. It is safe for concurrent use.
type Client struct {
	http *providerhttp.Client
	cfg  Config
	base string
}

var _ callsession.Provider = (*Client)(nil)

// New validates cfg and returns a client: a template data map or payment info that is not a
// JSON object, or a code length outside 4–10, is a configuration error at start, not a
// refusal on the first call.
func New(cfg Config) (*Client, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("base URL %q is not an http(s) URL", cfg.BaseURL)
	}
	for name, v := range map[string]string{"TEMPLATE_DATA_MAP": cfg.TemplateDataMap, "PAYMENT_INFO": cfg.PaymentInfo} {
		var obj map[string]any
		if v != "" && json.Unmarshal([]byte(v), &obj) != nil {
			return nil, fmt.Errorf("%s must be a JSON object", name)
		}
	}
	if cfg.CodeLength != 0 && (cfg.CodeLength < 4 || cfg.CodeLength > 10) {
		return nil, errors.New("CODE_LENGTH must be 0 or 4 to 10")
	}
	if cfg.ConfigurationID == "" || strings.ContainsAny(cfg.ConfigurationID, "/?#") {
		return nil, errors.New("CONFIGURATION_ID is missing or not a plain identifier")
	}
	return &Client{http: providerhttp.New(callsession.ProviderAuthentix, cfg.Timeout), cfg: cfg,
		base: strings.TrimRight(cfg.BaseURL, "/") + "/configurations/" + url.PathEscape(cfg.ConfigurationID)}, nil
}

// Name returns callsession.ProviderAuthentix.
func (c *Client) Name() callsession.ProviderName { return callsession.ProviderAuthentix }

// authentication is Authentix's answer about an authentication.
type authentication struct {
	AuthenticationID string `json:"authenticationId"`
	Status           string `json:"status"`
	Channel          string `json:"channel"`
	ExpiryTime       int    `json:"expiryTime"` // minutes
	MaxTrials        int    `json:"maxTrials"`
	MaxControls      int    `json:"maxControls"`
}

// Send starts an authentication (a resend starts one again: Authentix counts it as a new
// trial, up to maxTrials). It is never retried: Authentix takes no idempotency key, so a
// repeated start after a lost answer would send a second code.
func (c *Client) Send(ctx context.Context, req callsession.SendRequest) (callsession.SendResult, error) {
	form := url.Values{}
	switch req.Channel {
	case callsession.ChannelSMS, "":
		form.Set("dest", req.PhoneNumber)
		form.Set("channel", "sms")
	case callsession.ChannelEmail:
		form.Set("dest", req.Email)
		form.Set("channel", "email")
	default:
		return callsession.SendResult{}, c.fail(callsession.ProviderRejected, fmt.Sprintf("Authentix sends by SMS or email, not %s", req.Channel))
	}
	set := func(k, v string) {
		if v != "" {
			form.Set(k, v)
		}
	}
	set("serviceName", c.cfg.ServiceName)
	set("templateId", c.cfg.TemplateID)
	set("templateDataMap", c.cfg.TemplateDataMap)
	set("paymentInfo", c.cfg.PaymentInfo)
	codeLength := 0 // Authentix makes the code: its length is not said
	if c.cfg.CodeLength > 0 {
		form.Set("customCode", randomCode(c.cfg.CodeLength))
		codeLength = c.cfg.CodeLength
	}
	var out authentication
	if err := c.post(ctx, c.base+"/authentications", form, &out); err != nil {
		return callsession.SendResult{}, err
	}
	if out.AuthenticationID == "" {
		return callsession.SendResult{}, c.http.Malformed(errors.New("answer without authenticationId"))
	}
	res := callsession.SendResult{ProviderRef: out.AuthenticationID, Channel: req.Channel, MaxAttempts: out.MaxControls, CodeLength: codeLength}
	if out.Channel == "email" {
		res.Channel = callsession.ChannelEmail
	} else if out.Channel == "sms" {
		res.Channel = callsession.ChannelSMS
	}
	if out.ExpiryTime > 0 {
		res.ExpiresAt = time.Now().UTC().Add(time.Duration(out.ExpiryTime) * time.Minute)
	}
	return res, nil
}

// Check sends an authentication control. An authentication that is no longer awaiting
// answers 404 (a ProviderNotFound error): the session's own state decides what that means.
func (c *Client) Check(ctx context.Context, s *callsession.Session, code string) (callsession.CheckOutcome, error) {
	form := url.Values{"authenticationId": {s.AuthenticationID}, "code": {code}}
	var out authentication
	if err := c.post(ctx, c.base+"/authentication-controls", form, &out); err != nil {
		return 0, err
	}
	switch strings.ToLower(out.Status) {
	case "passed", "approved":
		return callsession.CodeAccepted, nil
	case "failed", "awaiting", "pending":
		return callsession.CodeRejected, nil
	case "expired":
		return callsession.CheckExpired, nil
	case "canceled", "cancelled", "max-attempts-reached", "blocked":
		return callsession.CheckFailed, nil
	}
	return 0, c.http.Malformed(fmt.Errorf("control status %q", out.Status))
}

// Cancel sets the authentication's status to canceled. One that Authentix no longer knows
// (404) is already over: not an error.
func (c *Client) Cancel(ctx context.Context, s *callsession.Session) error {
	if s.AuthenticationID == "" {
		return nil
	}
	err := c.post(ctx, c.base+"/authentications/"+url.PathEscape(s.AuthenticationID), url.Values{"status": {"canceled"}}, nil)
	var pe *callsession.ProviderError
	if errors.As(err, &pe) && pe.Kind == callsession.ProviderNotFound {
		return nil
	}
	return err
}

func (c *Client) post(ctx context.Context, endpoint string, form url.Values, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return c.fail(callsession.ProviderUnavailable, "building the request")
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("ApiUser", c.cfg.APIUser)
	req.Header.Set("ApiKey", c.cfg.APIKey)
	_, body, err := c.http.Do(req, decodeError)
	if err != nil {
		return refine(err)
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			return c.http.Malformed(err)
		}
	}
	return nil
}

// apiError is Authentix's error form.
type apiError struct {
	Status       int    `json:"status"`
	ErrorCode    any    `json:"errorCode"`
	ErrorMessage string `json:"errorMessage"`
}

func decodeError(_ int, body []byte) (string, string) {
	var e apiError
	if json.Unmarshal(body, &e) != nil {
		return "", ""
	}
	code := ""
	if e.ErrorCode != nil {
		code = fmt.Sprint(e.ErrorCode)
	}
	return code, e.ErrorMessage
}

// refine tells a refused destination (a number or address Authentix cannot send to) from
// other refusals, so the caller hears "this number cannot receive codes", not "try later".
func refine(err error) error {
	var pe *callsession.ProviderError
	if !errors.As(err, &pe) || pe.Kind != callsession.ProviderRejected || pe.HTTPStatus != http.StatusBadRequest {
		return err
	}
	msg := strings.ToLower(pe.Message)
	if strings.Contains(msg, "dest") || strings.Contains(msg, "phone") || strings.Contains(msg, "email") {
		pe.Kind = callsession.ProviderBadDestination
	}
	return err
}

func (c *Client) fail(kind callsession.ProviderErrorKind, msg string) error {
	return &callsession.ProviderError{Provider: callsession.ProviderAuthentix, Kind: kind, Message: msg}
}

// randomCode is a uniformly random code of n digits from the system's CSPRNG (bytes of
// 250 and above are dropped so every digit is equally likely).
func randomCode(n int) string {
	out := make([]byte, 0, n)
	var buf [16]byte
	for len(out) < n {
		_, _ = rand.Read(buf[:]) // never fails since Go 1.24
		for _, b := range buf {
			if b < 250 && len(out) < n {
				out = append(out, '0'+b%10)
			}
		}
	}
	return string(out)
}
