package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"
)

// fakeCallConnect is a lean Call Connect for load: it checks what the real one checks
// (path, method, Basic auth with the secret as username and an empty password, a JSON body
// with only the documented fields, an E.164 number) and answers after a set latency. It
// keeps counters only, no record of requests, so it costs little beside the system measured.
type fakeCallConnect struct {
	srv     *httptest.Server
	secret  string
	latency atomic.Int64 // nanoseconds
	jitter  atomic.Int64 // nanoseconds: each answer waits latency ± up to this, uniformly

	inFlight, maxInFlight atomic.Int64
	sends, refused        atomic.Int64
	conns                 atomic.Int64 // connections accepted (TLS: each a handshake)
	caFile                string       // PEM of the server certificate when it serves HTTPS
}

type fakeStartBody struct {
	ReferenceID string `json:"referenceId"`
	PhoneNumber string `json:"phoneNumber"`
	UserID      string `json:"userId"`
	Username    string `json:"username"`
	Email       string `json:"email"`
	Channel     string `json:"channel"`
	Locale      string `json:"locale"`
	Country     string `json:"country"`
	ActionCode  string `json:"actionCode"`
}

// startFake starts the fake on loopback. With useTLS it serves HTTPS with HTTP/2 (many calls
// over few connections, as a real HTTPS provider would) and writes its certificate to a
// file in dir for SSL_CERT_FILE.
func startFake(secret string, latency time.Duration, useTLS bool, dir string) (*fakeCallConnect, error) {
	f := &fakeCallConnect{secret: secret}
	f.latency.Store(int64(latency))
	f.srv = httptest.NewUnstartedServer(f)
	f.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			f.conns.Add(1)
		}
	}
	if !useTLS {
		f.srv.Start()
		return f, nil
	}
	// An ECDSA P-256 certificate, as most HTTPS sites serve now, not httptest's RSA one: a
	// burst that opens thousands of connections has the fake sign a handshake for each, and
	// an RSA-2048 signature costs about forty times a P-256 one. That is CPU of the machine
	// the bridge is measured on, spent by what stands for a provider's own servers.
	cert, pemCert, err := ecdsaCert()
	if err != nil {
		f.srv.Listener.Close() // opened by NewUnstartedServer
		return nil, err
	}
	f.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	f.srv.EnableHTTP2 = true
	f.srv.Config.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: 1000}
	f.srv.StartTLS()
	f.caFile = filepath.Join(dir, "fake-ca.pem")
	if err := os.WriteFile(f.caFile, pemCert, 0o600); err != nil {
		f.srv.Close()
		return nil, err
	}
	return f, nil
}

// ecdsaCert is a self-signed P-256 certificate for 127.0.0.1, valid for a day, and its PEM.
func ecdsaCert() (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "loadbench fake provider"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(crand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

func (f *fakeCallConnect) URL() string                { return f.srv.URL }
func (f *fakeCallConnect) Close()                     { f.srv.Close() }
func (f *fakeCallConnect) SetLatency(d time.Duration) { f.latency.Store(int64(d)) }
func (f *fakeCallConnect) Latency() time.Duration     { return time.Duration(f.latency.Load()) }
func (f *fakeCallConnect) SetJitter(d time.Duration)  { f.jitter.Store(int64(d)) }

// wait is how long one answer takes: the latency, spread by the jitter. Without jitter,
// requests released together come back together, and a closed loop keeps them in waves.
func (f *fakeCallConnect) wait() time.Duration {
	d := f.Latency()
	if j := f.jitter.Load(); j > 0 {
		d += time.Duration(rand.Int64N(2*j+1) - j)
	}
	return max(d, 0)
}
func (f *fakeCallConnect) resetPeak()                     { f.maxInFlight.Store(f.inFlight.Load()) }
func (f *fakeCallConnect) counts() (sends, refused int64) { return f.sends.Load(), f.refused.Load() }

func (f *fakeCallConnect) problem(w http.ResponseWriter, status int, code, desc string) {
	f.refused.Add(1)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]string{"error": code, "errorCode": code, "errorDescription": desc})
	_, _ = w.Write(b)
}

func (f *fakeCallConnect) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/call/start" {
		f.problem(w, http.StatusNotFound, "not_found", "no such endpoint")
		return
	}
	if r.Method != http.MethodPost {
		f.problem(w, http.StatusMethodNotAllowed, "invalid_request", "POST only")
		return
	}
	if user, pass, ok := r.BasicAuth(); !ok || subtle.ConstantTimeCompare([]byte(user), []byte(f.secret)) != 1 || pass != "" {
		f.problem(w, http.StatusUnauthorized, "unauthorized", "bad credentials")
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		f.problem(w, http.StatusUnsupportedMediaType, "invalid_request", "send JSON")
		return
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		return
	}
	var b fakeStartBody
	if err := strictJSON(raw, &b); err != nil {
		f.problem(w, http.StatusBadRequest, "invalid_request", "Invalid request body: "+err.Error())
		return
	}
	if b.ReferenceID == "" || !e164(b.PhoneNumber) || (b.Channel != "" && b.Channel != "SMS" && b.Channel != "WHATSAPP") {
		f.problem(w, http.StatusBadRequest, "invalid_request", "Invalid phone number, referenceId or channel")
		return
	}
	n := f.inFlight.Add(1)
	for {
		peak := f.maxInFlight.Load()
		if n <= peak || f.maxInFlight.CompareAndSwap(peak, n) {
			break
		}
	}
	t := time.NewTimer(f.wait())
	select {
	case <-t.C:
	case <-r.Context().Done():
		t.Stop()
		f.inFlight.Add(-1)
		return
	}
	f.inFlight.Add(-1)
	id := f.sends.Add(1)
	ch := b.Channel
	if ch == "" {
		ch = "SMS"
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"messageId":"msg_` + strconv.FormatInt(id, 10) + `","channel":"` + ch + `"}`))
}

func strictJSON(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("unexpected data after the JSON object")
	}
	return nil
}

// e164 reports whether s is +, a digit 1-9, then 6 to 14 digits.
func e164(s string) bool {
	if len(s) < 8 || len(s) > 16 || s[0] != '+' || s[1] < '1' || s[1] > '9' {
		return false
	}
	for i := 2; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
