package callflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ivr-bridge/ivr-bridge/internal/callsession"
)

// fakeService answers what each test scripts and records the codes submitted.
type fakeService struct {
	start     callsession.StartResult
	startErr  error
	submitted []string
	submit    func(code string) (*callsession.Session, error)
	get       *callsession.Session
	getErr    error
	gets      int
	onGet     func(n int) // called with the number of reads so far, before answering
}

func (f *fakeService) Start(context.Context, callsession.StartRequest) (callsession.StartResult, error) {
	return f.start, f.startErr
}

func (f *fakeService) SubmitCode(_ context.Context, _ string, code string) (*callsession.Session, error) {
	f.submitted = append(f.submitted, code)
	return f.submit(code)
}

func (f *fakeService) Get(context.Context, string) (*callsession.Session, error) {
	f.gets++
	if f.onGet != nil {
		f.onGet(f.gets)
	}
	return f.get, f.getErr
}

func session(p callsession.ProviderName, st callsession.Status) *callsession.Session {
	return &callsession.Session{ReferenceID: "CA123", Provider: p, Channel: callsession.ChannelSMS, Status: st, Attempts: 1, MaxAttempts: 5}
}

func domainErr(code callsession.Code) error {
	return &callsession.Error{Code: code, Message: "msg " + string(code)}
}

func TestStartSteps(t *testing.T) {
	for _, tc := range []struct {
		provider callsession.ProviderName
		status   callsession.Status
		want     Step
		wantCode callsession.Code
	}{
		{callsession.ProviderAuthsignal, callsession.StatusPending, StepWaiting, ""},
		{callsession.ProviderAuthsignal, callsession.StatusSent, StepEnterCode, ""},
		{callsession.ProviderAuthentix, callsession.StatusSent, StepEnterCode, ""},
		{callsession.ProviderCallConnect, callsession.StatusSent, StepLinkSent, ""},
		{callsession.ProviderAuthsignal, callsession.StatusVerified, StepVerified, ""},
		{callsession.ProviderCallConnect, callsession.StatusVerified, StepVerified, ""},
		{callsession.ProviderAuthsignal, callsession.StatusFailed, StepFailed, ""},
		{callsession.ProviderAuthsignal, callsession.StatusExpired, StepExpired, ""},
		{callsession.ProviderAuthsignal, callsession.StatusCancelled, StepCancelled, ""},
		{callsession.ProviderAuthsignal, callsession.StatusError, StepError, callsession.CodeProviderError},
	} {
		t.Run(fmt.Sprintf("%s/%s", tc.provider, tc.status), func(t *testing.T) {
			sess := session(tc.provider, tc.status)
			f := &fakeService{start: callsession.StartResult{Session: sess, Created: true}, get: sess}
			for name, r := range map[string]Result{
				"start":  Flow{Service: f}.Start(context.Background(), callsession.StartRequest{ReferenceID: "CA123"}),
				"status": Flow{Service: f}.Status(context.Background(), "CA123"),
			} {
				if r.Step != tc.want || r.Code != tc.wantCode || r.Session != sess {
					t.Errorf("%s: step %q code %q, want %q %q", name, r.Step, r.Code, tc.want, tc.wantCode)
				}
				if r.Step.Final() != (tc.want != StepWaiting && tc.want != StepEnterCode && tc.want != StepLinkSent) {
					t.Errorf("%s: Final() = %v for %s", name, r.Step.Final(), r.Step)
				}
			}
		})
	}
}

func TestCodeSteps(t *testing.T) {
	sent := session(callsession.ProviderAuthsignal, callsession.StatusSent)
	for _, tc := range []struct {
		name      string
		after     *callsession.Session // what SubmitCode answers
		submitErr error
		current   *callsession.Session // what Get answers
		getErr    error
		want      Step
		wantCode  callsession.Code
		wantGets  int
	}{
		{name: "right code", after: session(callsession.ProviderAuthsignal, callsession.StatusVerified), want: StepVerified},
		{name: "wrong code, attempts left", after: sent, want: StepRetry},
		{name: "wrong code, authentix", after: session(callsession.ProviderAuthentix, callsession.StatusSent), want: StepRetry},
		{name: "wrong code, attempts spent", after: session(callsession.ProviderAuthsignal, callsession.StatusFailed), want: StepFailed},
		{name: "expired at the provider", after: session(callsession.ProviderAuthsignal, callsession.StatusExpired), want: StepExpired},
		{
			name: "invalid_state answers the current state", submitErr: domainErr(callsession.CodeInvalidState),
			current: session(callsession.ProviderAuthsignal, callsession.StatusVerified), want: StepVerified, wantGets: 1,
		},
		{
			name: "invalid_state on a Call Connect session", submitErr: domainErr(callsession.CodeInvalidState),
			current: session(callsession.ProviderCallConnect, callsession.StatusSent), want: StepLinkSent, wantGets: 1,
		},
		{
			name: "invalid_state and the read fails", submitErr: domainErr(callsession.CodeInvalidState),
			getErr: domainErr(callsession.CodeStorageUnavailable), want: StepRefused, wantCode: callsession.CodeInvalidState, wantGets: 1,
		},
		{name: "no session", submitErr: domainErr(callsession.CodeNotFound), want: StepRefused, wantCode: callsession.CodeNotFound},
		{name: "provider down", submitErr: domainErr(callsession.CodeProviderUnavailable), want: StepError, wantCode: callsession.CodeProviderUnavailable},
		{name: "provider slow", submitErr: domainErr(callsession.CodeProviderTimeout), want: StepError, wantCode: callsession.CodeProviderTimeout},
		{
			name: "storage down", submitErr: fmt.Errorf("update: %w", callsession.ErrStorage),
			want: StepError, wantCode: callsession.CodeStorageUnavailable,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeService{
				submit:   func(string) (*callsession.Session, error) { return tc.after, tc.submitErr },
				get:      tc.current,
				getErr:   tc.getErr,
				startErr: errors.New("not called"),
			}
			r := Flow{Service: f}.Code(context.Background(), "CA123", "123456")
			if r.Step != tc.want || r.Code != tc.wantCode {
				t.Fatalf("step %q code %q, want %q %q", r.Step, r.Code, tc.want, tc.wantCode)
			}
			if !slices.Equal(f.submitted, []string{"123456"}) {
				t.Fatalf("submitted %q", f.submitted)
			}
			if f.gets != tc.wantGets {
				t.Fatalf("%d reads, want %d", f.gets, tc.wantGets)
			}
			if r.Code != "" && r.Message == "" {
				t.Fatal("a refusal without a message")
			}
		})
	}
}

// Digits no provider could accept are not an attempt: the caller is asked again and the
// service never sees them.
func TestMalformedDigitsRetryWithoutSubmitting(t *testing.T) {
	for _, digits := range []string{"", "12", "123", "12a456", "12 456", "#", "12345678901", "１２３４５６"} {
		t.Run(fmt.Sprintf("%q", digits), func(t *testing.T) {
			f := &fakeService{get: session(callsession.ProviderAuthsignal, callsession.StatusSent)}
			r := Flow{Service: f}.Code(context.Background(), "CA123", digits)
			if r.Step != StepRetry || r.Code != "" {
				t.Fatalf("step %q code %q, want retry", r.Step, r.Code)
			}
			if len(f.submitted) != 0 {
				t.Fatalf("submitted %q", f.submitted)
			}
		})
	}
	// A session that takes no code says where it stands instead.
	for st, want := range map[callsession.Status]Step{
		callsession.StatusVerified: StepVerified, callsession.StatusFailed: StepFailed, callsession.StatusPending: StepWaiting,
	} {
		f := &fakeService{get: session(callsession.ProviderAuthsignal, st)}
		if r := (Flow{Service: f}).Code(context.Background(), "CA123", "12"); r.Step != want || len(f.submitted) != 0 {
			t.Errorf("%s: step %q, want %q (submitted %q)", st, r.Step, want, f.submitted)
		}
	}
	f := &fakeService{getErr: domainErr(callsession.CodeNotFound)}
	if r := (Flow{Service: f}).Code(context.Background(), "CA123", "x"); r.Step != StepRefused || r.Code != callsession.CodeNotFound {
		t.Errorf("unknown reference: %q %q", r.Step, r.Code)
	}
}

func TestErrorsRefuseOrFail(t *testing.T) {
	for _, tc := range []struct {
		code callsession.Code
		want Step
	}{
		{callsession.CodeInvalidRequest, StepRefused},
		{callsession.CodeNotFound, StepRefused},
		{callsession.CodeConflict, StepRefused},
		{callsession.CodeInvalidState, StepRefused},
		{callsession.CodeInvalidPhoneNumber, StepRefused},
		{callsession.CodePhoneNumberWithheld, StepRefused},
		{callsession.CodeNotMobile, StepRefused},
		{callsession.CodeRateLimited, StepRefused},
		{callsession.CodeProviderError, StepError},
		{callsession.CodeProviderUnavailable, StepError},
		{callsession.CodeProviderTimeout, StepError},
		{callsession.CodeStorageUnavailable, StepError},
	} {
		t.Run(string(tc.code), func(t *testing.T) {
			// The service hands back the errored session with a provider failure; the
			// answer is the failure.
			err := fmt.Errorf("start: %w", domainErr(tc.code))
			f := &fakeService{start: callsession.StartResult{Session: session(callsession.ProviderAuthsignal, callsession.StatusError)}, startErr: err}
			r := Flow{Service: f}.Start(context.Background(), callsession.StartRequest{})
			if r.Step != tc.want || r.Code != tc.code || r.Message != "msg "+string(tc.code) {
				t.Fatalf("got %q %q %q", r.Step, r.Code, r.Message)
			}
			if !r.Step.Final() {
				t.Fatal("a refusal is final")
			}
			fields := r.Fields()
			if fields["error"] != string(tc.code) || fields["step"] != string(tc.want) || fields["message"] == "" {
				t.Fatalf("fields %v", fields)
			}
		})
	}
}

func TestUntypedErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want callsession.Code
	}{
		{"storage", fmt.Errorf("get: %w", callsession.ErrStorage), callsession.CodeStorageUnavailable},
		{"anything else", errors.New("boom"), callsession.CodeProviderError},
	} {
		f := &fakeService{startErr: tc.err, getErr: tc.err}
		for name, r := range map[string]Result{
			"start":  Flow{Service: f}.Start(context.Background(), callsession.StartRequest{}),
			"status": Flow{Service: f}.Status(context.Background(), "CA123"),
		} {
			if r.Step != StepError || r.Code != tc.want || r.Message == "" || r.Session != nil {
				t.Errorf("%s %s: %+v", tc.name, name, r)
			}
			if r.Message == tc.err.Error() {
				t.Errorf("%s %s: the cause leaks into the message", tc.name, name)
			}
		}
	}
}

func TestAttemptsLeft(t *testing.T) {
	for _, tc := range []struct {
		sess *callsession.Session
		want int
	}{
		{nil, -1},
		{&callsession.Session{Attempts: 2, MaxAttempts: 0}, -1}, // no limit
		{&callsession.Session{Attempts: 0, MaxAttempts: 5}, 5},
		{&callsession.Session{Attempts: 1, MaxAttempts: 5}, 4},
		{&callsession.Session{Attempts: 5, MaxAttempts: 5}, 0},
		{&callsession.Session{Attempts: 7, MaxAttempts: 5}, 0},
	} {
		r := Result{Session: tc.sess}
		if got := r.AttemptsLeft(); got != tc.want {
			t.Errorf("%+v: %d, want %d", tc.sess, got, tc.want)
		}
		_, has := r.Fields()["attemptsLeft"]
		if has != (tc.want >= 0) {
			t.Errorf("%+v: attemptsLeft present = %v", tc.sess, has)
		}
	}
}

// Connect refuses a Lambda answer with anything but string values, and the Genesys output
// contract lists FieldNames: Fields must hold only those keys, all strings, nothing nested.
func TestFieldsFlatStrings(t *testing.T) {
	withSession := Result{Step: StepRetry, Session: &callsession.Session{
		ReferenceID: "CA123", Provider: callsession.ProviderAuthsignal, Channel: callsession.ChannelSMS,
		Status: callsession.StatusSent, PhoneNumber: "+14155552671", Attempts: 2, MaxAttempts: 5,
		Events: []callsession.Event{{Type: callsession.EventCreated}},
	}}
	refused := Result{Step: StepRefused, Code: callsession.CodePhoneNumberWithheld, Message: "the caller's number is withheld"}
	for _, tc := range []struct {
		r    Result
		want map[string]string
	}{
		{withSession, map[string]string{
			"step": "retry", "referenceId": "CA123", "status": "sent", "provider": "authsignal",
			"channel": "SMS", "attempts": "2", "attemptsLeft": "3",
		}},
		{refused, map[string]string{"step": "refused", "error": "phone_number_withheld", "message": "the caller's number is withheld"}},
	} {
		got := tc.r.Fields()
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("Fields() = %v, want %v", got, tc.want)
		}
		raw, err := json.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		var generic map[string]any
		if err := json.Unmarshal(raw, &generic); err != nil {
			t.Fatal(err)
		}
		for k, v := range generic {
			if _, ok := v.(string); !ok {
				t.Errorf("%s is %T, not a string", k, v)
			}
			if !slices.Contains(FieldNames, k) {
				t.Errorf("%s is not in FieldNames", k)
			}
		}
	}
	// Every name in FieldNames is one Fields can produce.
	all := Result{Step: StepError, Code: callsession.CodeProviderError, Message: "m", Session: withSession.Session}.Fields()
	for _, k := range FieldNames {
		if _, ok := all[k]; !ok {
			t.Errorf("FieldNames has %s, which Fields never produces", k)
		}
	}
	if len(all) != len(FieldNames) {
		t.Errorf("Fields() has %d keys, FieldNames %d", len(all), len(FieldNames))
	}
}

// memDeduper is a Deduper in a map.
type memDeduper struct {
	mu   sync.Mutex
	keys map[string]bool
}

func newMemDeduper() *memDeduper { return &memDeduper{keys: map[string]bool{}} }

func (d *memDeduper) FirstSeen(_ context.Context, key string, _ time.Duration) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.keys[key] {
		return false, nil
	}
	d.keys[key] = true
	return true, nil
}

func (d *memDeduper) Seen(_ context.Context, key string) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.keys[key], nil
}

func (d *memDeduper) Forget(_ context.Context, key string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.keys, key)
	return nil
}

// codeSession is an Authsignal session after n code attempts, for challenge ch.
func codeSession(n int, st callsession.Status, ch string) *callsession.Session {
	s := session(callsession.ProviderAuthsignal, st)
	s.Attempts, s.ChallengeID = n, ch
	return s
}

func TestRepeatedCodeDeliveryChecksOnce(t *testing.T) {
	ctx := context.Background()
	t.Run("a repeat after a wrong code answers the same, with no second check", func(t *testing.T) {
		after := codeSession(1, callsession.StatusSent, "ch1")
		f := &fakeService{submit: func(string) (*callsession.Session, error) { return after, nil }, get: after}
		flow := Flow{Service: f, Dedup: newMemDeduper()}
		first := flow.Code(ctx, "CA123", "111111")
		again := flow.Code(ctx, "CA123", "111111")
		if len(f.submitted) != 1 || first.Step != StepRetry || again.Step != StepRetry || again.AttemptsLeft() != first.AttemptsLeft() {
			t.Fatalf("submitted %v; first %s (%d left), repeat %s (%d left)", f.submitted, first.Step, first.AttemptsLeft(), again.Step, again.AttemptsLeft())
		}
		if flow.Code(ctx, "CA123", "222222"); len(f.submitted) != 2 {
			t.Fatalf("other digits are a new try: submitted %v", f.submitted)
		}
		if flow.Code(ctx, "CA999", "111111"); len(f.submitted) != 3 {
			t.Fatalf("the same digits on another call are a new try: submitted %v", f.submitted)
		}
		f.get = codeSession(3, callsession.StatusSent, "ch2") // resent: a new code
		if flow.Code(ctx, "CA123", "111111"); len(f.submitted) != 4 {
			t.Fatalf("the same digits for a resent code are a new try: submitted %v", f.submitted)
		}
	})
	t.Run("a repeat after a verified code answers verified", func(t *testing.T) {
		done := codeSession(1, callsession.StatusVerified, "ch1")
		f := &fakeService{submit: func(string) (*callsession.Session, error) { return done, nil }, get: codeSession(0, callsession.StatusSent, "ch1")}
		flow := Flow{Service: f, Dedup: newMemDeduper()}
		flow.Code(ctx, "CA123", "123456")
		f.get = done
		if r := flow.Code(ctx, "CA123", "123456"); r.Step != StepVerified || len(f.submitted) != 1 {
			t.Fatalf("repeat: %s, submitted %v", r.Step, f.submitted)
		}
	})
	t.Run("a repeat waits for the first check still under way", func(t *testing.T) {
		sent := codeSession(1, callsession.StatusSent, "ch1")
		verified := codeSession(1, callsession.StatusVerified, "ch1")
		f := &fakeService{get: sent, submit: func(string) (*callsession.Session, error) { return verified, nil }}
		dedup := newMemDeduper()
		key := codeDeliveryKey("CA123", "ch1", "123456")
		dedup.keys[key] = true // the first delivery is being checked
		// The first delivery's check is answered meanwhile.
		go func() {
			time.Sleep(60 * time.Millisecond)
			dedup.mu.Lock()
			defer dedup.mu.Unlock()
			f.get = verified // read after the answered mark is seen, under the same lock
			dedup.keys[key+answeredSuffix] = true
		}()
		if r := (Flow{Service: f, Dedup: dedup}).Code(ctx, "CA123", "123456"); r.Step != StepVerified || len(f.submitted) != 0 {
			t.Fatalf("repeat: %s after %d reads, submitted %v", r.Step, f.gets, f.submitted)
		}
	})
	t.Run("digits whose check did not happen are checked again, never answered as wrong", func(t *testing.T) {
		// The caller keys A (the provider fails: no check), then B (wrong), then A again.
		s := codeSession(0, callsession.StatusSent, "ch1")
		f := &fakeService{get: s}
		f.submit = func(code string) (*callsession.Session, error) {
			if code == "111111" && len(f.submitted) == 1 {
				return nil, &callsession.Error{Code: callsession.CodeProviderUnavailable, Message: "down"}
			}
			return codeSession(1, callsession.StatusSent, "ch1"), nil
		}
		flow := Flow{Service: f, Dedup: newMemDeduper()}
		if r := flow.Code(ctx, "CA123", "111111"); r.Step != StepError {
			t.Fatalf("A: %s", r.Step)
		}
		flow.Code(ctx, "CA123", "222222")
		flow.Code(ctx, "CA123", "111111")
		if !slices.Equal(f.submitted, []string{"111111", "222222", "111111"}) {
			t.Fatalf("submitted %v: A again must be checked", f.submitted)
		}
	})
	if k := codeDeliveryKey("CA123", "ch1", "123456"); strings.Contains(k, "123456") {
		t.Fatalf("the stored key holds the code: %s", k)
	}
}

// stallingService is a Service whose code checks each take stall and then answer what
// verdict says, as the service does with a provider that stalls until its deadline.
type stallingService struct {
	sess    *callsession.Session
	stall   time.Duration
	verdict func(n int) (*callsession.Session, error) // the n-th check's answer, from 1
	entered chan struct{}                             // a receive for each check begun

	mu     sync.Mutex
	checks int
}

func (s *stallingService) Start(context.Context, callsession.StartRequest) (callsession.StartResult, error) {
	return callsession.StartResult{}, errors.New("not called")
}

func (s *stallingService) SubmitCode(context.Context, string, string) (*callsession.Session, error) {
	s.mu.Lock()
	s.checks++
	n := s.checks
	s.mu.Unlock()
	select {
	case s.entered <- struct{}{}:
	default:
	}
	time.Sleep(s.stall)
	return s.verdict(n)
}

func (s *stallingService) Get(context.Context, string) (*callsession.Session, error) {
	return s.sess, nil
}

func (s *stallingService) checkCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.checks
}

// A repeated delivery of the same digits is answered within DESIGN §7's bound (the whole
// Twilio/Connect answer inside 5 s; here the bound and the provider deadline are shortened):
// when the first delivery's check failed late, the repeat no longer has the time for a check
// of its own, and says it could not check in time rather than answering after the bound.
func TestRepeatedCodeDeliveryIsAnsweredWithinTheBound(t *testing.T) {
	const bound, deadline = 2 * time.Second, 1200 * time.Millisecond
	timedOut := &callsession.Error{Code: callsession.CodeProviderTimeout, Message: "authsignal did not answer in time"}

	// repeat delivers the digits again once the first delivery's check has begun, and
	// returns both answers and how long the repeat took from its arrival.
	repeat := func(t *testing.T, svc *stallingService) (first, again Result, took time.Duration) {
		t.Helper()
		svc.entered = make(chan struct{}, 1)
		flow := Flow{Service: svc, Dedup: newMemDeduper(), AnswerWithin: bound, CheckTimeout: deadline}
		done := make(chan Result)
		go func() { done <- flow.Code(context.Background(), "CA123", "123456") }()
		<-svc.entered
		arrived := time.Now()
		again = flow.Code(context.Background(), "CA123", "123456")
		took = time.Since(arrived)
		return <-done, again, took
	}

	t.Run("the first check timed out: no second check past the bound", func(t *testing.T) {
		svc := &stallingService{sess: codeSession(0, callsession.StatusSent, "ch1"), stall: deadline,
			verdict: func(int) (*callsession.Session, error) { return nil, timedOut }}
		first, again, took := repeat(t, svc)
		if first.Step != StepError || first.Code != callsession.CodeProviderTimeout {
			t.Fatalf("first: %s %s", first.Step, first.Code)
		}
		if n := svc.checkCount(); n != 1 {
			t.Errorf("%d checks: the repeat began one it could not finish within the bound", n)
		}
		if took >= bound {
			t.Errorf("the repeat was answered after %v, past the bound of %v", took, bound)
		}
		if again.Step != StepError || again.Code != callsession.CodeProviderTimeout || again.Message == "" || again.Reference != "CA123" {
			t.Errorf("repeat: %+v", again)
		}
	})
	t.Run("the first check failed early: the repeat checks, in time", func(t *testing.T) {
		svc := &stallingService{sess: codeSession(0, callsession.StatusSent, "ch1"), stall: 50 * time.Millisecond,
			verdict: func(n int) (*callsession.Session, error) {
				if n == 1 {
					return nil, &callsession.Error{Code: callsession.CodeProviderUnavailable, Message: "down"}
				}
				return codeSession(1, callsession.StatusVerified, "ch1"), nil
			}}
		_, again, took := repeat(t, svc)
		if n := svc.checkCount(); n != 2 || again.Step != StepVerified {
			t.Fatalf("%d checks, repeat %s: a repeat with the time for a check makes it", n, again.Step)
		}
		if took >= bound {
			t.Errorf("the repeat was answered after %v, past the bound of %v", took, bound)
		}
	})
	t.Run("the first check outlasts the bound: the repeat answers waiting within it", func(t *testing.T) {
		// Only the store's writes could hold a check this long: the service bounds the
		// provider call.
		svc := &stallingService{sess: codeSession(0, callsession.StatusSent, "ch1"), stall: bound + bound/10,
			verdict: func(int) (*callsession.Session, error) { return codeSession(1, callsession.StatusSent, "ch1"), nil }}
		_, again, took := repeat(t, svc)
		if again.Step != StepWaiting || svc.checkCount() != 1 {
			t.Fatalf("repeat %s after %d checks", again.Step, svc.checkCount())
		}
		if took >= bound {
			t.Errorf("the repeat was answered after %v, past the bound of %v", took, bound)
		}
	})
}
