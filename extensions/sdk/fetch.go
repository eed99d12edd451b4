package sdk

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Request is one HTTP request for Fetch.
type Request struct {
	// Method defaults to GET.
	Method string
	URL    string
	// Header holds name/value pairs; a name may repeat. Host,
	// Content-Length, Transfer-Encoding, Connection and Proxy-* are set by
	// the host and refused here (ErrBadRequest).
	Header [][2]string
	Body   []byte
	// Timeout bounds this request; zero leaves only the context's deadline
	// (and, under signet, the call's). It never extends either.
	Timeout time.Duration
}

// Response is a whole HTTP response: Fetch has read its body.
type Response struct {
	StatusCode int
	// Header holds the response's name/value pairs.
	Header [][2]string
	Body   []byte
}

// HeaderValue returns the first value of the header name (any case), or "".
func (r *Response) HeaderValue(name string) string {
	for _, h := range r.Header {
		if strings.EqualFold(h[0], name) {
			return h[1]
		}
	}
	return ""
}

// MaxResponseBody is the largest response body Fetch returns: the host's
// cap, which the native build applies too.
const MaxResponseBody = 1 << 20

// MaxRedirects is how many redirects Fetch follows, at most.
const MaxRedirects = 5

// Status is a status code of the host module `signet` (ABI.md section
// 5). Fetch's errors wrap one, so a provider can tell a refusal by
// signet's policy from a network failure:
//
//	if errors.Is(err, sdk.ErrDeniedHost) { ... }  // this code
//	if errors.Is(err, sdk.ErrDenied) { ... }      // any policy refusal
type Status uint32

// The status codes of ABI version 1. Zero is success and never an error.
const (
	ErrDeniedHost    Status = 1
	ErrDeniedScheme  Status = 2
	ErrDeniedAddress Status = 3
	ErrLimitRequests Status = 4
	ErrLimitSize     Status = 5
	ErrTimeout       Status = 6
	ErrNetwork       Status = 7
	ErrBadRequest    Status = 8
	ErrBadHandle     Status = 9
	ErrRedirects     Status = 10
	ErrMemory        Status = 11
	ErrNotAllowed    Status = 12
)

// ErrDenied matches (errors.Is) every refusal by the source's network
// policy: ErrDeniedHost, ErrDeniedScheme, ErrDeniedAddress and
// ErrNotAllowed. Their fix is in signet's config, not in the module.
var ErrDenied = errors.New("denied by the source's network policy")

func (s Status) Error() string {
	switch s {
	case ErrDeniedHost:
		return "host not in allow_hosts"
	case ErrDeniedScheme:
		return "scheme not allowed (https only, unless allow_http)"
	case ErrDeniedAddress:
		return "address not allowed (private, loopback or link-local, unless allow_private)"
	case ErrLimitRequests:
		return "too many requests in one call"
	case ErrLimitSize:
		return "response body over 1 MiB"
	case ErrTimeout:
		return "timed out"
	case ErrNetwork:
		return "network failure"
	case ErrBadRequest:
		return "invalid request"
	case ErrBadHandle:
		return "invalid response handle"
	case ErrRedirects:
		return "more than 5 redirects"
	case ErrMemory:
		return "pointer outside the module's memory"
	case ErrNotAllowed:
		return "no network for this module (allow_hosts is empty)"
	}
	return "host status " + strconv.FormatUint(uint64(s), 10)
}

// Is makes errors.Is(s, ErrDenied) true for the policy refusals.
func (s Status) Is(target error) bool {
	if target != ErrDenied {
		return false
	}
	switch s {
	case ErrDeniedHost, ErrDeniedScheme, ErrDeniedAddress, ErrNotAllowed:
		return true
	}
	return false
}

// fetchError is what Fetch returns: the request, without its query (which
// may carry a secret), and the status.
func fetchError(req Request, s Status, detail string) error {
	if detail != "" {
		return fmt.Errorf("sdk: %s %s: %w: %s", method(req), redactURL(req.URL), s, detail)
	}
	return fmt.Errorf("sdk: %s %s: %w", method(req), redactURL(req.URL), s)
}

func method(req Request) string {
	if req.Method == "" {
		return "GET"
	}
	return req.Method
}

// redactURL drops the query, the fragment and any user information.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid URL)"
	}
	u.User, u.RawQuery, u.Fragment, u.RawFragment = nil, "", "", ""
	return u.String()
}

// checkRequest applies the host's rules that need no network, in both
// builds, so a module behaves the same natively and under signet.
func checkRequest(req Request) error {
	if m := method(req); m == "" || strings.ContainsAny(m, " \t\r\n") {
		return fetchError(req, ErrBadRequest, "method")
	}
	u, err := url.Parse(req.URL)
	if err != nil || u.Host == "" {
		return fetchError(req, ErrBadRequest, "URL")
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return fetchError(req, ErrDeniedScheme, "")
	}
	for _, h := range req.Header {
		name := strings.ToLower(h[0])
		switch {
		case name == "" || strings.ContainsAny(name, " \t\r\n:"):
			return fetchError(req, ErrBadRequest, "a header name is invalid")
		case strings.ContainsAny(h[1], "\r\n\x00"):
			return fetchError(req, ErrBadRequest, "header "+h[0]+" has a line break in its value")
		case name == "host" || name == "content-length" || name == "transfer-encoding" ||
			name == "connection" || strings.HasPrefix(name, "proxy-"):
			return fetchError(req, ErrBadRequest, "header "+h[0]+" is set by the host")
		}
	}
	return nil
}

// parseHeaderPairs decodes the host's JSON list of name/value pairs.
func parseHeaderPairs(b []byte) ([][2]string, error) {
	var raw [][]string
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("response headers: %w", err)
	}
	out := make([][2]string, 0, len(raw))
	for i, p := range raw {
		if len(p) != 2 {
			return nil, fmt.Errorf("response headers: pair %d has %d elements", i, len(p))
		}
		out = append(out, [2]string{p[0], p[1]})
	}
	return out, nil
}
