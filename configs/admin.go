package configs

import (
	stdmaps "maps"
	"net"
	"slices"
	"strconv"
	"strings"
)

// AdminOff as admin.listen turns the admin listener off.
const AdminOff = "off"

// Cache policies.
const (
	CacheLRU = "lru"
	CacheLFU = "lfu"
)

// Admin configures the admin listener: health and readiness, Prometheus
// metrics, the state of the sources, and credential endpoints for SDK apps
// beside signet.
type Admin struct {
	// Listen is the admin address, host:port (port 0 picks a free one),
	// or AdminOff (or empty) for no admin listener. Anything but loopback
	// needs Auth.File.
	Listen string `koanf:"listen" yaml:"listen" json:"listen" toml:"listen"`
	// Auth asks every admin request but /healthz and the credential
	// endpoints (which take the token) for Authorization: Basic.
	Auth AdminAuth `koanf:"auth" yaml:"auth" json:"auth" toml:"auth"`
	// TokenFile holds the token that /v1/credentials/NAME requires in
	// Authorization (AWS_CONTAINER_AUTHORIZATION_TOKEN). Empty means signet
	// generates one per run and writes it to <state_dir>/admin-token
	// (0600). signet reads the file at start; Load does not.
	TokenFile string `koanf:"token_file" yaml:"token_file,omitempty" json:"token_file,omitempty" toml:"token_file,omitempty"`
	// IMDS serves an IMDSv2-compatible instance metadata endpoint
	// (/latest/...) on the admin listener, for tools that only know
	// instance metadata. It asks for nothing but a session token anyone
	// on the host can get, so it needs a loopback admin.listen.
	IMDS bool `koanf:"imds" yaml:"imds" json:"imds" toml:"imds"`
	// IMDSSource is the source served as the instance's role. Empty means
	// the source of the first route, else "default".
	IMDSSource string `koanf:"imds_source" yaml:"imds_source,omitempty" json:"imds_source,omitempty" toml:"imds_source,omitempty"`
}

// AdminAuth configures Basic authentication on the admin listener.
type AdminAuth struct {
	// File holds "user:password" lines, as proxy_auth.file does (plain or
	// bcrypt; not readable by others). Required when Listen is not
	// loopback.
	File string `koanf:"file" yaml:"file" json:"file" toml:"file"`
}

// Cache configures signet's bounded caches of per-upstream state (upstream
// transports, resolved signing scopes). Leaf certificates use Policy too;
// their number is intercept.cache_size.
type Cache struct {
	// Policy is CacheLRU (default) or CacheLFU.
	Policy string `koanf:"policy" yaml:"policy" json:"policy" toml:"policy"`
	// MaxSize is how many entries each cache holds, 1 to 1000000.
	MaxSize int `koanf:"max_size" yaml:"max_size" json:"max_size" toml:"max_size"`
}

// Enabled reports whether the admin listener runs.
func (a Admin) Enabled() bool { return a.Listen != AdminOff && a.Listen != "" }

// ResolvedIMDSSource is the source the IMDS endpoint serves.
func (c *Config) ResolvedIMDSSource() string {
	switch {
	case c.Admin.IMDSSource != "":
		return c.Admin.IMDSSource
	case len(c.Routes) > 0:
		return c.Routes[0].Source
	}
	return "default"
}

// validateOps checks admin and cache. It needs the rest of the config for
// the addresses already in use and the declared sources.
func (c *Config) validateOps(root path) Errors {
	var errs Errors
	add := func(e *Error) {
		if e != nil {
			errs = append(errs, e)
		}
	}
	p := root.field("admin")
	a := c.Admin
	if a.Enabled() {
		if e := checkHostPort(p.field("listen"), a.Listen, false, 0); e != nil {
			e.Accepted += ", or off"
			add(e)
		} else {
			host, port, _ := net.SplitHostPort(a.Listen)
			if port != "0" {
				add(c.adminListenCollision(p.field("listen"), host, port))
			}
			if !IsLoopbackHost(host) {
				if a.Auth.File == "" {
					add(newError(p.field("auth").field("file"), "",
						"is required when admin.listen is not a loopback address ("+a.Listen+"): anyone who can reach it would read signet's state and metrics",
						"a file of user:password lines, or bind admin.listen to 127.0.0.1"))
				}
				if a.IMDS {
					add(newError(p.field("imds"), "true",
						"needs a loopback admin.listen (it is "+a.Listen+"): the instance metadata protocol has no credentials a client could present, so anyone who can reach it would get the keys",
						"false, or bind admin.listen to 127.0.0.1"))
				}
			}
		}
	} else if a.IMDS {
		add(newError(p.field("imds"), "true", "is set but admin.listen is off", "false, or an admin.listen address like 127.0.0.1:8081"))
	}
	// An empty imds_source takes the first route's source, which the
	// route's own check covers.
	if name := a.IMDSSource; name != "" {
		if _, ok := c.Sources[name]; !ok {
			add(newError(p.field("imds_source"), name, "is not a declared source", "one of the sources: "+strings.Join(slices.Sorted(stdmaps.Keys(c.Sources)), ", ")))
		}
	}
	if strings.ContainsAny(a.TokenFile, "\x00\r\n") {
		add(newError(p.field("token_file"), "", "is not a valid file name", "a path, or empty for a token generated per run"))
	}

	add(oneOf(root.field("cache").field("policy"), c.Cache.Policy, CacheLRU, CacheLFU))
	if c.Cache.MaxSize < minCacheSize || c.Cache.MaxSize > maxCacheSize {
		add(newError(root.field("cache").field("max_size"), strconv.Itoa(c.Cache.MaxSize), "is out of range", cacheSizeAccepted))
	}
	return errs
}

// adminListenCollision refuses an admin address that the proxy or a
// reverse listener also binds: the second bind would fail at start.
func (c *Config) adminListenCollision(p path, host, port string) *Error {
	addr := net.JoinHostPort(host, port)
	same := func(other string) bool {
		h, pt, err := net.SplitHostPort(other)
		return err == nil && pt != "0" && net.JoinHostPort(h, pt) == addr
	}
	if same(c.Listen) {
		return newError(p, c.Admin.Listen, "is already used by listen", "an address no other listener uses, or port 0")
	}
	for i, r := range c.Reverse {
		if same(r.Listen) {
			return newError(p, c.Admin.Listen, "is already used by "+path{}.field("reverse").index(i).field("listen").String(), "an address no other listener uses, or port 0")
		}
	}
	return nil
}
