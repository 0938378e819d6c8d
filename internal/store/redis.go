package store

import (
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	// encoding/json's drop-in: byte-for-byte the same documents (FuzzSessionCodec), about 3×
	// faster on a session (BenchmarkSessionCodec); every start encodes one twice.
	json "github.com/segmentio/encoding/json"

	"github.com/ivr-bridge/ivr-bridge/internal/callsession"
	"github.com/ivr-bridge/ivr-bridge/internal/phone"
)

// DefaultPrefix starts every key the store writes.
const DefaultPrefix = "ivr:"

// Redis is the Redis-backed Store, Limiter and Deduper.
//
// Layout: a session is one hash `<prefix>{<ref>}` with its JSON (`d`) and a version (`v`) for
// compare-and-set, carrying the session TTL; the hash tag keeps everything of a session on one
// cluster slot. `<prefix>index` is a sorted set of references by creation time for the list;
// it is a single key, so it is written with its own commands, never in a script with a
// session key (which a cluster would refuse). `<prefix>limit:<key>` is a sorted set of one
// limit's events in its current window (see Allow).
type Redis struct {
	c redis.UniversalClient
	// ap, with WithAutoPipeline, sends the commands of a call's path that find no pooled
	// connection free; nil: c sends them all. send chooses (see Sender).
	ap     *redis.AutoPipeliner
	send   *Sender
	prefix string
	// waitReplicas > 0: a session write is acknowledged only once that many replicas have
	// it (WAIT), so a failover cannot lose it; 0 trusts asynchronous replication.
	waitReplicas int
	waitTimeout  time.Duration
}

// Option adjusts a Redis store.
type Option func(*Redis)

// WithPrefix sets the key prefix (tests sharing one Redis give each run its own).
func WithPrefix(p string) Option { return func(r *Redis) { r.prefix = p } }

// WithWaitReplicas makes every session write wait (Redis WAIT) until n replicas have it, at
// most timeout; a write not replicated in time is answered as a storage failure (the caller
// retries, and the start's idempotency makes the retry safe). The price is a replication
// round trip on every write.
func WithWaitReplicas(n int, timeout time.Duration) Option {
	return func(r *Redis) { r.waitReplicas, r.waitTimeout = n, timeout }
}

// WithAutoPipeline sends the commands and scripts of a call's path (create, read,
// compare-and-set, limits, dedup) that find every pooled connection busy through go-redis'
// auto-pipeliner: the commands of concurrent requests share one write and one read instead
// of waiting for a connection each. Under load that is most of the store's system calls
// and of Redis' own CPU per command (docs/performance.md). While a pooled connection is
// free a command goes straight on it: the pipeliner hands each command to its writer and
// its reader goroutines and back, three wake-ups where a pooled connection needs one, which
// at moderate load cost more CPU and latency than its batches save (at 200 concurrent
// starts: 0.9 against 2.4 ms in the store per start, and less CPU). Each caller still
// waits for its own answer, and no longer than its context allows (see call). The
// pipeliner is closed with the client; AutoPipelined says whether it is in use.
func WithAutoPipeline() Option {
	return func(r *Redis) {
		// An error means a closed client or an invalid configuration of the client's own
		// AutoPipelineOptions: the plain client then answers, as without this option.
		if ap, err := r.c.AsyncAutoPipeline(); err == nil {
			r.ap = ap
		}
	}
}

// AutoPipelined reports whether commands go through the auto-pipeliner.
func (r *Redis) AutoPipelined() bool { return r.ap != nil }

// call runs the command build makes and waits for its answer, at most until ctx ends (see
// Sender.Process); on an error there is no command to read.
func call[C redis.Cmder](ctx context.Context, r *Redis, build func(redis.Cmdable) C) (C, error) {
	cmd := build(r.c.Pipeline()) // a pipeline never run: it only builds the command
	if err := r.send.Process(ctx, cmd); err != nil {
		var none C
		return none, err // through the pipeliner the command may still be in flight
	}
	return cmd, nil
}

// oneShot is a script go-redis must not send again once it may have reached Redis: every
// script here writes, and a reply lost to a broken connection is not a script that did not
// run. Run twice, a compare-and-set answers a conflict and Update applies its change again
// (an attempt counted twice), a create finds its own session and takes its start for a
// repeat, a limit counts one event twice. A failure before the write is still retried.
type oneShot struct{ *redis.Cmd }

func (oneShot) NoRetry() bool { return true }

// runScript runs script by its SHA, once (oneShot); a server that does not know it
// (restarted or flushed) gets it whole on the plain client, which loads it.
func (r *Redis) runScript(ctx context.Context, script *redis.Script, keys []string, args ...any) *redis.Cmd {
	cmd := script.EvalSha(ctx, r.c.Pipeline(), keys, args...)
	err := r.send.Process(ctx, oneShot{cmd})
	if redis.HasErrorPrefix(err, "NOSCRIPT") {
		cmd = script.Eval(ctx, r.c.Pipeline(), keys, args...)
		_ = r.c.Process(ctx, oneShot{cmd})
		err = cmd.Err()
	}
	if err != nil {
		// A fresh command for the error: the one sent may still be filled in by its batch.
		failed := redis.NewCmd(ctx)
		failed.SetErr(err)
		return failed
	}
	return cmd
}

// NewRedis returns the store over c.
func NewRedis(c redis.UniversalClient, opts ...Option) *Redis {
	r := &Redis{c: c, prefix: DefaultPrefix}
	for _, o := range opts {
		o(r)
	}
	r.send = NewSender(c, r.ap)
	return r
}

// Client is the underlying client (live events share it).
func (r *Redis) Client() redis.UniversalClient { return r.c }

// Prefix is the key prefix in use.
func (r *Redis) Prefix() string { return r.prefix }

// SessionKey is the key of a session's hash; the braces are a cluster hash tag.
func (r *Redis) SessionKey(ref string) string { return r.prefix + "{" + ref + "}" }

// IndexKey is the key of the list index.
func (r *Redis) IndexKey() string { return r.prefix + "index" }

// createLua writes the session unless one exists, and answers the existing one.
const createLua = `
local function create(key, data, ttl)
  local d = redis.call('HGET', key, 'd')
  if d then return {0, d} end
  redis.call('HSET', key, 'v', 1, 'd', data)
  redis.call('PEXPIRE', key, ttl)
  return {1}
end
`

// indexLua adds a reference to the list index (NX: a repeat keeps its place) and keeps the
// index bounded: entries created two TTLs ago belong to sessions that are gone unless
// updated all along (List drops those lazily), and the index key itself lives as long as the
// longest session just indexed, only ever extended, so it vanishes when sessions stop.
const indexLua = `
local function index(key, score, ref, oldest, ttl)
  redis.call('ZADD', key, 'NX', score, ref)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. oldest)
  local t = redis.call('PTTL', key)
  if t == -1 or t < tonumber(ttl) then redis.call('PEXPIRE', key, ttl) end
end
`

var (
	createScript = redis.NewScript(createLua + `return create(KEYS[1], ARGV[1], ARGV[2])`)
	indexScript  = redis.NewScript(indexLua + `index(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4]) return 1`)
	// createIndexedScript is both in one call, for one server, where a script may touch the
	// index and a session together (a cluster refuses keys of two slots): it saves Redis a
	// script call per start, the most expensive part of a create. The index is written only
	// by the start that created the session, under pcall: as on a cluster, a failed index
	// write hides the session from the list but never fails the create.
	createIndexedScript = redis.NewScript(createLua + indexLua + `
local r = create(KEYS[1], ARGV[1], ARGV[2])
if r[1] == 1 then pcall(index, KEYS[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]) end
return r`)
)

// casScript writes the session only if its version is still the one read.
var casScript = redis.NewScript(`
local v = redis.call('HGET', KEYS[1], 'v')
if not v then return -1 end
if v ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'v', tonumber(v) + 1, 'd', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`)

// Create implements callsession.Store.
func (r *Redis) Create(ctx context.Context, s *callsession.Session, ttl time.Duration) (*callsession.Session, bool, error) {
	data, err := encode(s)
	if err != nil {
		return nil, false, err
	}
	// On a cluster, indexed first, NX: a repeated start keeps the first position, and a
	// create that fails after this leaves only an index entry that List drops. On one server
	// both happen in one script, the index only for a session created.
	now := s.CreatedAt
	indexKeys := []string{r.IndexKey()}
	indexArgs := []any{now.UnixMilli(), s.ReferenceID, now.Add(-2 * ttl).UnixMilli(), (2 * ttl).Milliseconds()}
	res, err := r.createInOneTrip(ctx, s.ReferenceID, indexKeys, indexArgs, data, ttl)
	if err == errScriptsNotLoaded {
		res, err = r.createSequential(ctx, s.ReferenceID, indexKeys, indexArgs, data, ttl)
	}
	if err != nil {
		return nil, false, storageErr("create", err)
	}
	if created, _ := res[0].(int64); created == 1 {
		s.Version = 1
		return nil, true, nil
	}
	existing, err := decode(res[1])
	if err != nil {
		return nil, false, err
	}
	return existing, false, nil
}

// encode is a session as the store keeps it: its JSON.
func encode(s *callsession.Session) ([]byte, error) {
	data, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encoding session: %w", err)
	}
	return data, nil
}

// decode reads a session as encode wrote it, from a Redis reply.
func decode(v any) (*callsession.Session, error) {
	s, ok := v.(string)
	if !ok {
		return nil, fmt.Errorf("%w: session data of type %T", callsession.ErrStorage, v)
	}
	var out callsession.Session
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		// The decoder's error may quote the data (up to 32 bytes, or a whole value): a
		// phone number, an address. The error is logged.
		return nil, fmt.Errorf("%w: decoding session: %s", callsession.ErrStorage, phone.MaskText(err.Error()))
	}
	return &out, nil
}

// read returns the session and its version.
func (r *Redis) read(ctx context.Context, ref string) (*callsession.Session, string, error) {
	cmd, err := call(ctx, r, func(c redis.Cmdable) *redis.SliceCmd { return c.HMGet(ctx, r.SessionKey(ref), "v", "d") })
	if err != nil {
		return nil, "", storageErr("get", err)
	}
	vals := cmd.Val()
	if vals[0] == nil || vals[1] == nil {
		return nil, "", callsession.ErrNotFound
	}
	s, err := decode(vals[1])
	if err != nil {
		return nil, "", err
	}
	v, _ := vals[0].(string)
	s.Version, _ = strconv.ParseInt(v, 10, 64)
	return s, v, nil
}

// Get implements callsession.Store.
func (r *Redis) Get(ctx context.Context, ref string) (*callsession.Session, error) {
	s, _, err := r.read(ctx, ref)
	return s, err
}

// maxCASRetries bounds Update's retries; each conflict means another writer made progress.
const maxCASRetries = 50

// Update implements callsession.Store: optimistic compare-and-set on the version.
func (r *Redis) Update(ctx context.Context, ref string, ttl time.Duration, fn func(*callsession.Session) error) (*callsession.Session, error) {
	for attempt := 0; attempt < maxCASRetries; attempt++ {
		cur, version, err := r.read(ctx, ref)
		if err != nil {
			return nil, err
		}
		if err := fn(cur); err != nil {
			return nil, err
		}
		data, err := encode(cur)
		if err != nil {
			return nil, err
		}
		res, err := r.durably(ctx, casScript, ref, version, data, ttl.Milliseconds()).Int64()
		if err != nil {
			return nil, storageErr("update", err)
		}
		switch res {
		case 1:
			cur.Version++
			return cur, nil
		case -1:
			return nil, callsession.ErrNotFound
		}
		// Lost the race: back off a little, with jitter so contenders spread out.
		select {
		case <-ctx.Done():
			return nil, storageErr("update", ctx.Err())
		case <-time.After(time.Duration(rand.IntN(1000*(attempt+1))) * time.Microsecond):
		}
	}
	return nil, fmt.Errorf("%w: update of %q kept conflicting", callsession.ErrStorage, ref)
}

var errScriptsNotLoaded = errors.New("scripts not loaded")

// createInOneTrip creates and indexes in one round trip. On one server that is one script
// call (createIndexedScript; Run loads it on NOSCRIPT). On a cluster it is both scripts by
// SHA in one pipeline, which go-redis splits by slot; a node that does not know them yet
// answers NOSCRIPT, and the caller then takes the sequential path, which loads them. With
// WithWaitReplicas the sequential path is always taken.
func (r *Redis) createInOneTrip(ctx context.Context, ref string, indexKeys []string, indexArgs []any, data []byte, ttl time.Duration) ([]any, error) {
	if r.waitReplicas > 0 {
		return nil, errScriptsNotLoaded
	}
	if _, cluster := r.c.(*redis.ClusterClient); !cluster {
		keys := []string{r.SessionKey(ref), indexKeys[0]}
		args := append([]any{data, ttl.Milliseconds()}, indexArgs...)
		return r.runScript(ctx, createIndexedScript, keys, args...).Slice()
	}
	pipe := r.c.Pipeline()
	idx := indexScript.EvalSha(ctx, pipe, indexKeys, indexArgs...)
	cr := createScript.EvalSha(ctx, r.c.Pipeline(), []string{r.SessionKey(ref)}, data, ttl.Milliseconds())
	_ = pipe.Process(ctx, oneShot{cr}) // built above, sent once
	_, _ = pipe.Exec(ctx)
	if redis.HasErrorPrefix(cr.Err(), "NOSCRIPT") {
		return nil, errScriptsNotLoaded // nothing was created: the sequential path does it all
	}
	idxErr := idx.Err()
	if redis.HasErrorPrefix(idxErr, "NOSCRIPT") {
		// The create ran; only the index's node lacked its script (a cluster's nodes learn
		// scripts one by one): index now, loading it. Never redo the create.
		idxErr = r.runScript(ctx, indexScript, indexKeys, indexArgs...).Err()
	}
	// The session is what a call needs; a failed index write only hides it from the list,
	// so it fails the create only when the create itself failed.
	res, err := cr.Slice()
	if err != nil && idxErr != nil {
		return nil, errors.Join(idxErr, err)
	}
	return res, err
}

// createSequential indexes, then creates, each script loaded where the server lacks it, the
// create under WithWaitReplicas' WAIT. As in the pipeline, a failed index write (its node
// failing over, on a cluster) only hides the session from the list, so only a failed create
// fails the start.
func (r *Redis) createSequential(ctx context.Context, ref string, indexKeys []string, indexArgs []any, data []byte, ttl time.Duration) ([]any, error) {
	idxErr := r.runScript(ctx, indexScript, indexKeys, indexArgs...).Err()
	res, err := r.durably(ctx, createScript, ref, data, ttl.Milliseconds()).Slice()
	if err != nil && idxErr != nil {
		err = errors.Join(idxErr, err)
	}
	return res, err
}

// durably runs a session script on the session's key and, with WithWaitReplicas, WAITs for
// its replication on the same connection (WAIT covers only the writes of its own connection,
// hence one pipeline on the master that owns the session's slot; in a pipeline the script is
// sent whole, as EVALSHA's fallback cannot run there).
func (r *Redis) durably(ctx context.Context, script *redis.Script, ref string, args ...any) *redis.Cmd {
	keys := []string{r.SessionKey(ref)}
	if r.waitReplicas <= 0 {
		return r.runScript(ctx, script, keys, args...)
	}
	var node redis.Cmdable = r.c
	if cc, ok := r.c.(*redis.ClusterClient); ok {
		master, err := cc.MasterForKey(ctx, keys[0])
		if err != nil {
			cmd := redis.NewCmd(ctx)
			cmd.SetErr(err)
			return cmd
		}
		node = master
	}
	var cmd, wait *redis.Cmd
	_, err := node.Pipelined(ctx, func(p redis.Pipeliner) error {
		cmd = script.Eval(ctx, r.c.Pipeline(), keys, args...) // built here, run once in p
		_ = p.Process(ctx, oneShot{cmd})
		wait = p.Do(ctx, "WAIT", r.waitReplicas, r.waitTimeout.Milliseconds())
		return nil
	})
	if err == nil {
		if n, _ := wait.Int64(); n < int64(r.waitReplicas) {
			err = fmt.Errorf("written but replicated to %d of %d replicas within %s", n, r.waitReplicas, r.waitTimeout)
		}
	}
	if err != nil && cmd.Err() == nil {
		cmd.SetErr(err)
	}
	return cmd
}

// UpdateKnown implements callsession.Store: one compare-and-set on the version the caller
// holds, no read; a conflict (someone wrote meanwhile) falls back to Update.
func (r *Redis) UpdateKnown(ctx context.Context, known *callsession.Session, ttl time.Duration, fn func(*callsession.Session) error) (*callsession.Session, error) {
	if known.Version <= 0 {
		return r.Update(ctx, known.ReferenceID, ttl, fn)
	}
	version := known.Version
	if err := fn(known); err != nil {
		// fn judged a copy that may be stale: only the current session's verdict counts.
		return r.Update(ctx, known.ReferenceID, ttl, fn)
	}
	data, err := encode(known)
	if err != nil {
		return nil, err
	}
	res, err := r.durably(ctx, casScript, known.ReferenceID, strconv.FormatInt(version, 10), data, ttl.Milliseconds()).Int64()
	if err != nil {
		return nil, storageErr("update", err)
	}
	switch res {
	case 1:
		known.Version = version + 1
		return known, nil
	case -1:
		return nil, callsession.ErrNotFound
	}
	return r.Update(ctx, known.ReferenceID, ttl, fn)
}

// Delete implements callsession.Store.
func (r *Redis) Delete(ctx context.Context, ref string) error {
	if _, err := call(ctx, r, func(c redis.Cmdable) *redis.IntCmd { return c.Del(ctx, r.SessionKey(ref)) }); err != nil {
		return storageErr("delete", err)
	}
	if _, err := call(ctx, r, func(c redis.Cmdable) *redis.IntCmd { return c.ZRem(ctx, r.IndexKey(), ref) }); err != nil {
		return storageErr("delete", err)
	}
	return nil
}

// Ping implements callsession.Store.
func (r *Redis) Ping(ctx context.Context) error {
	if err := r.c.Ping(ctx).Err(); err != nil {
		return storageErr("ping", err)
	}
	return nil
}

// ErrBadCursor is List's answer to a cursor it did not make.
var ErrBadCursor = errors.New("cursor is not valid")

// cursor is the position after the last session of a page: its creation score and reference
// (references break ties between sessions created in the same millisecond).
type cursor struct {
	score int64
	ref   string
}

func (c cursor) String() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.score, 10) + ":" + c.ref))
}

func parseCursor(s string) (cursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return cursor{}, ErrBadCursor
	}
	score, ref, ok := strings.Cut(string(raw), ":")
	n, err := strconv.ParseInt(score, 10, 64)
	if !ok || err != nil || ref == "" {
		return cursor{}, ErrBadCursor
	}
	return cursor{score: n, ref: ref}, nil
}

// listScanLimit bounds the index entries one List reads, so a filter that matches nothing
// cannot make one request walk the whole index; the page then ends early with a cursor.
const listScanLimit = 2000

// List implements callsession.Store: newest first, by the index. Sessions created after a
// cursor was issued sort before it, so paging neither repeats nor skips.
func (r *Redis) List(ctx context.Context, q callsession.ListQuery) (callsession.ListPage, error) {
	after := cursor{score: -1}
	max := "+inf"
	if q.Cursor != "" {
		c, err := parseCursor(q.Cursor)
		if err != nil {
			return callsession.ListPage{}, err
		}
		after, max = c, strconv.FormatInt(c.score, 10)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 50
	}
	var page callsession.ListPage
	var last cursor
	scanned, offset := 0, int64(0)
	batch := int64(limit + 20)
	for scanned < listScanLimit {
		entries, err := r.c.ZRevRangeByScoreWithScores(ctx, r.IndexKey(), &redis.ZRangeBy{
			Max: max, Min: "-inf", Offset: offset, Count: batch}).Result()
		if err != nil {
			return callsession.ListPage{}, storageErr("list", err)
		}
		offset += int64(len(entries))
		if max == "+inf" && len(entries) > 0 {
			// Pin the top: sessions created while this page is read must not shift offsets.
			max = strconv.FormatInt(int64(entries[0].Score), 10)
		}
		var refs []string
		var scores []int64
		for _, z := range entries {
			ref, _ := z.Member.(string)
			score := int64(z.Score)
			if after.score >= 0 && score == after.score && ref >= after.ref {
				continue // at or before the cursor in this order
			}
			refs, scores = append(refs, ref), append(scores, score)
		}
		sessions, err := r.getMany(ctx, refs)
		if err != nil {
			return callsession.ListPage{}, err
		}
		for i, s := range sessions {
			scanned++
			last = cursor{score: scores[i], ref: refs[i]}
			if s == nil {
				continue
			}
			if q.Status != "" && s.StatusAt(q.Now) != q.Status {
				continue
			}
			page.Sessions = append(page.Sessions, s)
			if len(page.Sessions) == limit {
				page.NextCursor = last.String()
				return page, nil
			}
		}
		if int64(len(entries)) < batch {
			return page, nil // the index is exhausted
		}
	}
	page.NextCursor = last.String()
	return page, nil
}

// getMany reads sessions in one round trip; a missing (expired) one is nil and leaves the
// index.
func (r *Redis) getMany(ctx context.Context, refs []string) ([]*callsession.Session, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	pipe := r.c.Pipeline()
	cmds := make([]*redis.StringCmd, len(refs))
	for i, ref := range refs {
		cmds[i] = pipe.HGet(ctx, r.SessionKey(ref), "d")
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, storageErr("list", err)
	}
	out := make([]*callsession.Session, len(refs))
	var gone []any
	for i, cmd := range cmds {
		data, err := cmd.Result()
		if errors.Is(err, redis.Nil) {
			gone = append(gone, refs[i])
			continue
		}
		if err != nil {
			return nil, storageErr("list", err)
		}
		if out[i], err = decode(data); err != nil {
			return nil, err
		}
	}
	if len(gone) > 0 {
		_ = r.c.ZRem(ctx, r.IndexKey(), gone...).Err() // lazily; the next List retries
	}
	return out, nil
}

// limitScript keeps a sliding-window log of one limit: a sorted set of the events of the last
// window, scored by the server's clock in microseconds (TIME, so replicas with skewed clocks
// agree). It refuses when limit events remain in the window, answering the microseconds until
// the oldest leaves it; a refusal is not recorded. Members are random IDs from the caller, so
// two events in the same microsecond both count.
var limitScript = redis.NewScript(`
redis.replicate_commands() -- TIME before a write (Redis < 5; a no-op since)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[2]) * 1000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, tonumber(oldest[2]) + window - now}
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, 0}
`)

// Allow implements callsession.Limiter as an exact sliding window: at most limit events in
// any window, counted in one sorted set per key on Redis, shared by every replica. A limit of
// 0 or less is no limit; the window is counted in whole milliseconds.
func (r *Redis) Allow(ctx context.Context, key string, limit int, window time.Duration) (bool, time.Duration, error) {
	if limit <= 0 {
		return true, 0, nil
	}
	windowMS := max((window+time.Millisecond-1)/time.Millisecond, 1)
	res, err := r.runScript(ctx, limitScript, []string{r.prefix + "limit:" + key}, limit, int64(windowMS), crand.Text()).Int64Slice()
	if err != nil {
		return false, 0, storageErr("limit", err)
	}
	if len(res) != 2 {
		return false, 0, fmt.Errorf("%w: limit script answered %v", callsession.ErrStorage, res)
	}
	if res[0] == 1 {
		return true, 0, nil
	}
	// Whole milliseconds, rounded up, so a caller that waits that long is let through.
	retryMS := max((res[1]+999)/1000, 1)
	return false, time.Duration(retryMS) * time.Millisecond, nil
}

// seenKey is where the Deduper records key.
func (r *Redis) seenKey(key string) string { return r.prefix + "seen:" + key }

// Seen implements callsession.Deduper.
func (r *Redis) Seen(ctx context.Context, key string) (bool, error) {
	cmd, err := call(ctx, r, func(c redis.Cmdable) *redis.IntCmd { return c.Exists(ctx, r.seenKey(key)) })
	if err != nil {
		return false, storageErr("dedup", err)
	}
	return cmd.Val() == 1, nil
}

// Forget implements callsession.Deduper.
func (r *Redis) Forget(ctx context.Context, key string) error {
	if _, err := call(ctx, r, func(c redis.Cmdable) *redis.IntCmd { return c.Del(ctx, r.seenKey(key)) }); err != nil {
		return storageErr("dedup", err)
	}
	return nil
}

// FirstSeen implements callsession.Deduper. The key is set to a token of this call's own:
// go-redis sends a command again when its connection broke before the reply came, and a
// SET NX whose first run set the key answers "already there" to its second, which would
// take a first delivery for a repeat. When the SET finds the key, its value says whose it
// is: this call's token means the first run was this call's. A repeat, the common case of
// a miss, costs one read more.
func (r *Redis) FirstSeen(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	k, token := r.seenKey(key), crand.Text()
	set, err := call(ctx, r, func(c redis.Cmdable) *redis.BoolCmd { return c.SetNX(ctx, k, token, ttl) })
	if err != nil {
		return false, storageErr("dedup", err)
	}
	if set.Val() {
		return true, nil
	}
	held, err := call(ctx, r, func(c redis.Cmdable) *redis.StringCmd { return c.Get(ctx, k) })
	switch {
	case errors.Is(err, redis.Nil):
		return false, nil // set by another, and expired since
	case err != nil:
		return false, storageErr("dedup", err)
	}
	return held.Val() == token, nil
}
