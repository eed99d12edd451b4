//go:build linux

package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// BenchmarkSmallGET: a 1 KiB object from versitygw, keep-alive on, in
// parallel. "direct" is the Go client signing each request itself with
// aws-sdk-go-v2's v4 signer; "reverse" and "forward" send unsigned requests
// through signet. Compare ns/op of the three.
func BenchmarkSmallGET(b *testing.B) {
	v := startVersity(b)
	s := startSignet(b, s3Config(v, testSecretKey, "", ""), 1)
	const bucket, key = "bench", "small-1k.bin"
	payload := bytes.Repeat([]byte("0123456789abcdef"), 64)

	setup := newSDKClient("", testAccessKey, testSecretKey)
	if r := setup.Do(b, "PUT", v.URL()+"/"+bucket, nil); r.Status/100 != 2 {
		b.Fatalf("create bucket: %d %s", r.Status, r.Body)
	}
	if r := setup.Do(b, "PUT", v.URL()+"/"+bucket+"/"+key, payload); r.Status/100 != 2 {
		b.Fatalf("put: %d %s", r.Status, r.Body)
	}

	run := func(b *testing.B, c *http.Client, newReq func() (*http.Request, error)) {
		b.SetBytes(int64(len(payload)))
		benchGets(b, c, newReq, payload, 1)
	}

	b.Run("direct-sdk-signed", func(b *testing.B) {
		u := v.URL() + "/" + bucket + "/" + key
		run(b, setup.c, func() (*http.Request, error) { return setup.newRequest(b, "GET", u, nil), nil })
	})
	b.Run("signet-reverse", func(b *testing.B) {
		c := newGoClient("")
		u := "http://" + s.Reverse[0] + "/" + bucket + "/" + key
		run(b, c.c, func() (*http.Request, error) { return http.NewRequest("GET", u, nil) })
	})
	b.Run("signet-forward", func(b *testing.B) {
		c := newGoClient(s.ProxyURL())
		u := "http://" + s3Host + "/" + bucket + "/" + key
		run(b, c.c, func() (*http.Request, error) { return http.NewRequest("GET", u, nil) })
	})
}

func getOnce(c *http.Client, newReq func() (*http.Request, error), want []byte) error {
	req, err := newReq()
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 || !bytes.Equal(b, want) {
		return fmt.Errorf("GET %s: %d X-Signet-Error %q, %d bytes:\n%.300s",
			req.URL, resp.StatusCode, resp.Header.Get("X-Signet-Error"), len(b), b)
	}
	return nil
}

// BenchmarkSmallGETOverhead isolates signet's own cost: the upstream is a
// trivial loopback server answering 1 KiB at once, so proxied/direct ns/op
// is the price of the extra hop plus signing. The reverse listener and the
// forward proxy both sign (service and region from the route).
func BenchmarkSmallGETOverhead(b *testing.B) {
	payload := bytes.Repeat([]byte("0123456789abcdef"), 64)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") && r.Header.Get("X-Direct") == "" {
			http.Error(w, "unsigned", http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(payload)))
		_, _ = w.Write(payload)
	}))
	b.Cleanup(up.Close)
	upAddr := strings.TrimPrefix(up.URL, "http://")
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
log: {level: info, format: json}
sources:
  test: {method: static, static: {access_key_id: AKIDEXAMPLE, secret_access_key: secret}}
routes:
  - hosts: ["api.bench.test"]
    source: test
    service: execute-api
    region: us-east-1
    upstream_scheme: http
upstream:
  connect_to: {"api.bench.test:80": "%[1]s"}
reverse:
  - {listen: 127.0.0.1:0, upstream: "http://%[1]s", source: test, service: execute-api, region: us-east-1}
`, upAddr)
	s := startSignet(b, cfg, 1)

	run := func(b *testing.B, c *http.Client, u string, direct bool) {
		newReq := func() (*http.Request, error) {
			req, err := http.NewRequest("GET", u, nil)
			if direct && err == nil {
				req.Header.Set("X-Direct", "1")
			}
			return req, err
		}
		benchGets(b, c, newReq, payload, wrkConnsPerCore)
	}
	b.Run("direct", func(b *testing.B) { run(b, newGoClient("").c, up.URL+"/item", true) })
	b.Run("signet-reverse", func(b *testing.B) { run(b, newGoClient("").c, "http://"+s.Reverse[0]+"/item", false) })
	b.Run("signet-forward", func(b *testing.B) { run(b, newGoClient(s.ProxyURL()).c, "http://api.bench.test/item", false) })
}

// wrkConnsPerCore: 16 goroutines per core, 32 connections on 2 cores, as
// wrk -c32.
const wrkConnsPerCore = 16

// benchGets runs GETs from newReq in parallel (perCore goroutines per
// GOMAXPROCS), each checked against want. One checked request first, so a
// broken path fails loudly rather than measuring errors.
func benchGets(b *testing.B, c *http.Client, newReq func() (*http.Request, error), want []byte, perCore int) {
	b.Helper()
	if err := getOnce(c, newReq, want); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetParallelism(perCore)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := getOnce(c, newReq, want); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
