package breaker

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ivr-bridge/ivr-bridge/internal/callsession"
)

// scripted answers Send with err (nil: success) and counts the calls that reached it.
type scripted struct {
	err   atomic.Pointer[error]
	calls atomic.Int32
}

func (s *scripted) Name() callsession.ProviderName { return callsession.ProviderAuthsignal }
func (s *scripted) Send(context.Context, callsession.SendRequest) (callsession.SendResult, error) {
	s.calls.Add(1)
	if e := s.err.Load(); e != nil && *e != nil {
		return callsession.SendResult{}, *e
	}
	return callsession.SendResult{ProviderRef: "ch_1"}, nil
}
func (s *scripted) Check(context.Context, *callsession.Session, string) (callsession.CheckOutcome, error) {
	s.calls.Add(1)
	return callsession.CodeRejected, nil
}
func (s *scripted) Cancel(context.Context, *callsession.Session) error { return nil }

func (s *scripted) answer(err error) { s.err.Store(&err) }

func kindOf(err error) callsession.ProviderErrorKind {
	var pe *callsession.ProviderError
	if errors.As(err, &pe) {
		return pe.Kind
	}
	return 0
}

func TestOpensOnUnavailabilityAndRecovers(t *testing.T) {
	inner := &scripted{}
	p := Wrap(inner, Settings{Failures: 3, Open: 100 * time.Millisecond})
	ctx := context.Background()
	inner.answer(&callsession.ProviderError{Kind: callsession.ProviderUnavailable, HTTPStatus: 503})
	for i := 0; i < 3; i++ {
		if _, err := p.Send(ctx, callsession.SendRequest{}); kindOf(err) != callsession.ProviderUnavailable {
			t.Fatalf("call %d: %v", i+1, err)
		}
	}
	if p.State() != "open" {
		t.Fatalf("state %s after 3 failures", p.State())
	}
	// Open: refused at once, as unavailability (so a fallback provider is tried), without a call.
	_, err := p.Send(ctx, callsession.SendRequest{})
	if kindOf(err) != callsession.ProviderUnavailable || inner.calls.Load() != 3 {
		t.Fatalf("open circuit: %v, %d calls", err, inner.calls.Load())
	}
	inner.answer(nil)
	deadline := time.Now().Add(3 * time.Second)
	for {
		res, err := p.Send(ctx, callsession.SendRequest{})
		if err == nil {
			if res.ProviderRef != "ch_1" {
				t.Fatalf("result %+v", res)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never recovered: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if p.State() != "closed" {
		t.Fatalf("state %s after a successful trial", p.State())
	}
}

func TestRefusalsAndTimeouts(t *testing.T) {
	inner := &scripted{}
	p := Wrap(inner, Settings{Failures: 2, Open: time.Minute})
	ctx := context.Background()
	inner.answer(&callsession.ProviderError{Kind: callsession.ProviderRejected, HTTPStatus: 400})
	for i := 0; i < 5; i++ {
		_, _ = p.Send(ctx, callsession.SendRequest{})
	}
	if p.State() != "closed" || inner.calls.Load() != 5 {
		t.Fatalf("refusals opened the circuit: %s, %d calls", p.State(), inner.calls.Load())
	}
	inner.answer(&callsession.ProviderError{Kind: callsession.ProviderTimeout})
	for i := 0; i < 2; i++ {
		_, _ = p.Send(ctx, callsession.SendRequest{})
	}
	if p.State() != "open" {
		t.Fatalf("timeouts did not open the circuit: %s", p.State())
	}
	if _, err := p.Check(ctx, &callsession.Session{}, "123456"); kindOf(err) != callsession.ProviderUnavailable {
		t.Fatalf("check through an open circuit: %v", err)
	}
	if p.Name() != callsession.ProviderAuthsignal {
		t.Fatal("name changed")
	}
}
