//go:build linux

package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// proxy_tls mode local: the proxy listener serves a certificate from
// signet's own CA, so curl reaches signet over https:// with only that CA
// trusted, for plain http:// targets and for intercepted https:// ones
// (TLS inside TLS).
func TestProxyTLSLocal(t *testing.T) {
	curl := needCommand(t, "curl")
	up := &signedUpstream{}
	upSrv := httptest.NewServer(up)
	defer upSrv.Close()
	upTLS := httptest.NewUnstartedServer(up)
	upCA := newTestCA(t)
	certPEM, keyPEM := upCA.leaf(t, "api.example.test")
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	upTLS.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	upTLS.StartTLS()
	defer upTLS.Close()

	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	upCAFile := writeTestFile(t, filepath.Join(dir, "upstream-ca.pem"), upCA.CertPEM)
	s := startSignet(t, fmt.Sprintf(`listen: 127.0.0.1:0
state_dir: %q
log: {level: debug, format: json}
sources:
  test: {method: static, static: {access_key_id: %s, secret_access_key: %q}}
routes:
  - {hosts: ["*.example.test"], source: test, service: execute-api, region: eu-west-3}
upstream:
  ca_file: %q
  connect_to:
    "api.example.test:80": %q
    "api.example.test:443": %q
proxy_tls: {mode: local}
`, state, testAccessKey, testSecretKey, upCAFile, strings.TrimPrefix(upSrv.URL, "http://"), strings.TrimPrefix(upTLS.URL, "https://")), 0)

	signetCA := filepath.Join(state, "ca.pem")
	leaf, _, _ := proxyLeaf(t, s.ProxyAddr, poolFromFile(t, signetCA))
	if !strings.HasPrefix(leaf.Issuer.CommonName, "signet local CA") {
		t.Errorf("proxy listener certificate issued by %q, want signet's local CA", leaf.Issuer)
	}
	port := portOf(t, s.ProxyAddr)
	for _, target := range []string{"http://api.example.test/plain", "https://api.example.test/intercepted"} {
		out, err := exec.Command(curl, "-sS", "-f", "--proxy", "https://localhost:"+port, "--proxy-cacert", signetCA,
			"--cacert", signetCA, target).CombinedOutput()
		if err != nil || string(out) != "acme upstream says hi" {
			t.Fatalf("curl %s through https://localhost:%s: %v\n%s", target, port, err, out)
		}
	}
	reqs := up.requests()
	if len(reqs) != 2 {
		t.Fatalf("upstream got %d requests, want 2", len(reqs))
	}
	for _, r := range reqs {
		if !strings.Contains(r.Header.Get("Authorization"), "/eu-west-3/execute-api/aws4_request") {
			t.Errorf("%s reached the upstream with Authorization %q", r.URL.Path, r.Header.Get("Authorization"))
		}
	}
	// A client that does not trust signet's CA is refused by its own TLS.
	if out, err := exec.Command(curl, "-sS", "--proxy", "https://localhost:"+port, "http://api.example.test/x").CombinedOutput(); err == nil {
		t.Fatalf("curl trusted the proxy without signet's CA: %s", out)
	}
}

func poolFromFile(t *testing.T, path string) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		t.Fatalf("%s holds no certificate", path)
	}
	return p
}
