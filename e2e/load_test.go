//go:build linux

package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signet-proxy/signet/proxy/tlsintercept"
)

// BenchmarkLoad is the performance harness behind the README's table. It is
// a benchmark, not a test: `go test` runs it only with -bench, and
// scripts/bench.sh is the one command that does. Each scenario runs once
// whatever b.N is (use -benchtime 1x), against a loopback upstream that does
// almost nothing, so the figures are signet's own cost:
//
//   - small GET: wrk -t2 -c32 straight to the upstream, then through the
//     reverse listener and the forward proxy;
//   - intercepted HTTPS small GET: a Go load generator (wrk cannot CONNECT)
//     straight over TLS, then through HTTPS_PROXY interception;
//   - 64 KiB POST to a service whose payload signet must hash;
//   - 1 GiB PUT and GET, one stream.
//
// Each line reports requests/s, p50 and p99 latency, signet's peak RSS in
// that scenario and the ratio to direct, and the whole table is printed at
// the end. Figures of one run only: they are meant as ratios.
func BenchmarkLoad(b *testing.B) {
	wrk := needCommand(b, "wrk")
	d := loadDuration(b)
	up := newLoadUpstream(b)
	s := startSignet(b, up.config(b), 2)
	reverse := "http://" + s.Reverse[0]
	// The second reverse listener streams bodies unhashed (payload:
	// unsigned), as S3 over TLS does, so 1 GiB measures streaming, not the
	// spool.
	streaming := "http://" + s.Reverse[1]

	var rows []loadRow
	add := func(r loadRow) {
		rows = append(rows, r)
		b.Logf("%s", r)
	}
	ratio := func(r loadRow, direct loadRow) loadRow {
		r.Ratio = r.RPS / direct.RPS
		return r
	}

	script := writeWrkScripts(b)
	// Small GET.
	direct := up.measure(b, s, "small GET direct", func() loadStats { return runWrk(b, wrk, up.http+"/item", script.getDirect, d) })
	direct.Ratio = 1
	add(direct)
	add(ratio(up.measure(b, s, "small GET reverse", func() loadStats { return runWrk(b, wrk, reverse+"/item", "", d) }), direct))
	add(ratio(up.measure(b, s, "small GET forward", func() loadStats {
		return runWrk(b, wrk, "http://"+s.ProxyAddr+"/", script.forward, d)
	}), direct))

	// Intercepted HTTPS, Go load generator on both sides.
	tlsDirect := up.measure(b, s, "small GET TLS direct", func() loadStats {
		return runGoLoad(b, up.tlsClient(b, nil), "https://"+loadHost+"/item", true, d)
	})
	tlsDirect.Ratio = 1
	add(tlsDirect)
	add(ratio(up.measure(b, s, "small GET intercepted", func() loadStats {
		return runGoLoad(b, up.tlsClient(b, s), "https://"+loadHost+"/item", false, d)
	}), tlsDirect))

	// 64 KiB POST: signet hashes every body.
	postDirect := up.measure(b, s, "64 KiB POST direct", func() loadStats {
		return runWrk(b, wrk, up.http+"/post", script.postDirect, d)
	})
	postDirect.Ratio = 1
	add(postDirect)
	add(ratio(up.measure(b, s, "64 KiB POST reverse", func() loadStats {
		return runWrk(b, wrk, reverse+"/post", script.post, d)
	}), postDirect))

	// 1 GiB, one stream each way.
	const big = 1 << 30
	c := newGoClient("").c
	for _, dir := range []string{"PUT", "GET"} {
		direct := up.measure(b, s, "1 GiB "+dir+" direct", func() loadStats { return transferOnce(b, c, dir, up.http+"/big", big) })
		direct.Ratio = 1
		add(direct)
		add(ratio(up.measure(b, s, "1 GiB "+dir+" reverse", func() loadStats {
			return transferOnce(b, c, dir, streaming+"/big", big)
		}), direct))
	}

	var tbl strings.Builder
	tbl.WriteString("| scenario | requests/s | p50 | p99 | signet peak RSS | ratio to direct |\n|---|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		fmt.Fprintf(&tbl, "| %s | %.0f | %s | %s | %s | %.2f |\n", r.Name, r.RPS, fmtDur(r.P50), fmtDur(r.P99), fmtRSS(r.RSS), r.Ratio)
	}
	fmt.Fprint(os.Stdout, "\n"+tbl.String())
	for _, r := range rows {
		if r.Name == "small GET reverse" {
			b.ReportMetric(r.Ratio, "reverse/direct")
		}
	}
}

const loadHost = "api.load.test"

// loadDuration is how long each throughput scenario runs:
// SIGNETTEST_LOAD_DURATION, default 10s.
func loadDuration(tb testing.TB) time.Duration {
	v := os.Getenv("SIGNETTEST_LOAD_DURATION")
	if v == "" {
		return 10 * time.Second
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		tb.Fatalf("SIGNETTEST_LOAD_DURATION=%q: want a positive duration", v)
	}
	return d
}

type loadStats struct {
	RPS      float64
	P50, P99 time.Duration
}

type loadRow struct {
	Name string
	loadStats
	RSS   int64
	Ratio float64
}

func (r loadRow) String() string {
	return fmt.Sprintf("%-24s %10.0f req/s  p50 %-9s p99 %-9s signet RSS %-8s ratio %.2f",
		r.Name, r.RPS, fmtDur(r.P50), fmtDur(r.P99), fmtRSS(r.RSS), r.Ratio)
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
	}
}

func fmtRSS(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// loadUpstream answers everything at once: 1 KiB for GET /item, a drained
// body for POST /post and PUT /big, 1 GiB of generated bytes for GET /big.
// Requests that did not come straight from the harness must carry a SigV4
// Authorization, so a path that forgot to sign fails loudly.
type loadUpstream struct {
	http    string // http://host:port
	tlsAddr string // host:port of the TLS listener
	upCA    *tlsintercept.Interceptor
}

var loadPayload = bytes.Repeat([]byte("0123456789abcdef"), 64)

func newLoadUpstream(b *testing.B) *loadUpstream {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Direct") == "" && !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
			http.Error(w, "unsigned", http.StatusForbidden)
			return
		}
		switch {
		case r.Method == "GET" && r.URL.Path == "/item":
			w.Header().Set("Content-Length", strconv.Itoa(len(loadPayload)))
			_, _ = w.Write(loadPayload)
		case r.Method == "GET" && r.URL.Path == "/big":
			w.Header().Set("Content-Length", strconv.Itoa(1<<30))
			_, _ = io.Copy(w, newGenReader(1<<30))
		default:
			_, _ = io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusOK)
		}
	})
	plain := httptest.NewServer(h)
	b.Cleanup(plain.Close)

	upCA, err := tlsintercept.Open(context.Background(), tlsintercept.Options{
		StateDir: filepath.Join(b.TempDir(), "upstream-ca"), Allow: func(string) bool { return true },
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = upCA.Close() })
	tlsSrv := httptest.NewUnstartedServer(h)
	tlsSrv.TLS = upCA.ServerConfigFor(loadHost)
	tlsSrv.StartTLS()
	b.Cleanup(tlsSrv.Close)
	return &loadUpstream{http: plain.URL, tlsAddr: strings.TrimPrefix(tlsSrv.URL, "https://"), upCA: upCA}
}

// config: the reverse listener signs for execute-api, whose payload signet
// hashes (so the POST scenario measures hashing); the forward proxy signs
// loadHost over plain HTTP and intercepts it over HTTPS.
func (u *loadUpstream) config(b *testing.B) string {
	caFile := filepath.Join(b.TempDir(), "upstream-ca.pem")
	if err := os.WriteFile(caFile, u.upCA.CACertPEM(), 0o644); err != nil {
		b.Fatal(err)
	}
	plain := strings.TrimPrefix(u.http, "http://")
	return fmt.Sprintf(`listen: 127.0.0.1:0
state_dir: %q
log: {level: info, format: json}
sources:
  test: {method: static, static: {access_key_id: AKIDEXAMPLE, secret_access_key: secret}}
routes:
  - {hosts: [%[3]q], source: test, service: execute-api, region: us-east-1, upstream_scheme: http}
  - {hosts: [%[3]q], source: test, service: execute-api, region: us-east-1}
upstream:
  ca_file: %[2]q
  connect_to: {"%[3]s:80": %[4]q, "%[3]s:443": %[5]q}
reverse:
  - {listen: 127.0.0.1:0, upstream: "http://%[4]s", source: test, service: execute-api, region: us-east-1}
  - {listen: 127.0.0.1:0, upstream: "http://%[4]s", source: test, service: execute-api, region: us-east-1, payload: unsigned}
`, filepath.Join(b.TempDir(), "state"), caFile, loadHost, plain, u.tlsAddr)
}

// tlsClient speaks TLS to loadHost: straight to the upstream when s is
// nil, else through s trusting its CA.
func (u *loadUpstream) tlsClient(b *testing.B, s *signetProc) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	pool := x509.NewCertPool()
	if s == nil {
		pool.AppendCertsFromPEM(u.upCA.CACertPEM())
		var d net.Dialer
		tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, u.tlsAddr)
		}
	} else {
		pu, err := url.Parse(s.ProxyURL())
		if err != nil {
			b.Fatal(err)
		}
		tr.Proxy = http.ProxyURL(pu)
		pem, err := os.ReadFile(filepath.Join(s.StateDir, "ca.pem"))
		if err != nil {
			b.Fatal(err)
		}
		pool.AppendCertsFromPEM(pem)
	}
	tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	b.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// measure runs one scenario with signet's peak RSS reset before it, so
// the RSS column is that scenario's own.
func (u *loadUpstream) measure(b *testing.B, s *signetProc, name string, run func() loadStats) loadRow {
	// Writing 5 to clear_refs resets VmHWM to the current RSS.
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", s.Pid), []byte("5"), 0); err != nil {
		b.Fatalf("reset peak RSS: %v", err)
	}
	st := run()
	return loadRow{Name: name, loadStats: st, RSS: vmHWM(b, s.Pid)}
}

type wrkScripts struct{ getDirect, forward, post, postDirect string }

// writeWrkScripts: forward sends absolute-form request lines, as a client
// configured with HTTP_PROXY does; post sends a 64 KiB body. The direct
// ones mark themselves, since nothing signs them.
func writeWrkScripts(b *testing.B) wrkScripts {
	dir := b.TempDir()
	write := func(name, lua string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(lua), 0o644); err != nil {
			b.Fatal(err)
		}
		return p
	}
	const direct = "wrk.headers[\"X-Direct\"] = \"1\"\n"
	const post = "wrk.method = \"POST\"\nwrk.body = string.rep(\"x\", 65536)\nwrk.headers[\"Content-Type\"] = \"application/octet-stream\"\n"
	return wrkScripts{
		getDirect:  write("get-direct.lua", direct),
		forward:    write("forward.lua", "wrk.path = \"http://"+loadHost+"/item\"\nwrk.headers[\"Host\"] = \""+loadHost+"\"\n"),
		post:       write("post.lua", post),
		postDirect: write("post-direct.lua", post+direct),
	}
}

var (
	wrkRPS     = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkLatency = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
	wrkErrors  = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)|Socket errors: .*`)
)

// runWrk runs wrk -t2 -c32 with latency percentiles and parses its report.
// Any non-2xx answer or socket error fails the benchmark: a ratio of
// errors is not a figure.
func runWrk(b *testing.B, wrk, target, script string, d time.Duration) loadStats {
	args := []string{"-t2", "-c32", "-d" + strconv.Itoa(int(d.Seconds())) + "s", "--latency"}
	if script != "" {
		args = append(args, "-s", script)
	}
	out, err := exec.Command(wrk, append(args, target)...).CombinedOutput()
	if err != nil {
		b.Fatalf("wrk %s: %v\n%s", target, err, out)
	}
	if m := wrkErrors.FindString(string(out)); m != "" {
		b.Fatalf("wrk %s: %s\n%s", target, m, out)
	}
	var st loadStats
	m := wrkRPS.FindStringSubmatch(string(out))
	if m == nil {
		b.Fatalf("wrk %s: no Requests/sec in:\n%s", target, out)
	}
	st.RPS, _ = strconv.ParseFloat(m[1], 64)
	for _, l := range wrkLatency.FindAllStringSubmatch(string(out), -1) {
		v, _ := strconv.ParseFloat(l[2], 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[l[3]]
		if l[1] == "50" {
			st.P50 = time.Duration(v * float64(unit))
		} else {
			st.P99 = time.Duration(v * float64(unit))
		}
	}
	return st
}

// runGoLoad keeps 32 requests in flight for d, as wrk -c32 does, and
// records every latency. direct marks requests that nothing signs.
func runGoLoad(b *testing.B, c *http.Client, target string, direct bool, d time.Duration) loadStats {
	newReq := func() (*http.Request, error) {
		req, err := http.NewRequest("GET", target, nil)
		if direct && err == nil {
			req.Header.Set("X-Direct", "1")
		}
		return req, err
	}
	if err := getOnce(c, newReq, loadPayload); err != nil {
		b.Fatal(err)
	}
	const conns = 32
	var (
		mu        sync.Mutex
		latencies []time.Duration
		firstErr  error
		wg        sync.WaitGroup
	)
	deadline := time.Now().Add(d)
	start := time.Now()
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 4096)
			for time.Now().Before(deadline) {
				t0 := time.Now()
				err := getOnce(c, newReq, loadPayload)
				if err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			latencies = append(latencies, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	elapsed := time.Since(start)
	slices.Sort(latencies)
	return loadStats{
		RPS: float64(len(latencies)) / elapsed.Seconds(),
		P50: latencies[len(latencies)/2],
		P99: latencies[len(latencies)*99/100],
	}
}

// transferOnce moves n generated bytes up (PUT) or down (GET) once and
// reports it as one request; the GET's bytes are checked against the
// generator by hash.
func transferOnce(b *testing.B, c *http.Client, method, target string, n int64) loadStats {
	var body io.Reader
	if method == "PUT" {
		body = newGenReader(n)
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		b.Fatal(err)
	}
	req.ContentLength = n
	if method == "GET" {
		req.ContentLength = 0
	}
	req.Header.Set("X-Direct", "1")
	t0 := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	h := sha256.New()
	got, err := io.Copy(h, resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		b.Fatalf("%s %s: %d after %d bytes: %v", method, target, resp.StatusCode, got, err)
	}
	el := time.Since(t0)
	if method == "GET" {
		want := sha256.New()
		_, _ = io.Copy(want, newGenReader(n))
		if got != n || !bytes.Equal(h.Sum(nil), want.Sum(nil)) {
			b.Fatalf("GET %s: %d bytes, content differs from what the upstream sent", target, got)
		}
	}
	b.ReportMetric(float64(n)/el.Seconds()/(1<<20), strings.ToLower(method)+"_MiB/s")
	return loadStats{RPS: 1 / el.Seconds(), P50: el, P99: el}
}
