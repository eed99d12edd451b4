package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signet-proxy/signet/credentials"
	"github.com/signet-proxy/signet/signer"
)

// received is what a test upstream saw.
type received struct {
	method, requestURI, host string
	header                   http.Header
	body                     string
}

type recorder struct {
	mu   sync.Mutex
	reqs []received
}

func (rec *recorder) handler(status int, body string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, received{r.Method, r.RequestURI, r.Host, r.Header.Clone(), string(b)})
		rec.mu.Unlock()
		w.Header().Set("X-Upstream", "yes")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	})
}

func (rec *recorder) all() []received {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]received(nil), rec.reqs...)
}

func staticSource(t testing.TB) credentials.Source {
	t.Helper()
	p, err := credentials.NewStatic("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "")
	if err != nil {
		t.Fatal(err)
	}
	s := credentials.NewSource("test", p, credentials.SourceOptions{})
	t.Cleanup(func() { _ = s.Close() })
	return s
}

type testProxy struct {
	srv     *Server
	addr    string
	reverse []string
	// stop shuts the proxy down and waits until every handler has
	// returned; cleanup calls it too.
	stop func()
}

func startProxy(t testing.TB, opts Options) *testProxy {
	t.Helper()
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:0"
	}
	for i := range opts.Reverse {
		opts.Reverse[i].Listen = "127.0.0.1:0"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Signer == nil {
		opts.Signer = signer.New(signer.Options{SpoolDir: t.TempDir(), Logger: opts.Logger})
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := srv.Listen(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, 5*time.Second) }()
	stop := sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	t.Cleanup(stop)
	tp := &testProxy{srv: srv, addr: srv.Addr().String(), stop: stop}
	for _, a := range srv.ReverseAddrs() {
		tp.reverse = append(tp.reverse, a.String())
	}
	return tp
}

// rawRequest sends bytes as they are and returns the parsed answer, so that
// tests control the request line exactly.
func rawRequest(t *testing.T, addr, req string) (*http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func upstreamAddr(t testing.TB, h http.Handler) string {
	t.Helper()
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return strings.TrimPrefix(ts.URL, "http://")
}

func TestForwardSignsAndPreservesRawPath(t *testing.T) {
	var rec recorder
	up := upstreamAddr(t, rec.handler(200, "ok"))
	tp := startProxy(t, Options{
		Routes:   []Route{{Hosts: []string{"*.amazonaws.com"}, Source: staticSource(t), UpstreamScheme: "http"}},
		Upstream: UpstreamOptions{ConnectTo: map[string]string{"*.amazonaws.com": up}},
	})
	paths := []string{
		"/bucket/key%20with%20space",
		"/bucket/a+b",
		"/bucket/a%2Fb",
		"/bucket/tilde~%7E",
		"/bucket/eq=sign",
		"/bucket/%E2%82%AC%E6%97%A5",
		"/bucket//double//slash",
	}
	for _, p := range paths {
		req := "GET http://s3.us-east-1.amazonaws.com" + p + "?list-type=2&prefix=a%20b HTTP/1.1\r\n" +
			"Host: s3.us-east-1.amazonaws.com\r\n" +
			"Connection: close, X-Drop-Me\r\n" +
			"X-Drop-Me: 1\r\n" +
			"Proxy-Authorization: Basic c2VjcmV0\r\n" +
			"X-Amz-Meta-Color: blue\r\n\r\n"
		resp, body := rawRequest(t, tp.addr, req)
		if resp.StatusCode != 200 || body != "ok" || resp.Header.Get("X-Upstream") != "yes" {
			t.Fatalf("%s: got %d %q", p, resp.StatusCode, body)
		}
	}
	got := rec.all()
	if len(got) != len(paths) {
		t.Fatalf("upstream got %d requests, want %d", len(got), len(paths))
	}
	for i, r := range got {
		if path, _, _ := strings.Cut(r.requestURI, "?"); path != paths[i] {
			t.Errorf("upstream path = %q, want %q byte for byte", path, paths[i])
		}
		auth := r.header.Get("Authorization")
		if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/") || !strings.Contains(auth, "/us-east-1/s3/aws4_request") {
			t.Errorf("Authorization = %q, want a SigV4 header for s3 in us-east-1", auth)
		}
		if !strings.Contains(auth, "x-amz-meta-color") {
			t.Errorf("x-amz-meta-color not signed: %q", auth)
		}
		for _, k := range []string{"Proxy-Authorization", "X-Drop-Me", "Connection"} {
			if r.header.Get(k) != "" {
				t.Errorf("%s reached the upstream", k)
			}
		}
		if r.header.Get("X-Amz-Content-Sha256") == "" || r.header.Get("X-Amz-Date") == "" {
			t.Errorf("missing x-amz-content-sha256 or x-amz-date: %v", r.header)
		}
		if r.host != "s3.us-east-1.amazonaws.com" {
			t.Errorf("upstream Host = %q", r.host)
		}
	}
}

func TestPlaceholderSignatureIsReplaced(t *testing.T) {
	var rec recorder
	up := upstreamAddr(t, rec.handler(200, ""))
	tp := startProxy(t, Options{
		Routes:   []Route{{Hosts: []string{"*.example.test"}, Source: staticSource(t), UpstreamScheme: "http"}},
		Upstream: UpstreamOptions{ConnectTo: map[string]string{"*.example.test": up}},
	})
	req := "GET http://api.example.test/items HTTP/1.1\r\nHost: api.example.test\r\n" +
		"Authorization: AWS4-HMAC-SHA256 Credential=DUMMY/20200101/eu-west-3/execute-api/aws4_request, SignedHeaders=host, Signature=00\r\n" +
		"X-Amz-Security-Token: dummy-token\r\nX-Amz-Date: 20200101T000000Z\r\n\r\n"
	resp, body := rawRequest(t, tp.addr, req)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	r := rec.all()[0]
	auth := r.header.Get("Authorization")
	if !strings.Contains(auth, "Credential=AKIDEXAMPLE/") || !strings.Contains(auth, "/eu-west-3/execute-api/aws4_request") {
		t.Fatalf("Authorization = %q: want our key and the incoming scope", auth)
	}
	if r.header.Get("X-Amz-Security-Token") != "" {
		t.Fatalf("the placeholder session token reached the upstream")
	}
	if r.header.Get("X-Amz-Date") == "20200101T000000Z" {
		t.Fatalf("the placeholder date reached the upstream")
	}
}

func TestSignetErrors(t *testing.T) {
	var rec recorder
	up := upstreamAddr(t, rec.handler(200, ""))
	failing := credentials.NewSource("broken", credentials.ProviderFunc(func(context.Context) (credentials.Credentials, error) {
		return credentials.Credentials{}, errors.New("no keys anywhere")
	}), credentials.SourceOptions{})
	t.Cleanup(func() { _ = failing.Close() })
	tp := startProxy(t, Options{
		Routes: []Route{
			{Hosts: []string{"unknown.example.test"}, Source: staticSource(t), UpstreamScheme: "http"},
			{Hosts: []string{"sqs.us-east-1.amazonaws.com"}, Source: failing, UpstreamScheme: "http"},
		},
		DenyUnmatched: true,
		Upstream:      UpstreamOptions{ConnectTo: map[string]string{"*": up}},
	})
	tests := []struct {
		name, req  string
		wantStatus int
		wantCode   string
	}{
		{"host with no signing scope", "GET http://unknown.example.test/ HTTP/1.1\r\nHost: unknown.example.test\r\n\r\n", 502, codeUnknownScope},
		{"source without credentials", "GET http://sqs.us-east-1.amazonaws.com/ HTTP/1.1\r\nHost: sqs.us-east-1.amazonaws.com\r\n\r\n", 502, codeNoCredentials},
		{"unmatched host denied", "GET http://other.test/ HTTP/1.1\r\nHost: other.test\r\n\r\n", 403, codeUnmatchedDenied},
		{"origin-form on the proxy listener", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 400, codeNotProxyRequest},
		{"CONNECT to a signing host", "CONNECT sqs.us-east-1.amazonaws.com:443 HTTP/1.1\r\nHost: sqs.us-east-1.amazonaws.com:443\r\n\r\n", 501, codeConnectNotSupported},
		{"CONNECT to unmatched host denied", "CONNECT other.test:443 HTTP/1.1\r\nHost: other.test:443\r\n\r\n", 403, codeUnmatchedDenied},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := rawRequest(t, tp.addr, tc.req)
			if resp.StatusCode != tc.wantStatus || resp.Header.Get("X-Signet-Error") != tc.wantCode {
				t.Fatalf("got %d %q, want %d %q; body %s", resp.StatusCode, resp.Header.Get("X-Signet-Error"), tc.wantStatus, tc.wantCode, body)
			}
			var eb errorBody
			if err := json.Unmarshal([]byte(body), &eb); err != nil || eb.Error != tc.wantCode || eb.Message == "" {
				t.Fatalf("body %q is not the JSON error (%v)", body, err)
			}
		})
	}
	if n := len(rec.all()); n != 0 {
		t.Fatalf("upstream received %d requests; a request signet cannot sign must never be forwarded", n)
	}
}

func TestUnmatchedForwardPassesUntouched(t *testing.T) {
	var rec recorder
	up := upstreamAddr(t, rec.handler(201, "made"))
	tp := startProxy(t, Options{Routes: []Route{{Hosts: []string{"*.amazonaws.com"}, Source: staticSource(t)}}})
	resp, body := rawRequest(t, tp.addr, "PUT http://"+up+"/x%2Fy HTTP/1.1\r\nHost: "+up+"\r\nContent-Length: 5\r\nAuthorization: Bearer mine\r\n\r\nhello")
	if resp.StatusCode != 201 || body != "made" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	r := rec.all()[0]
	if r.header.Get("Authorization") != "Bearer mine" || r.header.Get("X-Amz-Date") != "" || r.body != "hello" || r.requestURI != "/x%2Fy" {
		t.Fatalf("unmatched request was altered: %+v", r)
	}
}

func TestReverseListener(t *testing.T) {
	var rec recorder
	up := upstreamAddr(t, rec.handler(200, "rev"))
	u, _ := url.Parse("http://" + up)
	tp := startProxy(t, Options{Reverse: []Reverse{{Upstream: u, Source: staticSource(t), Scope: signer.Scope{Service: "s3", Region: "eu-central-1"}}}})
	resp, body := rawRequest(t, tp.reverse[0], "POST /bucket/k%2B1?uploads HTTP/1.1\r\nHost: whatever\r\nContent-Length: 3\r\n\r\nabc")
	if resp.StatusCode != 200 || body != "rev" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	r := rec.all()[0]
	if r.host != up || !strings.HasPrefix(r.requestURI, "/bucket/k%2B1") || r.body != "abc" {
		t.Fatalf("upstream got %+v", r)
	}
	if !strings.Contains(r.header.Get("Authorization"), "/eu-central-1/s3/aws4_request") {
		t.Fatalf("Authorization = %q", r.header.Get("Authorization"))
	}
}

func TestConnectTunnelIsBlind(t *testing.T) {
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "tls-"+r.Header.Get("Authorization"))
	}))
	t.Cleanup(ts.Close)
	tp := startProxy(t, Options{Routes: []Route{{Hosts: []string{"*.amazonaws.com"}, Source: staticSource(t)}}})
	proxyURL, _ := url.Parse("http://" + tp.addr)
	client := ts.Client()
	client.Transport.(*http.Transport).Proxy = http.ProxyURL(proxyURL)
	defer client.CloseIdleConnections()
	resp, err := client.Get(ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	// The client verified the server's own certificate (ts.Client trusts
	// only it), so signet saw ciphertext only.
	if string(b) != "tls-" {
		t.Fatalf("body %q", b)
	}
}

func TestResponseStreamsEventStreams(t *testing.T) {
	release := make(chan struct{})
	up := upstreamAddr(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
		w.WriteHeader(200)
		_, _ = io.WriteString(w, "frame-1")
		w.(http.Flusher).Flush()
		<-release
		_, _ = io.WriteString(w, "frame-2")
	}))
	tp := startProxy(t, Options{
		Routes:   []Route{{Hosts: []string{"*.amazonaws.com"}, Source: staticSource(t), UpstreamScheme: "http"}},
		Upstream: UpstreamOptions{ConnectTo: map[string]string{"*": up}},
	})
	proxyURL, _ := url.Parse("http://" + tp.addr)
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}}
	resp, err := client.Get("http://bedrock-runtime.us-east-1.amazonaws.com/model/x/invoke-with-response-stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 7)
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "frame-1" {
		close(release)
		t.Fatalf("first frame: %q %v", buf, err)
	}
	close(release) // the second frame is sent only after the first arrived
	rest, _ := io.ReadAll(resp.Body)
	if string(rest) != "frame-2" {
		t.Fatalf("rest %q", rest)
	}
}

// A shutdown lets a request in flight finish, within the drain time.
func TestShutdownDrainsInFlight(t *testing.T) {
	entered := make(chan struct{})
	up := upstreamAddr(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		time.Sleep(300 * time.Millisecond)
		_, _ = io.WriteString(w, "finished")
	}))
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := New(Options{
		Listen:   "127.0.0.1:0",
		Routes:   []Route{{Hosts: []string{"*.amazonaws.com"}, Source: staticSource(t), UpstreamScheme: "http"}},
		Upstream: UpstreamOptions{ConnectTo: map[string]string{"*": up}},
		Signer:   signer.New(signer.Options{SpoolDir: t.TempDir()}),
		Logger:   logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := srv.Listen(ctx); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, 5*time.Second) }()

	type result struct {
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		proxyURL, _ := url.Parse("http://" + srv.Addr().String())
		c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}}
		resp, err := c.Get("http://sqs.us-east-1.amazonaws.com/")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- result{string(b), err}
	}()
	<-entered
	cancel() // SIGTERM, in effect
	r := <-got
	if r.err != nil || r.body != "finished" {
		t.Fatalf("in-flight request during shutdown: %q, %v", r.body, r.err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := net.Dial("tcp", srv.Addr().String()); err == nil {
		t.Fatal("listener still accepts after shutdown")
	}
}

func FuzzRawPath(f *testing.F) {
	for _, s := range []string{"/a?b", "http://h/p?q", "http://h", "https://h?x", "h:443", "*", "", "//x", "http://h//p"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		p := rawPath(uri)
		if !strings.HasPrefix(p, "/") || strings.ContainsRune(p, '?') {
			t.Fatalf("rawPath(%q) = %q: want a path starting with / and no query", uri, p)
		}
		if strings.HasPrefix(uri, "/") && !strings.HasPrefix(uri, p) {
			t.Fatalf("rawPath(%q) = %q is not the request target's own path", uri, p)
		}
	})
}

// signing_host: the request is dialled to the route's host (a VPC endpoint,
// say) but sent and signed with another Host.
func TestSigningHost(t *testing.T) {
	var rec recorder
	up := upstreamAddr(t, rec.handler(200, ""))
	tp := startProxy(t, Options{
		Routes: []Route{{Hosts: []string{"vpce-1.execute-api.us-east-1.vpce.amazonaws.com"}, Source: staticSource(t),
			SigningHost: "abc123.execute-api.us-east-1.amazonaws.com", UpstreamScheme: "http"}},
		Upstream: UpstreamOptions{ConnectTo: map[string]string{"*": up}},
	})
	resp, body := rawRequest(t, tp.addr, "GET http://vpce-1.execute-api.us-east-1.vpce.amazonaws.com/prod/x HTTP/1.1\r\nHost: vpce-1.execute-api.us-east-1.vpce.amazonaws.com\r\n\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("got %d %s", resp.StatusCode, body)
	}
	r := rec.all()[0]
	if r.host != "abc123.execute-api.us-east-1.amazonaws.com" || !strings.Contains(r.header.Get("Authorization"), "/us-east-1/execute-api/aws4_request") {
		t.Fatalf("upstream got Host %q, Authorization %q", r.host, r.header.Get("Authorization"))
	}
}

// Past the mandatory point with a failing refresh, requests get 503 (a
// passing outage) rather than being signed with keys about to expire.
func TestRefreshFailureIs503(t *testing.T) {
	var rec recorder
	up := upstreamAddr(t, rec.handler(200, ""))
	var calls int
	var mu sync.Mutex
	src := credentials.NewSource("sts", credentials.ProviderFunc(func(context.Context) (credentials.Credentials, error) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls > 1 {
			return credentials.Credentials{}, errors.New("sts is down")
		}
		return credentials.Credentials{AccessKeyID: "ASIAEXAMPLE", SecretAccessKey: "s", SessionToken: "t",
			Expires: time.Now().Add(2 * time.Second)}, nil
	}), credentials.SourceOptions{})
	t.Cleanup(func() { _ = src.Close() })
	tp := startProxy(t, Options{
		Routes:   []Route{{Hosts: []string{"*.amazonaws.com"}, Source: src, UpstreamScheme: "http"}},
		Upstream: UpstreamOptions{ConnectTo: map[string]string{"*": up}},
	})
	req := "GET http://sqs.us-east-1.amazonaws.com/ HTTP/1.1\r\nHost: sqs.us-east-1.amazonaws.com\r\n\r\n"
	if resp, body := rawRequest(t, tp.addr, req); resp.StatusCode != 200 {
		t.Fatalf("first request: %d %s", resp.StatusCode, body)
	}
	// 2 s keys: mandatory scales down to 0.5 s before expiry.
	time.Sleep(1600 * time.Millisecond)
	resp, body := rawRequest(t, tp.addr, req)
	if resp.StatusCode != 503 || resp.Header.Get("X-Signet-Error") != codeRefreshFailed || !strings.Contains(body, "sts is down") {
		t.Fatalf("got %d %q %s, want 503 %s with the cause", resp.StatusCode, resp.Header.Get("X-Signet-Error"), body, codeRefreshFailed)
	}
	if n := len(rec.all()); n != 1 {
		t.Fatalf("upstream got %d requests, want only the first", n)
	}
}
