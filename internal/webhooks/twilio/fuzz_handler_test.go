package twilio_test

import (
	"bytes"
	"encoding/xml"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/ivr-bridge/ivr-bridge/internal/app/apptest"
	"github.com/ivr-bridge/ivr-bridge/internal/webhooks/twilio"
)

// FuzzWebhooks: whatever form Twilio's voice or gather webhook carries (unsigned mode, so
// the form reaches the parsing), the answer is 200 with a TwiML <Response>, never an HTTP
// error page, a 500 or a panic (DESIGN §6: never an HTTP error for a caller problem).
func FuzzWebhooks(f *testing.F) {
	s := apptest.New(f, map[string]string{"LIMIT_SENDS_PER_NUMBER": "0"})
	f.Add(false, "provider=authsignal", "CallSid=CA1&From=%2B447400123456&FromCountry=GB")
	f.Add(false, "locale=-", "CallSid=CA2&From=07400123456&FromCountry=GB")
	f.Add(false, "channel=EMAIL", "CallSid=CA3&From=anonymous")
	f.Add(true, "", "CallSid=CA1&Digits=123456")
	f.Add(true, "locale=es-MX", "CallSid=CA1&Digits=12%2334")
	f.Add(false, "", "%zz")
	f.Fuzz(func(t *testing.T, gather bool, query, form string) {
		path := twilio.VoicePath
		if gather {
			path = twilio.GatherPath
		}
		if strings.ContainsFunc(query, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
			return // no HTTP request line carries it: net/http refuses it before any handler
		}
		if query != "" {
			path += "?" + query
		}
		req, err := http.NewRequest(http.MethodPost, s.URL+path, bytes.NewReader([]byte(form)))
		if err != nil {
			return // not a URL a platform could call
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/xml") {
			t.Fatalf("%s %q: %d %s %s", path, form, resp.StatusCode, resp.Header.Get("Content-Type"), raw)
		}
		var doc struct {
			XMLName xml.Name
		}
		if err := xml.Unmarshal(raw, &doc); err != nil || doc.XMLName.Local != "Response" {
			t.Fatalf("%s %q: not TwiML (%v): %s", path, form, err, raw)
		}
	})
}
