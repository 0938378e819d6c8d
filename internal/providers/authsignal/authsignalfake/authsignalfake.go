// Package authsignalfake is an in-process Authsignal Server API for tests: an httptest
// server that checks every POST /v1/challenge and /v1/verify the way the seed and
// Authsignal's API reference define them, "sends" a random 6-digit code per challenge and
// verifies it with attempt counting and expiry. Other packages' tests and the binary's
// end-to-end test point AUTHSIGNAL_BASE_URL at URL() and read the code with CodeFor.
//
// What it does beyond the documents, by design of ivr-bridge (DESIGN §6): a challenge
// repeated with the same idempotencyKey and action returns the same challenge and sends
// nothing again. Authsignal's reference only says the key "can be used to initiate
// multiple challenges for the same action".
package authsignalfake

import (
	"crypto/rand"
	"fmt"
	"math/big"
	"net/http"
	"sync"
	"time"

	"github.com/ivr-bridge/ivr-bridge/internal/providers/authsignal/apifake"
	"github.com/ivr-bridge/ivr-bridge/internal/providers/authsignal/authsignalapi"
)

// Paths of the Server API under its /v1 base.
const (
	Prefix        = "/v1"
	ChallengePath = "/challenge"
	VerifyPath    = "/verify"
)

// Defaults of the fake's challenges.
const (
	DefaultMaxAttempts = 5
	ChallengeTTL       = 10 * time.Minute
)

// Failure reasons of /verify (Authsignal's VerificationFailureReason).
const (
	ReasonInvalidOrExpired    = "CODE_INVALID_OR_EXPIRED"
	ReasonMaxAttemptsExceeded = "MAX_ATTEMPTS_EXCEEDED"
)

// ChallengeBody is the body of POST /challenge: every field the reference documents (and
// smsChannel, of its older form), so that a field it does not know is refused.
type ChallengeBody struct {
	VerificationMethod string         `json:"verificationMethod"`
	Action             string         `json:"action"`
	IdempotencyKey     string         `json:"idempotencyKey"`
	PhoneNumber        string         `json:"phoneNumber"`
	Email              string         `json:"email"`
	UserID             string         `json:"userId"`
	Scope              string         `json:"scope"`
	Locale             string         `json:"locale"`
	IPAddress          string         `json:"ipAddress"`
	UserAgent          string         `json:"userAgent"`
	DeviceID           string         `json:"deviceId"`
	Custom             map[string]any `json:"custom"`
	SMSChannel         string         `json:"smsChannel"`
}

// ChallengeAnswer is the answer to an accepted challenge; expiresAt is in Unix seconds.
type ChallengeAnswer struct {
	ChallengeID    string `json:"challengeId"`
	IdempotencyKey string `json:"idempotencyKey"`
	ExpiresAt      int64  `json:"expiresAt"`
}

// VerifyBody is the body of POST /verify.
type VerifyBody struct {
	ChallengeID      string `json:"challengeId"`
	VerificationCode string `json:"verificationCode"`
}

// VerifyAnswer is the answer of /verify; phoneNumber or email come only with success.
type VerifyAnswer struct {
	IsVerified         bool   `json:"isVerified"`
	FailureReason      string `json:"failureReason,omitempty"`
	PhoneNumber        string `json:"phoneNumber,omitempty"`
	Email              string `json:"email,omitempty"`
	VerificationMethod string `json:"verificationMethod,omitempty"`
}

// Request is one request the fake received, with its body decoded for its endpoint.
type Request struct {
	apifake.Request
	Challenge ChallengeBody // for /challenge
	Verify    VerifyBody    // for /verify
}

type challenge struct {
	id, key, action, method, phone, email, code string
	expiresAt                                   time.Time
	attempts                                    int
	used                                        bool
}

// Fake is a running Authsignal Server API. URL, Close, Count and the knobs for tests come
// from apifake.Server: SetDelay and DelayNext (answers held back, a caller that gives up
// leaves its request unprocessed), FailNext and FailNextHeader (the next answers replaced,
// before any check), SetMalformed and MalformedNext (2xx answers with unreadable JSON,
// the request still processed).
type Fake struct {
	*apifake.Server

	mu          sync.Mutex
	byID        map[string]*challenge
	byKey       map[string]*challenge // action + "\x00" + idempotencyKey
	maxAttempts int
	ttl         time.Duration
}

// New starts an Authsignal Server API that accepts secret as its secret key, under /v1
// like https://api.authsignal.com/v1.
func New(secret string) *Fake { return NewWithPrefix(secret, Prefix) }

// NewWithPrefix starts one under another path prefix.
func NewWithPrefix(secret, prefix string) *Fake {
	f := &Fake{byID: map[string]*challenge{}, byKey: map[string]*challenge{}, maxAttempts: DefaultMaxAttempts, ttl: ChallengeTTL}
	f.Server = apifake.New(secret, prefix, map[string]apifake.Endpoint{ChallengePath: f.challenge, VerifyPath: f.verify})
	return f
}

// Requests returns a copy of every request received, oldest first.
func (f *Fake) Requests() []Request {
	reqs := f.Server.Requests()
	out := make([]Request, len(reqs))
	for i, r := range reqs {
		out[i] = Request{Request: r}
		switch r.Path {
		case f.URLPath(ChallengePath):
			_ = apifake.DecodeJSON(r.Raw, &out[i].Challenge)
		case f.URLPath(VerifyPath):
			_ = apifake.DecodeJSON(r.Raw, &out[i].Verify)
		}
	}
	return out
}

// Sends returns how many distinct challenges were created, i.e. how many codes were sent.
func (f *Fake) Sends() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.byID)
}

// CodeFor returns the code sent for a challenge, "" for an unknown one.
func (f *Fake) CodeFor(challengeID string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.byID[challengeID]; ok {
		return c.code
	}
	return ""
}

// Attempts returns how many times /verify was called for a challenge.
func (f *Fake) Attempts(challengeID string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.byID[challengeID]; ok {
		return c.attempts
	}
	return 0
}

// Expire makes a challenge expired now; it reports whether the challenge exists.
func (f *Fake) Expire(challengeID string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.byID[challengeID]
	if ok {
		c.expiresAt = time.Now().Add(-time.Second)
	}
	return ok
}

// SetMaxAttempts sets how many /verify calls a challenge takes: later ones answer
// MAX_ATTEMPTS_EXCEEDED, even with the right code.
func (f *Fake) SetMaxAttempts(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.maxAttempts = n
}

// SetChallengeTTL sets how long new challenges live (ChallengeTTL by default).
func (f *Fake) SetChallengeTTL(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ttl = d
}

func (f *Fake) challenge(raw []byte) apifake.Answer {
	var b ChallengeBody
	if err := apifake.DecodeJSON(raw, &b); err != nil {
		return apifake.BadBody(err)
	}
	bad := func(desc string) apifake.Answer {
		return apifake.Problem(http.StatusBadRequest, authsignalapi.CodeInvalidRequest, desc)
	}
	switch {
	case b.VerificationMethod == "":
		return bad("verificationMethod is required")
	case b.VerificationMethod != "SMS" && b.VerificationMethod != "WHATSAPP" && b.VerificationMethod != "EMAIL_OTP":
		return bad("verificationMethod must be one of EMAIL_OTP, SMS, WHATSAPP")
	case b.Action == "":
		return bad("action is required")
	case b.SMSChannel != "" && b.SMSChannel != "DEFAULT" && b.SMSChannel != "WHATSAPP":
		return bad("smsChannel must be one of DEFAULT, WHATSAPP")
	case b.Scope != "" && b.Scope != "add:authenticators" && b.Scope != "update:authenticators" &&
		b.Scope != "add:authenticators update:authenticators":
		return bad("scope is not valid")
	case b.VerificationMethod != "EMAIL_OTP" && b.PhoneNumber == "":
		return bad("phoneNumber is required for verificationMethod " + b.VerificationMethod)
	case b.VerificationMethod == "EMAIL_OTP" && b.Email == "":
		return bad("email is required for verificationMethod EMAIL_OTP")
	case b.PhoneNumber != "" && !apifake.E164.MatchString(b.PhoneNumber):
		return bad("Invalid phone number: phoneNumber must be in E.164 format")
	case b.Email != "" && !apifake.ValidEmail(b.Email):
		return bad("Invalid email address")
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	if b.IdempotencyKey != "" {
		if c, ok := f.byKey[b.Action+"\x00"+b.IdempotencyKey]; ok {
			return apifake.OK(ChallengeAnswer{ChallengeID: c.id, IdempotencyKey: c.key, ExpiresAt: c.expiresAt.Unix()})
		}
	}
	c := &challenge{id: apifake.NewID(), key: b.IdempotencyKey, action: b.Action, method: b.VerificationMethod,
		phone: b.PhoneNumber, email: b.Email, code: newCode(), expiresAt: time.Now().Add(f.ttl)}
	if c.key == "" {
		c.key = apifake.NewID()
	}
	f.byID[c.id] = c
	f.byKey[c.action+"\x00"+c.key] = c
	return apifake.OK(ChallengeAnswer{ChallengeID: c.id, IdempotencyKey: c.key, ExpiresAt: c.expiresAt.Unix()})
}

func (f *Fake) verify(raw []byte) apifake.Answer {
	var b VerifyBody
	if err := apifake.DecodeJSON(raw, &b); err != nil {
		return apifake.BadBody(err)
	}
	switch {
	case b.ChallengeID == "":
		return apifake.Problem(http.StatusBadRequest, authsignalapi.CodeInvalidRequest, "challengeId is required")
	case b.VerificationCode == "":
		return apifake.Problem(http.StatusBadRequest, authsignalapi.CodeInvalidRequest, "verificationCode is required")
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.byID[b.ChallengeID]
	if !ok {
		// Not documented by Authsignal: the fake answers an unknown challenge with a 404.
		return apifake.Problem(http.StatusNotFound, "not_found", "Challenge not found")
	}
	c.attempts++
	switch {
	case c.attempts > f.maxAttempts:
		return apifake.OK(VerifyAnswer{FailureReason: ReasonMaxAttemptsExceeded})
	case c.used, !time.Now().Before(c.expiresAt), b.VerificationCode != c.code:
		return apifake.OK(VerifyAnswer{FailureReason: ReasonInvalidOrExpired})
	}
	c.used = true // a code verifies once
	ans := VerifyAnswer{IsVerified: true, VerificationMethod: c.method}
	if c.method == "EMAIL_OTP" {
		ans.Email = c.email
	} else {
		ans.PhoneNumber = c.phone
	}
	return apifake.OK(ans)
}

// newCode returns a random 6-digit code, leading zeros kept.
func newCode() string {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return fmt.Sprintf("%06d", n.Int64())
}
