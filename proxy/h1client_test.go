package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signet-proxy/signet/signer"
)

// countingUpstream is an HTTP test upstream that counts the connections
// it accepted.
func countingUpstream(t *testing.T, h http.Handler) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var conns atomic.Int32
	ts := httptest.NewUnstartedServer(h)
	ts.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	ts.Start()
	t.Cleanup(ts.Close)
	return ts, &conns
}

// reverseTo starts a proxy whose reverse listener signs for upstream.
func reverseTo(t *testing.T, upstream string) string {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	tp := startProxy(t, Options{Reverse: []Reverse{{Upstream: u, Source: staticSource(t),
		Scope: signer.Scope{Service: "execute-api", Region: "us-east-1"}}}})
	return "http://" + tp.reverse[0]
}

func get(t *testing.T, c *http.Client, method, target string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// TestH1ReusesConnections: sequential GETs and HEADs through signet use
// one upstream connection, and are signed.
func TestH1ReusesConnections(t *testing.T) {
	var unsigned atomic.Int32
	ts, conns := countingUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
			unsigned.Add(1)
		}
		w.Header().Set("Content-Length", "5")
		_, _ = io.WriteString(w, "hello")
	}))
	target := reverseTo(t, ts.URL)
	for i := range 20 {
		method := http.MethodGet
		if i%2 == 1 {
			method = http.MethodHead
		}
		resp, body := get(t, http.DefaultClient, method, target+"/item")
		want := "hello"
		if method == http.MethodHead {
			want = ""
		}
		if resp.StatusCode != 200 || body != want || resp.ContentLength != 5 {
			t.Fatalf("%s %d: status %d, body %q, length %d", method, i, resp.StatusCode, body, resp.ContentLength)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("upstream saw %d connections for 20 sequential requests, want 1", n)
	}
	if n := unsigned.Load(); n != 0 {
		t.Errorf("%d requests reached the upstream unsigned", n)
	}
}

// TestH1RetriesStaleConnection: an upstream that closed the pooled
// connection while it was idle costs the client nothing.
func TestH1RetriesStaleConnection(t *testing.T) {
	ts, conns := countingUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "fresh")
	}))
	target := reverseTo(t, ts.URL)
	for i := range 5 {
		if resp, body := get(t, http.DefaultClient, http.MethodGet, target+"/x"); resp.StatusCode != 200 || body != "fresh" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
		ts.CloseClientConnections() // the pooled connection goes stale
	}
	if n := conns.Load(); n != 5 {
		t.Errorf("upstream saw %d connections, want 5 (one per request)", n)
	}
}

// rawUpstream accepts connections and hands each to serve with its count
// (1 for the first).
func rawUpstream(t *testing.T, serve func(n int, c net.Conn, br *bufio.Reader)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	wg.Go(func() {
		for n := 1; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				serve(n, c, bufio.NewReader(c))
			})
		}
	})
	return "http://" + ln.Addr().String()
}

// TestH1Stale408: an upstream that times out an idle connection with a
// 408 (as nginx does) before closing it: the 408 answered no request, and
// the client gets its real answer from a new connection. The upstream
// here sends its 408 as the answer to the connection's second request,
// which is what signet sees when the 408 came while it was idle.
func TestH1Stale408(t *testing.T) {
	target := reverseTo(t, rawUpstream(t, func(n int, c net.Conn, br *bufio.Reader) {
		for i := 1; ; i++ {
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			if n == 1 && i == 2 {
				_, _ = io.WriteString(c, "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
				return
			}
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	}))
	for i := range 3 {
		if resp, body := get(t, http.DefaultClient, http.MethodGet, target+"/x"); resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
	}
}

// TestH1RefusesUnaskedSwitch: a 101 to a request that asked for no
// upgrade is the upstream's error, not a tunnel.
func TestH1RefusesUnaskedSwitch(t *testing.T) {
	target := reverseTo(t, rawUpstream(t, func(_ int, c net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err == nil {
			_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
		}
	}))
	if resp, _ := get(t, http.DefaultClient, http.MethodGet, target+"/x"); resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("got %d, want 502", resp.StatusCode)
	}
}

// TestH1IdleConnectionsExpire: a connection idle past the pool's timeout
// is closed and leaves the pool.
func TestH1IdleConnectionsExpire(t *testing.T) {
	closedByPeer := make(chan struct{})
	addr := rawUpstream(t, func(_ int, c net.Conn, br *bufio.Reader) {
		for {
			if _, err := http.ReadRequest(br); err != nil {
				close(closedByPeer)
				return
			}
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	var d net.Dialer
	c := newH1Client(d.DialContext)
	c.idleTimeout = time.Millisecond
	req, _ := http.NewRequest(http.MethodGet, addr+"/x", nil)
	resp, err := c.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(resp.Body); string(b) != "ok" {
		t.Fatalf("body %q", b)
	}
	select {
	case <-closedByPeer:
	case <-time.After(30 * time.Second):
		t.Fatal("the idle connection was never closed")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nIdle != 0 || len(c.idle) != 0 {
		t.Errorf("pool still holds %d (%v)", c.nIdle, c.idle)
	}
}

// TestH1SkipsInformational: 1xx answers before the final one are dropped,
// as the transport drops them.
func TestH1SkipsInformational(t *testing.T) {
	ts, _ := countingUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, "made")
	}))
	target := reverseTo(t, ts.URL)
	if resp, body := get(t, http.DefaultClient, http.MethodGet, target+"/x"); resp.StatusCode != http.StatusCreated || body != "made" {
		t.Fatalf("got %d %q, want 201 made", resp.StatusCode, body)
	}
}

// TestH1TrailersPass: a chunked answer's trailer reaches the client.
func TestH1TrailersPass(t *testing.T) {
	ts, _ := countingUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		_, _ = io.WriteString(w, "part one, ")
		w.(http.Flusher).Flush()
		_, _ = io.WriteString(w, "part two")
		w.Header().Set("X-Checksum", "abc123")
	}))
	target := reverseTo(t, ts.URL)
	resp, body := get(t, http.DefaultClient, http.MethodGet, target+"/x")
	if body != "part one, part two" || resp.Trailer.Get("X-Checksum") != "abc123" {
		t.Fatalf("body %q, trailer %v", body, resp.Trailer)
	}
}

// TestH1RefusesHugeHeader: an upstream cannot make signet buffer an
// endless header section; the client gets signet's 502.
func TestH1RefusesHugeHeader(t *testing.T) {
	target := reverseTo(t, rawUpstream(t, func(_ int, c net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\n")
		line := "X-Filler: " + strings.Repeat("a", 1000) + "\r\n"
		for range 2 * h1MaxHeaderBytes / len(line) {
			if _, err := io.WriteString(c, line); err != nil {
				return
			}
		}
	}))
	resp, _ := get(t, http.DefaultClient, http.MethodGet, target+"/x")
	if resp.StatusCode != http.StatusBadGateway || resp.Header.Get("X-Signet-Error") != codeUpstreamFailed {
		t.Fatalf("got %d %q, want 502 %s", resp.StatusCode, resp.Header.Get("X-Signet-Error"), codeUpstreamFailed)
	}
}

// TestH1ClientGoneEndsUpstream: a client that disconnects mid-body ends
// the upstream exchange, and its connection is not pooled.
func TestH1ClientGoneEndsUpstream(t *testing.T) {
	upstreamDone := make(chan struct{})
	ts, conns := countingUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/small" {
			_, _ = io.WriteString(w, "small")
			return
		}
		defer close(upstreamDone)
		chunk := bytes.Repeat([]byte("x"), 4096)
		for r.Context().Err() == nil {
			if _, err := w.Write(chunk); err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	}))
	target := reverseTo(t, ts.URL)
	resp, err := http.Get(target + "/endless")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 10000)); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close() // closes the client's connection: it was mid-body
	select {
	case <-upstreamDone:
	case <-time.After(30 * time.Second):
		t.Fatal("the upstream kept sending after the client left")
	}
	if resp, body := get(t, http.DefaultClient, http.MethodGet, target+"/small"); resp.StatusCode != 200 || body != "small" {
		t.Fatalf("next request: %d %q", resp.StatusCode, body)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("upstream saw %d connections, want 2: the cut one must not be reused", n)
	}
}

// TestH1PoolBounds: the pool keeps at most h1MaxIdlePerHost connections to
// one upstream and closes the rest, and closes what it holds on
// CloseIdleConnections.
func TestH1PoolBounds(t *testing.T) {
	c := newH1Client(nil)
	var peers []net.Conn
	newConn := func() *h1Conn {
		a, b := net.Pipe()
		peers = append(peers, b)
		pc := &h1Conn{c: c, key: "up:80", conn: a}
		pc.idleTimer = time.AfterFunc(time.Hour, pc.expire)
		pc.idleTimer.Stop()
		return pc
	}
	closed := func(peer net.Conn) bool {
		_ = peer.SetReadDeadline(time.Now().Add(time.Second))
		_, err := peer.Read(make([]byte, 1))
		return errors.Is(err, io.EOF)
	}
	for range h1MaxIdlePerHost + 1 {
		c.put(newConn())
	}
	if c.nIdle != h1MaxIdlePerHost || len(c.idle["up:80"]) != h1MaxIdlePerHost {
		t.Fatalf("pool holds %d (%d counted), want %d", len(c.idle["up:80"]), c.nIdle, h1MaxIdlePerHost)
	}
	if !closed(peers[len(peers)-1]) {
		t.Error("the connection past the bound was not closed")
	}
	pc, err := c.get(context.Background(), "up:80")
	if err != nil || pc.conn == nil || !pc.reused || c.nIdle != h1MaxIdlePerHost-1 {
		t.Fatalf("get = %v, %v; %d idle", pc, err, c.nIdle)
	}
	c.CloseIdleConnections()
	if !closed(peers[0]) || c.nIdle != 0 || len(c.idle) != 0 {
		t.Error("CloseIdleConnections left connections open")
	}
	c.put(pc) // after close: closed, not pooled
	if len(c.idle) != 0 {
		t.Error("a closed pool took a connection back")
	}
}

// TestWriteRequestRefusesSplitting: a header name, value or Host that
// would split the request is refused, never written.
func TestWriteRequestRefusesSplitting(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(r *http.Request)
	}{
		{"CRLF in value", func(r *http.Request) { r.Header["X-Amz-Meta-A"] = []string{"v\r\nX-Injected: 1"} }},
		{"LF in value", func(r *http.Request) { r.Header["X-Amz-Meta-A"] = []string{"v\nX-Injected: 1"} }},
		{"space in name", func(r *http.Request) { r.Header["X Amz"] = []string{"v"} }},
		{"colon in name", func(r *http.Request) { r.Header["X:Amz"] = []string{"v"} }},
		{"CRLF in Host", func(r *http.Request) { r.Host = "h.test\r\nX-Injected: 1" }},
		{"space in target", func(r *http.Request) { r.URL.Opaque = "/a b" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := http.NewRequest(http.MethodGet, "http://h.test/p", nil)
			tc.edit(r)
			var buf bytes.Buffer
			bw := bufio.NewWriter(&buf)
			err := writeRequest(bw, r)
			if _, ok := errors.AsType[*requestError](err); !ok {
				t.Fatalf("writeRequest = %v, want a requestError", err)
			}
			if strings.Contains(buf.String(), "X-Injected") {
				t.Errorf("wrote %q", buf.String())
			}
		})
	}
}

// FuzzWriteRequest: whatever writeRequest accepts reads back as exactly
// one request, with the headers it was given: no header or request can be
// smuggled through a value.
func FuzzWriteRequest(f *testing.F) {
	f.Add("/bucket/key", "X-Amz-Meta-A", "value", "h.test")
	f.Add("/a%20b?x=1&y=%2F", "X-Amz-Date", "20240101T000000Z", "h.test:8080")
	f.Add("/", "X-A", "v\r\nX-B: 1", "h.test")
	f.Add("/", "X-A", " padded\t", "[::1]:80")
	f.Add("/", "content-length", "5", "h.test")
	f.Add("/", "X-A", "", "")
	f.Fuzz(func(t *testing.T, path, key, value, host string) {
		u, err := url.Parse("http://placeholder" + path)
		if err != nil || u.Host != "placeholder" {
			return
		}
		r := &http.Request{Method: http.MethodGet, URL: u, Host: host, Header: http.Header{key: {value}, "User-Agent": {""}}}
		var buf bytes.Buffer
		bw := bufio.NewWriter(&buf)
		if writeRequest(bw, r) != nil {
			return
		}
		br := bufio.NewReader(&buf)
		got, err := http.ReadRequest(br)
		if err != nil {
			t.Fatalf("written request does not parse: %v\n%q", err, buf.String())
		}
		if br.Buffered() != 0 {
			t.Fatalf("bytes after the request: %q", buf.String())
		}
		wantHost := host
		if host == "" {
			wantHost = u.Host
		}
		if got.Host != wantHost || got.RequestURI != u.RequestURI() {
			t.Fatalf("host %q target %q, want %q %q", got.Host, got.RequestURI, wantHost, u.RequestURI())
		}
		want := http.Header{}
		switch http.CanonicalHeaderKey(key) {
		case "Host", "Content-Length", "Transfer-Encoding", "Trailer", "User-Agent":
		default:
			want[http.CanonicalHeaderKey(key)] = []string{strings.TrimSpace(value)}
		}
		if !reflect.DeepEqual(got.Header, want) {
			t.Fatalf("headers %q, want %q", got.Header, want)
		}
	})
}
