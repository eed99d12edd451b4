package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signet-proxy/signet/configs"
)

// selfSigned returns a PEM certificate standing in for a system root.
func selfSigned(t *testing.T, cn string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// pemSubjects lists the common names of the certificates in a PEM bundle.
func pemSubjects(t *testing.T, b []byte) []string {
	t.Helper()
	var out []string
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return out
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatalf("bundle holds a certificate that does not parse: %v", err)
		}
		out = append(out, c.Subject.CommonName)
	}
}

// parseExports reads `export NAME='value'` lines as a POSIX shell would,
// by running them in sh: the test checks the quoting, not our reading of it.
func parseExports(t *testing.T, script string, names ...string) map[string]string {
	t.Helper()
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatalf("no sh to evaluate the output: %v", err)
	}
	var printf strings.Builder
	for _, n := range names {
		printf.WriteString(`printf '%s=%s\0' ` + n + ` "$` + n + `"; `)
	}
	cmd := exec.Command(sh, "-c", `eval "$1" && `+printf.String(), "sh", script)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sh could not evaluate:\n%s\n%v", script, err)
	}
	got := map[string]string{}
	for _, kv := range strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00") {
		k, v, _ := strings.Cut(kv, "=")
		got[k] = v
	}
	return got
}

func TestEnvShell(t *testing.T) {
	// A space and a single quote in the path: both must survive a shell.
	state := filepath.Join(t.TempDir(), "state dir", "it's")
	cfg := testConfig(t, state, "")
	roots := filepath.Join(t.TempDir(), "roots.pem")
	if err := os.WriteFile(roots, selfSigned(t, "test system root"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := testEnviron(t, "SSL_CERT_FILE="+roots)
	code, out, stderr := runCLI(t, env, "env", "-c", cfg)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	bundle := filepath.Join(state, "ca-bundle.pem")
	want := map[string]string{
		"HTTPS_PROXY": "http://127.0.0.1:18080", "https_proxy": "http://127.0.0.1:18080",
		"HTTP_PROXY": "http://127.0.0.1:18080", "http_proxy": "http://127.0.0.1:18080",
		"NO_PROXY": "localhost,127.0.0.1,::1", "no_proxy": "localhost,127.0.0.1,::1",
		"SSL_CERT_FILE": bundle, "CURL_CA_BUNDLE": bundle, "REQUESTS_CA_BUNDLE": bundle, "AWS_CA_BUNDLE": bundle,
		"NODE_EXTRA_CA_CERTS": filepath.Join(state, "ca.pem"),
	}
	var names []string
	for k := range want {
		names = append(names, k)
	}
	got := parseExports(t, out, names...)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("after eval, %s=%q, want %q", k, got[k], v)
		}
	}
	if n := strings.Count(out, "\n"); n != len(want) {
		t.Errorf("%d lines, want %d:\n%s", n, len(want), out)
	}

	// The bundle: the system roots, then signet's CA; public, and no
	// temp file left beside it.
	b, err := os.ReadFile(bundle)
	if err != nil {
		t.Fatal(err)
	}
	_, caPEM, _ := runCLI(t, env, "ca", "export", "-c", cfg)
	subjects := pemSubjects(t, b)
	caSubject := pemSubjects(t, []byte(caPEM))
	if len(subjects) != 2 || subjects[0] != "test system root" || len(caSubject) != 1 || subjects[1] != caSubject[0] {
		t.Errorf("bundle holds %q, want the system root then signet's CA %q", subjects, caSubject)
	}
	if !bytes.HasSuffix(b, []byte(caPEM)) {
		t.Errorf("bundle does not end with the CA exactly as exported")
	}
	if st, err := os.Stat(bundle); err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("bundle mode: %v %v, want 0644", st.Mode(), err)
	}
	entries, _ := os.ReadDir(state)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("temp file %s left in the state directory", e.Name())
		}
	}

	// A shell that already evaluated the output: SSL_CERT_FILE is the
	// bundle itself, which must not be nested into the new one.
	code, _, stderr = runCLI(t, testEnviron(t, "SSL_CERT_FILE="+bundle), "env", "-c", cfg)
	if code != exitOK {
		t.Fatalf("second env: exit %d: %s", code, stderr)
	}
	b2, err := os.ReadFile(bundle)
	if err != nil {
		t.Fatal(err)
	}
	if s := pemSubjects(t, b2); strings.Count(strings.Join(s, "\n"), caSubject[0]) != 1 {
		t.Errorf("after a second env with SSL_CERT_FILE=bundle, the CA appears %d times",
			strings.Count(strings.Join(s, "\n"), caSubject[0]))
	}
}

func TestEnvFish(t *testing.T) {
	state := filepath.Join(t.TempDir(), `a b\c'd`)
	cfg := testConfig(t, state, "")
	code, out, stderr := runCLI(t, testEnviron(t), "env", "--shell", "fish", "-c", cfg)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	quoted := `'` + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(filepath.Join(state, "ca.pem")) + `'`
	for _, line := range []string{
		"set -gx HTTPS_PROXY 'http://127.0.0.1:18080';",
		"set -gx no_proxy 'localhost,127.0.0.1,::1';",
		"set -gx NODE_EXTRA_CA_CERTS " + quoted + ";",
	} {
		if !strings.Contains(out, line+"\n") {
			t.Errorf("fish output lacks %q:\n%s", line, out)
		}
	}
}

func TestEnvErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		env     []string
		want    int
		wantErr string
	}{
		{"port 0", []string{"--listen", "127.0.0.1:0"}, nil, exitConfig, "signet exec"},
		{"bad shell", []string{"--shell", "csh"}, nil, exitConfig, `--shell "csh"`},
		{"stray argument", []string{"bash"}, nil, exitConfig, `unexpected argument "bash"`},
		{"unreadable SSL_CERT_FILE", nil, []string{"SSL_CERT_FILE=/nonexistent/roots.pem"}, exitFail, "SSL_CERT_FILE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := filepath.Join(t.TempDir(), "state")
			args := append([]string{"env", "-c", testConfig(t, state, "")}, tc.args...)
			code, out, stderr := runCLI(t, testEnviron(t, tc.env...), args...)
			if code != tc.want {
				t.Fatalf("exit %d, want %d; stderr %s", code, tc.want, stderr)
			}
			if out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
			if !strings.Contains(stderr, tc.wantErr) {
				t.Errorf("stderr %q does not contain %q", stderr, tc.wantErr)
			}
			// A usage or config error is found before anything is created.
			if _, err := os.Stat(state); tc.want == exitConfig && err == nil {
				t.Errorf("env created %s although it failed", state)
			}
		})
	}
}

func TestEnvHTTPSProxyExample(t *testing.T) {
	ex := filepath.Join("..", "..", "configs", "examples", "https-proxy.yaml")
	code, out, stderr := runCLI(t, testEnviron(t), "env", "-c", ex, "--state-dir", filepath.Join(t.TempDir(), "state"))
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if got := parseExports(t, out, "HTTPS_PROXY")["HTTPS_PROXY"]; got != "https://127.0.0.1:8443" {
		t.Errorf("HTTPS_PROXY=%q for a listener with proxy_tls local, want https://127.0.0.1:8443", got)
	}
}

func TestProxyURL(t *testing.T) {
	local := func(names ...string) configs.ProxyTLS {
		return configs.ProxyTLS{Mode: configs.ProxyTLSLocal, Names: names}
	}
	for _, tc := range []struct {
		listen string
		tls    configs.ProxyTLS
		want   string
	}{
		{"127.0.0.1:8080", configs.ProxyTLS{Mode: configs.ProxyTLSOff}, "http://127.0.0.1:8080"},
		{"localhost:8080", configs.ProxyTLS{Mode: configs.ProxyTLSOff}, "http://localhost:8080"},
		{"0.0.0.0:8080", configs.ProxyTLS{Mode: configs.ProxyTLSOff}, "http://127.0.0.1:8080"},
		{":8080", configs.ProxyTLS{Mode: configs.ProxyTLSOff}, "http://127.0.0.1:8080"},
		{"[::]:8080", configs.ProxyTLS{Mode: configs.ProxyTLSOff}, "http://[::1]:8080"},
		{"[::1]:8080", configs.ProxyTLS{Mode: configs.ProxyTLSOff}, "http://[::1]:8080"},
		// TLS: a name the listener's certificate carries.
		{"127.0.0.1:8443", local(), "https://127.0.0.1:8443"},
		{"0.0.0.0:8443", local(), "https://localhost:8443"},
		{"127.0.0.1:8443", local("localhost", "127.0.0.1"), "https://127.0.0.1:8443"},
		{"0.0.0.0:8080", local("signet.internal.example.com"), "https://signet.internal.example.com:8080"},
		{"10.0.0.5:443", configs.ProxyTLS{Mode: configs.ProxyTLSACME, Names: []string{"signet.example.com"}}, "https://signet.example.com:443"},
	} {
		got, err := proxyURL(&configs.Config{Listen: tc.listen, ProxyTLS: tc.tls}, tc.listen)
		if err != nil || got != tc.want {
			t.Errorf("proxyURL(%s, %s %v) = %q, %v; want %q", tc.listen, tc.tls.Mode, tc.tls.Names, got, err, tc.want)
		}
	}
}

func TestWriteBundleRootSources(t *testing.T) {
	dir := t.TempDir()
	first := filepath.Join(dir, "first.pem")
	second := filepath.Join(dir, "second.pem")
	if err := os.WriteFile(second, selfSigned(t, "second"), 0o644); err != nil {
		t.Fatal(err)
	}
	ca := selfSigned(t, "signet CA")
	for _, tc := range []struct {
		name       string
		environ    []string
		candidates []string
		want       []string
		warn       bool
	}{
		{"first existing candidate", nil, []string{first, second}, []string{"second", "signet CA"}, false},
		{"SSL_CERT_FILE wins", []string{"SSL_CERT_FILE=" + second}, []string{filepath.Join(dir, "absent")}, []string{"second", "signet CA"}, false},
		{"no roots anywhere", nil, []string{first}, []string{"signet CA"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := t.TempDir()
			var warn bytes.Buffer
			path, err := writeBundle(state, ca, tc.environ, tc.candidates, &warn)
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := pemSubjects(t, b); strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("bundle holds %q, want %q", got, tc.want)
			}
			if tc.warn != (warn.Len() > 0) || (tc.warn && !strings.Contains(warn.String(), "no system CA bundle")) {
				t.Errorf("warning %q, want one: %v", warn.String(), tc.warn)
			}
		})
	}
}

func TestQuote(t *testing.T) {
	for _, tc := range []struct{ in, sh, fish string }{
		{"plain", `'plain'`, `'plain'`},
		{"a b", `'a b'`, `'a b'`},
		{"it's", `'it'\''s'`, `'it\'s'`},
		{`back\slash`, `'back\slash'`, `'back\\slash'`},
		{"$HOME `x` \"q\" *", "'$HOME `x` \"q\" *'", "'$HOME `x` \"q\" *'"},
	} {
		if got := shQuote(tc.in); got != tc.sh {
			t.Errorf("shQuote(%q) = %s, want %s", tc.in, got, tc.sh)
		}
		if got := fishQuote(tc.in); got != tc.fish {
			t.Errorf("fishQuote(%q) = %s, want %s", tc.in, got, tc.fish)
		}
	}
}
