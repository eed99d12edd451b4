package wasmhost

import (
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

func TestAllowHostMatching(t *testing.T) {
	cases := []struct {
		pattern string
		url     string
		want    bool
	}{
		{"sts.amazonaws.com", "https://sts.amazonaws.com/", true},
		{"sts.amazonaws.com", "https://sts.amazonaws.com:443/", true},
		{"sts.amazonaws.com", "https://sts.amazonaws.com:8443/", false},
		{"sts.amazonaws.com", "http://sts.amazonaws.com/", true},
		{"sts.amazonaws.com", "http://sts.amazonaws.com:443/", false},
		{"sts.amazonaws.com", "https://STS.AmazonAWS.com./", true},
		{"STS.amazonaws.com.", "https://sts.amazonaws.com/", true},
		{"sts.amazonaws.com", "https://xsts.amazonaws.com/", false},
		{"sts.amazonaws.com", "https://sts.amazonaws.com.evil.com/", false},
		{"sts.amazonaws.com:8443", "https://sts.amazonaws.com:8443/", true},
		{"sts.amazonaws.com:8443", "https://sts.amazonaws.com/", false},
		{"sts.amazonaws.com:443", "https://sts.amazonaws.com/", true},
		{"*.amazonaws.com", "https://sts.us-east-1.amazonaws.com/", true},
		{"*.amazonaws.com", "https://amazonaws.com/", false},
		{"*.amazonaws.com", "https://evilamazonaws.com/", false},
		{"*.amazonaws.com", "https://sts.amazonaws.com:8443/", false},
		{"*.amazonaws.com:8443", "https://sts.amazonaws.com:8443/", true},
		{"10.0.0.1", "http://10.0.0.1/", true},
		{"[::1]:8080", "http://[::1]:8080/", true},
		{"::1", "https://[::1]/", true},
		{"::ffff:10.0.0.1", "https://10.0.0.1/", true},
	}
	for _, tc := range cases {
		p, err := parseHostPattern(tc.pattern)
		if err != nil {
			t.Errorf("%s: %v", tc.pattern, err)
			continue
		}
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		host, port, err := urlHost(u)
		if err != nil {
			t.Errorf("%s: %v", tc.url, err)
			continue
		}
		if got := allowed([]hostPattern{p}, u.Scheme, host, port); got != tc.want {
			t.Errorf("%s vs %s: got %v, want %v", tc.pattern, tc.url, got, tc.want)
		}
	}
}

func TestAllowHostPatternsRefused(t *testing.T) {
	for _, p := range []string{
		"", " ", "*", "*.com", "*.", "https://a.com", "a.com/path", "a.com:0", "a.com:99999", "a.com:08",
		"user@a.com", "a..com", "ä.com", "*.10.0.0.1", "a b.com", "-",
	} {
		if _, err := parseHostPattern(p); err == nil && p != "-" {
			t.Errorf("%q accepted", p)
		}
	}
}

func TestAddressRefused(t *testing.T) {
	cases := map[string]bool{ // address: refused
		"127.0.0.1": true, "127.8.9.10": true, "::1": true, "10.1.2.3": true, "172.16.0.1": true,
		"192.168.1.1": true, "169.254.169.254": true, "169.254.1.1": true, "fe80::1": true,
		"fd00:ec2::254": true, "fc00::1": true, "100.64.0.1": true, "100.127.255.255": true,
		"0.0.0.0": true, "::": true, "0.1.2.3": true, "224.0.0.1": true, "ff02::1": true,
		"255.255.255.255": true, "240.0.0.1": true, "::ffff:127.0.0.1": true, "::ffff:169.254.169.254": true,
		"64:ff9b::a9fe:a9fe": true, "64:ff9b::7f00:1": true, "2002:7f00:1::": true, "64:ff9b:1::1": true,
		"::127.0.0.1": true,
		"8.8.8.8":     false, "52.94.0.1": false, "100.128.0.1": false, "2600:1f18::1": false,
		"64:ff9b::808:808": false, "2002:808:808::": false, "172.32.0.1": false,
	}
	for a, want := range cases {
		why := addressRefused(netip.MustParseAddr(a))
		if (why != "") != want {
			t.Errorf("%s: refused=%q, want refused %v", a, why, want)
		}
	}
}

// FuzzAllowHosts checks that matching never panics and never lets a host
// through that the pattern's plain meaning would not.
func FuzzAllowHosts(f *testing.F) {
	f.Add("*.amazonaws.com", "https://sts.amazonaws.com/")
	f.Add("sts.amazonaws.com:8443", "https://sts.amazonaws.com:8443/x")
	f.Add("[::1]:80", "http://[::1]/")
	f.Add("a.b", "https://a.b.:443")
	f.Add("*.b.c", "https://b.c/")
	f.Fuzz(func(t *testing.T, pattern, rawURL string) {
		p, err := parseHostPattern(pattern)
		if err != nil {
			return
		}
		if p.host == "" || strings.ContainsAny(p.host, "/@ *") {
			t.Fatalf("pattern %q parsed to host %q", pattern, p.host)
		}
		u, err := parseGuestURL(rawURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
			return
		}
		host, port, err := urlHost(u)
		if err != nil {
			return
		}
		if !allowed([]hostPattern{p}, u.Scheme, host, port) {
			return
		}
		if p.suffix {
			if !strings.HasSuffix(host, "."+p.host) || host == p.host {
				t.Fatalf("%q matched %q", pattern, host)
			}
		} else if host != p.host {
			t.Fatalf("%q matched %q", pattern, host)
		}
		if p.port != "" && port != p.port || p.port == "" && port != defaultPort(u.Scheme) {
			t.Fatalf("%q matched port %q of %q", pattern, port, rawURL)
		}
	})
}
