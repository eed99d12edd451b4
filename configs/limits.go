package configs

import (
	"math"
	"strconv"
	"time"
)

// Limits bound what clients can make signet hold, so that one client (or
// many) cannot exhaust its memory, disk, file descriptors or goroutines.
// Going over a limit gets the client a 4xx or 5xx answer; signet goes on
// serving everyone else. A WebAssembly provider's time and memory are
// bounded per source (wasm.timeout, wasm.memory_limit).
type Limits struct {
	// MaxHeaderBytes bounds the request line and header section of one
	// request (Go's server allows 4 KiB of slack on top); more is
	// answered with 431. Default 64KiB, from 4KiB to 16MiB.
	MaxHeaderBytes ByteSize `koanf:"max_header_bytes" yaml:"max_header_bytes" json:"max_header_bytes" toml:"max_header_bytes"`
	// MaxBodyBytes bounds the body of one request that a route or
	// reverse listener signs, unless the route or listener sets its own;
	// more is answered with 413. Requests passed on unsigned are not
	// limited. Default 5GiB (S3's largest single PUT).
	MaxBodyBytes ByteSize `koanf:"max_body_bytes" yaml:"max_body_bytes" json:"max_body_bytes" toml:"max_body_bytes"`
	// MaxSpoolBytes bounds the request bodies spooled to disk for
	// hashing, all requests together; a body that would go over is
	// answered with 507. Default 4GiB.
	MaxSpoolBytes ByteSize `koanf:"max_spool_bytes" yaml:"max_spool_bytes" json:"max_spool_bytes" toml:"max_spool_bytes"`
	// MaxConnections bounds the open client connections of the proxy and
	// reverse listeners together (tunnels and WebSockets count until they
	// close); a connection over it is answered with 503 and closed.
	// Default 10000, from 1 to 1000000.
	MaxConnections int `koanf:"max_connections" yaml:"max_connections" json:"max_connections" toml:"max_connections"`
	// ReadHeaderTimeout is how long a client may take to send a request's
	// headers (slowloris); default 10s, at most 10m.
	ReadHeaderTimeout Duration `koanf:"read_header_timeout" yaml:"read_header_timeout" json:"read_header_timeout" toml:"read_header_timeout"`
	// IdleTimeout is how long an idle keep-alive connection stays open;
	// default 2m, at most 24h.
	IdleTimeout Duration `koanf:"idle_timeout" yaml:"idle_timeout" json:"idle_timeout" toml:"idle_timeout"`
	// UpstreamResponseHeaderTimeout is how long signet waits for an
	// upstream's response headers once the request is sent; default 16m
	// (a synchronous Lambda invoke may run 15 minutes), at most 24h.
	UpstreamResponseHeaderTimeout Duration `koanf:"upstream_response_header_timeout" yaml:"upstream_response_header_timeout" json:"upstream_response_header_timeout" toml:"upstream_response_header_timeout"`
}

// Limit defaults, the same as configs/default.yaml, for callers that build
// options without a loaded config.
const (
	DefaultMaxHeaderBytes                = 64 * KiB
	DefaultMaxBodyBytes                  = 5 * GiB
	DefaultMaxSpoolBytes                 = 4 * GiB
	DefaultMaxConnections                = 10000
	DefaultReadHeaderTimeout             = 10 * time.Second
	DefaultIdleTimeout                   = 2 * time.Minute
	DefaultUpstreamResponseHeaderTimeout = 16 * time.Minute
)

// Limit bounds. A header limit below a few KiB would refuse ordinary
// signed requests (a session token alone is up to about 2 KiB).
const (
	minMaxHeaderBytes                = 4 * KiB
	maxMaxHeaderBytes                = 16 * MiB
	maxByteLimit                     = ByteSize(math.MaxInt64) // what an int64 length can compare with
	minMaxConnections                = 1
	maxMaxConnections                = 1_000_000
	maxReadHeaderTimeout             = 10 * time.Minute
	maxIdleTimeout                   = 24 * time.Hour
	maxUpstreamResponseHeaderTimeout = 24 * time.Hour
)

const bodyLimitAccepted = "a size more than 0, like 5GiB or 100MiB"

// normalizeBodyLimits gives every route and reverse listener without a
// max_body_bytes of its own the limits' one, so that a loaded config says
// each one's limit outright. A bad limits.max_body_bytes is reported once,
// under its own key.
func (c *Config) normalizeBodyLimits() {
	for i := range c.Routes {
		if c.Routes[i].MaxBodyBytes == 0 {
			c.Routes[i].MaxBodyBytes = c.Limits.MaxBodyBytes
		}
	}
	for i := range c.Reverse {
		if c.Reverse[i].MaxBodyBytes == 0 {
			c.Reverse[i].MaxBodyBytes = c.Limits.MaxBodyBytes
		}
	}
}

// validate checks l; every limit must be set, since zero would refuse
// everything or nothing.
func (l Limits) validate(p path) Errors {
	var errs Errors
	add := func(e *Error) {
		if e != nil {
			errs = append(errs, e)
		}
	}
	if b := l.MaxHeaderBytes; b < minMaxHeaderBytes || b > maxMaxHeaderBytes {
		add(newError(p.field("max_header_bytes"), b.String(), "is out of range", "a size from 4KiB to 16MiB, like 64KiB"))
	}
	add(checkBodyLimit(p.field("max_body_bytes"), l.MaxBodyBytes))
	if b := l.MaxSpoolBytes; b == 0 || b > maxByteLimit {
		add(newError(p.field("max_spool_bytes"), b.String(), "is out of range", "a size more than 0, like 4GiB"))
	}
	if n := l.MaxConnections; n < minMaxConnections || n > maxMaxConnections {
		add(newError(p.field("max_connections"), strconv.Itoa(n), "is out of range", "a whole number from 1 to 1000000"))
	}
	for _, d := range []struct {
		key      string
		v        Duration
		max      time.Duration
		accepted string
	}{
		{"read_header_timeout", l.ReadHeaderTimeout, maxReadHeaderTimeout, "a Go duration like 10s, more than 0 and at most 10m"},
		{"idle_timeout", l.IdleTimeout, maxIdleTimeout, "a Go duration like 2m, more than 0 and at most 24h"},
		{"upstream_response_header_timeout", l.UpstreamResponseHeaderTimeout, maxUpstreamResponseHeaderTimeout, "a Go duration like 16m, more than 0 and at most 24h"},
	} {
		if v := time.Duration(d.v); v <= 0 || v > d.max {
			add(newError(p.field(d.key), v.String(), "is out of range", d.accepted))
		}
	}
	return errs
}

// checkBodyLimit checks a max_body_bytes: limits' own, or a route's or
// reverse listener's after normalize filled it in.
func checkBodyLimit(p path, b ByteSize) *Error {
	if b == 0 || b > maxByteLimit {
		return newError(p, b.String(), "is out of range", bodyLimitAccepted)
	}
	return nil
}
