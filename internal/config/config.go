// Package config reads ivr-bridge's configuration from the environment once (DESIGN §2),
// validates it and hands a typed struct to the rest of the program.
package config

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ivr-bridge/ivr-bridge/internal/callsession"
	"github.com/ivr-bridge/ivr-bridge/internal/logging"
	"github.com/ivr-bridge/ivr-bridge/internal/phone"
)

// Config is the whole configuration of one ivr-bridge process.
type Config struct {
	Addr        string
	MetricsAddr string
	APIKeys     []string
	PublicURL   string

	RedisURL          string
	RedisClusterAddrs []string
	// Sentinel: the sentinels' addresses and the name of the master they watch.
	RedisSentinelAddrs  []string
	RedisSentinelMaster string
	// RedisPassword authenticates to cluster nodes and to the master found by Sentinel (a
	// REDIS_URL carries its own).
	RedisPassword string
	// RedisWaitReplicas > 0: session writes wait (WAIT) for that many replicas, at most
	// RedisWaitTimeout, so a failover cannot lose an acknowledged session.
	RedisWaitReplicas int
	RedisWaitTimeout  time.Duration
	// RedisTLS: TLS to the cluster's nodes, or to the sentinels and the master they name (a
	// REDIS_URL says it with rediss://). RedisTLSCAFile: PEM certificates of the authorities
	// that sign the servers' certificates, instead of the system's (for any TLS to Redis).
	RedisTLS       bool
	RedisTLSCAFile string
	// RedisAutoPipeline: the store's commands of concurrent requests share writes and reads
	// (go-redis' auto-pipeliner) instead of a round trip each.
	RedisAutoPipeline bool

	Session callsession.Config

	CallConnect CallConnect
	Authsignal  Authsignal
	Authentix   Authentix

	TwilioAuthToken       string
	VonageSignatureSecret string
	GenesysUsername       string
	GenesysPassword       string
	ConnectAPIKey         string

	StartsPerKey int // per second, per API key
	LogLevel     slog.Level
	// LogFlushInterval > 0: log lines are gathered in memory and written out at least this
	// often (warnings and errors at once); 0: each line is written as it is made.
	LogFlushInterval time.Duration
}

// CallConnect is Authsignal Call Connect's configuration.
type CallConnect struct{ Secret, BaseURL string }

// Enabled reports whether its credentials are given.
func (c CallConnect) Enabled() bool { return c.Secret != "" }

// Authsignal is the Authsignal challenge/verify configuration.
type Authsignal struct{ Secret, BaseURL, Action, WebhookSecret string }

// Enabled reports whether its credentials are given.
func (c Authsignal) Enabled() bool { return c.Secret != "" }

// Authentix is Reach Authentix's configuration.
type Authentix struct {
	APIUser, APIKey, ConfigurationID, BaseURL         string
	ServiceName, TemplateID, TemplateDataMap, Payment string
	CodeLength                                        int
}

// Enabled reports whether its credentials are given.
func (c Authentix) Enabled() bool {
	return c.APIUser != "" && c.APIKey != "" && c.ConfigurationID != ""
}

// Load reads the configuration through getenv (os.Getenv in the program, a map in tests).
// The error is one line naming the variable at fault.
func Load(getenv func(string) string) (Config, error) {
	r := reader{getenv: getenv}
	c := Config{
		Addr:                r.str("IVR_BRIDGE_ADDR", ":8080"),
		MetricsAddr:         r.str("IVR_BRIDGE_METRICS_ADDR", ""),
		APIKeys:             r.list("IVR_BRIDGE_API_KEYS"),
		PublicURL:           strings.TrimRight(r.str("IVR_BRIDGE_PUBLIC_URL", ""), "/"),
		RedisURL:            r.str("REDIS_URL", ""),
		RedisClusterAddrs:   r.list("REDIS_CLUSTER_ADDRS"),
		RedisSentinelAddrs:  r.list("REDIS_SENTINEL_ADDRS"),
		RedisSentinelMaster: r.str("REDIS_SENTINEL_MASTER", ""),
		RedisPassword:       r.str("REDIS_PASSWORD", ""),
		RedisWaitReplicas:   r.count("REDIS_WAIT_REPLICAS", 0),
		RedisWaitTimeout:    r.duration("REDIS_WAIT_TIMEOUT", 500*time.Millisecond),
		RedisTLS:            r.boolean("REDIS_TLS", false),
		RedisAutoPipeline:   r.boolean("REDIS_AUTOPIPELINE", true),
		RedisTLSCAFile:      r.str("REDIS_TLS_CA_FILE", ""),
		Session: callsession.Config{
			SessionTTL:      r.duration("SESSION_TTL", time.Hour),
			DefaultProvider: callsession.ProviderName(strings.ToLower(r.str("DEFAULT_PROVIDER", "callconnect"))),
			DefaultCountry:  r.str("DEFAULT_COUNTRY", ""),
			Fallback:        callsession.ProviderName(strings.ToLower(r.str("PROVIDER_FALLBACK", ""))),
			LinkTTL:         r.duration("LINK_TTL", 10*time.Minute),
			ProviderTimeout: r.duration("PROVIDER_TIMEOUT", callsession.DefaultProviderTimeout),
			Limits: callsession.Limits{
				SendsPerSession: r.count("LIMIT_SENDS_PER_SESSION", 3),
				SendsPerNumber:  r.count("LIMIT_SENDS_PER_NUMBER", 5),
				NumberWindow:    r.duration("LIMIT_NUMBER_WINDOW", 10*time.Minute),
				CodeAttempts:    r.count("LIMIT_CODE_ATTEMPTS", 5),
			},
			AllowedRegions: r.list("ALLOWED_COUNTRIES"),
			DeniedRegions:  r.list("DENIED_COUNTRIES"),
		},
		CallConnect: CallConnect{
			Secret:  r.str("CALLCONNECT_SECRET", ""),
			BaseURL: r.baseURL("CALLCONNECT_BASE_URL", "https://us-connect.authsignal.com"),
		},
		Authsignal: Authsignal{
			Secret:        r.str("AUTHSIGNAL_SECRET", ""),
			BaseURL:       r.baseURL("AUTHSIGNAL_BASE_URL", "https://api.authsignal.com/v1"),
			Action:        r.str("AUTHSIGNAL_ACTION", "ivrVerification"),
			WebhookSecret: r.str("AUTHSIGNAL_WEBHOOK_SECRET", ""),
		},
		Authentix: Authentix{
			APIUser:         r.str("AUTHENTIX_API_USER", ""),
			APIKey:          r.str("AUTHENTIX_API_KEY", ""),
			ConfigurationID: r.str("AUTHENTIX_CONFIGURATION_ID", ""),
			BaseURL:         r.baseURL("AUTHENTIX_BASE_URL", "https://api.reach.talkylabs.com/rest/authentix/v1"),
			ServiceName:     r.str("AUTHENTIX_SERVICE_NAME", ""),
			TemplateID:      r.str("AUTHENTIX_TEMPLATE_ID", ""),
			TemplateDataMap: r.str("AUTHENTIX_TEMPLATE_DATA_MAP", ""),
			Payment:         r.str("AUTHENTIX_PAYMENT_INFO", ""),
			CodeLength:      r.count("AUTHENTIX_CODE_LENGTH", 0),
		},
		TwilioAuthToken:       r.str("TWILIO_AUTH_TOKEN", ""),
		VonageSignatureSecret: r.str("VONAGE_SIGNATURE_SECRET", ""),
		GenesysUsername:       r.str("GENESYS_USERNAME", ""),
		GenesysPassword:       r.str("GENESYS_PASSWORD", ""),
		ConnectAPIKey:         r.str("CONNECT_API_KEY", ""),
		StartsPerKey:          r.count("LIMIT_STARTS_PER_KEY", 100),
		LogFlushInterval:      r.duration("LOG_FLUSH_INTERVAL", time.Second),
	}
	if lvl, err := logging.ParseLevel(r.str("LOG_LEVEL", "info")); err != nil {
		r.fail("LOG_LEVEL", err.Error())
	} else {
		c.LogLevel = lvl
	}
	if r.err != nil {
		return Config{}, r.err
	}
	return c, c.validate()
}

func (c Config) validate() error {
	bad := func(name, format string, args ...any) error {
		return fmt.Errorf("config: %s: %s", name, fmt.Sprintf(format, args...))
	}
	backends := 0
	for _, set := range []bool{c.RedisURL != "", len(c.RedisClusterAddrs) > 0, len(c.RedisSentinelAddrs) > 0} {
		if set {
			backends++
		}
	}
	if backends > 1 {
		return bad("REDIS_URL", "set one of REDIS_URL, REDIS_CLUSTER_ADDRS or REDIS_SENTINEL_ADDRS, not several")
	}
	if c.LogFlushInterval > 0 && c.LogFlushInterval < 10*time.Millisecond {
		// The flush runs on a ticker of this period, idle or not.
		return bad("LOG_FLUSH_INTERVAL", "%v is below 10ms (0 writes each line at once)", c.LogFlushInterval)
	}
	if (len(c.RedisSentinelAddrs) > 0) != (c.RedisSentinelMaster != "") {
		return bad("REDIS_SENTINEL_MASTER", "REDIS_SENTINEL_ADDRS and REDIS_SENTINEL_MASTER go together")
	}
	if err := hostPorts(c.RedisSentinelAddrs); err != nil {
		return bad("REDIS_SENTINEL_ADDRS", "%v", err)
	}
	urlTLS := false
	if c.RedisURL != "" {
		u, err := url.Parse(c.RedisURL)
		if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
			return bad("REDIS_URL", "want redis://host:port/db or rediss://…")
		}
		if strings.Contains(c.RedisURL, "#") || strings.Contains(u.Path+u.RawQuery, "@") ||
			!redisDBPath.MatchString(u.Path) {
			// A password with a /, ? or # unescaped ends the URL's authority there: the
			// rest of it is read as the path, query or fragment, which are logged and
			// quoted in the Redis client's errors.
			return bad("REDIS_URL", "want redis://[user:password@]host:port/db, a password's /, ?, # and @ written %%2F, %%3F, %%23 and %%40")
		}
		urlTLS = u.Scheme == "rediss" // url.Parse lowers the scheme, as go-redis does
	}
	if err := hostPorts(c.RedisClusterAddrs); err != nil {
		return bad("REDIS_CLUSTER_ADDRS", "%v", err)
	}
	if c.RedisTLS && len(c.RedisClusterAddrs) == 0 && len(c.RedisSentinelAddrs) == 0 {
		return bad("REDIS_TLS", "is for REDIS_CLUSTER_ADDRS or REDIS_SENTINEL_ADDRS; a REDIS_URL asks for TLS by its scheme, rediss://")
	}
	if c.RedisTLSCAFile != "" && !c.RedisTLS && !urlTLS {
		return bad("REDIS_TLS_CA_FILE", "is used only with TLS to Redis (REDIS_TLS=true, or a rediss:// REDIS_URL)")
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad("IVR_BRIDGE_PUBLIC_URL", "want an http(s):// URL")
		}
	}
	if !c.Session.DefaultProvider.Valid() {
		return bad("DEFAULT_PROVIDER", "%q is not callconnect, authsignal or authentix", c.Session.DefaultProvider)
	}
	if c.Session.Fallback != "" && !c.Session.Fallback.Valid() {
		return bad("PROVIDER_FALLBACK", "%q is not callconnect, authsignal or authentix", c.Session.Fallback)
	}
	if c.Session.DefaultCountry != "" {
		if _, err := phone.Region(c.Session.DefaultCountry); err != nil {
			return bad("DEFAULT_COUNTRY", "%q is not an ISO 3166 alpha-2 or alpha-3 code", c.Session.DefaultCountry)
		}
	}
	if c.Session.SessionTTL <= 0 {
		return bad("SESSION_TTL", "must be positive")
	}
	for name, list := range map[string][]string{"ALLOWED_COUNTRIES": c.Session.AllowedRegions, "DENIED_COUNTRIES": c.Session.DeniedRegions} {
		for i, v := range list {
			region, err := phone.Region(v)
			if err != nil || region == "" {
				return bad(name, "%q is not an ISO 3166 alpha-2 or alpha-3 code", v)
			}
			list[i] = region
		}
	}
	if c.Session.ProviderTimeout <= 0 || c.Session.ProviderTimeout > 10*time.Second {
		return bad("PROVIDER_TIMEOUT", "must be between 0 and 10s (the IVR waits at most a few seconds)")
	}
	if l := c.Authentix.CodeLength; l != 0 && (l < 4 || l > 10) {
		return bad("AUTHENTIX_CODE_LENGTH", "must be 0 (Authentix makes the code) or 4 to 10")
	}
	return nil
}

// EnabledProviders names the providers whose credentials are given.
func (c Config) EnabledProviders() []callsession.ProviderName {
	var out []callsession.ProviderName
	if c.CallConnect.Enabled() {
		out = append(out, callsession.ProviderCallConnect)
	}
	if c.Authsignal.Enabled() {
		out = append(out, callsession.ProviderAuthsignal)
	}
	if c.Authentix.Enabled() {
		out = append(out, callsession.ProviderAuthentix)
	}
	return out
}

// reader collects the first error while reading variables, so Load reads straight through.
type reader struct {
	getenv func(string) string
	err    error
}

func (r *reader) fail(name, msg string) {
	if r.err == nil {
		r.err = fmt.Errorf("config: %s: %s", name, msg)
	}
}

func (r *reader) str(name, def string) string {
	if v := strings.TrimSpace(r.getenv(name)); v != "" {
		return v
	}
	return def
}

func (r *reader) list(name string) []string {
	var out []string
	for _, p := range strings.Split(r.getenv(name), ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func (r *reader) duration(name string, def time.Duration) time.Duration {
	v := r.str(name, "")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		r.fail(name, fmt.Sprintf("%q is not a duration like 30s, 10m or 1h", v))
		return def
	}
	return d
}

func (r *reader) count(name string, def int) int {
	v := r.str(name, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		r.fail(name, fmt.Sprintf("%q is not a whole number ≥ 0", v))
		return def
	}
	return n
}

func (r *reader) boolean(name string, def bool) bool {
	v := r.str(name, "")
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		r.fail(name, fmt.Sprintf("%q is not true or false", v))
	}
	return b
}

func (r *reader) baseURL(name, def string) string {
	v := strings.TrimRight(r.str(name, def), "/")
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// Not the value: a URL may carry credentials (https://user:secret@host).
		r.fail(name, "is not an http(s):// URL")
	}
	return v
}

// redisDBPath is a Redis URL's path: a database number, or none.
var redisDBPath = regexp.MustCompile(`^/?[0-9]*$`)

// hostPorts checks a list of Redis addresses, each host:port with a port number, and says
// which entry is not without quoting it: a value such as redis://:secret@host, a URL where
// an address belongs, would put the password in the error, and go-redis, given it, puts it
// in every dial error it logs.
func hostPorts(addrs []string) error {
	for i, a := range addrs {
		host, port, err := net.SplitHostPort(a)
		n, perr := strconv.Atoi(port)
		if err != nil || host == "" || strings.ContainsAny(host, "/@") || perr != nil || n < 1 || n > 65535 {
			return fmt.Errorf("entry %d of %d is not host:port (a password goes in REDIS_PASSWORD)", i+1, len(addrs))
		}
	}
	return nil
}
