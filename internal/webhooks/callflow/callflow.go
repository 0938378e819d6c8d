// Package callflow is what every IVR platform adapter does with a call, whatever its wire
// format: start a verification for the caller, check the digits they keyed in, read the
// state. Each step ends in a Result that says what the caller should hear next, so Twilio's
// TwiML, Vonage's NCCO and the flat maps of Connect and Genesys all tell the same story.
package callflow

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"time"

	"github.com/ivr-bridge/ivr-bridge/internal/callsession"
)

// Service is the part of callsession.Service the platforms drive.
type Service interface {
	Start(ctx context.Context, r callsession.StartRequest) (callsession.StartResult, error)
	SubmitCode(ctx context.Context, ref, code string) (*callsession.Session, error)
	Get(ctx context.Context, ref string) (*callsession.Session, error)
}

// Step is where the call stands, from the caller's side.
type Step string

const (
	StepEnterCode Step = "enter_code" // a code was sent: ask for it
	StepLinkSent  Step = "link_sent"  // a Call Connect link was sent: nothing to key in
	StepRetry     Step = "retry"      // the code was wrong: ask again
	StepVerified  Step = "verified"
	StepFailed    Step = "failed"    // attempts ran out, or the provider says so
	StepExpired   Step = "expired"   // too late
	StepCancelled Step = "cancelled" // the session was cancelled
	StepWaiting   Step = "waiting"   // the provider call is still under way
	StepRefused   Step = "refused"   // the caller cannot be verified this way (Code says why)
	StepError     Step = "error"     // the bridge or the provider failed (Code says which)
)

// Final reports whether nothing more can happen on the call's verification.
func (s Step) Final() bool {
	switch s {
	case StepVerified, StepFailed, StepExpired, StepCancelled, StepRefused, StepError:
		return true
	}
	return false
}

// Result is the outcome of one step.
type Result struct {
	Step      Step
	Reference string               // the referenceId asked about, also when there is no session
	Session   *callsession.Session // nil when there is none (a refused start)
	Code      callsession.Code     // the DESIGN §7 code for StepRefused and StepError
	Message   string               // safe to show (no number, no code)
}

// AttemptsLeft is how many more codes the caller may key in, -1 when unknown.
func (r Result) AttemptsLeft() int {
	if r.Session == nil || r.Session.MaxAttempts == 0 || r.Session.Status == callsession.StatusError {
		return -1 // no code to check (a start in error never sent one)
	}
	if n := r.Session.MaxAttempts - r.Session.Attempts; n > 0 {
		return n
	}
	return 0
}

// CodeDigits is how many digits the IVR should collect: the length of the code sent when
// the session knows it, else the longest a code may be (the caller ends it with #).
func (r Result) CodeDigits() (n int, known bool) {
	if s := r.Session; s != nil && s.CodeLength >= callsession.MinCodeLength && s.CodeLength <= callsession.MaxCodeLength {
		return s.CodeLength, true
	}
	return callsession.MaxCodeLength, false
}

// FieldNames lists every key Fields may hold. The flat-map platforms' shipped contracts
// (Genesys' output schema) are tested against it, so add a key here when Fields gains one.
var FieldNames = []string{"step", "error", "message", "referenceId", "status", "provider", "channel", "attempts", "attemptsLeft"}

// Fields is the result as a flat map of strings, the form Connect and Genesys need.
func (r Result) Fields() map[string]string {
	m := map[string]string{"step": string(r.Step)}
	if r.Code != "" {
		m["error"] = string(r.Code)
		m["message"] = r.Message
	}
	if r.Reference != "" {
		m["referenceId"] = r.Reference
	}
	if s := r.Session; s != nil {
		m["referenceId"] = s.ReferenceID
		m["status"] = string(s.Status)
		m["provider"] = string(s.Provider)
		m["channel"] = string(s.Channel)
		m["attempts"] = strconv.Itoa(s.Attempts)
		if n := r.AttemptsLeft(); n >= 0 {
			m["attemptsLeft"] = strconv.Itoa(n)
		}
	}
	return m
}

// Flow runs the steps on a Service.
type Flow struct {
	Service Service
	// Dedup, when set, recognises a platform delivering the same keyed-in code twice (a
	// retried webhook), so the repeat is answered from the first check instead of making a
	// second one (DESIGN §6).
	Dedup callsession.Deduper
	// AnswerWithin bounds the answer to a code delivery: DESIGN §7's "the whole
	// Twilio/Connect answer inside 5 s" (zero: AnswerBound). Tests shorten it.
	AnswerWithin time.Duration
	// CheckTimeout is the service's provider deadline (PROVIDER_TIMEOUT; zero: its default),
	// what a code check may take: a repeated delivery begins one only when it fits in what is
	// left of AnswerWithin.
	CheckTimeout time.Duration
}

// codeRepeatWindow is how long the same digits for the same call count as one delivery:
// longer than platforms take to retry a webhook (Twilio waits 15 s for an answer).
const codeRepeatWindow = time.Minute

// AnswerBound is DESIGN §7's bound on a platform's whole answer: "the whole Twilio/Connect
// answer inside 5 s".
const AnswerBound = 5 * time.Second

func (f Flow) answerWithin() time.Duration {
	if f.AnswerWithin > 0 {
		return f.AnswerWithin
	}
	return AnswerBound
}

func (f Flow) checkTimeout() time.Duration {
	if f.CheckTimeout > 0 {
		return f.CheckTimeout
	}
	return callsession.DefaultProviderTimeout
}

// replyTime is the end of the bound kept for what follows a wait or a check: the session's
// reads and writes and the reply (500 ms of 5 s).
func (f Flow) replyTime() time.Duration { return f.answerWithin() / 10 }

// checkFits reports whether a code check begun now is answered before the answer's deadline.
func (f Flow) checkFits(deadline time.Time) bool {
	return time.Until(deadline) >= f.checkTimeout()+f.replyTime()
}

// Start starts the verification of a call. A duplicate delivery of the platform's webhook is
// the same start again: the service answers the existing session without a second send.
func (f Flow) Start(ctx context.Context, r callsession.StartRequest) Result {
	res, err := f.Service.Start(ctx, r)
	if err != nil {
		out := fromError(err).about(r.ReferenceID)
		if out.Step == StepError {
			// A start that failed past its create left the session recording the failure:
			// the flow can branch on its status like on any other.
			if sess, gerr := f.Service.Get(ctx, r.ReferenceID); gerr == nil {
				out.Session = sess
			}
		}
		return out
	}
	return fromSession(res.Session, false)
}

// Code checks the digits the caller keyed in.
func (f Flow) Code(ctx context.Context, ref, digits string) Result {
	if !callsession.ValidCode(digits) {
		// Nothing a provider could accept: the caller tries again, no attempt spent.
		sess, err := f.Service.Get(ctx, ref)
		if err != nil {
			return fromError(err).about(ref)
		}
		r := fromSession(sess, false)
		if r.Step == StepEnterCode {
			r.Step = StepRetry
		}
		return r
	}
	if f.Dedup != nil {
		return f.codeOnce(ctx, ref, digits)
	}
	return f.check(ctx, ref, digits)
}

// check submits the digits to the provider through the service.
func (f Flow) check(ctx context.Context, ref, digits string) Result {
	sess, err := f.Service.SubmitCode(ctx, ref, digits)
	if err != nil {
		if code, _ := callsession.CodeOf(err); code == callsession.CodeInvalidState {
			// Already final (or a Call Connect session): say where it stands.
			if cur, gerr := f.Service.Get(ctx, ref); gerr == nil {
				return fromSession(cur, false)
			}
		}
		return fromError(err).about(ref)
	}
	return fromSession(sess, true)
}

// codeOnce checks the digits unless this is a repeated delivery of digits already being
// checked for the code the call was sent: then it answers with that check's outcome. A
// delivery is recorded before its check and marked answered after it; a check that did not
// happen (the provider or Redis failed) is forgotten, so a repeat makes a real one — when
// it can still be answered within AnswerWithin: a repeat that waited out a first check that
// timed out has no time left for a second one.
func (f Flow) codeOnce(ctx context.Context, ref, digits string) Result {
	deadline := time.Now().Add(f.answerWithin())
	sess, err := f.Service.Get(ctx, ref)
	if err != nil {
		return fromError(err).about(ref)
	}
	key := codeDeliveryKey(ref, sess.ProviderRef(), digits)
	first, err := f.Dedup.FirstSeen(ctx, key, codeRepeatWindow)
	if err != nil {
		return f.check(ctx, ref, digits) // a failed look-up is no reason to refuse the caller
	}
	if !first {
		if r, ok := f.repeatedCode(ctx, ref, key, deadline); ok {
			return r
		}
		if !f.checkFits(deadline) {
			return Result{Step: StepError, Code: callsession.CodeProviderTimeout,
				Message: "the code could not be checked in time"}.about(ref)
		}
		return f.check(ctx, ref, digits)
	}
	r := f.check(ctx, ref, digits)
	// Detached: the record of the outcome matters even if the platform hung up.
	dctx := context.WithoutCancel(ctx)
	if r.Step == StepError {
		_ = f.Dedup.Forget(dctx, key)
	} else {
		_, _ = f.Dedup.FirstSeen(dctx, key+answeredSuffix, codeRepeatWindow)
	}
	return r
}

// answeredSuffix marks a delivery whose check has been answered.
const answeredSuffix = ":answered"

// codeDeliveryKey names one call's delivery of some digits for the code identified by
// providerRef (a resend makes a new code, and the same digits a new try). The digits are
// hashed so the key, which listings of keys show, does not spell them; a reader of the
// data could still find them by trying every code of that length, as the session's record
// has ref and providerRef. The key lives codeRepeatWindow (a minute), and a code once
// checked is spent or was wrong.
func codeDeliveryKey(ref, providerRef, digits string) string {
	sum := sha256.Sum256([]byte(ref + "\x00" + providerRef + "\x00" + digits))
	return "code:" + hex.EncodeToString(sum[:16])
}

// repeatedCode answers a repeated delivery with the outcome of the first one's check, once
// that is answered, or that the check is under way when the answer's deadline nears. ok is
// false when the first check did not happen (its record was forgotten): the repeat is then
// a real try.
func (f Flow) repeatedCode(ctx context.Context, ref, key string, deadline time.Time) (Result, bool) {
	waitUntil := deadline.Add(-f.replyTime())
	for {
		answered, err := f.Dedup.Seen(ctx, key+answeredSuffix)
		if err != nil {
			return Result{}, false
		}
		if answered {
			sess, err := f.Service.Get(ctx, ref)
			if err != nil {
				return fromError(err).about(ref), true
			}
			return fromSession(sess, true), true
		}
		if pending, err := f.Dedup.Seen(ctx, key); err != nil || !pending {
			return Result{}, false
		}
		if time.Now().After(waitUntil) {
			sess, err := f.Service.Get(ctx, ref)
			if err != nil {
				return fromError(err).about(ref), true
			}
			return Result{Step: StepWaiting, Session: sess}, true
		}
		select {
		case <-ctx.Done():
			return Result{Step: StepWaiting, Reference: ref}, true
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// UnknownAction is the answer to a platform's request for a step the flow does not have: a
// refusal (invalid_request) in the platform's own form like any other (DESIGN §7), so the
// platform's flow branches on it.
func UnknownAction(ref, message string) Result {
	return Result{Step: StepRefused, Code: callsession.CodeInvalidRequest, Message: message}.about(ref)
}

// Status reads where the call stands.
func (f Flow) Status(ctx context.Context, ref string) Result {
	sess, err := f.Service.Get(ctx, ref)
	if err != nil {
		return fromError(err).about(ref)
	}
	return fromSession(sess, false)
}

// fromSession says what the caller hears for a session. afterCode: the session is the answer
// to a code just keyed in, so "still sent" means the code was wrong.
func fromSession(s *callsession.Session, afterCode bool) Result {
	r := Result{Session: s}
	switch s.Status {
	case callsession.StatusPending:
		r.Step = StepWaiting
	case callsession.StatusSent:
		switch {
		case s.Provider == callsession.ProviderCallConnect:
			r.Step = StepLinkSent
		case afterCode:
			r.Step = StepRetry
		default:
			r.Step = StepEnterCode
		}
	case callsession.StatusVerified:
		r.Step = StepVerified
	case callsession.StatusFailed:
		r.Step = StepFailed
	case callsession.StatusExpired:
		r.Step = StepExpired
	case callsession.StatusCancelled:
		r.Step = StepCancelled
	default:
		r.Step, r.Code, r.Message = StepError, callsession.CodeProviderError, "the provider refused the verification"
	}
	return r
}

// about names the reference a result without a session answers for.
func (r Result) about(ref string) Result {
	if callsession.ValidReferenceID(ref) { // never echo what could not be a reference
		r.Reference = ref
	}
	return r
}

func fromError(err error) Result {
	code, ok := callsession.CodeOf(err)
	var de *callsession.Error
	msg := "the verification could not be done"
	if errors.As(err, &de) {
		msg = de.Message
	}
	switch {
	case !ok && errors.Is(err, callsession.ErrStorage):
		return Result{Step: StepError, Code: callsession.CodeStorageUnavailable, Message: "session storage is unavailable"}
	case !ok:
		return Result{Step: StepError, Code: callsession.CodeProviderError, Message: msg}
	}
	switch code {
	case callsession.CodeInvalidPhoneNumber, callsession.CodePhoneNumberWithheld, callsession.CodeNotMobile,
		callsession.CodeInvalidRequest, callsession.CodeRateLimited, callsession.CodeConflict, callsession.CodeNotFound,
		callsession.CodeInvalidState:
		return Result{Step: StepRefused, Code: code, Message: msg}
	}
	return Result{Step: StepError, Code: code, Message: msg}
}
