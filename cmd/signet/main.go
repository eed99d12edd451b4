// Command signet is a SigV4 signing proxy: apps send it unsigned requests
// for AWS, and it forwards them signed with continuously refreshed
// credentials.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes.
const (
	exitOK     = 0
	exitFail   = 1
	exitConfig = 2 // bad config or usage: fix the input, do not retry
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Environ())
	stop()
	os.Exit(code)
}

// cli carries what every command needs from its process, so that tests can
// run commands in-process.
type cli struct {
	stdout, stderr io.Writer
	environ        []string
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, c *cli, args []string) error
}

func commands() []command {
	return []command{
		{"serve", "run the proxy", runServe},
		{"check", "validate a config and print it, secrets redacted", runCheck},
		{"ca", "print the local CA's path (ca path) or certificate (ca export)", runCA},
		{"env", "print shell lines that point programs at signet and its CA", runEnv},
		{"exec", "run a command with signet started for it: exec [flags] -- CMD", runExec},
		{"whoami", "print whom AWS takes a source's credentials for (the assumed role, for sts)", runWhoami},
		{"credential-process", "print a source's credentials as credential_process JSON, from the running signet or fetched directly", runCredentialProcess},
		{"wasm", "run a WebAssembly credential provider once: wasm run --source NAME, or wasm run MODULE.wasm", runWasm},
		{"debug", "show what signet signs for a request: debug sign METHOD URL", runDebug},
		{"config", "print the JSON Schema of the config file: config schema", runConfig},
		{"health", "ask a running signet's admin listener for /healthz (or /readyz with --ready)", runHealth},
		{"version", "print the version, commit and Go version", runVersion},
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, environ []string) int {
	c := &cli{stdout: stdout, stderr: stderr, environ: environ}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return exitConfig
		}
		return exitOK
	}
	for _, cmd := range commands() {
		if cmd.name != args[0] {
			continue
		}
		err := cmd.run(ctx, c, args[1:])
		if err == nil {
			return exitOK
		}
		// A child's exit status (signet exec) passes through as it is.
		var ec exitCode
		if errors.As(err, &ec) {
			return int(ec)
		}
		fmt.Fprintf(stderr, "signet %s: %v\n", cmd.name, err)
		var ue usageError
		if errors.As(err, &ue) || isConfigError(err) {
			return exitConfig
		}
		return exitFail
	}
	fmt.Fprintf(stderr, "signet: unknown command %q\n", args[0])
	usage(stderr)
	return exitConfig
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: signet COMMAND [flags]")
	fmt.Fprintln(w, "\ncommands:")
	for _, cmd := range commands() {
		fmt.Fprintf(w, "  %-18s %s\n", cmd.name, cmd.summary)
	}
	fmt.Fprintln(w, "\nRun 'signet COMMAND -h' for a command's flags.")
}

// usageError marks errors in the command line itself.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }
