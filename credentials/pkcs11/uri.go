package pkcs11

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
)

// ParseURI reads an RFC 7512 PKCS#11 URI that names one key, such as
//
//	pkcs11:token=device;object=iot-key;id=%01?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/signet/pin
//
// into Options (without the PIN) and where the PIN is. Attribute values
// are percent-decoded; a character the RFC's grammar does not allow
// literally ("/" in the path part, a space, a non-ASCII byte) must be
// percent-encoded.
//
// What is used: token, serial and slot-id select the token (exactly one of
// them: signet selects a token by one attribute); object and id select the
// key (at least one); type, when given, must be private, public or cert
// (the key pair is found through any of its objects); module-path is the
// module (an absolute path to the library file); pin-source is a file, as a
// path or a file: URI (a "|command" source is refused); pin-value is the
// PIN itself, returned so that the caller can refuse it where a config file
// is readable by others.
//
// What is ignored: attributes that signet does not match on
// (manufacturer, model, library-*, slot-description, slot-manufacturer,
// module-name) and, as RFC 7512 asks, attributes it does not know,
// vendor-specific ones included.
//
// Errors name the attribute and the offset in the URI; they never quote
// the URI itself, nor anything of a pin-value.
func ParseURI(uri string) (Options, PINSource, error) {
	var (
		o    Options
		pin  PINSource
		seen = map[string]bool{}
	)
	const scheme = "pkcs11:"
	if len(uri) < len(scheme) || !strings.EqualFold(uri[:len(scheme)], scheme) {
		return Options{}, PINSource{}, uriError("it does not start with %q", scheme)
	}
	path, query, _ := strings.Cut(uri[len(scheme):], "?")
	err := eachAttr(path, len(scheme), ';', pathChars, func(name string, value []byte, at int) error {
		if seen[name] {
			// RFC 7512 section 2.3: an attribute appears at most once in the path.
			return uriError("attribute %q (offset %d) appears twice", name, at)
		}
		seen[name] = true
		if !isKnownPathAttr(name) {
			return nil // RFC 7512: unknown and vendor attributes are ignored
		}
		if len(value) == 0 {
			return uriError("attribute %q (offset %d) is empty", name, at)
		}
		switch name {
		case "token":
			o.TokenLabel = string(value)
		case "serial":
			o.TokenSerial = string(value)
		case "slot-id":
			n, err := parseSlotID(string(value))
			if err != nil {
				return uriError("slot-id %q (offset %d): %v", value, at, err)
			}
			o.Slot = &n
		case "object":
			o.KeyLabel = string(value)
		case "id":
			o.KeyID = value
		case "type":
			switch string(value) {
			case "private", "public", "cert":
			case "secret-key", "data":
				return uriError("type=%s (offset %d) names no key pair: signet needs a private key (type=private, or no type)", value, at)
			default:
				return uriError("type=%q (offset %d) is not a PKCS#11 object type (private, public, cert, secret-key, data)", value, at)
			}
		}
		return nil
	})
	if err != nil {
		return Options{}, PINSource{}, err
	}
	qseen := map[string]bool{}
	err = eachAttr(query, len(uri)-len(query), '&', queryChars, func(name string, value []byte, at int) error {
		if !isKnownQueryAttr(name) {
			return nil
		}
		if qseen[name] {
			return uriError("attribute %q (offset %d) appears twice", name, at)
		}
		qseen[name] = true
		if len(value) == 0 {
			return uriError("attribute %q (offset %d) is empty", name, at)
		}
		switch name {
		case "pin-source":
			f, err := pinSourceFile(string(value))
			if err != nil {
				return uriError("pin-source %q (offset %d): %v", value, at, err)
			}
			pin.File = f
		case "pin-value":
			pin.Value = string(value)
		case "module-path":
			p := string(value)
			if !filepath.IsAbs(p) {
				return uriError("module-path %q (offset %d) is not an absolute path to the module's library", p, at)
			}
			o.Module = p
		}
		return nil
	})
	if err != nil {
		return Options{}, PINSource{}, err
	}
	if pin.File != "" && pin.Value != "" {
		return Options{}, PINSource{}, uriError("it has both pin-source and pin-value: give one")
	}
	var sel []string
	for _, a := range []string{"token", "serial", "slot-id"} {
		if seen[a] {
			sel = append(sel, a)
		}
	}
	switch len(sel) {
	case 0:
		return Options{}, PINSource{}, uriError("it names no token: add token=LABEL, serial=SERIAL or slot-id=N")
	case 1:
	default:
		return Options{}, PINSource{}, uriError("it selects the token by %s: signet selects it by exactly one of them", strings.Join(sel, " and "))
	}
	if o.KeyLabel == "" && o.KeyID == nil {
		return Options{}, PINSource{}, uriError("it names no key: add object=LABEL, id=%%XX..., or both")
	}
	return o, pin, nil
}

func uriError(format string, args ...any) error {
	return errorf(ErrInvalid, nil, "PKCS#11 URI: "+format, args...)
}

func isKnownPathAttr(name string) bool {
	switch name {
	case "token", "serial", "slot-id", "object", "id", "type":
		return true
	}
	return false
}

func isKnownQueryAttr(name string) bool {
	switch name {
	case "pin-source", "pin-value", "module-path":
		return true
	}
	return false
}

// The characters RFC 7512 section 2.3 allows unencoded in the path and in
// the query besides unreserved ones (ALPHA DIGIT - . _ ~): pk11-res-avail
// plus "&" in the path, plus "/" "?" "|" in the query. The separators ";"
// and "&" never reach the value checks.
const (
	pathChars  = ":[]@!$'()*+,=&"
	queryChars = ":[]@!$'()*+,=/?|"
)

// eachAttr splits s (which starts at offset off in the URI) at sep and
// calls fn with each attribute's name, its percent-decoded value and its
// offset. An empty s has no attributes.
func eachAttr(s string, off int, sep byte, allowed string, fn func(name string, value []byte, at int) error) error {
	if s == "" {
		return nil
	}
	for attr := range strings.SplitSeq(s, string(sep)) {
		at := off
		off += len(attr) + 1
		if attr == "" {
			return uriError("empty attribute at offset %d (a doubled or trailing %q)", at, sep)
		}
		name, raw, ok := strings.Cut(attr, "=")
		if !ok {
			return uriError("attribute at offset %d has no \"=\"", at)
		}
		if !validName(name) {
			return uriError("attribute name at offset %d is not letters, digits, \"-\" and \"_\"", at)
		}
		value, err := decode(raw, at+len(name)+1, allowed, name == "pin-value")
		if err != nil {
			return uriError("attribute %q: %v", name, err)
		}
		if err := fn(name, value, at); err != nil {
			return err
		}
	}
	return nil
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// decode percent-decodes s (at offset off in the URI), refusing characters
// that must be encoded. A secret value is never quoted in an error.
func decode(s string, off int, allowed string, secret bool) ([]byte, error) {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%':
			if i+2 >= len(s) {
				return nil, fmt.Errorf("%q at offset %d is not followed by two hex digits", '%', off+i)
			}
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("%q at offset %d is not followed by two hex digits", '%', off+i)
			}
			out = append(out, hi<<4|lo)
			i += 2
		case isAlnum(c) || strings.IndexByte("-._~", c) >= 0 || strings.IndexByte(allowed, c) >= 0:
			out = append(out, c)
		case secret:
			return nil, fmt.Errorf("a character at offset %d must be percent-encoded", off+i)
		default:
			return nil, fmt.Errorf("character %q at offset %d must be percent-encoded (%%%02X)", c, off+i, c)
		}
	}
	return out, nil
}

// parseSlotID reads a decimal CK_SLOT_ID.
func parseSlotID(s string) (int, error) {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("not a decimal number")
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("too large")
	}
	return n, nil
}

// pinSourceFile returns the file a pin-source names: a path, or a file:
// URI (file:/p, file:///p, file://localhost/p).
func pinSourceFile(v string) (string, error) {
	if strings.HasPrefix(v, "|") {
		return "", fmt.Errorf("runs a command; signet reads the PIN only from a file (pin-source=file:/path)")
	}
	if scheme, _, ok := strings.Cut(v, ":"); ok && isScheme(scheme) {
		if !strings.EqualFold(scheme, "file") {
			return "", fmt.Errorf("scheme %q is not supported; give a file (pin-source=file:/path)", scheme)
		}
		u, err := url.Parse(v)
		if err != nil {
			return "", fmt.Errorf("not a file: URI: %v", err)
		}
		if u.Host != "" && !strings.EqualFold(u.Host, "localhost") {
			return "", fmt.Errorf("host %q: only local files can hold the PIN", u.Host)
		}
		if u.RawQuery != "" || u.Fragment != "" {
			return "", fmt.Errorf("a file: URI with a query or fragment")
		}
		p := u.Path
		if u.Opaque != "" {
			if p, err = url.PathUnescape(u.Opaque); err != nil {
				return "", fmt.Errorf("not a file: URI: %v", err)
			}
		}
		if p == "" {
			return "", fmt.Errorf("the file: URI has no path")
		}
		return p, nil
	}
	return v, nil
}

// isScheme reports whether s is an RFC 3986 scheme name.
func isScheme(s string) bool {
	if s == "" || !('a' <= s[0] && s[0] <= 'z' || 'A' <= s[0] && s[0] <= 'Z') {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isAlnum(s[i]) && s[i] != '+' && s[i] != '-' && s[i] != '.' {
			return false
		}
	}
	return true
}
