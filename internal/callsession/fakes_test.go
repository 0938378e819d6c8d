package callsession

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"
)

// memStore is an in-memory Store with the same contract as the Redis one: atomic create,
// compare-and-set update (here under one mutex), JSON round trips so callers cannot share
// memory with it.
type memStore struct {
	mu       sync.Mutex
	sessions map[string][]byte
	down     bool
}

func newMemStore() *memStore { return &memStore{sessions: map[string][]byte{}} }

func (m *memStore) Create(_ context.Context, s *Session, _ time.Duration) (*Session, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return nil, false, fmt.Errorf("%w: down", ErrStorage)
	}
	if b, ok := m.sessions[s.ReferenceID]; ok {
		return decode(b), false, nil
	}
	m.sessions[s.ReferenceID] = encode(s)
	return nil, true, nil
}

func (m *memStore) Get(_ context.Context, ref string) (*Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return nil, fmt.Errorf("%w: down", ErrStorage)
	}
	b, ok := m.sessions[ref]
	if !ok {
		return nil, ErrNotFound
	}
	return decode(b), nil
}

func (m *memStore) Update(_ context.Context, ref string, _ time.Duration, fn func(*Session) error) (*Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return nil, fmt.Errorf("%w: down", ErrStorage)
	}
	b, ok := m.sessions[ref]
	if !ok {
		return nil, ErrNotFound
	}
	s := decode(b)
	if err := fn(s); err != nil {
		return nil, err
	}
	m.sessions[ref] = encode(s)
	return decode(m.sessions[ref]), nil
}

func (m *memStore) List(_ context.Context, q ListQuery) (ListPage, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*Session
	for _, b := range m.sessions {
		if s := decode(b); q.Status == "" || s.StatusAt(q.Now) == q.Status {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.After(out[j].CreatedAt) })
	if len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return ListPage{Sessions: out}, nil
}

func (m *memStore) Delete(_ context.Context, ref string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.sessions, ref)
	return nil
}

func (m *memStore) Ping(context.Context) error { return nil }

func encode(s *Session) []byte {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return b
}

func decode(b []byte) *Session {
	var s Session
	if err := json.Unmarshal(b, &s); err != nil {
		panic(err)
	}
	return &s
}

// fakeProvider answers sends and checks as a test scripts it and records what it was asked.
type fakeProvider struct {
	name ProviderName

	mu        sync.Mutex
	sends     []SendRequest
	checks    []string
	cancels   int
	sendErr   error
	checkErr  error
	code      string        // the right code
	outcome   CheckOutcome  // forced outcome for a wrong code (default CodeRejected)
	delay     time.Duration // before answering a send
	maxChecks int
	expiresAt time.Time
}

func newFakeProvider(name ProviderName) *fakeProvider {
	return &fakeProvider{name: name, code: "123456"}
}

func (f *fakeProvider) Name() ProviderName { return f.name }

func (f *fakeProvider) Send(ctx context.Context, r SendRequest) (SendResult, error) {
	f.mu.Lock()
	f.sends = append(f.sends, r)
	n, err, delay := len(f.sends), f.sendErr, f.delay
	f.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return SendResult{}, &ProviderError{Provider: f.name, Kind: ProviderTimeout, Err: ctx.Err()}
		}
	}
	if err != nil {
		return SendResult{}, err
	}
	return SendResult{ProviderRef: fmt.Sprintf("%s-ref-%d", f.name, n), ExpiresAt: f.expiresAt, MaxAttempts: f.maxChecks}, nil
}

func (f *fakeProvider) Check(_ context.Context, _ *Session, code string) (CheckOutcome, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checks = append(f.checks, code)
	if f.checkErr != nil {
		return 0, f.checkErr
	}
	if code == f.code {
		return CodeAccepted, nil
	}
	if f.outcome != 0 {
		return f.outcome, nil
	}
	return CodeRejected, nil
}

func (f *fakeProvider) Cancel(context.Context, *Session) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cancels++
	return nil
}

func (f *fakeProvider) sendCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sends)
}

func (f *fakeProvider) checkCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.checks)
}

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// fakeLimiter allows limit per key, ignoring the window.
type fakeLimiter struct {
	mu    sync.Mutex
	count map[string]int
}

func (l *fakeLimiter) Allow(_ context.Context, key string, limit int, _ time.Duration) (bool, time.Duration, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.count == nil {
		l.count = map[string]int{}
	}
	if l.count[key] >= limit {
		return false, 30 * time.Second, nil
	}
	l.count[key]++
	return true, 0, nil
}

// recordingPublisher keeps every published session's reference and status.
// recordingPublisher records what is published and, as a StatusObserver, each status
// entered, as "<ref>:<status>".
type recordingPublisher struct {
	mu      sync.Mutex
	seen    []string
	entered []string
}

func (p *recordingPublisher) StatusEntered(_ context.Context, s *Session) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.entered = append(p.entered, s.ReferenceID+":"+string(s.Status))
}

func (p *recordingPublisher) Publish(_ context.Context, s *Session) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen = append(p.seen, s.ReferenceID+":"+string(s.Status))
}

func (p *recordingPublisher) all() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.seen...)
}

// UpdateKnown has no read to save in memory: it is Update.
func (m *memStore) UpdateKnown(ctx context.Context, known *Session, ttl time.Duration, fn func(*Session) error) (*Session, error) {
	return m.Update(ctx, known.ReferenceID, ttl, fn)
}
