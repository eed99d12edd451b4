package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/signet-proxy/signet/internal/metrics"
	"github.com/signet-proxy/signet/proxy/tlsintercept"
)

// tlsUpstream is an HTTPS test server standing in for AWS, with
// certificates for any name from a CA of its own, and a pool that trusts it.
func tlsUpstream(t *testing.T, rec *recorder) (addr string, roots *x509.CertPool) {
	t.Helper()
	awsCA := openInterceptor(t, func(string) bool { return true })
	ts := httptest.NewUnstartedServer(rec.handler(200, "secure"))
	ts.EnableHTTP2 = true
	ts.TLS = awsCA.ServerConfig()
	ts.StartTLS()
	t.Cleanup(ts.Close)
	roots = x509.NewCertPool()
	roots.AddCert(awsCA.CACert())
	return strings.TrimPrefix(ts.URL, "https://"), roots
}

func openInterceptor(t *testing.T, allow func(string) bool) *tlsintercept.Interceptor {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "state")
	ic, err := tlsintercept.Open(context.Background(), tlsintercept.Options{StateDir: dir, Allow: allow})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ic.Close() })
	return ic
}

func TestInterceptSignsInsideTunnel(t *testing.T) {
	var rec recorder
	up, roots := tlsUpstream(t, &rec)
	ic := openInterceptor(t, func(h string) bool { return strings.HasSuffix(h, ".amazonaws.com") })
	m := metrics.New(metrics.Options{WithoutRuntime: true})
	var logged syncBuffer
	tp := startProxy(t, Options{
		Routes:    []Route{{Hosts: []string{"*.amazonaws.com"}, Source: staticSource(t)}},
		Upstream:  UpstreamOptions{ConnectTo: map[string]string{"sqs.us-east-1.amazonaws.com:443": up}, RootCAs: roots},
		Intercept: ic,
		Metrics:   m,
		AccessLog: slog.New(slog.NewTextHandler(&logged, nil)),
	})
	caPool := x509.NewCertPool()
	caPool.AddCert(ic.CACert())
	proxyURL, _ := url.Parse("http://" + tp.addr)
	for _, proto := range []string{"HTTP/1.1", "HTTP/2.0"} {
		t.Run(proto, func(t *testing.T) {
			tr := &http.Transport{Proxy: http.ProxyURL(proxyURL), TLSClientConfig: &tls.Config{RootCAs: caPool}, ForceAttemptHTTP2: proto == "HTTP/2.0"}
			defer tr.CloseIdleConnections()
			for i := range 3 { // keep-alive: several requests in one tunnel
				resp, err := (&http.Client{Transport: tr}).Get("https://sqs.us-east-1.amazonaws.com/q%2Fx?Action=ListQueues")
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(body) != "secure" || resp.Proto != proto {
					t.Fatalf("request %d: %s %d %q", i, resp.Proto, resp.StatusCode, body)
				}
			}
		})
	}
	got := rec.all()
	if len(got) != 6 {
		t.Fatalf("upstream got %d requests, want 6", len(got))
	}
	for _, r := range got {
		if !strings.Contains(r.header.Get("Authorization"), "/us-east-1/sqs/aws4_request") || r.host != "sqs.us-east-1.amazonaws.com" ||
			!strings.HasPrefix(r.requestURI, "/q%2Fx?") {
			t.Fatalf("upstream got %+v", r)
		}
	}

	// Two tunnels: one leaf issued, the second handshake served from the
	// leaf cache; one host: one signing scope lookup, then five hits.
	tp.stop()
	want := `
# HELP signet_cache_hits_total Lookups that found their entry.
# TYPE signet_cache_hits_total counter
signet_cache_hits_total{cache="leaf_certificates"} 1
signet_cache_hits_total{cache="signing_scope"} 5
# HELP signet_cache_misses_total Lookups that did not find their entry.
# TYPE signet_cache_misses_total counter
signet_cache_misses_total{cache="leaf_certificates"} 1
signet_cache_misses_total{cache="signing_scope"} 1
# HELP signet_leaf_certificates_issued_total Leaf certificates signed by the local CA for intercepted hosts.
# TYPE signet_leaf_certificates_issued_total counter
signet_leaf_certificates_issued_total 1
# HELP signet_requests_total Requests answered, by route, signing name, region and status class (2xx...). Signet's own error answers count too.
# TYPE signet_requests_total counter
signet_requests_total{code_class="2xx",region="us-east-1",route="routes[0]",service="sqs"} 6
signet_requests_total{code_class="3xx",region="us-east-1",route="routes[0]",service="sqs"} 0
signet_requests_total{code_class="4xx",region="us-east-1",route="routes[0]",service="sqs"} 0
signet_requests_total{code_class="5xx",region="us-east-1",route="routes[0]",service="sqs"} 0
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "signet_cache_hits_total",
		"signet_cache_misses_total", "signet_leaf_certificates_issued_total", "signet_requests_total"); err != nil {
		t.Error(err)
	}
	// One access log line per request inside the tunnels, one per tunnel.
	lines := strings.Split(strings.TrimSpace(logged.String()), "\n")
	var gets, connects int
	for _, l := range lines {
		switch {
		case strings.Contains(l, "method=GET host=sqs.us-east-1.amazonaws.com path=/q%2Fx status=200 route=routes[0] service=sqs"):
			gets++
		case strings.Contains(l, "method=CONNECT host=sqs.us-east-1.amazonaws.com:443 path=\"\" status=200") &&
			!strings.Contains(l, "bytes_in=0") && !strings.Contains(l, "bytes_out=0"):
			connects++
		}
	}
	if gets != 6 || connects != 2 || len(lines) != 8 {
		t.Errorf("access log: %d GET and %d CONNECT lines of %d, want 6, 2, 8:\n%s", gets, connects, len(lines), logged.String())
	}
}

func TestInterceptRefusesHostMismatch(t *testing.T) {
	var rec recorder
	up, roots := tlsUpstream(t, &rec)
	ic := openInterceptor(t, func(string) bool { return true })
	tp := startProxy(t, Options{
		Routes:    []Route{{Hosts: []string{"*.amazonaws.com"}, Source: staticSource(t)}},
		Upstream:  UpstreamOptions{ConnectTo: map[string]string{"*": up}, RootCAs: roots},
		Intercept: ic,
	})
	caPool := x509.NewCertPool()
	caPool.AddCert(ic.CACert())
	c, err := net.Dial("tcp", tp.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(c, "CONNECT sqs.us-east-1.amazonaws.com:443 HTTP/1.1\r\nHost: sqs.us-east-1.amazonaws.com:443\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	tc := tls.Client(c, &tls.Config{RootCAs: caPool, ServerName: "sqs.us-east-1.amazonaws.com", NextProtos: []string{"http/1.1"}})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(tc, "GET / HTTP/1.1\r\nHost: sns.us-east-1.amazonaws.com\r\n\r\n")
	resp, err = http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusMisdirectedRequest || resp.Header.Get("X-Signet-Error") != codeHostMismatch {
		t.Fatalf("got %d %q, want 421 %s", resp.StatusCode, resp.Header.Get("X-Signet-Error"), codeHostMismatch)
	}
	if n := len(rec.all()); n != 0 {
		t.Fatalf("upstream got %d requests", n)
	}
}

func TestInsecureSkipVerifyIsPerRoute(t *testing.T) {
	var rec recorder
	up, _ := tlsUpstream(t, &rec) // its certificate is trusted by nobody
	tp := startProxy(t, Options{
		Routes: []Route{
			{Hosts: []string{"sqs.us-east-1.amazonaws.com"}, Source: staticSource(t), InsecureSkipVerify: true},
			{Hosts: []string{"*.amazonaws.com"}, Source: staticSource(t)},
		},
		Upstream: UpstreamOptions{ConnectTo: map[string]string{"*": up}},
	})
	tests := []struct {
		host string
		want int
	}{
		{"sqs.us-east-1.amazonaws.com", 200},
		{"sns.us-east-1.amazonaws.com", 502},
	}
	for _, tc := range tests {
		resp, body := rawRequest(t, tp.addr, "GET http://"+tc.host+"/ HTTP/1.1\r\nHost: "+tc.host+"\r\n\r\n")
		if resp.StatusCode != tc.want {
			t.Errorf("%s: got %d %s, want %d", tc.host, resp.StatusCode, body, tc.want)
		}
	}
}

func TestProxyAuth(t *testing.T) {
	var rec recorder
	up := upstreamAddr(t, rec.handler(200, "ok"))
	file := filepath.Join(t.TempDir(), "users")
	// "s3cret" as bcrypt (cost 4) for bob, plain for alice.
	const bobHash = "$2a$04$i0aaUkj2yQv.F55pyUGSxelmEjXZnohUfdfHpqRce6S2kDznVKMQ6"
	if err := os.WriteFile(file, []byte("# users\nalice:wonderland\nbob:"+bobHash+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	auth, err := LoadBasicAuth(file)
	if err != nil {
		t.Fatal(err)
	}
	tp := startProxy(t, Options{Auth: auth, Routes: []Route{{Hosts: []string{"*.amazonaws.com"}, Source: staticSource(t), UpstreamScheme: "http"}},
		Upstream: UpstreamOptions{ConnectTo: map[string]string{"*": up}}})
	basic := func(u, p string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p)) }
	tests := []struct {
		name, header string
		want         int
	}{
		{"none", "", 407},
		{"wrong password", basic("alice", "nope"), 407},
		{"unknown user", basic("eve", "wonderland"), 407},
		{"not basic", "Bearer x", 407},
		{"plain password", basic("alice", "wonderland"), 200},
		{"bcrypt password", basic("bob", "s3cret"), 200},
		{"bcrypt password again (cached)", basic("bob", "s3cret"), 200},
		{"bcrypt wrong", basic("bob", "s3cret2"), 407},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := ""
			if tc.header != "" {
				h = "Proxy-Authorization: " + tc.header + "\r\n"
			}
			resp, body := rawRequest(t, tp.addr, "GET http://sqs.us-east-1.amazonaws.com/ HTTP/1.1\r\nHost: sqs.us-east-1.amazonaws.com\r\n"+h+"\r\n")
			if resp.StatusCode != tc.want {
				t.Fatalf("got %d %s", resp.StatusCode, body)
			}
			if tc.want == 407 && resp.Header.Get("Proxy-Authenticate") == "" {
				t.Fatal("407 without Proxy-Authenticate")
			}
		})
	}
	for _, r := range rec.all() {
		if r.header.Get("Proxy-Authorization") != "" {
			t.Fatal("proxy credentials reached the upstream")
		}
	}
	if err := os.Chmod(file, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadBasicAuth(file); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a world-readable auth file must be refused: %v", err)
	}
}
