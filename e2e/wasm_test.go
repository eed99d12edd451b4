//go:build linux

package e2e

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signet-proxy/signet/internal/ststest"
	"github.com/signet-proxy/signet/wasmhost"
)

// The WebAssembly providers of extensions/, built from source here and run
// by signet (`method: wasm`) against real peers: the fake STS (TLS) for
// web-identity, an ECS-style broker for http-broker, a credentials file
// for the C module; versitygw verifies every request signed with what
// they printed.

// buildGoWasm builds a Go provider for wasip1 into dir.
func buildGoWasm(tb testing.TB, dir, pkg string) string {
	tb.Helper()
	root, err := repoRoot()
	if err != nil {
		tb.Fatal(err)
	}
	out := filepath.Join(dir, filepath.Base(pkg)+".wasm")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(withoutSignetVars(os.Environ()), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("GOOS=wasip1 GOARCH=wasm go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// buildCWasm builds the C provider with its build.sh (clang, lld,
// wasi-libc): the command line the README gives is the one tested.
func buildCWasm(tb testing.TB, dir string) string {
	tb.Helper()
	needCommand(tb, "clang")
	needCommand(tb, "wasm-ld")
	return runCBuild(tb, filepath.Join(dir, "c-file.wasm"))
}

func runCBuild(tb testing.TB, out string, args ...string) string {
	tb.Helper()
	root, err := repoRoot()
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command("sh", append([]string{filepath.Join(root, "extensions", "c-file", "build.sh")}, append(args, out)...)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("extensions/c-file/build.sh %s: %v\n%s", strings.Join(append(args, out), " "), err, b)
	}
	return out
}

// warmWasmCache compiles modules into stateDir's cache with `signet wasm
// run` (a run that fails at once is enough: the code is cached before it
// runs). serve compiles every module before it listens, and a 4 MB Go
// module takes seconds to compile on a loaded 2-core machine, longer than
// startSignet waits; with the cache serve starts at once.
func warmWasmCache(tb testing.TB, stateDir string, modules ...string) {
	tb.Helper()
	bin := needSignet(tb)
	for _, m := range modules {
		cfg := writeTestFile(tb, filepath.Join(tb.TempDir(), "warm.yaml"), []byte(fmt.Sprintf(
			"state_dir: %q\nsources:\n  warm: {method: wasm, wasm: {module: %q}}\n", stateDir, m)))
		start := time.Now()
		res := runBinary(tb, baseEnv(tb.TempDir()), bin, "wasm", "run", "-c", cfg, "--source", "warm")
		if !strings.Contains(res.Stdout, "duration") {
			tb.Fatalf("signet wasm run did not run %s (exit %d):\n%s%s", m, res.Code, res.Stdout, res.Stderr)
		}
		tb.Logf("compiled %s into the cache in %s", filepath.Base(m), time.Since(start).Round(time.Millisecond))
	}
}

// s3Route routes S3 on s3Host to versitygw at addr, signed with source.
func s3Route(source, addr string) string {
	return fmt.Sprintf(`routes:
  - hosts: ["%[1]s"]
    source: %[2]s
    upstream_scheme: http
upstream:
  connect_to:
    "%[1]s:80": "%[3]s"
`, s3Host, source, addr)
}

// oidcFixture is an OIDC issuer registered at the fake STS and a token of
// it in a directory, as a Kubernetes projected service-account token is.
type oidcFixture struct {
	key      *ecdsa.PrivateKey
	issuer   string
	subject  string
	tokenDir string
	token    string
}

func newOIDCFixture(t *testing.T, f *ststest.Server) *oidcFixture {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	o := &oidcFixture{key: key, issuer: "https://oidc.signet-e2e.test/cluster", subject: "system:serviceaccount:e2e:app", tokenDir: t.TempDir()}
	f.AddOIDCProvider(ststest.OIDCProvider{Issuer: o.issuer, ClientIDs: []string{"sts.amazonaws.com"}, Keys: []crypto.PublicKey{&key.PublicKey}})
	o.token, err = ststest.SignJWT(key, map[string]any{"iss": o.issuer, "sub": o.subject, "aud": "sts.amazonaws.com",
		"iat": time.Now().Unix(), "exp": time.Now().Add(2 * time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(o.tokenDir, "token"), []byte(o.token))
	return o
}

// TestWasmWebIdentityRefreshes: signet runs the Go web-identity module,
// which reads the token from its mounted directory and calls the fake STS
// (TLS, trusted through upstream.ca_file, allowed by allow_hosts) with
// AssumeRoleWithWebIdentity; versitygw verifies each session. Sessions
// live 20 s, so the source refreshes every 10 s or so; one STS failure
// mid-run is retried. Every request through signet is answered 200.
func TestWasmWebIdentityRefreshes(t *testing.T) {
	const (
		lifetime = 20 * time.Second
		run      = 50 * time.Second
		every    = 500 * time.Millisecond
		bucket   = "wasm-web"
		object   = "obj.txt"
		payload  = "signed with web identity"
	)
	bins := t.TempDir()
	module := buildGoWasm(t, bins, "./extensions/web-identity")

	v := startVersityIAM(t, testAccessKey, testSecretKey)
	role := v.createRole(t, "signet-wasm-web")
	rootc := newSDKClient("", testAccessKey, testSecretKey)
	if r := rootc.Do(t, "PUT", v.URL()+"/"+bucket, nil); r.Status != 200 {
		t.Fatalf("create bucket: %d\n%s", r.Status, r.Body)
	}
	if r := rootc.Do(t, "PUT", v.URL()+"/"+bucket+"/"+object, []byte(payload)); r.Status != 200 {
		t.Fatalf("put object: %d\n%s", r.Status, r.Body)
	}

	var (
		mu      sync.Mutex
		mints   []ststest.Minted
		mintErr error
		failed  bool
	)
	var f *ststest.Server
	mu.Lock() // OnMint reads f under mu
	f = ststest.New(t, ststest.Options{OnMint: func(m ststest.Minted) error {
		err := v.addSession(m, role)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			mintErr = err
			return err
		}
		mints = append(mints, m)
		if len(mints) == 2 && !failed {
			// The refresh after the second session fails once: the module
			// exits non-zero, and the source retries before the keys expire.
			failed = true
			f.FailNext(ststest.FailInternal, 1)
		}
		return nil
	}})
	mu.Unlock()
	o := newOIDCFixture(t, f)
	f.AddRole(ststest.Role{ARN: role.ARN, OIDCIssuers: []string{o.issuer}, OIDCSubject: o.subject})
	f.SetLifetime(lifetime)
	stsURL, err := url.Parse(f.URL())
	if err != nil {
		t.Fatal(err)
	}
	caFile := writeTestFile(t, filepath.Join(t.TempDir(), "sts-ca.pem"), f.CertificatePEM())
	stateDir := filepath.Join(t.TempDir(), "state")
	warmWasmCache(t, stateDir, module)

	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
state_dir: %[9]q
log: {level: debug, format: json}
sources:
  web:
    method: wasm
    wasm:
      module: %[1]q
      args: [-endpoint, %[2]q, -region, %[3]s]
      env:
        AWS_ROLE_ARN: %[4]q
        AWS_ROLE_SESSION_NAME: signet-e2e
      dir: %[5]q
      allow_hosts: [%[6]q]
      allow_private: true
      timeout: 10s
    refresh: {mode: eager}
%[7]s  ca_file: %[8]q
`, module, f.URL(), testRegion, role.ARN, o.tokenDir, stsURL.Host, s3Route("web", v.Addr), caFile, stateDir)
	s := startSignet(t, cfg, 0)

	curl := newCurlClient(t, s.ProxyURL())
	objURL := "http://" + s3Host + "/" + bucket + "/" + object
	start := time.Now()
	var bad []string
	n := 0
	for time.Since(start) < run {
		r := curl.Do(t, "GET", objURL, nil)
		n++
		if r.Status != 200 || string(r.Body) != payload {
			bad = append(bad, fmt.Sprintf("+%s: %d %s %s", time.Since(start).Round(10*time.Millisecond), r.Status, r.Header.Get("X-Signet-Error"), r.Body))
		}
		time.Sleep(every)
	}
	if len(bad) > 0 {
		t.Errorf("%d of %d requests failed; the first ones:\n%s", len(bad), n, strings.Join(bad[:min(len(bad), 10)], "\n"))
	}

	mu.Lock()
	ms := slices.Clone(mints)
	if mintErr != nil {
		t.Errorf("writing a session into versitygw's IAM store: %v", mintErr)
	}
	mu.Unlock()
	var ok, failures int
	for _, c := range f.Calls() {
		switch {
		case c.Action != "AssumeRoleWithWebIdentity":
			t.Errorf("unexpected STS call %+v", c)
		case c.Error == "":
			ok++
			if c.RoleSessionName != "signet-e2e" || c.Subject != o.subject || c.AccessKeyID != "" {
				t.Errorf("STS call %+v", c)
			}
		default:
			failures++
		}
	}
	if ok < 4 || ok != len(ms) {
		t.Errorf("%d successful AssumeRoleWithWebIdentity calls and %d sessions in %s of %s sessions; want at least 4 (3 refreshes)", ok, len(ms), run, lifetime)
	}
	if failures != 1 {
		t.Errorf("%d failed STS calls, want the 1 injected", failures)
	}
	logs := s.Logs.String()
	logged := refreshedKeys(logs, "web")
	if len(logged) != len(ms) {
		t.Errorf("signet logged %d refreshes of source web, the fake minted %d sessions", len(logged), len(ms))
	}
	for i := range min(len(logged), len(ms)) {
		if logged[i] != redactKey(ms[i].AccessKeyID) {
			t.Errorf("refresh %d: signet logged %s, the fake minted %s", i, logged[i], redactKey(ms[i].AccessKeyID))
		}
	}
	if !strings.Contains(logs, "InternalFailure") {
		t.Errorf("the module's stderr about the failed STS call is not in signet's log")
	}
	if strings.Contains(logs, o.token) {
		t.Errorf("signet's log holds the web identity token")
	}
	for _, m := range ms {
		if strings.Contains(logs, m.SecretAccessKey) || strings.Contains(logs, m.SessionToken) {
			t.Errorf("signet's log holds a minted secret or session token")
		}
	}
	t.Logf("%d requests in %s, %d failed; %d sessions of %s (%d refreshes), %d STS failures injected",
		n, time.Since(start).Round(time.Millisecond), len(bad), len(ms), lifetime, len(ms)-1, failures)
}

// ecsBroker is an ECS container-credentials endpoint that answers only the
// Authorization value it was given, with versitygw's root keys.
type ecsBroker struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen []string // Authorization values received
}

func startECSBroker(t *testing.T, wantAuth string) *ecsBroker {
	t.Helper()
	b := &ecsBroker{}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.seen = append(b.seen, r.Header.Get("Authorization"))
		b.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if r.Method != http.MethodGet || r.URL.Path != "/v1/credentials" {
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"code":"NotFound","message":"unknown path"}`)
			return
		}
		if r.Header.Get("Authorization") != wantAuth {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"code":"AccessDenied","message":"authorization token rejected"}`)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"AccessKeyId": testAccessKey, "SecretAccessKey": testSecretKey,
			"Expiration": time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "RoleArn": "arn:aws:iam::000000000000:role/broker"})
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *ecsBroker) authorizations() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.seen)
}

// TestWasmHTTPBroker: signet runs the Go http-broker module against an
// ECS-style broker (plain http on loopback: allow_http and allow_private)
// with the token from the config's env; versitygw verifies the keys. A
// second source with a wrong token fails with the broker's answer, and
// the token shows in no log line.
func TestWasmHTTPBroker(t *testing.T) {
	const token = "Bearer e2e-broker-7f3a9c"
	module := buildGoWasm(t, t.TempDir(), "./extensions/http-broker")
	v := startVersity(t)
	b := startECSBroker(t, token)
	bu, err := url.Parse(b.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	source := func(name, tok, mode string) string {
		return fmt.Sprintf(`  %[1]s:
    method: wasm
    wasm:
      module: %[2]q
      env:
        AWS_CONTAINER_CREDENTIALS_FULL_URI: %[3]q
        AWS_CONTAINER_AUTHORIZATION_TOKEN: %[4]q
      allow_hosts: [%[5]q]
      allow_http: true
      allow_private: true
    refresh: {mode: %[6]s}
`, name, module, b.srv.URL+"/v1/credentials", tok, bu.Host, mode)
	}
	stateDir := filepath.Join(t.TempDir(), "state")
	warmWasmCache(t, stateDir, module)
	cfg := fmt.Sprintf("listen: 127.0.0.1:0\nstate_dir: %q\nlog: {level: debug, format: json}\nsources:\n", stateDir) +
		source("broker", token, "eager") + source("wrongtoken", "Bearer not-the-token", "deferred") +
		s3Route("broker", v.Addr) +
		fmt.Sprintf("reverse:\n  - {listen: 127.0.0.1:0, upstream: %q, source: wrongtoken, service: s3, region: %s}\n", v.URL(), testRegion)
	s := startSignet(t, cfg, 1)

	curl := newCurlClient(t, s.ProxyURL())
	base := "http://" + s3Host + "/wasm-broker"
	for _, step := range []struct {
		method, url string
		body        []byte
	}{{"PUT", base, nil}, {"PUT", base + "/k", []byte("from the broker")}, {"GET", base + "/k", nil}} {
		r := curl.Do(t, step.method, step.url, step.body)
		if r.Status != 200 {
			t.Fatalf("%s %s through signet: %d %s\n%s", step.method, step.url, r.Status, r.Header.Get("X-Signet-Error"), r.Body)
		}
		if step.method == "GET" && string(r.Body) != "from the broker" {
			t.Errorf("GET body %q", r.Body)
		}
	}
	if got := b.authorizations(); len(got) == 0 || got[0] != token {
		t.Errorf("the broker saw Authorization %q, want %q first", got, token)
	}

	r := newCurlClient(t, "").Do(t, "GET", "http://"+s.Reverse[0]+"/wasm-broker/k", nil)
	if r.Status/100 != 5 || r.Header.Get("X-Signet-Error") == "" {
		t.Errorf("a source whose broker refuses its token: %d %q, want signet's own 5xx error\n%s", r.Status, r.Header.Get("X-Signet-Error"), r.Body)
	}
	logs := s.Logs.String()
	if !strings.Contains(logs, "HTTP 401: AccessDenied: authorization token rejected") {
		t.Errorf("the broker's refusal is not in signet's log")
	}
	for _, secret := range []string{"e2e-broker-7f3a9c", "not-the-token", testSecretKey} {
		if strings.Contains(logs, secret) || strings.Contains(string(r.Body), secret) {
			t.Errorf("a secret (%.6s...) shows in signet's log or answer", secret)
		}
	}
}

// TestWasmCFile: signet runs the C module, which reads one profile of a
// shared-credentials file in its mounted directory and logs through the
// signet.log import; versitygw verifies the keys.
func TestWasmCFile(t *testing.T) {
	module := buildCWasm(t, t.TempDir())
	v := startVersity(t)
	dir := t.TempDir()
	exp := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	writeTestFile(t, filepath.Join(dir, "credentials"), []byte(fmt.Sprintf(`# written by a vault agent
[default]
aws_access_key_id = AKIANOTTHISONE000001
aws_secret_access_key = wrong

[e2e]
aws_access_key_id = %s
aws_secret_access_key = %s
expiration = %s
`, testAccessKey, testSecretKey, exp)))
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
log: {level: debug, format: json}
sources:
  vault:
    method: wasm
    wasm:
      module: %[1]q
      args: [e2e]
      dir: %[2]q
    refresh: {mode: eager}
%[3]s`, module, dir, s3Route("vault", v.Addr))
	s := startSignet(t, cfg, 0)
	curl := newCurlClient(t, s.ProxyURL())
	base := "http://" + s3Host + "/wasm-cfile"
	if r := curl.Do(t, "PUT", base, nil); r.Status != 200 {
		t.Fatalf("PUT bucket through signet: %d %s\n%s", r.Status, r.Header.Get("X-Signet-Error"), r.Body)
	}
	if r := curl.Do(t, "PUT", base+"/k", []byte("from C")); r.Status != 200 {
		t.Fatalf("PUT object through signet: %d\n%s", r.Status, r.Body)
	}
	if r := curl.Do(t, "GET", base+"/k", nil); r.Status != 200 || string(r.Body) != "from C" {
		t.Errorf("GET through signet: %d %q", r.Status, r.Body)
	}
	logs := s.Logs.String()
	if !strings.Contains(logs, "read profile e2e from /config/credentials, expires "+exp) {
		t.Errorf("the module's signet.log line is not in signet's log")
	}
	if strings.Contains(logs, testSecretKey) {
		t.Errorf("signet's log holds the secret key")
	}
}

// TestCFileParsesCredentialsFiles runs the C provider's parser natively
// (the same source, built with cc): the INI rules, defaults and errors.
func TestCFileParsesCredentialsFiles(t *testing.T) {
	needCommand(t, "cc")
	dir := t.TempDir()
	bin := runCBuild(t, filepath.Join(dir, "c-file"), "--native")
	const file = `; comment
# another
[default]
aws_access_key_id=AKIADEFAULT
aws_secret_access_key=defaultsecret

[profile cfg]
aws_access_key_id = AKIACFG
aws_secret_access_key = cfgsecret

[tmp]
AWS_ACCESS_KEY_ID = ASIATMP
aws_secret_access_key = tmp"secret\with/odd+chars=
aws_security_token = tmptoken
aws_expiration = 2030-01-02T03:04:05Z
[nosecret]
aws_access_key_id = AKIANOSECRET
[badexp]
aws_access_key_id = AKIABADEXP
aws_secret_access_key = s
expiration = tomorrow
[default]
aws_secret_access_key = laterwins
`
	creds := writeTestFile(t, filepath.Join(dir, "credentials"), []byte(strings.ReplaceAll(file, "\n[tmp]", "\r\n[tmp]")))
	cases := []struct {
		name string
		args []string
		env  []string
		want map[string]any // nil: must fail
		err  string
	}{
		{"a later section wins", []string{"default", creds}, nil,
			map[string]any{"Version": 1.0, "AccessKeyId": "AKIADEFAULT", "SecretAccessKey": "laterwins"}, ""},
		{"config-file spelling", []string{"cfg", creds}, nil,
			map[string]any{"Version": 1.0, "AccessKeyId": "AKIACFG", "SecretAccessKey": "cfgsecret"}, ""},
		{"token, expiration, escaping", []string{"tmp", creds}, nil,
			map[string]any{"Version": 1.0, "AccessKeyId": "ASIATMP", "SecretAccessKey": `tmp"secret\with/odd+chars=`,
				"SessionToken": "tmptoken", "Expiration": "2030-01-02T03:04:05Z"}, ""},
		{"from the environment", nil, []string{"AWS_PROFILE=cfg", "AWS_SHARED_CREDENTIALS_FILE=" + creds},
			map[string]any{"Version": 1.0, "AccessKeyId": "AKIACFG", "SecretAccessKey": "cfgsecret"}, ""},
		{"no such profile", []string{"absent", creds}, nil, nil, "no such profile in the credentials file: absent"},
		{"no secret", []string{"nosecret", creds}, nil, nil, "lacks aws_access_key_id or aws_secret_access_key"},
		{"bad expiration", []string{"badexp", creds}, nil, nil, "not an RFC 3339 time"},
		{"no file", []string{"default", filepath.Join(dir, "absent")}, nil, nil, "cannot open the credentials file"},
		{"too many arguments", []string{"a", "b", "c"}, nil, nil, "usage"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := runBinary(t, baseEnv(dir, tc.env...), bin, tc.args...)
			if tc.want == nil {
				if res.Code == 0 || !strings.Contains(res.Stderr, tc.err) || res.Stdout != "" {
					t.Errorf("exit %d, stdout %q, stderr %q; want a failure saying %q", res.Code, res.Stdout, res.Stderr, tc.err)
				}
				for _, secret := range []string{"laterwins", "cfgsecret", "tmptoken"} {
					if strings.Contains(res.Stderr, secret) {
						t.Errorf("stderr holds a secret: %q", res.Stderr)
					}
				}
				return
			}
			var got map[string]any
			if res.Code != 0 || json.Unmarshal([]byte(res.Stdout), &got) != nil {
				t.Fatalf("exit %d, stdout %q, stderr %q", res.Code, res.Stdout, res.Stderr)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
			if !strings.Contains(res.Stderr, "read profile") {
				t.Errorf("no log line on stderr: %q", res.Stderr)
			}
		})
	}
}

// providerBench is the three modules loaded in a wasmhost.Host with what
// each needs to succeed: the fake STS and a token, a broker, a file.
type providerBench struct {
	modules map[string]*wasmhost.Module
	sizes   map[string]int64
	// loads is how long Load took: reading, checking and compiling the
	// module, the cache empty.
	loads map[string]time.Duration
}

var benchModules = []string{"web-identity", "http-broker", "c-file"}

func newProviderBench(tb testing.TB) *providerBench {
	tb.Helper()
	bins := tb.TempDir()
	paths := map[string]string{
		"web-identity": buildGoWasm(tb, bins, "./extensions/web-identity"),
		"http-broker":  buildGoWasm(tb, bins, "./extensions/http-broker"),
	}
	needCommand(tb, "clang")
	paths["c-file"] = runCBuild(tb, filepath.Join(bins, "c-file.wasm"))

	f := ststest.New(tb, ststest.Options{})
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	const issuer, roleARN = "https://oidc.bench.test", "arn:aws:iam::000000000000:role/bench"
	f.AddOIDCProvider(ststest.OIDCProvider{Issuer: issuer, ClientIDs: []string{"sts.amazonaws.com"}, Keys: []crypto.PublicKey{&key.PublicKey}})
	f.AddRole(ststest.Role{ARN: roleARN, OIDCIssuers: []string{issuer}})
	tok, err := ststest.SignJWT(key, map[string]any{"iss": issuer, "sub": "bench", "aud": "sts.amazonaws.com", "exp": time.Now().Add(24 * time.Hour).Unix()})
	if err != nil {
		tb.Fatal(err)
	}
	tokenDir := tb.TempDir()
	writeTestFile(tb, filepath.Join(tokenDir, "token"), []byte(tok))
	broker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"AccessKeyId":"ASIABENCH","SecretAccessKey":"s","Token":"t","Expiration":"2031-01-01T00:00:00Z"}`)
	}))
	tb.Cleanup(broker.Close)
	credsDir := tb.TempDir()
	writeTestFile(tb, filepath.Join(credsDir, "credentials"), []byte("[bench]\naws_access_key_id=AKIABENCH\naws_secret_access_key=s\n"))

	ctx := context.Background()
	h, err := wasmhost.New(ctx, wasmhost.Options{RootCAs: f.RootCAs(), CacheDir: filepath.Join(tb.TempDir(), "cache"),
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { h.Close(ctx) })
	host := func(raw string) string {
		u, err := url.Parse(raw)
		if err != nil {
			tb.Fatal(err)
		}
		return u.Host
	}
	cfgs := map[string]wasmhost.ModuleConfig{
		"web-identity": {Args: []string{"-endpoint", f.URL()}, Env: map[string]string{"AWS_ROLE_ARN": roleARN}, Dir: tokenDir,
			Network: wasmhost.Network{AllowHosts: []string{host(f.URL())}, AllowPrivate: true}},
		"http-broker": {Env: map[string]string{"AWS_CONTAINER_CREDENTIALS_FULL_URI": broker.URL + "/"},
			Network: wasmhost.Network{AllowHosts: []string{host(broker.URL)}, AllowPrivate: true, AllowHTTP: true}},
		"c-file": {Args: []string{"bench"}, Dir: credsDir},
	}
	pb := &providerBench{modules: map[string]*wasmhost.Module{}, sizes: map[string]int64{}, loads: map[string]time.Duration{}}
	for _, name := range benchModules {
		c := cfgs[name]
		c.Name, c.Path = name, paths[name]
		start := time.Now()
		m, err := h.Load(ctx, c)
		pb.loads[name] = time.Since(start)
		if err != nil {
			tb.Fatal(err)
		}
		st, err := os.Stat(paths[name])
		if err != nil {
			tb.Fatal(err)
		}
		pb.modules[name], pb.sizes[name] = m, st.Size()
	}
	return pb
}

func (pb *providerBench) call(tb testing.TB, name string) time.Duration {
	res, err := pb.modules[name].Run(context.Background())
	if err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	var out struct{ Version int }
	if json.Unmarshal(res.Stdout, &out) != nil || out.Version != 1 {
		tb.Fatalf("%s printed %q", name, res.Stdout)
	}
	return res.Duration
}

// BenchmarkWasmProviderCall measures each example module: its size, how
// long it takes to compile (once per module and signet start, then cached
// on disk), and one call through wasmhost (a fresh instance, the guest's
// run, its HTTP requests to loopback peers), as the median and the mean
// (ns/op). A benchmark, not a test: wazero's compiler takes minutes under
// -race.
//
//	go test -run '^$' -bench WasmProviderCall -benchtime 50x ./e2e
func BenchmarkWasmProviderCall(b *testing.B) {
	pb := newProviderBench(b)
	for _, name := range benchModules {
		b.Run(name, func(b *testing.B) {
			pb.call(b, name) // warm up: first-run allocations, TLS session
			var ds []time.Duration
			for b.Loop() {
				ds = append(ds, pb.call(b, name))
			}
			slices.Sort(ds)
			b.ReportMetric(float64(pb.sizes[name]), "module-bytes")
			b.ReportMetric(float64(pb.loads[name].Milliseconds()), "compile-ms")
			b.ReportMetric(float64(ds[len(ds)/2].Microseconds()), "median-µs/call")
		})
	}
}

// TestWasmRunCommand: `signet wasm run` runs each example once, as a
// source would, and shows what it printed without the secrets; a module
// the policy refuses says why.
func TestWasmRunCommand(t *testing.T) {
	bin := needSignet(t)
	bins := t.TempDir()
	web := buildGoWasm(t, bins, "./extensions/web-identity")
	broker := buildGoWasm(t, bins, "./extensions/http-broker")
	cfile := buildCWasm(t, bins)

	f := ststest.New(t, ststest.Options{})
	o := newOIDCFixture(t, f)
	const roleARN = "arn:aws:iam::000000000000:role/wasm-run"
	f.AddRole(ststest.Role{ARN: roleARN, OIDCIssuers: []string{o.issuer}})
	stsURL, err := url.Parse(f.URL())
	if err != nil {
		t.Fatal(err)
	}
	b := startECSBroker(t, "raw-token-x")
	bu, err := url.Parse(b.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	credsDir := t.TempDir()
	writeTestFile(t, filepath.Join(credsDir, "credentials"), []byte("[p]\naws_access_key_id=AKIAWASMRUN000000001\naws_secret_access_key=wasmrunsecret\n"))
	home := t.TempDir()

	// web-identity through a config, for upstream.ca_file (the fake STS's
	// certificate) and --source.
	cfg := writeTestFile(t, filepath.Join(t.TempDir(), "signet.yaml"), []byte(fmt.Sprintf(`listen: 127.0.0.1:0
state_dir: %[1]q
sources:
  web:
    method: wasm
    wasm:
      module: %[2]q
      args: [-endpoint, %[3]q]
      env: {AWS_ROLE_ARN: %[4]q}
      dir: %[5]q
      allow_hosts: [%[6]q]
      allow_private: true
upstream:
  ca_file: %[7]q
`, filepath.Join(home, "state"), web, f.URL(), roleARN, o.tokenDir, stsURL.Host,
		writeTestFile(t, filepath.Join(t.TempDir(), "ca.pem"), f.CertificatePEM()))))

	cases := []struct {
		name     string
		args     []string
		ok       bool
		contains []string
	}{
		{"web-identity", []string{"wasm", "run", "-c", cfg, "--source", "web"}, true,
			[]string{"source", "web (wasm)", "session_token", "expires", "assumed arn:aws:sts::000000000000:"}},
		{"http-broker", []string{"wasm", "run", "--allow-host", bu.Host, "--allow-http", "--allow-private",
			"--env", "AWS_CONTAINER_CREDENTIALS_FULL_URI=" + b.srv.URL + "/v1/credentials", "--env", "AWS_CONTAINER_AUTHORIZATION_TOKEN=raw-token-x", broker}, true,
			[]string{"access_key_id", "AKIA", "session_token", "(none)"}},
		{"c-file", []string{"wasm", "run", "--dir", credsDir, cfile, "--", "p"}, true,
			[]string{"AKIA", "(none: kept for refresh_interval 1h0m0s)", "read profile p from /config/credentials"}},
		{"http-broker without allow-private", []string{"wasm", "run", "--allow-host", bu.Host, "--allow-http",
			"--env", "AWS_CONTAINER_CREDENTIALS_FULL_URI=" + b.srv.URL + "/v1/credentials", broker}, false,
			[]string{"address not allowed"}},
		{"c-file without its directory", []string{"wasm", "run", cfile, "--", "p"}, false,
			[]string{"cannot open the credentials file"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := runBinary(t, baseEnv(home), bin, tc.args...)
			out := res.Stdout + res.Stderr
			if (res.Code == 0) != tc.ok {
				t.Errorf("exit %d, want success %v\n%s", res.Code, tc.ok, out)
			}
			for _, want := range tc.contains {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			for _, secret := range []string{testSecretKey, "wasmrunsecret", "raw-token-x", o.token} {
				if strings.Contains(out, secret) {
					t.Errorf("output holds a secret (%.6s...):\n%s", secret, out)
				}
			}
			t.Logf("%s", res.Stdout)
		})
	}
}
