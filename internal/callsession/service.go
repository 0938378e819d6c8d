package callsession

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/ivr-bridge/ivr-bridge/internal/phone"
)

// Limits are the abuse limits of DESIGN §7. Zero turns a limit off.
type Limits struct {
	SendsPerSession int           // start + resends of one session
	SendsPerNumber  int           // sends to one phone number per NumberWindow, across sessions
	NumberWindow    time.Duration // zero turns SendsPerNumber off too (DESIGN §2 lists it among the limits)
	CodeAttempts    int           // code checks of one session
}

// DefaultProviderTimeout bounds one provider call when the configuration names no bound:
// inside the 5 s an IVR platform's whole answer must take (DESIGN §7).
const DefaultProviderTimeout = 4 * time.Second

// Config is the behaviour of the service that operators choose.
type Config struct {
	SessionTTL      time.Duration // how long a session is kept after its last change
	DefaultProvider ProviderName
	DefaultCountry  string        // alpha-2 or alpha-3, for numbers in national format
	Fallback        ProviderName  // tried when the chosen provider is unavailable; "" for none
	LinkTTL         time.Duration // expiry of a session whose provider gives none (Call Connect)
	ProviderTimeout time.Duration // bound on one provider call, inside the IVR's deadline
	// PendingTimeout is how long a session may stay pending before a read decides its
	// provider call never finished (the process died mid-call) and marks it error.
	PendingTimeout time.Duration
	Limits         Limits
	// AllowedRegions, when not empty, are the only countries (alpha-2) whose numbers are
	// sent to; DeniedRegions are never sent to. SMS pumping to premium ranges abroad is the
	// classic abuse of a verification service.
	AllowedRegions, DeniedRegions []string
}

func (c *Config) setDefaults() {
	if c.SessionTTL <= 0 {
		c.SessionTTL = time.Hour
	}
	if c.DefaultProvider == "" {
		c.DefaultProvider = ProviderCallConnect
	}
	if c.LinkTTL <= 0 {
		c.LinkTTL = 10 * time.Minute
	}
	if c.ProviderTimeout <= 0 {
		c.ProviderTimeout = DefaultProviderTimeout
	}
	if c.PendingTimeout <= 0 {
		c.PendingTimeout = 3 * c.ProviderTimeout
	}
}

// Service runs call sessions: starts them at a provider, checks codes, resends, cancels and
// applies provider outcomes, keeping every change in the Store.
type Service struct {
	cfg        Config
	store      Store
	providers  map[ProviderName]Provider
	limiter    Limiter
	clock      Clock
	log        *slog.Logger
	publishers []Publisher
	observers  []StatusObserver
}

// Option changes a Service's collaborators; tests use it for fakes.
type Option func(*Service)

// WithClock sets the clock.
func WithClock(c Clock) Option { return func(s *Service) { s.clock = c } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(s *Service) { s.log = l } }

// WithLimiter sets the limiter for the per-number send limit.
func WithLimiter(l Limiter) Option { return func(s *Service) { s.limiter = l } }

// WithPublisher adds a place where every written change of a session is announced (live
// events, metrics); it may be given several times.
func WithPublisher(p Publisher) Option {
	return func(s *Service) { s.publishers = append(s.publishers, p) }
}

// WithStatusObserver adds an observer of status changes; it may be given several times.
func WithStatusObserver(o StatusObserver) Option {
	return func(s *Service) { s.observers = append(s.observers, o) }
}

// NewService returns a Service over store with the enabled providers (a provider whose
// credentials are missing is simply not passed: starting a session with it is
// provider_unavailable).
func NewService(cfg Config, store Store, providers []Provider, opts ...Option) *Service {
	cfg.setDefaults()
	s := &Service{cfg: cfg, store: store, providers: map[ProviderName]Provider{}, clock: SystemClock{}, log: slog.Default()}
	for _, p := range providers {
		s.providers[p.Name()] = p
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Config returns the configuration in force (with defaults applied).
func (s *Service) Config() Config { return s.cfg }

// channelsOf says which channels each provider can send on.
var channelsOf = map[ProviderName][]Channel{
	ProviderCallConnect: {ChannelSMS, ChannelWhatsApp},
	ProviderAuthsignal:  {ChannelSMS, ChannelWhatsApp, ChannelEmail},
	ProviderAuthentix:   {ChannelSMS, ChannelEmail},
}

// Supports reports whether provider p can send on channel c.
func Supports(p ProviderName, c Channel) bool {
	for _, ch := range channelsOf[p] {
		if ch == c {
			return true
		}
	}
	return false
}

// StartRequest is a request to verify the caller of one call. PhoneNumber and Country are as
// the IVR gave them; the service normalizes them.
type StartRequest struct {
	ReferenceID string
	PhoneNumber string
	Country     string
	Provider    ProviderName // empty: the configured default
	Channel     Channel      // empty: SMS
	UserID      string
	Username    string
	Email       string
	Locale      string
}

// ValidReferenceID reports whether ref is 1–128 printable ASCII characters without spaces
// (DESIGN §3). It keeps references safe to put in keys, URLs, headers and logs.
func ValidReferenceID(ref string) bool {
	if len(ref) == 0 || len(ref) > 128 {
		return false
	}
	for i := 0; i < len(ref); i++ {
		if ref[i] <= 0x20 || ref[i] >= 0x7f {
			return false
		}
	}
	return true
}

// The length of a code a caller keys in (DESIGN §4).
const (
	MinCodeLength = 4
	MaxCodeLength = 10
)

// ValidCode reports whether code is 4–10 ASCII digits (DESIGN §4).
func ValidCode(code string) bool {
	if len(code) < MinCodeLength || len(code) > MaxCodeLength {
		return false
	}
	for i := 0; i < len(code); i++ {
		if code[i] < '0' || code[i] > '9' {
			return false
		}
	}
	return true
}

// normalized is a StartRequest after validation.
type normalized struct {
	StartRequest
	number phone.Number
}

func (s *Service) normalize(r StartRequest) (normalized, error) {
	if !ValidReferenceID(r.ReferenceID) {
		return normalized{}, Errorf(CodeInvalidRequest, "referenceId must be 1-128 printable ASCII characters without spaces")
	}
	if r.Provider == "" {
		r.Provider = s.cfg.DefaultProvider
	}
	if !r.Provider.Valid() {
		return normalized{}, Errorf(CodeInvalidRequest, "provider must be one of callconnect, authsignal, authentix")
	}
	r.Channel = Channel(strings.ToUpper(string(r.Channel)))
	if r.Channel == "" {
		r.Channel = ChannelSMS
	}
	if !r.Channel.Valid() {
		return normalized{}, Errorf(CodeInvalidRequest, "channel must be SMS, WHATSAPP or EMAIL")
	}
	if !Supports(r.Provider, r.Channel) {
		return normalized{}, Errorf(CodeInvalidRequest, "provider %s cannot send on channel %s", r.Provider, r.Channel)
	}
	if r.Channel == ChannelEmail && !strings.Contains(r.Email, "@") {
		return normalized{}, Errorf(CodeInvalidRequest, "channel EMAIL needs an email address")
	}
	country := r.Country
	if country == "" {
		country = s.cfg.DefaultCountry
	}
	if _, err := phone.Region(country); err != nil {
		return normalized{}, &Error{Code: CodeInvalidRequest, Message: "country must be an ISO 3166 alpha-2 or alpha-3 code", Err: err}
	}
	num, err := phone.Parse(r.PhoneNumber, country)
	if err != nil {
		return normalized{}, phoneError(err)
	}
	if !s.regionServed(num.Region) {
		return normalized{}, Errorf(CodeInvalidPhoneNumber, "numbers of %s are not served by this deployment", num.Region)
	}
	if r.Channel.NeedsMobile() && !num.CanReceiveSMS() {
		return normalized{}, Errorf(CodeNotMobile, "the caller's number is not a mobile number and cannot receive %s", r.Channel)
	}
	r.PhoneNumber, r.Country = num.E164, num.Region
	return normalized{StartRequest: r, number: num}, nil
}

// regionServed applies the country allow and deny lists.
func (s *Service) regionServed(region string) bool {
	if slices.Contains(s.cfg.DeniedRegions, region) {
		return false
	}
	return len(s.cfg.AllowedRegions) == 0 || slices.Contains(s.cfg.AllowedRegions, region)
}

func phoneError(err error) error {
	switch {
	case errors.Is(err, phone.ErrWithheld):
		return &Error{Code: CodePhoneNumberWithheld, Message: "the caller's number is withheld", Err: err}
	case errors.Is(err, phone.ErrInvalidCountry):
		return &Error{Code: CodeInvalidRequest, Message: "country must be an ISO 3166 alpha-2 or alpha-3 code", Err: err}
	default:
		return &Error{Code: CodeInvalidPhoneNumber, Message: "the phone number is not a valid number", Err: err}
	}
}

// fingerprint identifies a start request after normalization, so the same start in another
// format ("+1 415…" or "(415)…" with US) is recognized as the same.
func (r normalized) fingerprint() string {
	h := sha256.New()
	for _, f := range []string{string(r.Provider), string(r.Channel), r.PhoneNumber, r.UserID, r.Username, r.Email, r.Locale} {
		h.Write([]byte(f))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// idempotencyKey is the key of a session's n-th send: a retried send reuses it, so a
// provider that honours it (Authsignal) never sends twice.
func idempotencyKey(ref string, n int) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("ivr-bridge:%s:%d", ref, n)))
	return hex.EncodeToString(sum[:16])
}

// StartResult is a started session and whether this request created it.
type StartResult struct {
	Session *Session
	Created bool
}

// Start starts a verification. The same start again returns the same session without a
// second provider call; a different start with the same reference is a conflict.
func (s *Service) Start(ctx context.Context, r StartRequest) (StartResult, error) {
	n, err := s.normalize(r)
	if err != nil {
		return StartResult{}, err
	}
	fp := n.fingerprint()
	// No read first: the atomic create answers an existing session itself, one round trip
	// fewer on every start. Only a start the service cannot make now looks for an earlier
	// one, so a repeated start is answered even if its provider has since gone.
	provider, err := s.provider(n.Provider)
	if err != nil {
		if existing, gerr := s.store.Get(ctx, n.ReferenceID); gerr == nil {
			return s.repeated(ctx, existing, fp)
		}
		if fb, ferr := s.fallbackFor(n.Provider, n.Channel); ferr == nil {
			provider = fb
		} else {
			return StartResult{}, err
		}
	}
	now := s.clock.Now()
	sess := &Session{
		ReferenceID: n.ReferenceID, Provider: provider.Name(), Channel: n.Channel,
		PhoneNumber: n.PhoneNumber, Country: n.Country, Status: StatusPending,
		UserID: n.UserID, Username: n.Username, Email: n.Email, Locale: n.Locale,
		MaxAttempts: s.cfg.Limits.CodeAttempts, CreatedAt: now, UpdatedAt: now,
		Events: []Event{}, Fingerprint: fp,
	}
	sess.record(now, EventCreated, fmt.Sprintf("%s via %s to %s", sess.Provider, sess.Channel, phone.Mask(sess.PhoneNumber)))
	existing, created, err := s.store.Create(ctx, sess, s.cfg.SessionTTL)
	if err != nil {
		return StartResult{}, storageError(err)
	}
	if !created {
		return s.repeated(ctx, existing, fp)
	}
	// Only the start that created the session spends from the number's send budget, so
	// repeated deliveries of one start are never refused for it. A refused start leaves
	// nothing behind.
	if err := s.allowNumber(ctx, n.PhoneNumber); err != nil {
		s.dropRefused(ctx, sess.ReferenceID)
		return StartResult{}, err
	}
	s.publish(ctx, sess)
	s.entered(ctx, sess)
	s.log.InfoContext(ctx, "session created", "reference_id", sess.ReferenceID, "provider", sess.Provider,
		"channel", sess.Channel, "phone", phone.Mask(sess.PhoneNumber))

	// The provider call and the writes after it are detached from the request: an IVR that
	// hangs up must not leave the session pending, nor a sent message unrecorded.
	dctx, cancel := s.detached(ctx)
	defer cancel()
	return s.sendFirst(dctx, sess, provider)
}

// dropRefused removes a session whose start was refused before any send, so nothing is left
// behind and a later start creates afresh.
func (s *Service) dropRefused(ctx context.Context, ref string) {
	if err := s.store.Delete(context.WithoutCancel(ctx), ref); err != nil {
		s.log.ErrorContext(ctx, "removing a refused session", "reference_id", ref, "err", err)
	}
}

// sendFirst makes a new session's first send, falling back to the configured fallback
// provider when the first one is unavailable (never when it refused the caller).
func (s *Service) sendFirst(ctx context.Context, sess *Session, provider Provider) (StartResult, error) {
	// The first send and any fallback share one provider deadline, so a start is answered
	// within it plus Redis' writes (DESIGN §4: 5 s): a primary that timed out leaves no
	// time for a fallback; one that failed fast (5xx, refused, breaker open) does.
	budget, cancelBudget := context.WithTimeout(ctx, s.cfg.ProviderTimeout)
	defer cancelBudget()
	res, sendErr := s.send(budget, provider, sess, 1, sess.Channel)
	known := sess // as created: the write after the send usually needs no read
	// The fallback needs time for a real try: with a sliver left, it could reach the provider
	// and send while the session records a timeout.
	if dl, _ := budget.Deadline(); sendErr != nil && unavailable(sendErr) && time.Until(dl) >= s.cfg.ProviderTimeout/2 {
		if fb, err := s.fallbackFor(provider.Name(), sess.Channel); err == nil {
			detail := fmt.Sprintf("%s unavailable, falling back to %s", provider.Name(), fb.Name())
			s.log.WarnContext(ctx, "provider fallback", "reference_id", sess.ReferenceID, "from", provider.Name(), "to", fb.Name(), "err", sendErr)
			if _, err := s.update(ctx, sess.ReferenceID, func(cur *Session) error {
				cur.Provider = fb.Name()
				cur.record(s.clock.Now(), EventError, detail)
				return nil
			}); err != nil {
				return StartResult{}, err
			}
			provider, known = fb, nil
			res, sendErr = s.send(budget, provider, sess, 1, sess.Channel)
		}
	}
	out, err := s.updateFrom(ctx, sess.ReferenceID, known, func(cur *Session) error {
		now := s.clock.Now()
		if sendErr != nil {
			if CanMove(cur.Status, StatusError) {
				cur.Status = StatusError
				cur.record(now, EventError, providerDetail(sendErr))
			}
			return nil
		}
		if cur.Status != StatusPending {
			return errNoChange // cancelled while the provider call was under way
		}
		s.applySend(cur, provider.Name(), res, now)
		cur.Status = StatusSent
		cur.Sends = 1
		cur.record(now, EventSent, fmt.Sprintf("%s via %s to %s", cur.Provider, cur.Channel, phone.Mask(cur.PhoneNumber)))
		return nil
	})
	if err != nil {
		return StartResult{}, err
	}
	if sendErr != nil {
		return StartResult{Session: out, Created: true}, providerError(sendErr)
	}
	return StartResult{Session: out, Created: true}, nil
}

func (s *Service) applySend(cur *Session, provider ProviderName, res SendResult, now time.Time) {
	cur.Provider = provider
	cur.setProviderRef(res.ProviderRef)
	if res.Channel.Valid() {
		cur.Channel = res.Channel
	}
	exp := now.Add(s.cfg.LinkTTL)
	if !res.ExpiresAt.IsZero() {
		exp = res.ExpiresAt.UTC()
	}
	cur.ExpiresAt = &exp
	cur.CodeLength = res.CodeLength // a resend's code replaces the last one
	if res.MaxAttempts > 0 && (cur.MaxAttempts == 0 || res.MaxAttempts < cur.MaxAttempts) {
		cur.MaxAttempts = res.MaxAttempts
	}
}

// send calls the provider for the session's n-th send. ctx carries the provider deadline
// (PROVIDER_TIMEOUT, whole retries included): the caller sets it, as a first send shares
// its one with a fallback's.
func (s *Service) send(ctx context.Context, p Provider, sess *Session, n int, ch Channel) (SendResult, error) {
	res, err := p.Send(ctx, SendRequest{
		ReferenceID: sess.ReferenceID, PhoneNumber: sess.PhoneNumber, Country: sess.Country, Channel: ch,
		UserID: sess.UserID, Username: sess.Username, Email: sess.Email, Locale: sess.Locale,
		IdempotencyKey: idempotencyKey(sess.ReferenceID, n), Resend: n > 1,
	})
	if err != nil {
		s.log.WarnContext(ctx, "provider send failed", "reference_id", sess.ReferenceID, "provider", p.Name(), "err", err)
		return res, err
	}
	if res.ProviderRef == "" {
		return res, &ProviderError{Provider: p.Name(), Kind: ProviderUnavailable, Message: "answer without an ID"}
	}
	return res, nil
}

// repeated answers a start whose reference exists: the same request gets the same session
// (waiting briefly for a concurrent first start to finish its provider call), a different
// one is a conflict.
func (s *Service) repeated(ctx context.Context, existing *Session, fp string) (StartResult, error) {
	if existing.Fingerprint != fp {
		return StartResult{}, Errorf(CodeConflict, "a different session already exists for this referenceId")
	}
	if s.orphaned(existing) {
		if res, err, ok := s.takeOver(ctx, existing); ok {
			return res, err
		}
	}
	cur, err := s.settle(ctx, existing)
	if err != nil {
		return StartResult{}, err
	}
	deadline := time.Now().Add(s.cfg.ProviderTimeout)
	for cur.Status == StatusPending && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return StartResult{Session: cur}, nil
		case <-time.After(25 * time.Millisecond):
		}
		if cur, err = s.Get(ctx, cur.ReferenceID); err != nil {
			return StartResult{}, err
		}
	}
	return StartResult{Session: cur}, nil
}

// orphanAfter is how long after its last write a pending session with no provider reference
// can have no start in flight: the start that wrote it gave its provider call and the write
// after it ProviderTimeout + 2 s (its detached deadline); 2 s more cover the clocks of
// replicas that disagree a little.
func (s *Service) orphanAfter() time.Duration { return s.cfg.ProviderTimeout + 4*time.Second }

// orphaned reports a session whose start was acknowledged to nobody and left no provider
// reference: written, then the start failed on Redis before its provider call (a WAIT that
// timed out, the limit check and the clean-up both failing) — or after it, when the write
// recording the send failed. Nothing settles it but a read marking it error. A retry of the
// same start may take it over only where sending again is safe whichever it was: at a
// provider that deduplicates the first send by its idempotency key.
func (s *Service) orphaned(sess *Session) bool {
	return sess.Status == StatusPending && sess.ProviderRef() == "" && idempotentFirstSend[sess.Provider] &&
		s.clock.Now().Sub(sess.UpdatedAt) > s.orphanAfter()
}

// idempotentFirstSend names the providers that answer a repeated first send (same
// idempotency key, DESIGN §6) with the first one's challenge instead of sending again.
var idempotentFirstSend = map[ProviderName]bool{ProviderAuthsignal: true}

// takeOver makes the first send of an orphaned session for a retried start. ok is false
// when another retry took it over first (or it is no longer orphaned): the caller answers
// it as any repeated start.
func (s *Service) takeOver(ctx context.Context, sess *Session) (res StartResult, err error, ok bool) {
	provider, err := s.provider(sess.Provider)
	if err != nil {
		return StartResult{}, nil, false // nothing to send with: answered as it stands
	}
	took := false // as decided by the write that counted (the function may run again on a conflict)
	claimed, err := s.updateFrom(ctx, sess.ReferenceID, sess, func(cur *Session) error {
		took = s.orphaned(cur)
		if !took {
			return errNoChange
		}
		// record moves UpdatedAt: no other retry takes it over while this one sends.
		cur.record(s.clock.Now(), EventCreated, "start retried: the first attempt ended before reaching the provider")
		return nil
	})
	if err != nil {
		return StartResult{}, err, true
	}
	if !took {
		return StartResult{}, nil, false
	}
	if err := s.allowNumber(ctx, claimed.PhoneNumber); err != nil {
		if code, _ := CodeOf(err); code == CodeRateLimited {
			s.dropRefused(ctx, claimed.ReferenceID) // as a refused start
		}
		return StartResult{}, err, true
	}
	s.log.InfoContext(ctx, "orphaned session taken over by a retried start", "reference_id", claimed.ReferenceID, "provider", claimed.Provider)
	dctx, cancel := s.detached(ctx)
	defer cancel()
	res, err = s.sendFirst(dctx, claimed, provider)
	res.Created = false // the session existed: this start is its repeat
	return res, err, true
}

func (s *Service) provider(name ProviderName) (Provider, error) {
	p, ok := s.providers[name]
	if !ok {
		return nil, Errorf(CodeProviderUnavailable, "provider %s is not configured", name)
	}
	return p, nil
}

func (s *Service) fallbackFor(from ProviderName, ch Channel) (Provider, error) {
	if s.cfg.Fallback == "" || s.cfg.Fallback == from {
		return nil, Errorf(CodeProviderUnavailable, "no fallback provider")
	}
	if !Supports(s.cfg.Fallback, ch) {
		return nil, Errorf(CodeProviderUnavailable, "fallback %s cannot send on %s", s.cfg.Fallback, ch)
	}
	return s.provider(s.cfg.Fallback)
}

func (s *Service) allowNumber(ctx context.Context, e164 string) error {
	if s.limiter == nil || s.cfg.Limits.SendsPerNumber <= 0 || s.cfg.Limits.NumberWindow <= 0 {
		return nil
	}
	ok, retry, err := s.limiter.Allow(ctx, numberLimitKey(e164), s.cfg.Limits.SendsPerNumber, s.cfg.Limits.NumberWindow)
	if err != nil {
		return storageError(err)
	}
	if !ok {
		return &Error{Code: CodeRateLimited, Message: "too many sends to this phone number; try again later", RetryAfter: retry}
	}
	return nil
}

// numberLimitKey names a number's send budget by a digest of the number, so Redis keys
// (which monitoring tools, SCAN and the slow log list) never show it. It is no protection
// against a reader of the data: the digest of a number is found by trying the numbers of a
// country, and the session's own record holds the number anyway (a keyed hash would need
// a key kept out of Redis and shared by every replica; it would hide nothing the records
// do not show).
func numberLimitKey(e164 string) string {
	sum := sha256.Sum256([]byte("ivr-bridge number " + e164))
	return "sends:number:" + hex.EncodeToString(sum[:12])
}

// Get returns the session, settling what time has decided (expiry, a start that never
// finished).
func (s *Service) Get(ctx context.Context, ref string) (*Session, error) {
	if !ValidReferenceID(ref) {
		return nil, Errorf(CodeInvalidRequest, "referenceId must be 1-128 printable ASCII characters without spaces")
	}
	sess, err := s.store.Get(ctx, ref)
	if errors.Is(err, ErrNotFound) {
		return nil, Errorf(CodeNotFound, "no session for this referenceId")
	}
	if err != nil {
		return nil, storageError(err)
	}
	return s.settle(ctx, sess)
}

// settle writes the changes that time alone makes: a session past its expiry is expired; a
// session pending for longer than any provider call can take lost its call and is error.
func (s *Service) settle(ctx context.Context, sess *Session) (*Session, error) {
	if due := s.SettlesAt(sess); due.IsZero() || s.clock.Now().Before(due) {
		return sess, nil
	}
	return s.update(ctx, sess.ReferenceID, func(cur *Session) error {
		now := s.clock.Now()
		switch {
		case cur.Expired(now):
			cur.expire(now)
		case cur.Status == StatusPending && !now.Before(s.givenUpAt(cur)):
			cur.Status = StatusError
			cur.record(now, EventError, "the provider call never finished")
		default:
			return errNoChange
		}
		return nil
	})
}

// SettlesAt is when time alone will next change the session as a read finds it (zero:
// never): at its expiry, or, while pending, when its start is given up. An event stream waits
// for it, so that the change is written and announced then.
func (s *Service) SettlesAt(sess *Session) time.Time {
	if sess.Status.Final() || !sess.Status.Valid() {
		return time.Time{}
	}
	var at time.Time
	if sess.ExpiresAt != nil {
		at = *sess.ExpiresAt
	}
	if sess.Status == StatusPending {
		if given := s.givenUpAt(sess); at.IsZero() || given.Before(at) {
			at = given
		}
	}
	return at
}

// givenUpAt is when a pending session's provider call is taken to have never finished (the
// process died mid-call): PendingTimeout after its last change, strictly.
func (s *Service) givenUpAt(sess *Session) time.Time {
	return sess.UpdatedAt.Add(s.cfg.PendingTimeout + time.Nanosecond)
}

// List returns recent sessions, newest first, as they read now.
func (s *Service) List(ctx context.Context, q ListQuery) (ListPage, error) {
	if q.Status != "" && !q.Status.Valid() {
		return ListPage{}, Errorf(CodeInvalidRequest, "status must be one of pending, sent, verified, failed, expired, cancelled, error")
	}
	if q.Limit <= 0 {
		q.Limit = 50
	}
	if q.Limit > 200 {
		return ListPage{}, Errorf(CodeInvalidRequest, "limit must be at most 200")
	}
	q.Now = s.clock.Now()
	page, err := s.store.List(ctx, q)
	if err != nil {
		if errors.Is(err, ErrStorage) {
			return ListPage{}, storageError(err)
		}
		return ListPage{}, &Error{Code: CodeInvalidRequest, Message: "cursor is not valid", Err: err}
	}
	for _, sess := range page.Sessions {
		sess.Status = sess.StatusAt(q.Now) // shown as it reads; an expiry is written on the next Get
	}
	return page, nil
}

// errNoChange aborts an update that finds nothing to write.
var errNoChange = errors.New("no change")

// update applies fn through the store; errNoChange from fn returns the session unchanged.
func (s *Service) update(ctx context.Context, ref string, fn func(*Session) error) (*Session, error) {
	return s.updateFrom(ctx, ref, nil, fn)
}

// updateFrom is update starting from a session the service holds (nil: read it first).
func (s *Service) updateFrom(ctx context.Context, ref string, known *Session, fn func(*Session) error) (*Session, error) {
	var seen *Session
	var before Status // of the session the write that succeeded started from
	track := func(cur *Session) error {
		seen, before = cur, cur.Status
		return fn(cur)
	}
	var out *Session
	var err error
	if known != nil {
		out, err = s.store.UpdateKnown(ctx, known, s.cfg.SessionTTL, track)
	} else {
		out, err = s.store.Update(ctx, ref, s.cfg.SessionTTL, track)
	}
	switch {
	case errors.Is(err, errNoChange):
		return seen, nil
	case errors.Is(err, ErrNotFound):
		return nil, Errorf(CodeNotFound, "no session for this referenceId")
	case err != nil:
		var e *Error
		if errors.As(err, &e) {
			return nil, err
		}
		return nil, storageError(err)
	}
	s.publish(ctx, out)
	if out.Status != before {
		s.entered(ctx, out)
	}
	return out, nil
}

// publish announces a written session, without the caller's context deadline: the write
// happened, so its notice should go out even if the request is ending.
func (s *Service) publish(ctx context.Context, sess *Session) {
	if sess == nil {
		return
	}
	ctx = context.WithoutCancel(ctx)
	for _, p := range s.publishers {
		p.Publish(ctx, sess)
	}
}

// entered tells the observers that sess has just entered its status.
func (s *Service) entered(ctx context.Context, sess *Session) {
	for _, o := range s.observers {
		o.StatusEntered(ctx, sess)
	}
}

func storageError(err error) error {
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	return &Error{Code: CodeStorageUnavailable, Message: "session storage is unavailable", Err: err}
}

func unavailable(err error) bool {
	var pe *ProviderError
	return errors.As(err, &pe) && (pe.Kind == ProviderUnavailable || pe.Kind == ProviderTimeout)
}

// providerError turns a provider failure into the answer for the caller.
func providerError(err error) error {
	var pe *ProviderError
	if !errors.As(err, &pe) {
		return &Error{Code: CodeProviderError, Message: "the provider failed", Err: err}
	}
	switch pe.Kind {
	case ProviderTimeout:
		return &Error{Code: CodeProviderTimeout, Message: fmt.Sprintf("%s did not answer in time", pe.Provider), Err: err}
	case ProviderUnavailable:
		return &Error{Code: CodeProviderUnavailable, Message: fmt.Sprintf("%s is unavailable", pe.Provider), RetryAfter: pe.RetryAfter, Err: err}
	case ProviderBadDestination:
		return &Error{Code: CodeInvalidPhoneNumber, Message: fmt.Sprintf("%s refused the destination", pe.Provider), Err: err}
	default:
		return &Error{Code: CodeProviderError, Message: fmt.Sprintf("%s refused the request", pe.Provider), Err: err}
	}
}

// providerDetail is the event detail for a provider failure: its kind and code, never the
// request.
func providerDetail(err error) string {
	var pe *ProviderError
	if !errors.As(err, &pe) {
		return "provider failed"
	}
	d := pe.Error()
	if pe.Err != nil {
		d = strings.TrimSuffix(d, ": "+pe.Err.Error())
	}
	return d // the provider's words are masked by ProviderError.Error
}
