package vonage_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ivr-bridge/ivr-bridge/internal/app/apptest"
	"github.com/ivr-bridge/ivr-bridge/internal/webhooks/callflow"
	"github.com/ivr-bridge/ivr-bridge/internal/webhooks/vonage"
)

const secret = "vonage-signature-secret"

type ncco []struct {
	Action   string   `json:"action"`
	Text     string   `json:"text"`
	Language string   `json:"language"`
	Type     []string `json:"type"`
	EventURL []string `json:"eventUrl"`
	DTMF     *struct {
		MaxDigits    int  `json:"maxDigits"`
		SubmitOnHash bool `json:"submitOnHash"`
	} `json:"dtmf"`
}

func (n ncco) actions() string {
	var a []string
	for _, x := range n {
		a = append(a, x.Action)
	}
	return strings.Join(a, ",")
}

type call struct {
	t          *testing.T
	s          *apptest.Stack
	uuid, from string
}

func body(t *testing.T, file string, c *call, digits string) []byte {
	raw, err := os.ReadFile("testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	return []byte(strings.NewReplacer("UUID_PLACEHOLDER", c.uuid, "FROM_PLACEHOLDER", c.from, "DIGITS_PLACEHOLDER", digits).Replace(string(raw)))
}

// send posts (or GETs, with body nil) a webhook, signed unless token is given, and parses the NCCO.
func (c *call) send(method, path string, b []byte, token string) (int, ncco) {
	c.t.Helper()
	if token == "" {
		var err error
		if token, err = vonage.Sign(secret, b, time.Now()); err != nil {
			c.t.Fatal(err)
		}
	}
	headers := []string{"Authorization", "Bearer " + token}
	var in any
	if b != nil {
		in = b
	}
	r := c.s.Do(method, path, in, headers...)
	var n ncco
	if r.Status == http.StatusOK {
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			c.t.Fatalf("%s: Content-Type %q", path, ct)
		}
		if err := json.Unmarshal(r.Body, &n); err != nil {
			c.t.Fatalf("not an NCCO: %s", r.Body)
		}
	}
	return r.Status, n
}

func stack(t *testing.T) *apptest.Stack {
	return apptest.New(t, map[string]string{"VONAGE_SIGNATURE_SECRET": secret, "LIMIT_SENDS_PER_NUMBER": "0"})
}

func TestWholeCallWithAuthentix(t *testing.T) {
	s := stack(t)
	c := &call{t: t, s: s, uuid: "aaaaaaaa-" + apptest.RandomID(), from: "447400123456"}
	status, n := c.send(http.MethodPost, vonage.AnswerPath+"?provider=authentix", body(t, "answer.json", c, ""), "")
	if status != 200 || n.actions() != "talk,input" || n[1].DTMF == nil || !n[1].DTMF.SubmitOnHash ||
		n[1].DTMF.MaxDigits != 10 || // Authentix made the code: its length is not known
		len(n[1].EventURL) != 1 || !strings.HasSuffix(n[1].EventURL[0], vonage.InputPath) {
		t.Fatalf("answer: %d %+v", status, n)
	}
	sess := s.Do(http.MethodGet, "/v1/sessions/"+c.uuid, nil).JSON(t)
	if sess["phoneNumber"] != "+447400123456" {
		t.Fatalf("number %v", sess["phoneNumber"])
	}
	code := s.Authentix.CodeFor(sess["authenticationId"].(string))
	status, n = c.send(http.MethodPost, vonage.InputPath, body(t, "input.json", c, "00000000"[:len(code)]), "")
	if status != 200 || n.actions() != "talk,input" || !strings.Contains(n[0].Text, "not right") {
		t.Fatalf("wrong code: %d %+v", status, n)
	}
	status, n = c.send(http.MethodPost, vonage.InputPath, body(t, "input.json", c, code), "")
	if status != 200 || n.actions() != "talk" || !strings.Contains(n[0].Text, "verified") {
		t.Fatalf("right code: %d %+v", status, n)
	}
	if strings.Contains(s.Logs.String(), code) || strings.Contains(s.Logs.String(), "7400123456") {
		t.Fatal("the logs hold the code or the number")
	}
}

// When the bridge made the code (AUTHENTIX_CODE_LENGTH), the input stops at its last digit.
func TestInputCollectsTheCodesLength(t *testing.T) {
	s := apptest.New(t, map[string]string{"VONAGE_SIGNATURE_SECRET": secret, "LIMIT_SENDS_PER_NUMBER": "0", "AUTHENTIX_CODE_LENGTH": "6"})
	c := &call{t: t, s: s, uuid: "bbbbbbbb-" + apptest.RandomID(), from: "447400123456"}
	status, n := c.send(http.MethodPost, vonage.AnswerPath+"?provider=authentix", body(t, "answer.json", c, ""), "")
	if status != 200 || n.actions() != "talk,input" || n[1].DTMF == nil || n[1].DTMF.MaxDigits != 6 || !n[1].DTMF.SubmitOnHash {
		t.Fatalf("answer: %d %+v", status, n)
	}
}

// TestInputWithoutDigitsEndsTheCall: an input that timed out with nothing keyed (or ended by
// # alone) says the no-input phrase and ends the call, as Twilio's <Gather> falls through to
// it, instead of "that code was not right" again and again; nothing reaches the provider and
// no attempt is spent. Digits keyed before a timeout are still checked.
func TestInputWithoutDigitsEndsTheCall(t *testing.T) {
	s := stack(t)
	for _, tc := range []struct {
		name, file, digits, query string
		rightCode                 bool   // send the session's code as the digits
		actions, text, language   string // the NCCO wanted; text "" checks only the actions
		checks, attempts          int    // provider code checks made, attempts on the session
	}{
		{name: "timed out, nothing keyed", file: "input-timed-out.json",
			actions: "talk", text: callflow.NoInput(""), language: "en-US"},
		{name: "only # pressed", file: "input.json",
			actions: "talk", text: callflow.NoInput(""), language: "en-US"},
		{name: "timed out, nothing keyed, French", file: "input-timed-out.json", query: "?locale=fr-FR",
			actions: "talk", text: callflow.NoInput("fr-FR"), language: "fr-FR"},
		{name: "timed out after part of a code", file: "input-timed-out.json", digits: "12",
			actions: "talk,input"},
		{name: "timed out after the whole code", file: "input-timed-out.json", rightCode: true,
			actions: "talk", text: callflow.Prompt(callflow.Result{Step: callflow.StepVerified}, ""), language: "en-US", checks: 1, attempts: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &call{t: t, s: s, uuid: "ffffffff-" + apptest.RandomID(), from: "447400123456"}
			if status, n := c.send(http.MethodPost, vonage.AnswerPath+"?provider=authentix", body(t, "answer.json", c, ""), ""); status != 200 || n.actions() != "talk,input" {
				t.Fatalf("answer: %d %+v", status, n)
			}
			sess := s.Do(http.MethodGet, "/v1/sessions/"+c.uuid, nil).JSON(t)
			digits := tc.digits
			if tc.rightCode {
				digits = s.Authentix.CodeFor(sess["authenticationId"].(string))
			}
			before := s.Authentix.Count()
			status, n := c.send(http.MethodPost, vonage.InputPath+tc.query, body(t, tc.file, c, digits), "")
			if status != 200 || n.actions() != tc.actions {
				t.Fatalf("input: %d %+v", status, n)
			}
			if tc.text != "" && (n[0].Text != tc.text || n[0].Language != tc.language) {
				t.Fatalf("talk %q (%s), want %q (%s)", n[0].Text, n[0].Language, tc.text, tc.language)
			}
			if got := s.Authentix.Count() - before; got != tc.checks {
				t.Fatalf("%d provider requests, want %d", got, tc.checks)
			}
			if got := s.Do(http.MethodGet, "/v1/sessions/"+c.uuid, nil).JSON(t)["attempts"]; got != float64(tc.attempts) {
				t.Fatalf("attempts %v, want %d", got, tc.attempts)
			}
		})
	}
}

func TestGETAnswerWebhookAndDuplicates(t *testing.T) {
	s := stack(t)
	uuid := "bbbbbbbb-" + apptest.RandomID()
	q := url.Values{"uuid": {uuid}, "conversation_uuid": {"CON-1"}, "from": {"447400123456"}, "to": {"447700900000"}}
	c := &call{t: t, s: s}
	for i := 0; i < 3; i++ {
		status, n := c.send(http.MethodGet, vonage.AnswerPath+"?"+q.Encode(), nil, "")
		if status != 200 || n.actions() != "talk" || !strings.Contains(n[0].Text, "link") {
			t.Fatalf("delivery %d: %d %+v", i+1, status, n)
		}
	}
	if s.CallConnect.Sends() != 1 {
		t.Fatalf("Call Connect sends %d, want 1", s.CallConnect.Sends())
	}
}

func TestCallerProblemsAreSpoken(t *testing.T) {
	s := stack(t)
	for name, tc := range map[string]struct{ from, query, want string }{
		"withheld":   {"", "", "withheld"},
		"landline":   {"442079460018", "", "cannot receive text messages"},
		"invalid":    {"1555", "", "cannot send a code"},
		"french":     {"", "?locale=fr-FR", "masqué"},
		"bad digits": {"447400123456", "?provider=authsignal", "code"},
	} {
		t.Run(name, func(t *testing.T) {
			c := &call{t: t, s: s, uuid: "cccccccc-" + apptest.RandomID(), from: tc.from}
			status, n := c.send(http.MethodPost, vonage.AnswerPath+tc.query, body(t, "answer.json", c, ""), "")
			if status != 200 || len(n) == 0 || !strings.Contains(n[0].Text, tc.want) {
				t.Fatalf("%d %+v", status, n)
			}
		})
	}
	s.Authsignal.FailNext(3, 503, "")
	c := &call{t: t, s: s, uuid: "dddddddd-" + apptest.RandomID(), from: "447400123456"}
	if status, n := c.send(http.MethodPost, vonage.AnswerPath+"?provider=authsignal", body(t, "answer.json", c, ""), ""); status != 200 || n.actions() != "talk" || !strings.Contains(n[0].Text, "not available") {
		t.Fatalf("provider down: %d %+v", status, n)
	}
}

func TestSignedJWT(t *testing.T) {
	s := stack(t)
	c := &call{t: t, s: s, uuid: "eeeeeeee-" + apptest.RandomID(), from: "447400123456"}
	b := body(t, "answer.json", c, "")
	other, _ := vonage.Sign(secret, []byte(`{"uuid":"x"}`), time.Now())
	wrongKey, _ := vonage.Sign("not-the-secret", b, time.Now())
	stale, _ := vonage.Sign(secret, b, time.Now().Add(-10*time.Minute))
	none := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"iat": time.Now().Unix()})
	noneToken, _ := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	for name, token := range map[string]string{"other body": other, "wrong key": wrongKey, "stale": stale, "alg none": noneToken, "garbage": "a.b.c"} {
		if status, _ := c.send(http.MethodPost, vonage.AnswerPath, b, token); status != http.StatusUnauthorized {
			t.Fatalf("%s: %d", name, status)
		}
	}
	if s.CallConnect.Count() != 0 {
		t.Fatal("an unsigned webhook reached the provider")
	}
	if err := vonage.VerifyToken(secret, mustSign(t, b), b, time.Now()); err != nil {
		t.Fatalf("own token: %v", err)
	}
}

func mustSign(t *testing.T, b []byte) string {
	tok, err := vonage.Sign(secret, b, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
