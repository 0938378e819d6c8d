package genesys

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ivr-bridge/ivr-bridge/internal/webhooks/callflow"
)

// The shipped data action (contract/) must stay true to the handler: every input property
// is a field the handler reads, every output property one it answers, and the response
// configuration maps each of them.

type schema struct {
	Title                string                     `json:"title"`
	Description          string                     `json:"description"`
	Type                 string                     `json:"type"`
	Required             []string                   `json:"required"`
	Properties           map[string]json.RawMessage `json:"properties"`
	AdditionalProperties *bool                      `json:"additionalProperties"`
}

type configuration struct {
	Request struct {
		RequestURLTemplate string            `json:"requestUrlTemplate"`
		RequestType        string            `json:"requestType"`
		Headers            map[string]string `json:"headers"`
		RequestTemplate    string            `json:"requestTemplate"`
	} `json:"request"`
	Response struct {
		TranslationMap         map[string]string `json:"translationMap"`
		TranslationMapDefaults map[string]string `json:"translationMapDefaults"`
		SuccessTemplate        string            `json:"successTemplate"`
	} `json:"response"`
}

func readContract(t *testing.T, name string, v any) json.RawMessage {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("contract", name))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return raw
}

// requestFields are the JSON names of Request, the input the handler reads.
func requestFields() []string {
	var out []string
	rt := reflect.TypeFor[Request]()
	for i := range rt.NumField() {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		out = append(out, name)
	}
	return out
}

func checkSchema(t *testing.T, name string, s schema, want []string) {
	t.Helper()
	if s.Title == "" || s.Type != "object" || s.AdditionalProperties == nil || !*s.AdditionalProperties {
		t.Errorf("%s: want a titled object schema with additionalProperties true", name)
	}
	got := slices.Sorted(maps.Keys(s.Properties))
	if !slices.Equal(got, slices.Sorted(slices.Values(want))) {
		t.Errorf("%s: properties %v, want %v", name, got, slices.Sorted(slices.Values(want)))
	}
	validName := regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]*$`)
	for k, raw := range s.Properties {
		var p struct {
			Title, Type string
		}
		if err := json.Unmarshal(raw, &p); err != nil || p.Type != "string" || p.Title == "" {
			t.Errorf("%s: property %s must be a titled string (nested values are not flat)", name, k)
		}
		// Genesys' rules for property names; these three are its own.
		if !validName.MatchString(k) || k == "orgId" || k == "integrationId" || k == "rawRequest" {
			t.Errorf("%s: property name %s is not allowed by Genesys", name, k)
		}
	}
	for _, r := range s.Required {
		if _, ok := s.Properties[r]; !ok {
			t.Errorf("%s: required %s is not a property", name, r)
		}
	}
}

func TestContract(t *testing.T) {
	var in, out schema
	readContract(t, "input-contract.json", &in)
	readContract(t, "output-contract.json", &out)
	checkSchema(t, "input", in, requestFields())
	checkSchema(t, "output", out, callflow.FieldNames)
	if !slices.Contains(in.Required, "conversationId") || !slices.Contains(in.Required, "action") {
		t.Errorf("input: conversationId and action must be required, have %v", in.Required)
	}

	var cfg configuration
	readContract(t, "configuration.json", &cfg)
	req := cfg.Request
	if req.RequestType != "POST" || req.RequestTemplate != "${input.rawRequest}" ||
		!strings.HasPrefix(req.RequestURLTemplate, "https://") || !strings.HasSuffix(req.RequestURLTemplate, Path) ||
		req.Headers["Content-Type"] != "application/json" {
		t.Errorf("request configuration %+v", req)
	}
	resp := cfg.Response
	outputs := slices.Sorted(maps.Keys(out.Properties))
	if got := slices.Sorted(maps.Keys(resp.TranslationMap)); !slices.Equal(got, outputs) {
		t.Errorf("translationMap maps %v, the output contract has %v", got, outputs)
	}
	if got := slices.Sorted(maps.Keys(resp.TranslationMapDefaults)); !slices.Equal(got, outputs) {
		t.Errorf("translationMapDefaults has %v, the output contract %v", got, outputs)
	}
	for k, path := range resp.TranslationMap {
		if path != "$."+k {
			t.Errorf("translationMap %s = %s, want $.%s", k, path, k)
		}
	}
	for k, d := range resp.TranslationMapDefaults {
		var s string
		if err := json.Unmarshal([]byte(d), &s); err != nil || s != "" {
			t.Errorf("translationMapDefaults %s = %s, want the JSON string \"\"", k, d)
		}
	}
	for _, k := range outputs {
		if strings.Count(resp.SuccessTemplate, "${"+k+"}") != 1 {
			t.Errorf("successTemplate must place ${%s} once", k)
		}
	}
}

// The import file is the three others put together.
func TestImportFileMatches(t *testing.T) {
	var action struct {
		Name            string          `json:"name"`
		IntegrationType string          `json:"integrationType"`
		ActionType      string          `json:"actionType"`
		Config          json.RawMessage `json:"config"`
		Contract        struct {
			Input struct {
				InputSchema json.RawMessage `json:"inputSchema"`
			} `json:"input"`
			Output struct {
				SuccessSchema json.RawMessage `json:"successSchema"`
			} `json:"output"`
		} `json:"contract"`
		Secure bool `json:"secure"`
	}
	readContract(t, "ivr-bridge-verification.custom.json", &action)
	if action.Name == "" || action.IntegrationType != "custom-rest-actions" || action.ActionType != "custom" {
		t.Errorf("import header: %q %q %q", action.Name, action.IntegrationType, action.ActionType)
	}
	var in, out schema
	var cfg configuration
	for _, pair := range []struct {
		file  string
		part  json.RawMessage
		typed any
	}{
		{"input-contract.json", action.Contract.Input.InputSchema, &in},
		{"output-contract.json", action.Contract.Output.SuccessSchema, &out},
		{"configuration.json", action.Config, &cfg},
	} {
		file := readContract(t, pair.file, pair.typed)
		if !sameJSON(t, file, pair.part) {
			t.Errorf("the import file's copy of %s differs from it", pair.file)
		}
	}
}

// Played as Genesys does: the handler's answers, through translationMap, its defaults and
// successTemplate, give an object of strings with every output of the contract.
func TestAnswersThroughTheResponseConfiguration(t *testing.T) {
	var cfg configuration
	readContract(t, "configuration.json", &cfg)
	b := newBridge(t, "", "")
	for _, body := range [][]byte{
		request(t, "start.json"),
		request(t, "code.json", "code", "1"),
		request(t, "status.json", "conversationId", "unknown-call"),
		request(t, "start.json", "conversationId", "other-call", "ani", "tel:+442079460000"),
		request(t, "start.json", "conversationId", "quoted-call", "ani", `tel:"+1 415"\ 555`),
	} {
		a := b.post(body, nil)
		if a.status != 200 {
			t.Fatalf("%d %s", a.status, a.raw)
		}
		rendered := cfg.Response.SuccessTemplate
		for k := range cfg.Response.TranslationMap {
			value := cfg.Response.TranslationMapDefaults[k]
			if v, ok := a.fields[k]; ok {
				enc, _ := json.Marshal(v)
				value = string(enc)
			}
			rendered = strings.ReplaceAll(rendered, "${"+k+"}", value)
		}
		var got map[string]string
		if err := json.Unmarshal([]byte(rendered), &got); err != nil {
			t.Fatalf("rendered successTemplate is not a flat object: %v: %s", err, rendered)
		}
		if !slices.Equal(slices.Sorted(maps.Keys(got)), slices.Sorted(slices.Values(callflow.FieldNames))) {
			t.Fatalf("rendered outputs %v", got)
		}
		for k, v := range a.fields {
			if got[k] != v {
				t.Fatalf("%s: %q through the template, %q in the answer", k, got[k], v)
			}
		}
	}
}

func sameJSON(t *testing.T, a, b json.RawMessage) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(x, y)
}
