package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/signet-proxy/signet/signer"
)

// startLimited is startProxy with the signer built from sopts and every
// finished request reported on the returned channel (its access line).
func startLimited(t *testing.T, opts Options, sopts signer.Options) (*testProxy, *signer.Signer, <-chan slog.Record) {
	t.Helper()
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	done := make(chan slog.Record, 100)
	opts.AccessLog = slog.New(recordHandler(done))
	sopts.Logger = opts.Logger
	sg := signer.New(sopts)
	opts.Signer = sg
	tp := startProxy(t, opts)
	return tp, sg, done
}

// recordHandler passes every record to a channel: a request has finished
// (its spool released, its connection's request done) when its access
// line arrives.
type recordHandler chan<- slog.Record

func (h recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h recordHandler) Handle(_ context.Context, r slog.Record) error {
	h <- r.Clone()
	return nil
}
func (h recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h recordHandler) WithGroup(string) slog.Handler      { return h }

// waitFor polls cond: for state that changes on the server's own
// goroutines after the client has seen all it can (a closed connection
// given back). It fails the test only if cond never holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// signetError checks that resp is signet's own error answer with status and
// code, and returns its message.
func signetError(t *testing.T, resp *http.Response, body string, status int, code string) string {
	t.Helper()
	if resp.StatusCode != status || resp.Header.Get("X-Signet-Error") != code {
		t.Fatalf("got %d %q (%s), want %d %q", resp.StatusCode, resp.Header.Get("X-Signet-Error"), body, status, code)
	}
	var eb errorBody
	if err := json.Unmarshal([]byte(body), &eb); err != nil || eb.Error != code || eb.Message == "" || eb.Fix == "" {
		t.Fatalf("body %q is not a JSON error with code %s, a message and a fix (%v)", body, code, err)
	}
	return eb.Message
}

const limitTestHost = "api.example.test"

var limitScope = signer.Scope{Service: "execute-api", Region: "eu-west-1"}

// TestBodyLimit: a signed request's body over its route's or reverse
// listener's limit gets 413 request-body-too-large: with a known length
// before any of it is read, and cut when it passes the limit otherwise,
// whether the body is hashed first (spooled) or streamed. The body never
// reaches the upstream whole, and the next request is served. Unsigned
// pass-through is not limited.
func TestBodyLimit(t *testing.T) {
	const limit = 1000
	var rec recorder
	up := upstreamAddr(t, rec.handler(200, "ok"))
	scope := signer.Scope{Service: "execute-api", Region: "eu-west-1"}
	u, _ := url.Parse("http://" + up)
	tp, _, _ := startLimited(t, Options{
		Routes: []Route{
			{Hosts: []string{"hashed." + limitTestHost}, Source: staticSource(t), Scope: scope, UpstreamScheme: "http", MaxBodyBytes: limit},
			{Hosts: []string{"streamed." + limitTestHost}, Source: staticSource(t), Scope: scope, UpstreamScheme: "http", Payload: signer.PayloadUnsigned, MaxBodyBytes: limit},
		},
		Reverse:  []Reverse{{Upstream: u, Source: staticSource(t), Scope: scope, MaxBodyBytes: limit}},
		Upstream: UpstreamOptions{ConnectTo: map[string]string{"*": up}},
	}, signer.Options{SpoolDir: t.TempDir(), SpoolMemory: 100})
	viaProxy := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: tp.addr})}}
	direct := &http.Client{Timeout: 10 * time.Second}

	tests := []struct {
		name    string
		url     string
		size    int
		chunked bool
		want    int
	}{
		{"hashed, known length under", "http://hashed." + limitTestHost + "/", limit - 1, false, 200},
		{"hashed, known length at the limit", "http://hashed." + limitTestHost + "/", limit, false, 200},
		{"hashed, known length over", "http://hashed." + limitTestHost + "/", limit + 1, false, 413},
		{"hashed, chunked at the limit", "http://hashed." + limitTestHost + "/", limit, true, 200},
		{"hashed, chunked over", "http://hashed." + limitTestHost + "/", limit + 1, true, 413},
		{"hashed, chunked far over", "http://hashed." + limitTestHost + "/", 200_000, true, 413},
		{"streamed, known length over", "http://streamed." + limitTestHost + "/", 5000, false, 413},
		{"streamed, chunked at the limit", "http://streamed." + limitTestHost + "/", limit, true, 200},
		{"streamed, chunked over", "http://streamed." + limitTestHost + "/", 5000, true, 413},
		{"reverse, known length over", "reverse", 5000, false, 413},
		{"reverse, chunked over", "reverse", 5000, true, 413},
		{"reverse, chunked at the limit", "reverse", limit, true, 200},
		{"unsigned pass-through is not limited", "http://other.test/", 50_000, true, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, target := viaProxy, tt.url
			if tt.url == "reverse" {
				client, target = direct, "http://"+tp.reverse[0]+"/"
			}
			var body io.Reader = bytes.NewReader(bytes.Repeat([]byte("b"), tt.size))
			if tt.chunked {
				body = struct{ io.Reader }{body} // no length known: chunked
			}
			req, _ := http.NewRequest(http.MethodPut, target, body)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if tt.want == 413 {
				msg := signetError(t, resp, string(b), 413, codeBodyTooLarge)
				if !strings.Contains(msg, "1000 bytes") {
					t.Errorf("message %q does not give the limit", msg)
				}
			} else if resp.StatusCode != tt.want {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, b, tt.want)
			}
			// The server goes on: the next request is served.
			next, err := client.Get(strings.Replace(target, "other.test", "hashed."+limitTestHost, 1))
			if err != nil {
				t.Fatal(err)
			}
			next.Body.Close()
			if next.StatusCode != 200 {
				t.Errorf("next request: status %d", next.StatusCode)
			}
		})
	}
	for _, r := range rec.all() {
		if r.host != "other.test" && len(r.body) > limit {
			t.Errorf("the upstream got a body of %d bytes, over the limit", len(r.body))
		}
	}
}

// TestBodyLimitBeforeContinue: a client that asks for 100 Continue gets
// the 413 instead, and so never sends a body that would be refused.
func TestBodyLimitBeforeContinue(t *testing.T) {
	var rec recorder
	up := upstreamAddr(t, rec.handler(200, "ok"))
	tp, _, _ := startLimited(t, Options{
		Routes:   []Route{{Hosts: []string{limitTestHost}, Source: staticSource(t), Scope: limitScope, UpstreamScheme: "http", MaxBodyBytes: 1 << 20}},
		Upstream: UpstreamOptions{ConnectTo: map[string]string{"*": up}},
	}, signer.Options{SpoolDir: t.TempDir()})
	resp, body := rawRequest(t, tp.addr, "PUT http://"+limitTestHost+"/big HTTP/1.1\r\nHost: "+limitTestHost+
		"\r\nContent-Length: 5368709121\r\nExpect: 100-continue\r\n\r\n")
	signetError(t, resp, body, 413, codeBodyTooLarge)
	if n := len(rec.all()); n != 0 {
		t.Errorf("the upstream got %d requests", n)
	}
}

// TestSpoolLimit: bodies hashed on disk are bounded all together. Of
// three concurrent uploads that fit two at a time, two are sent on and
// one gets 507 spool-full; once they finish, their room is free again.
// An upload cut off half way gives its room back and leaves no file.
func TestSpoolLimit(t *testing.T) {
	const limit, size = 100_000, 40_000
	arrived := make(chan struct{}, 10)
	proceed := make(chan struct{})
	var rec recorder
	up := upstreamAddr(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			_, _ = io.Copy(io.Discard, r.Body)
			arrived <- struct{}{}
			<-proceed
		}
		rec.handler(200, "ok").ServeHTTP(w, r)
	}))
	dir := t.TempDir()
	tp, sg, done := startLimited(t, Options{
		Routes: []Route{{Hosts: []string{limitTestHost}, Source: staticSource(t), UpstreamScheme: "http",
			Scope: signer.Scope{Service: "execute-api", Region: "eu-west-1"}, Payload: signer.PayloadSigned}},
		Upstream: UpstreamOptions{ConnectTo: map[string]string{"*": up}},
	}, signer.Options{SpoolDir: dir, SpoolMemory: 1024, MaxSpoolBytes: limit})
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: tp.addr})}}

	type result struct {
		status int
		code   string
		body   string
		err    error
	}
	upload := func(path string, size int, chunked bool) result {
		var body io.Reader = bytes.NewReader(bytes.Repeat([]byte("s"), size))
		if chunked {
			body = struct{ io.Reader }{body}
		}
		req, _ := http.NewRequest(http.MethodPut, "http://"+limitTestHost+path, body)
		resp, err := client.Do(req)
		if err != nil {
			return result{err: err}
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return result{resp.StatusCode, resp.Header.Get("X-Signet-Error"), string(b), nil}
	}

	results := make(chan result, 3)
	for _, chunked := range []bool{false, false, true} {
		go func() { results <- upload("/hold", size, chunked) }()
	}
	<-arrived
	<-arrived
	full := <-results
	if full.err != nil || full.status != http.StatusInsufficientStorage || full.code != codeSpoolFull {
		t.Fatalf("third upload: %+v, want 507 %s", full, codeSpoolFull)
	}
	var eb errorBody
	if err := json.Unmarshal([]byte(full.body), &eb); err != nil || eb.Error != codeSpoolFull {
		t.Errorf("507 body %q", full.body)
	}
	if got := sg.SpoolBytes(); got != 2*size {
		t.Errorf("%d bytes reserved with two uploads held, want %d", got, 2*size)
	}
	close(proceed)
	for range 2 {
		if r := <-results; r.err != nil || r.status != 200 {
			t.Errorf("held upload: %+v", r)
		}
	}
	for range 3 {
		<-done
	}
	if got := sg.SpoolBytes(); got != 0 {
		t.Errorf("%d bytes reserved after every upload finished", got)
	}
	if r := upload("/", limit, false); r.status != 200 {
		t.Errorf("an upload of the whole limit after the others: %+v", r)
	}
	<-done

	t.Run("aborted upload", func(t *testing.T) {
		before := openSpoolFiles(t)
		c, err := net.Dial("tcp", tp.addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "PUT http://%s/ HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n", limitTestHost, limitTestHost, limit)
		_, _ = c.Write(bytes.Repeat([]byte("a"), limit/2))
		waitFor(t, "the half upload to reach the spool", func() bool { return sg.SpoolBytes() == limit })
		_ = c.Close()
		<-done
		if got := sg.SpoolBytes(); got != 0 {
			t.Errorf("%d bytes still reserved after the client went away", got)
		}
		if es, _ := os.ReadDir(dir); len(es) != 0 || openSpoolFiles(t) != before {
			t.Errorf("spool left behind: %d files, %d open", len(es), openSpoolFiles(t)-before)
		}
		if r := upload("/", limit, true); r.status != 200 {
			t.Errorf("an upload after the aborted one: %+v", r)
		}
	})
}

// openSpoolFiles counts this process's open spool files (unlinked at once,
// so they show only as descriptors).
func openSpoolFiles(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	n := 0
	for _, fd := range fds {
		if target, err := os.Readlink("/proc/self/fd/" + fd.Name()); err == nil && strings.Contains(target, "signet-body-") {
			n++
		}
	}
	return n
}

// heldConn is an open client connection of some kind, counted by the
// limit until it closes.
type heldConn struct {
	conn net.Conn
	br   *bufio.Reader
}

// keepAlive opens a connection to addr and makes one request on it, so
// the server has accepted it; it stays open.
func keepAlive(t *testing.T, addr, target string) heldConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, limitTestHost)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("keep-alive request to %s: %d", addr, resp.StatusCode)
	}
	return heldConn{c, br}
}

// refused checks that a new connection to addr gets the 503.
func refused(t *testing.T, addr string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET http://%s/ HTTP/1.1\r\nHost: %s\r\n\r\n", limitTestHost, limitTestHost)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("connection over the limit: %v, want a 503", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	signetError(t, resp, string(b), http.StatusServiceUnavailable, codeTooManyConnections)
	if resp.Header.Get("Retry-After") == "" || !resp.Close {
		t.Errorf("503 without Retry-After or Connection: close: %v", resp.Header)
	}
}

// TestConnectionLimit: the proxy and reverse listeners share one count of
// open connections, tunnels included until they close. One over it gets a
// 503 that says why; once one closes, a new one is served.
func TestConnectionLimit(t *testing.T) {
	var rec recorder
	up := upstreamAddr(t, rec.handler(200, "ok"))
	// A raw TCP service for blind tunnels, which holds what it accepts.
	tunnelEnd, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tunnelEnd.Close() })
	go func() {
		for {
			c, err := tunnelEnd.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c); _ = c.Close() }()
		}
	}()
	u, _ := url.Parse("http://" + up)
	tp, _, _ := startLimited(t, Options{
		Routes:   []Route{{Hosts: []string{limitTestHost}, Source: staticSource(t), Scope: limitScope, UpstreamScheme: "http"}},
		Reverse:  []Reverse{{Upstream: u, Source: staticSource(t), Scope: signer.Scope{Service: "execute-api", Region: "eu-west-1"}}},
		Upstream: UpstreamOptions{ConnectTo: map[string]string{limitTestHost + ":80": up}},
		Limits:   Limits{MaxConnections: 2},
	}, signer.Options{SpoolDir: t.TempDir()})
	forward := "http://" + limitTestHost + "/"

	tests := []struct {
		name string
		open func(t *testing.T) heldConn
	}{
		{"keep-alive on the proxy listener", func(t *testing.T) heldConn { return keepAlive(t, tp.addr, forward) }},
		{"keep-alive on a reverse listener", func(t *testing.T) heldConn { return keepAlive(t, tp.reverse[0], "/") }},
		{"CONNECT tunnel", func(t *testing.T) heldConn {
			c, err := net.Dial("tcp", tp.addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Close() })
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %[1]s\r\n\r\n", tunnelEnd.Addr())
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("CONNECT: %v %v", resp, err)
			}
			return heldConn{c, br}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first := keepAlive(t, tp.addr, forward)
			second := tt.open(t)
			refused(t, tp.addr)
			refused(t, tp.reverse[0])
			// The refused ones gave nothing back that they did not take.
			if n := tp.srv.conns.open.Load(); n != 2 {
				t.Errorf("%d connections counted, want 2", n)
			}
			_ = second.conn.Close()
			waitFor(t, "the closed connection to be given back", func() bool { return tp.srv.conns.open.Load() == 1 })
			third := keepAlive(t, tp.addr, forward)
			// The first is still served.
			fmt.Fprintf(first.conn, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", forward, limitTestHost)
			resp, err := http.ReadResponse(first.br, nil)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("held connection after the refusals: %v %v", resp, err)
			}
			resp.Body.Close()
			_ = first.conn.Close()
			_ = third.conn.Close()
			waitFor(t, "every connection to be given back", func() bool { return tp.srv.conns.open.Load() == 0 })
		})
	}
}

// TestConnectionLimitTLSListener: a TLS proxy listener cannot answer in
// HTTP before a handshake, so a connection over the limit is closed.
func TestConnectionLimitTLSListener(t *testing.T) {
	var rec recorder
	up := upstreamAddr(t, rec.handler(200, "ok"))
	cert := httptest.NewTLSServer(http.NotFoundHandler())
	cert.Close() // only its certificate is used
	tp, _, _ := startLimited(t, Options{
		Routes:      []Route{{Hosts: []string{limitTestHost}, Source: staticSource(t), Scope: limitScope, UpstreamScheme: "http"}},
		Upstream:    UpstreamOptions{ConnectTo: map[string]string{"*": up}},
		ListenerTLS: &tls.Config{Certificates: cert.TLS.Certificates},
		Limits:      Limits{MaxConnections: 1},
	}, signer.Options{SpoolDir: t.TempDir()})
	clientTLS := &tls.Config{RootCAs: cert.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs, ServerName: "example.com"}
	dial := func() (*tls.Conn, error) {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", tp.addr, clientTLS)
		if err == nil {
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		}
		return c, err
	}
	held, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	if c, err := dial(); err == nil {
		// A handshake cannot finish; at the latest the first read ends.
		_, err = c.Read(make([]byte, 1))
		_ = c.Close()
		if err == nil {
			t.Fatal("a TLS connection over the limit was served")
		}
	}
	_ = held.Close()
	waitFor(t, "the held connection to be given back", func() bool { return tp.srv.conns.open.Load() == 0 })
	c, err := dial()
	if err != nil {
		t.Fatalf("after the held connection closed: %v", err)
	}
	_ = c.Close()
}

// TestHeaderAndTimeoutLimits: headers over max_header_bytes get Go's 431;
// a client that is too slow with its headers, or idle too long, is
// disconnected; each time the server serves the next client.
func TestHeaderAndTimeoutLimits(t *testing.T) {
	var rec recorder
	up := upstreamAddr(t, rec.handler(200, "ok"))
	tp, _, _ := startLimited(t, Options{
		Routes:   []Route{{Hosts: []string{limitTestHost}, Source: staticSource(t), Scope: limitScope, UpstreamScheme: "http"}},
		Upstream: UpstreamOptions{ConnectTo: map[string]string{"*": up}},
		Limits:   Limits{MaxHeaderBytes: 4096, ReadHeaderTimeout: 50 * time.Millisecond, IdleTimeout: 50 * time.Millisecond},
	}, signer.Options{SpoolDir: t.TempDir()})
	get := "GET http://" + limitTestHost + "/ HTTP/1.1\r\nHost: " + limitTestHost + "\r\n"

	// closed reports whether the server ends c (after reading any answer).
	closed := func(t *testing.T, c net.Conn) {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := io.Copy(io.Discard, c)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("the server kept the connection open")
		}
	}
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"header too large", func(t *testing.T) {
			resp, body := rawRequest(t, tp.addr, get+"X-Big: "+strings.Repeat("a", 10_000)+"\r\n\r\n")
			if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || !strings.Contains(body, "Request Header Fields Too Large") {
				t.Errorf("got %d %q, want 431", resp.StatusCode, body)
			}
		}},
		{"header under the limit", func(t *testing.T) {
			resp, _ := rawRequest(t, tp.addr, get+"X-Big: "+strings.Repeat("a", 3000)+"\r\n\r\n")
			if resp.StatusCode != 200 {
				t.Errorf("got %d", resp.StatusCode)
			}
		}},
		{"headers too slow", func(t *testing.T) {
			c, err := net.Dial("tcp", tp.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, _ = io.WriteString(c, get) // and never the blank line
			closed(t, c)
		}},
		{"idle too long", func(t *testing.T) {
			c, err := net.Dial("tcp", tp.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, _ = io.WriteString(c, get+"\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("%v %v", resp, err)
			}
			closed(t, c)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(t)
			resp, _ := rawRequest(t, tp.addr, get+"Connection: close\r\n\r\n")
			if resp.StatusCode != 200 {
				t.Errorf("next request: %d", resp.StatusCode)
			}
		})
	}
}

// TestReloadLimits: body limits follow a reload; the listeners' limits
// need a restart.
func TestReloadLimits(t *testing.T) {
	var rec recorder
	up := upstreamAddr(t, rec.handler(200, "ok"))
	opts := func(maxBody int64, lim Limits) Options {
		return Options{
			Listen:   "127.0.0.1:0",
			Routes:   []Route{{Hosts: []string{limitTestHost}, Source: staticSource(t), Scope: limitScope, UpstreamScheme: "http", MaxBodyBytes: maxBody}},
			Upstream: UpstreamOptions{ConnectTo: map[string]string{"*": up}},
			Limits:   lim,
		}
	}
	tp := startProxy(t, opts(10, Limits{MaxConnections: 50}))
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: tp.addr})}}
	put := func() int {
		resp, err := client.Post("http://"+limitTestHost+"/", "text/plain", strings.NewReader(strings.Repeat("x", 100)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := put(); got != 413 {
		t.Fatalf("before reload: %d, want 413", got)
	}
	if err := tp.srv.Reload(opts(1000, Limits{MaxConnections: 50})); err != nil {
		t.Fatal(err)
	}
	if got := put(); got != 200 {
		t.Fatalf("after raising the body limit: %d, want 200", got)
	}
	for _, lim := range []Limits{
		{MaxConnections: 51},
		{MaxConnections: 50, MaxHeaderBytes: 1 << 20},
		{MaxConnections: 50, ReadHeaderTimeout: time.Minute},
		{MaxConnections: 50, IdleTimeout: time.Hour},
	} {
		if err := tp.srv.Reload(opts(10, lim)); !errors.Is(err, ErrRestartNeeded) {
			t.Errorf("Reload with limits %+v: %v, want ErrRestartNeeded", lim, err)
		}
	}
	if got := put(); got != 200 {
		t.Errorf("a refused reload changed the body limit: %d", got)
	}
	// The defaults spelled out are no change.
	def := Limits{MaxConnections: 50, MaxHeaderBytes: defaultMaxHeaderBytes, ReadHeaderTimeout: defaultReadHeaderTimeout, IdleTimeout: defaultIdleTimeout}
	if err := tp.srv.Reload(opts(1000, def)); err != nil {
		t.Errorf("Reload with the same limits spelled out: %v", err)
	}
}

func TestBodyLimitReader(t *testing.T) {
	tests := []struct {
		size, limit int
		wantErr     bool
	}{
		{0, 10, false}, {9, 10, false}, {10, 10, false}, {11, 10, true}, {100_000, 10, true}, {100_000, 99_999, true}, {100_000, 100_000, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d of %d", tt.size, tt.limit), func(t *testing.T) {
			r := &http.Request{Body: io.NopCloser(bytes.NewReader(make([]byte, tt.size))), ContentLength: -1}
			body, pe := limitBody(r, &target{maxBody: int64(tt.limit), route: "routes[0]"})
			if pe != nil {
				t.Fatal(pe)
			}
			n, err := io.Copy(io.Discard, body)
			if tt.wantErr {
				var got *proxyError
				if !errors.As(err, &got) || got.code != codeBodyTooLarge || n != int64(tt.limit) || !body.(*bodyLimit).exceeded.Load() {
					t.Errorf("read %d, err %v; want %d bytes then %s", n, err, tt.limit, codeBodyTooLarge)
				}
				// It stays cut.
				if _, err := body.Read(make([]byte, 10)); !errors.As(err, &got) {
					t.Errorf("read after the cut: %v", err)
				}
			} else if err != nil || n != int64(tt.size) {
				t.Errorf("read %d, err %v; want all %d", n, err, tt.size)
			}
		})
	}
}
