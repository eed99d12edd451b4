package configs

import (
	"bytes"
	"encoding/json"
	"strings"

	toml "github.com/pelletier/go-toml/v2"
	"go.yaml.in/yaml/v3"
)

// RedactedValue stands in for secret values in Config.Redacted.
const RedactedValue = "REDACTED"

// Redacted returns a deep copy of c that is safe to print: secret access
// keys, session tokens and a wasm module's env values and stdin become
// "REDACTED", and access key IDs keep only their first and last four
// characters.
func (c *Config) Redacted() *Config {
	out := c.clone()
	for name, s := range out.Sources {
		if s.STS != nil && s.STS.TokenCode != "" {
			s.STS.TokenCode = RedactedValue
			out.Sources[name] = s
		}
		// An iot block holds file names and a variable name, never a
		// secret: a pin is refused by Validate, and hidden here all the
		// same for a config that was never validated.
		if s.IoT != nil && s.IoT.PKCS11 != nil && s.IoT.PKCS11.Pin != "" {
			s.IoT.PKCS11.Pin = RedactedValue
		}
		if s.Wasm != nil {
			s.Wasm.redact() // a clone: out is a deep copy
		}
		if s.Static == nil {
			continue
		}
		st := *s.Static
		st.AccessKeyID = redactKeyID(st.AccessKeyID)
		if st.SecretAccessKey != "" {
			st.SecretAccessKey = RedactedValue
		}
		if st.SessionToken != "" {
			st.SessionToken = RedactedValue
		}
		s.Static = &st
		out.Sources[name] = s
	}
	return out
}

// redactKeyID keeps enough of an access key ID to tell keys apart; a
// short one is hidden whole because its ends would be most of it.
func redactKeyID(id string) string {
	r := []rune(id)
	switch {
	case len(r) == 0:
		return ""
	case len(r) < 12:
		return RedactedValue
	}
	return string(r[:4]) + "…" + string(r[len(r)-4:])
}

func (c *Config) clone() *Config {
	out := *c
	if c.Sources != nil {
		out.Sources = make(map[string]Source, len(c.Sources))
		for k, s := range c.Sources {
			if s.Static != nil {
				st := *s.Static
				s.Static = &st
			}
			if s.Chain != nil {
				ch := *s.Chain
				s.Chain = &ch
			}
			if s.STS != nil {
				s.STS = s.STS.clone()
			}
			if s.IoT != nil {
				s.IoT = s.IoT.clone()
			}
			if s.Wasm != nil {
				s.Wasm = s.Wasm.clone()
			}
			out.Sources[k] = s
		}
	}
	if c.Routes != nil {
		out.Routes = make([]Route, len(c.Routes))
		for i, r := range c.Routes {
			r.Hosts = append([]string(nil), r.Hosts...)
			out.Routes[i] = r
		}
	}
	if c.Upstream.ConnectTo != nil {
		out.Upstream.ConnectTo = make(map[string]string, len(c.Upstream.ConnectTo))
		for k, v := range c.Upstream.ConnectTo {
			out.Upstream.ConnectTo[k] = v
		}
	}
	out.Reverse = append([]Reverse(nil), c.Reverse...)
	out.ProxyTLS.Names = append([]string(nil), c.ProxyTLS.Names...)
	if c.ProxyTLS.ACME != nil {
		a := *c.ProxyTLS.ACME
		out.ProxyTLS.ACME = &a
	}
	return &out
}

// rendered mirrors Config for output, with the duration as text so that
// every format carries "30s" rather than nanoseconds.
type rendered struct {
	Listen          string            `yaml:"listen" json:"listen" toml:"listen"`
	StateDir        string            `yaml:"state_dir" json:"state_dir" toml:"state_dir"`
	ShutdownTimeout string            `yaml:"shutdown_timeout" json:"shutdown_timeout" toml:"shutdown_timeout"`
	Log             Log               `yaml:"log" json:"log" toml:"log"`
	Unmatched       string            `yaml:"unmatched" json:"unmatched" toml:"unmatched"`
	Sources         map[string]Source `yaml:"sources" json:"sources" toml:"sources"`
	Routes          []Route           `yaml:"routes" json:"routes" toml:"routes"`
	Upstream        Upstream          `yaml:"upstream" json:"upstream" toml:"upstream"`
	Reverse         []Reverse         `yaml:"reverse" json:"reverse" toml:"reverse"`
	Intercept       Intercept         `yaml:"intercept" json:"intercept" toml:"intercept"`
	ProxyTLS        ProxyTLS          `yaml:"proxy_tls" json:"proxy_tls" toml:"proxy_tls"`
	ProxyAuth       ProxyAuth         `yaml:"proxy_auth" json:"proxy_auth" toml:"proxy_auth"`
	Admin           Admin             `yaml:"admin" json:"admin" toml:"admin"`
	Cache           Cache             `yaml:"cache" json:"cache" toml:"cache"`
	Limits          Limits            `yaml:"limits" json:"limits" toml:"limits"`
}

// Render writes c in format ("yaml" when empty, "json" or "toml") with the
// same key names Load reads, so the output loads back to an equal Config.
// It prints secrets as they are; print c.Redacted() to show a config.
func (c *Config) Render(format string) ([]byte, error) {
	r := rendered{
		Listen:          c.Listen,
		StateDir:        c.StateDir,
		ShutdownTimeout: c.ShutdownTimeout.String(),
		Log:             c.Log,
		Unmatched:       c.Unmatched,
		Sources:         c.Sources,
		Routes:          c.Routes,
		Upstream:        c.Upstream,
		Reverse:         c.Reverse,
		Intercept:       c.Intercept,
		ProxyTLS:        c.ProxyTLS,
		ProxyAuth:       c.ProxyAuth,
		Admin:           c.Admin,
		Cache:           c.Cache,
		Limits:          c.Limits,
	}
	// An empty list is written out, not omitted: omitted, the default
	// routes would come back on reload.
	if r.Routes == nil {
		r.Routes = []Route{}
	}
	if r.Reverse == nil {
		r.Reverse = []Reverse{}
	}
	switch strings.ToLower(format) {
	case "", FormatYAML, "yml":
		var b bytes.Buffer
		enc := yaml.NewEncoder(&b)
		enc.SetIndent(2)
		if err := enc.Encode(r); err != nil {
			return nil, err
		}
		if err := enc.Close(); err != nil {
			return nil, err
		}
		return b.Bytes(), nil
	case FormatJSON:
		out, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return nil, err
		}
		return append(out, '\n'), nil
	case FormatTOML:
		return toml.Marshal(r)
	}
	return nil, Errors{{Value: format, Problem: "is not a known output format", Accepted: "yaml, json, toml"}}
}
