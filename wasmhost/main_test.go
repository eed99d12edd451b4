package wasmhost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Set once by needGuests, read-only afterwards.
var (
	probeWasm     string // testdata/probe, built for wasip1
	badImportWasm string // testdata/badimport
	sharedHost    *Host  // compiler, on-disk cache in cacheDir
	cacheDir      string
	sink          = &logSink{}
)

func TestMain(m *testing.M) {
	code := m.Run()
	teardown()
	os.Exit(code)
}

var guestsOnce struct {
	sync.Once
	err    error
	dir    string
	anchor *Module
}

// needGuests builds the testdata guests and starts the shared host, once
// per test binary and only for tests that use them: fuzz workers of the
// pure parsers never pay for it.
func needGuests(t testing.TB) {
	t.Helper()
	guestsOnce.Do(func() { guestsOnce.err = setup() })
	if guestsOnce.err != nil {
		t.Fatal(guestsOnce.err)
	}
}

func setup() error {
	dir, err := os.MkdirTemp("", "wasmhost-test-")
	if err != nil {
		return err
	}
	guestsOnce.dir = dir
	probeWasm = filepath.Join(dir, "probe.wasm")
	badImportWasm = filepath.Join(dir, "badimport.wasm")
	cacheDir = filepath.Join(dir, "cache")
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, g := range []struct{ pkg, out string }{{"./testdata/probe", probeWasm}, {"./testdata/badimport", badImportWasm}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = buildGuest(g.pkg, g.out)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	ctx := context.Background()
	sharedHost, err = New(ctx, Options{CacheDir: cacheDir, Logger: slog.New(sink)})
	if err != nil {
		return err
	}
	// An anchor keeps the compiled probe in the engine's memory, so each
	// test's Load of it (with its own config) does not compile again.
	guestsOnce.anchor, err = sharedHost.Load(ctx, ModuleConfig{Name: "anchor", Path: probeWasm})
	return err
}

func teardown() {
	ctx := context.Background()
	if guestsOnce.anchor != nil {
		guestsOnce.anchor.Close(ctx)
	}
	if sharedHost != nil {
		sharedHost.Close(ctx)
	}
	if guestsOnce.dir != "" {
		os.RemoveAll(guestsOnce.dir)
	}
}

// buildGuest builds a testdata guest with the go command on PATH, as
// guests are built for real.
func buildGuest(pkg, out string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// load loads the probe on the shared host with cfg's settings.
func load(t testing.TB, cfg ModuleConfig) *Module {
	t.Helper()
	needGuests(t)
	if cfg.Path == "" {
		cfg.Path = probeWasm
	}
	if cfg.Name == "" {
		cfg.Name = t.Name()
	}
	m, err := sharedHost.Load(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	return m
}

// runJSON runs m, which must succeed, and decodes its stdout into out.
func runJSON(t *testing.T, m *Module, out any) Result {
	t.Helper()
	res, err := m.Run(context.Background())
	if err != nil {
		t.Fatalf("run: %v (stderr %q)", err, res.Stderr)
	}
	if err := json.Unmarshal(res.Stdout, out); err != nil {
		t.Fatalf("stdout %q: %v", res.Stdout, err)
	}
	return res
}

// logSink is a slog handler that keeps records for tests to inspect.
type logSink struct {
	mu      sync.Mutex
	recs    []logRecord
	changed chan struct{}
}

type logRecord struct {
	level  slog.Level
	msg    string
	source string
}

func (s *logSink) Enabled(context.Context, slog.Level) bool { return true }
func (s *logSink) WithAttrs([]slog.Attr) slog.Handler       { return s }
func (s *logSink) WithGroup(string) slog.Handler            { return s }

func (s *logSink) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{level: r.Level, msg: r.Message}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "source" {
			rec.source = a.Value.String()
		}
		return true
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs = append(s.recs, rec)
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
	return nil
}

// records returns the records logged under source.
func (s *logSink) records(source string) []logRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []logRecord
	for _, r := range s.recs {
		if r.source == source {
			out = append(out, r)
		}
	}
	return out
}

// wait blocks until source has logged msg.
func (s *logSink) wait(t *testing.T, source, msg string) {
	t.Helper()
	timeout := time.NewTimer(time.Minute)
	defer timeout.Stop()
	for {
		s.mu.Lock()
		for _, r := range s.recs {
			if r.source == source && r.msg == msg {
				s.mu.Unlock()
				return
			}
		}
		if s.changed == nil {
			s.changed = make(chan struct{})
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-timeout.C:
			t.Fatalf("%s never logged %q", source, msg)
		}
	}
}

// writeModule writes a hand-assembled module to a temp file.
func writeModule(t *testing.T, bin []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), strings.ReplaceAll(t.Name(), "/", "_")+".wasm")
	if err := os.WriteFile(p, bin, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func jsonDecode(b []byte, v any) error { return json.Unmarshal(b, v) }

func sinkLogger() *slog.Logger { return slog.New(sink) }
