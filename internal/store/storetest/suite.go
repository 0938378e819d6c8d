// Package storetest is the store's test suite, run on every kind of Redis the bridge
// supports: miniredis and a single server (internal/store's tests), a Redis Cluster and a
// Sentinel-managed master (test/cluster). One suite, so every back end is held to the same
// behaviour.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ivr-bridge/ivr-bridge/internal/callsession"
	"github.com/ivr-bridge/ivr-bridge/internal/store"
)

// Backend is a Redis to run the suite on, and how to make time pass for its TTLs.
type Backend struct {
	Name   string
	Client redis.UniversalClient
	// Elapse makes d pass for the server: its TTLs and its clock (TIME), by which the
	// limiter's windows are measured (miniredis: FastForward and SetTime; a real server: sleep).
	Elapse func(t *testing.T, d time.Duration)
}

// Run runs every store test on b, each with a key prefix of its own, cleaned up after.
func Run(t *testing.T, b Backend) {
	for name, fn := range map[string]func(*testing.T, Backend, *store.Redis){
		"CreateGetRoundTrip":                      testCreateGetRoundTrip,
		"CreateKeepsTheFirst":                     testCreateKeepsTheFirst,
		"CreateSurvivesABrokenIndex":              testCreateSurvivesABrokenIndex,
		"ConcurrentCreatesOneWinner":              testConcurrentCreatesOneWinner,
		"UpdateKnown":                             testUpdateKnown,
		"UpdateIsCompareAndSet":                   testUpdateIsCompareAndSet,
		"UpdateMissingAndAborted":                 testUpdateMissingAndAborted,
		"TTLSetRefreshedAndExpires":               testTTLSetRefreshedAndExpires,
		"Delete":                                  testDelete,
		"ListNewestFirstPagedAndFiltered":         testListNewestFirstPagedAndFiltered,
		"ListPagesWithoutGapsWhileSessionsArrive": testListPagesWithoutGapsWhileSessionsArrive,
		"LimiterAndDeduper":                       testLimiterAndDeduper,
		"LimiterIsExact":                          testLimiterIsExact,
		"LimiterWindowSlides":                     testLimiterWindowSlides,
		"LimiterConcurrentCallsAllowExactly":      testLimiterConcurrentCallsAllowExactly,
	} {
		// Every test twice: with a round trip per command, and with the commands of
		// concurrent calls auto-pipelined, as the service runs by default.
		for _, mode := range []struct {
			name string
			opts []store.Option
		}{{"plain", nil}, {"autopipelined", []store.Option{store.WithAutoPipeline()}}} {
			t.Run(b.Name+"/"+mode.name+"/"+name, func(t *testing.T) {
				prefix := fmt.Sprintf("test:%d:", time.Now().UnixNano())
				t.Cleanup(func() { Cleanup(b.Client, prefix) })
				fn(t, b, store.NewRedis(b.Client, append([]store.Option{store.WithPrefix(prefix)}, mode.opts...)...))
			})
		}
	}
}

func Cleanup(c redis.UniversalClient, prefix string) {
	ctx := context.Background()
	iter := c.Scan(ctx, 0, prefix+"*", 500).Iterator()
	for iter.Next(ctx) {
		c.Del(ctx, iter.Val())
	}
}

var t0 = time.Date(2026, 11, 24, 18, 5, 0, 0, time.UTC)

// Session is a full session (every field set) created at at.
func Session(ref string, at time.Time) *callsession.Session {
	exp := at.Add(10 * time.Minute)
	return &callsession.Session{
		ReferenceID: ref, Provider: callsession.ProviderAuthsignal, Channel: callsession.ChannelSMS,
		PhoneNumber: "+14155552671", Country: "US", Status: callsession.StatusSent, ChallengeID: "ch_" + ref,
		UserID: "u1", Locale: "en-US", Attempts: 0, MaxAttempts: 5, Sends: 1, ExpiresAt: &exp,
		CreatedAt: at, UpdatedAt: at, Fingerprint: "fp-" + ref,
		Events: []callsession.Event{{At: at, Type: callsession.EventCreated, Detail: "created"}, {At: at, Type: callsession.EventSent}},
	}
}

func testCreateGetRoundTrip(t *testing.T, _ Backend, s *store.Redis) {
	ctx := context.Background()
	in := Session("CA1", t0)
	if existing, created, err := s.Create(ctx, in, time.Hour); err != nil || !created || existing != nil {
		t.Fatalf("Create = %v, %v, %v", existing, created, err)
	}
	got, err := s.Get(ctx, "CA1")
	if err != nil {
		t.Fatal(err)
	}
	if got.ChallengeID != "ch_CA1" || got.Fingerprint != "fp-CA1" || !got.ExpiresAt.Equal(*in.ExpiresAt) ||
		!got.CreatedAt.Equal(t0) || len(got.Events) != 2 || got.Events[1].Type != callsession.EventSent || got.MaxAttempts != 5 {
		t.Fatalf("round trip: %+v", got)
	}
	if _, err := s.Get(ctx, "nope"); !errors.Is(err, callsession.ErrNotFound) {
		t.Fatalf("Get missing = %v", err)
	}
}

// A start must not fail because the list index cannot be written (on a cluster its slot may
// be failing over while the session's is fine): the session is created, only unlisted.
func testCreateSurvivesABrokenIndex(t *testing.T, b Backend, s *store.Redis) {
	ctx := context.Background()
	if err := b.Client.Set(ctx, s.IndexKey(), "not a sorted set", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	paths := []string{"pipelined"}
	if b.Name == "miniredis" {
		// Its own server: forgetting the scripts there sends the next create down the
		// sequential path that loads them (a shared real server is left alone).
		paths = append(paths, "sequential")
	}
	for _, path := range paths {
		if path == "sequential" {
			if err := b.Client.ScriptFlush(ctx).Err(); err != nil {
				t.Fatal(err)
			}
		}
		ref := "broken-index-" + path
		if _, created, err := s.Create(ctx, Session(ref, t0), time.Hour); err != nil || !created {
			t.Fatalf("%s: created %v, err %v", path, created, err)
		}
		if got, err := s.Get(ctx, ref); err != nil || got.ReferenceID != ref {
			t.Fatalf("%s: get: %v %v", path, got, err)
		}
	}
}

func testCreateKeepsTheFirst(t *testing.T, _ Backend, s *store.Redis) {
	ctx := context.Background()
	if _, _, err := s.Create(ctx, Session("CA1", t0), time.Hour); err != nil {
		t.Fatal(err)
	}
	other := Session("CA1", t0.Add(time.Second))
	other.PhoneNumber = "+447400123456"
	existing, created, err := s.Create(ctx, other, time.Hour)
	if err != nil || created || existing == nil || existing.PhoneNumber != "+14155552671" {
		t.Fatalf("second Create = %+v, %v, %v", existing, created, err)
	}
	if got, _ := s.Get(ctx, "CA1"); got.PhoneNumber != "+14155552671" {
		t.Fatal("the second create overwrote the first")
	}
}

func testConcurrentCreatesOneWinner(t *testing.T, _ Backend, s *store.Redis) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, created, err := s.Create(context.Background(), Session("CA-race", t0), time.Hour)
			if err != nil {
				t.Error(err)
			}
			if created {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d creates won, want 1", wins)
	}
}

func testUpdateIsCompareAndSet(t *testing.T, _ Backend, s *store.Redis) {
	ctx := context.Background()
	if _, _, err := s.Create(ctx, Session("CA1", t0), time.Hour); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Update(ctx, "CA1", time.Hour, func(cur *callsession.Session) error {
				cur.Attempts++
				return nil
			}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got, _ := s.Get(ctx, "CA1"); got.Attempts != 50 {
		t.Fatalf("attempts = %d after 50 concurrent increments", got.Attempts)
	}
}

func testUpdateMissingAndAborted(t *testing.T, _ Backend, s *store.Redis) {
	ctx := context.Background()
	if _, err := s.Update(ctx, "nope", time.Hour, func(*callsession.Session) error { return nil }); !errors.Is(err, callsession.ErrNotFound) {
		t.Fatalf("Update missing = %v", err)
	}
	if _, _, err := s.Create(ctx, Session("CA1", t0), time.Hour); err != nil {
		t.Fatal(err)
	}
	stop := errors.New("stop")
	_, err := s.Update(ctx, "CA1", time.Hour, func(cur *callsession.Session) error {
		cur.Status = callsession.StatusVerified
		return stop
	})
	if !errors.Is(err, stop) {
		t.Fatalf("Update aborted = %v", err)
	}
	if got, _ := s.Get(ctx, "CA1"); got.Status != callsession.StatusSent {
		t.Fatal("an aborted update was written")
	}
}

func testTTLSetRefreshedAndExpires(t *testing.T, b Backend, s *store.Redis) {
	ctx := context.Background()
	if _, _, err := s.Create(ctx, Session("CA1", t0), time.Hour); err != nil {
		t.Fatal(err)
	}
	ttl := b.Client.PTTL(ctx, s.SessionKey("CA1")).Val()
	if ttl <= 59*time.Minute || ttl > time.Hour {
		t.Fatalf("PTTL after create = %s", ttl)
	}
	if _, err := s.Update(ctx, "CA1", 2*time.Hour, func(cur *callsession.Session) error { cur.Attempts++; return nil }); err != nil {
		t.Fatal(err)
	}
	if ttl := b.Client.PTTL(ctx, s.SessionKey("CA1")).Val(); ttl <= time.Hour {
		t.Fatalf("PTTL after update = %s, want refreshed to 2h", ttl)
	}
	if ttl := b.Client.PTTL(ctx, s.IndexKey()).Val(); ttl <= 0 {
		t.Fatalf("the index has no TTL (%s)", ttl)
	}
	if _, _, err := s.Create(ctx, Session("CA-short", t0), 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	b.Elapse(t, 600*time.Millisecond)
	if _, err := s.Get(ctx, "CA-short"); !errors.Is(err, callsession.ErrNotFound) {
		t.Fatalf("Get after TTL = %v", err)
	}
	page, err := s.List(ctx, callsession.ListQuery{Limit: 10})
	if err != nil || len(page.Sessions) != 1 || page.Sessions[0].ReferenceID != "CA1" {
		t.Fatalf("List after expiry = %+v, %v", page, err)
	}
	if b.Client.ZScore(ctx, s.IndexKey(), "CA-short").Err() != redis.Nil {
		t.Fatal("the expired session stayed in the index")
	}
}

func testDelete(t *testing.T, _ Backend, s *store.Redis) {
	ctx := context.Background()
	if _, _, err := s.Create(ctx, Session("CA1", t0), time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "CA1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "CA1"); err != nil {
		t.Fatalf("second Delete = %v", err)
	}
	if _, err := s.Get(ctx, "CA1"); !errors.Is(err, callsession.ErrNotFound) {
		t.Fatalf("Get after Delete = %v", err)
	}
	if page, _ := s.List(ctx, callsession.ListQuery{Limit: 10}); len(page.Sessions) != 0 {
		t.Fatalf("listed after Delete: %+v", page.Sessions)
	}
}

func listAll(t *testing.T, s *store.Redis, q callsession.ListQuery) []string {
	t.Helper()
	var out []string
	for pages := 0; pages < 100; pages++ {
		page, err := s.List(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range page.Sessions {
			out = append(out, x.ReferenceID)
		}
		if page.NextCursor == "" {
			return out
		}
		q.Cursor = page.NextCursor
	}
	t.Fatal("paging did not end")
	return nil
}

func testListNewestFirstPagedAndFiltered(t *testing.T, _ Backend, s *store.Redis) {
	ctx := context.Background()
	var want []string
	for i := 0; i < 25; i++ {
		ref := fmt.Sprintf("CA%02d", i)
		at := t0.Add(time.Duration(i/3) * time.Second) // three per millisecond: ties broken by reference
		sess := Session(ref, at)
		if i%4 == 0 {
			sess.Status = callsession.StatusVerified
		}
		if _, _, err := s.Create(ctx, sess, time.Hour); err != nil {
			t.Fatal(err)
		}
		want = append([]string{ref}, want...)
	}
	got := listAll(t, s, callsession.ListQuery{Limit: 4})
	if fmt.Sprint(got) != fmt.Sprint(sortedNewestFirst(t, s, want)) {
		t.Fatalf("listed %v", got)
	}
	verified := listAll(t, s, callsession.ListQuery{Limit: 2, Status: callsession.StatusVerified})
	if len(verified) != 7 {
		t.Fatalf("verified %v, want 7", verified)
	}
	for _, bad := range []string{"%%%", "bm90LWEtY3Vyc29y", "OnJlZg"} {
		if _, err := s.List(ctx, callsession.ListQuery{Limit: 2, Cursor: bad}); !errors.Is(err, store.ErrBadCursor) {
			t.Fatalf("cursor %q: %v", bad, err)
		}
	}
}

// sortedNewestFirst orders refs by (creation time desc, reference desc), the list's order.
func sortedNewestFirst(t *testing.T, s *store.Redis, refs []string) []string {
	t.Helper()
	out := append([]string(nil), refs...)
	created := map[string]time.Time{}
	for _, r := range refs {
		x, err := s.Get(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		created[r] = x.CreatedAt
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0; j-- {
			a, b := out[j-1], out[j]
			if created[a].Before(created[b]) || created[a].Equal(created[b]) && a < b {
				out[j-1], out[j] = b, a
			}
		}
	}
	return out
}

func testListPagesWithoutGapsWhileSessionsArrive(t *testing.T, _ Backend, s *store.Redis) {
	ctx := context.Background()
	for i := 0; i < 30; i++ {
		if _, _, err := s.Create(ctx, Session(fmt.Sprintf("old%02d", i), t0.Add(time.Duration(i)*time.Millisecond)), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]int{}
	q := callsession.ListQuery{Limit: 7}
	for n := 0; ; n++ {
		page, err := s.List(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range page.Sessions {
			seen[x.ReferenceID]++
		}
		// New sessions arrive between pages.
		for k := 0; k < 3; k++ {
			ref := fmt.Sprintf("new%d-%d", n, k)
			if _, _, err := s.Create(ctx, Session(ref, t0.Add(time.Hour+time.Duration(n*3+k)*time.Millisecond)), time.Hour); err != nil {
				t.Fatal(err)
			}
		}
		if page.NextCursor == "" {
			break
		}
		q.Cursor = page.NextCursor
	}
	for i := 0; i < 30; i++ {
		if ref := fmt.Sprintf("old%02d", i); seen[ref] != 1 {
			t.Fatalf("%s seen %d times", ref, seen[ref])
		}
	}
	for ref, n := range seen {
		if n != 1 {
			t.Fatalf("%s seen %d times", ref, n)
		}
	}
}

func testLimiterAndDeduper(t *testing.T, _ Backend, s *store.Redis) {
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		ok, _, err := s.Allow(ctx, "num:+1415", 3, time.Minute)
		if err != nil || !ok {
			t.Fatalf("allow %d = %v, %v", i+1, ok, err)
		}
	}
	ok, retry, err := s.Allow(ctx, "num:+1415", 3, time.Minute)
	if err != nil || ok || retry <= 0 || retry > time.Minute {
		t.Fatalf("4th allow = %v, %s, %v", ok, retry, err)
	}
	if ok, _, _ := s.Allow(ctx, "num:other", 3, time.Minute); !ok {
		t.Fatal("budgets are not per key")
	}
	for i := 0; i < 10; i++ {
		if ok, _, err := s.Allow(ctx, "off", 0, time.Minute); !ok || err != nil {
			t.Fatal("a zero limit limited")
		}
	}
	first, err := s.FirstSeen(ctx, "evt_1", time.Minute)
	if err != nil || !first {
		t.Fatalf("FirstSeen = %v, %v", first, err)
	}
	if again, _ := s.FirstSeen(ctx, "evt_1", time.Minute); again {
		t.Fatal("a repeated key was first seen twice")
	}
	if seen, err := s.Seen(ctx, "evt_1"); err != nil || !seen {
		t.Fatalf("Seen(recorded) = %v, %v", seen, err)
	}
	if seen, err := s.Seen(ctx, "evt_never"); err != nil || seen {
		t.Fatalf("Seen(never recorded) = %v, %v", seen, err)
	}
	if err := s.Forget(ctx, "evt_1"); err != nil {
		t.Fatal(err)
	}
	if seen, _ := s.Seen(ctx, "evt_1"); seen {
		t.Fatal("a forgotten key is still seen")
	}
	if first, err := s.FirstSeen(ctx, "evt_1", time.Minute); err != nil || !first {
		t.Fatalf("FirstSeen after Forget = %v, %v", first, err)
	}
}

// allowN calls Allow n times and answers how many were allowed and the last refusal's
// retryAfter.
func allowN(t *testing.T, s *store.Redis, key string, n, limit int, window time.Duration) (allowed int, retry time.Duration) {
	t.Helper()
	for i := 0; i < n; i++ {
		ok, r, err := s.Allow(context.Background(), key, limit, window)
		if err != nil {
			t.Fatalf("Allow(%s) = %v", key, err)
		}
		if ok {
			if r != 0 {
				t.Fatalf("Allow(%s) allowed with retryAfter %s", key, r)
			}
			allowed++
		} else {
			retry = r
		}
	}
	return allowed, retry
}

// testLimiterIsExact: limit events in a window, not one more (no burst on top), and a
// refusal says when the window has room again.
func testLimiterIsExact(t *testing.T, _ Backend, s *store.Redis) {
	const window = 10 * time.Minute
	if n, _ := allowN(t, s, "num:+447400123456", 5, 5, window); n != 5 {
		t.Fatalf("%d of the first 5 allowed", n)
	}
	n, retry := allowN(t, s, "num:+447400123456", 20, 5, window)
	if n != 0 {
		t.Fatalf("%d more allowed past a limit of 5", n)
	}
	// The oldest event is a few milliseconds old: room again in just under the window.
	if retry <= window-time.Minute || retry > window || retry%time.Millisecond != 0 {
		t.Fatalf("retryAfter %s, want whole milliseconds in (%s, %s]", retry, window-time.Minute, window)
	}
	if n, _ := allowN(t, s, "num:+447400999999", 6, 5, window); n != 5 {
		t.Fatalf("another key: %d of 6 allowed, want its own 5", n)
	}
	for _, limit := range []int{0, -1} {
		if n, _ := allowN(t, s, "num:+447400123456", 20, limit, window); n != 20 {
			t.Fatalf("limit %d allowed %d of 20", limit, n)
		}
	}
}

// testLimiterWindowSlides: an event counts for exactly one window after it happened, and a
// refused event does not count at all.
func testLimiterWindowSlides(t *testing.T, b Backend, s *store.Redis) {
	ctx := context.Background()
	// Wide enough that a loaded machine's late wake-ups (up to 0.7 s) change nothing.
	const window, half, margin = 2 * time.Second, time.Second, 300 * time.Millisecond
	key := "sends:number:+14155552671"
	if n, _ := allowN(t, s, key, 3, 5, window); n != 3 { // at 0
		t.Fatalf("%d of 3 allowed", n)
	}
	b.Elapse(t, half)
	// At half the window: 2 more fit, then refusals (a token bucket refilling since 0 would
	// let more through).
	n, retry := allowN(t, s, key, 10, 5, window)
	if n != 2 || retry <= 0 || retry > half {
		t.Fatalf("at half the window: %d allowed, retryAfter %s; want 2 and (0, %s]", n, retry, half)
	}
	b.Elapse(t, half+margin)
	// Past the window of the first 3: exactly those 3 are free again. The 8 refusals at half
	// the window took nothing, and the 2 allowed then still count.
	n, retry = allowN(t, s, key, 4, 5, window)
	if n != 3 || retry <= 0 || retry > half-margin {
		t.Fatalf("after the first window: %d allowed, retryAfter %s; want 3 and (0, %s]", n, retry, half-margin)
	}
	// The log lives no longer than the window of its newest event.
	if ttl := b.Client.PTTL(ctx, s.Prefix()+"limit:"+key).Val(); ttl <= 0 || ttl > window {
		t.Fatalf("PTTL of the limit key = %s, want (0, %s]", ttl, window)
	}
	if n := b.Client.ZCard(ctx, s.Prefix()+"limit:"+key).Val(); n != 5 {
		t.Fatalf("the limit key holds %d events, want the 5 in the window", n)
	}
}

// testLimiterConcurrentCallsAllowExactly: replicas racing on one budget get exactly limit
// between them, also when events share a microsecond.
func testLimiterConcurrentCallsAllowExactly(t *testing.T, _ Backend, s *store.Redis) {
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := 0
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, _, err := s.Allow(ctx, "starts:key:abc", 5, time.Minute)
			if err != nil {
				t.Error(err)
				return
			}
			if ok {
				mu.Lock()
				got++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if got != 5 {
		t.Fatalf("50 concurrent calls with a limit of 5 allowed %d", got)
	}
}

func testUpdateKnown(t *testing.T, _ Backend, s *store.Redis) {
	ctx := context.Background()
	sess := Session("CA1", t0)
	if _, _, err := s.Create(ctx, sess, time.Hour); err != nil {
		t.Fatal(err)
	}
	if sess.Version != 1 {
		t.Fatalf("created version %d", sess.Version)
	}
	stale := Session("CA1", t0)
	stale.Version = 1
	// The fast path: the caller's copy is current.
	out, err := s.UpdateKnown(ctx, sess, time.Hour, func(c *callsession.Session) error { c.Attempts++; return nil })
	if err != nil || out.Attempts != 1 || out.Version != 2 {
		t.Fatalf("UpdateKnown = %+v, %v", out, err)
	}
	// A stale copy: the write is refused by the version and redone on the current session.
	out, err = s.UpdateKnown(ctx, stale, time.Hour, func(c *callsession.Session) error { c.Attempts++; return nil })
	if err != nil || out.Attempts != 2 {
		t.Fatalf("UpdateKnown from a stale copy = %+v, %v", out, err)
	}
	got, _ := s.Get(ctx, "CA1")
	if got.Attempts != 2 || got.Version != 3 {
		t.Fatalf("stored attempts %d version %d", got.Attempts, got.Version)
	}
	// A refusal judged on a stale copy is judged again on the current one.
	stale2 := Session("CA1", t0)
	stale2.Version = 1
	calls := 0
	if _, err := s.UpdateKnown(ctx, stale2, time.Hour, func(c *callsession.Session) error {
		calls++
		if c.Attempts == 0 {
			return errors.New("looks untouched")
		}
		c.Attempts++
		return nil
	}); err != nil || calls != 2 {
		t.Fatalf("refusal on a stale copy: %v after %d calls", err, calls)
	}
	if _, err := s.UpdateKnown(ctx, &callsession.Session{ReferenceID: "nope", Version: 1}, time.Hour,
		func(*callsession.Session) error { return nil }); !errors.Is(err, callsession.ErrNotFound) {
		t.Fatalf("UpdateKnown of a missing session = %v", err)
	}
}
