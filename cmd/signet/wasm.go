package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/signet-proxy/signet/configs"
	"github.com/signet-proxy/signet/credentials"
	"github.com/signet-proxy/signet/wasmhost"
)

const wasmUsage = `usage:
  signet wasm run [-c FILE] --source NAME
  signet wasm run [flags] MODULE.wasm [-- ARGS...]`

func runWasm(ctx context.Context, c *cli, args []string) error {
	if len(args) == 0 {
		return usageError{errors.New("missing subcommand\n" + wasmUsage)}
	}
	switch args[0] {
	case "run":
		return runWasmRun(ctx, c, args[1:])
	case "-h", "--help", "help":
		return usageError{errors.New(wasmUsage)}
	}
	return usageError{fmt.Errorf("unknown subcommand %q\n%s", args[0], wasmUsage)}
}

// moduleFlags are the flags that describe a module given on the command
// line; with --source the config says all of that.
var moduleFlags = []string{"allow-host", "allow-http", "allow-private", "env", "stdin", "dir", "dir-mount", "timeout", "memory-limit", "sha256", "refresh-interval"}

// runWasmRun runs a provider module once, the way a source would, and
// prints what it gave with the secrets hidden: a way to develop a module
// or to see why a source fails, without starting the proxy.
func runWasmRun(ctx context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("wasm run", flag.ContinueOnError)
	var cf configFlags
	cf.register(fs)
	source := fs.String("source", "", "run the module of this wasm `source` of the config")
	var mc configs.Wasm
	fs.Func("allow-host", "a `host`, host:port or *.suffix the module may call (repeatable)", func(v string) error {
		mc.AllowHosts = append(mc.AllowHosts, v)
		return nil
	})
	fs.BoolVar(&mc.AllowHTTP, "allow-http", false, "let the module use plain http")
	fs.BoolVar(&mc.AllowPrivate, "allow-private", false, "let allowed hosts resolve to loopback, private and link-local addresses")
	fs.Func("env", "set `NAME=VALUE` in the module's environment (repeatable)", func(v string) error {
		k, val, ok := strings.Cut(v, "=")
		if !ok || k == "" {
			return errors.New("want NAME=VALUE")
		}
		if mc.Env == nil {
			mc.Env = map[string]string{}
		}
		mc.Env[k] = val
		return nil
	})
	fs.StringVar(&mc.Stdin, "stdin", "", "`text` for the module's stdin")
	fs.StringVar(&mc.Dir, "dir", "", "host `directory` the module may read")
	fs.StringVar(&mc.DirMount, "dir-mount", configs.DefaultWasmDirMount, "guest `path` of --dir")
	timeout := fs.Duration("timeout", configs.DefaultWasmTimeout, "stop the module after this `duration`")
	memory := fs.String("memory-limit", configs.DefaultWasmMemoryLimit.String(), "cap the module's memory at this `size`")
	fs.StringVar(&mc.SHA256, "sha256", "", "refuse the module unless its SHA-256 is this `hex`")
	interval := fs.Duration("refresh-interval", configs.DefaultWasmRefreshInterval, "how long keys without an Expiration would be kept (`duration`)")

	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return usageError{fmt.Errorf("%s\n\nflags:\n%s", wasmUsage, flagUsage(fs))}
		}
		return usageError{err}
	}
	rest := fs.Args()

	var (
		name   string
		cfg    *configs.Config
		roots  *x509.CertPool
		module configs.Wasm
	)
	if *source != "" {
		var set []string
		fs.Visit(func(f *flag.Flag) {
			if slices.Contains(moduleFlags, f.Name) {
				set = append(set, "--"+f.Name)
			}
		})
		switch {
		case len(set) > 0:
			return usageError{fmt.Errorf("%s cannot be used with --source: the source's wasm block says how its module runs", strings.Join(set, ", "))}
		case len(rest) > 0:
			return usageError{fmt.Errorf("unexpected argument %q: --source runs the module of the config", rest[0])}
		}
		var err error
		if cfg, err = cf.load(c); err != nil {
			return err
		}
		sc, ok := cfg.Sources[*source]
		if !ok {
			return usageError{fmt.Errorf("--source %q: no such source in the config", *source)}
		}
		if sc.Method != configs.MethodWasm || sc.Wasm == nil {
			return usageError{fmt.Errorf("--source %q: method is %s, not wasm", *source, sc.Method)}
		}
		if roots, err = upstreamRoots(cfg.Upstream.CAFile); err != nil {
			return err
		}
		name, module = *source, *sc.Wasm
	} else {
		if cf.file != "" {
			return usageError{errors.New("-c needs --source NAME: a module given on the command line is described by flags")}
		}
		if len(rest) == 0 {
			return usageError{errors.New("missing MODULE.wasm (or --source NAME)\n" + wasmUsage)}
		}
		module = mc
		module.Module = rest[0]
		if args := rest[1:]; len(args) > 0 {
			module.Args = slices.Clone(args)
			if module.Args[0] == "--" {
				module.Args = module.Args[1:]
			}
		}
		if module.Dir == "" {
			module.DirMount = ""
		}
		var err error
		if module.MemoryLimit, err = configs.ParseByteSize(*memory); err != nil {
			return usageError{fmt.Errorf("--memory-limit %q %v", *memory, err)}
		}
		switch {
		case *timeout <= 0:
			return usageError{fmt.Errorf("--timeout %s: want more than 0", *timeout)}
		case *interval <= 0:
			return usageError{fmt.Errorf("--refresh-interval %s: want more than 0", *interval)}
		}
		module.Timeout, module.RefreshInterval = configs.Duration(*timeout), configs.Duration(*interval)
		name = strings.TrimSuffix(filepath.Base(module.Module), ".wasm")
		// Only for state_dir (and log.format): the compiled code is cached
		// where serve caches it.
		if cfg, err = cf.load(c); err != nil {
			return err
		}
	}

	// Debug level: a module's log() lines are part of what this command
	// is for.
	log := newLogger(c.stderr, configs.Log{Level: configs.LogLevelDebug, Format: cfg.Log.Format})
	host, err := wasmhost.New(ctx, wasmhost.Options{CacheDir: wasmCacheDir(cfg), Logger: log, RootCAs: roots})
	if err != nil {
		return keyError{"state_dir", err}
	}
	defer host.Close(context.WithoutCancel(ctx))
	m, err := host.Load(ctx, moduleConfig(name, &module))
	if err != nil {
		if *source != "" {
			return keyError{"sources." + name + ".wasm." + wasmLoadKey(&module), err}
		}
		return usageError{err}
	}
	defer m.Close(context.WithoutCancel(ctx))

	// Through the provider a source uses, so that the output is read and
	// any error is worded as it would be in serve's log.
	var res wasmhost.Result
	p, err := credentials.NewWasm(credentials.WasmOptions{
		Source:          name,
		Module:          wasmModule{m: m, last: &res},
		RefreshInterval: time.Duration(module.RefreshInterval),
	})
	if err != nil {
		return err
	}
	creds, runErr := p.Retrieve(ctx)
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	if *source != "" {
		fmt.Fprintf(tw, "source\t%s (wasm)\n", name)
	}
	fmt.Fprintf(tw, "module\t%s\n", module.Module)
	fmt.Fprintf(tw, "duration\t%s\n", res.Duration.Round(time.Millisecond))
	if runErr == nil {
		fmt.Fprintf(tw, "access_key_id\t%s\n", credentials.RedactKeyID(creds.AccessKeyID))
		fmt.Fprintf(tw, "secret_access_key\t%s\n", configs.RedactedValue)
		if creds.SessionToken != "" {
			fmt.Fprintf(tw, "session_token\t%s\n", configs.RedactedValue)
		} else {
			fmt.Fprintf(tw, "session_token\t(none)\n")
		}
		// The provider put an expiry on keys that had none; the output
		// says whether the module did.
		if out, err := credentials.ParseProcessOutput(res.Stdout, time.Now()); err == nil && !out.CanExpire() {
			fmt.Fprintf(tw, "expires\t(none: kept for refresh_interval %s)\n", time.Duration(module.RefreshInterval))
		} else {
			fmt.Fprintf(tw, "expires\t%s (in %s)\n", creds.Expires.UTC().Format(time.RFC3339), time.Until(creds.Expires).Round(time.Second))
		}
	}
	stderr := strings.TrimRight(res.Stderr, " \t\r\n")
	if stderr == "" {
		fmt.Fprintf(tw, "stderr\t(empty)\n")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if stderr != "" {
		writeStderr(c.stdout, stderr)
	}
	return runErr
}

// writeStderr prints a module's (already redacted) stderr, each line
// indented, with control characters shown as '?' so that the module
// cannot drive the terminal.
func writeStderr(w io.Writer, stderr string) {
	fmt.Fprintln(w, "stderr:")
	for line := range strings.SplitSeq(stderr, "\n") {
		line = strings.Map(func(r rune) rune {
			if r != '\t' && !unicode.IsPrint(r) {
				return '?'
			}
			return r
		}, strings.TrimSuffix(line, "\r"))
		fmt.Fprintln(w, "  | "+line)
	}
}
