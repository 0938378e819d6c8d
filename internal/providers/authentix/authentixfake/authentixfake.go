// Package authentixfake is an in-process Reach Authentix for tests. It checks every request
// the way Authentix's documentation defines it (POST, ApiUser/ApiKey headers, a form-encoded
// body, an E.164 or email destination, the channel, customCode of 4–10 digits, the stringified
// JSON maps) and answers in Authentix's own forms, errors included, so a client bug fails a
// test instead of passing against a lenient fake.
package authentixfake

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"
)

// DefaultMaxControls is how many codes an authentication accepts before it fails.
const DefaultMaxControls = 5

// Request is one request the fake received and how it answered.
type Request struct {
	Method, Path string
	Header       http.Header
	Form         url.Values
	Status       int
	ErrorCode    int
}

type authentication struct {
	id, dest, channel, code, status string
	controls                        int
}

type failure struct {
	status int
	body   string
}

// Fake is a running Authentix.
type Fake struct {
	srv           *httptest.Server
	user, key     string
	mu            sync.Mutex
	reqs          []Request
	byID          map[string]*authentication
	maxControls   int
	delay         time.Duration
	fail          []failure
	malformedNext int
}

// New starts a fake that accepts the given ApiUser and ApiKey.
func New(apiUser, apiKey string) *Fake {
	f := &Fake{user: apiUser, key: apiKey, byID: map[string]*authentication{}, maxControls: DefaultMaxControls}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	return f
}

// URL is the base URL to configure the client with (like .../rest/authentix/v1).
func (f *Fake) URL() string { return f.srv.URL + "/rest/authentix/v1" }

// Close stops the fake.
func (f *Fake) Close() { f.srv.CloseClientConnections(); f.srv.Close() }

// Requests returns every request received, oldest first.
func (f *Fake) Requests() []Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Request(nil), f.reqs...)
}

// Count is how many requests were received.
func (f *Fake) Count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs)
}

// Sends is how many authentications were started (codes sent).
func (f *Fake) Sends() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, r := range f.reqs {
		if r.Status == http.StatusCreated {
			n++
		}
	}
	return n
}

// CodeFor is the code sent for an authentication, "" when unknown.
func (f *Fake) CodeFor(id string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if a := f.byID[id]; a != nil {
		return a.code
	}
	return ""
}

// Expire makes an authentication expire, as if its expiryTime had passed.
func (f *Fake) Expire(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if a := f.byID[id]; a != nil {
		a.status = "expired"
	}
}

// SetMaxControls sets how many controls new authentications allow.
func (f *Fake) SetMaxControls(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.maxControls = n
}

// SetDelay holds every answer back by d.
func (f *Fake) SetDelay(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.delay = d
}

// FailNext answers the next n requests with status and body, before any check.
func (f *Fake) FailNext(n, status int, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := 0; i < n; i++ {
		f.fail = append(f.fail, failure{status, body})
	}
}

// MalformedNext answers the next n accepted requests with unreadable JSON.
func (f *Fake) MalformedNext(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.malformedNext += n
}

var (
	e164      = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
	email     = regexp.MustCompile(`^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$`)
	digits    = regexp.MustCompile(`^[0-9]{4,10}$`)
	pathStart = regexp.MustCompile(`^/rest/authentix/v1/configurations/([^/]+)/authentications$`)
	pathCtl   = regexp.MustCompile(`^/rest/authentix/v1/configurations/([^/]+)/authentication-controls$`)
	pathOne   = regexp.MustCompile(`^/rest/authentix/v1/configurations/([^/]+)/authentications/([^/]+)$`)
)

type answer struct {
	status int
	body   any
}

func problem(status, code int, msg string) answer {
	return answer{status, map[string]any{"status": status, "errorCode": code, "errorMessage": msg,
		"moreInfo": "https://docs.reach.talkylabs.com/errors/" + fmt.Sprint(code)}}
}

func (f *Fake) serve(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	form, _ := url.ParseQuery(string(raw))
	rec := Request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Form: form}

	// Recorded on arrival (status 0 until answered), so a caller that gave up is still seen.
	f.mu.Lock()
	idx := len(f.reqs)
	f.reqs = append(f.reqs, rec)
	delay := f.delay
	var injected *failure
	if len(f.fail) > 0 {
		injected = &f.fail[0]
		f.fail = f.fail[1:]
	}
	f.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if injected != nil {
		f.answered(idx, injected.status, 0)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(injected.status)
		_, _ = io.WriteString(w, injected.body)
		return
	}
	ans := f.handle(r, form, string(raw))
	errorCode := 0
	if m, ok := ans.body.(map[string]any); ok {
		errorCode, _ = m["errorCode"].(int)
	}
	f.mu.Lock()
	malformed := f.malformedNext > 0 && ans.status < 300
	if malformed {
		f.malformedNext--
	}
	f.mu.Unlock()
	f.answered(idx, ans.status, errorCode)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(ans.status)
	if malformed {
		_, _ = io.WriteString(w, `{"authenticationId": `)
		return
	}
	_ = json.NewEncoder(w).Encode(ans.body)
}

func (f *Fake) answered(idx, status, errorCode int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs[idx].Status, f.reqs[idx].ErrorCode = status, errorCode
}

func (f *Fake) handle(r *http.Request, form url.Values, raw string) answer {
	if subtle.ConstantTimeCompare([]byte(r.Header.Get("ApiUser")), []byte(f.user)) != 1 ||
		subtle.ConstantTimeCompare([]byte(r.Header.Get("ApiKey")), []byte(f.key)) != 1 {
		return problem(http.StatusUnauthorized, 20003, "Authentication failed: invalid ApiUser or ApiKey")
	}
	if r.Method != http.MethodPost {
		return problem(http.StatusMethodNotAllowed, 20004, "Method not allowed")
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		return problem(http.StatusUnsupportedMediaType, 20005, "Content-Type must be application/x-www-form-urlencoded")
	}
	if _, err := url.ParseQuery(raw); err != nil {
		return problem(http.StatusBadRequest, 20001, "The body is not form-encoded")
	}
	if !strings.Contains(r.Header.Get("Accept"), "application/json") {
		return problem(http.StatusNotAcceptable, 20006, "Only application/json answers are offered")
	}
	switch {
	case pathStart.MatchString(r.URL.Path):
		return f.start(form)
	case pathCtl.MatchString(r.URL.Path):
		return f.control(form)
	case pathOne.MatchString(r.URL.Path):
		return f.update(pathOne.FindStringSubmatch(r.URL.Path)[2], form)
	}
	return problem(http.StatusNotFound, 20404, "The requested resource was not found")
}

func (f *Fake) start(form url.Values) answer {
	dest, channel := form.Get("dest"), form.Get("channel")
	switch {
	case dest == "":
		return problem(http.StatusBadRequest, 60200, "Invalid parameter: dest is required")
	case channel != "sms" && channel != "email":
		return problem(http.StatusBadRequest, 60200, "Invalid parameter: channel must be sms or email")
	case channel == "sms" && !e164.MatchString(dest):
		return problem(http.StatusBadRequest, 60200, "Invalid parameter: dest must be an E.164 phone number")
	case channel == "email" && !email.MatchString(dest):
		return problem(http.StatusBadRequest, 60200, "Invalid parameter: dest must be an email address")
	case form.Has("customCode") && !digits.MatchString(form.Get("customCode")):
		return problem(http.StatusBadRequest, 60200, "Invalid parameter: customCode must be 4 to 10 digits")
	}
	for _, k := range []string{"templateDataMap", "paymentInfo"} {
		var m map[string]any
		if form.Has(k) && json.Unmarshal([]byte(form.Get(k)), &m) != nil {
			return problem(http.StatusBadRequest, 60200, "Invalid parameter: "+k+" must be a stringified JSON map")
		}
	}
	code := form.Get("customCode")
	if code == "" {
		code = newCode()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	a := &authentication{id: "VID" + newID(), dest: dest, channel: channel, code: code, status: "awaiting"}
	f.byID[a.id] = a
	now := time.Now().UTC().Format(time.RFC3339Nano)
	return answer{http.StatusCreated, map[string]any{
		"appletId": "AIDfake", "apiVersion": "1.0.0", "configurationId": "CIDfake", "authenticationId": a.id,
		"status": a.status, "dest": dest, "channel": channel, "expiryTime": 5, "maxTrials": 5, "maxControls": f.maxControls,
		"trials":      []map[string]any{{"dateCreated": now, "trialId": "TRD" + newID(), "channel": channel}},
		"dateCreated": now, "dateUpdated": now,
	}}
}

func (f *Fake) control(form url.Values) answer {
	id, code := form.Get("authenticationId"), form.Get("code")
	if id == "" || code == "" {
		return problem(http.StatusBadRequest, 60200, "Invalid parameter: authenticationId and code are required")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	a := f.byID[id]
	if a == nil || a.status != "awaiting" {
		// Authentix answers 404 for an authentication that is no longer awaiting a code.
		return problem(http.StatusNotFound, 20404, "The requested resource was not found")
	}
	a.controls++
	status := "failed"
	if subtle.ConstantTimeCompare([]byte(code), []byte(a.code)) == 1 {
		status, a.status = "passed", "approved"
	} else if a.controls >= f.maxControls {
		a.status = "failed"
	}
	return answer{http.StatusCreated, map[string]any{"authenticationId": id, "status": status, "channel": a.channel,
		"dateCreated": time.Now().UTC().Format(time.RFC3339Nano)}}
}

func (f *Fake) update(id string, form url.Values) answer {
	if form.Get("status") != "canceled" {
		return problem(http.StatusBadRequest, 60200, "Invalid parameter: status must be canceled")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	a := f.byID[id]
	if a == nil || a.status != "awaiting" {
		return problem(http.StatusNotFound, 20404, "The requested resource was not found")
	}
	a.status = "canceled"
	return answer{http.StatusOK, map[string]any{"authenticationId": id, "status": a.status}}
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func newCode() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	out := make([]byte, 6)
	for i, x := range b {
		out[i] = '0' + x%10
	}
	return string(out)
}
