package proxy

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"
)

// connectTo redirects dials, like curl's --connect-to: the request keeps its
// host (for Host, SNI and certificate checks) but the TCP connection goes to
// another address. Keys are "host:port", "host" (any port) or patterns of
// either; values are "host:port".
type connectTo struct {
	exact    map[string]string // "host:port" or "host"
	patterns []connectPattern  // in a fixed order so a match is never a coin toss
}

type connectPattern struct {
	host, port, to string
}

func newConnectTo(m map[string]string) (*connectTo, error) {
	c := &connectTo{exact: make(map[string]string)}
	for k, v := range m {
		if _, _, err := net.SplitHostPort(v); err != nil {
			return nil, fmt.Errorf("connect_to %q: target %q is not host:port: %w", k, v, err)
		}
		host, port := k, ""
		if h, p, err := net.SplitHostPort(k); err == nil {
			host, port = h, p
		}
		host = strings.ToLower(host)
		if strings.ContainsAny(host, "*?[") {
			if _, err := path.Match(host, ""); err != nil {
				return nil, fmt.Errorf("connect_to %q: %w", k, err)
			}
			c.patterns = append(c.patterns, connectPattern{host: host, port: port, to: v})
			continue
		}
		if port != "" {
			c.exact[net.JoinHostPort(host, port)] = v
		} else {
			c.exact[host] = v
		}
	}
	// Longer patterns are more specific; ties broken by text so the order
	// does not depend on map iteration.
	slices.SortFunc(c.patterns, func(a, b connectPattern) int {
		return cmp.Or(
			cmp.Compare(len(b.host), len(a.host)),
			strings.Compare(a.host, b.host),
			strings.Compare(b.port, a.port), // a pattern with a port before the portless one
		)
	})
	return c, nil
}

// resolve returns where to dial for addr ("host:port").
func (c *connectTo) resolve(addr string) string {
	if c == nil || (len(c.exact) == 0 && len(c.patterns) == 0) {
		return addr
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	host = strings.ToLower(host)
	if to, ok := c.exact[net.JoinHostPort(host, port)]; ok {
		return to
	}
	if to, ok := c.exact[host]; ok {
		return to
	}
	for _, p := range c.patterns {
		if p.port != "" && p.port != port {
			continue
		}
		if ok, _ := path.Match(p.host, host); ok {
			return p.to
		}
	}
	return addr
}

// UpstreamOptions configure the transport to AWS.
type UpstreamOptions struct {
	ConnectTo map[string]string
	// RootCAs verifies upstream certificates; nil means the system roots.
	RootCAs *x509.CertPool
	// ResponseHeaderTimeout bounds the wait for an upstream's response
	// headers once the request is written (limits.upstream_response_header_timeout).
	ResponseHeaderTimeout time.Duration
}

// newTransport builds the one transport every upstream request goes
// through. It never takes a proxy from the environment: signet is the
// proxy, and its own HTTPS_PROXY would loop back into itself.
func newTransport(opts UpstreamOptions, insecure bool) (*http.Transport, *connectTo, error) {
	ct, err := newConnectTo(opts.ConnectTo)
	if err != nil {
		return nil, nil, err
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	t := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, ct.resolve(addr))
		},
		TLSClientConfig:       &tls.Config{RootCAs: opts.RootCAs, MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure},
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		// An upstream that takes the request and never answers would
		// hold the client (and this transport's connection) for ever.
		ResponseHeaderTimeout: opts.ResponseHeaderTimeout,
		// The client asked for what it asked for; decompressing would
		// change the bytes and headers it gets back.
		DisableCompression: true,
	}
	return t, ct, nil
}
