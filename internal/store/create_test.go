package store

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/ivr-bridge/ivr-bridge/internal/callsession"
)

// TestCreateSequentialSurvivesABrokenIndex: the path a cluster takes while its nodes lack
// the scripts, and every create under WithWaitReplicas. A broken index hides the session
// from the list but never fails its create, and a repeat still answers the first session.
// (The suite's CreateSurvivesABrokenIndex reaches this path only on a cluster; on one server
// a create is a single script, loaded on NOSCRIPT.) Miniredis, or the real Redis at
// REDIS_URL.
func TestCreateSequentialSurvivesABrokenIndex(t *testing.T) {
	ctx := context.Background()
	be, err := Open(ctx, Options{URL: os.Getenv("REDIS_URL")})
	if err != nil {
		t.Fatal(err)
	}
	prefix := fmt.Sprintf("test:%d:", time.Now().UnixNano())
	r := NewRedis(be.Client, WithPrefix(prefix))
	t.Cleanup(func() {
		be.Client.Del(ctx, r.IndexKey(), r.SessionKey("seq-1"))
		be.Close()
	})
	if err := be.Client.Set(ctx, r.IndexKey(), "not a sorted set", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	create := func(userID string) []any {
		t.Helper()
		s := &callsession.Session{ReferenceID: "seq-1", UserID: userID, Status: callsession.StatusPending,
			CreatedAt: time.Now().UTC(), Events: []callsession.Event{}}
		data, err := encode(s)
		if err != nil {
			t.Fatal(err)
		}
		res, err := r.createSequential(ctx, s.ReferenceID, []string{r.IndexKey()},
			[]any{s.CreatedAt.UnixMilli(), s.ReferenceID, int64(0), time.Hour.Milliseconds()}, data, time.Hour)
		if err != nil {
			t.Fatalf("create with a broken index: %v", err)
		}
		return res
	}
	if res := create("first"); len(res) != 1 || res[0] != int64(1) {
		t.Fatalf("first create answered %v, want [1]", res)
	}
	res := create("second")
	if len(res) != 2 || res[0] != int64(0) {
		t.Fatalf("repeated create answered %v, want [0 <first session>]", res)
	}
	if first, err := decode(res[1]); err != nil || first.UserID != "first" {
		t.Fatalf("repeated create answered %+v, %v; want the first session", first, err)
	}
	if got, err := r.Get(ctx, "seq-1"); err != nil || got.UserID != "first" {
		t.Fatalf("get: %+v, %v", got, err)
	}
}
