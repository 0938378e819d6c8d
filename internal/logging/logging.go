// Package logging sets up the JSON logs of ivr-bridge: one slog handler on stderr whose every
// line names the request it belongs to, taken from the context, optionally through a Buffered
// output.
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

type ctxKey struct{}

// WithRequestID returns a context whose log lines carry id as request_id.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// RequestID returns the request ID the context carries, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

// ParseLevel reads LOG_LEVEL's values.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, nil
	case "", "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("unknown log level %q (want debug, info, warn or error)", s)
}

// New returns a JSON logger writing to w at level; every record made with a context that
// carries a request ID gets a request_id attribute. When w is a *Buffered, every warning
// and error is written out at once, with the lines buffered before it.
func New(w io.Writer, level slog.Level) *slog.Logger {
	h := requestIDHandler{Handler: slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})}
	if b, ok := w.(*Buffered); ok {
		h.flush = b.Flush
	}
	return slog.New(h)
}

type requestIDHandler struct {
	slog.Handler
	flush func() error // nil: the output is not buffered
}

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	err := h.Handler.Handle(ctx, r)
	if h.flush != nil && r.Level >= slog.LevelWarn {
		if ferr := h.flush(); err == nil {
			err = ferr
		}
	}
	return err
}

func (h requestIDHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(attrs), h.flush}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name), h.flush}
}
