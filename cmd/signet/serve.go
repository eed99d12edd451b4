package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"time"

	"github.com/signet-proxy/signet/configs"
	"github.com/signet-proxy/signet/credentials"
	"github.com/signet-proxy/signet/internal/metrics"
	"github.com/signet-proxy/signet/proxy"
	"github.com/signet-proxy/signet/proxy/admin"
)

// configPollInterval is how often serve looks at its config file for a
// change to reload.
const configPollInterval = time.Second

func runServe(ctx context.Context, c *cli, args []string) error {
	// Subscribed first: until then a SIGHUP would kill the process, its
	// default action.
	hup := make(chan os.Signal, 1)
	if sigs := reloadSignals(); len(sigs) > 0 {
		// Never with none: that would relay every signal.
		signal.Notify(hup, sigs...)
		defer signal.Stop(hup)
	}

	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var cf configFlags
	cf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	// The file's content as it was before the load: a change made while
	// signet starts is then seen as a change, and reloaded.
	fileSum, _ := fileDigest(cf.file)
	cfg, err := cf.load(c)
	if err != nil {
		return err
	}
	level := new(slog.LevelVar)
	log := newLevelLogger(c.stderr, cfg.Log, level)
	// A request allocates a few KiB and the live heap stays small, so at
	// the default GOGC the collector runs many times a second for little;
	// 400 saves about 7% of the CPU per request. GOGC in the environment
	// still wins.
	if _, set := lookupEnv(c.environ, "GOGC"); !set {
		debug.SetGCPercent(400)
	}
	if err := os.MkdirAll(spoolDir(cfg), 0o700); err != nil {
		return fmt.Errorf("state_dir: create spool directory: %w", err)
	}
	// One line per request: batched, since a write per line costs more
	// than the rest of the logging. Closed (flushed) after serving ends.
	accessBuf := proxy.NewLineBuffer(c.stderr)
	defer accessBuf.Close()
	m := metrics.New(metrics.Options{Logger: log})
	cs, err := provisionWith(ctx, cfg, log, forServe, observers{metrics: m, accessLog: newLevelLogger(accessBuf, cfg.Log, level)})
	if err != nil {
		return err
	}
	defer cs.close()
	rl := newReloader(cs, cfg, level, cf.file, c.environ, func() (*configs.Config, error) { return cf.load(c) })
	// Deferred after cs.close, so it runs before: once it returns, no
	// reload touches cs.
	defer rl.close()
	rl.fileSum.Store(&fileSum)
	m.SetSources(rl.states)

	var adm *adminListener
	if cfg.Admin.Enabled() {
		if adm, err = openAdmin(ctx, cfg, cs, m, rl, c.environ); err != nil {
			return err
		}
		defer adm.srv.Close()
		rl.admin = adm.h
	}
	if err := cs.proxy.Listen(ctx); err != nil {
		return err
	}
	for _, src := range cs.sources {
		src.Start() // eager sources fetch now and before each expiry
	}
	log.Info("signet started", "version", versionString(), "config", configName(cf.file), "routes", len(cfg.Routes), "sources", len(cfg.Sources))

	// Reloads run in this goroutine's children until serving ends.
	reloadCtx, stopReloads := context.WithCancel(ctx)
	defer stopReloads()
	go rl.onSignals(reloadCtx, hup)
	if cf.file != "" {
		go rl.watchFile(reloadCtx, cf.file, configPollInterval)
	}

	if err := serveAll(ctx, cs.proxy, adm, cfg.ShutdownTimeout, log); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	log.Info("signet stopped")
	return nil
}

// serveAll serves the proxy and the admin listener (adm may be nil) until
// ctx ends or one of them fails. On the way out /readyz turns 503 first,
// so that a load balancer stops sending work, then the proxy drains for
// drain; the admin listener, still answering probes meanwhile, closes
// last.
func serveAll(ctx context.Context, p *proxy.Server, adm *adminListener, drain time.Duration, log *slog.Logger) error {
	proxyCtx, stopProxy := context.WithCancel(context.WithoutCancel(ctx))
	defer stopProxy()
	adminCtx, stopAdmin := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAdmin()

	proxyDone := make(chan error, 1)
	go func() { proxyDone <- p.Serve(proxyCtx, drain) }()
	adminDone := make(chan error, 1)
	if adm != nil {
		go func() { adminDone <- adm.srv.Serve(adminCtx, drain) }()
	}

	var proxyErr, adminErr error
	proxyEnded := false
	select {
	case <-ctx.Done():
	case proxyErr = <-proxyDone:
		proxyEnded = true
	case adminErr = <-adminDone:
		log.Error("admin listener failed, stopping", "error", adminErr)
		adm = nil // ended already
	}
	if adm != nil {
		adm.h.SetDraining()
	}
	stopProxy()
	if !proxyEnded {
		proxyErr = <-proxyDone
	}
	stopAdmin()
	if adm != nil {
		adminErr = <-adminDone
	}
	return errors.Join(proxyErr, adminErr)
}

// adminListener is the admin API and the listener serving it.
type adminListener struct {
	h   *admin.Handler
	srv *admin.Server
	// tokenFile holds the credential endpoints' token.
	tokenFile string
}

// openAdmin builds the admin API for cfg and binds its listener.
func openAdmin(ctx context.Context, cfg *configs.Config, cs *components, m *metrics.Metrics, rl *reloader, environ []string) (*adminListener, error) {
	var auth admin.PasswordChecker
	if cfg.Admin.Auth.File != "" {
		// Assigned only when loaded: a nil *BasicAuth in the interface
		// would not be nil, and would be asked.
		a, err := proxy.LoadBasicAuth(cfg.Admin.Auth.File)
		if err != nil {
			return nil, keyError{"admin.auth.file", err}
		}
		auth = a
	}
	tok, tokFile, err := admin.LoadOrCreateToken(cfg.Admin.TokenFile, cfg.StateDir)
	if err != nil {
		key := "state_dir"
		if cfg.Admin.TokenFile != "" {
			key = "admin.token_file"
		}
		return nil, keyError{key, err}
	}
	rl.setWhoami(whoamiOptions(cfg, cs.roots, environ))
	h, err := admin.New(admin.Options{
		Catalog: catalogOf(cfg, cs.sources),
		Token:   tok,
		Auth:    auth,
		Metrics: m.Handler(),
		Whoami:  rl.whoami,
		IMDS:    cfg.Admin.IMDS,
		Logger:  cs.log,
	})
	if err != nil {
		return nil, keyError{"admin", err}
	}
	srv, err := admin.ListenWith(ctx, cfg.Admin.Listen, h, cs.log, admin.Limits{
		ReadHeaderTimeout: time.Duration(cfg.Limits.ReadHeaderTimeout),
		MaxHeaderBytes:    int(byteLimit(cfg.Limits.MaxHeaderBytes)),
	})
	if err != nil {
		return nil, err
	}
	return &adminListener{h: h, srv: srv, tokenFile: tokFile}, nil
}

// catalogOf is what the admin API serves of cfg's sources: /readyz waits
// for those a route or reverse listener signs with.
func catalogOf(cfg *configs.Config, sources map[string]*credentials.Refreshing) admin.Catalog {
	cat := admin.Catalog{Sources: make(map[string]credentials.Source, len(sources)), IMDSSource: cfg.ResolvedIMDSSource()}
	for name, s := range sources {
		cat.Sources[name] = s
	}
	for _, r := range cfg.Routes {
		cat.Required = append(cat.Required, r.Source)
	}
	for _, r := range cfg.Reverse {
		cat.Required = append(cat.Required, r.Source)
	}
	return cat
}

// whoamiOptions say where /v1/whoami asks STS. Any STS endpoint answers
// for any keys, so a private one in the config (perhaps the only one signet
// can reach, behind a VPC endpoint) is used when every sts source that
// names one names the same.
func whoamiOptions(cfg *configs.Config, roots *x509.CertPool, environ []string) credentials.WhoamiOptions {
	opts := credentials.WhoamiOptions{RootCAs: roots}
	opts.Region, _ = lookupEnv(environ, "AWS_REGION")
	var endpoints []*configs.STS
	for _, name := range slices.Sorted(maps.Keys(cfg.Sources)) {
		st := cfg.Sources[name].STS
		if st != nil && st.Endpoint != "" && !slices.ContainsFunc(endpoints, func(o *configs.STS) bool { return o.Endpoint == st.Endpoint }) {
			endpoints = append(endpoints, st)
		}
	}
	if len(endpoints) == 1 {
		opts.Endpoint = endpoints[0].Endpoint
		if opts.Region == "" {
			opts.Region = endpoints[0].Region
		}
	}
	return opts
}

func configName(file string) string {
	if file == "" {
		return "embedded default"
	}
	return file
}
