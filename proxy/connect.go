package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// serveConnect answers CONNECT. A host that a route signs cannot be
// tunnelled blind: its requests would reach AWS unsigned (and fail), and
// signet would silently not do its job. Every other host is tunnelled
// untouched or refused, by config; signet never sees the plaintext.
//
// ex gets the CONNECT's outcome; a tunnel is reported when it ends. Blind
// tunnels count as requests of route "unmatched"; an intercepted tunnel's
// requests are reported one by one, and the tunnel itself only in the
// access log.
func (s *Server) serveConnect(w http.ResponseWriter, r *http.Request, c *config, ex *exchange) {
	hostport := r.Host
	ex.host = hostport
	if _, port, err := net.SplitHostPort(hostport); err != nil || port == "" {
		ex.fail(w, &proxyError{status: http.StatusBadRequest, code: codeBadRequest,
			message: "CONNECT target must be host:port, got " + hostport})
		return
	}
	if c.router.matchesHost(hostport) {
		if s.intercept == nil {
			ex.fail(w, &proxyError{status: http.StatusNotImplemented, code: codeConnectNotSupported,
				message: "host " + hostport + " is signed by a route, and TLS interception is not configured",
				fix:     "send plain http:// URLs through HTTP_PROXY, or point the client's endpoint at a reverse listener"})
			return
		}
		s.interceptConnect(w, r, hostport, ex)
		return
	}
	if c.denyUnmatched {
		s.deny(w, hostport, ex)
		return
	}
	ex.route, ex.obs = "unmatched", s.unmatched
	var d net.Dialer
	upstream, err := d.DialContext(r.Context(), "tcp", c.connectTo.resolve(hostport))
	if err != nil {
		ex.fail(w, classify(err))
		s.log.Warn("tunnel dial failed", "host", hostport, "error", err)
		return
	}
	client, err := s.establish(w, hostport)
	if err != nil {
		_ = upstream.Close()
		return
	}
	ex.status = http.StatusOK
	ex.bytesIn, ex.bytesOut = s.tunnels.run(client, upstream, client)
}

// establish answers a CONNECT with 200 and takes over its connection. Bytes
// the client sent right after its CONNECT (a TLS ClientHello, often) may
// already sit in the server's read buffer; the returned conn reads those
// first.
func (s *Server) establish(w http.ResponseWriter, hostport string) (net.Conn, error) {
	rc := http.NewResponseController(w)
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return nil, err
	}
	conn, brw, err := rc.Hijack()
	if err != nil {
		s.log.Warn("CONNECT hijack failed", "host", hostport, "error", err)
		return nil, err
	}
	protocolSwitched(conn)
	return bufferedConn(conn, brw.Reader), nil
}

// prefixConn is a conn whose first bytes were already read into a buffer.
type prefixConn struct {
	net.Conn
	r io.Reader
}

func (c *prefixConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// CloseWrite half-closes the conn underneath, so that a relay can pass an
// end of stream on through a prefixConn too.
func (c *prefixConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// tunnelSet tracks hijacked connections (CONNECT tunnels and WebSocket
// relays), which http.Server.Shutdown does not know about, so that shutdown
// can wait for them and then cut them.
type tunnelSet struct {
	mu      sync.Mutex
	conns   map[io.Closer]struct{}
	wg      sync.WaitGroup
	closing bool
}

// add registers a tunnel's connections; false once shutdown has begun.
func (ts *tunnelSet) add(cs ...io.Closer) bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.closing {
		return false
	}
	if ts.conns == nil {
		ts.conns = make(map[io.Closer]struct{})
	}
	for _, c := range cs {
		ts.conns[c] = struct{}{}
	}
	ts.wg.Add(1)
	return true
}

func (ts *tunnelSet) remove(cs ...io.Closer) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for _, c := range cs {
		delete(ts.conns, c)
	}
	ts.wg.Done()
}

// run relays both ways until either side closes; the handler goroutine
// that calls it owns the relay, and both relay goroutines have ended when
// it returns. upstream is a dialled conn, or the connection an upstream
// handed over with its 101. It returns the bytes relayed from the client
// and to it.
func (ts *tunnelSet) run(client net.Conn, upstream io.ReadWriteCloser, fromClient io.Reader) (in, out int64) {
	if !ts.add(client, upstream) {
		_ = client.Close()
		_ = upstream.Close()
		return 0, 0
	}
	defer ts.remove(client, upstream)

	done := make(chan struct{}, 2)
	relay := func(dst io.Writer, src io.Reader, n *int64) {
		*n, _ = io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		done <- struct{}{}
	}
	go relay(upstream, fromClient, &in)
	go relay(client, upstream, &out)
	<-done
	// One direction ended; give the other a moment to finish its last
	// bytes (a half-closed TLS session), then cut both, which ends its
	// copy at once.
	t := time.NewTimer(5 * time.Second)
	pending := 1
	select {
	case <-done:
		pending = 0
	case <-t.C:
	}
	t.Stop()
	_ = client.Close()
	_ = upstream.Close()
	for range pending {
		<-done
	}
	return in, out
}

// drain waits for tunnels to end until ctx does, then closes the rest. No
// tunnel starts after drain begins.
func (ts *tunnelSet) drain(ctx context.Context) {
	ts.mu.Lock()
	ts.closing = true
	ts.mu.Unlock()
	finished := make(chan struct{})
	go func() { ts.wg.Wait(); close(finished) }()
	select {
	case <-finished:
		return
	case <-ctx.Done():
	}
	ts.mu.Lock()
	for c := range ts.conns {
		_ = c.Close()
	}
	ts.mu.Unlock()
	<-finished
}
