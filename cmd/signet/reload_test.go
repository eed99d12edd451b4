package main

import (
	"maps"
	"slices"
	"testing"

	"github.com/signet-proxy/signet/configs"
)

func loadYAML(t *testing.T, y string) *configs.Config {
	t.Helper()
	cfg, err := configs.LoadBytes([]byte("state_dir: /tmp/signet-test-state\n"+y), configs.FormatYAML)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

const reloadBase = `sources:
  base: {method: static, static: {access_key_id: AKIAEXAMPLEKEY000001, secret_access_key: base-secret-value}}
  role:
    method: sts
    sts: {role_arn: "arn:aws:iam::123456789012:role/R", source: base, endpoint: "http://127.0.0.1:1", region: eu-west-1}
  other: {method: static, static: {access_key_id: AKIAEXAMPLEKEY000002, secret_access_key: other-secret-value}}
routes:
  - hosts: ["*.amazonaws.com"]
    source: role
reverse:
  - {listen: "127.0.0.1:0", upstream: "http://127.0.0.1:9", source: other, service: s3, region: eu-west-1}
`

func TestSourcesToRebuild(t *testing.T) {
	prev := loadYAML(t, reloadBase)
	static := func(id, secret string) configs.Source {
		s := configs.Source{Method: configs.MethodStatic, Static: &configs.Static{AccessKeyID: id, SecretAccessKey: secret}}
		s.Refresh = prev.Sources["other"].Refresh
		return s
	}
	for _, tc := range []struct {
		name string
		edit func(c *configs.Config)
		all  bool
		want []string
	}{
		{name: "nothing changed", edit: func(*configs.Config) {}},
		{name: "routes only", edit: func(c *configs.Config) { c.Routes[0].Source = "other"; c.Routes[0].Hosts = []string{"*.example.com"} }},
		{name: "a source added", edit: func(c *configs.Config) { c.Sources["new"] = static("AKIAEXAMPLEKEY000003", "new-secret-value") }, want: []string{"new"}},
		{name: "a source removed", edit: func(c *configs.Config) { delete(c.Sources, "other") }},
		{name: "refresh changed", edit: func(c *configs.Config) {
			o := c.Sources["other"]
			o.Refresh.Timeout = configs.Duration(5e9)
			c.Sources["other"] = o
		}, want: []string{"other"}},
		{name: "chained from a changed source", edit: func(c *configs.Config) { c.Sources["base"] = static("AKIAEXAMPLEKEY000001", "rotated-secret-value") }, want: []string{"base", "role"}},
		{name: "roots changed", edit: func(*configs.Config) {}, all: true, want: []string{"base", "default", "other", "role"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next := loadYAML(t, reloadBase)
			tc.edit(next)
			got := slices.Sorted(maps.Keys(sourcesToRebuild(prev, next, tc.all)))
			if !slices.Equal(got, tc.want) {
				t.Errorf("rebuild %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRestartKeys(t *testing.T) {
	prev := loadYAML(t, reloadBase)
	for _, tc := range []struct {
		name string
		edit func(c *configs.Config)
		want []string
	}{
		{name: "live changes", edit: func(c *configs.Config) {
			c.Log.Level, c.Log.Access = configs.LogLevelDebug, false
			c.Unmatched = configs.UnmatchedDeny
			c.ProxyAuth.File = "/etc/signet/users"
			c.Upstream.ConnectTo = map[string]string{"a.example.com": "127.0.0.1:1"}
			c.Upstream.CAFile = "/etc/ssl/extra.pem"
			c.Reverse[0].Upstream, c.Reverse[0].Source = "http://127.0.0.1:10", "role"
			c.Routes = append(c.Routes, c.Routes[0])
			c.Admin.IMDSSource = "other"
		}},
		{name: "listeners", edit: func(c *configs.Config) { c.Listen, c.Admin.Listen = "127.0.0.1:8090", "127.0.0.1:8091" }, want: []string{"listen", "admin.listen"}},
		{name: "reverse listen", edit: func(c *configs.Config) { c.Reverse[0].Listen = "127.0.0.1:9000" }, want: []string{"reverse[0].listen"}},
		{name: "reverse listener added", edit: func(c *configs.Config) { c.Reverse = append(c.Reverse, c.Reverse[0]) }, want: []string{"reverse (1 listeners, now 2)"}},
		{name: "process-wide", edit: func(c *configs.Config) {
			c.StateDir, c.ShutdownTimeout, c.Log.Format = "/tmp/elsewhere", 5e9, configs.LogFormatJSON
			c.ProxyTLS.Mode, c.Intercept.CacheSize, c.Cache.Policy = configs.ProxyTLSLocal, 5, configs.CacheLFU
		}, want: []string{"state_dir", "shutdown_timeout", "log.format", "proxy_tls", "intercept", "cache"}},
		{name: "admin", edit: func(c *configs.Config) {
			c.Admin.Auth.File, c.Admin.TokenFile, c.Admin.IMDS = "/etc/users", "/etc/token", true
		}, want: []string{"admin.auth", "admin.token_file", "admin.imds"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next := loadYAML(t, reloadBase)
			tc.edit(next)
			if got := restartKeys(prev, next); !slices.Equal(got, tc.want) {
				t.Errorf("restart keys %q, want %q", got, tc.want)
			}
		})
	}
}

func TestErrorKeys(t *testing.T) {
	_, err := configs.LoadBytes([]byte("state_dir: /tmp/x\nroutes:\n  - hosts: [\"*.amazonaws.com\"]\n    source: nope\nunmatched: maybe\n"), configs.FormatYAML)
	if got := errorKeys(err); !slices.Contains(got, "routes[0].source") || !slices.Contains(got, "unmatched") {
		t.Errorf("errorKeys = %q", got)
	}
	if got := errorKeys(keyError{"proxy_auth.file", err}); !slices.Contains(got, "proxy_auth.file") {
		t.Errorf("errorKeys of a keyError = %q", got)
	}
}
