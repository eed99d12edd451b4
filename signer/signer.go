// Package signer turns an unsigned (or placeholder-signed) request into one
// signed with SigV4 for AWS: it decides the scope, which headers are signed,
// how the payload is hashed and how S3 paths are treated, and leaves the
// arithmetic to aws-sdk-go-v2's v4 signer.
package signer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/signet-proxy/signet/credentials"
)

// Sentinel errors; Sign and ResolveScope wrap them with context so that the
// proxy can pick an HTTP status with errors.Is.
var (
	// ErrUnknownScope: the signing service or region cannot be determined.
	ErrUnknownScope = errors.New("signer: unknown signing scope")
	// ErrUnsupportedPayload: the client's X-Amz-Content-Sha256 asks for a
	// payload mode signet cannot re-sign (aws-chunked signed with SigV4a) or
	// is not a valid value.
	ErrUnsupportedPayload = errors.New("signer: unsupported payload signing mode")
	// ErrBodyRead: the client body failed (or ended early) while it was
	// being spooled or its aws-chunked framing re-signed.
	ErrBodyRead = errors.New("signer: reading the client body failed")
	// ErrSpool: the spool (temp file, disk) failed.
	ErrSpool = errors.New("signer: spooling the body failed")
	// ErrSpoolFull: spooling the body would take the bodies on disk past
	// Options.MaxSpoolBytes. It is not an ErrSpool: the disk is fine, and
	// the request can be retried once others finish.
	ErrSpoolFull = errors.New("signer: the body spool is full")
	// ErrNoCredentials: empty access key id or secret.
	ErrNoCredentials = errors.New("signer: no credentials")
	// ErrBadRequest: the request cannot be signed as it stands (no host,
	// a query string that does not parse).
	ErrBadRequest = errors.New("signer: request cannot be signed")
)

// PayloadMode is how the body of a request enters the signature.
type PayloadMode string

// Payload modes; see Sign.
const (
	PayloadAuto     PayloadMode = "auto"
	PayloadUnsigned PayloadMode = "unsigned"
	PayloadSigned   PayloadMode = "signed"
)

// Options configure a Signer.
type Options struct {
	// SpoolDir is where bodies past SpoolMemory go; "" = os.TempDir().
	SpoolDir string
	// SpoolMemory is how many bytes of a body stay in memory before the
	// spool spills to a temp file; 0 = 1 MiB.
	SpoolMemory int64
	// MaxSpoolBytes bounds the bytes of all bodies in spool files at
	// once; a body that would go past it fails with ErrSpoolFull. A body
	// of known length reserves its whole length before any of it is read;
	// one of unknown length reserves as it grows. 0 = no limit.
	MaxSpoolBytes int64
	// Now is the signing clock; nil = time.Now.
	Now func() time.Time
	// Logger gets debug lines, never secrets; nil = discard (no global
	// default logger).
	Logger *slog.Logger
}

// Params say how to sign one request.
type Params struct {
	Scope   Scope
	Payload PayloadMode
}

const defaultSpoolMemory = 1 << 20

// Signer signs requests. It is safe for concurrent use.
type Signer struct {
	v4       *v4.Signer
	now      func() time.Time
	log      *slog.Logger
	spoolDir string
	spoolMem int64
	// budget counts the bytes reserved for spool files, for
	// MaxSpoolBytes.
	budget *spoolBudget
	bufs   sync.Pool // *[]byte copy buffers for spooling
}

// New returns a Signer.
func New(opts Options) *Signer {
	s := &Signer{
		// One SDK signer for every request: it caches derived signing keys.
		v4:       v4.NewSigner(),
		now:      opts.Now,
		log:      opts.Logger,
		spoolDir: opts.SpoolDir,
		spoolMem: opts.SpoolMemory,
		budget:   &spoolBudget{max: opts.MaxSpoolBytes},
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.spoolMem <= 0 {
		s.spoolMem = defaultSpoolMemory
	}
	s.bufs.New = func() any {
		b := make([]byte, spoolChunk)
		return &b
	}
	return s
}

// unsignedHeaders is the one rule for headers that reach AWS without being
// covered by the signature. The SDK applies exactly this list (its
// IgnoredHeaders; TestUnsignedHeadersMatchSDK holds the two together) and
// signs every other header in r.Header, so the caller must remove hop-by-hop
// and proxy headers before Sign. Headers the Go transport adds while writing
// (Content-Length from r.ContentLength, Accept-Encoding, Connection) are
// outside r.Header; content-length is signed from r.ContentLength when > 0.
var unsignedHeaders = [...]struct{ name, why string }{
	{"Authorization", "it carries the signature, so it cannot be part of it"},
	{"User-Agent", "transports and intermediaries rewrite it; AWS SDKs leave it unsigned too"},
	{"X-Amzn-Trace-Id", "X-Ray and load balancers append to it in flight"},
	{"Expect", "100-continue handling is the transport's business and may be dropped on the way"},
	{"Transfer-Encoding", "framing chosen per hop by the transport, not content"},
}

// placeholderHeaders is the signing material an SDK app pointed at signet
// with dummy keys sends; it is removed before signing so that none of it
// leaks upstream or into the new signature.
var placeholderHeaders = [...]string{"Authorization", "X-Amz-Date", "X-Amz-Security-Token"}

// presignParams are the query parameters of a presigned URL; signet signs
// with headers, so they are removed.
var presignParams = [...]string{
	"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
	"X-Amz-SignedHeaders", "X-Amz-Signature", "X-Amz-Security-Token",
}

// isS3Style reports whether service uses S3's canonical URI rule: the path is
// signed as sent, without SigV4's second round of escaping.
func isS3Style(service string) bool {
	switch service {
	case "s3", "s3-object-lambda", "s3express", "s3-outposts":
		return true
	}
	return false
}

func noRelease() {}

// Sign signs r in place so it can be sent upstream with an http.Transport.
//
// r is an outgoing client request: r.URL absolute (scheme + host), r.Host the
// host to sign (may differ from r.URL.Host), hop-by-hop headers already
// removed, and r.URL.Path/RawPath/Opaque set (SetRawPath) to reproduce the
// client's raw path byte for byte; the canonical URI is that path, escaped
// once more for services other than S3.
//
// The client's placeholder Authorization, X-Amz-Date, X-Amz-Security-Token
// and presigned query parameters are removed first. The payload hash is, in
// order: the client's X-Amz-Content-Sha256 when it is a SHA-256 hex digest;
// UNSIGNED-PAYLOAD kept for S3 (unless p.Payload is signed) or when p.Payload
// is unsigned; the aws-chunked modes kept (STREAMING-UNSIGNED-PAYLOAD-TRAILER
// streamed untouched; STREAMING-AWS4-HMAC-SHA256-PAYLOAD and its -TRAILER
// form streamed with every chunk re-signed, see chunkResigner); the empty
// hash for no body; UNSIGNED-PAYLOAD for PayloadUnsigned, and for
// PayloadAuto with S3 over https; otherwise the body is spooled and hashed.
// An S3 body of unknown length is always spooled, for its length (see
// payload). X-Amz-Content-Sha256 is sent (and signed) for S3 always, for
// other services only when the client sent one.
//
// It returns a release func (never nil) that the caller calls once the round
// trip is done; it removes any temp file and may be called more than once.
func (s *Signer) Sign(ctx context.Context, r *http.Request, creds credentials.Credentials, p Params) (release func(), err error) {
	if creds.AccessKeyID == "" || creds.SecretAccessKey == "" {
		return noRelease, fmt.Errorf("sign request for %q: %w", hostOf(r), ErrNoCredentials)
	}
	if r.URL == nil || hostOf(r) == "" {
		return noRelease, fmt.Errorf("sign request: no host: %w", ErrBadRequest)
	}
	if !scopeToken(p.Scope.Service) || !scopeToken(p.Scope.Region) {
		return noRelease, fmt.Errorf("%w: sign request for %q: service %q, region %q", ErrUnknownScope, hostOf(r), p.Scope.Service, p.Scope.Region)
	}
	if err := removePlaceholders(r); err != nil {
		return noRelease, err
	}
	hash, release, err := s.payload(ctx, r, p)
	if err != nil {
		return noRelease, err
	}
	var chunked chunkedHeaders
	if isSignedStreaming(hash) {
		if chunked, err = checkChunkedHeaders(r, hash); err != nil {
			release()
			return noRelease, err
		}
	}
	if err := s.signHTTP(ctx, r, creds, p.Scope, hash); err != nil {
		release()
		return noRelease, err
	}
	if isSignedStreaming(hash) {
		// The chunks chain from the seed signature just made.
		k, seed, err := newStreamKey(r, creds.SecretAccessKey, p.Scope)
		if err != nil {
			release()
			return noRelease, err
		}
		resignChunks(r, k, seed, chunked)
	}
	if s.log.Enabled(ctx, slog.LevelDebug) {
		s.log.DebugContext(ctx, "signed request",
			slog.String("host", hostOf(r)), slog.String("service", p.Scope.Service),
			slog.String("region", p.Scope.Region), slog.String("payload", payloadLabel(hash)),
			slog.Int64("content_length", r.ContentLength))
	}
	return release, nil
}

// signHTTP is the single place that calls the SDK; Sign and the AWS test
// suite both go through it. It signs exactly the headers in r.Header minus
// unsignedHeaders, plus host, x-amz-date, the session token and, when > 0,
// content-length.
//
// For S3 the SDK takes the canonical URI from r.URL as it is. When the
// client's path is not in S3's canonical form (see canonicalPath), the SDK
// is shown a copy of the URL that holds the canonical path, and r keeps the
// client's bytes for the wire. Other services take the wire path escaped
// once more, the SDK's own rule, which is how they verify it.
func (s *Signer) signHTTP(ctx context.Context, r *http.Request, creds credentials.Credentials, sc Scope, payloadHash string) error {
	ac := awsCreds(creds)
	wire := r.URL
	if p := wirePath(wire); isS3Style(sc.Service) && !isCanonicalPath(p) {
		c := canonicalPath(p)
		shown := *wire
		shown.Opaque, shown.RawPath = "", c
		if shown.Path, _ = url.PathUnescape(c); shown.EscapedPath() != c {
			return fmt.Errorf("sign request for %q: %w: cannot express canonical path %q", hostOf(r), ErrBadRequest, truncate(c, 80))
		}
		r.URL = &shown
		defer func() {
			// The SDK rewrote the query into canonical order; the wire
			// must carry what was signed.
			wire.RawQuery = shown.RawQuery
			r.URL = wire
		}()
	}
	var err error
	if isS3Style(sc.Service) {
		err = s.v4.SignHTTP(ctx, ac, r, payloadHash, sc.Service, sc.Region, s.now(), disableURIPathEscaping)
	} else {
		err = s.v4.SignHTTP(ctx, ac, r, payloadHash, sc.Service, sc.Region, s.now())
	}
	if err != nil {
		return fmt.Errorf("sign request for %q as %s/%s: %w", hostOf(r), sc.Service, sc.Region, err)
	}
	return nil
}

func awsCreds(c credentials.Credentials) aws.Credentials {
	return aws.Credentials{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, SessionToken: c.SessionToken}
}

func disableURIPathEscaping(o *v4.SignerOptions) { o.DisableURIPathEscaping = true }

// removePlaceholders strips the client's signing material. Header names are
// compared without regard to case because a hand-built header map need not
// be canonical, and a stale lower-case copy would otherwise be signed.
func removePlaceholders(r *http.Request) error {
	for k := range r.Header {
		for _, p := range placeholderHeaders {
			if strings.EqualFold(k, p) {
				delete(r.Header, k)
			}
		}
		// The transport sends r.Host, never Header["Host"]; a stale copy
		// would only confuse what is signed.
		if strings.EqualFold(k, "Host") {
			delete(r.Header, k)
		}
	}
	if r.URL.RawQuery == "" {
		return nil
	}
	q, err := stripPresignParams(r.URL.RawQuery)
	if err != nil {
		return fmt.Errorf("sign request for %q: %w: %w", hostOf(r), ErrBadRequest, err)
	}
	r.URL.RawQuery = q
	return nil
}

// maxQueryParams is net/url's default limit on the parameters of a query
// (GODEBUG urlmaxqueryparams, which signet does not set).
const maxQueryParams = 10000

// stripPresignParams drops presigned-URL parameters from a raw query. It
// fails on a query that does not parse: the SDK re-encodes the query into
// canonical form and would silently drop a malformed pair, sending something
// other than what the client asked for.
func stripPresignParams(raw string) (string, error) {
	// Past its limit on parameters, url.ParseQuery, with which the SDK
	// builds the canonical query, returns none at all: the request would
	// be signed and sent without its query. Counted as it counts them,
	// without parsing the query a second time on every request.
	if n := strings.Count(raw, "&") + 1; n > maxQueryParams {
		return "", fmt.Errorf("query string: %d parameters, more than the %d that can be signed", n, maxQueryParams)
	}
	var kept strings.Builder
	removed := false
	for q := raw; q != ""; {
		var pair string
		pair, q, _ = strings.Cut(q, "&")
		if pair == "" {
			continue
		}
		k, _, _ := strings.Cut(pair, "=")
		if strings.IndexByte(pair, ';') >= 0 {
			// The name only: the value may be a presigned URL's
			// signature or session token.
			name, _, _ := strings.Cut(k, ";")
			return "", fmt.Errorf("query string: semicolon in parameter %q", truncate(name, 64))
		}
		if i := badEscape(pair); i >= 0 {
			return "", fmt.Errorf("query string: invalid escape %q", pair[i:min(i+3, len(pair))])
		}
		key := k
		if strings.ContainsAny(k, "%+") {
			key, _ = url.QueryUnescape(k) // escapes were checked above
		}
		if isPresignParam(key) {
			removed = true
			continue
		}
		if kept.Len() > 0 {
			kept.WriteByte('&')
		}
		kept.WriteString(pair)
	}
	if !removed {
		return raw, nil
	}
	return kept.String(), nil
}

// badEscape returns the index of the first '%' not followed by two hex
// digits, or -1.
func badEscape(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && (i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2])) {
			return i
		}
	}
	return -1
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func isPresignParam(key string) bool {
	if len(key) < len("X-Amz-") || !strings.EqualFold(key[:len("X-Amz-")], "X-Amz-") {
		return false
	}
	for _, p := range presignParams {
		if strings.EqualFold(key, p) {
			return true
		}
	}
	return false
}

func hostOf(r *http.Request) string {
	if r.Host != "" {
		return r.Host
	}
	if r.URL != nil {
		return r.URL.Host
	}
	return ""
}

func payloadLabel(hash string) string {
	if len(hash) == 64 && isLowerHex(hash) {
		return "sha256"
	}
	return hash
}
