package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Limits bound what clients can make the proxy and reverse listeners
// hold. A zero field takes the default beside it (the config's default).
// They are the listeners' and last as long as the Server: Reload refuses
// a change with ErrRestartNeeded. Body limits are per route (Route and
// Reverse MaxBodyBytes) and follow reloads.
type Limits struct {
	// MaxHeaderBytes is http.Server.MaxHeaderBytes: the request line and
	// headers of one request (Go allows 4 KiB of slack on top). More is
	// answered by Go's server with 431. Default 64 KiB.
	MaxHeaderBytes int
	// MaxConnections bounds the open client connections of every proxy
	// and reverse listener together; hijacked ones (CONNECT tunnels,
	// WebSockets) count until they close. Default 10000.
	MaxConnections int
	// ReadHeaderTimeout bounds the time to read a request's headers
	// (slowloris). Default 10s.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a keep-alive connection idle this long.
	// Default 2m.
	IdleTimeout time.Duration
}

// Limit defaults, the same as the config's.
const (
	defaultMaxHeaderBytes    = 64 << 10
	defaultMaxConnections    = 10000
	defaultReadHeaderTimeout = 10 * time.Second
	defaultIdleTimeout       = 2 * time.Minute
)

// withDefaults fills the zero fields.
func (l Limits) withDefaults() Limits {
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = defaultMaxHeaderBytes
	}
	if l.MaxConnections <= 0 {
		l.MaxConnections = defaultMaxConnections
	}
	if l.ReadHeaderTimeout <= 0 {
		l.ReadHeaderTimeout = defaultReadHeaderTimeout
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = defaultIdleTimeout
	}
	return l
}

// Error codes of the limits, beside those in errors.go.
const (
	codeBodyTooLarge       = "request-body-too-large"
	codeSpoolFull          = "spool-full"
	codeTooManyConnections = "too-many-connections"
)

// bodyTooLarge is the answer to a request body over its route's limit.
func bodyTooLarge(limit int64, route string) *proxyError {
	return &proxyError{status: http.StatusRequestEntityTooLarge, code: codeBodyTooLarge,
		message: fmt.Sprintf("the request body is larger than %d bytes, the limit of %s", limit, route),
		fix:     "send a smaller body (for S3, a multipart upload), or raise max_body_bytes on the route or reverse listener, or limits.max_body_bytes"}
}

// limitBody checks r's body against t's limit. A body of known length over
// it is refused before a byte is read, so a client that waits for 100
// Continue never sends it; one of unknown length is counted as it is read
// and cut with a 413 error past the limit. It returns the body to send on:
// r.Body, or r.Body behind a *bodyLimit.
func limitBody(r *http.Request, t *target) (io.ReadCloser, *proxyError) {
	if t.maxBody <= 0 || r.Body == nil || r.Body == http.NoBody {
		return r.Body, nil
	}
	if r.ContentLength > t.maxBody {
		return nil, bodyTooLarge(t.maxBody, t.route)
	}
	if r.ContentLength >= 0 {
		// The server's body reader stops at Content-Length.
		return r.Body, nil
	}
	return &bodyLimit{rc: r.Body, left: t.maxBody, err: bodyTooLarge(t.maxBody, t.route)}, nil
}

// bodyLimit cuts a body of unknown length after its limit: the read that
// would pass it returns the bytes up to the limit and err. The transport
// or the signer reads it on its own goroutine while the handler may look
// at exceeded.
type bodyLimit struct {
	rc       io.ReadCloser
	left     int64
	err      *proxyError
	exceeded atomic.Bool
}

func (b *bodyLimit) Read(p []byte) (int, error) {
	if b.exceeded.Load() {
		return 0, b.err
	}
	// One byte past the limit tells a body of exactly the limit, which
	// passes, from a longer one.
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	if int64(n) <= b.left {
		b.left -= int64(n)
		return n, err
	}
	n = int(b.left)
	b.left = 0
	b.exceeded.Store(true)
	return n, b.err
}

func (b *bodyLimit) Close() error { return b.rc.Close() }

// tripped returns the 413 error of the body limit behind ex.in, if the
// body went past it.
func tripped(ex *exchange) *proxyError {
	if ex.in == nil {
		return nil
	}
	if b, ok := ex.in.rc.(*bodyLimit); ok && b.exceeded.Load() {
		return b.err
	}
	return nil
}

// connLimiter counts the open client connections of every listener of a
// Server against max.
type connLimiter struct {
	max  int64
	open atomic.Int64
	// refusing bounds the goroutines that answer refused connections, so
	// a flood of them cannot grow the process either.
	refusing chan struct{}
}

// maxRefusing is how many refused connections are answered at once;
// past it they are closed without an answer.
const maxRefusing = 64

func newConnLimiter(max int) *connLimiter {
	return &connLimiter{max: int64(max), refusing: make(chan struct{}, maxRefusing)}
}

func (l *connLimiter) acquire() bool {
	if l.open.Add(1) > l.max {
		l.open.Add(-1)
		return false
	}
	return true
}

func (l *connLimiter) release() { l.open.Add(-1) }

// limitListener admits a connection while its limiter has room. One over
// the limit is accepted and refused: with a plain-HTTP 503 that says why
// (so a client and its logs see the reason, not a reset), or on a TLS
// listener, where no HTTP can be spoken before a handshake, by closing it.
type limitListener struct {
	net.Listener
	lim *connLimiter
	// refusal is the whole HTTP answer, or nil to close without one.
	refusal []byte
	log     *slog.Logger
	name    string
	// warned limits the log line to one per second.
	warned atomic.Int64
}

func newLimitListener(ln net.Listener, lim *connLimiter, plainHTTP bool, log *slog.Logger, name string) *limitListener {
	l := &limitListener{Listener: ln, lim: lim, log: log, name: name}
	if plainHTTP {
		l.refusal = refusal(lim.max)
	}
	return l
}

// refusal is the 503 answer to a connection over the limit.
func refusal(max int64) []byte {
	body, _ := json.Marshal(errorBody{
		Error:   codeTooManyConnections,
		Message: "signet has " + strconv.FormatInt(max, 10) + " open client connections, its limit",
		Fix:     "retry shortly; close idle connections, or raise limits.max_connections",
	})
	body = append(body, '\n')
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 503 Service Unavailable\r\n")
	b.WriteString("X-Signet-Error: " + codeTooManyConnections + "\r\n")
	b.WriteString("Retry-After: 1\r\n")
	b.WriteString("Content-Type: application/json\r\n")
	b.WriteString("Cache-Control: no-store\r\n")
	b.WriteString("Connection: close\r\n")
	b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n")
	b.Write(body)
	return b.Bytes()
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.lim.acquire() {
			return &limitedConn{Conn: c, lim: l.lim}, nil
		}
		if now := time.Now().Unix(); l.warned.Swap(now) != now {
			l.log.Warn("connection refused: too many open connections", "listener", l.name,
				"limit", l.lim.max, "remote", c.RemoteAddr().String())
		}
		l.refuse(c)
	}
}

// refuseTimeout bounds the life of a refused connection.
const refuseTimeout = 2 * time.Second

// refuse answers c and closes it, on its own goroutine so that Accept
// goes on at once.
func (l *limitListener) refuse(c net.Conn) {
	if l.refusal == nil {
		_ = c.Close()
		return
	}
	select {
	case l.lim.refusing <- struct{}{}:
	default:
		_ = c.Close()
		return
	}
	go func() {
		defer func() { <-l.lim.refusing }()
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(refuseTimeout))
		if _, err := c.Write(l.refusal); err != nil {
			return
		}
		// Closing with the client's request unread would send a reset,
		// which can destroy the answer before the client reads it: end
		// the writing side, then read until the client closes.
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		_, _ = io.CopyN(io.Discard, c, 256<<10)
	}()
}

// limitedConn gives its place back when it is closed, once however many
// times Close is called (the server and a tunnel may both close it).
type limitedConn struct {
	net.Conn
	lim  *connLimiter
	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.lim.release)
	return err
}

// CloseWrite half-closes the conn underneath: the server uses it to end a
// response cleanly before it closes, and tunnels to pass an end of stream.
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// ReadFrom keeps the conn underneath's zero-copy path (splice) for tunnels.
func (c *limitedConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}
