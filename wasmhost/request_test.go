package wasmhost

import (
	"strings"
	"testing"
	"time"
)

func TestParseRequest(t *testing.T) {
	ok := []struct {
		json    string
		method  string
		url     string
		timeout time.Duration
	}{
		{`{"url":"https://sts.amazonaws.com/"}`, "GET", "https://sts.amazonaws.com/", 0},
		{` {"method":"POST","url":"https://a.b/x?y=1#frag","headers":[["A","1"],["A","2"]],"timeout_ms":1500} `,
			"POST", "https://a.b/x?y=1", 1500 * time.Millisecond},
		{`{"url":"http://a.b/","headers":null}`, "GET", "http://a.b/", 0},
	}
	for _, tc := range ok {
		r, err := parseRequest([]byte(tc.json))
		if err != nil {
			t.Errorf("%s: %v", tc.json, err)
			continue
		}
		if r.method != tc.method || r.url.String() != tc.url || r.timeout != tc.timeout {
			t.Errorf("%s: got %s %s %v", tc.json, r.method, r.url, r.timeout)
		}
	}
	r, _ := parseRequest([]byte(ok[1].json))
	if got := r.header.Values("A"); len(got) != 2 {
		t.Errorf("repeated header: %v", got)
	}
	bad := []string{
		``, `{`, `[]`, `{"url":"https://a.b/"} {}`, `{"url":"https://a.b/","extra":1}`,
		`{"url":"/relative"}`, `{"url":"https://"}`, `{"url":"https://u:p@a.b/"}`,
		`{"url":"https://a.b/","method":"CONNECT"}`, `{"url":"https://a.b/","method":"get"}`,
		`{"url":"https://a.b/","headers":[["A"]]}`, `{"url":"https://a.b/","headers":[["A","1","2"]]}`,
		`{"url":"https://a.b/","headers":[["Bad Name","1"]]}`, `{"url":"https://a.b/","headers":[["A","x\ny"]]}`,
		`{"url":"https://a.b/","headers":[["Content-Length","1"]]}`, `{"url":"https://a.b/","headers":[["TRANSFER-ENCODING","chunked"]]}`,
		`{"url":"https://a.b/","headers":[["Proxy-Authorization","x"]]}`, `{"url":"https://a.b/","headers":[["connection","close"]]}`,
		`{"url":"https://a.b/","timeout_ms":-1}`, `{"url":"https://ä.b/"}`, `{"url":"https://[fe80::1%25eth0]/"}`,
		`{"url":"https://a.b:99999/"}`, `{"url":"https://a..b/"}`,
		`{"url":"https://a.b/","pad":"` + strings.Repeat("x", maxRequestJSON) + `"}`,
	}
	for _, b := range bad {
		if _, err := parseRequest([]byte(b)); err == nil {
			t.Errorf("accepted %.80s", b)
		}
	}
	// A scheme other than http(s) parses, for the policy to refuse with
	// ERR_DENIED_SCHEME.
	if r, err := parseRequest([]byte(`{"url":"ftp://a.b/"}`)); err != nil || r.url.Scheme != "ftp" {
		t.Errorf("ftp: %v", err)
	}
}

// FuzzParseRequest: whatever a guest passes, parsing does not panic, and
// what it accepts is a request the client can send safely.
func FuzzParseRequest(f *testing.F) {
	f.Add([]byte(`{"url":"https://sts.amazonaws.com/"}`))
	f.Add([]byte(`{"method":"POST","url":"https://a.b/x?y=1","headers":[["A","1"]],"timeout_ms":5}`))
	f.Add([]byte(`{"url":"http://[::1]:80/","headers":null}`))
	f.Add([]byte(`{"url":"https://a.b/","headers":[["Host","x"]]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseRequest(b)
		if err != nil {
			return
		}
		if !allowedMethods[r.method] || r.timeout < 0 {
			t.Fatalf("accepted method %q timeout %v", r.method, r.timeout)
		}
		for name, vals := range r.header {
			if hostSetHeader(name) || !validHeaderName(name) {
				t.Fatalf("accepted header %q", name)
			}
			for _, v := range vals {
				if strings.ContainsAny(v, "\r\n\x00") {
					t.Fatalf("accepted value %q", v)
				}
			}
		}
		if r.url.Scheme == "http" || r.url.Scheme == "https" {
			if r.url.User != nil || r.url.Host == "" {
				t.Fatalf("accepted URL %q", r.url)
			}
			if _, _, err := urlHost(r.url); err != nil {
				t.Fatalf("accepted URL %q with host error %v", r.url, err)
			}
		}
	})
}
