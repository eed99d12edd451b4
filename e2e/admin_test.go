//go:build linux

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signet-proxy/signet/internal/ststest"
)

// The admin listener seen from outside: SDK apps beside signet take its
// refreshed credentials (the container credentials endpoint, and
// credential_process), /readyz follows the sources, and nothing signet
// writes holds a secret.

// mintLog records the sessions a fake STS minted.
type mintLog struct {
	mu sync.Mutex
	ms []ststest.Minted
}

func (l *mintLog) add(m ststest.Minted) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ms = append(l.ms, m)
}

func (l *mintLog) all() []ststest.Minted {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]ststest.Minted(nil), l.ms...)
}

func (l *mintLog) count() int { return len(l.all()) }

func (l *mintLog) last(tb testing.TB) ststest.Minted {
	tb.Helper()
	ms := l.all()
	if len(ms) == 0 {
		tb.Fatal("the fake STS has minted no session")
	}
	return ms[len(ms)-1]
}

// secrets are every minted secret key and session token.
func (l *mintLog) secrets() []string {
	var out []string
	for _, m := range l.all() {
		out = append(out, m.SecretAccessKey, m.SessionToken)
	}
	return out
}

// stsFixture is versitygw in IAM mode (which verifies session tokens) and a
// fake STS whose every session is written into versitygw's IAM store.
type stsFixture struct {
	v     *versityIAM
	role  iamRole
	f     *ststest.Server
	mints *mintLog
}

func newSTSFixture(t *testing.T, roleName string) *stsFixture {
	t.Helper()
	v := startVersityIAM(t, testAccessKey, testSecretKey)
	role := v.createRole(t, roleName)
	mints := &mintLog{}
	f := ststest.New(t, ststest.Options{PlainHTTP: true, OnMint: func(m ststest.Minted) error {
		if err := v.addSession(m, role); err != nil {
			return err
		}
		mints.add(m)
		return nil
	}})
	f.AddUser(testBaseKey, testBaseSecret, "arn:aws:iam::000000000000:user/signet-base")
	f.AddRole(ststest.Role{ARN: role.ARN})
	return &stsFixture{v: v, role: role, f: f, mints: mints}
}

// sources is the config's sources block: base (static keys the fake STS
// knows), role (assumed with them, refresh as given), root (versitygw's
// root keys).
func (fx *stsFixture) sources(refresh string) string {
	if refresh == "" {
		refresh = "{mode: deferred}"
	}
	return fmt.Sprintf(`sources:
  base: {method: static, static: {access_key_id: %[1]s, secret_access_key: %[2]q}}
  root: {method: static, static: {access_key_id: %[3]s, secret_access_key: %[4]q}}
  role:
    method: sts
    sts: {role_arn: %[5]q, source: base, endpoint: %[6]q, region: %[7]s, duration: 15m}
    refresh: %[8]s
`, testBaseKey, testBaseSecret, testAccessKey, testSecretKey, fx.role.ARN, fx.f.URL(), testRegion, refresh)
}

// adminGet GETs path on signet's admin listener (no proxy) with the
// given headers and returns the answer.
func adminGet(t *testing.T, s *signetProc, path string, hdr map[string]string) result {
	t.Helper()
	return adminDo(t, s, http.MethodGet, path, hdr)
}

func adminDo(t *testing.T, s *signetProc, method, path string, hdr map[string]string) result {
	t.Helper()
	req, err := http.NewRequest(method, s.AdminURL()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return result{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// buildProgram builds a main package of this module (a path like
// ./e2e/testdata/sdkcreds) into dir.
func buildProgram(t testing.TB, dir, pkg string) string {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, filepath.Base(pkg))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = withoutSignetVars(os.Environ())
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// The names aws-sdk-go-v2 gives its credential providers.
const (
	sdkEndpoint = "CredentialsEndpointProvider"
	sdkProcess  = "ProcessProvider"
)

// sdkReport is what testdata/sdkcreds prints.
type sdkReport struct {
	AccessKeyID string `json:"access_key_id"`
	Source      string `json:"source"`
	HasToken    bool   `json:"has_token"`
	CanExpire   bool   `json:"can_expire"`
	Expires     string `json:"expires"`
	Got         string `json:"got"`
	Error       string `json:"error"`
}

// runSDK runs testdata/sdkcreds (or argv, which ends with it) with env
// and returns its report.
func runSDK(t *testing.T, env []string, argv ...string) sdkReport {
	t.Helper()
	r := runBinary(t, env, argv[0], argv[1:]...)
	var rep sdkReport
	// The report is the last line: exec's signet logs go to stderr.
	sc := bufio.NewScanner(strings.NewReader(r.Stdout))
	var last string
	for sc.Scan() {
		last = sc.Text()
	}
	if err := json.Unmarshal([]byte(last), &rep); err != nil {
		t.Fatalf("%s: exit %d, stdout %q (%v)\nstderr: %s", filepath.Base(argv[len(argv)-1]), r.Code, r.Stdout, err, r.Stderr)
	}
	if r.Code != 0 || rep.Error != "" {
		t.Fatalf("%s: exit %d: %s\nstderr: %s", filepath.Base(argv[0]), r.Code, rep.Error, r.Stderr)
	}
	return rep
}

// sdkEnv is a clean environment for an SDK app: nothing from which the
// default chain could take credentials but what extra adds.
func sdkEnv(home string, extra ...string) []string {
	return baseEnv(home, append([]string{
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=" + filepath.Join(home, "no-aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "no-aws-credentials"),
	}, extra...)...)
}

// TestAdminCredentialsForSDKs: an aws-sdk-go-v2 app takes the sts source's
// current session from signet, through the container credentials
// endpoint (token from the environment and from signet's token file),
// through credential_process in a real shared config file (asking the
// running signet, and fetching directly when none runs), and under
// `signet exec`; in every case the keys work against versitygw, which
// verifies the session token. A wrong or missing token gets 401 and
// nothing else. Nothing signet wrote holds a secret.
func TestAdminCredentialsForSDKs(t *testing.T) {
	fx := newSTSFixture(t, "signet-admin")
	const bucket = "sdk-bucket"
	rootc := newSDKClient("", testAccessKey, testSecretKey)
	if r := rootc.Do(t, "PUT", fx.v.URL()+"/"+bucket, nil); r.Status != 200 {
		t.Fatalf("create bucket with the root keys: %d\n%s", r.Status, r.Body)
	}
	rec := &countingServer{}
	up := httptest.NewServer(rec)
	t.Cleanup(up.Close)

	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
state_dir: %q
log: {level: debug, format: json}
%sroutes:
  - hosts: ["%s"]
    source: role
    upstream_scheme: http
  - hosts: ["recorder.test"]
    source: role
    service: execute-api
    region: %s
    upstream_scheme: http
  - hosts: ["noscope.test"]
    source: role
upstream:
  connect_to:
    "%[3]s:80": "%[5]s"
    "recorder.test:80": "%[6]s"
`, state, fx.sources(""), s3Host, testRegion, fx.v.Addr, strings.TrimPrefix(up.URL, "http://"))
	s := startSignet(t, cfg, 0)
	watch := &leakWatch{}
	watch.secret(testSecretKey, testBaseSecret)

	tokFile := filepath.Join(state, "admin-token")
	st, err := os.Stat(tokFile)
	if err != nil {
		t.Fatalf("signet wrote no token file: %v", err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %04o, want 0600", st.Mode().Perm())
	}
	tokb, err := os.ReadFile(tokFile)
	if err != nil {
		t.Fatal(err)
	}
	tok := string(tokb)
	watch.secret(tok)
	s.AddSecrets(tok)

	t.Run("wrong or missing token", func(t *testing.T) {
		want := `{"code":"Unauthorized","message":"missing or wrong authorization token"}` + "\n"
		for _, tc := range []struct {
			name, method, path string
			hdr                map[string]string
		}{
			{"missing", "GET", "/v1/credentials/role", nil},
			{"wrong", "GET", "/v1/credentials/role", map[string]string{"Authorization": tok[:len(tok)-1] + "x"}},
			{"bearer", "GET", "/v1/credentials/role", map[string]string{"Authorization": "Bearer " + tok}},
			{"prefix", "GET", "/v1/credentials/role", map[string]string{"Authorization": tok[:20]}},
			{"unknown source", "GET", "/v1/credentials/nope", nil},
			{"other method", "POST", "/v1/credentials/role", map[string]string{"Authorization": "x"}},
		} {
			r := adminDo(t, s, tc.method, tc.path, tc.hdr)
			watch.blob("401 "+tc.name, r.Body)
			if r.Status != http.StatusUnauthorized || string(r.Body) != want {
				t.Errorf("%s: %d %q, want 401 %q", tc.name, r.Status, r.Body, want)
			}
			for k := range r.Header {
				if k != "Content-Type" && k != "Content-Length" && k != "Date" && k != "X-Content-Type-Options" {
					t.Errorf("%s: unexpected header %s: %q", tc.name, k, r.Header.Get(k))
				}
			}
		}
		if n := fx.mints.count(); n != 0 {
			t.Errorf("refused requests made signet fetch credentials (%d sessions minted)", n)
		}
	})

	sdk := buildProgram(t, t.TempDir(), "./e2e/testdata/sdkcreds")
	home := t.TempDir()
	args := func(key, body string) []string {
		return []string{sdk, "-endpoint", fx.v.URL(), "-bucket", bucket, "-key", key, "-body", body}
	}
	// checkCurrent: the app got the source's current session, and signet
	// fetched none for it.
	checkCurrent := func(t *testing.T, rep sdkReport, minted int, wantSource string) {
		t.Helper()
		last := fx.mints.last(t)
		if rep.AccessKeyID != last.AccessKeyID {
			t.Errorf("the SDK got key %s, want the current session's %s", rep.AccessKeyID, last.AccessKeyID)
		}
		if n := fx.mints.count(); n != minted {
			t.Errorf("%d sessions minted, want %d", n, minted)
		}
		if !rep.HasToken || !rep.CanExpire {
			t.Errorf("the SDK's keys: token %v, can expire %v; want both", rep.HasToken, rep.CanExpire)
		}
		// Both are written to the second; the session's own expiry may
		// have a fraction. The SDK takes 5 minutes off an endpoint's
		// expiry (its cache's ExpiryWindow), so as never to use keys
		// in their last minutes.
		exp, err := time.Parse(time.RFC3339, rep.Expires)
		if wantSource == sdkEndpoint {
			exp = exp.Add(5 * time.Minute)
		}
		if err != nil || exp.Sub(last.Expires).Abs() > 2*time.Second {
			t.Errorf("the SDK's keys expire %s, want the session's %s", rep.Expires, last.Expires.UTC().Format(time.RFC3339Nano))
		}
		if !strings.Contains(rep.Source, wantSource) {
			t.Errorf("the SDK's provider is %q, want %s", rep.Source, wantSource)
		}
	}

	t.Run("container endpoint, token file", func(t *testing.T) {
		rep := runSDK(t, sdkEnv(home,
			"AWS_CONTAINER_CREDENTIALS_FULL_URI="+s.AdminURL()+"/v1/credentials/role",
			"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE="+tokFile), args("container-file", "via the token file")...)
		checkCurrent(t, rep, 1, sdkEndpoint)
	})
	t.Run("container endpoint, token", func(t *testing.T) {
		rep := runSDK(t, sdkEnv(home,
			"AWS_CONTAINER_CREDENTIALS_FULL_URI="+s.AdminURL()+"/v1/credentials/role",
			"AWS_CONTAINER_AUTHORIZATION_TOKEN="+tok), args("container-token", "via the token")...)
		checkCurrent(t, rep, 1, sdkEndpoint)
	})
	awsConfig := filepath.Join(dir, "aws-config")
	writeTestFile(t, awsConfig, []byte(fmt.Sprintf("[default]\nregion = us-east-1\ncredential_process = %s credential-process --source role -c %s\n",
		signetBin, s.ConfigFile)))
	t.Run("credential_process from the running signet", func(t *testing.T) {
		// The admin listener's port was picked at start; the command
		// learns it as any config key, from the environment.
		rep := runSDK(t, sdkEnv(home, "AWS_CONFIG_FILE="+awsConfig, "SIGNET_ADMIN__LISTEN="+s.AdminAddr),
			args("process", "via credential_process")...)
		checkCurrent(t, rep, 1, sdkProcess)
	})
	t.Run("credential_process with no signet running", func(t *testing.T) {
		// Nothing listens on this port: the command fetches itself, a
		// session of its own.
		closed := "127.0.0.1:" + strconv.Itoa(freePort(t))
		rep := runSDK(t, sdkEnv(home, "AWS_CONFIG_FILE="+awsConfig, "SIGNET_ADMIN__LISTEN="+closed),
			args("process-direct", "fetched directly")...)
		checkCurrent(t, rep, 2, sdkProcess)
	})
	t.Run("signet exec", func(t *testing.T) {
		// exec runs a signet of its own, which assumes the role itself and
		// serves the session to the command.
		rep := runSDK(t, sdkEnv(home), append([]string{signetBin, "exec", "-c", s.ConfigFile, "--"}, args("exec", "under signet exec")...)...)
		checkCurrent(t, rep, 3, sdkEndpoint)
	})
	t.Run("credential-process output", func(t *testing.T) {
		r := runBinary(t, sdkEnv(home, "SIGNET_ADMIN__LISTEN="+s.AdminAddr), signetBin, "credential-process", "-c", s.ConfigFile, "--source", "role")
		var out struct {
			Version         int
			AccessKeyID     string `json:"AccessKeyId"`
			SecretAccessKey string
			SessionToken    string
			Expiration      string
		}
		if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &out) != nil {
			t.Fatalf("signet credential-process: exit %d, stdout %d bytes\nstderr: %s", r.Code, len(r.Stdout), r.Stderr)
		}
		var cur ststest.Minted
		for _, m := range fx.mints.all() {
			if m.AccessKeyID == out.AccessKeyID {
				cur = m
			}
		}
		if out.Version != 1 || out.AccessKeyID != fx.mints.all()[0].AccessKeyID || out.SecretAccessKey != cur.SecretAccessKey || out.SessionToken != cur.SessionToken || out.Expiration == "" {
			t.Errorf("credential-process printed version %d, key %s, want 1 and the running signet's session %s with its secret, token and expiry",
				out.Version, out.AccessKeyID, fx.mints.all()[0].AccessKeyID)
		}
		if r.Stderr != "" {
			t.Errorf("credential-process wrote to stderr: %q", r.Stderr)
		}
	})

	// A request signed with the role's session, to an upstream that
	// records what it got: its signature joins the secrets.
	pc := newGoClient(s.ProxyURL())
	if r := pc.Do(t, "GET", "http://recorder.test/stage/thing?X=1", nil); r.Status != 200 {
		t.Fatalf("GET through signet to the recorder: %d\n%s", r.Status, r.Body)
	}
	// One of signet's own error answers: its body joins the blobs.
	if r := pc.Do(t, "GET", "http://noscope.test/", nil); r.Status != http.StatusBadGateway || r.Header.Get("X-Signet-Error") != "unknown-signing-scope" {
		t.Errorf("GET of a host without a signing scope: %d %s", r.Status, r.Header.Get("X-Signet-Error"))
	} else {
		watch.blob("error answer", r.Body)
	}
	reqs, _ := rec.snapshot()
	for _, rq := range reqs {
		sigs := signaturesIn(rq.Header.Get("Authorization"))
		if len(sigs) == 0 {
			t.Errorf("the recorder got no signature: %q", rq.Header.Get("Authorization"))
		}
		watch.secret(sigs...)
		watch.secret(rq.Header.Get("X-Amz-Security-Token"))
		s.AddSecrets(sigs...)
	}

	t.Run("sources and whoami", func(t *testing.T) {
		r := adminGet(t, s, "/v1/sources", nil)
		watch.blob("/v1/sources", r.Body)
		var got struct {
			Sources []struct {
				Name         string `json:"name"`
				Method       string `json:"method"`
				Required     bool   `json:"required"`
				AccessKeyID  string `json:"access_key_id"`
				RefreshCount int    `json:"refresh_count"`
			} `json:"sources"`
		}
		if r.Status != 200 || json.Unmarshal(r.Body, &got) != nil {
			t.Fatalf("/v1/sources: %d %s", r.Status, r.Body)
		}
		first := fx.mints.all()[0]
		found := false
		for _, src := range got.Sources {
			if src.Name != "role" {
				continue
			}
			found = true
			if src.Method != "sts" || !src.Required || src.RefreshCount != 1 || src.AccessKeyID != first.AccessKeyID[:4]+"…"+first.AccessKeyID[len(first.AccessKeyID)-4:] {
				t.Errorf("/v1/sources role: %+v, want sts, required, 1 refresh, key %s redacted", src, first.AccessKeyID)
			}
		}
		if !found {
			t.Errorf("/v1/sources has no role: %s", r.Body)
		}
		r = adminGet(t, s, "/v1/whoami?source=role", nil)
		watch.blob("/v1/whoami", r.Body)
		var who struct {
			ARN string `json:"arn"`
		}
		if r.Status != 200 || json.Unmarshal(r.Body, &who) != nil || who.ARN != first.AssumedRoleARN {
			t.Errorf("/v1/whoami?source=role: %d %s, want the assumed role %s", r.Status, r.Body, first.AssumedRoleARN)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		r := adminGet(t, s, "/metrics", nil)
		watch.blob("/metrics", r.Body)
		if r.Status != 200 {
			t.Fatalf("/metrics: %d", r.Status)
		}
		if v := metricValue(t, r.Body, "signet_credential_refreshes_total", `source="role"`); v != 1 {
			t.Errorf("signet_credential_refreshes_total{source=role} = %v, want 1", v)
		}
		if v := metricValue(t, r.Body, "signet_credential_time_to_expiry_seconds", `source="role"`); v <= 0 {
			t.Errorf("signet_credential_time_to_expiry_seconds{source=role} = %v, want > 0", v)
		}
		if v := metricValue(t, r.Body, "signet_requests_total", `route="routes[1]"`, `code_class="2xx"`); v != 1 {
			t.Errorf("signet_requests_total{route=routes[1],2xx} = %v, want 1", v)
		}
	})

	watch.secret(fx.mints.secrets()...)
	s.AddSecrets(fx.mints.secrets()...)
	watch.scan(t, s)
}

// metricValue sums the samples of metric in a Prometheus text exposition
// whose labels include every one of labels; -1 when there is none.
func metricValue(t *testing.T, exposition []byte, metric string, labels ...string) float64 {
	t.Helper()
	sum, found := 0.0, false
	for _, line := range strings.Split(string(exposition), "\n") {
		name, rest, ok := strings.Cut(line, "{")
		if !ok {
			name, rest, ok = strings.Cut(line, " ")
			if !ok || name != metric || len(labels) > 0 {
				continue
			}
			rest = "} " + rest
		} else if name != metric {
			continue
		}
		lbls, val, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		all := true
		for _, l := range labels {
			all = all && strings.Contains(","+lbls+",", ","+l+",")
		}
		if !all {
			continue
		}
		f, err := strconv.ParseFloat(strings.Fields(val)[0], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum, found = sum+f, true
	}
	if !found {
		return -1
	}
	return sum
}

// TestAdminReadyzFollowsRefresh: /readyz is 200 while the route's source
// holds valid keys, turns 503 once its session is past the mandatory
// point and STS keeps failing, and 200 again when STS is back; the
// metrics count the refreshes and the failures.
func TestAdminReadyzFollowsRefresh(t *testing.T) {
	mints := &mintLog{}
	f := ststest.New(t, ststest.Options{PlainHTTP: true, OnMint: func(m ststest.Minted) error { mints.add(m); return nil }})
	f.AddUser(testBaseKey, testBaseSecret, "arn:aws:iam::000000000000:user/signet-base")
	const roleARN = "arn:aws:iam::000000000000:role/signet-ready"
	f.AddRole(ststest.Role{ARN: roleARN})
	// 20 s sessions; requests wait for a refresh from 4 s before expiry,
	// one is tried from 8 s before.
	f.SetLifetime(20 * time.Second)
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
log: {level: debug, format: json}
sources:
  base: {method: static, static: {access_key_id: %s, secret_access_key: %q}}
  role:
    method: sts
    sts: {role_arn: %q, source: base, endpoint: %q, region: %s, duration: 15m}
    refresh: {mode: deferred, advisory: 8s, mandatory: 4s, timeout: 3s}
routes:
  - hosts: ["*.execute-api.us-east-1.amazonaws.com"]
    source: role
`, testBaseKey, testBaseSecret, roleARN, f.URL(), testRegion)
	s := startSignet(t, cfg, 0)
	watch := &leakWatch{}

	ready := func() result {
		r := adminGet(t, s, "/readyz", nil)
		watch.blob("/readyz "+strconv.Itoa(r.Status), r.Body)
		return r
	}
	// waitFor polls /readyz until it answers want, for at most limit.
	waitFor := func(want int, limit time.Duration) result {
		t.Helper()
		deadline := time.Now().Add(limit)
		for {
			r := ready()
			if r.Status == want {
				return r
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz still %d after %s, want %d: %s", r.Status, limit, want, r.Body)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}

	if r := ready(); r.Status != 200 {
		t.Fatalf("/readyz at start: %d %s", r.Status, r.Body)
	}
	first := mints.last(t)
	f.FailAlways(ststest.FailInternal)
	// Past the mandatory point (16 s after the mint) refreshing fails for
	// good: not ready. Well before expiry, /readyz is still 200.
	r := waitFor(503, time.Until(first.Expires)+30*time.Second)
	if !time.Now().After(first.Expires.Add(-5 * time.Second)) {
		t.Errorf("/readyz turned 503 at %s, before the mandatory point (%s)", time.Now().Format(time.RFC3339Nano), first.Expires.Add(-4*time.Second).Format(time.RFC3339Nano))
	}
	var body struct {
		Ready   bool `json:"ready"`
		Sources []struct {
			Source string `json:"source"`
			Ready  bool   `json:"ready"`
			Reason string `json:"reason"`
		} `json:"sources"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil || body.Ready || len(body.Sources) != 1 || body.Sources[0].Source != "role" || body.Sources[0].Ready || body.Sources[0].Reason == "" {
		t.Errorf("/readyz answer while refreshing fails: %s", r.Body)
	}
	// A request meanwhile gets signet's 503, whose body says why.
	pr := newGoClient(s.ProxyURL()).Do(t, "GET", "http://abc123.execute-api.us-east-1.amazonaws.com/stage/x", nil)
	watch.blob("error answer", pr.Body)
	if pr.Status != http.StatusServiceUnavailable && pr.Status != http.StatusBadGateway {
		t.Errorf("a request while the source cannot refresh: %d %s, want signet's 503 or 502", pr.Status, pr.Body)
	}
	f.FailAlways(0)
	waitFor(200, 30*time.Second)
	if n := len(mints.all()); n < 2 {
		t.Errorf("ready again with %d sessions minted, want a new one", n)
	}

	m := adminGet(t, s, "/metrics", nil)
	watch.blob("/metrics", m.Body)
	refreshes := metricValue(t, m.Body, "signet_credential_refreshes_total", `source="role"`)
	failures := metricValue(t, m.Body, "signet_credential_refresh_failures_total", `source="role"`)
	if failures < 1 || refreshes < failures+2 {
		t.Errorf("metrics: %v refreshes, %v failures; want at least one failure and two successes", refreshes, failures)
	}
	watch.secret(testBaseSecret)
	watch.secret(mints.secrets()...)
	s.AddSecrets(mints.secrets()...)
	watch.scan(t, s)
}

// lines returns the JSON log lines of signet with msg.
func logLines(s *signetProc, msg string) []map[string]any {
	var out []map[string]any
	for _, l := range strings.Split(s.Logs.String(), "\n") {
		if !strings.Contains(l, `"msg":"`+msg+`"`) {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// TestCacheMetrics: the signing scope cache, bounded by cache.max_size,
// evicts by cache.policy, and /metrics shows it. With two entries and the
// hosts a, a, a, b, c, a: LRU drops a for c (least recently used), so the
// last a misses; LFU drops b (used once, against a's three), so it hits.
func TestCacheMetrics(t *testing.T) {
	up := httptest.NewServer(&countingServer{})
	t.Cleanup(up.Close)
	hosts := []string{"sqs", "sqs", "sqs", "sns", "kinesis", "sqs"}
	for _, tc := range []struct {
		policy                  string
		hits, misses, evictions float64
	}{
		{policy: "lru", hits: 2, misses: 4, evictions: 2},
		{policy: "lfu", hits: 3, misses: 3, evictions: 1},
	} {
		t.Run(tc.policy, func(t *testing.T) {
			t.Parallel()
			cfg := fmt.Sprintf(`listen: 127.0.0.1:0
log: {level: info, format: json}
cache: {policy: %s, max_size: 2}
sources:
  test: {method: static, static: {access_key_id: %s, secret_access_key: %q}}
routes:
  - {hosts: ["*.us-east-1.amazonaws.com"], source: test, upstream_scheme: http}
upstream:
  connect_to: {"*.us-east-1.amazonaws.com:80": %q}
`, tc.policy, testAccessKey, testSecretKey, strings.TrimPrefix(up.URL, "http://"))
			s := startSignet(t, cfg, 0)
			c := newGoClient(s.ProxyURL())
			for _, h := range hosts {
				if r := c.Do(t, "GET", "http://"+h+".us-east-1.amazonaws.com/", nil); r.Status != 200 {
					t.Fatalf("GET %s through signet: %d\n%s", h, r.Status, r.Body)
				}
			}
			m := adminGet(t, s, "/metrics", nil)
			for _, want := range []struct {
				metric string
				value  float64
			}{
				{"signet_cache_hits_total", tc.hits},
				{"signet_cache_misses_total", tc.misses},
				{"signet_cache_evictions_total", tc.evictions},
				{"signet_cache_entries", 2},
				{"signet_cache_max_entries", 2},
			} {
				if got := metricValue(t, m.Body, want.metric, `cache="signing_scope"`); got != want.value {
					t.Errorf("%s{cache=signing_scope} = %v, want %v", want.metric, got, want.value)
				}
			}
			if got := metricValue(t, m.Body, "signet_requests_total", `route="routes[0]"`, `code_class="2xx"`); got != float64(len(hosts)) {
				t.Errorf("signet_requests_total{routes[0],2xx} = %v, want %d", got, len(hosts))
			}
			// Access lines are batched: they reach the log within 100 ms.
			waitLog(t, s, "request", len(hosts)-1, 10*time.Second, nil)
		})
	}
}
