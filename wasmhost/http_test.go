package wasmhost

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countingServer is a loopback HTTP server that counts the requests it got.
type countingServer struct {
	*httptest.Server
	hits atomic.Int64
	port string
}

func newCountingServer(t *testing.T, h http.Handler) *countingServer {
	t.Helper()
	s := &countingServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	_, s.port, _ = net.SplitHostPort(s.Listener.Addr().String())
	return s
}

// testRoutes serves what the HTTP cases need.
func testRoutes(forbidden *countingServer) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Probe", "yes")
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s ua=%s body=%s", r.Method, r.Host, r.UserAgent(), body)
	})
	mux.HandleFunc("/to-forbidden", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://forbidden.test:"+forbidden.port+"/", http.StatusFound)
	})
	mux.HandleFunc("/chain/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.PathValue("n"))
		if n == 0 {
			fmt.Fprint(w, "end of chain")
			return
		}
		http.Redirect(w, r, fmt.Sprintf("/chain/%d", n-1), http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/size/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.PathValue("n"))
		w.Write([]byte(strings.Repeat("b", n)))
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(time.Minute):
		}
	})
	return mux
}

// staticLookup resolves the test names, and nothing else, without DNS.
func staticLookup(names map[string][]string) func(context.Context, string) ([]netip.Addr, error) {
	return func(_ context.Context, host string) ([]netip.Addr, error) {
		var out []netip.Addr
		for _, a := range names[normalizeHost(host)] { // DNS ignores case and a final dot
			out = append(out, netip.MustParseAddr(a))
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("no such host %s", host)
		}
		return out, nil
	}
}

type scriptReq struct {
	Req  any    `json:"req,omitempty"`
	Raw  string `json:"raw,omitempty"`
	Body string `json:"body,omitempty"`
}

type scriptResult struct {
	Code    status `json:"code"`
	Status  int    `json:"status"`
	BodyLen int    `json:"body_len"`
	Body    string `json:"body"`
	Headers string `json:"headers"`
}

// runScript runs the probe's http mode with the given network and
// requests and returns what each request returned.
func runScript(t *testing.T, n Network, reqs ...scriptReq) []scriptResult {
	t.Helper()
	script, err := json.Marshal(reqs)
	if err != nil {
		t.Fatal(err)
	}
	m := load(t, ModuleConfig{Args: []string{"http"}, Stdin: string(script), Network: n})
	var out []scriptResult
	runJSON(t, m, &out)
	if len(out) != len(reqs) {
		t.Fatalf("%d results for %d requests", len(out), len(reqs))
	}
	return out
}

func get(url string) scriptReq { return scriptReq{Req: map[string]any{"url": url}} }

func TestHTTPPolicy(t *testing.T) {
	forbidden := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "forbidden server reached")
	}))
	allowed := newCountingServer(t, testRoutes(forbidden))
	names := map[string][]string{
		"allowed.test":     {"127.0.0.1"},
		"api.allowed.test": {"127.0.0.1"},
		"forbidden.test":   {"127.0.0.1"},
		"metadata.test":    {"169.254.169.254"},
		"mixed.test":       {"8.8.8.8", "127.0.0.1"},
		"mapped.test":      {"::ffff:127.0.0.1"},
	}
	local := Network{ // the allowed server, reached on loopback on purpose
		AllowHosts:   []string{"allowed.test:" + allowed.port},
		AllowHTTP:    true,
		AllowPrivate: true,
		LookupIP:     staticLookup(names),
	}
	a := "http://allowed.test:" + allowed.port
	withHosts := func(n Network, hosts ...string) Network {
		n.AllowHosts = hosts
		return n
	}
	public := func(hosts ...string) Network { // AllowPrivate off
		return Network{AllowHosts: hosts, AllowHTTP: true, LookupIP: staticLookup(names)}
	}
	cases := []struct {
		name    string
		net     Network
		req     scriptReq
		want    status
		wantHit bool // whether the allowed server sees the request
	}{
		{"no allow_hosts", withHosts(local), get(a + "/ok"), errNotAllowed, false},
		{"host not allowed", local, get("http://forbidden.test:" + forbidden.port + "/"), errDeniedHost, false},
		{"port not allowed", withHosts(local, "allowed.test"), get(a + "/ok"), errDeniedHost, false},
		{"redirect to a host not allowed", local, get(a + "/to-forbidden"), errDeniedHost, true},
		{"http without allow_http", Network{AllowHosts: local.AllowHosts, AllowPrivate: true, LookupIP: local.LookupIP},
			get(a + "/ok"), errDeniedScheme, false},
		{"other scheme", local, get("ftp://allowed.test:" + allowed.port + "/"), errDeniedScheme, false},
		{"name resolves to loopback", public("allowed.test:" + allowed.port), get(a + "/ok"), errDeniedAddress, false},
		{"name resolves to a mapped loopback", public("mapped.test:" + allowed.port),
			get("http://mapped.test:" + allowed.port + "/ok"), errDeniedAddress, false},
		{"loopback literal", public("127.0.0.1:" + allowed.port),
			get("http://127.0.0.1:" + allowed.port + "/ok"), errDeniedAddress, false},
		{"name resolves to metadata", public("metadata.test"), get("http://metadata.test/"), errDeniedAddress, false},
		{"metadata literal", public("169.254.169.254"), get("http://169.254.169.254/latest/meta-data/"), errDeniedAddress, false},
		{"one of the addresses is private", public("mixed.test:" + allowed.port),
			get("http://mixed.test:" + allowed.port + "/ok"), errDeniedAddress, false},
		{"allowed", local, get(a + "/ok"), statusOK, true},
		{"allowed by wildcard", withHosts(local, "*.allowed.test:"+allowed.port),
			get("http://api.allowed.test:" + allowed.port + "/ok"), statusOK, true},
		{"wildcard does not match its suffix", withHosts(local, "*.allowed.test:"+allowed.port), get(a + "/ok"), errDeniedHost, false},
		{"allowed, case and trailing dot", withHosts(local, "ALLOWED.test.:"+allowed.port),
			get("http://Allowed.Test.:" + allowed.port + "/ok"), statusOK, true},
		{"five redirects", local, get(a + "/chain/5"), statusOK, true},
		{"six redirects", local, get(a + "/chain/6"), errRedirects, true},
		{"body of exactly 1 MiB", local, get(a + "/size/1048576"), statusOK, true},
		{"body over 1 MiB", local, get(a + "/size/1048577"), errLimitSize, true},
		{"request timeout", local, scriptReq{Req: map[string]any{"url": a + "/slow", "timeout_ms": 50}}, errTimeout, true},
		{"host header", local, scriptReq{Req: map[string]any{"url": a + "/ok", "headers": [][]string{{"Host", "evil"}}}}, errBadRequest, false},
		{"proxy header", local, scriptReq{Req: map[string]any{"url": a + "/ok", "headers": [][]string{{"proxy-authorization", "x"}}}}, errBadRequest, false},
		{"header injection", local, scriptReq{Req: map[string]any{"url": a + "/ok", "headers": [][]string{{"X-A", "a\r\nX-B: b"}}}}, errBadRequest, false},
		{"CONNECT", local, scriptReq{Req: map[string]any{"url": a + "/ok", "method": "CONNECT"}}, errBadRequest, false},
		{"unknown field", local, scriptReq{Req: map[string]any{"url": a + "/ok", "follow": true}}, errBadRequest, false},
		{"not JSON", local, scriptReq{Raw: "{"}, errBadRequest, false},
		{"user info", local, get("http://user:pw@allowed.test:" + allowed.port + "/ok"), errBadRequest, false},
		{"unicode host", withHosts(local, "*.allowed.test:"+allowed.port),
			get("http://äpi.allowed.test:" + allowed.port + "/ok"), errBadRequest, false},
		{"unresolvable", withHosts(local, "nowhere.test"), get("http://nowhere.test/"), errNetwork, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := allowed.hits.Load()
			r := runScript(t, tc.net, tc.req)[0]
			if r.Code != tc.want {
				t.Errorf("got %v, want %v", r.Code, tc.want)
			}
			if hit := allowed.hits.Load() > before; hit != tc.wantHit {
				t.Errorf("allowed server hit: %v, want %v", hit, tc.wantHit)
			}
			if n := forbidden.hits.Load(); n != 0 {
				t.Fatalf("forbidden server got %d requests", n)
			}
		})
	}
}

func TestHTTPResponse(t *testing.T) {
	srv := newCountingServer(t, testRoutes(nil))
	n := Network{
		AllowHosts: []string{"api.test:" + srv.port}, AllowHTTP: true, AllowPrivate: true,
		LookupIP: staticLookup(map[string][]string{"api.test": {"127.0.0.1"}}),
	}
	req := scriptReq{
		Req: map[string]any{
			"method":  "POST",
			"url":     "http://api.test:" + srv.port + "/ok#frag",
			"headers": [][]string{{"Content-Type", "text/plain"}, {"User-Agent", "probe/1"}},
		},
		Body: "hello body",
	}
	r := runScript(t, n, req)[0]
	if r.Code != statusOK || r.Status != 200 {
		t.Fatalf("%+v", r)
	}
	want := "POST api.test:" + srv.port + " ua=probe/1 body=hello body"
	if r.Body != want || r.BodyLen != len(want) {
		t.Errorf("body %q (%d), want %q", r.Body, r.BodyLen, want)
	}
	var headers [][2]string
	if err := json.Unmarshal([]byte(r.Headers), &headers); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, h := range headers {
		found = found || h == [2]string{"X-Probe", "yes"}
	}
	if !found {
		t.Errorf("headers %s", r.Headers)
	}
}

func TestHTTPRequestLimit(t *testing.T) {
	srv := newCountingServer(t, testRoutes(nil))
	n := Network{AllowHosts: []string{"127.0.0.1:" + srv.port}, AllowHTTP: true, AllowPrivate: true}
	reqs := make([]scriptReq, maxRequestsPerCall+1)
	for i := range reqs {
		reqs[i] = get(srv.URL + "/ok")
	}
	out := runScript(t, n, reqs...)
	for i, r := range out[:maxRequestsPerCall] {
		if r.Code != statusOK {
			t.Errorf("request %d: %v", i+1, r.Code)
		}
	}
	if got := out[maxRequestsPerCall].Code; got != errLimitRequests {
		t.Errorf("request %d: got %v, want ERR_LIMIT_REQUESTS", maxRequestsPerCall+1, got)
	}
	if got := srv.hits.Load(); got != maxRequestsPerCall {
		t.Errorf("server got %d requests", got)
	}
}

// TestHTTPSVerifiesTheHostName dials the address the hook resolved, but
// verifies the certificate against the URL's name: httptest's certificate
// is for example.com.
func TestHTTPSVerifiesTheHostName(t *testing.T) {
	needGuests(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "tls %s", r.TLS.ServerName)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are expected
	srv.StartTLS()
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	ctx := context.Background()
	h, err := New(ctx, Options{CacheDir: cacheDir, RootCAs: pool, Logger: sinkLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	lookup := staticLookup(map[string][]string{"example.com": {"127.0.0.1"}, "other.test": {"127.0.0.1"}})
	run := func(h *Host, url string) scriptResult {
		script, _ := json.Marshal([]scriptReq{get(url)})
		m, err := h.Load(ctx, ModuleConfig{Path: probeWasm, Args: []string{"http"}, Stdin: string(script),
			Network: Network{AllowHosts: []string{"example.com:" + port, "other.test:" + port}, AllowPrivate: true, LookupIP: lookup}})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close(ctx)
		var out []scriptResult
		runJSON(t, m, &out)
		return out[0]
	}
	if r := run(h, "https://example.com:"+port+"/"); r.Code != statusOK || r.Body != "tls example.com" {
		t.Errorf("trusted: %+v", r)
	}
	if r := run(h, "https://other.test:"+port+"/"); r.Code != errNetwork {
		t.Errorf("name not in the certificate: %+v", r)
	}
	if r := run(sharedHost, "https://example.com:"+port+"/"); r.Code != errNetwork {
		t.Errorf("untrusted CA: %+v", r)
	}
}

func TestHTTPIgnoresProxyEnvironment(t *testing.T) {
	proxy := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "proxied", http.StatusBadGateway)
	}))
	srv := newCountingServer(t, testRoutes(nil))
	for _, k := range []string{"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"} {
		t.Setenv(k, proxy.URL)
	}
	t.Setenv("NO_PROXY", "")
	n := Network{AllowHosts: []string{"127.0.0.1:" + srv.port}, AllowHTTP: true, AllowPrivate: true}
	r := runScript(t, n, get(srv.URL+"/ok"))[0]
	if r.Code != statusOK || r.Status != 200 || proxy.hits.Load() != 0 {
		t.Errorf("result %+v, proxy hits %d", r, proxy.hits.Load())
	}
}
