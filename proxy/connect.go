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
func (s *Server) serveConnect(w http.ResponseWriter, r *http.Request) {
	hostport := r.Host
	if _, port, err := net.SplitHostPort(hostport); err != nil || port == "" {
		writeError(w, &proxyError{status: http.StatusBadRequest, code: codeBadRequest,
			message: "CONNECT target must be host:port, got " + hostport})
		return
	}
	if s.router.matchesHost(hostport) {
		if s.intercept == nil {
			writeError(w, &proxyError{status: http.StatusNotImplemented, code: codeConnectNotSupported,
				message: "host " + hostport + " is signed by a route, and TLS interception is not configured",
				fix:     "send plain http:// URLs through HTTP_PROXY, or point the client's endpoint at a reverse listener"})
			return
		}
		s.interceptConnect(w, r, hostport)
		return
	}
	if s.denyUnmatched {
		s.deny(w, hostport)
		return
	}
	var d net.Dialer
	upstream, err := d.DialContext(r.Context(), "tcp", s.connectTo.resolve(hostport))
	if err != nil {
		pe := classify(err)
		writeError(w, pe)
		s.log.Warn("tunnel dial failed", "host", hostport, "error", err)
		return
	}
	client, err := s.establish(w, hostport)
	if err != nil {
		_ = upstream.Close()
		return
	}
	s.tunnels.run(client, upstream, client)
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
	if n := brw.Reader.Buffered(); n > 0 {
		return &prefixConn{Conn: conn, r: io.MultiReader(io.LimitReader(brw.Reader, int64(n)), conn)}, nil
	}
	return conn, nil
}

// prefixConn is a conn whose first bytes were already read into a buffer.
type prefixConn struct {
	net.Conn
	r io.Reader
}

func (c *prefixConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// tunnelSet tracks hijacked connections, which http.Server.Shutdown does not
// know about, so that shutdown can wait for them and then cut them.
type tunnelSet struct {
	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup
	closing bool
}

// add registers a tunnel's connections; false once shutdown has begun.
func (ts *tunnelSet) add(cs ...net.Conn) bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.closing {
		return false
	}
	if ts.conns == nil {
		ts.conns = make(map[net.Conn]struct{})
	}
	for _, c := range cs {
		ts.conns[c] = struct{}{}
	}
	ts.wg.Add(1)
	return true
}

func (ts *tunnelSet) remove(cs ...net.Conn) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for _, c := range cs {
		delete(ts.conns, c)
	}
	ts.wg.Done()
}

// run relays both ways until either side closes; the handler goroutine
// that calls it owns the relay.
func (ts *tunnelSet) run(client, upstream net.Conn, fromClient io.Reader) {
	defer client.Close()
	defer upstream.Close()
	if !ts.add(client, upstream) {
		return
	}
	defer ts.remove(client, upstream)

	done := make(chan struct{}, 2)
	relay := func(dst net.Conn, src io.Reader) {
		_, _ = io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		done <- struct{}{}
	}
	go relay(upstream, fromClient)
	go relay(client, upstream)
	<-done
	// One direction ended; give the other a moment to finish its last
	// bytes (a half-closed TLS session), then cut both.
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
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
