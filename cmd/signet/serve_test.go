package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signet-proxy/signet/configs"
	"github.com/signet-proxy/signet/internal/metrics"
)

// keyEcho answers with the access key ID of the request's signature.
func keyEcho(w http.ResponseWriter, r *http.Request) {
	_, cred, _ := strings.Cut(r.Header.Get("Authorization"), "Credential=")
	key, _, _ := strings.Cut(cred, "/")
	_, _ = io.WriteString(w, key)
}

// TestReloadInProcess drives the reloader of a serving proxy while
// clients keep sending requests (run it with -race): a route moves to
// another source, a source is rebuilt and the one it replaced closed after
// the drain time, an invalid config and a listener change are refused
// with the running config kept, and a change of the file is picked up by
// the watcher.
func TestReloadInProcess(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(keyEcho))
	t.Cleanup(up.Close)
	state := filepath.Join(t.TempDir(), "state")
	cfgFile := filepath.Join(t.TempDir(), "signet.yaml")
	conf := func(source, timeout string) string {
		return fmt.Sprintf(`listen: 127.0.0.1:0
state_dir: %s
shutdown_timeout: 200ms
admin: {listen: "off"}
sources:
  a: {method: static, static: {access_key_id: AKIAEXAMPLEKEY00000A, secret_access_key: a-secret-value}, refresh: {timeout: %s}}
  b: {method: static, static: {access_key_id: AKIAEXAMPLEKEY00000B, secret_access_key: b-secret-value}}
routes:
  - {hosts: [api.example.test], source: %s, service: execute-api, region: eu-west-1, upstream_scheme: http}
upstream:
  connect_to: {"api.example.test:80": %q}
`, state, timeout, source, strings.TrimPrefix(up.URL, "http://"))
	}
	writeFile(t, cfgFile, conf("a", "1s"))
	env := []string{"HOME=" + t.TempDir(), "AWS_EC2_METADATA_DISABLED=true"}
	load := func() (*configs.Config, error) { return configs.Load(configs.LoadOptions{File: cfgFile, Environ: env}) }
	cfg, err := load()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	cs, err := provisionWith(ctx, cfg, log, forServe, observers{metrics: metrics.New(metrics.Options{WithoutRuntime: true})})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.close()
	rl := newReloader(cs, cfg, new(slog.LevelVar), cfgFile, env, load)
	defer rl.close()
	defer serveProxy(t, ctx, cs)()

	proxyURL := &url.URL{Scheme: "http", Host: cs.proxy.Addr().String()}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}}
	get := func() (string, error) {
		resp, err := client.Get("http://api.example.test/x")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return "", fmt.Errorf("status %d: %s", resp.StatusCode, b)
		}
		return string(b), err
	}
	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		mu       sync.Mutex
		failures []error
		requests atomic.Int64
	)
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				if _, err := get(); err != nil {
					mu.Lock()
					failures = append(failures, err)
					mu.Unlock()
				}
				requests.Add(1)
			}
		})
	}
	defer func() {
		stop.Store(true)
		wg.Wait()
		if len(failures) > 0 {
			t.Errorf("%d of %d requests failed during reloads; first: %v", len(failures), requests.Load(), failures[0])
		}
	}()
	wantKey := func(want string) {
		t.Helper()
		if got, err := get(); err != nil || got != want {
			t.Fatalf("signed with %q (%v), want %s", got, err, want)
		}
	}
	wantKey("AKIAEXAMPLEKEY00000A")
	a0, b0 := cs.sources["a"], cs.sources["b"]

	// The route moves to b; both sources are kept.
	writeFile(t, cfgFile, conf("b", "1s"))
	if err := rl.reload(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	wantKey("AKIAEXAMPLEKEY00000B")
	if cs.sources["a"] != a0 || cs.sources["b"] != b0 {
		t.Errorf("sources whose config did not change were rebuilt")
	}

	// a's refresh timeout changes: a is rebuilt, the old one retired and
	// closed after its grace, the longer of shutdown_timeout and its own
	// refresh timeout (1s).
	writeFile(t, cfgFile, conf("a", "2s"))
	if err := rl.reload(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	wantKey("AKIAEXAMPLEKEY00000A")
	if cs.sources["a"] == a0 || cs.sources["b"] != b0 {
		t.Errorf("a changed and was not rebuilt, or b was")
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		rl.mu.Lock()
		n := len(rl.retired)
		rl.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replaced source is still retired, not closed, 10s after its 1s grace")
		}
	}

	// An invalid config and a listener change: refused, nothing changes.
	running := rl.cfg
	writeFile(t, cfgFile, strings.Replace(conf("a", "2s"), "source: a,", "source: nope,", 1))
	if err := rl.reload(ctx, "test"); !isConfigError(err) {
		t.Errorf("reload of an invalid config: %v, want a config error", err)
	}
	writeFile(t, cfgFile, strings.Replace(conf("b", "2s"), "listen: 127.0.0.1:0", "listen: 127.0.0.1:1", 1))
	if err := rl.reload(ctx, "test"); !errors.Is(err, errRestartNeeded) {
		t.Errorf("reload with another listen: %v, want restart needed", err)
	}
	if rl.cfg != running {
		t.Errorf("a refused reload replaced the running config")
	}
	wantKey("AKIAEXAMPLEKEY00000A")

	// The watcher applies a change of the file.
	go rl.watchFile(ctx, cfgFile, 10*time.Millisecond)
	writeFile(t, cfgFile, conf("b", "2s"))
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if got, err := get(); err == nil && got == "AKIAEXAMPLEKEY00000B" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the watcher did not apply the changed file within 10s")
		}
	}
}

// serveProxy binds and serves cs's proxy until the returned stop, which
// waits for Serve to return: defer it after cs.close, so that the proxy
// stops before the components it uses are closed.
func serveProxy(t *testing.T, ctx context.Context, cs *components) (stop func()) {
	t.Helper()
	if err := cs.proxy.Listen(ctx); err != nil {
		t.Fatal(err)
	}
	serveCtx, stopServe := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- cs.proxy.Serve(serveCtx, time.Second) }()
	return func() {
		stopServe()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}
}
