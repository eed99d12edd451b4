package proxy

import (
	"net/http"
	"strings"
)

// hopHeaders are meaningful only for one connection (RFC 9110 section 7.6.1)
// or only to the proxy itself, and so never travel upstream or back. They
// are removed before anything else looks at a request: a header that the
// client lists in Connection could otherwise remove something that signet
// added (the reason Go deprecated ReverseProxy.Director).
var hopHeaders = map[string]bool{
	"Connection":          true,
	"Proxy-Connection":    true, // non-standard, sent by old clients
	"Keep-Alive":          true,
	"Proxy-Authenticate":  true,
	"Proxy-Authorization": true, // credentials for signet, never for AWS
	"Te":                  true,
	"Trailer":             true,
	"Transfer-Encoding":   true,
	"Upgrade":             true,
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
		if hopHeaders[k] || drop[k] || containsFold(named, k) {
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
