//go:build linux

package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Fault injection on connections: clients that trickle their headers
// (slowloris), thousands of idle keep-alive connections, and more
// connections than limits.max_connections. Every check on time is loose:
// the figures are logged, and a failure means something stalled, not
// that the machine was slow.

// latencies sends n GETs of u (which must answer 200 with want), one after
// the other, and returns their durations sorted; failures are test
// errors.
func latencies(t *testing.T, hc *http.Client, u, want string, n int, every time.Duration) []time.Duration {
	t.Helper()
	var ds []time.Duration
	for range n {
		start := time.Now()
		resp, err := hc.Get(u)
		if err != nil {
			t.Errorf("GET %s: %v", u, err)
			continue
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		ds = append(ds, time.Since(start))
		if err != nil || resp.StatusCode != 200 || string(b) != want {
			t.Errorf("GET %s: %d %s %q (%v)", u, resp.StatusCode, resp.Header.Get("X-Signet-Error"), b, err)
		}
		time.Sleep(every)
	}
	slices.Sort(ds)
	return ds
}

// pct is the p-th percentile of sorted ds.
func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	return ds[min(len(ds)-1, len(ds)*p/100)].Round(10 * time.Microsecond)
}

// objectSetup is a versitygw with one small object, and a signet in front
// of it with extra (top-level config) whose forward proxy a keep-alive Go
// client uses.
type objectSetup struct {
	v   *versity
	s   *signetProc
	hc  *http.Client
	url string
}

const objectPayload = "a small object"

func startObjectSetup(t *testing.T, extra string) *objectSetup {
	t.Helper()
	o := &objectSetup{v: startVersity(t)}
	root := newSDKClient("", testAccessKey, testSecretKey)
	if r := root.Do(t, "PUT", o.v.URL()+"/conns", nil); r.Status != 200 {
		t.Fatalf("create bucket: %d\n%s", r.Status, r.Body)
	}
	if r := root.Do(t, "PUT", o.v.URL()+"/conns/obj", []byte(objectPayload)); r.Status != 200 {
		t.Fatalf("put object: %d\n%s", r.Status, r.Body)
	}
	o.s = startSignet(t, s3Config(o.v, testSecretKey, "", extra), 1)
	proxyURL, _ := url.Parse(o.s.ProxyURL())
	o.hc = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}}
	t.Cleanup(o.hc.CloseIdleConnections)
	o.url = "http://" + s3Host + "/conns/obj"
	return o
}

// TestFaultSlowloris: 200 clients trickle the headers of a request, one
// byte every 300 ms; with limits.read_header_timeout 2s signet cuts each
// of them off after about 2 s, while a client's normal requests go on
// being served.
func TestFaultSlowloris(t *testing.T) {
	t.Parallel()
	const (
		clients = 200
		timeout = 2 * time.Second
	)
	o := startObjectSetup(t, fmt.Sprintf("limits: {read_header_timeout: %s}\n", timeout))
	before := latencies(t, o.hc, o.url, objectPayload, 20, 10*time.Millisecond)

	type cut struct {
		after time.Duration
		sent  int
		got   string
		err   error
	}
	cuts := make(chan cut, clients)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	for i := range clients {
		wg.Go(func() {
			c, err := net.Dial("tcp", o.s.ProxyAddr)
			if err != nil {
				cuts <- cut{err: err}
				return
			}
			defer c.Close()
			begin := time.Now()
			closed := make(chan cut, 1)
			go func() {
				b, err := io.ReadAll(io.LimitReader(c, 4096))
				closed <- cut{after: time.Since(begin), got: string(b), err: err}
			}()
			line := fmt.Sprintf("GET http://%s/conns/obj HTTP/1.1\r\nHost: %s\r\nX-Slow-%d: ", s3Host, s3Host, i)
			tick := time.NewTicker(300 * time.Millisecond)
			defer tick.Stop()
			for sent := 0; ; sent++ {
				if sent < len(line) {
					if _, err := c.Write([]byte{line[sent]}); err != nil {
						r := <-closed
						r.sent = sent
						cuts <- r
						return
					}
				} else if _, err := c.Write([]byte("a")); err != nil {
					r := <-closed
					r.sent = sent
					cuts <- r
					return
				}
				select {
				case r := <-closed:
					r.sent = sent + 1
					cuts <- r
					return
				case <-stop:
					cuts <- cut{after: -1, sent: sent}
					return
				case <-tick.C:
				}
			}
		})
	}
	// Normal requests while the trickling clients are connected.
	during := latencies(t, o.hc, o.url, objectPayload, 40, 50*time.Millisecond)
	// Every trickler is cut within the timeout and a generous margin.
	timer := time.AfterFunc(timeout+8*time.Second, func() { close(stop) })
	wg.Wait()
	timer.Stop()
	close(cuts)
	var afters []time.Duration
	var notCut, answered int
	for c := range cuts {
		switch {
		case c.after < 0:
			notCut++
		case c.err != nil && c.after == 0:
			t.Errorf("a trickling client could not connect: %v", c.err)
		default:
			afters = append(afters, c.after)
			if c.got != "" {
				answered++
				if !strings.HasPrefix(c.got, "HTTP/1.1 408") && !strings.HasPrefix(c.got, "HTTP/1.1 400") {
					t.Errorf("a trickling client got %q", c.got)
				}
			}
		}
	}
	slices.Sort(afters)
	if notCut > 0 {
		t.Errorf("%d of %d trickling clients were still connected %s after the read_header_timeout of %s", notCut, clients, 8*time.Second, timeout)
	}
	if len(afters) > 0 && afters[0] < timeout/2 {
		t.Errorf("a trickling client was cut after %s, well before the read_header_timeout of %s", afters[0], timeout)
	}
	t.Logf("%d trickling clients (a byte every 300ms) cut after %s to %s (median %s; %d got an answer) with read_header_timeout %s; whole run %s",
		len(afters), pct(afters, 0), pct(afters, 100), pct(afters, 50), answered, timeout, time.Since(start).Round(time.Millisecond))
	t.Logf("normal requests: before p50 %s p99 %s; during the slowloris p50 %s p99 %s (%d requests)",
		pct(before, 50), pct(before, 99), pct(during, 50), pct(during, 99), len(during))
	if p := pct(during, 99); p > 20*pct(before, 99)+time.Second {
		t.Errorf("normal requests stalled during the slowloris: p99 %s, %s before", p, pct(before, 99))
	}
}

// raiseNoFile makes sure this process (and so signet, its child, which
// raises its own soft limit to the hard one) may open n files.
func raiseNoFile(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur >= n && lim.Max >= n {
		return
	}
	want := lim
	want.Cur = max(lim.Cur, n)
	if lim.Max < n {
		if os.Geteuid() != 0 {
			missing(t, "RLIMIT_NOFILE hard limit %d < %d and not root to raise it", lim.Max, n)
		}
		want.Max = n
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		t.Fatalf("raise RLIMIT_NOFILE from %+v to %+v: %v", lim, want, err)
	}
	t.Logf("RLIMIT_NOFILE raised from %d/%d to %d/%d", lim.Cur, lim.Max, want.Cur, want.Max)
}

// vmRSS is the resident set size of pid now, from /proc.
func vmRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			f := strings.Fields(v)
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil || len(f) != 2 || f[1] != "kB" {
				t.Fatalf("VmRSS line %q", l)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// deniedRequest is a request signet answers itself (unmatched: deny),
// so that holding a connection after it costs only signet.
const deniedRequest = "GET http://idle.invalid/ HTTP/1.1\r\nHost: idle.invalid\r\n\r\n"

// holdConn opens a connection to addr, sends one request that signet
// answers itself, reads the answer, and returns the connection, idle.
func holdConn(addr string) (net.Conn, *http.Response, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, deniedRequest); err != nil {
		c.Close()
		return nil, nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	_ = c.SetDeadline(time.Time{})
	return c, resp, nil
}

// TestFaultIdleConnections: 5,000 keep-alive connections held idle on the
// proxy listener (each after one request) while a client's requests keep
// their latency; signet's RSS with them is logged.
func TestFaultIdleConnections(t *testing.T) {
	const idle = 5000
	raiseNoFile(t, 3*idle)
	o := startObjectSetup(t, "unmatched: deny\n")
	before := latencies(t, o.hc, o.url, objectPayload, 200, 0)
	rssBefore := vmRSS(t, o.s.Pid)
	gBefore := goroutines(t, o.s)

	conns := make([]net.Conn, idle)
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	next := make(chan int)
	start := time.Now()
	for range 64 {
		wg.Go(func() {
			for i := range next {
				c, resp, err := holdConn(o.s.ProxyAddr)
				if err == nil && (resp.StatusCode != http.StatusForbidden || resp.Header.Get("X-Signet-Error") != "unmatched-host-denied") {
					err = fmt.Errorf("answer %d %q", resp.StatusCode, resp.Header.Get("X-Signet-Error"))
				}
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				}
				conns[i] = c
				mu.Unlock()
			}
		})
	}
	for i := range idle {
		next <- i
	}
	close(next)
	wg.Wait()
	opened := time.Since(start)
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	if len(errs) > 0 {
		t.Fatalf("%d of %d connections failed; the first: %v", len(errs), idle, errs[0])
	}
	rssDuring := vmRSS(t, o.s.Pid)
	gDuring := goroutines(t, o.s)
	during := latencies(t, o.hc, o.url, objectPayload, 200, 0)

	// The idle connections are still open: each takes another request.
	for _, i := range []int{0, idle / 2, idle - 1} {
		if _, err := io.WriteString(conns[i], deniedRequest); err != nil {
			t.Fatalf("idle connection %d: %v", i, err)
		}
		_ = conns[i].SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conns[i]), nil)
		if err != nil || resp.StatusCode != http.StatusForbidden {
			t.Errorf("idle connection %d after the run: %v %v", i, resp, err)
		}
	}
	mib := func(b int64) float64 { return float64(b) / (1 << 20) }
	t.Logf("%d idle keep-alive connections opened in %s; signet RSS %.1f MiB before, %.1f MiB with them (%.1f KiB each); goroutines %d -> %d",
		idle, opened.Round(time.Millisecond), mib(rssBefore), mib(rssDuring), float64(rssDuring-rssBefore)/1024/idle, gBefore, gDuring)
	t.Logf("normal requests (%d each): before p50 %s p99 %s; with %d idle connections p50 %s p99 %s",
		len(during), pct(before, 50), pct(before, 99), idle, pct(during, 50), pct(during, 99))
	if p := pct(during, 99); p > 10*pct(before, 99)+250*time.Millisecond {
		t.Errorf("normal requests slowed down with %d idle connections: p99 %s, %s before", idle, p, pct(before, 99))
	}
	if per := (rssDuring - rssBefore) / idle; per > 128<<10 {
		t.Errorf("signet holds %d KiB per idle connection", per>>10)
	}
}

// TestFaultConnectionLimit: with limits.max_connections 4, the proxy and
// reverse listeners together admit 4 client connections; a fifth, on
// either, is answered 503 too-many-connections and closed; once held
// connections close, new ones are served again.
func TestFaultConnectionLimit(t *testing.T) {
	t.Parallel()
	const limit = 4
	o := startObjectSetup(t, fmt.Sprintf("unmatched: deny\nlimits: {max_connections: %d}\n", limit))
	var held []net.Conn
	t.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
	})
	for i := range limit {
		c, resp, err := holdConn(o.s.ProxyAddr)
		if err != nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("connection %d of %d: %v %v", i+1, limit, resp, err)
		}
		held = append(held, c)
	}
	refused := func(addr, request string) {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial %s: %v", addr, err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.WriteString(c, request)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("connection over the limit on %s: %v", addr, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		checkSignetError(t, resp.StatusCode, b, resp.Header, http.StatusServiceUnavailable)
		if code := resp.Header.Get("X-Signet-Error"); code != "too-many-connections" {
			t.Errorf("over the limit on %s: X-Signet-Error %q, want too-many-connections", addr, code)
		}
		// And the connection is closed.
		if n, err := c.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) && !isReset(err) {
			t.Errorf("the refused connection stays open: read %d, %v", n, err)
		}
	}
	refused(o.s.ProxyAddr, deniedRequest)
	refused(o.s.Reverse[0], "GET /conns/obj HTTP/1.1\r\nHost: "+o.s.Reverse[0]+"\r\n\r\n")

	// Two held connections close: new ones are served (the limiter learns
	// of a close when the server does, so poll).
	held[0].Close()
	held[1].Close()
	held = held[2:]
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, resp, err := holdConn(o.s.ProxyAddr)
		if err == nil && resp.StatusCode == http.StatusForbidden {
			held = append(held, c)
			break
		}
		if c != nil {
			c.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("10s after two connections closed, a new one still gets %v %v", resp, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// One slot is left: a signed request through the reverse listener.
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 10 * time.Second}).Get("http://" + o.s.Reverse[0] + "/conns/obj")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != objectPayload {
		t.Errorf("a request within the limit again: %d %s %q", resp.StatusCode, resp.Header.Get("X-Signet-Error"), b)
	}
}

func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }
