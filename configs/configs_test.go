package configs_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/signet-proxy/signet/configs"
)

// home is the environment most tests load with, so state_dir resolves
// without touching the real process environment.
var home = []string{"HOME=/home/test"}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// findError returns the *Error for key, failing the test if err is not a
// config error or does not mention key.
func findError(t *testing.T, err error, key string) *configs.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want one for %q", key)
	}
	var all configs.Errors
	if !errors.As(err, &all) {
		t.Fatalf("error %T is not configs.Errors: %v", err, err)
	}
	var one *configs.Error
	if !errors.As(err, &one) {
		t.Fatalf("errors.As(*configs.Error) failed on %v", err)
	}
	for _, e := range all {
		if e.Key == key {
			return e
		}
	}
	t.Fatalf("no error for key %q in:\n%v", key, err)
	return nil
}

func TestLoadDefault(t *testing.T) {
	cfg, err := configs.Load(configs.LoadOptions{Environ: home})
	if err != nil {
		t.Fatal(err)
	}
	want := &configs.Config{
		Listen:          "127.0.0.1:8080",
		StateDir:        "/home/test/.local/state/signet",
		ShutdownTimeout: 30 * time.Second,
		Log:             configs.Log{Level: "info", Format: "text", Access: true},
		Sources:         map[string]configs.Source{"default": {Method: configs.MethodChain, Refresh: defaultRefresh}},
		Routes: []configs.Route{{
			Hosts:          []string{"*.amazonaws.com", "*.amazonaws.com.cn", "*.api.aws", "*.on.aws"},
			Source:         "default",
			Payload:        configs.PayloadAuto,
			UpstreamScheme: configs.SchemeHTTPS,
			MaxBodyBytes:   configs.DefaultMaxBodyBytes,
		}},
		Unmatched: configs.UnmatchedForward,
		Upstream:  configs.Upstream{ConnectTo: map[string]string{}},
		Intercept: configs.Intercept{CacheSize: 1000},
		ProxyTLS:  configs.ProxyTLS{Mode: configs.ProxyTLSOff},
		Admin:     configs.Admin{Listen: "127.0.0.1:8081"},
		Cache:     configs.Cache{Policy: configs.CacheLRU, MaxSize: 1000},
		Limits:    defaultLimits,
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got  %+v\nwant %+v", cfg, want)
	}
}

func TestStateDirResolution(t *testing.T) {
	tests := []struct {
		name    string
		environ []string
		file    string
		want    string
		wantErr string
	}{
		{name: "home", environ: []string{"HOME=/h"}, want: "/h/.local/state/signet"},
		{name: "xdg wins", environ: []string{"HOME=/h", "XDG_STATE_HOME=/x"}, want: "/x/signet"},
		{name: "relative xdg ignored", environ: []string{"HOME=/h", "XDG_STATE_HOME=x"}, want: "/h/.local/state/signet"},
		{name: "explicit", environ: nil, file: "state_dir: /var/lib/signet\n", want: "/var/lib/signet"},
		{name: "env", environ: []string{"SIGNET_STATE_DIR=/e"}, want: "/e"},
		{name: "nothing", environ: nil, wantErr: "neither XDG_STATE_HOME nor HOME"},
		{name: "relative", environ: nil, file: "state_dir: rel/dir\n", wantErr: `"rel/dir" is not an absolute path`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := configs.LoadOptions{Environ: tt.environ}
			if tt.file != "" {
				opts.File = writeFile(t, "c.yaml", tt.file)
			}
			cfg, err := configs.Load(opts)
			if tt.wantErr != "" {
				e := findError(t, err, "state_dir")
				if !strings.Contains(e.Error(), tt.wantErr) {
					t.Errorf("error %q does not contain %q", e, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.StateDir != tt.want {
				t.Errorf("StateDir = %q, want %q", cfg.StateDir, tt.want)
			}
		})
	}
}

// TestErrorRules checks that each rule's error names the key (with list
// indexes), the bad value and what is accepted.
func TestErrorRules(t *testing.T) {
	const sources = "sources:\n  s:\n    method: chain\n"
	tests := []struct {
		name, yaml string
		key        string
		value      string // "" means the error has no value
		contains   string // in Error()
	}{
		{"payload typo value", sources + "routes:\n  - {hosts: [a.com], source: s}\n  - {hosts: [b.com], source: s, payload: sigend}\n",
			"routes[1].payload", "sigend", `config: routes[1].payload: "sigend" is not valid; accepted: auto, unsigned, signed`},
		{"null value", "routes:\n", "routes", "", "has no value"},
		{"null nested value", "log:\n  level:\n", "log.level", "", "has no value"},
		{"unknown top key", "rutes: []\n", "rutes", "", "is not a known key; accepted: listen, state_dir"},
		{"unknown route key", sources + "routes:\n  - {hosts: [a.com], source: s, paylaod: signed}\n", "routes[0].paylaod", "", "is not a known key; accepted: hosts, path_prefix"},
		{"unknown nested key", "log:\n  lvl: debug\n", "log.lvl", "", "accepted: level, format"},
		{"unknown source key", "sources:\n  s:\n    method: chain\n    profile: x\n", "sources.s.profile", "", "accepted: method, static, chain"},
		{"bad duration", "shutdown_timeout: 30 seconds\n", "shutdown_timeout", "30 seconds", "a Go duration like 30s or 5m"},
		{"bare number duration", "shutdown_timeout: 30\n", "shutdown_timeout", "30", "a Go duration like 30s or 5m"},
		{"zero duration", "shutdown_timeout: 0s\n", "shutdown_timeout", "0s", "must be greater than zero"},
		{"listen no port", "listen: localhost\n", "listen", "localhost", "accepted: host:port"},
		{"listen port range", "listen: 127.0.0.1:70000\n", "listen", "127.0.0.1:70000", "numeric port 0-65535"},
		{"listen named port", "listen: 127.0.0.1:http\n", "listen", "127.0.0.1:http", "numeric port"},
		{"listen number", "listen: 8080\n", "listen", "8080", "must be a string, not a number"},
		{"log level", "log: {level: verbose}\n", "log.level", "verbose", "accepted: debug, info, warn, error"},
		{"log format", "log: {format: xml}\n", "log.format", "xml", "accepted: text, json"},
		{"unmatched", "unmatched: drop\n", "unmatched", "drop", "accepted: forward, deny"},
		{"source name", "sources:\n  Prod:\n    method: chain\n", "sources.Prod", "Prod", "is not a valid source name"},
		{"method missing", "sources:\n  s: {}\n", "sources.s.method", "", "is required; accepted: static, chain"},
		{"wasm block missing", "sources:\n  s: {method: wasm}\n", "sources.s.wasm", "", "is required when method is wasm"},
		{"method unknown", "sources:\n  s: {method: magic}\n", "sources.s.method", "magic", "is not valid; accepted: static, chain"},
		{"static block missing", "sources:\n  s: {method: static}\n", "sources.s.static", "", "is required when method is static"},
		{"static key id missing", "sources:\n  s: {method: static, static: {secret_access_key: x}}\n", "sources.s.static.access_key_id", "", "is required"},
		{"static secret missing", "sources:\n  s: {method: static, static: {access_key_id: x}}\n", "sources.s.static.secret_access_key", "", "is required"},
		{"chain block on static", "sources:\n  s: {method: static, static: {access_key_id: a, secret_access_key: b}, chain: {profile: p}}\n", "sources.s.chain", "", "is not allowed when method is static"},
		{"static block on chain", "sources:\n  s: {method: chain, static: {access_key_id: a, secret_access_key: b}}\n", "sources.s.static", "", "is not allowed when method is chain"},
		{"hosts missing", sources + "routes:\n  - {source: s}\n", "routes[0].hosts", "", "is required"},
		{"hosts not a list", sources + "routes:\n  - {hosts: a.com, source: s}\n", "routes[0].hosts", "a.com", "must be a list, not a string"},
		{"host bad glob", sources + "routes:\n  - {hosts: [a.com, \"[a\"], source: s}\n", "routes[0].hosts[1]", "[a", "is not a valid glob"},
		{"host with port", sources + "routes:\n  - {hosts: [\"a.com:443\"], source: s}\n", "routes[0].hosts[0]", "a.com:443", "without port"},
		{"path prefix", sources + "routes:\n  - {hosts: [a.com], source: s, path_prefix: bucket}\n", "routes[0].path_prefix", "bucket", `does not start with "/"`},
		{"route source missing", sources + "routes:\n  - {hosts: [a.com]}\n", "routes[0].source", "", "is required; accepted: one of the sources: default, s"},
		{"route source unknown", sources + "routes:\n  - {hosts: [a.com], source: s}\n  - {hosts: [a.com], source: s}\n  - {hosts: [a.com], source: prd}\n", "routes[2].source", "prd", "is not a declared source; accepted: one of the sources: default, s"},
		{"service", sources + "routes:\n  - {hosts: [a.com], source: s, service: s3_x}\n", "routes[0].service", "s3_x", "letters, digits and '-'"},
		{"region", sources + "routes:\n  - {hosts: [a.com], source: s, region: useast1}\n", "routes[0].region", "useast1", "like us-east-1"},
		{"signing host", sources + "routes:\n  - {hosts: [a.com], source: s, signing_host: \"a b\"}\n", "routes[0].signing_host", "a b", "host or host:port"},
		{"upstream scheme", sources + "routes:\n  - {hosts: [a.com], source: s, upstream_scheme: ftp}\n", "routes[0].upstream_scheme", "ftp", "accepted: https, http"},
		{"connect_to key", "upstream:\n  connect_to:\n    \"a:b:c\": 127.0.0.1:1\n", `upstream.connect_to["a:b:c"]`, "a:b:c", "is not a valid key"},
		{"connect_to value", "upstream:\n  connect_to:\n    s3.amazonaws.com:80: nowhere\n", `upstream.connect_to["s3.amazonaws.com:80"]`, "nowhere", "host:port"},
		{"reverse listen missing", sources + "reverse:\n  - {upstream: \"https://h\", source: s}\n", "reverse[0].listen", "", "is required"},
		{"reverse listen equals listen", sources + "reverse:\n  - {listen: \"127.0.0.1:8080\", upstream: \"https://h\", source: s}\n", "reverse[0].listen", "127.0.0.1:8080", "is already used by listen"},
		{"reverse listens collide", sources + "reverse:\n  - {listen: \"127.0.0.1:9000\", upstream: \"https://h\", source: s}\n  - {listen: \"127.0.0.1:9000\", upstream: \"https://h\", source: s}\n", "reverse[1].listen", "127.0.0.1:9000", "is already used by reverse[0].listen"},
		{"reverse upstream scheme", sources + "reverse:\n  - {listen: \"127.0.0.1:9000\", upstream: \"ftp://h\", source: s}\n", "reverse[0].upstream", "ftp://h", "is not an http or https URL"},
		{"reverse upstream path", sources + "reverse:\n  - {listen: \"127.0.0.1:9000\", upstream: \"https://h/bucket\", source: s}\n", "reverse[0].upstream", "https://h/bucket", "has a path"},
		{"reverse upstream query", sources + "reverse:\n  - {listen: \"127.0.0.1:9000\", upstream: \"https://h/?x=1\", source: s}\n", "reverse[0].upstream", "https://h/?x=1", "has a query"},
		{"reverse upstream relative", sources + "reverse:\n  - {listen: \"127.0.0.1:9000\", upstream: \"h:9000\", source: s}\n", "reverse[0].upstream", "h:9000", "is not an http or https URL"},
		{"reverse upstream no host", sources + "reverse:\n  - {listen: \"127.0.0.1:9000\", upstream: \"https://\", source: s}\n", "reverse[0].upstream", "https:", "has no host"},
		{"reverse upstream missing", sources + "reverse:\n  - {listen: \"127.0.0.1:9000\", source: s}\n", "reverse[0].upstream", "", "is required"},
		{"reverse source", sources + "reverse:\n  - {listen: \"127.0.0.1:9000\", upstream: \"https://h\", source: x}\n", "reverse[0].source", "x", "is not a declared source"},
		{"reverse payload", sources + "reverse:\n  - {listen: \"127.0.0.1:9000\", upstream: \"https://h\", source: s, payload: all}\n", "reverse[0].payload", "all", "accepted: auto, unsigned, signed"},
		{"reverse region", sources + "reverse:\n  - {listen: \"127.0.0.1:9000\", upstream: \"https://h\", source: s, region: mars}\n", "reverse[0].region", "mars", "like us-east-1"},
		{"reverse remote", sources + "reverse:\n  - {listen: \"127.0.0.1:9000\", upstream: \"https://h\", source: s}\n  - {listen: \"0.0.0.0:9001\", upstream: \"https://h\", source: s}\n", "reverse[1].listen", "0.0.0.0:9001",
			`is not a loopback address: a reverse listener cannot ask clients for proxy credentials, so anyone who can reach it gets requests signed with source "s"; accepted: a loopback address like 127.0.0.1:9000, or allow_remote: true on this listener to accept that risk`},
		{"reverse all interfaces", sources + "reverse:\n  - {listen: \":9000\", upstream: \"https://h\", source: s, allow_remote: false}\n", "reverse[0].listen", ":9000", "is not a loopback address"},
		{"reverse allow_remote not bool", sources + "reverse:\n  - {listen: \":9000\", upstream: \"https://h\", source: s, allow_remote: \"yes\"}\n", "reverse[0].allow_remote", "yes", "is not a boolean"},
		{"insecure_skip_verify not bool", sources + "routes:\n  - {hosts: [a.com], source: s, insecure_skip_verify: 1}\n", "routes[0].insecure_skip_verify", "1", "must be true or false, not a number"},
		{"listen all interfaces without auth", "listen: 0.0.0.0:8080\n", "proxy_auth.file", "",
			"config: proxy_auth.file: is required when listen is not a loopback address (0.0.0.0:8080): signet would sign requests for anyone who can reach it; accepted: a file of user:password lines, or bind listen to 127.0.0.1 (from default)"},
		{"listen empty host without auth", "listen: \":8080\"\n", "proxy_auth.file", "", "(:8080)"},
		{"listen ipv6 any without auth", "listen: \"[::]:8080\"\n", "proxy_auth.file", "", "([::]:8080)"},
		{"listen lan without auth", "listen: 192.168.1.5:0\nproxy_auth: {file: \"\"}\n", "proxy_auth.file", "", "is required when listen is not a loopback address (192.168.1.5:0)"},
		{"listen hostname without auth", "listen: signet.example.com:8080\n", "proxy_auth.file", "", "bind listen to 127.0.0.1"},
		{"proxy_auth unknown key", "proxy_auth: {users: /etc/u}\n", "proxy_auth.users", "", "is not a known key; accepted: file"},
		{"cache_size zero", "intercept: {cache_size: 0}\n", "intercept.cache_size", "0", "is out of range; accepted: a whole number from 1 to 1000000"},
		{"cache_size negative", "intercept: {cache_size: -5}\n", "intercept.cache_size", "-5", "is out of range"},
		{"cache_size too big", "intercept: {cache_size: 1000001}\n", "intercept.cache_size", "1000001", "is out of range; accepted: a whole number from 1 to 1000000"},
		{"cache_size fraction", "intercept: {cache_size: 10.5}\n", "intercept.cache_size", "10.5", "is not a whole number; accepted: a whole number"},
		{"cache_size huge", "intercept: {cache_size: 1e300}\n", "intercept.cache_size", "1e+300", "is out of range"},
		{"cache_size string", "intercept: {cache_size: lots}\n", "intercept.cache_size", "lots", "is not a whole number"},
		{"cache_size list", "intercept: {cache_size: [1]}\n", "intercept.cache_size", "", "must be a whole number, not a list"},
		{"intercept unknown key", "intercept: {size: 5}\n", "intercept.size", "", "accepted: cache_size"},
		{"proxy_tls mode", "proxy_tls: {mode: on}\n", "proxy_tls.mode", "on", `"on" is not valid; accepted: off, local, acme`},
		{"proxy_tls mode bool", "proxy_tls: {mode: false}\n", "proxy_tls.mode", "false", "must be a string, not a boolean"},
		{"proxy_tls mode empty", "proxy_tls: {mode: \"\"}\n", "proxy_tls.mode", "", "is required; accepted: off, local, acme"},
		{"acme block with mode off", "proxy_tls:\n  acme: {ca: \"https://acme.example.com/dir\"}\n", "proxy_tls.acme", "",
			"config: proxy_tls.acme: is set but proxy_tls.mode is off; accepted: remove the acme block, or set proxy_tls.mode: acme"},
		{"acme block with mode local", "proxy_tls:\n  mode: local\n  acme: {}\n", "proxy_tls.acme", "", "is set but proxy_tls.mode is local"},
		{"names with mode off", "proxy_tls: {names: [signet.example.com]}\n", "proxy_tls.names", "", "is set but proxy_tls.mode is off; accepted: remove names, or set proxy_tls.mode: local or acme"},
		{"name invalid", "proxy_tls: {mode: local, names: [localhost, \"bad_name.example.com\"]}\n", "proxy_tls.names[1]", "bad_name.example.com", "is not a valid DNS name or IP address; accepted: a DNS name like signet.example.com, or an IP address"},
		{"name wildcard", "proxy_tls: {mode: local, names: [\"*.example.com\"]}\n", "proxy_tls.names[0]", "*.example.com", "is not a valid DNS name"},
		{"name with port", "proxy_tls: {mode: local, names: [\"localhost:8443\"]}\n", "proxy_tls.names[0]", "localhost:8443", "is not a valid DNS name"},
		{"name bad ip", "proxy_tls: {mode: local, names: [\"300.1.1.1\"]}\n", "proxy_tls.names[0]", "300.1.1.1", "is not a valid DNS name or IP address"},
		{"name label dash", "proxy_tls: {mode: local, names: [\"-a.example.com\"]}\n", "proxy_tls.names[0]", "-a.example.com", "is not a valid DNS name"},
		{"name empty", "proxy_tls: {mode: local, names: [\"\"]}\n", "proxy_tls.names[0]", "", "is empty"},
		{"acme names missing", "proxy_tls:\n  mode: acme\n  acme: {ca: \"https://acme.example.com/dir\"}\n", "proxy_tls.names", "", "is required when mode is acme"},
		{"acme name ip", "proxy_tls:\n  mode: acme\n  names: [signet.example.com, 192.0.2.1]\n  acme: {ca: \"https://acme.example.com/dir\"}\n", "proxy_tls.names[1]", "192.0.2.1", "is an IP address; accepted: a DNS name like signet.example.com (mode acme takes no IP addresses)"},
		{"acme block missing", "proxy_tls: {mode: acme, names: [signet.example.com]}\n", "proxy_tls.acme", "", "is required when mode is acme; accepted: a mapping with ca"},
		{"acme ca missing", "proxy_tls:\n  mode: acme\n  names: [signet.example.com]\n  acme: {email: ops@example.com}\n", "proxy_tls.acme.ca", "", "is required when mode is acme; accepted: an absolute https URL"},
		{"acme ca http remote", "proxy_tls:\n  mode: acme\n  names: [signet.example.com]\n  acme: {ca: \"http://acme.example.com/dir\"}\n", "proxy_tls.acme.ca", "http://acme.example.com/dir", "is plain http to a host that is not loopback"},
		{"acme ca http all interfaces", "proxy_tls:\n  mode: acme\n  names: [signet.example.com]\n  acme: {ca: \"http://0.0.0.0:14000/dir\"}\n", "proxy_tls.acme.ca", "http://0.0.0.0:14000/dir", "is plain http"},
		{"acme ca relative", "proxy_tls:\n  mode: acme\n  names: [signet.example.com]\n  acme: {ca: \"acme.example.com/dir\"}\n", "proxy_tls.acme.ca", "acme.example.com/dir", "is not an https URL"},
		{"acme ca scheme", "proxy_tls:\n  mode: acme\n  names: [signet.example.com]\n  acme: {ca: \"ftp://acme.example.com/\"}\n", "proxy_tls.acme.ca", "ftp://acme.example.com/", "is not an https URL"},
		{"acme ca no host", "proxy_tls:\n  mode: acme\n  names: [signet.example.com]\n  acme: {ca: \"https:///dir\"}\n", "proxy_tls.acme.ca", "https:///dir", "has no host"},
		{"acme ca port", "proxy_tls:\n  mode: acme\n  names: [signet.example.com]\n  acme: {ca: \"https://acme.example.com:99999/dir\"}\n", "proxy_tls.acme.ca", "https://acme.example.com:99999/dir", "has an invalid port"},
		{"acme ca credentials", "proxy_tls:\n  mode: acme\n  names: [signet.example.com]\n  acme: {ca: \"https://u:pw@acme.example.com/dir\"}\n", "proxy_tls.acme.ca", "https://u:xxxxx@acme.example.com/dir", "must not contain credentials"},
		{"acme email", "proxy_tls:\n  mode: acme\n  names: [signet.example.com]\n  acme: {ca: \"https://acme.example.com/dir\", email: \"Ops <ops@example.com>\"}\n", "proxy_tls.acme.email", "Ops <ops@example.com>", "is not a valid email address; accepted: an address like ops@example.com, or empty"},
		{"acme unknown key", "proxy_tls:\n  mode: acme\n  names: [signet.example.com]\n  acme: {ca: \"https://acme.example.com/dir\", directory: x}\n", "proxy_tls.acme.directory", "", "accepted: ca, email, trusted_roots"},
		{"proxy_tls unknown key", "proxy_tls: {cert: x}\n", "proxy_tls.cert", "", "accepted: mode, names, acme"},
		{"names not a list", "proxy_tls: {mode: local, names: localhost}\n", "proxy_tls.names", "localhost", "must be a list, not a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := configs.LoadBytes([]byte("state_dir: /s\n"+tt.yaml), configs.FormatYAML)
			e := findError(t, err, tt.key)
			if e.Value != tt.value {
				t.Errorf("Value = %q, want %q", e.Value, tt.value)
			}
			if !strings.Contains(e.Error(), tt.contains) {
				t.Errorf("error %q does not contain %q", e.Error(), tt.contains)
			}
			if e.Origin == "" {
				t.Errorf("error %q has no origin", e.Error())
			}
		})
	}
}

func TestAcceptedConfigs(t *testing.T) {
	tests := []struct{ name, yaml string }{
		{"port zero", "listen: 127.0.0.1:0\n"},
		{"all interfaces with auth", "listen: :8080\nproxy_auth: {file: /etc/signet/users}\n"},
		{"localhost", "listen: localhost:8080\n"},
		{"loopback range", "listen: 127.1.2.3:8080\n"},
		{"remote reverse allowed", "reverse:\n  - {listen: \"0.0.0.0:9000\", upstream: \"https://h\", source: default, allow_remote: true}\n"},
		{"loopback reverse with allow_remote", "reverse:\n  - {listen: \"[::1]:9000\", upstream: \"https://h\", source: default, allow_remote: true}\n"},
		{"insecure route", "routes:\n  - {hosts: [a.com], source: default, insecure_skip_verify: true}\n"},
		{"cache_size bounds", "intercept: {cache_size: 1}\n"},
		{"cache_size max", "intercept: {cache_size: 1000000}\n"},
		{"cache_size whole float", "intercept: {cache_size: 2.0e+3}\n"},
		{"cache_size quoted", "intercept: {cache_size: \"250\"}\n"},
		{"tls local default names", "proxy_tls: {mode: local}\n"},
		{"tls local names", "proxy_tls: {mode: local, names: [localhost, 127.0.0.1, \"::1\", Signet.Example.COM, a-b.c]}\n"},
		{"tls off explicit empty", "proxy_tls: {mode: \"off\", names: []}\n"},
		{"acme", "proxy_tls:\n  mode: acme\n  names: [signet.example.com]\n  acme: {ca: \"https://acme-v02.api.letsencrypt.org/directory\", email: ops@example.com, trusted_roots: /etc/pebble.pem}\n"},
		{"acme http loopback", "proxy_tls:\n  mode: acme\n  names: [signet.test]\n  acme: {ca: \"http://127.0.0.1:14000/dir\"}\n"},
		{"acme http localhost", "proxy_tls:\n  mode: acme\n  names: [signet.test]\n  acme: {ca: \"http://localhost:14000/dir\"}\n"},
		{"acme http ipv6 loopback", "proxy_tls:\n  mode: acme\n  names: [signet.test]\n  acme: {ca: \"http://[::1]:14000/dir\"}\n"},
		{"ipv6", "listen: \"[::1]:8080\"\n"},
		{"reverse port zero twice", "listen: 127.0.0.1:0\nreverse:\n  - {listen: \"127.0.0.1:0\", upstream: \"http://h\", source: default}\n  - {listen: \"127.0.0.1:0\", upstream: \"https://h:9000/\", source: default}\n"},
		{"uppercase service", "routes:\n  - {hosts: [a.com], source: default, service: IoTSecuredTunneling, region: us-gov-west-1}\n"},
		{"unused source", "sources:\n  spare: {method: chain, chain: {profile: p}}\n"},
		{"connect_to forms", "upstream:\n  connect_to:\n    a.com: 127.0.0.1:1\n    \"*.s3.us-east-1.amazonaws.com:80\": 127.0.0.1:2\n    \"[::1]:443\": \"[::1]:8443\"\n"},
		{"signing host with port", "routes:\n  - {hosts: [a.com], source: default, signing_host: \"b.com:8443\", path_prefix: /x}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := configs.LoadBytes([]byte("state_dir: /s\n"+tt.yaml), configs.FormatYAML); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestHostsLowercased(t *testing.T) {
	cfg, err := configs.LoadBytes([]byte("state_dir: /s\nroutes:\n  - {hosts: [\"*.S3.Amazonaws.COM\"], source: default}\n"), configs.FormatYAML)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Routes[0].Hosts[0]; got != "*.s3.amazonaws.com" {
		t.Errorf("host = %q", got)
	}
}

func TestReportsEveryProblem(t *testing.T) {
	_, err := configs.LoadBytes([]byte(`
state_dir: /s
shutdown_timeout: soon
log: {level: loud}
routes:
  - {hosts: [a.com], source: nope, paylaod: signed}
`), configs.FormatYAML)
	for _, key := range []string{"shutdown_timeout", "log.level", "routes[0].source", "routes[0].paylaod"} {
		findError(t, err, key)
	}
	var all configs.Errors
	errors.As(err, &all)
	if len(all) != 4 {
		t.Errorf("got %d errors, want 4:\n%v", len(all), err)
	}
}

func TestOrigin(t *testing.T) {
	file := writeFile(t, "signet.yaml", "routes:\n  - {hosts: [a.com], source: default, payload: sigend}\n")
	tests := []struct {
		name   string
		opts   configs.LoadOptions
		key    string
		origin string
	}{
		{"file", configs.LoadOptions{File: file, Environ: home}, "routes[0].payload", "file " + file},
		{"env", configs.LoadOptions{Environ: append([]string{"SIGNET_LOG__LEVEL=loud"}, home...)}, "log.level", "env SIGNET_LOG__LEVEL"},
		{"flag", configs.LoadOptions{Environ: home, Overrides: map[string]string{"log.level": "loud"}}, "log.level", "flag --log-level"},
		{"flag underscore", configs.LoadOptions{Environ: home, Overrides: map[string]string{"shutdown_timeout": "x"}}, "shutdown_timeout", "flag --shutdown-timeout"},
		{"default", configs.LoadOptions{}, "state_dir", "default"},
		{"unknown env", configs.LoadOptions{Environ: append([]string{"SIGNET_LSTEN=:1"}, home...)}, "lsten", "env SIGNET_LSTEN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := configs.Load(tt.opts)
			e := findError(t, err, tt.key)
			if e.Origin != tt.origin {
				t.Errorf("Origin = %q, want %q", e.Origin, tt.origin)
			}
			if !strings.Contains(e.Error(), "(from "+tt.origin+")") {
				t.Errorf("error %q does not name its origin", e)
			}
		})
	}
}

func TestPrecedence(t *testing.T) {
	file := writeFile(t, "c.toml", "listen = \"127.0.0.1:1\"\n[log]\nlevel = \"warn\"\nformat = \"json\"\n")
	tests := []struct {
		name                  string
		env                   []string
		overrides             map[string]string
		listen, level, format string
	}{
		{name: "file over default", listen: "127.0.0.1:1", level: "warn", format: "json"},
		{name: "env over file", env: []string{"SIGNET_LISTEN=127.0.0.1:2", "SIGNET_LOG__LEVEL=debug"}, listen: "127.0.0.1:2", level: "debug", format: "json"},
		{name: "flag over env", env: []string{"SIGNET_LISTEN=127.0.0.1:2"}, overrides: map[string]string{"listen": "127.0.0.1:3", "log.format": "text"}, listen: "127.0.0.1:3", level: "warn", format: "text"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := configs.Load(configs.LoadOptions{File: file, Environ: append(tt.env, home...), Overrides: tt.overrides})
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Listen != tt.listen || cfg.Log.Level != tt.level || cfg.Log.Format != tt.format {
				t.Errorf("got listen=%q level=%q format=%q; want %q %q %q", cfg.Listen, cfg.Log.Level, cfg.Log.Format, tt.listen, tt.level, tt.format)
			}
		})
	}
}

func TestEnvNesting(t *testing.T) {
	cfg, err := configs.Load(configs.LoadOptions{
		Environ: []string{
			"HOME=/h",
			"SIGNET_STATE_DIR=/state",
			"SIGNET_SHUTDOWN_TIMEOUT=5s",
			"SIGNET_SOURCES__PROD__METHOD=static",
			"SIGNET_SOURCES__PROD__STATIC__ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE",
			"SIGNET_SOURCES__PROD__STATIC__SECRET_ACCESS_KEY=secret/with=equals",
			"SIGNET_UNMATCHED=deny",
			"SIGNET_CONFIG=/etc/signet.yaml",
			"OTHER_LISTEN=ignored",
		},
		IgnoreEnv: []string{"SIGNET_CONFIG"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := configs.Source{Method: "static", Static: &configs.Static{AccessKeyID: "AKIAIOSFODNN7EXAMPLE", SecretAccessKey: "secret/with=equals"}, Refresh: defaultRefresh}
	if got := cfg.Sources["prod"]; !reflect.DeepEqual(got, want) {
		t.Errorf("sources.prod = %+v", got)
	}
	if cfg.StateDir != "/state" || cfg.ShutdownTimeout != 5*time.Second || cfg.Unmatched != "deny" {
		t.Errorf("got %q %v %q", cfg.StateDir, cfg.ShutdownTimeout, cfg.Unmatched)
	}
}

func TestEnvErrorsNameVariable(t *testing.T) {
	tests := []struct{ env, want string }{
		{"SIGNET_LOG__LEVL=debug", "config: log.levl: is not a known key; accepted: level, format, access (from env SIGNET_LOG__LEVL)"},
		{"SIGNET_CONFIG=/x", "(from env SIGNET_CONFIG)"},
		{"SIGNET_LOG__=debug", "config: env SIGNET_LOG__: does not name a config key"},
		{"SIGNET_=x", "config: env SIGNET_: does not name a config key"},
		{"SIGNET_SOURCES__P__STATIC__SECRET_ACCESS_KEY=hunter2", "sources.p.method: is required"},
		{"SIGNET_LOG__ACCESS=maybe", `config: log.access: "maybe" is not a boolean; accepted: true or false (from env SIGNET_LOG__ACCESS)`},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			_, err := configs.Load(configs.LoadOptions{Environ: []string{"HOME=/h", tt.env}})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v does not contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error leaks a secret: %v", err)
			}
		})
	}
}

// sameConfig is one config in each format. Its connect_to keys contain
// dots and colons, which must stay whole keys.
var sameConfig = map[string]string{
	"yaml": `
state_dir: /s
listen: 127.0.0.1:0
shutdown_timeout: 1m
log: {level: debug, format: json}
sources:
  prod:
    method: static
    static: {access_key_id: AKIAIOSFODNN7EXAMPLE, secret_access_key: sekret, session_token: tok}
  dev:
    method: chain
    chain: {profile: dev}
routes:
  - hosts: ["*.s3.us-east-1.amazonaws.com"]
    path_prefix: /bucket
    source: prod
    service: s3
    region: us-east-1
    signing_host: s3.us-east-1.amazonaws.com
    payload: unsigned
    upstream_scheme: http
    insecure_skip_verify: true
unmatched: deny
upstream:
  connect_to:
    s3.us-east-1.amazonaws.com:80: 127.0.0.1:9000
    "*.s3.us-east-1.amazonaws.com:80": 127.0.0.1:9001
    sts.amazonaws.com: 127.0.0.1:9002
  ca_file: /ca.pem
reverse:
  - listen: 0.0.0.0:9100
    upstream: https://minio.example.com:9000
    source: dev
    service: s3
    region: eu-west-1
    payload: signed
    allow_remote: true
intercept:
  cache_size: 500
proxy_tls:
  mode: acme
  names: [signet.example.com, Signet2.Example.com]
  acme:
    ca: https://acme.example.com/dir
    email: ops@example.com
    trusted_roots: /pebble.pem
proxy_auth:
  file: /users
`,
	"toml": `
state_dir = "/s"
listen = "127.0.0.1:0"
shutdown_timeout = "1m"
unmatched = "deny"
[log]
level = "debug"
format = "json"
[sources.prod]
method = "static"
static = { access_key_id = "AKIAIOSFODNN7EXAMPLE", secret_access_key = "sekret", session_token = "tok" }
[sources.dev]
method = "chain"
chain = { profile = "dev" }
[[routes]]
hosts = ["*.s3.us-east-1.amazonaws.com"]
path_prefix = "/bucket"
source = "prod"
service = "s3"
region = "us-east-1"
signing_host = "s3.us-east-1.amazonaws.com"
payload = "unsigned"
upstream_scheme = "http"
insecure_skip_verify = true
[upstream]
ca_file = "/ca.pem"
[upstream.connect_to]
"s3.us-east-1.amazonaws.com:80" = "127.0.0.1:9000"
"*.s3.us-east-1.amazonaws.com:80" = "127.0.0.1:9001"
"sts.amazonaws.com" = "127.0.0.1:9002"
[[reverse]]
listen = "0.0.0.0:9100"
upstream = "https://minio.example.com:9000"
source = "dev"
service = "s3"
region = "eu-west-1"
payload = "signed"
allow_remote = true
[intercept]
cache_size = 500
[proxy_tls]
mode = "acme"
names = ["signet.example.com", "Signet2.Example.com"]
[proxy_tls.acme]
ca = "https://acme.example.com/dir"
email = "ops@example.com"
trusted_roots = "/pebble.pem"
[proxy_auth]
file = "/users"
`,
	"json": `{
  "state_dir": "/s", "listen": "127.0.0.1:0", "shutdown_timeout": "1m",
  "log": {"level": "debug", "format": "json"},
  "sources": {
    "prod": {"method": "static", "static": {"access_key_id": "AKIAIOSFODNN7EXAMPLE", "secret_access_key": "sekret", "session_token": "tok"}},
    "dev": {"method": "chain", "chain": {"profile": "dev"}}
  },
  "routes": [{"hosts": ["*.s3.us-east-1.amazonaws.com"], "path_prefix": "/bucket", "source": "prod", "service": "s3",
    "region": "us-east-1", "signing_host": "s3.us-east-1.amazonaws.com", "payload": "unsigned", "upstream_scheme": "http", "insecure_skip_verify": true}],
  "unmatched": "deny",
  "upstream": {"connect_to": {"s3.us-east-1.amazonaws.com:80": "127.0.0.1:9000", "*.s3.us-east-1.amazonaws.com:80": "127.0.0.1:9001", "sts.amazonaws.com": "127.0.0.1:9002"}, "ca_file": "/ca.pem"},
  "reverse": [{"listen": "0.0.0.0:9100", "upstream": "https://minio.example.com:9000", "source": "dev", "service": "s3", "region": "eu-west-1", "payload": "signed", "allow_remote": true}],
  "intercept": {"cache_size": 500},
  "proxy_tls": {"mode": "acme", "names": ["signet.example.com", "Signet2.Example.com"],
    "acme": {"ca": "https://acme.example.com/dir", "email": "ops@example.com", "trusted_roots": "/pebble.pem"}},
  "proxy_auth": {"file": "/users"}
}`,
}

func TestFormatsAgree(t *testing.T) {
	var first *configs.Config
	for _, format := range []string{"yaml", "toml", "json"} {
		cfg, err := configs.LoadBytes([]byte(sameConfig[format]), format)
		if err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		want := map[string]string{
			"s3.us-east-1.amazonaws.com:80":   "127.0.0.1:9000",
			"*.s3.us-east-1.amazonaws.com:80": "127.0.0.1:9001",
			"sts.amazonaws.com":               "127.0.0.1:9002",
		}
		if !reflect.DeepEqual(cfg.Upstream.ConnectTo, want) {
			t.Errorf("%s: connect_to = %v, want %v", format, cfg.Upstream.ConnectTo, want)
		}
		wantTLS := configs.ProxyTLS{
			Mode:  configs.ProxyTLSACME,
			Names: []string{"signet.example.com", "signet2.example.com"},
			ACME:  &configs.ACME{CA: "https://acme.example.com/dir", Email: "ops@example.com", TrustedRoots: "/pebble.pem"},
		}
		if !reflect.DeepEqual(cfg.ProxyTLS, wantTLS) || cfg.Intercept.CacheSize != 500 || cfg.ProxyAuth.File != "/users" ||
			!cfg.Routes[0].InsecureSkipVerify || !cfg.Reverse[0].AllowRemote {
			t.Errorf("%s: new keys = %+v %+v %+v %v %v", format, cfg.ProxyTLS, cfg.Intercept, cfg.ProxyAuth, cfg.Routes[0].InsecureSkipVerify, cfg.Reverse[0].AllowRemote)
		}
		if first == nil {
			first = cfg
		} else if !reflect.DeepEqual(cfg, first) {
			t.Errorf("%s differs from yaml:\n%+v\n%+v", format, cfg, first)
		}
		// The same again through a file, whose format comes from its name.
		ext := map[string]string{"yaml": ".yml", "toml": ".toml", "json": ".JSON"}[format]
		fromFile, err := configs.Load(configs.LoadOptions{File: writeFile(t, "c"+ext, sameConfig[format])})
		if err != nil {
			t.Fatalf("%s file: %v", format, err)
		}
		if !reflect.DeepEqual(fromFile, first) {
			t.Errorf("%s file differs", format)
		}
	}
}

func TestConnectToKeysFromEnv(t *testing.T) {
	cfg, err := configs.Load(configs.LoadOptions{Environ: []string{"HOME=/h", "SIGNET_UPSTREAM__CONNECT_TO__LOCALHOST=127.0.0.1:9"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Upstream.ConnectTo["localhost"]; got != "127.0.0.1:9" {
		t.Errorf("connect_to = %v", cfg.Upstream.ConnectTo)
	}
}

func TestFileErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, file, content, want string
	}{
		{"missing", filepath.Join(dir, "nope.yaml"), "", "config: file " + filepath.Join(dir, "nope.yaml") + ": cannot be read: no such file or directory"},
		{"extension", "signet.ini", "", "config: file signet.ini: has an unknown format; accepted: .yaml, .yml, .toml, .json"},
		{"yaml syntax", "bad.yaml", "listen: a\n  b: [\n", "is not valid YAML: line 2"},
		{"yaml not a map", "list.yaml", "- a\n", "is not valid YAML"},
		{"toml syntax", "bad.toml", "listen = \"a\"\nlog = [\n", "is not valid TOML: line 2"},
		{"json syntax", "bad.json", "{\n\"listen\": \"a\",\n}\n", "is not valid JSON: line 3"},
		{"json not an object", "list.json", "\n[1]", "is not valid JSON: line 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := tt.file
			if tt.content != "" {
				file = writeFile(t, tt.file, tt.content)
			}
			_, err := configs.Load(configs.LoadOptions{File: file, Environ: home})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v does not contain %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), file) {
				t.Errorf("error %v does not name the file", err)
			}
			var e *configs.Error
			if !errors.As(err, &e) || e.Origin != "file "+file {
				t.Errorf("Origin = %q", e.Origin)
			}
		})
	}
}

func TestMergeWithDefaultSource(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       configs.Source
	}{
		{"route uses default", "routes:\n  - {hosts: [a.com], source: default}\n", configs.Source{Method: "chain", Refresh: defaultRefresh}},
		{"default made static", "sources:\n  default:\n    method: static\n    static: {access_key_id: AKIAIOSFODNN7EXAMPLE, secret_access_key: s}\n",
			configs.Source{Method: "static", Static: &configs.Static{AccessKeyID: "AKIAIOSFODNN7EXAMPLE", SecretAccessKey: "s"}, Refresh: defaultRefresh}},
		{"default given a profile", "sources:\n  default:\n    chain: {profile: p}\n", configs.Source{Method: "chain", Chain: &configs.Chain{Profile: "p"}, Refresh: defaultRefresh}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := configs.Load(configs.LoadOptions{File: writeFile(t, "c.yaml", tt.yaml), Environ: home})
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Sources["default"]; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("sources.default = %+v, want %+v", got, tt.want)
			}
		})
	}
}

const secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
const token = "FwoGZXIvYXdzEXAMPLETOKEN"

func TestRedacted(t *testing.T) {
	cfg, err := configs.LoadBytes([]byte(`
state_dir: /s
sources:
  prod:
    method: static
    static: {access_key_id: AKIAIOSFODNN7EXAMPLE, secret_access_key: `+secret+`, session_token: `+token+`}
  short:
    method: static
    static: {access_key_id: AKIA12, secret_access_key: `+secret+`}
`), "yaml")
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Redacted()
	if got := *r.Sources["prod"].Static; got != (configs.Static{AccessKeyID: "AKIA…MPLE", SecretAccessKey: "REDACTED", SessionToken: "REDACTED"}) {
		t.Errorf("redacted = %+v", got)
	}
	if got := r.Sources["short"].Static.AccessKeyID; got != "REDACTED" {
		t.Errorf("short key id = %q", got)
	}
	if cfg.Sources["prod"].Static.SecretAccessKey != secret {
		t.Error("Redacted changed the original")
	}
	full, err := configs.LoadBytes([]byte(sameConfig["yaml"]), "yaml")
	if err != nil {
		t.Fatal(err)
	}
	fr := full.Redacted()
	if !reflect.DeepEqual(fr.ProxyTLS, full.ProxyTLS) || fr.ProxyAuth != full.ProxyAuth || fr.Intercept != full.Intercept {
		t.Errorf("Redacted changed proxy settings: %+v %+v", fr.ProxyTLS, fr.ProxyAuth)
	}
	fr.ProxyTLS.Names[0] = "changed"
	fr.ProxyTLS.ACME.CA = "changed"
	if full.ProxyTLS.Names[0] == "changed" || full.ProxyTLS.ACME.CA == "changed" {
		t.Error("Redacted shares proxy_tls with the original")
	}
	for _, format := range []string{"yaml", "json", "toml"} {
		out, err := r.Render(format)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{secret, token, "AKIAIOSFODNN7EXAMPLE"} {
			if strings.Contains(string(out), s) {
				t.Errorf("%s render contains %q:\n%s", format, s, out)
			}
		}
	}
}

func TestSecretsNotInErrors(t *testing.T) {
	tests := []string{
		"sources:\n  p:\n    method: static\n    static: {access_key_id: a, secret_access_key: [" + secret + "]}\n",
		"sources:\n  p:\n    method: static\n    static: {access_key_id: a, secret_access_key: 1234567890, session_token: 987654321}\n",
		"sources:\n  p:\n    method: bogus\n    static: {access_key_id: a, secret_access_key: " + secret + ", session_token: " + token + "}\n",
		"sources:\n  p:\n    method: static\n    static: {access_key_id: a, secret_access_key: \"" + secret + "\xff\"}\n",
		"reverse:\n  - {listen: \"127.0.0.1:1\", upstream: \"https://user:" + secret + "@h/x\", source: default}\n",
		"proxy_tls:\n  mode: acme\n  names: [a.example.com]\n  acme: {ca: \"https://user:" + secret + "@acme.example.com/dir\"}\n",
		"proxy_tls:\n  mode: acme\n  names: [a.example.com]\n  acme: {ca: \"http://user:" + secret + "@acme.example.com/dir\"}\n",
	}
	for i, y := range tests {
		_, err := configs.LoadBytes([]byte("state_dir: /s\n"+y), "yaml")
		if err == nil {
			t.Fatalf("%d: no error", i)
		}
		for _, s := range []string{secret, token, "1234567890", "987654321"} {
			if strings.Contains(err.Error(), s) {
				t.Errorf("%d: error leaks %q: %v", i, s, err)
			}
		}
	}
}

func TestRenderRoundTrip(t *testing.T) {
	inputs := map[string][]byte{"full": []byte(sameConfig["yaml"]), "default": []byte("state_dir: /s\n")}
	for name, in := range inputs {
		cfg, err := configs.LoadBytes(in, "yaml")
		if err != nil {
			t.Fatal(err)
		}
		for _, format := range []string{"", "yaml", "json", "toml"} {
			out, err := cfg.Render(format)
			if err != nil {
				t.Fatal(err)
			}
			loadAs := format
			if loadAs == "" {
				loadAs = "yaml"
			}
			back, err := configs.LoadBytes(out, loadAs)
			if err != nil {
				t.Fatalf("%s/%s: %v\n%s", name, format, err, out)
			}
			if !reflect.DeepEqual(back, cfg) {
				t.Errorf("%s/%s round trip differs:\n%s", name, format, out)
			}
		}
	}
	if _, err := (&configs.Config{}).Render("xml"); err == nil {
		t.Error("Render(xml) succeeded")
	}
}

func TestValidateOnBuiltConfig(t *testing.T) {
	var c configs.Config
	err := c.Validate()
	for _, key := range []string{"listen", "state_dir", "shutdown_timeout", "log.level", "unmatched", "intercept.cache_size", "proxy_tls.mode"} {
		findError(t, err, key)
	}
}

// TestExamples loads every file in examples/, so a new example is tested
// as soon as it is added.
func TestExamples(t *testing.T) {
	files, err := filepath.Glob("examples/*")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cfg, err := configs.Load(configs.LoadOptions{File: f, Environ: home})
			if err != nil {
				t.Fatal(err)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		e    configs.Error
		want string
	}{
		{configs.Error{Key: "routes[1].payload", Value: "sigend", Problem: "is not valid", Accepted: "auto, unsigned, signed"},
			`config: routes[1].payload: "sigend" is not valid; accepted: auto, unsigned, signed`},
		{configs.Error{Key: "listen", Problem: "is required", Origin: "flag --listen"}, "config: listen: is required (from flag --listen)"},
		{configs.Error{Origin: "file a.yaml", Problem: "cannot be read: boom"}, "config: file a.yaml: cannot be read: boom"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("got  %s\nwant %s", got, tt.want)
		}
	}
	multi := configs.Errors{&tests[0].e, &tests[1].e}
	if got := multi.Error(); got != tests[0].want+"\n"+tests[1].want {
		t.Errorf("Errors.Error() = %q", got)
	}
}

func TestIsLoopbackHost(t *testing.T) {
	tests := []struct {
		host string
		want bool
	}{
		{"127.0.0.1", true},
		{"127.255.0.9", true},
		{"::1", true},
		{"[::1]", true},
		{"::ffff:127.0.0.1", true},
		{"localhost", true},
		{"LocalHost", true},
		{"", false},
		{"0.0.0.0", false},
		{"::", false},
		{"[::]", false},
		{"128.0.0.1", false},
		{"192.168.1.5", false},
		{"::2", false},
		{"localhost.example.com", false},
		{"evil-localhost", false},
		{"127.0.0.1:8080", false},
		{"[::1", false},
	}
	for _, tt := range tests {
		if got := configs.IsLoopbackHost(tt.host); got != tt.want {
			t.Errorf("IsLoopbackHost(%q) = %v, want %v", tt.host, got, tt.want)
		}
	}
}

// TestWholeNumberLayers checks that cache_size reads the same from every
// layer: YAML, TOML and JSON each give a different number type, and the
// environment and flags give strings.
func TestWholeNumberLayers(t *testing.T) {
	tests := []struct {
		name      string
		file      string
		env       []string
		overrides map[string]string
		want      int
		wantErr   string
	}{
		{name: "yaml", file: "c.yaml:intercept:\n  cache_size: 7\n", want: 7},
		{name: "toml", file: "c.toml:[intercept]\ncache_size = 8\n", want: 8},
		{name: "json", file: "c.json:{\"intercept\": {\"cache_size\": 9}}", want: 9},
		{name: "env", env: []string{"SIGNET_INTERCEPT__CACHE_SIZE=500"}, want: 500},
		{name: "flag over env", env: []string{"SIGNET_INTERCEPT__CACHE_SIZE=500"}, overrides: map[string]string{"intercept.cache_size": "42"}, want: 42},
		{name: "env not a number", env: []string{"SIGNET_INTERCEPT__CACHE_SIZE=1k"},
			wantErr: `config: intercept.cache_size: "1k" is not a whole number; accepted: a whole number (from env SIGNET_INTERCEPT__CACHE_SIZE)`},
		{name: "flag out of range", overrides: map[string]string{"intercept.cache_size": "99999999999999999999"},
			wantErr: `config: intercept.cache_size: "99999999999999999999" is out of range; accepted: a whole number (from flag --intercept-cache-size)`},
		{name: "json fraction", file: "c.json:{\"intercept\": {\"cache_size\": 1.5}}", wantErr: `"1.5" is not a whole number`},
		{name: "toml too big", file: "c.toml:[intercept]\ncache_size = 2000000\n",
			wantErr: `"2000000" is out of range; accepted: a whole number from 1 to 1000000`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := configs.LoadOptions{Environ: append(tt.env, home...), Overrides: tt.overrides}
			if tt.file != "" {
				name, content, _ := strings.Cut(tt.file, ":")
				opts.File = writeFile(t, name, content)
			}
			cfg, err := configs.Load(opts)
			if tt.wantErr != "" {
				e := findError(t, err, "intercept.cache_size")
				if !strings.Contains(e.Error(), tt.wantErr) {
					t.Errorf("error %q does not contain %q", e, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Intercept.CacheSize != tt.want {
				t.Errorf("cache_size = %d, want %d", cfg.Intercept.CacheSize, tt.want)
			}
		})
	}
}

// TestNewBlocksOverDefault checks that each block merged over the embedded
// default loads: the default must never trip a rule that a user's partial
// block would then inherit (such as an acme block while mode is off).
func TestNewBlocksOverDefault(t *testing.T) {
	defaults := func() *configs.Config {
		cfg, err := configs.Load(configs.LoadOptions{Environ: home})
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	tests := []struct {
		name, yaml string
		want       func(*configs.Config)
	}{
		{"intercept", "intercept:\n  cache_size: 50\n", func(c *configs.Config) { c.Intercept.CacheSize = 50 }},
		{"empty intercept", "intercept: {}\n", func(*configs.Config) {}},
		{"proxy_tls off", "proxy_tls:\n  mode: off\n", func(*configs.Config) {}},
		{"proxy_tls local", "proxy_tls:\n  mode: local\n", func(c *configs.Config) { c.ProxyTLS.Mode = configs.ProxyTLSLocal }},
		{"proxy_tls local names", "proxy_tls:\n  mode: local\n  names: [Signet.LAN, 10.0.0.2]\n", func(c *configs.Config) {
			c.ProxyTLS = configs.ProxyTLS{Mode: configs.ProxyTLSLocal, Names: []string{"signet.lan", "10.0.0.2"}}
		}},
		{"proxy_tls acme", "proxy_tls:\n  mode: acme\n  names: [signet.example.com]\n  acme:\n    ca: https://acme.example.com/dir\n", func(c *configs.Config) {
			c.ProxyTLS = configs.ProxyTLS{Mode: configs.ProxyTLSACME, Names: []string{"signet.example.com"}, ACME: &configs.ACME{CA: "https://acme.example.com/dir"}}
		}},
		{"proxy_auth", "proxy_auth:\n  file: users.txt\n", func(c *configs.Config) { c.ProxyAuth.File = "users.txt" }},
		{"remote with auth", "listen: 0.0.0.0:8080\nproxy_auth:\n  file: /etc/signet/users\n", func(c *configs.Config) {
			c.Listen = "0.0.0.0:8080"
			c.ProxyAuth.File = "/etc/signet/users"
		}},
		{"all together", "intercept: {cache_size: 3}\nproxy_tls: {mode: local}\nproxy_auth: {file: /u}\n", func(c *configs.Config) {
			c.Intercept.CacheSize = 3
			c.ProxyTLS.Mode = configs.ProxyTLSLocal
			c.ProxyAuth.File = "/u"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := configs.Load(configs.LoadOptions{File: writeFile(t, "c.yaml", tt.yaml), Environ: home})
			if err != nil {
				t.Fatal(err)
			}
			want := defaults()
			tt.want(want)
			if !reflect.DeepEqual(cfg, want) {
				t.Errorf("got  %+v\nwant %+v", cfg, want)
			}
		})
	}
}

// defaultRefresh is what Load fills into a source without a refresh block.
var defaultRefresh = configs.Refresh{
	Mode:      configs.RefreshDeferred,
	Advisory:  configs.Duration(configs.DefaultRefreshAdvisory),
	Mandatory: configs.Duration(configs.DefaultRefreshMandatory),
	Timeout:   configs.Duration(configs.DefaultRefreshTimeout),
}

func TestRefresh(t *testing.T) {
	base := "sources:\n  s:\n    method: static\n    static: {access_key_id: AKIAIOSFODNN7EXAMPLE, secret_access_key: x}\n    refresh: "
	tests := []struct {
		name, refresh string
		want          configs.Refresh
		wantKey       string // an error on this key, when set
	}{
		{"eager with windows", "{mode: eager, advisory: 5m, mandatory: 1m, timeout: 10s}",
			configs.Refresh{Mode: "eager", Advisory: configs.Duration(5 * time.Minute), Mandatory: configs.Duration(time.Minute), Timeout: configs.Duration(10 * time.Second)}, ""},
		{"mandatory defaults to at most advisory", "{advisory: 5m}",
			configs.Refresh{Mode: "deferred", Advisory: configs.Duration(5 * time.Minute), Mandatory: configs.Duration(5 * time.Minute), Timeout: configs.Duration(30 * time.Second)}, ""},
		{"bad mode", "{mode: lazy}", configs.Refresh{}, "sources.s.refresh.mode"},
		{"mandatory after advisory", "{advisory: 5m, mandatory: 10m}", configs.Refresh{}, "sources.s.refresh.mandatory"},
		{"negative advisory", "{advisory: -5m}", configs.Refresh{}, "sources.s.refresh.advisory"},
		{"timeout too long", "{timeout: 1h}", configs.Refresh{}, "sources.s.refresh.timeout"},
		{"unknown key", "{eagre: true}", configs.Refresh{}, "sources.s.refresh.eagre"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := configs.LoadBytes([]byte("state_dir: /tmp/s\n"+base+tt.refresh+"\n"), "yaml")
			if tt.wantKey != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantKey) {
					t.Fatalf("err = %v, want one naming %s", err, tt.wantKey)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Sources["s"].Refresh; got != tt.want {
				t.Fatalf("refresh = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// Booleans from the environment arrive as text.
func TestEnvBooleans(t *testing.T) {
	for _, v := range []string{"false", "FALSE", " false "} {
		cfg, err := configs.Load(configs.LoadOptions{Environ: []string{"HOME=/h", "SIGNET_LOG__ACCESS=" + v}})
		if err != nil {
			t.Fatalf("SIGNET_LOG__ACCESS=%q: %v", v, err)
		}
		if cfg.Log.Access {
			t.Errorf("SIGNET_LOG__ACCESS=%q: access log still on", v)
		}
	}
}
