package signer

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Scope is the SigV4 credential scope: signing name and region.
type Scope struct{ Service, Region string }

// IncomingScope parses the credential scope of a request an SDK app already
// signed with placeholder keys: the Authorization header
// "AWS4-HMAC-SHA256 Credential=AKID/20240101/REGION/SERVICE/aws4_request,
// SignedHeaders=..., Signature=..." or, in the raw query, X-Amz-Credential.
// ok=false when absent or malformed (malformed never panics).
func IncomingScope(h http.Header, rawQuery string) (Scope, bool) {
	// Several Authorization headers are ambiguous, so none of them is used.
	if v := h.Values("Authorization"); len(v) == 1 {
		if sc, ok := scopeFromAuthorization(v[0]); ok {
			return sc, true
		}
	}
	if rawQuery == "" {
		return Scope{}, false
	}
	var cred string
	found := 0
	for q := rawQuery; q != ""; {
		var pair string
		pair, q, _ = strings.Cut(q, "&")
		k, v, _ := strings.Cut(pair, "=")
		if k != "X-Amz-Credential" {
			continue
		}
		found++
		cred = v
	}
	if found != 1 {
		return Scope{}, false
	}
	cred, err := url.QueryUnescape(cred)
	if err != nil {
		return Scope{}, false
	}
	return scopeFromCredential(cred)
}

// scopeFromAuthorization reads the Credential= parameter of a SigV4
// Authorization header. SigV4A (AWS4-ECDSA-P256-SHA256) has no region in its
// scope and is not accepted.
func scopeFromAuthorization(v string) (Scope, bool) {
	const algo = "AWS4-HMAC-SHA256"
	rest, ok := strings.CutPrefix(strings.TrimSpace(v), algo)
	if !ok || rest == "" || rest[0] != ' ' {
		return Scope{}, false
	}
	for rest != "" {
		var param string
		param, rest, _ = strings.Cut(rest, ",")
		param = strings.TrimSpace(param)
		if cred, ok := strings.CutPrefix(param, "Credential="); ok {
			return scopeFromCredential(cred)
		}
	}
	return Scope{}, false
}

// scopeFromCredential parses AKID/DATE/REGION/SERVICE/aws4_request.
func scopeFromCredential(c string) (Scope, bool) {
	_, c, ok := strings.Cut(c, "/") // the key id, a placeholder
	if !ok {
		return Scope{}, false
	}
	date, c, ok := strings.Cut(c, "/")
	if !ok || len(date) != 8 || !allDigits(date) {
		return Scope{}, false
	}
	region, c, ok := strings.Cut(c, "/")
	if !ok || !scopeToken(region) {
		return Scope{}, false
	}
	service, term, ok := strings.Cut(c, "/")
	if !ok || !scopeToken(service) || term != "aws4_request" {
		return Scope{}, false
	}
	return Scope{Service: service, Region: region}, true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// scopeToken accepts what AWS uses in scopes (letters, digits, '-', '_',
// '.'), so a client cannot smuggle separators or spaces into the scope signet
// signs with.
func scopeToken(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// ResolveScope picks the scope to sign with: each non-empty field of override
// wins, then the incoming placeholder scope, then Lookup(host). If service or
// region is still empty it returns an error that errors.Is(err,
// ErrUnknownScope) and names the host and what to set.
func ResolveScope(host string, h http.Header, rawQuery string, override Scope) (Scope, error) {
	return ResolveScopeWith(host, h, rawQuery, override, Lookup)
}

// ResolveScopeWith is ResolveScope with lookup in place of Lookup, for a
// caller that keeps Lookup's answers in a cache.
func ResolveScopeWith(host string, h http.Header, rawQuery string, override Scope, lookup func(host string) (Scope, bool)) (Scope, error) {
	sc := override
	if sc.Service == "" || sc.Region == "" {
		if in, ok := IncomingScope(h, rawQuery); ok {
			sc = fill(sc, in)
		}
	}
	if sc.Service == "" || sc.Region == "" {
		if lk, ok := lookup(host); ok {
			sc = fill(sc, lk)
		}
	}
	switch {
	case sc.Service == "" && sc.Region == "":
		return Scope{}, fmt.Errorf("%w: host %q is not a known AWS endpoint: set the route's `service` and `region`", ErrUnknownScope, host)
	case sc.Service == "":
		return Scope{}, fmt.Errorf("%w: no signing service for host %q: set the route's `service`", ErrUnknownScope, host)
	case sc.Region == "":
		return Scope{}, fmt.Errorf("%w: no signing region for host %q: set the route's `region`", ErrUnknownScope, host)
	}
	return sc, nil
}

func fill(sc, from Scope) Scope {
	if sc.Service == "" {
		sc.Service = from.Service
	}
	if sc.Region == "" {
		sc.Region = from.Region
	}
	return sc
}
