package credentials

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeModule plays a provider module: each run returns run and err, and
// moves the clock by took first.
type fakeModule struct {
	run    WasmRun
	err    error
	clock  *fakeClock
	took   time.Duration
	runs   atomic.Int32
	closed atomic.Int32
}

func (m *fakeModule) Run(ctx context.Context) (WasmRun, error) {
	m.runs.Add(1)
	if err := ctx.Err(); err != nil {
		return WasmRun{}, err
	}
	if m.clock != nil {
		m.clock.Add(m.took)
	}
	return m.run, m.err
}

func (m *fakeModule) Close(context.Context) error { m.closed.Add(1); return nil }

// errStdoutTooLarge stands for the runner's error for stdout over its cap.
var errStdoutTooLarge = errors.New("stdout is larger than 65536 bytes")

func TestWasmRetrieve(t *testing.T) {
	start := time.Date(2026, 11, 28, 11, 0, 0, 0, time.UTC)
	good := procJSON("Version", "1", "AccessKeyId", q(procKeyID), "SecretAccessKey", q(procSecret), "SessionToken", q(procToken), "Expiration", q("2026-11-28T12:00:00Z"))
	noExp := procJSON("Version", "1", "AccessKeyId", q(procKeyID), "SecretAccessKey", q(procSecret))
	tests := []struct {
		name        string
		stdout      string
		stderr      string
		err         error
		wantExpires time.Time
		wantErr     []string // each in the error
		wantIs      error
	}{
		{name: "expiration", stdout: good, stderr: "fetched token for role x\n", wantExpires: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)},
		{name: "no expiration: refresh interval from the start of the run", stdout: noExp, wantExpires: start.Add(20 * time.Minute)},

		{name: "bad JSON", stdout: `{"Version": 1, "AccessKeyId": "` + procKeyID + `", "SecretAccessKey": "` + procSecret + `",}`, stderr: "done",
			wantErr: []string{"wasm ci: credential_process output is not valid JSON", `stderr: "done"`}},
		{name: "version missing", stdout: procJSON("AccessKeyId", q(procKeyID), "SecretAccessKey", q(procSecret)), wantErr: []string{"wasm ci: credential_process output has no Version"}},
		{name: "version not 1", stdout: procJSON("Version", "2", "AccessKeyId", q(procKeyID), "SecretAccessKey", q(procSecret)), wantErr: []string{"has Version 2"}},
		{name: "key id missing", stdout: procJSON("Version", "1", "SecretAccessKey", q(procSecret), "SessionToken", q(procToken)), wantErr: []string{"has no AccessKeyId"}},
		{name: "secret missing", stdout: procJSON("Version", "1", "AccessKeyId", q(procKeyID), "SessionToken", q(procToken)), wantErr: []string{"has no SecretAccessKey"}},
		{name: "expiration in the past", stdout: procJSON("Version", "1", "AccessKeyId", q(procKeyID), "SecretAccessKey", q(procSecret), "Expiration", q("2026-11-28T10:59:00Z")),
			wantErr: []string{"Expiration 2026-11-28T10:59:00Z that is not after now (2026-11-28T11:00:02Z)"}},
		{name: "nothing on stdout", stderr: "error: no token file at /config/token\n", wantErr: []string{"output is empty", `stderr: "error: no token file at /config/token"`}},
		{name: "stdout over the cap", stdout: good, err: errStdoutTooLarge, wantErr: []string{"wasm ci: run: stdout is larger than 65536 bytes"}, wantIs: errStdoutTooLarge},
		{name: "exit error", stdout: good, stderr: "line 1\nAssumeRoleWithWebIdentity: AccessDenied [REDACTED]\n", err: errors.New("exit status 3"),
			wantErr: []string{"wasm ci: run: exit status 3", `stderr: "line 1\nAssumeRoleWithWebIdentity: AccessDenied [REDACTED]"`}},
		{name: "long stderr keeps its end", err: errors.New("exit status 1"), stderr: strings.Repeat("é", 2000) + "the reason",
			wantErr: []string{`stderr: "…éé`, `the reason"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &fakeClock{now: start}
			mod := &fakeModule{run: WasmRun{Stdout: []byte(tt.stdout), Stderr: tt.stderr}, err: tt.err, clock: clk, took: 2 * time.Second}
			p, err := NewWasm(WasmOptions{Source: "ci", Module: mod, RefreshInterval: 20 * time.Minute, Clock: clk})
			if err != nil {
				t.Fatal(err)
			}
			c, err := p.Retrieve(context.Background())
			if tt.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				if c.AccessKeyID != procKeyID || c.SecretAccessKey != procSecret || !c.Expires.Equal(tt.wantExpires) || c.Origin != "wasm:ci" {
					t.Errorf("got %#v, expires %v; want expires %v", c, c.Expires, tt.wantExpires)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error; want %q", tt.wantErr)
			}
			if c != (Credentials{}) {
				t.Errorf("credentials %#v returned with the error", c)
			}
			if _, ok := errors.AsType[*WasmError](err); !ok {
				t.Errorf("error %T is not a *WasmError", err)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.wantIs)
			}
			if len(err.Error()) > 1500 {
				t.Errorf("error is %d bytes long", len(err.Error()))
			}
			assertNoSecret(t, err.Error())
		})
	}
}

// TestWasmInSource runs the provider under a Refreshing source: a failed
// run is reported as the source's error, and Close closes the module once.
func TestWasmInSource(t *testing.T) {
	clk := &fakeClock{now: time.Date(2026, 11, 28, 11, 0, 0, 0, time.UTC)}
	mod := &fakeModule{run: WasmRun{Stdout: []byte(procJSON("Version", "1", "AccessKeyId", q(procKeyID), "SecretAccessKey", q(procSecret)))}, clock: clk}
	p, err := NewWasm(WasmOptions{Source: "ci", Module: mod, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	src := NewSource("ci", p, SourceOptions{Method: "wasm", Clock: clk})
	c, err := src.Credentials(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := clk.Now().Add(DefaultWasmRefreshInterval); !c.Expires.Equal(want) {
		t.Errorf("expires %v, want %v (the default interval)", c.Expires, want)
	}
	if _, err := src.Credentials(context.Background()); err != nil || mod.runs.Load() != 1 {
		t.Errorf("second read: %v after %d runs; want the cached keys after 1", err, mod.runs.Load())
	}

	mod.err, mod.run.Stderr = errors.New("exit status 2"), "boom"
	clk.Add(DefaultWasmRefreshInterval)
	_, err = src.Credentials(context.Background())
	if err == nil || !strings.Contains(err.Error(), `wasm ci: run: exit status 2; stderr: "boom"`) {
		t.Errorf("error after a failed run = %v", err)
	}
	assertNoSecret(t, err.Error())
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if n := mod.closed.Load(); n != 1 {
		t.Errorf("module closed %d times, want 1", n)
	}
}

func TestNewWasmNeedsModule(t *testing.T) {
	if _, err := NewWasm(WasmOptions{Source: "ci"}); err == nil || !strings.Contains(err.Error(), "wasm ci: no module") {
		t.Errorf("err = %v", err)
	}
}
