package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func TestConfigSchema(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"config", "schema"}, &stdout, &stderr, nil); code != exitOK {
		t.Fatalf("exit %d: %s", code, &stderr)
	}
	var s struct {
		Schema     string                     `json:"$schema"`
		Properties map[string]json.RawMessage `json:"properties"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &s); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, &stdout)
	}
	if s.Schema != "https://json-schema.org/draft/2020-12/schema" || s.Properties["routes"] == nil {
		t.Errorf("not the config schema: %.300s", &stdout)
	}
	for _, args := range [][]string{{"config"}, {"config", "schemas"}, {"config", "schema", "extra"}} {
		stdout.Reset()
		stderr.Reset()
		if code := run(context.Background(), args, &stdout, &stderr, nil); code != exitConfig {
			t.Errorf("%q: exit %d, want %d", args, code, exitConfig)
		}
		if !strings.Contains(stderr.String(), "config schema") {
			t.Errorf("%q: stderr %q lacks the usage", args, &stderr)
		}
	}
}
