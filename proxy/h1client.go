package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/http/httpguts"
)

// h1Client sends the commonest request, a GET or HEAD without a body to a
// plain-HTTP upstream, over HTTP/1.1 in the calling goroutine: it writes the
// request, reads the answer and hands the connection back to its pool when
// the body ends. http.Transport does the same work across three goroutines
// per connection (the caller, a writer and a reader) with channels between
// them, which on a small GET costs about as much as signing it. Everything
// else (bodies, which must be sent while an early answer may arrive;
// Expect; upgrades; TLS and HTTP/2) goes to http.Transport.
type h1Client struct {
	dial        func(ctx context.Context, network, addr string) (net.Conn, error)
	idleTimeout time.Duration
	// headerTimeout bounds the wait for the response headers once the
	// request is written (UpstreamOptions.ResponseHeaderTimeout); 0 waits
	// as long as the client does.
	headerTimeout time.Duration

	mu     sync.Mutex
	idle   map[string][]*h1Conn // by "host:port", most recently used last
	nIdle  int
	closed bool
}

// Pool bounds, as the transport's: idle connections per upstream and in
// all, and how long one may stay idle.
const (
	h1MaxIdlePerHost = 64
	h1MaxIdle        = 256
	h1IdleTimeout    = 90 * time.Second
	// h1MaxHeaderBytes bounds a response's header section (with any 1xx
	// answers before it): an upstream cannot make signet buffer without
	// end.
	h1MaxHeaderBytes = 1 << 20
	h1BufSize        = 4 << 10
)

func newH1Client(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *h1Client {
	return &h1Client{dial: dial, idleTimeout: h1IdleTimeout, idle: make(map[string][]*h1Conn)}
}

// handles reports whether out is for the fast path: see h1Client.
func (c *h1Client) handles(out *http.Request) bool {
	if out.URL.Scheme != "http" || (out.Method != http.MethodGet && out.Method != http.MethodHead) ||
		out.Body != nil || out.ContentLength != 0 || out.Close {
		return false
	}
	h := out.Header
	if _, ok := h["Expect"]; ok {
		return false
	}
	if _, ok := h["Connection"]; ok {
		return false // an upgrade (askUpgrade) or anything else per hop
	}
	return isASCII(out.Host) && isASCII(out.URL.Host)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// errStaleConn marks a failure on a pooled connection before any of the
// answer arrived: the upstream had closed it while idle, and the request
// is sent again on a new one (GET and HEAD are safe to repeat).
var errStaleConn = errors.New("pooled connection closed by the upstream")

// RoundTrip sends out, which handles accepted. The response body must be
// read to its end or closed.
func (c *h1Client) RoundTrip(out *http.Request) (*http.Response, error) {
	key := dialAddr(out)
	for {
		pc, err := c.get(out.Context(), key)
		if err != nil {
			return nil, err
		}
		resp, err := pc.roundTrip(out)
		if err == nil {
			return resp, nil
		}
		pc.close()
		if !errors.Is(err, errStaleConn) {
			return nil, err
		}
		// Only pooled connections go stale, and get takes each once, so
		// this ends: at worst with a fresh connection's own answer.
	}
}

// dialAddr is the pool key and dial address: host:port, the port
// defaulted as the transport does.
func dialAddr(out *http.Request) string {
	if out.URL.Port() != "" {
		return out.URL.Host
	}
	return net.JoinHostPort(strings.TrimSuffix(strings.TrimPrefix(out.URL.Hostname(), "["), "]"), "80")
}

// get takes an idle connection to key, or dials one.
func (c *h1Client) get(ctx context.Context, key string) (*h1Conn, error) {
	c.mu.Lock()
	for conns := c.idle[key]; len(conns) > 0; conns = c.idle[key] {
		pc := conns[len(conns)-1]
		conns[len(conns)-1] = nil
		c.setIdle(key, conns[:len(conns)-1])
		c.nIdle--
		if !pc.idleTimer.Stop() {
			// Its timer fired and is closing it.
			continue
		}
		c.mu.Unlock()
		pc.reused = true
		return pc, nil
	}
	c.mu.Unlock()
	conn, err := c.dial(ctx, "tcp", key)
	if err != nil {
		return nil, err
	}
	pc := &h1Conn{c: c, key: key, conn: conn}
	pc.lr.r = conn
	pc.br = bufio.NewReaderSize(&pc.lr, h1BufSize)
	pc.bw = bufio.NewWriterSize(conn, h1BufSize)
	pc.idleTimer = time.AfterFunc(time.Duration(math.MaxInt64), pc.expire)
	pc.idleTimer.Stop()
	return pc, nil
}

// setIdle stores conns as key's idle list; c.mu is held.
func (c *h1Client) setIdle(key string, conns []*h1Conn) {
	if len(conns) == 0 {
		delete(c.idle, key)
	} else {
		c.idle[key] = conns
	}
}

// put returns a connection whose exchange is complete to the pool, or
// closes it when the pool is full or closed.
func (c *h1Client) put(pc *h1Conn) {
	c.mu.Lock()
	conns := c.idle[pc.key]
	if c.closed || len(conns) >= h1MaxIdlePerHost || c.nIdle >= h1MaxIdle {
		c.mu.Unlock()
		pc.close()
		return
	}
	c.idle[pc.key] = append(conns, pc)
	c.nIdle++
	pc.idleTimer.Reset(c.idleTimeout)
	c.mu.Unlock()
}

// remove takes pc out of the pool after its idle timer fired.
func (c *h1Client) remove(pc *h1Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	conns := c.idle[pc.key]
	for i, p := range conns {
		if p == pc {
			c.setIdle(pc.key, append(conns[:i:i], conns[i+1:]...))
			c.nIdle--
			return
		}
	}
}

// CloseIdleConnections closes the pool's connections; later ones are
// closed when their exchange ends.
func (c *h1Client) CloseIdleConnections() {
	c.mu.Lock()
	c.closed = true
	idle := c.idle
	c.idle, c.nIdle = make(map[string][]*h1Conn), 0
	c.mu.Unlock()
	for _, conns := range idle {
		for _, pc := range conns {
			pc.idleTimer.Stop()
			pc.close()
		}
	}
}

// h1Conn is one upstream connection of an h1Client.
type h1Conn struct {
	c         *h1Client
	key       string
	conn      net.Conn
	lr        limitReader
	br        *bufio.Reader
	bw        *bufio.Writer
	idleTimer *time.Timer
	reused    bool // came from the pool: may have gone stale
}

func (pc *h1Conn) expire() {
	pc.c.remove(pc)
	pc.close()
}

func (pc *h1Conn) close() { _ = pc.conn.Close() }

// aLongTimeAgo, as a deadline, makes blocked reads and writes return.
var aLongTimeAgo = time.Unix(1, 0)

func (pc *h1Conn) roundTrip(out *http.Request) (*http.Response, error) {
	// A client that goes away (or a shutdown) ends the exchange: the
	// deadline wakes a blocked read or write, and the connection is then
	// not reused.
	stop := context.AfterFunc(out.Context(), func() { _ = pc.conn.SetDeadline(aLongTimeAgo) })
	resp, err := pc.exchange(out)
	if err != nil {
		stop()
		if ctxErr := out.Context().Err(); ctxErr != nil {
			return nil, fmt.Errorf("%w (%w)", ctxErr, err)
		}
		return nil, err
	}
	resp.Body = &h1Body{pc: pc, body: resp.Body, stop: stop, keep: !resp.Close}
	return resp, nil
}

func (pc *h1Conn) exchange(out *http.Request) (*http.Response, error) {
	if err := writeRequest(pc.bw, out); err != nil {
		pc.bw.Reset(pc.conn)
		if pc.reused && !errors.As(err, new(*requestError)) {
			return nil, fmt.Errorf("%w: %w", errStaleConn, err)
		}
		return nil, err
	}
	pc.lr.n = h1MaxHeaderBytes
	if d := pc.c.headerTimeout; d > 0 {
		pc.setReadDeadline(out.Context(), time.Now().Add(d))
	}
	for first := true; ; first = false {
		resp, err := http.ReadResponse(pc.br, out)
		if err != nil {
			if pc.reused && pc.lr.n == h1MaxHeaderBytes && isStale(err) {
				// Not one byte of an answer.
				return nil, fmt.Errorf("%w: %w", errStaleConn, err)
			}
			if d := pc.c.headerTimeout; d > 0 && out.Context().Err() == nil && isTimeout(err) {
				return nil, &headerTimeoutError{timeout: d, err: err}
			}
			if isMalformed(err) {
				return nil, &badResponseError{err: err}
			}
			return nil, err
		}
		switch {
		case resp.StatusCode == http.StatusRequestTimeout && pc.reused && first:
			// An upstream that times out an idle connection may say so
			// with a 408 before it closes it; that answer was to no
			// request of ours.
			return nil, fmt.Errorf("%w: it answered 408 at once", errStaleConn)
		case resp.StatusCode == http.StatusSwitchingProtocols:
			// Nothing asked for it (upgrades go to the transport).
			return nil, errors.New("upstream switched protocols unasked")
		case resp.StatusCode >= 100 && resp.StatusCode < 200:
			// Informational (103 Early Hints): dropped, as the
			// transport does; they count towards the header bound.
			continue
		}
		pc.lr.n = math.MaxInt64
		if pc.c.headerTimeout > 0 {
			// The body takes as long as it takes.
			pc.setReadDeadline(out.Context(), time.Time{})
		}
		return resp, nil
	}
}

// setReadDeadline sets the conn's read deadline without undoing the one
// that roundTrip's context.AfterFunc sets when ctx ends: if ctx ended,
// before or while this ran, the conn ends up with aLongTimeAgo.
func (pc *h1Conn) setReadDeadline(ctx context.Context, t time.Time) {
	_ = pc.conn.SetReadDeadline(t)
	if ctx.Err() != nil {
		_ = pc.conn.SetDeadline(aLongTimeAgo)
	}
}

// isStale reports the errors of reading from a connection the peer closed.
func isStale(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}

// requestError is a request that cannot be written as it stands.
type requestError struct{ msg string }

func (e *requestError) Error() string { return "upstream request: " + e.msg }

// writeRequest writes out's request line and header, as Request.Write
// would for a request without a body: Host from out.Host, User-Agent only
// when not empty, values trimmed, and names and values that could split
// the header refused.
func writeRequest(bw *bufio.Writer, out *http.Request) error {
	host := out.Host
	if host == "" {
		host = out.URL.Host
	}
	if !httpguts.ValidHostHeader(host) {
		return &requestError{"invalid Host " + truncate(host, 64)}
	}
	ruri := out.URL.RequestURI()
	for i := 0; i < len(ruri); i++ {
		if c := ruri[i]; c <= ' ' || c == 0x7f {
			return &requestError{"control character or space in the request target"}
		}
	}
	bw.WriteString(out.Method)
	bw.WriteByte(' ')
	bw.WriteString(ruri)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(host)
	bw.WriteString("\r\n")
	for k, vv := range out.Header {
		// Canonical already, unless someone put a header in by hand;
		// then its case must not let it past this switch.
		switch http.CanonicalHeaderKey(k) {
		case "Host", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		case "User-Agent":
			if len(vv) == 0 || vv[0] == "" {
				continue
			}
			vv = vv[:1]
		}
		if !httpguts.ValidHeaderFieldName(k) {
			return &requestError{"invalid header name " + truncate(k, 64)}
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return &requestError{"invalid value of header " + k}
			}
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(strings.TrimSpace(v))
			bw.WriteString("\r\n")
		}
	}
	bw.WriteString("\r\n")
	return bw.Flush()
}

// limitReader reads from r while n bytes remain, which bounds a response
// header section.
type limitReader struct {
	r io.Reader
	n int64
}

var errHeaderTooLarge = fmt.Errorf("upstream response header larger than %d bytes", h1MaxHeaderBytes)

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errHeaderTooLarge
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// h1Body is a response body from an h1Conn: at its end the connection goes
// back to the pool, if the exchange is clean; closed before its end, the
// connection is closed (the rest of a large body is not worth reading).
type h1Body struct {
	pc   *h1Conn
	body io.ReadCloser
	stop func() bool
	keep bool // the upstream did not ask to close
	done bool
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.body.Read(p)
	if err != nil {
		b.finish(err == io.EOF)
	}
	return n, err
}

func (b *h1Body) Close() error {
	if !b.done {
		b.finish(false)
	}
	return nil
}

func (b *h1Body) finish(clean bool) {
	b.done = true
	// stop is false when the context's func ran: the deadline is set.
	// Bytes past the end of the answer were sent unasked: the
	// connection is out of step.
	if b.stop() && clean && b.keep && b.pc.br.Buffered() == 0 {
		b.pc.c.put(b.pc)
		return
	}
	b.pc.close()
}
