package storetest

import (
	"os"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// Servers are the Redis servers a test runs on, by name: a miniredis of the test's own
// always ("miniredis"), and the real server at REDIS_URL when it is set ("redis", as in CI).
func Servers(t testing.TB) map[string]*redis.Options {
	t.Helper()
	out := map[string]*redis.Options{"miniredis": {Addr: miniredis.RunT(t).Addr()}}
	if url := os.Getenv("REDIS_URL"); url != "" {
		o, err := redis.ParseURL(url)
		if err != nil {
			t.Fatalf("REDIS_URL: %v", err)
		}
		out["redis"] = o
	}
	return out
}
