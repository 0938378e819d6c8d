package logging

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncedBuffer is the output under a Buffered: its writes and reads may race (the interval's
// flush runs on its own goroutine). syncs counts calls of Sync, which a Buffered must never make.
type syncedBuffer struct {
	mu    sync.Mutex
	b     bytes.Buffer
	syncs int
}

func (s *syncedBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncedBuffer) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.syncs++
	return nil
}

func (s *syncedBuffer) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.FieldsFunc(s.b.String(), func(r rune) bool { return r == '\n' })
}

func messages(t *testing.T, lines []string) []string {
	t.Helper()
	var out []string
	for _, l := range lines {
		var rec struct{ Msg string }
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("log line %q is not JSON: %v", l, err)
		}
		out = append(out, rec.Msg)
	}
	return out
}

func TestBufferedHoldsInfoAndWritesWarningsAtOnce(t *testing.T) {
	out := &syncedBuffer{}
	b := NewBuffered(out, time.Hour)
	log := New(b, -4) // debug

	log.Info("one")
	log.Debug("two")
	if got := out.lines(); len(got) != 0 {
		t.Fatalf("info and debug lines written before a flush: %q", got)
	}
	log.With("component", "x").Warn("three") // a derived logger flushes too
	if got := messages(t, out.lines()); strings.Join(got, ",") != "one,two,three" {
		t.Fatalf("after a warning: %q, want one,two,three in order", got)
	}
	log.Info("four")
	log.WithGroup("g").Error("five", "k", "v")
	if got := messages(t, out.lines()); strings.Join(got, ",") != "one,two,three,four,five" {
		t.Fatalf("after an error: %q", got)
	}
	log.Info("six")
	if got := len(out.lines()); got != 5 {
		t.Fatalf("%d lines before Close, want 5", got)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if got := messages(t, out.lines()); len(got) != 6 || got[5] != "six" {
		t.Fatalf("after Close: %q, want six last", got)
	}
	if out.syncs != 0 {
		t.Fatalf("the output's Sync was called %d times (an fsync of stderr's file)", out.syncs)
	}
}

func TestBufferedWritesOutEveryInterval(t *testing.T) {
	out := &syncedBuffer{}
	b := NewBuffered(out, 10*time.Millisecond)
	defer b.Close()
	New(b, 0).Info("waiting")
	for deadline := time.Now().Add(10 * time.Second); len(out.lines()) == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("an info line was not written out by the interval's flush within 10 s")
		}
	}
	if got := messages(t, out.lines()); len(got) != 1 || got[0] != "waiting" {
		t.Fatalf("written: %q", got)
	}
}

func TestBufferedKeepsConcurrentLinesWhole(t *testing.T) {
	out := &syncedBuffer{}
	b := NewBuffered(out, time.Millisecond)
	log := New(b, 0)
	const writers, each = 8, 2000 // ≈ 1 MB: the 256 KB buffer fills and flushes on its own
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				log.Info(fmt.Sprintf("w%d-%d", w, i), "pad", strings.Repeat("x", 40))
			}
		})
	}
	wg.Wait()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, m := range messages(t, out.lines()) {
		if seen[m] {
			t.Fatalf("line %q written twice", m)
		}
		seen[m] = true
	}
	if len(seen) != writers*each {
		t.Fatalf("%d distinct lines written, want %d", len(seen), writers*each)
	}
}

// failingOnce fails its first write, then works.
type failingOnce struct {
	syncedBuffer
	failed bool
}

func (f *failingOnce) Write(p []byte) (int, error) {
	if !f.failed {
		f.failed = true
		return 0, errors.New("no space left on device")
	}
	return f.syncedBuffer.Write(p)
}

func TestBufferedLogsOnAfterAFailedWrite(t *testing.T) {
	out := &failingOnce{}
	b := NewBuffered(out, time.Hour)
	defer b.Close()
	log := New(b, 0)
	log.Warn("lost") // its write fails
	log.Warn("after")
	log.Info("and more")
	if err := b.Flush(); err != nil {
		t.Fatalf("Flush after a failed write: %v", err)
	}
	if got := messages(t, out.lines()); strings.Join(got, ",") != "after,and more" {
		t.Fatalf("after one failed write the log holds %q, want after,and more", got)
	}
}

func TestNewOnAPlainWriterWritesEveryLine(t *testing.T) {
	out := &syncedBuffer{}
	New(out, 0).Info("now")
	if got := messages(t, out.lines()); len(got) != 1 {
		t.Fatalf("written: %q", got)
	}
}
