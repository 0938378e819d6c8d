package callsession

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ivr-bridge/ivr-bridge/internal/phone"
)

// detached returns a context that survives the caller hanging up but not the provider
// deadline, for a provider call and the writes that record its result.
func (s *Service) detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ProviderTimeout+2*time.Second)
}

// SubmitCode checks the code the caller keyed in. The answer is the session: verified, still
// sent with the attempt counted, or failed when attempts ran out.
func (s *Service) SubmitCode(ctx context.Context, ref, code string) (*Session, error) {
	if !ValidCode(code) {
		return nil, Errorf(CodeInvalidRequest, "code must be 4 to 10 digits")
	}
	sess, err := s.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	if err := codeCheckable(sess); err != nil {
		return nil, err
	}
	provider, err := s.provider(sess.Provider)
	if err != nil {
		return nil, err
	}

	// Reserve the attempt before asking the provider, so concurrent submissions can never
	// make more checks than the session allows.
	var attempt int
	reserved, err := s.update(ctx, ref, func(cur *Session) error {
		if err := codeCheckable(cur); err != nil {
			return err
		}
		if cur.MaxAttempts > 0 && cur.Attempts >= cur.MaxAttempts {
			cur.Status = StatusFailed
			cur.record(s.clock.Now(), EventFailed, "no code attempts left")
			return nil
		}
		cur.Attempts++
		attempt = cur.Attempts
		cur.UpdatedAt = s.clock.Now()
		return nil
	})
	if err != nil {
		return nil, err
	}
	if attempt == 0 {
		return reserved, nil // attempts had run out: the session is failed
	}

	dctx, cancel := s.detached(ctx)
	defer cancel()
	pctx, pcancel := context.WithTimeout(dctx, s.cfg.ProviderTimeout)
	outcome, checkErr := provider.Check(pctx, reserved, code)
	pcancel()

	var pe *ProviderError
	if checkErr != nil && !(errors.As(checkErr, &pe) && pe.Kind == ProviderNotFound) {
		s.log.WarnContext(ctx, "provider code check failed", "reference_id", ref, "provider", sess.Provider, "err", checkErr)
		// The check did not happen: give the attempt back and say why.
		if _, err := s.update(dctx, ref, func(cur *Session) error {
			if cur.Attempts > 0 && !cur.Status.Final() {
				cur.Attempts--
			}
			cur.record(s.clock.Now(), EventError, "code check: "+providerDetail(checkErr))
			return nil
		}); err != nil {
			return nil, err
		}
		return nil, providerError(checkErr)
	}

	out, err := s.update(dctx, ref, func(cur *Session) error {
		now := s.clock.Now()
		if cur.Status.Final() {
			return errNoChange // settled meanwhile (another correct code, cancel, webhook)
		}
		label := fmt.Sprintf("attempt %d of %d", attempt, cur.MaxAttempts)
		switch {
		case checkErr != nil: // the provider no longer knows the challenge: decide here
			cur.record(now, EventCodeRejected, label+": the provider no longer accepts codes for it")
			if cur.Expired(now) {
				cur.expire(now)
			} else {
				cur.Status = StatusFailed
				cur.record(now, EventFailed, "the provider closed the challenge")
			}
		case outcome == CodeAccepted:
			cur.Status = StatusVerified
			cur.record(now, EventCodeAccepted, label)
			cur.record(now, EventVerified, "code accepted by "+string(cur.Provider))
		case outcome == CheckExpired:
			cur.Status = StatusExpired
			cur.record(now, EventCodeRejected, label+": expired at the provider")
			cur.record(now, EventExpired, "expired at the provider")
		case outcome == CheckFailed:
			cur.Status = StatusFailed
			cur.record(now, EventCodeRejected, label)
			cur.record(now, EventFailed, "the provider ended the challenge after too many attempts")
		default:
			cur.record(now, EventCodeRejected, label)
			if cur.MaxAttempts > 0 && cur.Attempts >= cur.MaxAttempts {
				cur.Status = StatusFailed
				cur.record(now, EventFailed, "no code attempts left")
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "code checked", "reference_id", ref, "provider", out.Provider, "status", out.Status, "attempts", out.Attempts)
	return out, nil
}

func codeCheckable(sess *Session) error {
	if sess.Provider == ProviderCallConnect {
		return Errorf(CodeInvalidState, "a Call Connect session is settled by the caller opening the link, not by a code")
	}
	if sess.Status != StatusSent {
		return Errorf(CodeInvalidState, "the session is %s and takes no code", sess.Status)
	}
	return nil
}

// Resend sends the link or code again, on the same channel or on ch.
func (s *Service) Resend(ctx context.Context, ref string, ch Channel) (*Session, error) {
	sess, err := s.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	if ch == "" {
		ch = sess.Channel
	}
	if !ch.Valid() {
		return nil, Errorf(CodeInvalidRequest, "channel must be SMS, WHATSAPP or EMAIL")
	}
	if !Supports(sess.Provider, ch) {
		return nil, Errorf(CodeInvalidRequest, "provider %s cannot send on channel %s", sess.Provider, ch)
	}
	if ch == ChannelEmail && sess.Email == "" {
		return nil, Errorf(CodeInvalidRequest, "channel EMAIL needs the session to have an email address")
	}
	if ch.NeedsMobile() {
		if num, err := phone.Parse(sess.PhoneNumber, ""); err != nil || !num.CanReceiveSMS() {
			return nil, Errorf(CodeNotMobile, "the caller's number is not a mobile number and cannot receive %s", ch)
		}
	}
	if sess.Status != StatusSent {
		return nil, Errorf(CodeInvalidState, "the session is %s and cannot be resent", sess.Status)
	}
	provider, err := s.provider(sess.Provider)
	if err != nil {
		return nil, err
	}
	// The session's own limit first: a resend it refuses must not spend the number's budget.
	if err := s.sessionSendsLeft(sess); err != nil {
		return nil, err
	}
	if err := s.allowNumber(ctx, sess.PhoneNumber); err != nil {
		return nil, err
	}

	// Reserve the send first, so concurrent resends never exceed the limit.
	var n int
	reserved, err := s.update(ctx, ref, func(cur *Session) error {
		if cur.Status != StatusSent {
			return Errorf(CodeInvalidState, "the session is %s and cannot be resent", cur.Status)
		}
		if err := s.sessionSendsLeft(cur); err != nil {
			return err
		}
		cur.Sends++
		n = cur.Sends
		cur.UpdatedAt = s.clock.Now()
		return nil
	})
	if err != nil {
		return nil, err
	}

	dctx, cancel := s.detached(ctx)
	defer cancel()
	sctx, cancelSend := context.WithTimeout(dctx, s.cfg.ProviderTimeout)
	res, sendErr := s.send(sctx, provider, reserved, n, ch)
	cancelSend()
	out, err := s.update(dctx, ref, func(cur *Session) error {
		now := s.clock.Now()
		if sendErr != nil {
			var pe *ProviderError
			if errors.As(sendErr, &pe) && pe.Kind != ProviderTimeout && cur.Sends > 0 {
				cur.Sends-- // refused or unreachable: nothing was sent; a timeout may have sent
			}
			cur.record(now, EventError, "resend: "+providerDetail(sendErr))
			return nil
		}
		if cur.Status.Final() {
			return errNoChange
		}
		cur.Channel = ch
		s.applySend(cur, cur.Provider, res, now)
		cur.record(now, EventResent, fmt.Sprintf("send %d via %s to %s", n, cur.Channel, phone.Mask(cur.PhoneNumber)))
		return nil
	})
	if err != nil {
		return nil, err
	}
	if sendErr != nil {
		return nil, providerError(sendErr)
	}
	return out, nil
}

// sessionSendsLeft refuses a send beyond the per-session limit, until the session expires.
func (s *Service) sessionSendsLeft(sess *Session) error {
	lim := s.cfg.Limits.SendsPerSession
	if lim <= 0 || sess.Sends < lim {
		return nil
	}
	retry := time.Minute
	if sess.ExpiresAt != nil {
		retry = sess.ExpiresAt.Sub(s.clock.Now())
	}
	return &Error{Code: CodeRateLimited, Message: fmt.Sprintf("at most %d sends per session", lim), RetryAfter: retry}
}

// Cancel cancels the session and tells the provider where it has a cancel call. Cancelling a
// cancelled session answers it again.
func (s *Service) Cancel(ctx context.Context, ref string) (*Session, error) {
	sess, err := s.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	if sess.Status == StatusCancelled {
		return sess, nil
	}
	out, err := s.update(ctx, ref, func(cur *Session) error {
		if cur.Status == StatusCancelled {
			return errNoChange
		}
		if !CanMove(cur.Status, StatusCancelled) {
			return Errorf(CodeInvalidState, "the session is %s and cannot be cancelled", cur.Status)
		}
		cur.Status = StatusCancelled
		cur.record(s.clock.Now(), EventCancelled, "cancelled")
		return nil
	})
	if err != nil {
		return nil, err
	}
	if p, ok := s.providers[out.Provider]; ok && out.ProviderRef() != "" {
		dctx, cancel := s.detached(ctx)
		defer cancel()
		pctx, pcancel := context.WithTimeout(dctx, s.cfg.ProviderTimeout)
		err := p.Cancel(pctx, out)
		pcancel()
		if err != nil {
			// The session is cancelled here whatever the provider says; keep the trace.
			s.log.WarnContext(ctx, "provider cancel failed", "reference_id", ref, "provider", out.Provider, "err", err)
			if o, uerr := s.update(dctx, ref, func(cur *Session) error {
				cur.record(s.clock.Now(), EventError, "provider cancel: "+providerDetail(err))
				return nil
			}); uerr == nil {
				out = o
			}
		}
	}
	return out, nil
}

// Outcome is a provider's own verdict on a session, delivered by its webhook.
type Outcome struct {
	EventID     string // the provider's event ID: a repeated delivery changes nothing
	ReferenceID string
	Verified    bool
	Detail      string // e.g. the provider's event type and state
}

// ApplyOutcome settles a session from a provider webhook. Unknown references and sessions
// already final are ignored (applied=false), as is a repeated event. A session past its
// expiry is final too, even before a read has written it so: the late verdict writes the
// expiry instead, as that read would have.
func (s *Service) ApplyOutcome(ctx context.Context, o Outcome) (applied bool, err error) {
	if !ValidReferenceID(o.ReferenceID) {
		return false, nil
	}
	_, err = s.update(ctx, o.ReferenceID, func(cur *Session) error {
		applied = false // the store may run this again on a concurrent write
		// An outcome always makes the session final, so a repeated event finds it final.
		if cur.Status.Final() {
			return errNoChange
		}
		now := s.clock.Now()
		if cur.Expired(now) {
			cur.expire(now)
			return nil
		}
		cur.record(now, EventProviderEvent, "event "+o.EventID+": "+o.Detail)
		if o.Verified {
			cur.Status = StatusVerified
			cur.record(now, EventVerified, "verified by "+string(cur.Provider))
		} else {
			cur.Status = StatusFailed
			cur.record(now, EventFailed, "failed at "+string(cur.Provider))
		}
		applied = true
		return nil
	})
	if code, ok := CodeOf(err); ok && code == CodeNotFound {
		return false, nil
	}
	return applied, err
}
