package main

import (
	"context"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"

	"github.com/signet-proxy/signet/configs"
	"github.com/signet-proxy/signet/proxy/tlsintercept"
)

// caUsage lists the ca subcommands, for errors and -h.
const caUsage = "usage: signet ca path [-c FILE] | signet ca export [-c FILE] [--der]"

// runCA prints where signet's local CA certificate lives, or the
// certificate itself, so that a user can add it to a trust store before
// the first `serve`.
func runCA(ctx context.Context, c *cli, args []string) error {
	if len(args) == 0 {
		return usageError{errors.New("missing subcommand\n" + caUsage)}
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("ca "+sub, flag.ContinueOnError)
	var cf configFlags
	cf.register(fs)
	var der *bool
	switch sub {
	case "path":
	case "export":
		der = fs.Bool("der", false, "write the certificate in DER rather than PEM")
	case "-h", "--help", "help":
		return usageError{errors.New(caUsage)}
	default:
		return usageError{fmt.Errorf("unknown subcommand %q\n%s", sub, caUsage)}
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := cf.load(c)
	if err != nil {
		return err
	}
	ic, err := openCA(ctx, cfg)
	if err != nil {
		return err
	}
	defer ic.Close()
	if sub == "path" {
		_, err = fmt.Fprintln(c.stdout, ic.CAPath())
		return err
	}
	out := ic.CACertPEM()
	if *der {
		block, _ := pem.Decode(out)
		if block == nil {
			return fmt.Errorf("CA certificate %s: no PEM block", ic.CAPath())
		}
		out = block.Bytes
	}
	_, err = c.stdout.Write(out)
	return err
}

// openCA opens the local CA in the config's state directory, creating it
// if this is the first run. It goes through tlsintercept.Open rather than
// LoadCA so that a CA is generated in exactly one place; the policy allows
// no host because these callers only want the CA, never a leaf.
func openCA(ctx context.Context, cfg *configs.Config) (*tlsintercept.Interceptor, error) {
	ic, err := tlsintercept.Open(ctx, tlsintercept.Options{
		StateDir:  cfg.StateDir,
		CacheSize: 1,
		Allow:     func(string) bool { return false },
	})
	if err != nil {
		return nil, keyError{"state_dir", err}
	}
	return ic, nil
}
