package app_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/ivr-bridge/ivr-bridge/internal/app/apptest"
)

// The store runs its commands auto-pipelined by default (REDIS_AUTOPIPELINE); concurrent
// starts then share writes to Redis. Both settings must serve the same answers: every start
// created once, at the provider once, its message ID stored and a repeat answered from it.
func TestConcurrentStartsWithAndWithoutAutoPipelining(t *testing.T) {
	for _, mode := range []string{"true", "false"} {
		t.Run("REDIS_AUTOPIPELINE="+mode, func(t *testing.T) {
			s := apptest.New(t, map[string]string{"REDIS_AUTOPIPELINE": mode,
				"LIMIT_SENDS_PER_NUMBER": "0", "LIMIT_STARTS_PER_KEY": "0"})
			const n = 40
			refs := make([]string, n)
			answers := make([]string, n)
			var wg sync.WaitGroup
			for i := range n {
				refs[i] = "modes-" + apptest.RandomID()
				wg.Go(func() {
					body := fmt.Sprintf(`{"referenceId":%q,"phoneNumber":"+4474009%05d"}`, refs[i], i)
					req, _ := http.NewRequest(http.MethodPost, s.URL+"/v1/sessions", strings.NewReader(body))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("Authorization", "Bearer "+apptest.APIKey)
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						answers[i] = err.Error()
						return
					}
					defer resp.Body.Close()
					raw, _ := io.ReadAll(resp.Body)
					answers[i] = fmt.Sprintf("%d %s", resp.StatusCode, raw)
				})
			}
			wg.Wait()
			for i, ref := range refs {
				if !strings.HasPrefix(answers[i], "201 ") {
					t.Fatalf("start %s: %s", ref, answers[i])
				}
				got := s.Do(http.MethodGet, "/v1/sessions/"+ref, nil)
				m := got.JSON(t)
				if got.Status != http.StatusOK || m["referenceId"] != ref || m["status"] != "sent" || m["messageId"] == nil {
					t.Fatalf("session %s: %d %s", ref, got.Status, got.Body)
				}
				again := s.Do(http.MethodPost, "/v1/sessions", map[string]string{"referenceId": ref, "phoneNumber": fmt.Sprintf("+4474009%05d", i)})
				if again.Status != http.StatusOK || again.JSON(t)["messageId"] != m["messageId"] {
					t.Fatalf("repeated start %s: %d %s", ref, again.Status, again.Body)
				}
			}
			if sends := s.CallConnect.Sends(); sends != n {
				t.Fatalf("the provider was asked %d times for %d starts", sends, n)
			}
		})
	}
}
