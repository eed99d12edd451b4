//go:build linux

package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// loadGen sends GETs for one object through signet from a few goroutines
// until stopped, and keeps every failure.
type loadGen struct {
	want string // the object's body
	stop chan struct{}
	wg   sync.WaitGroup
	ok   atomic.Int64

	mu       sync.Mutex
	failures []string
	perName  map[string]int
}

func newLoadGen(want string) *loadGen {
	return &loadGen{want: want, stop: make(chan struct{}), perName: map[string]int{}}
}

// run starts a goroutine that GETs target with c until stop.
func (g *loadGen) run(name string, c *http.Client, target string) {
	g.wg.Go(func() {
		for {
			select {
			case <-g.stop:
				return
			default:
			}
			problem := ""
			resp, err := c.Get(target)
			if err != nil {
				problem = err.Error()
			} else {
				b, rerr := io.ReadAll(resp.Body)
				resp.Body.Close()
				switch {
				case rerr != nil:
					problem = "read body: " + rerr.Error()
				case resp.StatusCode != http.StatusOK || string(b) != g.want:
					problem = fmt.Sprintf("status %d %s: %.300s", resp.StatusCode, resp.Header.Get("X-Signet-Error"), b)
				}
			}
			g.mu.Lock()
			g.perName[name]++
			if problem != "" {
				g.failures = append(g.failures, fmt.Sprintf("%s %s: %s", time.Now().Format("15:04:05.000"), name, problem))
			} else {
				g.ok.Add(1)
			}
			g.mu.Unlock()
		}
	})
}

func (g *loadGen) finish() (ok int64, failures []string, per map[string]int) {
	close(g.stop)
	g.wg.Wait()
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.ok.Load(), g.failures, g.perName
}

// writeAtomic replaces file in one rename, as a config management tool
// would, so signet never reads half of it.
func writeAtomic(t *testing.T, file, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(file), ".next-"+filepath.Base(file))
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
}

// waitLog waits until signet has logged more than n lines with msg for
// which match holds, and returns the first such line after the n-th.
func waitLog(t *testing.T, s *signetProc, msg string, n int, limit time.Duration, match func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		var hits []map[string]any
		for _, l := range logLines(s, msg) {
			if match == nil || match(l) {
				hits = append(hits, l)
			}
		}
		if len(hits) > n {
			return hits[n]
		}
		if time.Now().After(deadline) {
			t.Fatalf("signet did not log %q (%d seen, waiting for one more) within %s", msg, len(hits), limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func countLog(s *signetProc, msg string) int { return len(logLines(s, msg)) }

// strs is a JSON list attribute of a log line.
func strs(v any) []string {
	var out []string
	list, _ := v.([]any)
	for _, x := range list {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// TestReloadUnderLoad: while clients keep reading an object through the
// forward proxy and a reverse listener, the config is reloaded with
// SIGHUP (a route and the reverse listener move to another source, and a
// route is added) and by writing the file (the routes swap again, and a
// source's settings change, so it is rebuilt); an invalid file and a
// change only a restart can make are refused and logged, naming the key,
// and the old config keeps serving. Not one request fails. Sources whose
// config did not change keep their credentials.
func TestReloadUnderLoad(t *testing.T) {
	fx := newSTSFixture(t, "signet-reload")
	const bucket, key, payload = "reload-bucket", "obj.txt", "served through every reload"
	rootc := newSDKClient("", testAccessKey, testSecretKey)
	if r := rootc.Do(t, "PUT", fx.v.URL()+"/"+bucket, nil); r.Status != 200 {
		t.Fatalf("create bucket with the root keys: %d\n%s", r.Status, r.Body)
	}
	if r := rootc.Do(t, "PUT", fx.v.URL()+"/"+bucket+"/"+key, []byte(payload)); r.Status != 200 {
		t.Fatalf("put object with the root keys: %d\n%s", r.Status, r.Body)
	}
	state := filepath.Join(t.TempDir(), "state")
	// conf is the config with routes and the reverse listener's source;
	// refresh is the role source's refresh block.
	conf := func(routes, reverseSource, refresh string) string {
		return fmt.Sprintf(`listen: 127.0.0.1:0
state_dir: %q
shutdown_timeout: 5s
log: {level: debug, format: json}
%sroutes:
%supstream:
  connect_to:
    "%s:80": "%s"
    "alt.test:80": "%[5]s"
reverse:
  - {listen: 127.0.0.1:0, upstream: "http://%[5]s", source: %s, service: s3, region: %s}
`, state, fx.sources(refresh), routes, s3Host, fx.v.Addr, reverseSource, testRegion)
	}
	route := func(host, source string) string {
		return fmt.Sprintf("  - {hosts: [%q], source: %s, upstream_scheme: http, service: s3, region: %s}\n", host, source, testRegion)
	}
	const refresh1 = "{mode: deferred, timeout: 30s}"
	const refresh2 = "{mode: deferred, timeout: 20s}"
	conf0 := conf(route(s3Host, "root"), "root", refresh1)
	s := startSignet(t, conf0, 1)

	proxyURL, err := url.Parse(s.ProxyURL())
	if err != nil {
		t.Fatal(err)
	}
	client := func(proxied bool) *http.Client {
		tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4}
		if proxied {
			tr.Proxy = http.ProxyURL(proxyURL)
		}
		return &http.Client{Timeout: 30 * time.Second, Transport: tr}
	}
	path := "/" + bucket + "/" + key
	g := newLoadGen(payload)
	g.run("forward-1", client(true), "http://"+s3Host+path)
	g.run("forward-2", client(true), "http://"+s3Host+path)
	g.run("reverse", client(false), "http://"+s.Reverse[0]+path)
	reloaded := func(n int) map[string]any { return waitLog(t, s, "config reloaded", n, 30*time.Second, nil) }
	time.Sleep(500 * time.Millisecond)

	// 1. SIGHUP: s3 and the reverse listener move to role; alt.test is
	// added, signed with root.
	conf1 := conf(route(s3Host, "role")+route("alt.test", "root"), "role", refresh1)
	writeAtomic(t, s.ConfigFile, conf1)
	if err := syscall.Kill(s.Pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// The file watcher may see the new file too; whichever reload comes
	// first applies it, and the SIGHUP reloads in any case.
	waitLog(t, s, "config reloaded", 0, 30*time.Second, func(l map[string]any) bool { return l["trigger"] == "signal hangup" })
	waitLog(t, s, "config reloaded", 0, 30*time.Second, func(l map[string]any) bool { return l["routes"] == 2.0 })
	deadline := time.Now().Add(30 * time.Second)
	for fx.mints.count() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no session minted for role 30s after the reload that routes s3 to it")
		}
		time.Sleep(50 * time.Millisecond)
	}
	g.run("alt", client(true), "http://alt.test"+path)
	time.Sleep(time.Second)
	mintsAfter1 := fx.mints.count()

	// 2. A file write: s3 and the reverse listener back to root, alt.test
	// to role, and role's refresh timeout changes, so it is built anew
	// (and fetches a new session), while root and base are kept.
	n := countLog(s, "config reloaded")
	conf2 := conf(route(s3Host, "root")+route("alt.test", "role"), "root", refresh2)
	writeAtomic(t, s.ConfigFile, conf2)
	l := reloaded(n)
	if l["trigger"] != "config file changed" || !slices.Equal(strs(l["sources_changed"]), []string{"role"}) ||
		len(strs(l["sources_added"])) != 0 || len(strs(l["sources_removed"])) != 0 || l["sources_kept"] != 3.0 {
		t.Errorf("reload on the file write: %v; want trigger config file changed, role changed, base, root and default kept", l)
	}
	deadline = time.Now().Add(30 * time.Second)
	for fx.mints.count() == mintsAfter1 {
		if time.Now().After(deadline) {
			t.Fatalf("the rebuilt role source fetched no session within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second)

	// 3. An invalid file: the error names the key, the old config stays.
	failed := countLog(s, "config reload failed")
	writeAtomic(t, s.ConfigFile, conf(route(s3Host, "nope")+route("alt.test", "role"), "root", refresh2))
	l = waitLog(t, s, "config reload failed", failed, 30*time.Second, nil)
	if !slices.Contains(strs(l["keys"]), "routes[0].source") || !strings.Contains(fmt.Sprint(l["error"]), "routes[0].source") {
		t.Errorf("the failed reload's log line does not name routes[0].source: %v", l)
	}
	time.Sleep(time.Second)

	// 4. A change only a restart can apply: refused, naming the key.
	refused := countLog(s, "config reload refused")
	writeAtomic(t, s.ConfigFile, strings.Replace(conf2, "shutdown_timeout: 5s", "shutdown_timeout: 6s", 1))
	l = waitLog(t, s, "config reload refused", refused, 30*time.Second, nil)
	if !slices.Equal(strs(l["keys"]), []string{"shutdown_timeout"}) {
		t.Errorf("the refused reload's keys: %v, want [shutdown_timeout]", l["keys"])
	}
	time.Sleep(time.Second)

	// 5. A good file again is applied: routes move, no source changes.
	n = countLog(s, "config reloaded")
	writeAtomic(t, s.ConfigFile, conf(route(s3Host, "role")+route("alt.test", "root"), "role", refresh2))
	l = reloaded(n)
	if l["sources_kept"] != 4.0 {
		t.Errorf("reload back to the first routes: %v; want every source kept", l)
	}
	time.Sleep(time.Second)

	ok, failures, per := g.finish()
	t.Logf("%d requests answered 200 through the reloads: %v", ok, per)
	if len(failures) > 0 {
		t.Errorf("%d of %d requests failed across the reloads:\n%s", len(failures), int(ok)+len(failures), strings.Join(failures[:min(len(failures), 20)], "\n"))
	}
	for name, c := range per {
		if c < 10 {
			t.Errorf("%s sent only %d requests", name, c)
		}
	}
	if c := countLog(s, "credentials refreshed"); c != 2+fx.mints.count() {
		// base and root once each (kept over every reload), role once
		// per session minted.
		t.Errorf("%d refreshes logged, want %d: a kept source fetched again", c, 2+fx.mints.count())
	}
	s.AddSecrets(fx.mints.secrets()...)
}
