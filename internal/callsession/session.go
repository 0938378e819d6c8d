// Package callsession is the domain of ivr-bridge: one verification per IVR call, its state
// machine, its rules and its events. It defines the interfaces it needs (Store, Provider,
// Clock, Limiter) and knows nothing of HTTP frameworks or Redis.
package callsession

import (
	"time"
)

// Status is where a session stands. See DESIGN §3.
type Status string

const (
	StatusPending   Status = "pending"   // accepted, provider call under way
	StatusSent      Status = "sent"      // provider accepted the send
	StatusVerified  Status = "verified"  // the caller proved possession of the number
	StatusFailed    Status = "failed"    // wrong code too many times, or the provider said so
	StatusExpired   Status = "expired"   // past expiresAt without a verification
	StatusCancelled Status = "cancelled" // cancelled by the IVR or an agent
	StatusError     Status = "error"     // the provider refused the start for good
)

// Final reports whether nothing may move a session out of s.
func (s Status) Final() bool {
	switch s {
	case StatusVerified, StatusFailed, StatusExpired, StatusCancelled, StatusError:
		return true
	}
	return false
}

// Valid reports whether s is one of the statuses of DESIGN §3.
func (s Status) Valid() bool {
	return s == StatusPending || s == StatusSent || s.Final()
}

// transitions lists, for each non-final status, the statuses it may move to.
var transitions = map[Status][]Status{
	StatusPending: {StatusSent, StatusError, StatusCancelled, StatusExpired, StatusFailed, StatusVerified},
	StatusSent:    {StatusSent, StatusVerified, StatusFailed, StatusExpired, StatusCancelled, StatusError},
}

// CanMove reports whether a session may go from status `from` to status `to`.
func CanMove(from, to Status) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// ProviderName names a verification provider.
type ProviderName string

const (
	ProviderCallConnect ProviderName = "callconnect" // Authsignal Call Connect: a link by SMS/WhatsApp
	ProviderAuthsignal  ProviderName = "authsignal"  // Authsignal challenge: an OTP checked with /verify
	ProviderAuthentix   ProviderName = "authentix"   // Reach Authentix: a code checked with a control
)

// ProviderNames lists every provider ivr-bridge knows, in a stable order.
var ProviderNames = []ProviderName{ProviderCallConnect, ProviderAuthsignal, ProviderAuthentix}

// Valid reports whether p is a known provider.
func (p ProviderName) Valid() bool {
	for _, n := range ProviderNames {
		if n == p {
			return true
		}
	}
	return false
}

// Channel is how the link or code reaches the caller.
type Channel string

const (
	ChannelSMS      Channel = "SMS"
	ChannelWhatsApp Channel = "WHATSAPP"
	ChannelEmail    Channel = "EMAIL"
)

// NeedsMobile reports whether the channel must reach a mobile phone.
func (c Channel) NeedsMobile() bool { return c == ChannelSMS || c == ChannelWhatsApp }

// Valid reports whether c is a known channel.
func (c Channel) Valid() bool {
	return c == ChannelSMS || c == ChannelWhatsApp || c == ChannelEmail
}

// EventType is the kind of one entry in a session's history.
type EventType string

const (
	EventCreated       EventType = "created"
	EventSent          EventType = "sent"
	EventResent        EventType = "resent"
	EventCodeAccepted  EventType = "code_accepted"
	EventCodeRejected  EventType = "code_rejected"
	EventVerified      EventType = "verified"
	EventFailed        EventType = "failed"
	EventExpired       EventType = "expired"
	EventCancelled     EventType = "cancelled"
	EventError         EventType = "error"
	EventProviderEvent EventType = "provider_event"
)

// Event is one entry of a session's history. Detail is free text and never holds a full
// phone number or a code.
type Event struct {
	At     time.Time `json:"at"`
	Type   EventType `json:"type"`
	Detail string    `json:"detail,omitempty"`
}

// Session is the state of one call's verification, keyed by the IVR's reference.
// Its JSON form is the one every endpoint returns (DESIGN §3).
type Session struct {
	ReferenceID      string       `json:"referenceId"`
	Provider         ProviderName `json:"provider"`
	Channel          Channel      `json:"channel"`
	PhoneNumber      string       `json:"phoneNumber"`
	Country          string       `json:"country,omitempty"`
	Status           Status       `json:"status"`
	MessageID        string       `json:"messageId,omitempty"`
	ChallengeID      string       `json:"challengeId,omitempty"`
	AuthenticationID string       `json:"authenticationId,omitempty"`
	UserID           string       `json:"userId,omitempty"`
	Username         string       `json:"username,omitempty"`
	Email            string       `json:"email,omitempty"`
	Locale           string       `json:"locale,omitempty"`
	Attempts         int          `json:"attempts"`
	MaxAttempts      int          `json:"maxAttempts"`
	CodeLength       int          `json:"codeLength,omitempty"` // digits of the code sent, when known: IVRs stop collecting there
	Sends            int          `json:"sends"`
	ExpiresAt        *time.Time   `json:"expiresAt,omitempty"`
	CreatedAt        time.Time    `json:"createdAt"`
	UpdatedAt        time.Time    `json:"updatedAt"`
	Events           []Event      `json:"events"`

	// Fingerprint identifies the start request that created the session, so that a repeated
	// start can be told apart from a different one with the same reference. Stored, not shown.
	Fingerprint string `json:"fingerprint,omitempty"`

	// Version is the store's version of this copy (0: unknown), for UpdateKnown's
	// compare-and-set. Never stored nor shown.
	Version int64 `json:"-"`
}

// ProviderRef returns the provider's own ID for the session's send, whichever field holds it.
func (s *Session) ProviderRef() string {
	switch s.Provider {
	case ProviderCallConnect:
		return s.MessageID
	case ProviderAuthsignal:
		return s.ChallengeID
	case ProviderAuthentix:
		return s.AuthenticationID
	}
	return ""
}

// setProviderRef stores the provider's own ID in the field DESIGN §3 names for that provider.
func (s *Session) setProviderRef(id string) {
	s.MessageID, s.ChallengeID, s.AuthenticationID = "", "", ""
	switch s.Provider {
	case ProviderCallConnect:
		s.MessageID = id
	case ProviderAuthsignal:
		s.ChallengeID = id
	case ProviderAuthentix:
		s.AuthenticationID = id
	}
}

// record appends an event and moves UpdatedAt.
func (s *Session) record(at time.Time, t EventType, detail string) {
	s.Events = append(s.Events, Event{At: at, Type: t, Detail: detail})
	s.UpdatedAt = at
}

// Expired reports whether the session has passed its expiry while still open.
func (s *Session) Expired(now time.Time) bool {
	return !s.Status.Final() && s.ExpiresAt != nil && !now.Before(*s.ExpiresAt)
}

// expire writes the expiry that time decided (Expired): a read, a code check or a late
// provider verdict that finds the session past its expiry.
func (s *Session) expire(now time.Time) {
	s.Status = StatusExpired
	s.record(now, EventExpired, "expired without verification")
}

// StatusAt is the status as it reads at now: a session past its expiry is expired even
// before that is written (on its next read). The zero time is the stored status.
func (s *Session) StatusAt(now time.Time) Status {
	if !now.IsZero() && s.Expired(now) {
		return StatusExpired
	}
	return s.Status
}
