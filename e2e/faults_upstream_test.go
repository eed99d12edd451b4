//go:build linux

package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// rawRequest is one request a rawUpstream read, with Go's strict parser.
type rawRequest struct {
	Method, Path  string
	Header        http.Header
	ContentLength int64 // -1 when unknown (chunked)
	Chunked       bool
	BodyBytes     int64
	// BodyErr is nil when the body arrived whole, as its framing (its
	// Content-Length, or chunked with the last chunk) declared.
	BodyErr error
}

// rawUpstream is an upstream on loopback that speaks raw TCP: it reads
// each request and its whole body, records them, and then lets handle
// answer on the connection as it likes (or not at all); handle returns
// false to have the connection closed. It stands for an upstream that
// misbehaves in ways no HTTP server library lets one write.
type rawUpstream struct {
	ln     net.Listener
	handle func(c net.Conn, r rawRequest) bool

	mu    sync.Mutex
	reqs  []rawRequest
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

func startRawUpstream(t *testing.T, handle func(c net.Conn, r rawRequest) bool) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUpstream{ln: ln, handle: handle, conns: map[net.Conn]bool{}}
	u.wg.Go(u.accept)
	t.Cleanup(func() {
		ln.Close()
		u.mu.Lock()
		for c := range u.conns {
			c.Close()
		}
		u.mu.Unlock()
		u.wg.Wait()
	})
	return u
}

func (u *rawUpstream) Addr() string { return u.ln.Addr().String() }

func (u *rawUpstream) accept() {
	for {
		c, err := u.ln.Accept()
		if err != nil {
			return
		}
		u.mu.Lock()
		u.conns[c] = true
		u.mu.Unlock()
		u.wg.Go(func() {
			defer func() {
				c.Close()
				u.mu.Lock()
				delete(u.conns, c)
				u.mu.Unlock()
			}()
			br := bufio.NewReader(c)
			for {
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				r := rawRequest{Method: req.Method, Path: req.URL.RequestURI(), Header: req.Header,
					ContentLength: req.ContentLength, Chunked: len(req.TransferEncoding) > 0}
				r.BodyBytes, r.BodyErr = io.Copy(io.Discard, req.Body)
				u.mu.Lock()
				u.reqs = append(u.reqs, r)
				u.mu.Unlock()
				if !u.handle(c, r) {
					return
				}
			}
		})
	}
}

// requests returns what the upstream read so far.
func (u *rawUpstream) requests() []rawRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]rawRequest(nil), u.reqs...)
}

// answerWhole answers 200 "ok" to a request whose body arrived whole and
// closes the connection of one that did not.
func answerWhole(c net.Conn, r rawRequest) bool {
	if r.BodyErr != nil {
		return false
	}
	_, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	return err == nil
}

// resetConn closes c with a TCP reset.
func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// faultyHost is the upstream of TestFaultUpstream: a route signs it for
// execute-api and signet dials the raw upstream for it.
const faultyHost = "faulty.example.test"

// upstreamHeaderTimeout is limits.upstream_response_header_timeout in
// TestFaultUpstream.
const upstreamHeaderTimeout = time.Second

// cutBody is what the upstream sends of a 100000-byte body before it
// stops.
const cutBody = 10000

// TestFaultUpstream: an upstream that resets or closes the connection
// before answering, answers something that is not HTTP, never answers,
// or cuts its response body off. The client gets signet's 502
// upstream-reset or upstream-bad-response, or 504 upstream-timeout after
// limits.upstream_response_header_timeout; a body cut off reaches the
// client cut off too (curl exits 18, "partial file"), never as a whole
// response. Every request the upstream saw was signed.
func TestFaultUpstream(t *testing.T) {
	t.Parallel()
	up := startRawUpstream(t, func(c net.Conn, r rawRequest) bool {
		switch strings.TrimPrefix(r.Path, "/") {
		case "reset", "reset-put":
			resetConn(c)
			return false
		case "close":
			return false
		case "garbage":
			_, _ = io.WriteString(c, "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\nProtocol mismatch.\r\n")
			return false
		case "hang":
			return true // read on, answer nothing
		case "cut-length", "reset-length":
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n")
			_, _ = c.Write(make([]byte, cutBody))
			time.Sleep(100 * time.Millisecond) // the part reaches the client first
			if r.Path == "/reset-length" {
				resetConn(c)
			}
			return false
		case "cut-chunked":
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
			_, _ = fmt.Fprintf(c, "%x\r\n%s\r\n", cutBody, make([]byte, cutBody))
			time.Sleep(100 * time.Millisecond)
			return false
		case "ok":
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nwhole")
			return true
		}
		return false
	})
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
log: {level: debug, format: json}
sources:
  test: {method: static, static: {access_key_id: %s, secret_access_key: %q}}
routes:
  - {hosts: [%q], source: test, service: execute-api, region: %s, upstream_scheme: http}
upstream:
  connect_to:
    "%s:80": %q
limits: {upstream_response_header_timeout: %s}
`, testAccessKey, testSecretKey, faultyHost, testRegion, faultyHost, up.Addr(), upstreamHeaderTimeout)
	s := startSignet(t, cfg, 0)
	proxyURL, _ := url.Parse(s.ProxyURL())
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}}
	t.Cleanup(hc.CloseIdleConnections)
	base := "http://" + faultyHost + "/"
	var bodies [][]byte

	for _, tc := range []struct {
		path   string
		method string
		status int
		code   string
	}{
		{"reset", "GET", http.StatusBadGateway, "upstream-reset"},
		{"reset-put", "PUT", http.StatusBadGateway, "upstream-reset"},
		{"close", "GET", http.StatusBadGateway, "upstream-reset"},
		{"garbage", "GET", http.StatusBadGateway, "upstream-bad-response"},
		{"hang", "GET", http.StatusGatewayTimeout, "upstream-timeout"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			var body io.Reader
			if tc.method == "PUT" {
				body = strings.NewReader(strings.Repeat("a body that must be hashed ", 100))
			}
			req, err := http.NewRequest(tc.method, base+tc.path, body)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			resp, err := hc.Do(req)
			took := time.Since(start)
			if err != nil {
				t.Fatalf("%s %s: %v", tc.method, tc.path, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			bodies = append(bodies, b)
			checkSignetError(t, resp.StatusCode, b, resp.Header, tc.status)
			if code := resp.Header.Get("X-Signet-Error"); code != tc.code {
				t.Errorf("X-Signet-Error %q, want %q; body %s", code, tc.code, b)
			}
			if tc.path == "hang" && (took < upstreamHeaderTimeout || took > upstreamHeaderTimeout+10*time.Second) {
				t.Errorf("the answer to a hanging upstream came after %s; limits.upstream_response_header_timeout is %s", took, upstreamHeaderTimeout)
			}
			t.Logf("%s %s: %d %s after %s", tc.method, tc.path, resp.StatusCode, resp.Header.Get("X-Signet-Error"), took.Round(time.Millisecond))
		})
	}

	curl := needCommand(t, "curl")
	for _, path := range []string{"cut-length", "reset-length", "cut-chunked"} {
		t.Run(path, func(t *testing.T) {
			// Go: the body ends in an error, not EOF.
			resp, err := hc.Get(base + path)
			if err != nil {
				t.Fatalf("GET: %v", err)
			}
			n, goErr := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || goErr == nil {
				t.Errorf("Go client: %d, %d bytes, body error %v; want 200 and an error (a cut body)", resp.StatusCode, n, goErr)
			}
			// curl: exit 18, CURLE_PARTIAL_FILE.
			out := filepath.Join(t.TempDir(), "body")
			cmd := exec.Command(curl, "-sS", "-x", s.ProxyURL(), "--max-time", "30", "-o", out, "-w", "%{http_code}", base+path)
			cmd.Env = baseEnv(t.TempDir())
			var stderr strings.Builder
			cmd.Stderr = &stderr
			status, err := cmd.Output()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 18 {
				t.Errorf("curl: %v (status %s); want exit 18, a partial file\n%s", err, status, stderr.String())
			}
			st, _ := os.Stat(out)
			if st == nil || st.Size() >= 100000 {
				t.Errorf("curl saved %v bytes of a body cut at %d", st, cutBody)
			}
			t.Logf("%s: Go read %d bytes then %v; curl %v, %q", path, n, goErr, err, strings.TrimSpace(stderr.String()))
		})
	}

	// signet goes on serving, and every request the upstream saw was
	// signed.
	resp, err := hc.Get(base + "ok")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "whole" {
		t.Errorf("after the faults: %d %q", resp.StatusCode, b)
	}
	var sigs []string
	for _, r := range up.requests() {
		auth := r.Header.Get("Authorization")
		if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential="+testAccessKey+"/") {
			t.Errorf("the upstream got %s %s unsigned: %v", r.Method, r.Path, r.Header)
		}
		sigs = append(sigs, signaturesIn(auth)...)
	}
	// Signatures the upstream saw are secrets too: not in signet's
	// answers here, nor in its logs and files (scanned when it stops).
	s.AddSecrets(sigs...)
	scanForSecrets(t, append([]string{testSecretKey}, sigs...), bodies...)
}

// TestFaultClientAbortStreamed: on routes that stream bodies (payload:
// unsigned), a client goes away after 3 MiB of its upload. What signet
// sent the upstream must end as cut off, never as a whole body: with the
// client's Content-Length (an S3 PUT) and chunked (a body of unknown
// length to another service). The check is on the wire, with a raw
// upstream: versitygw v1.8.0 stores a PUT whose body ends early as a
// whole object of what arrived, where S3 answers IncompleteBody.
func TestFaultClientAbortStreamed(t *testing.T) {
	t.Parallel()
	up := startRawUpstream(t, answerWhole)
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
log: {level: debug, format: json}
sources:
  test: {method: static, static: {access_key_id: %[1]s, secret_access_key: %[2]q}}
routes:
  - {hosts: [%[3]q], source: test, upstream_scheme: http, payload: unsigned}
  - {hosts: [%[4]q], source: test, service: execute-api, region: %[5]s, upstream_scheme: http, payload: unsigned}
upstream:
  connect_to:
    "%[3]s:80": %[6]q
    "%[4]s:80": %[6]q
`, testAccessKey, testSecretKey, s3Host, faultyHost, testRegion, up.Addr())
	s := startSignet(t, cfg, 0)
	g := newGoClient(s.ProxyURL())
	for _, tc := range []struct {
		name, url string
		chunked   bool
	}{
		{"content-length", "http://" + s3Host + "/bucket/obj", false},
		{"chunked", "http://" + faultyHost + "/upload", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := len(up.requests())
			abortStreamed(t, s.ProxyAddr, tc.url, tc.chunked, func() bool { return len(up.requests()) > n })
			reqs := up.requests()
			if len(reqs) != n+1 {
				t.Fatalf("the upstream read %d requests, want 1", len(reqs)-n)
			}
			r := reqs[n]
			if r.BodyErr == nil || r.Chunked != tc.chunked {
				t.Errorf("the upstream read a whole body of %d bytes (Content-Length %d, chunked %v): a cut upload looked complete",
					r.BodyBytes, r.ContentLength, r.Chunked)
			}
			t.Logf("the upstream read %d bytes (Content-Length %d, chunked %v), then: %v", r.BodyBytes, r.ContentLength, r.Chunked, r.BodyErr)
			if res := g.Do(t, "PUT", tc.url+"-after", []byte("still serving")); res.Status != 200 || string(res.Body) != "ok" {
				t.Errorf("PUT after the abort: %d %q", res.Status, res.Body)
			}
			if last := up.requests(); last[len(last)-1].BodyErr != nil {
				t.Errorf("the next upload reached the upstream cut: %v", last[len(last)-1].BodyErr)
			}
		})
	}
	checkAbortLogged(t, s, "/bucket/obj")
}

// abortStreamed sends a PUT through signet's forward proxy on a raw
// connection, declared as 8 MiB (or chunked), writes 3 MiB, waits until
// done() (the upstream has read all it will), and resets the connection.
func abortStreamed(t *testing.T, proxyAddr, u string, chunked bool, done func() bool) {
	t.Helper()
	c, err := net.Dial("tcp", proxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	pu, _ := url.Parse(u)
	w := bufio.NewWriter(c)
	framing := "Content-Length: 8388608"
	if chunked {
		framing = "Transfer-Encoding: chunked"
	}
	fmt.Fprintf(w, "PUT %s HTTP/1.1\r\nHost: %s\r\n%s\r\nContent-Type: application/octet-stream\r\n\r\n", u, pu.Host, framing)
	gen := newGenReader(3 << 20)
	for i := 0; i < 3; i++ {
		if chunked {
			fmt.Fprintf(w, "%x\r\n", 1<<20)
		}
		if _, err := io.CopyN(w, gen, 1<<20); err != nil {
			t.Fatal(err)
		}
		if chunked {
			io.WriteString(w, "\r\n")
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	// Let the 3 MiB through to the upstream, then go away.
	time.Sleep(300 * time.Millisecond)
	resetConn(c)
	deadline := time.Now().Add(10 * time.Second)
	for !done() {
		if time.Now().After(deadline) {
			t.Fatalf("the upstream did not finish reading the request 10s after the client went away")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
