package main

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/signet-proxy/signet/configs"
	"github.com/signet-proxy/signet/credentials"
	"github.com/signet-proxy/signet/wasmhost"
)

// wasmCacheDir keeps compiled provider modules between runs of serve.
func wasmCacheDir(cfg *configs.Config) string { return filepath.Join(cfg.StateDir, "wasm-cache") }

// openWasmHost starts the process's one WebAssembly host when a source
// needs it, nil otherwise. serve caches compiled code in the state
// directory (created 0700); check and whoami use that cache only when it
// is already there, and never create the state directory.
func openWasmHost(ctx context.Context, cfg *configs.Config, roots *x509.CertPool, log *slog.Logger, mode provisionMode) (*wasmhost.Host, error) {
	need := false
	for _, sc := range cfg.Sources {
		need = need || sc.Method == configs.MethodWasm
	}
	if !need {
		return nil, nil
	}
	opts := wasmhost.Options{Logger: log, RootCAs: roots}
	if st, err := os.Stat(wasmCacheDir(cfg)); mode == forServe || err == nil && st.IsDir() {
		opts.CacheDir = wasmCacheDir(cfg)
	}
	h, err := wasmhost.New(ctx, opts)
	if err != nil {
		return nil, keyError{"state_dir", err}
	}
	return h, nil
}

// moduleConfig is what wasmhost needs from a source's wasm block.
func moduleConfig(name string, c *configs.Wasm) wasmhost.ModuleConfig {
	return wasmhost.ModuleConfig{
		Name:     name,
		Path:     c.Module,
		SHA256:   c.SHA256,
		Args:     c.Args,
		Env:      c.Env,
		Stdin:    c.Stdin,
		Dir:      c.Dir,
		DirMount: c.DirMount,
		Network: wasmhost.Network{
			AllowHosts:   c.AllowHosts,
			AllowHTTP:    c.AllowHTTP,
			AllowPrivate: c.AllowPrivate,
		},
		Timeout:     time.Duration(c.Timeout),
		MemoryLimit: uint64(c.MemoryLimit),
	}
}

// newWasmProvider loads (reads, pins, checks and compiles) source name's
// module now, so that a missing or refused module fails at start, as a
// config error naming the key at fault.
func newWasmProvider(ctx context.Context, host *wasmhost.Host, name string, c *configs.Wasm, log *slog.Logger) (credentials.Provider, error) {
	if c == nil {
		return nil, errors.New("method wasm needs a wasm block")
	}
	if host == nil {
		return nil, errors.New("no WebAssembly host")
	}
	m, err := host.Load(ctx, moduleConfig(name, c))
	if err != nil {
		return nil, keyError{"sources." + name + ".wasm." + wasmLoadKey(c), err}
	}
	p, err := credentials.NewWasm(credentials.WasmOptions{
		Source:          name,
		Module:          wasmModule{m: m},
		RefreshInterval: time.Duration(c.RefreshInterval),
		Logger:          log,
	})
	if err != nil {
		_ = m.Close(ctx)
		return nil, err
	}
	return p, nil
}

// wasmLoadKey says which key of a wasm block a failed Load is about. It
// looks only after a failure, so a good module is read once.
func wasmLoadKey(c *configs.Wasm) string {
	if _, err := os.Stat(c.Module); err != nil {
		return "module"
	}
	if c.Dir != "" {
		if st, err := os.Stat(c.Dir); err != nil || !st.IsDir() {
			return "dir"
		}
	}
	if c.SHA256 != "" {
		if sum, err := fileSHA256(c.Module); err == nil && sum != c.SHA256 {
			return "sha256"
		}
	}
	return "module"
}

func fileSHA256(file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// wasmModule adapts *wasmhost.Module to credentials.WasmModule.
type wasmModule struct {
	m *wasmhost.Module
	// last, when set, receives each run's result (for `wasm run`, which
	// shows the duration and stderr of a run that succeeded too).
	last *wasmhost.Result
}

func (w wasmModule) Run(ctx context.Context) (credentials.WasmRun, error) {
	res, err := w.m.Run(ctx)
	if w.last != nil {
		*w.last = res
	}
	if err != nil {
		// The stdout of a failed run is dropped: it may hold a
		// half-written credential, and nothing reads it.
		if ee, ok := errors.AsType[*wasmhost.ExitError](err); ok {
			err = exitStatus{ee}
		}
		return credentials.WasmRun{Stderr: res.Stderr}, err
	}
	return credentials.WasmRun{Stdout: res.Stdout, Stderr: res.Stderr}, nil
}

func (w wasmModule) Close(ctx context.Context) error { return w.m.Close(ctx) }

// exitStatus shortens a module's non-zero exit to its status: the
// provider's error carries the stderr tail itself, which *ExitError's
// message would repeat.
type exitStatus struct{ e *wasmhost.ExitError }

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", e.e.Code) }
func (e exitStatus) Unwrap() error { return e.e }
