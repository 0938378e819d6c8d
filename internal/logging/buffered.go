package logging

import (
	"io"
	"log/slog"
	"time"

	"go.uber.org/zap/zapcore"
)

// Buffered is a log output that gathers lines in memory and writes them out together: when
// its buffer (256 KB) is full, every interval, on Flush, and on Close. A write to stderr is
// a system call per line (two per session start, ≈ 5 µs each under load, see
// docs/performance.md); gathered, a busy bridge writes a few times a second. A logger made
// by New on a Buffered flushes after every warning or error, so those are never held back.
type Buffered struct{ s *zapcore.BufferedWriteSyncer }

// NewBuffered buffers the lines written to w, writing them out at least every interval.
func NewBuffered(w io.Writer, interval time.Duration) *Buffered {
	// AddSync of a plain io.Writer gives a Sync that does nothing: flushing the buffer
	// must not fsync the file stderr may be.
	return &Buffered{&zapcore.BufferedWriteSyncer{WS: zapcore.AddSync(plainWriter{w}), FlushInterval: interval}}
}

// plainWriter hides every method of its writer but Write (an *os.File's Sync above all), and
// every error of Write: the buffer (a bufio.Writer) keeps the first error it is given and
// refuses all writes after it, so one failed write to stderr (a full disk, say) would silence
// the log until exit, warnings and errors too. As when each line was written at once, a failed
// write loses what it held and the next is tried afresh.
type plainWriter struct{ io.Writer }

func (w plainWriter) Write(p []byte) (int, error) {
	_, _ = w.Writer.Write(p)
	return len(p), nil
}

func (b *Buffered) Write(p []byte) (int, error) { return b.s.Write(p) }

// Flush writes out what is buffered.
func (b *Buffered) Flush() error { return b.s.Sync() }

// Close stops the interval's flushes and writes out what is buffered; lines written after it
// are written out only by Flush.
func (b *Buffered) Close() error { return b.s.Stop() }

// Open returns the JSON logger of level on w, buffered when flushInterval > 0, and the
// function that writes out what is still buffered, to call before the process exits.
func Open(w io.Writer, level slog.Level, flushInterval time.Duration) (log *slog.Logger, closeOutput func() error) {
	if flushInterval <= 0 {
		return New(w, level), func() error { return nil }
	}
	b := NewBuffered(w, flushInterval)
	return New(b, level), b.Close
}
