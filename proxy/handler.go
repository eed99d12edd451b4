package proxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/signet-proxy/signet/credentials"
	"github.com/signet-proxy/signet/internal/metrics"
	"github.com/signet-proxy/signet/signer"
)

// target is where a request goes and how it is signed; source is nil for a
// request that passes through unsigned.
type target struct {
	scheme      string
	host        string // host[:port] to dial (before connect_to)
	signingHost string // Host to send and sign, when it differs
	source      credentials.Source
	scope       signer.Scope
	payload     signer.PayloadMode
	insecure    bool  // skip upstream certificate checks (route insecure_skip_verify)
	maxBody     int64 // request body limit, 0 for none (limits.go)
	route       string
	obs         *metrics.Route
	// up is the config whose transports carry the request (the one in
	// force when it started).
	up *config
}

// dropOutgoing are end-to-end headers that the outgoing request carries in
// another form: the length is Request.ContentLength, and Expect is set
// again by outgoing, only as 100-continue and only with a body.
var dropOutgoing = map[string]bool{
	"Content-Length": true,
	"Expect":         true,
}

func (s *Server) serveForward(w http.ResponseWriter, r *http.Request) {
	ex := s.begin()
	defer s.finish(&ex, r)
	c := s.current()
	if c.auth != nil && !c.auth.allow(r) {
		s.askForAuth(w, r, &ex)
		return
	}
	if r.Method == http.MethodConnect {
		s.serveConnect(w, r, c, &ex)
		return
	}
	if !r.URL.IsAbs() || r.URL.Host == "" || (r.URL.Scheme != "http" && r.URL.Scheme != "https") {
		ex.fail(w, &proxyError{status: http.StatusBadRequest, code: codeNotProxyRequest,
			message: "this is signet's proxy listener; send absolute-form requests (http://host/path) through HTTP_PROXY",
			fix:     "set HTTP_PROXY=http://" + r.Host + " in the client, or use a reverse listener"})
		return
	}
	s.dispatch(w, r, c, &ex)
}

// dispatch routes a request whose URL is absolute, from the forward proxy
// or from inside an intercepted tunnel: one path for both.
func (s *Server) dispatch(w http.ResponseWriter, r *http.Request, c *config, ex *exchange) {
	i := c.router.match(r.URL.Host, r.URL.Path)
	if i < 0 {
		if c.denyUnmatched {
			s.deny(w, r.URL.Host, ex)
			return
		}
		s.serve(w, r, &target{scheme: r.URL.Scheme, host: r.URL.Host, route: "unmatched", obs: s.unmatched, up: c}, ex)
		return
	}
	route := &c.router.routes[i]
	s.serve(w, r, &target{
		scheme:      route.UpstreamScheme,
		host:        upstreamHost(r.URL, route.UpstreamScheme),
		signingHost: route.SigningHost,
		source:      route.Source,
		scope:       route.Scope,
		payload:     route.Payload,
		insecure:    route.InsecureSkipVerify,
		maxBody:     route.MaxBodyBytes,
		route:       c.router.names[i],
		obs:         c.router.obs[i],
		up:          c,
	}, ex)
}

func (s *Server) deny(w http.ResponseWriter, host string, ex *exchange) {
	ex.route, ex.obs, ex.host = "unmatched", s.unmatched, host
	s.log.Info("denied request for unmatched host", "host", host)
	ex.fail(w, &proxyError{status: http.StatusForbidden, code: codeUnmatchedDenied,
		message: "no route signs host " + host + " and unmatched is deny",
		fix:     "add the host to a route, or set unmatched: forward"})
}

// upstreamHost keeps an explicit port, but drops the client's default port
// when the upstream scheme differs (http://host:80 signed for https://host).
func upstreamHost(u *url.URL, upstreamScheme string) string {
	port := u.Port()
	if port == "" || upstreamScheme == u.Scheme {
		return u.Host
	}
	if (u.Scheme == "http" && port == "80") || (u.Scheme == "https" && port == "443") {
		return u.Hostname()
	}
	return u.Host
}

type reverseHandler struct {
	s      *Server
	listen string
	index  int // in the config's reverse targets
}

func (h *reverseHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ex := h.s.begin()
	defer h.s.finish(&ex, r)
	t := &h.s.current().reverse[h.index]
	if r.Method == http.MethodConnect {
		ex.routed(t)
		ex.fail(w, &proxyError{status: http.StatusMethodNotAllowed, code: codeBadRequest,
			message: "a reverse listener does not take CONNECT", fix: "use the proxy listener for HTTPS_PROXY"})
		return
	}
	h.s.serve(w, r, t, &ex)
}

// serve is the one request path for every listener: build the outgoing
// request, sign it when the target has a source, send it, stream the
// answer back.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, t *target, ex *exchange) {
	ex.routed(t)
	ctx := r.Context()
	upgrade := isWebSocketUpgrade(r)
	out, err := outgoing(ctx, r, t, ex)
	if err == nil && t.source != nil {
		var release func()
		t0 := time.Now()
		release, err = s.sign(ctx, out, t, upgrade, ex)
		ex.signing = time.Since(t0)
		if release != nil {
			defer release()
		}
	}
	if err == nil && upgrade {
		askUpgrade(out)
	}
	if err == nil {
		err = s.roundTrip(w, out, t.up, t.insecure, ex)
	}
	if err != nil {
		if ctx.Err() != nil {
			// The client went away; there is nobody to answer. 499 is
			// the usual status of that in logs.
			if ex.status == 0 {
				ex.status = statusClientClosed
			}
			s.log.Debug("request abandoned by client", "method", r.Method, "host", hostOf(out, r), "error", err)
			return
		}
		if ube := (*upstreamBodyError)(nil); errors.As(err, &ube) {
			// The upstream's status and headers are with the client
			// already. Returning would let the server end the response
			// cleanly (a last chunk), and the client take a cut body
			// for a whole one; aborting makes the server cut it (reset
			// the HTTP/2 stream). finish still records the exchange.
			ex.aborted = true
			s.log.Warn("upstream response cut off; aborting the client's response", "method", r.Method, "host", hostOf(out, r),
				"status", ex.status, "bytes_out", ex.bytesOut, "error", err)
			// What was relayed goes out first, so that the client sees
			// the upstream's status and the cut, not a bare close.
			_ = http.NewResponseController(w).Flush()
			panic(http.ErrAbortHandler)
		}
		pe := classify(err)
		if lim := tripped(ex); lim != nil {
			// However the signer or the transport wrapped the cut.
			pe = lim
		}
		if ex.status == 0 {
			ex.fail(w, pe)
		}
		s.log.Warn("request failed", "method", r.Method, "host", hostOf(out, r), "status", ex.status, "code", pe.code, "error", err)
		return
	}
	if s.log.Enabled(ctx, slog.LevelDebug) {
		s.log.Debug("request", "method", r.Method, "host", out.Host, "signed", t.source != nil,
			"status", ex.status, "duration", time.Since(ex.start))
	}
}

// statusClientClosed is what the access log and metrics record for a
// request whose client went away before it was answered (nginx's 499).
const statusClientClosed = 499

func hostOf(out, r *http.Request) string {
	if out != nil {
		return out.Host
	}
	return r.Host
}

func (s *Server) sign(ctx context.Context, out *http.Request, t *target, upgrade bool, ex *exchange) (func(), error) {
	ex.source = t.source.Name()
	scope, err := signer.ResolveScopeWith(out.Host, out.Header, out.URL.RawQuery, t.scope, s.lookupScope)
	if err != nil {
		return nil, err
	}
	ex.scope = scope
	creds, err := t.source.Credentials(ctx)
	if err != nil {
		return nil, err
	}
	if upgrade {
		if ps, ok := signer.PresignedScope(out, scope); ok {
			ex.scope = ps
			return nil, s.signer.Presign(ctx, out, creds, signer.Params{Scope: ps})
		}
	}
	return s.signer.Sign(ctx, out, creds, signer.Params{Scope: scope, Payload: t.payload})
}

// outgoing builds the upstream request from the client's. Hop-by-hop
// headers are gone before anything else reads the headers, and the path is
// the client's raw path, byte for byte.
func outgoing(ctx context.Context, r *http.Request, t *target, ex *exchange) (*http.Request, error) {
	out := (&http.Request{
		Method:        r.Method,
		URL:           &url.URL{Scheme: t.scheme, Host: t.host, RawQuery: r.URL.RawQuery},
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        make(http.Header, len(r.Header)+4),
		ContentLength: r.ContentLength,
		Host:          t.host,
	}).WithContext(ctx)
	if t.signingHost != "" {
		out.Host = t.signingHost
	}
	if r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
		body, pe := limitBody(r, t)
		if pe != nil {
			return nil, pe
		}
		// A nil Body, not NoBody, for none: the transport then skips its
		// body writer altogether.
		ex.in = &countingBody{rc: body}
		out.Body = ex.in
	}
	if err := signer.SetRawPath(out.URL, rawPath(r.RequestURI)); err != nil {
		return nil, &proxyError{status: http.StatusBadRequest, code: codeBadRequest, message: "bad request path", cause: err}
	}
	copyEndToEnd(out.Header, r.Header, dropOutgoing)
	if out.Body != nil && hasToken(r.Header["Expect"], "100-continue") {
		// The upstream may refuse the body before any of it is sent: the
		// transport waits for its 100 Continue (ExpectContinueTimeout)
		// before it reads the body, and the client gets its own 100 from
		// the server only at that first read. Three limits: a body the
		// signer must hash is read (and the client told to go on) before
		// the upstream is asked, so there only the upstream hop is
		// spared; an HTTP/1.1 refusal that keeps the upstream connection
		// open makes the transport send the body anyway, to keep the
		// connection usable; and Go's HTTP/2 server consumes a client's
		// Expect itself, so from HTTP/2 clients it never reaches here.
		out.Header["Expect"] = []string{"100-continue"}
	}
	if _, ok := out.Header["User-Agent"]; !ok {
		// Keep Go's transport from adding its own.
		out.Header["User-Agent"] = []string{""}
	}
	return out, nil
}

// rawPath returns the path of a request target exactly as the client wrote
// it: origin-form "/p?q" or absolute-form "http://h/p?q".
func rawPath(requestURI string) string {
	p := requestURI
	if !strings.HasPrefix(p, "/") {
		i := strings.Index(p, "://")
		if i < 0 {
			return "/"
		}
		p = p[i+3:]
		j := strings.IndexAny(p, "/?")
		if j < 0 || p[j] == '?' {
			return "/"
		}
		p = p[j:]
	}
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	return p
}

// roundTrip sends out and streams the answer to w. It records in ex the
// status written (0 if nothing was), the upstream's time to answer and the
// body bytes passed back, and returns an error if the exchange failed.
func (s *Server) roundTrip(w http.ResponseWriter, out *http.Request, c *config, insecure bool, ex *exchange) error {
	tr := c.transport
	if insecure {
		tr = c.insecureTransport
	}
	t0 := time.Now()
	var resp *http.Response
	var err error
	if c.h1.handles(out) {
		resp, err = c.h1.RoundTrip(out)
	} else {
		resp, err = tr.RoundTrip(out)
		if err != nil && transportHeaderTimeout(err) && out.Context().Err() == nil {
			err = &headerTimeoutError{timeout: tr.ResponseHeaderTimeout, err: err}
		}
	}
	ex.upstream = time.Since(t0)
	if err != nil {
		return err
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return s.switchProtocols(w, out, resp, ex)
	}
	defer resp.Body.Close()

	h := w.Header()
	copyEndToEnd(h, resp.Header, nil)
	if len(resp.Trailer) > 0 {
		names := make([]string, 0, len(resp.Trailer))
		for k := range resp.Trailer {
			names = append(names, k)
		}
		h["Trailer"] = []string{strings.Join(names, ", ")}
	}
	w.WriteHeader(resp.StatusCode)
	ex.status = resp.StatusCode
	n, err := s.copyBody(w, resp.Body, flushEach(resp))
	ex.bytesOut = n
	if err != nil {
		// Headers are gone already: serve cuts the client's response
		// off (upstreamBodyError), as the upstream cut signet's.
		return err
	}
	for k, vv := range resp.Trailer {
		h[http.TrailerPrefix+k] = vv
	}
	return nil
}

// flushEach reports whether each chunk of the body must reach the client as
// soon as it arrives: streams of events, and bodies of unknown length that
// may be one.
func flushEach(resp *http.Response) bool {
	if resp.ContentLength == -1 {
		return true
	}
	ct := ""
	if v := resp.Header["Content-Type"]; len(v) > 0 {
		ct = v[0]
	}
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = strings.TrimSpace(ct)
	return strings.EqualFold(ct, "text/event-stream") || strings.EqualFold(ct, "application/vnd.amazon.eventstream")
}

// copyBufSize matches io.Copy's buffer: large enough for few syscalls,
// small enough that many concurrent streams stay cheap.
const copyBufSize = 32 << 10

// upstreamBodyError is a failure to read the upstream's response body
// after its headers went to the client.
type upstreamBodyError struct{ err error }

func (e *upstreamBodyError) Error() string { return "upstream response body: " + e.err.Error() }
func (e *upstreamBodyError) Unwrap() error { return e.err }

// copyBody streams body to w and returns how many bytes it wrote. A
// failure to read body is an *upstreamBodyError; one to write to w (the
// client's side) is not.
func (s *Server) copyBody(w http.ResponseWriter, body io.Reader, flush bool) (int64, error) {
	bp, _ := s.bufs.Get().(*[]byte)
	if bp == nil {
		b := make([]byte, copyBufSize)
		bp = &b
	}
	defer s.bufs.Put(bp)
	buf := *bp
	var rc *http.ResponseController
	if flush {
		rc = http.NewResponseController(w)
	}
	var written int64
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			written += int64(m)
			if werr != nil {
				return written, werr
			}
			if flush {
				if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
					return written, err
				}
			}
		}
		if rerr == io.EOF {
			return written, nil
		}
		if rerr != nil {
			return written, &upstreamBodyError{rerr}
		}
	}
}
