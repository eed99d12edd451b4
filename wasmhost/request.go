package wasmhost

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxRequestJSON caps the request description a guest passes to
// http_request; headers and a URL fit in far less.
const maxRequestJSON = 64 << 10

// wireRequest is the JSON a guest passes to http_request (ABI.md §4).
type wireRequest struct {
	Method    string     `json:"method"`
	URL       string     `json:"url"`
	Headers   [][]string `json:"headers"`
	TimeoutMS int64      `json:"timeout_ms"`
}

// guestRequest is a validated wireRequest.
type guestRequest struct {
	method  string
	url     *url.URL
	header  http.Header
	timeout time.Duration // 0: only the call's deadline
}

// allowedMethods are the methods a provider has any use for. CONNECT and
// TRACE are left out on purpose.
var allowedMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true,
}

// parseRequest decodes and validates the JSON a guest passed to
// http_request. Every error maps to ERR_BAD_REQUEST. The URL's scheme and
// host are judged later, by the module's policy.
func parseRequest(b []byte) (guestRequest, error) {
	var r guestRequest
	if len(b) > maxRequestJSON {
		return r, fmt.Errorf("request JSON over %d bytes", maxRequestJSON)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var w wireRequest
	if err := dec.Decode(&w); err != nil {
		return r, fmt.Errorf("request JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return r, errors.New("request JSON: data after the object")
	}
	r.method = w.Method
	if r.method == "" {
		r.method = http.MethodGet
	}
	if !allowedMethods[r.method] {
		return r, fmt.Errorf("method %q not supported", r.method)
	}
	u, err := parseGuestURL(w.URL)
	if err != nil {
		return r, err
	}
	r.url = u
	if w.TimeoutMS < 0 {
		return r, errors.New("negative timeout_ms")
	}
	r.timeout = time.Duration(min(w.TimeoutMS, int64(24*time.Hour/time.Millisecond))) * time.Millisecond
	r.header = make(http.Header, len(w.Headers))
	for _, kv := range w.Headers {
		if len(kv) != 2 {
			return r, errors.New("a header is not a [name, value] pair")
		}
		name, value := kv[0], kv[1]
		if !validHeaderName(name) {
			return r, fmt.Errorf("bad header name %q", name)
		}
		if hostSetHeader(name) {
			return r, fmt.Errorf("header %s is set by the host", name)
		}
		if !validHeaderValue(value) {
			return r, fmt.Errorf("bad value for header %s", name)
		}
		r.header.Add(name, value)
	}
	return r, nil
}

// parseGuestURL accepts an absolute URL with a host and no user info. The
// scheme is checked later, so that a non-http(s) scheme reports
// ERR_DENIED_SCHEME as ABI.md says.
func parseGuestURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("bad URL: %w", err)
	}
	if !u.IsAbs() || u.Opaque != "" {
		return nil, errors.New("URL is not absolute")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return u, nil // ERR_DENIED_SCHEME, from the policy
	}
	if u.Host == "" {
		return nil, errors.New("URL has no host")
	}
	if u.User != nil {
		return nil, errors.New("URL has user info")
	}
	if _, _, err := urlHost(u); err != nil {
		return nil, fmt.Errorf("URL host: %w", err)
	}
	u.Fragment, u.RawFragment = "", ""
	return u, nil
}

// hostSetHeader reports the headers the host owns (ABI.md §4).
func hostSetHeader(name string) bool {
	n := strings.ToLower(name)
	switch n {
	case "host", "content-length", "transfer-encoding", "connection":
		return true
	}
	return strings.HasPrefix(n, "proxy-")
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTokenByte(s[i]) {
			return false
		}
	}
	return true
}

// isTokenByte is RFC 9110's tchar.
func isTokenByte(c byte) bool {
	if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// validHeaderValue refuses control characters other than tab, which is
// what lets a value smuggle a second header line.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
