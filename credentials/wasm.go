package credentials

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// DefaultWasmRefreshInterval is how long keys without an Expiration are
// kept when WasmOptions.RefreshInterval is zero.
const DefaultWasmRefreshInterval = time.Hour

// maxStderrInError is how much of a module's stderr an error carries: the
// end, where a program says why it gave up.
const maxStderrInError = 1 << 10

// WasmRun is what one run of a provider module printed.
type WasmRun struct {
	// Stdout should be one credential_process JSON object.
	Stdout []byte
	// Stderr is diagnostic text that the runner has already cut to its
	// tail and redacted; it may end up in errors and logs.
	Stderr string
}

// WasmModule is a compiled provider module that can be run any number of
// times, each run in a fresh instance. wasmhost.Module fits behind a small
// adapter; tests use a fake.
type WasmModule interface {
	// Run runs the module once. A non-nil error (a non-zero exit, a
	// timeout, output over the cap) may come with the run's stderr.
	Run(ctx context.Context) (WasmRun, error)
	Close(ctx context.Context) error
}

// WasmOptions configure NewWasm.
type WasmOptions struct {
	// Source is the source's name, for errors and Credentials.Origin.
	Source string
	// Module runs the provider; the Wasm provider owns it and closes it.
	Module WasmModule
	// RefreshInterval is how long keys without an Expiration are kept;
	// zero means DefaultWasmRefreshInterval.
	RefreshInterval time.Duration
	Clock           Clock
	// Logger receives the module's stderr after a successful run, at
	// debug level (a failed run's stderr is in its error); nil discards it.
	Logger *slog.Logger
}

// Wasm is a Provider that runs a WebAssembly module (a WASI command that
// follows the credential_process contract) once per Retrieve.
type Wasm struct {
	source   string
	module   WasmModule
	interval time.Duration
	clock    Clock
	log      *slog.Logger
}

var _ Provider = (*Wasm)(nil)

// NewWasm returns a provider that runs opts.Module. It runs nothing yet.
func NewWasm(opts WasmOptions) (*Wasm, error) {
	if opts.Module == nil {
		return nil, errors.New("wasm " + opts.Source + ": no module")
	}
	if opts.RefreshInterval <= 0 {
		opts.RefreshInterval = DefaultWasmRefreshInterval
	}
	if opts.Clock == nil {
		opts.Clock = SystemClock{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Wasm{source: opts.Source, module: opts.Module, interval: opts.RefreshInterval, clock: opts.Clock, log: opts.Logger}, nil
}

// WasmError is a run of a provider module that gave no credentials. It
// carries the tail of the module's (redacted) stderr, and never its
// stdout, which may hold a half-valid credential.
type WasmError struct {
	Source string
	Err    error
	Stderr string
}

func (e *WasmError) Error() string {
	var b strings.Builder
	b.WriteString("wasm ")
	b.WriteString(e.Source)
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	if s := strings.TrimSpace(e.Stderr); s != "" {
		b.WriteString("; stderr: ")
		// Quoted, so that a multi-line stderr stays one log line.
		b.WriteString(strconv.Quote(tail(s, maxStderrInError)))
	}
	return b.String()
}

func (e *WasmError) Unwrap() error { return e.Err }

// Retrieve runs the module once and reads its output. Keys without an
// Expiration are kept for the refresh interval, counted from the start of
// the run, so that they never outlive what the module meant.
func (p *Wasm) Retrieve(ctx context.Context) (Credentials, error) {
	start := p.clock.Now()
	run, err := p.module.Run(ctx)
	if err != nil {
		return Credentials{}, &WasmError{Source: p.source, Err: runError{err}, Stderr: run.Stderr}
	}
	c, err := ParseProcessOutput(run.Stdout, p.clock.Now())
	if err != nil {
		return Credentials{}, &WasmError{Source: p.source, Err: err, Stderr: run.Stderr}
	}
	if !c.CanExpire() {
		c.Expires = start.Add(p.interval)
	}
	c.Origin = "wasm:" + p.source
	if s := strings.TrimSpace(run.Stderr); s != "" {
		p.log.Debug("wasm provider stderr", "source", p.source, "stderr", s)
	}
	return c, nil
}

// runError says that the run itself failed, as opposed to its output.
type runError struct{ err error }

func (e runError) Error() string { return "run: " + e.err.Error() }
func (e runError) Unwrap() error { return e.err }

// Close closes the module (Refreshing.Close calls it).
func (p *Wasm) Close() error {
	return p.module.Close(context.Background())
}

// tail returns at most the last n bytes of s, starting at a rune
// boundary, with "…" in front when something was cut.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	for i := 0; i < len(s) && i < 4; i++ {
		if s[i]&0xC0 != 0x80 { // not a UTF-8 continuation byte
			return "…" + s[i:]
		}
	}
	return "…" + strings.ToValidUTF8(s, "")
}
