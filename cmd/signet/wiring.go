package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/signet-proxy/signet/configs"
	"github.com/signet-proxy/signet/credentials"
	"github.com/signet-proxy/signet/proxy"
	"github.com/signet-proxy/signet/proxy/tlsintercept"
	"github.com/signet-proxy/signet/signer"
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
	level := slog.LevelInfo
	_ = level.UnmarshalText([]byte(cfg.Level)) // validated by configs
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// components are everything built from a config, ready to serve.
type components struct {
	// roots verify upstream and STS certificates (nil: the system's).
	roots     *x509.CertPool
	sources   map[string]*credentials.Refreshing
	intercept *tlsintercept.Interceptor
	acme      *tlsintercept.ACMEListener
	proxy     *proxy.Server
}

func (cs *components) close() {
	for _, s := range cs.sources {
		_ = s.Close()
	}
	if cs.intercept != nil {
		_ = cs.intercept.Close()
	}
	if cs.acme != nil {
		_ = cs.acme.Close()
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
	cs := &components{sources: make(map[string]*credentials.Refreshing)}
	roots, err := upstreamRoots(cfg.Upstream.CAFile)
	if err != nil {
		return nil, err
	}
	cs.roots = roots
	for name, sc := range cfg.Sources {
		p, err := newProvider(ctx, sc, roots, cs.credentialsOf)
		if err != nil {
			cs.close()
			return nil, keyError{"sources." + name, err}
		}
		so := credentials.SourceOptions{
			Method:    sc.Method,
			Mode:      sc.Refresh.Mode,
			Advisory:  time.Duration(sc.Refresh.Advisory),
			Mandatory: time.Duration(sc.Refresh.Mandatory),
			Timeout:   time.Duration(sc.Refresh.Timeout),
			Logger:    log,
		}
		// A provider that runs something slow (an MFA prompt) says how
		// long one fetch may take; the source must not cut it short.
		if t, ok := p.(interface{ Timeout() time.Duration }); ok {
			so.Timeout = max(so.Timeout, t.Timeout())
		}
		cs.sources[name] = credentials.NewSource(name, p, so)
	}
	opts := proxy.Options{
		Listen:        cfg.Listen,
		DenyUnmatched: cfg.Unmatched == "deny",
		Upstream:      proxy.UpstreamOptions{ConnectTo: cfg.Upstream.ConnectTo, RootCAs: roots},
		Signer:        signer.New(signer.Options{SpoolDir: spoolDir(cfg), Logger: log}),
		Logger:        log,
	}
	for _, rc := range cfg.Routes {
		opts.Routes = append(opts.Routes, proxy.Route{
			Hosts:              rc.Hosts,
			PathPrefix:         rc.PathPrefix,
			Source:             cs.sources[rc.Source],
			Scope:              signer.Scope{Service: rc.Service, Region: rc.Region},
			SigningHost:        rc.SigningHost,
			Payload:            signer.PayloadMode(rc.Payload),
			UpstreamScheme:     rc.UpstreamScheme,
			InsecureSkipVerify: rc.InsecureSkipVerify,
		})
		if rc.InsecureSkipVerify {
			log.Warn("upstream TLS verification is off for a route: anyone on the path can read and change its traffic",
				"route", strings.Join(rc.Hosts, ","))
		}
	}
	if cfg.ProxyAuth.File != "" {
		if opts.Auth, err = proxy.LoadBasicAuth(cfg.ProxyAuth.File); err != nil {
			cs.close()
			return nil, keyError{"proxy_auth.file", err}
		}
		if cfg.ProxyTLS.Mode == configs.ProxyTLSOff {
			log.Warn("proxy_auth without proxy_tls: clients send their proxy password in clear text", "listen", cfg.Listen)
		}
	}
	if mode == forServe {
		if err := openIntercept(ctx, cfg, cs, &opts, log); err != nil {
			cs.close()
			return nil, err
		}
	}
	for i, rc := range cfg.Reverse {
		u, err := url.Parse(rc.Upstream)
		if err != nil {
			cs.close()
			return nil, keyError{fmt.Sprintf("reverse[%d].upstream", i), err}
		}
		opts.Reverse = append(opts.Reverse, proxy.Reverse{
			Listen:   rc.Listen,
			Upstream: u,
			Source:   cs.sources[rc.Source],
			Scope:    signer.Scope{Service: rc.Service, Region: rc.Region},
			Payload:  signer.PayloadMode(rc.Payload),
		})
	}
	cs.proxy, err = proxy.New(opts)
	if err != nil {
		cs.close()
		return nil, err
	}
	return cs, nil
}

// credentialsOf reads the keys of another source (role chaining). The
// source is looked up when keys are needed, after provision has built
// them all, so the order in which sources are built does not matter;
// configs has checked that it exists and that no chain loops.
func (cs *components) credentialsOf(name string) func(context.Context) (credentials.Credentials, error) {
	return func(ctx context.Context) (credentials.Credentials, error) {
		s, ok := cs.sources[name]
		if !ok {
			return credentials.Credentials{}, fmt.Errorf("source %s is not built", name)
		}
		return s.Credentials(ctx)
	}
}

func newProvider(ctx context.Context, sc configs.Source, roots *x509.CertPool,
	credentialsOf func(string) func(context.Context) (credentials.Credentials, error)) (credentials.Provider, error) {
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

// spoolDir holds request bodies being hashed; serve creates it, private.
func spoolDir(cfg *configs.Config) string { return filepath.Join(cfg.StateDir, "spool") }

// openIntercept opens (creating on first run) the local CA that signs the
// leaf certificates of intercepted hosts, and of the proxy listener when
// proxy_tls.mode is local.
func openIntercept(ctx context.Context, cfg *configs.Config, cs *components, opts *proxy.Options, log *slog.Logger) error {
	routes := opts.Routes
	listenerNames := map[string]bool{}
	if cfg.ProxyTLS.Mode == configs.ProxyTLSLocal {
		for _, n := range localListenerNames(cfg) {
			listenerNames[strings.ToLower(n)] = true
		}
	}
	ic, err := tlsintercept.Open(ctx, tlsintercept.Options{
		StateDir:  cfg.StateDir,
		CacheSize: cfg.Intercept.CacheSize,
		Allow: func(host string) bool {
			return proxy.SignsHost(routes, host) || listenerNames[strings.ToLower(host)]
		},
		Logger: log,
	})
	if err != nil {
		return keyError{"state_dir", err}
	}
	cs.intercept = ic
	opts.Intercept = ic
	if cfg.ProxyTLS.Mode == configs.ProxyTLSLocal {
		opts.ListenerTLS = ic.ServerConfig()
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
		opts.ListenerTLS = cs.acme.TLSConfig()
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
