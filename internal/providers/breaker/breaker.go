// Package breaker puts a circuit breaker (sony/gobreaker) in front of a provider: after
// repeated unavailability (5xx, 429, timeouts, refused connections) calls fail at once for a
// while instead of making every caller wait out a provider that is down, and a trickle of
// trial calls closes it again when the provider is back. A refusal (4xx) is an answer, so it
// never opens the circuit.
package breaker

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/ivr-bridge/ivr-bridge/internal/callsession"
)

// Settings tune the breaker.
type Settings struct {
	Failures int           // consecutive unavailable answers that open the circuit (default 5)
	Open     time.Duration // how long it stays open before trial calls (default 10s)
	Trials   uint32        // calls let through while half-open (default 1)
	Logger   *slog.Logger
}

// Provider is a provider behind a circuit breaker.
type Provider struct {
	callsession.Provider
	cb *gobreaker.CircuitBreaker[any]
}

var _ callsession.Provider = (*Provider)(nil)

// Wrap returns p behind a breaker of its own.
func Wrap(p callsession.Provider, s Settings) *Provider {
	if s.Failures <= 0 {
		s.Failures = 5
	}
	if s.Open <= 0 {
		s.Open = 10 * time.Second
	}
	if s.Trials == 0 {
		s.Trials = 1
	}
	log := s.Logger
	if log == nil {
		log = slog.Default()
	}
	cb := gobreaker.NewCircuitBreaker[any](gobreaker.Settings{
		Name:        string(p.Name()),
		MaxRequests: s.Trials,
		Timeout:     s.Open,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= uint32(s.Failures) },
		IsSuccessful: func(err error) bool {
			var pe *callsession.ProviderError
			if errors.As(err, &pe) {
				return pe.Kind != callsession.ProviderUnavailable && pe.Kind != callsession.ProviderTimeout
			}
			return !errors.Is(err, context.DeadlineExceeded)
		},
		OnStateChange: func(name string, from, to gobreaker.State) {
			log.Warn("provider circuit", "provider", name, "from", from.String(), "to", to.String())
		},
	})
	return &Provider{Provider: p, cb: cb}
}

// State is the breaker's state: "closed", "half-open" or "open".
func (p *Provider) State() string { return p.cb.State().String() }

// refused turns the breaker's own refusal into the unavailability the domain understands (so
// the fallback provider, when configured, is tried at once).
func (p *Provider) refused(err error) error {
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return &callsession.ProviderError{Provider: p.Name(), Kind: callsession.ProviderUnavailable,
			Message: "circuit open: the provider failed repeatedly", Err: err}
	}
	return err
}

// Send implements callsession.Provider.
func (p *Provider) Send(ctx context.Context, req callsession.SendRequest) (callsession.SendResult, error) {
	out, err := p.cb.Execute(func() (any, error) { return p.Provider.Send(ctx, req) })
	if err != nil {
		return callsession.SendResult{}, p.refused(err)
	}
	return out.(callsession.SendResult), nil
}

// Check implements callsession.Provider.
func (p *Provider) Check(ctx context.Context, s *callsession.Session, code string) (callsession.CheckOutcome, error) {
	out, err := p.cb.Execute(func() (any, error) { return p.Provider.Check(ctx, s, code) })
	if err != nil {
		return 0, p.refused(err)
	}
	return out.(callsession.CheckOutcome), nil
}

// Cancel implements callsession.Provider.
func (p *Provider) Cancel(ctx context.Context, s *callsession.Session) error {
	_, err := p.cb.Execute(func() (any, error) { return nil, p.Provider.Cancel(ctx, s) })
	return p.refused(err)
}
