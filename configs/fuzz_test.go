package configs_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/signet-proxy/signet/configs"
)

var fuzzFormats = []string{"yaml", "toml", "json"}

// FuzzLoadBytes checks that no input panics and that anything accepted is
// valid and survives Render then LoadBytes unchanged in every format.
func FuzzLoadBytes(f *testing.F) {
	for i, format := range fuzzFormats {
		f.Add(uint8(i), []byte(sameConfig[format]))
	}
	f.Add(uint8(0), []byte("state_dir: /s\n"))
	f.Add(uint8(0), []byte("state_dir: /s\nupstream:\n  connect_to:\n    a.b:80: c:1\n"))
	f.Add(uint8(0), []byte("state_dir: /s\nroutes:\n  - {hosts: [\"*.X\"], source: default, payload: signed}\n"))
	f.Add(uint8(0), []byte("state_dir: /s\nlisten: 0.0.0.0:1\nproxy_auth: {file: u}\nintercept: {cache_size: 9}\nproxy_tls: {mode: local, names: [A.b, \"::1\"]}\n"))
	f.Add(uint8(0), []byte("state_dir: /s\nproxy_tls:\n  mode: acme\n  names: [a.b]\n  acme: {ca: \"http://[::1]:1/d\", email: a@b.c, trusted_roots: r}\n"))
	f.Add(uint8(0), []byte("state_dir: /s\nsources:\n  w:\n    method: wasm\n    wasm: {module: m.wasm, sha256: \""+strings.Repeat("Ab", 32)+"\", args: [a], env: {K: v}, stdin: x, allow_hosts: [\"*.a.b\", \"[::1]:9\"], allow_http: true, dir: /d, memory_limit: 3 MB, refresh_interval: 90s}\n"))
	f.Add(uint8(1), []byte("state_dir = \"/s\"\n[sources.w]\nmethod = \"wasm\"\n[sources.w.wasm]\nmodule = \"m\"\nmemory_limit = 1048577\nenv = {A = \"1\"}\n"))
	f.Add(uint8(2), []byte(`{"state_dir": "/s", "sources": {"w": {"method": "wasm", "wasm": {"module": "m", "memory_limit": 2e6, "dir": "/d", "dir_mount": "/"}}}}`))
	f.Add(uint8(1), []byte("state_dir = \"/s\"\nshutdown_timeout = \"1h\"\n"))
	f.Add(uint8(1), []byte("state_dir = \"/s\"\n[intercept]\ncache_size = 1000000\n[[reverse]]\nlisten = \":0\"\nupstream = \"http://h\"\nsource = \"default\"\nallow_remote = true\n"))
	f.Add(uint8(2), []byte(`{"state_dir": "/s", "reverse": [{"listen": ":0", "upstream": "http://h", "source": "default"}]}`))
	f.Add(uint8(2), []byte(`{"state_dir": "/s", "intercept": {"cache_size": 2e3}, "routes": [{"hosts": ["a"], "source": "default", "insecure_skip_verify": true}]}`))
	f.Fuzz(func(t *testing.T, format uint8, data []byte) {
		in := fuzzFormats[int(format)%len(fuzzFormats)]
		cfg, err := configs.LoadBytes(data, in)
		if err != nil {
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("loaded config does not validate: %v", err)
		}
		for _, out := range fuzzFormats {
			b, err := cfg.Render(out)
			if err != nil {
				t.Fatalf("render %s: %v", out, err)
			}
			back, err := configs.LoadBytes(b, out)
			if err != nil {
				t.Fatalf("reload %s: %v\n%s", out, err, b)
			}
			if !reflect.DeepEqual(back, cfg) {
				t.Fatalf("%s round trip differs:\n%s", out, b)
			}
		}
	})
}
