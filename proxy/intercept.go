package proxy

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// interceptedTunnel is one CONNECT whose TLS signet terminates.
type interceptedTunnel struct {
	target string // CONNECT host:port
	host   string // target's host name, lowercased
	port   string
	done   chan struct{} // closed when the inner server lets go of the conn
	once   sync.Once
}

func (t *interceptedTunnel) finish() { t.once.Do(func() { close(t.done) }) }

type tunnelKey struct{}

// handshakeTimeout bounds the client's TLS handshake inside a tunnel.
const handshakeTimeout = 10 * time.Second

// interceptConnect terminates TLS on a CONNECT to a host a route signs, then
// serves the requests inside through dispatch, the same path as forward
// proxy requests. HTTP/2 or HTTP/1.1 by ALPN.
func (s *Server) interceptConnect(w http.ResponseWriter, r *http.Request, hostport string, ex *exchange) {
	host, port, _ := net.SplitHostPort(hostport)
	t := &interceptedTunnel{target: hostport, host: hostOnly(hostport), port: port, done: make(chan struct{})}
	raw, err := s.establish(w, hostport)
	if err != nil {
		return
	}
	ex.status = http.StatusOK
	// The access line of the CONNECT counts the tunnel's bytes (TLS
	// records); its requests have lines of their own.
	counted := &countingConn{Conn: raw}
	defer func() { ex.bytesIn, ex.bytesOut = counted.in.Load(), counted.out.Load() }()
	conn := tls.Server(counted, s.intercept.ServerConfigFor(strings.TrimSuffix(strings.ToLower(host), ".")))
	ctx, cancel := context.WithTimeout(r.Context(), handshakeTimeout)
	err = conn.HandshakeContext(ctx)
	cancel()
	if err != nil {
		// The client's TLS refused us (it does not trust signet's CA) or
		// sent a name other than the CONNECT target: both worth a line.
		s.log.Warn("TLS handshake in intercepted tunnel failed", "host", hostport, "remote", r.RemoteAddr, "error", err)
		_ = conn.Close()
		return
	}
	// HTTP/1.1 inside the tunnel has its framing checked like any
	// client's (framing.go); HTTP/2's binary framing needs no check, and
	// the server must see the *tls.Conn to speak it.
	var served net.Conn = conn
	if conn.ConnectionState().NegotiatedProtocol != "h2" {
		served = newFramingConn(conn, s.innerFraming)
	}
	s.innerTunnels.Store(served, t)
	ln := newOneConnListener(served, t.done)
	// Serve returns once the inner server has closed or hijacked the
	// conn (tunnelState closes done) or shuts down.
	_ = s.inner.Serve(ln)
	if !ln.accepted() {
		// The server was shutting down and never took the conn.
		s.innerTunnels.Delete(served)
		_ = conn.Close()
		return
	}
	<-t.done
}

func (s *Server) tunnelContext(ctx context.Context, c net.Conn) context.Context {
	if t, ok := s.innerTunnels.Load(c); ok {
		return context.WithValue(ctx, tunnelKey{}, t)
	}
	return ctx
}

func (s *Server) tunnelState(c net.Conn, st http.ConnState) {
	if st != http.StateClosed && st != http.StateHijacked {
		return
	}
	if t, ok := s.innerTunnels.LoadAndDelete(c); ok {
		t.(*interceptedTunnel).finish()
	}
}

// serveIntercepted handles one request from inside a tunnel. Its Host must
// name the CONNECT target: a client that tunnels to one host and asks for
// another would otherwise get a request signed for a host it never
// connected to.
func (s *Server) serveIntercepted(w http.ResponseWriter, r *http.Request) {
	ex := s.begin()
	defer s.finish(&ex, r)
	t, _ := r.Context().Value(tunnelKey{}).(*interceptedTunnel)
	if t == nil {
		ex.fail(w, &proxyError{status: http.StatusInternalServerError, code: codeInterceptFailed, message: "request outside a tunnel"})
		return
	}
	if !sameAuthority(r.Host, t) {
		s.log.Warn("refused request whose Host differs from its tunnel", "connect", t.target, "host", r.Host)
		ex.fail(w, &proxyError{status: http.StatusMisdirectedRequest, code: codeHostMismatch,
			message: "Host " + r.Host + " is not the CONNECT target " + t.target,
			fix:     "send requests for each host through its own CONNECT"})
		return
	}
	r.URL.Scheme = "https"
	r.URL.Host = t.host
	if t.port != "443" {
		r.URL.Host = net.JoinHostPort(t.host, t.port)
	}
	s.dispatch(w, r, s.current(), &ex)
}

// sameAuthority compares a request's Host with the tunnel's target; the
// port may be left out when it is 443.
func sameAuthority(hostHeader string, t *interceptedTunnel) bool {
	h, p := hostHeader, "443"
	if hh, pp, err := net.SplitHostPort(hostHeader); err == nil {
		h, p = hh, pp
	}
	return strings.TrimSuffix(strings.ToLower(h), ".") == t.host && p == t.port
}

// oneConnListener hands one connection to http.Server.Serve, then blocks
// Accept until that connection is done, so Serve returns exactly when the
// tunnel ends (or the server shuts down and closes the listener).
type oneConnListener struct {
	mu        sync.Mutex
	conn      net.Conn
	handedOut bool
	done      <-chan struct{}
	closed    chan struct{}
}

func newOneConnListener(c net.Conn, done <-chan struct{}) *oneConnListener {
	return &oneConnListener{conn: c, done: done, closed: make(chan struct{})}
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if !l.handedOut {
		l.handedOut = true
		l.mu.Unlock()
		return l.conn, nil
	}
	l.mu.Unlock()
	select {
	case <-l.done:
	case <-l.closed:
	}
	return nil, net.ErrClosed
}

// accepted reports whether Serve took the connection.
func (l *oneConnListener) accepted() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.handedOut
}

func (l *oneConnListener) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.closed:
	default:
		close(l.closed)
	}
	return nil
}

func (l *oneConnListener) Addr() net.Addr { return l.conn.LocalAddr() }
