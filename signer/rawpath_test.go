package signer

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

var rawPathCases = []string{
	"/",
	"/plain/key.txt",
	"/a%2Fb",
	"/a%2fb",
	"/a+b",
	"/tilde~x",
	"/tilde%7Ex",
	"/with%20space",
	"/euro%E2%82%AC",
	"//double//slashes",
	"/eq=ual&amp",
	"/bad%zz",
	"/bad%",
	"/%E2%82",
	"/caf\xc3\xa9",
	"/semi;colon:@!$'()*,",
}

// TestSetRawPathOnTheWire sends each raw path through the real Go
// transport to a bare TCP listener (Go's own server would reject the
// invalid escapes before a handler saw them) and checks the request line
// byte for byte.
func TestSetRawPathOnTheWire(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lines := make(chan string, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			line, _ := bufio.NewReader(c).ReadString('\n')
			lines <- line
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			c.Close()
		}
	}()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for _, raw := range rawPathCases {
		t.Run(raw, func(t *testing.T) {
			u := url.URL{Scheme: "http", Host: ln.Addr().String()}
			if err := SetRawPath(&u, raw); err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(raw, "//") && u.Opaque != "" {
				t.Errorf("Opaque %q set for a // path", u.Opaque)
			}
			if uri := u.RequestURI(); uri != raw {
				t.Errorf("RequestURI = %q", uri)
			}
			if p := sdkURIPath(&u); p != raw {
				t.Errorf("signed path = %q", p)
			}
			req, _ := http.NewRequestWithContext(context.Background(), "GET", "", nil)
			req.URL = &u
			req.Host = u.Host
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if want := "GET " + raw + " HTTP/1.1\r\n"; <-lines != want {
				t.Errorf("request line differs, want %q", want)
			}
		})
	}
}

// sdkURIPath restates the SDK's GetURIPath rule (internal to the SDK):
// Opaque after any "//host", else EscapedPath.
func sdkURIPath(u *url.URL) string {
	if u.Opaque == "" {
		return u.EscapedPath()
	}
	o := u.Opaque
	if strings.HasPrefix(o, "//") {
		o = o[2:]
		i := strings.IndexByte(o, '/')
		if i < 0 {
			return "/"
		}
		return o[i:]
	}
	return o
}

func TestSetRawPathRejects(t *testing.T) {
	for _, raw := range []string{"", "noslash", "/a b", "/a?b", "/a#b", "/a\x00", "/a\x7f", "//bad%zz", "//caf\xc3\xa9"} {
		u := &url.URL{Scheme: "https", Host: "h"}
		if err := SetRawPath(u, raw); !errors.Is(err, ErrBadRequest) {
			t.Errorf("SetRawPath(%q) = %v", raw, err)
		}
	}
}

func TestCanonicalPath(t *testing.T) {
	tests := []struct{ wire, want string }{
		{"/", "/"},
		{"/bucket/key", "/bucket/key"},
		{"/bucket/a%2Fb", "/bucket/a%2Fb"},
		{"/bucket/a%2fb", "/bucket/a%2Fb"},
		{"/bucket/p+q=r", "/bucket/p%2Bq%3Dr"},
		{"/bucket/%7E~", "/bucket/~~"},
		{"/bucket/%41", "/bucket/A"},
		{"/bucket//k", "/bucket//k"},
		{"/bucket/%E2%82%AC", "/bucket/%E2%82%AC"},
		{"/bucket/%e2%82%ac", "/bucket/%E2%82%AC"},
		{"/bucket/100%", "/bucket/100%25"},
		{"/bucket/%zz", "/bucket/%25zz"},
	}
	for _, tc := range tests {
		if got := canonicalPath(tc.wire); got != tc.want {
			t.Errorf("canonicalPath(%q) = %q, want %q", tc.wire, got, tc.want)
		}
		if got := canonicalPath(tc.want); got != tc.want {
			t.Errorf("canonicalPath is not idempotent on %q: %q", tc.want, got)
		}
		if isCanonicalPath(tc.wire) != (tc.wire == tc.want) {
			t.Errorf("isCanonicalPath(%q) = %v", tc.wire, !(tc.wire == tc.want))
		}
	}
}
