package configs_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/signet-proxy/signet/configs"
)

// defaultLimits is what configs/default.yaml sets.
var defaultLimits = configs.Limits{
	MaxHeaderBytes:                configs.DefaultMaxHeaderBytes,
	MaxBodyBytes:                  configs.DefaultMaxBodyBytes,
	MaxSpoolBytes:                 configs.DefaultMaxSpoolBytes,
	MaxConnections:                configs.DefaultMaxConnections,
	ReadHeaderTimeout:             configs.Duration(configs.DefaultReadHeaderTimeout),
	IdleTimeout:                   configs.Duration(configs.DefaultIdleTimeout),
	UpstreamResponseHeaderTimeout: configs.Duration(configs.DefaultUpstreamResponseHeaderTimeout),
}

func TestLimitsDefaults(t *testing.T) {
	cfg, err := configs.LoadBytes([]byte("state_dir: /s\nreverse: [{listen: \"127.0.0.1:9000\", upstream: \"https://s3.amazonaws.com\", source: default}]\n"), configs.FormatYAML)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Limits != defaultLimits {
		t.Errorf("limits = %+v, want %+v", cfg.Limits, defaultLimits)
	}
	// The constants are checked against the numbers the README gives.
	if cfg.Limits.MaxHeaderBytes != 64<<10 || cfg.Limits.MaxBodyBytes != 5<<30 || cfg.Limits.MaxSpoolBytes != 4<<30 {
		t.Errorf("limits = %+v", cfg.Limits)
	}
	if cfg.Limits.MaxConnections != 10000 || time.Duration(cfg.Limits.ReadHeaderTimeout) != 10*time.Second ||
		time.Duration(cfg.Limits.IdleTimeout) != 2*time.Minute || time.Duration(cfg.Limits.UpstreamResponseHeaderTimeout) != 16*time.Minute {
		t.Errorf("limits = %+v", cfg.Limits)
	}
	if cfg.Routes[0].MaxBodyBytes != 5*configs.GiB || cfg.Reverse[0].MaxBodyBytes != 5*configs.GiB {
		t.Errorf("route body limit %v, reverse %v; want both 5GiB from limits", cfg.Routes[0].MaxBodyBytes, cfg.Reverse[0].MaxBodyBytes)
	}
}

func TestLimitsOverrides(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		environ []string
		check   func(t *testing.T, c *configs.Config)
	}{
		{
			name: "file",
			file: "limits:\n  max_header_bytes: 16KiB\n  max_body_bytes: 100MB\n  max_spool_bytes: 1GiB\n  max_connections: 5\n" +
				"  read_header_timeout: 3s\n  idle_timeout: 30s\n  upstream_response_header_timeout: 1m\n",
			check: func(t *testing.T, c *configs.Config) {
				want := configs.Limits{
					MaxHeaderBytes: 16 * configs.KiB, MaxBodyBytes: 100_000_000, MaxSpoolBytes: configs.GiB, MaxConnections: 5,
					ReadHeaderTimeout: configs.Duration(3 * time.Second), IdleTimeout: configs.Duration(30 * time.Second),
					UpstreamResponseHeaderTimeout: configs.Duration(time.Minute),
				}
				if c.Limits != want {
					t.Errorf("limits = %+v, want %+v", c.Limits, want)
				}
				if c.Routes[0].MaxBodyBytes != 100_000_000 {
					t.Errorf("route inherits %v, want 100MB", c.Routes[0].MaxBodyBytes)
				}
			},
		},
		{
			name: "env",
			environ: []string{
				"SIGNET_LIMITS__MAX_HEADER_BYTES=8KiB",
				"SIGNET_LIMITS__MAX_BODY_BYTES=10MiB",
				"SIGNET_LIMITS__MAX_SPOOL_BYTES=1048576",
				"SIGNET_LIMITS__MAX_CONNECTIONS=7",
				"SIGNET_LIMITS__READ_HEADER_TIMEOUT=1s",
				"SIGNET_LIMITS__IDLE_TIMEOUT=5s",
				"SIGNET_LIMITS__UPSTREAM_RESPONSE_HEADER_TIMEOUT=20m",
			},
			check: func(t *testing.T, c *configs.Config) {
				want := configs.Limits{
					MaxHeaderBytes: 8 * configs.KiB, MaxBodyBytes: 10 * configs.MiB, MaxSpoolBytes: configs.MiB, MaxConnections: 7,
					ReadHeaderTimeout: configs.Duration(time.Second), IdleTimeout: configs.Duration(5 * time.Second),
					UpstreamResponseHeaderTimeout: configs.Duration(20 * time.Minute),
				}
				if c.Limits != want {
					t.Errorf("limits = %+v, want %+v", c.Limits, want)
				}
				if c.Routes[0].MaxBodyBytes != 10*configs.MiB {
					t.Errorf("route inherits %v, want 10MiB", c.Routes[0].MaxBodyBytes)
				}
			},
		},
		{
			name: "route and reverse keep their own",
			file: "limits: {max_body_bytes: 1MiB}\n" +
				"routes: [{hosts: [\"a.amazonaws.com\"], source: default, max_body_bytes: 2MiB}, {hosts: [\"*.amazonaws.com\"], source: default}, {hosts: [\"b.amazonaws.com\"], source: default, max_body_bytes: 0}]\n" +
				"reverse: [{listen: \"127.0.0.1:9000\", upstream: \"https://s3.amazonaws.com\", source: default, max_body_bytes: 3GiB}]\n",
			check: func(t *testing.T, c *configs.Config) {
				got := []configs.ByteSize{c.Routes[0].MaxBodyBytes, c.Routes[1].MaxBodyBytes, c.Routes[2].MaxBodyBytes, c.Reverse[0].MaxBodyBytes}
				want := []configs.ByteSize{2 * configs.MiB, configs.MiB, configs.MiB, 3 * configs.GiB}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("body limits %v, want %v", got, want)
				}
			},
		},
		{
			name:    "env over file",
			file:    "limits: {max_connections: 100}\n",
			environ: []string{"SIGNET_LIMITS__MAX_CONNECTIONS=200"},
			check: func(t *testing.T, c *configs.Config) {
				if c.Limits.MaxConnections != 200 {
					t.Errorf("max_connections = %d, want 200", c.Limits.MaxConnections)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := configs.LoadOptions{Environ: append([]string{"HOME=/h"}, tt.environ...)}
			if tt.file != "" {
				opts.File = writeFile(t, "signet.yaml", tt.file)
			}
			cfg, err := configs.Load(opts)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, cfg)
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
		})
	}
}

func TestLimitsErrorRules(t *testing.T) {
	tests := []struct {
		name, yaml string
		key        string
		value      string
		contains   string
	}{
		{"header zero", "limits: {max_header_bytes: 0}\n", "limits.max_header_bytes", "0", "is out of range; accepted: a size from 4KiB to 16MiB, like 64KiB"},
		{"header tiny", "limits: {max_header_bytes: 1KiB}\n", "limits.max_header_bytes", "1KiB", "is out of range"},
		{"header huge", "limits: {max_header_bytes: 1GiB}\n", "limits.max_header_bytes", "1GiB", "is out of range"},
		{"header not a size", "limits: {max_header_bytes: lots}\n", "limits.max_header_bytes", "lots", "is not a size"},
		{"header negative", "limits: {max_header_bytes: -1}\n", "limits.max_header_bytes", "-1", "is negative"},
		{"body zero", "limits: {max_body_bytes: 0}\n", "limits.max_body_bytes", "0", "is out of range; accepted: a size more than 0, like 5GiB or 100MiB"},
		{"body past int64", "limits: {max_body_bytes: 18446744073709551615}\n", "limits.max_body_bytes", "18446744073709551615", "is out of range"},
		{"body unit", "limits: {max_body_bytes: 5TB}\n", "limits.max_body_bytes", "5TB", "has an unknown unit"},
		{"route body past int64", "routes: [{hosts: [\"*.amazonaws.com\"], source: default, max_body_bytes: 16000000000GiB}]\n", "routes[0].max_body_bytes", "16000000000GiB", "is out of range"},
		{"reverse body not a size", "reverse: [{listen: \"127.0.0.1:9000\", upstream: \"https://s3.amazonaws.com\", source: default, max_body_bytes: big}]\n", "reverse[0].max_body_bytes", "big", "is not a size"},
		{"spool zero", "limits: {max_spool_bytes: 0}\n", "limits.max_spool_bytes", "0", "is out of range; accepted: a size more than 0, like 4GiB"},
		{"connections zero", "limits: {max_connections: 0}\n", "limits.max_connections", "0", "is out of range; accepted: a whole number from 1 to 1000000"},
		{"connections negative", "limits: {max_connections: -5}\n", "limits.max_connections", "-5", "is out of range"},
		{"connections huge", "limits: {max_connections: 2000000}\n", "limits.max_connections", "2000000", "is out of range"},
		{"connections fraction", "limits: {max_connections: 1.5}\n", "limits.max_connections", "1.5", "is not a whole number"},
		{"read header zero", "limits: {read_header_timeout: 0s}\n", "limits.read_header_timeout", "0s", "is out of range; accepted: a Go duration like 10s, more than 0 and at most 10m"},
		{"read header negative", "limits: {read_header_timeout: -1s}\n", "limits.read_header_timeout", "-1s", "is out of range"},
		{"read header long", "limits: {read_header_timeout: 11m}\n", "limits.read_header_timeout", "11m0s", "is out of range"},
		{"read header not a duration", "limits: {read_header_timeout: 10}\n", "limits.read_header_timeout", "10", "is not a valid duration"},
		{"idle zero", "limits: {idle_timeout: 0s}\n", "limits.idle_timeout", "0s", "accepted: a Go duration like 2m, more than 0 and at most 24h"},
		{"idle long", "limits: {idle_timeout: 25h}\n", "limits.idle_timeout", "25h0m0s", "is out of range"},
		{"upstream zero", "limits: {upstream_response_header_timeout: 0s}\n", "limits.upstream_response_header_timeout", "0s", "accepted: a Go duration like 16m, more than 0 and at most 24h"},
		{"upstream long", "limits: {upstream_response_header_timeout: 48h}\n", "limits.upstream_response_header_timeout", "48h0m0s", "is out of range"},
		{"unknown key", "limits: {max_requests: 5}\n", "limits.max_requests", "", "is not a known key"},
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

// TestLimitsBadBodyLimitReportedOnce: routes that inherit a bad
// limits.max_body_bytes are not each reported again.
func TestLimitsBadBodyLimitReportedOnce(t *testing.T) {
	_, err := configs.LoadBytes([]byte("state_dir: /s\nlimits: {max_body_bytes: 0}\n"), configs.FormatYAML)
	findError(t, err, "limits.max_body_bytes")
	if strings.Contains(err.Error(), "routes[0]") {
		t.Errorf("a route that inherits the bad limit is reported too:\n%v", err)
	}
}

func TestLimitsEnvErrorNamesVariable(t *testing.T) {
	_, err := configs.Load(configs.LoadOptions{Environ: []string{"HOME=/h", "SIGNET_LIMITS__MAX_CONNECTIONS=0"}})
	e := findError(t, err, "limits.max_connections")
	if !strings.Contains(e.Error(), "(from env SIGNET_LIMITS__MAX_CONNECTIONS)") {
		t.Errorf("error %q does not name the variable", e.Error())
	}
}
