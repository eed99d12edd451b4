//go:build linux

package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
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
		// One checked request first, so a broken path fails loudly.
		if err := getOnce(c, newReq, payload); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(payload)))
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := getOnce(c, newReq, payload); err != nil {
					b.Error(err)
					return
				}
			}
		})
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
