package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// The container health check: 200 is healthy; anything else, or no answer, is not.
func TestProbe(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
	}))
	defer srv.Close()
	if err := probe(srv.URL+"/readyz", time.Second); err != nil {
		t.Fatalf("ready: %v", err)
	}
	status = http.StatusServiceUnavailable
	if err := probe(srv.URL+"/readyz", time.Second); err == nil {
		t.Fatal("503 passed the probe")
	}
	if err := probe(srv.URL+"/nope", time.Second); err == nil {
		t.Fatal("404 passed the probe")
	}
	srv.Close()
	if err := probe(srv.URL+"/readyz", time.Second); err == nil {
		t.Fatal("a closed server passed the probe")
	}
}

// The Redis URL is logged without its password, or anything after a # (config refuses a
// #; this is the log's own guard).
func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"redis://:hunter2@127.0.0.1:6379/0":        "redis://:xxxxx@127.0.0.1:6379/0",
		"rediss://user:hunter2@redis.example/1":    "rediss://user:xxxxx@redis.example/1",
		"redis://:s3cr@et#tail9@127.0.0.1:6379/0":  "(not shown: a password's /, ? or # may have cut it)",
		"redis://127.0.0.1:6379/0":                 "redis://127.0.0.1:6379/0",
		"redis://%zz":                              "(unparseable)",
		"redis://:2024/hunter2@127.0.0.1:6379/0":   "(not shown: a password's /, ? or # may have cut it)",
		"redis://:2024?hunter2@127.0.0.1:6379/0":   "(not shown: a password's /, ? or # may have cut it)",
		"redis://:pw@127.0.0.1:6379/0?pool_size=9": "redis://:xxxxx@127.0.0.1:6379/0",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%s) = %s, want %s", in, got, want)
		}
	}
}
