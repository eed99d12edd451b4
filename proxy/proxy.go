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
	"time"

	"github.com/signet-proxy/signet/credentials"
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
}

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
}

// Server runs the forward proxy and the reverse listeners.
type Server struct {
	log           *slog.Logger
	signer        *signer.Signer
	router        *router
	denyUnmatched bool
	transport     *http.Transport
	// insecureTransport skips certificate checks, for routes that ask.
	insecureTransport *http.Transport
	connectTo         *connectTo
	intercept         TLSTerminator
	listenerTLS       *tls.Config
	auth              *BasicAuth
	// inner serves the requests inside intercepted tunnels, one Serve
	// call per tunnel, so that Shutdown drains them with the rest.
	inner        *http.Server
	innerTunnels sync.Map // *tls.Conn -> *interceptedTunnel

	listen   string
	reverse  []Reverse
	bound    []boundListener
	tunnels  tunnelSet
	serveErr chan error
	bufs     sync.Pool // *[]byte of copyBufSize, for streaming bodies
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
	rt, err := newRouter(append([]Route(nil), opts.Routes...))
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	tr, ct, err := newTransport(opts.Upstream, false)
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	insecureTr, _, err := newTransport(opts.Upstream, true)
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	for i, rv := range opts.Reverse {
		if rv.Upstream == nil || rv.Upstream.Host == "" || (rv.Upstream.Scheme != "http" && rv.Upstream.Scheme != "https") {
			return nil, fmt.Errorf("proxy: reverse[%d]: upstream must be an absolute http or https URL", i)
		}
		if rv.Source == nil {
			return nil, fmt.Errorf("proxy: reverse[%d]: no credential source", i)
		}
		if rv.Payload == "" {
			opts.Reverse[i].Payload = signer.PayloadAuto
		}
	}
	s := &Server{
		log:               opts.Logger,
		signer:            opts.Signer,
		router:            rt,
		denyUnmatched:     opts.DenyUnmatched,
		transport:         tr,
		insecureTransport: insecureTr,
		connectTo:         ct,
		intercept:         opts.Intercept,
		listenerTLS:       opts.ListenerTLS,
		auth:              opts.Auth,
		listen:            opts.Listen,
		reverse:           opts.Reverse,
		serveErr:          make(chan error, 1+len(opts.Reverse)),
	}
	s.inner = s.httpServer(http.HandlerFunc(s.serveIntercepted))
	s.inner.ConnContext = s.tunnelContext
	s.inner.ConnState = s.tunnelState
	return s, nil
}

// Listen binds every listener, so that a port in use is an error at start.
func (s *Server) Listen(ctx context.Context) error {
	var lc net.ListenConfig
	bind := func(name, addr string, h http.Handler, attrs ...any) error {
		ln, err := lc.Listen(ctx, "tcp", addr)
		if err != nil {
			return fmt.Errorf("proxy: listen %s on %s: %w", name, addr, err)
		}
		if name == "proxy" && s.listenerTLS != nil {
			ln = tls.NewListener(ln, proxyListenerTLS(s.listenerTLS))
			attrs = append(attrs, "tls", true)
		}
		s.bound = append(s.bound, boundListener{name: name, ln: ln, srv: s.httpServer(h)})
		s.log.Info("listening", append([]any{"listener", name, "addr", ln.Addr().String()}, attrs...)...)
		return nil
	}
	if err := bind("proxy", s.listen, http.HandlerFunc(s.serveForward)); err != nil {
		return err
	}
	for i := range s.reverse {
		rv := &s.reverse[i]
		h := &reverseHandler{s: s, t: target{
			scheme:  rv.Upstream.Scheme,
			host:    rv.Upstream.Host,
			source:  rv.Source,
			scope:   rv.Scope,
			payload: rv.Payload,
		}}
		if err := bind("reverse", rv.Listen, h, "index", i, "upstream", rv.Upstream.String()); err != nil {
			s.closeListeners()
			return err
		}
	}
	return nil
}

func (s *Server) httpServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
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
	s.transport.CloseIdleConnections()
	s.insecureTransport.CloseIdleConnections()
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
