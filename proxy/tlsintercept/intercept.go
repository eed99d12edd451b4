// Package tlsintercept terminates TLS for CONNECT tunnels that signet
// signs: it keeps signet's local CA in the state directory and issues leaf
// certificates on demand through certmagic, for approved hosts only.
package tlsintercept

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/signet-proxy/signet/internal/cache"
)

// Options configure Open.
type Options struct {
	// StateDir holds the CA: ca.pem (0644) and ca-key.pem (0600). It must
	// not be accessible by group or others; it is created with mode 0700
	// if missing.
	StateDir string
	// Allow approves the hosts that get a certificate (the proxy passes
	// "a route signs it"). Required: with no policy, nothing would be
	// intercepted, which is better said at startup than at every handshake.
	Allow func(host string) bool
	// CacheSize bounds the leaf certificates held in memory; 0 means 1000.
	CacheSize int
	// CachePolicy is how the leaf cache picks what to drop when full:
	// "lru" (the default) or "lfu".
	CachePolicy string
	// Now is the clock for creating the CA and for leaf validity; nil
	// means time.Now. certmagic decides renewals by the wall clock.
	Now func() time.Time
	// Logger receives our logs and certmagic's; nil discards them.
	Logger *slog.Logger
}

const (
	defaultCacheSize = 1000
	// storagePerCert: certmagic stores three items per certificate
	// (certificate, key, metadata); the slack covers renewals in flight.
	storagePerCert = 4
)

// Stats counts certificate work, for metrics.
type Stats struct {
	Issued uint64 // leaf certificates signed (first issues and renewals)
	Hits   uint64 // handshakes served from the leaf cache
	Misses uint64 // handshakes that went to certmagic (to load, issue or renew)
	Denied uint64 // handshakes refused: host not allowed, or SNI not the tunnel's host
}

// Interceptor issues and serves leaf certificates for intercepted hosts.
// It is safe for concurrent use.
type Interceptor struct {
	ca     *authority
	allow  func(string) bool
	log    *slog.Logger
	issuer *localIssuer
	cache  *certmagic.Cache
	magic  *certmagic.Config
	// leaves sits in front of certmagic: a handshake for a host whose
	// leaf is outside its renewal window is served from here, under the
	// configured policy and bound.
	leaves *cache.Cache[string, leaf]

	hits, misses, denied atomic.Uint64
	closed               atomic.Bool
}

// Open loads the CA from opts.StateDir, creating it on first run, and
// starts certmagic's certificate cache. Call Close to stop the cache.
func Open(ctx context.Context, opts Options) (*Interceptor, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open TLS interceptor: %w", err)
	}
	if opts.Allow == nil {
		return nil, errors.New("open TLS interceptor: Options.Allow is nil: pass the policy that decides which hosts are intercepted")
	}
	if opts.CacheSize < 0 {
		return nil, fmt.Errorf("open TLS interceptor: Options.CacheSize is %d: use 0 for the default (%d) or a positive size", opts.CacheSize, defaultCacheSize)
	}
	size := opts.CacheSize
	if size == 0 {
		size = defaultCacheSize
	}
	leaves, err := cache.New(cache.Options[string, leaf]{Policy: cache.Policy(opts.CachePolicy), MaxSize: size})
	if err != nil {
		return nil, fmt.Errorf("open TLS interceptor: leaf certificate cache: %w", err)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	hostname, err := os.Hostname()
	if err != nil || hostname == "" {
		// The hostname only makes the CA's name recognisable in a trust
		// store; it is not worth failing for.
		hostname = "unknown host"
	}
	ca, err := openCA(opts.StateDir, hostname, now())
	if err != nil {
		return nil, fmt.Errorf("open TLS interceptor: %w", err)
	}

	i := &Interceptor{
		ca:     ca,
		allow:  opts.Allow,
		log:    log,
		issuer: newLocalIssuer(ca, opts.Allow, now, log),
		leaves: leaves,
	}
	zl := newZapLogger(log)
	// The cache asks for the Config of a certificate it maintains; there
	// is only one. The pointer is published before the cache can call
	// (its maintenance runs on a ticker), and atomically so the race
	// detector agrees.
	var magic atomic.Pointer[certmagic.Config]
	i.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) {
			if c := magic.Load(); c != nil {
				return c, nil
			}
			return nil, errors.New("tlsintercept: certmagic config not ready")
		},
		Capacity: size,
		Logger:   zl,
	})
	// Every field that certmagic.New would otherwise copy from its
	// package-level Default is set here, so no other code in the process
	// can change how we issue (ACME issuer, file storage, event hooks).
	i.magic = certmagic.New(i.cache, certmagic.Config{
		Issuers:   []certmagic.Issuer{i.issuer},
		Storage:   newMemStorage(size * storagePerCert),
		KeySource: certmagic.StandardKeyGenerator{KeyType: certmagic.P256},
		OnDemand:  &certmagic.OnDemandConfig{DecisionFunc: i.decide},
		OnEvent:   func(context.Context, string, map[string]any) error { return nil },
		// Nothing listens to events; saying so spares certmagic building
		// their data on every handshake.
		ShouldEmitFunc:     func(string) bool { return false },
		RenewalWindowRatio: certmagic.DefaultRenewalWindowRatio,
		// Our leaves carry no OCSP responder and no ACME renewal info:
		// skip both lookups.
		OCSP:       certmagic.OCSPConfig{DisableStapling: true},
		DisableARI: true,
		// The storage check guards against a full or read-only disk; ours
		// is memory.
		DisableStorageCheck: true,
		Logger:              zl,
	})
	magic.Store(i.magic)
	log.Info("TLS interception ready", "ca", ca.certPath, "ca_subject", ca.cert.Subject.CommonName, "cache_size", size)
	return i, nil
}

// decide is certmagic's on-demand DecisionFunc: a host the policy refuses
// gets no certificate, so its handshake fails. The proxy also decides at
// CONNECT time; this is the second line.
func (i *Interceptor) decide(_ context.Context, name string) error {
	if i.closed.Load() {
		return errors.New("interceptor is closed")
	}
	if !i.allow(name) {
		i.denied.Add(1)
		i.log.Debug("refused certificate for host not intercepted", "host", name)
		return fmt.Errorf("host %s is not intercepted", name)
	}
	return nil
}

// CACertPEM returns the CA certificate in PEM.
func (i *Interceptor) CACertPEM() []byte { return append([]byte(nil), i.ca.certPEM...) }

// CACert returns the parsed CA certificate. Callers must not modify it.
func (i *Interceptor) CACert() *x509.Certificate { return i.ca.cert }

// CAPath returns the path of ca.pem, for users to add to a trust store.
func (i *Interceptor) CAPath() string { return i.ca.certPath }

// ServerConfig returns a tls.Config that serves a certificate for the
// ClientHello's SNI, issuing one on demand for allowed hosts. A ClientHello
// without SNI fails: use ServerConfigFor, which knows the tunnel's host.
func (i *Interceptor) ServerConfig() *tls.Config {
	return i.serverConfig(func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if hello.ServerName == "" {
			i.denied.Add(1)
			return nil, errors.New("tlsintercept: ClientHello has no server name (SNI): use ServerConfigFor with the CONNECT host")
		}
		return i.getCertificate(hello, canonicalHost(hello.ServerName))
	})
}

// ServerConfigFor returns a tls.Config for a tunnel to host (the CONNECT
// target; a port is ignored). A ClientHello without SNI (clients send none
// for IP addresses) is served a certificate for host; Allow then sees an IP
// in canonical form. A ClientHello whose SNI names another host is
// refused: a tunnel to host must not become a way to obtain a certificate
// for a different name.
func (i *Interceptor) ServerConfigFor(host string) *tls.Config {
	// Tolerate a CONNECT authority with its port.
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = canonicalHost(host)
	hostIP := net.ParseIP(host)
	return i.serverConfig(func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		switch sni := canonicalHost(hello.ServerName); {
		case sni == "" && hostIP != nil:
			// certmagic names a certificate for a ClientHello without SNI
			// after the connection's local IP address (and its IDNA
			// check would reject an IPv6 literal given as ServerName), so
			// present the tunnel's IP as that address.
			h := *hello
			h.Conn = tunnelConn{Conn: hello.Conn, local: &net.TCPAddr{IP: hostIP}}
			return i.getCertificate(&h, host)
		case sni == "":
			h := *hello
			h.ServerName = host
			return i.getCertificate(&h, host)
		case sni != host:
			i.denied.Add(1)
			return nil, fmt.Errorf("tlsintercept: ClientHello names %q but the tunnel is to %q: refusing a certificate for another host", hello.ServerName, host)
		}
		return i.getCertificate(hello, host)
	})
}

// tunnelConn reports the tunnel's target as its local address; see
// ServerConfigFor.
type tunnelConn struct {
	net.Conn
	local net.Addr
}

func (c tunnelConn) LocalAddr() net.Addr { return c.local }

// RemoteAddr is guarded because certmagic logs it, and a ClientHelloInfo
// built outside crypto/tls may carry no connection.
func (c tunnelConn) RemoteAddr() net.Addr {
	if c.Conn == nil {
		return c.local
	}
	return c.Conn.RemoteAddr()
}

func (i *Interceptor) serverConfig(get func(*tls.ClientHelloInfo) (*tls.Certificate, error)) *tls.Config {
	return &tls.Config{
		GetCertificate: get,
		// certmagic's own TLSConfig offers only the ACME challenge
		// protocol; we serve HTTP.
		NextProtos: []string{"h2", "http/1.1"},
		MinVersion: tls.VersionTLS12,
	}
}

// leaf is a certificate in the leaf cache and when certmagic wants it
// renewed.
type leaf struct {
	cert    *tls.Certificate
	renewAt time.Time
}

// getCertificate serves name's leaf from the leaf cache while it is
// outside its renewal window, and otherwise lets certmagic load, issue or
// renew one (it runs one issuance per name however many handshakes wait).
// A leaf inside its window is not kept, so that handshakes keep asking
// certmagic until its renewal is done.
func (i *Interceptor) getCertificate(hello *tls.ClientHelloInfo, name string) (*tls.Certificate, error) {
	if i.closed.Load() {
		return nil, errors.New("tlsintercept: interceptor is closed")
	}
	// certmagic decides renewals by the wall clock; so does the cache.
	now := time.Now()
	if l, ok := i.leaves.Get(name); ok {
		if now.Before(l.renewAt) {
			i.hits.Add(1)
			return l.cert, nil
		}
		i.leaves.Remove(name)
	}
	i.misses.Add(1)
	cert, err := i.magic.GetCertificate(hello)
	if err != nil {
		return nil, fmt.Errorf("tlsintercept: certificate for %s: %w", name, err)
	}
	if x := cert.Leaf; x != nil {
		life := x.NotAfter.Sub(x.NotBefore)
		renewAt := x.NotAfter.Add(-time.Duration(float64(life) * i.magic.RenewalWindowRatio))
		if now.Before(renewAt) {
			i.leaves.Add(name, leaf{cert: cert, renewAt: renewAt})
		}
	}
	return cert, nil
}

// CacheStats returns the leaf cache's figures, for metrics.
func (i *Interceptor) CacheStats() cache.Stats { return i.leaves.Stats() }

// LeavesIssued returns how many leaf certificates the CA has signed, for
// metrics.
func (i *Interceptor) LeavesIssued() uint64 { return i.issuer.issued.Load() }

// Stats returns the counters so far.
func (i *Interceptor) Stats() Stats {
	return Stats{
		Issued: i.issuer.issued.Load(),
		Hits:   i.hits.Load(),
		Misses: i.misses.Load(),
		Denied: i.denied.Load(),
	}
}

// Close stops certmagic's maintenance goroutine and refuses further
// handshakes. It is idempotent and always returns nil; the error is for
// io.Closer.
func (i *Interceptor) Close() error {
	if !i.closed.CompareAndSwap(false, true) {
		return nil
	}
	i.issuer.closed.Store(true)
	// Stop blocks until the goroutine has exited.
	i.cache.Stop()
	return nil
}

var _ io.Closer = (*Interceptor)(nil)

// canonicalHost lower-cases a host name and drops a trailing dot, and
// writes an IP address (bracketed or not) in its canonical form, so that
// names compare equal however a client spelled them.
func canonicalHost(host string) string {
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if ip := net.ParseIP(host); ip != nil {
		return ip.String()
	}
	return strings.TrimSuffix(strings.ToLower(host), ".")
}
