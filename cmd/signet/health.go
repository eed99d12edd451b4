package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/signet-proxy/signet/configs"
)

// healthBodyLimit bounds how much of an unhealthy answer is shown: enough
// for /readyz's list of sources, never a stream.
const healthBodyLimit = 4 << 10

// runHealth asks a running signet's admin listener whether it is healthy,
// for probes in images without curl (the distroless image, Kubernetes exec
// probes against a loopback-only admin listener). Exit 0 on a 2xx answer,
// 1 otherwise.
func runHealth(ctx context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	var cf configFlags
	cf.register(fs)
	rawURL := fs.String("url", "", "`URL` to GET (default: /healthz, or /readyz with --ready, on the config's admin.listen)")
	ready := fs.Bool("ready", false, "ask /readyz: ready only while every source holds valid credentials")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this `duration`")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *timeout <= 0 {
		return usageError{fmt.Errorf("--timeout %s: want a duration above 0", *timeout)}
	}
	target := *rawURL
	if target == "" {
		cfg, err := cf.load(c)
		if err != nil {
			return err
		}
		if target, err = adminURL(cfg, *ready); err != nil {
			return err
		}
	} else if *ready {
		return usageError{errors.New("--ready and --url: give the /readyz URL with --url alone")}
	} else if u, err := url.Parse(target); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usageError{fmt.Errorf("--url %q: want an absolute http:// or https:// URL", target)}
	}
	status, body, err := probe(ctx, target, *timeout)
	if err != nil {
		return err
	}
	if status/100 != 2 {
		if body != "" {
			fmt.Fprintln(c.stderr, body)
		}
		return fmt.Errorf("GET %s: %d %s", target, status, http.StatusText(status))
	}
	fmt.Fprintf(c.stdout, "GET %s: %d %s\n", target, status, http.StatusText(status))
	return nil
}

// adminURL is the health or readiness URL of the admin listener cfg
// configures. An address that binds every interface is asked on loopback.
func adminURL(cfg *configs.Config, ready bool) (string, error) {
	if !cfg.Admin.Enabled() {
		return "", keyError{"admin.listen", errors.New("the admin listener is off, so there is nothing to ask: set admin.listen, or give --url")}
	}
	host, port, err := net.SplitHostPort(cfg.Admin.Listen)
	if err != nil {
		return "", keyError{"admin.listen", fmt.Errorf("%q is not host:port: %w", cfg.Admin.Listen, err)}
	}
	if port == "0" {
		return "", keyError{"admin.listen", fmt.Errorf("%s picks a free port each time signet starts: give the address with --url", cfg.Admin.Listen)}
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	path := "/healthz"
	if ready {
		path = "/readyz"
	}
	return (&url.URL{Scheme: "http", Host: net.JoinHostPort(host, port), Path: path}).String(), nil
}

// probe GETs target without any proxy: a probe inside a container whose
// environment sets HTTP_PROXY (pointing at signet itself) must still reach
// the admin listener directly.
func probe(ctx context.Context, target string, timeout time.Duration) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return 0, "", usageError{fmt.Errorf("--url %q: %w", target, err)}
	}
	client := &http.Client{
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
		// A redirect from a health endpoint is a misconfiguration, not
		// health.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("GET %s: %w", target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, healthBodyLimit))
	return resp.StatusCode, strings.TrimSpace(string(b)), nil
}
