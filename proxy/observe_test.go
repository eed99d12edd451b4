package proxy

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/signet-proxy/signet/credentials"
	"github.com/signet-proxy/signet/internal/metrics"
	"github.com/signet-proxy/signet/signer"
)

// syncBuffer is a bytes.Buffer that handlers on many goroutines can log to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Secrets that reach signet in every way a client or a source can hand
// them over; none may appear in an access log line.
const (
	leakSecretKey     = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYLEAKKEY"
	leakSessionToken  = "SourceSessionTokenLEAK"
	leakAuthSig       = "deadbeefcafe0123456789placeholdersig"
	leakHeaderToken   = "HeaderSecurityTokenLEAK"
	leakQuerySig      = "fedcba9876543210querysignatureLEAK"
	leakQueryToken    = "QuerySecurityTokenLEAK"
	leakQueryValue    = "OrdinaryQueryValueLEAK"
	leakProxyPassword = "ProxyPasswordLEAK"
	leakBodyValue     = "RequestBodyValueLEAK"
)

// sourceWithToken is a static source whose keys carry a session token.
func sourceWithToken(t *testing.T) credentials.Source {
	t.Helper()
	p, err := credentials.NewStatic("AKIDLEAKCHECK", leakSecretKey, leakSessionToken)
	if err != nil {
		t.Fatal(err)
	}
	s := credentials.NewSource("leaky", p, credentials.SourceOptions{})
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestAccessLogCarriesNoSecrets sends requests that carry a placeholder
// signature in Authorization, a session token in a header, a presigned
// query string, an ordinary query value, proxy credentials and a body,
// through the forward proxy and a reverse listener, with text and JSON
// handlers. The log has one line per request with what an operator needs,
// and none of the secrets, nor the signature signet made.
func TestAccessLogCarriesNoSecrets(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			var logged syncBuffer
			var h slog.Handler = slog.NewTextHandler(&logged, nil)
			if format == "json" {
				h = slog.NewJSONHandler(&logged, nil)
			}
			var rec recorder
			up := upstreamAddr(t, rec.handler(200, "answer"))
			src := sourceWithToken(t)
			authFile := filepath.Join(t.TempDir(), "users")
			if err := os.WriteFile(authFile, []byte("app:"+leakProxyPassword+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			auth, err := LoadBasicAuth(authFile)
			if err != nil {
				t.Fatal(err)
			}
			u, _ := url.Parse("http://" + up)
			tp := startProxy(t, Options{
				Routes:    []Route{{Hosts: []string{"*.amazonaws.com"}, Source: src, UpstreamScheme: "http"}},
				Upstream:  UpstreamOptions{ConnectTo: map[string]string{"*.amazonaws.com": up}},
				Reverse:   []Reverse{{Upstream: u, Source: src, Scope: signer.Scope{Service: "execute-api", Region: "eu-west-1"}}},
				Auth:      auth,
				AccessLog: slog.New(h),
			})

			query := "?Action=ListQueues&Token=" + leakQueryValue +
				"&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDPLACEHOLDER%2F20240101%2Fus-east-1%2Fsqs%2Faws4_request" +
				"&X-Amz-Date=20240101T000000Z&X-Amz-SignedHeaders=host&X-Amz-Security-Token=" + leakQueryToken +
				"&X-Amz-Signature=" + leakQuerySig
			proxyAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte("app:"+leakProxyPassword))
			headers := "Authorization: AWS4-HMAC-SHA256 Credential=AKIDPLACEHOLDER/20240101/us-east-1/sqs/aws4_request, SignedHeaders=host;x-amz-date, Signature=" + leakAuthSig + "\r\n" +
				"X-Amz-Security-Token: " + leakHeaderToken + "\r\n" +
				"X-Amz-Date: 20240101T000000Z\r\n"
			body := "Param=" + leakBodyValue
			reqs := []struct{ addr, req string }{
				{tp.addr, "GET http://sqs.us-east-1.amazonaws.com/queue/path" + query + " HTTP/1.1\r\nHost: sqs.us-east-1.amazonaws.com\r\n" +
					"Proxy-Authorization: " + proxyAuth + "\r\n" + headers + "Connection: close\r\n\r\n"},
				{tp.addr, "POST http://sqs.us-east-1.amazonaws.com/" + query + " HTTP/1.1\r\nHost: sqs.us-east-1.amazonaws.com\r\n" +
					"Proxy-Authorization: " + proxyAuth + "\r\n" + headers + "Content-Type: application/x-www-form-urlencoded\r\n" +
					"Content-Length: " + strconv.Itoa(len(body)) + "\r\nConnection: close\r\n\r\n" + body},
				{tp.reverse[0], "GET /stage/item" + query + " HTTP/1.1\r\nHost: " + tp.reverse[0] + "\r\n" + headers + "Connection: close\r\n\r\n"},
				// Refused before routing: wrong proxy password.
				{tp.addr, "GET http://sqs.us-east-1.amazonaws.com/" + query + " HTTP/1.1\r\nHost: sqs.us-east-1.amazonaws.com\r\n" +
					"Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("app:wrong"+leakProxyPassword)) + "\r\nConnection: close\r\n\r\n"},
			}
			wantStatus := []int{200, 200, 200, 407}
			for i, r := range reqs {
				resp, _ := rawRequest(t, r.addr, r.req)
				if resp.StatusCode != wantStatus[i] {
					t.Fatalf("request %d: status %d, want %d", i, resp.StatusCode, wantStatus[i])
				}
			}
			tp.stop() // every handler, and so every log line, is done
			out := logged.String()

			secrets := []string{leakSecretKey, leakSessionToken, leakAuthSig, leakHeaderToken, leakQuerySig,
				leakQueryToken, leakQueryValue, leakProxyPassword, leakBodyValue,
				base64.StdEncoding.EncodeToString([]byte("app:" + leakProxyPassword)), "AKIDLEAKCHECK", "AKIDPLACEHOLDER"}
			for _, got := range rec.all() {
				// The signatures signet made, as the upstream saw them.
				if _, sig, ok := strings.Cut(got.header.Get("Authorization"), "Signature="); ok {
					secrets = append(secrets, sig)
				}
			}
			for _, s := range secrets {
				if strings.Contains(out, s) {
					t.Errorf("access log holds secret %q:\n%s", s, out)
				}
			}

			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != len(reqs) {
				t.Fatalf("%d access log lines for %d requests:\n%s", len(lines), len(reqs), out)
			}
			want := [][]string{
				{"GET", "sqs.us-east-1.amazonaws.com", "/queue/path", "200", "routes[0]", "sqs", "us-east-1", "leaky", "bytes_out", "6"},
				{"POST", "sqs.us-east-1.amazonaws.com", "200", "routes[0]", "sqs", "us-east-1", "leaky", "bytes_in", strconv.Itoa(len(body))},
				{"GET", "/stage/item", "200", "reverse[0]", "execute-api", "eu-west-1", "leaky"},
				{"GET", "407", "proxy-auth-required"},
			}
			for i, line := range lines {
				if format == "json" && !json.Valid([]byte(line)) {
					t.Errorf("line %d is not JSON: %s", i, line)
				}
				for _, w := range want[i] {
					if !strings.Contains(line, w) {
						t.Errorf("line %d lacks %q: %s", i, w, line)
					}
				}
			}
		})
	}
}

// TestMetricsByRoute: requests through a route, a reverse listener and
// the unmatched path are counted under their route with their scope,
// status class and body bytes; the signing scope cache reports a miss and
// then hits for one host.
func TestMetricsByRoute(t *testing.T) {
	m := metrics.New(metrics.Options{WithoutRuntime: true})
	var rec recorder
	up := upstreamAddr(t, rec.handler(200, "answer"))
	u, _ := url.Parse("http://" + up)
	tp := startProxy(t, Options{
		Routes:   []Route{{Hosts: []string{"*.amazonaws.com"}, Source: staticSource(t), UpstreamScheme: "http"}},
		Upstream: UpstreamOptions{ConnectTo: map[string]string{"*.amazonaws.com": up, "plain.test": up}},
		Reverse:  []Reverse{{Upstream: u, Source: staticSource(t), Scope: signer.Scope{Service: "execute-api", Region: "eu-west-1"}}},
		Metrics:  m,
	})
	fwd := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: tp.addr})}}
	do := func(c *http.Client, method, target, body string) {
		t.Helper()
		req, err := http.NewRequest(method, target, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	for range 3 {
		do(fwd, "GET", "http://sqs.us-east-1.amazonaws.com/", "")
	}
	do(fwd, "POST", "http://sqs.us-east-1.amazonaws.com/", "Action=ListQueues")
	do(fwd, "GET", "http://unknown-service.amazonaws.com/", "") // no scope: 502 from signet
	do(fwd, "GET", "http://plain.test/", "")
	do(http.DefaultClient, "PUT", "http://"+tp.reverse[0]+"/x", "12345")
	tp.stop()

	want := `
# HELP signet_requests_total Requests answered, by route, signing name, region and status class (2xx...). Signet's own error answers count too.
# TYPE signet_requests_total counter
signet_requests_total{code_class="2xx",region="",route="routes[0]",service=""} 0
signet_requests_total{code_class="2xx",region="",route="unmatched",service=""} 1
signet_requests_total{code_class="2xx",region="eu-west-1",route="reverse[0]",service="execute-api"} 1
signet_requests_total{code_class="2xx",region="us-east-1",route="routes[0]",service="sqs"} 4
signet_requests_total{code_class="3xx",region="",route="routes[0]",service=""} 0
signet_requests_total{code_class="3xx",region="",route="unmatched",service=""} 0
signet_requests_total{code_class="3xx",region="eu-west-1",route="reverse[0]",service="execute-api"} 0
signet_requests_total{code_class="3xx",region="us-east-1",route="routes[0]",service="sqs"} 0
signet_requests_total{code_class="4xx",region="",route="routes[0]",service=""} 0
signet_requests_total{code_class="4xx",region="",route="unmatched",service=""} 0
signet_requests_total{code_class="4xx",region="eu-west-1",route="reverse[0]",service="execute-api"} 0
signet_requests_total{code_class="4xx",region="us-east-1",route="routes[0]",service="sqs"} 0
signet_requests_total{code_class="5xx",region="",route="routes[0]",service=""} 1
signet_requests_total{code_class="5xx",region="",route="unmatched",service=""} 0
signet_requests_total{code_class="5xx",region="eu-west-1",route="reverse[0]",service="execute-api"} 0
signet_requests_total{code_class="5xx",region="us-east-1",route="routes[0]",service="sqs"} 0
# HELP signet_request_bytes_total Request body bytes received from clients and sent upstream.
# TYPE signet_request_bytes_total counter
signet_request_bytes_total{route="reverse[0]"} 5
signet_request_bytes_total{route="routes[0]"} 17
signet_request_bytes_total{route="unmatched"} 0
# HELP signet_response_bytes_total Response body bytes received from upstreams and sent to clients.
# TYPE signet_response_bytes_total counter
signet_response_bytes_total{route="reverse[0]"} 6
signet_response_bytes_total{route="routes[0]"} 24
signet_response_bytes_total{route="unmatched"} 6
# HELP signet_cache_hits_total Lookups that found their entry.
# TYPE signet_cache_hits_total counter
signet_cache_hits_total{cache="signing_scope"} 3
# HELP signet_cache_misses_total Lookups that did not find their entry.
# TYPE signet_cache_misses_total counter
signet_cache_misses_total{cache="signing_scope"} 2
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want),
		"signet_requests_total", "signet_request_bytes_total", "signet_response_bytes_total",
		"signet_cache_hits_total", "signet_cache_misses_total"); err != nil {
		t.Error(err)
	}
}
