package callsession

import (
	"errors"
	"fmt"
	"time"

	"github.com/ivr-bridge/ivr-bridge/internal/phone"
)

// Code is the machine-readable answer to a request that could not be done. The codes are the
// ones of DESIGN §7; every edge (the JSON API, the platform adapters) maps them to its own form.
type Code string

const (
	CodeInvalidRequest      Code = "invalid_request"
	CodeNotFound            Code = "not_found"
	CodeConflict            Code = "conflict"
	CodeInvalidState        Code = "invalid_state"
	CodeInvalidPhoneNumber  Code = "invalid_phone_number"
	CodePhoneNumberWithheld Code = "phone_number_withheld"
	CodeNotMobile           Code = "not_mobile"
	CodeRateLimited         Code = "rate_limited"
	CodeProviderError       Code = "provider_error"
	CodeProviderUnavailable Code = "provider_unavailable"
	CodeProviderTimeout     Code = "provider_timeout"
	CodeStorageUnavailable  Code = "storage_unavailable"
)

// Error is a refusal with a DESIGN §7 code and a message safe to show to the caller
// (no full phone number, no code, no secret).
type Error struct {
	Code       Code
	Message    string
	RetryAfter time.Duration // for CodeRateLimited
	Err        error         // the cause, for logs and errors.Is
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf makes an *Error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the code of the first *Error in err's chain, and false when there is none.
func CodeOf(err error) (Code, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e.Code, true
	}
	return "", false
}

// ErrNotFound is returned by a Store when no session has the reference.
var ErrNotFound = errors.New("session not found")

// ErrStorage wraps every failure of a Store to reach its backend, so the edges can answer
// storage_unavailable rather than a 500.
var ErrStorage = errors.New("storage unavailable")

// ProviderErrorKind says how a provider call failed, which decides the answer and whether a
// fallback provider may be tried.
type ProviderErrorKind int

const (
	// ProviderRejected: the provider refused the request (a 4xx): retrying will not help.
	ProviderRejected ProviderErrorKind = iota + 1
	// ProviderUnavailable: the provider is down, overloaded (5xx, 429), unreachable, or
	// answered something that cannot be read.
	ProviderUnavailable
	// ProviderTimeout: no answer within the deadline.
	ProviderTimeout
	// ProviderNotFound: the provider does not know the challenge/authentication any more.
	ProviderNotFound
	// ProviderBadDestination: the provider refused the phone number or email as a destination.
	ProviderBadDestination
)

// maxProviderWords bounds how much of a provider's error code and of its description
// ProviderError shows: they end up in logs and in the session's events, and a provider's
// answer may be up to a megabyte long.
const maxProviderWords = 200

// ProviderError is how a Provider reports a failed call.
type ProviderError struct {
	Provider   ProviderName
	Kind       ProviderErrorKind
	HTTPStatus int    // the provider's HTTP status, 0 when there was no answer
	Code       string // the provider's own error code, when it gave one, as it gave it
	Message    string // the provider's own description, when it gave one, as it gave it
	RetryAfter time.Duration
	Err        error
}

func (e *ProviderError) Error() string {
	msg := fmt.Sprintf("%s: ", e.Provider)
	switch e.Kind {
	case ProviderRejected:
		msg += "rejected"
	case ProviderUnavailable:
		msg += "unavailable"
	case ProviderTimeout:
		msg += "timeout"
	case ProviderNotFound:
		msg += "not found"
	case ProviderBadDestination:
		msg += "bad destination"
	}
	if e.HTTPStatus != 0 {
		msg += fmt.Sprintf(" (HTTP %d)", e.HTTPStatus)
	}
	// The provider's own words may quote the destination or the code, and this text is
	// logged and recorded in the session's events.
	if e.Code != "" {
		msg += " " + phone.MaskTextUpTo(e.Code, maxProviderWords)
	}
	if e.Message != "" {
		msg += ": " + phone.MaskTextUpTo(e.Message, maxProviderWords)
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *ProviderError) Unwrap() error { return e.Err }
