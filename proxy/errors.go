package proxy

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strings"
	"syscall"
	"time"

	"github.com/signet-proxy/signet/credentials"
	"github.com/signet-proxy/signet/signer"
)

// Error codes in the X-Signet-Error header. They are a public contract:
// clients and runbooks match on them.
const (
	codeNotProxyRequest     = "not-a-proxy-request"
	codeUnmatchedDenied     = "unmatched-host-denied"
	codeConnectNotSupported = "connect-to-signing-host"
	codeNoCredentials       = "no-credentials"
	codeRefreshFailed       = "credentials-refresh-failed"
	codeUnknownScope        = "unknown-signing-scope"
	codeUnsupportedPayload  = "unsupported-payload"
	codeBodyRead            = "request-body-read-failed"
	codeSpool               = "request-body-spool-failed"
	codeSign                = "signing-failed"
	codeUpstreamUnreachable = "upstream-unreachable"
	codeUpstreamTimeout     = "upstream-timeout"
	codeUpstreamFailed      = "upstream-failed"
	codeUpstreamTLS         = "upstream-tls-failed"
	codeBadRequest          = "bad-request"
	codeProxyAuth           = "proxy-auth-required"
	codeHostMismatch        = "host-mismatch"
	codeInterceptFailed     = "intercept-failed"
	// codeAmbiguousFraming: a request whose framing (Content-Length,
	// Transfer-Encoding, header lines) two parsers could read two ways.
	codeAmbiguousFraming = "ambiguous-framing"
	// codeUpstreamReset: the upstream closed or reset the connection
	// before its response headers.
	codeUpstreamReset = "upstream-reset"
	// codeUpstreamBadResponse: the upstream answered something that is
	// not HTTP.
	codeUpstreamBadResponse = "upstream-bad-response"
)

// proxyError is a failure that signet answers itself, never one of the
// upstream's answers (those pass back unchanged).
type proxyError struct {
	status  int
	code    string
	message string
	fix     string
	cause   error
}

func (e *proxyError) Error() string {
	if e.cause != nil {
		return e.code + ": " + e.message + ": " + e.cause.Error()
	}
	return e.code + ": " + e.message
}

func (e *proxyError) Unwrap() error { return e.cause }

// classify decides, in this one place, the answer for every error on the
// request path. Error texts come from signet's own wrapping and never carry
// a secret: Credentials values format themselves redacted.
func classify(err error) *proxyError {
	var pe *proxyError
	if errors.As(err, &pe) {
		return pe
	}
	switch {
	case errors.Is(err, credentials.ErrRefreshFailed):
		return &proxyError{http.StatusServiceUnavailable, codeRefreshFailed, "the credentials are about to expire and refreshing them failed",
			"retry shortly; check the source's provider (its error is in cause)", err}
	case errors.Is(err, credentials.ErrUnavailable), errors.Is(err, signer.ErrNoCredentials):
		return &proxyError{http.StatusBadGateway, codeNoCredentials, "no valid credentials to sign with",
			"check the route's source (signet check -c FILE) and that its provider can reach its credentials", err}
	case errors.Is(err, signer.ErrUnknownScope):
		return &proxyError{http.StatusBadGateway, codeUnknownScope, "cannot tell the signing service and region for this host",
			"set service and region on the route (or reverse listener) for this host", err}
	case errors.Is(err, signer.ErrUnsupportedPayload):
		return &proxyError{http.StatusNotImplemented, codeUnsupportedPayload, "this request's payload signing mode is not supported",
			"configure the client to sign with SigV4, not SigV4a (ECDSA)", err}
	case errors.Is(err, signer.ErrBadRequest):
		return &proxyError{http.StatusBadRequest, codeBadRequest, "the request cannot be signed as it stands", "", err}
	case errors.Is(err, signer.ErrBodyRead):
		return &proxyError{http.StatusBadRequest, codeBodyRead, "reading the request body failed", "", err}
	case errors.Is(err, signer.ErrSpoolFull):
		return &proxyError{http.StatusInsufficientStorage, codeSpoolFull, "the request bodies being hashed on disk have reached their limit",
			"retry shortly, or raise limits.max_spool_bytes", err}
	case errors.Is(err, signer.ErrSpool):
		return &proxyError{http.StatusInternalServerError, codeSpool, "spooling the request body failed",
			"check free space and permissions of the spool directory", err}
	}
	var hto *headerTimeoutError
	if errors.As(err, &hto) {
		return &proxyError{http.StatusGatewayTimeout, codeUpstreamTimeout,
			"the upstream sent no response headers within " + hto.timeout.String() + " (limits.upstream_response_header_timeout)",
			"retry; if the upstream is slow by design (a large S3 copy), raise limits.upstream_response_header_timeout", err}
	}
	if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		return &proxyError{http.StatusGatewayTimeout, codeUpstreamTimeout, "the upstream did not answer in time", "", err}
	}
	var certErr *tls.CertificateVerificationError
	if errors.As(err, &certErr) {
		return &proxyError{http.StatusBadGateway, codeUpstreamTLS, "the upstream's TLS certificate did not verify",
			"add its CA to upstream.ca_file, or for a test endpoint set insecure_skip_verify on its route", err}
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return &proxyError{http.StatusBadGateway, codeUpstreamUnreachable, "cannot connect to the upstream",
			"check the host, upstream.connect_to and the network", err}
	}
	if errors.As(err, new(*badResponseError)) || isMalformed(err) {
		return &proxyError{http.StatusBadGateway, codeUpstreamBadResponse, "the upstream answered something that is not an HTTP response",
			"check that the route's upstream (scheme, host, port, upstream.connect_to) is the HTTP service meant", err}
	}
	if isReset(err) {
		return &proxyError{http.StatusBadGateway, codeUpstreamReset, "the upstream closed or reset the connection before its response headers",
			"retry; if it persists, check the upstream's own logs", err}
	}
	return &proxyError{http.StatusBadGateway, codeUpstreamFailed, "the upstream request failed", "", err}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// headerTimeoutError is an upstream that took the request and sent no
// response headers within UpstreamOptions.ResponseHeaderTimeout.
type headerTimeoutError struct {
	timeout time.Duration
	err     error
}

func (e *headerTimeoutError) Error() string {
	return "no response headers within " + e.timeout.String() + ": " + e.err.Error()
}
func (e *headerTimeoutError) Unwrap() error { return e.err }
func (e *headerTimeoutError) Timeout() bool { return true }

// transportHeaderTimeout reports http.Transport's ResponseHeaderTimeout
// error, which has no type of its own; its text has not changed since Go
// 1.1.
func transportHeaderTimeout(err error) bool {
	return isTimeout(err) && strings.Contains(err.Error(), "timeout awaiting response headers")
}

// badResponseError is an upstream answer that does not parse as HTTP.
type badResponseError struct{ err error }

func (e *badResponseError) Error() string { return "malformed upstream response: " + e.err.Error() }
func (e *badResponseError) Unwrap() error { return e.err }

// isMalformed reports the errors of parsing something that is not an
// HTTP/1 response (net/http's, which have no type, say "malformed HTTP"),
// or not TLS.
func isMalformed(err error) bool {
	if errors.As(err, new(textproto.ProtocolError)) || errors.As(err, new(tls.RecordHeaderError)) {
		return true
	}
	return strings.Contains(err.Error(), "malformed HTTP")
}

// isReset reports a connection the upstream closed or reset.
func isReset(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EPIPE)
}

// errorBody is the JSON body of signet's own error answers.
type errorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
	Cause   string `json:"cause,omitempty"`
	Fix     string `json:"fix,omitempty"`
}

func writeError(w http.ResponseWriter, pe *proxyError) {
	body := errorBody{Error: pe.code, Message: pe.message, Fix: pe.fix}
	if pe.cause != nil {
		body.Cause = pe.cause.Error()
	}
	h := w.Header()
	h.Set("X-Signet-Error", pe.code)
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(pe.status)
	_ = json.NewEncoder(w).Encode(body)
}
