//go:build linux

package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// pebbleVersion is the Pebble that scripts/test.sh installs; its module
// holds the test CA that Pebble's own TLS uses.
const pebbleVersion = "v2.10.3"

func needPebble(tb testing.TB) string {
	tb.Helper()
	return needPeer(tb, "SIGNETTEST_PEBBLE", "pebble")
}

// pebbleTestDir is Pebble's test/ directory: SIGNETTEST_PEBBLE_TESTDIR, or
// the module cache's copy of pebbleVersion.
func pebbleTestDir(tb testing.TB) string {
	tb.Helper()
	dir := os.Getenv("SIGNETTEST_PEBBLE_TESTDIR")
	if dir == "" {
		out, err := exec.Command("go", "env", "GOMODCACHE").Output()
		if err != nil {
			tb.Fatalf("go env GOMODCACHE: %v", err)
		}
		dir = filepath.Join(strings.TrimSpace(string(out)), "github.com", "letsencrypt", "pebble",
			"v2@"+pebbleVersion, "test")
	}
	if _, err := os.Stat(filepath.Join(dir, "certs", "pebble.minica.pem")); err != nil {
		missing(tb, "Pebble's test CA not found in %s (%v): set SIGNETTEST_PEBBLE_TESTDIR or run ./scripts/test.sh", dir, err)
	}
	return dir
}

type pebble struct {
	DirURL      string // ACME directory, https://127.0.0.1:PORT/dir
	MgmtAddr    string
	MinicaPEM   string // file: the CA of Pebble's own TLS (ACME and management)
	RootPEM     string // file: the root that issued certificates chain to
	Root        *x509.Certificate
	Interm      *x509.Certificate
	mgmtClient  *http.Client
	orderCount  func() int
	outputLines func() string
}

// startPebble runs Pebble on free loopback ports with challenge validation
// off (PEBBLE_VA_ALWAYS_VALID), no random sleeps, no rejected nonces and
// no Retry-After delays, and fetches its issuing root and intermediate
// from the management port. It is stopped at cleanup.
func startPebble(tb testing.TB) *pebble {
	tb.Helper()
	return startPebbleOpts(tb, 0)
}

// startPebbleOpts with tlsPort > 0 validates for real: Pebble checks
// TLS-ALPN-01 challenges on that port of the names' addresses.
func startPebbleOpts(tb testing.TB, tlsPort int) *pebble {
	tb.Helper()
	bin := needPebble(tb)
	testDir := pebbleTestDir(tb)
	dir := tb.TempDir()
	minica := filepath.Join(testDir, "certs", "pebble.minica.pem")
	minicaPEM, err := os.ReadFile(minica)
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(minicaPEM) {
		tb.Fatalf("%s holds no certificate", minica)
	}
	mgmt := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		Proxy: nil, TLSClientConfig: &tls.Config{RootCAs: pool}}}
	tb.Cleanup(mgmt.CloseIdleConnections)

	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		listen := "127.0.0.1:" + strconv.Itoa(freePort(tb))
		mgmtAddr := "127.0.0.1:" + strconv.Itoa(freePort(tb))
		challengePort := tlsPort
		if challengePort == 0 {
			challengePort = freePort(tb) // never dialled: validation is off
		}
		cfg := map[string]any{"pebble": map[string]any{
			"listenAddress":           listen,
			"managementListenAddress": mgmtAddr,
			"certificate":             filepath.Join(testDir, "certs", "localhost", "cert.pem"),
			"privateKey":              filepath.Join(testDir, "certs", "localhost", "key.pem"),
			// HTTP-01 is never validated: signet does not offer it.
			"httpPort":                       freePort(tb),
			"tlsPort":                        challengePort,
			"ocspResponderURL":               "",
			"externalAccountBindingRequired": false,
			"retryAfter":                     map[string]int{"authz": 0, "order": 0},
			"keyAlgorithm":                   "ecdsa",
			"profiles": map[string]any{
				"default": map[string]any{"description": "signet e2e", "validityPeriod": 7776000},
			},
		}}
		env := []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0"}
		if tlsPort == 0 {
			env = append(env, "PEBBLE_VA_ALWAYS_VALID=1")
		}
		b, err := json.Marshal(cfg)
		if err != nil {
			tb.Fatal(err)
		}
		cfgPath := filepath.Join(dir, "pebble-config.json")
		if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
			tb.Fatal(err)
		}
		cmd := exec.Command(bin, "-config", cfgPath)
		cmd.Dir = dir
		cmd.Env = baseEnv(dir, env...)
		out := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			tb.Fatalf("start pebble: %v", err)
		}
		exited := make(chan struct{})
		var waitErr error
		go func() { waitErr = cmd.Wait(); close(exited) }()
		stop := func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
		}
		root, err := waitPebbleCert(mgmt, "https://"+mgmtAddr+"/roots/0", exited, 10*time.Second)
		if err != nil {
			stop()
			lastErr = fmt.Errorf("%v (%v)\npebble output:\n%s", err, waitErr, out.String())
			continue
		}
		interm, err := waitPebbleCert(mgmt, "https://"+mgmtAddr+"/intermediates/0", exited, 5*time.Second)
		if err != nil {
			stop()
			tb.Fatalf("pebble intermediate: %v\npebble output:\n%s", err, out.String())
		}
		tb.Cleanup(func() {
			stop()
			if tb.Failed() {
				tb.Logf("pebble output:\n%s", out.String())
			}
		})
		rootPath := filepath.Join(dir, "pebble-root.pem")
		if err := os.WriteFile(rootPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw}), 0o600); err != nil {
			tb.Fatal(err)
		}
		return &pebble{
			DirURL:     "https://" + listen + "/dir",
			MgmtAddr:   mgmtAddr,
			MinicaPEM:  minica,
			RootPEM:    rootPath,
			Root:       root,
			Interm:     interm,
			mgmtClient: mgmt,
			orderCount: func() int {
				return strings.Count(out.String(), "Issued certificate serial")
			},
			outputLines: out.String,
		}
	}
	tb.Fatalf("pebble did not start in 3 attempts: %v", lastErr)
	return nil
}

// waitPebbleCert polls url (a PEM certificate on Pebble's management port)
// until it answers, Pebble exits, or limit passes.
func waitPebbleCert(c *http.Client, url string, exited <-chan struct{}, limit time.Duration) (*x509.Certificate, error) {
	deadline := time.Now().Add(limit)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return nil, errors.New("pebble exited before answering")
		default:
		}
		resp, err := c.Get(url)
		if err == nil {
			body, rerr := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			if rerr == nil && resp.StatusCode == 200 {
				block, _ := pem.Decode(body)
				if block == nil {
					return nil, fmt.Errorf("%s: no PEM in %q", url, body)
				}
				return x509.ParseCertificate(block.Bytes)
			}
			lastErr = fmt.Errorf("%s: status %d, %v", url, resp.StatusCode, rerr)
		} else {
			lastErr = err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil, fmt.Errorf("%s did not answer within %v: %v", url, limit, lastErr)
}

// signedUpstream is a plain-HTTP upstream that records what reaches it.
type signedUpstream struct {
	mu   sync.Mutex
	reqs []*http.Request
}

func (u *signedUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	u.mu.Lock()
	u.reqs = append(u.reqs, r)
	u.mu.Unlock()
	io.WriteString(w, "acme upstream says hi")
}

func (u *signedUpstream) requests() []*http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]*http.Request(nil), u.reqs...)
}

func acmeSignetConfig(p *pebble, listen, stateDir, upstreamAddr string) string {
	return fmt.Sprintf(`listen: %[7]s
state_dir: %[1]q
log: {level: debug, format: json}
sources:
  test: {method: static, static: {access_key_id: %[2]s, secret_access_key: %[3]q}}
routes:
  - hosts: ["*.example.test"]
    source: test
    service: execute-api
    region: eu-west-3
    upstream_scheme: http
upstream:
  connect_to:
    "*.example.test:80": %[4]q
proxy_tls:
  mode: acme
  names: [localhost]
  acme:
    ca: %[5]q
    trusted_roots: %[6]q
`, stateDir, testAccessKey, testSecretKey, upstreamAddr, p.DirURL, p.MinicaPEM, listen)
}

// proxyLeaf handshakes with signet's proxy listener as a client of
// https://localhost would and returns the verified chain's leaf and the
// negotiated protocol.
func proxyLeaf(t *testing.T, addr string, roots *x509.CertPool) (*x509.Certificate, []*x509.Certificate, string) {
	t.Helper()
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: &tls.Config{
		ServerName: "localhost",
		RootCAs:    roots,
		NextProtos: []string{"h2", "http/1.1"},
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("TLS handshake with the proxy listener %s as localhost: %v", addr, err)
	}
	defer c.Close()
	st := c.(*tls.Conn).ConnectionState()
	return st.PeerCertificates[0], st.VerifiedChains[0], st.NegotiatedProtocol
}

func TestProxyTLSFromACME(t *testing.T) {
	curl := needCommand(t, "curl")
	p := startPebble(t)
	up := &signedUpstream{}
	upSrv := httptest.NewServer(up)
	defer upSrv.Close()
	upAddr := strings.TrimPrefix(upSrv.URL, "http://")

	stateDir := filepath.Join(t.TempDir(), "state")
	config := acmeSignetConfig(p, "127.0.0.1:0", stateDir, upAddr)
	start := time.Now()
	s := startSignet(t, config, 0)
	t.Logf("signet listening with an ACME certificate after %v", time.Since(start))
	if !strings.Contains(s.Logs.String(), `"msg":"ACME certificate ready"`) {
		t.Errorf("no 'ACME certificate ready' log line")
	}

	// The served certificate chains to Pebble's root through Pebble's
	// intermediate, and is not from signet's local CA.
	roots := x509.NewCertPool()
	roots.AddCert(p.Root)
	leaf, chain, proto := proxyLeaf(t, s.ProxyAddr, roots)
	if !bytes.Equal(leaf.RawIssuer, p.Interm.RawSubject) {
		t.Errorf("proxy certificate issuer %q, want Pebble's intermediate %q", leaf.Issuer, p.Interm.Subject)
	}
	if err := leaf.CheckSignatureFrom(p.Interm); err != nil {
		t.Errorf("proxy certificate is not signed by Pebble's intermediate: %v", err)
	}
	if len(chain) < 2 || !chain[len(chain)-1].Equal(p.Root) {
		t.Errorf("verified chain does not end at Pebble's root: %d certificates", len(chain))
	}
	if err := leaf.VerifyHostname("localhost"); err != nil {
		t.Error(err)
	}
	if proto != "http/1.1" {
		t.Errorf("negotiated %q on the proxy listener, want http/1.1", proto)
	}
	localCA, err := os.ReadFile(filepath.Join(stateDir, "ca.pem"))
	if err != nil {
		t.Fatalf("signet's local CA (still used for interception): %v", err)
	}
	block, _ := pem.Decode(localCA)
	if block == nil {
		t.Fatal("ca.pem holds no PEM")
	}
	local, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(leaf.RawIssuer, local.RawSubject) || leaf.CheckSignatureFrom(local) == nil {
		t.Errorf("proxy certificate comes from signet's local CA, not from Pebble")
	}

	// curl checks the proxy's certificate against Pebble's root, and the
	// request reaches the upstream signed.
	runCurl := func(cacert string) (string, string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, curl, "-sS", "--max-time", "20",
			"--proxy", "https://localhost:"+portOf(t, s.ProxyAddr), "--proxy-cacert", cacert,
			"http://api.example.test/x")
		cmd.Env = baseEnv(t.TempDir())
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		return out.String(), errb.String(), err
	}
	out, stderr, err := runCurl(p.RootPEM)
	if err != nil {
		t.Fatalf("curl through https://localhost proxy with Pebble's root: %v\n%s", err, stderr)
	}
	if out != "acme upstream says hi" {
		t.Errorf("curl printed %q", out)
	}
	reqs := up.requests()
	if len(reqs) != 1 {
		t.Fatalf("upstream saw %d requests, want 1", len(reqs))
	}
	auth := reqs[0].Header.Get("Authorization")
	wantCred := "AWS4-HMAC-SHA256 Credential=" + testAccessKey + "/"
	if !strings.HasPrefix(auth, wantCred) || !strings.Contains(auth, "/eu-west-3/execute-api/aws4_request") {
		t.Errorf("upstream Authorization %q, want a SigV4 signature by %s for eu-west-3/execute-api", auth, testAccessKey)
	}
	if reqs[0].URL.Path != "/x" || reqs[0].Host != "api.example.test" {
		t.Errorf("upstream saw %s %s", reqs[0].Host, reqs[0].URL.Path)
	}

	// Control: trusting only signet's local CA, curl must refuse the proxy.
	if _, stderr, err := runCurl(filepath.Join(stateDir, "ca.pem")); err == nil {
		t.Errorf("curl accepted the ACME certificate while trusting only signet's local CA")
	} else {
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 60 {
			t.Errorf("curl with the wrong CA: %v (want exit 60, certificate problem)\n%s", err, stderr)
		}
	}
	if n := len(up.requests()); n != 1 {
		t.Errorf("upstream saw %d requests after the refused one, want 1", n)
	}

	// Keys and account stay private under state_dir/acme.
	acmeDir := filepath.Join(stateDir, "acme")
	if st, err := os.Stat(acmeDir); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("state_dir/acme: %v, mode %v, want 0700", err, st.Mode())
	}
	var keys int
	err = filepath.WalkDir(acmeDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() && info.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %04o, want no group or other access", path, info.Mode().Perm())
		}
		if strings.HasSuffix(path, ".key") {
			keys++
			if info.Mode().Perm() != 0o600 {
				t.Errorf("key %s has mode %04o, want 0600", path, info.Mode().Perm())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if keys < 2 { // the account key and the certificate's key
		t.Errorf("found %d key files under %s, want the account's and the certificate's", keys, acmeDir)
	}

	// A second signet on the same state_dir serves the stored certificate
	// without ordering another one.
	orders := p.orderCount()
	if orders != 1 {
		t.Errorf("pebble logged %d issued certificates for one name, want 1", orders)
	}
	s2 := startSignet(t, config, 0)
	leaf2, _, _ := proxyLeaf(t, s2.ProxyAddr, roots)
	if !leaf2.Equal(leaf) {
		t.Errorf("restarted signet serves serial %s, want the stored %s", leaf2.SerialNumber, leaf.SerialNumber)
	}
	if got := p.orderCount(); got != orders {
		t.Errorf("pebble issued %d more certificates for a restart on the same state_dir", got-orders)
	}
}

// An ACME CA that cannot be reached stops signet at start, with an error
// that names it, rather than a proxy listener without a certificate.
func TestProxyTLSACMEUnreachableFailsStart(t *testing.T) {
	bin := needSignet(t)
	dir := t.TempDir()
	ca := "https://127.0.0.1:" + strconv.Itoa(freePort(t)) + "/dir"
	config := fmt.Sprintf(`listen: 127.0.0.1:0
state_dir: %q
log: {level: info, format: json}
sources:
  test: {method: static, static: {access_key_id: %s, secret_access_key: %q}}
routes:
  - hosts: ["*.example.test"]
    source: test
    service: execute-api
    region: eu-west-3
proxy_tls:
  mode: acme
  names: [localhost]
  acme: {ca: %q}
`, filepath.Join(dir, "state"), testAccessKey, testSecretKey, ca)
	cfg := filepath.Join(dir, "signet.yaml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "serve", "-c", cfg)
	cmd.Env = baseEnv(dir, "AWS_EC2_METADATA_DISABLED=true")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start)
	t.Logf("signet exited after %v: %v\n%s", elapsed, err, out.String())
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 || ctx.Err() != nil {
		t.Fatalf("signet serve with an unreachable ACME CA: %v, want a non-zero exit", err)
	}
	if !strings.Contains(out.String(), ca) {
		t.Errorf("signet's error does not name the ACME CA %s", ca)
	}
	if strings.Contains(out.String(), `"msg":"listening"`) {
		t.Errorf("signet listened without a certificate")
	}
	if elapsed > 20*time.Second {
		t.Errorf("signet took %v to give up on a refused connection", elapsed)
	}
}

func portOf(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// With validation on, Pebble dials localhost:PORT with ALPN acme-tls/1: at
// start, before the proxy listener is bound, signet answers on the proxy's
// own address (ChallengeAddr), so an operator who forwards 443 to the proxy
// port needs nothing else.
func TestProxyTLSFromACMEValidated(t *testing.T) {
	port := freePort(t)
	p := startPebbleOpts(t, port)
	stateDir := filepath.Join(t.TempDir(), "state")
	start := time.Now()
	s := startSignet(t, acmeSignetConfig(p, "127.0.0.1:"+strconv.Itoa(port), stateDir, "127.0.0.1:9"), 0)
	t.Logf("signet listening with a validated ACME certificate after %v", time.Since(start))
	if !strings.Contains(p.outputLines(), "set VALID by completed challenge") {
		t.Errorf("pebble did not validate a challenge")
	}
	served := false
	for _, l := range strings.Split(s.Logs.String(), "\n") {
		if strings.Contains(l, `"msg":"served key authentication certificate"`) && strings.Contains(l, `"challenge":"tls-alpn-01"`) {
			served = true
		}
	}
	if !served {
		t.Errorf("signet logged no tls-alpn-01 challenge certificate served to pebble")
	}
	roots := x509.NewCertPool()
	roots.AddCert(p.Root)
	leaf, _, _ := proxyLeaf(t, s.ProxyAddr, roots)
	if !bytes.Equal(leaf.RawIssuer, p.Interm.RawSubject) {
		t.Errorf("proxy certificate issuer %q, want Pebble's intermediate %q", leaf.Issuer, p.Interm.Subject)
	}
}
