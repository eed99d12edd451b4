//go:build linux

package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"
)

const (
	largeObjectSize = 1 << 30
	largeRSSGoal    = 64 << 20  // reported against
	largeRSSLimit   = 128 << 20 // the test fails above
)

// TestLargeObject puts and gets 1 GiB through signet on each way an app
// reaches it, one upload and one download each, with default routes: the
// forward proxy to versitygw over plain http (payload auto: the body is
// spooled to a private temp file and hashed), and an intercepted https
// tunnel to versitygw over TLS (payload auto: UNSIGNED-PAYLOAD, streamed).
// The object comes from a deterministic generator and is compared by
// sha256 on the way back, so the test never holds it either. signet's peak
// RSS is reported against 64 MiB and fails the test above 128 MiB; each
// object is deleted at the end so that versitygw's disk use stays at one
// object.
func TestLargeObject(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 2 GiB each way; skipped with -short")
	}
	t.Run("forward-http", func(t *testing.T) {
		v := startVersity(t)
		state := filepath.Join(t.TempDir(), "state")
		if err := os.Mkdir(state, 0o700); err != nil {
			t.Fatal(err)
		}
		s := startSignet(t, s3Config(v, testSecretKey, "", "state_dir: "+state+"\n"), 1)
		g := newGoClient(s.ProxyURL())
		largePutGet(t, s, g.c, "http://"+s3Host+"/large-forward")
		checkNoSpool(t, s)
	})
	t.Run("intercepted-https", func(t *testing.T) {
		h := newHTTPSSetup(t, "")
		proxy, _ := url.Parse(h.s.ProxyURL())
		c := &http.Client{Timeout: 10 * time.Minute, Transport: &http.Transport{
			Proxy: http.ProxyURL(proxy), TLSClientConfig: tlsConfigFor(t, h.caPEM(t)), ForceAttemptHTTP2: true}}
		largePutGet(t, h.s, c, "https://"+s3Host+"/large-intercepted")
	})
}

// caPEM is signet's CA certificate as `signet ca export` prints it.
func (h *httpsSetup) caPEM(t *testing.T) []byte {
	t.Helper()
	r := runBinary(t, baseEnv(h.home), h.signet, "ca", "export", "-c", h.cfgFile)
	if r.Code != 0 {
		t.Fatalf("signet ca export: exit %d\n%s", r.Code, r.Stderr)
	}
	return []byte(r.Stdout)
}

// largePutGet creates bucketURL, puts largeObjectSize bytes into it, gets
// them back, checks them by sha256 and signet's peak RSS, and deletes the
// object and the bucket.
func largePutGet(t *testing.T, s *signetProc, c *http.Client, bucketURL string) {
	t.Helper()
	do := func(what, method, u string, body io.Reader, n int64) *http.Response {
		t.Helper()
		req, err := http.NewRequest(method, u, body)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = n
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if resp.StatusCode/100 != 2 {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			t.Fatalf("%s: %d X-Signet-Error %q\n%s", what, resp.StatusCode, resp.Header.Get("X-Signet-Error"), b)
		}
		return resp
	}
	do("create bucket", "PUT", bucketURL, nil, 0).Body.Close()
	obj := bucketURL + "/one-gib.bin"
	defer func() {
		do("delete object", "DELETE", obj, nil, 0).Body.Close()
		do("delete bucket", "DELETE", bucketURL, nil, 0).Body.Close()
	}()

	h := sha256.New()
	start := time.Now()
	do("PUT 1 GiB", "PUT", obj, io.TeeReader(newGenReader(largeObjectSize), h), largeObjectSize).Body.Close()
	putTime := time.Since(start)
	putSum := hex.EncodeToString(h.Sum(nil))
	putHWM := vmHWM(t, s.Pid)

	h.Reset()
	start = time.Now()
	resp := do("GET 1 GiB", "GET", obj, nil, 0)
	n, err := io.Copy(h, resp.Body)
	resp.Body.Close()
	getTime := time.Since(start)
	if err != nil || n != largeObjectSize {
		t.Fatalf("GET: %d bytes, %v", n, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != putSum {
		t.Errorf("GET sha256 %s, PUT sha256 %s", got, putSum)
	}

	hwm := vmHWM(t, s.Pid)
	mib := func(b int64) float64 { return float64(b) / (1 << 20) }
	t.Logf("1 GiB PUT %.1fs (%.0f MiB/s), GET %.1fs (%.0f MiB/s); signet VmHWM %.1f MiB after PUT, %.1f MiB after GET (goal %d MiB, limit %d MiB)",
		putTime.Seconds(), mib(largeObjectSize)/putTime.Seconds(), getTime.Seconds(), mib(largeObjectSize)/getTime.Seconds(),
		mib(putHWM), mib(hwm), largeRSSGoal>>20, largeRSSLimit>>20)
	if hwm > largeRSSGoal {
		t.Logf("signet peak RSS %.1f MiB is over the %d MiB goal", mib(hwm), largeRSSGoal>>20)
	}
	if hwm > largeRSSLimit {
		t.Errorf("signet peak RSS %.1f MiB exceeds %d MiB", mib(hwm), largeRSSLimit>>20)
	}
}
