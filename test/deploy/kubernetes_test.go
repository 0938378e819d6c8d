package deploy

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// manifest is the part of a Kubernetes object the checks read.
type manifest struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
		Replicas       int              `yaml:"replicas"`
		MaxUnavailable any              `yaml:"maxUnavailable"`
		Selector       map[string]any   `yaml:"selector"`
		Ports          []map[string]any `yaml:"ports"`
		Template       struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec struct {
				TerminationGracePeriodSeconds int             `yaml:"terminationGracePeriodSeconds"`
				SecurityContext               securityContext `yaml:"securityContext"`
				Containers                    []struct {
					Image           string          `yaml:"image"`
					SecurityContext securityContext `yaml:"securityContext"`
					ReadinessProbe  struct {
						HTTPGet struct{ Path string } `yaml:"httpGet"`
					} `yaml:"readinessProbe"`
					LivenessProbe struct {
						HTTPGet struct{ Path string } `yaml:"httpGet"`
					} `yaml:"livenessProbe"`
					Resources struct {
						Requests map[string]string `yaml:"requests"`
						Limits   map[string]string `yaml:"limits"`
					} `yaml:"resources"`
					Env     []struct{ Name, Value string } `yaml:"env"`
					EnvFrom []map[string]any               `yaml:"envFrom"`
				} `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

// securityContext is the user part of a pod's or a container's securityContext. The ids are
// integers: a quoted or named user does not decode.
type securityContext struct {
	RunAsNonRoot *bool  `yaml:"runAsNonRoot"`
	RunAsUser    *int64 `yaml:"runAsUser"`
	RunAsGroup   *int64 `yaml:"runAsGroup"`
}

// over is s with the fields set in c (a container's context overrides its pod's).
func (s securityContext) over(c securityContext) securityContext {
	if c.RunAsNonRoot != nil {
		s.RunAsNonRoot = c.RunAsNonRoot
	}
	if c.RunAsUser != nil {
		s.RunAsUser = c.RunAsUser
	}
	if c.RunAsGroup != nil {
		s.RunAsGroup = c.RunAsGroup
	}
	return s
}

func loadManifests(t *testing.T) map[string]manifest {
	t.Helper()
	files, err := filepath.Glob("../../deploy/kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	out := map[string]manifest{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		for {
			var m manifest
			if err := dec.Decode(&m); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s does not parse: %v", f, err)
			}
			if m.APIVersion == "" || m.Kind == "" || m.Metadata.Name == "" {
				t.Fatalf("%s: an object without apiVersion, kind or name", f)
			}
			out[m.Kind] = m
		}
	}
	return out
}

func TestKubernetesManifests(t *testing.T) {
	ms := loadManifests(t)
	d, ok := ms["Deployment"]
	if !ok {
		t.Fatal("no Deployment")
	}
	if d.Spec.Replicas < 2 {
		t.Errorf("replicas = %d: one replica is a single point of failure", d.Spec.Replicas)
	}
	labels := d.Spec.Template.Metadata.Labels
	if len(d.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("containers = %d", len(d.Spec.Template.Spec.Containers))
	}
	c := d.Spec.Template.Spec.Containers[0]
	if c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("probes: readiness %q, liveness %q", c.ReadinessProbe.HTTPGet.Path, c.LivenessProbe.HTTPGet.Path)
	}
	if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
		t.Errorf("resources: %+v", c.Resources)
	}
	if d.Spec.Template.Spec.TerminationGracePeriodSeconds < 20 {
		t.Errorf("termination grace %ds: shorter than the bridge's 15 s drain plus preStop", d.Spec.Template.Spec.TerminationGracePeriodSeconds)
	}
	// runAsNonRoot with a user name in the image is refused by the kubelet ("image has
	// non-numeric user (nonroot), cannot verify user is non-root"): the pod names the number.
	sc := d.Spec.Template.Spec.SecurityContext.over(c.SecurityContext)
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Error("the container must run with runAsNonRoot: true")
	}
	if sc.RunAsUser == nil || *sc.RunAsUser == 0 {
		t.Errorf("runAsUser must be a number other than 0, got %v", sc.RunAsUser)
	} else if uid, _, _ := strings.Cut(dockerfileUser(t), ":"); uid != strconv.FormatInt(*sc.RunAsUser, 10) {
		t.Errorf("runAsUser %d is not the Dockerfile's user %q", *sc.RunAsUser, uid)
	}
	if sc.RunAsGroup == nil || *sc.RunAsGroup == 0 {
		t.Errorf("runAsGroup must be a number other than 0, got %v", sc.RunAsGroup)
	} else if _, gid, ok := strings.Cut(dockerfileUser(t), ":"); ok && gid != strconv.FormatInt(*sc.RunAsGroup, 10) {
		t.Errorf("runAsGroup %d is not the Dockerfile's group %q", *sc.RunAsGroup, gid)
	}
	if len(c.EnvFrom) == 0 {
		t.Error("secrets must come from a Secret (envFrom), not inline values")
	}
	for _, e := range c.Env {
		if strings.Contains(e.Name, "SECRET") || strings.Contains(e.Name, "KEY") {
			t.Errorf("secret-looking variable %s set inline", e.Name)
		}
	}
	matches := func(sel map[string]any) bool {
		ml, _ := sel["matchLabels"].(map[string]any)
		if ml == nil {
			ml = sel
		}
		for k, v := range ml {
			if labels[k] != v {
				return false
			}
		}
		return len(ml) > 0
	}
	if !matches(d.Spec.Selector) {
		t.Errorf("the Deployment's selector %v does not match its pods' labels %v", d.Spec.Selector, labels)
	}
	svc, ok := ms["Service"]
	if !ok || !matches(svc.Spec.Selector) || len(svc.Spec.Ports) == 0 {
		t.Errorf("Service missing or not selecting the pods: %+v", svc.Spec)
	}
	pdb, ok := ms["PodDisruptionBudget"]
	if !ok || !matches(pdb.Spec.Selector) || pdb.Spec.MaxUnavailable == nil {
		t.Errorf("PodDisruptionBudget missing or not selecting the pods: %+v", pdb.Spec)
	}
}
