// Package store keeps call sessions in Redis: it implements callsession's Store, Limiter and
// Deduper with go-redis's UniversalClient, so one server and a Redis Cluster are served by
// the same code (every multi-key operation stays within one hash slot). With no Redis
// configured, Open starts an embedded miniredis.
package store

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/ivr-bridge/ivr-bridge/internal/callsession"
)

// Options say which Redis to use.
type Options struct {
	URL          string   // redis:// or rediss://; empty with no other choice: embedded miniredis
	ClusterAddrs []string // seeds of a Redis Cluster, instead of URL
	// SentinelAddrs and SentinelMaster: the master Sentinel elects, instead of URL.
	SentinelAddrs  []string
	SentinelMaster string
	Password       string // for cluster nodes and the Sentinel-elected master
	// TLS: to the cluster's nodes, or to the sentinels and their master (a URL says it with
	// rediss://). CAFile: PEM certificates of the authorities to verify the servers with,
	// instead of the system's, for any TLS to Redis.
	TLS    bool
	CAFile string
}

// Backend is an open Redis.
type Backend struct {
	Client   redis.UniversalClient
	Embedded bool // the in-process miniredis: data is lost at exit
	close    func() error
}

// Close closes the client (and stops the embedded server).
func (b *Backend) Close() error { return b.close() }

// Short network timeouts: a call is on the line, and a Redis that does not answer must turn
// into a quick 503 storage_unavailable, not a request hanging past the IVR's deadline.
const (
	dialTimeout = 2 * time.Second
	ioTimeout   = time.Second
)

// Open connects to the Redis of opts. It fails only on a configuration error; a Redis that
// is down is reported by Ping (and /readyz) and reconnected to when it is back.
func Open(ctx context.Context, opts Options) (*Backend, error) {
	// go-redis prints connection trouble with the standard logger, in plain text and with
	// addresses; the same failures reach us as errors, which are logged as JSON where they
	// matter (and a log line that is not JSON breaks log pipelines).
	redis.SetLogger(quietLogger{})
	roots, err := rootCAs(opts.CAFile)
	if err != nil {
		return nil, err
	}
	var tlsConfig *tls.Config
	if opts.TLS {
		// No ServerName: go-redis dials each node (and sentinel) with tls.DialWithDialer,
		// which checks the certificate against the host of the address dialled.
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}
	}
	switch {
	case len(opts.SentinelAddrs) > 0:
		c := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: opts.SentinelMaster,
			SentinelAddrs: opts.SentinelAddrs, Password: opts.Password, TLSConfig: tlsConfig,
			DialTimeout: dialTimeout, ReadTimeout: ioTimeout, WriteTimeout: ioTimeout, MaxRetries: 1,
			DialerRetries: 1, DialerRetryTimeout: 50 * time.Millisecond, ContextTimeoutEnabled: true})
		return &Backend{Client: c, close: c.Close}, nil
	case len(opts.ClusterAddrs) > 0:
		// The slot map is reloaded every 2 s (go-redis' default is 60 s): after a failover the
		// client otherwise keeps asking the dead master, which never answers MOVED.
		c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: opts.ClusterAddrs, Password: opts.Password, TLSConfig: tlsConfig,
			DialTimeout: dialTimeout, ReadTimeout: ioTimeout, WriteTimeout: ioTimeout, MaxRetries: 1,
			ClusterStateReloadInterval: 2 * time.Second, ContextTimeoutEnabled: true,
			DialerRetries: 1, DialerRetryTimeout: 50 * time.Millisecond})
		return &Backend{Client: c, close: c.Close}, nil
	case opts.URL != "":
		o, err := redis.ParseURL(opts.URL)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL: %w", URLError(opts.URL, err))
		}
		if o.TLSConfig != nil && roots != nil {
			o.TLSConfig.RootCAs = roots
		}
		if o.DialTimeout == 0 {
			o.DialTimeout = dialTimeout
		}
		if o.ReadTimeout == 0 {
			o.ReadTimeout = ioTimeout
		}
		if o.WriteTimeout == 0 {
			o.WriteTimeout = ioTimeout
		}
		if o.MaxRetries == 0 {
			o.MaxRetries = 1
		}
		if o.DialerRetries == 0 {
			o.DialerRetries, o.DialerRetryTimeout = 1, 50*time.Millisecond
		}
		o.ContextTimeoutEnabled = true
		c := redis.NewClient(o)
		return &Backend{Client: c, close: c.Close}, nil
	}
	return openEmbedded()
}

// rootCAs are the authorities in the PEM file at path; nil (the system's) for no path.
func rootCAs(path string) (*x509.CertPool, error) {
	if path == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("REDIS_TLS_CA_FILE: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("REDIS_TLS_CA_FILE: no PEM certificate in %s", path)
	}
	return pool, nil
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// openEmbedded starts miniredis. miniredis never expires keys on its own (TTLs move only when
// told), so a goroutine moves them with the real clock: TTLs then behave as on Redis. Its
// clock is left unset, so TIME (which the limiter's windows are measured by) is the real time
// to the microsecond. (miniredis' ClockTTL would do the same without the goroutine, but it
// walks and sorts every key on every command.)
func openEmbedded() (*Backend, error) {
	mr := miniredis.NewMiniRedis()
	if err := mr.Start(); err != nil {
		return nil, fmt.Errorf("starting the embedded Redis: %w", err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		advanceClock(mr, stop, 100*time.Millisecond)
	}()
	c := redis.NewClient(&redis.Options{Addr: mr.Addr(), DialTimeout: dialTimeout, ReadTimeout: ioTimeout, WriteTimeout: ioTimeout,
		ContextTimeoutEnabled: true})
	var once sync.Once
	closeAll := func() error {
		var err error
		once.Do(func() {
			close(stop)
			wg.Wait()
			err = c.Close()
			mr.Close()
		})
		return err
	}
	return &Backend{Client: c, Embedded: true, close: closeAll}, nil
}

// advanceClock fast-forwards mr by the real time elapsed, every tick, until stop closes.
func advanceClock(mr *miniredis.Miniredis, stop <-chan struct{}, tick time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			mr.FastForward(now.Sub(last))
			last = now
		}
	}
}

// storageErr wraps a backend failure so the domain answers storage_unavailable.
func storageErr(op string, err error) error {
	return fmt.Errorf("redis %s: %w: %w", op, callsession.ErrStorage, err)
}

// URLError is go-redis' error for a URL it cannot read, kept only when the URL has no user
// information: the error quotes the URL's path or database, where a password's unescaped
// "/" or "?" moves part of it.
func URLError(raw string, err error) error {
	if u, perr := url.Parse(raw); perr == nil && u.User == nil && !strings.Contains(raw, "@") {
		return err
	}
	return errors.New("not a Redis URL (redis://[user:password@]host:port/db); the reason is not shown, as it may quote the password")
}
