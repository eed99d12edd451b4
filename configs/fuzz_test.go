package configs_test

import (
	"reflect"
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
	f.Add(uint8(1), []byte("state_dir = \"/s\"\nshutdown_timeout = \"1h\"\n"))
	f.Add(uint8(2), []byte(`{"state_dir": "/s", "reverse": [{"listen": ":0", "upstream": "http://h", "source": "default"}]}`))
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
