package connect

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/ivr-bridge/ivr-bridge/internal/callsession"
	"github.com/ivr-bridge/ivr-bridge/internal/phone"
)

// fakeService is callflow.Service in memory: numbers are read by the real phone package,
// a start for a known reference answers the existing session without a send (as
// callsession.Service does), and one code is right.
type fakeService struct {
	mu        sync.Mutex
	sessions  map[string]*callsession.Session
	starts    []callsession.StartRequest
	submitted []string
	sends     int
	sendErr   error  // the provider's failure on a send
	rightCode string // the code the "provider" sent
}

func newFake() *fakeService {
	return &fakeService{sessions: map[string]*callsession.Session{}, rightCode: "123456"}
}

func refuse(code callsession.Code, msg string) error {
	return &callsession.Error{Code: code, Message: msg}
}

func (f *fakeService) Start(_ context.Context, r callsession.StartRequest) (callsession.StartResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.starts = append(f.starts, r)
	if !callsession.ValidReferenceID(r.ReferenceID) {
		return callsession.StartResult{}, refuse(callsession.CodeInvalidRequest, "referenceId is not valid")
	}
	num, err := phone.Parse(r.PhoneNumber, r.Country)
	switch {
	case errors.Is(err, phone.ErrWithheld):
		return callsession.StartResult{}, refuse(callsession.CodePhoneNumberWithheld, "the caller's number is withheld")
	case errors.Is(err, phone.ErrInvalidCountry):
		return callsession.StartResult{}, refuse(callsession.CodeInvalidRequest, "country is not ISO 3166")
	case err != nil:
		return callsession.StartResult{}, refuse(callsession.CodeInvalidPhoneNumber, "the phone number is not valid")
	}
	ch := callsession.Channel(strings.ToUpper(string(r.Channel)))
	if ch == "" {
		ch = callsession.ChannelSMS
	}
	if ch.NeedsMobile() && !num.CanReceiveSMS() {
		return callsession.StartResult{}, refuse(callsession.CodeNotMobile, "not a mobile number")
	}
	p := r.Provider
	if p == "" {
		p = callsession.ProviderCallConnect
	}
	if s, ok := f.sessions[r.ReferenceID]; ok {
		if s.PhoneNumber != num.E164 || s.Provider != p || s.Channel != ch {
			return callsession.StartResult{}, refuse(callsession.CodeConflict, "a different session exists")
		}
		c := *s
		return callsession.StartResult{Session: &c}, nil
	}
	f.sends++
	s := &callsession.Session{
		ReferenceID: r.ReferenceID, Provider: p, Channel: ch, PhoneNumber: num.E164,
		Status: callsession.StatusSent, MaxAttempts: 3,
	}
	f.sessions[r.ReferenceID] = s
	c := *s
	if f.sendErr != nil {
		s.Status, c.Status = callsession.StatusError, callsession.StatusError
		return callsession.StartResult{Session: &c, Created: true}, f.sendErr
	}
	return callsession.StartResult{Session: &c, Created: true}, nil
}

func (f *fakeService) SubmitCode(_ context.Context, ref, code string) (*callsession.Session, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.submitted = append(f.submitted, code)
	s, ok := f.sessions[ref]
	switch {
	case !ok:
		return nil, refuse(callsession.CodeNotFound, "no session for this referenceId")
	case s.Provider == callsession.ProviderCallConnect || s.Status != callsession.StatusSent:
		return nil, refuse(callsession.CodeInvalidState, "the session takes no code")
	}
	s.Attempts++
	switch {
	case code == f.rightCode:
		s.Status = callsession.StatusVerified
	case s.Attempts >= s.MaxAttempts:
		s.Status = callsession.StatusFailed
	}
	c := *s
	return &c, nil
}

func (f *fakeService) Get(_ context.Context, ref string) (*callsession.Session, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sessions[ref]
	if !ok {
		return nil, refuse(callsession.CodeNotFound, "no session for this referenceId")
	}
	c := *s
	return &c, nil
}
