package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/signet-proxy/signet/configs"
	"github.com/signet-proxy/signet/credentials"
	"github.com/signet-proxy/signet/proxy/admin"
	"github.com/signet-proxy/signet/wasmhost"
)

// reloader applies a new config to a running serve: on SIGHUP, and when
// the config file changes. A reload loads and validates the whole config;
// if anything is wrong the running config stays and the error is logged.
// Sources whose config did not change are carried over with their
// credentials; the rest are built new, and the proxy swaps to the new
// routes in one step: a request in flight, and every open tunnel, goes on
// with what it started with. Sources no longer used are closed after the
// drain time (shutdown_timeout), when no request can still be waiting on
// them.
type reloader struct {
	load func() (*configs.Config, error)
	// file is the config file ("" for none); environ the process's.
	file    string
	environ []string
	log     *slog.Logger
	level   *slog.LevelVar
	// admin is the admin API, nil when admin.listen is off.
	admin *admin.Handler

	// live is the sources in force, for metrics scrapes.
	live atomic.Pointer[map[string]*credentials.Refreshing]
	// whoamiOpts say where /v1/whoami asks STS.
	whoamiOpts atomic.Pointer[credentials.WhoamiOptions]
	// fileSum is the digest of the config file as last loaded (or tried).
	fileSum atomic.Pointer[[sha256.Size]byte]

	mu     sync.Mutex // serialises reloads and close
	cs     *components
	cfg    *configs.Config // the config in force
	closed bool
	// retired are sources (and a WebAssembly host) replaced by a reload,
	// waiting for their grace period to end before they are closed.
	retired map[*retirement]struct{}
}

// retirement is what one reload replaced.
type retirement struct {
	sources []*credentials.Refreshing
	wasm    *wasmhost.Host
	grace   time.Duration // how long they stay open
	timer   *time.Timer
	once    sync.Once
}

func (r *retirement) close() {
	r.once.Do(func() {
		for _, s := range r.sources {
			_ = s.Close()
		}
		if r.wasm != nil {
			_ = r.wasm.Close(context.Background())
		}
	})
}

func newReloader(cs *components, cfg *configs.Config, level *slog.LevelVar, file string, environ []string, load func() (*configs.Config, error)) *reloader {
	rl := &reloader{load: load, file: file, environ: environ, log: cs.log, level: level, cs: cs, cfg: cfg, retired: map[*retirement]struct{}{}}
	sources := cs.sources
	rl.live.Store(&sources)
	return rl
}

// close stops reloading and closes what earlier reloads retired. After it
// returns no reload touches the components.
func (rl *reloader) close() {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	rl.closed = true
	for r := range rl.retired {
		r.timer.Stop()
		r.close()
	}
	clear(rl.retired)
}

// states lists the live sources' states, for metrics.
func (rl *reloader) states() []credentials.State {
	sources := *rl.live.Load()
	out := make([]credentials.State, 0, len(sources))
	for _, name := range slices.Sorted(maps.Keys(sources)) {
		out = append(out, sources[name].State())
	}
	return out
}

func (rl *reloader) setWhoami(opts credentials.WhoamiOptions) { rl.whoamiOpts.Store(&opts) }

// whoami is the admin API's whoami, asking where the config in force says.
func (rl *reloader) whoami(ctx context.Context, c credentials.Credentials) (credentials.Identity, error) {
	var opts credentials.WhoamiOptions
	if o := rl.whoamiOpts.Load(); o != nil {
		opts = *o
	}
	return credentials.Whoami(ctx, c, opts)
}

// onSignals reloads on every signal from sigs until ctx ends.
func (rl *reloader) onSignals(ctx context.Context, sigs <-chan os.Signal) {
	for {
		select {
		case <-ctx.Done():
			return
		case s := <-sigs:
			_ = rl.reload(ctx, "signal "+s.String())
		}
	}
}

// watchFile reloads when the content of file changes. It polls: a
// notification API would miss an editor's rename over the file, or a
// Kubernetes ConfigMap's symlink swap, unless it watched the directory
// and followed links, and a config file is small enough to read every
// second. A change is applied once the file has read the same twice in a
// row, so a write in several steps is not loaded half done.
func (rl *reloader) watchFile(ctx context.Context, file string, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	var pending *[sha256.Size]byte
	unreadable := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sum, err := fileDigest(file)
		if err != nil {
			// A file being replaced may be missing for a moment; say so
			// once, and reload when it is back.
			if !unreadable {
				rl.log.Warn("config file unreadable, keeping the running config", "file", file, "error", err)
			}
			unreadable, pending = true, nil
			continue
		}
		unreadable = false
		if last := rl.fileSum.Load(); last != nil && *last == sum {
			pending = nil
			continue
		}
		if pending == nil || *pending != sum {
			pending = &sum
			continue
		}
		pending = nil
		_ = rl.reload(ctx, "config file changed")
	}
}

// fileDigest is the sha256 of file's content; the zero digest for no file.
func fileDigest(file string) ([sha256.Size]byte, error) {
	if file == "" {
		return [sha256.Size]byte{}, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	return sha256.Sum256(b), nil
}

// errRestartNeeded is a reload refused because it changes what only a
// restart can.
var errRestartNeeded = errors.New("restart needed")

// reload loads the config again and applies it, or logs why it did not.
// The error is for tests: serve has logged it already.
func (rl *reloader) reload(ctx context.Context, trigger string) error {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if rl.closed {
		return errors.New("reload: signet is stopping")
	}
	log := rl.log.With("trigger", trigger)
	if f := rl.file; f != "" {
		// Recorded before the load, also for a config that fails: the
		// file watcher then waits for the next change instead of trying
		// the same broken file every second.
		if sum, err := fileDigest(f); err == nil {
			rl.fileSum.Store(&sum)
		}
	}
	next, err := rl.load()
	if err != nil {
		log.Error("config reload failed", "keys", errorKeys(err), "error", err, "serving", "the previous config")
		return err
	}
	prev := rl.cfg
	if keys := restartKeys(prev, next); len(keys) > 0 {
		log.Error("config reload refused", "keys", keys,
			"reason", "these keys cannot change while signet runs: restart signet to apply them", "serving", "the previous config")
		return fmt.Errorf("reload: %w: %s", errRestartNeeded, strings.Join(keys, ", "))
	}
	if err := rl.apply(ctx, prev, next, log); err != nil {
		log.Error("config reload failed", "keys", errorKeys(err), "error", err, "serving", "the previous config")
		return err
	}
	return nil
}

// apply builds what next needs beyond what prev built, swaps it in, and
// retires what it replaced. On an error nothing has changed.
func (rl *reloader) apply(ctx context.Context, prev, next *configs.Config, log *slog.Logger) error {
	cs := rl.cs
	// Read again, also when the path is the same: the proxy's transports
	// take a renewed bundle. Sources carried over keep the pool they were
	// built with.
	roots, err := upstreamRoots(next.Upstream.CAFile)
	if err != nil {
		return err
	}
	rebuildAll := prev.Upstream.CAFile != next.Upstream.CAFile
	wasm, newWasm := cs.wasm, false
	if rebuildAll {
		// Modules' HTTP verifies with the roots: a new host for new ones.
		wasm = nil
	}
	if wasm == nil {
		// nil again when next has no wasm source.
		if wasm, err = openWasmHost(ctx, next, roots, log, forServe); err != nil {
			return err
		}
		newWasm = wasm != nil
	}
	discardWasm := func() {
		if newWasm {
			_ = wasm.Close(context.Background())
		}
	}

	rebuild := sourcesToRebuild(prev, next, rebuildAll)
	sources := make(map[string]*credentials.Refreshing, len(next.Sources))
	for name := range next.Sources {
		if !rebuild[name] {
			sources[name] = cs.sources[name]
		}
	}
	built := slices.Sorted(maps.Keys(rebuild))
	deps := sourceDeps{roots: roots, wasm: wasm, log: cs.log, metrics: cs.metrics}
	if err := buildSources(ctx, next, deps, sources, built); err != nil {
		discardWasm()
		return err
	}
	discardBuilt := func() {
		for _, name := range built {
			_ = sources[name].Close()
		}
		discardWasm()
	}
	opts, err := cs.proxyOptions(next, sources, roots)
	if err == nil {
		err = cs.proxy.Reload(opts)
	}
	if err != nil {
		discardBuilt()
		return err
	}

	// The proxy serves the new config from here on.
	ret := &retirement{grace: prev.ShutdownTimeout}
	for name, s := range cs.sources {
		if sources[name] != s {
			ret.sources = append(ret.sources, s)
			ret.grace = max(ret.grace, fetchTimeout(prev.Sources[name]))
		}
	}
	if cs.wasm != nil && cs.wasm != wasm {
		ret.wasm = cs.wasm
	}
	cs.sources, cs.roots, cs.wasm = sources, roots, wasm
	rl.cfg = next
	rl.live.Store(&sources)
	rl.level.Set(logLevel(next.Log.Level))
	if rl.admin != nil {
		rl.admin.SetCatalog(catalogOf(next, sources))
		rl.setWhoami(whoamiOptions(next, roots, rl.environ))
	}
	var added, changed, removed []string
	for _, name := range built {
		if _, ok := prev.Sources[name]; ok {
			changed = append(changed, name)
		} else {
			added = append(added, name)
		}
		sources[name].Start()
	}
	for _, name := range slices.Sorted(maps.Keys(prev.Sources)) {
		if _, ok := next.Sources[name]; !ok {
			removed = append(removed, name)
			cs.metrics.ForgetSource(name)
		}
	}
	rl.retire(ret)
	log.Info("config reloaded", "routes", len(next.Routes), "reverse", len(next.Reverse),
		"sources_added", added, "sources_changed", changed, "sources_removed", removed,
		"sources_kept", len(next.Sources)-len(built))
	return nil
}

// retire closes what a reload replaced once requests that started before
// the swap can no longer be waiting for it. A request asks its source for
// keys as it starts and waits at most one fetch, so r.grace, the longer of
// the drain time and the retired sources' fetch timeouts, is enough;
// closing earlier would cancel a fetch such a request waits for.
func (rl *reloader) retire(r *retirement) {
	if len(r.sources) == 0 && r.wasm == nil {
		return
	}
	rl.retired[r] = struct{}{}
	r.timer = time.AfterFunc(r.grace, func() {
		rl.mu.Lock()
		delete(rl.retired, r)
		rl.mu.Unlock()
		r.close()
	})
}

// fetchTimeout is how long one fetch of a source may take: its refresh
// timeout, or its MFA command's if longer (as buildSources allows).
func fetchTimeout(sc configs.Source) time.Duration {
	d := time.Duration(sc.Refresh.Timeout)
	if sc.STS != nil && sc.STS.MFA != nil {
		d = max(d, time.Duration(sc.STS.MFA.Timeout))
	}
	return d
}

// sourcesToRebuild names the sources of next that cannot be carried over
// from prev: new ones, changed ones, those chained (sts.source) from one
// of those, and every one when the upstream roots changed (sts, iot and
// wasm sources verify their endpoints with them).
func sourcesToRebuild(prev, next *configs.Config, all bool) map[string]bool {
	rebuild := map[string]bool{}
	for name, sc := range next.Sources {
		old, ok := prev.Sources[name]
		if all || !ok || !reflect.DeepEqual(old, sc) {
			rebuild[name] = true
		}
	}
	// A chain is checked for loops by configs, and is at most as long
	// as there are sources.
	for range len(next.Sources) {
		grew := false
		for name, sc := range next.Sources {
			if !rebuild[name] && sc.STS != nil && sc.STS.Source != "" && rebuild[sc.STS.Source] {
				rebuild[name] = true
				grew = true
			}
		}
		if !grew {
			break
		}
	}
	return rebuild
}

// restartKeys lists the keys whose change a running signet cannot apply:
// the addresses it listens on and how (a bound socket, its TLS, its
// limits), where its state lives, how it logs, and the caches, spool and
// admin API built once.
func restartKeys(prev, next *configs.Config) []string {
	var keys []string
	diff := func(key string, a, b any) {
		if !reflect.DeepEqual(a, b) {
			keys = append(keys, key)
		}
	}
	diff("listen", prev.Listen, next.Listen)
	diff("state_dir", prev.StateDir, next.StateDir)
	diff("shutdown_timeout", prev.ShutdownTimeout, next.ShutdownTimeout)
	diff("log.format", prev.Log.Format, next.Log.Format)
	diff("proxy_tls", prev.ProxyTLS, next.ProxyTLS)
	diff("intercept", prev.Intercept, next.Intercept)
	diff("cache", prev.Cache, next.Cache)
	diff("admin.listen", prev.Admin.Listen, next.Admin.Listen)
	diff("admin.auth", prev.Admin.Auth, next.Admin.Auth)
	diff("admin.token_file", prev.Admin.TokenFile, next.Admin.TokenFile)
	diff("admin.imds", prev.Admin.IMDS, next.Admin.IMDS)
	// The listeners' limits are their http.Servers' and the spool's the
	// signer's; body limits and the upstream wait apply live.
	diff("limits.max_header_bytes", prev.Limits.MaxHeaderBytes, next.Limits.MaxHeaderBytes)
	diff("limits.max_spool_bytes", prev.Limits.MaxSpoolBytes, next.Limits.MaxSpoolBytes)
	diff("limits.max_connections", prev.Limits.MaxConnections, next.Limits.MaxConnections)
	diff("limits.read_header_timeout", prev.Limits.ReadHeaderTimeout, next.Limits.ReadHeaderTimeout)
	diff("limits.idle_timeout", prev.Limits.IdleTimeout, next.Limits.IdleTimeout)
	if len(prev.Reverse) != len(next.Reverse) {
		keys = append(keys, fmt.Sprintf("reverse (%d listeners, now %d)", len(prev.Reverse), len(next.Reverse)))
	} else {
		for i := range next.Reverse {
			diff(fmt.Sprintf("reverse[%d].listen", i), prev.Reverse[i].Listen, next.Reverse[i].Listen)
		}
	}
	return keys
}

// errorKeys lists the config keys an error names, for a log attribute a
// program can read.
func errorKeys(err error) []string {
	var keys []string
	add := func(k string) {
		if k != "" && !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	if es, ok := errors.AsType[configs.Errors](err); ok {
		for _, e := range es {
			add(e.Key)
		}
	} else if e, ok := errors.AsType[*configs.Error](err); ok {
		add(e.Key)
	}
	if ke, ok := errors.AsType[keyError](err); ok {
		add(ke.key)
	}
	return keys
}
