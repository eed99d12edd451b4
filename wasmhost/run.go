package wasmhost

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"
)

// Result is what a successful call produced. Run fills Stderr and Duration
// on failure too.
type Result struct {
	Stdout   []byte
	Stderr   string // the last 4 KiB, redacted
	Duration time.Duration
}

// ExitError is a guest that exited with a non-zero status.
type ExitError struct {
	Code   uint32
	Stderr string // the last 4 KiB, redacted
}

func (e *ExitError) Error() string {
	msg := fmt.Sprintf("exit status %d", e.Code)
	if line := lastLine(e.Stderr); line != "" {
		msg += ": " + line
	}
	return msg
}

// ErrMemoryLimit is wrapped by Run's error when the guest tried to grow its
// memory past the module's MemoryLimit.
var ErrMemoryLimit = errors.New("memory limit reached")

// ErrStdoutLimit is wrapped by Run's error when the guest wrote more than
// 64 KiB to stdout.
var ErrStdoutLimit = errors.New("stdout over 64 KiB")

// Run instantiates a fresh instance and runs its _start. A non-zero exit is
// an *ExitError (use errors.As); running past the timeout is an error
// wrapping context.DeadlineExceeded; growing past the memory limit wraps
// ErrMemoryLimit.
func (m *Module) Run(ctx context.Context) (Result, error) {
	start := time.Now()
	res, err := m.run(ctx)
	res.Duration = time.Since(start)
	if err != nil {
		return res, fmt.Errorf("wasmhost: run %s: %w", m.cfg.Name, err)
	}
	return res, nil
}

func (m *Module) run(parent context.Context) (Result, error) {
	var res Result
	if m.closed.Load() {
		return res, errors.New("module is closed")
	}
	ctx, cancel := context.WithTimeout(parent, m.cfg.Timeout)
	defer cancel()

	stdout := &cappedBuffer{max: stdoutMax}
	stderr := newTailBuffer(2 * stderrKeep)
	guard := &memoryGuard{limit: m.cfg.MemoryLimit}
	ctx = experimental.WithMemoryAllocator(ctx, guard)
	ctx = withCall(ctx, &callState{source: m.cfg.Name, net: m.net, log: m.host.log})

	mc := wazero.NewModuleConfig().
		WithName(""). // anonymous, so instances of one module can run side by side
		WithStartFunctions().
		WithArgs(append([]string{filepath.Base(m.cfg.Path)}, m.cfg.Args...)...).
		WithStdin(strings.NewReader(m.cfg.Stdin)).
		WithStdout(stdout).
		WithStderr(stderr).
		WithSysWalltime().
		WithSysNanotime().
		WithNanosleep(sleepUntilDone(ctx)).
		WithRandSource(rand.Reader)
	for _, kv := range m.env {
		mc = mc.WithEnv(kv[0], kv[1])
	}
	if m.cfg.Dir != "" {
		mc = mc.WithFSConfig(wazero.NewFSConfig().WithReadOnlyDirMount(m.cfg.Dir, m.cfg.DirMount))
	}

	inst, err := m.host.rt.InstantiateModule(ctx, m.compiled, mc)
	if err != nil {
		res.Stderr = stderrTail(stderr)
		return res, m.classify(ctx, guard, err, res.Stderr)
	}
	// The instance may already be closed by its deadline or proc_exit;
	// closing again is harmless.
	defer inst.Close(context.WithoutCancel(ctx))
	_, err = inst.ExportedFunction("_start").Call(ctx)
	res.Stderr = stderrTail(stderr)
	if err := m.classify(ctx, guard, err, res.Stderr); err != nil {
		return res, err
	}
	out, over := stdout.result()
	if over {
		return res, ErrStdoutLimit
	}
	res.Stdout = out
	return res, nil
}

// classify turns what _start returned into Run's error. The order matters:
// a deadline closes the module, which then also looks like an exit, and
// running out of memory shows as whatever the guest's runtime does then
// (Go exits 2, Rust traps).
func (m *Module) classify(ctx context.Context, guard *memoryGuard, err error, stderr string) error {
	var exit *sys.ExitError
	isExit := errors.As(err, &exit)
	if err == nil || isExit && exit.ExitCode() == 0 {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil {
		if errors.Is(cerr, context.DeadlineExceeded) {
			return fmt.Errorf("stopped at its %s deadline: %w", m.cfg.Timeout, cerr)
		}
		return fmt.Errorf("stopped: %w", cerr)
	}
	if guard.refused.Load() {
		return fmt.Errorf("%w (%d MiB)%s", ErrMemoryLimit, m.cfg.MemoryLimit>>20, suffixLine(stderr))
	}
	if isExit {
		return &ExitError{Code: exit.ExitCode(), Stderr: stderr}
	}
	// A trap: wazero's error carries the wasm stack, not guest data.
	return fmt.Errorf("trapped: %w%s", err, suffixLine(stderr))
}

func suffixLine(stderr string) string {
	if line := lastLine(stderr); line != "" {
		return "; stderr: " + line
	}
	return ""
}

// lastLine is the last non-empty line of s, shortened for an error string.
func lastLine(s string) string {
	s = strings.TrimRight(s, " \t\r\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	s = strings.TrimSpace(s)
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// sleepUntilDone is the guest's nanosleep: real time, but cut short when
// the call ends, since a sleeping guest is inside a host function where
// CloseOnContextDone cannot reach it.
func sleepUntilDone(ctx context.Context) sys.Nanosleep {
	return func(ns int64) {
		if ns <= 0 {
			return
		}
		t := time.NewTimer(time.Duration(ns))
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
}

// memoryGuard allocates a guest's linear memory and refuses to grow it past
// limit, remembering that it did, so that Run can tell a guest that ran out
// of memory from one that merely failed.
type memoryGuard struct {
	limit   uint64
	refused atomic.Bool
}

func (g *memoryGuard) Allocate(capacity, _ uint64) experimental.LinearMemory {
	return &guardedMemory{guard: g, buf: make([]byte, 0, min(capacity, g.limit))}
}

type guardedMemory struct {
	guard *memoryGuard
	buf   []byte
}

func (l *guardedMemory) Reallocate(size uint64) []byte {
	if size > l.guard.limit {
		l.guard.refused.Store(true)
		return nil
	}
	if size <= uint64(cap(l.buf)) {
		// Memory only grows, so the bytes past len were never handed out
		// and are still zero.
		l.buf = l.buf[:size]
		return l.buf
	}
	// Grow by at least a quarter, so a guest growing page by page does
	// not copy its memory each time.
	newCap := max(size, min(uint64(cap(l.buf))*5/4, l.guard.limit))
	nb := make([]byte, size, newCap)
	copy(nb, l.buf)
	l.buf = nb
	return l.buf
}

func (l *guardedMemory) Free() { l.buf = nil }
