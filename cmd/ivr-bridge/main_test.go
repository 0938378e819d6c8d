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
