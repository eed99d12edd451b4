package tlsintercept

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
)

// ACMEOptions configure OpenACME.
type ACMEOptions struct {
	// StateDir is signet's state directory (created 0700 if missing, and
	// refused if group or others can access it). The ACME account key,
	// certificates and their keys live in StateDir/acme, mode 0700.
	StateDir string
	// Names are the DNS names of the certificate (each gets its own
	// certificate, which certmagic renews). Required.
	Names []string
	// CA is the ACME directory URL. Required.
	CA string
	// Email is an optional contact address for the ACME account.
	Email string
	// TrustedRoots, when set, are the only roots trusted for the ACME
	// server's own TLS (test CAs such as Pebble); nil means the system's.
	TrustedRoots *x509.CertPool
	// ChallengeAddr is the host:port where a TLS-ALPN-01 challenge is
	// answered while nothing listens there, i.e. before the proxy listener
	// is bound (pass the proxy's listen address). Once the proxy listener
	// serves TLSConfig, it answers challenges itself. An empty host means
	// every interface; an empty or zero port means 443, where the CA
	// connects. HTTP-01 is not used: signet serves nothing on port 80.
	ChallengeAddr string
	// Timeout bounds start-up (account registration and the first
	// certificate); 0 means DefaultACMETimeout.
	Timeout time.Duration
	// Logger receives our logs and certmagic's; nil discards them.
	Logger *slog.Logger
}

// DefaultACMETimeout bounds OpenACME when ACMEOptions.Timeout is 0.
const DefaultACMETimeout = 60 * time.Second

// acmeTLSALPN is the ALPN protocol of TLS-ALPN-01 challenges (RFC 8737).
const acmeTLSALPN = "acme-tls/1"

// acmeDirName is the subdirectory of the state directory for ACME data.
const acmeDirName = "acme"

// ACMEListener holds certificates obtained from an ACME CA for the proxy
// listener and keeps them renewed. It is safe for concurrent use.
type ACMEListener struct {
	names  []string
	cache  *certmagic.Cache
	magic  *certmagic.Config
	closed atomic.Bool
}

// OpenACME obtains (or loads from StateDir/acme) a certificate for every
// name from the ACME CA and starts certmagic's maintenance, which renews
// them. It fails, naming the CA, when the CA cannot be reached or refuses,
// rather than leave the listener without a certificate. Call Close to stop
// the maintenance goroutine.
func OpenACME(ctx context.Context, opts ACMEOptions) (*ACMEListener, error) {
	fail := func(format string, args ...any) (*ACMEListener, error) {
		return nil, fmt.Errorf("open ACME certificate: "+format, args...)
	}
	if len(opts.Names) == 0 {
		return fail("ACMEOptions.Names is empty: list the DNS names clients use to reach the proxy")
	}
	names := make([]string, 0, len(opts.Names))
	for _, n := range opts.Names {
		n = canonicalHost(n)
		if n == "" {
			return fail("ACMEOptions.Names holds an empty name")
		}
		names = append(names, n)
	}
	caURL, err := url.Parse(opts.CA)
	if err != nil || (caURL.Scheme != "https" && caURL.Scheme != "http") || caURL.Host == "" {
		return fail("ACME CA %q is not an http(s) URL of an ACME directory", opts.CA)
	}
	timeout := opts.Timeout
	if timeout < 0 {
		return fail("ACMEOptions.Timeout is %v: use 0 for the default (%v) or a positive duration", timeout, DefaultACMETimeout)
	}
	if timeout == 0 {
		timeout = DefaultACMETimeout
	}
	listenHost, listenPort, err := challengeHostPort(opts.ChallengeAddr)
	if err != nil {
		return fail("%v", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir, err := openACMEDir(opts.StateDir)
	if err != nil {
		return fail("%v", err)
	}

	l := &ACMEListener{names: names}
	zl := newZapLogger(log)
	var magic atomic.Pointer[certmagic.Config]
	l.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) {
			if c := magic.Load(); c != nil {
				return c, nil
			}
			return nil, errors.New("tlsintercept: certmagic ACME config not ready")
		},
		// One certificate per name; the slack covers renewals in flight.
		Capacity: 2*len(names) + 2,
		Logger:   zl,
	})
	// As in Open, every field that certmagic.New would copy from its
	// package-level Default is set here. OnDemand stays nil: the names are
	// managed up front, and no handshake may trigger an issuance.
	l.magic = certmagic.New(l.cache, certmagic.Config{
		Storage:            &certmagic.FileStorage{Path: dir},
		KeySource:          certmagic.StandardKeyGenerator{KeyType: certmagic.P256},
		OnEvent:            func(context.Context, string, map[string]any) error { return nil },
		ShouldEmitFunc:     func(string) bool { return false },
		RenewalWindowRatio: certmagic.DefaultRenewalWindowRatio,
		// A ClientHello without SNI (a client that dials an IP address)
		// gets the first name's certificate, so the client's error names
		// a host rather than "no certificate".
		DefaultServerName: names[0],
		Logger:            zl,
	})
	am := certmagic.NewACMEIssuer(l.magic, certmagic.ACMEIssuer{
		CA:     opts.CA,
		TestCA: opts.CA,
		Email:  opts.Email,
		// Configuring an ACME CA is the operator's acceptance of its
		// terms; nothing can prompt a daemon.
		Agreed:       true,
		TrustedRoots: opts.TrustedRoots,
		// Port 80 is not ours; TLS-ALPN-01 is answered on the proxy
		// listener (or at ChallengeAddr before it is bound).
		DisableHTTPChallenge: true,
		// Challenge data stays in this process's memory, not in storage.
		DisableDistributedSolvers: true,
		ListenHost:                listenHost,
		AltTLSALPNPort:            listenPort,
		CertObtainTimeout:         timeout,
		// Dial the CA directly, as signet dials upstreams: an HTTPS_PROXY
		// in signet's environment may well point at signet itself.
		HTTPProxy: func(*http.Request) (*url.URL, error) { return nil, nil },
		Logger:    zl,
	})
	l.magic.Issuers = []certmagic.Issuer{acmeIssuer{RenewalInfoGetter: am, am: am}}
	magic.Store(l.magic)

	octx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	if err := l.magic.ManageSync(octx, names); err != nil {
		l.cache.Stop()
		if octx.Err() != nil && ctx.Err() == nil {
			err = fmt.Errorf("%w (gave up after %v)", err, timeout)
		}
		return fail("certificate for %s from ACME CA %s: %w", strings.Join(names, ", "), opts.CA, err)
	}
	for _, n := range names {
		certs := l.cache.AllMatchingCertificates(n)
		if len(certs) == 0 || certs[0].Leaf == nil {
			l.cache.Stop()
			return fail("certificate for %s from ACME CA %s: managed but not in the cache", n, opts.CA)
		}
		leaf := certs[0].Leaf
		log.Info("ACME certificate ready", "name", n, "ca", opts.CA,
			"issuer", leaf.Issuer.CommonName, "not_after", leaf.NotAfter.UTC().Format(time.RFC3339),
			"storage", dir, "elapsed", time.Since(start).Round(time.Millisecond).String())
	}
	return l, nil
}

// acmeIssuer is certmagic's ACMEIssuer without its interactive side: a
// ManageSync pre-check may otherwise ask on stdin for an email address
// (and change certmagic's package-level defaults). Everything else is
// passed through, including ACME renewal information (ARI): the embedded
// interface holds am too.
type acmeIssuer struct {
	certmagic.RenewalInfoGetter
	am *certmagic.ACMEIssuer
}

var (
	_ certmagic.Issuer            = acmeIssuer{}
	_ certmagic.PreChecker        = acmeIssuer{}
	_ certmagic.RenewalInfoGetter = acmeIssuer{}
)

func (a acmeIssuer) IssuerKey() string { return a.am.IssuerKey() }

func (a acmeIssuer) Issue(ctx context.Context, csr *x509.CertificateRequest) (*certmagic.IssuedCertificate, error) {
	return a.am.Issue(ctx, csr)
}

func (a acmeIssuer) PreCheck(ctx context.Context, names []string, _ bool) error {
	return a.am.PreCheck(ctx, names, false)
}

// challengeHostPort splits ChallengeAddr for certmagic: port 0 (or none)
// means certmagic's default, 443.
func challengeHostPort(addr string) (string, int, error) {
	if addr == "" {
		return "", 0, nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("ACMEOptions.ChallengeAddr %q: %w", addr, err)
	}
	if port == "" {
		return host, 0, nil
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("ACMEOptions.ChallengeAddr %q: port is not a number", addr)
	}
	return host, int(p), nil
}

// openACMEDir creates StateDir (0700) and StateDir/acme (0700) as needed
// and refuses either when group or others can reach into it: it holds the
// account key and the certificates' keys.
func openACMEDir(stateDir string) (string, error) {
	if err := ensurePrivateDir(stateDir); err != nil {
		return "", err
	}
	if err := checkPrivateDir(stateDir); err != nil {
		return "", err
	}
	dir := filepath.Join(stateDir, acmeDirName)
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("create ACME directory %s: %w", dir, err)
	}
	info, err := os.Lstat(dir)
	if err != nil {
		return "", fmt.Errorf("ACME directory %s: %w", dir, err)
	}
	if !info.IsDir() {
		return "", fmt.Errorf("ACME directory %s is not a directory", dir)
	}
	if perm := info.Mode().Perm(); checkModes && perm&0o077 != 0 {
		return "", fmt.Errorf("ACME directory %s has mode %04o, accessible by group or others: run 'chmod 700 %s' (and consider its keys leaked if others could read them)", dir, perm, dir)
	}
	return dir, nil
}

// TLSConfig returns the proxy listener's TLS config: certmagic's
// certificate for the ClientHello's name, or a TLS-ALPN-01 challenge
// certificate while a renewal is being validated.
func (l *ACMEListener) TLSConfig() *tls.Config {
	return &tls.Config{
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			if l.closed.Load() {
				return nil, errors.New("tlsintercept: ACME listener is closed")
			}
			cert, err := l.magic.GetCertificate(hello)
			if err != nil {
				return nil, fmt.Errorf("tlsintercept: ACME certificate for %q: %w", hello.ServerName, err)
			}
			return cert, nil
		},
		// HTTP/1.1 only: CONNECT takes over the connection, which HTTP/2
		// does not allow. acme-tls/1 lets the CA validate renewals here.
		NextProtos: []string{"http/1.1", acmeTLSALPN},
		MinVersion: tls.VersionTLS12,
	}
}

// Names returns the names the listener has certificates for.
func (l *ACMEListener) Names() []string { return append([]string(nil), l.names...) }

// Close stops certmagic's maintenance goroutine (and so renewals) and
// refuses further handshakes. It is idempotent and always returns nil.
func (l *ACMEListener) Close() error {
	if !l.closed.CompareAndSwap(false, true) {
		return nil
	}
	l.cache.Stop()
	return nil
}

var _ io.Closer = (*ACMEListener)(nil)
