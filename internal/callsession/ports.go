package callsession

import (
	"context"
	"time"
)

// Store keeps sessions. Implementations must make Create atomic (one winner per reference)
// and Update a compare-and-set, and must wrap backend failures with ErrStorage.
type Store interface {
	// Create stores s unless a session with its reference exists. When one exists it returns
	// that session and created=false, and s is not written.
	Create(ctx context.Context, s *Session, ttl time.Duration) (existing *Session, created bool, err error)
	// Get returns the session or ErrNotFound.
	Get(ctx context.Context, referenceID string) (*Session, error)
	// Update reads the session, calls fn on it and writes it back only if nobody changed it
	// in between, retrying fn on a conflict. An error from fn aborts without writing. It
	// returns the session as written, or ErrNotFound.
	Update(ctx context.Context, referenceID string, ttl time.Duration, fn func(*Session) error) (*Session, error)
	// UpdateKnown is Update starting from a copy of the session the caller holds (as Create
	// or a write returned it, with its Version): when nobody wrote the session since, fn runs
	// on it and the store saves a read; otherwise it is Update. known may be changed.
	UpdateKnown(ctx context.Context, known *Session, ttl time.Duration, fn func(*Session) error) (*Session, error)
	// Delete removes a session (a start refused after its atomic create); a missing one is
	// not an error.
	Delete(ctx context.Context, referenceID string) error
	// List returns sessions newest first (DESIGN §4).
	List(ctx context.Context, q ListQuery) (ListPage, error)
	// Ping reports whether the backend answers.
	Ping(ctx context.Context) error
}

// ListQuery selects a page of recent sessions.
type ListQuery struct {
	Status Status // empty: any; matched against the status as it reads at Now
	Limit  int    // 1..200
	Cursor string // opaque, from a previous page's NextCursor
	// Now is when the list is read: a session past its expiry reads as expired then (see
	// Session.StatusAt). Zero: the stored status.
	Now time.Time
}

// ListPage is one page of recent sessions.
type ListPage struct {
	Sessions   []*Session
	NextCursor string
}

// SendRequest is what a provider needs to send a link or a code.
type SendRequest struct {
	ReferenceID    string
	PhoneNumber    string // E.164
	Country        string // ISO 3166 alpha-2, when known
	Channel        Channel
	UserID         string
	Username       string
	Email          string
	Locale         string
	IdempotencyKey string // derived from the session and the send number: same key, same send
	Resend         bool
}

// SendResult is the provider's answer to a send.
type SendResult struct {
	ProviderRef string    // messageId, challengeId or authenticationId
	Channel     Channel   // the channel the provider used, when it says
	ExpiresAt   time.Time // zero when the provider does not say
	MaxAttempts int       // the provider's own limit on code checks, 0 when it does not say
	CodeLength  int       // digits in the code sent, when known (the bridge made it), else 0
}

// CheckOutcome is the provider's verdict on one code.
type CheckOutcome int

const (
	CodeAccepted CheckOutcome = iota + 1 // the code is right: verified
	CodeRejected                         // the code is wrong: the caller may try again
	CheckFailed                          // the provider has given up on the challenge (too many attempts)
	CheckExpired                         // the challenge has expired at the provider
)

// Provider sends a link or a code and, where it has codes, checks them.
type Provider interface {
	Name() ProviderName
	Send(ctx context.Context, req SendRequest) (SendResult, error)
	// Check verifies a code. Providers without codes (Call Connect) are never asked.
	Check(ctx context.Context, s *Session, code string) (CheckOutcome, error)
	// Cancel tells the provider the session is abandoned; providers without a cancel call
	// return nil.
	Cancel(ctx context.Context, s *Session) error
}

// Clock tells the time; tests move it.
type Clock interface{ Now() time.Time }

// SystemClock is the real clock.
type SystemClock struct{}

// Now returns the current time in UTC.
func (SystemClock) Now() time.Time { return time.Now().UTC() }

// Limiter counts events in a window shared by every replica (DESIGN §7 limits).
type Limiter interface {
	// Allow records one event under key unless limit events already happened in the last
	// window: at most limit are allowed in any window (a sliding window, no burst beyond
	// it). A refused event is not recorded; the refusal says how long until the oldest
	// counted event leaves the window. A limit of 0 or less allows everything.
	Allow(ctx context.Context, key string, limit int, window time.Duration) (allowed bool, retryAfter time.Duration, err error)
}

// Deduper remembers keys it has seen, so a repeated delivery (a provider webhook's event id,
// a platform retry) is applied once.
type Deduper interface {
	// FirstSeen records key for ttl and reports whether it was not recorded before.
	FirstSeen(ctx context.Context, key string, ttl time.Duration) (bool, error)
	// Seen reports whether key is recorded now.
	Seen(ctx context.Context, key string) (bool, error)
	// Forget removes key, so the next FirstSeen of it is first again.
	Forget(ctx context.Context, key string) error
}

// Publisher tells watchers (agent desktops, connected to any replica) that a session changed.
// Publishing is best effort: a lost notice delays a screen, it must never fail a call, so
// Publish reports nothing and implementations log their own failures.
type Publisher interface {
	Publish(ctx context.Context, s *Session)
}

// StatusObserver learns of every session entering a status, once per change (metrics); a
// write that changes anything else (an attempt counted, a resend) is not one.
type StatusObserver interface {
	StatusEntered(ctx context.Context, s *Session)
}
