package configs_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/signet-proxy/signet/configs"
)

func TestAdminAndCacheErrorRules(t *testing.T) {
	tests := []struct {
		name, yaml string
		key        string
		value      string
		contains   string
	}{
		{"listen not host:port", "admin: {listen: localhost}\n", "admin.listen", "localhost", "is not valid; accepted: host:port with a numeric port 0-65535, like 127.0.0.1:8080, or off"},
		{"listen bad port", "admin: {listen: \"127.0.0.1:70000\"}\n", "admin.listen", "127.0.0.1:70000", "is not valid"},
		{"listen taken by proxy", "listen: 127.0.0.1:9000\nadmin: {listen: \"127.0.0.1:9000\"}\n", "admin.listen", "127.0.0.1:9000", "is already used by listen"},
		{"listen taken by reverse", "reverse: [{listen: \"127.0.0.1:9100\", upstream: \"https://s3.amazonaws.com\", source: default}]\nadmin: {listen: \"127.0.0.1:9100\"}\n",
			"admin.listen", "127.0.0.1:9100", "is already used by reverse[0].listen"},
		{"remote without auth", "admin: {listen: \"0.0.0.0:8081\"}\n", "admin.auth.file", "", "is required when admin.listen is not a loopback address (0.0.0.0:8081)"},
		{"all interfaces without auth", "admin: {listen: \":8081\"}\n", "admin.auth.file", "", "is required when admin.listen is not a loopback address"},
		{"imds remote", "admin: {listen: \"10.0.0.1:8081\", auth: {file: /a}, imds: true}\n", "admin.imds", "true", "needs a loopback admin.listen"},
		{"imds off", "admin: {listen: \"off\", imds: true}\n", "admin.imds", "true", "is set but admin.listen is off"},
		{"imds source unknown", "admin: {imds_source: nope}\n", "admin.imds_source", "nope", "is not a declared source; accepted: one of the sources: default"},
		{"token file newline", "admin: {token_file: \"a\\nb\"}\n", "admin.token_file", "", "is not a valid file name"},
		{"auth unknown key", "admin: {auth: {users: /a}}\n", "admin.auth.users", "", "is not a known key"},
		{"unknown key", "admin: {port: 8081}\n", "admin.port", "", "is not a known key"},
		{"policy", "cache: {policy: fifo}\n", "cache.policy", "fifo", "accepted: lru, lfu"},
		{"policy case", "cache: {policy: LRU}\n", "cache.policy", "LRU", "accepted: lru, lfu"},
		{"size zero", "cache: {max_size: 0}\n", "cache.max_size", "0", "is out of range; accepted: a whole number from 1 to 1000000"},
		{"size huge", "cache: {max_size: 1000001}\n", "cache.max_size", "1000001", "is out of range"},
		{"size not a number", "cache: {max_size: lots}\n", "cache.max_size", "lots", "is not a whole number"},
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
		})
	}
}

func TestAdminAndCacheAccepted(t *testing.T) {
	tests := []struct {
		name, yaml string
		enabled    bool
		imdsSource string
	}{
		{"default", "", true, "default"},
		{"off", "admin: {listen: \"off\"}\n", false, "default"},
		{"empty is off", "admin: {listen: \"\"}\n", false, "default"},
		{"port 0", "admin: {listen: \"127.0.0.1:0\"}\n", true, "default"},
		{"port 0 beside proxy port 0", "listen: 127.0.0.1:0\nadmin: {listen: \"127.0.0.1:0\"}\n", true, "default"},
		{"ipv6 loopback", "admin: {listen: \"[::1]:8081\"}\n", true, "default"},
		{"localhost", "admin: {listen: \"localhost:8081\"}\n", true, "default"},
		{"remote with auth", "admin: {listen: \"0.0.0.0:8081\", auth: {file: /etc/signet/admin-users}}\n", true, "default"},
		{"imds on the first route's source", "sources: {prod: {method: chain}}\nroutes: [{hosts: [\"*.amazonaws.com\"], source: prod}]\nadmin: {imds: true}\n", true, "prod"},
		{"imds named source", "sources: {prod: {method: chain}}\nadmin: {imds: true, imds_source: prod}\n", true, "prod"},
		{"token file", "admin: {token_file: /run/secrets/signet-token}\n", true, "default"},
		{"lfu", "cache: {policy: lfu, max_size: 1}\n", true, "default"},
		{"largest", "cache: {max_size: 1000000}\n", true, "default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := configs.LoadBytes([]byte("state_dir: /s\n"+tt.yaml), configs.FormatYAML)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Admin.Enabled() != tt.enabled {
				t.Errorf("Enabled() = %v, want %v", cfg.Admin.Enabled(), tt.enabled)
			}
			if got := cfg.ResolvedIMDSSource(); got != tt.imdsSource {
				t.Errorf("ResolvedIMDSSource() = %q, want %q", got, tt.imdsSource)
			}
		})
	}
}

func TestAdminAndCacheRoundTripAndEnv(t *testing.T) {
	// A bool is never read from a string, so imds comes from a file.
	file := writeFile(t, "signet.yaml", "admin: {imds: true}\n")
	cfg, err := configs.Load(configs.LoadOptions{File: file, Environ: []string{
		"HOME=/h",
		"SIGNET_ADMIN__LISTEN=127.0.0.1:0",
		"SIGNET_ADMIN__AUTH__FILE=/a",
		"SIGNET_ADMIN__TOKEN_FILE=/t",
		"SIGNET_CACHE__POLICY=lfu",
		"SIGNET_CACHE__MAX_SIZE=5",
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := configs.Admin{Listen: "127.0.0.1:0", Auth: configs.AdminAuth{File: "/a"}, TokenFile: "/t", IMDS: true}
	if cfg.Admin != want || cfg.Cache != (configs.Cache{Policy: configs.CacheLFU, MaxSize: 5}) {
		t.Fatalf("loaded admin %+v, cache %+v", cfg.Admin, cfg.Cache)
	}
	for _, format := range []string{"yaml", "json", "toml"} {
		out, err := cfg.Render(format)
		if err != nil {
			t.Fatal(err)
		}
		back, err := configs.LoadBytes(out, format)
		if err != nil {
			t.Fatalf("%s: %v\n%s", format, err, out)
		}
		if !reflect.DeepEqual(back, cfg) {
			t.Errorf("%s round trip differs:\n%s", format, out)
		}
	}
	off, err := configs.Load(configs.LoadOptions{Environ: []string{"HOME=/h", "SIGNET_ADMIN__LISTEN=off"}})
	if err != nil {
		t.Fatal(err)
	}
	if off.Admin.Enabled() {
		t.Error("SIGNET_ADMIN__LISTEN=off left the admin listener on")
	}
}
