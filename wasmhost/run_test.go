package wasmhost

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestRunCredentialsCommand(t *testing.T) {
	m := load(t, ModuleConfig{Args: []string{"creds"}})
	var creds struct {
		Version     int
		AccessKeyId string
	}
	res := runJSON(t, m, &creds)
	if creds.Version != 1 || creds.AccessKeyId != "AKIDPROBE" {
		t.Fatalf("stdout %q", res.Stdout)
	}
	if res.Duration <= 0 {
		t.Errorf("duration %v", res.Duration)
	}
}

// TestGuestSeesOnlyItsConfig checks the sandbox's inputs: argv, env, stdin,
// and that clocks and randomness are the real ones, not wazero's
// deterministic defaults.
func TestGuestSeesOnlyItsConfig(t *testing.T) {
	t.Setenv("SIGNETTEST_WASMHOST_LEAK", "host-env-must-not-leak")
	m := load(t, ModuleConfig{
		Args:  []string{"env-clock", "--flag", "x y"},
		Env:   map[string]string{"GIVEN": "yes", "ALSO": "1"},
		Stdin: "stdin-text",
	})
	type report struct {
		ABI     int
		Unix    int64
		Slept   bool
		Random  string
		Environ []string
		Args    []string
	}
	var runs [2]report
	for i := range runs {
		res, err := m.Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		first, rest, _ := strings.Cut(string(res.Stdout), "\n")
		if rest != "stdin-text" {
			t.Errorf("stdin: got %q", rest)
		}
		if err := jsonUnmarshal(first, &runs[i]); err != nil {
			t.Fatal(err)
		}
	}
	r := runs[0]
	if r.ABI != abiVersion {
		t.Errorf("abi_version %d", r.ABI)
	}
	if got, want := strings.Join(r.Args, "|"), "probe.wasm|env-clock|--flag|x y"; got != want {
		t.Errorf("args %q, want %q", got, want)
	}
	if got, want := strings.Join(r.Environ, "|"), "ALSO=1|GIVEN=yes"; got != want {
		t.Errorf("environ %q, want %q", got, want)
	}
	// wazero's default walltime is fixed at 2022-01-01; a real clock is
	// within a day of the host's.
	if d := time.Since(time.Unix(r.Unix, 0)); d < -24*time.Hour || d > 24*time.Hour {
		t.Errorf("guest clock %v is not the host's", time.Unix(r.Unix, 0))
	}
	if !r.Slept {
		t.Error("guest's monotonic clock did not advance across a sleep")
	}
	if runs[0].Random == runs[1].Random {
		t.Errorf("random_get returned %s twice: not crypto/rand", r.Random)
	}
}

func jsonUnmarshal(s string, v any) error {
	return jsonDecode([]byte(s), v)
}

// TestSpinningGuestLeavesProcessWorking is the guarantee a host needs
// from a sandbox: a guest that never yields must not stop the rest of the
// process. Native code compiled by wazero cannot be preempted by the Go
// runtime, so without CloseOnContextDone a spinning guest blocks every
// stop-the-world, and runtime.GC() never returns (RATIONALE.md). The
// deadline is long on purpose: GC must complete while the guest is still
// spinning, not because it was stopped.
func TestSpinningGuestLeavesProcessWorking(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "served")
	}))
	defer srv.Close()
	cases := []struct {
		name  string
		mode  string
		procs int
	}{
		{"loop/GOMAXPROCS=1", "spin", 1},
		{"loop/GOMAXPROCS=2", "spin", 2},
		{"calltree/GOMAXPROCS=1", "calltree", 1},
		{"calltree/GOMAXPROCS=2", "calltree", 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(tc.procs))
			cfg := ModuleConfig{Name: t.Name(), Args: []string{tc.mode}, Timeout: 5 * time.Minute}
			if tc.mode == "calltree" {
				cfg.Path = writeModule(t, callTreeModule(60))
			}
			m := load(t, cfg)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() {
				_, err := m.Run(ctx)
				done <- err
			}()
			sink.wait(t, t.Name(), "spinning")
			runtime.GC()
			runtime.GC()
			resp, err := http.Get(srv.URL)
			if err != nil {
				t.Fatalf("another goroutine's request failed while the guest spins: %v", err)
			}
			resp.Body.Close()
			select {
			case err := <-done:
				t.Fatalf("guest stopped before the checks ran (%v); the test proves nothing", err)
			default:
			}
			cancel()
			err = <-done
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("after cancel: %v", err)
			}
		})
	}
}

func TestDeadlineStopsGuest(t *testing.T) {
	cases := []struct {
		name string
		args []string
		bin  []byte
	}{
		{"loop", []string{"spin"}, nil},
		{"sleep", []string{"sleep"}, nil},
		{"calltree", nil, callTreeModule(60)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ModuleConfig{Args: tc.args, Timeout: 300 * time.Millisecond}
			if tc.bin != nil {
				cfg.Path = writeModule(t, tc.bin)
			}
			m := load(t, cfg)
			_, err := m.Run(context.Background())
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("got %v, want a deadline error", err)
			}
		})
	}
}

func TestMemoryLimit(t *testing.T) {
	m := load(t, ModuleConfig{Args: []string{"alloc"}, MemoryLimit: 32 << 20})
	res, err := m.Run(context.Background())
	if !errors.Is(err, ErrMemoryLimit) {
		t.Fatalf("got %v (stderr %q), want ErrMemoryLimit", err, res.Stderr)
	}
	if !strings.Contains(err.Error(), "32 MiB") {
		t.Errorf("error does not name the limit: %v", err)
	}
	// The host is unharmed: the next call of another module works.
	ok := load(t, ModuleConfig{Args: []string{"creds"}})
	if _, err := ok.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestMemoryLimitBelowInitialMemoryRefusedAtLoad(t *testing.T) {
	needGuests(t)
	_, err := sharedHost.Load(context.Background(), ModuleConfig{Path: probeWasm, MemoryLimit: 64 << 10})
	if err == nil || !strings.Contains(err.Error(), "initial memory") {
		t.Fatalf("got %v", err)
	}
}

func TestFilesystemIsolation(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token.txt"), []byte("file-content"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Run("no dir", func(t *testing.T) {
		m := load(t, ModuleConfig{Args: []string{"fs"}})
		var r map[string]string
		runJSON(t, m, &r)
		for _, k := range []string{"read_config", "read_etc_passwd", "read_escape", "read_etc_hostname", "write_config"} {
			if !strings.HasPrefix(r[k], "error") {
				t.Errorf("%s: %s, want an error", k, r[k])
			}
		}
		if r["env_HOME"] != "" || r["env_PATH"] != "" || r["environ"] != "" {
			t.Errorf("guest sees environment: %v", r)
		}
	})
	t.Run("read-only dir", func(t *testing.T) {
		m := load(t, ModuleConfig{Args: []string{"fs"}, Dir: dir, Env: map[string]string{"GIVEN": "g"}})
		var r map[string]string
		runJSON(t, m, &r)
		if r["read_config"] != "ok" || r["config_content"] != "file-content" {
			t.Errorf("configured dir not readable: %v", r)
		}
		for _, k := range []string{"write_config", "read_etc_passwd", "read_escape"} {
			if !strings.HasPrefix(r[k], "error") {
				t.Errorf("%s: %s, want an error", k, r[k])
			}
		}
		if r["env_GIVEN"] != "g" || r["environ"] != "GIVEN=g" || r["env_HOME"] != "" {
			t.Errorf("env: %v", r)
		}
		if _, err := os.Stat(filepath.Join(dir, "new.txt")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("guest wrote into the read-only dir: %v", err)
		}
	})
}

func TestStdoutLimit(t *testing.T) {
	m := load(t, ModuleConfig{Args: []string{"flood"}})
	res, err := m.Run(context.Background())
	if !errors.Is(err, ErrStdoutLimit) {
		t.Fatalf("got %v, want ErrStdoutLimit", err)
	}
	if res.Stdout != nil {
		t.Error("partial stdout returned")
	}
}

func TestExitErrorIsRedacted(t *testing.T) {
	m := load(t, ModuleConfig{Args: []string{"fail"}})
	_, err := m.Run(context.Background())
	var exit *ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("got %v, want *ExitError", err)
	}
	if exit.Code != 3 {
		t.Errorf("code %d", exit.Code)
	}
	for _, secret := range []string{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "abcdefghijklmnopqrstuvwxyz0123456789"} {
		if strings.Contains(exit.Stderr, secret) || strings.Contains(err.Error(), secret) {
			t.Errorf("secret %q not redacted: %q", secret, exit.Stderr)
		}
	}
	if !strings.Contains(exit.Stderr, redacted) || !strings.Contains(exit.Stderr, "upstream refused the request") {
		t.Errorf("stderr %q", exit.Stderr)
	}
	if !strings.Contains(err.Error(), "upstream refused the request") {
		t.Errorf("error lacks the last stderr line: %v", err)
	}
}

func TestGuestLogIsRedactedAndCapped(t *testing.T) {
	m := load(t, ModuleConfig{Args: []string{"log"}})
	var badLevel int
	runJSON(t, m, &badLevel)
	if status(badLevel) != errBadRequest {
		t.Errorf("log with level 9 returned %d", badLevel)
	}
	recs := sink.records(t.Name())
	if len(recs) != 2 {
		t.Fatalf("records %+v", recs)
	}
	if recs[0].level != slog.LevelWarn || strings.Contains(recs[0].msg, "AKIAIOSFODNN7EXAMPLE") ||
		strings.Contains(recs[0].msg, "bPxRfiCYEXAMPLEKEY") || !strings.Contains(recs[0].msg, redacted) {
		t.Errorf("first record %+v", recs[0])
	}
	if n := len(recs[1].msg); n > maxLogMessage+len("…") {
		t.Errorf("message of %d bytes not capped", n)
	}
}

func TestSHA256Pin(t *testing.T) {
	needGuests(t)
	b, err := os.ReadFile(probeWasm)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	good := hex.EncodeToString(sum[:])
	for _, pin := range []string{good, "sha256:" + strings.ToUpper(good)} {
		m, err := sharedHost.Load(context.Background(), ModuleConfig{Path: probeWasm, SHA256: pin})
		if err != nil {
			t.Fatalf("pin %s: %v", pin, err)
		}
		m.Close(context.Background())
	}
	bad := strings.Repeat("0", 64)
	_, err = sharedHost.Load(context.Background(), ModuleConfig{Path: probeWasm, SHA256: bad})
	if err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("wrong pin loaded: %v", err)
	}
}

func TestLoadRefusesUnknownImports(t *testing.T) {
	needGuests(t)
	cases := []struct {
		name string
		path func(t *testing.T) string
		want []string
	}{
		{"go guest", func(*testing.T) string { return badImportWasm }, []string{"signet.nonexistent", "env.foo"}},
		{"memory import", func(t *testing.T) string {
			return writeModule(t, commandModule([]testImport{{"env", "memory", []byte{2, 0, 1}}}, []byte{0, 0x0b}))
		}, []string{"env.memory (memory)"}},
		{"wrong signature", func(t *testing.T) string {
			// log is (i32, i32, i32) -> i32; this imports it as () -> ().
			return writeModule(t, commandModule([]testImport{funcImport("signet", "log", 0)}, []byte{0, 0x0b}))
		}, []string{"wrong signature", "signet.log"}},
		{"wasi function that does not exist", func(t *testing.T) string {
			return writeModule(t, commandModule([]testImport{funcImport("wasi_snapshot_preview1", "sock_open", 0)}, []byte{0, 0x0b}))
		}, []string{"wasi_snapshot_preview1.sock_open"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := sharedHost.Load(context.Background(), ModuleConfig{Path: tc.path(t)})
			if err == nil {
				t.Fatal("loaded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
	// The right signature loads.
	p := writeModule(t, commandModule([]testImport{funcImport("signet", "log", 1)}, []byte{0, 0x0b}))
	m, err := sharedHost.Load(context.Background(), ModuleConfig{Path: p})
	if err != nil {
		t.Fatal(err)
	}
	m.Close(context.Background())
}

func TestLoadRefusesBadConfig(t *testing.T) {
	needGuests(t)
	cases := []struct {
		name string
		cfg  ModuleConfig
		want string
	}{
		{"missing file", ModuleConfig{Path: "/nonexistent.wasm"}, "no such file"},
		{"not wasm", ModuleConfig{Path: "main_test.go"}, "not a WebAssembly module"},
		{"bad allow_hosts", ModuleConfig{Path: probeWasm, Network: Network{AllowHosts: []string{"https://x.com"}}}, "allow_hosts"},
		{"wildcard TLD", ModuleConfig{Path: probeWasm, Network: Network{AllowHosts: []string{"*.com"}}}, "two labels"},
		{"dir is a file", ModuleConfig{Path: probeWasm, Dir: "main_test.go"}, "not a directory"},
		{"relative mount", ModuleConfig{Path: probeWasm, Dir: ".", DirMount: "config"}, "dir_mount"},
		{"short pin", ModuleConfig{Path: probeWasm, SHA256: "abc"}, "64 hex"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := sharedHost.Load(context.Background(), tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestBadPointersReturnStatus(t *testing.T) {
	m := load(t, ModuleConfig{Args: []string{"badptr"}})
	var codes map[string]status
	runJSON(t, m, &codes)
	want := map[string]status{
		"req_ptr": errMemory, "req_len": errMemory, "body_ptr": errMemory, "out_ptr": errMemory,
		"read_handle": errBadHandle, "read_part": errBadHandle, "log_ptr": errMemory,
		"log_ok_zero": statusOK, "request_denied": errNotAllowed,
	}
	for k, w := range want {
		if codes[k] != w {
			t.Errorf("%s: got %v, want %v", k, codes[k], w)
		}
	}
}

func TestConcurrentRuns(t *testing.T) {
	m := load(t, ModuleConfig{Args: []string{"creds"}})
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			_, err := m.Run(context.Background())
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestClosedModuleAndHost(t *testing.T) {
	needGuests(t)
	ctx := context.Background()
	h, err := New(ctx, Options{CacheDir: cacheDir})
	if err != nil {
		t.Fatal(err)
	}
	m, err := h.Load(ctx, ModuleConfig{Path: probeWasm, Args: []string{"creds"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Run(ctx); err == nil {
		t.Error("run after host close succeeded")
	}
	if _, err := h.Load(ctx, ModuleConfig{Path: probeWasm}); err == nil {
		t.Error("load after close succeeded")
	}
	if err := h.Close(ctx); err != nil {
		t.Errorf("second close: %v", err)
	}
}
