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
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signet-proxy/signet/configs"
)

func TestRestartKeysLimits(t *testing.T) {
	prev := loadYAML(t, reloadBase)
	for _, tc := range []struct {
		name string
		edit func(l *configs.Limits)
		want []string
	}{
		{name: "body and upstream wait apply live", edit: func(l *configs.Limits) {
			l.MaxBodyBytes, l.UpstreamResponseHeaderTimeout = configs.MiB, configs.Duration(time.Minute)
		}},
		{name: "listeners and spool", edit: func(l *configs.Limits) {
			l.MaxHeaderBytes, l.MaxSpoolBytes, l.MaxConnections = 8*configs.KiB, configs.GiB, 5
			l.ReadHeaderTimeout, l.IdleTimeout = configs.Duration(time.Second), configs.Duration(time.Second)
		}, want: []string{"limits.max_header_bytes", "limits.max_spool_bytes", "limits.max_connections", "limits.read_header_timeout", "limits.idle_timeout"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next := loadYAML(t, reloadBase)
			tc.edit(&next.Limits)
			if got := restartKeys(prev, next); !slices.Equal(got, tc.want) {
				t.Errorf("restart keys %q, want %q", got, tc.want)
			}
		})
	}
}

// TestLimitsWired: the limits of a loaded config (file and SIGNET_
// environment) reach the proxy, and a reload moves the body limit but
// refuses a change of the connection limit.
func TestLimitsWired(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(keyEcho))
	t.Cleanup(up.Close)
	state := filepath.Join(t.TempDir(), "state")
	cfgFile := filepath.Join(t.TempDir(), "signet.yaml")
	conf := func(limits string) string {
		return fmt.Sprintf(`listen: 127.0.0.1:0
state_dir: %s
admin: {listen: "off"}
sources:
  a: {method: static, static: {access_key_id: AKIAEXAMPLEKEY00000A, secret_access_key: a-secret-value}}
routes:
  - {hosts: [api.example.test], source: a, service: execute-api, region: eu-west-1, upstream_scheme: http}
upstream:
  connect_to: {"api.example.test:80": %q}
limits: {%s}
`, state, strings.TrimPrefix(up.URL, "http://"), limits)
	}
	writeFile(t, cfgFile, conf("max_body_bytes: 100"))
	env := []string{"HOME=" + t.TempDir(), "SIGNET_LIMITS__MAX_HEADER_BYTES=32KiB"}
	load := func() (*configs.Config, error) { return configs.Load(configs.LoadOptions{File: cfgFile, Environ: env}) }
	cfg, err := load()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cs, err := provision(ctx, cfg, slog.New(slog.DiscardHandler), forServe)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.close()
	rl := newReloader(cs, cfg, new(slog.LevelVar), cfgFile, env, load)
	defer rl.close()
	defer serveProxy(t, ctx, cs)()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: cs.proxy.Addr().String()})}}
	put := func(n int) (int, string) {
		t.Helper()
		resp, err := client.Post("http://api.example.test/x", "text/plain", strings.NewReader(strings.Repeat("x", n)))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Header.Get("X-Signet-Error")
	}
	if status, code := put(101); status != 413 || code != "request-body-too-large" {
		t.Fatalf("101 bytes over a 100-byte limit: %d %q", status, code)
	}
	if status, _ := put(100); status != 200 {
		t.Fatalf("100 bytes: %d", status)
	}

	writeFile(t, cfgFile, conf("max_body_bytes: 1KiB"))
	if err := rl.reload(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	if status, _ := put(1000); status != 200 {
		t.Errorf("after the reload raised the limit: %d", status)
	}
	writeFile(t, cfgFile, conf("max_body_bytes: 1KiB, max_connections: 4"))
	if err := rl.reload(ctx, "test"); !errors.Is(err, errRestartNeeded) || !strings.Contains(err.Error(), "limits.max_connections") {
		t.Errorf("reload of max_connections: %v, want restart needed naming it", err)
	}
}
