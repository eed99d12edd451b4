package credentials

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// script writes an executable shell script to a temp dir and returns its
// path.
func script(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "mfa.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMFACommand(t *testing.T) {
	tests := []struct {
		name, body string
		timeout    time.Duration
		want       string
		errHas     []string
		errHasnt   []string
	}{
		{name: "prints code", body: "echo 123456", want: "123456"},
		{name: "two codes, last wins", body: "echo 111111; echo 222222", want: "222222"},
		{name: "standalone only", body: "echo 'code: 123456 expires 1234567'", want: "123456"},
		{name: "label then code", body: "echo 'AWS prod  654321'", want: "654321"},
		{name: "seven digits only", body: "echo 1234567", errHas: []string{"no 6-digit token", "mfa.sh"}},
		{name: "glued to letters", body: "echo abc123456", errHas: []string{"no 6-digit token"}},
		{name: "prints nothing", body: "true", errHas: []string{"printed no 6-digit token on stdout", "mfa.sh"}},
		{name: "exit 1 with stderr", body: "echo 'device not found; last code 987654 key AKIAIOSFODNN7EXAMPLEKEY' >&2; exit 1",
			errHas:   []string{"mfa.sh", "failed (exit status 1)", "stderr: device not found; last code ###### key [redacted]"},
			errHasnt: []string{"987654", "AKIAIOSFODNN7EXAMPLEKEY"}},
		{name: "long stderr is cut", body: "i=0; while [ $i -lt 200 ]; do printf 'word ' >&2; i=$((i+1)); done; exit 3",
			errHas: []string{"exit status 3", "…"}},
		{name: "timeout", body: "exec sleep 10", timeout: 200 * time.Millisecond, errHas: []string{"mfa.sh", "timed out after 200ms"}},
		{name: "timeout with a child holding stdout", body: "sleep 10; echo 123456", timeout: 200 * time.Millisecond, errHas: []string{"timed out"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := NewMFACommand([]string{script(t, tt.body)}, MFAOptions{Timeout: tt.timeout})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			got, err := m.Token(context.Background())
			if time.Since(start) > 5*time.Second {
				t.Errorf("Token took %s", time.Since(start))
			}
			if tt.want != "" {
				if err != nil || got != tt.want {
					t.Fatalf("Token = %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Token = %q, want an error", got)
			}
			for _, s := range tt.errHas {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			for _, s := range tt.errHasnt {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q leaks %q", err, s)
				}
			}
		})
	}
}

func TestMFACommandEnvIsolation(t *testing.T) {
	t.Setenv("SIGNET_MFA_LISTED", "yes")
	t.Setenv("SIGNET_MFA_SECRET", "must-not-pass")
	// The script gets no PATH, so it names env by path.
	out := filepath.Join(t.TempDir(), "env.txt")
	p := script(t, "/usr/bin/env > "+out+"; echo 123456")
	m, err := NewMFACommand([]string{p}, MFAOptions{Env: []string{"SIGNET_MFA_LISTED", "SIGNET_MFA_UNSET"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var vars []string
	for l := range strings.Lines(string(b)) {
		vars = append(vars, strings.TrimSpace(l))
	}
	// sh may add PWD (and dash SHLVL/OLDPWD) of its own; nothing of ours
	// but the listed variable may be there.
	for _, v := range vars {
		name, _, _ := strings.Cut(v, "=")
		switch name {
		case "SIGNET_MFA_LISTED", "PWD", "SHLVL", "OLDPWD", "_":
		default:
			t.Errorf("unlisted variable %q reached the command", v)
		}
	}
	if !slices.Contains(vars, "SIGNET_MFA_LISTED=yes") {
		t.Errorf("listed variable missing: %q", vars)
	}
}

func TestMFACommandResolvedWithParentPATH(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "signet-test-mfa"), []byte("#!/bin/sh\necho 424242\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	m, err := NewMFACommand([]string{"signet-test-mfa"}, MFAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := m.Token(context.Background()); err != nil || got != "424242" {
		t.Fatalf("Token = %q, %v", got, err)
	}
	if _, err := NewMFACommand([]string{"signet-no-such-mfa-command"}, MFAOptions{}); err == nil || !strings.Contains(err.Error(), "signet-no-such-mfa-command") {
		t.Fatalf("missing command: err = %v", err)
	}
}
