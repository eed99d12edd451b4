package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signet-proxy/signet/configs"
)

// Secrets the test provider hands out or is given; none may show in any
// output.
const (
	wasmKeyID      = "ASIAWASMTESTKEY00001"
	wasmToken      = "IQoJb3JpZ2luX2VjEWasmTestSessionTokenValue0123456789abcdefEXAMPLE"
	wasmSecret     = "wasmTestSecretKey/EXAMPLE+0123456789abcd"
	wasmFileSecret = "wasmFileSecretKey/EXAMPLE+0123456789abcd"
	wasmFailKeyID  = "AKIAWASMFAILEXAMPLE1"
	wasmLongTermSK = "wasmLongTermSecret/EXAMPLE+0123456789abc"
)

// buildWasmProvider builds testdata/wasmprovider for wasip1 and returns
// the module's path.
func buildWasmProvider(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build the test module: %v", err)
	}
	out := filepath.Join(t.TempDir(), "provider.wasm")
	cmd := exec.Command(goBin, "build", "-o", out, "./testdata/wasmprovider")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the test module: %v\n%s", err, b)
	}
	return out
}

// badImportModule is a module that imports env.f, which no provider may.
var badImportModule = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version 1
	0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type section: func() -> ()
	0x02, 0x09, 0x01, 0x03, 'e', 'n', 'v', 0x01, 'f', 0x00, 0x00, // import section: env.f, type 0
}

func fileSum(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// TestWasm builds the test provider once and runs it through `signet wasm
// run`, `signet check` and provision.
func TestWasm(t *testing.T) {
	mod := buildWasmProvider(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "secret"), wasmFileSecret+"\n")
	bad := filepath.Join(t.TempDir(), "bad.wasm")
	if err := os.WriteFile(bad, badImportModule, 0o600); err != nil {
		t.Fatal(err)
	}
	// One home for all, in this order: compiling the module is slow
	// (under -race, a minute), and the first `wasm run` leaves the
	// compiled code in the state directory's cache for the others.
	home := t.TempDir()
	t.Run("run", func(t *testing.T) { testWasmRun(t, home, mod, dir, bad) })
	t.Run("check", func(t *testing.T) { testWasmCheck(t, home, mod, dir, bad) })
	t.Run("provision", func(t *testing.T) { testWasmProvision(t, home, mod, dir) })
}

func testWasmRun(t *testing.T, home, mod, dir, bad string) {
	env := []string{"HOME=" + home}
	cfgFile := filepath.Join(t.TempDir(), "signet.yaml")
	writeFile(t, cfgFile, `sources:
  w:
    method: wasm
    wasm:
      module: `+mod+`
      sha256: `+fileSum(t, mod)+`
      args: [ok]
      env: {KEY_ID: `+wasmKeyID+`}
      stdin: `+wasmToken+`
      dir: `+dir+`
  plain:
    method: static
    static: {access_key_id: AKIAEXAMPLEKEY000001, secret_access_key: very-secret-value}
routes:
  - {hosts: ["*.amazonaws.com"], source: w}
`)
	okFlags := []string{"--env", "KEY_ID=" + wasmKeyID, "--stdin", wasmToken}
	args := func(a ...string) []string { return append([]string{"wasm", "run"}, a...) }
	tests := []struct {
		name    string
		args    []string
		want    int
		wantOut []string
		wantErr []string
	}{
		{name: "ok", args: args(append(okFlags, mod, "--", "ok")...), want: exitOK,
			wantOut: []string{"module", "duration", "access_key_id      ASIA…0001", "secret_access_key  REDACTED", "session_token      REDACTED", "expires", "(in ",
				"stderr:\n  | wasmprovider: fetched credentials for [REDACTED]"}},
		{name: "args without --", args: args(append(okFlags, mod, "ok")...), want: exitOK, wantOut: []string{"ASIA…0001"}},
		{name: "dir", args: args(append(okFlags, "--dir", dir, mod, "ok")...), want: exitOK, wantOut: []string{"ASIA…0001"}},
		{name: "no expiration", args: args(mod, "noexp"), want: exitOK,
			wantOut: []string{"AKIA…0001", "session_token      (none)", "expires            (none: kept for refresh_interval 1h0m0s)", "stderr             (empty)"}},
		{name: "exit status", args: args(mod, "fail"), want: exitFail,
			wantOut: []string{"stderr:\n  | wasmprovider: starting\n  | wasmprovider: role denied for [REDACTED]"},
			wantErr: []string{`signet wasm: wasm provider: run: exit status 3; stderr: "wasmprovider: starting\nwasmprovider: role denied for [REDACTED]"`}},
		{name: "not JSON", args: args(mod, "garbage"), want: exitFail, wantErr: []string{"wasm provider: credential_process output is not a JSON object"}},
		{name: "unknown mode", args: args(mod), want: exitFail, wantErr: []string{"exit status 2", "unknown mode"}},
		{name: "timeout", args: args("--timeout", "500ms", mod, "spin"), want: exitFail, wantErr: []string{"deadline"}},
		{name: "source", args: args("-c", cfgFile, "--source", "w"), want: exitOK, wantOut: []string{"source             w (wasm)", "ASIA…0001", "REDACTED"}},

		{name: "no subcommand", args: []string{"wasm"}, want: exitConfig, wantErr: []string{"missing subcommand", "signet wasm run [-c FILE] --source NAME"}},
		{name: "unknown subcommand", args: []string{"wasm", "exec"}, want: exitConfig, wantErr: []string{`unknown subcommand "exec"`}},
		{name: "no module", args: args(), want: exitConfig, wantErr: []string{"missing MODULE.wasm"}},
		{name: "help", args: args("-h"), want: exitConfig, wantErr: []string{"-allow-host", "-source"}},
		{name: "missing module", args: args(filepath.Join(home, "absent.wasm")), want: exitConfig, wantErr: []string{"absent.wasm", "no such file"}},
		{name: "bad import", args: args(bad), want: exitConfig, wantErr: []string{"env.f"}},
		{name: "wrong sha256", args: args("--sha256", strings.Repeat("0", 64), mod, "ok"), want: exitConfig, wantErr: []string{"sha256"}},
		{name: "bad memory limit", args: args("--memory-limit", "lots", mod), want: exitConfig, wantErr: []string{"--memory-limit"}},
		{name: "bad env flag", args: args("--env", "NOVALUE", mod), want: exitConfig, wantErr: []string{"NAME=VALUE"}},
		{name: "config without source", args: args("-c", cfgFile, mod), want: exitConfig, wantErr: []string{"-c needs --source"}},
		{name: "source with module flags", args: args("-c", cfgFile, "--source", "w", "--allow-host", "a.example.com", "--stdin", "x"), want: exitConfig,
			wantErr: []string{"--allow-host, --stdin cannot be used with --source"}},
		{name: "source with module", args: args("-c", cfgFile, "--source", "w", mod), want: exitConfig, wantErr: []string{"unexpected argument"}},
		{name: "source unknown", args: args("-c", cfgFile, "--source", "nope"), want: exitConfig, wantErr: []string{`--source "nope": no such source`}},
		{name: "source not wasm", args: args("-c", cfgFile, "--source", "plain"), want: exitConfig, wantErr: []string{"method is static, not wasm"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			got := run(context.Background(), tc.args, &stdout, &stderr, env)
			if got != tc.want {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", got, tc.want, &stdout, &stderr)
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout does not contain %q:\n%s", w, &stdout)
				}
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr does not contain %q:\n%s", w, &stderr)
				}
			}
			for _, secret := range []string{wasmKeyID, wasmToken, wasmSecret, wasmFileSecret, wasmFailKeyID, wasmLongTermSK, "very-secret-value"} {
				if strings.Contains(stdout.String()+stderr.String(), secret) {
					t.Errorf("output shows %q:\nstdout: %s\nstderr: %s", secret, &stdout, &stderr)
				}
			}
		})
	}
}

// testWasmCheck: check loads every module, so a bad one is a config error
// (exit 2) that names the key; a good one is printed with env and stdin
// redacted. Without a state directory, check creates none.
func testWasmCheck(t *testing.T, home, mod, dir, bad string) {
	env := []string{"HOME=" + home}
	config := func(block string) string {
		f := filepath.Join(t.TempDir(), "signet.yaml")
		writeFile(t, f, "sources:\n  w:\n    method: wasm\n    wasm:\n"+block+"routes:\n  - {hosts: [\"*.amazonaws.com\"], source: w}\n")
		return f
	}
	sum := fileSum(t, mod)
	tests := []struct {
		name    string
		block   string
		want    int
		wantOut string
		wantErr []string
	}{
		{name: "good", block: "      module: " + mod + "\n      sha256: " + strings.ToUpper(sum) + "\n      env: {KEY_ID: " + wasmKeyID + "}\n      stdin: " + wasmToken + "\n      dir: " + dir + "\n",
			want: exitOK, wantOut: "KEY_ID: REDACTED"},
		{name: "missing module", block: "      module: " + filepath.Join(home, "absent.wasm") + "\n", want: exitConfig,
			wantErr: []string{"config: sources.w.wasm.module:", "absent.wasm"}},
		{name: "wrong sha256", block: "      module: " + mod + "\n      sha256: " + strings.Repeat("ab", 32) + "\n", want: exitConfig,
			wantErr: []string{"config: sources.w.wasm.sha256:", sum}},
		{name: "bad import", block: "      module: " + bad + "\n", want: exitConfig, wantErr: []string{"config: sources.w.wasm.module:", "env.f"}},
		{name: "not wasm", block: "      module: " + dir + "/secret\n", want: exitConfig, wantErr: []string{"config: sources.w.wasm.module:"}},
		{name: "missing dir", block: "      module: " + mod + "\n      dir: " + filepath.Join(home, "nodir") + "\n", want: exitConfig,
			wantErr: []string{"config: sources.w.wasm.dir:", "nodir"}},
		{name: "invalid block", block: "      module: " + mod + "\n      allow_hosts: [\"*\"]\n", want: exitConfig, wantErr: []string{"sources.w.wasm.allow_hosts[0]"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			got := run(context.Background(), []string{"check", "-c", config(tc.block)}, &stdout, &stderr, env)
			if got != tc.want {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", got, tc.want, &stdout, &stderr)
			}
			if !strings.Contains(stdout.String(), tc.wantOut) {
				t.Errorf("stdout does not contain %q:\n%s", tc.wantOut, &stdout)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr does not contain %q:\n%s", w, &stderr)
				}
			}
			for _, secret := range []string{wasmKeyID, wasmToken, wasmFileSecret} {
				if strings.Contains(stdout.String()+stderr.String(), secret) {
					t.Errorf("output shows %q", secret)
				}
			}
		})
	}
	fresh := t.TempDir()
	var stdout, stderr bytes.Buffer
	if got := run(context.Background(), []string{"check", "-c", config("      module: " + bad + "\n")}, &stdout, &stderr, []string{"HOME=" + fresh}); got != exitConfig {
		t.Errorf("exit %d, want %d; stderr: %s", got, exitConfig, &stderr)
	}
	if _, err := os.Stat(filepath.Join(fresh, ".local/state/signet")); err == nil {
		t.Error("check created the state directory")
	}
}

// testWasmProvision builds a wasm source as serve does: the source hands
// out the module's keys (the secret read from the mounted directory), and
// compiled code is cached in a private directory of the state directory.
func testWasmProvision(t *testing.T, home, mod, dir string) {
	state := filepath.Join(home, ".local/state/signet")
	cfg, err := configs.LoadBytes([]byte(`state_dir: `+state+`
listen: 127.0.0.1:0
sources:
  w:
    method: wasm
    wasm: {module: `+mod+`, args: [ok], env: {KEY_ID: `+wasmKeyID+`}, stdin: `+wasmToken+`, dir: `+dir+`}
routes:
  - {hosts: ["*.amazonaws.com"], source: w}
`), configs.FormatYAML)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cs, err := provision(context.Background(), cfg, log, forServe)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.close()
	creds, err := cs.sources["w"].Credentials(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if creds.AccessKeyID != wasmKeyID || creds.SecretAccessKey != wasmFileSecret || creds.SessionToken != wasmToken || !creds.CanExpire() || creds.Origin != "wasm:w" {
		t.Errorf("credentials %v (origin %q)", creds, creds.Origin)
	}
	st, err := os.Stat(wasmCacheDir(cfg))
	if err != nil {
		t.Fatalf("no compilation cache: %v", err)
	}
	if perm := st.Mode().Perm(); perm != 0o700 {
		t.Errorf("cache dir mode %o, want 700", perm)
	}
}
