package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
)

func runCheck(ctx context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	var cf configFlags
	cf.register(fs)
	format := fs.String("o", "yaml", "output `format`: yaml or json")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *format != "yaml" && *format != "json" {
		return usageError{fmt.Errorf("-o %q: want yaml or json", *format)}
	}
	cfg, err := cf.load(c)
	if err != nil {
		return err
	}
	// Provision too (without binding), so that what would fail at start,
	// such as a missing CA file or profile, fails here.
	cs, err := provision(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), forCheck)
	if err != nil {
		return err
	}
	cs.close()
	out, err := cfg.Redacted().Render(*format)
	if err != nil {
		return err
	}
	_, err = c.stdout.Write(out)
	return err
}
