// Package configs holds signet's configuration schema and loads it from the
// embedded defaults, a config file, SIGNET_* environment variables and
// command-line overrides, in that order of precedence (later wins).
//
// Decoding is strict: an unknown key is an error, because a typo such as
// `paylaod:` must never silently change what gets signed. Every problem is
// reported as an *Error inside an Errors value, so the CLI can tell a config
// mistake (exit status 2) from any other failure.
//
// A *Config returned by Load is a snapshot: nothing in signet mutates it.
// A reload builds and validates a new one.
package configs

import "time"

// Source methods.
const (
	MethodStatic = "static"
	MethodChain  = "chain"
	MethodSTS    = "sts"
	MethodIoT    = "iot"
	MethodWasm   = "wasm"
)

// Payload hash strategies for routes and reverse listeners.
const (
	PayloadAuto     = "auto"
	PayloadUnsigned = "unsigned"
	PayloadSigned   = "signed"
)

// Upstream schemes for routes.
const (
	SchemeHTTPS = "https"
	SchemeHTTP  = "http"
)

// What to do with a request that no route matches.
const (
	UnmatchedForward = "forward"
	UnmatchedDeny    = "deny"
)

// TLS modes of the proxy listener.
const (
	// ProxyTLSOff serves plain HTTP on the proxy listener.
	ProxyTLSOff = "off"
	// ProxyTLSLocal serves a certificate from signet's local CA.
	ProxyTLSLocal = "local"
	// ProxyTLSACME serves a certificate obtained from an ACME CA.
	ProxyTLSACME = "acme"
)

// Log levels and formats.
const (
	LogLevelDebug = "debug"
	LogLevelInfo  = "info"
	LogLevelWarn  = "warn"
	LogLevelError = "error"

	LogFormatText = "text"
	LogFormatJSON = "json"
)

// Config is the whole configuration. The koanf tags are the public key
// names; the yaml, json and toml tags on the nested types exist for Render.
type Config struct {
	// Listen is the forward-proxy address, host:port. Port 0 picks a free port.
	Listen string `koanf:"listen"`
	// StateDir holds the local CA. Load resolves "" from XDG_STATE_HOME or
	// HOME, so a loaded config always has an absolute path here.
	StateDir string `koanf:"state_dir"`
	// ShutdownTimeout is how long requests may drain after SIGINT/SIGTERM.
	ShutdownTimeout time.Duration `koanf:"shutdown_timeout"`

	Log       Log               `koanf:"log"`
	Sources   map[string]Source `koanf:"sources"`
	Routes    []Route           `koanf:"routes"`
	Unmatched string            `koanf:"unmatched"`
	Upstream  Upstream          `koanf:"upstream"`
	Reverse   []Reverse         `koanf:"reverse"`

	Intercept Intercept `koanf:"intercept"`
	ProxyTLS  ProxyTLS  `koanf:"proxy_tls"`
	ProxyAuth ProxyAuth `koanf:"proxy_auth"`

	Admin Admin `koanf:"admin"`
	Cache Cache `koanf:"cache"`
	// Limits bound what clients can make signet hold (limits.go).
	Limits Limits `koanf:"limits"`
}

// Log configures log/slog.
type Log struct {
	Level  string `koanf:"level" yaml:"level" json:"level" toml:"level"`
	Format string `koanf:"format" yaml:"format" json:"format" toml:"format"`
	// Access logs one line per request at info level (method, host, path
	// without query values, status, signing name, region, source,
	// duration, bytes); default true.
	Access bool `koanf:"access" yaml:"access" json:"access" toml:"access"`
}

// Source is a named credential source. Exactly the block that matches
// Method may be set.
type Source struct {
	Method string  `koanf:"method" yaml:"method" json:"method" toml:"method"`
	Static *Static `koanf:"static" yaml:"static,omitempty" json:"static,omitempty" toml:"static,omitempty"`
	Chain  *Chain  `koanf:"chain" yaml:"chain,omitempty" json:"chain,omitempty" toml:"chain,omitempty"`
	STS    *STS    `koanf:"sts" yaml:"sts,omitempty" json:"sts,omitempty" toml:"sts,omitempty"`
	IoT    *IoT    `koanf:"iot" yaml:"iot,omitempty" json:"iot,omitempty" toml:"iot,omitempty"`
	Wasm   *Wasm   `koanf:"wasm" yaml:"wasm,omitempty" json:"wasm,omitempty" toml:"wasm,omitempty"`
	// Refresh says when the source's credentials are refreshed; Load fills
	// every field.
	Refresh Refresh `koanf:"refresh" yaml:"refresh" json:"refresh" toml:"refresh"`
}

// Refresh modes.
const (
	// RefreshDeferred refreshes when a request needs credentials.
	RefreshDeferred = "deferred"
	// RefreshEager refreshes on a timer, so that no request waits.
	RefreshEager = "eager"
)

// Refresh defaults: botocore's advisory and mandatory points.
const (
	DefaultRefreshAdvisory  = 15 * time.Minute
	DefaultRefreshMandatory = 10 * time.Minute
	DefaultRefreshTimeout   = 30 * time.Second
	maxRefreshWindow        = 12 * time.Hour
	maxRefreshTimeout       = 10 * time.Minute
)

// Refresh configures a source's refreshing cache. The windows apply in both
// modes and are scaled down for short-lived credentials (advisory at most
// half the lifetime, mandatory at most a quarter).
type Refresh struct {
	// Mode is RefreshDeferred (default) or RefreshEager.
	Mode string `koanf:"mode" yaml:"mode" json:"mode" toml:"mode"`
	// Advisory is how long before expiry a refresh is first tried while
	// the current keys are still served (default 15m).
	Advisory Duration `koanf:"advisory" yaml:"advisory" json:"advisory" toml:"advisory"`
	// Mandatory is how long before expiry requests wait for a refresh
	// instead (default 10m); at most Advisory.
	Mandatory Duration `koanf:"mandatory" yaml:"mandatory" json:"mandatory" toml:"mandatory"`
	// Timeout bounds one fetch, and so a request's wait for it (default
	// 30s; an MFA prompt's own timeout extends it).
	Timeout Duration `koanf:"timeout" yaml:"timeout" json:"timeout" toml:"timeout"`
}

// Static holds long-lived or pre-fetched credentials.
type Static struct {
	AccessKeyID     string `koanf:"access_key_id" yaml:"access_key_id" json:"access_key_id" toml:"access_key_id"`
	SecretAccessKey string `koanf:"secret_access_key" yaml:"secret_access_key" json:"secret_access_key" toml:"secret_access_key"`
	SessionToken    string `koanf:"session_token" yaml:"session_token,omitempty" json:"session_token,omitempty" toml:"session_token,omitempty"`
}

// Chain selects the AWS SDK default credential chain, optionally with a
// shared-config profile.
type Chain struct {
	Profile string `koanf:"profile" yaml:"profile,omitempty" json:"profile,omitempty" toml:"profile,omitempty"`
}

// Route decides which requests are signed and how. Routes are tried in
// order; the first match wins.
type Route struct {
	// Hosts are lowercase path.Match globs on the hostname without port;
	// '*' also crosses dots.
	Hosts          []string `koanf:"hosts" yaml:"hosts" json:"hosts" toml:"hosts"`
	PathPrefix     string   `koanf:"path_prefix" yaml:"path_prefix,omitempty" json:"path_prefix,omitempty" toml:"path_prefix,omitempty"`
	Source         string   `koanf:"source" yaml:"source" json:"source" toml:"source"`
	Service        string   `koanf:"service" yaml:"service,omitempty" json:"service,omitempty" toml:"service,omitempty"`
	Region         string   `koanf:"region" yaml:"region,omitempty" json:"region,omitempty" toml:"region,omitempty"`
	SigningHost    string   `koanf:"signing_host" yaml:"signing_host,omitempty" json:"signing_host,omitempty" toml:"signing_host,omitempty"`
	Payload        string   `koanf:"payload" yaml:"payload" json:"payload" toml:"payload"`
	UpstreamScheme string   `koanf:"upstream_scheme" yaml:"upstream_scheme" json:"upstream_scheme" toml:"upstream_scheme"`
	// InsecureSkipVerify turns off verification of the upstream's TLS
	// certificate for this route only. The proxy logs a warning at start.
	InsecureSkipVerify bool `koanf:"insecure_skip_verify" yaml:"insecure_skip_verify,omitempty" json:"insecure_skip_verify,omitempty" toml:"insecure_skip_verify,omitempty"`
	// MaxBodyBytes bounds the body of one request this route signs;
	// Load fills in limits.max_body_bytes when it is not set (or 0).
	MaxBodyBytes ByteSize `koanf:"max_body_bytes" yaml:"max_body_bytes,omitempty" json:"max_body_bytes,omitempty" toml:"max_body_bytes,omitempty"`
}

// Upstream configures how signet dials upstreams.
type Upstream struct {
	// ConnectTo maps "host", "host:port" or a glob of either to the
	// "host:port" to dial instead, like curl --connect-to. Keys contain
	// dots, so they are never treated as nested keys.
	ConnectTo map[string]string `koanf:"connect_to" yaml:"connect_to,omitempty" json:"connect_to,omitempty" toml:"connect_to,omitempty"`
	// CAFile is a PEM bundle added to the system roots; the proxy checks
	// that it exists when it starts.
	CAFile string `koanf:"ca_file" yaml:"ca_file,omitempty" json:"ca_file,omitempty" toml:"ca_file,omitempty"`
}

// Reverse is a listener that sends every request to one upstream.
type Reverse struct {
	Listen   string `koanf:"listen" yaml:"listen" json:"listen" toml:"listen"`
	Upstream string `koanf:"upstream" yaml:"upstream" json:"upstream" toml:"upstream"`
	Source   string `koanf:"source" yaml:"source" json:"source" toml:"source"`
	Service  string `koanf:"service" yaml:"service,omitempty" json:"service,omitempty" toml:"service,omitempty"`
	Region   string `koanf:"region" yaml:"region,omitempty" json:"region,omitempty" toml:"region,omitempty"`
	Payload  string `koanf:"payload" yaml:"payload" json:"payload" toml:"payload"`
	// AllowRemote accepts a listen address that is not loopback. A reverse
	// client cannot send proxy credentials, so anyone who can reach such a
	// listener has requests signed with this listener's source.
	AllowRemote bool `koanf:"allow_remote" yaml:"allow_remote,omitempty" json:"allow_remote,omitempty" toml:"allow_remote,omitempty"`
	// MaxBodyBytes bounds the body of one request to this listener; Load
	// fills in limits.max_body_bytes when it is not set (or 0).
	MaxBodyBytes ByteSize `koanf:"max_body_bytes" yaml:"max_body_bytes,omitempty" json:"max_body_bytes,omitempty" toml:"max_body_bytes,omitempty"`
}

// Intercept configures TLS interception of CONNECT requests to hosts that a
// route signs (clients that use signet as HTTPS_PROXY).
type Intercept struct {
	// CacheSize is how many leaf certificates are kept in memory, 1 to
	// 1000000.
	CacheSize int `koanf:"cache_size" yaml:"cache_size" json:"cache_size" toml:"cache_size"`
}

// ProxyTLS configures TLS on the proxy listener itself, for clients whose
// proxy URL is https://.
type ProxyTLS struct {
	// Mode is ProxyTLSOff, ProxyTLSLocal or ProxyTLSACME.
	Mode string `koanf:"mode" yaml:"mode" json:"mode" toml:"mode"`
	// Names are the lowercase DNS names and IP addresses of the listener
	// certificate. With mode local, empty means the proxy picks localhost
	// and the listen host; with mode acme they are required and DNS names
	// only. Empty is always nil.
	Names []string `koanf:"names" yaml:"names,omitempty" json:"names,omitempty" toml:"names,omitempty"`
	// ACME is set exactly when Mode is ProxyTLSACME.
	ACME *ACME `koanf:"acme" yaml:"acme,omitempty" json:"acme,omitempty" toml:"acme,omitempty"`
}

// ACME says where the proxy listener's certificate comes from in mode acme.
type ACME struct {
	// CA is the ACME directory URL: https, or http to a loopback host.
	CA string `koanf:"ca" yaml:"ca" json:"ca" toml:"ca"`
	// Email is an optional contact address given to the CA.
	Email string `koanf:"email" yaml:"email,omitempty" json:"email,omitempty" toml:"email,omitempty"`
	// TrustedRoots is an optional PEM file of roots for the ACME server's
	// own TLS (test CAs such as Pebble); the proxy reads it at start.
	TrustedRoots string `koanf:"trusted_roots" yaml:"trusted_roots,omitempty" json:"trusted_roots,omitempty" toml:"trusted_roots,omitempty"`
}

// ProxyAuth configures authentication of forward-proxy clients
// (Proxy-Authorization: Basic).
type ProxyAuth struct {
	// File holds "user:password" lines, the password plain or a bcrypt
	// hash ($2a$, $2b$, $2y$). The proxy reads it at start; Load does not
	// check that it exists. Required when Listen is not loopback.
	File string `koanf:"file" yaml:"file" json:"file" toml:"file"`
}
