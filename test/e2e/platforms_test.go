package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"testing"
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
