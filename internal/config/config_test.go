package config

import (
	"strings"
	"testing"
	"time"

	"github.com/ivr-bridge/ivr-bridge/internal/callsession"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestDefaults(t *testing.T) {
	c, err := Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != ":8080" || c.RedisURL != "" || c.Session.SessionTTL != time.Hour ||
		c.Session.DefaultProvider != callsession.ProviderCallConnect || c.CallConnect.BaseURL != "https://us-connect.authsignal.com" ||
		c.Authsignal.BaseURL != "https://api.authsignal.com/v1" || c.Authsignal.Action != "ivrVerification" ||
		c.Authentix.BaseURL != "https://api.reach.talkylabs.com/rest/authentix/v1" || c.StartsPerKey != 100 ||
		!c.RedisAutoPipeline || c.RedisTLS || c.LogFlushInterval != time.Second {
		t.Fatalf("defaults: %+v", c)
	}
	l := c.Session.Limits
	if l.SendsPerSession != 3 || l.SendsPerNumber != 5 || l.NumberWindow != 10*time.Minute || l.CodeAttempts != 5 {
		t.Fatalf("limits: %+v", l)
	}
	if len(c.EnabledProviders()) != 0 {
		t.Fatal("no credentials, no providers")
	}
}

func TestValues(t *testing.T) {
	c, err := Load(env(map[string]string{
		"IVR_BRIDGE_API_KEYS": " k1, k2 ,,", "SESSION_TTL": "30m", "DEFAULT_PROVIDER": "Authsignal",
		"DEFAULT_COUNTRY": "gbr", "CALLCONNECT_SECRET": "s", "AUTHENTIX_API_USER": "u", "AUTHENTIX_API_KEY": "k",
		"AUTHENTIX_CONFIGURATION_ID": "CID", "LIMIT_CODE_ATTEMPTS": "0", "REDIS_URL": "redis://127.0.0.1:6379/2",
		"AUTHSIGNAL_BASE_URL": "https://au.api.authsignal.com/v1/", "LOG_LEVEL": "debug", "REDIS_AUTOPIPELINE": "false",
		"LOG_FLUSH_INTERVAL": "0",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.APIKeys, "|") != "k1|k2" || c.Session.SessionTTL != 30*time.Minute ||
		c.Session.DefaultProvider != callsession.ProviderAuthsignal || c.Session.Limits.CodeAttempts != 0 ||
		c.Authsignal.BaseURL != "https://au.api.authsignal.com/v1" || c.RedisAutoPipeline || c.LogFlushInterval != 0 {
		t.Fatalf("%+v", c)
	}
	if got := c.EnabledProviders(); len(got) != 2 || got[0] != callsession.ProviderCallConnect || got[1] != callsession.ProviderAuthentix {
		t.Fatalf("enabled %v", got)
	}
}

func TestInvalidConfigNamesTheVariable(t *testing.T) {
	cases := map[string]map[string]string{
		"SESSION_TTL":             {"SESSION_TTL": "soon"},
		"DEFAULT_PROVIDER":        {"DEFAULT_PROVIDER": "twilio"},
		"PROVIDER_FALLBACK":       {"PROVIDER_FALLBACK": "nexmo"},
		"DEFAULT_COUNTRY":         {"DEFAULT_COUNTRY": "Narnia"},
		"REDIS_URL":               {"REDIS_URL": "http://localhost"},
		"REDIS_CLUSTER_ADDRS":     {"REDIS_CLUSTER_ADDRS": "a:1,b"},
		"LIMIT_SENDS_PER_SESSION": {"LIMIT_SENDS_PER_SESSION": "-1"},
		"LIMIT_SENDS_PER_NUMBER":  {"LIMIT_SENDS_PER_NUMBER": "many"},
		"CALLCONNECT_BASE_URL":    {"CALLCONNECT_BASE_URL": "ftp://x"},
		"LOG_LEVEL":               {"LOG_LEVEL": "loud"},
		"IVR_BRIDGE_PUBLIC_URL":   {"IVR_BRIDGE_PUBLIC_URL": "example.com"},
		"AUTHENTIX_CODE_LENGTH":   {"AUTHENTIX_CODE_LENGTH": "3"},
		"PROVIDER_TIMEOUT":        {"PROVIDER_TIMEOUT": "1m"},
		"ALLOWED_COUNTRIES":       {"ALLOWED_COUNTRIES": "GB,Narnia"},
		"DENIED_COUNTRIES":        {"DENIED_COUNTRIES": "XX"},
		"REDIS_AUTOPIPELINE":      {"REDIS_AUTOPIPELINE": "yes"},
		"LOG_FLUSH_INTERVAL":      {"LOG_FLUSH_INTERVAL": "-1s"},
		"LOG_FLUSH_INTERVAL ":     {"LOG_FLUSH_INTERVAL": "1ns"}, // a second case of one variable: the key differs by a space
	}
	for name, m := range cases {
		_, err := Load(env(m))
		if err == nil {
			t.Errorf("%s: accepted %v", name, m)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, strings.TrimSpace(name)) || strings.Contains(msg, "\n") {
			t.Errorf("%s: error %q must be one line naming the variable", name, msg)
		}
	}
	if _, err := Load(env(map[string]string{"REDIS_URL": "redis://a:1", "REDIS_CLUSTER_ADDRS": "a:1"})); err == nil {
		t.Error("REDIS_URL and REDIS_CLUSTER_ADDRS together must be refused")
	}
}

// DESIGN §2: "0 turns a limit off", LIMIT_NUMBER_WINDOW among the limits; a negative one is
// no duration.
func TestZeroNumberWindowTurnsTheLimitOff(t *testing.T) {
	c, err := Load(env(map[string]string{"LIMIT_NUMBER_WINDOW": "0"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Session.Limits.NumberWindow != 0 || c.Session.Limits.SendsPerNumber != 5 {
		t.Fatalf("limits %+v", c.Session.Limits)
	}
	if _, err := Load(env(map[string]string{"LIMIT_NUMBER_WINDOW": "-1m"})); err == nil || !strings.Contains(err.Error(), "LIMIT_NUMBER_WINDOW") {
		t.Fatalf("a negative window: %v", err)
	}
}

// A secret in a value refused is not in the error, and values that would carry a password
// where go-redis logs it (an address list) or cut it in two (a # in a URL) are refused.
func TestSecretsNeverInErrors(t *testing.T) {
	for name, m := range map[string]map[string]string{
		"REDIS_URL":            {"REDIS_URL": "redis://:hunter2@/nohost", "CALLCONNECT_SECRET": "sk_live_123"},
		"REDIS_URL ":           {"REDIS_URL": "redis://:s3cr@et#tail9@127.0.0.1:6379/0"}, // the password s3cr@et#tail9, unescaped
		"REDIS_URL  ":          {"REDIS_URL": "redis://:2024/hunter2@127.0.0.1:6379/0"},  // 2024/hunter2
		"REDIS_URL   ":         {"REDIS_URL": "redis://:2024?hunter2@127.0.0.1:6379/0"},  // 2024?hunter2
		"REDIS_URL    ":        {"REDIS_URL": "redis://default:/hunter2@127.0.0.1:6379"}, // user default, password /hunter2
		"REDIS_CLUSTER_ADDRS":  {"REDIS_CLUSTER_ADDRS": "127.0.0.1:7000,redis://:hunter2@10.0.0.2:7001"},
		"REDIS_CLUSTER_ADDRS ": {"REDIS_CLUSTER_ADDRS": "user:hunter2@10.0.0.2:7001"},
		"REDIS_SENTINEL_ADDRS": {"REDIS_SENTINEL_ADDRS": ":hunter2@10.0.0.2:26379", "REDIS_SENTINEL_MASTER": "m"},
		"AUTHSIGNAL_BASE_URL":  {"AUTHSIGNAL_BASE_URL": "ftp://user:hunter2@api.example.com"},
	} {
		_, err := Load(env(m))
		if err == nil {
			t.Errorf("%s: %v accepted", name, m)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, strings.TrimSpace(name)) || strings.Contains(msg, "hunter2") ||
			strings.Contains(msg, "tail9") || strings.Contains(msg, "sk_live") {
			t.Errorf("%s: error %q must name the variable and leak no secret", name, msg)
		}
	}
}

// Redis URLs as go-redis reads them: a database number or none, options in the query, a
// password percent-encoded.
func TestRedisURLs(t *testing.T) {
	for _, u := range []string{"redis://127.0.0.1:6379", "redis://127.0.0.1:6379/", "rediss://user:p%2Fw%3F%23%40d@redis.example:6380/3",
		"redis://:pw@[::1]:6379/0?pool_size=50", "redis://:6379/0", "redis://:pw@:6379"} { // no host: localhost
		if _, err := Load(env(map[string]string{"REDIS_URL": u})); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
}

// host:port lists take names, IPv4 and IPv6 addresses; not a port outside 1–65535.
func TestRedisAddressLists(t *testing.T) {
	c, err := Load(env(map[string]string{"REDIS_CLUSTER_ADDRS": "redis-0.redis:6379, 10.0.0.2:7000,[::1]:7001"}))
	if err != nil || len(c.RedisClusterAddrs) != 3 {
		t.Fatalf("%v, %v", c.RedisClusterAddrs, err)
	}
	for _, bad := range []string{"a:0", "a:65536", "a:port", ":6379", "a", "a/b:1"} {
		if _, err := Load(env(map[string]string{"REDIS_CLUSTER_ADDRS": bad})); err == nil || !strings.Contains(err.Error(), "entry 1 of 1") {
			t.Errorf("%q: %v, want entry 1 of 1 refused", bad, err)
		}
	}
}

func TestCountryListsAreNormalizedToAlpha2(t *testing.T) {
	c, err := Load(env(map[string]string{"ALLOWED_COUNTRIES": "gb, USA ,fr", "DENIED_COUNTRIES": "PRK"}))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.Session.AllowedRegions, ",") != "GB,US,FR" || strings.Join(c.Session.DeniedRegions, ",") != "KP" {
		t.Fatalf("allowed %v, denied %v", c.Session.AllowedRegions, c.Session.DeniedRegions)
	}
}

func TestSentinelConfiguration(t *testing.T) {
	c, err := Load(env(map[string]string{"REDIS_SENTINEL_ADDRS": "127.0.0.1:26379, 127.0.0.1:26380", "REDIS_SENTINEL_MASTER": "bridge"}))
	if err != nil || len(c.RedisSentinelAddrs) != 2 || c.RedisSentinelMaster != "bridge" {
		t.Fatalf("%+v, %v", c.RedisSentinelAddrs, err)
	}
	for name, m := range map[string]map[string]string{
		"REDIS_SENTINEL_MASTER": {"REDIS_SENTINEL_ADDRS": "a:1"},
		"REDIS_SENTINEL_ADDRS":  {"REDIS_SENTINEL_ADDRS": "a", "REDIS_SENTINEL_MASTER": "m"},
		"REDIS_URL":             {"REDIS_URL": "redis://a:1", "REDIS_SENTINEL_ADDRS": "a:1", "REDIS_SENTINEL_MASTER": "m"},
	} {
		if _, err := Load(env(m)); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%v: %v, want an error naming %s", m, err, name)
		}
	}
}

func TestRedisTLSConfiguration(t *testing.T) {
	for _, m := range []map[string]string{
		{"REDIS_CLUSTER_ADDRS": "a:1", "REDIS_TLS": "true", "REDIS_TLS_CA_FILE": "/etc/redis/ca.pem"},
		{"REDIS_SENTINEL_ADDRS": "a:1", "REDIS_SENTINEL_MASTER": "m", "REDIS_TLS": "1"},
		{"REDIS_URL": "rediss://a:1/0", "REDIS_TLS_CA_FILE": "/etc/redis/ca.pem"},
		{"REDIS_URL": "REDISS://a:1/0", "REDIS_TLS_CA_FILE": "/etc/redis/ca.pem"}, // schemes are case-insensitive
	} {
		c, err := Load(env(m))
		if err != nil {
			t.Fatalf("%v: %v", m, err)
		}
		if c.RedisTLS != (m["REDIS_TLS"] != "") || c.RedisTLSCAFile != m["REDIS_TLS_CA_FILE"] {
			t.Fatalf("%v: TLS %v, CA file %q", m, c.RedisTLS, c.RedisTLSCAFile)
		}
	}
	if c, err := Load(env(nil)); err != nil || c.RedisTLS {
		t.Fatalf("default: TLS %v, %v", c.RedisTLS, err)
	}
	for name, m := range map[string]map[string]string{
		"REDIS_TLS":         {"REDIS_CLUSTER_ADDRS": "a:1", "REDIS_TLS": "sometimes"},
		"REDIS_TLS ":        {"REDIS_URL": "redis://a:1", "REDIS_TLS": "true"}, // TLS is rediss:// there
		"REDIS_TLS_CA_FILE": {"REDIS_URL": "redis://a:1", "REDIS_TLS_CA_FILE": "/etc/redis/ca.pem"},
	} {
		if _, err := Load(env(m)); err == nil || !strings.Contains(err.Error(), strings.TrimSpace(name)) {
			t.Errorf("%v: %v, want an error naming %s", m, err, name)
		}
	}
}
