//go:build linux

package e2e

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// startRefProxy is a minimal reference forward proxy written with the AWS
// SDK signer: it re-escapes the path canonically (decode once, AWS-escape
// each byte outside the unreserved set, keep '/'), signs with
// UNSIGNED-PAYLOAD and dials versitygw for every host. It exists to validate
// the clients, the key table and versitygw's behaviour independently of
// signet, so a failure in TestS3Flow points at signet, not at the harness.
func startRefProxy(t testing.TB, upstream string) string {
	tr := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, upstream)
		},
	}
	signer := v4.NewSigner()
	creds := aws.Credentials{AccessKeyID: testAccessKey, SecretAccessKey: testSecretKey}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Host == "" {
			http.Error(w, "reference proxy: absolute-form only", http.StatusBadRequest)
			return
		}
		p, err := url.PathUnescape(r.URL.EscapedPath())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		out := &url.URL{Scheme: "http", Host: r.URL.Host, Path: p, RawPath: awsEscape(p, true), RawQuery: r.URL.RawQuery}
		req, err := http.NewRequestWithContext(r.Context(), r.Method, out.String(), r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req.URL = out
		req.ContentLength = r.ContentLength
		if r.ContentLength == 0 {
			req.Body = http.NoBody
		}
		for k, vs := range r.Header {
			lk := strings.ToLower(k)
			switch {
			case lk == "authorization", lk == "connection", lk == "proxy-connection",
				lk == "keep-alive", lk == "te", lk == "transfer-encoding", lk == "upgrade",
				strings.HasPrefix(lk, "proxy-"), strings.HasPrefix(lk, "x-amz-"):
				continue
			}
			req.Header[k] = vs
		}
		req.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
		if err := signer.SignHTTP(r.Context(), creds, req, "UNSIGNED-PAYLOAD", "s3", testRegion, time.Now(),
			func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true }); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		resp, err := tr.RoundTrip(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, vs := range resp.Header {
			w.Header()[k] = vs
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	t.Cleanup(func() { srv.Close(); tr.CloseIdleConnections() })
	return srv.URL
}

// TestHarnessAgainstPeers runs the S3 flow of TestS3Flow without signet:
// every client through the reference proxy, and requests signed by the
// clients themselves (SDK signer, curl --aws-sigv4) straight to versitygw.
// It also pins the versitygw behaviour the signet tests rely on.
func TestHarnessAgainstPeers(t *testing.T) {
	v := startVersity(t)
	ref := startRefProxy(t, v.Addr)
	fwd := pathStyle("http://" + s3Host)
	direct := pathStyle(v.URL())
	allKeys := append(append([]keyCase(nil), keyCases...), subDelimCases...)

	t.Run("flows", func(t *testing.T) {
		for i, f := range []struct {
			name string
			mk   func(t *testing.T) client
			addr addressing
			keys []keyCase
		}{
			{"ref/curl/path", func(t *testing.T) client { return newCurlClient(t, ref) }, fwd, allKeys},
			{"ref/curl/vhost", func(t *testing.T) client { return newCurlClient(t, ref) }, virtualHosted(), keyCases},
			{"ref/python/path", func(t *testing.T) client { return newPyClient(t, ref) }, fwd, keyCases},
			{"ref/python/vhost", func(t *testing.T) client { return newPyClient(t, ref) }, virtualHosted(), keyCases},
			{"ref/go/path", func(t *testing.T) client { return newGoClient(ref) }, fwd, allKeys},
			{"ref/go/vhost", func(t *testing.T) client { return newGoClient(ref) }, virtualHosted(), keyCases},
			{"direct/sdk", func(t *testing.T) client { return newSDKClient("", testAccessKey, testSecretKey) }, direct, keyCases},
			{"direct/curl-sigv4", func(t *testing.T) client {
				return newCurlClient(t, "", "--aws-sigv4", "aws:amz:us-east-1:s3",
					"--user", testAccessKey+":"+testSecretKey, "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD")
			}, direct, keyCases},
		} {
			t.Run(f.name, func(t *testing.T) {
				t.Parallel()
				runS3Flow(t, f.mk(t), f.addr, "peer-"+strings.ReplaceAll(strings.ReplaceAll(f.name, "/", "-"), "_", "-")+"-"+string(rune('a'+i)), f.keys)
			})
		}
	})

	// versitygw re-escapes the decoded path: a signature over the raw path
	// "p+q=r" does not match. This is why subDelimCases exist.
	t.Run("versitygw-canonicalises-subdelims", func(t *testing.T) {
		c := newSDKClient("", testAccessKey, testSecretKey)
		if r := c.Do(t, "PUT", v.URL()+"/peer-canon", nil); r.Status/100 != 2 {
			t.Fatalf("create bucket: %d\n%s", r.Status, r.Body)
		}
		r := c.Do(t, "PUT", v.URL()+"/peer-canon/p+q=r", []byte("x"))
		if r.Status != http.StatusForbidden || !strings.Contains(string(r.Body), "/peer-canon/p%2Bq%3Dr") {
			t.Errorf("versitygw no longer canonicalises sub-delims as expected: %d\n%s", r.Status, r.Body)
		}
	})
}
