// Package wasmhost runs signet's WebAssembly credential providers: WASI
// preview1 commands, compiled once and run in a fresh, sandboxed instance
// per call, with the host module "signet" for allow-listed HTTP. ABI.md in
// this directory is the contract with guests.
package wasmhost

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
)

// Defaults of ModuleConfig.
const (
	DefaultTimeout     = 10 * time.Second
	DefaultMemoryLimit = 64 << 20
	DefaultDirMount    = "/config"
)

const (
	pageSize      = 64 << 10
	maxModuleSize = 128 << 20
	maxMemory     = 4 << 30 // the 32-bit address space
	stdoutMax     = 64 << 10
	stderrKeep    = 4 << 10
)

// Options configure a Host.
type Options struct {
	// CacheDir keeps compiled code on disk between runs of signet; empty
	// keeps it in memory only.
	CacheDir string
	// Logger receives guests' log() lines; nil uses slog.Default().
	Logger *slog.Logger
	// RootCAs verifies TLS for guests' requests; nil uses the system pool.
	RootCAs *x509.CertPool
}

// Host is one per signet process: one wazero runtime and compilation
// cache that every module shares.
type Host struct {
	log      *slog.Logger
	roots    *x509.CertPool
	cache    wazero.CompilationCache
	rt       wazero.Runtime
	provided map[string]map[string]api.FunctionDefinition
	names    map[string]map[string]bool // the same, for checkImports

	mu      sync.Mutex
	modules map[*Module]struct{}
	closed  atomic.Bool
}

// New starts a Host.
func New(ctx context.Context, opts Options) (*Host, error) {
	var cache wazero.CompilationCache
	if opts.CacheDir != "" {
		if err := os.MkdirAll(opts.CacheDir, 0o700); err != nil {
			return nil, fmt.Errorf("wasmhost: cache dir: %w", err)
		}
		c, err := wazero.NewCompilationCacheWithDir(opts.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("wasmhost: cache dir %s: %w", opts.CacheDir, err)
		}
		cache = c
	} else {
		cache = wazero.NewCompilationCache()
	}
	// The compiler where wazero has one (amd64, arm64), the interpreter
	// elsewhere. The compiler runs guest code ten times faster and, with
	// the two checks below, is as safe for the process (RATIONALE.md).
	rc := wazero.NewRuntimeConfig()
	// CloseOnContextDone makes every loop of compiled code check for the
	// deadline by a call into Go, and stopOnDone does the same on every
	// function entry. Besides stopping the guest, those calls are where the
	// Go runtime can preempt it: without them a busy guest blocks every
	// stop-the-world, so the whole process, GC included. RATIONALE.md has
	// the measurements. Memory is capped per call by the allocator in Run,
	// so the runtime's own limit stays at the 4 GiB maximum.
	rc = rc.WithCloseOnContextDone(true).
		WithCoreFeatures(api.CoreFeaturesV2). // no tail calls: a return_call loop would pass no check
		WithCompilationCache(cache)
	rt := wazero.NewRuntimeWithConfig(ctx, rc)

	h := &Host{
		log:      opts.Logger,
		roots:    opts.RootCAs,
		cache:    cache,
		rt:       rt,
		provided: map[string]map[string]api.FunctionDefinition{},
		names:    map[string]map[string]bool{},
		modules:  map[*Module]struct{}{},
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	fail := func(err error) (*Host, error) {
		_ = rt.Close(ctx)
		_ = cache.Close(ctx)
		return nil, fmt.Errorf("wasmhost: start: %w", err)
	}
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		return fail(err)
	}
	wasi := rt.Module(wasi_snapshot_preview1.ModuleName)
	signet, err := instantiateSignet(ctx, rt)
	if err != nil {
		return fail(err)
	}
	for _, m := range []api.Module{wasi, signet} {
		defs := m.ExportedFunctionDefinitions()
		h.provided[m.Name()] = defs
		h.names[m.Name()] = map[string]bool{}
		for name := range defs {
			h.names[m.Name()][name] = true
		}
	}
	return h, nil
}

// Close closes every module still open, the runtime and the cache.
func (h *Host) Close(ctx context.Context) error {
	if !h.closed.CompareAndSwap(false, true) {
		return nil
	}
	h.mu.Lock()
	mods := make([]*Module, 0, len(h.modules))
	for m := range h.modules {
		mods = append(mods, m)
	}
	h.mu.Unlock()
	for _, m := range mods {
		_ = m.Close(ctx)
	}
	return errors.Join(h.rt.Close(ctx), h.cache.Close(ctx))
}

// ModuleConfig describes one provider module and how it runs.
type ModuleConfig struct {
	Name   string // source name, for logs and errors
	Path   string // the .wasm file
	SHA256 string // optional hex pin of the file (a "sha256:" prefix is allowed)

	Args  []string          // after argv[0], which is the file's base name
	Env   map[string]string // the whole environment the guest sees
	Stdin string

	Dir      string // optional host directory, mounted read-only
	DirMount string // guest path of Dir; default /config

	Network Network

	Timeout     time.Duration // per call; default 10s
	MemoryLimit uint64        // bytes; default 64 MiB, rounded up to 64 KiB pages
}

// Module is a loaded, compiled provider. It is safe for concurrent Runs.
type Module struct {
	host     *Host
	cfg      ModuleConfig
	env      [][2]string
	compiled wazero.CompiledModule
	net      *netClient
	closed   atomic.Bool
}

// Load reads, pins, checks and compiles a module. A module that imports
// anything but wasi_snapshot_preview1 and the signet functions of ABI.md
// is refused, with every such import named.
func (h *Host) Load(ctx context.Context, cfg ModuleConfig) (*Module, error) {
	if cfg.Name == "" {
		cfg.Name = filepath.Base(cfg.Path)
	}
	m, err := h.load(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("wasmhost: load %s: %w", cfg.Name, err)
	}
	return m, nil
}

func (h *Host) load(ctx context.Context, cfg ModuleConfig) (*Module, error) {
	if h.closed.Load() {
		return nil, errors.New("host is closed")
	}
	if err := applyDefaults(&cfg); err != nil {
		return nil, err
	}
	bin, err := readModule(cfg.Path)
	if err != nil {
		return nil, err
	}
	if cfg.SHA256 != "" {
		want := strings.ToLower(strings.TrimPrefix(strings.TrimSpace(cfg.SHA256), "sha256:"))
		if len(want) != 64 {
			return nil, fmt.Errorf("sha256 pin %q is not 64 hex digits", cfg.SHA256)
		}
		sum := sha256.Sum256(bin)
		if got := hex.EncodeToString(sum[:]); got != want {
			return nil, fmt.Errorf("%s has sha256 %s, the config pins %s", cfg.Path, got, want)
		}
	}
	imports, err := readImports(bin)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.Path, err)
	}
	if err := checkImports(imports, h.names); err != nil {
		return nil, err
	}
	netc, err := newNetClient(cfg.Network, h.roots)
	if err != nil {
		return nil, err
	}
	// The listener is compiled into the code, so it goes in at compile
	// time; wazero keys its cache on it.
	cctx := experimental.WithFunctionListenerFactory(ctx, stopOnDone{})
	compiled, err := h.rt.CompileModule(cctx, bin)
	if err != nil {
		return nil, fmt.Errorf("compile %s: %w", cfg.Path, err)
	}
	if err := h.checkCompiled(compiled, cfg.MemoryLimit); err != nil {
		_ = compiled.Close(ctx)
		return nil, err
	}
	m := &Module{host: h, cfg: cfg, compiled: compiled, net: netc}
	for k, v := range cfg.Env {
		m.env = append(m.env, [2]string{k, v})
	}
	slices.SortFunc(m.env, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	h.mu.Lock()
	h.modules[m] = struct{}{}
	h.mu.Unlock()
	return m, nil
}

func applyDefaults(cfg *ModuleConfig) error {
	if cfg.Path == "" {
		return errors.New("no module path")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Timeout < 0 {
		return fmt.Errorf("negative timeout %s", cfg.Timeout)
	}
	if cfg.MemoryLimit == 0 {
		cfg.MemoryLimit = DefaultMemoryLimit
	}
	if cfg.MemoryLimit > maxMemory {
		return fmt.Errorf("memory_limit %d is over the 4 GiB a 32-bit module can address", cfg.MemoryLimit)
	}
	cfg.MemoryLimit = (cfg.MemoryLimit + pageSize - 1) / pageSize * pageSize
	if cfg.Dir != "" {
		st, err := os.Stat(cfg.Dir)
		if err != nil {
			return fmt.Errorf("dir: %w", err)
		}
		if !st.IsDir() {
			return fmt.Errorf("dir %s is not a directory", cfg.Dir)
		}
		if cfg.DirMount == "" {
			cfg.DirMount = DefaultDirMount
		}
		if !path.IsAbs(cfg.DirMount) || path.Clean(cfg.DirMount) != cfg.DirMount {
			return fmt.Errorf("dir_mount %q is not a clean absolute path", cfg.DirMount)
		}
	}
	for k := range cfg.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return fmt.Errorf("env name %q is invalid", k)
		}
	}
	cfg.Args = slices.Clone(cfg.Args)
	return nil
}

func readModule(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > maxModuleSize {
		return nil, fmt.Errorf("%s is %d bytes, over the %d limit", p, st.Size(), maxModuleSize)
	}
	b := make([]byte, st.Size())
	if _, err := f.ReadAt(b, 0); err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	return b, nil
}

// checkCompiled checks what readImports could not: import signatures, the
// exports a command needs, and that the initial memory fits the cap.
func (h *Host) checkCompiled(c wazero.CompiledModule, memLimit uint64) error {
	var bad []string
	for _, imp := range c.ImportedFunctions() {
		mod, name, _ := imp.Import()
		want := h.provided[mod][name]
		if want == nil || !slices.Equal(imp.ParamTypes(), want.ParamTypes()) ||
			!slices.Equal(imp.ResultTypes(), want.ResultTypes()) {
			bad = append(bad, fmt.Sprintf("%s.%s", mod, name))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("imports with the wrong signature: %s", strings.Join(bad, ", "))
	}
	if len(c.ImportedMemories()) > 0 {
		return errors.New("imports a memory")
	}
	start, ok := c.ExportedFunctions()["_start"]
	if !ok || len(start.ParamTypes()) > 0 || len(start.ResultTypes()) > 0 {
		return errors.New("exports no _start() function: not a WASI command")
	}
	mem, ok := c.ExportedMemories()["memory"]
	if !ok {
		return errors.New("exports no memory")
	}
	if initial := uint64(mem.Min()) * pageSize; initial > memLimit {
		return fmt.Errorf("initial memory %d bytes is over memory_limit %d", initial, memLimit)
	}
	return nil
}

// Close releases the module's compiled code and connections.
func (m *Module) Close(ctx context.Context) error {
	if !m.closed.CompareAndSwap(false, true) {
		return nil
	}
	m.host.mu.Lock()
	delete(m.host.modules, m)
	m.host.mu.Unlock()
	m.net.close()
	return m.compiled.Close(ctx)
}

// stopOnDone is a function listener that stops the guest, on entry to any
// of its functions, once the call's context is done. CloseOnContextDone
// checks only at loops; a tree of calls without a loop (f calls g twice, g
// calls h twice, ...) would otherwise run past its deadline in native code
// that the Go runtime cannot preempt.
type stopOnDone struct{}

func (stopOnDone) NewFunctionListener(api.FunctionDefinition) experimental.FunctionListener {
	return stopOnDone{}
}

func (stopOnDone) Before(ctx context.Context, _ api.Module, _ api.FunctionDefinition, _ []uint64, _ experimental.StackIterator) {
	if err := ctx.Err(); err != nil {
		code := sys.ExitCodeContextCanceled
		if errors.Is(err, context.DeadlineExceeded) {
			code = sys.ExitCodeDeadlineExceeded
		}
		// wazero recovers this panic and returns it from the call.
		panic(sys.NewExitError(code))
	}
}

func (stopOnDone) After(context.Context, api.Module, api.FunctionDefinition, []uint64) {}

func (stopOnDone) Abort(context.Context, api.Module, api.FunctionDefinition, error) {}

var _ experimental.FunctionListenerFactory = stopOnDone{}
var _ experimental.FunctionListener = stopOnDone{}
