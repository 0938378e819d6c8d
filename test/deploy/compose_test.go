// Package deploy checks the deployment files that no engine runs here (no Docker on CI):
// they are parsed and held to what the bridge needs.
package deploy

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/ivr-bridge/ivr-bridge/internal/config"
)

type compose struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Build       any               `yaml:"build"`
		Command     []string          `yaml:"command"`
		Volumes     []string          `yaml:"volumes"`
		Ports       []string          `yaml:"ports"`
		Profiles    []string          `yaml:"profiles"`
		Environment map[string]string `yaml:"environment"`
		DependsOn   map[string]struct {
			Condition string `yaml:"condition"`
		} `yaml:"depends_on"`
		Healthcheck struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
}

func loadCompose(t *testing.T) compose {
	t.Helper()
	raw, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c compose
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatalf("docker-compose.yml does not parse: %v", err)
	}
	return c
}

func TestDockerCompose(t *testing.T) {
	c := loadCompose(t)
	redis, ok := c.Services["redis"]
	if !ok {
		t.Fatal("no redis service")
	}
	if !strings.HasPrefix(redis.Image, "redis:") {
		t.Errorf("redis image = %q", redis.Image)
	}
	cmd := strings.Join(redis.Command, " ")
	if !strings.Contains(cmd, "--appendonly yes") {
		t.Errorf("redis must persist with AOF, command is %q", cmd)
	}
	if len(redis.Volumes) == 0 || !strings.HasSuffix(redis.Volumes[0], ":/data") {
		t.Errorf("redis data must live on a volume mounted at /data: %v", redis.Volumes)
	}
	name := strings.SplitN(redis.Volumes[0], ":", 2)[0]
	if _, ok := c.Volumes[name]; !ok {
		t.Errorf("volume %q is not declared", name)
	}

	bridge, ok := c.Services["bridge"]
	if !ok {
		t.Fatal("no bridge service")
	}
	if bridge.Build != "." {
		t.Errorf("bridge must be built from this repository, build = %v", bridge.Build)
	}
	if _, err := os.Stat("../../Dockerfile"); err != nil {
		t.Errorf("the bridge is built by a Dockerfile: %v", err)
	}
	if got := bridge.Environment["REDIS_URL"]; got != "redis://redis:6379/0" {
		t.Errorf("bridge REDIS_URL = %q, want the redis service", got)
	}
	if dep, ok := bridge.DependsOn["redis"]; !ok || dep.Condition != "service_healthy" {
		t.Errorf("bridge must wait for a healthy redis: %+v", bridge.DependsOn)
	}
	if len(bridge.Ports) == 0 || !strings.HasSuffix(bridge.Ports[0], ":8080") {
		t.Errorf("bridge ports = %v", bridge.Ports)
	}

	// The replicas profile: a second bridge on the same Redis, with the same configuration.
	second, ok := c.Services["bridge-2"]
	if !ok {
		t.Fatal("no bridge-2 service")
	}
	if len(second.Profiles) != 1 || second.Profiles[0] != "replicas" {
		t.Errorf("bridge-2 profiles = %v, want [replicas]", second.Profiles)
	}
	if len(bridge.Profiles) != 0 || len(redis.Profiles) != 0 {
		t.Error("redis and the first bridge must run without a profile")
	}
	if second.Environment["REDIS_URL"] != bridge.Environment["REDIS_URL"] || len(second.Environment) != len(bridge.Environment) {
		t.Errorf("bridge-2 environment differs: %v", second.Environment)
	}
	if len(second.Ports) == 0 || second.Ports[0] == bridge.Ports[0] {
		t.Errorf("bridge-2 ports = %v", second.Ports)
	}
	// Each replica's health is its own /readyz (Redis answering), probed by the binary.
	for name, svc := range map[string]string{"bridge": strings.Join(bridge.Healthcheck.Test, " "), "bridge-2": strings.Join(second.Healthcheck.Test, " ")} {
		if svc != "CMD /ivr-bridge -probe http://127.0.0.1:8080/readyz" {
			t.Errorf("%s healthcheck = %q, want the binary probing its /readyz", name, svc)
		}
	}
}

func TestDockerfileBuildsTheCommand(t *testing.T) {
	raw, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	s := string(raw)
	for _, want := range []string{"go build", "./cmd/ivr-bridge", "ENTRYPOINT"} {
		if !strings.Contains(s, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}

// configVariables is every environment variable config.Load reads, recorded by the getenv it
// is handed: Load reads straight through (it keeps the first error and never returns early),
// so one load on an empty environment asks for every name.
func configVariables(t *testing.T) []string {
	t.Helper()
	var names []string
	if _, err := config.Load(func(name string) string {
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
		return ""
	}); err != nil {
		t.Fatalf("the empty configuration must be valid: %v", err)
	}
	if len(names) == 0 {
		t.Fatal("config.Load read no variable")
	}
	slices.Sort(names)
	return names
}

// passThrough is compose's "${NAME:-default}": the shell's NAME, or default when it is unset
// or empty.
var passThrough = regexp.MustCompile(`^\$\{([A-Za-z_][A-Za-z0-9_]*):-([^}$]*)\}$`)

// pinnable may be fixed in docker-compose.yml instead of passed through: the listen address
// (the published port maps to it) and the Redis settings (the file runs its own single Redis).
func pinnable(name string) bool {
	return name == "IVR_BRIDGE_ADDR" || strings.HasPrefix(name, "REDIS_")
}

// TestComposePassesEveryConfigVariable: a container sees only the variables its service lists,
// so a setting config reads but compose leaves out cannot be set at all under compose.
func TestComposePassesEveryConfigVariable(t *testing.T) {
	names := configVariables(t)
	c := loadCompose(t)
	for _, svc := range []string{"bridge", "bridge-2"} {
		env := c.Services[svc].Environment
		for _, name := range names {
			if _, ok := env[name]; !ok {
				t.Errorf("%s: %s, which internal/config reads, is not in the environment", svc, name)
			}
		}
		for name, value := range env {
			if !slices.Contains(names, name) {
				t.Errorf("%s: %s is in the environment but internal/config never reads it", svc, name)
			}
			m := passThrough.FindStringSubmatch(value)
			switch {
			case m != nil && m[1] != name:
				t.Errorf("%s: %s takes the shell's %s: %q", svc, name, m[1], value)
			case m == nil && strings.Contains(value, "$"):
				t.Errorf("%s: %s = %q: pass it through as ${%s:-…}", svc, name, value, name)
			case m == nil && !pinnable(name):
				t.Errorf("%s: %s is fixed to %q; only the listen address and Redis may be, pass it through as ${%s:-}", svc, name, value, name)
			}
		}
	}
}

// TestComposeDefaultsAreTheCodes: with nothing set in the shell, the environment compose hands
// the bridge configures it exactly as no environment at all would (but for REDIS_URL, the
// compose Redis), so the file never changes a default behind the code's back. ${NAME:-} is
// safe because config cannot tell an empty variable from an unset one: it reads through a
// getenv (os.Getenv in the program), which answers "" for both.
func TestComposeDefaultsAreTheCodes(t *testing.T) {
	want, err := config.Load(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}

	rendered := map[string]string{}
	for name, value := range loadCompose(t).Services["bridge"].Environment {
		if m := passThrough.FindStringSubmatch(value); m != nil {
			value = m[2] // the shell has nothing set
		}
		rendered[name] = value
		if value == "" || name == "REDIS_URL" {
			continue
		}
		got, err := config.Load(func(n string) string {
			if n == name {
				return value
			}
			return ""
		})
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: compose gives %q, which is not the code's default (err %v)", name, value, err)
		}
	}
	got, err := config.Load(func(n string) string { return rendered[n] })
	if err != nil {
		t.Fatalf("the compose environment with nothing set is invalid: %v", err)
	}
	want.RedisURL = rendered["REDIS_URL"]
	if !reflect.DeepEqual(got, want) {
		t.Error("the compose environment with nothing set does not configure the bridge as the code's defaults do")
	}
}

// dockerfileUser is the last USER instruction of the Dockerfile's final stage ("" if none).
func dockerfileUser(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	user := ""
	var line strings.Builder
	for _, l := range strings.Split(string(raw), "\n") {
		l = strings.TrimSpace(l)
		if line.Len() == 0 && (l == "" || strings.HasPrefix(l, "#")) {
			continue
		}
		if cont, ok := strings.CutSuffix(l, "\\"); ok {
			line.WriteString(cont + " ")
			continue
		}
		line.WriteString(l)
		fields := strings.Fields(line.String())
		line.Reset()
		switch strings.ToUpper(fields[0]) {
		case "FROM":
			user = "" // a new stage starts as its base image's user
		case "USER":
			if len(fields) != 2 {
				t.Fatalf("Dockerfile: malformed %q", strings.Join(fields, " "))
			}
			user = fields[1]
		}
	}
	return user
}

// numericID parses a uid or gid; ok is false for a name.
func numericID(s string) (int64, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n >= 0
}

// TestDockerfileUserIsNumericNonRoot: Kubernetes' runAsNonRoot can check only a numeric
// user ("image has non-numeric user (nonroot), cannot verify user is non-root").
func TestDockerfileUserIsNumericNonRoot(t *testing.T) {
	user := dockerfileUser(t)
	if user == "" {
		t.Fatal("the Dockerfile's final stage sets no USER: the container would run as its base image's user")
	}
	uid, gid, hasGroup := strings.Cut(user, ":")
	if n, ok := numericID(uid); !ok || n == 0 {
		t.Errorf("USER %s: the user must be a number other than 0", user)
	}
	if n, ok := numericID(gid); hasGroup && (!ok || n == 0) {
		t.Errorf("USER %s: the group must be a number other than 0", user)
	}
}
