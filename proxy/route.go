package proxy

import (
	"fmt"
	"net"
	"path"
	"strings"

	"github.com/signet-proxy/signet/credentials"
	"github.com/signet-proxy/signet/internal/metrics"
	"github.com/signet-proxy/signet/signer"
)

// Route says how requests for some hosts are signed.
type Route struct {
	// Hosts are path.Match patterns on the lowercased host name without
	// port; '*' also matches dots, so "*.amazonaws.com" covers every
	// subdomain.
	Hosts []string
	// PathPrefix, when set, limits the route to request paths under it.
	PathPrefix string
	Source     credentials.Source
	// Scope overrides the signing name and region; empty fields are
	// resolved from the request.
	Scope signer.Scope
	// SigningHost, when set, is sent and signed as Host instead of the
	// request's host.
	SigningHost string
	Payload     signer.PayloadMode
	// UpstreamScheme is "https" (default) or "http".
	UpstreamScheme string
	// InsecureSkipVerify turns off upstream certificate checks for this
	// route only (a test endpoint with a self-signed certificate).
	InsecureSkipVerify bool
	// MaxBodyBytes bounds the body of one request; 0 means no limit.
	MaxBodyBytes int64
}

// router finds the first route whose hosts and path prefix match.
type router struct {
	routes []Route
	// names and obs are per route, in the same order: "routes[i]" and its
	// metrics, resolved once.
	names []string
	obs   []*metrics.Route
}

func newRouter(routes []Route, m *metrics.Metrics) (*router, error) {
	for i, r := range routes {
		if r.Source == nil {
			return nil, fmt.Errorf("route %d: no credential source", i)
		}
		if len(r.Hosts) == 0 {
			return nil, fmt.Errorf("route %d: no hosts", i)
		}
		for _, h := range r.Hosts {
			if _, err := path.Match(h, ""); err != nil {
				return nil, fmt.Errorf("route %d: host pattern %q: %w", i, h, err)
			}
		}
		switch r.UpstreamScheme {
		case "":
			routes[i].UpstreamScheme = "https"
		case "http", "https":
		default:
			return nil, fmt.Errorf("route %d: upstream scheme %q: want http or https", i, r.UpstreamScheme)
		}
		if r.Payload == "" {
			routes[i].Payload = signer.PayloadAuto
		}
	}
	rt := &router{routes: routes}
	for i := range routes {
		name := fmt.Sprintf("routes[%d]", i)
		rt.names = append(rt.names, name)
		rt.obs = append(rt.obs, m.Route(name))
	}
	return rt, nil
}

// match returns the index of the route for a request to hostport with the
// given (decoded) path, or -1.
func (rt *router) match(hostport, urlPath string) int {
	host := hostOnly(hostport)
	for i := range rt.routes {
		r := &rt.routes[i]
		if r.PathPrefix != "" && !strings.HasPrefix(urlPath, r.PathPrefix) {
			continue
		}
		if matchHost(r.Hosts, host) {
			return i
		}
	}
	return -1
}

// matchesHost reports whether any route signs host, whatever the path: a
// CONNECT has no path yet.
func (rt *router) matchesHost(hostport string) bool {
	return SignsHost(rt.routes, hostport)
}

func matchHost(patterns []string, host string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, host); ok {
			return true
		}
	}
	return false
}

// hostOnly lowercases a host and strips its port, brackets and a trailing
// dot, so that "S3.Amazonaws.com.:80" matches "s3.amazonaws.com".
func hostOnly(hostport string) string {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	return strings.ToLower(host)
}

// SignsHost reports whether any of routes signs host (a name without port):
// the test for issuing an interception certificate.
func SignsHost(routes []Route, host string) bool {
	host = hostOnly(host)
	for i := range routes {
		if matchHost(routes[i].Hosts, host) {
			return true
		}
	}
	return false
}
