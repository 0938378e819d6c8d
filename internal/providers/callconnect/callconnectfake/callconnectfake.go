// Package callconnectfake is an in-process Authsignal Call Connect for tests: an httptest
// server that checks every POST /call/start the way the seed and Call Connect's API
// reference define it and answers like Call Connect, in its own error form when anything
// is off. Other packages' tests and the binary's end-to-end test point
// CALLCONNECT_BASE_URL at URL().
package callconnectfake

import (
	"net/http"
	"sync"

	"github.com/ivr-bridge/ivr-bridge/internal/providers/authsignal/apifake"
	"github.com/ivr-bridge/ivr-bridge/internal/providers/authsignal/authsignalapi"
)

// StartPath is Call Connect's start endpoint.
const StartPath = "/call/start"

// StartBody is the body of POST /call/start: every field Call Connect documents, so that a
// field it does not know is refused.
type StartBody struct {
	ReferenceID string `json:"referenceId"`
	PhoneNumber string `json:"phoneNumber"`
	UserID      string `json:"userId"`
	Username    string `json:"username"`
	Email       string `json:"email"`
	Channel     string `json:"channel"`
	Locale      string `json:"locale"`
	Country     string `json:"country"`
	ActionCode  string `json:"actionCode"`
}

// StartAnswer is Call Connect's answer to an accepted start.
type StartAnswer struct {
	MessageID string `json:"messageId"`
	Channel   string `json:"channel"`
}

// Request is one request the fake received, with its body decoded when it could be.
type Request struct {
	apifake.Request
	Start StartBody
}

// Fake is a running Call Connect. URL, Close, Count and the knobs for tests come
// from apifake.Server: SetDelay and DelayNext (answers held back, a caller that gives up
// leaves its request unprocessed), FailNext and FailNextHeader (the next answers replaced,
// before any check), SetMalformed and MalformedNext (2xx answers with unreadable JSON,
// the request still processed).
type Fake struct {
	*apifake.Server

	mu    sync.Mutex
	sends int
}

// New starts a Call Connect that accepts secret as its API secret key, at the root path
// like https://us-connect.authsignal.com.
func New(secret string) *Fake { return NewWithPrefix(secret, "") }

// NewWithPrefix starts a Call Connect served under a path prefix (as behind a gateway), to
// test that clients join their base URL and paths correctly.
func NewWithPrefix(secret, prefix string) *Fake {
	f := &Fake{}
	f.Server = apifake.New(secret, prefix, map[string]apifake.Endpoint{StartPath: f.start})
	return f
}

// Requests returns a copy of every request received, oldest first.
func (f *Fake) Requests() []Request {
	reqs := f.Server.Requests()
	out := make([]Request, len(reqs))
	for i, r := range reqs {
		out[i] = Request{Request: r}
		_ = apifake.DecodeJSON(r.Raw, &out[i].Start)
	}
	return out
}

// Sends returns how many starts were accepted, i.e. how many links Call Connect would have
// sent.
func (f *Fake) Sends() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sends
}

func (f *Fake) start(raw []byte) apifake.Answer {
	var b StartBody
	if err := apifake.DecodeJSON(raw, &b); err != nil {
		return apifake.BadBody(err)
	}
	bad := func(desc string) apifake.Answer {
		return apifake.Problem(http.StatusBadRequest, authsignalapi.CodeInvalidRequest, desc)
	}
	switch {
	case b.ReferenceID == "":
		return bad("referenceId is required")
	case b.PhoneNumber == "":
		return bad("phoneNumber is required")
	case b.Channel != "" && b.Channel != "SMS" && b.Channel != "WHATSAPP":
		return bad("channel must be one of WHATSAPP, SMS")
	// The seed allows a local format only with country; ivr-bridge always sends E.164.
	case !apifake.E164.MatchString(b.PhoneNumber):
		return bad("Invalid phone number: phoneNumber must be in E.164 format")
	case b.Email != "" && !apifake.ValidEmail(b.Email):
		return bad("Invalid email address")
	}
	ch := b.Channel
	if ch == "" {
		ch = "SMS" // the channel configured in the portal; SMS here
	}
	f.mu.Lock()
	f.sends++
	f.mu.Unlock()
	return apifake.OK(StartAnswer{MessageID: apifake.NewID(), Channel: ch})
}
