package signer

import (
	"fmt"
	"net/url"
	"strings"
)

// SetRawPath sets u's path so that the Go transport writes raw on the request
// line byte for byte and the SDK signs the same bytes (its GetURIPath uses
// u.Opaque when set, else u.EscapedPath()).
//
// Path and RawPath carry raw whenever EscapedPath reproduces it, which covers
// every validly escaped path (%2F, %7E, +, ~, =, //, ...). Otherwise, for a
// path with an invalid escape or a byte Go would re-escape, raw goes into
// Opaque; the request line then carries it untouched. Opaque cannot hold a
// path starting with "//", which both Go and the SDK would read as
// "//host/path", so such a path that EscapedPath cannot reproduce is an
// error, as is anything that cannot appear in an origin-form request line
// (no leading '/', '?', '#', spaces, control bytes).
func SetRawPath(u *url.URL, raw string) error {
	if raw == "" || raw[0] != '/' {
		return fmt.Errorf("set raw path %q: %w: it must start with '/'", truncate(raw, 80), ErrBadRequest)
	}
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c <= ' ' || c == 0x7f || c == '?' || c == '#' {
			return fmt.Errorf("set raw path %q: %w: byte %q at %d cannot appear in a request path", truncate(raw, 80), ErrBadRequest, c, i)
		}
	}
	decoded, err := url.PathUnescape(raw)
	if err == nil {
		// Go's own convention is RawPath only when escaping Path would not
		// give it back, so try without first.
		u.Opaque, u.Path, u.RawPath = "", decoded, ""
		if u.EscapedPath() == raw {
			return nil
		}
		u.RawPath = raw
		if u.EscapedPath() == raw {
			return nil
		}
	}
	if strings.HasPrefix(raw, "//") {
		u.Path, u.RawPath = "", ""
		return fmt.Errorf("set raw path %q: %w: a path starting with // must be validly escaped", truncate(raw, 80), ErrBadRequest)
	}
	if err != nil {
		decoded = raw
	}
	u.Opaque, u.Path, u.RawPath = raw, decoded, ""
	return nil
}

// canonicalPath is the path as SigV4 wants it in the canonical request: every
// byte of the decoded path escaped as %XX except the unreserved characters
// (A-Z a-z 0-9 - . _ ~) and the literal slashes the client sent. AWS
// verifiers derive the canonical URI this way from what they receive, so
// a client that leaves a sub-delimiter unescaped (curl sends "p+q=r" as is)
// and one that escapes "~" as %7E are signed the way the service will check
// them, while the request line itself still carries the client's bytes. An
// escaped slash (%2F) stays escaped: decoding it would change which key is
// meant. A '%' not followed by two hex digits stands for itself.
func canonicalPath(wire string) string {
	if isCanonicalPath(wire) {
		return wire
	}
	const hexUpper = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(wire) + 16)
	for i := 0; i < len(wire); i++ {
		c := wire[i]
		if c == '%' && i+2 < len(wire) && isHex(wire[i+1]) && isHex(wire[i+2]) {
			c = unhex(wire[i+1])<<4 | unhex(wire[i+2])
			i += 2
		} else if c == '/' {
			b.WriteByte('/')
			continue
		}
		if isUnreserved(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexUpper[c>>4])
		b.WriteByte(hexUpper[c&15])
	}
	return b.String()
}

// isCanonicalPath reports whether canonicalPath would return p unchanged,
// the common case, so that it costs no allocation.
func isCanonicalPath(p string) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '/' || isUnreserved(c):
		case c == '%' && i+2 < len(p) && isUpperHex(p[i+1]) && isUpperHex(p[i+2]):
			v := unhex(p[i+1])<<4 | unhex(p[i+2])
			if isUnreserved(v) {
				return false // %7E must become ~
			}
			i += 2
		default:
			return false
		}
	}
	return true
}

func isUnreserved(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

func isUpperHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'A' && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// wirePath is the path the Go transport will write for u.
func wirePath(u *url.URL) string {
	if u.Opaque != "" {
		return u.Opaque
	}
	return u.EscapedPath()
}
