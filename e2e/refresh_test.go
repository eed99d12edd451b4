//go:build linux

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signet-proxy/signet/internal/ststest"
)

// The refresh test of issue 3: signet assumes a role at a fake STS whose
// every session is also written into versitygw's IAM store, so that
// versitygw, a real SigV4 verifier, checks each request's access key,
// secret, session token and the session's expiry.
const (
	// refreshLifetime is how long each session lives, whatever duration
	// signet asks for (STS's minimum is 15m; the fake's SetLifetime
	// overrides it).
	refreshLifetime = 40 * time.Second
	// refreshRun is how long the client sends requests, one every
	// refreshEvery, through signet.
	refreshRun   = 3 * time.Minute
	refreshEvery = 100 * time.Millisecond
	// refreshOutage is how long the fake STS answers every AssumeRole with
	// 500 InternalFailure. It starts the moment the fake mints the session
	// of refresh number refreshOutageAfter.
	refreshOutage      = 30 * time.Second
	refreshOutageAfter = 2
	// The configured refresh windows. With 40 s sessions the Source caps
	// them at half and a quarter of the lifetime (20 s and 10 s); these
	// are below the caps, so they apply as they are.
	//
	// Why these values: a session minted at M expires at M+40 s; the
	// outage runs from M (a hair after) to M+30 s. Signet first tries to
	// refresh at the advisory point, M+40-11 = M+29 s (up to a tenth of
	// advisory-mandatory earlier for jitter, and up to 1 s earlier because
	// STS's Expiration has whole seconds): that try fails, so the outage
	// really is met, but failures last only 1 to 3 s before the outage
	// ends, so the Source's backoff after them is at most 2 s (plus the
	// STS client's one retry, under 2 s). The next try is thus before
	// M+35 s, well before the mandatory point M+39 s from which requests
	// would wait for a refresh (and fail with its error): the keys outlive
	// the outage and requests never wait. A larger advisory window makes
	// the failures, and so the backoff, longer: with advisory 15s the
	// backoff can carry the next try past a 5s mandatory point, and then
	// requests fail with "last refresh failed, next attempt in ..."
	// although STS is back and the keys are still valid.
	refreshAdvisory  = 11 * time.Second
	refreshMandatory = 1 * time.Second
	// refreshMinRefreshes is the "at least 4 refreshes".
	refreshMinRefreshes = 4
	// refreshRequestTimeout bounds one request of the client.
	refreshRequestTimeout = 15 * time.Second
)

// A second, shorter run checks that the default windows (15m and 10m) are
// scaled down to half and a quarter of a short session's lifetime.
const (
	scaledLifetime = 20 * time.Second
	scaledRun      = 50 * time.Second
)

// TestRefreshEndToEnd: continuous load through signet for refreshRun,
// every request answered 200 by versitygw, at least refreshMinRefreshes
// refreshes each with a new access key, and an STS outage mid-run that
// requests do not notice; in eager and in deferred mode.
func TestRefreshEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the 3-minute refresh runs in -short mode")
	}
	for _, mode := range []string{"eager", "deferred"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			runRefresh(t, refreshCase{
				mode: mode, lifetime: refreshLifetime, run: refreshRun, outage: true,
				advisory: refreshAdvisory, mandatory: refreshMandatory, minRefreshes: refreshMinRefreshes,
			})
		})
	}
	t.Run("default-windows-scaled", func(t *testing.T) {
		t.Parallel()
		// 15m/10m scaled to 10s/5s for 20 s sessions: a refresh every
		// 20-10 = 10 s (jitter up to 0.5 s earlier).
		runRefresh(t, refreshCase{
			mode: "eager", lifetime: scaledLifetime, run: scaledRun,
			advisory: scaledLifetime / 2, mandatory: scaledLifetime / 4, defaultWindows: true, minRefreshes: 3,
		})
	})
}

type refreshCase struct {
	mode     string
	lifetime time.Duration
	run      time.Duration
	outage   bool
	// advisory and mandatory are the windows the Source should apply;
	// they are written into the config unless defaultWindows.
	advisory, mandatory time.Duration
	defaultWindows      bool
	minRefreshes        int
}

// mint is a session the fake STS minted (and versitygw learnt).
type mint struct {
	ststest.Minted
	at time.Time
}

// reqRecord is one request of the client.
type reqRecord struct {
	at     time.Time
	took   time.Duration
	status int
	code   string // X-Signet-Error, or versitygw's error body
	err    error
}

func runRefresh(t *testing.T, rc refreshCase) {
	v := startVersityIAM(t, testAccessKey, testSecretKey)
	role := v.createRole(t, "signet-refresh")
	const bucket, key, payload = "refresh-bucket", "obj.txt", "refreshed and verified"
	rootc := newSDKClient("", testAccessKey, testSecretKey)
	if r := rootc.Do(t, "PUT", v.URL()+"/"+bucket, nil); r.Status != 200 {
		t.Fatalf("create bucket with the root keys: %d\n%s", r.Status, r.Body)
	}
	if r := rootc.Do(t, "PUT", v.URL()+"/"+bucket+"/"+key, []byte(payload)); r.Status != 200 {
		t.Fatalf("put object with the root keys: %d\n%s", r.Status, r.Body)
	}

	var (
		mu      sync.Mutex
		mints   []mint
		minted  = make(chan mint, 64)
		mintErr error
	)
	f := ststest.New(t, ststest.Options{PlainHTTP: true, OnMint: func(m ststest.Minted) error {
		err := v.addSession(m, role)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			mintErr = err
			return err
		}
		mn := mint{Minted: m, at: time.Now()}
		mints = append(mints, mn)
		select {
		case minted <- mn:
		default:
		}
		return nil
	}})
	f.AddUser(testBaseKey, testBaseSecret, "arn:aws:iam::000000000000:user/signet-base")
	f.AddRole(ststest.Role{ARN: role.ARN})
	f.SetLifetime(rc.lifetime)

	refresh := "{mode: " + rc.mode + "}"
	if !rc.defaultWindows {
		refresh = fmt.Sprintf("{mode: %s, advisory: %s, mandatory: %s, timeout: 10s}", rc.mode, rc.advisory, rc.mandatory)
	}
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
log: {level: debug, format: json}
sources:
  base: {method: static, static: {access_key_id: %[1]s, secret_access_key: %[2]q}}
  role:
    method: sts
    sts:
      role_arn: %[3]q
      source: base
      endpoint: %[4]q
      region: %[5]s
      duration: 15m
    refresh: %[6]s
routes:
  - hosts: ["%[7]s"]
    source: role
    upstream_scheme: http
upstream:
  connect_to:
    "%[7]s:80": "%[8]s"
`, testBaseKey, testBaseSecret, role.ARN, f.URL(), testRegion, refresh, s3Host, v.Addr)
	s := startSignet(t, cfg, 0)

	// The client: one GET every refreshEvery, for refreshRun.
	proxyURL, err := url.Parse(s.ProxyURL())
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: refreshRequestTimeout, Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}}
	objURL := "http://" + s3Host + "/" + bucket + "/" + key
	start := time.Now()
	end := start.Add(rc.run)
	var reqs []reqRecord
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		tick := time.NewTicker(refreshEvery)
		defer tick.Stop()
		for i := 0; i < int(rc.run/refreshEvery)+10 && time.Now().Before(end); i++ {
			reqs = append(reqs, getRecord(hc, objURL, payload))
			<-tick.C
		}
	}()

	// The outage: from the moment refresh number refreshOutageAfter is
	// minted, for refreshOutage.
	var outageStart, outageEnd time.Time
	var outageMint mint
	if rc.outage {
		timeout := time.After(rc.run)
	wait:
		for n := 0; ; {
			select {
			case m := <-minted:
				n++
				if n == refreshOutageAfter+1 { // the first mint is no refresh
					outageMint = m
					break wait
				}
			case <-timeout:
				break wait
			}
		}
		if !outageMint.at.IsZero() {
			f.FailAlways(ststest.FailInternal)
			outageStart = time.Now()
			time.Sleep(refreshOutage)
			f.FailAlways(0)
			outageEnd = time.Now()
		}
	}
	<-loadDone

	mu.Lock()
	ms := append([]mint(nil), mints...)
	if mintErr != nil {
		t.Errorf("writing a session into versitygw's IAM store: %v", mintErr)
	}
	mu.Unlock()
	rel := func(at time.Time) string { return at.Sub(start).Round(10 * time.Millisecond).String() }

	// Every request answered 200 with the object.
	var bad []string
	var maxTook time.Duration
	for _, r := range reqs {
		maxTook = max(maxTook, r.took)
		if r.err != nil || r.status != 200 {
			bad = append(bad, fmt.Sprintf("at +%s (%s): %d %s %v", rel(r.at), r.took.Round(time.Millisecond), r.status, r.code, r.err))
		}
	}
	if len(bad) > 0 {
		t.Errorf("%d of %d requests failed; the first ones:\n%s", len(bad), len(reqs), strings.Join(bad[:min(len(bad), 20)], "\n"))
	}
	if want := int(rc.run / refreshEvery / 2); len(reqs) < want {
		t.Errorf("only %d requests in %s, want at least %d", len(reqs), rc.run, want)
	}

	// Refreshes: each one a new key, minted by the fake (so known to
	// versitygw), and each logged by signet.
	logged := refreshedKeys(s.Logs.String(), "role")
	seen := map[string]bool{}
	var lines []string
	for i, m := range ms {
		if seen[m.AccessKeyID] {
			t.Errorf("access key %s minted twice", m.AccessKeyID)
		}
		seen[m.AccessKeyID] = true
		lines = append(lines, fmt.Sprintf("mint %d at +%s: %s, expires +%s", i, rel(m.at), redactKey(m.AccessKeyID), rel(m.Expires)))
	}
	if len(logged) != len(ms) {
		t.Errorf("signet logged %d refreshes of source role, the fake minted %d sessions", len(logged), len(ms))
	}
	for i := range min(len(logged), len(ms)) {
		if logged[i] != redactKey(ms[i].AccessKeyID) {
			t.Errorf("refresh %d: signet logged key %s, the fake minted %s", i, logged[i], redactKey(ms[i].AccessKeyID))
		}
	}
	if refreshes := len(ms) - 1; refreshes < rc.minRefreshes {
		t.Errorf("%d refreshes (after the first fetch) in %s, want at least %d", refreshes, rc.run, rc.minRefreshes)
	}

	// The refresh points: outside the outage, the next session is minted
	// at the advisory point, lifetime-advisory after the last, a little
	// earlier for the jitter (a tenth of advisory-mandatory at most) and
	// for the whole-second Expiration (1 s at most); a little later for a
	// deferred source (it waits for a request) and for the call itself.
	lo := rc.lifetime - rc.advisory - (rc.advisory-rc.mandatory)/10 - time.Second - 200*time.Millisecond
	hi := rc.lifetime - rc.advisory + time.Second
	for i := 1; i < len(ms); i++ {
		if rc.outage && ms[i-1].AccessKeyID == outageMint.AccessKeyID {
			continue // delayed by the outage, checked below
		}
		if gap := ms[i].at.Sub(ms[i-1].at); gap < lo || gap > hi {
			t.Errorf("mint %d came %s after the previous one, want %s to %s (advisory %s of a %s session)",
				i, gap.Round(time.Millisecond), lo, hi, rc.advisory, rc.lifetime)
		}
	}

	calls := f.Calls()
	var failedCalls, outageCalls int
	for _, c := range calls {
		if c.Action == "AssumeRole" && c.Error != "" {
			failedCalls++
		}
	}
	if rc.outage {
		if outageMint.at.IsZero() {
			t.Fatalf("refresh %d never came, so there was no outage\n%s", refreshOutageAfter, strings.Join(lines, "\n"))
		}
		// The outage was met: signet tried while STS failed.
		for _, c := range calls {
			if c.Error == "InternalFailure" {
				outageCalls++
			}
		}
		if outageCalls == 0 {
			t.Errorf("no AssumeRole call failed during the outage: it was not exercised")
		}
		// The session minted just before the outage outlived it, and signet
		// replaced it after the outage and before it expired.
		if !outageMint.Expires.After(outageEnd) {
			t.Errorf("the session expired at +%s, before the outage ended at +%s: the test's timing is wrong",
				rel(outageMint.Expires), rel(outageEnd))
		}
		var after *mint
		for i := range ms {
			if ms[i].at.After(outageStart) && ms[i].at.Before(outageEnd) {
				t.Errorf("a session was minted during the outage, at +%s", rel(ms[i].at))
			}
			if after == nil && ms[i].at.After(outageEnd) {
				after = &ms[i]
			}
		}
		switch {
		case after == nil:
			t.Errorf("no session minted after the outage ended at +%s", rel(outageEnd))
		case !after.at.Before(outageMint.Expires):
			t.Errorf("the first session after the outage came at +%s, after the last one expired at +%s",
				rel(after.at), rel(outageMint.Expires))
		default:
			lines = append(lines, fmt.Sprintf("outage +%s to +%s; recovered at +%s, %s before the old session expired",
				rel(outageStart), rel(outageEnd), rel(after.at), outageMint.Expires.Sub(after.at).Round(time.Millisecond)))
		}
		var during int
		for _, r := range reqs {
			if r.at.After(outageStart) && r.at.Before(outageEnd) {
				during++
			}
		}
		if want := int(refreshOutage / refreshEvery / 2); during < want {
			t.Errorf("only %d requests during the outage, want at least %d", during, want)
		}
		lines = append(lines, fmt.Sprintf("%d requests during the outage", during))
	}
	t.Logf("mode %s: %d requests in %s, %d failed, slowest %s; %d sessions (%d refreshes); %d AssumeRole calls, %d failed\n%s",
		rc.mode, len(reqs), time.Since(start).Round(time.Millisecond), len(bad), maxTook.Round(time.Millisecond),
		len(ms), len(ms)-1, len(calls), failedCalls, strings.Join(lines, "\n"))
}

// getRecord sends one GET and checks the body.
func getRecord(hc *http.Client, u, want string) reqRecord {
	r := reqRecord{at: time.Now()}
	resp, err := hc.Get(u)
	if err != nil {
		r.err = err
		r.took = time.Since(r.at)
		return r
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	r.status, r.err = resp.StatusCode, err
	switch {
	case resp.Header.Get("X-Signet-Error") != "":
		r.code = resp.Header.Get("X-Signet-Error") + ": " + string(b)
	case resp.StatusCode != 200:
		r.code = string(b)
	case string(b) != want:
		r.err = fmt.Errorf("body %q, want %q", b, want)
	}
	r.took = time.Since(r.at)
	return r
}

// refreshedKeys returns the redacted access key ids of signet's
// "credentials refreshed" log lines for source, in order.
func refreshedKeys(logs, source string) []string {
	var keys []string
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		var l struct {
			Msg         string `json:"msg"`
			Source      string `json:"source"`
			Credentials struct {
				AccessKeyID string `json:"access_key_id"`
			} `json:"credentials"`
		}
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "credentials refreshed" && l.Source == source {
			keys = append(keys, l.Credentials.AccessKeyID)
		}
	}
	return keys
}

// redactKey is how signet logs an access key id.
func redactKey(id string) string {
	if len(id) <= 8 {
		return "****"
	}
	return id[:4] + "…" + id[len(id)-4:]
}
