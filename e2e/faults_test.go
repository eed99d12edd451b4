//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signet-proxy/signet/internal/iottest"
	"github.com/signet-proxy/signet/internal/ststest"
)

// Fault injection, end to end: credential providers that misbehave. Each
// provider kind (the fake STS, the fake IoT credentials provider, a
// WebAssembly module) is driven through every fault, each fault on its
// own source and route of one signet, all at once:
//
//  1. the fault from the start, so the source never held keys: the
//     client gets 502 no-credentials, within the refresh timeout;
//  2. healed: requests succeed (versitygw, in IAM mode, verifies the
//     minted session's key, secret, token and expiry);
//  3. the fault again while the source holds keys that live
//     faultLifetime: requests keep succeeding, without waiting for the
//     provider, until the mandatory point; then 503
//     credentials-refresh-failed, and never an answer signed with the
//     expired keys (versitygw would answer 403);
//  4. healed: requests succeed with freshly fetched keys.
const (
	faultLifetime = 5 * time.Second
	// faultRefreshTimeout bounds one provider call (refresh.timeout and
	// the provider's own timeout); a slow provider takes longer.
	faultRefreshTimeout = 2 * time.Second
	// faultFast is the most a request may take while the source still
	// serves its keys: far above a loopback request's latency, far below
	// a wait for the hanging provider (faultRefreshTimeout).
	faultFast = faultRefreshTimeout / 2
	// faultEvery is the time between a route's requests.
	faultEvery = 150 * time.Millisecond
	// faultHeal bounds the wait for a healed provider to be used.
	faultHeal = 25 * time.Second
)

// The faults, by name: the test names cite them.
var refreshFaults = []string{"slow", "error", "garbage", "truncated", "wrong-fields", "expired"}

// faultProvider is one provider of one fault's source.
type faultProvider interface {
	// set injects fault, or heals with "".
	set(tb testing.TB, fault string)
	// lastGood is the newest session handed out that was not expired at
	// birth: its access key and its lifetime.
	lastGood() (key string, issued, expires time.Time, ok bool)
	// calls counts provider calls so far; -1 when they cannot be seen.
	calls() int
}

// faultSecrets collects the secrets the providers handed out, for the
// scan of signet's logs and error bodies.
type faultSecrets struct {
	mu      sync.Mutex
	secrets []string
	bodies  [][]byte
}

func (f *faultSecrets) add(ss ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.secrets = append(f.secrets, ss...)
}

func (f *faultSecrets) body(b []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bodies = append(f.bodies, b)
}

// TestFaultRefreshProviders: every provider kind through every fault;
// see the phases above. Names: TestFaultRefreshProviders/KIND/FAULT.
func TestFaultRefreshProviders(t *testing.T) {
	t.Parallel()
	v := startVersityIAM(t, testAccessKey, testSecretKey)
	role := v.createRole(t, "signet-faults")
	rootc := newSDKClient("", testAccessKey, testSecretKey)
	if r := rootc.Do(t, "PUT", v.URL()+"/faults", nil); r.Status != 200 {
		t.Fatalf("create bucket: %d\n%s", r.Status, r.Body)
	}
	for _, f := range refreshFaults {
		if r := rootc.Do(t, "PUT", v.URL()+"/faults/"+f+"/obj", []byte("payload of "+f)); r.Status != 200 {
			t.Fatalf("put object: %d\n%s", r.Status, r.Body)
		}
	}
	module := buildFaultWasm(t)

	// The kinds, and the faults of each, run at once: t.Run from
	// goroutines, since t.Parallel would queue them behind -parallel
	// (GOMAXPROCS) and stretch a fault's phases far apart.
	var kinds sync.WaitGroup
	for _, kind := range []string{"sts", "iot", "wasm"} {
		kinds.Go(func() {
			t.Run(kind, func(t *testing.T) {
				sec := &faultSecrets{}
				providers := map[string]faultProvider{}
				var sources strings.Builder
				mode := "deferred"
				if kind == "wasm" {
					mode = "eager" // the timer refreshes, not requests
				}
				refresh := fmt.Sprintf("    refresh: {mode: %s, timeout: %s}\n", mode, faultRefreshTimeout)
				if kind == "sts" {
					fmt.Fprintf(&sources, "  base: {method: static, static: {access_key_id: %s, secret_access_key: %q}}\n", testBaseKey, testBaseSecret)
				}
				for _, fault := range refreshFaults {
					var p faultProvider
					var src string
					switch kind {
					case "sts":
						sp := newSTSFault(t, v, role, sec)
						p, src = sp, fmt.Sprintf(`  %s:
    method: sts
    sts: {role_arn: %q, source: base, endpoint: %q, region: %s, duration: 15m}
`, fault, role.ARN, sp.f.URL(), testRegion)
					case "iot":
						ip := newIoTFault(t, v, role)
						p, src = ip, fmt.Sprintf(`  %s:
    method: iot
    iot: {endpoint: "localhost:%s", role_alias: %s, thing_name: %s, certificate: %q, private_key: %q, ca_file: %q, timeout: %s}
`, fault, ip.fake.Port(), ip.alias, ip.thing, ip.files.cert, ip.files.key, ip.files.ca, faultRefreshTimeout)
					case "wasm":
						wp := newWasmFault(t, v, role, sec)
						p, src = wp, fmt.Sprintf(`  %s:
    method: wasm
    wasm: {module: %q, dir: %q, timeout: %s}
`, fault, module, wp.dir, faultRefreshTimeout)
					}
					p.set(t, fault) // phase 1: from the start
					providers[fault] = p
					sources.WriteString(src + refresh)
				}
				var routes strings.Builder
				for _, fault := range refreshFaults {
					fmt.Fprintf(&routes, "  - {hosts: [%q], path_prefix: /faults/%s/, source: %s, upstream_scheme: http}\n", s3Host, fault, fault)
				}
				cfg := fmt.Sprintf(`listen: 127.0.0.1:0
log: {level: debug, format: json}
sources:
%sroutes:
%supstream:
  connect_to:
    "%s:80": "%s"
`, sources.String(), routes.String(), s3Host, v.Addr)
				s := startSignet(t, cfg, 0)
				proxyURL, _ := url.Parse(s.ProxyURL())
				hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL), MaxIdleConnsPerHost: 32}}
				baseline := goroutines(t, s)
				// Cleanups run last first: this one after every fault's
				// subtest and before signet stops (and scans its logs).
				t.Cleanup(func() {
					hc.CloseIdleConnections()
					after := goroutines(t, s)
					t.Logf("%s: signet goroutines %d after start, %d after the faults", kind, baseline, after)
					if after > baseline+200 {
						t.Errorf("signet has %d goroutines after the faults, %d after start: a leak", after, baseline)
					}
					for _, p := range providers {
						if ip, ok := p.(*iotFault); ok {
							sec.add(ip.secrets()...)
						}
					}
					sec.mu.Lock()
					defer sec.mu.Unlock()
					s.AddSecrets(sec.secrets...)
					scanForSecrets(t, append([]string{testSecretKey, testBaseSecret}, sec.secrets...), sec.bodies...)
				})
				var faults sync.WaitGroup
				for _, fault := range refreshFaults {
					faults.Go(func() {
						t.Run(fault, func(t *testing.T) { runRefreshFault(t, s, hc, providers[fault], fault, sec) })
					})
				}
				faults.Wait()
			})
		})
	}
	kinds.Wait()
}

// faultProbe is one request of a fault's client.
type faultProbe struct {
	at     time.Time
	took   time.Duration
	status int
	code   string // X-Signet-Error
	body   []byte
	err    error
	// calls is the provider's call count when the request was sent.
	calls int
}

func (p faultProbe) ok(payload string) bool {
	return p.err == nil && p.status == 200 && p.code == "" && string(p.body) == payload
}

// signetErr reports whether p is signet's own answer status/code, with
// the JSON body that goes with it.
func (p faultProbe) signetErr(status int, code string) bool {
	if p.err != nil || p.status != status || p.code != code {
		return false
	}
	var e signetError
	return json.Unmarshal(p.body, &e) == nil && e.Error == code && e.Message != "" && e.Fix != ""
}

func (p faultProbe) String() string {
	if p.err != nil {
		return fmt.Sprintf("error after %s: %v", p.took.Round(time.Millisecond), p.err)
	}
	return fmt.Sprintf("%d %q after %s: %.200s", p.status, p.code, p.took.Round(time.Millisecond), p.body)
}

func sendProbe(hc *http.Client, u string, p faultProvider, sec *faultSecrets) faultProbe {
	pr := faultProbe{at: time.Now(), calls: p.calls()}
	resp, err := hc.Get(u)
	if err != nil {
		pr.err, pr.took = err, time.Since(pr.at)
		return pr
	}
	defer resp.Body.Close()
	pr.body, pr.err = io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	pr.took = time.Since(pr.at)
	pr.status, pr.code = resp.StatusCode, resp.Header.Get("X-Signet-Error")
	if pr.code != "" {
		sec.body(pr.body)
	}
	return pr
}

// pollUntilOK sends requests until one succeeds (within faultHeal); every
// other answer must be signet's status/code.
func pollUntilOK(t *testing.T, hc *http.Client, u, payload string, p faultProvider, sec *faultSecrets, status int, code string) (faultProbe, int) {
	t.Helper()
	deadline := time.Now().Add(faultHeal)
	for n := 1; ; n++ {
		pr := sendProbe(hc, u, p, sec)
		switch {
		case pr.ok(payload):
			return pr, n
		case !pr.signetErr(status, code):
			t.Errorf("while healing: %s; want 200 or %d %s", pr, status, code)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no success within %s of healing the provider; last answer %s", faultHeal, pr)
		}
		time.Sleep(faultEvery)
	}
}

func runRefreshFault(t *testing.T, s *signetProc, hc *http.Client, p faultProvider, fault string, sec *faultSecrets) {
	u := "http://" + s3Host + "/faults/" + fault + "/obj"
	payload := "payload of " + fault
	start := time.Now()
	rel := func(at time.Time) string { return at.Sub(start).Round(10 * time.Millisecond).String() }

	// 1. No keys yet: signet's 502, within the refresh timeout.
	pr := sendProbe(hc, u, p, sec)
	if !pr.signetErr(http.StatusBadGateway, "no-credentials") {
		t.Errorf("with no keys: %s; want 502 no-credentials", pr)
	}
	if pr.took > faultRefreshTimeout+3*time.Second {
		t.Errorf("with no keys the request took %s; the refresh timeout is %s", pr.took, faultRefreshTimeout)
	}
	none := pr

	// 2. Healed.
	p.set(t, "")
	healed, n := pollUntilOK(t, hc, u, payload, p, sec, http.StatusBadGateway, "no-credentials")
	key, issued, expires, ok := p.lastGood()
	if !ok {
		t.Fatal("the provider handed out no session")
	}
	waitRefreshLogged(t, s, fault, key)

	// 3. The fault while the keys are held. Expirations have whole
	// seconds; the mandatory point is at most a quarter of the lifetime
	// before expiry, counted from when the keys arrived (after issued).
	p.set(t, fault)
	callsBefore := p.calls()
	exp := expires.Truncate(time.Second)
	mandatory := exp.Add(-exp.Sub(issued) / 4)
	var probes []faultProbe
	n503 := 0
	for time.Now().Before(exp.Add(800*time.Millisecond)) || n503 < 2 {
		if time.Now().After(exp.Add(15 * time.Second)) {
			t.Fatalf("still no 503 credentials-refresh-failed 15s after the keys expired")
		}
		pr := sendProbe(hc, u, p, sec)
		probes = append(probes, pr)
		if pr.signetErr(http.StatusServiceUnavailable, "credentials-refresh-failed") {
			n503++
		}
		time.Sleep(faultEvery)
	}
	var maxHeld time.Duration
	servedDuringFault := false
	for _, pr := range probes {
		switch {
		case pr.ok(payload):
			if pr.calls > callsBefore {
				servedDuringFault = true
			}
		case pr.signetErr(http.StatusServiceUnavailable, "credentials-refresh-failed"):
		default:
			// versitygw's 403 here would mean keys it does not accept
			// (expired ones) were used.
			t.Errorf("at +%s, keys held: %s; want 200 or 503 credentials-refresh-failed", rel(pr.at), pr)
		}
		if pr.at.Add(pr.took).Before(mandatory.Add(-150 * time.Millisecond)) {
			maxHeld = max(maxHeld, pr.took)
			if !pr.ok(payload) {
				t.Errorf("at +%s, before the mandatory point +%s: %s; want 200", rel(pr.at), rel(mandatory), pr)
			} else if pr.took > faultFast {
				t.Errorf("at +%s a request took %s while the keys were still served: it waited for the provider", rel(pr.at), pr.took)
			}
		}
		if pr.at.After(exp.Add(100*time.Millisecond)) && pr.ok(payload) {
			t.Errorf("at +%s, after the keys expired at +%s, a request succeeded with no new keys", rel(pr.at), rel(exp))
		}
		if pr.took > faultRefreshTimeout+3*time.Second {
			t.Errorf("at +%s a request took %s; the refresh timeout is %s", rel(pr.at), pr.took, faultRefreshTimeout)
		}
	}
	if c := p.calls(); c >= 0 && !servedDuringFault {
		t.Errorf("no request succeeded after the provider was called with the fault (%d calls before, %d after)", callsBefore, c)
	}

	// 4. Healed again: fresh keys.
	p.set(t, "")
	recovered, m := pollUntilOK(t, hc, u, payload, p, sec, http.StatusServiceUnavailable, "credentials-refresh-failed")
	key2, _, _, _ := p.lastGood()
	if key2 == key {
		t.Errorf("after healing, the provider handed out no new session")
	}
	waitRefreshLogged(t, s, fault, key2)
	t.Logf("%s: no keys: %s; healed after %d requests (+%s); keys of %s held through the fault: %d requests, slowest %s before the mandatory point +%s, %d answered 503; expired +%s; healed after %d requests (+%s)",
		fault, none, n, rel(healed.at), exp.Sub(issued).Round(time.Millisecond), len(probes), maxHeld.Round(time.Millisecond),
		rel(mandatory), n503, rel(exp), m, rel(recovered.at))
}

// waitRefreshLogged waits (5 s at most) for signet's "credentials
// refreshed" line of source with key: the keys it signs with are those.
func waitRefreshLogged(t *testing.T, s *signetProc, source, key string) {
	t.Helper()
	for i := 0; ; i++ {
		keys := refreshedKeys(s.Logs.String(), source)
		if len(keys) > 0 && keys[len(keys)-1] == redactKey(key) {
			return
		}
		if i == 50 {
			t.Errorf("source %s: signet's last logged refresh is %v, want %s", source, keys, redactKey(key))
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// goroutines reads go_goroutines from signet's /metrics.
func goroutines(t *testing.T, s *signetProc) int {
	t.Helper()
	r := adminGet(t, s, "/metrics", nil)
	sc := bufio.NewScanner(bytes.NewReader(r.Body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("go_goroutines %q: %v", v, err)
			}
			return int(n)
		}
	}
	t.Fatalf("no go_goroutines in /metrics (%d)", r.Status)
	return 0
}

// ------------------------------------------------------------------ STS

type stsFault struct {
	f     *ststest.Server
	mu    sync.Mutex
	mints []ststest.Minted
}

var stsFailures = map[string]ststest.Failure{"": 0, "slow": ststest.FailHang, "error": ststest.FailInternal,
	"garbage": ststest.FailNotXML, "truncated": ststest.FailMalformed, "wrong-fields": ststest.FailWrongFields,
	"expired": ststest.FailExpired}

func newSTSFault(t *testing.T, v *versityIAM, role iamRole, sec *faultSecrets) *stsFault {
	p := &stsFault{}
	p.f = ststest.New(t, ststest.Options{PlainHTTP: true, OnMint: func(m ststest.Minted) error {
		sec.add(m.SecretAccessKey, m.SessionToken)
		if err := v.addSession(m, role); err != nil {
			return err
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		p.mints = append(p.mints, m)
		return nil
	}})
	p.f.AddUser(testBaseKey, testBaseSecret, "arn:aws:iam::000000000000:user/signet-base")
	p.f.AddRole(ststest.Role{ARN: role.ARN})
	p.f.SetLifetime(faultLifetime)
	return p
}

func (p *stsFault) set(tb testing.TB, fault string) {
	f, ok := stsFailures[fault]
	if !ok {
		tb.Fatalf("unknown fault %q", fault)
	}
	p.f.FailAlways(f)
}

func (p *stsFault) calls() int { return p.f.CallCount() }

func (p *stsFault) lastGood() (string, time.Time, time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.mints) - 1; i >= 0; i-- {
		if m := p.mints[i]; m.Expires.After(m.Issued) {
			return m.AccessKeyID, m.Issued, m.Expires, true
		}
	}
	return "", time.Time{}, time.Time{}, false
}

// ------------------------------------------------------------------ IoT

type iotFault struct{ *iotSetup }

var iotFailures = map[string]iottest.Failure{"": 0, "slow": iottest.FailHang, "error": iottest.FailInternal,
	"garbage": iottest.FailNotJSON, "truncated": iottest.FailMalformed, "wrong-fields": iottest.FailIncomplete,
	"expired": iottest.FailExpired}

func newIoTFault(t *testing.T, v *versityIAM, role iamRole) *iotFault {
	p := &iotFault{startIoT(t, v, role, t.TempDir())}
	p.fake.SetLifetime(faultLifetime)
	return p
}

func (p *iotFault) secrets() []string {
	ms, _ := p.mints()
	var out []string
	for _, m := range ms {
		out = append(out, m.SecretAccessKey, m.SessionToken)
	}
	return out
}

func (p *iotFault) set(tb testing.TB, fault string) {
	f, ok := iotFailures[fault]
	if !ok {
		tb.Fatalf("unknown fault %q", fault)
	}
	p.fake.FailAlways(f)
}

func (p *iotFault) calls() int { return len(p.fake.Calls()) }

func (p *iotFault) lastGood() (string, time.Time, time.Time, bool) {
	ms, _ := p.mints()
	for i := len(ms) - 1; i >= 0; i-- {
		if m := ms[i]; m.Expires.After(m.Issued) {
			return m.AccessKeyID, m.Issued, m.Expires, true
		}
	}
	return "", time.Time{}, time.Time{}, false
}

// ----------------------------------------------------------------- wasm

// faultModuleC is a credential_process-style WASI command whose every run
// does what /config/reply says: a first line `exit=N sleep=S`, then the
// text to print (on stdout when N is 0, else on stderr) after sleeping S
// seconds. The test writes the reply, so one small module is slow,
// failing, garbage-printing or expired on demand.
const faultModuleC = `#include <stdio.h>
#include <unistd.h>

int main(void) {
	FILE *f = fopen("/config/reply", "r");
	if (!f) {
		fputs("faultmod: cannot open /config/reply\n", stderr);
		return 3;
	}
	int code = 0;
	unsigned secs = 0;
	if (fscanf(f, "exit=%d sleep=%u\n", &code, &secs) != 2) {
		fputs("faultmod: bad first line\n", stderr);
		return 3;
	}
	if (secs)
		sleep(secs);
	char buf[4096];
	size_t n;
	FILE *out = code ? stderr : stdout;
	while ((n = fread(buf, 1, sizeof buf, f)) > 0)
		fwrite(buf, 1, n, out);
	return code;
}
`

// buildFaultWasm builds faultModuleC for wasm32-wasi with clang and
// Debian's wasi-libc, as extensions/c-file/build.sh does.
func buildFaultWasm(t *testing.T) string {
	t.Helper()
	clang := needCommand(t, "clang")
	needCommand(t, "wasm-ld")
	dir := t.TempDir()
	src := writeTestFile(t, filepath.Join(dir, "fault.c"), []byte(faultModuleC))
	out := filepath.Join(dir, "fault.wasm")
	cmd := exec.Command(clang, "--target=wasm32-wasi", "--sysroot=/usr", "-O2", "-Wall", "-Wextra", "-Werror",
		"-Wl,--strip-all", "-o", out, src)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("clang fault.c: %v\n%s", err, b)
	}
	return out
}

type wasmFault struct {
	v    *versityIAM
	role iamRole
	sec  *faultSecrets
	dir  string

	mu              sync.Mutex
	key             string
	issued, expires time.Time
}

func newWasmFault(t *testing.T, v *versityIAM, role iamRole, sec *faultSecrets) *wasmFault {
	return &wasmFault{v: v, role: role, sec: sec, dir: t.TempDir()}
}

// set writes the reply of the module's next runs; healing mints a new
// session that versitygw knows.
func (p *wasmFault) set(tb testing.TB, fault string) {
	key, secret, token := "ASIA"+randomUpper(16), randomToken(40), randomToken(180)
	now := time.Now()
	creds := func(exp time.Time) string {
		b, _ := json.Marshal(map[string]any{"Version": 1, "AccessKeyId": key, "SecretAccessKey": secret,
			"SessionToken": token, "Expiration": exp.UTC().Format(time.RFC3339)})
		return string(b)
	}
	var reply string
	switch fault {
	case "":
		m := ststest.Minted{AccessKeyID: key, SecretAccessKey: secret, SessionToken: token, Issued: now,
			Expires: now.Add(faultLifetime), RoleARN: p.role.ARN, RoleSessionName: "signet-wasm-fault"}
		if err := p.v.addSession(m, p.role); err != nil {
			tb.Fatalf("add the module's session to versitygw: %v", err)
		}
		p.mu.Lock()
		p.key, p.issued, p.expires = key, now, m.Expires
		p.mu.Unlock()
		reply = "exit=0 sleep=0\n" + creds(m.Expires)
	case "slow":
		reply = "exit=0 sleep=60\n" + creds(now.Add(time.Hour))
	case "error":
		reply = "exit=1 sleep=0\nfaultmod: the broker answered HTTP 503\n"
	case "garbage":
		reply = "exit=0 sleep=0\n<html><body>Sign in to continue</body></html>\n"
	case "truncated":
		c := creds(now.Add(time.Hour))
		reply = "exit=0 sleep=0\n" + c[:strings.Index(c, secret)+10]
	case "wrong-fields":
		b, _ := json.Marshal(map[string]any{"Version": 1, "AccessKey": key, "Secret": secret, "Token": token})
		reply = "exit=0 sleep=0\n" + string(b)
	case "expired":
		reply = "exit=0 sleep=0\n" + creds(now.Add(-time.Minute))
	default:
		tb.Fatalf("unknown fault %q", fault)
	}
	p.sec.add(secret, token)
	// Atomically: a run never reads half a reply.
	tmp := filepath.Join(p.dir, ".reply.tmp")
	if err := os.WriteFile(tmp, []byte(reply), 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(p.dir, "reply")); err != nil {
		tb.Fatal(err)
	}
}

func (p *wasmFault) calls() int { return -1 }

func (p *wasmFault) lastGood() (string, time.Time, time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.key, p.issued, p.expires, p.key != ""
}

func randomFrom(chars string, n int) string {
	b := make([]byte, n)
	for i := range b {
		x, err := rand.Int(rand.Reader, big.NewInt(int64(len(chars))))
		if err != nil {
			panic(err)
		}
		b[i] = chars[x.Int64()]
	}
	return string(b)
}

func randomUpper(n int) string { return randomFrom("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", n) }

func randomToken(n int) string {
	return randomFrom("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", n)
}
