package callsession

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

type harness struct {
	svc     *Service
	store   *memStore
	clock   *fakeClock
	cc, as  *fakeProvider
	ax      *fakeProvider
	limiter *fakeLimiter
	pub     *recordingPublisher
	logs    *lockedBuffer // what the service logged, at every level
}

// lockedBuffer is a bytes.Buffer that concurrent log writes may share.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newHarness(t *testing.T, mutate func(*Config)) *harness {
	t.Helper()
	h := &harness{
		store: newMemStore(), clock: &fakeClock{now: time.Date(2026, 11, 24, 18, 5, 0, 0, time.UTC)},
		cc: newFakeProvider(ProviderCallConnect), as: newFakeProvider(ProviderAuthsignal), ax: newFakeProvider(ProviderAuthentix),
		limiter: &fakeLimiter{}, pub: &recordingPublisher{}, logs: &lockedBuffer{},
	}
	cfg := Config{Limits: Limits{SendsPerSession: 3, SendsPerNumber: 5, NumberWindow: 10 * time.Minute, CodeAttempts: 5},
		ProviderTimeout: 200 * time.Millisecond}
	if mutate != nil {
		mutate(&cfg)
	}
	h.svc = NewService(cfg, h.store, []Provider{h.cc, h.as, h.ax}, WithClock(h.clock),
		WithLogger(slog.New(slog.NewTextHandler(h.logs, nil))), WithLimiter(h.limiter), WithPublisher(h.pub), WithStatusObserver(h.pub))
	return h
}

func codeOf(t *testing.T, err error) Code {
	t.Helper()
	c, ok := CodeOf(err)
	if !ok {
		t.Fatalf("error %v carries no code", err)
	}
	return c
}

var usMobile = StartRequest{ReferenceID: "CA123", PhoneNumber: "+14155552671"}

func TestStatusTransitions(t *testing.T) {
	all := []Status{StatusPending, StatusSent, StatusVerified, StatusFailed, StatusExpired, StatusCancelled, StatusError}
	for _, from := range all {
		for _, to := range all {
			got := CanMove(from, to)
			if from.Final() && got {
				t.Errorf("final %s may move to %s", from, to)
			}
		}
	}
	for _, c := range []struct {
		from, to Status
		want     bool
	}{
		{StatusPending, StatusSent, true}, {StatusSent, StatusVerified, true}, {StatusSent, StatusPending, false},
		{StatusPending, StatusError, true}, {StatusSent, StatusCancelled, true}, {StatusVerified, StatusFailed, false},
	} {
		if got := CanMove(c.from, c.to); got != c.want {
			t.Errorf("CanMove(%s, %s) = %v, want %v", c.from, c.to, got, c.want)
		}
	}
}

func TestStartSendsOnceAndStores(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	res, err := h.svc.Start(ctx, StartRequest{ReferenceID: "CA1", PhoneNumber: "(415) 555-2671", Country: "USA", UserID: "u1", Locale: "en"})
	if err != nil {
		t.Fatal(err)
	}
	s := res.Session
	if !res.Created || s.Status != StatusSent || s.Provider != ProviderCallConnect || s.MessageID != "callconnect-ref-1" ||
		s.PhoneNumber != "+14155552671" || s.Country != "US" || s.Channel != ChannelSMS || s.Sends != 1 {
		t.Fatalf("unexpected session %+v", s)
	}
	if s.ChallengeID != "" || s.AuthenticationID != "" {
		t.Errorf("only the provider's own ID must be set: %+v", s)
	}
	if s.ExpiresAt == nil || !s.ExpiresAt.Equal(h.clock.Now().Add(10*time.Minute)) {
		t.Errorf("expiresAt = %v, want now+LinkTTL", s.ExpiresAt)
	}
	if got := eventTypes(s); strings.Join(got, ",") != "created,sent" {
		t.Errorf("events = %v", got)
	}
	if sent := h.cc.sends[0]; sent.PhoneNumber != "+14155552671" || sent.ReferenceID != "CA1" || sent.UserID != "u1" || sent.IdempotencyKey == "" {
		t.Errorf("provider got %+v", sent)
	}
	for _, e := range s.Events {
		if strings.Contains(e.Detail, "5552671") {
			t.Errorf("event detail leaks the number: %q", e.Detail)
		}
	}

	// The same start in another format is the same session, with no second send.
	again, err := h.svc.Start(ctx, StartRequest{ReferenceID: "CA1", PhoneNumber: "+1 415-555-2671", UserID: "u1", Locale: "en"})
	if err != nil {
		t.Fatal(err)
	}
	if again.Created || again.Session.MessageID != s.MessageID || h.cc.sendCount() != 1 {
		t.Fatalf("repeat: created=%v sends=%d", again.Created, h.cc.sendCount())
	}
	// A different start with the same reference is a conflict.
	_, err = h.svc.Start(ctx, StartRequest{ReferenceID: "CA1", PhoneNumber: "+14155552672"})
	if codeOf(t, err) != CodeConflict {
		t.Fatalf("got %v, want conflict", err)
	}
}

func eventTypes(s *Session) []string {
	var out []string
	for _, e := range s.Events {
		out = append(out, string(e.Type))
	}
	return out
}

func TestStartRefusals(t *testing.T) {
	cases := []struct {
		name string
		req  StartRequest
		want Code
	}{
		{"empty reference", StartRequest{PhoneNumber: "+14155552671"}, CodeInvalidRequest},
		{"reference with space", StartRequest{ReferenceID: "a b", PhoneNumber: "+14155552671"}, CodeInvalidRequest},
		{"reference with newline", StartRequest{ReferenceID: "a\nb", PhoneNumber: "+14155552671"}, CodeInvalidRequest},
		{"reference too long", StartRequest{ReferenceID: strings.Repeat("a", 129), PhoneNumber: "+14155552671"}, CodeInvalidRequest},
		{"unknown provider", StartRequest{ReferenceID: "r", PhoneNumber: "+14155552671", Provider: "twilio"}, CodeInvalidRequest},
		{"unknown channel", StartRequest{ReferenceID: "r", PhoneNumber: "+14155552671", Channel: "FAX"}, CodeInvalidRequest},
		{"callconnect email", StartRequest{ReferenceID: "r", PhoneNumber: "+14155552671", Channel: ChannelEmail, Email: "a@b.c"}, CodeInvalidRequest},
		{"authentix whatsapp", StartRequest{ReferenceID: "r", PhoneNumber: "+14155552671", Provider: ProviderAuthentix, Channel: ChannelWhatsApp}, CodeInvalidRequest},
		{"email without address", StartRequest{ReferenceID: "r", PhoneNumber: "+14155552671", Provider: ProviderAuthsignal, Channel: ChannelEmail}, CodeInvalidRequest},
		{"bad country", StartRequest{ReferenceID: "r", PhoneNumber: "4155552671", Country: "XYZW"}, CodeInvalidRequest},
		{"withheld", StartRequest{ReferenceID: "r", PhoneNumber: "anonymous"}, CodePhoneNumberWithheld},
		{"twilio withheld", StartRequest{ReferenceID: "r", PhoneNumber: "+266696687"}, CodePhoneNumberWithheld},
		{"empty number", StartRequest{ReferenceID: "r", PhoneNumber: ""}, CodePhoneNumberWithheld},
		{"invalid", StartRequest{ReferenceID: "r", PhoneNumber: "+999123"}, CodeInvalidPhoneNumber},
		{"landline for SMS", StartRequest{ReferenceID: "r", PhoneNumber: "+442079460018"}, CodeNotMobile},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, nil)
			_, err := h.svc.Start(context.Background(), c.req)
			if got := codeOf(t, err); got != c.want {
				t.Fatalf("got %s (%v), want %s", got, err, c.want)
			}
			if h.cc.sendCount()+h.as.sendCount()+h.ax.sendCount() != 0 || len(h.store.sessions) != 0 {
				t.Fatal("a refused start must not send nor store anything")
			}
		})
	}
	t.Run("landline by email is fine", func(t *testing.T) {
		h := newHarness(t, nil)
		res, err := h.svc.Start(context.Background(), StartRequest{ReferenceID: "r", PhoneNumber: "+442079460018",
			Provider: ProviderAuthsignal, Channel: "email", Email: "caller@example.com"})
		if err != nil || res.Session.Channel != ChannelEmail {
			t.Fatalf("got %v, %+v", err, res.Session)
		}
	})
}

func TestStartProviderFailures(t *testing.T) {
	rejected := &ProviderError{Provider: ProviderCallConnect, Kind: ProviderRejected, HTTPStatus: 400, Message: "bad +1 (415) 555-2671, code 123456, email jane.doe@example.com"}
	down := &ProviderError{Provider: ProviderCallConnect, Kind: ProviderUnavailable, HTTPStatus: 503}
	cases := []struct {
		name     string
		err      error
		fallback ProviderName
		want     Code
		status   Status
		provider ProviderName
	}{
		{"rejected", rejected, "", CodeProviderError, StatusError, ProviderCallConnect},
		{"rejected never falls back", rejected, ProviderAuthsignal, CodeProviderError, StatusError, ProviderCallConnect},
		{"unavailable", down, "", CodeProviderUnavailable, StatusError, ProviderCallConnect},
		{"unavailable falls back", down, ProviderAuthsignal, "", StatusSent, ProviderAuthsignal},
		{"bad destination", &ProviderError{Provider: ProviderCallConnect, Kind: ProviderBadDestination}, "", CodeInvalidPhoneNumber, StatusError, ProviderCallConnect},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, func(cfg *Config) { cfg.Fallback = c.fallback })
			h.cc.sendErr = c.err
			res, err := h.svc.Start(context.Background(), usMobile)
			if c.want == "" && err != nil || c.want != "" && codeOf(t, err) != c.want {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
			got, _ := h.store.Get(context.Background(), "CA123")
			if got.Status != c.status || got.Provider != c.provider {
				t.Fatalf("stored status %s provider %s, want %s %s", got.Status, got.Provider, c.status, c.provider)
			}
			if res.Session == nil || res.Session.Status != c.status {
				t.Fatalf("answered session %+v", res.Session)
			}
			// The provider's message quoted the number, a code and an address: none may reach
			// the session's events or the logs whole.
			leaks := func(s string) bool {
				return strings.Contains(s, "555-2671") || strings.Contains(s, "5552671") || strings.Contains(s, "123456") || strings.Contains(s, "jane.doe")
			}
			for _, e := range got.Events {
				if leaks(e.Detail) {
					t.Errorf("event leaks the number, the code or the address: %q", e.Detail)
				}
			}
			if logs := h.logs.String(); leaks(logs) {
				t.Errorf("logs leak the number, the code or the address:\n%s", logs)
			}
			if c.err == rejected && !strings.Contains(h.logs.String(), "***2671") {
				t.Errorf("the provider's message is not logged masked:\n%s", h.logs.String())
			}
		})
	}
	t.Run("timeout", func(t *testing.T) {
		h := newHarness(t, nil)
		h.cc.delay = time.Second
		_, err := h.svc.Start(context.Background(), usMobile)
		if codeOf(t, err) != CodeProviderTimeout {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("a timed-out primary leaves no time for the fallback", func(t *testing.T) {
		// The start's provider deadline is one budget: the fallback would answer after it.
		h := newHarness(t, func(cfg *Config) { cfg.Fallback = ProviderAuthsignal })
		h.cc.delay = time.Second
		_, err := h.svc.Start(context.Background(), usMobile)
		if codeOf(t, err) != CodeProviderTimeout || h.as.sendCount() != 0 {
			t.Fatalf("got %v after %d fallback sends", err, h.as.sendCount())
		}
	})
	t.Run("disabled provider", func(t *testing.T) {
		h := newHarness(t, nil)
		h.svc = NewService(Config{}, h.store, []Provider{h.as}, WithClock(h.clock))
		_, err := h.svc.Start(context.Background(), usMobile)
		if codeOf(t, err) != CodeProviderUnavailable || len(h.store.sessions) != 0 {
			t.Fatalf("got %v, stored %d", err, len(h.store.sessions))
		}
	})
	t.Run("storage down", func(t *testing.T) {
		h := newHarness(t, nil)
		h.store.down = true
		_, err := h.svc.Start(context.Background(), usMobile)
		if codeOf(t, err) != CodeStorageUnavailable || h.cc.sendCount() != 0 {
			t.Fatalf("got %v after %d sends", err, h.cc.sendCount())
		}
	})
}

func TestConcurrentStartsSendOnce(t *testing.T) {
	h := newHarness(t, nil)
	h.cc.delay = 20 * time.Millisecond
	var wg sync.WaitGroup
	created := make(chan bool, 50)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := h.svc.Start(context.Background(), usMobile)
			if err != nil {
				t.Error(err)
				return
			}
			if res.Session.Status != StatusSent {
				t.Errorf("a repeated start answered %s, want the settled sent session", res.Session.Status)
			}
			created <- res.Created
		}()
	}
	wg.Wait()
	close(created)
	n := 0
	for c := range created {
		if c {
			n++
		}
	}
	if n != 1 || h.cc.sendCount() != 1 {
		t.Fatalf("created %d times, sent %d times; want 1 and 1", n, h.cc.sendCount())
	}
}

func startCode(t *testing.T, h *harness, p ProviderName) *Session {
	t.Helper()
	res, err := h.svc.Start(context.Background(), StartRequest{ReferenceID: "CA123", PhoneNumber: "+14155552671", Provider: p})
	if err != nil {
		t.Fatal(err)
	}
	return res.Session
}

func TestSubmitCode(t *testing.T) {
	ctx := context.Background()
	t.Run("wrong then right", func(t *testing.T) {
		h := newHarness(t, nil)
		startCode(t, h, ProviderAuthsignal)
		s, err := h.svc.SubmitCode(ctx, "CA123", "000000")
		if err != nil || s.Status != StatusSent || s.Attempts != 1 {
			t.Fatalf("wrong code: %v %+v", err, s)
		}
		s, err = h.svc.SubmitCode(ctx, "CA123", "123456")
		if err != nil || s.Status != StatusVerified || s.Attempts != 2 {
			t.Fatalf("right code: %v %+v", err, s)
		}
		if got := strings.Join(eventTypes(s), ","); got != "created,sent,code_rejected,code_accepted,verified" {
			t.Errorf("events %s", got)
		}
		// Counting an attempt or a rejected code enters no status: each status is entered once.
		h.pub.mu.Lock()
		entered := strings.Join(h.pub.entered, ",")
		h.pub.mu.Unlock()
		if entered != "CA123:pending,CA123:sent,CA123:verified" {
			t.Errorf("statuses entered: %s", entered)
		}
		_, err = h.svc.SubmitCode(ctx, "CA123", "123456")
		if codeOf(t, err) != CodeInvalidState {
			t.Fatalf("a verified session must refuse codes, got %v", err)
		}
	})
	t.Run("attempts run out", func(t *testing.T) {
		h := newHarness(t, nil)
		startCode(t, h, ProviderAuthentix)
		var s *Session
		var err error
		for i := 0; i < 5; i++ {
			s, err = h.svc.SubmitCode(ctx, "CA123", "9999")
			if err != nil {
				t.Fatal(err)
			}
		}
		if s.Status != StatusFailed || s.Attempts != 5 {
			t.Fatalf("after 5 wrong codes: %+v", s)
		}
		if _, err := h.svc.SubmitCode(ctx, "CA123", "123456"); codeOf(t, err) != CodeInvalidState {
			t.Fatalf("failed session took a code: %v", err)
		}
		if h.ax.checkCount() != 5 {
			t.Fatalf("provider asked %d times", h.ax.checkCount())
		}
	})
	t.Run("provider says failed", func(t *testing.T) {
		h := newHarness(t, nil)
		startCode(t, h, ProviderAuthsignal)
		h.as.outcome = CheckFailed
		s, err := h.svc.SubmitCode(ctx, "CA123", "111111")
		if err != nil || s.Status != StatusFailed {
			t.Fatalf("%v %+v", err, s)
		}
	})
	t.Run("provider forgot the challenge", func(t *testing.T) {
		h := newHarness(t, nil)
		startCode(t, h, ProviderAuthentix)
		h.ax.checkErr = &ProviderError{Provider: ProviderAuthentix, Kind: ProviderNotFound, HTTPStatus: 404}
		s, err := h.svc.SubmitCode(ctx, "CA123", "111111")
		if err != nil || s.Status != StatusFailed {
			t.Fatalf("%v %+v", err, s)
		}
	})
	t.Run("provider down gives the attempt back", func(t *testing.T) {
		h := newHarness(t, nil)
		startCode(t, h, ProviderAuthsignal)
		h.as.checkErr = &ProviderError{Provider: ProviderAuthsignal, Kind: ProviderUnavailable, HTTPStatus: 503}
		_, err := h.svc.SubmitCode(ctx, "CA123", "111111")
		if codeOf(t, err) != CodeProviderUnavailable {
			t.Fatal(err)
		}
		s, _ := h.svc.Get(ctx, "CA123")
		if s.Attempts != 0 || s.Status != StatusSent {
			t.Fatalf("%+v", s)
		}
	})
	t.Run("call connect takes no code", func(t *testing.T) {
		h := newHarness(t, nil)
		startCode(t, h, ProviderCallConnect)
		if _, err := h.svc.SubmitCode(ctx, "CA123", "123456"); codeOf(t, err) != CodeInvalidState {
			t.Fatal(err)
		}
	})
	t.Run("bad codes", func(t *testing.T) {
		h := newHarness(t, nil)
		startCode(t, h, ProviderAuthsignal)
		for _, c := range []string{"", "123", "12345678901", "12a4", "１２３４"} {
			if _, err := h.svc.SubmitCode(ctx, "CA123", c); codeOf(t, err) != CodeInvalidRequest {
				t.Errorf("code %q: %v", c, err)
			}
		}
		if _, err := h.svc.SubmitCode(ctx, "nope", "1234"); codeOf(t, err) != CodeNotFound {
			t.Errorf("unknown reference: %v", err)
		}
	})
	t.Run("expired", func(t *testing.T) {
		h := newHarness(t, nil)
		startCode(t, h, ProviderAuthsignal)
		h.clock.Advance(11 * time.Minute)
		if _, err := h.svc.SubmitCode(ctx, "CA123", "123456"); codeOf(t, err) != CodeInvalidState {
			t.Fatal(err)
		}
		s, _ := h.svc.Get(ctx, "CA123")
		if s.Status != StatusExpired || eventTypes(s)[len(s.Events)-1] != "expired" {
			t.Fatalf("%+v", s)
		}
	})
	t.Run("concurrent submissions", func(t *testing.T) {
		h := newHarness(t, nil)
		startCode(t, h, ProviderAuthsignal)
		var wg sync.WaitGroup
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				code := "000000"
				if i%2 == 0 {
					code = "123456"
				}
				_, _ = h.svc.SubmitCode(ctx, "CA123", code)
			}(i)
		}
		wg.Wait()
		s, _ := h.svc.Get(ctx, "CA123")
		verified := 0
		for _, e := range s.Events {
			if e.Type == EventVerified {
				verified++
			}
		}
		if s.Attempts > 5 || h.as.checkCount() != s.Attempts || verified > 1 {
			t.Fatalf("attempts %d, provider checks %d, verified events %d", s.Attempts, h.as.checkCount(), verified)
		}
	})
}

func TestResendAndCancel(t *testing.T) {
	ctx := context.Background()
	t.Run("resend limit", func(t *testing.T) {
		h := newHarness(t, nil)
		startCode(t, h, ProviderAuthsignal)
		for i := 0; i < 2; i++ {
			s, err := h.svc.Resend(ctx, "CA123", "")
			if err != nil || s.Sends != i+2 || s.ChallengeID != "authsignal-ref-"+string(rune('2'+i)) {
				t.Fatalf("resend %d: %v %+v", i, err, s)
			}
		}
		_, err := h.svc.Resend(ctx, "CA123", "")
		var de *Error
		if !errors.As(err, &de) || de.Code != CodeRateLimited || de.RetryAfter <= 0 {
			t.Fatalf("got %v", err)
		}
		if h.as.sendCount() != 3 {
			t.Fatalf("sent %d", h.as.sendCount())
		}
		// The refused resend spent nothing of the number's budget (1 start + 2 resends).
		if n := h.limiter.count[numberLimitKey("+14155552671")]; n != 3 {
			t.Fatalf("the number's budget counted %d sends, want 3", n)
		}
		for key := range h.limiter.count {
			if strings.Contains(key, "5552671") {
				t.Fatalf("a limit key shows the number: %s", key)
			}
		}
		keys := map[string]bool{}
		for _, r := range h.as.sends {
			keys[r.IdempotencyKey] = true
		}
		if len(keys) != 3 {
			t.Fatalf("each send needs its own idempotency key: %v", keys)
		}
	})
	t.Run("a resend the provider never answers times out", func(t *testing.T) {
		h := newHarness(t, nil)
		startCode(t, h, ProviderAuthsignal)
		h.as.delay = 5 * time.Second // PROVIDER_TIMEOUT is 200 ms
		began := time.Now()
		_, err := h.svc.Resend(ctx, "CA123", "")
		if codeOf(t, err) != CodeProviderTimeout {
			t.Fatalf("got %v", err)
		}
		// Answered at PROVIDER_TIMEOUT, not at the later deadline of the writes after the
		// send (PROVIDER_TIMEOUT + 2 s); a second of slack for a loaded machine.
		if waited := time.Since(began); waited >= h.svc.Config().ProviderTimeout+time.Second {
			t.Fatalf("the resend waited %v for the provider", waited)
		}
	})
	t.Run("resend on another channel", func(t *testing.T) {
		h := newHarness(t, nil)
		startCode(t, h, ProviderAuthsignal)
		s, err := h.svc.Resend(ctx, "CA123", ChannelWhatsApp)
		if err != nil || s.Channel != ChannelWhatsApp || h.as.sends[1].Channel != ChannelWhatsApp {
			t.Fatalf("%v %+v", err, s)
		}
		if _, err := h.svc.Resend(ctx, "CA123", ChannelEmail); codeOf(t, err) != CodeInvalidRequest {
			t.Fatalf("email without address: %v", err)
		}
	})
	t.Run("per-number limit across sessions", func(t *testing.T) {
		h := newHarness(t, func(c *Config) { c.Limits.SendsPerNumber = 2 })
		for i, ref := range []string{"a", "b"} {
			if _, err := h.svc.Start(ctx, StartRequest{ReferenceID: ref, PhoneNumber: "+14155552671"}); err != nil {
				t.Fatal(i, err)
			}
		}
		_, err := h.svc.Start(ctx, StartRequest{ReferenceID: "c", PhoneNumber: "+14155552671"})
		if codeOf(t, err) != CodeRateLimited || len(h.store.sessions) != 2 {
			t.Fatalf("%v, %d stored", err, len(h.store.sessions))
		}
	})
	t.Run("a zero window turns the per-number limit off", func(t *testing.T) {
		h := newHarness(t, func(c *Config) { c.Limits.SendsPerNumber, c.Limits.NumberWindow = 2, 0 })
		for _, ref := range []string{"a", "b", "c"} {
			if _, err := h.svc.Start(ctx, StartRequest{ReferenceID: ref, PhoneNumber: "+14155552671"}); err != nil {
				t.Fatal(ref, err)
			}
		}
	})
	t.Run("cancel", func(t *testing.T) {
		h := newHarness(t, nil)
		startCode(t, h, ProviderAuthentix)
		s, err := h.svc.Cancel(ctx, "CA123")
		if err != nil || s.Status != StatusCancelled || h.ax.cancels != 1 {
			t.Fatalf("%v %+v cancels=%d", err, s, h.ax.cancels)
		}
		if s, err = h.svc.Cancel(ctx, "CA123"); err != nil || s.Status != StatusCancelled || h.ax.cancels != 1 {
			t.Fatalf("second cancel: %v", err)
		}
		if _, err := h.svc.Resend(ctx, "CA123", ""); codeOf(t, err) != CodeInvalidState {
			t.Fatal(err)
		}
	})
	t.Run("cancel a verified session", func(t *testing.T) {
		h := newHarness(t, nil)
		startCode(t, h, ProviderAuthsignal)
		if _, err := h.svc.SubmitCode(ctx, "CA123", "123456"); err != nil {
			t.Fatal(err)
		}
		if _, err := h.svc.Cancel(ctx, "CA123"); codeOf(t, err) != CodeInvalidState {
			t.Fatal(err)
		}
	})
}

func TestApplyOutcome(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)
	startCode(t, h, ProviderCallConnect)
	ok, err := h.svc.ApplyOutcome(ctx, Outcome{EventID: "ev1", ReferenceID: "CA123", Verified: true, Detail: "CHALLENGE_SUCCEEDED"})
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	s, _ := h.svc.Get(ctx, "CA123")
	if s.Status != StatusVerified {
		t.Fatalf("%+v", s)
	}
	n := len(s.Events)
	ok, err = h.svc.ApplyOutcome(ctx, Outcome{EventID: "ev1", ReferenceID: "CA123", Verified: true, Detail: "CHALLENGE_SUCCEEDED"})
	if err != nil || ok {
		t.Fatal("a repeated event must change nothing", ok, err)
	}
	ok, _ = h.svc.ApplyOutcome(ctx, Outcome{EventID: "ev2", ReferenceID: "CA123", Verified: false})
	if s, _ = h.svc.Get(ctx, "CA123"); ok || s.Status != StatusVerified || len(s.Events) != n {
		t.Fatal("a final session must not move")
	}
	if ok, err = h.svc.ApplyOutcome(ctx, Outcome{EventID: "ev3", ReferenceID: "unknown"}); ok || err != nil {
		t.Fatal("an unknown reference is ignored", ok, err)
	}
}

// A provider's verdict that comes after the session's expiry does not settle it: the session
// is expired (DESIGN §3: nothing moves a final session), whether or not a read had written
// the expiry yet, and the late outcome is ignored as one for an expired session is.
func TestApplyOutcomeAfterExpiry(t *testing.T) {
	ctx := context.Background()
	for _, verified := range []bool{true, false} {
		h := newHarness(t, nil)
		sent := startCode(t, h, ProviderCallConnect)
		h.clock.Advance(sent.ExpiresAt.Sub(h.clock.Now())) // expiry reached, not yet written
		ok, err := h.svc.ApplyOutcome(ctx, Outcome{EventID: "late", ReferenceID: "CA123", Verified: verified, Detail: "late"})
		if err != nil || ok {
			t.Fatalf("verified=%v: a late outcome was applied (%v, %v)", verified, ok, err)
		}
		s, err := h.svc.Get(ctx, "CA123")
		if err != nil || s.Status != StatusExpired {
			t.Fatalf("verified=%v: %v %+v", verified, err, s)
		}
		if got := strings.Join(eventTypes(s), ","); got != "created,sent,expired" {
			t.Fatalf("verified=%v: events %s", verified, got)
		}
	}
}

func TestStalePendingBecomesError(t *testing.T) {
	h := newHarness(t, nil)
	now := h.clock.Now()
	_, _, _ = h.store.Create(context.Background(), &Session{ReferenceID: "stuck", Status: StatusPending, CreatedAt: now, UpdatedAt: now}, time.Hour)
	s, err := h.svc.Get(context.Background(), "stuck")
	if err != nil || s.Status != StatusPending {
		t.Fatalf("a fresh pending session stays pending: %v %+v", err, s)
	}
	h.clock.Advance(time.Minute)
	if s, err = h.svc.Get(context.Background(), "stuck"); err != nil || s.Status != StatusError {
		t.Fatalf("%v %+v", err, s)
	}
}

func TestEveryWrittenChangeIsPublished(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	r := usMobile
	r.Provider = ProviderAuthsignal
	if _, err := h.svc.Start(ctx, r); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.Start(ctx, r); err != nil { // a repeat writes nothing
		t.Fatal(err)
	}
	if _, err := h.svc.Cancel(ctx, r.ReferenceID); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.Cancel(ctx, r.ReferenceID); err != nil { // already cancelled: no write
		t.Fatal(err)
	}
	want := "CA123:pending,CA123:sent,CA123:cancelled"
	if got := strings.Join(h.pub.all(), ","); got != want {
		t.Fatalf("published %s, want %s", got, want)
	}
	// A refused start publishes nothing.
	bad := StartRequest{ReferenceID: "CA999", PhoneNumber: "anonymous"}
	if _, err := h.svc.Start(ctx, bad); err == nil {
		t.Fatal("withheld start accepted")
	}
	if got := strings.Join(h.pub.all(), ","); got != want {
		t.Fatalf("published %s after a refused start", got)
	}
}

func TestCountryAllowAndDenyLists(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, func(c *Config) { c.AllowedRegions = []string{"US", "GB"}; c.DeniedRegions = []string{"GB"} })
	for ref, number := range map[string]string{"fr": "+33612345678", "gb": "+447400123456"} {
		_, err := h.svc.Start(ctx, StartRequest{ReferenceID: ref, PhoneNumber: number})
		if codeOf(t, err) != CodeInvalidPhoneNumber {
			t.Fatalf("%s: %v", ref, err)
		}
	}
	if _, err := h.svc.Start(ctx, usMobile); err != nil {
		t.Fatalf("allowed country refused: %v", err)
	}
	if n := h.cc.sendCount(); n != 1 {
		t.Fatalf("provider sends %d, want 1", n)
	}
}

// A start written but never sent (the start failed on Redis after its create: a WAIT that
// timed out, the limit check and its clean-up both failing) is taken over by a retry of the
// same start once no first attempt can still be under way; a retry before that, or one that
// differs, is answered as before.
func TestRetriedStartTakesOverAnOrphanedSession(t *testing.T) {
	ctx := context.Background()
	// As by default (3 × the 4 s provider timeout), a read marks it error only after a retry
	// could have taken it over.
	h := newHarness(t, func(c *Config) { c.PendingTimeout = time.Minute })
	req := StartRequest{ReferenceID: "CA123", PhoneNumber: "+14155552671", Provider: ProviderAuthsignal}
	n, err := h.svc.normalize(req)
	if err != nil {
		t.Fatal(err)
	}
	now := h.clock.Now()
	orphan := &Session{ReferenceID: req.ReferenceID, Provider: ProviderAuthsignal, Channel: ChannelSMS, PhoneNumber: n.PhoneNumber,
		Country: n.Country, Status: StatusPending, MaxAttempts: 5, CreatedAt: now, UpdatedAt: now, Fingerprint: n.fingerprint(),
		Events: []Event{{At: now, Type: EventCreated, Detail: "authsignal via SMS to ***2671"}}}
	if _, created, err := h.store.Create(ctx, orphan, time.Hour); err != nil || !created {
		t.Fatal(created, err)
	}

	// Too early: the first attempt might still be sending.
	h.clock.Advance(h.svc.orphanAfter() / 2)
	res, err := h.svc.Start(ctx, req)
	if err != nil || res.Session.Status != StatusPending || h.as.sendCount() != 0 {
		t.Fatalf("early retry: %v, %+v, %d sends", err, res.Session, h.as.sendCount())
	}

	h.clock.Advance(h.svc.orphanAfter())
	if _, err := h.svc.Start(ctx, StartRequest{ReferenceID: "CA123", PhoneNumber: "+14155550000"}); codeOf(t, err) != CodeConflict {
		t.Fatalf("a different start: %v", err)
	}
	var wg sync.WaitGroup
	results := make([]StartResult, 5)
	for i := range results {
		wg.Go(func() {
			r, err := h.svc.Start(ctx, req)
			if err != nil {
				t.Error(err)
			}
			results[i] = r
		})
	}
	wg.Wait()
	if h.as.sendCount() != 1 {
		t.Fatalf("%d sends for 5 concurrent retries of an orphaned start", h.as.sendCount())
	}
	got, _ := h.store.Get(ctx, "CA123")
	if got.Status != StatusSent || got.ChallengeID == "" || got.Sends != 1 {
		t.Fatalf("after the take-over: %+v", got)
	}
	sawRetry := false
	for _, e := range got.Events {
		sawRetry = sawRetry || strings.HasPrefix(e.Detail, "start retried")
	}
	if !sawRetry {
		t.Fatalf("the history does not say the start was retried: %+v", got.Events)
	}
	for i, r := range results {
		if r.Created || r.Session == nil || (r.Session.Status != StatusSent && r.Session.Status != StatusPending) {
			t.Fatalf("retry %d answered %+v", i, r)
		}
	}

	// Call Connect has no idempotency key: the session cannot tell a start that failed
	// before its send from one whose send went out and whose record of it was lost, so a
	// retry never sends again.
	cc := StartRequest{ReferenceID: "CA456", PhoneNumber: "+14155552671", Provider: ProviderCallConnect}
	n, _ = h.svc.normalize(cc)
	at := h.clock.Now()
	if _, _, err := h.store.Create(ctx, &Session{ReferenceID: cc.ReferenceID, Provider: ProviderCallConnect, Channel: ChannelSMS,
		PhoneNumber: n.PhoneNumber, Country: n.Country, Status: StatusPending, CreatedAt: at, UpdatedAt: at,
		Fingerprint: n.fingerprint(), Events: []Event{}}, time.Hour); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(2 * h.svc.orphanAfter())
	if res, err := h.svc.Start(ctx, cc); err != nil || res.Session.Status != StatusPending || h.cc.sendCount() != 0 {
		t.Fatalf("Call Connect retry: %v %+v, %d sends", err, res.Session, h.cc.sendCount())
	}
}
