//go:build linux

package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/gorilla/websocket"
)

const (
	wsPlainHost = "plainws.execute-api.us-east-1.amazonaws.com"
	wsTLSHost   = "tlsws.execute-api.us-east-1.amazonaws.com"
	emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)

// tlsConfig is a server config with a leaf from ca for names.
func (ca *testCA) tlsConfig(t testing.TB, names ...string) *tls.Config {
	t.Helper()
	certPEM, keyPEM := ca.leaf(t, names...)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}}
}

// signetCAPool is signet's local CA, from its state directory.
func signetCAPool(t testing.TB, stateDir string) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(stateDir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		t.Fatalf("%s/ca.pem holds no certificate", stateDir)
	}
	return p
}

// checkSigV4 verifies a header-signed request the way AWS does, with the
// AWS SDK's signer and the test's keys: it signs a copy of what arrived,
// restricted to the headers the request says it signed, at the request's
// own X-Amz-Date, and compares. It also requires the date to be fresh.
func checkSigV4(r *http.Request, scheme string) error {
	auth := r.Header.Get("Authorization")
	rest, ok := strings.CutPrefix(auth, "AWS4-HMAC-SHA256 Credential=")
	if !ok {
		return fmt.Errorf("no SigV4 Authorization header: %q", auth)
	}
	cred, rest, _ := strings.Cut(rest, ", SignedHeaders=")
	signed, _, _ := strings.Cut(rest, ", Signature=")
	scope := strings.Split(cred, "/")
	if len(scope) != 5 || scope[0] != testAccessKey || scope[4] != "aws4_request" {
		return fmt.Errorf("bad credential %q", cred)
	}
	at, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return fmt.Errorf("X-Amz-Date: %v", err)
	}
	if d := time.Since(at); d < -time.Minute || d > 5*time.Minute {
		return fmt.Errorf("X-Amz-Date %s is not fresh", at)
	}
	cp, err := http.NewRequest(r.Method, scheme+"://"+r.Host+r.RequestURI, nil)
	if err != nil {
		return err
	}
	for _, h := range strings.Split(signed, ";") {
		switch h {
		case "host":
			continue
		case "content-length":
			// The SDK signs the length it is given, not a header.
			cp.ContentLength = r.ContentLength
			continue
		}
		vv := r.Header.Values(h)
		if len(vv) == 0 {
			return fmt.Errorf("signed header %s did not arrive", h)
		}
		cp.Header[http.CanonicalHeaderKey(h)] = vv
	}
	hash := r.Header.Get("X-Amz-Content-Sha256")
	if hash == "" {
		hash = emptySHA256
	}
	creds := aws.Credentials{AccessKeyID: testAccessKey, SecretAccessKey: testSecretKey, SessionToken: r.Header.Get("X-Amz-Security-Token")}
	cp.Header.Del("X-Amz-Security-Token") // the SDK adds it from creds
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, cp, hash, scope[3], scope[2], at); err != nil {
		return err
	}
	if got := cp.Header.Get("Authorization"); got != auth {
		return fmt.Errorf("signature does not verify:\n got %s\nwant %s", auth, got)
	}
	return nil
}

// wsEchoServer is the WebSocket upstream: it accepts an upgrade only if its
// SigV4 signature verifies and Connection/Upgrade were left out of it, then
// echoes every message.
type wsEchoServer struct {
	scheme string
	mu     sync.Mutex
	errs   []error
	seen   []string // SignedHeaders of each accepted upgrade
}

func (e *wsEchoServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	err := checkSigV4(r, e.scheme)
	_, sh, _ := strings.Cut(r.Header.Get("Authorization"), "SignedHeaders=")
	sh, _, _ = strings.Cut(sh, ",")
	if err == nil {
		for _, hop := range []string{"connection", "upgrade"} {
			if strings.Contains(";"+sh+";", ";"+hop+";") {
				err = fmt.Errorf("hop-by-hop header %s was signed: %s", hop, sh)
			}
		}
		if !strings.Contains(";"+sh+";", ";sec-websocket-key;") {
			err = fmt.Errorf("sec-websocket-key not signed: %s", sh)
		}
	}
	e.mu.Lock()
	if err != nil {
		e.errs = append(e.errs, err)
	} else {
		e.seen = append(e.seen, sh)
	}
	e.mu.Unlock()
	if err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	c, err := up.Upgrade(w, r, http.Header{"X-Upstream": {"echo-" + e.scheme}})
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

func (e *wsEchoServer) result() (accepted int, errs []error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.seen), append([]error(nil), e.errs...)
}

// absoluteFormConn makes gorilla's client talk to signet's proxy listener
// as an HTTP_PROXY client sends plain http:// requests, with the whole URL
// on the request line. (gorilla itself always sends CONNECT to a proxy.)
type absoluteFormConn struct {
	net.Conn
	origin string
	buf    []byte
	done   bool
}

func (c *absoluteFormConn) Write(p []byte) (int, error) {
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

// absoluteFormDialer sends gorilla's upgrade for ws://HOST/... to the proxy
// at proxyAddr as "GET http://HOST/... HTTP/1.1".
func absoluteFormDialer(proxyAddr string) *websocket.Dialer {
	return &websocket.Dialer{HandshakeTimeout: 30 * time.Second, NetDialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", proxyAddr)
		if err != nil {
			return nil, err
		}
		origin := "http://" + addr
		if h, p, _ := net.SplitHostPort(addr); p == "80" {
			origin = "http://" + h
		}
		return &absoluteFormConn{Conn: c, origin: origin}, nil
	}}
}

// TestWebSocketEcho runs a WebSocket echo session through each of signet's
// paths: the forward proxy (absolute-form ws://), a reverse listener
// (to a TLS upstream that also offers h2), and an intercepted HTTPS_PROXY
// tunnel (wss://). The upstreams accept the upgrade only with a SigV4
// signature that the AWS SDK's signer reproduces.
func TestWebSocketEcho(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	plainEcho := &wsEchoServer{scheme: "http"}
	plain := httptest.NewServer(plainEcho)
	t.Cleanup(plain.Close)
	tlsEcho := &wsEchoServer{scheme: "https"}
	tlsUp := httptest.NewUnstartedServer(tlsEcho)
	tlsUp.TLS = ca.tlsConfig(t, wsTLSHost)
	tlsUp.EnableHTTP2 = true // signet must still ask for HTTP/1.1 to upgrade
	tlsUp.StartTLS()
	t.Cleanup(tlsUp.Close)

	state := filepath.Join(dir, "state")
	caFile := writeTestFile(t, filepath.Join(dir, "upstream-ca.pem"), ca.CertPEM)
	s := startSignet(t, fmt.Sprintf(`listen: 127.0.0.1:0
state_dir: %[1]q
log: {level: debug, format: json}
sources:
  test: {method: static, static: {access_key_id: %[2]s, secret_access_key: %[3]q}}
routes:
  - {hosts: [%[4]s], source: test, upstream_scheme: http}
  - {hosts: [%[5]s], source: test}
upstream:
  ca_file: %[6]q
  connect_to:
    "%[4]s:80": %[7]q
    "%[5]s:443": %[8]q
reverse:
  - {listen: 127.0.0.1:0, upstream: "https://%[5]s", source: test}
`, state, testAccessKey, testSecretKey, wsPlainHost, wsTLSHost, caFile,
		strings.TrimPrefix(plain.URL, "http://"), strings.TrimPrefix(tlsUp.URL, "https://")), 1)
	proxyURL, _ := url.Parse(s.ProxyURL())

	cases := []struct {
		name   string
		dialer *websocket.Dialer
		url    string
		echo   *wsEchoServer
	}{
		{"forward", absoluteFormDialer(s.ProxyAddr), "ws://" + wsPlainHost + "/prod?stage=1", plainEcho},
		{"reverse", &websocket.Dialer{HandshakeTimeout: 30 * time.Second}, "ws://" + s.Reverse[0] + "/prod?stage=1", tlsEcho},
		{"intercepted", &websocket.Dialer{HandshakeTimeout: 30 * time.Second, Proxy: http.ProxyURL(proxyURL),
			TLSClientConfig: &tls.Config{RootCAs: signetCAPool(t, state)}}, "wss://" + wsTLSHost + "/prod?stage=1", tlsEcho},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := tc.echo.result()
			c, resp, err := tc.dialer.Dial(tc.url, http.Header{"Sec-WebSocket-Protocol": {"echo"}, "X-Amz-Meta-Client": {tc.name}})
			if err != nil {
				_, errs := tc.echo.result()
				t.Fatalf("dial %s: %v (response %v); upstream: %v", tc.url, err, resp, errs)
			}
			defer c.Close()
			if resp.Header.Get("X-Upstream") != "echo-"+tc.echo.scheme {
				t.Errorf("101 came without the upstream's headers: %v", resp.Header)
			}
			msgs := []struct {
				kind int
				data []byte
			}{
				{websocket.TextMessage, []byte("hello through signet")},
				{websocket.BinaryMessage, bytes.Repeat([]byte{0, 1, 2, 0xff}, 64<<10)},
				{websocket.TextMessage, []byte("bye")},
			}
			for _, m := range msgs {
				if err := c.WriteMessage(m.kind, m.data); err != nil {
					t.Fatal(err)
				}
				kind, got, err := c.ReadMessage()
				if err != nil {
					t.Fatal(err)
				}
				if kind != m.kind || !bytes.Equal(got, m.data) {
					t.Fatalf("echo: kind %d, %d bytes; sent kind %d, %d bytes", kind, len(got), m.kind, len(m.data))
				}
			}
			if err := c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(10*time.Second)); err != nil {
				t.Fatal(err)
			}
			var ce *websocket.CloseError
			if _, _, err := c.ReadMessage(); !errors.As(err, &ce) || ce.Code != websocket.CloseNormalClosure {
				t.Fatalf("close handshake: %v", err)
			}
			after, errs := tc.echo.result()
			if after != before+1 || len(errs) != 0 {
				t.Fatalf("upstream accepted %d upgrades (want 1), errors %v", after-before, errs)
			}
		})
	}
}
