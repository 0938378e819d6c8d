package e2e

import (
	"net/http"
	"os"
	"sync"
	"testing"

	"github.com/alicebob/miniredis/v2"
)

// sharedRedis is the Redis several replicas share: the real one at REDIS_URL, or one
// miniredis served from this process.
func sharedRedis(t *testing.T) string {
	if url := os.Getenv("REDIS_URL"); url != "" {
		return url
	}
	mr := miniredis.RunT(t)
	return "redis://" + mr.Addr() + "/0"
}

// TestThreeReplicas plays calls whose steps land on different replicas of one deployment.
func TestThreeReplicas(t *testing.T) {
	env := map[string]string{"REDIS_URL": sharedRedis(t), "LIMIT_SENDS_PER_NUMBER": "2"}
	a := start(t, env)
	replicas := []*bridge{a, a.replica(env), a.replica(env)}

	// A whole call: started on A, code on B, read on C.
	ref := reference()
	sess := replicas[0].startSession(map[string]any{"referenceId": ref, "phoneNumber": mobile(t), "provider": "authsignal"})
	code := a.authsignal.CodeFor(sess["challengeId"].(string))
	if r := replicas[1].code(ref, code); r.status != http.StatusOK || r.json(t)["status"] != "verified" {
		t.Fatalf("code on replica B: %d %s", r.status, r.body)
	}
	if s := replicas[2].session(ref); s["status"] != "verified" {
		t.Fatalf("read on replica C: %v", s)
	}

	// Idempotency across replicas: the same start on all three at once is one send.
	ref2, number := reference(), mobile(t)
	before := a.callConnect.Sends()
	var wg sync.WaitGroup
	statuses := make([]int, 30)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = replicas[i%3].do("POST", "/v1/sessions", map[string]any{"referenceId": ref2, "phoneNumber": number}).status
		}()
	}
	wg.Wait()
	created := 0
	for _, s := range statuses {
		if s == http.StatusCreated {
			created++
		} else if s != http.StatusOK {
			t.Fatalf("statuses %v", statuses)
		}
	}
	if created != 1 || a.callConnect.Sends()-before != 1 {
		t.Fatalf("created %d, sends %d across replicas", created, a.callConnect.Sends()-before)
	}

	// Limits are shared: a number's budget of 2 sends is spent across replicas.
	limited := mobile(t)
	for i, want := range []int{http.StatusCreated, http.StatusCreated, http.StatusTooManyRequests} {
		r := replicas[i].do("POST", "/v1/sessions", map[string]any{"referenceId": reference(), "phoneNumber": limited})
		if r.status != want {
			t.Fatalf("start %d to one number on replica %d: %d %s", i+1, i, r.status, r.body)
		}
	}
	for _, r := range replicas {
		r.mustNotLog(limited, number)
	}
}
