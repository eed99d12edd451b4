package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestSignedRequestOnlyToSignedHostTunnelHostMismatch: inside a tunnel
// that signet intercepts for one host, a request for another host is
// refused and logged, and never signed or sent: over HTTP/1.1 whether the
// other host is in the Host header or in an absolute-form target, and
// over HTTP/2 in :authority. Real TLS clients through real tunnels.
func TestSignedRequestOnlyToSignedHostTunnelHostMismatch(t *testing.T) {
	fp := startFramingProxy(t)
	const other = "sns.us-east-1.amazonaws.com"
	tests := []struct {
		name, req    string
		status       int
		code, logged string
	}{
		{"Host header names another host", "GET /x HTTP/1.1\r\nHost: " + other + "\r\n\r\n",
			http.StatusMisdirectedRequest, codeHostMismatch, "refused request whose Host differs from its tunnel"},
		{"Host header names another port", "GET /x HTTP/1.1\r\nHost: " + routedHost + ":8443\r\n\r\n",
			http.StatusMisdirectedRequest, codeHostMismatch, "refused request whose Host differs from its tunnel"},
		{"absolute-form target names another host", "GET https://" + other + "/x HTTP/1.1\r\nHost: " + other + "\r\n\r\n",
			http.StatusMisdirectedRequest, codeHostMismatch, "refused request whose Host differs from its tunnel"},
		{"absolute-form target and Host disagree", "GET https://" + routedHost + "/x HTTP/1.1\r\nHost: " + other + "\r\n\r\n",
			http.StatusBadRequest, codeHostMismatch, "refused request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := fp.logged.String()
			c := tunnelTo(t, fp.addr, routedHost, fp.ca)
			defer c.Close()
			resps, body, _ := exchangeRaw(t, c, tc.req, 0, 1)
			if resps[0].StatusCode != tc.status || resps[0].Header.Get("X-Signet-Error") != tc.code {
				t.Fatalf("got %d %q %s, want %d %s", resps[0].StatusCode, resps[0].Header.Get("X-Signet-Error"), body[0], tc.status, tc.code)
			}
			logs := strings.TrimPrefix(fp.logged.String(), before)
			if !strings.Contains(logs, tc.logged) || !strings.Contains(logs, other) && !strings.Contains(logs, ":8443") {
				t.Fatalf("not logged with the other host:\n%s", logs)
			}
		})
	}
	t.Run("HTTP/2 :authority names another host", func(t *testing.T) {
		tr := &http.Transport{
			ForceAttemptHTTP2: true,
			DialTLSContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				c, err := net.Dial("tcp", fp.addr)
				if err != nil {
					return nil, err
				}
				_, _ = io.WriteString(c, "CONNECT "+routedHost+":443 HTTP/1.1\r\nHost: "+routedHost+":443\r\n\r\n")
				if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || resp.StatusCode != 200 {
					return nil, fmt.Errorf("CONNECT: %v %v", resp, err)
				}
				tc := tls.Client(c, &tls.Config{RootCAs: fp.ca, ServerName: routedHost, NextProtos: []string{"h2"}})
				return tc, tc.HandshakeContext(ctx)
			},
		}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get("https://" + other + "/x")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusMisdirectedRequest || resp.Header.Get("X-Signet-Error") != codeHostMismatch {
			t.Fatalf("got %s %d %q, want HTTP/2 421 %s", resp.Proto, resp.StatusCode, resp.Header.Get("X-Signet-Error"), codeHostMismatch)
		}
	})
	if n := len(fp.rec.all()); n != 0 {
		t.Fatalf("the upstream received %d requests", n)
	}
}

// TestNoSigningForUnroutedHost: signet signs only for hosts a route
// names. A CONNECT to any other host is a blind tunnel even with
// interception on (no certificate is issued, the client sees the
// upstream's own, and nothing is added to its requests); a tunnel to a
// routed host cannot get a certificate for another name; and a request
// forwarded to an unrouted host reaches it unsigned (see also
// TestUnmatchedForwardPassesUntouched and, with unmatched: deny,
// TestSignetErrors).
func TestNoSigningForUnroutedHost(t *testing.T) {
	var origin recorder
	ts := httptest.NewTLSServer(origin.handler(http.StatusOK, "origin"))
	t.Cleanup(ts.Close)
	// As cmd/signet wires it: the interceptor asks the proxy's routes.
	var srvp atomic.Pointer[Server]
	ic := openInterceptor(t, func(h string) bool { s := srvp.Load(); return s != nil && s.SignsHost(h) })
	tp := startProxy(t, Options{
		Routes:    []Route{{Hosts: []string{"*.amazonaws.com"}, Source: staticSource(t)}},
		Intercept: ic,
		Logger:    slog.New(slog.DiscardHandler),
	})
	srvp.Store(tp.srv)
	srv := tp.srv

	t.Run("blind tunnel to an unrouted host", func(t *testing.T) {
		proxyURL, _ := url.Parse("http://" + tp.addr)
		client := ts.Client() // trusts only the origin's own certificate
		client.Transport.(*http.Transport).Proxy = http.ProxyURL(proxyURL)
		defer client.CloseIdleConnections()
		req, _ := http.NewRequest(http.MethodGet, ts.URL+"/", nil)
		req.Header.Set("Authorization", "Bearer mine")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		seen := origin.all()
		if string(b) != "origin" || len(seen) != 1 || seen[0].header.Get("Authorization") != "Bearer mine" || seen[0].header.Get("X-Amz-Date") != "" {
			t.Fatalf("body %q, origin saw %+v", b, seen)
		}
	})
	t.Run("no certificate for another name through a routed tunnel", func(t *testing.T) {
		ca := x509.NewCertPool()
		ca.AddCert(ic.CACert())
		for _, sni := range []string{"example.com", "sns.us-east-1.amazonaws.com"} {
			c, err := net.Dial("tcp", tp.addr)
			if err != nil {
				t.Fatal(err)
			}
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			_, _ = io.WriteString(c, "CONNECT sqs.us-east-1.amazonaws.com:443 HTTP/1.1\r\nHost: sqs.us-east-1.amazonaws.com:443\r\n\r\n")
			if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || resp.StatusCode != 200 {
				t.Fatalf("CONNECT: %v %v", resp, err)
			}
			tc := tls.Client(c, &tls.Config{RootCAs: ca, ServerName: sni})
			if err := tc.Handshake(); err == nil {
				t.Fatalf("a tunnel to sqs completed a handshake for %s", sni)
			}
			c.Close()
		}
	})
	if n := ic.LeavesIssued(); n != 0 {
		t.Fatalf("%d leaf certificates issued for hosts no tunnel may get", n)
	}
	if srv.SignsHost("127.0.0.1") || srv.SignsHost("example.com") || !srv.SignsHost("sqs.us-east-1.amazonaws.com") {
		t.Fatal("SignsHost disagrees with the routes")
	}
}
