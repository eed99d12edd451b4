package proxy

import (
	"net/http"
	"testing"

	"github.com/signet-proxy/signet/credentials"
)

func TestRouterMatch(t *testing.T) {
	src := credentials.NewSource("s", credentials.ProviderFunc(nil), credentials.SourceOptions{})
	rt, err := newRouter([]Route{
		{Hosts: []string{"s3.us-east-1.amazonaws.com"}, PathPrefix: "/logs", Source: src},
		{Hosts: []string{"*.amazonaws.com", "*.amazonaws.com.cn"}, Source: src},
		{Hosts: []string{"api.example.test"}, Source: src},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		host, path string
		want       int // route index, -1 for none
	}{
		{"s3.us-east-1.amazonaws.com", "/logs/x", 0},
		{"s3.us-east-1.amazonaws.com", "/other", 1},
		{"S3.US-EAST-1.AMAZONAWS.COM:443", "/logs", 0},
		{"sts.amazonaws.com.", "/", 1},
		{"bucket.s3.cn-north-1.amazonaws.com.cn", "/", 1},
		{"api.example.test:8443", "/", 2},
		{"amazonaws.com", "/", -1},
		{"amazonaws.com.evil.test", "/", -1},
		{"s3.amazonaws.com.evil.test", "/", -1},
		{"example.com", "/", -1},
		{"[::1]:80", "/", -1},
	}
	for _, tc := range tests {
		if idx := rt.match(tc.host, tc.path); idx != tc.want {
			t.Errorf("match(%q, %q) = route %d, want %d", tc.host, tc.path, idx, tc.want)
		}
	}
}

func TestConnectToResolve(t *testing.T) {
	ct, err := newConnectTo(map[string]string{
		"s3.us-east-1.amazonaws.com:80":         "127.0.0.1:9000",
		"sts.amazonaws.com":                     "127.0.0.1:9001",
		"*.s3.us-east-1.amazonaws.com:80":       "127.0.0.1:9002",
		"*.amazonaws.com":                       "127.0.0.1:9003",
		"*.execute-api.us-east-1.amazonaws.com": "127.0.0.1:9004",
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ addr, want string }{
		{"s3.us-east-1.amazonaws.com:80", "127.0.0.1:9000"},
		{"S3.us-east-1.amazonaws.com:80", "127.0.0.1:9000"},
		{"s3.us-east-1.amazonaws.com:443", "127.0.0.1:9003"},
		{"sts.amazonaws.com:443", "127.0.0.1:9001"},
		{"bucket.s3.us-east-1.amazonaws.com:80", "127.0.0.1:9002"},
		{"bucket.s3.us-east-1.amazonaws.com:443", "127.0.0.1:9003"},
		{"abc.execute-api.us-east-1.amazonaws.com:443", "127.0.0.1:9004"},
		{"example.com:443", "example.com:443"},
	}
	for _, tc := range tests {
		if got := ct.resolve(tc.addr); got != tc.want {
			t.Errorf("resolve(%q) = %q, want %q", tc.addr, got, tc.want)
		}
	}
	if _, err := newConnectTo(map[string]string{"a:1": "nowhere"}); err == nil {
		t.Error("a target without a port must be refused")
	}
}

func TestRawPath(t *testing.T) {
	tests := []struct{ uri, want string }{
		{"/bucket/a%2Fb?x=1", "/bucket/a%2Fb"},
		{"http://s3.amazonaws.com/bucket//k%20e+y~", "/bucket//k%20e+y~"},
		{"http://s3.amazonaws.com", "/"},
		{"http://s3.amazonaws.com?list-type=2", "/"},
		{"http://h:8080/%E2%82%AC?q", "/%E2%82%AC"},
		{"s3.amazonaws.com:443", "/"},
		{"*", "/"},
	}
	for _, tc := range tests {
		if got := rawPath(tc.uri); got != tc.want {
			t.Errorf("rawPath(%q) = %q, want %q", tc.uri, got, tc.want)
		}
	}
}

// A client must not be able to use Connection to strip headers signet relies
// on, nor smuggle proxy credentials upstream.
func TestCopyEndToEndStripsHopByHopAndConnectionNamed(t *testing.T) {
	src := http.Header{
		"Connection":          {"keep-alive, X-Amz-Meta-Drop"},
		"Proxy-Authorization": {"Basic c2VjcmV0"},
		"Proxy-Connection":    {"keep-alive"},
		"Keep-Alive":          {"timeout=5"},
		"Te":                  {"trailers"},
		"Upgrade":             {"h2c"},
		"X-Amz-Meta-Drop":     {"1"},
		"X-Amz-Meta-Keep":     {"2"},
		"Content-Type":        {"text/plain"},
		"Content-Length":      {"3"},
	}
	dst := http.Header{}
	copyEndToEnd(dst, src, dropOutgoing)
	for _, k := range []string{"Connection", "Proxy-Authorization", "Proxy-Connection", "Keep-Alive", "Te", "Upgrade", "X-Amz-Meta-Drop", "Content-Length"} {
		if _, ok := dst[k]; ok {
			t.Errorf("%s reached the upstream", k)
		}
	}
	for _, k := range []string{"X-Amz-Meta-Keep", "Content-Type"} {
		if _, ok := dst[k]; !ok {
			t.Errorf("%s was dropped", k)
		}
	}
}
