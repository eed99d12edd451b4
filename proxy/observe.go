package proxy

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/signet-proxy/signet/internal/metrics"
	"github.com/signet-proxy/signet/signer"
)

// exchange is what one request did, filled in along the request path and
// reported once when it ends: to the route's metrics and as one access log
// line. It lives on the handler's stack; nothing keeps a pointer to it.
type exchange struct {
	start time.Time
	// route names the route ("routes[0]", "reverse[1]", "unmatched"), or
	// is empty when the request was refused before routing.
	route string
	obs   *metrics.Route
	host  string // the upstream host, once known
	// source and scope are set once the request is signed.
	source            string
	scope             signer.Scope
	status            int
	code              string // X-Signet-Error, when signet answered itself
	signing, upstream time.Duration
	in                *countingBody // nil: no request body
	bytesIn, bytesOut int64         // tunnels and upgrades count their own
	// aborted: the response was cut off after its headers (the
	// upstream's body failed), and status is the upstream's.
	aborted bool
}

func (s *Server) begin() exchange { return exchange{start: time.Now()} }

// routed records which route (or target) a request took.
func (ex *exchange) routed(t *target) {
	ex.route, ex.obs, ex.host = t.route, t.obs, t.host
	if t.signingHost != "" {
		ex.host = t.signingHost
	}
}

// fail answers with signet's own error and records it.
func (ex *exchange) fail(w http.ResponseWriter, pe *proxyError) {
	writeError(w, pe)
	ex.status, ex.code = pe.status, pe.code
}

// finish reports the request: metrics, then the access log line.
func (s *Server) finish(ex *exchange, r *http.Request) {
	end := time.Now()
	d := end.Sub(ex.start)
	in := ex.bytesIn
	if ex.in != nil {
		in += ex.in.n.Load()
	}
	if ex.obs != nil {
		ex.obs.Observe(metrics.Request{
			Service: ex.scope.Service, Region: ex.scope.Region, Status: ex.status,
			Signing: ex.signing, Upstream: ex.upstream,
			BytesIn: in, BytesOut: ex.bytesOut,
		})
	}
	if al := s.current().accessLog; al != nil {
		logAccess(r.Context(), al.Handler(), ex, r, end, d, in)
	}
}

// logAccess writes the access log line. It holds the method, host, path
// (never the query: its values carry presigned signatures, tokens and
// whatever else an API puts there), status, route, signing name, region,
// source name, duration and body bytes; never a header value, so never a
// credential or a signature.
//
// The record goes to the handler directly: Logger.LogAttrs would also walk
// the stack for the caller's position, which an access line has no use
// for and which costs a fifth of the line.
func logAccess(ctx context.Context, h slog.Handler, ex *exchange, r *http.Request, end time.Time, d time.Duration, in int64) {
	if !h.Enabled(ctx, slog.LevelInfo) {
		return
	}
	host := ex.host
	if host == "" {
		host = r.Host
	}
	path := ""
	if r.Method != http.MethodConnect {
		path = truncate(rawPath(r.RequestURI), maxLoggedPath)
	}
	rec := slog.NewRecord(end, slog.LevelInfo, "request", 0)
	rec.AddAttrs(
		slog.String("method", r.Method),
		slog.String("host", truncate(host, maxLoggedHost)),
		slog.String("path", path),
		slog.Int("status", ex.status),
	)
	if ex.route != "" {
		rec.AddAttrs(slog.String("route", ex.route))
	}
	if ex.source != "" {
		rec.AddAttrs(
			slog.String("service", ex.scope.Service),
			slog.String("region", ex.scope.Region),
			slog.String("source", ex.source))
	}
	if ex.code != "" {
		rec.AddAttrs(slog.String("error", ex.code))
	}
	if ex.aborted {
		rec.AddAttrs(slog.Bool("aborted", true))
	}
	rec.AddAttrs(
		slog.Duration("duration", d),
		slog.Int64("bytes_in", in),
		slog.Int64("bytes_out", ex.bytesOut),
		slog.String("remote", r.RemoteAddr),
	)
	_ = h.Handle(ctx, rec)
}

// Limits on what a client can make one log line carry.
const (
	maxLoggedPath = 1024 // an S3 key's limit
	maxLoggedHost = 256
)

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// countingBody counts the bytes read from a client's request body. The
// transport reads it on its own goroutine, hence the atomic.
type countingBody struct {
	rc io.ReadCloser
	n  atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.n.Add(int64(n))
	return n, err
}

func (b *countingBody) Close() error { return b.rc.Close() }

// lookedUp is one answer of signer.Lookup, kept in the signing scope cache.
type lookedUp struct {
	scope signer.Scope
	ok    bool
}

// maxCachedHost: a longer host is no AWS endpoint, and Lookup refuses it
// quickly; it is not worth a cache entry.
const maxCachedHost = 260

// lookupScope is signer.Lookup behind the bounded cache: the endpoint
// table is a scan of a few hundred rules, and a forward proxy sees the same
// few hosts again and again.
func (s *Server) lookupScope(host string) (signer.Scope, bool) {
	if len(host) > maxCachedHost {
		return signer.Lookup(host)
	}
	if e, ok := s.scopes.Get(host); ok {
		return e.scope, e.ok
	}
	sc, ok := signer.Lookup(host)
	s.scopes.Add(host, lookedUp{scope: sc, ok: ok})
	return sc, ok
}

// countingConn counts the bytes read from and written to a connection;
// the server's goroutines for the connection use it while the tunnel's
// owner reads the counts.
type countingConn struct {
	net.Conn
	in, out atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.in.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.out.Add(int64(n))
	return n, err
}
