package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// server is a child process serving HTTP on loopback: the bridge or the baseline.
type server struct {
	name    string
	url     string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	exitErr error
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// startServer runs exe with env (and nothing else of this process' environment but the Go
// runtime's knobs), logs to a file in dir, and waits until GET /healthz answers 200.
func startServer(name, exe string, env map[string]string, dir string) (*server, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	s := &server{name: name, url: "http://" + addr, done: make(chan struct{}),
		logPath: filepath.Join(dir, name+".log")}
	logf, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	s.cmd = exec.Command(exe)
	s.cmd.Env = []string{"IVR_BRIDGE_ADDR=" + addr}
	for k, v := range env {
		s.cmd.Env = append(s.cmd.Env, k+"="+v)
	}
	for _, k := range []string{"GOMAXPROCS", "GOGC", "GOMEMLIMIT", "GODEBUG"} {
		if v, ok := os.LookupEnv(k); ok {
			s.cmd.Env = append(s.cmd.Env, k+"="+v)
		}
	}
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() {
		s.exitErr = s.cmd.Wait()
		logf.Close()
		close(s.done)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.url + "/healthz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		select {
		case <-s.done:
			return nil, fmt.Errorf("%s exited at start (%v):\n%s", name, s.exitErr, s.logTail(20))
		default:
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("%s did not answer /healthz:\n%s", name, s.logTail(20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// stop sends SIGTERM and waits for the drain; an exit other than 0 is an error.
func (s *server) stop() error {
	select {
	case <-s.done:
	default:
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
		return fmt.Errorf("%s did not stop within 20s of SIGTERM", s.name)
	}
	if s.exitErr != nil {
		return fmt.Errorf("%s exited: %v\n%s", s.name, s.exitErr, s.logTail(20))
	}
	return nil
}

// logTail returns the last n lines of the server's log.
func (s *server) logTail(n int) string {
	b, _ := os.ReadFile(s.logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// logCount counts log lines containing substr.
func (s *server) logCount(substr string) int {
	f, err := os.Open(s.logPath)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), substr) {
			n++
		}
	}
	return n
}

// rssKB is the process' resident set size (VmRSS), in KiB.
func rssKB(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// fdCount is how many descriptors the process has open.
func fdCount(pid int) int {
	f, err := os.Open(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	names, _ := f.Readdirnames(-1)
	return len(names)
}

// sockets counts the process' open file descriptors that are sockets, and all of them.
func sockets(pid int) (socks, fds int) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0
	}
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && strings.HasPrefix(l, "socket:") {
			socks++
		}
	}
	return socks, len(ents)
}

// clockTicks is USER_HZ, 100 on every Linux this runs on.
const clockTicks = 100

// cpuTime is the user+system CPU time the process has used.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) start at state, field 3.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64) // utime, field 14
	st, _ := strconv.ParseInt(f[12], 10, 64) // stime, field 15
	return time.Duration(ut+st) * time.Second / clockTicks
}

// selfCPU is this process' user+system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// scrape reads the server's GET /metrics (Prometheus text), calling line for each line.
func scrape(ctx context.Context, c *http.Client, base string, line func(string)) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /metrics answered %d", resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line(sc.Text())
	}
	return sc.Err()
}

// goroutines reads go_goroutines from the bridge's GET /metrics.
func goroutines(ctx context.Context, c *http.Client, base string) (int64, error) {
	n := int64(-1)
	err := scrape(ctx, c, base, func(l string) {
		if rest, ok := strings.CutPrefix(l, "go_goroutines "); ok && n < 0 {
			if f, err := strconv.ParseFloat(strings.TrimSpace(rest), 64); err == nil {
				n = int64(f)
			}
		}
	})
	if err == nil && n < 0 {
		err = errors.New("no go_goroutines in /metrics")
	}
	return n, err
}

// The series of the bridge's /metrics that time a start inside the server; the baseline
// serves the same four (see baseline.metrics).
const (
	startSeries    = `{method="POST",route="/v1/sessions"}`
	providerSeries = `{operation="send",provider="callconnect"}`
	handlerSum     = "ivr_bridge_http_request_duration_seconds_sum" + startSeries
	handlerCount   = "ivr_bridge_http_request_duration_seconds_count" + startSeries
	providerSum    = "ivr_bridge_provider_call_duration_seconds_sum" + providerSeries
	providerCount  = "ivr_bridge_provider_call_duration_seconds_count" + providerSeries
)

// serverTimes is what a server timed itself, so far: starts answered and the seconds its
// handler spent on them; provider calls made and the seconds they took.
type serverTimes struct {
	starts, handler, calls, provider float64
}

func (t serverTimes) sub(b serverTimes) serverTimes {
	return serverTimes{t.starts - b.starts, t.handler - b.handler, t.calls - b.calls, t.provider - b.provider}
}

// handlerMean and providerMean are in milliseconds; zero without requests.
func (t serverTimes) handlerMean() float64  { return 1000 * t.handler / max(t.starts, 1) }
func (t serverTimes) providerMean() float64 { return 1000 * t.provider / max(t.calls, 1) }

// readServerTimes scrapes the start and provider-call timings from the server's /metrics.
func readServerTimes(ctx context.Context, c *http.Client, base string) (serverTimes, error) {
	var t serverTimes
	fields := map[string]*float64{handlerSum: &t.handler, handlerCount: &t.starts, providerSum: &t.provider, providerCount: &t.calls}
	found := 0
	err := scrape(ctx, c, base, func(l string) {
		name, v, ok := strings.Cut(l, "} ")
		if f := fields[name+"}"]; ok && f != nil {
			if x, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
				*f = x
				found++
			}
		}
	})
	if err == nil && found < len(fields) {
		err = fmt.Errorf("/metrics holds %d of the %d start timings", found, len(fields))
	}
	return t, err
}

// nofile is RLIMIT_NOFILE.
func nofile() (soft, hard uint64) {
	var rl syscall.Rlimit
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
	return rl.Cur, rl.Max
}
