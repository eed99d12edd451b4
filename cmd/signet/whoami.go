package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/signet-proxy/signet/configs"
	"github.com/signet-proxy/signet/credentials"
)

func runWhoami(ctx context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("whoami", flag.ContinueOnError)
	var cf configFlags
	cf.register(fs)
	source := fs.String("source", "", "source `name` (default: the first route's source)")
	region := fs.String("region", "", "STS `region` to ask (default: the source's sts.region or its iot endpoint's region, else AWS_REGION, else us-east-1)")
	endpoint := fs.String("endpoint", "", "STS endpoint `URL` (default: the source's sts.endpoint, else the regional endpoint)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := cf.load(c)
	if err != nil {
		return err
	}
	name := *source
	if name == "" {
		name = defaultSourceName(cfg)
	}
	sc, ok := cfg.Sources[name]
	if !ok {
		return usageError{fmt.Errorf("--source %q: no such source in the config", name)}
	}
	cs, err := provision(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), forCheck)
	if err != nil {
		return err
	}
	defer cs.close()
	creds, err := cs.sources[name].Credentials(ctx)
	if err != nil {
		return err
	}
	opts := credentials.WhoamiOptions{Region: *region, Endpoint: *endpoint, RootCAs: cs.roots}
	if sc.STS != nil {
		if opts.Endpoint == "" {
			opts.Endpoint = sc.STS.Endpoint
		}
		if opts.Region == "" {
			opts.Region = sc.STS.Region
		}
	}
	if sc.IoT != nil && opts.Region == "" {
		// The role alias's role lives in the endpoint's account and region.
		opts.Region = credentials.IoTEndpointRegion(sc.IoT.Endpoint)
	}
	if opts.Region == "" {
		opts.Region, _ = lookupEnv(c.environ, "AWS_REGION")
	}
	id, err := credentials.Whoami(ctx, creds, opts)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "source\t%s (%s)\n", name, sc.Method)
	fmt.Fprintf(tw, "arn\t%s\n", id.ARN)
	fmt.Fprintf(tw, "account\t%s\n", id.Account)
	fmt.Fprintf(tw, "user_id\t%s\n", id.UserID)
	fmt.Fprintf(tw, "access_key_id\t%s\n", credentials.RedactKeyID(creds.AccessKeyID))
	if creds.CanExpire() {
		fmt.Fprintf(tw, "expires\t%s\n", creds.Expires.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}

// defaultSourceName is the source of the first route, else of the first
// reverse listener, else "default".
func defaultSourceName(cfg *configs.Config) string {
	if len(cfg.Routes) > 0 {
		return cfg.Routes[0].Source
	}
	if len(cfg.Reverse) > 0 {
		return cfg.Reverse[0].Source
	}
	return "default"
}
