package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ivr-bridge/ivr-bridge/internal/redistest"
	"github.com/ivr-bridge/ivr-bridge/internal/store/storetest"
)

// needRedisServer skips a test that starts its own redis-server processes where none is
// installed, except in CI (REDIS_URL set), where that is a failure: nothing real goes untested.
func needRedisServer(t *testing.T) {
	t.Helper()
	if err := redistest.Installed(); err != nil {
		if os.Getenv("REDIS_URL") != "" {
			t.Fatalf("REDIS_URL is set but %v: CI must install it", err)
		}
		t.Skipf("%v: this test runs where a real Redis is installed (CI)", err)
	}
}

// startProc starts a redis-server for the test, killed at its end.
func startProc(t *testing.T, s *redistest.Server) *redistest.Server {
	t.Helper()
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Kill)
	return s
}

// startCluster starts a Redis Cluster of 3 masters, each with replicas replicas, on loopback
// ports; with files, every node speaks only TLS (to clients and on the cluster bus).
func startCluster(t *testing.T, replicas int, files *redistest.TLSFiles) ([]string, []*redistest.Server) {
	t.Helper()
	needRedisServer(t)
	var tlsConfig *tls.Config
	cli := []string{}
	if files != nil {
		var err error
		if tlsConfig, err = files.ClientConfig(); err != nil {
			t.Fatal(err)
		}
		cli = []string{"--tls", "--cacert", files.CA}
	}
	dir := t.TempDir()
	var nodes []*redistest.Server
	var addrs []string
	for i := 0; i < 3*(1+replicas); i++ {
		port := freePortNum(t)
		nd := filepath.Join(dir, strconv.Itoa(port))
		if err := os.MkdirAll(nd, 0o755); err != nil {
			t.Fatal(err)
		}
		p := startProc(t, &redistest.Server{Port: port, TLS: files, Args: []string{"--dir", nd,
			"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "1500",
			// A replica may always take over: this cluster is seconds old, and the default
			// validity factor can judge its replication too stale to fail over.
			"--cluster-replica-validity-factor", "0",
			"--appendonly", "yes", "--save", ""}})
		nodes = append(nodes, p)
		addrs = append(addrs, p.Addr())
	}
	args := append(append(cli, "--cluster", "create"), addrs...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	waitClusterOK(t, addrs, tlsConfig)
	if replicas > 0 {
		waitReplicationUp(t, addrs, tlsConfig)
	}
	return addrs, nodes
}

// waitReplicationUp waits until every replica has finished its first sync with its master
// (asking over TLS with tlsConfig set).
func waitReplicationUp(t *testing.T, addrs []string, tlsConfig *tls.Config) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, a := range addrs {
		for {
			c := redis.NewClient(&redis.Options{Addr: a, TLSConfig: tlsConfig})
			info, err := c.Info(context.Background(), "replication").Result()
			c.Close()
			up := err == nil && (strings.Contains(info, "role:master") && strings.Contains(info, "connected_slaves:1") ||
				strings.Contains(info, "master_link_status:up"))
			if up {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("replication not up on %s: %v\n%s", a, err, info)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// waitClusterOK waits until every node of addrs says the cluster is ok (over TLS with
// tlsConfig set).
func waitClusterOK(t *testing.T, addrs []string, tlsConfig *tls.Config) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, a := range addrs {
		for {
			c := redis.NewClient(&redis.Options{Addr: a, TLSConfig: tlsConfig})
			info, err := c.ClusterInfo(context.Background()).Result()
			c.Close()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cluster not ok on %s: %v %s", a, err, info)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func freePortNum(t *testing.T) int {
	t.Helper()
	port, err := redistest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

func TestStoreSuiteOnRedisCluster(t *testing.T) {
	addrs, _ := startCluster(t, 1, nil)
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	defer c.Close()
	storetest.Run(t, storetest.Backend{Name: "cluster", Client: c, Elapse: func(_ *testing.T, d time.Duration) { time.Sleep(d) }})
}

// TestClusterFailoverLosesNothingAcknowledged runs the bridge on a cluster, with writes waiting
// for a replica, and kills a master while calls start: each start is acknowledged or refused
// with 503, and every acknowledged session reads back once the replica has taken over.
func TestClusterFailoverLosesNothingAcknowledged(t *testing.T) {
	addrs, nodes := startCluster(t, 1, nil)
	b := start(t, map[string]string{"REDIS_URL": "", "REDIS_CLUSTER_ADDRS": strings.Join(addrs, ","),
		"REDIS_WAIT_REPLICAS": "1", "LIMIT_SENDS_PER_NUMBER": "0", "LIMIT_STARTS_PER_KEY": "0"})
	wholeCall(t, b)

	// The victim: the master of one slot the sessions land in.
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	defer c.Close()
	master, err := c.MasterForKey(context.Background(), "ivr:{fo}")
	if err != nil {
		t.Fatal(err)
	}
	var victim *redistest.Server
	for _, n := range nodes {
		if n.Addr() == master.Options().Addr {
			victim = n
		}
	}
	if victim == nil {
		t.Fatalf("master %s is not one of the nodes", master.Options().Addr)
	}

	load := startsDuringFailover(t, b, "fo")
	time.Sleep(500 * time.Millisecond)
	victim.Kill()
	time.Sleep(4 * time.Second) // node timeout 1.5 s, then the replica's election
	acked := load.stop()
	waitClusterOK(t, liveAddrs(nodes), nil)
	readBackAsSent(t, b, acked)
}

// failoverLoad is starts made without pause while a master fails over.
type failoverLoad struct {
	t     *testing.T
	done  chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	acked map[string]bool
}

// startsDuringFailover starts sessions from 8 workers until stop: each must be acknowledged
// (201) or refused 503 storage_unavailable, never anything else.
func startsDuringFailover(t *testing.T, b *bridge, prefix string) *failoverLoad {
	l := &failoverLoad{t: t, done: make(chan struct{}), acked: map[string]bool{}}
	for w := 0; w < 8; w++ {
		l.wg.Add(1)
		go func(w int) {
			defer l.wg.Done()
			for i := 0; ; i++ {
				select {
				case <-l.done:
					return
				default:
				}
				ref := fmt.Sprintf("%s-%d-%d-%s", prefix, w, i, randomDigits(6))
				status, err := postNoFatal(b, map[string]any{"referenceId": ref, "phoneNumber": "+447400123456"})
				l.mu.Lock()
				switch {
				case err == nil && (status == http.StatusCreated || status == http.StatusOK):
					l.acked[ref] = true
				case err == nil && status == http.StatusServiceUnavailable:
				default:
					t.Errorf("start during failover: %d %v", status, err)
				}
				l.mu.Unlock()
			}
		}(w)
	}
	return l
}

// stop ends the load and returns the acknowledged references.
func (l *failoverLoad) stop() map[string]bool {
	close(l.done)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.acked) == 0 {
		l.t.Fatal("no start was acknowledged")
	}
	return l.acked
}

// readBackAsSent reads every acknowledged session back; a 503 while the bridge's client learns
// the new topology is retried. A 404 is a loss, and so is a session that reads back other
// than the sent one the start answered (its compare-and-set after the send lost).
func readBackAsSent(t *testing.T, b *bridge, acked map[string]bool) {
	t.Helper()
	lost := 0
	deadline := time.Now().Add(30 * time.Second)
	for ref := range acked {
		for {
			r := b.do("GET", "/v1/sessions/"+ref, nil)
			var got struct{ Status, MessageID string }
			if r.status == http.StatusOK && json.Unmarshal(r.body, &got) == nil && got.Status == "sent" && got.MessageID != "" {
				break
			}
			if r.status == http.StatusNotFound || r.status == http.StatusOK || time.Now().After(deadline) {
				t.Errorf("acknowledged session %s: %d %s", ref, r.status, r.body)
				if lost == 0 {
					logs := b.stderr.String()
					t.Logf("bridge log tail: %s", logs[max(0, len(logs)-1500):])
				}
				lost++
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged sessions lost", lost, len(acked))
	}
}

func liveAddrs(nodes []*redistest.Server) []string {
	var out []string
	for _, n := range nodes {
		if n.Running() {
			out = append(out, n.Addr())
		}
	}
	return out
}

// startSentinel starts a master, a replica and three sentinels watching them as "bridge";
// with files, every one of them speaks only TLS.
func startSentinel(t *testing.T, files *redistest.TLSFiles) (master *redistest.Server, sentinels []string) {
	t.Helper()
	needRedisServer(t)
	dir := t.TempDir()
	var tlsConfig *tls.Config
	if files != nil {
		var err error
		if tlsConfig, err = files.ClientConfig(); err != nil {
			t.Fatal(err)
		}
	}
	master = startProc(t, &redistest.Server{Port: freePortNum(t), TLS: files, Args: []string{"--dir", dir, "--save", "", "--appendonly", "no"}})
	rdir := filepath.Join(dir, "replica")
	_ = os.MkdirAll(rdir, 0o755)
	replica := startProc(t, &redistest.Server{Port: freePortNum(t), TLS: files, Args: []string{"--dir", rdir, "--save", "",
		"--replicaof", "127.0.0.1", strconv.Itoa(master.Port)}})
	waitReplicationUp(t, []string{master.Addr(), replica.Addr()}, tlsConfig)
	for i := 0; i < 3; i++ {
		port := freePortNum(t)
		conf := filepath.Join(dir, fmt.Sprintf("sentinel-%d.conf", i))
		body := fmt.Sprintf("sentinel monitor bridge 127.0.0.1 %d 2\n"+
			"sentinel down-after-milliseconds bridge 1000\nsentinel failover-timeout bridge 5000\n", master.Port)
		if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		s := startProc(t, &redistest.Server{Port: port, ConfigFile: conf, TLS: files, Args: []string{"--sentinel"}})
		sentinels = append(sentinels, s.Addr())
	}
	return master, sentinels
}

func TestStoreSuiteOnSentinel(t *testing.T) {
	_, sentinels := startSentinel(t, nil)
	c := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: "bridge", SentinelAddrs: sentinels})
	defer c.Close()
	storetest.Run(t, storetest.Backend{Name: "sentinel", Client: c, Elapse: func(_ *testing.T, d time.Duration) { time.Sleep(d) }})
}

// TestSentinelFailover runs the bridge on Sentinel, kills the master, and checks that the
// sessions acknowledged before (written with WAIT for the replica) are there once Sentinel
// has promoted it, and that new calls work again.
func TestSentinelFailover(t *testing.T) {
	master, sentinels := startSentinel(t, nil)
	b := start(t, map[string]string{"REDIS_URL": "", "REDIS_SENTINEL_ADDRS": strings.Join(sentinels, ","),
		"REDIS_SENTINEL_MASTER": "bridge", "REDIS_WAIT_REPLICAS": "1", "LIMIT_SENDS_PER_NUMBER": "0", "LIMIT_STARTS_PER_KEY": "0"})
	wholeCall(t, b)
	// Starts run while the master dies: each is acknowledged or refused 503; once Sentinel
	// has promoted the replica, every acknowledged one reads back as answered.
	load := startsDuringFailover(t, b, "sf")
	time.Sleep(500 * time.Millisecond)
	master.Kill()
	time.Sleep(2 * time.Second)
	acked := load.stop()
	readBackAsSent(t, b, acked)
	deadline := time.Now().Add(30 * time.Second)
	// Writes wait for a replica: with none left they are refused (503), never acknowledged
	// unsafely; the old master, back, becomes the new master's replica and writes resume.
	if r := b.do("POST", "/v1/sessions", map[string]any{"referenceId": reference(), "phoneNumber": mobile(t)}); r.status != http.StatusServiceUnavailable {
		t.Fatalf("start without a replica: %d %s", r.status, r.body)
	}
	if err := master.Start(); err != nil {
		t.Fatal(err)
	}
	for {
		r := b.do("POST", "/v1/sessions", map[string]any{"referenceId": reference(), "phoneNumber": mobile(t)})
		if r.status == http.StatusCreated {
			break
		}
		if r.status != http.StatusServiceUnavailable || time.Now().After(deadline.Add(30*time.Second)) {
			t.Fatalf("start after the old master rejoined: %d %s", r.status, r.body)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// wholeCall plays a call end to end: start, a wrong code, the right one, listed as verified.
func wholeCall(t *testing.T, b *bridge) {
	t.Helper()
	ref := reference()
	sess := b.startSession(map[string]any{"referenceId": ref, "phoneNumber": mobile(t), "provider": "authsignal"})
	code := b.authsignal.CodeFor(sess["challengeId"].(string))
	events := openStream(t, b, ref, "") // live events work on this Redis too
	<-events
	if r := b.code(ref, "00000000"[:len(code)]); r.status != http.StatusOK {
		t.Fatalf("wrong code: %d %s", r.status, r.body)
	}
	if r := b.code(ref, code); r.status != http.StatusOK || r.json(t)["status"] != "verified" {
		t.Fatalf("right code: %d %s", r.status, r.body)
	}
	r := b.do("GET", "/v1/sessions?status=verified&limit=200", nil)
	if r.status != http.StatusOK || !strings.Contains(string(r.body), ref) {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	deadline := time.After(5 * time.Second)
	for {
		select {
		case ev, open := <-events:
			if !open {
				t.Fatal("the event stream ended before the verification")
			}
			if strings.Contains(ev, `"status":"verified"`) {
				return
			}
		case <-deadline:
			t.Fatal("no verified event on the stream")
		}
	}
}
