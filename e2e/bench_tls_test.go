//go:build linux

package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/signet-proxy/signet/proxy/tlsintercept"
)

// BenchmarkInterceptedHTTPS: keep-alive HTTPS GETs of 1 KiB through
// signet's TLS interception (CONNECT, signet's leaf certificate, signing,
// TLS again to the upstream) versus straight TLS to the same loopback
// upstream. The ratio of ns/op is the interception overhead.
func BenchmarkInterceptedHTTPS(b *testing.B) {
	const host = "api.bench.test"
	payload := bytes.Repeat([]byte("0123456789abcdef"), 64)

	// The upstream's certificate comes from a CA of the test's own.
	upCA, err := tlsintercept.Open(context.Background(), tlsintercept.Options{
		StateDir: filepath.Join(b.TempDir(), "upstream-ca"), Allow: func(string) bool { return true },
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = upCA.Close() })
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(payload)))
		_, _ = w.Write(payload)
	}))
	up.TLS = upCA.ServerConfigFor(host)
	up.StartTLS()
	b.Cleanup(up.Close)
	upAddr := strings.TrimPrefix(up.URL, "https://")
	caFile := filepath.Join(b.TempDir(), "upstream-ca.pem")
	if err := os.WriteFile(caFile, upCA.CACertPEM(), 0o644); err != nil {
		b.Fatal(err)
	}

	state := filepath.Join(b.TempDir(), "state")
	s := startSignet(b, fmt.Sprintf(`listen: 127.0.0.1:0
state_dir: %q
log: {level: info, format: json}
sources:
  test: {method: static, static: {access_key_id: AKIDEXAMPLE, secret_access_key: secret}}
routes:
  - {hosts: [%q], source: test, service: execute-api, region: us-east-1}
upstream:
  ca_file: %q
  connect_to: {"%s:443": %q}
`, state, host, caFile, host, upAddr), 0)
	signetCA, err := os.ReadFile(filepath.Join(state, "ca.pem"))
	if err != nil {
		b.Fatal(err)
	}

	client := func(roots []byte, viaProxy bool) *http.Client {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(roots)
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 64}
		if viaProxy {
			u, _ := url.Parse(s.ProxyURL())
			tr.Proxy = http.ProxyURL(u)
		} else {
			var d net.Dialer
			tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
				return d.DialContext(ctx, network, upAddr)
			}
		}
		b.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr}
	}
	run := func(b *testing.B, c *http.Client) {
		newReq := func() (*http.Request, error) { return http.NewRequest("GET", "https://"+host+"/item", nil) }
		benchGets(b, c, newReq, payload, wrkConnsPerCore)
	}
	b.Run("direct-tls", func(b *testing.B) { run(b, client(upCA.CACertPEM(), false)) })
	b.Run("signet-intercepted", func(b *testing.B) { run(b, client(signetCA, true)) })
}
