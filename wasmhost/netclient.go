package wasmhost

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sort"
	"syscall"
	"time"
)

// Limits of the network ABI (ABI.md §4).
const (
	maxRequestsPerCall = 16
	maxResponseBody    = 1 << 20
	maxRedirects       = 5
	maxResponseHeaders = 64 << 10
)

// Network is what a module may reach through signet.http_request.
type Network struct {
	// AllowHosts lists exact hosts (default port of the scheme only),
	// host:port, and *.suffix (optionally *.suffix:port). Empty means no
	// network at all.
	AllowHosts []string
	// AllowHTTP permits plain http URLs; otherwise only https.
	AllowHTTP bool
	// AllowPrivate permits loopback, private, link-local, CGNAT and
	// metadata addresses.
	AllowPrivate bool
	// LookupIP resolves a host name; nil uses the system resolver. Tests
	// set it to point names at loopback servers.
	LookupIP func(ctx context.Context, host string) ([]netip.Addr, error)
}

// policyError is a refusal or failure that maps to an ABI status code.
type policyError struct {
	code status
	msg  string
}

func (e *policyError) Error() string { return e.code.String() + ": " + e.msg }

func refuse(code status, format string, args ...any) error {
	return &policyError{code: code, msg: fmt.Sprintf(format, args...)}
}

// netClient is one module's HTTP client: its policy is fixed at Load, and
// connections are reused between the module's calls.
type netClient struct {
	patterns     []hostPattern
	allowHTTP    bool
	allowPrivate bool
	lookup       func(ctx context.Context, host string) ([]netip.Addr, error)
	transport    *http.Transport
	client       *http.Client
}

func newNetClient(n Network, roots *x509.CertPool) (*netClient, error) {
	patterns, err := parseAllowHosts(n.AllowHosts)
	if err != nil {
		return nil, err
	}
	c := &netClient{
		patterns:     patterns,
		allowHTTP:    n.AllowHTTP,
		allowPrivate: n.AllowPrivate,
		lookup:       n.LookupIP,
	}
	if c.lookup == nil {
		c.lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	c.transport = &http.Transport{
		Proxy:                  nil, // never HTTP(S)_PROXY from the environment
		DialContext:            c.dial,
		TLSClientConfig:        &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:      true,
		TLSHandshakeTimeout:    10 * time.Second,
		MaxResponseHeaderBytes: maxResponseHeaders,
		MaxIdleConnsPerHost:    2,
		IdleConnTimeout:        30 * time.Second,
	}
	c.client = &http.Client{
		Transport:     c.transport,
		CheckRedirect: c.checkRedirect,
		// No Jar: no cookies are kept.
	}
	return c, nil
}

func (c *netClient) close() { c.transport.CloseIdleConnections() }

// enabled reports whether the module has any network at all.
func (c *netClient) enabled() bool { return len(c.patterns) > 0 }

// checkURL applies the scheme and host rules to the first URL and to every
// redirect.
func (c *netClient) checkURL(u *url.URL) error {
	switch u.Scheme {
	case "https":
	case "http":
		if !c.allowHTTP {
			return refuse(errDeniedScheme, "http is not allowed for this module")
		}
	default:
		return refuse(errDeniedScheme, "scheme %q is not allowed", u.Scheme)
	}
	if u.User != nil {
		return refuse(errBadRequest, "URL has user info")
	}
	host, port, err := urlHost(u)
	if err != nil {
		return refuse(errBadRequest, "%v", err)
	}
	if !allowed(c.patterns, u.Scheme, host, port) {
		return refuse(errDeniedHost, "%s:%s is not in allow_hosts", host, port)
	}
	return nil
}

func (c *netClient) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > maxRedirects {
		return refuse(errRedirects, "more than %d redirects", maxRedirects)
	}
	return c.checkURL(req.URL)
}

// dial resolves the name itself, refuses the connection unless every
// address it resolves to is allowed, and dials the checked addresses, so a
// second, different DNS answer (rebinding) never reaches the socket. The
// socket's Control hook checks the address once more.
func (c *netClient) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, refuse(errBadRequest, "bad address %q", addr)
	}
	port, err := net.LookupPort("tcp", portStr)
	if err != nil {
		return nil, refuse(errBadRequest, "bad port %q", portStr)
	}
	var addrs []netip.Addr
	if ip, perr := netip.ParseAddr(host); perr == nil {
		addrs = []netip.Addr{ip}
	} else {
		addrs, err = c.lookup(ctx, host)
		if err != nil {
			return nil, fmt.Errorf("resolve %s: %w", host, err)
		}
		if len(addrs) == 0 {
			return nil, fmt.Errorf("resolve %s: no addresses", host)
		}
	}
	for i, a := range addrs {
		addrs[i] = a.Unmap()
		if err := c.checkAddr(addrs[i]); err != nil {
			return nil, fmt.Errorf("%s: %w", host, err)
		}
	}
	d := net.Dialer{Control: c.control}
	var firstErr error
	for _, a := range addrs {
		conn, err := d.DialContext(ctx, tcpNetwork(network, a), netip.AddrPortFrom(a, uint16(port)).String())
		if err == nil {
			return conn, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, firstErr
}

func tcpNetwork(network string, a netip.Addr) string {
	if network != "tcp" {
		return network
	}
	if a.Is4() {
		return "tcp4"
	}
	return "tcp6"
}

func (c *netClient) checkAddr(a netip.Addr) error {
	if c.allowPrivate {
		return nil
	}
	if why := addressRefused(a); why != "" {
		return refuse(errDeniedAddress, "address %s is %s", a, why)
	}
	return nil
}

func (c *netClient) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return refuse(errDeniedAddress, "cannot check address %q", address)
	}
	return c.checkAddr(ap.Addr())
}

// fetched is a response read whole: headers as JSON, and the body.
type fetched struct {
	status  int
	headers []byte
	body    []byte
}

// do sends one guest request, following redirects under the policy, and
// reads the whole response. The error is a *policyError or a transport
// error; statusOf maps either to a code.
func (c *netClient) do(ctx context.Context, r guestRequest, body []byte) (fetched, error) {
	var f fetched
	if err := c.checkURL(r.url); err != nil {
		return f, err
	}
	if r.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.timeout)
		defer cancel()
	}
	var rd io.Reader
	if len(body) > 0 {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, r.url.String(), rd)
	if err != nil {
		return f, refuse(errBadRequest, "%v", err)
	}
	req.Header = r.header
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "signet-wasm/1")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return f, err
	}
	defer resp.Body.Close()
	f.status = resp.StatusCode
	f.body, err = io.ReadAll(io.LimitReader(resp.Body, maxResponseBody+1))
	if err != nil {
		return f, err
	}
	if len(f.body) > maxResponseBody {
		return f, refuse(errLimitSize, "response body over %d bytes", maxResponseBody)
	}
	f.headers = headersJSON(resp.Header)
	return f, nil
}

// headersJSON renders headers as the ABI's list of [name, value] pairs,
// sorted by name so that a guest sees the same bytes every time.
func headersJSON(h http.Header) []byte {
	names := make([]string, 0, len(h))
	for name := range h {
		names = append(names, name)
	}
	sort.Strings(names)
	pairs := make([][2]string, 0, len(h))
	for _, name := range names {
		for _, v := range h[name] {
			pairs = append(pairs, [2]string{name, v})
		}
	}
	b, err := json.Marshal(pairs)
	if err != nil { // cannot happen for strings
		return []byte("[]")
	}
	return b
}

// statusOf maps the error of a request to the ABI status the guest sees.
// It is the one place that decides it.
func statusOf(ctx context.Context, err error) status {
	if err == nil {
		return statusOK
	}
	var pe *policyError
	if errors.As(err, &pe) {
		return pe.code
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || ctx.Err() != nil {
		return errTimeout
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return errTimeout
	}
	return errNetwork
}
