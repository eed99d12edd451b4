package proxy

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/signet-proxy/signet/signer"
)

// framingRun is what the scanner makes of a whole stream: the header
// sections it accepted ([start, end) in the stream), what the server reads
// (the stream up to where it stopped, then the stand-in if it refused a
// request) and why it stopped. A request that may switch protocols is
// taken as one that did not.
type framingRun struct {
	sections [][2]int
	suspends []int
	out      []byte
	verdict  verdict
	stop     int
	problem  *framingProblem
}

func scanWhole(in []byte) framingRun {
	var s framingScanner
	var r framingRun
	base := 0
	s.onHeader = func(start, end int) { r.sections = append(r.sections, [2]int{base + start, base + end}) }
	for {
		n, v := s.scan(in[base:])
		if v == vSuspend {
			base += n
			r.suspends = append(r.suspends, base)
			continue
		}
		r.verdict, r.stop, r.problem = v, base+n, s.problem
		switch v {
		case vAll, vRaw:
			r.out = in
		case vMore:
			// The server has the early bytes of the incomplete
			// section.
			r.out = in[:r.stop+s.early(in[r.stop:])]
		case vCut:
			r.out = in[:r.stop]
		case vRefuse:
			r.out = append(in[:r.stop:r.stop], standIn(in[r.stop:], &s.h, 0, s.problem.code)...)
		}
		return r
	}
}

// goRequest is where Go's own parser found a request in a stream.
type goRequest struct {
	start, end int // the header section
	marker     bool
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// goParse reads requests from out as Go's server does (the CRLF
// tolerance after a POST included), until one fails or the server would
// stop reading requests (after CONNECT, or the stand-in).
func goParse(out []byte) []goRequest {
	cr := &countingReader{r: bytes.NewReader(out)}
	br := bufio.NewReaderSize(cr, 4096)
	pos := func() int { return cr.n - br.Buffered() }
	var reqs []goRequest
	lastPOST := false
	for {
		start := pos()
		if lastPOST {
			peek, _ := br.Peek(4)
			n := 0
			for n < len(peek) && (peek[n] == '\r' || peek[n] == '\n') {
				n++
			}
			_, _ = br.Discard(n)
		}
		req, err := http.ReadRequest(br)
		if err != nil {
			return reqs
		}
		_, marker := req.Header[framingMarker]
		reqs = append(reqs, goRequest{start: start, end: pos(), marker: marker})
		if req.Method == http.MethodConnect || marker {
			return reqs
		}
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return reqs
		}
		lastPOST = req.Method == http.MethodPost
	}
}

// checkGoAgrees is the property that matters: every request Go's parser
// finds in what the server reads is one the scanner accepted, at the same
// bytes, or the stand-in where the scanner refused one.
func checkGoAgrees(t testing.TB, in, out []byte, r framingRun) {
	t.Helper()
	for i, g := range goParse(out) {
		if i < len(r.sections) {
			if sec := r.sections[i]; g.start != sec[0] || g.end != sec[1] {
				t.Fatalf("request %d: Go reads header bytes [%d,%d), the scanner [%d,%d)\nin: %q", i, g.start, g.end, sec[0], sec[1], in)
			}
			if g.marker {
				t.Fatalf("request %d: a client's %s reached the server\nin: %q", i, framingMarker, in)
			}
			continue
		}
		if r.verdict != vRefuse || i != len(r.sections) || g.start != r.stop || !g.marker {
			t.Fatalf("request %d at [%d,%d): Go reads a request the scanner did not accept (verdict %d at %d)\nin: %q\nout: %q",
				i, g.start, g.end, r.verdict, r.stop, in, out)
		}
	}
}

// chunkConn is a client connection that delivers data step bytes a read
// (all at once for 0).
type chunkConn struct {
	data []byte
	step int
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := len(p)
	if c.step > 0 {
		n = min(n, c.step)
	}
	n = copy(p, c.data[:min(n, len(c.data))])
	c.data = c.data[n:]
	return n, nil
}

func (c *chunkConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *chunkConn) Close() error                     { return nil }
func (c *chunkConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }
func (c *chunkConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2} }
func (c *chunkConn) SetDeadline(time.Time) error      { return nil }
func (c *chunkConn) SetReadDeadline(time.Time) error  { return nil }
func (c *chunkConn) SetWriteDeadline(time.Time) error { return nil }

func testFramingConfig() *framingConfig {
	return newFramingConfig(slog.New(slog.DiscardHandler), "test", &http.Server{})
}

// readConn reads a framingConn over in to its end, with reads of bufSize
// from a client connection that delivers step bytes at a time. Where a
// request may switch protocols it says it did not, after a one-byte read
// as the server's background read does when background is set.
func readConn(in []byte, step, bufSize int, background bool) []byte {
	fc := newFramingConn(&chunkConn{data: in, step: step}, testFramingConfig())
	var out []byte
	buf := make([]byte, bufSize)
	for range 4*len(in) + 100 {
		if fc.mode == mSuspended && len(fc.ready) == 0 {
			if background {
				n, _ := fc.Read(buf[:1])
				out = append(out, buf[:n]...)
			}
			fc.resume()
		}
		n, err := fc.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			break
		}
	}
	return out
}

// checkFraming checks the scanner on one stream: Go agrees with it, and a
// framingConn hands the server the same bytes however the stream is cut
// into reads.
func checkFraming(t testing.TB, in []byte) framingRun {
	t.Helper()
	r := scanWhole(in)
	checkGoAgrees(t, in, r.out, r)
	for _, rd := range []struct{ step, buf int }{{0, 64 << 10}, {1, 64 << 10}, {3, 7}, {17, 1}, {4096, 4096}} {
		if got := readConn(in, rd.step, rd.buf, false); !bytes.Equal(got, r.out) {
			t.Fatalf("reads of %d from steps of %d: the server reads\n%q\nnot\n%q\nin: %q", rd.buf, rd.step, got, r.out, in)
		}
		checkGoAgrees(t, in, readConn(in, rd.step, rd.buf, true), r)
	}
	return r
}

// framingSeeds are streams worth fuzzing from; the committed corpus in
// testdata/fuzz/FuzzFraming holds more.
var framingSeeds = []string{
	"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET http://a/x HTTP/1.1\r\nHost: a\r\n\r\nGET /y HTTP/1.1\r\nHost: a\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-T: v\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
	"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
	"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc",
	"GET http://a/ HTTP/1.1\r\nHost: b\r\n\r\n",
	"GET / HTTP/1.1\nHost: a\n\n",
	"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n\x16\x03\x01",
	"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
}

func FuzzFraming(f *testing.F) {
	for _, s := range framingSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		checkFraming(t, in)
	})
}

// TestFramingScanner: which streams the scanner refuses and why, each
// checked against Go's parser (checkFraming).
func TestFramingScanner(t *testing.T) {
	const get = "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
	tests := []struct {
		name, in string
		verdict  verdict
		problem  string // in the message, when refused or cut
		sections int    // header sections accepted
	}{
		{"one GET", get, vAll, "", 1},
		{"pipelined", get + get + get, vAll, "", 3},
		{"bare LF lines", "GET / HTTP/1.1\nHost: a\n\n" + get, vAll, "", 2},
		{"Content-Length body", "PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc" + get, vAll, "", 2},
		{"CRLF after a POST body", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc\r\n" + get, vAll, "", 2},
		{"chunked with extensions and trailers", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n" +
			"5;a=b\r\nhello\r\nA \t\r\n0123456789\r\n0;last\r\nX-Sum: 1\r\nY: 2\r\n\r\n" + get, vAll, "", 2},
		{"incomplete header", "GET / HTTP/1.1\r\nHost: a\r\n", vMore, "", 0},
		{"CONNECT then raw bytes", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\nnot http at all\r\n\r\n", vRaw, "", 1},
		{"origin-form with any Host", "GET /x HTTP/1.1\r\nHost: other\r\n\r\n", vAll, "", 1},
		{"absolute-form, same host", "GET http://A.example:80/x HTTP/1.1\r\nHost: a.example\r\n\r\n", vAll, "", 1},
		{"absolute-form, userinfo and query", "GET http://u@a/?q=@b HTTP/1.1\r\nHost: a\r\n\r\n", vAll, "", 1},

		{"Content-Length and Transfer-Encoding", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG", vRefuse, "both Content-Length and Transfer-Encoding", 0},
		{"Transfer-Encoding and Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n", vRefuse, "both", 0},
		{"identical Content-Lengths", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", vRefuse, "more than one Content-Length", 0},
		{"differing Content-Lengths", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", vRefuse, "more than one Content-Length", 0},
		{"Content-Length list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc", vRefuse, "invalid Content-Length", 0},
		{"signed Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc", vRefuse, "invalid Content-Length", 0},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n 2\r\n\r\n", vRefuse, "obsolete line folding", 0},
		{"obs-fold with a tab", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\t2\r\n\r\n", vRefuse, "obsolete line folding", 0},
		{"Transfer-Encoding in HTTP/1.0", "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", vRefuse, "HTTP/1.0", 0},
		{"two Transfer-Encodings", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", vRefuse, "more than one Transfer-Encoding", 0},
		{"Transfer-Encoding gzip, chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", vRefuse, "other than chunked", 0},
		{"space before colon", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 3\r\n\r\nabc", vRefuse, "whitespace between a header name and its colon", 0},
		{"two Host headers", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", vRefuse, "more than one Host", 0},
		{"absolute-form, other Host", "GET http://a/x HTTP/1.1\r\nHost: b\r\n\r\n", vRefuse, "differs from the host", 0},
		{"absolute-form, other port", "GET http://a:8080/x HTTP/1.1\r\nHost: a\r\n\r\n", vRefuse, "differs from the host", 0},
		{"absolute-form, userinfo host", "GET http://b@a/ HTTP/1.1\r\nHost: b\r\n\r\n", vRefuse, "differs from the host", 0},
		{"reserved marker header", "GET / HTTP/1.1\r\nHost: a\r\nx-signet-framing-error: host-mismatch\r\n\r\n", vRefuse, "signet's own", 0},
		{"HTTP/2.0 request line", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", vRefuse, "not HTTP/1.x", 0},
		{"malformed request line", "GET /\r\n\r\n", vRefuse, "malformed request line", 0},
		{"refused after a good one", get + "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n", vRefuse, "obsolete line folding", 1},

		{"chunk line with bare LF", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", vCut, "bare LF", 1},
		{"chunk size not hex", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nx\r\n", vCut, "not a hex number", 1},
		{"whitespace before a chunk extension", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5 ;a\r\nhello\r\n0\r\n\r\n", vCut, "whitespace inside", 1},
		{"chunk size too long", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n00000000000000001\r\n", vCut, "16 hex digits", 1},
		{"chunk data without CRLF", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n0\r\n\r\n", vCut, "not followed by CRLF", 1},
		{"obs-fold in trailers", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: 1\r\n 2\r\n\r\n", vCut, "obs-fold in the trailer", 1},
		{"trailer with bare LF", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: 1\n\r\n" + get, vCut, "trailer", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := checkFraming(t, []byte(tc.in))
			if r.verdict != tc.verdict || len(r.sections) != tc.sections {
				t.Fatalf("verdict %d after %d sections, want %d after %d", r.verdict, len(r.sections), tc.verdict, tc.sections)
			}
			if tc.problem != "" && (r.problem == nil || !strings.Contains(r.problem.message, tc.problem)) {
				t.Fatalf("problem %+v, want one that says %q", r.problem, tc.problem)
			}
		})
	}
}

// TestFramingHoldsAfterUpgradeUntilDecided: bytes after a request that may
// switch protocols reach the server only once its handler has said
// whether it switched; then they pass raw, or are scanned, the byte the
// server's background read took in the meantime included.
func TestFramingHoldsAfterUpgradeUntilDecided(t *testing.T) {
	const upgrade = "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
	const frames = "\x81\x05hello not HTTP\r\n\r\n"
	const bad = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx"
	const good = "GET /next HTTP/1.1\r\nHost: a\r\n\r\n"
	tests := []struct {
		name, after string
		switched    bool
		want        string // what the server reads after the upgrade request
		problem     bool
	}{
		{"switched", frames, true, frames, false},
		{"not switched, a request follows", good, false, good, false},
		{"not switched, a refused request follows", bad, false, "POST / HTTP/1.1\r\nHost: signet.invalid\r\n" + framingMarker + ": " + codeAmbiguousFraming + "\r\nConnection: close\r\n\r\n", true},
		// "\x81" is no method: no stand-in can begin with the byte the
		// server has, and the stream just ends.
		{"not switched, not HTTP follows", frames, false, frames[:1], true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fc := newFramingConn(&chunkConn{data: []byte(upgrade + tc.after)}, testFramingConfig())
			buf := make([]byte, 4096)
			n, _ := fc.Read(buf)
			if string(buf[:n]) != upgrade || fc.mode != mSuspended {
				t.Fatalf("first read %q, mode %d", buf[:n], fc.mode)
			}
			// The server's background read takes one byte while the
			// handler runs.
			n, _ = fc.Read(buf[:1])
			if n != 1 || buf[0] != tc.after[0] {
				t.Fatalf("background read %q", buf[:n])
			}
			if tc.switched {
				protocolSwitched(fc)
			} else {
				fc.resume()
			}
			rest, err := io.ReadAll(fc)
			if err != nil {
				t.Fatal(err)
			}
			if got := tc.after[:1] + string(rest); got != tc.want || (fc.problem != nil) != tc.problem {
				t.Fatalf("the server reads %q (problem %+v), want %q", got, fc.problem, tc.want)
			}
		})
	}
}

// BenchmarkFramingScan measures the scanner's cost per request on the
// path every request takes (framingConn.Read over a connection that has
// the bytes at once), against reading the same bytes unscanned:
//
//	go test -run '^$' -bench FramingScan ./proxy/
func BenchmarkFramingScan(b *testing.B) {
	get := "GET /bucket/some/key.json?versionId=3 HTTP/1.1\r\nHost: s3.us-east-1.amazonaws.com\r\n" +
		"User-Agent: aws-sdk-go-v2/1.30.0 os/linux lang/go#1.27 md/GOOS#linux md/GOARCH#amd64\r\n" +
		"Accept-Encoding: identity\r\nAmz-Sdk-Invocation-Id: 0b6d4ea2-3c4a-4c33-9a0b-5e0bb9d1e7b2\r\n" +
		"Amz-Sdk-Request: attempt=1; max=3\r\nX-Amz-Content-Sha256: UNSIGNED-PAYLOAD\r\nX-Amz-Date: 20260101T000000Z\r\n\r\n"
	chunk := strings.Repeat("x", 8192)
	chunked := "PUT /k HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" +
		strings.Repeat(fmt.Sprintf("%x\r\n%s\r\n", len(chunk), chunk), 16) + "0\r\n\r\n"
	for _, bc := range []struct{ name, stream string }{
		{"get", get},
		{"pipelined-8", strings.Repeat(get, 8)},
		{"chunked-128KiB", chunked},
	} {
		in := []byte(bc.stream)
		buf := make([]byte, 64<<10)
		cfg := testFramingConfig()
		b.Run(bc.name+"/scanned", func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				fc := framingConn{Conn: &chunkConn{data: in, step: 16 << 10}, cfg: cfg}
				for {
					if _, err := fc.Read(buf); err != nil {
						break
					}
				}
			}
		})
		b.Run(bc.name+"/raw", func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				c := chunkConn{data: in, step: 16 << 10}
				for {
					if _, err := c.Read(buf); err != nil {
						break
					}
				}
			}
		})
	}
}

// framingProxy starts a proxy with a routed host, a reverse listener and
// TLS interception, all to one recording upstream, and logs to logged.
type framingProxy struct {
	*testProxy
	rec    *recorder
	logged *syncBuffer
	ca     *x509.CertPool
}

// routedHost is the host a route signs in these tests.
const routedHost = "sqs.us-east-1.amazonaws.com"

func startFramingProxy(t *testing.T) *framingProxy {
	t.Helper()
	fp := &framingProxy{rec: &recorder{}, logged: &syncBuffer{}}
	up := upstreamAddr(t, fp.rec.handler(200, "ok"))
	u, _ := url.Parse("http://" + up)
	ic := openInterceptor(t, func(h string) bool { return h == routedHost })
	fp.ca = x509.NewCertPool()
	fp.ca.AddCert(ic.CACert())
	fp.testProxy = startProxy(t, Options{
		Routes:    []Route{{Hosts: []string{routedHost}, Source: staticSource(t), UpstreamScheme: "http"}},
		Reverse:   []Reverse{{Upstream: u, Source: staticSource(t), Scope: signer.Scope{Service: "execute-api", Region: "us-east-1"}}},
		Upstream:  UpstreamOptions{ConnectTo: map[string]string{"*": up}},
		Intercept: ic,
		Logger:    slog.New(slog.NewTextHandler(fp.logged, nil)),
	})
	return fp
}

// framingListener names where a raw request goes: its target form and how
// to open a connection that speaks plaintext HTTP/1.1 to signet.
type framingEndpoint struct {
	name   string
	target string // request target of a request to the routed host
	dial   func(t *testing.T) net.Conn
}

func (fp *framingProxy) endpoints() []framingEndpoint {
	plain := func(addr string) func(t *testing.T) net.Conn {
		return func(t *testing.T) net.Conn {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
	}
	return []framingEndpoint{
		{"forward", "http://" + routedHost + "/x", plain(fp.addr)},
		{"reverse", "/x", plain(fp.reverse[0])},
		{"intercepted", "/x", func(t *testing.T) net.Conn { return tunnelTo(t, fp.addr, routedHost, fp.ca) }},
	}
}

// tunnelTo opens an intercepted tunnel to host through the proxy at addr
// and returns its TLS connection, speaking HTTP/1.1.
func tunnelTo(t *testing.T, addr, host string, ca *x509.CertPool) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(c, "CONNECT "+host+":443 HTTP/1.1\r\nHost: "+host+":443\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 || br.Buffered() != 0 {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	tc := tls.Client(c, &tls.Config{RootCAs: ca, ServerName: host, NextProtos: []string{"http/1.1"}})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	return tc
}

// exchange writes req on c in writes of step bytes (all at once for 0)
// and reads n responses, with their bodies.
func exchangeRaw(t *testing.T, c net.Conn, req string, step, n int) ([]*http.Response, []string, *bufio.Reader) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	go func() {
		b := []byte(req)
		for len(b) > 0 {
			k := len(b)
			if step > 0 {
				k = min(k, step)
			}
			if _, err := c.Write(b[:k]); err != nil {
				return
			}
			b = b[k:]
		}
	}()
	br := bufio.NewReader(c)
	var resps []*http.Response
	var bodies []string
	for i := range n {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("response %d body: %v", i, err)
		}
		resps = append(resps, resp)
		bodies = append(bodies, string(b))
	}
	return resps, bodies, br
}

// TestFramingRefusesAmbiguousRequests: on every listener (forward proxy,
// reverse, inside an intercepted tunnel), each ambiguity of request
// framing gets a 400 that names it, with the connection closed after it;
// nothing reaches the upstream; it is logged; and signet serves the next
// connection.
func TestFramingRefusesAmbiguousRequests(t *testing.T) {
	fp := startFramingProxy(t)
	tests := []struct {
		name, head, body string // head: the header lines after Host
		code, message    string
	}{
		{"CL.TE", "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\nG", codeAmbiguousFraming, "both Content-Length and Transfer-Encoding"},
		{"TE.CL", "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n", "8\r\nSMUGGLED\r\n0\r\n\r\n", codeAmbiguousFraming, "both Content-Length and Transfer-Encoding"},
		{"identical Content-Lengths", "Content-Length: 5\r\nContent-Length: 5\r\n", "hello", codeAmbiguousFraming, "more than one Content-Length"},
		{"obs-fold", "X-Amz-Meta-A: 1\r\n 2\r\n", "", codeAmbiguousFraming, "obsolete line folding"},
		{"obs-fold hiding a Transfer-Encoding", "X-A: 1\r\n\tTransfer-Encoding: chunked\r\n", "", codeAmbiguousFraming, "obsolete line folding"},
		{"two Transfer-Encodings", "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n", "0\r\n\r\n", codeAmbiguousFraming, "more than one Transfer-Encoding"},
		{"space before colon", "Transfer-Encoding : chunked\r\nContent-Length: 5\r\n", "hello", codeAmbiguousFraming, "whitespace between a header name and its colon"},
		{"reserved marker header", framingMarker + ": " + codeHostMismatch + "\r\n", "", codeBadRequest, "signet's own"},
	}
	for _, ep := range fp.endpoints() {
		for _, tc := range tests {
			t.Run(ep.name+"/"+tc.name, func(t *testing.T) {
				c := ep.dial(t)
				defer c.Close()
				req := "POST " + ep.target + " HTTP/1.1\r\nHost: " + routedHost + "\r\n" + tc.head + "\r\n" + tc.body
				// A good request pipelined after the bad one must
				// not be read: the connection ends with the 400.
				req += "GET " + ep.target + " HTTP/1.1\r\nHost: " + routedHost + "\r\n\r\n"
				resps, bodies, br := exchangeRaw(t, c, req, 0, 1)
				checkRefusal(t, resps[0], bodies[0], tc.code, tc.message)
				if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
					t.Fatalf("after the refusal: %q, %v; want the connection closed", rest, err)
				}
			})
		}
	}
	t.Run("Transfer-Encoding in HTTP/1.0", func(t *testing.T) {
		c := fp.endpoints()[1].dial(t)
		defer c.Close()
		resps, bodies, _ := exchangeRaw(t, c, "POST /x HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc", 0, 1)
		checkRefusal(t, resps[0], bodies[0], codeAmbiguousFraming, "Content-Length and Transfer-Encoding")
	})
	if n := len(fp.rec.all()); n != 0 {
		t.Fatalf("the upstream received %d requests", n)
	}
	logs := fp.logged.String()
	if n := strings.Count(logs, "msg=\"refused request\""); n < 3*len(tests) {
		t.Fatalf("%d refusals logged, want %d:\n%s", n, 3*len(tests), logs)
	}
	for _, want := range []string{"listener=proxy", "listener=reverse", "listener=intercepted", "code=" + codeAmbiguousFraming, "remote=127.0.0.1:"} {
		if !strings.Contains(logs, want) {
			t.Fatalf("log has no %q:\n%s", want, logs)
		}
	}
	// Signet serves on.
	for _, ep := range fp.endpoints() {
		c := ep.dial(t)
		resps, _, _ := exchangeRaw(t, c, "GET "+ep.target+" HTTP/1.1\r\nHost: "+routedHost+"\r\n\r\n", 0, 1)
		c.Close()
		if resps[0].StatusCode != 200 {
			t.Fatalf("%s: after the refusals a good request got %d", ep.name, resps[0].StatusCode)
		}
	}
}

func checkRefusal(t *testing.T, resp *http.Response, body, code, message string) {
	t.Helper()
	var eb errorBody
	if err := json.Unmarshal([]byte(body), &eb); err != nil {
		t.Fatalf("%d body %q: %v", resp.StatusCode, body, err)
	}
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("X-Signet-Error") != code || eb.Error != code ||
		!strings.Contains(eb.Message, message) || eb.Fix == "" || !resp.Close {
		t.Fatalf("got %d %q close=%v %+v; want 400 %s saying %q, then close", resp.StatusCode, resp.Header.Get("X-Signet-Error"), resp.Close, eb, code, message)
	}
}

// TestSignedRequestOnlyToSignedHostAbsoluteFormHostMismatch: Go's server
// takes an absolute-form request's host from its URL and drops a Host
// header that names another; signet refuses such a request rather than
// sign for one host what a proxy in front may have routed by the other.
func TestSignedRequestOnlyToSignedHostAbsoluteFormHostMismatch(t *testing.T) {
	fp := startFramingProxy(t)
	tests := []struct{ target, host string }{
		{"http://" + routedHost + "/x", "sns.us-east-1.amazonaws.com"},
		{"http://sns.us-east-1.amazonaws.com/x", routedHost},
		{"http://" + routedHost + ":8080/x", routedHost},
		{"http://" + routedHost + "@evil.example/x", routedHost},
	}
	for _, tc := range tests {
		c, err := net.Dial("tcp", fp.addr)
		if err != nil {
			t.Fatal(err)
		}
		resps, bodies, _ := exchangeRaw(t, c, "GET "+tc.target+" HTTP/1.1\r\nHost: "+tc.host+"\r\n\r\n", 0, 1)
		c.Close()
		checkRefusal(t, resps[0], bodies[0], codeHostMismatch, "differs from the host")
	}
	// The same host in other spellings is not a mismatch.
	c, err := net.Dial("tcp", fp.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resps, _, _ := exchangeRaw(t, c, "GET http://SQS.us-east-1.amazonaws.com:80/x HTTP/1.1\r\nHost: "+routedHost+"\r\n\r\n", 0, 1)
	if resps[0].StatusCode != 200 {
		t.Fatalf("same host, other spelling: %d", resps[0].StatusCode)
	}
	if n := len(fp.rec.all()); n != 1 {
		t.Fatalf("the upstream received %d requests, want 1", n)
	}
	if logs := fp.logged.String(); strings.Count(logs, "code="+codeHostMismatch) != len(tests) {
		t.Fatalf("host mismatches not logged:\n%s", logs)
	}
}

// TestFramingPassesValidStreams: what is not ambiguous passes untouched,
// on every listener: pipelined requests, chunked bodies with extensions
// and trailers, large bodies, requests trickled a byte at a time; the
// upstream receives each body byte for byte.
func TestFramingPassesValidStreams(t *testing.T) {
	fp := startFramingProxy(t)
	large := make([]byte, 3<<20)
	_, _ = rand.Read(large)
	var chunked strings.Builder
	for rest := large; len(rest) > 0; {
		n := min(len(rest), 1+len(rest)%70001)
		fmt.Fprintf(&chunked, "%x;n=%d\r\n%s\r\n", n, n, rest[:n])
		rest = rest[n:]
	}
	chunked.WriteString("0\r\nX-Checksum: abc\r\n\r\n")
	for _, ep := range fp.endpoints() {
		t.Run(ep.name, func(t *testing.T) {
			host := "Host: " + routedHost + "\r\n"
			tests := []struct {
				name   string
				stream string
				step   int
				bodies []string // what the upstream receives, in order
			}{
				{"pipelined", "GET " + ep.target + "1 HTTP/1.1\r\n" + host + "\r\n" +
					"POST " + ep.target + "2 HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n" +
					"PUT " + ep.target + "3 HTTP/1.1\r\n" + host + "Content-Length: 3\r\n\r\nabc" +
					"GET " + ep.target + "4 HTTP/1.1\r\n" + host + "\r\n", 0, []string{"", "hello world", "abc", ""}},
				{"trickled", "POST " + ep.target + " HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n" +
					"GET " + ep.target + " HTTP/1.1\r\n" + host + "\r\n", 1, []string{"abc", ""}},
				{"large Content-Length", "PUT " + ep.target + " HTTP/1.1\r\n" + host + fmt.Sprintf("Content-Length: %d\r\n\r\n", len(large)) + string(large), 1000, []string{string(large)}},
				{"large chunked", "PUT " + ep.target + " HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n" + chunked.String(), 4093, []string{string(large)}},
			}
			for _, tc := range tests {
				before := len(fp.rec.all())
				c := ep.dial(t)
				resps, _, _ := exchangeRaw(t, c, tc.stream, tc.step, len(tc.bodies))
				c.Close()
				for i, r := range resps {
					if r.StatusCode != 200 {
						t.Fatalf("%s: response %d is %d", tc.name, i, r.StatusCode)
					}
				}
				got := fp.rec.all()[before:]
				if len(got) != len(tc.bodies) {
					t.Fatalf("%s: upstream received %d requests, want %d", tc.name, len(got), len(tc.bodies))
				}
				for i, r := range got {
					if sha256.Sum256([]byte(r.body)) != sha256.Sum256([]byte(tc.bodies[i])) {
						t.Fatalf("%s: request %d body differs (%d bytes, want %d)", tc.name, i, len(r.body), len(tc.bodies[i]))
					}
				}
			}
		})
	}
	if logs := fp.logged.String(); strings.Contains(logs, "refused") || strings.Contains(logs, "cut request body") {
		t.Fatalf("valid streams were refused:\n%s", logs)
	}
}

// TestFramingCutsBrokenChunkedBody: a chunked body that breaks its coding
// is cut there; the request fails as Go would fail it, nothing after the
// break is read as a request, and the cut is logged.
func TestFramingCutsBrokenChunkedBody(t *testing.T) {
	fp := startFramingProxy(t)
	c, err := net.Dial("tcp", fp.reverse[0])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// After "5\n" (bare LF, which Go's chunked reader refuses) comes
	// what would be a second request.
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(c, "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n")
	rest, _ := io.ReadAll(c)
	if strings.Count(string(rest), "HTTP/1.1 ") > 1 {
		t.Fatalf("more than one answer: %q", rest)
	}
	for _, r := range fp.rec.all() {
		if r.requestURI == "/smuggled" {
			t.Fatal("the request after the broken body reached the upstream")
		}
	}
	if logs := fp.logged.String(); !strings.Contains(logs, "cut request body") || !strings.Contains(logs, "bare LF") {
		t.Fatalf("cut not logged:\n%s", logs)
	}
}

// TestFramingAcrossProtocolSwitch: bytes a client sends right after a
// WebSocket upgrade, before the 101, are the new protocol's and reach the
// upstream untouched; when the upstream refuses the upgrade, the requests
// pipelined after it are read, and checked, as requests.
func TestFramingAcrossProtocolSwitch(t *testing.T) {
	up := rawUpstream(t, func(_ int, c net.Conn, br *bufio.Reader) {
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, req.Body)
			switch req.URL.Path {
			case "/ws-ok":
				_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
				_, _ = io.Copy(c, br) // echo
				return
			case "/ws-no":
				_, _ = io.WriteString(c, "HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno")
			default:
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			}
		}
	})
	u, _ := url.Parse(up)
	var logged syncBuffer
	tp := startProxy(t, Options{
		Reverse: []Reverse{{Upstream: u, Source: staticSource(t), Scope: signer.Scope{Service: "execute-api", Region: "us-east-1"}}},
		Logger:  slog.New(slog.NewTextHandler(&logged, nil)),
	})
	const upgrade = "Host: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"

	t.Run("switched", func(t *testing.T) {
		c, err := net.Dial("tcp", tp.reverse[0])
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// Not HTTP, and framed like a refused request if it were read
		// as one.
		const eager = "\x81\x05hello\r\nX: 1\r\n folded\r\n\r\n"
		resps, _, br := exchangeRaw(t, c, "GET /ws-ok HTTP/1.1\r\n"+upgrade+eager, 0, 1)
		if resps[0].StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("got %d", resps[0].StatusCode)
		}
		echo := make([]byte, len(eager))
		if _, err := io.ReadFull(br, echo); err != nil || string(echo) != eager {
			t.Fatalf("echo %q, %v", echo, err)
		}
	})
	t.Run("not switched", func(t *testing.T) {
		c, err := net.Dial("tcp", tp.reverse[0])
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		resps, bodies, _ := exchangeRaw(t, c, "GET /ws-no HTTP/1.1\r\n"+upgrade+
			"GET /ok HTTP/1.1\r\nHost: a\r\n\r\n"+
			"GET /ws-no HTTP/1.1\r\n"+upgrade+
			"POST /ok HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 0, 4)
		for i, want := range []int{403, 200, 403, 400} {
			if resps[i].StatusCode != want {
				t.Fatalf("response %d: %d %q, want %d", i, resps[i].StatusCode, bodies[i], want)
			}
		}
		checkRefusal(t, resps[3], bodies[3], codeAmbiguousFraming, "both Content-Length and Transfer-Encoding")
	})
}

// TestFramingOnTLSProxyListener: on a proxy listener that speaks TLS
// (https:// proxy URLs), the plaintext inside is scanned: an ambiguous
// request is refused, a good one served, a CONNECT tunnel relayed.
func TestFramingOnTLSProxyListener(t *testing.T) {
	var rec recorder
	up := upstreamAddr(t, rec.handler(200, "ok"))
	origin := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "origin") }))
	t.Cleanup(origin.Close)
	cert := httptest.NewTLSServer(http.NotFoundHandler())
	cert.Close() // only its certificate is used
	tp := startProxy(t, Options{
		Routes:      []Route{{Hosts: []string{routedHost}, Source: staticSource(t), UpstreamScheme: "http"}},
		Upstream:    UpstreamOptions{ConnectTo: map[string]string{routedHost + ":80": up}},
		ListenerTLS: &tls.Config{Certificates: cert.TLS.Certificates},
	})
	clientTLS := &tls.Config{RootCAs: cert.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs, ServerName: "example.com"}
	dial := func(t *testing.T) net.Conn {
		c, err := tls.Dial("tcp", tp.addr, clientTLS)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := dial(t)
	resps, bodies, _ := exchangeRaw(t, c, "POST http://"+routedHost+"/ HTTP/1.1\r\nHost: "+routedHost+"\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 0, 1)
	c.Close()
	checkRefusal(t, resps[0], bodies[0], codeAmbiguousFraming, "both Content-Length and Transfer-Encoding")

	c = dial(t)
	resps, bodies, _ = exchangeRaw(t, c, "GET http://"+routedHost+"/ HTTP/1.1\r\nHost: "+routedHost+"\r\n\r\n", 0, 1)
	c.Close()
	if resps[0].StatusCode != 200 || bodies[0] != "ok" || len(rec.all()) != 1 {
		t.Fatalf("good request: %d %q, upstream got %d", resps[0].StatusCode, bodies[0], len(rec.all()))
	}

	proxyURL, _ := url.Parse("https://" + tp.addr)
	client := origin.Client()
	tr := client.Transport.(*http.Transport)
	tr.Proxy = http.ProxyURL(proxyURL)
	tr.DialTLSContext = nil
	tr.TLSClientConfig.RootCAs.AddCert(cert.Certificate())
	defer client.CloseIdleConnections()
	resp, err := client.Get(origin.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "origin" {
		t.Fatalf("through the tunnel: %q", b)
	}
}

// TestFramingKeepsHeaderTimeoutBetweenRequests: Go's server waits for the
// first bytes of a kept-alive connection's next request under its idle
// timeout, then gives the rest its header timeout. The scanner holds a
// header section back until it is complete, but hands those first bytes
// on early, so a client that trickles its second request's headers is
// still cut off by the header timeout, not the far longer idle one.
func TestFramingKeepsHeaderTimeoutBetweenRequests(t *testing.T) {
	var rec recorder
	up := upstreamAddr(t, rec.handler(200, "ok"))
	u, _ := url.Parse("http://" + up)
	tp := startProxy(t, Options{
		Reverse: []Reverse{{Upstream: u, Source: staticSource(t), Scope: signer.Scope{Service: "execute-api", Region: "us-east-1"}}},
		Limits:  Limits{ReadHeaderTimeout: 200 * time.Millisecond, IdleTimeout: time.Hour},
	})
	c, err := net.Dial("tcp", tp.reverse[0])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resps, _, br := exchangeRaw(t, c, "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n", 0, 1)
	if resps[0].StatusCode != 200 {
		t.Fatalf("first request: %d", resps[0].StatusCode)
	}
	// Far below the idle timeout, far above the header timeout.
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, "GET /2 HTTP/1.1\r\nHost: a\r\n"); err != nil {
		t.Fatal(err)
	}
	if rest, err := io.ReadAll(br); err != nil {
		t.Fatalf("the connection with an unfinished header section was not closed: %q, %v", rest, err)
	}
}
