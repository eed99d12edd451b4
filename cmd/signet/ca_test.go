package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// testConfig writes a config with a static source, one signing route and
// state_dir stateDir (Go quoting is valid YAML for the paths tests use),
// plus extra top-level YAML, and returns its path.
func testConfig(t *testing.T, stateDir, extra string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "signet.yaml")
	writeFile(t, path, "listen: 127.0.0.1:18080\n"+
		"state_dir: "+strconv.Quote(stateDir)+"\n"+
		"sources:\n  ci:\n    method: static\n    static: {access_key_id: AKIAEXAMPLEKEY000001, secret_access_key: very-secret-value}\n"+
		"routes:\n  - hosts: ['*.amazonaws.com']\n    source: ci\n"+extra)
	return path
}

// testEnviron is a minimal environment: no credentials, proxies or
// SIGNET_* from the developer's shell reach the command.
func testEnviron(t *testing.T, extra ...string) []string {
	return append([]string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH"), "AWS_EC2_METADATA_DISABLED=true"}, extra...)
}

// runCLI runs signet in-process and returns its exit status and output.
func runCLI(t *testing.T, environ []string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr, environ)
	return code, stdout.String(), stderr.String()
}

func TestCAPathAndExport(t *testing.T) {
	// A space in the path: the commands print it as it is.
	state := filepath.Join(t.TempDir(), "state dir")
	cfg := testConfig(t, state, "")
	env := testEnviron(t)
	wantPath := filepath.Join(state, "ca.pem")

	// export first: the CA must be created by whichever command runs first.
	code, pemOut, stderr := runCLI(t, env, "ca", "export", "-c", cfg)
	if code != exitOK {
		t.Fatalf("ca export: exit %d: %s", code, stderr)
	}
	block, rest := pem.Decode([]byte(pemOut))
	if block == nil || block.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
		t.Fatalf("ca export printed %q, want exactly one CERTIFICATE block", pemOut)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("ca export: %v", err)
	}
	if !cert.IsCA {
		t.Errorf("exported certificate is not a CA")
	}
	st, err := os.Stat(state)
	if err != nil {
		t.Fatalf("state_dir not created: %v", err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("state_dir mode %v, want 0700", st.Mode().Perm())
	}

	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, out string)
	}{
		{"path", []string{"ca", "path", "-c", cfg}, func(t *testing.T, out string) {
			if out != wantPath+"\n" {
				t.Errorf("ca path printed %q, want %q", out, wantPath+"\n")
			}
			onDisk, err := os.ReadFile(wantPath)
			if err != nil {
				t.Fatal(err)
			}
			if string(onDisk) != pemOut {
				t.Errorf("%s differs from what ca export printed", wantPath)
			}
		}},
		{"export again gives the same CA", []string{"ca", "export", "-c", cfg}, func(t *testing.T, out string) {
			if out != pemOut {
				t.Errorf("second export differs:\n%s\nfirst:\n%s", out, pemOut)
			}
		}},
		{"der", []string{"ca", "export", "--der", "-c", cfg}, func(t *testing.T, out string) {
			c, err := x509.ParseCertificate([]byte(out))
			if err != nil {
				t.Fatalf("--der output does not parse: %v", err)
			}
			if !c.Equal(cert) {
				t.Errorf("--der gives another certificate than PEM")
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, stderr := runCLI(t, env, tc.args...)
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			tc.check(t, out)
		})
	}
}

func TestCAPathCreatesCA(t *testing.T) {
	state := filepath.Join(t.TempDir(), "new", "state")
	code, out, stderr := runCLI(t, testEnviron(t), "ca", "path", "-c", testConfig(t, state, ""))
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	b, err := os.ReadFile(strings.TrimSuffix(out, "\n"))
	if err != nil {
		t.Fatalf("ca path printed %q, which cannot be read: %v", out, err)
	}
	if block, _ := pem.Decode(b); block == nil {
		t.Errorf("%s holds no PEM", out)
	}
}

func TestCAUsageErrors(t *testing.T) {
	cfg := testConfig(t, filepath.Join(t.TempDir(), "state"), "")
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"no subcommand", []string{"ca"}, "missing subcommand"},
		{"unknown subcommand", []string{"ca", "import"}, `unknown subcommand "import"`},
		{"der on path", []string{"ca", "path", "--der", "-c", cfg}, "der"},
		{"stray argument", []string{"ca", "export", "-c", cfg, "extra"}, `unexpected argument "extra"`},
		{"bad config", []string{"ca", "path", "--log-level", "loud"}, "log.level"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, stderr := runCLI(t, testEnviron(t), tc.args...)
			if code != exitConfig {
				t.Fatalf("exit %d, want %d; stderr %s", code, exitConfig, stderr)
			}
			if out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
			if !strings.Contains(stderr, tc.wantErr) {
				t.Errorf("stderr %q does not contain %q", stderr, tc.wantErr)
			}
		})
	}
}

// A state directory others can read is refused by the CA's own checks,
// and the CLI says it is the config's (exit 2), naming the directory.
func TestCAInsecureStateDir(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(state, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(state, 0o755); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, testEnviron(t), "ca", "path", "-c", testConfig(t, state, ""))
	if code != exitConfig || !strings.Contains(stderr, state) {
		t.Fatalf("exit %d, stderr %q: want %d and the directory named", code, stderr, exitConfig)
	}
}
