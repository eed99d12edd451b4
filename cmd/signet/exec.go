package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/signet-proxy/signet/configs"
	"github.com/signet-proxy/signet/internal/metrics"
	"github.com/signet-proxy/signet/proxy/admin"
)

const execUsage = "usage: signet exec [-c FILE] [flags] -- CMD [ARGS...]"

// Exit statuses for a command that exec could not start, as POSIX shells
// report them, so scripts cannot tell `signet exec -- x` from `x` here.
const (
	exitCannotRun = 126 // found but not executable
	exitNotFound  = 127
)

// exitCode is an error that carries a process exit status: run() returns
// it as it is and prints nothing, because the child already spoke for
// itself on the stderr it shares with signet.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// runExec starts signet on a free loopback port, runs CMD with the
// variables of `signet env` pointing at it, and stops signet when CMD
// exits, with CMD's exit status.
func runExec(ctx context.Context, c *cli, args []string) error {
	// The "--" is required, not just tolerated: without it, a flag meant
	// for CMD (say `-c`) would silently be taken as signet's.
	i := slices.Index(args, "--")
	if i < 0 {
		if slices.ContainsFunc(args, func(a string) bool { return a == "-h" || a == "--help" || a == "-help" }) {
			return parseFlags(execFlags(new(configFlags), new(string)), []string{"-h"})
		}
		return usageError{errors.New("missing -- before the command\n" + execUsage)}
	}
	var cf configFlags
	var credSource string
	fs := execFlags(&cf, &credSource)
	if err := parseFlags(fs, args[:i]); err != nil {
		return err
	}
	argv := args[i+1:]
	if len(argv) == 0 || argv[0] == "" {
		return usageError{errors.New("no command after --\n" + execUsage)}
	}
	if _, ok := cf.overrides["listen"]; ok {
		return usageError{errors.New("--listen: exec always listens on 127.0.0.1 on a free port, which only the command is told")}
	}
	cf.overrides["listen"] = "127.0.0.1:0"
	// signet's logs share the command's stderr, so by default only what
	// needs attention (a refresh failing, a request refused) is mixed into
	// the command's own output. --log-level or SIGNET_LOG__LEVEL say
	// otherwise; log.level in a config file is for serve.
	if _, ok := cf.overrides["log.level"]; !ok {
		if _, ok := lookupEnv(c.environ, configs.EnvPrefix+"LOG__LEVEL"); !ok {
			cf.overrides["log.level"] = configs.LogLevelWarn
		}
	}
	loaded, err := cf.load(c)
	if err != nil {
		return err
	}
	// A copy, not a change to the loaded snapshot. The listener is on
	// loopback and lives only as long as CMD, so proxy_tls and proxy_auth
	// (which protect a listener others can reach) are off: CMD could not
	// be given a proxy password from a file of bcrypt hashes, nor reach an
	// ACME certificate's name on a loopback port. A loopback listener
	// without authentication is what signet's own default is.
	cfg := *loaded
	cfg.ProxyTLS = configs.ProxyTLS{Mode: configs.ProxyTLSOff}
	cfg.ProxyAuth = configs.ProxyAuth{}

	cmd := exec.Command(argv[0], argv[1:]...)
	// Look the command up before starting signet: a typo should cost
	// nothing and say so the way a shell does.
	if cmd.Err != nil {
		return commandFailed(c, argv[0], cmd.Err)
	}

	if credSource == "" {
		credSource = defaultSourceName(&cfg)
	}
	if _, ok := cfg.Sources[credSource]; !ok {
		return usageError{fmt.Errorf("--source %q: no such source in the config", credSource)}
	}

	log := newLogger(c.stderr, cfg.Log)
	if err := os.MkdirAll(spoolDir(&cfg), 0o700); err != nil {
		return fmt.Errorf("state_dir: create spool directory: %w", err)
	}
	m := metrics.New(metrics.Options{Logger: log})
	cs, err := provisionWith(ctx, &cfg, log, forServe, observers{metrics: m})
	if err != nil {
		return err
	}
	defer cs.close()
	// signet outlives any cancellation of ctx: in main that means SIGINT
	// or SIGTERM, which go to CMD instead, and signet stops when CMD has
	// exited, so that CMD's last requests are still signed.
	serveCtx, stopServe := context.WithCancel(context.WithoutCancel(ctx))
	defer stopServe()
	if err := cs.proxy.Listen(serveCtx); err != nil {
		return err
	}
	proxy, err := proxyURL(&cfg, cs.proxy.Addr().String())
	if err != nil {
		return err
	}
	bundle, err := writeBundle(cfg.StateDir, cs.intercept.CACertPEM(), c.environ, defaultRootFiles(), c.stderr)
	if err != nil {
		return err
	}
	env := proxyEnv(proxy, bundle, cs.intercept.CAPath())
	var adm *adminListener
	if cfg.Admin.Enabled() {
		var tok string
		if adm, tok, err = openExecAdmin(serveCtx, &cfg, cs, m); err != nil {
			return err
		}
		defer adm.srv.Close()
		env = append(env, containerEnv(adm.srv.URL(), credSource, tok)...)
	}
	served := make(chan error, 1)
	go func() { served <- serveAll(serveCtx, cs.proxy, adm, cfg.ShutdownTimeout, log) }()
	stopSignet := func() {
		stopServe()
		if err := <-served; err != nil {
			log.Error("signet stopped with an error", "error", err)
		}
	}

	cmd.Env = mergeEnv(c.environ, env)
	// stdin is the process's own: cli carries no reader, and an
	// interactive command needs the terminal itself. When stdout and
	// stderr are files (always, outside tests), os/exec hands them over
	// as they are, with no copying goroutine in between.
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, c.stdout, c.stderr

	// Subscribe before Start, so that a signal arriving while CMD starts
	// waits in the channel instead of being lost.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, forwardedSignals()...)
	defer signal.Stop(sigs)
	fromTerminal, closeTTY := terminalSignals()
	defer closeTTY()
	if err := cmd.Start(); err != nil {
		stopSignet()
		return commandFailed(c, argv[0], err)
	}
	log.Info("signet started for a command", "version", versionString(), "config", configName(cf.file),
		"proxy", proxy, "command", argv[0], "pid", cmd.Process.Pid)
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	var waitErr error
wait:
	for {
		select {
		case s := <-sigs:
			if fromTerminal(s) {
				log.Debug("signal from the terminal, which sent it to the command too", "signal", s.String())
				continue
			}
			// An error means CMD has just exited; Wait reports that.
			_ = cmd.Process.Signal(s)
		case waitErr = <-waited:
			break wait
		}
	}
	stopSignet()
	return childStatus(cmd, waitErr)
}

func execFlags(cf *configFlags, credSource *string) *flag.FlagSet {
	fs := flag.NewFlagSet("exec", flag.ContinueOnError)
	cf.register(fs)
	fs.StringVar(credSource, "source", "", "source `name` whose keys CMD's AWS SDKs get through AWS_CONTAINER_CREDENTIALS_FULL_URI (default: the first route's source)")
	return fs
}

// childStatus turns CMD's end into exec's result: its own exit status, or
// 128 plus the signal that killed it, as shells report it.
func childStatus(cmd *exec.Cmd, waitErr error) error {
	var ee *exec.ExitError
	if waitErr != nil && !errors.As(waitErr, &ee) {
		return fmt.Errorf("wait for %s: %w", cmd.Path, waitErr)
	}
	st := cmd.ProcessState
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return exitCode(128 + int(ws.Signal()))
	}
	if code := st.ExitCode(); code != 0 {
		return exitCode(code)
	}
	return nil
}

// commandFailed reports a command that could not be started, with the
// status a shell would give.
func commandFailed(c *cli, name string, err error) error {
	code := exitCannotRun
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		code = exitNotFound
	}
	fmt.Fprintf(c.stderr, "signet exec: %s: %v\n", name, err)
	return exitCode(code)
}

// mergeEnv is environ with vars set, replacing any earlier values (a
// shell that already ran `eval "$(signet env)"` for another signet).
func mergeEnv(environ []string, vars []envVar) []string {
	out := make([]string, 0, len(environ)+len(vars))
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if !slices.ContainsFunc(vars, func(v envVar) bool { return v.name == k }) {
			out = append(out, kv)
		}
	}
	for _, v := range vars {
		out = append(out, v.name+"="+v.value)
	}
	return out
}

// openExecAdmin starts an admin listener for CMD alone: on loopback with a
// free port, like exec's proxy, and with a token made for this run that
// only CMD's environment carries (never written to the state directory,
// where it would replace the token of a signet serve sharing it).
func openExecAdmin(ctx context.Context, cfg *configs.Config, cs *components, m *metrics.Metrics) (*adminListener, string, error) {
	tok, err := admin.NewToken()
	if err != nil {
		return nil, "", err
	}
	h, err := admin.New(admin.Options{
		Catalog: catalogOf(cfg, cs.sources),
		Token:   tok,
		Metrics: m.Handler(),
		Logger:  cs.log,
	})
	if err != nil {
		return nil, "", err
	}
	srv, err := admin.Listen(ctx, "127.0.0.1:0", h, cs.log)
	if err != nil {
		return nil, "", err
	}
	return &adminListener{h: h, srv: srv}, tok, nil
}

// containerEnv points AWS SDKs at the admin listener's credential
// endpoint, as ECS points them at its agent: SDKs that sign themselves
// then use source's keys, kept fresh by signet. The default chain asks the
// endpoint only after the environment and the shared files, so keys set
// there still win.
func containerEnv(adminURL, source, token string) []envVar {
	return []envVar{
		{"AWS_CONTAINER_CREDENTIALS_FULL_URI", adminURL + "/v1/credentials/" + url.PathEscape(source)},
		{"AWS_CONTAINER_AUTHORIZATION_TOKEN", token},
	}
}
