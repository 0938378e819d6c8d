package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ivr-bridge/ivr-bridge/internal/redistest"
	"github.com/ivr-bridge/ivr-bridge/internal/store"
	"github.com/ivr-bridge/ivr-bridge/internal/store/storetest"
)

// TestTLSCluster: a cluster reachable only over TLS, opened as the bridge opens it
// (REDIS_TLS, REDIS_TLS_CA_FILE), passes the whole store suite; the bridge's binary plays a
// whole call on it; and without the authority's certificate the servers are refused.
func TestTLSCluster(t *testing.T) {
	needRedisServer(t)
	files, err := redistest.NewTLSFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	addrs, _ := startCluster(t, 0, &files)
	ctx := context.Background()

	be, err := store.Open(ctx, store.Options{ClusterAddrs: addrs, TLS: true, CAFile: files.CA})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	storetest.Run(t, storetest.Backend{Name: "tls-cluster", Client: be.Client, Elapse: func(_ *testing.T, d time.Duration) { time.Sleep(d) }})

	b := start(t, map[string]string{"REDIS_URL": "", "REDIS_CLUSTER_ADDRS": strings.Join(addrs, ","),
		"REDIS_TLS": "true", "REDIS_TLS_CA_FILE": files.CA})
	wholeCall(t, b)

	// The system's authorities do not know the test one: the handshake must fail.
	untrusted, err := store.Open(ctx, store.Options{ClusterAddrs: addrs, TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	defer untrusted.Close()
	if err := untrusted.Client.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a server certified by an unknown authority was accepted: %v", err)
	}
	// And a client without TLS gets no answer from a TLS-only node.
	plain := redis.NewClient(&redis.Options{Addr: addrs[0], MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: time.Second})
	defer plain.Close()
	if err := plain.Ping(ctx).Err(); err == nil {
		t.Fatal("a TLS-only node answered a plain connection")
	}
}

// TestRedissURLWithCAFile: one TLS server reached by a rediss:// REDIS_URL, its certificate
// checked against REDIS_TLS_CA_FILE.
func TestRedissURLWithCAFile(t *testing.T) {
	needRedisServer(t)
	dir := t.TempDir()
	files, err := redistest.NewTLSFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	srv := startProc(t, &redistest.Server{Port: freePortNum(t), TLS: &files, Args: []string{"--save", "", "--appendonly", "no"}})
	ctx := context.Background()
	url := "rediss://" + srv.Addr() + "/0"
	be, err := store.Open(ctx, store.Options{URL: url, CAFile: files.CA})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	if err := be.Client.Ping(ctx).Err(); err != nil {
		t.Fatalf("rediss:// with the CA file: %v", err)
	}
	bad, err := store.Open(ctx, store.Options{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if err := bad.Client.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("rediss:// without the CA file: %v, want a certificate error", err)
	}
	if _, err := store.Open(ctx, store.Options{URL: url, CAFile: filepath.Join(dir, "missing.pem")}); err == nil ||
		!strings.Contains(err.Error(), "REDIS_TLS_CA_FILE") {
		t.Fatalf("a missing CA file: %v, want an error naming REDIS_TLS_CA_FILE", err)
	}
}

// TestTLSSentinel: master, replica and sentinels that speak only TLS, opened as the bridge
// opens them (REDIS_SENTINEL_*, REDIS_TLS, REDIS_TLS_CA_FILE), pass the whole store suite.
func TestTLSSentinel(t *testing.T) {
	files, err := redistest.NewTLSFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	_, sentinels := startSentinel(t, &files)
	be, err := store.Open(context.Background(), store.Options{SentinelAddrs: sentinels, SentinelMaster: "bridge", TLS: true, CAFile: files.CA})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	storetest.Run(t, storetest.Backend{Name: "tls-sentinel", Client: be.Client, Elapse: func(_ *testing.T, d time.Duration) { time.Sleep(d) }})
}
