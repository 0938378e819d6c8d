package app_test

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ivr-bridge/ivr-bridge/internal/app/apptest"
)

// BenchmarkStart is one whole start through the real wiring: POST /v1/sessions over HTTP,
// number parsing, the session created in Redis (miniredis, or the real one at REDIS_URL),
// the fake Call Connect called, the message ID recorded, live changes published, logs
// written, as `go run ./cmd/loadbench` configures it (limits off). The fake answers at once, so ns/op is CPU and round trips, not provider latency;
// it includes the client's and the fake's own work (the same for any bridge). -cpuprofile
// shows where a start's time goes without a load run.
func BenchmarkStart(b *testing.B) {
	// As in the load run (cmd/loadbench): limits off, info logs.
	s := apptest.New(b, map[string]string{"LOG_LEVEL": "info", "LIMIT_SENDS_PER_NUMBER": "0", "LIMIT_STARTS_PER_KEY": "0"})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	var seq atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(32) // enough starts in flight to keep both cores busy
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			body := fmt.Sprintf(`{"referenceId":"bench-%d","phoneNumber":"+447400%06d"}`, seq.Add(1), rand.IntN(1000000))
			req, err := http.NewRequest(http.MethodPost, s.URL+"/v1/sessions", strings.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+apptest.APIKey)
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				b.Errorf("start answered %d", resp.StatusCode)
				return
			}
		}
	})
}
