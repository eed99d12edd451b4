package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/signet-proxy/signet/configs"
	"github.com/signet-proxy/signet/credentials"
	"github.com/signet-proxy/signet/internal/metrics"
	"github.com/signet-proxy/signet/proxy"
	"github.com/signet-proxy/signet/proxy/tlsintercept"
	"github.com/signet-proxy/signet/signer"
	"github.com/signet-proxy/signet/wasmhost"
)

// configFlags are the flags every config-reading command takes.
type configFlags struct {
	file      string
	overrides map[string]string
}

func (cf *configFlags) register(fs *flag.FlagSet) {
	cf.overrides = make(map[string]string)
	fs.StringVar(&cf.file, "c", "", "config `file` (YAML, TOML or JSON); the embedded default when empty")
	fs.StringVar(&cf.file, "config", "", "same as -c")
	for _, o := range []struct{ flag, key, usage string }{
		{"listen", "listen", "proxy listen `address` (overrides the config)"},
		{"log-level", "log.level", "log `level`: debug, info, warn, error"},
		{"log-format", "log.format", "log `format`: text or json"},
		{"state-dir", "state_dir", "state `directory`"},
	} {
		fs.Func(o.flag, o.usage, func(v string) error { cf.overrides[o.key] = v; return nil })
	}
}

func (cf *configFlags) load(c *cli) (*configs.Config, error) {
	return configs.Load(configs.LoadOptions{File: cf.file, Environ: c.environ, Overrides: cf.overrides})
}

// keyError is a config value that validated but failed when signet opened
// what it names (a file, a profile): still the config's fault, so exit 2.
type keyError struct {
	key string
	err error
}

func (e keyError) Error() string { return "config: " + e.key + ": " + e.err.Error() }
func (e keyError) Unwrap() error { return e.err }

func isConfigError(err error) bool {
	var one *configs.Error
	var many configs.Errors
	var ke keyError
	return errors.As(err, &one) || errors.As(err, &many) || errors.As(err, &ke)
}

// parseFlags parses args and refuses stray positional arguments.
func parseFlags(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return usageError{fmt.Errorf("%s flags:\n%s", fs.Name(), flagUsage(fs))}
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}

func flagUsage(fs *flag.FlagSet) string {
	var b strings.Builder
	fs.SetOutput(&b)
	fs.PrintDefaults()
	return b.String()
}

func newLogger(w io.Writer, cfg configs.Log) *slog.Logger {
	return newLevelLogger(w, cfg, new(slog.LevelVar))
}

// newLevelLogger is newLogger with its level in level, set from cfg, so
// that a reload can change it.
func newLevelLogger(w io.Writer, cfg configs.Log, level *slog.LevelVar) *slog.Logger {
	level.Set(logLevel(cfg.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// logLevel is the slog level of a validated log.level.
func logLevel(name string) slog.Level {
	level := slog.LevelInfo
	_ = level.UnmarshalText([]byte(name)) // validated by configs
	return level
}

// components are everything built from a config, ready to serve.
type components struct {
	// roots verify upstream and STS certificates (nil: the system's).
	roots     *x509.CertPool
	sources   map[string]*credentials.Refreshing
	intercept *tlsintercept.Interceptor
	acme      *tlsintercept.ACMEListener
	proxy     *proxy.Server
	// wasm runs the wasm sources' modules; nil when there are none.
	wasm *wasmhost.Host

	// What a reload builds the next proxy options from; the listener's
	// TLS and the interceptor live as long as the process.
	log         *slog.Logger
	metrics     *metrics.Metrics // nil: nothing recorded
	accessLog   *slog.Logger     // nil: access lines go to log
	signer      *signer.Signer
	listenerTLS *tls.Config
}

func (cs *components) close() {
	closeSources(cs.sources)
	if cs.wasm != nil {
		_ = cs.wasm.Close(context.Background())
	}
	if cs.intercept != nil {
		_ = cs.intercept.Close()
	}
	if cs.acme != nil {
		_ = cs.acme.Close()
	}
}

func closeSources(sources map[string]*credentials.Refreshing) {
	for _, s := range sources {
		_ = s.Close()
	}
}

// provisionMode says how far provision goes: check must not create the CA
// or touch the state directory; serve opens everything.
type provisionMode int

const (
	forCheck provisionMode = iota
	forServe
)

// provision opens what the config names (files, profiles) so that a broken
// reference fails at start, not on the first request. It binds nothing.
func provision(ctx context.Context, cfg *configs.Config, log *slog.Logger, mode provisionMode) (*components, error) {
	return provisionWith(ctx, cfg, log, mode, observers{})
}

// observers are what a serving signet records into: metrics (nil: none)
// and the access log (nil: the main log).
type observers struct {
	metrics   *metrics.Metrics
	accessLog *slog.Logger
}

// provisionWith is provision with every source's fetches and every
// request recorded in obs.
func provisionWith(ctx context.Context, cfg *configs.Config, log *slog.Logger, mode provisionMode, obs observers) (*components, error) {
	m := obs.metrics
	cs := &components{sources: make(map[string]*credentials.Refreshing), log: log, metrics: m, accessLog: obs.accessLog}
	roots, err := upstreamRoots(cfg.Upstream.CAFile)
	if err != nil {
		return nil, err
	}
	cs.roots = roots
	if cs.wasm, err = openWasmHost(ctx, cfg, roots, log, mode); err != nil {
		return nil, err
	}
	deps := sourceDeps{roots: roots, wasm: cs.wasm, log: log, metrics: m}
	if err := buildSources(ctx, cfg, deps, cs.sources, slices.Sorted(maps.Keys(cfg.Sources))); err != nil {
		cs.close()
		return nil, err
	}
	cs.signer = signer.New(signer.Options{SpoolDir: spoolDir(cfg), MaxSpoolBytes: byteLimit(cfg.Limits.MaxSpoolBytes), Logger: log})
	if mode == forServe {
		if err := openIntercept(ctx, cfg, cs, log); err != nil {
			cs.close()
			return nil, err
		}
	}
	opts, err := cs.proxyOptions(cfg, cs.sources, roots)
	if err != nil {
		cs.close()
		return nil, err
	}
	if cs.proxy, err = proxy.New(opts); err != nil {
		cs.close()
		return nil, err
	}
	return cs, nil
}

// sourceDeps are what building a source needs besides its config.
type sourceDeps struct {
	roots   *x509.CertPool
	wasm    *wasmhost.Host
	log     *slog.Logger
	metrics *metrics.Metrics
}

// buildSources builds the sources of cfg named in names into sources,
// which may already hold others (a reload's unchanged sources). Role
// chaining looks a source up in sources when keys are needed, so the order
// does not matter. On an error, the sources built by this call are closed
// and removed again.
func buildSources(ctx context.Context, cfg *configs.Config, deps sourceDeps, sources map[string]*credentials.Refreshing, names []string) error {
	var built []string
	for _, name := range names {
		sc := cfg.Sources[name]
		p, err := newProvider(ctx, name, sc, deps.roots, credentialsFrom(sources), deps.wasm, deps.log)
		if err != nil {
			for _, b := range built {
				_ = sources[b].Close()
				delete(sources, b)
			}
			if _, ok := errors.AsType[keyError](err); ok {
				return err // names a key inside the source already
			}
			return keyError{"sources." + name, err}
		}
		so := credentials.SourceOptions{
			Method:    sc.Method,
			Mode:      sc.Refresh.Mode,
			Advisory:  time.Duration(sc.Refresh.Advisory),
			Mandatory: time.Duration(sc.Refresh.Mandatory),
			Timeout:   time.Duration(sc.Refresh.Timeout),
			Logger:    deps.log,
		}
		// A provider that runs something slow (an MFA prompt) says how
		// long one fetch may take; the source must not cut it short.
		if t, ok := p.(interface{ Timeout() time.Duration }); ok {
			so.Timeout = max(so.Timeout, t.Timeout())
		}
		sources[name] = credentials.NewSource(name, deps.metrics.InstrumentProvider(name, sc.Method, p), so)
		built = append(built, name)
	}
	return nil
}

// proxyOptions builds the proxy's options from cfg, with the routes and
// reverse listeners signing with sources. serve's start and every reload
// build them here, so a reloaded config means exactly what it would at
// start.
func (cs *components) proxyOptions(cfg *configs.Config, sources map[string]*credentials.Refreshing, roots *x509.CertPool) (proxy.Options, error) {
	log := cs.log
	opts := proxy.Options{
		Listen:        cfg.Listen,
		DenyUnmatched: cfg.Unmatched == configs.UnmatchedDeny,
		Upstream: proxy.UpstreamOptions{ConnectTo: cfg.Upstream.ConnectTo, RootCAs: roots,
			ResponseHeaderTimeout: time.Duration(cfg.Limits.UpstreamResponseHeaderTimeout)},
		Signer:       cs.signer,
		Logger:       log,
		ListenerTLS:  cs.listenerTLS,
		Metrics:      cs.metrics,
		CachePolicy:  cfg.Cache.Policy,
		CacheMaxSize: cfg.Cache.MaxSize,
		Limits: proxy.Limits{
			MaxHeaderBytes:    int(byteLimit(cfg.Limits.MaxHeaderBytes)),
			MaxConnections:    cfg.Limits.MaxConnections,
			ReadHeaderTimeout: time.Duration(cfg.Limits.ReadHeaderTimeout),
			IdleTimeout:       time.Duration(cfg.Limits.IdleTimeout),
		},
	}
	if cfg.Log.Access {
		opts.AccessLog = log
		if cs.accessLog != nil {
			opts.AccessLog = cs.accessLog
		}
	}
	if cs.intercept != nil {
		// Only when open: a nil *Interceptor in the interface would not
		// be nil.
		opts.Intercept = cs.intercept
	}
	for _, rc := range cfg.Routes {
		opts.Routes = append(opts.Routes, proxy.Route{
			Hosts:              rc.Hosts,
			PathPrefix:         rc.PathPrefix,
			Source:             sources[rc.Source],
			Scope:              signer.Scope{Service: rc.Service, Region: rc.Region},
			SigningHost:        rc.SigningHost,
			Payload:            signer.PayloadMode(rc.Payload),
			UpstreamScheme:     rc.UpstreamScheme,
			InsecureSkipVerify: rc.InsecureSkipVerify,
			MaxBodyBytes:       byteLimit(rc.MaxBodyBytes),
		})
		if rc.InsecureSkipVerify {
			log.Warn("upstream TLS verification is off for a route: anyone on the path can read and change its traffic",
				"route", strings.Join(rc.Hosts, ","))
		}
	}
	if cfg.ProxyAuth.File != "" {
		auth, err := proxy.LoadBasicAuth(cfg.ProxyAuth.File)
		if err != nil {
			return proxy.Options{}, keyError{"proxy_auth.file", err}
		}
		opts.Auth = auth
		if cfg.ProxyTLS.Mode == configs.ProxyTLSOff {
			log.Warn("proxy_auth without proxy_tls: clients send their proxy password in clear text", "listen", cfg.Listen)
		}
	}
	for i, rc := range cfg.Reverse {
		u, err := url.Parse(rc.Upstream)
		if err != nil {
			return proxy.Options{}, keyError{fmt.Sprintf("reverse[%d].upstream", i), err}
		}
		opts.Reverse = append(opts.Reverse, proxy.Reverse{
			Listen:       rc.Listen,
			Upstream:     u,
			Source:       sources[rc.Source],
			Scope:        signer.Scope{Service: rc.Service, Region: rc.Region},
			Payload:      signer.PayloadMode(rc.Payload),
			MaxBodyBytes: byteLimit(rc.MaxBodyBytes),
		})
	}
	return opts, nil
}

// credentialsFrom reads the keys of another source in sources (role
// chaining). The source is looked up when keys are needed, after every
// source is built; configs has checked that it exists and that no chain
// loops. A reload carries a chained source over only with the source it
// chains from, so the map a carried source looks in holds the same one.
func credentialsFrom(sources map[string]*credentials.Refreshing) func(string) func(context.Context) (credentials.Credentials, error) {
	return func(name string) func(context.Context) (credentials.Credentials, error) {
		return func(ctx context.Context) (credentials.Credentials, error) {
			s, ok := sources[name]
			if !ok {
				return credentials.Credentials{}, fmt.Errorf("source %s is not built", name)
			}
			return s.Credentials(ctx)
		}
	}
}

func newProvider(ctx context.Context, name string, sc configs.Source, roots *x509.CertPool,
	credentialsOf func(string) func(context.Context) (credentials.Credentials, error),
	wasm *wasmhost.Host, log *slog.Logger) (credentials.Provider, error) {
	switch sc.Method {
	case configs.MethodStatic:
		if sc.Static == nil {
			return nil, errors.New("method static needs a static block")
		}
		return credentials.NewStatic(sc.Static.AccessKeyID, sc.Static.SecretAccessKey, sc.Static.SessionToken)
	case configs.MethodChain:
		var profile string
		if sc.Chain != nil {
			profile = sc.Chain.Profile
		}
		return credentials.NewChain(ctx, credentials.ChainOptions{Profile: profile})
	case configs.MethodSTS:
		return newSTSProvider(ctx, sc.STS, roots, credentialsOf)
	case configs.MethodIoT:
		return newIoTProvider(sc.IoT, roots, pkcs11Signer)
	case configs.MethodWasm:
		return newWasmProvider(ctx, wasm, name, sc.Wasm, log)
	default:
		return nil, fmt.Errorf("method %q is not available in this build", sc.Method)
	}
}

// upstreamRoots is the system pool plus upstream.ca_file: a private CA adds
// to the public ones rather than replacing them.
func upstreamRoots(caFile string) (*x509.CertPool, error) {
	if caFile == "" {
		return nil, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	return addPEMFile(pool, "upstream.ca_file", caFile)
}

// addPEMFile adds the certificates of the PEM file that config key names.
func addPEMFile(pool *x509.CertPool, key, file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, keyError{key, err}
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, keyError{key, fmt.Errorf("%s holds no PEM certificate", file)}
	}
	return pool, nil
}

// byteLimit is a validated size limit as an int64 (configs keeps every
// limit at most math.MaxInt64).
func byteLimit(b configs.ByteSize) int64 { return int64(min(b, math.MaxInt64)) }

// spoolDir holds request bodies being hashed; serve creates it, private.
func spoolDir(cfg *configs.Config) string { return filepath.Join(cfg.StateDir, "spool") }

// openIntercept opens (creating on first run) the local CA that signs the
// leaf certificates of intercepted hosts, and of the proxy listener when
// proxy_tls.mode is local.
func openIntercept(ctx context.Context, cfg *configs.Config, cs *components, log *slog.Logger) error {
	listenerNames := map[string]bool{}
	if cfg.ProxyTLS.Mode == configs.ProxyTLSLocal {
		for _, n := range localListenerNames(cfg) {
			listenerNames[strings.ToLower(n)] = true
		}
	}
	ic, err := tlsintercept.Open(ctx, tlsintercept.Options{
		StateDir:    cfg.StateDir,
		CacheSize:   cfg.Intercept.CacheSize,
		CachePolicy: cfg.Cache.Policy,
		// The routes in force: a host a reload adds is intercepted
		// too. Asked only in handshakes, once the proxy serves.
		Allow: func(host string) bool {
			return cs.proxy != nil && cs.proxy.SignsHost(host) || listenerNames[strings.ToLower(host)]
		},
		Logger: log,
	})
	if err != nil {
		return keyError{"state_dir", err}
	}
	cs.intercept = ic
	if cfg.ProxyTLS.Mode == configs.ProxyTLSLocal {
		cs.listenerTLS = ic.ServerConfig()
	}
	if cfg.ProxyTLS.Mode == configs.ProxyTLSACME && cfg.ProxyTLS.ACME != nil {
		ac := cfg.ProxyTLS.ACME
		var roots *x509.CertPool
		if ac.TrustedRoots != "" {
			if roots, err = addPEMFile(x509.NewCertPool(), "proxy_tls.acme.trusted_roots", ac.TrustedRoots); err != nil {
				return err
			}
		}
		// The challenge address is the proxy's: until the proxy binds it,
		// certmagic answers TLS-ALPN-01 there itself.
		cs.acme, err = tlsintercept.OpenACME(ctx, tlsintercept.ACMEOptions{StateDir: cfg.StateDir,
			Names: cfg.ProxyTLS.Names, CA: ac.CA, Email: ac.Email, TrustedRoots: roots,
			ChallengeAddr: cfg.Listen, Logger: log})
		if err != nil {
			return err
		}
		cs.listenerTLS = cs.acme.TLSConfig()
	}
	return nil
}

// localListenerNames are the names the proxy listener's own certificate
// covers: the configured ones, else localhost and the listen host.
func localListenerNames(cfg *configs.Config) []string {
	if len(cfg.ProxyTLS.Names) > 0 {
		return cfg.ProxyTLS.Names
	}
	names := []string{"localhost"}
	if host, _, err := net.SplitHostPort(cfg.Listen); err == nil && host != "" && host != "localhost" {
		// A certificate for 0.0.0.0 or :: would name no address a
		// client can dial.
		if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
			names = append(names, strings.ToLower(host))
		}
	}
	return names
}

// newSTSProvider builds the sts provider: its MFA command, the source whose
// keys call STS (if any), and the roots for STS's certificate (the system
// ones plus upstream.ca_file; nil means the system's).
func newSTSProvider(ctx context.Context, c *configs.STS, roots *x509.CertPool,
	credentialsOf func(string) func(context.Context) (credentials.Credentials, error)) (credentials.Provider, error) {
	if c == nil {
		return nil, errors.New("method sts needs an sts block")
	}
	var err error
	opts := credentials.STSOptions{
		RoleARN:           c.RoleARN,
		RoleSessionName:   c.RoleSessionName,
		Duration:          time.Duration(c.Duration),
		ExternalID:        c.ExternalID,
		Policy:            c.Policy,
		PolicyARNs:        c.PolicyARNs,
		Tags:              c.Tags,
		TransitiveTagKeys: c.TransitiveTagKeys,
		SourceIdentity:    c.SourceIdentity,
		SerialNumber:      c.SerialNumber,
		TokenCode:         c.TokenCode,
		Region:            c.Region,
		Endpoint:          c.Endpoint,
		Profile:           c.Profile,
		RootCAs:           roots,
	}
	if c.MFA != nil {
		if opts.MFA, err = credentials.NewMFACommand(c.MFA.Command, credentials.MFAOptions{
			Timeout: time.Duration(c.MFA.Timeout),
			Env:     c.MFA.Env,
		}); err != nil {
			return nil, err
		}
	}
	if c.Source != "" {
		opts.Base = credentialsOf(c.Source)
	}
	return credentials.NewSTS(ctx, opts)
}
