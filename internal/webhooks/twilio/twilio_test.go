package twilio_test

import (
	"encoding/xml"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/ivr-bridge/ivr-bridge/internal/app/apptest"
	"github.com/ivr-bridge/ivr-bridge/internal/webhooks/twilio"
)

const token = "twilio-test-token"

// TestSignatureMatchesTwilioSDKVector is the example of Twilio's security documentation and
// its SDKs' RequestValidator tests.
func TestSignatureMatchesTwilioSDKVector(t *testing.T) {
	form := url.Values{"CallSid": {"CA1234567890ABCDE"}, "Caller": {"+12349013030"}, "Digits": {"1234"},
		"From": {"+12349013030"}, "To": {"+18005551212"}}
	const u = "https://mycompany.com/myapp.php?foo=1&bar=2"
	const want = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
	if got := twilio.Sign("12345", u, form); got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
	for _, variant := range []string{u, "https://mycompany.com:443/myapp.php?foo=1&bar=2"} {
		if !twilio.ValidSignature("12345", want, variant, form) {
			t.Errorf("%s refused", variant)
		}
	}
	// The same with the host an IPv6 address (a bridge reached by address, behind no name):
	// its brackets stay in every variant of the URL.
	for _, pair := range [][2]string{
		{"https://[2001:db8::1]/myapp.php?foo=1&bar=2", "https://[2001:db8::1]:443/myapp.php?foo=1&bar=2"},
		{"http://[2001:db8::1]:80/voice", "http://[2001:db8::1]/voice"},
	} {
		sig := twilio.Sign("12345", pair[0], form)
		if !twilio.ValidSignature("12345", sig, pair[1], form) || !twilio.ValidSignature("12345", twilio.Sign("12345", pair[1], form), pair[0], form) {
			t.Errorf("IPv6: a signature over %s and one over %s are not both taken for the other", pair[0], pair[1])
		}
	}
	for name, tc := range map[string]struct {
		sig, u string
		form   url.Values
	}{
		"empty":        {"", u, form},
		"other url":    {want, "https://mycompany.com/other.php", form},
		"other digits": {want, u, url.Values{"CallSid": {"CA1234567890ABCDE"}, "Caller": {"+12349013030"}, "Digits": {"9999"}, "From": {"+12349013030"}, "To": {"+18005551212"}}},
		"wrong port":   {want, "https://mycompany.com:8443/myapp.php?foo=1&bar=2", form},
		"garbage":      {"!!!", u, form},
	} {
		if twilio.ValidSignature("12345", tc.sig, tc.u, tc.form) {
			t.Errorf("%s: accepted", name)
		}
	}
}

// twiml is a parsed answer: the verbs in order, with their text and attributes.
type twiml struct {
	Verbs []struct {
		XMLName  xml.Name
		Language string `xml:"language,attr"`
		Action   string `xml:"action,attr"`
		Digits   string `xml:"numDigits,attr"`
		Text     string `xml:",chardata"`
		Say      struct {
			Language string `xml:"language,attr"`
			Text     string `xml:",chardata"`
		} `xml:"Say"`
	} `xml:",any"`
}

func (x twiml) names() string {
	var n []string
	for _, v := range x.Verbs {
		n = append(n, v.XMLName.Local)
	}
	return strings.Join(n, ",")
}

type call struct {
	t    *testing.T
	s    *apptest.Stack
	sid  string
	from string
}

func newCall(t *testing.T, s *apptest.Stack, from string) *call {
	return &call{t: t, s: s, sid: "CA" + apptest.RandomID() + apptest.RandomID(), from: from}
}

// post sends a signed Twilio webhook (sig "" signs it right) and parses the TwiML answer.
func (c *call) post(path, query string, extra url.Values, sig string) (int, twiml) {
	c.t.Helper()
	raw, err := os.ReadFile("testdata/voice.form")
	if err != nil {
		c.t.Fatal(err)
	}
	body := strings.NewReplacer("CA_PLACEHOLDER", c.sid, "FROM_PLACEHOLDER", url.QueryEscape(c.from)).Replace(strings.TrimSpace(string(raw)))
	form, err := url.ParseQuery(body)
	if err != nil {
		c.t.Fatal(err)
	}
	for k, v := range extra {
		form[k] = v
	}
	full := c.s.URL + path
	if query != "" {
		full += "?" + query
	}
	if sig == "" {
		sig = twilio.Sign(token, full, form)
	}
	r := c.s.Do(http.MethodPost, path+queryPart(query), []byte(form.Encode()),
		"Content-Type", "application/x-www-form-urlencoded", "X-Twilio-Signature", sig, "Authorization", "")
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/xml") {
		c.t.Fatalf("%s: Content-Type %q, body %s", path, ct, r.Body)
	}
	var x twiml
	if err := xml.Unmarshal(r.Body, &x); err != nil {
		c.t.Fatalf("%s: not TwiML: %v: %s", path, err, r.Body)
	}
	return r.Status, x
}

func queryPart(q string) string {
	if q == "" {
		return ""
	}
	return "?" + q
}

func stack(t *testing.T) *apptest.Stack {
	return apptest.New(t, map[string]string{"TWILIO_AUTH_TOKEN": token, "LIMIT_SENDS_PER_NUMBER": "0"})
}

func TestWholeCallWithAuthsignal(t *testing.T) {
	s := stack(t)
	c := newCall(t, s, "+447400123456")
	status, x := c.post(twilio.VoicePath, "provider=authsignal", nil, "")
	if status != 200 || x.names() != "Gather,Say,Hangup" || !strings.HasSuffix(x.Verbs[0].Action, twilio.GatherPath) ||
		!strings.Contains(x.Verbs[0].Say.Text, "code") {
		t.Fatalf("voice: %d %+v", status, x)
	}
	sess := s.Do(http.MethodGet, "/v1/sessions/"+c.sid, nil).JSON(t)
	code := s.Authsignal.CodeFor(sess["challengeId"].(string))

	status, x = c.post(twilio.GatherPath, "", url.Values{"Digits": {"00000000"[:len(code)]}, "FinishedOnKey": {"#"}}, "")
	if status != 200 || x.names() != "Gather,Say,Hangup" || !strings.Contains(x.Verbs[0].Say.Text, "not right") {
		t.Fatalf("wrong code: %d %+v", status, x)
	}
	status, x = c.post(twilio.GatherPath, "", url.Values{"Digits": {code}}, "")
	if status != 200 || x.names() != "Say,Hangup" || !strings.Contains(x.Verbs[0].Text, "verified") {
		t.Fatalf("right code: %d %+v", status, x)
	}
	if strings.Contains(s.Logs.String(), code) || strings.Contains(s.Logs.String(), "7400123456") {
		t.Fatal("the logs hold the code or the number")
	}
}

// The Gather stops at the code's last digit when the bridge knows the code's length (it made
// the Authentix code); otherwise the caller ends the code with # (or the Gather times out).
func TestGatherCollectsTheCodesLength(t *testing.T) {
	s := apptest.New(t, map[string]string{"TWILIO_AUTH_TOKEN": token, "LIMIT_SENDS_PER_NUMBER": "0", "AUTHENTIX_CODE_LENGTH": "7"})
	c := newCall(t, s, "+447400123456")
	status, x := c.post(twilio.VoicePath, "provider=authentix", nil, "")
	if status != 200 || x.names() != "Gather,Say,Hangup" || x.Verbs[0].Digits != "7" {
		t.Fatalf("voice (Authentix, 7-digit codes): %d %+v", status, x)
	}
	sess := s.Do(http.MethodGet, "/v1/sessions/"+c.sid, nil).JSON(t)
	if sess["codeLength"] != 7.0 || len(s.Authentix.CodeFor(sess["authenticationId"].(string))) != 7 {
		t.Fatalf("session %v", sess)
	}
	status, x = c.post(twilio.GatherPath, "", url.Values{"Digits": {"0000000"}}, "")
	if status != 200 || x.names() != "Gather,Say,Hangup" || x.Verbs[0].Digits != "7" {
		t.Fatalf("wrong code: %d %+v", status, x)
	}

	other := newCall(t, s, "+447400123457")
	if status, x := other.post(twilio.VoicePath, "provider=authsignal", nil, ""); status != 200 || x.names() != "Gather,Say,Hangup" || x.Verbs[0].Digits != "" {
		t.Fatalf("voice (Authsignal: length not known): %d %+v", status, x)
	}
}

func TestCallConnectLinkAndDuplicateDelivery(t *testing.T) {
	s := stack(t)
	c := newCall(t, s, "+447400123456")
	for i := 0; i < 3; i++ { // Twilio retries a webhook it thinks failed
		status, x := c.post(twilio.VoicePath, "", nil, "")
		if status != 200 || x.names() != "Say,Hangup" || !strings.Contains(x.Verbs[0].Text, "link") {
			t.Fatalf("delivery %d: %d %+v", i+1, status, x)
		}
	}
	if n := s.CallConnect.Sends(); n != 1 {
		t.Fatalf("Call Connect sends %d, want 1", n)
	}
}

func TestCallerProblemsAreSpokenNeverErrors(t *testing.T) {
	s := stack(t)
	cases := []struct {
		name, from, query, want string
		setup                   func()
	}{
		{"withheld (Twilio's anonymous number)", "+266696687", "", "withheld", nil},
		{"anonymous", "anonymous", "", "withheld", nil},
		{"landline", "+442079460018", "", "cannot receive text messages", nil},
		{"invalid", "+1555", "", "cannot send a code to your number", nil},
		{"provider down", "+447400123456", "provider=authsignal", "not available", func() { s.Authsignal.FailNext(3, 503, "") }},
		{"spanish", "+266696687", "locale=es-MX", "oculto", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup()
			}
			status, x := newCall(t, s, tc.from).post(twilio.VoicePath, tc.query, nil, "")
			if status != 200 || x.names() != "Say,Hangup" || !strings.Contains(x.Verbs[0].Text, tc.want) {
				t.Fatalf("%d %+v", status, x)
			}
		})
	}
	_, x := newCall(t, s, "anonymous").post(twilio.VoicePath, "locale=es-MX", nil, "")
	if x.Verbs[0].Language != "es-MX" {
		t.Fatalf("language %q", x.Verbs[0].Language)
	}
}

func TestBadSignaturesAreRefusedWithTwiML(t *testing.T) {
	s := stack(t)
	c := newCall(t, s, "+447400123456")
	for name, sig := range map[string]string{"wrong": "bm9wZQ==", "other token": twilio.Sign("other", s.URL+twilio.VoicePath, url.Values{})} {
		status, x := c.post(twilio.VoicePath, "", nil, sig)
		if status != http.StatusForbidden || x.names() != "Hangup" {
			t.Fatalf("%s: %d %+v", name, status, x)
		}
	}
	if s.CallConnect.Count() != 0 {
		t.Fatal("an unsigned webhook reached the provider")
	}
	// Missing header.
	r := s.Do(http.MethodPost, twilio.VoicePath, []byte("CallSid=CA1&From=%2B447400123456"), "Content-Type", "application/x-www-form-urlencoded", "Authorization", "")
	if r.Status != http.StatusForbidden {
		t.Fatalf("no signature: %d %s", r.Status, r.Body)
	}
}

func TestSignatureBehindAProxy(t *testing.T) {
	s := apptest.New(t, map[string]string{"TWILIO_AUTH_TOKEN": token, "IVR_BRIDGE_PUBLIC_URL": "https://ivr.example.com"})
	form := url.Values{"CallSid": {"CA" + apptest.RandomID()}, "From": {"+447400123456"}}
	sig := twilio.Sign(token, "https://ivr.example.com"+twilio.VoicePath, form)
	r := s.Do(http.MethodPost, twilio.VoicePath, []byte(form.Encode()), "Content-Type", "application/x-www-form-urlencoded",
		"X-Twilio-Signature", sig, "Authorization", "")
	if r.Status != 200 || !strings.Contains(string(r.Body), "link") {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	// The Gather action points at the public URL too.
	form.Set("CallSid", "CA"+apptest.RandomID())
	r = s.Do(http.MethodPost, twilio.VoicePath+"?provider=authentix", []byte(form.Encode()), "Content-Type", "application/x-www-form-urlencoded",
		"X-Twilio-Signature", twilio.Sign(token, "https://ivr.example.com"+twilio.VoicePath+"?provider=authentix", form), "Authorization", "")
	if !strings.Contains(string(r.Body), `action="https://ivr.example.com/v1/webhooks/twilio/gather"`) {
		t.Fatalf("gather action: %s", r.Body)
	}
}

func TestUnsignedModeAndMalformedRequests(t *testing.T) {
	s := apptest.New(t, nil) // no TWILIO_AUTH_TOKEN: signatures not required
	for name, body := range map[string]string{"no CallSid": "From=%2B447400123456", "bad form": "%zz"} {
		r := s.Do(http.MethodPost, twilio.VoicePath, []byte(body), "Content-Type", "application/x-www-form-urlencoded", "Authorization", "")
		if r.Status != 200 || !strings.Contains(string(r.Body), "<Hangup></Hangup>") {
			t.Fatalf("%s: %d %s", name, r.Status, r.Body)
		}
	}
}
