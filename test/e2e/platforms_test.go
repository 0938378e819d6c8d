package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ivr-bridge/ivr-bridge/internal/webhooks/twilio"
	"github.com/ivr-bridge/ivr-bridge/internal/webhooks/vonage"
)

// platformCall posts a platform's JSON and returns its flat answer.
func platformCall(t *testing.T, b *bridge, path string, body []byte, headers ...string) map[string]string {
	t.Helper()
	r := b.do(http.MethodPost, path, body, headers...)
	var m map[string]string
	if r.status != http.StatusOK || json.Unmarshal(r.body, &m) != nil {
		t.Fatalf("%s: %d %s", path, r.status, r.body)
	}
	return m
}

func connectEvent(t *testing.T, contactID, caller string, params map[string]string) []byte {
	t.Helper()
	raw, err := os.ReadFile("../../internal/webhooks/connect/testdata/start.json")
	if err != nil {
		t.Fatal(err)
	}
	var ev map[string]any
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	details := ev["Details"].(map[string]any)
	cd := details["ContactData"].(map[string]any)
	cd["ContactId"], cd["InitialContactId"] = contactID, contactID
	cd["CustomerEndpoint"] = map[string]any{"Address": caller, "Type": "TELEPHONE_NUMBER"}
	details["Parameters"] = params
	out, _ := json.Marshal(ev)
	return out
}

func TestAmazonConnectWholeCall(t *testing.T) {
	b := start(t, map[string]string{"CONNECT_API_KEY": "connect-e2e-key"})
	contact, caller := "c0ffee00-"+randomDigits(8), mobile(t)
	b.mustNotLog(caller)
	key := []string{"X-Api-Key", "connect-e2e-key"}
	started := platformCall(t, b, "/v1/webhooks/connect",
		connectEvent(t, contact, caller, map[string]string{"action": "start", "provider": "authsignal"}), key...)
	if started["step"] != "enter_code" || started["referenceId"] != contact {
		t.Fatalf("start: %v", started)
	}
	code := b.authsignal.CodeFor(b.session(contact)["challengeId"].(string))
	b.mustNotLog(code)
	done := platformCall(t, b, "/v1/webhooks/connect",
		connectEvent(t, contact, caller, map[string]string{"action": "code", "code": code}), key...)
	if done["step"] != "verified" || done["status"] != "verified" {
		t.Fatalf("code: %v", done)
	}
	if r := b.do(http.MethodPost, "/v1/webhooks/connect", connectEvent(t, contact, caller, map[string]string{"action": "status"})); r.status != http.StatusUnauthorized {
		t.Fatalf("no X-Api-Key: %d %s", r.status, r.body)
	}
}

func TestGenesysWholeCall(t *testing.T) {
	b := start(t, map[string]string{"GENESYS_USERNAME": "genesys", "GENESYS_PASSWORD": "e2e-password"})
	conv, caller := "conv-"+randomDigits(10), mobile(t)
	b.mustNotLog(caller)
	auth := func(body map[string]string) []byte { raw, _ := json.Marshal(body); return raw }
	basic := []string{"Authorization", "Basic Z2VuZXN5czplMmUtcGFzc3dvcmQ="} // genesys:e2e-password
	started := platformCall(t, b, "/v1/webhooks/genesys",
		auth(map[string]string{"conversationId": conv, "ani": "tel:" + caller, "action": "start", "provider": "authentix"}), basic...)
	if started["step"] != "enter_code" {
		t.Fatalf("start: %v", started)
	}
	code := b.authentix.CodeFor(b.session(conv)["authenticationId"].(string))
	b.mustNotLog(code)
	done := platformCall(t, b, "/v1/webhooks/genesys",
		auth(map[string]string{"conversationId": conv, "ani": "tel:" + caller, "action": "code", "code": code}), basic...)
	if done["step"] != "verified" {
		t.Fatalf("code: %v", done)
	}
	if r := b.do(http.MethodPost, "/v1/webhooks/genesys", auth(map[string]string{"conversationId": conv, "action": "status"}),
		"Authorization", "Basic Z2VuZXN5czp3cm9uZw=="); r.status != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d %s", r.status, r.body)
	}
}

func TestTwilioWholeCall(t *testing.T) {
	b := start(t, map[string]string{"TWILIO_AUTH_TOKEN": "twilio-e2e-token"})
	sid, caller := "CA"+randomDigits(32), mobile(t)
	b.mustNotLog(caller)
	post := func(path string, form url.Values) string {
		t.Helper()
		sig := twilio.Sign("twilio-e2e-token", b.url+path, form)
		r := b.do(http.MethodPost, path, []byte(form.Encode()), "Content-Type", "application/x-www-form-urlencoded",
			"X-Twilio-Signature", sig, "Authorization", "")
		if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/xml") {
			t.Fatalf("%s: %d %s", path, r.status, r.body)
		}
		return string(r.body)
	}
	twiml := post(twilio.VoicePath+"?provider=authsignal", url.Values{"CallSid": {sid}, "From": {caller}, "FromCountry": {"GB"}, "To": {"+14155550100"}})
	if !strings.Contains(twiml, "<Gather") {
		t.Fatalf("voice: %s", twiml)
	}
	code := b.authsignal.CodeFor(b.session(sid)["challengeId"].(string))
	b.mustNotLog(code)
	if twiml = post(twilio.GatherPath, url.Values{"CallSid": {sid}, "Digits": {code}}); !strings.Contains(twiml, "verified") || !strings.Contains(twiml, "<Hangup>") {
		t.Fatalf("gather: %s", twiml)
	}
	r := b.do(http.MethodPost, twilio.VoicePath, []byte("CallSid=CA1&From=%2B447400123456"), "Content-Type", "application/x-www-form-urlencoded",
		"X-Twilio-Signature", "bm9wZQ==", "Authorization", "")
	if r.status != http.StatusForbidden {
		t.Fatalf("bad signature: %d %s", r.status, r.body)
	}
}

func TestVonageWholeCall(t *testing.T) {
	b := start(t, map[string]string{"VONAGE_SIGNATURE_SECRET": "vonage-e2e-secret"})
	uuid, caller := "aaaaaaaa-"+randomDigits(12), mobile(t)
	b.mustNotLog(caller)
	send := func(path string, body map[string]any) []map[string]any {
		t.Helper()
		raw, _ := json.Marshal(body)
		token, err := vonage.Sign("vonage-e2e-secret", raw, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		r := b.do(http.MethodPost, path, raw, "Authorization", "Bearer "+token)
		var n []map[string]any
		if r.status != http.StatusOK || json.Unmarshal(r.body, &n) != nil {
			t.Fatalf("%s: %d %s", path, r.status, r.body)
		}
		return n
	}
	n := send(vonage.AnswerPath+"?provider=authentix", map[string]any{"uuid": uuid, "conversation_uuid": "CON-1", "from": caller[1:], "to": "447700900000"})
	if len(n) != 2 || n[1]["action"] != "input" {
		t.Fatalf("answer: %v", n)
	}
	code := b.authentix.CodeFor(b.session(uuid)["authenticationId"].(string))
	b.mustNotLog(code)
	n = send(vonage.InputPath, map[string]any{"uuid": uuid, "conversation_uuid": "CON-1", "dtmf": map[string]any{"digits": code, "timed_out": false}})
	if len(n) != 1 || !strings.Contains(n[0]["text"].(string), "verified") {
		t.Fatalf("input: %v", n)
	}
}
