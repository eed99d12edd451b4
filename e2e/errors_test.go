//go:build linux

package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// TestWrongSecret: with a wrong secret in signet's config, the client gets
// versitygw's own 403 SignatureDoesNotMatch, passed through unchanged.
func TestWrongSecret(t *testing.T) {
	v := startVersity(t)
	s := startSignet(t, s3Config(v, "wrong"+testSecretKey[5:], "", ""), 1)
	for _, c := range []struct {
		name string
		c    client
		url  string
	}{
		{"forward", newGoClient(s.ProxyURL()), "http://" + s3Host + "/wrongsecret"},
		{"reverse", newGoClient(""), "http://" + s.Reverse[0] + "/wrongsecret"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := c.c.Do(t, "PUT", c.url, nil)
			if r.Status != http.StatusForbidden {
				t.Errorf("status %d, want 403; body:\n%s", r.Status, r.Body)
			}
			if h := r.Header.Get("X-Signet-Error"); h != "" {
				t.Errorf("answer came from signet (X-Signet-Error %q), not from versitygw", h)
			}
			if !bytes.HasPrefix(r.Body, []byte("<?xml")) || !bytes.Contains(r.Body, []byte("<Code>SignatureDoesNotMatch</Code>")) {
				t.Errorf("body is not versitygw's SignatureDoesNotMatch:\n%s", r.Body)
			}
			if !bytes.Contains(r.Body, []byte("<AWSAccessKeyId>"+testAccessKey+"</AWSAccessKeyId>")) {
				t.Errorf("versitygw did not see signet's access key id:\n%s", r.Body)
			}
		})
	}
}

// sdkClient signs each request itself with aws-sdk-go-v2's v4 signer (S3
// rules: no double escaping, payload hash in x-amz-content-sha256), then
// sends it like goClient.
type sdkClient struct {
	*goClient
	creds  aws.Credentials
	signer *v4.Signer
}

func newSDKClient(proxyURL, ak, sk string) *sdkClient {
	return &sdkClient{goClient: newGoClient(proxyURL),
		creds: aws.Credentials{AccessKeyID: ak, SecretAccessKey: sk}, signer: v4.NewSigner()}
}

func (c *sdkClient) Name() string { return "go-sdk-signed" }

func (c *sdkClient) newRequest(t testing.TB, method, rawURL string, body []byte) *http.Request {
	u := parseRawURL(t, rawURL)
	req, err := http.NewRequest(method, u.String(), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.URL = u
	if body == nil {
		req.Body, req.GetBody, req.ContentLength = http.NoBody, nil, 0
	}
	sum := sha256.Sum256(body)
	h := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", h)
	err = c.signer.SignHTTP(context.Background(), c.creds, req, h, "s3", testRegion, time.Now(),
		func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func (c *sdkClient) Do(t testing.TB, method, rawURL string, body []byte) result {
	t.Helper()
	resp, err := c.c.Do(c.newRequest(t, method, rawURL, body))
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return result{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// TestPlaceholderSigned: requests that arrive already signed with dummy
// credentials (an SDK app pointed at signet) are re-signed and succeed.
func TestPlaceholderSigned(t *testing.T) {
	v := startVersity(t)
	s := startSignet(t, s3Config(v, testSecretKey, "", ""), 1)
	keys := []keyCase{keyCases[0], keyCases[5]}

	// Sanity: the dummy credentials alone are refused by versitygw.
	direct := newSDKClient("", "AKIDDUMMYPLACEHOLDER", "dummy-secret")
	if r := direct.Do(t, "PUT", v.URL()+"/placeholder-direct", nil); r.Status/100 == 2 {
		t.Fatalf("versitygw accepted the dummy keys directly: %d\n%s", r.Status, r.Body)
	}

	t.Run("curl-aws-sigv4", func(t *testing.T) {
		c := newCurlClient(t, s.ProxyURL(), "--aws-sigv4", "aws:amz:us-east-1:s3",
			"--user", "DUMMYKEYID:DUMMYSECRET", "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD")
		runS3Flow(t, c, pathStyle("http://"+s3Host), "placeholder-curl", keys)
	})
	t.Run("go-sdk-forward", func(t *testing.T) {
		c := newSDKClient(s.ProxyURL(), "AKIDOTHERPLACEHOLDER", "other-dummy-secret")
		runS3Flow(t, c, pathStyle("http://"+s3Host), "placeholder-sdk", keys)
	})
	t.Run("go-sdk-reverse", func(t *testing.T) {
		c := newSDKClient("", "AKIDOTHERPLACEHOLDER", "other-dummy-secret")
		runS3Flow(t, c, pathStyle("http://"+s.Reverse[0]), "placeholder-sdk-rev", keys)
	})
}

// TestUnmatchedHost: a host on no route is refused by signet with
// `unmatched: deny`, and passed through untouched (unsigned) with
// `unmatched: forward`.
func TestUnmatchedHost(t *testing.T) {
	v := startVersity(t)
	up := &countingServer{}
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	target := srv.URL + "/some/pa%2Fth//x%20y?q=1&b=%2B"

	t.Run("deny", func(t *testing.T) {
		s := startSignet(t, s3Config(v, testSecretKey, "", "unmatched: deny\n"), 1)
		r := newGoClient(s.ProxyURL()).Do(t, "GET", target, nil)
		checkSignetError(t, r.Status, r.Body, r.Header, http.StatusForbidden)
		if reqs, _ := up.snapshot(); len(reqs) != 0 {
			t.Errorf("upstream received %d requests; want none", len(reqs))
		}
	})
	t.Run("forward", func(t *testing.T) {
		s := startSignet(t, s3Config(v, testSecretKey, "", "unmatched: forward\n"), 1)
		before, _ := up.snapshot()
		r := newGoClient(s.ProxyURL()).Do(t, "GET", target, nil)
		if r.Status != 200 || string(r.Body) != "upstream says hi" || r.Header.Get("X-Upstream") != "counting" {
			t.Fatalf("got %d %q, want the upstream's 200", r.Status, r.Body)
		}
		reqs, uris := up.snapshot()
		if len(reqs) != len(before)+1 {
			t.Fatalf("upstream received %d requests, want 1", len(reqs)-len(before))
		}
		got := reqs[len(reqs)-1]
		if a := got.Header.Get("Authorization"); a != "" {
			t.Errorf("forwarded request was signed: Authorization %q", a)
		}
		for k := range got.Header {
			if strings.HasPrefix(strings.ToLower(k), "x-amz-") {
				t.Errorf("forwarded request gained header %s", k)
			}
		}
		if want := "/some/pa%2Fth//x%20y?q=1&b=%2B"; uris[len(uris)-1] != want {
			t.Errorf("upstream saw request-target %q, want %q", uris[len(uris)-1], want)
		}
	})
}

// TestUnmappableHost: a signing route whose host the signer cannot map to a
// service and region gets signet's 502; nothing reaches the upstream.
func TestUnmappableHost(t *testing.T) {
	up := &countingServer{}
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
log: {level: debug, format: json}
sources:
  test: {method: static, static: {access_key_id: %s, secret_access_key: %q}}
routes:
  - hosts: ["*.example.test"]
    source: test
    upstream_scheme: http
upstream:
  connect_to:
    "*.example.test:80": "%s"
`, testAccessKey, testSecretKey, srv.Listener.Addr().String())
	s := startSignet(t, cfg, 0)
	for _, c := range []client{newGoClient(s.ProxyURL()), newCurlClient(t, s.ProxyURL())} {
		t.Run(c.Name(), func(t *testing.T) {
			r := c.Do(t, "GET", "http://api.example.test/thing", nil)
			checkSignetError(t, r.Status, r.Body, r.Header, http.StatusBadGateway)
		})
	}
	if reqs, _ := up.snapshot(); len(reqs) != 0 {
		t.Errorf("upstream received %d requests; want none", len(reqs))
	}
}

// runCheck runs `signet check -c FILE` and returns exit code, stdout, stderr.
func runCheck(t *testing.T, config string) (int, string, string) {
	t.Helper()
	bin := needSignet(t)
	dir := t.TempDir()
	f := filepath.Join(dir, "signet.yaml")
	if err := os.WriteFile(f, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "check", "-c", f)
	cmd.Env = baseEnv(dir, "AWS_EC2_METADATA_DISABLED=true", "TMPDIR="+dir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("signet check: %v", err)
	}
	return code, stdout.String(), stderr.String()
}

func TestCheckCommand(t *testing.T) {
	v := &versity{Addr: "127.0.0.1:9"} // never dialled by check
	good := s3Config(v, testSecretKey, "", "")

	t.Run("good", func(t *testing.T) {
		code, out, errOut := runCheck(t, good)
		if code != 0 {
			t.Fatalf("exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		if !strings.Contains(out, s3Host) {
			t.Errorf("stdout does not show the config (no %q):\n%s", s3Host, out)
		}
		if strings.Contains(out+errOut, testSecretKey) {
			t.Errorf("check printed the secret access key:\n%s\n%s", out, errOut)
		}
	})
	for _, bad := range []struct{ name, typo, config string }{
		{"top-level", "lisen", strings.Replace(good, "listen: 127.0.0.1:0\nlog:", "lisen: 127.0.0.1:0\nlog:", 1)},
		{"in-route", "upstream_schem", strings.Replace(good, "    upstream_scheme: http", "    upstream_schem: http", 1)},
		{"in-source", "secret_acess_key", strings.Replace(good, "secret_access_key:", "secret_acess_key:", 1)},
	} {
		t.Run("typo-"+bad.name, func(t *testing.T) {
			if bad.config == good {
				t.Fatal("test bug: typo not applied")
			}
			code, out, errOut := runCheck(t, bad.config)
			if code != 2 {
				t.Errorf("exit %d, want 2\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
			}
			if !strings.Contains(errOut, bad.typo) {
				t.Errorf("stderr does not name the unknown key %q:\n%s", bad.typo, errOut)
			}
			if strings.Contains(out+errOut, testSecretKey) {
				t.Errorf("check printed the secret access key")
			}
		})
	}
}
