// Package deploy checks the deployment files that no engine runs here (no Docker on CI):
// they are parsed and held to what the bridge needs.
package deploy

import (
	"os"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
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

func TestDockerCompose(t *testing.T) {
	raw, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c compose
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatalf("docker-compose.yml does not parse: %v", err)
	}
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
}

func TestDockerfileBuildsTheCommand(t *testing.T) {
	raw, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	s := string(raw)
	for _, want := range []string{"go build", "./cmd/ivr-bridge", "ENTRYPOINT", "USER nonroot"} {
		if !strings.Contains(s, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}
