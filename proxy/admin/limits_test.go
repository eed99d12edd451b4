package admin_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/signet-proxy/signet/proxy/admin"
)

// TestListenWithLimits: the admin listener takes limits.max_header_bytes
// (431 past it, then serves on) and limits.read_header_timeout (a client
// too slow with its headers is disconnected).
func TestListenWithLimits(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	srv, err := admin.ListenWith(ctx, "127.0.0.1:0", ok, nil, admin.Limits{MaxHeaderBytes: 4096, ReadHeaderTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	send := func(req string) (*http.Response, net.Conn) {
		t.Helper()
		c, err := net.Dial("tcp", srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.WriteString(c, req)
		if !strings.HasSuffix(req, "\r\n\r\n") {
			return nil, c
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp, c
	}
	get := "GET /healthz HTTP/1.1\r\nHost: a\r\n"
	if resp, _ := send(get + "X-Big: " + strings.Repeat("a", 10_000) + "\r\n\r\n"); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("big headers: %d, want 431", resp.StatusCode)
	}
	if resp, _ := send(get + "X-Small: " + strings.Repeat("a", 3000) + "\r\n\r\n"); resp.StatusCode != 200 {
		t.Errorf("headers under the limit: %d", resp.StatusCode)
	}
	_, c := send(get) // and never the blank line
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Errorf("a client slow with its headers was not disconnected: %v", err)
	}
}
