package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/ivr-bridge/ivr-bridge/internal/webhooks/authsignal"
)

func TestCallConnectStartRepeatConflictAndWebhook(t *testing.T) {
	b := start(t, nil)
	ref, number := reference(), mobile(t)
	sess := b.startSession(map[string]any{"referenceId": ref, "phoneNumber": "0" + number[3:], "country": "GBR",
		"userId": "user-7", "locale": "en-GB"})
	if sess["status"] != "sent" || sess["phoneNumber"] != number || sess["messageId"] == nil || sess["provider"] != "callconnect" {
		t.Fatalf("session: %v", sess)
	}
	reqs := b.callConnect.Requests()
	if len(reqs) != 1 || !reqs[0].Accepted() || reqs[0].Start.PhoneNumber != number || reqs[0].Start.ReferenceID != ref ||
		reqs[0].Start.UserID != "user-7" || reqs[0].Start.Channel != "SMS" {
		t.Fatalf("Call Connect saw %+v", reqs)
	}
	if r := b.do("POST", "/v1/sessions", map[string]any{"referenceId": ref, "phoneNumber": number, "userId": "user-7", "locale": "en-GB"}); r.status != 200 {
		t.Fatalf("repeat: %d %s", r.status, r.body)
	}
	if r := b.do("POST", "/v1/sessions", map[string]any{"referenceId": ref, "phoneNumber": mobile(t)}); r.status != 409 || r.errorCode() != "conflict" {
		t.Fatalf("conflict: %d %s", r.status, r.body)
	}
	if b.callConnect.Sends() != 1 {
		t.Fatalf("Call Connect sends %d, want 1", b.callConnect.Sends())
	}

	ev, _ := json.Marshal(map[string]any{"version": 1, "id": "evt_" + randomDigits(10), "source": "authsignal", "time": time.Now().UTC(),
		"tenantId": "t1", "type": "call.finished", "data": map[string]any{"referenceId": ref, "state": authsignal.StateSucceeded}})
	hook := func(sig string) response { return b.do("POST", authsignal.Path, ev, "X-Signature-V2", sig) }
	for name, sig := range map[string]string{
		"wrong secret": authsignal.Sign("not-it", time.Now(), ev),
		"stale":        authsignal.Sign(webhookSecret, time.Now().Add(-6*time.Minute), ev),
	} {
		if r := hook(sig); r.status != 401 || r.errorCode() != "invalid_signature" {
			t.Fatalf("%s: %d %s", name, r.status, r.body)
		}
	}
	if got := b.session(ref)["status"]; got != "sent" {
		t.Fatalf("status %v after refused webhooks", got)
	}
	if r := hook(authsignal.Sign(webhookSecret, time.Now(), ev)); r.status != 200 || r.json(t)["applied"] != true {
		t.Fatalf("valid webhook: %d %s", r.status, r.body)
	}
	if r := hook(authsignal.Sign(webhookSecret, time.Now(), ev)); r.status != 200 || r.json(t)["applied"] != false {
		t.Fatalf("replayed webhook: %d %s", r.status, r.body)
	}
	if got := b.session(ref)["status"]; got != "verified" {
		t.Fatalf("status %v, want verified", got)
	}
}

func TestAuthsignalWrongCodeThenRight(t *testing.T) {
	b := start(t, nil)
	ref := reference()
	sess := b.startSession(map[string]any{"referenceId": ref, "phoneNumber": mobile(t), "provider": "authsignal", "channel": "WHATSAPP"})
	challenge, _ := sess["challengeId"].(string)
	if challenge == "" || sess["channel"] != "WHATSAPP" || sess["expiresAt"] == nil {
		t.Fatalf("session: %v", sess)
	}
	code := b.authsignal.CodeFor(challenge)
	wrong := "00000000"[:len(code)]
	if wrong == code {
		wrong = "11111111"[:len(code)]
	}
	if r := b.code(ref, wrong); r.status != 200 || r.json(t)["status"] != "sent" || r.json(t)["attempts"] != 1.0 {
		t.Fatalf("wrong code: %d %s", r.status, r.body)
	}
	if r := b.code(ref, code); r.status != 200 || r.json(t)["status"] != "verified" {
		t.Fatalf("right code: %d %s", r.status, r.body)
	}
	m := b.do("GET", "/metrics", nil)
	for _, want := range []string{
		`ivr_bridge_provider_calls_total{operation="check",outcome="code_accepted",provider="authsignal"} 1`,
		`ivr_bridge_provider_calls_total{operation="check",outcome="code_rejected",provider="authsignal"} 1`,
		`ivr_bridge_session_status_changes_total{status="pending"} 1`,
		`ivr_bridge_session_status_changes_total{status="sent"} 1`, // a code attempt enters no status
		`ivr_bridge_session_status_changes_total{status="verified"} 1`,
		`ivr_bridge_http_requests_total{method="POST",route="/v1/sessions/:ref/code",status="200"} 2`,
	} {
		if !strings.Contains(string(m.body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestAuthentixAttemptsRunOut(t *testing.T) {
	b := start(t, map[string]string{"LIMIT_CODE_ATTEMPTS": "3"})
	ref := reference()
	sess := b.startSession(map[string]any{"referenceId": ref, "phoneNumber": mobile(t), "provider": "authentix"})
	aid, _ := sess["authenticationId"].(string)
	if aid == "" {
		t.Fatalf("session: %v", sess)
	}
	code := b.authentix.CodeFor(aid)
	wrong := "99999999"[:len(code)]
	if wrong == code {
		wrong = "88888888"[:len(code)]
	}
	for i, want := range []string{"sent", "sent", "failed"} {
		if r := b.code(ref, wrong); r.status != 200 || r.json(t)["status"] != want {
			t.Fatalf("attempt %d: %d %s", i+1, r.status, r.body)
		}
	}
	// The right code after the attempts ran out changes nothing.
	if r := b.code(ref, code); r.status != 409 || r.errorCode() != "invalid_state" {
		t.Fatalf("code after failure: %d %s", r.status, r.body)
	}
}

func TestAuthentixVerify(t *testing.T) {
	b := start(t, nil)
	ref := reference()
	sess := b.startSession(map[string]any{"referenceId": ref, "phoneNumber": mobile(t), "provider": "authentix"})
	code := b.authentix.CodeFor(sess["authenticationId"].(string))
	if r := b.code(ref, code); r.status != 200 || r.json(t)["status"] != "verified" {
		t.Fatalf("code: %d %s", r.status, r.body)
	}
}

func TestExpiry(t *testing.T) {
	b := start(t, map[string]string{"LINK_TTL": "1s"})
	ref := reference()
	b.startSession(map[string]any{"referenceId": ref, "phoneNumber": mobile(t)})
	deadline := time.Now().Add(10 * time.Second)
	for b.session(ref)["status"] != "expired" {
		if time.Now().After(deadline) {
			t.Fatalf("session did not expire: %v", b.session(ref))
		}
		time.Sleep(200 * time.Millisecond)
	}
	// A code session past the challenge's expiresAt reads expired and takes no more codes.
	b.authsignal.SetChallengeTTL(2 * time.Second)
	ref2 := reference()
	sess := b.startSession(map[string]any{"referenceId": ref2, "phoneNumber": mobile(t), "provider": "authsignal"})
	code := b.authsignal.CodeFor(sess["challengeId"].(string))
	for b.session(ref2)["status"] != "expired" {
		if time.Now().After(deadline.Add(5 * time.Second)) {
			t.Fatalf("code session did not expire: %v", b.session(ref2))
		}
		time.Sleep(200 * time.Millisecond)
	}
	calls := b.authsignal.Count()
	if r := b.code(ref2, code); r.status != 409 || r.errorCode() != "invalid_state" {
		t.Fatalf("code after expiry: %d %s", r.status, r.body)
	}
	if b.authsignal.Count() != calls {
		t.Fatal("a code after expiry reached Authsignal")
	}
	// At the provider: Authentix no longer knows an expired authentication.
	ref3 := reference()
	sess = b.startSession(map[string]any{"referenceId": ref3, "phoneNumber": mobile(t), "provider": "authentix"})
	aid := sess["authenticationId"].(string)
	b.authentix.Expire(aid)
	if r := b.code(ref3, b.authentix.CodeFor(aid)); r.status != 200 || r.json(t)["status"] != "failed" {
		t.Fatalf("code on an authentication closed at Authentix: %d %s", r.status, r.body)
	}
}

func TestCancelAndResendLimits(t *testing.T) {
	b := start(t, map[string]string{"LIMIT_SENDS_PER_SESSION": "2"})
	ref := reference()
	b.startSession(map[string]any{"referenceId": ref, "phoneNumber": mobile(t), "provider": "authsignal"})
	if r := b.do("POST", "/v1/sessions/"+ref+"/resend", nil); r.status != 200 {
		t.Fatalf("resend: %d %s", r.status, r.body)
	}
	r := b.do("POST", "/v1/sessions/"+ref+"/resend", nil)
	if r.status != 429 || r.errorCode() != "rate_limited" || r.header.Get("Retry-After") == "" {
		t.Fatalf("resend over the limit: %d %s", r.status, r.body)
	}
	if r := b.do("POST", "/v1/sessions/"+ref+"/cancel", nil); r.status != 200 || r.json(t)["status"] != "cancelled" {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	if r := b.code(ref, "123456"); r.status != 409 || r.errorCode() != "invalid_state" {
		t.Fatalf("code after cancel: %d %s", r.status, r.body)
	}
	if n := b.authsignal.Sends(); n != 2 {
		t.Fatalf("Authsignal sends %d, want 2", n)
	}
	// Per number: a second session to the same number is refused past the number's budget.
	nb := start(t, map[string]string{"LIMIT_SENDS_PER_NUMBER": "1"})
	number := mobile(t)
	nb.startSession(map[string]any{"referenceId": reference(), "phoneNumber": number})
	if r := nb.do("POST", "/v1/sessions", map[string]any{"referenceId": reference(), "phoneNumber": number}); r.status != 429 || r.errorCode() != "rate_limited" {
		t.Fatalf("second session to one number: %d %s", r.status, r.body)
	}
}

func TestFallbackWhenProviderIsDown(t *testing.T) {
	b := start(t, map[string]string{"PROVIDER_FALLBACK": "authsignal"})
	b.callConnect.Close() // connection refused
	sess := b.startSession(map[string]any{"referenceId": reference(), "phoneNumber": mobile(t)})
	if sess["provider"] != "authsignal" || sess["challengeId"] == nil {
		t.Fatalf("no fallback: %v", sess)
	}
}

func TestEmbeddedRedisByDefault(t *testing.T) {
	b := start(t, map[string]string{"REDIS_URL": ""})
	if !strings.Contains(b.stderr.String(), "embedded") {
		t.Fatalf("no log line says the Redis is embedded:\n%s", b.stderr)
	}
	ref := reference()
	b.startSession(map[string]any{"referenceId": ref, "phoneNumber": mobile(t)})
	if b.session(ref)["status"] != "sent" {
		t.Fatal("session not kept")
	}
}

func TestReadyzFollowsRedis(t *testing.T) {
	mr := miniredis.NewMiniRedis()
	if err := mr.Start(); err != nil {
		t.Fatal(err)
	}
	b := start(t, map[string]string{"REDIS_URL": "redis://" + mr.Addr() + "/0"})
	if r := b.do("GET", "/readyz", nil); r.status != 200 {
		t.Fatalf("readyz: %d %s", r.status, r.body)
	}
	mr.Close()
	if r := b.do("GET", "/readyz", nil); r.status != 503 || r.errorCode() != "storage_unavailable" {
		t.Fatalf("readyz without Redis: %d %s", r.status, r.body)
	}
	r := b.do("POST", "/v1/sessions", map[string]any{"referenceId": reference(), "phoneNumber": mobile(t)})
	if r.status != 503 || r.errorCode() != "storage_unavailable" {
		t.Fatalf("start without Redis: %d %s", r.status, r.body)
	}
	if b.callConnect.Count() != 0 {
		t.Fatal("a start reached the provider without storage")
	}
}

func TestCheckConfig(t *testing.T) {
	run := func(env ...string) (string, int) {
		cmd := exec.Command(binary, "-check-config")
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	if out, code := run("CALLCONNECT_SECRET=x"); code != 0 {
		t.Fatalf("valid config: exit %d: %s", code, out)
	}
	for _, env := range []string{"SESSION_TTL=banana", "DEFAULT_COUNTRY=XYZ", "DEFAULT_PROVIDER=acme", "LIMIT_CODE_ATTEMPTS=-1", "REDIS_URL=ftp://x"} {
		out, code := run(env)
		name := strings.SplitN(env, "=", 2)[0]
		if code == 0 || strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.Contains(out, name) {
			t.Fatalf("%s: exit %d, output %q: want one line naming %s", env, code, out, name)
		}
	}
}

func TestUnknownRouteAndBadBodyThroughTheBinary(t *testing.T) {
	b := start(t, nil)
	if r := b.do("GET", "/nope", nil); r.status != http.StatusNotFound || r.errorCode() != "not_found" {
		t.Fatalf("unknown route: %d %s", r.status, r.body)
	}
	if r := b.do("POST", "/v1/sessions", []byte(`{"referenceId":`)); r.status != 400 || r.errorCode() != "invalid_request" {
		t.Fatalf("bad JSON: %d %s", r.status, r.body)
	}
}
