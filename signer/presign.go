package signer

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/signet-proxy/signet/credentials"
)

// iotGatewayService is the signing name of AWS IoT Core's MQTT endpoint
// (/mqtt on the account's data endpoint), which differs from the data
// plane's HTTP API on the same host ("iotdata").
const iotGatewayService = "iotdevicegateway"

// PresignedScope reports whether a WebSocket upgrade to r, whose scope
// resolved to sc, must be signed in its query string (Presign) rather than
// in headers, and the scope to presign with. AWS IoT Core's MQTT endpoint
// is the one such case: the path /mqtt on an IoT data endpoint, which the
// endpoint table gives the signing name iotdata (right for its HTTP API),
// takes SigV4 only in the query and under the name iotdevicegateway.
func PresignedScope(r *http.Request, sc Scope) (Scope, bool) {
	if r.Method != http.MethodGet || r.URL == nil || wirePath(r.URL) != "/mqtt" {
		return Scope{}, false
	}
	if sc.Service != "iotdata" && sc.Service != iotGatewayService {
		return Scope{}, false
	}
	return Scope{Service: iotGatewayService, Region: sc.Region}, true
}

// Presign signs r in its query string the way AWS IoT Core's MQTT over
// WebSocket wants it: X-Amz-Algorithm, X-Amz-Credential, X-Amz-Date and
// X-Amz-SignedHeaders=host enter the canonical query (with whatever other
// parameters the client sent), the payload hash is that of the empty
// string, X-Amz-Signature follows, and X-Amz-Security-Token is appended
// after signing, outside the canonical query. This is the scheme of the AWS
// IoT Device SDKs (the JavaScript SDK's prepareWebSocketUrl, say); IoT
// refuses a URL whose signature covers the token. X-Amz-Expires is left
// out, as those SDKs leave it out.
//
// r is an outgoing request prepared as for Sign. Only the host header is
// signed: the upgrade's other headers (Sec-WebSocket-*, Origin) travel
// unsigned, which is IoT's contract. The client's placeholder headers and
// presigned query parameters are removed first. A request with a body, and
// the S3 family (whose presigned URLs follow other rules), are refused.
func (s *Signer) Presign(ctx context.Context, r *http.Request, creds credentials.Credentials, p Params) error {
	if creds.AccessKeyID == "" || creds.SecretAccessKey == "" {
		return fmt.Errorf("presign request for %q: %w", hostOf(r), ErrNoCredentials)
	}
	if r.URL == nil || hostOf(r) == "" {
		return fmt.Errorf("presign request: no host: %w", ErrBadRequest)
	}
	if !scopeToken(p.Scope.Service) || !scopeToken(p.Scope.Region) {
		return fmt.Errorf("%w: presign request for %q: service %q, region %q", ErrUnknownScope, hostOf(r), p.Scope.Service, p.Scope.Region)
	}
	if isS3Style(p.Scope.Service) {
		return fmt.Errorf("presign request for %q: %w: %s is signed in headers, not presigned", hostOf(r), ErrBadRequest, p.Scope.Service)
	}
	if r.Body != nil && r.Body != http.NoBody {
		return fmt.Errorf("presign request for %q: %w: a presigned request carries no body", hostOf(r), ErrBadRequest)
	}
	if err := removePlaceholders(r); err != nil {
		return err
	}
	// The SDK is shown the method, URL and host only, so that host is the
	// one signed header; it does not touch r itself.
	u := *r.URL
	shown := (&http.Request{Method: r.Method, URL: &u, Host: r.Host, Header: http.Header{}}).WithContext(ctx)
	signed, _, err := s.v4.PresignHTTP(ctx, awsCreds(creds), shown, emptySHA256,
		p.Scope.Service, p.Scope.Region, s.now(), withoutSessionToken)
	if err != nil {
		return fmt.Errorf("presign request for %q as %s/%s: %w", hostOf(r), p.Scope.Service, p.Scope.Region, err)
	}
	// The signed URL is the wire path (which cannot hold a '?') and the
	// canonical query with the signature appended.
	_, query, ok := strings.Cut(signed, "?")
	if !ok {
		return fmt.Errorf("presign request for %q: the signer returned no query", hostOf(r))
	}
	if creds.SessionToken != "" {
		query += "&X-Amz-Security-Token=" + escapeQueryValue(creds.SessionToken)
	}
	r.URL.RawQuery = query
	if s.log.Enabled(ctx, slog.LevelDebug) {
		s.log.DebugContext(ctx, "presigned request",
			slog.String("host", hostOf(r)), slog.String("service", p.Scope.Service),
			slog.String("region", p.Scope.Region), slog.Bool("session_token", creds.SessionToken != ""))
	}
	return nil
}

// withoutSessionToken keeps the SDK from putting the token into the
// canonical query; Presign appends it afterwards.
func withoutSessionToken(o *v4.SignerOptions) { o.DisableSessionToken = true }

// escapeQueryValue escapes everything but RFC 3986's unreserved
// characters, as SigV4 does (a space is %20, never '+').
func escapeQueryValue(v string) string {
	return strings.ReplaceAll(url.QueryEscape(v), "+", "%20")
}
