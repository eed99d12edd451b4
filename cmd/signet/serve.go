package main

import (
	"context"
	"flag"
	"fmt"
	"os"
)

func runServe(ctx context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var cf configFlags
	cf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := cf.load(c)
	if err != nil {
		return err
	}
	log := newLogger(c.stderr, cfg.Log)
	if err := os.MkdirAll(spoolDir(cfg), 0o700); err != nil {
		return fmt.Errorf("state_dir: create spool directory: %w", err)
	}
	cs, err := provision(ctx, cfg, log, forServe)
	if err != nil {
		return err
	}
	defer cs.close()
	if err := cs.proxy.Listen(ctx); err != nil {
		return err
	}
	for _, src := range cs.sources {
		src.Start() // eager sources fetch now and before each expiry
	}
	log.Info("signet started", "version", versionString(), "config", configName(cf.file), "routes", len(cfg.Routes), "sources", len(cfg.Sources))
	if err := cs.proxy.Serve(ctx, cfg.ShutdownTimeout); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	log.Info("signet stopped")
	return nil
}

func configName(file string) string {
	if file == "" {
		return "embedded default"
	}
	return file
}
