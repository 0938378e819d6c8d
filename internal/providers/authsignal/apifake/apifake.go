// Package apifake is the HTTP conduct shared by the in-process fakes of Authsignal's APIs:
// authsignalfake (Server API: /challenge, /verify) and callconnectfake (Call Connect:
// /call/start). Both APIs take a POST with a JSON body, authenticate with HTTP Basic auth
// (the secret key as username, an empty password: docs.authsignal.com/api-reference/
// server-api/overview and the Call Connect reference) and refuse in the
// {"error","errorCode","errorDescription"} form (see package authsignalapi).
//
// A Server checks each request in this order and answers the first thing that is off:
// path (404), method (405), Basic auth (401), Content-Type (415), then hands the raw body to
// the endpoint, which decodes it strictly and checks its fields (400). Knobs come first: a
// delay (SetDelay, DelayNext) holds the request, an injected failure (FailNext) answers it
// unchecked and unprocessed; SetMalformed and MalformedNext spoil 2xx answers. Every
// request, accepted or not, is recorded on arrival.
package apifake

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/ivr-bridge/ivr-bridge/internal/providers/authsignal/authsignalapi"
)

// MaxBody bounds the request body the fakes read.
const MaxBody = 64 << 10

// E164 is a phone number in strict E.164 form: a plus, a country code not starting with 0,
// 7 to 15 digits in all.
var E164 = regexp.MustCompile(`^\+[1-9]\d{6,14}$`)

// ValidEmail reports whether s is a bare email address (no display name).
func ValidEmail(s string) bool {
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s && a.Name == ""
}

// Answer is what an endpoint answers.
type Answer struct {
	Status int
	Body   any // marshalled as JSON
	// Code and Description repeat an error answer's code and description for the record.
	Code, Description string
}

// OK is a 200 answer with body.
func OK(body any) Answer { return Answer{Status: http.StatusOK, Body: body} }

// Problem is an error answer in Authsignal's form.
func Problem(status int, code, description string) Answer {
	return Answer{Status: status, Code: code, Description: description,
		Body: authsignalapi.Body{Error: code, ErrorCode: code, ErrorDescription: description}}
}

// Endpoint handles the raw body of a request that passed the common checks.
type Endpoint func(raw []byte) Answer

// DecodeJSON decodes raw into v strictly: one JSON object, no field v does not know, every
// field of the right type. The error says what is wrong.
func DecodeJSON(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("unexpected data after the JSON object")
	}
	return nil
}

// BadBody is the 400 answer to a body that cannot be decoded.
func BadBody(err error) Answer {
	return Problem(http.StatusBadRequest, authsignalapi.CodeInvalidRequest, "Invalid request body: "+err.Error())
}

// Request is one request a fake received, and how it answered.
type Request struct {
	Method string
	Path   string
	Header http.Header
	Raw    []byte         // the body as received
	Fields map[string]any // the body decoded as a JSON object; nil when it is not one
	Status int            // the status answered; 0 when the caller went away first
	// ErrorCode and ErrorDescription are those of an error answer, empty on success.
	ErrorCode, ErrorDescription string
}

// Accepted reports whether the fake answered 2xx.
func (r Request) Accepted() bool { return r.Status >= 200 && r.Status < 300 }

// Has reports whether the body carried the field (present, whatever its value).
func (r Request) Has(field string) bool {
	_, ok := r.Fields[field]
	return ok
}

// BasicAuth returns the username and password of the request's Basic auth header.
func (r Request) BasicAuth() (user, pass string, ok bool) {
	hr := http.Request{Header: r.Header}
	return hr.BasicAuth()
}

func (r Request) clone() Request {
	c := r
	c.Header = r.Header.Clone()
	c.Raw = bytes.Clone(r.Raw)
	c.Fields = nil
	_ = json.Unmarshal(c.Raw, &c.Fields) // decoded afresh: nothing shared with the record
	return c
}

type delayed struct {
	left int
	d    time.Duration
}

type injected struct {
	left   int
	status int
	header http.Header
	body   string
}

// Server is an httptest server that behaves like one of Authsignal's APIs.
type Server struct {
	srv    *httptest.Server
	secret string
	prefix string
	routes map[string]Endpoint
	done   chan struct{}
	once   sync.Once

	mu        sync.Mutex
	requests  []Request
	delay     time.Duration
	delays    []delayed
	fails     []injected
	malformed bool
	// malformedNext counts the next 2xx answers to spoil.
	malformedNext int
}

// New starts a Server. prefix is the path the API lives under ("" or e.g. "/v1"); routes
// maps each endpoint path below it (e.g. "/challenge") to its handler.
func New(secret, prefix string, routes map[string]Endpoint) *Server {
	s := &Server{secret: secret, prefix: strings.TrimSuffix(prefix, "/"), routes: routes, done: make(chan struct{})}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// URL is the base URL to configure a client with (the server's address plus the prefix).
func (s *Server) URL() string { return s.srv.URL + s.prefix }

// URLPath is the path at which the server serves endpoint p.
func (s *Server) URLPath(p string) string { return s.prefix + p }

// Close stops the server; answers held back by SetDelay are abandoned.
func (s *Server) Close() {
	s.once.Do(func() { close(s.done) })
	s.srv.Close()
}

// Requests returns a copy of every request received, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		out[i] = r.clone()
	}
	return out
}

// Count returns how many requests were received, accepted or not.
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.requests)
}

// SetDelay holds every answer back by d. A caller that gives up meanwhile gets nothing and
// its request is not processed (it is recorded with Status 0).
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// DelayNext holds the answers to the next n requests back by d, instead of SetDelay's
// (e.g. to make only a first attempt time out).
func (s *Server) DelayNext(n int, d time.Duration) {
	if n <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delays = append(s.delays, delayed{left: n, d: d})
}

// FailNext answers the next n requests with status and body, before any other check and
// without processing them. An empty body is replaced by Authsignal's error form with a
// code fitting the status.
func (s *Server) FailNext(n, status int, body string) { s.FailNextHeader(n, status, nil, body) }

// FailNextHeader is FailNext with extra answer headers (e.g. Retry-After on a 429).
func (s *Server) FailNextHeader(n, status int, header http.Header, body string) {
	if n <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fails = append(s.fails, injected{left: n, status: status, header: header.Clone(), body: body})
}

// SetMalformed makes every answer that would be 2xx carry unreadable JSON instead (the
// request is still processed).
func (s *Server) SetMalformed(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.malformed = on
}

// MalformedNext spoils only the next n answers that would be 2xx, like SetMalformed.
func (s *Server) MalformedNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.malformedNext += n
}

func (s *Server) takeMalformed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.malformedNext > 0 {
		s.malformedNext--
		return true
	}
	return s.malformed
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	raw, readErr := io.ReadAll(io.LimitReader(r.Body, MaxBody+1))
	// Recorded on arrival, so Count is right even while an answer is held back.
	idx := s.arrive(Request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Raw: raw})

	if delay := s.nextDelay(); delay > 0 && !s.wait(r.Context(), delay) {
		return // the caller went away: nothing answered (Status 0), nothing done
	}

	if inj, ok := s.nextFailure(); ok {
		s.writeInjected(w, idx, inj)
		return
	}

	ans := s.handle(r, raw, readErr)
	s.answered(idx, ans)
	if ans.Status >= 200 && ans.Status < 300 && s.takeMalformed() {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(ans.Status)
		_, _ = io.WriteString(w, `{"oops": [unterminated`)
		return
	}
	write(w, ans)
}

func (s *Server) handle(r *http.Request, raw []byte, readErr error) Answer {
	path, found := strings.CutPrefix(r.URL.Path, s.prefix)
	ep, ok := s.routes[path]
	if !found || !ok {
		return Problem(http.StatusNotFound, "not_found", "No route for "+r.URL.Path)
	}
	if r.Method != http.MethodPost {
		return Problem(http.StatusMethodNotAllowed, authsignalapi.CodeInvalidRequest, "Method "+r.Method+" is not allowed")
	}
	user, pass, ok := r.BasicAuth()
	if !ok || subtle.ConstantTimeCompare([]byte(user), []byte(s.secret)) != 1 || pass != "" {
		return Problem(http.StatusUnauthorized, authsignalapi.CodeUnauthorized, "Invalid credentials: use the secret key as the Basic auth username and an empty password")
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return Problem(http.StatusUnsupportedMediaType, authsignalapi.CodeInvalidRequest, "Content-Type must be application/json")
	}
	if readErr != nil {
		return Problem(http.StatusBadRequest, authsignalapi.CodeInvalidRequest, "Could not read the body")
	}
	if len(raw) > MaxBody {
		return Problem(http.StatusRequestEntityTooLarge, authsignalapi.CodeInvalidRequest, "Body too large")
	}
	return ep(raw)
}

// wait sleeps d unless the caller goes away or the server closes first.
func (s *Server) wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.done:
		return false
	}
}

func (s *Server) nextDelay() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.delays) == 0 {
		return s.delay
	}
	d := s.delays[0].d
	s.delays[0].left--
	if s.delays[0].left == 0 {
		s.delays = s.delays[1:]
	}
	return d
}

func (s *Server) nextFailure() (injected, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.fails) == 0 {
		return injected{}, false
	}
	f := s.fails[0]
	s.fails[0].left--
	if s.fails[0].left == 0 {
		s.fails = s.fails[1:]
	}
	return f, true
}

func (s *Server) writeInjected(w http.ResponseWriter, idx int, inj injected) {
	for k, vs := range inj.header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	if inj.body == "" {
		ans := Problem(inj.status, defaultCode(inj.status), http.StatusText(inj.status))
		s.answered(idx, ans)
		write(w, ans)
		return
	}
	code, desc := authsignalapi.Decode(inj.status, []byte(inj.body))
	if inj.status >= 200 && inj.status < 300 {
		code, desc = "", ""
	}
	s.answered(idx, Answer{Status: inj.status, Code: code, Description: desc})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(inj.status)
	_, _ = io.WriteString(w, inj.body)
}

func (s *Server) arrive(rec Request) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, rec)
	return len(s.requests) - 1
}

func (s *Server) answered(idx int, ans Answer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := &s.requests[idx]
	r.Status, r.ErrorCode, r.ErrorDescription = ans.Status, ans.Code, ans.Description
}

func write(w http.ResponseWriter, ans Answer) {
	b, err := json.Marshal(ans.Body)
	if err != nil {
		b = []byte(fmt.Sprintf(`{"error":"internal_error","errorCode":"internal_error","errorDescription":%q}`, err.Error()))
		ans.Status = http.StatusInternalServerError
	}
	if ans.Status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", http.MethodPost)
	}
	if ans.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="authsignal"`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(ans.Status)
	_, _ = w.Write(b)
}

func defaultCode(status int) string {
	switch {
	case status == http.StatusUnauthorized:
		return authsignalapi.CodeUnauthorized
	case status == http.StatusTooManyRequests:
		return authsignalapi.CodeTooManyRequests
	case status == http.StatusNotFound:
		return "not_found"
	case status >= 500:
		return "internal_error"
	default:
		return authsignalapi.CodeInvalidRequest
	}
}

// NewID returns a random UUID (version 4), the form of Authsignal's IDs.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
