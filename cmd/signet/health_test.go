package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/signet-proxy/signet/configs"
)

func TestHealth(t *testing.T) {
	var ready atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz":
			w.Write([]byte("ok\n"))
		case "/readyz":
			if !ready.Load() {
				http.Error(w, `{"not_ready":["prod"]}`, http.StatusServiceUnavailable)
				return
			}
			w.Write([]byte("ready\n"))
		case "/moved":
			http.Redirect(w, r, "/healthz", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	env := []string{"HOME=" + t.TempDir(), "SIGNET_ADMIN__LISTEN=" + addr,
		// The probe must reach the admin listener directly, whatever the
		// environment says about proxies.
		"HTTP_PROXY=http://127.0.0.1:1", "http_proxy=http://127.0.0.1:1"}
	tests := []struct {
		name    string
		args    []string
		env     []string
		want    int
		wantOut string
		wantErr string
	}{
		{name: "healthz from the config", args: nil, want: exitOK, wantOut: "GET http://" + addr + "/healthz: 200 OK"},
		{name: "readyz not ready", args: []string{"--ready"}, want: exitFail, wantErr: "503"},
		{name: "explicit url", args: []string{"--url", srv.URL + "/healthz"}, want: exitOK, wantOut: "200 OK"},
		{name: "404", args: []string{"--url", srv.URL + "/nope"}, want: exitFail, wantErr: "404"},
		{name: "redirect is not health", args: []string{"--url", srv.URL + "/moved"}, want: exitFail, wantErr: "302"},
		{name: "nothing listening", args: []string{"--url", "http://127.0.0.1:1/healthz", "--timeout", "2s"}, want: exitFail, wantErr: "127.0.0.1:1"},
		{name: "admin off", args: nil, env: []string{"SIGNET_ADMIN__LISTEN=off"}, want: exitConfig, wantErr: "admin.listen"},
		{name: "bad url", args: []string{"--url", "localhost:8081"}, want: exitConfig, wantErr: "absolute"},
		{name: "ready with url", args: []string{"--ready", "--url", srv.URL + "/readyz"}, want: exitConfig, wantErr: "--ready"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"health"}, tt.args...), &stdout, &stderr, append(append([]string(nil), env...), tt.env...))
			if code != tt.want {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.want, &stdout, &stderr)
			}
			if !strings.Contains(stdout.String(), tt.wantOut) {
				t.Errorf("stdout %q lacks %q", &stdout, tt.wantOut)
			}
			if !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("stderr %q lacks %q", &stderr, tt.wantErr)
			}
		})
	}
	ready.Store(true)
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"health", "--ready"}, &stdout, &stderr, env); code != exitOK {
		t.Errorf("ready: exit %d: %s", code, &stderr)
	}
}

func TestAdminURL(t *testing.T) {
	for listen, want := range map[string]string{
		"127.0.0.1:8081": "http://127.0.0.1:8081/readyz",
		"0.0.0.0:9090":   "http://127.0.0.1:9090/readyz",
		":9090":          "http://127.0.0.1:9090/readyz",
		"[::]:9090":      "http://[::1]:9090/readyz",
		"[::1]:8081":     "http://[::1]:8081/readyz",
		"localhost:8081": "http://localhost:8081/readyz",
	} {
		got, err := adminURL(&configs.Config{Admin: configs.Admin{Listen: listen}}, true)
		if err != nil || got != want {
			t.Errorf("%s: got %s, %v; want %s", listen, got, err, want)
		}
	}
	for _, listen := range []string{"", "off", "127.0.0.1:0", "nonsense"} {
		if got, err := adminURL(&configs.Config{Admin: configs.Admin{Listen: listen}}, false); err == nil {
			t.Errorf("%q: got %s, want an error", listen, got)
		}
	}
}
