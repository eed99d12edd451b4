//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// httpsConfig signs s3.us-east-1.amazonaws.com and its buckets over TLS
// (upstream_scheme https, the default), dials versitygw for them, and
// trusts versitygw's test CA through upstream.ca_file.
func httpsConfig(v *versity, caFile, stateDir, extra string) string {
	return fmt.Sprintf(`listen: 127.0.0.1:0
state_dir: %[1]q
log: {level: debug, format: json}
sources:
  test: {method: static, static: {access_key_id: %[2]s, secret_access_key: %[3]q}}
routes:
  - hosts: ["%[4]s", "*.%[4]s"]
    source: test
upstream:
  ca_file: %[5]q
  connect_to:
    "%[4]s:443": "%[6]s"
    "*.%[4]s:443": "%[6]s"
%[7]s`, stateDir, testAccessKey, testSecretKey, s3Host, caFile, v.Addr, extra)
}

// httpsSetup is one versitygw over TLS and one signet in front of it, with
// the config in a file for the CLI commands.
type httpsSetup struct {
	v       *versity
	s       *signetProc
	cfgFile string
	state   string
	signet  string // the binary
	home    string
}

func newHTTPSSetup(t *testing.T, extra string) *httpsSetup {
	t.Helper()
	bin := needSignet(t)
	ca := newTestCA(t)
	dir := t.TempDir()
	caFile := writeTestFile(t, filepath.Join(dir, "upstream-ca.pem"), ca.CertPEM)
	v := startVersityTLS(t, ca)
	state := filepath.Join(dir, "state")
	cfg := httpsConfig(v, caFile, state, extra)
	s := startSignet(t, cfg, 0)
	home := filepath.Join(dir, "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	return &httpsSetup{v: v, s: s, cfgFile: writeTestFile(t, filepath.Join(dir, "signet.yaml"), []byte(cfg)),
		state: state, signet: bin, home: home}
}

// env runs `signet env` for the running signet (the config says port 0, so
// --listen gives the bound address) and returns its variables.
func (h *httpsSetup) env(t *testing.T) map[string]string {
	t.Helper()
	r := runBinary(t, baseEnv(h.home), h.signet, "env", "-c", h.cfgFile, "--listen", h.s.ProxyAddr)
	if r.Code != 0 {
		t.Fatalf("signet env: exit %d\n%s", r.Code, r.Stderr)
	}
	return parseShExports(t, r.Stdout)
}

// caPool is signet's CA as `signet ca export` prints it.
func (h *httpsSetup) caPool(t *testing.T) *x509.CertPool {
	t.Helper()
	r := runBinary(t, baseEnv(h.home), h.signet, "ca", "export", "-c", h.cfgFile)
	if r.Code != 0 {
		t.Fatalf("signet ca export: exit %d\n%s", r.Code, r.Stderr)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM([]byte(r.Stdout)) {
		t.Fatalf("signet ca export printed no PEM certificate: %q", r.Stdout)
	}
	return p
}

// TestHTTPSProxyFlow: curl, python urllib and a Go program, each given only
// what `signet env` prints (plus PATH and HOME), run the whole S3 flow over
// https through HTTPS_PROXY; signet intercepts, signs, and versitygw over
// TLS verifies every request. The Go program speaks HTTP/2 to signet.
func TestHTTPSProxyFlow(t *testing.T) {
	h := newHTTPSSetup(t, "")
	vars := h.env(t)
	wantVars := map[string]string{
		"HTTPS_PROXY": h.s.ProxyURL(), "https_proxy": h.s.ProxyURL(),
		"HTTP_PROXY": h.s.ProxyURL(), "http_proxy": h.s.ProxyURL(),
		"NO_PROXY": "localhost,127.0.0.1,::1", "no_proxy": "localhost,127.0.0.1,::1",
		"NODE_EXTRA_CA_CERTS": filepath.Join(h.state, "ca.pem"),
	}
	for _, k := range []string{"SSL_CERT_FILE", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "AWS_CA_BUNDLE"} {
		wantVars[k] = filepath.Join(h.state, "ca-bundle.pem")
	}
	if len(vars) != len(wantVars) {
		t.Errorf("signet env set %d variables, want %d: %q", len(vars), len(wantVars), vars)
	}
	for k, v := range wantVars {
		if vars[k] != v {
			t.Errorf("signet env: %s=%q, want %q", k, vars[k], v)
		}
	}
	// ca path agrees with what env points Node at.
	if r := runBinary(t, baseEnv(h.home), h.signet, "ca", "path", "-c", h.cfgFile); r.Code != 0 || r.Stdout != vars["NODE_EXTRA_CA_CERTS"]+"\n" {
		t.Errorf("signet ca path: exit %d, %q; env said %q", r.Code, r.Stdout, vars["NODE_EXTRA_CA_CERTS"])
	}
	env := envList(h.home, vars)
	script, err := filepath.Abs(filepath.Join("testdata", "urlclient.py"))
	if err != nil {
		t.Fatal(err)
	}
	goBin := buildGoClient(t, t.TempDir())
	base := "https://" + s3Host

	var goClients []*lineClient
	mkGo := func(t *testing.T) client {
		c := newLineClient(t, "go", env, h.s.ProxyURL(), goBin)
		goClients = append(goClients, c)
		return c
	}
	flows := []struct {
		name string
		mk   func(t *testing.T) client
	}{
		{"curl", func(t *testing.T) client { return newEnvCurl(t, env) }},
		{"python", func(t *testing.T) client {
			return newLineClient(t, "python", env, h.s.ProxyURL(), needCommand(t, "python3"), script)
		}},
		{"go", mkGo},
	}
	t.Run("flow", func(t *testing.T) {
		i := 0
		for _, f := range flows {
			for _, a := range []addressing{pathStyle(base), virtualHostedHTTPS()} {
				i++
				bucket := fmt.Sprintf("https-%02d-%s", i, f.name)
				c := f.mk(t)
				t.Run(f.name+"/"+a.name, func(t *testing.T) {
					t.Parallel()
					runS3Flow(t, c, a, bucket, keyCases)
				})
			}
		}
	})

	// HTTP/2 inside the tunnel: every answer the Go program got.
	for _, c := range goClients {
		counts := c.protoCounts()
		if len(counts) != 1 || counts["HTTP/2.0"] == 0 {
			t.Errorf("the Go client's answers came in %v, want all HTTP/2.0", counts)
		}
	}
	t.Run("curl-http2", func(t *testing.T) {
		curl := needCommand(t, "curl")
		r := runBinary(t, env, curl, "-sS", "--http2", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", base+"/")
		if r.Code != 0 || r.Stdout != "2 200" {
			t.Errorf("curl --http2 through the tunnel: exit %d, printed %q, want \"2 200\"\n%s", r.Code, r.Stdout, r.Stderr)
		}
	})

	if logs := h.s.Logs.String(); strings.Contains(logs, testSecretKey) {
		t.Errorf("signet's debug log contains the secret access key")
	}
}

// connectThrough sends CONNECT target to the proxy at proxyAddr and returns
// the connection and the proxy's answer (its body read, for errors).
func connectThrough(t *testing.T, proxyAddr, target string) (net.Conn, *http.Response, []byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", proxyAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatalf("CONNECT %s: %v", target, err)
	}
	var body []byte
	if resp.StatusCode != http.StatusOK {
		body, _ = io.ReadAll(resp.Body)
	}
	if br.Buffered() > 0 {
		t.Fatalf("CONNECT %s: %d unexpected bytes after the answer", target, br.Buffered())
	}
	return conn, resp, body
}

// TestHTTPSTunnelOtherHosts: a host no route signs is tunnelled untouched
// (the client sees that server's own certificate), or refused with
// unmatched: deny; and a request inside an intercepted tunnel must name
// the tunnel's host.
func TestHTTPSTunnelOtherHosts(t *testing.T) {
	var hits atomic.Int32
	other := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.WriteString(w, "not AWS")
	}))
	defer other.Close()
	otherPool := x509.NewCertPool()
	otherPool.AddCert(other.Certificate())
	get := func(t *testing.T, proxy string) (*http.Response, []byte, error) {
		pu, err := url.Parse(proxy)
		if err != nil {
			t.Fatal(err)
		}
		// Only the other server's certificate is trusted: had signet
		// intercepted, its leaf would fail verification.
		c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			Proxy:           http.ProxyURL(pu),
			TLSClientConfig: &tls.Config{RootCAs: otherPool},
		}}
		defer c.CloseIdleConnections()
		resp, err := c.Get(other.URL + "/hello")
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, b, err
	}

	h := newHTTPSSetup(t, "")
	t.Run("tunnelled untouched", func(t *testing.T) {
		before := hits.Load()
		resp, body, err := get(t, h.s.ProxyURL())
		if err != nil {
			t.Fatalf("GET %s through signet: %v", other.URL, err)
		}
		if resp.StatusCode != 200 || string(body) != "not AWS" {
			t.Errorf("got %d %q, want 200 \"not AWS\"", resp.StatusCode, body)
		}
		if resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 || !resp.TLS.PeerCertificates[0].Equal(other.Certificate()) {
			t.Errorf("the client did not see the server's own certificate")
		}
		if hits.Load() != before+1 {
			t.Errorf("the server saw %d requests, want 1", hits.Load()-before)
		}
	})

	t.Run("host mismatch in a tunnel", func(t *testing.T) {
		conn, resp, body := connectThrough(t, h.s.ProxyAddr, s3Host+":443")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("CONNECT %s: %d %s", s3Host, resp.StatusCode, body)
		}
		tc := tls.Client(conn, &tls.Config{RootCAs: h.caPool(t), ServerName: s3Host, NextProtos: []string{"http/1.1"}})
		if err := tc.Handshake(); err != nil {
			t.Fatalf("TLS in the tunnel, trusting signet's CA: %v", err)
		}
		fmt.Fprintf(tc, "GET /some-bucket/key HTTP/1.1\r\nHost: other-bucket.%s\r\nConnection: close\r\n\r\n", s3Host)
		r, err := http.ReadResponse(bufio.NewReader(tc), nil)
		if err != nil {
			t.Fatalf("reading the answer in the tunnel: %v", err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		e := checkSignetError(t, r.StatusCode, b, r.Header, http.StatusMisdirectedRequest)
		if e.Error != "host-mismatch" {
			t.Errorf("X-Signet-Error %q, want host-mismatch", e.Error)
		}
	})

	t.Run("unmatched deny", func(t *testing.T) {
		d := newHTTPSSetup(t, "unmatched: deny\n")
		before := hits.Load()
		_, resp, body := connectThrough(t, d.s.ProxyAddr, other.Listener.Addr().String())
		e := checkSignetError(t, resp.StatusCode, body, resp.Header, http.StatusForbidden)
		if e.Error != "unmatched-host-denied" {
			t.Errorf("X-Signet-Error %q, want unmatched-host-denied", e.Error)
		}
		if _, _, err := get(t, d.s.ProxyURL()); err == nil {
			t.Errorf("a Go client reached %s through a denying signet", other.URL)
		}
		if hits.Load() != before {
			t.Errorf("the server was reached %d times through a denying signet", hits.Load()-before)
		}
	})
}

// TestNonLoopbackListenNeedsAuth: signet refuses to serve on an address
// others can reach unless proxy_auth.file is set. It is asked with
// `check` first, which binds nothing, so that a signet without the check
// never listens on 0.0.0.0 in this test.
func TestNonLoopbackListenNeedsAuth(t *testing.T) {
	bin := needSignet(t)
	dir := t.TempDir()
	cfg := writeTestFile(t, filepath.Join(dir, "signet.yaml"), []byte(fmt.Sprintf(`listen: 0.0.0.0:0
state_dir: %q
sources:
  test: {method: static, static: {access_key_id: %s, secret_access_key: %q}}
routes:
  - hosts: ["*.amazonaws.com"]
    source: test
`, filepath.Join(dir, "state"), testAccessKey, testSecretKey)))
	env := baseEnv(dir, "AWS_EC2_METADATA_DISABLED=true")
	r := runBinary(t, env, bin, "check", "-c", cfg)
	if r.Code != 2 || !strings.Contains(r.Stderr, "proxy_auth.file") {
		t.Fatalf("signet check of listen 0.0.0.0:0 without proxy_auth: exit %d, stderr %q; want 2 naming proxy_auth.file (not running serve, which might bind 0.0.0.0)",
			r.Code, r.Stderr)
	}
	r = runBinary(t, env, bin, "serve", "-c", cfg)
	if r.Code != 2 || !strings.Contains(r.Stderr, "proxy_auth.file") {
		t.Errorf("signet serve: exit %d, stderr %q; want 2 naming proxy_auth.file", r.Code, r.Stderr)
	}
	if strings.Contains(r.Stderr, `"listening"`) || strings.Contains(r.Stderr, "msg=listening") {
		t.Errorf("signet serve listened before refusing: %s", r.Stderr)
	}
}

// TestExecCurl: `signet exec -- curl https://...` needs nothing else set
// up: signet starts for curl, curl finds the proxy and the CA in its
// environment, and curl's exit status is exec's.
func TestExecCurl(t *testing.T) {
	h := newHTTPSSetup(t, "")
	curl := needCommand(t, "curl")
	// Create the object through the running signet, as an app would.
	pu, err := url.Parse(h.s.ProxyURL())
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		Proxy: http.ProxyURL(pu), TLSClientConfig: &tls.Config{RootCAs: h.caPool(t)}}}
	defer c.CloseIdleConnections()
	object := []byte("hello from signet exec\n")
	for _, put := range []struct {
		url  string
		body []byte
	}{
		{"https://" + s3Host + "/exec-bucket", nil},
		{"https://" + s3Host + "/exec-bucket/hello.txt", object},
	} {
		req, err := http.NewRequest(http.MethodPut, put.url, bytes.NewReader(put.body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("PUT %s: %v", put.url, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("PUT %s: %d %s", put.url, resp.StatusCode, b)
		}
	}

	// Only PATH and HOME: no proxy, no CA, no credentials.
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + h.home, "AWS_EC2_METADATA_DISABLED=true"}
	for _, tc := range []struct {
		name    string
		args    []string
		want    int
		wantOut string
	}{
		{"get the object", []string{"-sS", "https://" + s3Host + "/exec-bucket/hello.txt"}, 0, string(object)},
		// curl -f exits 22 on a 404: exec hands curl's status on.
		{"missing object", []string{"-sS", "-f", "-o", "/dev/null", "https://" + s3Host + "/exec-bucket/absent"}, 22, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runBinary(t, env, h.signet, append([]string{"exec", "-c", h.cfgFile, "--", curl}, tc.args...)...)
			if r.Code != tc.want || r.Stdout != tc.wantOut {
				t.Errorf("signet exec -- curl %q: exit %d, stdout %q; want %d, %q\nstderr: %s",
					tc.args, r.Code, r.Stdout, tc.want, tc.wantOut, r.Stderr)
			}
		})
	}
}
