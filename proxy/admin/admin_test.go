package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signet-proxy/signet/credentials"
	"github.com/signet-proxy/signet/internal/metrics"
	"github.com/signet-proxy/signet/proxy"
	"github.com/signet-proxy/signet/proxy/admin"
)

// Secrets of the test sources: none may appear anywhere but in a
// credential endpoint's answer to the right token.
const (
	keyID     = "ASIAEXAMPLEKEY123456"
	secret    = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	session   = "IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKENxyzxyzxyzxyzxyzxyzxyzxyzxyzxyz+/=="
	token     = "tok-0123456789abcdefghijklmnopqrstuv"
	roleARN   = "arn:aws:sts::123456789012:assumed-role/app/signet"
	staticKey = "AKIAEXAMPLESTATIC001"
	staticSec = "staticSecretKeyEXAMPLEstaticSecretKeyEXA"
)

// clock is a settable credentials.Clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

// After never fires: the tests move time by hand, and the sources here
// are deferred, so nothing waits on it.
func (c *clock) After(time.Duration) <-chan time.Time { return make(chan time.Time) }

func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// provider hands out the test session until told to fail.
type provider struct {
	clk  *clock
	mu   sync.Mutex
	err  error
	life time.Duration
}

func (p *provider) Retrieve(context.Context) (credentials.Credentials, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return credentials.Credentials{}, p.err
	}
	return credentials.Credentials{
		AccessKeyID: keyID, SecretAccessKey: secret, SessionToken: session,
		Expires: p.clk.Now().Add(p.life), Identity: roleARN, Origin: "test",
	}, nil
}

func (p *provider) fail(err error) { p.mu.Lock(); p.err = err; p.mu.Unlock() }

type fixture struct {
	clk     *clock
	prod    *provider
	cat     admin.Catalog
	logs    *logBuffer
	logger  *slog.Logger
	sources map[string]*credentials.Refreshing
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	clk := &clock{now: time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)}
	f := &fixture{clk: clk, prod: &provider{clk: clk, life: time.Hour}, logs: &logBuffer{}}
	f.logger = slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	// The sources log nothing here: "broken" fakes a provider that breaks
	// its contract by quoting secrets in an error, and only what the admin
	// API makes of that is under test.
	opts := func(method string) credentials.SourceOptions {
		return credentials.SourceOptions{Method: method, Clock: clk}
	}
	f.sources = map[string]*credentials.Refreshing{
		"prod": credentials.NewSource("prod", f.prod, opts("sts")),
		"ci": credentials.NewSource("ci", credentials.ProviderFunc(func(context.Context) (credentials.Credentials, error) {
			return credentials.Credentials{AccessKeyID: staticKey, SecretAccessKey: staticSec, Origin: "static"}, nil
		}), opts("static")),
		"broken": credentials.NewSource("broken", credentials.ProviderFunc(func(context.Context) (credentials.Credentials, error) {
			// A provider that quotes a response with secrets in it: the
			// admin API must not pass them on.
			return credentials.Credentials{}, errors.New("endpoint said: {\"AccessKeyId\":\"" + keyID + "\",\"SecretAccessKey\":\"" + secret + "\"}")
		}), opts("chain")),
	}
	f.cat = admin.Catalog{
		Sources:    map[string]credentials.Source{},
		Required:   []string{"prod", "ci", "prod"},
		IMDSSource: "prod",
	}
	for n, s := range f.sources {
		f.cat.Sources[n] = s
		t.Cleanup(func() { _ = s.Close() })
	}
	return f
}

// logBuffer collects log lines; sources log from their own goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (f *fixture) handler(t *testing.T, mod func(*admin.Options)) *admin.Handler {
	t.Helper()
	o := admin.Options{
		Catalog: f.cat,
		Token:   token,
		Now:     f.clk.Now,
		Logger:  f.logger,
		Whoami: func(_ context.Context, c credentials.Credentials) (credentials.Identity, error) {
			if c.AccessKeyID == staticKey {
				return credentials.Identity{Account: "123456789012", ARN: "arn:aws:iam::123456789012:user/ci", UserID: "AIDAEXAMPLEUSERID0001"}, nil
			}
			return credentials.Identity{}, errors.New("sts said InvalidClientTokenId for " + c.AccessKeyID + " with " + c.SecretAccessKey)
		},
	}
	if mod != nil {
		mod(&o)
	}
	h, err := admin.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// do sends one request to h.
func do(h http.Handler, method, target string, header map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, nil)
	r.Host = "127.0.0.1:8081"
	for k, v := range header {
		r.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

// noSecrets fails if text holds any test secret.
func noSecrets(t *testing.T, where, text string) {
	t.Helper()
	for _, s := range []string{secret, session, token, keyID, staticKey, staticSec} {
		if strings.Contains(text, s) {
			t.Errorf("%s holds a secret (%.6s…):\n%s", where, s, text)
		}
	}
}

func TestHealthz(t *testing.T) {
	f := newFixture(t)
	f.prod.fail(errors.New("down"))
	h := f.handler(t, func(o *admin.Options) { o.Auth = denyAll{} })
	rec := do(h, "GET", "/healthz", nil)
	if rec.Code != 200 || rec.Body.String() != "ok\n" {
		t.Errorf("healthz: %d %q", rec.Code, rec.Body)
	}
}

type denyAll struct{}

func (denyAll) Verify(string, string) bool { return false }

func TestReadyz(t *testing.T) {
	f := newFixture(t)
	h := f.handler(t, nil)
	type answer struct {
		Ready    bool `json:"ready"`
		Draining bool `json:"draining"`
		Sources  []struct {
			Source string `json:"source"`
			Ready  bool   `json:"ready"`
			Reason string `json:"reason"`
		} `json:"sources"`
	}
	check := func(step string, status int, notReady ...string) {
		t.Helper()
		rec := do(h, "GET", "/readyz", nil)
		noSecrets(t, step, rec.Body.String())
		var a answer
		if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil {
			t.Fatalf("%s: %v: %s", step, err, rec.Body)
		}
		var got []string
		for _, s := range a.Sources {
			if !s.Ready {
				got = append(got, s.Source)
				if s.Reason == "" {
					t.Errorf("%s: %s not ready without a reason", step, s.Source)
				}
			}
		}
		if rec.Code != status || a.Ready != (status == 200) || strings.Join(got, ",") != strings.Join(notReady, ",") {
			t.Errorf("%s: %d ready=%v not ready %v; want %d, %v\n%s", step, rec.Code, a.Ready, got, status, notReady, rec.Body)
		}
	}
	// The deferred sources fetch on the first probe.
	check("start", 200)
	f.prod.fail(errors.New("sts unreachable"))
	f.clk.Add(47 * time.Minute) // past advisory: served, refresh fails in the background
	check("advisory", 200)
	f.clk.Add(5 * time.Minute) // 8 minutes left: past the mandatory point
	check("mandatory", 503, "prod")
	f.prod.fail(nil)
	f.clk.Add(2 * time.Second) // past the one-second retry while requests wait
	check("recovered", 200)

	// A source a route names but the catalog lacks is not ready; one no
	// route uses does not count.
	cat := f.cat
	cat.Required = []string{"ci", "gone"}
	h.SetCatalog(cat)
	check("missing", 503, "gone")
	h.SetCatalog(f.cat)
	h.SetDraining()
	rec := do(h, "GET", "/readyz", nil)
	if rec.Code != 503 || !strings.Contains(rec.Body.String(), `"draining":true`) {
		t.Errorf("draining: %d %s", rec.Code, rec.Body)
	}
}

func TestReadyzRedactsReason(t *testing.T) {
	f := newFixture(t)
	cat := f.cat
	cat.Required = []string{"broken"}
	f.cat = cat
	rec := do(f.handler(t, nil), "GET", "/readyz", nil)
	if rec.Code != 503 || !strings.Contains(rec.Body.String(), `"source":"broken"`) {
		t.Errorf("%d %s", rec.Code, rec.Body)
	}
	noSecrets(t, "readyz", rec.Body.String())
}

func TestSources(t *testing.T) {
	f := newFixture(t)
	h := f.handler(t, nil)
	// Fetch once so that there is something to report, and fail once.
	for _, n := range []string{"prod", "ci", "broken"} {
		_, _ = f.sources[n].Credentials(t.Context())
	}
	f.clk.Add(10 * time.Minute)
	rec := do(h, "GET", "/v1/sources", nil)
	if rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	body := rec.Body.String()
	noSecrets(t, "/v1/sources", body)
	var got struct {
		Sources []map[string]any `json:"sources"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Sources) != 3 {
		t.Fatalf("%d sources: %s", len(got.Sources), body)
	}
	byName := map[string]map[string]any{}
	for _, s := range got.Sources {
		byName[s["name"].(string)] = s
	}
	prod := byName["prod"]
	for k, want := range map[string]any{
		"method": "sts", "required": true, "identity": roleARN, "access_key_id": "ASIA…3456",
		"expires": "2030-06-01T13:00:00Z", "expires_in_seconds": float64(3000),
		"last_refresh": "2030-06-01T12:00:00Z", "refresh_count": float64(1),
	} {
		if prod[k] != want {
			t.Errorf("prod.%s = %v, want %v", k, prod[k], want)
		}
	}
	if _, ok := byName["ci"]["expires"]; ok {
		t.Errorf("static source has an expiry: %v", byName["ci"])
	}
	if byName["broken"]["required"] != false || byName["broken"]["refresh_count"] != float64(0) ||
		!strings.Contains(byName["broken"]["last_error"].(string), "[REDACTED]") {
		t.Errorf("broken = %v", byName["broken"])
	}
}

func TestWhoami(t *testing.T) {
	f := newFixture(t)
	h := f.handler(t, nil)
	tests := []struct {
		name, query string
		status      int
		contains    string
	}{
		{"ok", "?source=ci", 200, `"arn":"arn:aws:iam::123456789012:user/ci"`},
		{"no source", "", 400, "one of: broken, ci, prod"},
		{"unknown", "?source=nope", 404, `no source named \"nope\"`},
		{"no credentials", "?source=broken", 503, "CredentialsUnavailable"},
		{"sts refuses", "?source=prod", 502, "WhoamiFailed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := do(h, "GET", "/v1/whoami"+tt.query, nil)
			if rec.Code != tt.status || !strings.Contains(rec.Body.String(), tt.contains) {
				t.Errorf("%d %s; want %d with %q", rec.Code, rec.Body, tt.status, tt.contains)
			}
			noSecrets(t, "whoami", rec.Body.String())
		})
	}
}

var rightToken = map[string]string{"Authorization": token}

func TestCredentialEndpoint(t *testing.T) {
	f := newFixture(t)
	h := f.handler(t, nil)
	const refused = `{"code":"Unauthorized","message":"missing or wrong authorization token"}` + "\n"
	tests := []struct {
		name, method, path string
		header             map[string]string
		status             int
		body               string // exact, when set
		contains           string
	}{
		{"no token", "GET", "/v1/credentials/prod", nil, 401, refused, ""},
		{"wrong token", "GET", "/v1/credentials/prod", map[string]string{"Authorization": "tok-0123456789abcdefghijklmnopqrstuw"}, 401, refused, ""},
		{"token as bearer", "GET", "/v1/credentials/prod", map[string]string{"Authorization": "Bearer " + token}, 401, refused, ""},
		{"token prefix", "GET", "/v1/credentials/prod", map[string]string{"Authorization": token[:20]}, 401, refused, ""},
		{"no token, unknown source", "GET", "/v1/credentials/nope", nil, 401, refused, ""},
		{"no token, wrong method", "POST", "/v1/credentials/prod", nil, 401, refused, ""},
		{"no token, no name", "GET", "/v1/credentials/", nil, 401, refused, ""},
		{"unknown source", "GET", "/v1/credentials/nope", rightToken, 404, "", "NoSuchSource"},
		{"nested name", "GET", "/v1/credentials/prod/x", rightToken, 404, "", "NoSuchSource"},
		{"wrong method", "PUT", "/v1/credentials/prod", rightToken, 405, "", "MethodNotAllowed"},
		{"source failing", "GET", "/v1/credentials/broken", rightToken, 503, "", "CredentialsUnavailable"},
		{"static", "GET", "/v1/credentials/ci", rightToken, 200, `{"AccessKeyId":"` + staticKey + `","SecretAccessKey":"` + staticSec + `"}` + "\n", ""},
		{"session", "GET", "/v1/credentials/prod", rightToken, 200,
			`{"AccessKeyId":"` + keyID + `","SecretAccessKey":"` + secret + `","Token":"` + session + `","Expiration":"2030-06-01T13:00:00Z","RoleArn":"` + roleARN + `","AccountId":"123456789012"}` + "\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := do(h, tt.method, tt.path, tt.header)
			if rec.Code != tt.status {
				t.Errorf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			if tt.body != "" && rec.Body.String() != tt.body {
				t.Errorf("body\n%s\nwant\n%s", rec.Body, tt.body)
			}
			if !strings.Contains(rec.Body.String(), tt.contains) {
				t.Errorf("body %s lacks %q", rec.Body, tt.contains)
			}
			if rec.Code != 200 {
				noSecrets(t, "answer", rec.Body.String())
			}
			if rec.Code == 200 && rec.Header().Get("Cache-Control") != "no-store" {
				t.Error("credentials may be cached")
			}
		})
	}
	logs := f.logs.String()
	noSecrets(t, "logs", logs)
	if !strings.Contains(logs, "credential request refused") || !strings.Contains(logs, "reason=\"wrong token\"") {
		t.Errorf("refusals not logged:\n%s", logs)
	}
}

func TestCredentialEndpointOff(t *testing.T) {
	f := newFixture(t)
	h := f.handler(t, func(o *admin.Options) { o.Token = "" })
	if rec := do(h, "GET", "/v1/credentials/prod", map[string]string{"Authorization": ""}); rec.Code != 404 {
		t.Errorf("%d %s", rec.Code, rec.Body)
	}
	for _, bad := range []string{"short", "has a space in it....", "tab\there-0123456789"} {
		if _, err := admin.New(admin.Options{Token: bad}); err == nil || strings.Contains(err.Error(), bad) {
			t.Errorf("New with token %q: %v", bad, err)
		}
	}
}

// With Basic auth configured, everything but /healthz and the credential
// endpoints asks for it; those take their own tokens.
func TestBasicAuth(t *testing.T) {
	f := newFixture(t)
	users := filepath.Join(t.TempDir(), "admin-users")
	if err := os.WriteFile(users, []byte("# operators\nops:s3cret-pass\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	auth, err := proxy.LoadBasicAuth(users)
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New(metrics.Options{WithoutRuntime: true})
	h := f.handler(t, func(o *admin.Options) { o.Auth = auth; o.Metrics = m.Handler(); o.IMDS = true })
	basic := func(user, pass string) map[string]string {
		r := httptest.NewRequest("GET", "/", nil)
		r.SetBasicAuth(user, pass)
		return map[string]string{"Authorization": r.Header.Get("Authorization")}
	}
	for _, path := range []string{"/readyz", "/metrics", "/v1/sources", "/v1/whoami?source=ci", "/nothing-here"} {
		t.Run(path, func(t *testing.T) {
			for _, hdr := range []map[string]string{nil, basic("ops", "wrong"), basic("root", "s3cret-pass"), {"Authorization": "Basic !!"}} {
				rec := do(h, "GET", path, hdr)
				if rec.Code != 401 || !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Basic ") {
					t.Errorf("with %v: %d", hdr, rec.Code)
				}
			}
			want := 200
			if path == "/nothing-here" {
				want = 404
			}
			if rec := do(h, "GET", path, basic("ops", "s3cret-pass")); rec.Code != want {
				t.Errorf("authenticated: %d %s", rec.Code, rec.Body)
			}
		})
	}
	if rec := do(h, "GET", "/healthz", nil); rec.Code != 200 {
		t.Errorf("healthz asked for auth: %d", rec.Code)
	}
	if rec := do(h, "GET", "/v1/credentials/ci", rightToken); rec.Code != 200 {
		t.Errorf("credential endpoint with the token: %d", rec.Code)
	}
	if rec := do(h, "GET", "/v1/credentials/ci", basic("ops", "s3cret-pass")); rec.Code != 401 {
		t.Errorf("credential endpoint with Basic instead of the token: %d", rec.Code)
	}
	if rec := do(h, "PUT", "/latest/api/token", map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": "60"}); rec.Code != 200 {
		t.Errorf("imds token: %d", rec.Code)
	}
	logs := f.logs.String()
	noSecrets(t, "logs", logs)
	if strings.Contains(logs, "s3cret-pass") || !strings.Contains(logs, "admin authentication failed") {
		t.Errorf("logs:\n%s", logs)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	f := newFixture(t)
	m := metrics.New(metrics.Options{WithoutRuntime: true})
	m.Route("routes[0]").Observe(metrics.Request{Service: "s3", Region: "eu-west-1", Status: 200})
	h := f.handler(t, func(o *admin.Options) { o.Metrics = m.Handler() })
	rec := do(h, "GET", "/metrics", nil)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `signet_requests_total{code_class="2xx",region="eu-west-1",route="routes[0]",service="s3"} 1`) {
		t.Errorf("%d %s", rec.Code, rec.Body)
	}
	if rec := do(f.handler(t, nil), "GET", "/metrics", nil); rec.Code != 404 {
		t.Errorf("no metrics handler: %d", rec.Code)
	}
}

func FuzzCredentialAuth(f *testing.F) {
	f.Add("")
	f.Add(token)
	f.Add(token + " ")
	f.Add("Basic b3BzOnMzY3JldA==")
	fx := newFixture(f)
	h, err := admin.New(admin.Options{Catalog: fx.cat, Token: token})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, auth string) {
		r := httptest.NewRequest("GET", "/v1/credentials/ci", nil)
		r.Header["Authorization"] = []string{auth}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if (rec.Code == 200) != (auth == token) {
			t.Fatalf("Authorization %q: %d", auth, rec.Code)
		}
	})
}
