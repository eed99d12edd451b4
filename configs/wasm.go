package configs

import (
	"errors"
	"fmt"
	stdmaps "maps"
	"math"
	"net"
	pathpkg "path"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Wasm runs a WebAssembly module (a WASI preview1 command) that prints
// credentials in the AWS credential_process JSON format, in a fresh
// sandboxed instance on every refresh. The module gets nothing it is not
// given here: the ABI is in wasmhost/ABI.md.
type Wasm struct {
	// Module is the .wasm file; a relative path is taken from the working
	// directory. signet compiles it once, when it starts.
	Module string `koanf:"module" yaml:"module" json:"module" toml:"module"`
	// SHA256 pins the module: the hex SHA-256 of its bytes (sha256sum).
	// A module that does not match is refused at start.
	SHA256 string `koanf:"sha256" yaml:"sha256,omitempty" json:"sha256,omitempty" toml:"sha256,omitempty"`
	// Args follow argv[0] (the module's file name), as given. They show in
	// `signet check`: put secrets in Env or Stdin instead.
	Args []string `koanf:"args" yaml:"args,omitempty" json:"args,omitempty" toml:"args,omitempty"`
	// Env is the module's whole environment; nothing of signet's own is
	// passed. Values are treated as secrets. Names set through SIGNET_*
	// variables arrive lowercased, like every key there: set env in a
	// file when case matters.
	Env map[string]string `koanf:"env" yaml:"env,omitempty" json:"env,omitempty" toml:"env,omitempty"`
	// Stdin is what the module reads on standard input, then end of file.
	// Treated as a secret.
	Stdin string `koanf:"stdin" yaml:"stdin,omitempty" json:"stdin,omitempty" toml:"stdin,omitempty"`
	// AllowHosts are where the module may send HTTP requests: an exact
	// host (on the scheme's default port), host:port, or *.suffix[:port]
	// (any name ending in .suffix, not suffix itself). Empty means no
	// network at all.
	AllowHosts []string `koanf:"allow_hosts" yaml:"allow_hosts,omitempty" json:"allow_hosts,omitempty" toml:"allow_hosts,omitempty"`
	// AllowHTTP lets the module use plain http as well as https.
	AllowHTTP bool `koanf:"allow_http" yaml:"allow_http,omitempty" json:"allow_http,omitempty" toml:"allow_http,omitempty"`
	// AllowPrivate lets the allowed hosts resolve to loopback, private,
	// link-local and metadata addresses, which are refused otherwise.
	AllowPrivate bool `koanf:"allow_private" yaml:"allow_private,omitempty" json:"allow_private,omitempty" toml:"allow_private,omitempty"`
	// Dir is a host directory the module may read (never write), mounted
	// at DirMount. Empty means no filesystem.
	Dir string `koanf:"dir" yaml:"dir,omitempty" json:"dir,omitempty" toml:"dir,omitempty"`
	// DirMount is the guest path of Dir: absolute, default /config.
	DirMount string `koanf:"dir_mount" yaml:"dir_mount,omitempty" json:"dir_mount,omitempty" toml:"dir_mount,omitempty"`
	// Timeout bounds one run; default 10s, at most 5m and at most the
	// source's refresh.timeout.
	Timeout Duration `koanf:"timeout" yaml:"timeout" json:"timeout" toml:"timeout"`
	// MemoryLimit caps the module's linear memory, default 64MiB, from
	// 1MiB to 4GiB (rounded up to whole 64 KiB pages).
	MemoryLimit ByteSize `koanf:"memory_limit" yaml:"memory_limit" json:"memory_limit" toml:"memory_limit"`
	// RefreshInterval is how long credentials without an Expiration are
	// kept before the module runs again; default 1h, from 1m to 12h.
	RefreshInterval Duration `koanf:"refresh_interval" yaml:"refresh_interval" json:"refresh_interval" toml:"refresh_interval"`
}

// Wasm defaults and limits.
const (
	DefaultWasmTimeout         = 10 * time.Second
	DefaultWasmMemoryLimit     = 64 * MiB
	DefaultWasmRefreshInterval = time.Hour
	DefaultWasmDirMount        = "/config"
	maxWasmTimeout             = 5 * time.Minute
	minWasmMemoryLimit         = 1 * MiB
	maxWasmMemoryLimit         = 4 * GiB // all a wasm32 module can address
	minWasmRefreshInterval     = time.Minute
	maxWasmRefreshInterval     = 12 * time.Hour
	maxWasmStdin               = 64 << 10
)

var sha256RE = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)

const allowHostAccepted = "an exact host like sts.amazonaws.com, host:port like 127.0.0.1:8443, or *.suffix like *.amazonaws.com (with an optional :port)"

func (w *Wasm) normalize() {
	if w.Timeout == 0 {
		w.Timeout = Duration(DefaultWasmTimeout)
	}
	if w.MemoryLimit == 0 {
		w.MemoryLimit = DefaultWasmMemoryLimit
	}
	if w.RefreshInterval == 0 {
		w.RefreshInterval = Duration(DefaultWasmRefreshInterval)
	}
	// Only with a directory: dir_mount alone is a mistake Validate reports.
	if w.Dir != "" && w.DirMount == "" {
		w.DirMount = DefaultWasmDirMount
	}
	// Hex digits in one case, so that the pin compares and renders the
	// same way whichever case sha256sum or the user wrote.
	w.SHA256 = strings.ToLower(w.SHA256)
	if len(w.Args) == 0 {
		w.Args = nil
	}
	if len(w.Env) == 0 {
		w.Env = nil
	}
	if len(w.AllowHosts) == 0 {
		w.AllowHosts = nil
	}
}

func (w *Wasm) validate(p path, refresh Refresh) Errors {
	var errs Errors
	add := func(e *Error) {
		if e != nil {
			errs = append(errs, e)
		}
	}
	if w.Module == "" {
		add(newError(p.field("module"), "", "is required", "the path of a .wasm file, a WASI preview1 command"))
	}
	if w.SHA256 != "" && !sha256RE.MatchString(w.SHA256) {
		add(newError(p.field("sha256"), w.SHA256, "is not a SHA-256", "64 hex digits, as printed by sha256sum MODULE.wasm"))
	}
	for i, a := range w.Args {
		if strings.ContainsRune(a, 0) {
			add(newError(p.field("args").index(i), "", "contains a NUL byte", "text without NUL bytes"))
		}
	}
	for _, k := range slices.Sorted(stdmaps.Keys(w.Env)) {
		// Values are never echoed: env is where secrets go.
		if !envNameRE.MatchString(k) {
			e := newError(p.field("env").key(k), "", "is not a variable name", "names of letters, digits and '_', not starting with a digit, like ROLE_ARN")
			e.Value = k // the name, not the value
			add(e)
		} else if strings.ContainsRune(w.Env[k], 0) {
			add(newError(p.field("env").key(k), "", "contains a NUL byte", "text without NUL bytes"))
		}
	}
	if len(w.Stdin) > maxWasmStdin {
		add(newError(p.field("stdin"), "", "is longer than "+strconv.Itoa(maxWasmStdin)+" bytes", "at most 64 KiB of text"))
	}
	for i, h := range w.AllowHosts {
		add(checkAllowHost(p.field("allow_hosts").index(i), h))
	}
	if len(w.AllowHosts) == 0 {
		for _, f := range []struct {
			name string
			set  bool
		}{{"allow_http", w.AllowHTTP}, {"allow_private", w.AllowPrivate}} {
			if f.set {
				add(newError(p.field(f.name), "true", "is set but allow_hosts is empty, so the module has no network at all",
					"the hosts the module may call in allow_hosts, or remove "+f.name))
			}
		}
	}
	if w.DirMount != "" {
		switch {
		case w.Dir == "":
			add(newError(p.field("dir_mount"), w.DirMount, "is set but dir is not", "remove dir_mount, or set dir to the host directory to mount"))
		case !strings.HasPrefix(w.DirMount, "/") || pathpkg.Clean(w.DirMount) != w.DirMount:
			add(newError(p.field("dir_mount"), w.DirMount, "is not a clean absolute guest path", "a path like /config"))
		}
	}
	if d := time.Duration(w.Timeout); d <= 0 || d > maxWasmTimeout {
		add(newError(p.field("timeout"), d.String(), "is out of range", "a Go duration like 10s, more than 0 and at most 5m"))
	} else if rt := time.Duration(refresh.Timeout); rt > 0 && d > rt {
		add(newError(p.field("timeout"), d.String(), "is longer than refresh.timeout ("+rt.String()+"): the source would give up first",
			"a duration at most refresh.timeout, or a longer refresh.timeout"))
	}
	if m := w.MemoryLimit; m < minWasmMemoryLimit || m > maxWasmMemoryLimit {
		add(newError(p.field("memory_limit"), m.String(), "is out of range", "a size from 1MiB to 4GiB, like 64MiB"))
	}
	if d := time.Duration(w.RefreshInterval); d < minWasmRefreshInterval || d > maxWasmRefreshInterval {
		add(newError(p.field("refresh_interval"), d.String(), "is out of range", "a Go duration from 1m to 12h, like 1h"))
	}
	return errs
}

// checkAllowHost checks one allow_hosts entry in the forms the host's
// matcher knows (wasmhost/ABI.md section 4): host, host:port, *.suffix or
// *.suffix:port, IPv6 in brackets when a port follows.
func checkAllowHost(p path, v string) *Error {
	switch {
	case v == "":
		return newError(p, "", "is empty", allowHostAccepted)
	case strings.Contains(v, "://"):
		return newError(p, v, "is a URL", "the host only: "+allowHostAccepted)
	case strings.ContainsAny(v, "/?#@ \t\r\n"):
		return newError(p, v, "is not a host, host:port or *.suffix", allowHostAccepted)
	}
	host := v
	if h, port, err := net.SplitHostPort(v); err == nil {
		if !validPort(port, 1) {
			return newError(p, v, "has an invalid port", allowHostAccepted)
		}
		host = h
	} else if strings.HasPrefix(v, "[") && strings.HasSuffix(v, "]") {
		host = v[1 : len(v)-1]
	} else if strings.Count(v, ":") == 1 || strings.HasPrefix(v, "[") {
		return newError(p, v, "is not a valid host:port", allowHostAccepted)
	}
	suffix, wildcard := strings.CutPrefix(host, "*.")
	name := strings.TrimSuffix(suffix, ".")
	if net.ParseIP(name) != nil {
		if wildcard {
			return newError(p, v, "is a wildcard over an IP address", allowHostAccepted)
		}
		return nil
	}
	if !validAllowName(name) {
		return newError(p, v, "is not a host, host:port or *.suffix", allowHostAccepted+" (ASCII names: punycode for others)")
	}
	if wildcard && !strings.Contains(name, ".") {
		return newError(p, v, "would allow a whole top-level domain", "a suffix of at least two labels, like *.example.com")
	}
	return nil
}

// validAllowName accepts what the host's matcher does: labels of 1 to 63
// ASCII letters, digits, '-' and '_', at most 253 in all, with a last
// label that is not all digits (that would be a mistyped IP address).
func validAllowName(n string) bool {
	if n == "" || len(n) > 253 || strings.Trim(n[strings.LastIndexByte(n, '.')+1:], "0123456789") == "" {
		return false
	}
	for label := range strings.SplitSeq(n, ".") {
		if label == "" || len(label) > 63 ||
			strings.Trim(label, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != "" {
			return false
		}
	}
	return true
}

func (w *Wasm) clone() *Wasm {
	out := *w
	out.Args = slices.Clone(w.Args)
	out.Env = stdmaps.Clone(w.Env)
	out.AllowHosts = slices.Clone(w.AllowHosts)
	return &out
}

// redact hides what may be a secret: every env value and stdin.
func (w *Wasm) redact() {
	for k := range w.Env {
		w.Env[k] = RedactedValue
	}
	if w.Stdin != "" {
		w.Stdin = RedactedValue
	}
}

// ByteSize is a size in bytes. In a config it is a whole number of bytes
// or a whole number with a unit: B, KiB, MiB, GiB (powers of 1024) or kB,
// MB, GB (powers of 1000), like 64MiB or "128 MB".
type ByteSize uint64

// Binary size units.
const (
	KiB ByteSize = 1 << 10
	MiB ByteSize = 1 << 20
	GiB ByteSize = 1 << 30
)

// String writes b with the largest binary unit that divides it, or in
// bytes: what ParseByteSize reads back to the same value.
func (b ByteSize) String() string {
	for _, u := range []struct {
		size ByteSize
		name string
	}{{GiB, "GiB"}, {MiB, "MiB"}, {KiB, "KiB"}} {
		if b != 0 && b%u.size == 0 {
			return strconv.FormatUint(uint64(b/u.size), 10) + u.name
		}
	}
	return strconv.FormatUint(uint64(b), 10)
}

// MarshalText writes b like String, so every output format carries "64MiB".
func (b ByteSize) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// sizeUnits are the units ParseByteSize knows, lowercased.
var sizeUnits = map[string]uint64{
	"": 1, "b": 1,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30,
	"kb": 1e3, "mb": 1e6, "gb": 1e9,
}

const sizeAccepted = "a whole number of bytes, or with a unit: B, KiB, MiB, GiB, kB, MB, GB, like 64MiB"

// ParseByteSize reads a size such as "64MiB", "128 MB" or "65536".
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, errors.New("is not a size")
	}
	if strings.HasPrefix(t[i:], ".") {
		return 0, errors.New("is not a whole number")
	}
	mult, ok := sizeUnits[strings.ToLower(strings.TrimSpace(t[i:]))]
	if !ok {
		return 0, errors.New("has an unknown unit")
	}
	n, err := strconv.ParseUint(t[:i], 10, 64)
	if err != nil || n > math.MaxUint64/mult {
		return 0, errors.New("is out of range")
	}
	return ByteSize(n * mult), nil
}

// sizeHook reads ByteSize from a number of bytes or a string with a unit.
func sizeHook(_ reflect.Type, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeFor[ByteSize]() {
		return data, nil
	}
	bad := func(problem string) error {
		return &valueError{value: scalarString(data), problem: problem, accepted: sizeAccepted}
	}
	switch v := data.(type) {
	case ByteSize:
		return v, nil
	case string:
		b, err := ParseByteSize(v)
		if err != nil {
			return nil, bad(err.Error())
		}
		return b, nil
	case int:
		if v < 0 {
			return nil, bad("is negative")
		}
		return ByteSize(v), nil
	case int64:
		if v < 0 {
			return nil, bad("is negative")
		}
		return ByteSize(v), nil
	case uint64:
		return ByteSize(v), nil
	case float64:
		switch {
		case v != math.Trunc(v) || math.IsNaN(v):
			return nil, bad("is not a whole number of bytes")
		case v < 0:
			return nil, bad("is negative")
		case v > 1<<53:
			return nil, bad("is out of range")
		}
		return ByteSize(v), nil
	}
	return nil, bad(fmt.Sprintf("must be a size, not %s", describeValue(data)))
}
