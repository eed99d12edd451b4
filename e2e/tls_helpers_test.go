//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// ------------------------------------------------------------- test PKI

// testCA is a CA made for one test, standing in for a public CA that
// signet's upstream (versitygw here) has a certificate from.
type testCA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	CertPEM []byte
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "signet e2e test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// leaf issues a server certificate for dnsNames (no IP address: whoever
// connects must verify by name) and returns it and its key in PEM.
func (ca *testCA) leaf(t testing.TB, dnsNames ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: dnsNames[0]},
		DNSNames:     dnsNames,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

func writeTestFile(t testing.TB, path string, b []byte) string {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// ------------------------------------------------------- versitygw, TLS

// startVersityTLS runs versitygw like startVersity, but serving TLS with a
// certificate for s3.us-east-1.amazonaws.com and its virtual-hosted
// buckets from ca. Its address is 127.0.0.1:PORT; only a client that
// verifies by those names (as signet must) accepts it.
func startVersityTLS(tb testing.TB, ca *testCA) *versity {
	tb.Helper()
	bin := needVersity(tb)
	dir := tb.TempDir()
	data, noMeta := versityDataDir(tb, dir)
	certPEM, keyPEM := ca.leaf(tb, s3Host, "*."+s3Host)
	certFile := writeTestFile(tb, filepath.Join(dir, "cert.pem"), certPEM)
	keyFile := writeTestFile(tb, filepath.Join(dir, "key.pem"), keyPEM)
	health := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil,
		TLSClientConfig: &tls.Config{RootCAs: ca.pool(), ServerName: s3Host}}}
	addr := startVersityProc(tb, bin, "versitygw (TLS)",
		baseEnv(dir, "ROOT_ACCESS_KEY_ID="+testAccessKey, "ROOT_SECRET_ACCESS_KEY="+testSecretKey),
		func(addr string) []string {
			return versityArgs(addr, noMeta, data, "--cert", certFile, "--key", keyFile)
		},
		func(addr string) error { return healthOK(health, "https://"+addr+"/health") })
	return &versity{Addr: addr, DataDir: data, NoMeta: noMeta}
}

// --------------------------------------------------------- signet commands

// cmdResult is how a run of the signet binary (or another command) ended.
type cmdResult struct {
	Code           int
	Stdout, Stderr string
}

// runBinary runs bin with args and exactly env, for at most a minute.
func runBinary(t testing.TB, env []string, bin string, args ...string) cmdResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("%s %q: %v", bin, args, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("%s %q did not finish within a minute\nstderr: %s", bin, args, &stderr)
	}
	return cmdResult{Code: cmd.ProcessState.ExitCode(), Stdout: stdout.String(), Stderr: stderr.String()}
}

// parseShExports reads the `export NAME='value'` lines of `signet env`,
// with sh's rules for single quotes (a quote inside ends the quoting and
// is written escaped, \').
// Anything else on a line is a test failure: the output is for eval.
func parseShExports(t testing.TB, out string) map[string]string {
	t.Helper()
	vars := map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		rest, ok := strings.CutPrefix(line, "export ")
		name, quoted, ok2 := strings.Cut(rest, "=")
		if !ok || !ok2 || name == "" {
			t.Fatalf("signet env printed %q, not an export line", line)
		}
		var v strings.Builder
		for quoted != "" {
			switch {
			case strings.HasPrefix(quoted, `\'`):
				v.WriteByte('\'')
				quoted = quoted[2:]
			case quoted[0] == '\'':
				end := strings.IndexByte(quoted[1:], '\'')
				if end < 0 {
					t.Fatalf("unterminated quote in %q", line)
				}
				v.WriteString(quoted[1 : 1+end])
				quoted = quoted[2+end:]
			default:
				t.Fatalf("unquoted text in %q: values must be quoted", line)
			}
		}
		vars[name] = v.String()
	}
	return vars
}

// envList is PATH and HOME plus vars, sorted: the whole environment of a
// client that must find everything else in what signet told it.
func envList(home string, vars map[string]string) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home}
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	slices.Sort(env)
	return env
}

// ------------------------------------------------------- clients from env

// lineClient drives a client process that speaks urlclient.py's protocol
// (one JSON request per line in, one JSON answer per line out): python's
// urllib, or the Go program in testdata/goclient.
type lineClient struct {
	name string
	mu   sync.Mutex
	in   io.WriteCloser
	out  *bufio.Scanner
	// protos counts the HTTP versions of the answers (goclient reports
	// them; urllib does not).
	protos map[string]int
}

// newLineClient starts argv with exactly env and checks that the proxy it
// took from env for https URLs is wantProxy.
func newLineClient(t testing.TB, name string, env []string, wantProxy string, argv ...string) *lineClient {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s client: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		in.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() && stderr.String() != "" {
			t.Logf("%s client stderr:\n%s", name, stderr.String())
		}
	})
	sc := bufio.NewScanner(outR)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	if !sc.Scan() {
		t.Fatalf("%s client said nothing: %v\n%s", name, sc.Err(), stderr.String())
	}
	var hello struct {
		Proxies map[string]string `json:"proxies"`
	}
	if err := json.Unmarshal(sc.Bytes(), &hello); err != nil {
		t.Fatalf("%s client hello %q: %v", name, sc.Bytes(), err)
	}
	if got := hello.Proxies["https"]; got != wantProxy {
		t.Fatalf("%s took https proxy %q from its environment, want %q", name, got, wantProxy)
	}
	return &lineClient{name: name, in: in, out: sc, protos: map[string]int{}}
}

func (p *lineClient) Name() string { return p.name }

func (p *lineClient) Do(t testing.TB, method, rawURL string, body []byte) result {
	t.Helper()
	req := map[string]any{"method": method, "url": rawURL, "body": nil}
	if body != nil {
		req["body"] = base64.StdEncoding.EncodeToString(body)
	}
	line, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := p.in.Write(append(line, '\n')); err != nil {
		t.Fatalf("%s client: %v", p.name, err)
	}
	if !p.out.Scan() {
		t.Fatalf("%s client stopped: %v", p.name, p.out.Err())
	}
	var ans struct {
		Error   string      `json:"error"`
		Status  int         `json:"status"`
		Proto   string      `json:"proto"`
		Headers [][2]string `json:"headers"`
		Body    string      `json:"body"`
	}
	if err := json.Unmarshal(p.out.Bytes(), &ans); err != nil {
		t.Fatalf("%s answer %q: %v", p.name, p.out.Bytes(), err)
	}
	if ans.Error != "" {
		t.Fatalf("%s %s %s: %s", p.name, method, rawURL, ans.Error)
	}
	b, err := base64.StdEncoding.DecodeString(ans.Body)
	if err != nil {
		t.Fatal(err)
	}
	p.protos[ans.Proto]++
	h := http.Header{}
	for _, kv := range ans.Headers {
		h.Add(kv[0], kv[1])
	}
	return result{Status: ans.Status, Header: h, Body: b}
}

// protoCounts returns how many answers came in each HTTP version.
func (p *lineClient) protoCounts() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int{}
	for k, v := range p.protos {
		out[k] = v
	}
	return out
}

// buildGoClient builds testdata/goclient into dir.
func buildGoClient(t testing.TB, dir string) string {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "goclient")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./e2e/testdata/goclient")
	cmd.Dir = root
	cmd.Env = withoutSignetVars(os.Environ())
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./e2e/testdata/goclient: %v\n%s", err, b)
	}
	return out
}

// virtualHostedHTTPS addresses buckets as https://BUCKET.s3.../, which
// through HTTPS_PROXY is a CONNECT to the bucket's own host name.
func virtualHostedHTTPS() addressing {
	return addressing{
		name:   "virtual-hosted",
		bucket: func(b string) string { return "https://" + b + "." + s3Host + "/" },
		object: func(b, raw string) string { return "https://" + b + "." + s3Host + "/" + raw },
	}
}
