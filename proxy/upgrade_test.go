package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
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

	"github.com/gorilla/websocket"

	"github.com/signet-proxy/signet/signer"
)

// wsEcho is a WebSocket upstream that echoes every message and records the
// upgrade requests it accepted.
type wsEcho struct {
	mu   sync.Mutex
	reqs []received
}

func (e *wsEcho) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	e.reqs = append(e.reqs, received{r.Method, r.RequestURI, r.Host, r.Header.Clone(), ""})
	e.mu.Unlock()
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	c, err := up.Upgrade(w, r, http.Header{"X-Upstream": {"echo"}})
	if err != nil {
		return
	}
	defer c.Close()
	for {
		kind, msg, err := c.ReadMessage()
		if err != nil {
			return
		}
		if err := c.WriteMessage(kind, msg); err != nil {
			return
		}
	}
}

func (e *wsEcho) all() []received {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]received(nil), e.reqs...)
}

// absoluteForm makes gorilla's client speak to an HTTP proxy the way an
// HTTP_PROXY client sends a plain http:// request: the request line names
// the whole URL. (gorilla itself would send CONNECT.)
type absoluteForm struct {
	net.Conn
	origin string // "http://host"
	buf    []byte
	done   bool
}

func (c *absoluteForm) Write(p []byte) (int, error) {
	if c.done {
		return c.Conn.Write(p)
	}
	c.buf = append(c.buf, p...)
	method, rest, ok := bytes.Cut(c.buf, []byte(" "))
	if !ok || !bytes.Contains(rest, []byte("\r\n")) {
		return len(p), nil
	}
	c.done = true
	var line bytes.Buffer
	line.Write(method)
	line.WriteByte(' ')
	line.WriteString(c.origin)
	line.Write(rest)
	if _, err := c.Conn.Write(line.Bytes()); err != nil {
		return 0, err
	}
	return len(p), nil
}

func forwardDialer(proxyAddr string) *websocket.Dialer {
	return &websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", proxyAddr)
		if err != nil {
			return nil, err
		}
		host, port, _ := net.SplitHostPort(addr)
		origin := "http://" + host
		if port != "80" {
			origin = "http://" + addr
		}
		return &absoluteForm{Conn: c, origin: origin}, nil
	}}
}

func echoOnce(t *testing.T, c *websocket.Conn, msgs ...string) {
	t.Helper()
	for _, m := range msgs {
		if err := c.WriteMessage(websocket.TextMessage, []byte(m)); err != nil {
			t.Fatal(err)
		}
		_, got, err := c.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != m {
			t.Fatalf("echo %q, want %q", got, m)
		}
	}
}

// TestWebSocketUpgrade relays an echo session through each listener: the
// upgrade is signed in headers, Connection and Upgrade reach the upstream
// but not the signature, and messages flow both ways.
func TestWebSocketUpgrade(t *testing.T) {
	echo := &wsEcho{}
	plain := upstreamAddr(t, echo)
	awsCA := openInterceptor(t, func(string) bool { return true })
	tlsUp := httptest.NewUnstartedServer(echo)
	tlsUp.TLS = awsCA.ServerConfig()
	tlsUp.StartTLS()
	t.Cleanup(tlsUp.Close)
	roots := x509.NewCertPool()
	roots.AddCert(awsCA.CACert())
	ic := openInterceptor(t, func(h string) bool { return strings.HasSuffix(h, ".amazonaws.com") })
	revURL, _ := url.Parse("http://" + plain)
	src := staticSource(t)
	tp := startProxy(t, Options{
		Routes: []Route{
			{Hosts: []string{"plainws.execute-api.us-east-1.amazonaws.com"}, Source: src, UpstreamScheme: "http"},
			{Hosts: []string{"*.amazonaws.com"}, Source: src},
		},
		Reverse: []Reverse{{Upstream: revURL, Source: src, Scope: signer.Scope{Service: "execute-api", Region: "eu-west-1"}}},
		Upstream: UpstreamOptions{RootCAs: roots, ConnectTo: map[string]string{
			"plainws.execute-api.us-east-1.amazonaws.com:80": plain,
			"tlsws.execute-api.us-east-1.amazonaws.com:443":  strings.TrimPrefix(tlsUp.URL, "https://"),
		}},
		Intercept: ic,
	})
	caPool := x509.NewCertPool()
	caPool.AddCert(ic.CACert())
	proxyURL, _ := url.Parse("http://" + tp.addr)

	cases := []struct {
		name   string
		dialer *websocket.Dialer
		url    string
		region string
	}{
		{"forward", forwardDialer(tp.addr), "ws://plainws.execute-api.us-east-1.amazonaws.com/prod?x=1", "us-east-1"},
		{"reverse", &websocket.Dialer{}, "ws://" + tp.reverse[0] + "/prod?x=1", "eu-west-1"},
		{"intercepted", &websocket.Dialer{Proxy: http.ProxyURL(proxyURL), TLSClientConfig: &tls.Config{RootCAs: caPool}},
			"wss://tlsws.execute-api.us-east-1.amazonaws.com/prod?x=1", "us-east-1"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, resp, err := tc.dialer.Dial(tc.url, http.Header{"X-Amz-Meta-Test": {"ws"}})
			if err != nil {
				t.Fatalf("dial: %v (response %v)", err, resp)
			}
			defer c.Close()
			if resp.Header.Get("X-Upstream") != "echo" {
				t.Errorf("101 lacks the upstream's headers: %v", resp.Header)
			}
			echoOnce(t, c, "hello", strings.Repeat("big ", 20000))
			reqs := echo.all()
			if len(reqs) != i+1 {
				t.Fatalf("upstream saw %d upgrades, want %d", len(reqs), i+1)
			}
			r := reqs[i]
			auth := r.header.Get("Authorization")
			if !strings.Contains(auth, "/"+tc.region+"/execute-api/aws4_request") {
				t.Fatalf("Authorization = %q", auth)
			}
			_, sh, _ := strings.Cut(auth, "SignedHeaders=")
			sh, _, _ = strings.Cut(sh, ",")
			for _, want := range []string{"host", "sec-websocket-key", "sec-websocket-version", "x-amz-date", "x-amz-meta-test"} {
				if !strings.Contains(";"+sh+";", ";"+want+";") {
					t.Errorf("%s not signed: %s", want, sh)
				}
			}
			for _, hop := range []string{"connection", "upgrade"} {
				if strings.Contains(";"+sh+";", ";"+hop+";") {
					t.Errorf("hop-by-hop %s signed: %s", hop, sh)
				}
			}
			if r.requestURI != "/prod?x=1" {
				t.Errorf("upstream request URI %q", r.requestURI)
			}
		})
	}
}

// TestWebSocketIoTPresigned: an upgrade to /mqtt on an IoT data endpoint
// carries its signature in the query, not in headers.
func TestWebSocketIoTPresigned(t *testing.T) {
	echo := &wsEcho{}
	up := upstreamAddr(t, echo)
	tp := startProxy(t, Options{
		Routes:   []Route{{Hosts: []string{"*.iot.us-east-1.amazonaws.com"}, Source: staticSource(t), UpstreamScheme: "http"}},
		Upstream: UpstreamOptions{ConnectTo: map[string]string{"*": up}},
	})
	c, _, err := forwardDialer(tp.addr).Dial("ws://abc123-ats.iot.us-east-1.amazonaws.com/mqtt", http.Header{"Sec-WebSocket-Protocol": {"mqtt"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	echoOnce(t, c, "mqtt bytes")
	r := echo.all()[0]
	if r.header.Get("Authorization") != "" || r.header.Get("X-Amz-Date") != "" {
		t.Fatalf("presigned upgrade carries signing headers: %v", r.header)
	}
	q, _ := url.ParseQuery(strings.SplitN(r.requestURI, "?", 2)[1])
	if !strings.HasSuffix(q.Get("X-Amz-Credential"), "/us-east-1/iotdevicegateway/aws4_request") ||
		q.Get("X-Amz-SignedHeaders") != "host" || len(q.Get("X-Amz-Signature")) != 64 {
		t.Fatalf("query %q is not an IoT presignature", r.requestURI)
	}
}

// An upgrade to a host no route signs is relayed untouched.
func TestWebSocketUnmatchedPassesUnsigned(t *testing.T) {
	echo := &wsEcho{}
	up := upstreamAddr(t, echo)
	tp := startProxy(t, Options{Routes: []Route{{Hosts: []string{"*.amazonaws.com"}, Source: staticSource(t)}}})
	c, _, err := forwardDialer(tp.addr).Dial("ws://"+up+"/chat", http.Header{"Authorization": {"Bearer mine"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	echoOnce(t, c, "plain")
	r := echo.all()[0]
	if r.header.Get("Authorization") != "Bearer mine" || r.header.Get("X-Amz-Date") != "" || r.requestURI != "/chat" {
		t.Fatalf("unmatched upgrade was altered: %+v", r)
	}
}

// An upstream that refuses the upgrade answers the client as any request.
func TestWebSocketUpgradeRefused(t *testing.T) {
	up := upstreamAddr(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no socket for you", http.StatusForbidden)
	}))
	tp := startProxy(t, Options{
		Routes:   []Route{{Hosts: []string{"*.amazonaws.com"}, Source: staticSource(t), UpstreamScheme: "http"}},
		Upstream: UpstreamOptions{ConnectTo: map[string]string{"*": up}},
	})
	_, resp, err := forwardDialer(tp.addr).Dial("ws://id.execute-api.us-east-1.amazonaws.com/prod", nil)
	if !errors.Is(err, websocket.ErrBadHandshake) || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("dial: %v, %v", err, resp)
	}
	b, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(b), "no socket for you") {
		t.Fatalf("body %q", b)
	}
}

// An upstream that switches to a protocol the client did not ask for is a
// failed upstream, and nothing is relayed.
func TestWebSocketUpstreamSwitchesToOther(t *testing.T) {
	up := upstreamAddr(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
		_ = brw.Flush()
		_, _ = io.Copy(io.Discard, c)
	}))
	tp := startProxy(t, Options{
		Routes:   []Route{{Hosts: []string{"*.amazonaws.com"}, Source: staticSource(t), UpstreamScheme: "http"}},
		Upstream: UpstreamOptions{ConnectTo: map[string]string{"*": up}},
	})
	_, resp, err := forwardDialer(tp.addr).Dial("ws://id.execute-api.us-east-1.amazonaws.com/prod", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusBadGateway || resp.Header.Get("X-Signet-Error") != codeUpstreamFailed {
		t.Fatalf("dial: %v, %v", err, resp)
	}
}

// TestWebSocketDrainedOnShutdown: a relay is cut once the drain time is up,
// and Serve returns.
func TestWebSocketDrainedOnShutdown(t *testing.T) {
	up := upstreamAddr(t, &wsEcho{})
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
	go func() { served <- srv.Serve(ctx, 50*time.Millisecond) }()
	c, _, err := forwardDialer(srv.Addr().String()).Dial("ws://id.execute-api.us-east-1.amazonaws.com/prod", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	echoOnce(t, c, "before shutdown")
	cancel()
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	// A relay that shutdown forgot would keep the socket open until this
	// watchdog, which is far past the drain time.
	_ = c.SetReadDeadline(time.Now().Add(time.Minute))
	var ne net.Error
	if _, _, err := c.ReadMessage(); err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the relay outlived the drain: %v", err)
	}
}

// Expect: 100-continue travels upstream with a body and only with one.
func TestExpectContinueForwarded(t *testing.T) {
	var rec recorder
	up := upstreamAddr(t, rec.handler(200, "ok"))
	tp := startProxy(t, Options{
		Routes:   []Route{{Hosts: []string{"*.amazonaws.com"}, Source: staticSource(t), UpstreamScheme: "http", Payload: signer.PayloadUnsigned}},
		Upstream: UpstreamOptions{ConnectTo: map[string]string{"*": up}},
	})
	proxyURL, _ := url.Parse("http://" + tp.addr)
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL), ExpectContinueTimeout: time.Hour}}
	req, _ := http.NewRequest("PUT", "http://b.s3.us-east-1.amazonaws.com/k", strings.NewReader("hello"))
	req.Header.Set("Expect", "100-Continue")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	resp, _ = rawRequest(t, tp.addr, "GET http://b.s3.us-east-1.amazonaws.com/k HTTP/1.1\r\nHost: b.s3.us-east-1.amazonaws.com\r\n"+
		"Expect: 100-continue\r\n\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	got := rec.all()
	if len(got) != 2 || got[0].header.Get("Expect") != "100-continue" || got[0].body != "hello" || got[1].header.Get("Expect") != "" {
		t.Fatalf("upstream got %+v", got)
	}
	if strings.Contains(strings.ToLower(got[0].header.Get("Authorization")), "expect") {
		t.Fatalf("Expect was signed: %s", got[0].header.Get("Authorization"))
	}
}

func FuzzIsWebSocketUpgrade(f *testing.F) {
	for _, s := range [][2]string{{"Upgrade", "websocket"}, {"keep-alive, Upgrade", "WebSocket"}, {"upgrade", "h2c, websocket"}, {",,", ""}, {"Upgrade", "websocketx"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, conn, upgrade string) {
		r := &http.Request{Method: "GET", ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{"Connection": {conn}, "Upgrade": {upgrade}}}
		got := isWebSocketUpgrade(r)
		want := false
		for c := range strings.SplitSeq(conn, ",") {
			if strings.EqualFold(strings.TrimSpace(c), "upgrade") {
				for u := range strings.SplitSeq(upgrade, ",") {
					want = want || strings.EqualFold(strings.TrimSpace(u), "websocket")
				}
			}
		}
		if got != want {
			t.Fatalf("isWebSocketUpgrade(Connection %q, Upgrade %q) = %v", conn, upgrade, got)
		}
	})
}
