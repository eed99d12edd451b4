package configs

import (
	"strconv"
	"strings"
)

// Error is one problem with the configuration. Every error that Load,
// LoadBytes and Validate return is made of these, so a caller can tell a
// config mistake from any other failure with errors.As.
type Error struct {
	// Key is the config key, with list indexes: "routes[1].payload".
	// Empty when the problem is with a whole file.
	Key string
	// Value is the offending value as given; "(redacted)" for secrets.
	Value string
	// Problem says what is wrong: "is not valid", "is required".
	Problem string
	// Accepted lists or describes what would be accepted, if that is known.
	Accepted string
	// Origin is where the value came from, when known: "default",
	// "file signet.yaml", "env SIGNET_LISTEN", "flag --listen".
	Origin string

	// path is Key split into raw segments, used to find Origin after the
	// layers are merged.
	path []string
}

// redactedValue stands in for a secret in Error.Value.
const redactedValue = "(redacted)"

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("config: ")
	switch {
	case e.Key != "":
		b.WriteString(e.Key)
		b.WriteString(": ")
	case e.Origin != "":
		// A problem with a whole file or variable has no key; its origin
		// is the subject and is not repeated at the end.
		b.WriteString(e.Origin)
		b.WriteString(": ")
	}
	switch e.Value {
	case "":
	case redactedValue:
		b.WriteString(redactedValue + " ")
	default:
		b.WriteString(strconv.Quote(e.Value))
		b.WriteString(" ")
	}
	b.WriteString(e.Problem)
	if e.Accepted != "" {
		b.WriteString("; accepted: ")
		b.WriteString(e.Accepted)
	}
	if e.Origin != "" && e.Key != "" {
		b.WriteString(" (from ")
		b.WriteString(e.Origin)
		b.WriteString(")")
	}
	return b.String()
}

// Errors is every problem found in one load or validation, in a stable
// order. It is never returned empty.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find an *Error inside Errors.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// isSecretKey reports whether a key's value must never be echoed.
func isSecretKey(last string) bool {
	return strings.HasSuffix(last, "secret_access_key") || strings.HasSuffix(last, "session_token") || last == "token_code"
}

// isSecretPath reports whether the value at p must never be echoed: a
// secret key, or a wasm module's env value or stdin.
func isSecretPath(p path) bool {
	n := len(p)
	switch {
	case n == 0:
		return false
	case isSecretKey(p[n-1].name):
		return true
	case n >= 2 && p[n-1].name == "stdin" && p[n-2].name == "wasm":
		return true
	}
	return n >= 3 && p[n-1].kind == segKey && p[n-2].name == "env" && p[n-3].name == "wasm"
}

// newError builds an Error for a key path, redacting the value when the
// key holds a secret.
func newError(p path, value, problem, accepted string) *Error {
	if value != "" && isSecretPath(p) {
		value = redactedValue
	}
	return &Error{Key: p.String(), Value: value, Problem: problem, Accepted: accepted, path: p.raw()}
}

// segKind tells how a path segment is written in Error.Key.
type segKind int

const (
	segField segKind = iota // .name
	segIndex                // [2]
	segKey                  // .name, or ["host:port"] under connect_to
)

type seg struct {
	name string
	kind segKind
}

// path is a key path kept in segments, because map keys such as
// "s3.amazonaws.com:80" contain dots and cannot be split back out of a
// joined string.
type path []seg

func (p path) field(name string) path { return p.add(seg{name, segField}) }
func (p path) index(i int) path       { return p.add(seg{strconv.Itoa(i), segIndex}) }
func (p path) key(name string) path   { return p.add(seg{name, segKey}) }

// add never shares the backing array, so sibling paths built from one
// parent stay independent.
func (p path) add(s seg) path {
	out := make(path, len(p), len(p)+1)
	copy(out, p)
	return append(out, s)
}

func (p path) String() string {
	var b strings.Builder
	for i, s := range p {
		switch {
		case s.kind == segIndex:
			b.WriteString("[" + s.name + "]")
		case s.kind == segKey && i > 0 && p[i-1].name == "connect_to":
			b.WriteString("[" + strconv.Quote(s.name) + "]")
		default:
			if i > 0 {
				b.WriteString(".")
			}
			b.WriteString(s.name)
		}
	}
	return b.String()
}

func (p path) raw() []string {
	out := make([]string, len(p))
	for i, s := range p {
		out[i] = s.name
	}
	return out
}
