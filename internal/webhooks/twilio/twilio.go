// Package twilio lets Twilio Programmable Voice drive a verification: the incoming-call
// webhook starts it, a <Gather> collects the code, and every answer is TwiML. A caller
// problem (withheld number, landline, wrong code, provider down) is always spoken TwiML,
// never an HTTP error page; only a bad signature is refused (403, still TwiML).
package twilio

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/xml"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/ivr-bridge/ivr-bridge/internal/callsession"
	"github.com/ivr-bridge/ivr-bridge/internal/phone"
	"github.com/ivr-bridge/ivr-bridge/internal/webhooks/callflow"
)

// Paths of the endpoints (DESIGN §6).
const (
	VoicePath  = "/v1/webhooks/twilio/voice"
	GatherPath = "/v1/webhooks/twilio/gather"
)

// Config configures the endpoints.
type Config struct {
	// AuthToken, when set, makes X-Twilio-Signature required.
	AuthToken string
	// PublicURL is the bridge's external base URL: behind a proxy the URL Twilio signed is
	// rebuilt from it, not from what the bridge sees.
	PublicURL string
	Flow      callflow.Flow
	Logger    *slog.Logger
}

// Handler serves Twilio's voice webhooks.
type Handler struct{ cfg Config }

// New returns the handler.
func New(cfg Config) *Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	return &Handler{cfg: cfg}
}

// Register adds the routes.
func (h *Handler) Register(e *echo.Echo) {
	e.POST(VoicePath, h.voice)
	e.POST(GatherPath, h.gather)
}

// Response is a TwiML document.
type Response struct {
	XMLName xml.Name `xml:"Response"`
	Verbs   []any
}

// Say speaks text.
type Say struct {
	XMLName  xml.Name `xml:"Say"`
	Language string   `xml:"language,attr,omitempty"`
	Text     string   `xml:",chardata"`
}

// Gather collects digits and posts them to Action.
type Gather struct {
	XMLName     xml.Name `xml:"Gather"`
	Input       string   `xml:"input,attr"`
	Action      string   `xml:"action,attr"`
	Method      string   `xml:"method,attr"`
	FinishOnKey string   `xml:"finishOnKey,attr"`
	NumDigits   int      `xml:"numDigits,attr,omitempty"` // the code's length, when known
	Timeout     int      `xml:"timeout,attr"`
	Say         Say
}

// Pause waits.
type Pause struct {
	XMLName xml.Name `xml:"Pause"`
	Length  int      `xml:"length,attr"`
}

// Redirect fetches new TwiML from a URL.
type Redirect struct {
	XMLName xml.Name `xml:"Redirect"`
	Method  string   `xml:"method,attr"`
	URL     string   `xml:",chardata"`
}

// Hangup ends the call.
type Hangup struct {
	XMLName xml.Name `xml:"Hangup"`
}

func (h *Handler) twiml(c echo.Context, status int, r Response) error {
	out, err := xml.Marshal(r)
	if err != nil {
		return err
	}
	return c.Blob(status, "text/xml; charset=utf-8", append([]byte(xml.Header), out...))
}

// params reads the form (Twilio posts application/x-www-form-urlencoded) and checks the
// signature; ok is false when the answer has been written.
func (h *Handler) params(c echo.Context) (url.Values, string, bool, error) {
	req := c.Request()
	locale := c.QueryParam("locale")
	if err := req.ParseForm(); err != nil {
		h.cfg.Logger.WarnContext(req.Context(), "twilio: unreadable form", "err", err)
		return nil, locale, false, h.twiml(c, http.StatusOK, sayAndHangup(callflow.Result{Step: callflow.StepError}, locale))
	}
	if h.cfg.AuthToken != "" && !ValidSignature(h.cfg.AuthToken, req.Header.Get("X-Twilio-Signature"), h.signedURL(req), req.PostForm) {
		h.cfg.Logger.WarnContext(req.Context(), "twilio: invalid signature")
		return nil, locale, false, h.twiml(c, http.StatusForbidden, Response{Verbs: []any{Hangup{}}})
	}
	return req.PostForm, locale, true, nil
}

// signedURL is the URL Twilio called, as it signed it.
func (h *Handler) signedURL(req *http.Request) string {
	if h.cfg.PublicURL != "" {
		return h.cfg.PublicURL + req.URL.RequestURI()
	}
	scheme := "http"
	if req.TLS != nil {
		scheme = "https"
	}
	if p := req.Header.Get("X-Forwarded-Proto"); p == "https" || p == "http" {
		scheme = p
	}
	return scheme + "://" + req.Host + req.URL.RequestURI()
}

// ValidSignature checks X-Twilio-Signature: base64 HMAC-SHA1, keyed with the auth token, of
// the full URL followed by every POST parameter name and value, sorted by name. As Twilio's
// SDKs do, the URL is also tried with and without its default port, since proxies differ on
// which one Twilio saw. The comparison is in constant time, every variant computed.
func ValidSignature(token, signature, fullURL string, form url.Values) bool {
	if signature == "" {
		return false
	}
	want := []byte(signature)
	// The sorted form is the same for every variant, and so is the key: one of each.
	payload := formPayload(form)
	m := hmac.New(sha1.New, []byte(token))
	var sum [sha1.Size]byte
	var got [28]byte // base64 of a SHA-1 sum
	ok := false
	for _, u := range urlVariants(fullURL) {
		m.Reset()
		m.Write([]byte(u))
		m.Write(payload)
		base64.StdEncoding.Encode(got[:], m.Sum(sum[:0]))
		if hmac.Equal(got[:], want) {
			ok = true
		}
	}
	return ok
}

// Sign computes the signature of fullURL and form.
func Sign(token, fullURL string, form url.Values) string {
	m := hmac.New(sha1.New, []byte(token))
	m.Write([]byte(fullURL))
	m.Write(formPayload(form))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// formPayload is what Twilio signs after the URL: each parameter's name and value, by name,
// a name's several values sorted (the form itself is left as it is).
func formPayload(form url.Values) []byte {
	keys := make([]string, 0, len(form))
	size := 0
	for k, vals := range form {
		keys = append(keys, k)
		for _, v := range vals {
			size += len(k) + len(v)
		}
	}
	slices.Sort(keys)
	buf := make([]byte, 0, size)
	for _, k := range keys {
		vals := form[k]
		if len(vals) > 1 {
			vals = slices.Sorted(slices.Values(vals))
		}
		for _, v := range vals {
			buf = append(append(buf, k...), v...)
		}
	}
	return buf
}

func urlVariants(raw string) []string {
	u, err := url.Parse(raw)
	if err != nil {
		return []string{raw}
	}
	out := []string{raw}
	var def string
	switch u.Scheme {
	case "https":
		def = "443"
	case "http":
		def = "80"
	}
	switch {
	case u.Port() == "" && def != "":
		v := *u
		v.Host = net.JoinHostPort(u.Hostname(), def)
		out = append(out, v.String())
	case u.Port() == def:
		// Hostname drops an IPv6 address' brackets; JoinHostPort puts them back, and the
		// port is then cut off whole.
		v := *u
		v.Host = strings.TrimSuffix(net.JoinHostPort(u.Hostname(), def), ":"+def)
		out = append(out, v.String())
	}
	return out
}

func (h *Handler) voice(c echo.Context) error {
	form, locale, ok, err := h.params(c)
	if !ok {
		return err
	}
	ref := form.Get("CallSid")
	if ref == "" {
		h.cfg.Logger.WarnContext(c.Request().Context(), "twilio: voice webhook without CallSid")
		return h.twiml(c, http.StatusOK, sayAndHangup(callflow.Result{Step: callflow.StepError}, locale))
	}
	if locale == "" {
		locale = c.QueryParam("language")
	}
	from := form.Get("From")
	r := h.cfg.Flow.Start(c.Request().Context(), callsession.StartRequest{
		ReferenceID: ref, PhoneNumber: from, Country: form.Get("FromCountry"),
		Provider: callsession.ProviderName(strings.ToLower(c.QueryParam("provider"))),
		Channel:  callsession.Channel(strings.ToUpper(c.QueryParam("channel"))), Locale: locale,
	})
	h.cfg.Logger.InfoContext(c.Request().Context(), "twilio call", "reference_id", ref, "from", phone.Mask(from), "step", r.Step, "error", r.Code)
	return h.twiml(c, http.StatusOK, h.next(c, r, ref, locale))
}

func (h *Handler) gather(c echo.Context) error {
	form, locale, ok, err := h.params(c)
	if !ok {
		return err
	}
	ref := form.Get("CallSid")
	if ref == "" {
		return h.twiml(c, http.StatusOK, sayAndHangup(callflow.Result{Step: callflow.StepError}, locale))
	}
	r := h.cfg.Flow.Code(c.Request().Context(), ref, form.Get("Digits"))
	h.cfg.Logger.InfoContext(c.Request().Context(), "twilio code", "reference_id", ref, "step", r.Step)
	return h.twiml(c, http.StatusOK, h.next(c, r, ref, locale))
}

// next is the TwiML for where the call stands.
func (h *Handler) next(c echo.Context, r callflow.Result, ref, locale string) Response {
	lang := callflow.VoiceLanguage(locale)
	switch r.Step {
	case callflow.StepEnterCode, callflow.StepRetry:
		q := url.Values{}
		if locale != "" {
			q.Set("locale", locale)
		}
		action := h.base(c) + GatherPath
		if len(q) > 0 {
			action += "?" + q.Encode()
		}
		gather := Gather{Input: "dtmf", Action: action, Method: http.MethodPost, FinishOnKey: "#", Timeout: 10,
			Say: Say{Language: lang, Text: callflow.Prompt(r, locale)}}
		if n, known := r.CodeDigits(); known {
			gather.NumDigits = n // the Gather ends on the last digit; # still ends a short one
		}
		return Response{Verbs: []any{
			gather,
			Say{Language: lang, Text: callflow.NoInput(locale)},
			Hangup{},
		}}
	case callflow.StepWaiting:
		// The provider call is still under way (a repeated delivery raced the first): ask
		// again in a moment; the start is idempotent.
		return Response{Verbs: []any{Pause{Length: 1}, Redirect{Method: http.MethodPost, URL: h.base(c) + c.Request().URL.RequestURI()}}}
	}
	return sayAndHangup(r, locale)
}

func sayAndHangup(r callflow.Result, locale string) Response {
	return Response{Verbs: []any{Say{Language: callflow.VoiceLanguage(locale), Text: callflow.Prompt(r, locale)}, Hangup{}}}
}

// base is the bridge's external base URL, for the URLs TwiML points Twilio back to.
func (h *Handler) base(c echo.Context) string {
	if h.cfg.PublicURL != "" {
		return h.cfg.PublicURL
	}
	u := h.signedURL(c.Request())
	if i := strings.Index(u, c.Request().URL.RequestURI()); i > 0 {
		return u[:i]
	}
	return u
}
