// Package proxy owns signet's listeners: the forward proxy (absolute-form
// HTTP and CONNECT), the reverse listeners, routing a request to a route,
// and streaming requests and responses through the signer.
package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/signet-proxy/signet/credentials"
	"github.com/signet-proxy/signet/internal/cache"
	"github.com/signet-proxy/signet/internal/metrics"
	"github.com/signet-proxy/signet/signer"
)

// Options configure a Server. Signer and Logger are required collaborators.
type Options struct {
	// Listen is the forward proxy's address ("127.0.0.1:8080"; port 0
	// picks a free one).
	Listen string
	Routes []Route
	// DenyUnmatched refuses requests for hosts no route signs, instead of
	// passing them on untouched.
	DenyUnmatched bool
	Reverse       []Reverse
	Upstream      UpstreamOptions
	Signer        *signer.Signer
	Logger        *slog.Logger
	// Intercept terminates TLS of CONNECT tunnels to hosts a route signs;
	// nil refuses such tunnels.
	Intercept TLSTerminator
	// ListenerTLS, when set, makes the proxy listener itself speak TLS
	// (clients with an https:// proxy URL).
	ListenerTLS *tls.Config
	// Auth, when set, is required of every request on the proxy listener.
	Auth *BasicAuth
	// Metrics records every request by route ("routes[i]", "reverse[i]",
	// "unmatched") and reports the caches; nil records nothing.
	Metrics *metrics.Metrics
	// AccessLog gets one Info line per request (see accessLog for what it
	// holds and never holds); nil writes none.
	AccessLog *slog.Logger
	// CachePolicy ("lru", the default, or "lfu") and CacheMaxSize (0 means
	// 1000) bound the per-upstream state: the signing scope resolved for
	// each host.
	CachePolicy  string
	CacheMaxSize int
	// Limits bound what clients can make the listeners hold; zero fields
	// take defaults.
	Limits Limits
}

// defaultCacheMaxSize matches the config's default cache.max_size.
const defaultCacheMaxSize = 1000

// TLSTerminator gives the server side TLS config for an intercepted tunnel
// to host (host name without port). tlsintercept.Interceptor is one.
type TLSTerminator interface {
	ServerConfigFor(host string) *tls.Config
}

// Reverse is a listener whose every request goes to one upstream.
type Reverse struct {
	Listen   string
	Upstream *url.URL // scheme and host only
	Source   credentials.Source
	Scope    signer.Scope
	Payload  signer.PayloadMode
	// MaxBodyBytes bounds the body of one request; 0 means no limit.
	MaxBodyBytes int64
}

// Server runs the forward proxy and the reverse listeners.
type Server struct {
	log       *slog.Logger
	unmatched *metrics.Route
	scopes    *cache.Cache[string, lookedUp]
	signer    *signer.Signer
	// cur is the routes, transports and the rest that a reload replaces
	// (reload.go); reloadMu serialises reloads.
	cur         atomic.Pointer[config]
	reloadMu    sync.Mutex
	intercept   TLSTerminator
	listenerTLS *tls.Config
	// inner serves the requests inside intercepted tunnels, one Serve
	// call per tunnel, so that Shutdown drains them with the rest.
	inner        *http.Server
	innerTunnels sync.Map // the served conn -> *interceptedTunnel
	innerFraming *framingConfig

	listen   string
	reverse  []*reverseHandler
	bound    []boundListener
	tunnels  tunnelSet
	serveErr chan error
	bufs     sync.Pool // *[]byte of copyBufSize, for streaming bodies
	metrics  *metrics.Metrics
	// limits are the listeners' (limits.go); conns counts their open
	// connections against limits.MaxConnections.
	limits Limits
	conns  *connLimiter
}

type boundListener struct {
	name string
	ln   net.Listener
	srv  *http.Server
}

// New checks opts and builds a Server; it binds nothing yet.
func New(opts Options) (*Server, error) {
	if opts.Signer == nil || opts.Logger == nil {
		return nil, errors.New("proxy: Signer and Logger are required")
	}
	cfg, err := newConfig(opts, nil)
	if err != nil {
		return nil, err
	}
	if opts.CacheMaxSize == 0 {
		opts.CacheMaxSize = defaultCacheMaxSize
	}
	scopes, err := cache.New(cache.Options[string, lookedUp]{Policy: cache.Policy(opts.CachePolicy), MaxSize: opts.CacheMaxSize})
	if err != nil {
		return nil, fmt.Errorf("proxy: signing scope cache: %w", err)
	}
	s := &Server{
		log:         opts.Logger,
		unmatched:   opts.Metrics.Route("unmatched"),
		scopes:      scopes,
		metrics:     opts.Metrics,
		signer:      opts.Signer,
		intercept:   opts.Intercept,
		listenerTLS: opts.ListenerTLS,
		listen:      opts.Listen,
		serveErr:    make(chan error, 1+len(opts.Reverse)),
		limits:      opts.Limits.withDefaults(),
	}
	s.conns = newConnLimiter(s.limits.MaxConnections)
	s.cur.Store(cfg)
	for i, rv := range opts.Reverse {
		s.reverse = append(s.reverse, &reverseHandler{s: s, listen: rv.Listen, index: i})
	}
	s.inner = s.httpServer(s.guardFraming(http.HandlerFunc(s.serveIntercepted)))
	s.inner.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		return framingContext(s.tunnelContext(ctx, c), c)
	}
	s.innerFraming = newFramingConfig(s.log, "intercepted", s.inner)
	s.inner.ConnState = s.tunnelState
	if m := opts.Metrics; m != nil {
		m.AddCache("signing_scope", scopes.Stats)
		if lc, ok := opts.Intercept.(leafCertificates); ok {
			m.AddCache("leaf_certificates", lc.CacheStats)
			m.SetLeafCertificatesIssued(lc.LeavesIssued)
		}
	}
	return s, nil
}

// leafCertificates is what an interceptor reports for metrics;
// tlsintercept.Interceptor is one.
type leafCertificates interface {
	CacheStats() cache.Stats
	LeavesIssued() uint64
}

// Listen binds every listener, so that a port in use is an error at start.
func (s *Server) Listen(ctx context.Context) error {
	var lc net.ListenConfig
	bind := func(name, addr string, h http.Handler, attrs ...any) error {
		ln, err := lc.Listen(ctx, "tcp", addr)
		if err != nil {
			return fmt.Errorf("proxy: listen %s on %s: %w", name, addr, err)
		}
		tlsOn := name == "proxy" && s.listenerTLS != nil
		// Counted below TLS: a connection takes its place before its
		// handshake, which is work a flood could otherwise make.
		ln = newLimitListener(ln, s.conns, !tlsOn, s.log, name)
		if tlsOn {
			ln = tls.NewListener(ln, proxyListenerTLS(s.listenerTLS))
			attrs = append(attrs, "tls", true)
		}
		// Every request's framing is checked before the server reads
		// it (framing.go); above TLS, on the plaintext.
		srv := s.httpServer(s.guardFraming(h))
		srv.ConnContext = framingContext
		ln = &framingListener{Listener: ln, cfg: newFramingConfig(s.log, name, srv)}
		s.bound = append(s.bound, boundListener{name: name, ln: ln, srv: srv})
		s.log.Info("listening", append([]any{"listener", name, "addr", ln.Addr().String()}, attrs...)...)
		return nil
	}
	if err := bind("proxy", s.listen, http.HandlerFunc(s.serveForward)); err != nil {
		return err
	}
	for i, h := range s.reverse {
		t := s.current().reverse[i]
		if err := bind("reverse", h.listen, h, "index", i, "upstream", t.scheme+"://"+t.host); err != nil {
			s.closeListeners()
			return err
		}
	}
	return nil
}

func (s *Server) httpServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: s.limits.ReadHeaderTimeout,
		IdleTimeout:       s.limits.IdleTimeout,
		MaxHeaderBytes:    s.limits.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// Addr returns the forward proxy's bound address (after Listen).
func (s *Server) Addr() net.Addr {
	if len(s.bound) == 0 {
		return nil
	}
	return s.bound[0].ln.Addr()
}

// ReverseAddrs returns the reverse listeners' bound addresses in config
// order (after Listen).
func (s *Server) ReverseAddrs() []net.Addr {
	var out []net.Addr
	for _, b := range s.bound[min(1, len(s.bound)):] {
		out = append(out, b.ln.Addr())
	}
	return out
}

// Serve serves until ctx ends, then drains in-flight requests for up to
// drain before closing what is left. It returns the first listener error,
// or nil after a clean shutdown.
func (s *Server) Serve(ctx context.Context, drain time.Duration) error {
	for _, b := range s.bound {
		go func() {
			if err := b.srv.Serve(b.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.serveErr <- fmt.Errorf("proxy: serve %s: %w", b.name, err)
			}
		}()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-s.serveErr:
	}
	s.log.Info("shutting down", "drain", drain)
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	var wg sync.WaitGroup
	servers := []boundListener{{name: "intercepted", srv: s.inner}}
	for _, b := range append(servers, s.bound...) {
		wg.Go(func() {
			if e := b.srv.Shutdown(sctx); e != nil {
				s.log.Warn("drain incomplete, closing connections", "listener", b.name, "error", e)
				_ = b.srv.Close()
			}
		})
	}
	s.tunnels.drain(sctx)
	wg.Wait()
	s.current().closeIdle()
	return err
}

func (s *Server) closeListeners() {
	for _, b := range s.bound {
		_ = b.ln.Close()
	}
}

// proxyListenerTLS offers HTTP/1.1 only on the proxy listener: CONNECT
// needs to take over the connection, which HTTP/2 does not allow. An ACME
// TLS-ALPN challenge protocol stays offered.
func proxyListenerTLS(c *tls.Config) *tls.Config {
	c = c.Clone()
	protos := []string{"http/1.1"}
	for _, p := range c.NextProtos {
		if p == "acme-tls/1" {
			protos = append(protos, p)
		}
	}
	c.NextProtos = protos
	return c
}
