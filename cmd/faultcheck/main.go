// Command faultcheck is the load-and-fault check an operator can run on one machine
// (loopback only, bounded in requests and time): it starts a real redis-server with AOF, the
// ivr-bridge binary on it and a fake Call Connect in-process, drives concurrent session
// starts, kills Redis mid-run and starts it again, then reads back every session the bridge
// acknowledged. It prints requests sent, answered, failed and sessions lost, which must be 0.
//
//	go run ./cmd/faultcheck -requests 2000 -concurrency 50
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ivr-bridge/ivr-bridge/internal/providers/callconnect/callconnectfake"
	"github.com/ivr-bridge/ivr-bridge/internal/redistest"
)

func main() {
	o := options{}
	flag.IntVar(&o.requests, "requests", 2000, "session starts to send")
	flag.IntVar(&o.concurrency, "concurrency", 50, "starts in flight at once")
	flag.DurationVar(&o.outage, "outage", time.Second, "how long Redis stays down")
	flag.IntVar(&o.rate, "rate", 400, "starts per second at most, so the load outlasts the outage")
	flag.DurationVar(&o.latency, "provider-latency", 20*time.Millisecond, "fake provider latency")
	flag.DurationVar(&o.maxTime, "max-time", 2*time.Minute, "bound on the whole run")
	flag.StringVar(&o.binary, "binary", "", "ivr-bridge binary (default: built from ./cmd/ivr-bridge)")
	flag.Parse()
	rep, err := run(context.Background(), o, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "faultcheck:", err)
		os.Exit(2)
	}
	if rep.Lost > 0 {
		os.Exit(1)
	}
}

type options struct {
	requests, concurrency int
	rate                  int
	outage, latency       time.Duration
	maxTime               time.Duration
	binary                string
}

// Report is what a run found.
type Report struct {
	Sent, Answered, Acknowledged, Refused503, Failed, Lost int
}

func run(ctx context.Context, o options, out io.Writer) (Report, error) {
	var rep Report
	ctx, cancel := context.WithTimeout(ctx, o.maxTime)
	defer cancel()
	dir, err := os.MkdirTemp("", "faultcheck")
	if err != nil {
		return rep, err
	}
	defer os.RemoveAll(dir)

	bin := o.binary
	if bin == "" {
		bin = filepath.Join(dir, "ivr-bridge")
		if b, err := exec.Command("go", "build", "-o", bin, "github.com/ivr-bridge/ivr-bridge/cmd/ivr-bridge").CombinedOutput(); err != nil {
			return rep, fmt.Errorf("building ivr-bridge: %v: %s", err, b)
		}
	}
	redisPort, err := redistest.FreePort()
	if err != nil {
		return rep, err
	}
	// AOF fsynced on every write: what the bridge acknowledged must survive a kill.
	redis := &redistest.Server{Port: redisPort, Args: []string{"--dir", dir, "--appendonly", "yes", "--appendfsync", "always", "--save", ""}}
	if err := redis.Start(); err != nil {
		return rep, fmt.Errorf("redis-server (install Debian's redis-server): %w", err)
	}
	defer redis.Kill()

	provider := callconnectfake.New("faultcheck-secret")
	defer provider.Close()
	provider.SetDelay(o.latency)

	bridgePort, err := redistest.FreePort()
	if err != nil {
		return rep, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(bridgePort)
	bridge := exec.CommandContext(ctx, bin)
	bridge.Env = []string{"PATH=" + os.Getenv("PATH"), "IVR_BRIDGE_ADDR=" + addr, "LOG_LEVEL=error",
		"REDIS_URL=" + redis.URL(), "IVR_BRIDGE_API_KEYS=faultcheck",
		"CALLCONNECT_SECRET=faultcheck-secret", "CALLCONNECT_BASE_URL=" + provider.URL(),
		"LIMIT_SENDS_PER_NUMBER=0", "LIMIT_STARTS_PER_KEY=0"}
	bridge.Stderr = io.Discard
	if err := bridge.Start(); err != nil {
		return rep, err
	}
	defer func() { _ = bridge.Process.Signal(syscall.SIGTERM); _ = bridge.Wait() }()
	base := "http://" + addr
	if err := waitFor(ctx, base+"/healthz"); err != nil {
		return rep, err
	}

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: o.concurrency}}
	var acknowledged sync.Map
	var sent, answered, acked, refused, failed atomic.Int64
	jobs := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < o.concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				ref := fmt.Sprintf("fc-%d-%d", time.Now().UnixNano(), i)
				sent.Add(1)
				status, sess, err := post(ctx, client, base, ref, i)
				switch {
				case err != nil:
					failed.Add(1)
				case status == http.StatusCreated || status == http.StatusOK:
					answered.Add(1)
					if sess.Status != "sent" || sess.MessageID == "" {
						failed.Add(1) // acknowledged, yet not the sent session a start answers
						break
					}
					acked.Add(1)
					acknowledged.Store(ref, sess)
				case status == http.StatusServiceUnavailable:
					answered.Add(1)
					refused.Add(1)
				default:
					answered.Add(1)
					failed.Add(1)
				}
			}
		}()
	}
	// Kill Redis a third of the way in, start it again after the outage.
	go func() {
		for sent.Load() < int64(o.requests/3) && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
		fmt.Fprintf(out, "faultcheck: killing redis-server after %d requests\n", sent.Load())
		redis.Kill()
		time.Sleep(o.outage)
		if err := redis.Start(); err != nil {
			fmt.Fprintln(out, "faultcheck: restarting redis-server:", err)
			return
		}
		fmt.Fprintf(out, "faultcheck: redis-server is back after %s\n", o.outage)
	}()
	pace := time.NewTicker(time.Second / time.Duration(max(o.rate, 1)))
	defer pace.Stop()
	for i := 0; i < o.requests && ctx.Err() == nil; i++ {
		<-pace.C
		jobs <- i
	}
	close(jobs)
	wg.Wait()

	// Every acknowledged session must read back as it was answered (sent, with the same
	// message), once Redis answers again: one that is missing or reads otherwise is lost.
	if err := waitFor(ctx, base+"/readyz"); err != nil {
		return rep, fmt.Errorf("the bridge did not become ready again: %w", err)
	}
	lost := 0
	acknowledged.Range(func(k, v any) bool {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/sessions/"+k.(string), nil)
		req.Header.Set("Authorization", "Bearer faultcheck")
		resp, err := client.Do(req)
		var got answer
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&got)
			resp.Body.Close()
		}
		if err != nil || resp.StatusCode != http.StatusOK || got != *v.(*answer) {
			lost++
		}
		return true
	})
	rep = Report{Sent: int(sent.Load()), Answered: int(answered.Load()), Acknowledged: int(acked.Load()),
		Refused503: int(refused.Load()), Failed: int(failed.Load()), Lost: lost}
	fmt.Fprintf(out, "requests sent %d, answered %d (acknowledged %d, 503 storage_unavailable %d), failed %d, sessions lost %d\n",
		rep.Sent, rep.Answered, rep.Acknowledged, rep.Refused503, rep.Failed, rep.Lost)
	return rep, nil
}

// answer is what faultcheck compares of a session.
type answer struct {
	Status    string `json:"status"`
	MessageID string `json:"messageId"`
}

func post(ctx context.Context, c *http.Client, base, ref string, i int) (int, *answer, error) {
	body, _ := json.Marshal(map[string]string{"referenceId": ref, "phoneNumber": fmt.Sprintf("+4474001%05d", i%100000)})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/sessions", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer faultcheck")
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var a answer
	if resp.StatusCode == http.StatusCreated || resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
			return resp.StatusCode, nil, fmt.Errorf("reading the answer: %w", err)
		}
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, &a, nil
}

func waitFor(ctx context.Context, url string) error {
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not answer 200: %w", url, errors.Join(err, ctx.Err()))
		case <-time.After(50 * time.Millisecond):
		}
	}
}
