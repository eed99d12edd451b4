package proxy

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"

	"github.com/signet-proxy/signet/signer"
)

// config is the part of a Server that a reload replaces: an immutable
// snapshot, swapped whole. Each request loads it once, as it starts, and
// keeps it to the end, so a request in flight, a tunnel, a relayed
// WebSocket finish with what they started with while new requests see
// the new routes at once. The listeners, the interceptor, the signer,
// the metrics and the caches belong to the Server and stay.
type config struct {
	router        *router
	denyUnmatched bool
	// reverse are the reverse listeners' targets, by index.
	reverse []target
	auth    *BasicAuth // nil: no proxy authentication
	// accessLog gets one line per request; nil writes none.
	accessLog *slog.Logger

	upstream  UpstreamOptions
	transport *http.Transport
	// insecureTransport skips certificate checks, for routes that ask.
	insecureTransport *http.Transport
	// h1 takes the bodiless GETs and HEADs to plain-HTTP upstreams.
	h1        *h1Client
	connectTo *connectTo
}

// newConfig checks the reloadable parts of opts and builds their
// snapshot. The upstream transports of prev (nil at start) are kept when
// opts.Upstream is the same, so their idle connections serve on.
func newConfig(opts Options, prev *config) (*config, error) {
	rt, err := newRouter(append([]Route(nil), opts.Routes...), opts.Metrics)
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	c := &config{
		router:        rt,
		denyUnmatched: opts.DenyUnmatched,
		auth:          opts.Auth,
		accessLog:     opts.AccessLog,
		upstream:      opts.Upstream,
	}
	for i, rv := range opts.Reverse {
		if rv.Upstream == nil || rv.Upstream.Host == "" || (rv.Upstream.Scheme != "http" && rv.Upstream.Scheme != "https") {
			return nil, fmt.Errorf("proxy: reverse[%d]: upstream must be an absolute http or https URL", i)
		}
		if rv.Source == nil {
			return nil, fmt.Errorf("proxy: reverse[%d]: no credential source", i)
		}
		if rv.Payload == "" {
			rv.Payload = signer.PayloadAuto
		}
		name := fmt.Sprintf("reverse[%d]", i)
		c.reverse = append(c.reverse, target{
			scheme:  rv.Upstream.Scheme,
			host:    rv.Upstream.Host,
			source:  rv.Source,
			scope:   rv.Scope,
			payload: rv.Payload,
			maxBody: rv.MaxBodyBytes,
			route:   name,
			obs:     opts.Metrics.Route(name),
		})
	}
	for i := range c.reverse {
		c.reverse[i].up = c
	}
	if prev != nil && sameUpstream(prev.upstream, opts.Upstream) {
		c.transport, c.insecureTransport, c.h1, c.connectTo = prev.transport, prev.insecureTransport, prev.h1, prev.connectTo
		return c, nil
	}
	if c.transport, c.connectTo, err = newTransport(opts.Upstream, false); err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	if c.insecureTransport, _, err = newTransport(opts.Upstream, true); err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	c.h1 = newH1Client(c.transport.DialContext)
	c.h1.headerTimeout = opts.Upstream.ResponseHeaderTimeout
	return c, nil
}

// sameUpstream reports whether two upstream configurations dial, verify
// and wait alike.
func sameUpstream(a, b UpstreamOptions) bool {
	if !maps.Equal(a.ConnectTo, b.ConnectTo) || a.ResponseHeaderTimeout != b.ResponseHeaderTimeout {
		return false
	}
	if a.RootCAs == nil || b.RootCAs == nil {
		return a.RootCAs == b.RootCAs
	}
	return a.RootCAs.Equal(b.RootCAs)
}

// closeIdle closes the idle upstream connections of c's transports.
func (c *config) closeIdle() {
	c.transport.CloseIdleConnections()
	c.insecureTransport.CloseIdleConnections()
	c.h1.CloseIdleConnections()
}

// current is the snapshot in force.
func (s *Server) current() *config { return s.cur.Load() }

// ErrRestartNeeded is wrapped by a Reload that changes what only a new
// Server can: the addresses it listens on.
var ErrRestartNeeded = errors.New("restart needed")

// Reload applies the reloadable parts of opts while the Server runs: the
// routes, what unmatched requests get, the reverse listeners' upstreams,
// sources, scopes, payload modes and body limits, the upstream dialling (connect_to,
// roots), proxy authentication and the access log. The listen addresses
// and the listeners' Limits must be those the Server was built with
// (else an error wrapping ErrRestartNeeded); Signer, Logger, Intercept,
// ListenerTLS, Metrics and the cache settings are the Server's and are
// ignored. On an error nothing changes.
//
// Requests already running, and open tunnels, finish with the routes
// and sources they started with; each request inside an intercepted
// tunnel is routed by the config in force when it starts.
func (s *Server) Reload(opts Options) error {
	if opts.Listen != s.listen {
		return fmt.Errorf("proxy: reload: listen %s, was %s: %w", opts.Listen, s.listen, ErrRestartNeeded)
	}
	if len(opts.Reverse) != len(s.reverse) {
		return fmt.Errorf("proxy: reload: %d reverse listeners, was %d: %w", len(opts.Reverse), len(s.reverse), ErrRestartNeeded)
	}
	for i, rv := range opts.Reverse {
		if rv.Listen != s.reverse[i].listen {
			return fmt.Errorf("proxy: reload: reverse[%d] listen %s, was %s: %w", i, rv.Listen, s.reverse[i].listen, ErrRestartNeeded)
		}
	}
	if l := opts.Limits.withDefaults(); l != s.limits {
		return fmt.Errorf("proxy: reload: listener limits %+v, were %+v: %w", l, s.limits, ErrRestartNeeded)
	}
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	prev := s.current()
	c, err := newConfig(opts, prev)
	if err != nil {
		return err
	}
	s.cur.Store(c)
	if c.transport != prev.transport {
		// Requests on the old transports finish on their connections;
		// what is idle now will not be used again.
		prev.closeIdle()
	}
	return nil
}

// SignsHost reports whether a route in force signs host (a name without
// port): the test for issuing an interception certificate, which follows
// reloads.
func (s *Server) SignsHost(host string) bool { return s.current().router.matchesHost(host) }
