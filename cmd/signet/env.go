package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/signet-proxy/signet/configs"
)

// bundleFile is the combined trust bundle (system roots plus signet's CA)
// that `env` and `exec` point programs at, in the state directory.
const bundleFile = "ca-bundle.pem"

// noProxy keeps loopback traffic off the proxy: a program talking to a
// local service must not have it detour through signet.
const noProxy = "localhost,127.0.0.1,::1"

// defaultRootFiles are where Linux distributions and macOS keep the system
// roots as one PEM file (Debian/Ubuntu/Alpine, Fedora/RHEL, macOS/BSD), in
// the order Go's crypto/x509 tries them.
func defaultRootFiles() []string {
	return []string{
		"/etc/ssl/certs/ca-certificates.crt",
		"/etc/pki/tls/certs/ca-bundle.crt",
		"/etc/ssl/cert.pem",
	}
}

// envVar is one variable that makes a program use signet.
type envVar struct{ name, value string }

func runEnv(ctx context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("env", flag.ContinueOnError)
	var cf configFlags
	cf.register(fs)
	shell := fs.String("shell", "sh", "output `syntax`: sh (bash, zsh, dash...) or fish")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *shell != "sh" && *shell != "fish" {
		return usageError{fmt.Errorf("--shell %q: want sh or fish", *shell)}
	}
	cfg, err := cf.load(c)
	if err != nil {
		return err
	}
	// Before creating anything: a config whose address cannot be exported
	// should not leave a CA behind as a side effect.
	proxy, err := proxyURL(cfg, cfg.Listen)
	if err != nil {
		return err
	}
	if _, port, _ := net.SplitHostPort(cfg.Listen); port == "0" {
		return keyError{"listen", fmt.Errorf("%s picks a free port each time signet starts, so no shell can be told the address in advance: use 'signet exec -- CMD', which starts signet and runs CMD with these variables, or give listen a fixed port", cfg.Listen)}
	}
	if cfg.ProxyAuth.File != "" {
		fmt.Fprintf(c.stderr, "signet env: warning: proxy_auth.file is set: add user:password@ to the proxy URLs (%s) yourself; signet does not print passwords\n", proxy)
	}
	ic, err := openCA(ctx, cfg)
	if err != nil {
		return err
	}
	defer ic.Close()
	bundle, err := writeBundle(cfg.StateDir, ic.CACertPEM(), c.environ, defaultRootFiles(), c.stderr)
	if err != nil {
		return err
	}
	return formatEnv(c.stdout, *shell, proxyEnv(proxy, bundle, ic.CAPath()))
}

// proxyEnv is what a program needs to go through signet and trust it.
// Both cases of the proxy variables, because curl reads only lowercase
// http_proxy (uppercase HTTP_PROXY is attacker-controlled in CGI) and some
// tools read only uppercase. SSL_CERT_FILE serves Go, Python and OpenSSL,
// CURL_CA_BUNDLE curl, REQUESTS_CA_BUNDLE Python requests, AWS_CA_BUNDLE
// the AWS CLI and SDKs: each replaces its roots, hence the combined
// bundle. NODE_EXTRA_CA_CERTS adds to Node's roots, so it gets the CA alone.
func proxyEnv(proxyURL, bundle, caPath string) []envVar {
	return []envVar{
		{"HTTPS_PROXY", proxyURL},
		{"https_proxy", proxyURL},
		{"HTTP_PROXY", proxyURL},
		{"http_proxy", proxyURL},
		{"NO_PROXY", noProxy},
		{"no_proxy", noProxy},
		{"SSL_CERT_FILE", bundle},
		{"CURL_CA_BUNDLE", bundle},
		{"REQUESTS_CA_BUNDLE", bundle},
		{"AWS_CA_BUNDLE", bundle},
		{"NODE_EXTRA_CA_CERTS", caPath},
	}
}

// proxyURL is the URL a local program uses to reach the proxy listener
// bound (or to be bound) at addr. An address that binds every interface is
// reached over loopback. With TLS on the listener the URL must name a host
// its certificate carries, or clients refuse it.
func proxyURL(cfg *configs.Config, addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", keyError{"listen", fmt.Errorf("%q is not host:port: %w", addr, err)}
	}
	ip := net.ParseIP(host)
	unspecified := host == "" || (ip != nil && ip.IsUnspecified())
	if cfg.ProxyTLS.Mode == "" || cfg.ProxyTLS.Mode == configs.ProxyTLSOff {
		if unspecified {
			host = "127.0.0.1"
			if ip != nil && ip.To4() == nil {
				host = "::1"
			}
		}
		return "http://" + net.JoinHostPort(host, port), nil
	}
	names := localListenerNames(cfg)
	if unspecified || !slices.Contains(names, strings.ToLower(host)) {
		host = names[0]
	}
	return "https://" + net.JoinHostPort(host, port), nil
}

// writeBundle writes stateDir/ca-bundle.pem: the system roots followed by
// signet's CA. Programs whose CA variable replaces their roots then still
// trust the public CAs that hosts signet does not intercept present. The
// file is replaced atomically, so a program starting meanwhile reads the
// old bundle or the new one, never half of one.
func writeBundle(stateDir string, caPEM []byte, environ []string, candidates []string, warn io.Writer) (string, error) {
	path := filepath.Join(stateDir, bundleFile)
	roots, from, err := systemRoots(path, environ, candidates)
	if err != nil {
		return "", err
	}
	if roots == nil {
		fmt.Fprintf(warn, "signet: warning: no system CA bundle found (SSL_CERT_FILE is unset; looked for %s): %s holds only signet's CA, so programs that use it will trust no public CA\n",
			strings.Join(candidates, ", "), path)
	}
	var b []byte
	if len(roots) > 0 {
		b = append(b, roots...)
		if roots[len(roots)-1] != '\n' {
			b = append(b, '\n')
		}
		b = fmt.Appendf(b, "\n# signet local CA (the roots above are from %s)\n", from)
	}
	b = append(b, caPEM...)
	if err := writeFileAtomic(path, b, 0o644); err != nil {
		return "", fmt.Errorf("write CA bundle: %w", err)
	}
	return path, nil
}

// systemRoots reads the system roots from $SSL_CERT_FILE, else from the
// first candidate that exists. It returns nil roots when there are none.
// An SSL_CERT_FILE that is our own bundle (a shell that already ran `eval
// "$(signet env)"`) is skipped, or the CA would be appended again each time.
func systemRoots(bundle string, environ []string, candidates []string) (roots []byte, from string, err error) {
	if f, ok := lookupEnv(environ, "SSL_CERT_FILE"); ok && f != "" && filepath.Clean(f) != filepath.Clean(bundle) {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, "", fmt.Errorf("read system roots from SSL_CERT_FILE: %w", err)
		}
		return b, f, nil
	}
	for _, f := range candidates {
		b, err := os.ReadFile(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, "", fmt.Errorf("read system roots: %w", err)
		}
		return b, f, nil
	}
	return nil, "", nil
}

// writeFileAtomic writes data to a temp file in path's directory and
// renames it over path.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		// CreateTemp makes the file 0600; the bundle holds only public
		// certificates, readable like ca.pem, so a copy of it or a
		// shared state directory needs no chmod.
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// lookupEnv finds key in an environment list; the last entry wins, as in
// os/exec.
func lookupEnv(environ []string, key string) (string, bool) {
	for i := len(environ) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(environ[i], "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

// formatEnv writes vars as commands for shell ("sh" or "fish"), each value
// single-quoted so that no character in a path is interpreted.
func formatEnv(w io.Writer, shell string, vars []envVar) error {
	var b strings.Builder
	for _, v := range vars {
		if shell == "fish" {
			fmt.Fprintf(&b, "set -gx %s %s;\n", v.name, fishQuote(v.value))
		} else {
			fmt.Fprintf(&b, "export %s=%s\n", v.name, shQuote(v.value))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// shQuote quotes s for POSIX shells: inside single quotes nothing is
// special, so each single quote in s ends the quoting, is written escaped
// (\') and starts it again.
func shQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// fishQuote quotes s for fish, where \\ and \' are the only escapes inside
// single quotes.
func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
