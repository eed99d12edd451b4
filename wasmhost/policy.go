package wasmhost

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// hostPattern is one parsed allow_hosts entry.
type hostPattern struct {
	host   string // lower case, no trailing dot; for a wildcard, the suffix without "*."
	port   string // "" means the scheme's default port only
	suffix bool   // "*.suffix": names ending in ".suffix", not suffix itself
}

// parseAllowHosts validates allow_hosts entries: an exact host, host:port,
// or *.suffix (optionally *.suffix:port). IPv6 literals are written in
// brackets when a port is given.
func parseAllowHosts(entries []string) ([]hostPattern, error) {
	out := make([]hostPattern, 0, len(entries))
	for _, e := range entries {
		p, err := parseHostPattern(e)
		if err != nil {
			return nil, fmt.Errorf("allow_hosts %q: %w", e, err)
		}
		out = append(out, p)
	}
	return out, nil
}

func parseHostPattern(e string) (hostPattern, error) {
	var p hostPattern
	s := strings.TrimSpace(e)
	if s == "" {
		return p, errors.New("empty entry")
	}
	if strings.Contains(s, "://") || strings.ContainsAny(s, "/?#@ \t") {
		return p, errors.New("want a host, host:port or *.suffix, not a URL")
	}
	host := s
	if h, port, err := net.SplitHostPort(s); err == nil {
		n, perr := strconv.Atoi(port)
		if perr != nil || n < 1 || n > 65535 || port != strconv.Itoa(n) {
			return p, fmt.Errorf("bad port %q", port)
		}
		host, p.port = h, port
	} else if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		host = s[1 : len(s)-1]
	}
	if strings.HasPrefix(host, "*.") {
		p.suffix = true
		host = host[2:]
	}
	host = normalizeHost(host)
	if addr, err := netip.ParseAddr(host); err == nil {
		if p.suffix {
			return p, errors.New("a wildcard needs a DNS suffix, not an IP address")
		}
		p.host = addr.Unmap().String()
		return p, nil
	}
	if err := checkDNSName(host); err != nil {
		return p, err
	}
	if p.suffix && !strings.Contains(host, ".") {
		// "*.com" would allow a whole top-level domain.
		return p, errors.New("a wildcard suffix needs at least two labels")
	}
	p.host = host
	return p, nil
}

// normalizeHost lower-cases a host name and drops one trailing dot, so
// that "STS.amazonaws.com." and "sts.amazonaws.com" compare equal.
func normalizeHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// checkDNSName accepts ASCII letter-digit-hyphen names (underscores too,
// as some internal names have them). Unicode names must be given in
// punycode: comparing Unicode forms would depend on IDNA mapping, which is
// a way around an allow-list.
func checkDNSName(h string) error {
	if h == "" || len(h) > 253 {
		return errors.New("bad host name length")
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("bad host name %q", h)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_'
			if !ok {
				return fmt.Errorf("bad host name %q (only ASCII letters, digits, '-', '_'; use punycode)", h)
			}
		}
	}
	return nil
}

// defaultPort is the port a URL of this scheme uses when it names none.
func defaultPort(scheme string) string {
	if scheme == "http" {
		return "80"
	}
	return "443"
}

// urlHost returns the normalized host and the effective port of u, or an
// error when the host is not one the allow-list can judge.
func urlHost(u *url.URL) (host, port string, err error) {
	host = normalizeHost(u.Hostname())
	port = u.Port()
	if port == "" {
		port = defaultPort(u.Scheme)
	} else if n, perr := strconv.Atoi(port); perr != nil || n < 1 || n > 65535 {
		return "", "", fmt.Errorf("bad port %q", port)
	}
	if addr, perr := netip.ParseAddr(host); perr == nil {
		if addr.Zone() != "" {
			return "", "", errors.New("IPv6 zones are not allowed")
		}
		return addr.Unmap().String(), port, nil
	}
	if err := checkDNSName(host); err != nil {
		return "", "", err
	}
	return host, port, nil
}

// allowed reports whether host:port (from a URL of the given scheme)
// matches one of the patterns.
func allowed(patterns []hostPattern, scheme, host, port string) bool {
	for _, p := range patterns {
		want := p.port
		if want == "" {
			want = defaultPort(scheme)
		}
		if port != want {
			continue
		}
		if p.suffix {
			if strings.HasSuffix(host, "."+p.host) {
				return true
			}
			continue
		}
		if host == p.host {
			return true
		}
	}
	return false
}

// Address ranges refused unless the module has allow_private, beyond what
// netip's predicates cover.
var (
	cgnat       = netip.MustParsePrefix("100.64.0.0/10")
	thisNetwork = netip.MustParsePrefix("0.0.0.0/8")
	reserved4   = netip.MustParsePrefix("240.0.0.0/4") // includes the broadcast address
	nat64       = netip.MustParsePrefix("64:ff9b::/96")
	nat64Local  = netip.MustParsePrefix("64:ff9b:1::/48")
	sixToFour   = netip.MustParsePrefix("2002::/16")
	v4Compat    = netip.MustParsePrefix("::/96")
	metadata6   = netip.MustParseAddr("fd00:ec2::254")
)

// addressRefused says why addr may not be dialled by a module without
// allow_private, or "" when it may.
func addressRefused(addr netip.Addr) string {
	addr = addr.Unmap()
	switch {
	case !addr.IsValid():
		return "invalid"
	case addr == netip.AddrFrom4([4]byte{169, 254, 169, 254}) || addr == metadata6:
		return "instance metadata"
	case addr.IsLoopback():
		return "loopback"
	case addr.IsUnspecified():
		return "unspecified"
	case addr.IsPrivate():
		return "private"
	case addr.IsLinkLocalUnicast():
		return "link-local"
	case addr.IsMulticast(), addr.IsLinkLocalMulticast(), addr.IsInterfaceLocalMulticast():
		return "multicast"
	case addr.Is4() && cgnat.Contains(addr):
		return "CGNAT"
	case addr.Is4() && (thisNetwork.Contains(addr) || reserved4.Contains(addr)):
		return "reserved"
	}
	if addr.Is6() {
		// IPv6 forms that carry an IPv4 address reach that address through
		// a translator: judge the embedded one.
		b := addr.As16()
		var embedded netip.Addr
		switch {
		case nat64.Contains(addr), v4Compat.Contains(addr):
			embedded = netip.AddrFrom4([4]byte(b[12:16]))
		case nat64Local.Contains(addr):
			return "NAT64 local-use"
		case sixToFour.Contains(addr):
			embedded = netip.AddrFrom4([4]byte(b[2:6]))
		}
		if embedded.IsValid() {
			if why := addressRefused(embedded); why != "" {
				return why + " (embedded in IPv6)"
			}
		}
	}
	return ""
}
