//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
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

// Test credentials for versitygw's root user. They are ours, not AWS's
// documentation example, so a leak in a log line is unambiguous.
const (
	testAccessKey = "AKIASIGNETTEST000001"
	testSecretKey = "sIgNeTtEsT/sEcReT+0001/xYz9876543210aBcD"
	testRegion    = "us-east-1"
	s3Host        = "s3.us-east-1.amazonaws.com"
)

var (
	signetBin      string // path of the binary built by TestMain
	signetBuildErr error  // why it could not be built, if so
)

func inCI() bool { return os.Getenv("CI") == "true" }

// missing reports a missing prerequisite: fatal in CI, a skip elsewhere.
func missing(tb testing.TB, format string, args ...any) {
	tb.Helper()
	msg := fmt.Sprintf(format, args...)
	if inCI() {
		tb.Fatalf("CI=true and a prerequisite is missing: %s", msg)
	}
	tb.Skipf("skipping: %s (this would fail with CI=true)", msg)
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "signet-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: temp dir:", err)
		os.Exit(1)
	}
	signetBuildErr = buildSignet(dir)
	if signetBuildErr != nil {
		fmt.Fprintf(os.Stderr, "e2e: cannot build ./cmd/signet: %v\n", signetBuildErr)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func buildSignet(dir string) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	out := filepath.Join(dir, "signet")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// No -race: the memory tests measure the binary's RSS.
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/signet")
	cmd.Dir = root
	cmd.Env = withoutSignetVars(os.Environ())
	b, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build ./cmd/signet: %v\n%s", err, b)
	}
	signetBin = out
	return nil
}

// repoRoot is the directory of the module's go.mod.
func repoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside a Go module")
	}
	return filepath.Dir(gomod), nil
}

// withoutSignetVars drops SIGNET_* (signet's own configuration) from env.
func withoutSignetVars(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "SIGNET_") {
			out = append(out, kv)
		}
	}
	return out
}

func needSignet(tb testing.TB) string {
	tb.Helper()
	if signetBin == "" {
		missing(tb, "signet binary not built: %v", signetBuildErr)
	}
	return signetBin
}

func needVersity(tb testing.TB) string {
	tb.Helper()
	return needPeer(tb, "SIGNETTEST_VERSITYGW", "versitygw")
}

// needPeer finds a test peer's binary: the file env names, else name on
// PATH; missing fails in CI and skips elsewhere.
func needPeer(tb testing.TB, env, name string) string {
	tb.Helper()
	if p := os.Getenv(env); p != "" {
		if st, err := os.Stat(p); err != nil || st.IsDir() {
			tb.Fatalf("%s=%q is not a file: %v", env, p, err)
		}
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	missing(tb, "%s not found: set %s or run ./scripts/test.sh", name, env)
	return ""
}

func needCommand(tb testing.TB, name string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		missing(tb, "%s not in PATH", name)
	}
	return p
}

// freePort returns a loopback port that was free a moment ago. Callers that
// hand it to another process retry on a bind failure.
func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// syncBuffer collects a process's output for failure reports.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// baseEnv is the whole environment of a child process: no inherited
// SIGNET_*, AWS_*, proxies or VGW_*.
func baseEnv(home string, extra ...string) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "LANG=C.UTF-8"}
	return append(env, extra...)
}

// ---------------------------------------------------------------- versitygw

type versity struct {
	Addr    string // 127.0.0.1:PORT
	DataDir string
	NoMeta  bool
}

func (v *versity) URL() string { return "http://" + v.Addr }

type versityOpts struct {
	AccessKey, SecretKey string
}

// startVersity runs versitygw v1.8.0 (posix backend) with our test root
// credentials, path-style and virtual-hosted (s3.us-east-1.amazonaws.com)
// addressing and keep-alive, and stops it at cleanup.
func startVersity(tb testing.TB) *versity {
	return startVersityOpts(tb, versityOpts{AccessKey: testAccessKey, SecretKey: testSecretKey})
}

func startVersityOpts(tb testing.TB, o versityOpts) *versity {
	tb.Helper()
	bin := needVersity(tb)
	dir := tb.TempDir()
	data, noMeta := versityDataDir(tb, dir)
	health := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	addr := startVersityProc(tb, bin, "versitygw",
		baseEnv(dir, "ROOT_ACCESS_KEY_ID="+o.AccessKey, "ROOT_SECRET_ACCESS_KEY="+o.SecretKey),
		func(addr string) []string { return versityArgs(addr, noMeta, data) },
		func(addr string) error { return healthOK(health, "http://"+addr+"/health") })
	return &versity{Addr: addr, DataDir: data, NoMeta: noMeta}
}

// versityDataDir makes the posix backend's directory and finds out whether
// it takes user xattrs; without them versitygw must run with --nometa.
func versityDataDir(tb testing.TB, dir string) (data string, noMeta bool) {
	tb.Helper()
	data = filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		tb.Fatal(err)
	}
	if err := syscall.Setxattr(data, "user.signettest", []byte("1"), 0); err != nil {
		tb.Logf("versitygw: user xattrs unsupported in %s (%v): running with --nometa", data, err)
		return data, true
	}
	return data, false
}

// versityArgs are the gateway's arguments: path-style and virtual-hosted
// (s3.us-east-1.amazonaws.com) addressing, keep-alive, a health path, the
// posix backend on data; extra flags go before the backend.
func versityArgs(addr string, noMeta bool, data string, extra ...string) []string {
	args := append([]string{"--port", addr, "--health", "/health", "--keep-alive", "--quiet",
		"--virtual-domain", s3Host}, extra...)
	args = append(args, "posix")
	if noMeta {
		args = append(args, "--nometa")
	}
	return append(args, data)
}

// healthOK is one look at a health URL: nil on 200.
func healthOK(c *http.Client, url string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: status %d", url, resp.StatusCode)
	}
	return nil
}

// ------------------------------------------------------------------- signet

type signetProc struct {
	cmd        *exec.Cmd
	Pid        int
	ProxyAddr  string   // forward proxy listener
	Reverse    []string // reverse listeners, by index
	AdminAddr  string   // admin listener; "" when admin.listen is off
	StateDir   string
	ConfigFile string // the config file signet serves (a reload reads it again)
	TempDir    string // signet's TMPDIR, private to this process
	Logs       *syncBuffer
	exited     chan struct{}
	waitErr    error

	mu      sync.Mutex
	secrets []string // scanned for in Logs when signet stops
	// started is just before signet was started: files in its state
	// directory modified since are what it wrote (scanned at stop too).
	started time.Time
}

// AddSecrets adds to what must never appear in signet's logs (checked
// when it stops, for every test): the test's static secret keys are
// there from the start; a test adds the session tokens, tokens and
// signatures it comes to know.
func (s *signetProc) AddSecrets(secrets ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range secrets {
		if x != "" {
			s.secrets = append(s.secrets, x)
		}
	}
}

func (s *signetProc) ProxyURL() string { return "http://" + s.ProxyAddr }

// AdminURL is the base URL of the admin listener.
func (s *signetProc) AdminURL() string { return "http://" + s.AdminAddr }

type logLine struct {
	Msg      string `json:"msg"`
	Listener string `json:"listener"`
	Index    *int   `json:"index"`
	Addr     string `json:"addr"`
}

// startSignet runs `signet serve -c FILE` with configYAML and waits (10 s at
// most) until the JSON log reports the proxy listener and every reverse
// listener, whose count is that of the `- {listen:` / `- listen:` items in the
// config's reverse list (pass it explicitly: nReverse). The config is
// expected to log JSON to stderr. It is stopped with SIGTERM at cleanup.
func startSignet(tb testing.TB, configYAML string, nReverse int) *signetProc {
	tb.Helper()
	return startSignetEnv(tb, configYAML, nReverse)
}

// startSignetEnv is startSignet with extra "K=V" variables in signet's
// environment (SOFTHSM2_CONF for a PKCS#11 token, say).
//
// Every signet gets its admin listener on a free port
// (SIGNET_ADMIN__LISTEN=127.0.0.1:0, which wins over the config file), so
// that tests running in parallel do not collide on the default
// 127.0.0.1:8081; extraEnv may set it otherwise (off: no admin listener).
func startSignetEnv(tb testing.TB, configYAML string, nReverse int, extraEnv ...string) *signetProc {
	tb.Helper()
	adminListen := "127.0.0.1:0"
	for _, kv := range extraEnv {
		if v, ok := strings.CutPrefix(kv, "SIGNET_ADMIN__LISTEN="); ok {
			adminListen = v
		}
	}
	extraEnv = append([]string{"SIGNET_ADMIN__LISTEN=" + adminListen}, extraEnv...)
	bin := needSignet(tb)
	dir := tb.TempDir()
	home := filepath.Join(dir, "home")
	tmp := filepath.Join(dir, "tmp")
	for _, d := range []string{home, tmp} {
		if err := os.Mkdir(d, 0o700); err != nil {
			tb.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "signet.yaml")
	if err := os.WriteFile(cfg, []byte(configYAML), 0o600); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "-c", cfg)
	cmd.Env = baseEnv(home, append([]string{"AWS_EC2_METADATA_DISABLED=true", "TMPDIR=" + tmp}, extraEnv...)...)
	cmd.Dir = dir
	logs := &syncBuffer{}
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	cmd.Stdout = logs
	started := time.Now()
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start signet: %v", err)
	}
	s := &signetProc{cmd: cmd, Pid: cmd.Process.Pid, Logs: logs, TempDir: tmp, ConfigFile: cfg, started: started,
		StateDir: stateDirOf(configYAML), exited: make(chan struct{}), Reverse: make([]string, nReverse),
		secrets: []string{testSecretKey, testBaseSecret}}
	go func() {
		s.waitErr = cmd.Wait()
		pw.Close()
		close(s.exited)
	}()
	found := make(chan logLine, 16)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			line := sc.Bytes()
			logs.Write(append(append([]byte(nil), line...), '\n'))
			var ll logLine
			if json.Unmarshal(line, &ll) == nil && ll.Msg == "listening" {
				select {
				case found <- ll:
				default:
				}
			}
		}
		io.Copy(io.Discard, pr)
	}()
	tb.Cleanup(func() { s.stop(tb) })

	need := 1 + nReverse
	if adminListen != "off" {
		need++
	}
	timeout := time.After(10 * time.Second)
	for need > 0 {
		select {
		case ll := <-found:
			switch ll.Listener {
			case "proxy":
				if s.ProxyAddr == "" {
					need--
				}
				s.ProxyAddr = ll.Addr
			case "reverse":
				if ll.Index == nil || *ll.Index < 0 || *ll.Index >= nReverse {
					tb.Fatalf("signet reported a reverse listener with a bad index: %+v\nlogs:\n%s", ll, logs.String())
				}
				if s.Reverse[*ll.Index] == "" {
					need--
				}
				s.Reverse[*ll.Index] = ll.Addr
			case "admin":
				if s.AdminAddr == "" {
					need--
				}
				s.AdminAddr = ll.Addr
			}
		case <-s.exited:
			tb.Fatalf("signet exited before listening: %v\nlogs:\n%s", s.waitErr, logs.String())
		case <-timeout:
			tb.Fatalf("signet did not report its listeners within 10s (proxy=%q reverse=%q admin=%q)\nlogs:\n%s",
				s.ProxyAddr, s.Reverse, s.AdminAddr, logs.String())
		}
	}
	addrs := append([]string{s.ProxyAddr}, s.Reverse...)
	if s.AdminAddr != "" {
		addrs = append(addrs, s.AdminAddr)
	}
	for _, a := range addrs {
		if host, _, err := net.SplitHostPort(a); err != nil || host != "127.0.0.1" {
			tb.Fatalf("signet listener address %q is not on 127.0.0.1", a)
		}
	}
	return s
}

func (s *signetProc) stop(tb testing.TB) {
	select {
	case <-s.exited:
		tb.Errorf("signet exited on its own before the end of the test: %v", s.waitErr)
	default:
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
			tb.Logf("signet stopped after SIGTERM: %v", s.waitErr)
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.exited
			tb.Errorf("signet did not exit within 10s of SIGTERM")
		}
	}
	s.mu.Lock()
	secrets := append([]string(nil), s.secrets...)
	s.mu.Unlock()
	scanForSecrets(tb, secrets, []byte(s.Logs.String()))
	scanWrittenFiles(tb, secrets, s.started, s.stateDir(), s.TempDir)
	if tb.Failed() {
		tb.Logf("signet logs:\n%s", s.Logs.String())
	}
}

// stateDirOf finds a top-level `state_dir:` in a config, for the spool checks.
func stateDirOf(configYAML string) string {
	for _, l := range strings.Split(configYAML, "\n") {
		if v, ok := strings.CutPrefix(l, "state_dir:"); ok {
			return strings.Trim(strings.TrimSpace(v), `"'`)
		}
	}
	return ""
}

// vmHWM is the peak resident set size of the process, from /proc.
func vmHWM(tb testing.TB, pid int) int64 {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			f := strings.Fields(v)
			if len(f) != 2 || f[1] != "kB" {
				tb.Fatalf("unexpected VmHWM line %q", l)
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return kb * 1024
		}
	}
	tb.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

// s3Config is the public-contract config for S3 through versitygw: the
// forward proxy signs s3.us-east-1.amazonaws.com and its virtual-hosted
// buckets and dials versitygw for them; one reverse listener signs every
// request for versitygw. extra is appended verbatim at the top level;
// routeExtra is added to the route (indented lines, e.g. "    payload: unsigned").
func s3Config(v *versity, secret, routeExtra, extra string) string {
	if routeExtra != "" && !strings.HasSuffix(routeExtra, "\n") {
		routeExtra += "\n"
	}
	return fmt.Sprintf(`listen: 127.0.0.1:0
log: {level: debug, format: json}
sources:
  test: {method: static, static: {access_key_id: %[2]s, secret_access_key: %[3]q}}
routes:
  - hosts: ["%[4]s", "*.%[4]s"]
    source: test
    upstream_scheme: http
%[5]supstream:
  connect_to:
    "%[4]s:80": "%[1]s"
    "*.%[4]s:80": "%[1]s"
reverse:
  - {listen: 127.0.0.1:0, upstream: "http://%[1]s", source: test, service: s3, region: %[6]s}
%[7]s`, v.Addr, testAccessKey, secret, s3Host, routeExtra, testRegion, extra)
}

// -------------------------------------------------------------- signet error

// signetError is signet's own error answer.
type signetError struct {
	Error   string `json:"error"`
	Message string `json:"message"`
	Fix     string `json:"fix"`
}

// checkSignetError asserts that resp is one of signet's own error answers
// with the given status: an X-Signet-Error code and the matching JSON body.
func checkSignetError(t *testing.T, status int, body []byte, hdr http.Header, wantStatus int) signetError {
	t.Helper()
	if status != wantStatus {
		t.Errorf("status %d, want %d; body: %s", status, wantStatus, body)
	}
	code := hdr.Get("X-Signet-Error")
	if code == "" {
		t.Errorf("no X-Signet-Error header; headers %v", hdr)
	}
	var e signetError
	if err := json.Unmarshal(body, &e); err != nil {
		t.Errorf("body is not JSON: %v: %q", err, body)
		return e
	}
	if e.Error == "" || e.Error != code {
		t.Errorf("JSON error %q does not match X-Signet-Error %q", e.Error, code)
	}
	if e.Message == "" || e.Fix == "" {
		t.Errorf("JSON error lacks a message or a fix: %+v", e)
	}
	return e
}

// countingServer is a local upstream that records what reaches it.
type countingServer struct {
	mu   sync.Mutex
	reqs []*http.Request
	uris []string
}

func (c *countingServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	c.mu.Lock()
	c.reqs = append(c.reqs, r)
	c.uris = append(c.uris, r.RequestURI)
	c.mu.Unlock()
	w.Header().Set("X-Upstream", "counting")
	io.WriteString(w, "upstream says hi")
}

func (c *countingServer) snapshot() ([]*http.Request, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*http.Request(nil), c.reqs...), append([]string(nil), c.uris...)
}
