package proxy

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/signet-proxy/signet/signer"
)

// faultyUpstream is a raw TCP upstream on loopback that misbehaves as its
// request path's last element says:
//
//	ok           200 "ok"
//	reset        resets the connection (RST) before answering
//	close        closes it (FIN) before answering
//	hang         never answers
//	garbage      answers something that is not HTTP
//	cut-chunked  sends 200 and a chunk of a chunked body, then resets
//	cut-length   sends 200 with Content-Length 100 and 5 bytes, then closes
func faultyUpstream(t *testing.T) string {
	return rawUpstream(t, func(_ int, c net.Conn, br *bufio.Reader) {
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			if _, err := io.Copy(io.Discard, req.Body); err != nil {
				return
			}
			switch path.Base(req.URL.Path) {
			case "ok":
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				continue
			case "reset":
				_ = c.(*net.TCPConn).SetLinger(0)
			case "close":
			case "hang":
				// Until signet gives up and closes its end.
				_, _ = io.Copy(io.Discard, br)
			case "garbage":
				_, _ = io.WriteString(c, "SSH-2.0-OpenSSH_9.6\r\n\r\n")
				_, _ = io.Copy(io.Discard, br)
			case "cut-chunked":
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
				time.Sleep(50 * time.Millisecond) // let signet pass the chunk on first
				_ = c.(*net.TCPConn).SetLinger(0)
			case "cut-length":
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhello")
			}
			return
		}
	})
}

// faultProxy runs signet with a forward route and a reverse listener to a
// faultyUpstream, a short response header timeout, and its logs kept.
type faultProxy struct {
	*testProxy
	logged *syncBuffer
}

const faultHeaderTimeout = 300 * time.Millisecond

func startFaultProxy(t *testing.T, upstream string) *faultProxy {
	t.Helper()
	u, _ := url.Parse(upstream)
	fp := &faultProxy{logged: &syncBuffer{}}
	log := slog.New(slog.NewTextHandler(fp.logged, nil))
	fp.testProxy = startProxy(t, Options{
		Routes:    []Route{{Hosts: []string{"*.amazonaws.com"}, Source: staticSource(t), UpstreamScheme: "http"}},
		Reverse:   []Reverse{{Upstream: u, Source: staticSource(t), Scope: signer.Scope{Service: "execute-api", Region: "us-east-1"}}},
		Upstream:  UpstreamOptions{ConnectTo: map[string]string{"*": u.Host}, ResponseHeaderTimeout: faultHeaderTimeout},
		Logger:    log,
		AccessLog: log,
	})
	return fp
}

// faultPaths are the ways a request reaches the upstream: through the
// forward proxy or a reverse listener, and by the fast HTTP/1.1 client (a
// GET without a body) or http.Transport (a PUT with one).
func (fp *faultProxy) faultPaths() []struct {
	name   string
	client *http.Client
	base   string
	method string
} {
	proxyURL, _ := url.Parse("http://" + fp.addr)
	forward := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}}
	reverse := &http.Client{Transport: &http.Transport{}}
	var out []struct {
		name   string
		client *http.Client
		base   string
		method string
	}
	for _, m := range []string{http.MethodGet, http.MethodPut} {
		out = append(out,
			struct {
				name   string
				client *http.Client
				base   string
				method string
			}{"forward/" + m, forward, "http://sqs.us-east-1.amazonaws.com/", m},
			struct {
				name   string
				client *http.Client
				base   string
				method string
			}{"reverse/" + m, reverse, "http://" + fp.reverse[0] + "/", m})
	}
	return out
}

func faultRequest(t *testing.T, c *http.Client, method, target string) (*http.Response, []byte, error) {
	t.Helper()
	var body io.Reader
	if method == http.MethodPut {
		body = strings.NewReader("payload")
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// TestUpstreamFaultsAnswer502Or504: an upstream that resets, closes, never
// answers or answers garbage before its response headers gets the client
// a 502 or 504 whose code and message say which, on every path; and
// signet serves the next request.
func TestUpstreamFaultsAnswer502Or504(t *testing.T) {
	fp := startFaultProxy(t, faultyUpstream(t))
	faults := []struct {
		fault   string
		status  int
		code    string
		message string
	}{
		{"reset", http.StatusBadGateway, codeUpstreamReset, "closed or reset the connection before its response headers"},
		{"close", http.StatusBadGateway, codeUpstreamReset, "closed or reset the connection before its response headers"},
		{"hang", http.StatusGatewayTimeout, codeUpstreamTimeout, "no response headers within 300ms (limits.upstream_response_header_timeout)"},
		{"garbage", http.StatusBadGateway, codeUpstreamBadResponse, "not an HTTP response"},
	}
	for _, p := range fp.faultPaths() {
		for _, f := range faults {
			t.Run(p.name+"/"+f.fault, func(t *testing.T) {
				resp, body, err := faultRequest(t, p.client, p.method, p.base+f.fault)
				var eb errorBody
				if err != nil || json.Unmarshal(body, &eb) != nil || resp.StatusCode != f.status ||
					resp.Header.Get("X-Signet-Error") != f.code || eb.Error != f.code || !strings.Contains(eb.Message, f.message) {
					t.Fatalf("got %d %q %s (%v); want %d %s saying %q", resp.StatusCode, resp.Header.Get("X-Signet-Error"), body, err, f.status, f.code, f.message)
				}
				resp, body, err = faultRequest(t, p.client, p.method, p.base+"ok")
				if err != nil || resp.StatusCode != 200 || string(body) != "ok" {
					t.Fatalf("the next request: %d %q %v", resp.StatusCode, body, err)
				}
			})
		}
	}
	if logs := fp.logged.String(); !strings.Contains(logs, "code="+codeUpstreamReset) || !strings.Contains(logs, "code="+codeUpstreamTimeout) {
		t.Fatalf("faults not logged:\n%s", logs)
	}
}

// TestUpstreamCutMidResponseIsTruncated: an upstream that fails after its
// response headers went to the client leaves the client a cut-off body,
// never one that ends cleanly (for a chunked response, a last chunk
// signet did not get); the access log keeps the upstream's status and
// says aborted; signet serves the next request.
func TestUpstreamCutMidResponseIsTruncated(t *testing.T) {
	fp := startFaultProxy(t, faultyUpstream(t))
	for _, p := range fp.faultPaths() {
		for _, fault := range []string{"cut-chunked", "cut-length"} {
			t.Run(p.name+"/"+fault, func(t *testing.T) {
				resp, body, err := faultRequest(t, p.client, p.method, p.base+fault)
				if resp.StatusCode != 200 || err == nil || !strings.HasPrefix(string(body), "hello") {
					t.Fatalf("got %d %q, read error %v; want 200, hello, then a cut", resp.StatusCode, body, err)
				}
				resp, body, err = faultRequest(t, p.client, p.method, p.base+"ok")
				if err != nil || resp.StatusCode != 200 || string(body) != "ok" {
					t.Fatalf("the next request: %d %q %v", resp.StatusCode, body, err)
				}
			})
		}
	}
	logs := fp.logged.String()
	aborted := 0
	for l := range strings.SplitSeq(logs, "\n") {
		if strings.Contains(l, "msg=request ") && strings.Contains(l, "aborted=true") {
			if !strings.Contains(l, "status=200") || !strings.Contains(l, "path=/cut-") {
				t.Fatalf("aborted access line without the upstream's status: %s", l)
			}
			aborted++
		}
	}
	if aborted != 2*len(fp.faultPaths()) {
		t.Fatalf("%d aborted access lines, want %d:\n%s", aborted, 2*len(fp.faultPaths()), logs)
	}
}

// TestUpstreamCutMidResponseResetsHTTP2Stream: inside an intercepted
// tunnel over HTTP/2, the cut response's stream is reset, and the tunnel
// serves the next request.
func TestUpstreamCutMidResponseResetsHTTP2Stream(t *testing.T) {
	up := faultyUpstream(t)
	u, _ := url.Parse(up)
	ic := openInterceptor(t, func(h string) bool { return strings.HasSuffix(h, ".amazonaws.com") })
	tp := startProxy(t, Options{
		Routes:    []Route{{Hosts: []string{"*.amazonaws.com"}, Source: staticSource(t), UpstreamScheme: "http"}},
		Upstream:  UpstreamOptions{ConnectTo: map[string]string{"*": u.Host}},
		Intercept: ic,
	})
	ca := x509.NewCertPool()
	ca.AddCert(ic.CACert())
	proxyURL, _ := url.Parse("http://" + tp.addr)
	tr := &http.Transport{Proxy: http.ProxyURL(proxyURL), TLSClientConfig: &tls.Config{RootCAs: ca}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	resp, body, err := faultRequest(t, c, http.MethodGet, "https://sqs.us-east-1.amazonaws.com/cut-chunked")
	if resp.ProtoMajor != 2 || resp.StatusCode != 200 || err == nil {
		t.Fatalf("got %s %d %q, read error %v; want HTTP/2 200 then a stream error", resp.Proto, resp.StatusCode, body, err)
	}
	resp, body, err = faultRequest(t, c, http.MethodGet, "https://sqs.us-east-1.amazonaws.com/ok")
	if err != nil || resp.StatusCode != 200 || string(body) != "ok" {
		t.Fatalf("the next request: %d %q %v", resp.StatusCode, body, err)
	}
}
