package configs_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/signet-proxy/signet/configs"
)

const wasmSecret = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"

// wasmSource is a YAML source "a" of method wasm with the given keys.
func wasmSource(keys string) string {
	return "sources:\n  a:\n    method: wasm\n    wasm: {" + keys + "}\n"
}

func TestWasmErrorRules(t *testing.T) {
	const mod = "module: /m/provider.wasm"
	tests := []struct {
		name, yaml string
		key        string
		value      string
		contains   string
	}{
		{"block missing", "sources:\n  a: {method: wasm}\n", "sources.a.wasm", "", "is required when method is wasm; accepted: a mapping with module"},
		{"wasm block on chain", "sources:\n  a: {method: chain, wasm: {" + mod + "}}\n", "sources.a.wasm", "", "is not allowed when method is chain"},
		{"wasm block on iot", iotSource(iotBase+", private_key: k") + "    wasm: {" + mod + "}\n", "sources.a.wasm", "", "is not allowed when method is iot"},
		{"sts block on wasm", wasmSource(mod) + "    sts: {role_arn: " + stsRole + "}\n", "sources.a.sts", "", "is not allowed when method is wasm"},
		{"iot block on wasm", wasmSource(mod) + "    iot: {" + iotBase + "}\n", "sources.a.iot", "", "is not allowed when method is wasm"},
		{"static block on wasm", wasmSource(mod) + "    static: {access_key_id: a, secret_access_key: b}\n", "sources.a.static", "", "is not allowed when method is wasm"},
		{"module missing", wasmSource("args: [x]"), "sources.a.wasm.module", "", "is required"},
		{"sha256 short", wasmSource(mod + ", sha256: abc123"), "sources.a.wasm.sha256", "abc123", "is not a SHA-256; accepted: 64 hex digits"},
		{"sha256 not hex", wasmSource(mod + ", sha256: " + strings.Repeat("g", 64)), "sources.a.wasm.sha256", strings.Repeat("g", 64), "is not a SHA-256"},
		{"sha256 prefixed", wasmSource(mod + ", sha256: \"sha256:" + strings.Repeat("a", 64) + "\""), "sources.a.wasm.sha256", "sha256:" + strings.Repeat("a", 64), "is not a SHA-256"},
		{"args not a list", wasmSource(mod + ", args: x"), "sources.a.wasm.args", "x", "must be a list, not a string"},
		{"args NUL", wasmSource(mod + ", args: [ok, \"a\\0b\"]"), "sources.a.wasm.args[1]", "", "contains a NUL byte"},
		{"env not a map", wasmSource(mod + ", env: [A]"), "sources.a.wasm.env", "", "must be a mapping, not a list"},
		{"env name", wasmSource(mod + ", env: {\"1BAD\": " + wasmSecret + "}"), "sources.a.wasm.env.1BAD", "1BAD", "is not a variable name"},
		{"env value NUL", wasmSource(mod + ", env: {TOKEN: \"" + wasmSecret + "\\0\"}"), "sources.a.wasm.env.TOKEN", "", "contains a NUL byte"},
		{"env value a number", wasmSource(mod + ", env: {PIN: 917263}"), "sources.a.wasm.env.PIN", "(redacted)", "must be a string, not a number"},
		{"stdin a number", wasmSource(mod + ", stdin: 917263"), "sources.a.wasm.stdin", "(redacted)", "must be a string, not a number"},
		{"stdin too long", wasmSource(mod + ", stdin: " + strings.Repeat("x", 64<<10+1)), "sources.a.wasm.stdin", "", "is longer than 65536 bytes"},
		{"allow host empty", wasmSource(mod + ", allow_hosts: [\"\"]"), "sources.a.wasm.allow_hosts[0]", "", "is empty"},
		{"allow host url", wasmSource(mod + ", allow_hosts: [\"https://sts.amazonaws.com\"]"), "sources.a.wasm.allow_hosts[0]", "https://sts.amazonaws.com", "is a URL; accepted: the host only"},
		{"allow host path", wasmSource(mod + ", allow_hosts: [sts.amazonaws.com/x]"), "sources.a.wasm.allow_hosts[0]", "sts.amazonaws.com/x", "is not a host, host:port or *.suffix"},
		{"allow host user", wasmSource(mod + ", allow_hosts: [\"u@h.example.com\"]"), "sources.a.wasm.allow_hosts[0]", "u@h.example.com", "is not a host"},
		{"allow host bare star", wasmSource(mod + ", allow_hosts: [\"*\"]"), "sources.a.wasm.allow_hosts[0]", "*", "is not a host"},
		{"allow host inner star", wasmSource(mod + ", allow_hosts: [\"sts.*.amazonaws.com\"]"), "sources.a.wasm.allow_hosts[0]", "sts.*.amazonaws.com", "is not a host"},
		{"allow host double star", wasmSource(mod + ", allow_hosts: [\"*.*.com\"]"), "sources.a.wasm.allow_hosts[0]", "*.*.com", "is not a host"},
		{"allow host tld wildcard", wasmSource(mod + ", allow_hosts: [\"*.com\"]"), "sources.a.wasm.allow_hosts[0]", "*.com", "would allow a whole top-level domain"},
		{"allow host ip wildcard", wasmSource(mod + ", allow_hosts: [\"*.10.0.0.1\"]"), "sources.a.wasm.allow_hosts[0]", "*.10.0.0.1", "is a wildcard over an IP address"},
		{"allow host unicode", wasmSource(mod + ", allow_hosts: [\"bücher.example\"]"), "sources.a.wasm.allow_hosts[0]", "bücher.example", "punycode"},
		{"allow host port range", wasmSource(mod + ", allow_hosts: [a.example.com, \"b.example.com:70000\"]"), "sources.a.wasm.allow_hosts[1]", "b.example.com:70000", "has an invalid port"},
		{"allow host port zero", wasmSource(mod + ", allow_hosts: [\"127.0.0.1:0\"]"), "sources.a.wasm.allow_hosts[0]", "127.0.0.1:0", "has an invalid port"},
		{"allow host empty port", wasmSource(mod + ", allow_hosts: [\"a.example.com:\"]"), "sources.a.wasm.allow_hosts[0]", "a.example.com:", "has an invalid port"},
		{"allow host ipv6 unbracketed port", wasmSource(mod + ", allow_hosts: [\"[::1\"]"), "sources.a.wasm.allow_hosts[0]", "[::1", "is not a valid host:port"},
		{"allow host numeric", wasmSource(mod + ", allow_hosts: [\"1.2.3\"]"), "sources.a.wasm.allow_hosts[0]", "1.2.3", "is not a host"},
		{"allow_http without hosts", wasmSource(mod + ", allow_http: true"), "sources.a.wasm.allow_http", "true", "is set but allow_hosts is empty"},
		{"allow_private without hosts", wasmSource(mod + ", allow_private: true"), "sources.a.wasm.allow_private", "true", "is set but allow_hosts is empty"},
		{"allow_http not bool", wasmSource(mod + ", allow_hosts: [a.b], allow_http: \"yes\""), "sources.a.wasm.allow_http", "yes", "is not a boolean"},
		{"dir_mount without dir", wasmSource(mod + ", dir_mount: /etc"), "sources.a.wasm.dir_mount", "/etc", "is set but dir is not"},
		{"dir_mount relative", wasmSource(mod + ", dir: /d, dir_mount: config"), "sources.a.wasm.dir_mount", "config", "is not a clean absolute guest path"},
		{"dir_mount unclean", wasmSource(mod + ", dir: /d, dir_mount: /a/../b"), "sources.a.wasm.dir_mount", "/a/../b", "is not a clean absolute guest path"},
		{"timeout negative", wasmSource(mod + ", timeout: -1s"), "sources.a.wasm.timeout", "-1s", "is out of range"},
		{"timeout long", wasmSource(mod+", timeout: 6m") + "    refresh: {timeout: 10m}\n", "sources.a.wasm.timeout", "6m0s", "is out of range; accepted: a Go duration like 10s, more than 0 and at most 5m"},
		{"timeout over refresh", wasmSource(mod + ", timeout: 40s"), "sources.a.wasm.timeout", "40s", "is longer than refresh.timeout (30s)"},
		{"timeout bare number", wasmSource(mod + ", timeout: 10"), "sources.a.wasm.timeout", "10", "is not a valid duration"},
		{"memory small", wasmSource(mod + ", memory_limit: 64KiB"), "sources.a.wasm.memory_limit", "64KiB", "is out of range; accepted: a size from 1MiB to 4GiB"},
		{"memory big", wasmSource(mod + ", memory_limit: 5GB"), "sources.a.wasm.memory_limit", "5000000000", "is out of range"},
		{"memory unit", wasmSource(mod + ", memory_limit: 64MiBs"), "sources.a.wasm.memory_limit", "64MiBs", "has an unknown unit; accepted: a whole number of bytes, or with a unit"},
		{"memory fraction", wasmSource(mod + ", memory_limit: 1.5GiB"), "sources.a.wasm.memory_limit", "1.5GiB", "is not a whole number"},
		{"memory negative", wasmSource(mod + ", memory_limit: -1"), "sources.a.wasm.memory_limit", "-1", "is negative"},
		{"memory float", wasmSource(mod + ", memory_limit: 1.5"), "sources.a.wasm.memory_limit", "1.5", "is not a whole number of bytes"},
		{"memory list", wasmSource(mod + ", memory_limit: [1]"), "sources.a.wasm.memory_limit", "", "must be a size, not a list"},
		{"memory overflow", wasmSource(mod + ", memory_limit: \"99999999999999999999GiB\""), "sources.a.wasm.memory_limit", "99999999999999999999GiB", "is out of range"},
		{"refresh interval short", wasmSource(mod + ", refresh_interval: 30s"), "sources.a.wasm.refresh_interval", "30s", "is out of range; accepted: a Go duration from 1m to 12h"},
		{"refresh interval long", wasmSource(mod + ", refresh_interval: 13h"), "sources.a.wasm.refresh_interval", "13h0m0s", "is out of range"},
		{"unknown key", wasmSource(mod + ", command: x"), "sources.a.wasm.command", "", "is not a known key; accepted: module, sha256, args, env, stdin"},
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
			for _, secret := range []string{wasmSecret, "917263"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error shows a secret: %v", err)
				}
			}
		})
	}
}

func TestWasmAccepted(t *testing.T) {
	tests := []struct{ name, yaml string }{
		{"module only", wasmSource("module: provider.wasm")},
		{"everything", wasmSource(`module: /m/p.wasm, sha256: "` + strings.Repeat("aB", 32) + `", args: [--role, x], env: {ROLE_ARN: r, _X1: ""},` +
			` stdin: "{\"k\": 1}", allow_hosts: [sts.amazonaws.com, "127.0.0.1:8443", "[::1]:9000", "::1", "[::1]", "*.amazonaws.com", "*.example.com:8443", "STS.Example.COM.", "internal_name.corp.example"],` +
			` allow_http: true, allow_private: true, dir: /etc/signet/p, dir_mount: /data, timeout: 30s, memory_limit: 128MB, refresh_interval: 15m`)},
		{"long timeout with long refresh", wasmSource("module: m.wasm, timeout: 2m") + "    refresh: {timeout: 3m}\n"},
		{"memory bytes", wasmSource("module: m.wasm, memory_limit: 1048576")},
		{"memory with space", wasmSource("module: m.wasm, memory_limit: 4 GiB")},
		{"dir with root mount", wasmSource("module: m.wasm, dir: /d, dir_mount: /")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := configs.LoadBytes([]byte("state_dir: /s\n"+tt.yaml), configs.FormatYAML); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestWasmDefaultsRoundTripAndRedacted(t *testing.T) {
	in := "state_dir: /s\n" + wasmSource("module: /m/p.wasm, sha256: \""+strings.Repeat("AB", 32)+"\", args: [], env: {TOKEN: "+wasmSecret+"}, stdin: \""+wasmSecret+"\", allow_hosts: [\"*.amazonaws.com\"], dir: /d, memory_limit: 100000000") +
		"  b:\n    method: wasm\n    wasm: {module: b.wasm, env: {}}\n"
	cfg, err := configs.LoadBytes([]byte(in), configs.FormatYAML)
	if err != nil {
		t.Fatal(err)
	}
	a, b := cfg.Sources["a"].Wasm, cfg.Sources["b"].Wasm
	want := &configs.Wasm{
		Module: "/m/p.wasm", SHA256: strings.Repeat("ab", 32), Env: map[string]string{"TOKEN": wasmSecret}, Stdin: wasmSecret,
		AllowHosts: []string{"*.amazonaws.com"}, Dir: "/d", DirMount: "/config",
		Timeout: configs.Duration(10 * time.Second), MemoryLimit: 100000000, RefreshInterval: configs.Duration(time.Hour),
	}
	if !reflect.DeepEqual(a, want) {
		t.Errorf("a = %+v\nwant %+v", a, want)
	}
	if b.MemoryLimit != 64*configs.MiB || b.DirMount != "" || b.Env != nil || b.Args != nil {
		t.Errorf("b = %+v", b)
	}
	for _, format := range []string{"yaml", "json", "toml"} {
		out, err := cfg.Render(format)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(out), "64MiB") {
			t.Errorf("%s: memory_limit not written as 64MiB:\n%s", format, out)
		}
		back, err := configs.LoadBytes(out, format)
		if err != nil {
			t.Fatalf("%s: %v\n%s", format, err, out)
		}
		if !reflect.DeepEqual(back, cfg) {
			t.Errorf("%s round trip differs:\n%s", format, out)
		}
		red, err := cfg.Redacted().Render(format)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(red), wasmSecret) {
			t.Errorf("%s: redacted config shows an env value or stdin:\n%s", format, red)
		}
	}
	r := cfg.Redacted()
	if r.Sources["a"].Wasm.Env["TOKEN"] != configs.RedactedValue || r.Sources["a"].Wasm.Stdin != configs.RedactedValue {
		t.Errorf("redacted wasm = %+v", r.Sources["a"].Wasm)
	}
	r.Sources["a"].Wasm.AllowHosts[0] = "changed"
	if cfg.Sources["a"].Wasm.Env["TOKEN"] != wasmSecret || cfg.Sources["a"].Wasm.AllowHosts[0] != "*.amazonaws.com" {
		t.Error("Redacted shares the original's wasm block")
	}
}

func TestByteSize(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want configs.ByteSize
		out  string
	}{
		{"0", 0, "0"},
		{"65536", 64 * configs.KiB, "64KiB"},
		{"64MiB", 64 * configs.MiB, "64MiB"},
		{"64mib", 64 * configs.MiB, "64MiB"},
		{" 2 GiB ", 2 * configs.GiB, "2GiB"},
		{"128MB", 128_000_000, "125000KiB"},
		{"1kB", 1000, "1000"},
		{"7B", 7, "7"},
		{"1025KiB", 1025 * configs.KiB, "1025KiB"},
	} {
		got, err := configs.ParseByteSize(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			continue
		}
		if got.String() != tt.out {
			t.Errorf("%d.String() = %q, want %q", got, got.String(), tt.out)
		}
		if back, err := configs.ParseByteSize(got.String()); err != nil || back != got {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", got.String(), back, err, got)
		}
	}
	for _, in := range []string{"", "MiB", "-1", "1.5MiB", "1 PiB", "1e6", "18446744073709551616", "17179869184GiB"} {
		if got, err := configs.ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) = %d, want an error", in, got)
		}
	}
}

// TestWasmFromEnv sets a wasm source from the environment, where sizes
// arrive as strings.
func TestWasmFromEnv(t *testing.T) {
	cfg, err := configs.Load(configs.LoadOptions{Environ: []string{
		"HOME=/h",
		"SIGNET_SOURCES__W__METHOD=wasm",
		"SIGNET_SOURCES__W__WASM__MODULE=/m.wasm",
		"SIGNET_SOURCES__W__WASM__MEMORY_LIMIT=32MiB",
		"SIGNET_SOURCES__W__WASM__TIMEOUT=5s",
		"SIGNET_SOURCES__W__WASM__ENV__ROLE=r",
	}})
	if err != nil {
		t.Fatal(err)
	}
	w := cfg.Sources["w"].Wasm
	// Variable names are lowercased on the way in, env keys too.
	if w.MemoryLimit != 32*configs.MiB || time.Duration(w.Timeout) != 5*time.Second || w.Env["role"] != "r" {
		t.Errorf("wasm = %+v", w)
	}
}
