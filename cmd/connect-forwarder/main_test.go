package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ivr-bridge/ivr-bridge/internal/webhooks/connect"
)

func TestPathIsTheBridgeEndpoint(t *testing.T) {
	if path != connect.Path {
		t.Fatalf("forwarder posts to %s, the bridge serves %s", path, connect.Path)
	}
}

func TestEndpointURL(t *testing.T) {
	for in, want := range map[string]string{
		"":                            "",
		"https://bridge.example.com":  "https://bridge.example.com/v1/webhooks/connect",
		"https://bridge.example.com/": "https://bridge.example.com/v1/webhooks/connect",
		" https://bridge.example.com/v1/webhooks/connect ": "https://bridge.example.com/v1/webhooks/connect",
		"https://example.com/ivr":                          "https://example.com/ivr/v1/webhooks/connect",
	} {
		if got := EndpointURL(in); got != want {
			t.Errorf("EndpointURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func sampleEvent(t *testing.T) json.RawMessage {
	t.Helper()
	raw, err := os.ReadFile("../../internal/webhooks/connect/testdata/start.json")
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestForward(t *testing.T) {
	event := sampleEvent(t)
	flat := map[string]string{"step": "enter_code", "status": "sent", "referenceId": "4a573372-1f28-4e26-b97b-0f3c1e6d9a21"}
	for _, tc := range []struct {
		name     string
		status   int
		body     string
		delay    time.Duration
		want     map[string]string // the whole answer; nil: bridge_unavailable
		inMsg    string            // for bridge_unavailable, part of the message
		wantsErr bool
	}{
		{name: "flat answer passed on", status: 200, body: `{"step":"enter_code","status":"sent","referenceId":"4a573372-1f28-4e26-b97b-0f3c1e6d9a21"}`, want: flat},
		{name: "refusal passed on", status: 200, body: `{"step":"refused","error":"not_mobile","message":"m"}`,
			want: map[string]string{"step": "refused", "error": "not_mobile", "message": "m"}},
		{name: "wrong key", status: 401, body: `{"error":{"code":"unauthorized","message":"missing or invalid X-Api-Key"}}`,
			inMsg: "401: unauthorized", wantsErr: true},
		{name: "server error page", status: 502, body: `<html>Bad Gateway</html>`, inMsg: "HTTP 502", wantsErr: true},
		{name: "nested answer", status: 200, body: `{"step":{"a":1}}`, inMsg: "not a flat map", wantsErr: true},
		{name: "null answer", status: 200, body: `null`, inMsg: "not a flat map", wantsErr: true},
		{name: "too slow", status: 200, body: `{}`, delay: 2 * time.Second, inMsg: "in time", wantsErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got, _ := io.ReadAll(r.Body)
				switch {
				case r.Method != http.MethodPost || r.URL.Path != path:
					t.Errorf("%s %s", r.Method, r.URL.Path)
				case !bytes.Equal(got, event):
					t.Errorf("the event was changed on the way:\n%s", got)
				case r.Header.Get("X-Api-Key") != "k" || r.Header.Get("Content-Type") != "application/json":
					t.Errorf("headers %v", r.Header)
				}
				select {
				case <-time.After(tc.delay):
				case <-r.Context().Done():
					return
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			got, err := Forward(ctx, srv.Client(), EndpointURL(srv.URL), "k", event)
			if time.Since(start) > time.Second {
				t.Fatalf("took %s past its deadline", time.Since(start))
			}
			if (err != nil) != tc.wantsErr {
				t.Fatalf("err %v", err)
			}
			if tc.want != nil {
				if !maps.Equal(got, tc.want) {
					t.Fatalf("answer %v, want %v", got, tc.want)
				}
				return
			}
			if got["error"] != ErrorUnavailable || got["step"] != "error" || !strings.Contains(got["message"], tc.inMsg) {
				t.Fatalf("answer %v, want bridge_unavailable with %q", got, tc.inMsg)
			}
		})
	}
}

// The Lambda function never fails: an unreachable or unconfigured bridge is an answer.
func TestHandlerNeverFails(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for name, base := range map[string]string{"unreachable": url, "unconfigured": ""} {
		out, err := Handler(&http.Client{}, base, "k", log)(context.Background(), sampleEvent(t))
		if err != nil || out["error"] != ErrorUnavailable || out["step"] != "error" || out["message"] == "" {
			t.Errorf("%s: %v %v", name, out, err)
		}
	}
}

// The Lambda's own deadline, when nearer than the forward timeout, wins with room to answer.
func TestDeadline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	d, c := deadline(ctx)
	defer c()
	end, _ := d.Deadline()
	if left := time.Until(end); left > 1800*time.Millisecond || left < time.Second {
		t.Fatalf("%s left", left)
	}
	d2, c2 := deadline(context.Background())
	defer c2()
	end2, _ := d2.Deadline()
	if left := time.Until(end2); left > timeout || left < timeout-time.Second || timeout >= 8*time.Second {
		t.Fatalf("%s left, timeout %s", left, timeout)
	}
}
