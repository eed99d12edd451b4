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
	insecure    bool // skip upstream certificate checks (route insecure_skip_verify)
}

// dropOutgoing are end-to-end headers that the outgoing request carries in
// another form: the length is Request.ContentLength, and signet answers
// Expect itself before it reads the body.
var dropOutgoing = map[string]bool{
	"Content-Length": true,
	"Expect":         true,
}

func (s *Server) serveForward(w http.ResponseWriter, r *http.Request) {
	if s.auth != nil && !s.auth.allow(r) {
		s.askForAuth(w, r)
		return
	}
	if r.Method == http.MethodConnect {
		s.serveConnect(w, r)
		return
	}
	if !r.URL.IsAbs() || r.URL.Host == "" || (r.URL.Scheme != "http" && r.URL.Scheme != "https") {
		writeError(w, &proxyError{status: http.StatusBadRequest, code: codeNotProxyRequest,
			message: "this is signet's proxy listener; send absolute-form requests (http://host/path) through HTTP_PROXY",
			fix:     "set HTTP_PROXY=http://" + r.Host + " in the client, or use a reverse listener"})
		return
	}
	s.dispatch(w, r)
}

// dispatch routes a request whose URL is absolute, from the forward proxy
// or from inside an intercepted tunnel: one path for both.
func (s *Server) dispatch(w http.ResponseWriter, r *http.Request) {
	route := s.router.match(r.URL.Host, r.URL.Path)
	if route == nil {
		if s.denyUnmatched {
			s.deny(w, r.URL.Host)
			return
		}
		s.serve(w, r, &target{scheme: r.URL.Scheme, host: r.URL.Host})
		return
	}
	s.serve(w, r, &target{
		scheme:      route.UpstreamScheme,
		host:        upstreamHost(r.URL, route.UpstreamScheme),
		signingHost: route.SigningHost,
		source:      route.Source,
		scope:       route.Scope,
		payload:     route.Payload,
		insecure:    route.InsecureSkipVerify,
	})
}

func (s *Server) deny(w http.ResponseWriter, host string) {
	s.log.Info("denied request for unmatched host", "host", host)
	writeError(w, &proxyError{status: http.StatusForbidden, code: codeUnmatchedDenied,
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
	s *Server
	t target
}

func (h *reverseHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodConnect {
		writeError(w, &proxyError{status: http.StatusMethodNotAllowed, code: codeBadRequest,
			message: "a reverse listener does not take CONNECT", fix: "use the proxy listener for HTTPS_PROXY"})
		return
	}
	h.s.serve(w, r, &h.t)
}

// serve is the one request path for every listener: build the outgoing
// request, sign it when the target has a source, send it, stream the
// answer back.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, t *target) {
	start := time.Now()
	ctx := r.Context()
	out, err := outgoing(ctx, r, t)
	if err == nil && t.source != nil {
		var release func()
		release, err = s.sign(ctx, out, t)
		if release != nil {
			defer release()
		}
	}
	status := 0
	if err == nil {
		status, err = s.roundTrip(w, out, t.insecure)
	}
	if err != nil {
		if ctx.Err() != nil {
			// The client went away; there is nobody to answer.
			s.log.Debug("request abandoned by client", "method", r.Method, "host", hostOf(out, r), "error", err)
			return
		}
		pe := classify(err)
		if status == 0 {
			writeError(w, pe)
			status = pe.status
		}
		s.log.Warn("request failed", "method", r.Method, "host", hostOf(out, r), "status", status, "code", pe.code, "error", err)
		return
	}
	if s.log.Enabled(ctx, slog.LevelDebug) {
		s.log.Debug("request", "method", r.Method, "host", out.Host, "signed", t.source != nil,
			"status", status, "duration", time.Since(start))
	}
}

func hostOf(out, r *http.Request) string {
	if out != nil {
		return out.Host
	}
	return r.Host
}

func (s *Server) sign(ctx context.Context, out *http.Request, t *target) (func(), error) {
	scope, err := signer.ResolveScope(out.Host, out.Header, out.URL.RawQuery, t.scope)
	if err != nil {
		return nil, err
	}
	creds, err := t.source.Credentials(ctx)
	if err != nil {
		return nil, err
	}
	return s.signer.Sign(ctx, out, creds, signer.Params{Scope: scope, Payload: t.payload})
}

// outgoing builds the upstream request from the client's. Hop-by-hop
// headers are gone before anything else reads the headers, and the path is
// the client's raw path, byte for byte.
func outgoing(ctx context.Context, r *http.Request, t *target) (*http.Request, error) {
	out := (&http.Request{
		Method:        r.Method,
		URL:           &url.URL{Scheme: t.scheme, Host: t.host, RawQuery: r.URL.RawQuery},
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        make(http.Header, len(r.Header)+4),
		Body:          r.Body,
		ContentLength: r.ContentLength,
		Host:          t.host,
	}).WithContext(ctx)
	if t.signingHost != "" {
		out.Host = t.signingHost
	}
	if r.ContentLength == 0 {
		out.Body = http.NoBody
	}
	if err := signer.SetRawPath(out.URL, rawPath(r.RequestURI)); err != nil {
		return nil, &proxyError{status: http.StatusBadRequest, code: codeBadRequest, message: "bad request path", cause: err}
	}
	copyEndToEnd(out.Header, r.Header, dropOutgoing)
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

// roundTrip sends out and streams the answer to w. It returns the status
// written (0 if nothing was) and an error if the exchange failed.
func (s *Server) roundTrip(w http.ResponseWriter, out *http.Request, insecure bool) (int, error) {
	tr := s.transport
	if insecure {
		tr = s.insecureTransport
	}
	resp, err := tr.RoundTrip(out)
	if err != nil {
		return 0, err
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
	if err := s.copyBody(w, resp.Body, flushEach(resp)); err != nil {
		// Headers are gone already: the client sees a cut-off body, as
		// it would from the upstream itself.
		return resp.StatusCode, err
	}
	for k, vv := range resp.Trailer {
		h[http.TrailerPrefix+k] = vv
	}
	return resp.StatusCode, nil
}

// flushEach reports whether each chunk of the body must reach the client as
// soon as it arrives: streams of events, and bodies of unknown length that
// may be one.
func flushEach(resp *http.Response) bool {
	if resp.ContentLength == -1 {
		return true
	}
	ct := resp.Header.Get("Content-Type")
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = strings.TrimSpace(ct)
	return strings.EqualFold(ct, "text/event-stream") || strings.EqualFold(ct, "application/vnd.amazon.eventstream")
}

// copyBufSize matches io.Copy's buffer: large enough for few syscalls,
// small enough that many concurrent streams stay cheap.
const copyBufSize = 32 << 10

func (s *Server) copyBody(w http.ResponseWriter, body io.Reader, flush bool) error {
	bp, _ := s.bufs.Get().(*[]byte)
	if bp == nil {
		b := make([]byte, copyBufSize)
		bp = &b
	}
	defer s.bufs.Put(bp)
	buf := *bp
	rc := http.NewResponseController(w)
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			if flush {
				if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
					return err
				}
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}
