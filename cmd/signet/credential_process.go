package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/signet-proxy/signet/configs"
	"github.com/signet-proxy/signet/credentials"
	"github.com/signet-proxy/signet/proxy/admin"
)

// runCredentialProcess prints a source's credentials in the AWS
// credential_process format, for an SDK or the AWS CLI configured with
//
//	credential_process = signet credential-process --source NAME -c FILE
//
// It asks the running signet that the config describes (its admin
// listener's credential endpoint, with the token from its state
// directory or admin.token_file), so that every process shares the keys
// signet keeps fresh and an STS or IoT source is not called once per
// process. When no signet is running there (no token file, or nothing
// listening on admin.listen), it fetches with the source's own provider,
// as signet would. An error answer from a running signet is an error: a
// different signet, or a source it does not have, is a mistake to show.
func runCredentialProcess(ctx context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("credential-process", flag.ContinueOnError)
	var cf configFlags
	cf.register(fs)
	source := fs.String("source", "", "source `name` whose credentials to print (default: the first route's source)")
	direct := fs.Bool("direct", false, "never ask a running signet: fetch with the source's own provider")
	timeout := fs.Duration("timeout", 60*time.Second, "give up after this `duration`")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *timeout <= 0 {
		return usageError{fmt.Errorf("--timeout %s: want a duration above 0", *timeout)}
	}
	cfg, err := cf.load(c)
	if err != nil {
		return err
	}
	name := *source
	if name == "" {
		name = defaultSourceName(cfg)
	}
	if _, ok := cfg.Sources[name]; !ok {
		return usageError{fmt.Errorf("--source %q: no such source in the config", name)}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	var creds credentials.Credentials
	asked := false
	if !*direct {
		if creds, asked, err = fromRunningSignet(ctx, cfg, name); err != nil {
			return err
		}
	}
	if !asked {
		if creds, err = fetchDirect(ctx, cfg, name); err != nil {
			return err
		}
	}
	out, err := credentials.MarshalProcessOutput(creds)
	if err != nil {
		return err
	}
	_, err = c.stdout.Write(out)
	return err
}

// fromRunningSignet asks the signet whose admin listener cfg names for
// source's keys. asked is false when no signet runs there, and then the
// caller fetches itself.
func fromRunningSignet(ctx context.Context, cfg *configs.Config, source string) (creds credentials.Credentials, asked bool, err error) {
	base, ok := adminBaseURL(cfg)
	if !ok {
		return creds, false, nil
	}
	tokenFile := cfg.Admin.TokenFile
	if tokenFile == "" {
		tokenFile = filepath.Join(cfg.StateDir, admin.TokenFileName)
	}
	tok, err := admin.ReadTokenFile(tokenFile)
	if errors.Is(err, os.ErrNotExist) && cfg.Admin.TokenFile == "" {
		// serve writes it on every start: none means none ever ran here.
		return creds, false, nil
	}
	if err != nil {
		key := "state_dir"
		if cfg.Admin.TokenFile != "" {
			key = "admin.token_file"
		}
		return creds, true, keyError{key, err}
	}
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	creds, err = admin.FetchCredentials(ctx, client, base, tok, source)
	if err != nil && notListening(err) {
		// The token file outlives the signet that wrote it.
		return creds, false, nil
	}
	return creds, true, err
}

// notListening reports a refused connection: nothing listens there.
func notListening(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial" && errors.Is(err, syscall.ECONNREFUSED)
}

// adminBaseURL is the URL of the admin listener cfg configures; false when
// it is off or its port is picked at start (nobody can know it).
func adminBaseURL(cfg *configs.Config) (string, bool) {
	if !cfg.Admin.Enabled() {
		return "", false
	}
	host, port, err := net.SplitHostPort(cfg.Admin.Listen)
	if err != nil || port == "0" {
		return "", false
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	return (&url.URL{Scheme: "http", Host: net.JoinHostPort(host, port)}).String(), true
}

// fetchDirect builds source (and the sources it chains from) and asks it
// for keys, as signet would.
func fetchDirect(ctx context.Context, cfg *configs.Config, source string) (credentials.Credentials, error) {
	log := slog.New(slog.DiscardHandler)
	roots, err := upstreamRoots(cfg.Upstream.CAFile)
	if err != nil {
		return credentials.Credentials{}, err
	}
	var names []string
	for name := source; name != ""; {
		names = append(names, name)
		name = ""
		if st := cfg.Sources[names[len(names)-1]].STS; st != nil {
			name = st.Source
		}
	}
	wasm, err := openWasmHost(ctx, cfg, roots, log, forCheck)
	if err != nil {
		return credentials.Credentials{}, err
	}
	if wasm != nil {
		defer wasm.Close(context.Background())
	}
	sources := map[string]*credentials.Refreshing{}
	if err := buildSources(ctx, cfg, sourceDeps{roots: roots, wasm: wasm, log: log}, sources, names); err != nil {
		return credentials.Credentials{}, err
	}
	defer closeSources(sources)
	return sources[source].Credentials(ctx)
}
