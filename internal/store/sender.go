package store

import (
	"context"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// Sender sends a Redis command straight on a pooled connection of its client while one is
// free, and through the auto-pipeliner beyond (see WithAutoPipeline for why); without a
// pipeliner, every command on the client. The store sends through one; the load
// benchmark's baseline (cmd/loadbench) sends its one command through another, so both
// are measured sending alike.
type Sender struct {
	c  redis.UniversalClient
	ap *redis.AutoPipeliner // nil: every command on c
	// direct counts the commands on c while ap is in use, at most directMax
	// (DirectSlots) at once.
	direct    atomic.Int64
	directMax int64
}

// NewSender sends on c, and through ap (nil for none) when c's spare connections are taken.
func NewSender(c redis.UniversalClient, ap *redis.AutoPipeliner) *Sender {
	s := &Sender{c: c, ap: ap}
	if ap != nil {
		s.directMax = int64(DirectSlots(c))
	}
	return s
}

// Process runs cmd and returns its error. Through the pipeliner, which runs a queued
// command on its own context, the wait is bounded here: past ctx the command may still run
// (as a plain client's may, once written), but the caller has its answer.
func (s *Sender) Process(ctx context.Context, cmd redis.Cmder) error {
	if s.ap != nil {
		if err := ctx.Err(); err != nil {
			return err
		}
		// Straight on a pooled connection while the commands sent so are fewer than
		// DirectSlots (so they seldom wait for one), through the pipeliner beyond.
		if s.direct.Add(1) > s.directMax {
			s.direct.Add(-1)
			return s.ap.Submit(ctx, cmd).WaitContext(ctx)
		}
		defer s.direct.Add(-1)
	}
	_ = s.c.Process(ctx, cmd)
	return cmd.Err()
}

// DirectSlots is how many commands may go straight on c's pooled connections at once: the
// connections c may hold per server (go-redis' PoolSize, 10 per CPU by default, or
// MaxActiveConns when lower, past which a command fails rather than waits) less two for
// the client's other users (live notices, readiness pings, lists), so a command sent
// straight seldom waits for a connection. None unless c bounds a command's wait by its
// context's deadline (ContextTimeoutEnabled, as Open sets it): a hung Redis would hold a
// command for the client's read timeout, where the pipeliner's wait ends with the
// caller's context. With it, one difference remains: a context cancelled without a
// deadline ends a straight command only at the read timeout (1 s from Open), and a
// deadline that passes mid-read costs its connection (go-redis closes it).
func DirectSlots(c redis.UniversalClient) int {
	var size, active int
	switch c := c.(type) {
	case *redis.Client:
		if o := c.Options(); o.ContextTimeoutEnabled {
			size, active = o.PoolSize, o.MaxActiveConns
		}
	case *redis.ClusterClient:
		if o := c.Options(); o.ContextTimeoutEnabled {
			size, active = o.PoolSize, o.MaxActiveConns
		}
	}
	if active > 0 && active < size {
		size = active
	}
	return max(size-2, 0)
}
