//go:build linux && soak

package e2e

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/gorilla/websocket"

	"github.com/signet-proxy/signet/internal/ststest"
)

// The soak of issue 8: a long run of mixed load through one signet whose
// credentials come from STS, refresh about every minute, and meet an STS
// that fails a third of its calls. It is no CI test (the build tag keeps
// it out of `go test ./...`): scripts/soak.sh runs it, and its figures go
// in the README.
//
// The load, all with the role's session keys, each request verified for
// real by its upstream:
//
//   - small GETs through the forward proxy (absolute-form http://) of an
//     object in versitygw, in IAM mode so that it checks the session's
//     key, secret, token and expiry;
//   - streamed PUTs (UNSIGNED-PAYLOAD, S3 over TLS) through HTTPS_PROXY
//     interception to a second versitygw gateway, over TLS, that shares
//     the IAM service; the ETag (MD5) proves the bytes arrived whole;
//   - hashed POSTs, over HTTP/2 between the client and signet, to an
//     execute-api upstream that checks the SigV4 signature itself against
//     the minted sessions, with the payload hash of the body it received;
//     some bodies pass the 1 MiB spool threshold and go through a file;
//   - WebSocket sessions (wss://, intercepted) to the same upstream, each
//     held for a while and exchanging messages.
//
// Every 10 s the test samples signet's RSS, open files and goroutines, and
// at the end fits least-squares slopes. It fails on any failure signet
// caused, on too few refreshes, on goroutines that do not come back to
// where they started once the load stops, and on RSS growing by more than
// half over the second half of the run.
const (
	soakDefaultDuration = 10 * time.Minute
	soakSampleEvery     = 10 * time.Second

	// Sessions live 2 minutes; the advisory window of 60 s (half the
	// lifetime, the Source's cap) makes signet refresh about every
	// minute, and the mandatory 30 s leaves half a minute for the
	// refresh to get through STS's failures before requests would wait.
	soakLifetime  = 2 * time.Minute
	soakAdvisory  = 60 * time.Second
	soakMandatory = 30 * time.Second

	soakGetWorkers  = 4
	soakGetPause    = 15 * time.Millisecond
	soakPutWorkers  = 2
	soakPutSize     = 1 << 20
	soakPutPause    = 250 * time.Millisecond
	soakPostWorkers = 2
	soakPostSize    = 32 << 10
	soakPostBig     = 2 << 20 // every soakPostEvery-th POST: past the 1 MiB spool threshold
	soakPostEvery   = 20
	soakPostPause   = 40 * time.Millisecond
	soakWSWorkers   = 4
	soakWSHold      = 20 * time.Second
	soakWSPause     = 250 * time.Millisecond
	soakWSMessage   = 1 << 10

	// soakGoroutineSlack is how many goroutines more than at the start
	// signet may hold once the load has stopped and idle connections
	// have timed out.
	soakGoroutineSlack = 10
	// soakSettleLimit bounds the wait for that: the upstream transport
	// keeps idle connections for 90 s.
	soakSettleLimit = 150 * time.Second

	soakAPIHost   = "soak.execute-api.us-east-1.amazonaws.com"
	soakGetBucket = "soak-get"
	soakPutBucket = "soak-put"
)

// soakSTSPattern is the fake STS's failure cycle: a third of the AssumeRole
// calls fail. Signet's STS client tries twice per fetch, so in one cycle
// of nine calls (the fetch at start-up takes the first) one refresh gets
// through on its retry after a 500, two get through at once, one fails
// twice (500, then throttled) and is left to the Source's backoff, whose
// next try gets through, and so does the next.
var soakSTSPattern = []ststest.Failure{0, ststest.FailInternal, 0, 0, 0, ststest.FailInternal, ststest.FailThrottle, 0, 0}

func soakDuration(tb testing.TB) time.Duration {
	v := os.Getenv("SIGNETTEST_SOAK_DURATION")
	if v == "" {
		return soakDefaultDuration
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 90*time.Second {
		tb.Fatalf("SIGNETTEST_SOAK_DURATION=%q: want a duration of 90s or more (a refresh, and a failing STS call, come after a minute)", v)
	}
	return d
}

func TestSoak(t *testing.T) {
	dur := soakDuration(t)
	ca := newTestCA(t)
	dir := t.TempDir()
	caFile := writeTestFile(t, filepath.Join(dir, "upstream-ca.pem"), ca.CertPEM)

	// versitygw: the IAM service, its plain gateway (GETs), and a TLS
	// gateway on the same IAM service (PUTs).
	v := startVersityIAM(t, testAccessKey, testSecretKey)
	role := v.createRole(t, "signet-soak")
	tlsGW := startVersityIAMTLS(t, v, ca)
	getPayload := bytes.Repeat([]byte("soak"), 256) // 1 KiB
	rootc := newSDKClient("", testAccessKey, testSecretKey)
	mustOK(t, "create the GET bucket", rootc.Do(t, "PUT", v.URL()+"/"+soakGetBucket, nil))
	mustOK(t, "put the GET object", rootc.Do(t, "PUT", v.URL()+"/"+soakGetBucket+"/obj", getPayload))
	roottls := &sdkClient{goClient: &goClient{c: &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		Proxy:           nil,
		TLSClientConfig: &tls.Config{RootCAs: ca.pool(), ServerName: s3Host},
	}}}, creds: aws.Credentials{AccessKeyID: testAccessKey, SecretAccessKey: testSecretKey}, signer: v4.NewSigner()}
	mustOK(t, "create the PUT bucket", roottls.Do(t, "PUT", "https://"+tlsGW+"/"+soakPutBucket, nil))

	// The execute-api upstream, which knows every session STS mints.
	api := &soakAPI{sessions: map[string]ststest.Minted{}}
	apiSrv := httptest.NewUnstartedServer(api)
	apiSrv.TLS = ca.tlsConfig(t, soakAPIHost)
	apiSrv.EnableHTTP2 = true
	apiSrv.StartTLS()
	t.Cleanup(apiSrv.Close)

	mints := &soakMints{}
	f := ststest.New(t, ststest.Options{PlainHTTP: true, OnMint: func(m ststest.Minted) error {
		if err := v.addSession(m, role); err != nil {
			return err
		}
		api.add(m)
		mints.add(m)
		return nil
	}})
	f.AddUser(testBaseKey, testBaseSecret, "arn:aws:iam::000000000000:user/signet-base")
	f.AddRole(ststest.Role{ARN: role.ARN})
	f.SetLifetime(soakLifetime)
	f.FailCycle(soakSTSPattern...)

	state := filepath.Join(dir, "state")
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
state_dir: %[1]q
log: {level: info, format: json}
sources:
  base: {method: static, static: {access_key_id: %[2]s, secret_access_key: %[3]q}}
  role:
    method: sts
    sts: {role_arn: %[4]q, source: base, endpoint: %[5]q, region: %[6]s, duration: 15m}
    refresh: {mode: eager, advisory: %[7]s, mandatory: %[8]s, timeout: 10s}
routes:
  - {hosts: [%[9]q], source: role, upstream_scheme: http}
  - {hosts: ["*.%[9]s"], source: role}
  - {hosts: [%[10]q], source: role}
upstream:
  ca_file: %[11]q
  connect_to:
    "%[9]s:80": %[12]q
    "*.%[9]s:443": %[13]q
    "%[10]s:443": %[14]q
`, state, testBaseKey, testBaseSecret, role.ARN, f.URL(), testRegion, soakAdvisory, soakMandatory,
		s3Host, soakAPIHost, caFile, v.Addr, tlsGW, strings.TrimPrefix(apiSrv.URL, "https://"))
	s := startSignet(t, cfg, 0)
	t.Cleanup(func() { s.AddSecrets(mints.secrets()...) })

	l := newSoakLoad(t, s, state, getPayload)
	probe := newSoakProbe(s)
	if err := l.warmUp(); err != nil {
		t.Fatalf("the first request of each kind: %v\nsignet logs:\n%s", err, s.Logs.String())
	}
	l.reset()

	// The load runs until the deadline; this goroutine samples: once
	// idle before it, every soakSampleEvery under it, once when it has
	// stopped, and until goroutines have settled.
	var ss soakSamples
	start := time.Now()
	take := func() soakSample {
		sm, err := probe.sample(t, start)
		if err != nil {
			t.Fatalf("sampling signet: %v", err)
		}
		return sm
	}
	ss.idle = take()
	ctx, stop := context.WithTimeout(context.Background(), dur)
	defer stop()
	done := l.run(ctx)
	tick := time.NewTicker(soakSampleEvery)
sampling:
	for {
		select {
		case <-tick.C:
			ss.loaded = append(ss.loaded, take())
		case <-ctx.Done():
			break sampling
		}
	}
	tick.Stop()
	loadEnd := time.Now()
	<-done
	ss.stopped = take()

	// Settle: the clients drop their connections, signet's idle upstream
	// connections time out; goroutines must come back to the start.
	l.closeIdle()
	ss.settled = ss.stopped
	for deadline := time.Now().Add(soakSettleLimit); time.Now().Before(deadline); {
		time.Sleep(2 * time.Second)
		ss.settled = take()
		if ss.settled.Goroutines <= ss.idle.Goroutines+soakGoroutineSlack {
			break
		}
	}

	rep := l.report(dur, start, loadEnd, ss)
	ms := mints.all()
	for _, m := range ms {
		if !m.at.Before(start) && !m.at.After(loadEnd) {
			rep.Refreshes++
		}
	}
	rep.Sessions = len(ms)
	for _, c := range f.Calls() {
		if c.Action != "AssumeRole" {
			continue
		}
		rep.STSCalls++
		if c.Error != "" {
			rep.STSFailuresInjected++
		}
	}
	metrics := probe.metrics(t)
	// A counter with no sample yet is absent: metricValue's -1.
	rep.RefreshesMetric = max(0, metricValue(t, metrics, "signet_credential_refreshes_total", `source="role"`))
	rep.RefreshFailuresMetric = max(0, metricValue(t, metrics, "signet_credential_refresh_failures_total", `source="role"`))
	rep.SignatureRejections = api.rejections()

	rep.log(t)
	if out := os.Getenv("SIGNETTEST_SOAK_OUT"); out != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(out, append(b, '\n'), 0o644); err != nil {
			t.Errorf("SIGNETTEST_SOAK_OUT: %v", err)
		}
	}

	// The verdict.
	if rep.SignetFailures > 0 {
		t.Errorf("%d requests failed because of signet; the first ones:\n%s", rep.SignetFailures, strings.Join(rep.FirstFailures, "\n"))
	}
	if want := int(dur/time.Minute) - 1; rep.Refreshes < want {
		t.Errorf("%d refreshes in %s, want at least %d", rep.Refreshes, dur, want)
	}
	if rep.STSFailuresInjected == 0 {
		t.Errorf("no AssumeRole call failed: the failing STS was not exercised")
	}
	for kind, n := range rep.Requests {
		if n == 0 {
			t.Errorf("no %s completed", kind)
		}
	}
	if ss.settled.Goroutines > ss.idle.Goroutines+soakGoroutineSlack {
		t.Errorf("signet holds %d goroutines %s after the load stopped, %d before it (slack %d)",
			ss.settled.Goroutines, soakSettleLimit, ss.idle.Goroutines, soakGoroutineSlack)
	}
	// The GC's sawtooth makes single samples noisy: the fitted growth is
	// held against the second half's mean.
	if rep.RSSGrowthSecondHalfMiB > rep.RSSSecondHalfMeanMiB/2 {
		t.Errorf("RSS grew by %.1f MiB over the second half (mean %.1f MiB): more than half",
			rep.RSSGrowthSecondHalfMiB, rep.RSSSecondHalfMeanMiB)
	}
	checkNoSpool(t, s)
}

func mustOK(t *testing.T, what string, r result) {
	t.Helper()
	if r.Status/100 != 2 {
		t.Fatalf("%s: %d\n%s", what, r.Status, r.Body)
	}
}

// startVersityIAMTLS runs a second versitygw gateway, over TLS with a
// certificate for s3.us-east-1.amazonaws.com and its buckets from ca, on
// the IAM service of v (so it knows the same sessions) and its own data
// directory. It returns the gateway's address.
func startVersityIAMTLS(tb testing.TB, v *versityIAM, ca *testCA) string {
	tb.Helper()
	bin := needVersity(tb)
	dir := tb.TempDir()
	data, noMeta := versityDataDir(tb, dir)
	certPEM, keyPEM := ca.leaf(tb, s3Host, "*."+s3Host)
	certFile := writeTestFile(tb, filepath.Join(dir, "cert.pem"), certPEM)
	keyFile := writeTestFile(tb, filepath.Join(dir, "key.pem"), keyPEM)
	// startVersityIAM puts the socket beside the IAM directory.
	sock := filepath.Join(filepath.Dir(v.IAMDir), "iam.sock")
	health := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil,
		TLSClientConfig: &tls.Config{RootCAs: ca.pool(), ServerName: s3Host}}}
	return startVersityProc(tb, bin, "versitygw gateway (TLS)",
		baseEnv(dir, "ROOT_ACCESS_KEY_ID="+testAccessKey, "ROOT_SECRET_ACCESS_KEY="+testSecretKey),
		func(addr string) []string {
			return versityArgs(addr, noMeta, data, "--iam-standalone-endpoint", sock, "--cert", certFile, "--key", keyFile)
		},
		func(addr string) error { return healthOK(health, "https://"+addr+"/health") })
}

// ------------------------------------------------------------- the sessions

type soakMint struct {
	ststest.Minted
	at time.Time
}

type soakMints struct {
	mu sync.Mutex
	ms []soakMint
}

func (l *soakMints) add(m ststest.Minted) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ms = append(l.ms, soakMint{Minted: m, at: time.Now()})
}

func (l *soakMints) all() []soakMint {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.ms)
}

func (l *soakMints) secrets() []string {
	var out []string
	for _, m := range l.all() {
		out = append(out, m.SecretAccessKey, m.SessionToken)
	}
	return out
}

// ------------------------------------------------------ the API upstream

// soakAPI is the execute-api upstream: POST /post answers the SHA-256 of
// the body it received, GET /ws is a WebSocket echo. It accepts a request
// only when its SigV4 signature verifies with a session the fake STS
// minted (key, secret and token), signed while that session was valid,
// over the payload hash of the body as it arrived.
type soakAPI struct {
	mu       sync.Mutex
	sessions map[string]ststest.Minted
	rejected int
}

func (a *soakAPI) add(m ststest.Minted) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.sessions[m.AccessKeyID] = m
}

func (a *soakAPI) rejections() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.rejected
}

func (a *soakAPI) reject(w http.ResponseWriter, err error) {
	a.mu.Lock()
	a.rejected++
	a.mu.Unlock()
	http.Error(w, "soak upstream: signature rejected: "+err.Error(), http.StatusForbidden)
}

func (a *soakAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/post":
		h := sha256.New()
		if _, err := io.Copy(h, r.Body); err != nil {
			http.Error(w, "soak upstream: reading the body: "+err.Error(), http.StatusBadRequest)
			return
		}
		sum := hex.EncodeToString(h.Sum(nil))
		if err := a.verify(r, sum); err != nil {
			a.reject(w, err)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, sum)
	case r.Method == http.MethodGet && r.URL.Path == "/ws":
		err := a.verify(r, emptySHA256)
		if err == nil {
			_, sh, _ := strings.Cut(r.Header.Get("Authorization"), "SignedHeaders=")
			sh, _, _ = strings.Cut(sh, ",")
			if strings.Contains(";"+sh+";", ";connection;") || strings.Contains(";"+sh+";", ";upgrade;") {
				err = fmt.Errorf("hop-by-hop header signed: %s", sh)
			}
		}
		if err != nil {
			a.reject(w, err)
			return
		}
		up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			kind, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(kind, msg); err != nil {
				return
			}
		}
	default:
		http.Error(w, "soak upstream: no such resource", http.StatusNotFound)
	}
}

// verify checks r's SigV4 signature as AWS would: it signs a copy made of
// the headers the request says it signed, at its own X-Amz-Date, with the
// session's secret and token, over payloadHash, and compares.
func (a *soakAPI) verify(r *http.Request, payloadHash string) error {
	auth := r.Header.Get("Authorization")
	rest, ok := strings.CutPrefix(auth, "AWS4-HMAC-SHA256 Credential=")
	if !ok {
		return errors.New("no SigV4 Authorization header")
	}
	cred, rest, _ := strings.Cut(rest, ", SignedHeaders=")
	signed, _, _ := strings.Cut(rest, ", Signature=")
	scope := strings.Split(cred, "/")
	if len(scope) != 5 || scope[2] != testRegion || scope[3] != "execute-api" || scope[4] != "aws4_request" {
		return fmt.Errorf("bad credential scope %q", strings.Join(scope[min(1, len(scope)):], "/"))
	}
	a.mu.Lock()
	m, known := a.sessions[scope[0]]
	a.mu.Unlock()
	if !known {
		return fmt.Errorf("access key %s was never minted", redactKey(scope[0]))
	}
	if r.Header.Get("X-Amz-Security-Token") != m.SessionToken {
		return fmt.Errorf("wrong session token for %s", redactKey(scope[0]))
	}
	at, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return fmt.Errorf("X-Amz-Date: %v", err)
	}
	if d := time.Since(at); d < -time.Minute || d > 5*time.Minute {
		return fmt.Errorf("X-Amz-Date %s is not fresh", at.Format(time.RFC3339))
	}
	// X-Amz-Date has whole seconds.
	if !at.Before(m.Expires) || at.Before(m.Issued.Truncate(time.Second)) {
		return fmt.Errorf("signed at %s with %s, a session valid from %s to %s", at.Format(time.RFC3339),
			redactKey(scope[0]), m.Issued.Format(time.RFC3339), m.Expires.Format(time.RFC3339))
	}
	cp, err := http.NewRequest(r.Method, "https://"+r.Host+r.RequestURI, nil)
	if err != nil {
		return err
	}
	for _, h := range strings.Split(signed, ";") {
		switch h {
		case "host", "x-amz-security-token":
			continue
		case "content-length":
			cp.ContentLength = r.ContentLength
			continue
		}
		vv := r.Header.Values(h)
		if len(vv) == 0 {
			return fmt.Errorf("signed header %s did not arrive", h)
		}
		cp.Header[http.CanonicalHeaderKey(h)] = vv
	}
	creds := aws.Credentials{AccessKeyID: m.AccessKeyID, SecretAccessKey: m.SecretAccessKey, SessionToken: m.SessionToken}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, cp, payloadHash, scope[3], scope[2], at); err != nil {
		return err
	}
	if cp.Header.Get("Authorization") != auth {
		// Neither signature goes into the message.
		return fmt.Errorf("signature does not verify (signed headers %s)", signed)
	}
	return nil
}

// ---------------------------------------------------------------- the load

// soakKind is one kind of request of the load.
type soakKind string

const (
	kindGet  soakKind = "small GET"
	kindPut  soakKind = "streamed PUT"
	kindPost soakKind = "hashed POST"
	kindWS   soakKind = "WebSocket session"
)

var soakKinds = []soakKind{kindGet, kindPut, kindPost, kindWS}

// soakOutcome is how one request ended.
type soakOutcome int

const (
	outcomeOK soakOutcome = iota
	// outcomeSignet: signet answered with its own error (X-Signet-Error),
	// the connection to signet failed, the upstream refused the signature
	// or the request (4xx), or the data came back wrong.
	outcomeSignet
	// outcomeUpstream: the upstream failed on its own (5xx, without
	// X-Signet-Error).
	outcomeUpstream
)

type soakLoad struct {
	s          *signetProc
	getPayload []byte
	getURL     string
	plain      *http.Transport // forward proxy, absolute-form http://
	intercept  *http.Transport // HTTPS_PROXY, HTTP/1.1
	intercept2 *http.Transport // HTTPS_PROXY, HTTP/2 to signet
	ws         *websocket.Dialer
	putBody    []byte
	putMD5     string
	postSmall  []byte
	postBig    []byte

	mu        sync.Mutex
	lat       map[soakKind][]time.Duration
	counts    map[soakKind][3]int
	wsMsgs    int
	protos    map[string]int
	bytesUp   int64
	firstFail []string
}

func newSoakLoad(t *testing.T, s *signetProc, state string, getPayload []byte) *soakLoad {
	proxyURL, err := url.Parse(s.ProxyURL())
	if err != nil {
		t.Fatal(err)
	}
	pool := signetCAPool(t, state)
	l := &soakLoad{
		s: s, getPayload: getPayload,
		getURL: "http://" + s3Host + "/" + soakGetBucket + "/obj",
		plain:  &http.Transport{Proxy: http.ProxyURL(proxyURL), MaxIdleConnsPerHost: soakGetWorkers},
		intercept: &http.Transport{Proxy: http.ProxyURL(proxyURL), MaxIdleConnsPerHost: soakPutWorkers,
			TLSClientConfig: &tls.Config{RootCAs: pool}},
		intercept2: &http.Transport{Proxy: http.ProxyURL(proxyURL), ForceAttemptHTTP2: true,
			TLSClientConfig: &tls.Config{RootCAs: pool}},
		ws: &websocket.Dialer{Proxy: http.ProxyURL(proxyURL), HandshakeTimeout: 30 * time.Second,
			TLSClientConfig: &tls.Config{RootCAs: pool}},
		putBody:   testData(soakPutSize, 7),
		postSmall: testData(soakPostSize, 11),
		postBig:   testData(soakPostBig, 13),
	}
	sum := md5.Sum(l.putBody)
	l.putMD5 = hex.EncodeToString(sum[:])
	l.reset()
	t.Cleanup(l.closeIdle)
	return l
}

func (l *soakLoad) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lat = map[soakKind][]time.Duration{}
	l.counts = map[soakKind][3]int{}
	l.wsMsgs, l.bytesUp, l.firstFail = 0, 0, nil
	l.protos = map[string]int{}
}

func (l *soakLoad) closeIdle() {
	l.plain.CloseIdleConnections()
	l.intercept.CloseIdleConnections()
	l.intercept2.CloseIdleConnections()
}

func (l *soakLoad) record(kind soakKind, took time.Duration, out soakOutcome, detail string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.counts[kind]
	c[out]++
	l.counts[kind] = c
	if out == outcomeOK {
		l.lat[kind] = append(l.lat[kind], took)
		return
	}
	if len(l.firstFail) < 20 {
		what := map[soakOutcome]string{outcomeSignet: "signet", outcomeUpstream: "upstream"}[out]
		l.firstFail = append(l.firstFail, fmt.Sprintf("%s %s (%s, %s): %s",
			time.Now().Format("15:04:05.000"), kind, what, took.Round(time.Millisecond), detail))
	}
}

// warmUp sends one request of each kind and fails on any error, so that
// a broken setup stops the test at once.
func (l *soakLoad) warmUp() error {
	type step struct {
		kind soakKind
		run  func(i int) (soakOutcome, string)
	}
	for _, s := range []step{{kindGet, l.get}, {kindPut, l.put}, {kindPost, l.post}, {kindWS, l.wsOnce}} {
		if out, detail := s.run(0); out != outcomeOK {
			return fmt.Errorf("%s: %s", s.kind, detail)
		}
	}
	return nil
}

// run starts the workers; the channel closes when they have all stopped,
// each after its request at hand once ctx is done.
func (l *soakLoad) run(ctx context.Context) <-chan struct{} {
	var wg sync.WaitGroup
	worker := func(kind soakKind, n int, pause time.Duration, do func(i int) (soakOutcome, string)) {
		for w := range n {
			wg.Go(func() {
				for i := w; ctx.Err() == nil; i += n {
					t0 := time.Now()
					out, detail := do(i)
					l.record(kind, time.Since(t0), out, detail)
					select {
					case <-ctx.Done():
					case <-time.After(pause):
					}
				}
			})
		}
	}
	worker(kindGet, soakGetWorkers, soakGetPause, l.get)
	worker(kindPut, soakPutWorkers, soakPutPause, l.put)
	worker(kindPost, soakPostWorkers, soakPostPause, l.post)
	for range soakWSWorkers {
		wg.Go(func() {
			for ctx.Err() == nil {
				t0 := time.Now()
				out, detail := l.wsSession(ctx, soakWSHold)
				l.record(kindWS, time.Since(t0), out, detail)
			}
		})
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	return done
}

var s3Code = regexp.MustCompile(`<Code>([^<]*)</Code>`)

// classify sorts an answer that is not the one expected.
func classify(resp *http.Response, body []byte) (soakOutcome, string) {
	if code := resp.Header.Get("X-Signet-Error"); code != "" {
		return outcomeSignet, fmt.Sprintf("%d %s: %s", resp.StatusCode, code, truncateSoak(body))
	}
	detail := fmt.Sprintf("upstream %d", resp.StatusCode)
	if m := s3Code.FindSubmatch(body); m != nil {
		detail += " " + string(m[1])
	} else {
		detail += ": " + truncateSoak(body)
	}
	if resp.StatusCode >= 500 {
		return outcomeUpstream, detail
	}
	return outcomeSignet, detail
}

func truncateSoak(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

func (l *soakLoad) client(tr *http.Transport) *http.Client {
	return &http.Client{Transport: tr, Timeout: time.Minute}
}

func (l *soakLoad) get(int) (soakOutcome, string) {
	resp, err := l.client(l.plain).Get(l.getURL)
	if err != nil {
		return outcomeSignet, err.Error()
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch {
	case err != nil:
		return outcomeSignet, "reading the body: " + err.Error()
	case resp.StatusCode != http.StatusOK:
		return classify(resp, b)
	case !bytes.Equal(b, l.getPayload):
		return outcomeSignet, fmt.Sprintf("body of %d bytes differs from the object", len(b))
	}
	return outcomeOK, ""
}

func (l *soakLoad) put(i int) (soakOutcome, string) {
	u := fmt.Sprintf("https://%s.%s/put-%d", soakPutBucket, s3Host, i%8)
	// Not a bytes.Reader: the transport must not know it can rewind it,
	// as with a body an app streams from elsewhere.
	req, err := http.NewRequest(http.MethodPut, u, io.NopCloser(bytes.NewReader(l.putBody)))
	if err != nil {
		return outcomeSignet, err.Error()
	}
	req.ContentLength = int64(len(l.putBody))
	resp, err := l.client(l.intercept).Do(req)
	if err != nil {
		return outcomeSignet, err.Error()
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch {
	case err != nil:
		return outcomeSignet, "reading the answer: " + err.Error()
	case resp.StatusCode != http.StatusOK:
		return classify(resp, b)
	case strings.Trim(resp.Header.Get("ETag"), `"`) != l.putMD5:
		return outcomeSignet, fmt.Sprintf("ETag %s, want the body's MD5 %s", resp.Header.Get("ETag"), l.putMD5)
	}
	l.mu.Lock()
	l.bytesUp += int64(len(l.putBody))
	l.mu.Unlock()
	return outcomeOK, ""
}

func (l *soakLoad) post(i int) (soakOutcome, string) {
	body := l.postSmall
	if i%soakPostEvery == soakPostEvery-1 {
		body = l.postBig
	}
	req, err := http.NewRequest(http.MethodPost, "https://"+soakAPIHost+"/post", io.NopCloser(bytes.NewReader(body)))
	if err != nil {
		return outcomeSignet, err.Error()
	}
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := l.client(l.intercept2).Do(req)
	if err != nil {
		return outcomeSignet, err.Error()
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	sum := sha256.Sum256(body)
	switch {
	case err != nil:
		return outcomeSignet, "reading the answer: " + err.Error()
	case resp.StatusCode != http.StatusOK:
		return classify(resp, b)
	case string(b) != hex.EncodeToString(sum[:]):
		return outcomeSignet, "the upstream received another body than the one sent"
	}
	l.mu.Lock()
	l.protos[resp.Proto]++
	l.bytesUp += int64(len(body))
	l.mu.Unlock()
	return outcomeOK, ""
}

func (l *soakLoad) wsOnce(int) (soakOutcome, string) {
	return l.wsSession(context.Background(), 0)
}

// wsSession opens a WebSocket through signet, exchanges a message every
// soakWSPause for hold (at least one), and closes it cleanly.
func (l *soakLoad) wsSession(ctx context.Context, hold time.Duration) (soakOutcome, string) {
	c, resp, err := l.ws.Dial("wss://"+soakAPIHost+"/ws", nil)
	if err != nil {
		if resp != nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
			resp.Body.Close()
			out, detail := classify(resp, b)
			return out, "dial: " + detail
		}
		return outcomeSignet, "dial: " + err.Error()
	}
	defer c.Close()
	msg := make([]byte, soakWSMessage)
	end := time.Now().Add(hold)
	for n := 0; n == 0 || (time.Now().Before(end) && ctx.Err() == nil); n++ {
		copy(msg, fmt.Sprintf("message %d of %p", n, c))
		kind := websocket.BinaryMessage
		if n%2 == 0 {
			kind = websocket.TextMessage
		}
		_ = c.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if err := c.WriteMessage(kind, msg); err != nil {
			return outcomeSignet, fmt.Sprintf("message %d: write: %v", n, err)
		}
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		gk, got, err := c.ReadMessage()
		if err != nil {
			return outcomeSignet, fmt.Sprintf("message %d: read: %v", n, err)
		}
		if gk != kind || !bytes.Equal(got, msg) {
			return outcomeSignet, fmt.Sprintf("message %d: echo differs", n)
		}
		l.mu.Lock()
		l.wsMsgs++
		l.mu.Unlock()
		if hold > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(soakWSPause):
			}
		}
	}
	if err := c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""),
		time.Now().Add(10*time.Second)); err != nil {
		return outcomeSignet, "close: " + err.Error()
	}
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	var ce *websocket.CloseError
	if _, _, err := c.ReadMessage(); !errors.As(err, &ce) || ce.Code != websocket.CloseNormalClosure {
		return outcomeSignet, fmt.Sprintf("close handshake: %v", err)
	}
	return outcomeOK, ""
}

// ----------------------------------------------------------- the sampling

// soakSample is one look at signet's process.
type soakSample struct {
	At         float64 `json:"at_s"` // seconds since the load started
	RSSMiB     float64 `json:"rss_mib"`
	FDs        int     `json:"fds"`
	Goroutines int     `json:"goroutines"`
}

type soakProbe struct {
	s     *signetProc
	admin *http.Client // one client, so that sampling holds one connection
}

func newSoakProbe(s *signetProc) *soakProbe {
	return &soakProbe{s: s, admin: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil}}}
}

func (p *soakProbe) metrics(t *testing.T) []byte {
	t.Helper()
	resp, err := p.admin.Get(p.s.AdminURL() + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	return b
}

func (p *soakProbe) sample(t *testing.T, start time.Time) (soakSample, error) {
	sm := soakSample{At: time.Since(start).Seconds()}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.s.Pid))
	if err != nil {
		return sm, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil || len(f) != 2 || f[1] != "kB" {
				return sm, fmt.Errorf("VmRSS line %q", line)
			}
			sm.RSSMiB = float64(kb) / 1024
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.s.Pid))
	if err != nil {
		return sm, err
	}
	sm.FDs = len(fds)
	g := metricValue(t, p.metrics(t), "go_goroutines")
	if g < 0 {
		return sm, errors.New("no go_goroutines in /metrics")
	}
	sm.Goroutines = int(g)
	return sm, nil
}

// soakSamples are the samples of one run.
type soakSamples struct {
	idle    soakSample   // before the load
	loaded  []soakSample // under it
	stopped soakSample   // once the workers have stopped
	settled soakSample   // once goroutines have settled (or the wait ended)
}

// slope is the least-squares slope of y over x.
func slope(xs, ys []float64) float64 {
	n := float64(len(xs))
	if n < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for i := range xs {
		sx += xs[i]
		sy += ys[i]
		sxx += xs[i] * xs[i]
		sxy += xs[i] * ys[i]
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}

// ---------------------------------------------------------------- the report

type soakLatency struct {
	P50ms float64 `json:"p50_ms"`
	P99ms float64 `json:"p99_ms"`
	Maxms float64 `json:"max_ms"`
}

type soakReport struct {
	Date       string  `json:"date"`
	Duration   string  `json:"duration"`
	GoVersion  string  `json:"go"`
	CPUs       int     `json:"cpus"`
	LoadSecond float64 `json:"load_seconds"`

	Requests         map[soakKind]int         `json:"requests_ok"`
	Latency          map[soakKind]soakLatency `json:"latency"`
	WSMessages       int                      `json:"websocket_messages"`
	POSTProtocols    map[string]int           `json:"post_protocols"`
	MiBUp            float64                  `json:"mib_uploaded"`
	SignetFailures   int                      `json:"failures_signet"`
	UpstreamFailures int                      `json:"failures_upstream"`
	FirstFailures    []string                 `json:"first_failures,omitempty"`
	// SignatureRejections counts the API upstream's refusals (already in
	// SignetFailures).
	SignatureRejections int `json:"api_signature_rejections"`

	Refreshes             int     `json:"refreshes_during_load"`
	Sessions              int     `json:"sessions_minted"`
	RefreshesMetric       float64 `json:"metric_refreshes_total"`
	RefreshFailuresMetric float64 `json:"metric_refresh_failures_total"`
	STSCalls              int     `json:"sts_assumerole_calls"`
	STSFailuresInjected   int     `json:"sts_failures_injected"`

	// RSS: idle before the load; the first and last samples under it,
	// their mean and maximum; slopes fitted to the samples under load.
	RSSIdleMiB             float64 `json:"rss_idle_before_load_mib"`
	RSSFirstMiB            float64 `json:"rss_first_under_load_mib"`
	RSSLastMiB             float64 `json:"rss_last_under_load_mib"`
	RSSMeanMiB             float64 `json:"rss_mean_under_load_mib"`
	RSSMaxMiB              float64 `json:"rss_max_mib"`
	RSSSettledMiB          float64 `json:"rss_settled_mib"`
	RSSSlopeMiBPerHour     float64 `json:"rss_slope_mib_per_hour"`
	RSSSlopeHalfMiBPerHour float64 `json:"rss_slope_second_half_mib_per_hour"`
	RSSSecondHalfMeanMiB   float64 `json:"rss_second_half_mean_mib"`
	RSSGrowthSecondHalfMiB float64 `json:"rss_growth_second_half_mib"`

	GoroutinesStart       int          `json:"goroutines_idle_before_load"`
	GoroutinesMax         int          `json:"goroutines_max"`
	GoroutinesEndOfLoad   int          `json:"goroutines_end_of_load"`
	GoroutinesSettled     int          `json:"goroutines_settled"`
	GoroutineSlopePerHour float64      `json:"goroutines_slope_per_hour"`
	FDsStart              int          `json:"fds_start"`
	FDsMax                int          `json:"fds_max"`
	FDsSettled            int          `json:"fds_settled"`
	SettledAfterSeconds   float64      `json:"settled_after_s"`
	Samples               []soakSample `json:"samples"`
}

func (l *soakLoad) report(dur time.Duration, start, loadEnd time.Time, ss soakSamples) *soakReport {
	l.mu.Lock()
	defer l.mu.Unlock()
	rep := &soakReport{
		Date: start.UTC().Format("2006-01-02"), Duration: dur.String(), GoVersion: runtime.Version(), CPUs: runtime.NumCPU(),
		LoadSecond: loadEnd.Sub(start).Seconds(),
		Requests:   map[soakKind]int{}, Latency: map[soakKind]soakLatency{},
		WSMessages: l.wsMsgs, POSTProtocols: l.protos, MiBUp: float64(l.bytesUp) / (1 << 20),
		FirstFailures: l.firstFail,
		Samples:       slices.Concat([]soakSample{ss.idle}, ss.loaded, []soakSample{ss.stopped, ss.settled}),
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	for _, k := range soakKinds {
		c := l.counts[k]
		rep.Requests[k] = c[outcomeOK]
		rep.SignetFailures += c[outcomeSignet]
		rep.UpstreamFailures += c[outcomeUpstream]
		if lat := slices.Clone(l.lat[k]); len(lat) > 0 {
			slices.Sort(lat)
			rep.Latency[k] = soakLatency{P50ms: ms(lat[len(lat)/2]), P99ms: ms(lat[len(lat)*99/100]), Maxms: ms(lat[len(lat)-1])}
		}
	}

	// Slopes over the samples under load: the idle one before it would
	// make the warm-up look like growth.
	var xs, rss, gor, xs2, rss2 []float64
	half := rep.LoadSecond / 2
	for _, sm := range ss.loaded {
		h := sm.At / 3600
		xs, rss, gor = append(xs, h), append(rss, sm.RSSMiB), append(gor, float64(sm.Goroutines))
		if sm.At >= half {
			xs2, rss2 = append(xs2, h), append(rss2, sm.RSSMiB)
		}
		rep.RSSMaxMiB = max(rep.RSSMaxMiB, sm.RSSMiB)
		rep.GoroutinesMax = max(rep.GoroutinesMax, sm.Goroutines)
		rep.FDsMax = max(rep.FDsMax, sm.FDs)
	}
	mean := func(v []float64) float64 {
		var sum float64
		for _, x := range v {
			sum += x
		}
		return sum / float64(max(1, len(v)))
	}
	rep.RSSSlopeMiBPerHour = slope(xs, rss)
	rep.RSSSlopeHalfMiBPerHour = slope(xs2, rss2)
	rep.RSSMeanMiB, rep.RSSSecondHalfMeanMiB = mean(rss), mean(rss2)
	if len(xs2) > 1 {
		rep.RSSGrowthSecondHalfMiB = rep.RSSSlopeHalfMiBPerHour * (xs2[len(xs2)-1] - xs2[0])
	}
	rep.GoroutineSlopePerHour = slope(xs, gor)
	if len(ss.loaded) > 0 {
		rep.RSSFirstMiB, rep.RSSLastMiB = ss.loaded[0].RSSMiB, ss.loaded[len(ss.loaded)-1].RSSMiB
	}
	rep.RSSIdleMiB, rep.RSSSettledMiB = ss.idle.RSSMiB, ss.settled.RSSMiB
	rep.GoroutinesStart, rep.GoroutinesEndOfLoad, rep.GoroutinesSettled = ss.idle.Goroutines, ss.stopped.Goroutines, ss.settled.Goroutines
	rep.FDsStart, rep.FDsSettled = ss.idle.FDs, ss.settled.FDs
	rep.SettledAfterSeconds = ss.settled.At - ss.stopped.At
	return rep
}

func (r *soakReport) log(t *testing.T) {
	var b strings.Builder
	fmt.Fprintf(&b, "soak %s, %s on %d CPUs, %s (load %.0fs)\n", r.Date, r.GoVersion, r.CPUs, r.Duration, r.LoadSecond)
	b.WriteString("| kind | ok | p50 | p99 | max |\n|---|---:|---:|---:|---:|\n")
	for _, k := range soakKinds {
		lat := r.Latency[k]
		fmt.Fprintf(&b, "| %s | %d | %.1f ms | %.1f ms | %.1f ms |\n", k, r.Requests[k], lat.P50ms, lat.P99ms, lat.Maxms)
	}
	fmt.Fprintf(&b, "WebSocket messages echoed: %d; POST protocols to signet: %v; uploaded %.0f MiB\n",
		r.WSMessages, r.POSTProtocols, r.MiBUp)
	fmt.Fprintf(&b, "failures caused by signet: %d; upstream failures: %d (API signature rejections %d)\n",
		r.SignetFailures, r.UpstreamFailures, r.SignatureRejections)
	fmt.Fprintf(&b, "refreshes during the load: %d (%d sessions minted); metrics: %.0f fetches, %.0f failed; STS AssumeRole calls %d, %d failed by injection\n",
		r.Refreshes, r.Sessions, r.RefreshesMetric, r.RefreshFailuresMetric, r.STSCalls, r.STSFailuresInjected)
	fmt.Fprintf(&b, "RSS: idle %.1f MiB; under load first %.1f, last %.1f, mean %.1f, max %.1f MiB; settled %.1f MiB; slope under load %+.2f MiB/h over the run, %+.2f MiB/h over the second half (%+.2f MiB, mean %.1f MiB)\n",
		r.RSSIdleMiB, r.RSSFirstMiB, r.RSSLastMiB, r.RSSMeanMiB, r.RSSMaxMiB, r.RSSSettledMiB, r.RSSSlopeMiBPerHour,
		r.RSSSlopeHalfMiBPerHour, r.RSSGrowthSecondHalfMiB, r.RSSSecondHalfMeanMiB)
	fmt.Fprintf(&b, "goroutines: idle before %d, max under load %d, load stopped %d, settled %d (%.0fs after), slope under load %+.1f/h; fds: idle %d, max %d, settled %d\n",
		r.GoroutinesStart, r.GoroutinesMax, r.GoroutinesEndOfLoad, r.GoroutinesSettled, r.SettledAfterSeconds,
		r.GoroutineSlopePerHour, r.FDsStart, r.FDsMax, r.FDsSettled)
	t.Log("\n" + b.String())
}
