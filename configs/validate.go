package configs

import (
	stdmaps "maps"
	"net"
	"net/mail"
	"net/url"
	pathpkg "path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

var (
	// Compiled regexps are read-only after package initialisation.
	sourceNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	// Upper case is allowed because some signing names have it
	// (IoTSecuredTunneling).
	serviceRE = regexp.MustCompile(`^[A-Za-z0-9-]+$`)
	regionRE  = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)
	hostRE    = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)
)

const (
	methodsAccepted  = "static, chain, sts, iot, wasm"
	hostPortAccepted = "host:port with a numeric port 0-65535, like 127.0.0.1:8080"
	regionAccepted   = "a region name like us-east-1 or eu-central-1"
	serviceAccepted  = "a signing name of letters, digits and '-', like s3 or execute-api"
)

// normalize fills defaults that the embedded default cannot supply
// (fields inside list items) and puts values in their canonical form, so
// a loaded Config needs no further interpretation and renders the same way
// it loads.
func (c *Config) normalize() {
	for i := range c.Routes {
		r := &c.Routes[i]
		for j, h := range r.Hosts {
			r.Hosts[j] = strings.ToLower(h)
		}
		if r.Payload == "" {
			r.Payload = PayloadAuto
		}
		if r.UpstreamScheme == "" {
			r.UpstreamScheme = SchemeHTTPS
		}
	}
	for i := range c.Reverse {
		if c.Reverse[i].Payload == "" {
			c.Reverse[i].Payload = PayloadAuto
		}
	}
	c.normalizeBodyLimits()
	if len(c.Routes) == 0 {
		c.Routes = nil
	}
	for i, n := range c.ProxyTLS.Names {
		c.ProxyTLS.Names[i] = strings.ToLower(n)
	}
	if len(c.ProxyTLS.Names) == 0 {
		c.ProxyTLS.Names = nil
	}
	if len(c.Reverse) == 0 {
		c.Reverse = nil
	}
	if c.Upstream.ConnectTo == nil {
		c.Upstream.ConnectTo = map[string]string{}
	}
	if c.Sources == nil {
		c.Sources = map[string]Source{}
	}
	for name, s := range c.Sources {
		if s.STS != nil {
			st := *s.STS
			st.normalize()
			s.STS = &st
		}
		if s.IoT != nil {
			s.IoT = s.IoT.clone()
			s.IoT.normalize()
		}
		if s.Wasm != nil {
			s.Wasm = s.Wasm.clone()
			s.Wasm.normalize()
		}
		s.Refresh.normalize()
		c.Sources[name] = s
	}
}

func (r *Refresh) normalize() {
	if r.Mode == "" {
		r.Mode = RefreshDeferred
	}
	if r.Advisory == 0 {
		r.Advisory = Duration(DefaultRefreshAdvisory)
	}
	if r.Mandatory == 0 {
		r.Mandatory = Duration(min(DefaultRefreshMandatory, time.Duration(r.Advisory)))
	}
	if r.Timeout == 0 {
		r.Timeout = Duration(DefaultRefreshTimeout)
	}
}

func (r Refresh) validate(p path) Errors {
	var errs Errors
	if e := oneOf(p.field("mode"), r.Mode, RefreshDeferred, RefreshEager); e != nil {
		errs = append(errs, e)
	}
	const windowAccepted = "a Go duration like 15m, more than 0 and at most 12h"
	if d := time.Duration(r.Advisory); d <= 0 || d > maxRefreshWindow {
		errs = append(errs, newError(p.field("advisory"), d.String(), "is out of range", windowAccepted))
	}
	if d := time.Duration(r.Mandatory); d <= 0 || d > maxRefreshWindow {
		errs = append(errs, newError(p.field("mandatory"), d.String(), "is out of range", windowAccepted))
	} else if d > time.Duration(r.Advisory) {
		errs = append(errs, newError(p.field("mandatory"), d.String(), "is longer than advisory ("+time.Duration(r.Advisory).String()+"): requests would wait before a refresh is even tried",
			"a duration at most refresh.advisory"))
	}
	if d := time.Duration(r.Timeout); d <= 0 || d > maxRefreshTimeout {
		errs = append(errs, newError(p.field("timeout"), d.String(), "is out of range", "a Go duration like 30s, more than 0 and at most 10m"))
	}
	return errs
}

// resolveStateDir applies the XDG base directory rule; a relative
// XDG_STATE_HOME is ignored, as that specification requires.
func (c *Config) resolveStateDir(environ []string) Errors {
	if c.StateDir != "" {
		return nil
	}
	if x := getenv(environ, "XDG_STATE_HOME"); filepath.IsAbs(x) {
		c.StateDir = filepath.Join(x, "signet")
		return nil
	}
	if h := getenv(environ, "HOME"); h != "" {
		c.StateDir = filepath.Join(h, ".local", "state", "signet")
		return nil
	}
	return Errors{newError(path{}.field("state_dir"), "", "is empty and neither XDG_STATE_HOME nor HOME is set", "an absolute path")}
}

func getenv(environ []string, key string) string {
	var v string
	for _, kv := range environ {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v = val // the last one wins, as in a shell
		}
	}
	return v
}

// Validate reports every problem with c, or nil. It does no I/O: files
// named in the config are checked by whoever opens them.
func (c *Config) Validate() error {
	if errs := c.validate(); len(errs) > 0 {
		return errs
	}
	return nil
}

func (c *Config) validate() Errors {
	var errs Errors
	add := func(e *Error) {
		if e != nil {
			errs = append(errs, e)
		}
	}
	root := path{}

	errs = append(errs, invalidUTF8(reflect.ValueOf(c).Elem(), root)...)

	add(checkHostPort(root.field("listen"), c.Listen, false, 0))
	if !filepath.IsAbs(c.StateDir) {
		add(newError(root.field("state_dir"), c.StateDir, "is not an absolute path", "an absolute path, or empty for $XDG_STATE_HOME/signet"))
	}
	if c.ShutdownTimeout <= 0 {
		add(newError(root.field("shutdown_timeout"), c.ShutdownTimeout.String(), "must be greater than zero", durationAccepted))
	}
	add(oneOf(root.field("log").field("level"), c.Log.Level, LogLevelDebug, LogLevelInfo, LogLevelWarn, LogLevelError))
	add(oneOf(root.field("log").field("format"), c.Log.Format, LogFormatText, LogFormatJSON))
	add(oneOf(root.field("unmatched"), c.Unmatched, UnmatchedForward, UnmatchedDeny))

	for _, name := range slices.Sorted(stdmaps.Keys(c.Sources)) {
		errs = append(errs, validateSource(root.field("sources").key(name), name, c.Sources[name])...)
	}
	errs = append(errs, validateSTSSources(root, c.Sources)...)
	sourceNames := strings.Join(slices.Sorted(stdmaps.Keys(c.Sources)), ", ")
	checkSource := func(p path, name string) {
		if name == "" {
			add(newError(p, "", "is required", "one of the sources: "+sourceNames))
		} else if _, ok := c.Sources[name]; !ok {
			add(newError(p, name, "is not a declared source", "one of the sources: "+sourceNames))
		}
	}

	for i, r := range c.Routes {
		p := root.field("routes").index(i)
		if len(r.Hosts) == 0 {
			add(newError(p.field("hosts"), "", "is required", "a non-empty list of host globs like \"*.amazonaws.com\""))
		}
		for j, h := range r.Hosts {
			add(checkHostGlob(p.field("hosts").index(j), h))
		}
		if r.PathPrefix != "" && !strings.HasPrefix(r.PathPrefix, "/") {
			add(newError(p.field("path_prefix"), r.PathPrefix, "does not start with \"/\"", "a URL path like /bucket/"))
		}
		checkSource(p.field("source"), r.Source)
		add(optionalMatch(p.field("service"), r.Service, serviceRE, serviceAccepted))
		add(optionalMatch(p.field("region"), r.Region, regionRE, regionAccepted))
		if r.SigningHost != "" {
			add(checkHost(p.field("signing_host"), r.SigningHost))
		}
		add(oneOf(p.field("payload"), r.Payload, PayloadAuto, PayloadUnsigned, PayloadSigned))
		add(oneOf(p.field("upstream_scheme"), r.UpstreamScheme, SchemeHTTPS, SchemeHTTP))
		if r.MaxBodyBytes != c.Limits.MaxBodyBytes { // else reported once, for limits
			add(checkBodyLimit(p.field("max_body_bytes"), r.MaxBodyBytes))
		}
	}

	for _, k := range slices.Sorted(stdmaps.Keys(c.Upstream.ConnectTo)) {
		p := root.field("upstream").field("connect_to").key(k)
		add(checkConnectToKey(p, k))
		add(checkHostPort(p, c.Upstream.ConnectTo[k], true, 1))
	}

	// Two listeners on one address would fail at bind time; port 0 picks
	// a fresh port each time, so it never collides.
	used := map[string]string{}
	if h, port, err := net.SplitHostPort(c.Listen); err == nil && port != "0" {
		used[net.JoinHostPort(h, port)] = "listen"
	}
	for i, r := range c.Reverse {
		p := root.field("reverse").index(i)
		if e := checkHostPort(p.field("listen"), r.Listen, false, 0); e != nil {
			add(e)
		} else if h, port, _ := net.SplitHostPort(r.Listen); port != "0" {
			addr := net.JoinHostPort(h, port)
			if other, ok := used[addr]; ok {
				add(newError(p.field("listen"), r.Listen, "is already used by "+other, "an address no other listener uses, or port 0"))
			} else {
				used[addr] = p.field("listen").String()
			}
		}
		add(checkUpstreamURL(p.field("upstream"), r.Upstream))
		checkSource(p.field("source"), r.Source)
		add(optionalMatch(p.field("service"), r.Service, serviceRE, serviceAccepted))
		add(optionalMatch(p.field("region"), r.Region, regionRE, regionAccepted))
		add(oneOf(p.field("payload"), r.Payload, PayloadAuto, PayloadUnsigned, PayloadSigned))
		if r.MaxBodyBytes != c.Limits.MaxBodyBytes {
			add(checkBodyLimit(p.field("max_body_bytes"), r.MaxBodyBytes))
		}
		if h, _, err := net.SplitHostPort(r.Listen); err == nil && !r.AllowRemote && !IsLoopbackHost(h) {
			add(newError(p.field("listen"), r.Listen,
				"is not a loopback address: a reverse listener cannot ask clients for proxy credentials, so anyone who can reach it gets requests signed with source "+strconv.Quote(r.Source),
				"a loopback address like 127.0.0.1:9000, or allow_remote: true on this listener to accept that risk"))
		}
	}

	if c.Intercept.CacheSize < minCacheSize || c.Intercept.CacheSize > maxCacheSize {
		add(newError(root.field("intercept").field("cache_size"), strconv.Itoa(c.Intercept.CacheSize), "is out of range", cacheSizeAccepted))
	}
	errs = append(errs, c.ProxyTLS.validate(root.field("proxy_tls"))...)
	errs = append(errs, c.validateOps(root)...)
	errs = append(errs, c.Limits.validate(root.field("limits"))...)

	// An open forward proxy would sign requests for anyone, so a listener
	// that others can reach must ask for credentials.
	if h, _, err := net.SplitHostPort(c.Listen); err == nil && !IsLoopbackHost(h) && c.ProxyAuth.File == "" {
		add(newError(root.field("proxy_auth").field("file"), "",
			"is required when listen is not a loopback address ("+c.Listen+"): signet would sign requests for anyone who can reach it",
			"a file of user:password lines, or bind listen to 127.0.0.1"))
	}
	return errs
}

const (
	minCacheSize      = 1
	maxCacheSize      = 1_000_000
	cacheSizeAccepted = "a whole number from 1 to 1000000"
)

// IsLoopbackHost reports whether host (without port; brackets around an
// IPv6 address are allowed) is "localhost" (any case) or an address in
// 127.0.0.0/8 (also IPv4-mapped, ::ffff:127.0.0.1) or ::1. An empty host, as in ":8080", means every interface and is not
// loopback; neither is 0.0.0.0 or ::.
func IsLoopbackHost(host string) bool {
	if len(host) > 1 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

const (
	proxyTLSNameAccepted = "a DNS name like signet.example.com, or an IP address"
	acmeNameAccepted     = "a DNS name like signet.example.com (mode acme takes no IP addresses)"
	acmeCAAccepted       = "an absolute https URL of an ACME directory, like https://acme-v02.api.letsencrypt.org/directory (http only to a loopback host)"
)

func (t *ProxyTLS) validate(p path) Errors {
	var errs Errors
	add := func(e *Error) {
		if e != nil {
			errs = append(errs, e)
		}
	}
	if e := oneOf(p.field("mode"), t.Mode, ProxyTLSOff, ProxyTLSLocal, ProxyTLSACME); e != nil {
		// Which names and blocks fit depends on the mode, so a bad mode
		// would only add guesses.
		return Errors{e}
	}
	if t.Mode == ProxyTLSOff && len(t.Names) > 0 {
		add(newError(p.field("names"), "", "is set but proxy_tls.mode is off", "remove names, or set proxy_tls.mode: local or acme"))
	}
	if t.Mode != ProxyTLSACME && t.ACME != nil {
		add(newError(p.field("acme"), "", "is set but proxy_tls.mode is "+t.Mode, "remove the acme block, or set proxy_tls.mode: acme"))
	}
	if t.Mode == ProxyTLSOff {
		return errs
	}
	for i, n := range t.Names {
		switch {
		case n == "":
			add(newError(p.field("names").index(i), "", "is empty", proxyTLSNameAccepted))
		case net.ParseIP(n) != nil:
			if t.Mode == ProxyTLSACME {
				add(newError(p.field("names").index(i), n, "is an IP address", acmeNameAccepted))
			}
		case !validDNSName(n):
			add(newError(p.field("names").index(i), n, "is not a valid DNS name or IP address", proxyTLSNameAccepted))
		}
	}
	if t.Mode != ProxyTLSACME {
		return errs
	}
	if len(t.Names) == 0 {
		add(newError(p.field("names"), "", "is required when mode is acme", "a non-empty list of DNS names the ACME CA can validate, like [signet.example.com]"))
	}
	if t.ACME == nil {
		add(newError(p.field("acme"), "", "is required when mode is acme", "a mapping with ca, the ACME directory URL"))
		return errs
	}
	add(checkACMECA(p.field("acme").field("ca"), t.ACME.CA))
	if e := t.ACME.Email; e != "" {
		if a, err := mail.ParseAddress(e); err != nil || a.Address != e || a.Name != "" {
			add(newError(p.field("acme").field("email"), e, "is not a valid email address", "an address like ops@example.com, or empty"))
		}
	}
	return errs
}

// validDNSName accepts letters, digits and '-' in dot-separated labels of
// 1 to 63 characters, not starting or ending with '-', at most 253 in all,
// with a last label that is not all digits (that would be a mistyped IP
// address): a name a certificate can carry. Wildcards are refused.
func validDNSName(n string) bool {
	if len(n) > 253 || strings.Trim(n[strings.LastIndexByte(n, '.')+1:], "0123456789") == "" {
		return false
	}
	for label := range strings.SplitSeq(n, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		if strings.Trim(label, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") != "" {
			return false
		}
	}
	return true
}

func checkACMECA(p path, v string) *Error {
	if v == "" {
		return newError(p, "", "is required when mode is acme", acmeCAAccepted)
	}
	return checkServiceURL(p, v, serviceURL{
		accepted:  acmeCAAccepted,
		plainRisk: "anyone on the path could read and change what the ACME server sends",
	})
}

// serviceURL says what checkServiceURL accepts besides an absolute https
// URL with a host and no credentials.
type serviceURL struct {
	accepted  string
	noPath    bool   // only "" or "/" as the path
	noQuery   bool   // no query string
	plainRisk string // why plain http is refused off loopback
}

// checkServiceURL checks the URL of a service signet calls itself (STS, an
// ACME CA): https, or http to a loopback host for tests. Credentials in the
// URL are shown redacted.
func checkServiceURL(p path, v string, want serviceURL) *Error {
	u, err := url.Parse(v)
	if err != nil {
		return newError(p, "", "is not a valid URL", want.accepted)
	}
	shown := u.Redacted()
	switch {
	case u.Scheme != SchemeHTTPS && u.Scheme != SchemeHTTP:
		return newError(p, shown, "is not an https URL", want.accepted)
	case u.User != nil:
		return newError(p, shown, "must not contain credentials", want.accepted)
	case u.Opaque != "" || u.Host == "" || u.Hostname() == "":
		return newError(p, shown, "has no host", want.accepted)
	case u.Port() != "" && !validPort(u.Port(), 1):
		return newError(p, shown, "has an invalid port", want.accepted)
	case want.noPath && u.Path != "" && u.Path != "/":
		return newError(p, shown, "has a path", want.accepted)
	case want.noQuery && (u.RawQuery != "" || u.ForceQuery) || u.Fragment != "":
		if want.noQuery {
			return newError(p, shown, "has a query or fragment", want.accepted)
		}
		return newError(p, shown, "has a fragment", want.accepted)
	case u.Scheme == SchemeHTTP && !IsLoopbackHost(u.Hostname()):
		return newError(p, shown, "is plain http to a host that is not loopback, where "+want.plainRisk, want.accepted)
	}
	return nil
}

func validateSource(p path, name string, s Source) Errors {
	var errs Errors
	if !sourceNameRE.MatchString(name) {
		errs = append(errs, newError(p, name, "is not a valid source name", "lowercase letters, digits, '_' and '-', starting with a letter or digit"))
	}
	switch s.Method {
	case MethodStatic:
		if s.Static == nil {
			errs = append(errs, newError(p.field("static"), "", "is required when method is static", "a mapping with access_key_id and secret_access_key"))
		} else {
			if s.Static.AccessKeyID == "" {
				errs = append(errs, newError(p.field("static").field("access_key_id"), "", "is required", ""))
			}
			if s.Static.SecretAccessKey == "" {
				errs = append(errs, newError(p.field("static").field("secret_access_key"), "", "is required", ""))
			}
		}
		if s.Chain != nil {
			errs = append(errs, newError(p.field("chain"), "", "is not allowed when method is static", "remove the chain block, or set method: chain"))
		}
	case MethodChain:
		if s.Static != nil {
			errs = append(errs, newError(p.field("static"), "", "is not allowed when method is chain", "remove the static block, or set method: static"))
		}
	case MethodSTS:
		if s.STS == nil {
			errs = append(errs, newError(p.field("sts"), "", "is required when method is sts", "a mapping with role_arn (or profile)"))
		} else {
			errs = append(errs, s.STS.validate(p.field("sts"))...)
		}
		for _, b := range []struct {
			name string
			set  bool
		}{{"static", s.Static != nil}, {"chain", s.Chain != nil}} {
			if b.set {
				errs = append(errs, newError(p.field(b.name), "", "is not allowed when method is sts", "remove the "+b.name+" block, or set method: "+b.name))
			}
		}
	case MethodIoT:
		if s.IoT == nil {
			errs = append(errs, newError(p.field("iot"), "", "is required when method is iot", "a mapping with endpoint, role_alias, certificate and private_key (or pkcs11)"))
		} else {
			errs = append(errs, s.IoT.validate(p.field("iot"), s.Refresh)...)
		}
		for _, b := range []struct {
			name string
			set  bool
		}{{"static", s.Static != nil}, {"chain", s.Chain != nil}, {"sts", s.STS != nil}} {
			if b.set {
				errs = append(errs, newError(p.field(b.name), "", "is not allowed when method is iot", "remove the "+b.name+" block, or set method: "+b.name))
			}
		}
	case MethodWasm:
		if s.Wasm == nil {
			errs = append(errs, newError(p.field("wasm"), "", "is required when method is wasm", "a mapping with module, the path of a .wasm file"))
		} else {
			errs = append(errs, s.Wasm.validate(p.field("wasm"), s.Refresh)...)
		}
		for _, b := range []struct {
			name string
			set  bool
		}{{"static", s.Static != nil}, {"chain", s.Chain != nil}, {"sts", s.STS != nil}, {"iot", s.IoT != nil}} {
			if b.set {
				errs = append(errs, newError(p.field(b.name), "", "is not allowed when method is wasm", "remove the "+b.name+" block, or set method: "+b.name))
			}
		}
	case "":
		errs = append(errs, newError(p.field("method"), "", "is required", methodsAccepted))
	default:
		errs = append(errs, newError(p.field("method"), s.Method, "is not valid", methodsAccepted))
	}
	errs = append(errs, s.Refresh.validate(p.field("refresh"))...)
	// The iot and wasm cases above report the blocks they refuse
	// themselves.
	if s.STS != nil && s.Method != MethodSTS && s.Method != MethodIoT && s.Method != MethodWasm && s.Method != "" {
		errs = append(errs, newError(p.field("sts"), "", "is not allowed when method is "+s.Method, "remove the sts block, or set method: sts"))
	}
	if s.IoT != nil && s.Method != MethodIoT && s.Method != MethodWasm && s.Method != "" {
		errs = append(errs, newError(p.field("iot"), "", "is not allowed when method is "+s.Method, "remove the iot block, or set method: iot"))
	}
	if s.Wasm != nil && s.Method != MethodWasm && s.Method != "" {
		errs = append(errs, newError(p.field("wasm"), "", "is not allowed when method is "+s.Method, "remove the wasm block, or set method: wasm"))
	}
	return errs
}

func oneOf(p path, v string, accepted ...string) *Error {
	if slices.Contains(accepted, v) {
		return nil
	}
	if v == "" {
		return newError(p, "", "is required", strings.Join(accepted, ", "))
	}
	return newError(p, v, "is not valid", strings.Join(accepted, ", "))
}

func optionalMatch(p path, v string, re *regexp.Regexp, accepted string) *Error {
	if v == "" || re.MatchString(v) {
		return nil
	}
	return newError(p, v, "is not valid", accepted)
}

// checkHostPort accepts host:port with a numeric port of at least
// minPort. An empty host means every interface and is allowed unless
// needHost.
func checkHostPort(p path, v string, needHost bool, minPort int) *Error {
	accepted := hostPortAccepted
	if v == "" {
		return newError(p, "", "is required", accepted)
	}
	host, port, err := net.SplitHostPort(v)
	if err != nil || !validPort(port, minPort) || (host == "" && needHost) || (host != "" && !validHost(host)) {
		return newError(p, v, "is not valid", accepted)
	}
	return nil
}

func validPort(port string, minPort int) bool {
	if port == "" || len(port) > 5 || strings.Trim(port, "0123456789") != "" {
		return false
	}
	n, err := strconv.Atoi(port)
	return err == nil && n >= minPort && n <= 65535
}

func validHost(h string) bool {
	return net.ParseIP(h) != nil || hostRE.MatchString(h)
}

// checkHost accepts host or host:port, as sent in a Host header.
func checkHost(p path, v string) *Error {
	host := v
	if h, port, err := net.SplitHostPort(v); err == nil {
		if !validPort(port, 1) {
			return newError(p, v, "is not valid", "a host or host:port, like bucket.s3.amazonaws.com")
		}
		host = h
	}
	if !validHost(host) {
		return newError(p, v, "is not valid", "a host or host:port, like bucket.s3.amazonaws.com")
	}
	return nil
}

const globAccepted = "a lowercase hostname glob without port, like *.amazonaws.com"

// checkHostGlob uses path.Match syntax, which the proxy matches against
// the lowercased hostname, so an uppercase or port-bearing pattern could
// never match.
func checkHostGlob(p path, g string) *Error {
	if g == "" {
		return newError(p, "", "is empty", globAccepted)
	}
	if _, err := pathpkg.Match(g, ""); err != nil {
		return newError(p, g, "is not a valid glob", globAccepted)
	}
	if g != strings.ToLower(g) || strings.ContainsAny(g, ":/ \t\r\n") {
		return newError(p, g, "is not valid", globAccepted)
	}
	return nil
}

const connectToAccepted = "a lowercase host, host:port or glob of either, like *.s3.us-east-1.amazonaws.com:80"

func checkConnectToKey(p path, k string) *Error {
	host := k
	if strings.HasPrefix(k, "[") || strings.Count(k, ":") == 1 {
		h, port, err := net.SplitHostPort(k)
		if err != nil || !validPort(port, 0) {
			return newError(p, k, "is not a valid key", connectToAccepted)
		}
		host = h
	}
	if net.ParseIP(host) != nil {
		return nil
	}
	if e := checkHostGlob(p, host); e != nil {
		return newError(p, k, "is not a valid key", connectToAccepted)
	}
	return nil
}

func checkUpstreamURL(p path, v string) *Error {
	const accepted = "an absolute http or https URL with a host and no path or query, like https://s3.example.com:9000"
	if v == "" {
		return newError(p, "", "is required", accepted)
	}
	u, err := url.Parse(v)
	if err != nil {
		return newError(p, "", "is not a valid URL", accepted)
	}
	shown := u.Redacted()
	switch {
	case u.Scheme != SchemeHTTP && u.Scheme != SchemeHTTPS:
		return newError(p, shown, "is not an http or https URL", accepted)
	case u.User != nil:
		return newError(p, shown, "must not contain credentials", accepted)
	case u.Opaque != "" || u.Host == "" || u.Hostname() == "":
		return newError(p, shown, "has no host", accepted)
	case u.Path != "" && u.Path != "/":
		return newError(p, shown, "has a path", accepted)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return newError(p, shown, "has a query or fragment", accepted)
	case u.Port() != "" && !validPort(u.Port(), 1):
		return newError(p, shown, "has an invalid port", accepted)
	}
	return nil
}

// invalidUTF8 rejects strings that YAML and JSON cannot carry unchanged,
// so a loaded config always renders to something that loads the same.
func invalidUTF8(v reflect.Value, p path) Errors {
	var errs Errors
	switch v.Kind() {
	case reflect.String:
		if !utf8.ValidString(v.String()) {
			errs = append(errs, newError(p, "", "is not valid UTF-8", ""))
		}
	case reflect.Pointer:
		if !v.IsNil() {
			errs = append(errs, invalidUTF8(v.Elem(), p)...)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			errs = append(errs, invalidUTF8(v.Field(i), p.field(tagOf(v.Type().Field(i))))...)
		}
	case reflect.Slice:
		for i := range v.Len() {
			errs = append(errs, invalidUTF8(v.Index(i), p.index(i))...)
		}
	case reflect.Map:
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		for _, k := range keys {
			if !utf8.ValidString(k.String()) {
				errs = append(errs, newError(p, "", "has a key that is not valid UTF-8", ""))
				continue
			}
			errs = append(errs, invalidUTF8(v.MapIndex(k), p.key(k.String()))...)
		}
	}
	return errs
}
