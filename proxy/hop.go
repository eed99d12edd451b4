package proxy

import (
	"net/http"
	"strings"
)

// isHopHeader reports the headers that are meaningful only for one
// connection (RFC 9110 section 7.6.1) or only to the proxy itself, and so
// never travel upstream or back (k in canonical form). They
// are removed before anything else looks at a request: a header that the
// client lists in Connection could otherwise remove something that signet
// added (the reason Go deprecated ReverseProxy.Director). A WebSocket
// upgrade gets its own Connection and Upgrade back after signing
// (upgrade.go), so they reach the upstream but never the signature.
func isHopHeader(k string) bool {
	// A switch, not a map: it runs for every header of every request and
	// response, and compares without hashing.
	switch k {
	case "Connection",
		"Proxy-Connection", // non-standard, sent by old clients
		"Keep-Alive",
		"Proxy-Authenticate",
		"Proxy-Authorization", // credentials for signet, never for AWS
		"Te",
		"Trailer",
		"Transfer-Encoding",
		"Upgrade":
		return true
	}
	return false
}

// copyEndToEnd copies the end-to-end headers of src into dst: everything but
// the hop-by-hop headers, those the Connection header names, and those in
// drop (canonical names).
func copyEndToEnd(dst, src http.Header, drop map[string]bool) {
	var named []string
	for _, v := range src["Connection"] {
		for f := range strings.SplitSeq(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				named = append(named, http.CanonicalHeaderKey(f))
			}
		}
	}
	for k, vv := range src {
		if isHopHeader(k) || drop[k] || containsFold(named, k) {
			continue
		}
		// The value slices are shared, not copied: nothing downstream
		// appends to them in place (the signer replaces whole entries),
		// and the incoming request is not read again once copied.
		dst[k] = vv
	}
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// hasToken reports whether a comma-separated header (Connection, Upgrade,
// Expect), in any of its lines, lists token, compared without regard to
// case (RFC 9110 section 5.6.1).
func hasToken(values []string, token string) bool {
	for _, v := range values {
		for f := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), token) {
				return true
			}
		}
	}
	return false
}
