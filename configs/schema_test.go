package configs_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	toml "github.com/pelletier/go-toml/v2"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"go.yaml.in/yaml/v3"

	"github.com/signet-proxy/signet/configs"
)

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	raw, err := configs.Schema()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("signet.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	// Compile checks the schema against the draft 2020-12 meta-schema.
	sch, err := c.Compile("signet.schema.json")
	if err != nil {
		t.Fatalf("schema does not compile: %v", err)
	}
	return sch
}

// instance turns a config file into the JSON value an editor validates,
// by the file's extension as Load reads it.
func instance(t *testing.T, name string, data []byte) any {
	t.Helper()
	var v any
	var err error
	switch filepath.Ext(name) {
	case ".yaml", ".yml":
		err = yaml.Unmarshal(data, &v)
	case ".toml":
		err = toml.Unmarshal(data, &v)
	case ".json":
		err = json.Unmarshal(data, &v)
	default:
		t.Fatalf("%s: unknown extension", name)
	}
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if v == nil {
		v = map[string]any{}
	}
	j, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("%s: to JSON: %v", name, err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

// configFiles are every config that ships: the examples, the signet
// configs of the deploy examples, and the embedded default.
func configFiles(t *testing.T) []string {
	t.Helper()
	examples, _ := filepath.Glob("examples/*")
	deploy := deployConfigs(t)
	if len(examples) == 0 {
		t.Fatal("no examples")
	}
	return slices.Concat(examples, deploy, []string{"default.yaml"})
}

// TestSchemaAcceptsEveryShippedConfig: an editor with the schema must not
// flag a config that signet loads.
func TestSchemaAcceptsEveryShippedConfig(t *testing.T) {
	sch := compileSchema(t)
	for _, f := range configFiles(t) {
		t.Run(f, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := sch.Validate(instance(t, f, data)); err != nil {
				t.Errorf("%s does not validate:\n%v", f, err)
			}
		})
	}
}

// TestSchemaAcceptsRenderedConfigs: what `signet check` prints, loaded
// configs written back with every key, validates too, so the schema knows
// every key Render writes.
func TestSchemaAcceptsRenderedConfigs(t *testing.T) {
	sch := compileSchema(t)
	for _, f := range configFiles(t) {
		t.Run(f, func(t *testing.T) {
			cfg, err := configs.Load(configs.LoadOptions{File: f, Environ: home})
			if err != nil {
				t.Fatal(err)
			}
			for _, format := range []string{configs.FormatYAML, configs.FormatJSON, configs.FormatTOML} {
				out, err := cfg.Render(format)
				if err != nil {
					t.Fatal(err)
				}
				if err := sch.Validate(instance(t, "rendered."+format, out)); err != nil {
					t.Errorf("rendered %s does not validate:\n%v\n%s", format, err, out)
				}
			}
		})
	}
}

// TestSchemaRefusesWhatLoadRefuses: mistakes an editor should underline,
// each also refused by Load.
func TestSchemaRefusesWhatLoadRefuses(t *testing.T) {
	sch := compileSchema(t)
	tests := []struct {
		name, yaml string
		// wantSchema is the keyword that refuses it.
		wantSchema string
	}{
		{"unknown top-level key", "listn: 127.0.0.1:8080\n", "additionalProperties"},
		{"typo in a route", "routes:\n  - hosts: ['*.amazonaws.com']\n    source: default\n    paylaod: signed\n", "additionalProperties"},
		{"bad enum", "log: {level: loud}\n", "enum"},
		{"bad payload", "routes:\n  - hosts: ['*.amazonaws.com']\n    source: default\n    payload: sigend\n", "enum"},
		{"bare number as duration", "shutdown_timeout: 30\n", "type"},
		{"bad duration", "shutdown_timeout: 30 seconds\n", "pattern"},
		{"negative duration", "sources:\n  default:\n    refresh: {advisory: -5m}\n", "pattern"},
		{"route without source", "routes:\n  - hosts: ['*.amazonaws.com']\n", "required"},
		{"two method blocks", "sources:\n  ci:\n    method: static\n    static: {access_key_id: AKIAEXAMPLE0000001, secret_access_key: x}\n    chain: {profile: p}\n", "false"},
		{"pin in the config", "sources:\n  d:\n    method: iot\n    iot:\n      endpoint: c1.credentials.iot.eu-west-1.amazonaws.com\n      role_alias: r\n      certificate: /c.pem\n      pkcs11: {module: /m.so, token_label: t, key_label: k, pin: '1234'}\n", "not"},
		{"cache size out of range", "intercept: {cache_size: 0}\n", "minimum"},
		{"bad source name", "sources:\n  Prod:\n    method: chain\n", "propertyNames"},
		{"null value", "routes:\n", "type"},
		{"list where a mapping goes", "log: [debug]\n", "type"},
		{"bad region", "routes:\n  - hosts: ['*.example.com']\n    source: default\n    region: Europe\n", "pattern"},
		{"bad memory limit", "sources:\n  w:\n    method: wasm\n    wasm: {module: /m.wasm, memory_limit: 64 megs}\n", "pattern"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := sch.Validate(instance(t, "bad.yaml", []byte(tt.yaml)))
			if err == nil {
				t.Fatalf("schema accepts:\n%s", tt.yaml)
			}
			if kws := keywords(err); !slices.Contains(kws, tt.wantSchema) {
				t.Errorf("schema error is not from keyword %q but %q:\n%v", tt.wantSchema, kws, err)
			}
			if _, err := configs.LoadBytes([]byte("state_dir: /tmp/signet\n"+tt.yaml), configs.FormatYAML); err == nil {
				t.Errorf("Load accepts what the schema refuses:\n%s", tt.yaml)
			}
		})
	}
}

// keywords lists the last keyword of every error in a validation error's
// tree: "enum", "additionalProperties", "false" for a false schema...
func keywords(err error) []string {
	var out []string
	var walk func(ve *jsonschema.ValidationError)
	walk = func(ve *jsonschema.ValidationError) {
		// A few kinds have no keyword path; their type names them.
		switch k := ve.ErrorKind.(type) {
		case *kind.Not:
			out = append(out, "not")
		case *kind.FalseSchema:
			out = append(out, "false")
		case nil, *kind.Group:
		default:
			if kp := k.KeywordPath(); len(kp) > 0 {
				out = append(out, kp[len(kp)-1])
			}
		}
		for _, c := range ve.Causes {
			walk(c)
		}
	}
	if ve, ok := err.(*jsonschema.ValidationError); ok {
		walk(ve)
	}
	return out
}

// TestSchemaDescribesEveryKey: an editor shows the description while one
// types a key. A new key needs an entry in fieldSpecs (configs/schema.go).
func TestSchemaDescribesEveryKey(t *testing.T) {
	var s map[string]any
	raw, err := configs.Schema()
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	var missing, untyped []string
	var walk func(p string, s map[string]any)
	walk = func(p string, s map[string]any) {
		if len(s) == 0 || len(s) == 1 && s["description"] != nil {
			untyped = append(untyped, p)
		}
		if props, ok := s["properties"].(map[string]any); ok {
			for k, v := range props {
				ps := v.(map[string]any)
				if ps["description"] == nil {
					missing = append(missing, strings.TrimPrefix(p+"."+k, "."))
				}
				walk(p+"."+k, ps)
			}
		}
		for _, k := range []string{"items", "additionalProperties"} {
			if sub, ok := s[k].(map[string]any); ok {
				walk(p+"[]", sub)
			}
		}
	}
	walk("", s)
	sort.Strings(missing)
	sort.Strings(untyped)
	if len(missing) > 0 {
		t.Errorf("keys without a description (add them to fieldSpecs in configs/schema.go):\n  %s", strings.Join(missing, "\n  "))
	}
	if len(untyped) > 0 {
		t.Errorf("keys whose Go type the schema does not know (extend schemaBuilder.of):\n  %s", strings.Join(untyped, "\n  "))
	}
}

// TestSchemaPatternsMatchParsers: the duration and size patterns accept
// exactly what the decoder reads (non-negative durations only).
func TestSchemaPatternsMatchParsers(t *testing.T) {
	var s struct {
		Properties struct {
			ShutdownTimeout struct {
				Pattern string `json:"pattern"`
			} `json:"shutdown_timeout"`
			Sources struct {
				AdditionalProperties struct {
					Properties struct {
						Wasm struct {
							Properties struct {
								MemoryLimit struct {
									AnyOf []struct {
										Pattern string `json:"pattern"`
									} `json:"anyOf"`
								} `json:"memory_limit"`
							} `json:"properties"`
						} `json:"wasm"`
					} `json:"properties"`
				} `json:"additionalProperties"`
			} `json:"sources"`
		} `json:"properties"`
	}
	raw, _ := configs.Schema()
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	dur := regexp.MustCompile(s.Properties.ShutdownTimeout.Pattern)
	for _, v := range []string{"0", "0s", "30s", "1h30m", "1.5h", ".5s", "100ms", "10µs", "10us", "3ns", "1h2m3s4ms",
		"", "30", "-1s", "+1s", "1d", "1 h", "s", "1.s5", "1e3s", "30 s"} {
		d, err := time.ParseDuration(v)
		want := err == nil && d >= 0 && !strings.HasPrefix(v, "+") && !strings.HasPrefix(v, "-")
		if got := dur.MatchString(v); got != want {
			t.Errorf("duration %q: pattern says %v, time.ParseDuration says %v (%v)", v, got, want, err)
		}
	}
	anyOf := s.Properties.Sources.AdditionalProperties.Properties.Wasm.Properties.MemoryLimit.AnyOf
	if len(anyOf) != 2 || anyOf[1].Pattern == "" {
		t.Fatalf("memory_limit schema: %+v", anyOf)
	}
	size := regexp.MustCompile(anyOf[1].Pattern)
	for _, v := range []string{"64MiB", "64mib", "128 MB", " 1GiB ", "65536", "1kB", "1KB", "7B", "",
		"1.5MiB", "MiB", "1 TiB", "1MiBs", "-1", "1 M"} {
		_, err := configs.ParseByteSize(v)
		if got := size.MatchString(v); got != (err == nil) {
			t.Errorf("size %q: pattern says %v, ParseByteSize says %v", v, got, err)
		}
	}
}

// FuzzSchemaDurationPattern: the schema never underlines a duration that
// signet accepts (a non-negative one without a sign).
func FuzzSchemaDurationPattern(f *testing.F) {
	var s struct {
		Properties struct {
			ShutdownTimeout struct {
				Pattern string `json:"pattern"`
			} `json:"shutdown_timeout"`
		} `json:"properties"`
	}
	raw, err := configs.Schema()
	if err != nil {
		f.Fatal(err)
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		f.Fatal(err)
	}
	re := regexp.MustCompile(s.Properties.ShutdownTimeout.Pattern)
	for _, v := range []string{"30s", "1h30m", "1.5h", ".5s", "0", "10µs", "1.h"} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) {
		d, err := time.ParseDuration(v)
		if err == nil && d >= 0 && !strings.HasPrefix(v, "+") && !strings.HasPrefix(v, "-") && !re.MatchString(v) {
			t.Fatalf("time.ParseDuration accepts %q but the schema's pattern does not", v)
		}
	})
}
