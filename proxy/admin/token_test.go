package admin_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signet-proxy/signet/proxy/admin"
)

func TestNewToken(t *testing.T) {
	a, err := admin.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := admin.NewToken()
	if a == b || len(a) != 43 || admin.CheckToken(a) != nil {
		t.Errorf("tokens %q and %q", a, b)
	}
}

func TestCheckToken(t *testing.T) {
	for _, tt := range []struct {
		tok string
		ok  bool
	}{
		{"0123456789abcdef", true},
		{"~!@#$%^&*()_+{}|:<>?-=[];',./0123", true},
		{"0123456789abcde", false},
		{"0123456789 abcdef", false},
		{"0123456789abcdef\n", false},
		{"0123456789abcdef\r", false},
		{"0123456789abcdéf", false},
		{"", false},
	} {
		err := admin.CheckToken(tt.tok)
		if (err == nil) != tt.ok {
			t.Errorf("CheckToken(%q) = %v", tt.tok, err)
		}
		if err != nil && tt.tok != "" && strings.Contains(err.Error(), tt.tok) {
			t.Errorf("error shows the token: %v", err)
		}
	}
}

func TestTokenFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name, content string
		mode          os.FileMode
		want          string // "" for an error
	}{
		{"plain", token, 0o600, token},
		{"line break", token + "\n", 0o600, token},
		{"crlf", token + "\r\n", 0o400, token},
		{"readable by group", token, 0o640, ""},
		{"readable by all", token, 0o644, ""},
		{"two lines", token + "\n" + token, 0o600, ""},
		{"short", "abc\n", 0o600, ""},
		{"empty", "", 0o600, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := write(strings.ReplaceAll(tt.name, " ", "-"), tt.content, tt.mode)
			got, err := admin.ReadTokenFile(p)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("read %q", got)
				}
				if strings.Contains(err.Error(), token) {
					t.Errorf("error shows the token: %v", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v", got, err)
			}
		})
	}
	if _, err := admin.ReadTokenFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("read a missing file")
	}

	// Generated: 0600, no line break (the SDKs send the file as it is),
	// replaced whole on the next run.
	state := filepath.Join(dir, "state")
	tok, path, err := admin.LoadOrCreateToken("", state)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 || path != filepath.Join(state, admin.TokenFileName) {
		t.Fatalf("%s: %v %v", path, fi.Mode(), err)
	}
	if data, _ := os.ReadFile(path); string(data) != tok {
		t.Errorf("file holds %q, want the token without a line break", data)
	}
	tok2, _, err := admin.LoadOrCreateToken("", state)
	if err != nil || tok2 == tok {
		t.Errorf("second run: same token or %v", err)
	}
	if data, _ := os.ReadFile(path); string(data) != tok2 {
		t.Error("second run did not replace the file")
	}
	if entries, _ := os.ReadDir(state); len(entries) != 1 {
		t.Errorf("state dir holds %d files", len(entries))
	}
	given := write("given", token+"\n", 0o600)
	if got, p, err := admin.LoadOrCreateToken(given, state); err != nil || got != token || p != given {
		t.Errorf("configured file: %q %q %v", got, p, err)
	}
}

func TestServer(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := admin.Listen(ctx, "127.0.0.1:0", f.handler(t, nil), f.logger)
	if err != nil {
		t.Fatal(err)
	}
	// The port is taken until Serve ends.
	if _, err := admin.Listen(ctx, srv.Addr().String(), http.NotFoundHandler(), nil); err == nil {
		t.Error("second Listen on one address succeeded")
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, time.Second) }()
	resp, err := http.Get(srv.URL() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "ok\n" {
		t.Errorf("healthz: %q", body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if _, err := net.Dial("tcp", srv.Addr().String()); err == nil {
		t.Error("still listening after Serve returned")
	}

	any, err := admin.Listen(t.Context(), "0.0.0.0:0", http.NotFoundHandler(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer any.Close()
	if u := any.URL(); !strings.HasPrefix(u, "http://127.0.0.1:") {
		t.Errorf("URL of an unspecified address: %s", u)
	}
}
