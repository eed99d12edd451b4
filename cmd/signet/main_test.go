package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunExitCodes(t *testing.T) {
	home := t.TempDir()
	env := []string{"HOME=" + home, "AWS_EC2_METADATA_DISABLED=true"}
	good := filepath.Join(t.TempDir(), "good.yaml")
	writeFile(t, good, "sources:\n  ci:\n    method: static\n    static: {access_key_id: AKIAEXAMPLEKEY000001, secret_access_key: very-secret-value}\n"+
		"routes:\n  - hosts: ['*.amazonaws.com']\n    source: ci\n")
	typo := filepath.Join(t.TempDir(), "typo.yaml")
	writeFile(t, typo, "routes:\n  - hosts: ['*.amazonaws.com']\n    source: default\n    paylaod: signed\n")
	tests := []struct {
		name       string
		args       []string
		env        []string
		want       int
		wantOut    string
		wantErr    string
		notInOut   string
		notCreated string
	}{
		{name: "no command", args: nil, want: exitConfig, wantErr: "usage"},
		{name: "unknown command", args: []string{"frobnicate"}, want: exitConfig, wantErr: `unknown command "frobnicate"`},
		{name: "help", args: []string{"--help"}, want: exitOK, wantErr: "serve"},
		{name: "version", args: []string{"version"}, want: exitOK, wantOut: "signet "},
		{name: "bad flag", args: []string{"check", "--nope"}, want: exitConfig, wantErr: "nope"},
		{name: "stray argument", args: []string{"check", "extra"}, want: exitConfig, wantErr: `unexpected argument "extra"`},
		{name: "embedded default", args: []string{"check"}, want: exitOK, wantOut: "*.amazonaws.com",
			notCreated: filepath.Join(home, ".local/state/signet")},
		{name: "good file, secret redacted", args: []string{"check", "-c", good}, want: exitOK, wantOut: "REDACTED", notInOut: "very-secret-value"},
		{name: "json output", args: []string{"check", "-c", good, "-o", "json"}, want: exitOK, wantOut: `"listen"`, notInOut: "very-secret-value"},
		{name: "typo names the key", args: []string{"check", "-c", typo}, want: exitConfig, wantErr: "routes[0].paylaod"},
		{name: "missing file", args: []string{"check", "-c", filepath.Join(home, "absent.yaml")}, want: exitConfig, wantErr: "absent.yaml"},
		{name: "bad flag value", args: []string{"check", "--log-level", "loud"}, want: exitConfig, wantErr: "log.level"},
		{name: "unknown env key", args: []string{"check"}, env: []string{"SIGNET_LISTN=x"}, want: exitConfig, wantErr: "SIGNET_LISTN"},
		{name: "missing ca file", args: []string{"check"}, env: []string{"SIGNET_UPSTREAM__CA_FILE=/nonexistent/ca.pem"}, want: exitConfig, wantErr: "upstream.ca_file"},
		{name: "missing profile", args: []string{"check"}, env: []string{"SIGNET_SOURCES__DEFAULT__CHAIN__PROFILE=no-such-profile"}, want: exitConfig, wantErr: "no-such-profile"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			got := run(context.Background(), tc.args, &stdout, &stderr, append(append([]string(nil), env...), tc.env...))
			if got != tc.want {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", got, tc.want, &stdout, &stderr)
			}
			if !strings.Contains(stdout.String(), tc.wantOut) {
				t.Errorf("stdout %q does not contain %q", &stdout, tc.wantOut)
			}
			if !strings.Contains(stderr.String(), tc.wantErr) {
				t.Errorf("stderr %q does not contain %q", &stderr, tc.wantErr)
			}
			if tc.notInOut != "" && strings.Contains(stdout.String()+stderr.String(), tc.notInOut) {
				t.Errorf("output contains %q", tc.notInOut)
			}
			if tc.notCreated != "" {
				if _, err := os.Stat(tc.notCreated); err == nil {
					t.Errorf("check created %s", tc.notCreated)
				}
			}
		})
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
