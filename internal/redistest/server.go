// Package redistest runs real redis-server processes on loopback ports for the tests and
// checks that need one to stop, restart or fail over (a Redis restart with AOF, a cluster, a
// Sentinel setup). It needs Debian's redis-server (and redis-cli for clusters) installed.
package redistest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Installed reports whether redis-server and redis-cli can be run.
func Installed() error {
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%s is not installed (Debian's redis-server package): %w", bin, err)
		}
	}
	return nil
}

// FreePort is a loopback port nobody listens on right now.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Server is one redis-server process (a plain server, a cluster node, a replica or, with
// "--sentinel" in Args, a sentinel) that can be killed and started again on the same port.
type Server struct {
	Port int
	Args []string // after the port and bind address; a config file path must come first
	// ConfigFile, when set, is passed before every other argument (sentinels need one).
	ConfigFile string
	// TLS, when set, makes the server speak TLS only, on Port.
	TLS *TLSFiles
	cmd *exec.Cmd
}

// Addr is host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

// URL is the redis:// URL of database 0.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Running reports whether the process was started and not killed.
func (s *Server) Running() bool { return s.cmd != nil }

// Start runs the server and waits until it answers PING.
func (s *Server) Start() error {
	var args []string
	if s.ConfigFile != "" {
		args = append(args, s.ConfigFile)
	}
	var clientTLS *tls.Config
	if s.TLS != nil {
		var err error
		if clientTLS, err = s.TLS.ClientConfig(); err != nil {
			return err
		}
		args = append(args, s.TLS.serverArgs(strconv.Itoa(s.Port))...)
	} else {
		args = append(args, "--port", strconv.Itoa(s.Port))
	}
	args = append(args, "--bind", "127.0.0.1")
	args = append(args, s.Args...)
	s.cmd = exec.Command("redis-server", args...)
	if err := s.cmd.Start(); err != nil {
		s.cmd = nil
		return err
	}
	return waitPing(s.Addr(), clientTLS, 10*time.Second)
}

// Kill stops the server abruptly (SIGKILL): only what it had on disk survives.
func (s *Server) Kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	}
	s.cmd = nil
}

// WaitPing waits until addr answers PING.
func WaitPing(addr string, within time.Duration) error { return waitPing(addr, nil, within) }

// waitPing is WaitPing over TLS when tlsConfig is set.
func waitPing(addr string, tlsConfig *tls.Config, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 200 * time.Millisecond, MaxRetries: -1, TLSConfig: tlsConfig})
		err := c.Ping(context.Background()).Err()
		c.Close()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.Join(fmt.Errorf("%s does not answer", addr), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
