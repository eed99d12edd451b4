package main

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signet-proxy/signet/configs"
	"github.com/signet-proxy/signet/internal/iottest"
)

// TestProvisionIoT builds an iot source from a config (encrypted key,
// passphrase file, ca_file) and fetches credentials from the fake; a bad
// passphrase, a missing ca_file and a pkcs11 block fail at start, as
// config errors that name the source.
func TestProvisionIoT(t *testing.T) {
	f := iottest.New(t, iottest.Options{})
	f.AddRoleAlias("signet-role", "arn:aws:iam::123456789012:role/Device")
	dev := f.CA().ClientCert(t, iottest.ClientOptions{Key: iottest.RSA})
	f.AttachThing("sensor-1", dev.Cert)
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		writeFile(t, p, content)
		return p
	}
	cert := file("cert.pem", string(dev.CertPEM))
	key := file("key.pem", string(dev.EncryptedPKCS8PEM(t, "correct horse")))
	good := file("pass", "correct horse\n")
	bad := file("bad-pass", "battery staple\n")
	ca := file("ca.pem", string(f.RootPEM()))
	yaml := func(extra string) string {
		return `state_dir: ` + dir + `
sources:
  dev:
    method: iot
    iot:
      endpoint: "https://localhost:` + f.Port() + `"
      role_alias: signet-role
      thing_name: sensor-1
      certificate: ` + cert + `
` + extra + `
routes:
  - {hosts: ["*.amazonaws.com"], source: dev}
`
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	load := func(extra string) *configs.Config {
		t.Helper()
		cfg, err := configs.LoadBytes([]byte(yaml(extra)), configs.FormatYAML)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}

	cs, err := provision(context.Background(), load("      private_key: "+key+"\n      private_key_passphrase_file: "+good+"\n      ca_file: "+ca), log, forCheck)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := cs.sources["dev"].Credentials(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(c.AccessKeyID, "ASIA") || c.Origin != "iot:signet-role" || len(f.Calls()) != 1 || f.Calls()[0].ThingName != "sensor-1" {
		t.Errorf("credentials %v from %q; calls %+v", c, c.Origin, f.Calls())
	}
	if st := cs.sources["dev"].State(); st.Method != "iot" {
		t.Errorf("state method %q", st.Method)
	}

	for _, tc := range []struct{ name, extra, want string }{
		{"wrong passphrase", "      private_key: " + key + "\n      private_key_passphrase_file: " + bad + "\n      ca_file: " + ca, "wrong or missing passphrase"},
		{"no ca_file", "      private_key: " + key + "\n      private_key_passphrase_file: " + good + "\n      ca_file: " + filepath.Join(dir, "nope.pem"), "iot.ca_file"},
		{"pkcs11 pin_env unset", "      pkcs11: {module: /nonexistent/p11.so, token_label: t, key_label: k, pin_env: SIGNETTEST_NO_SUCH_PIN}", "SIGNETTEST_NO_SUCH_PIN is not set"},
		// A cgo build names the module; a CGO_ENABLED=0 build says how to
		// get one with PKCS#11.
		{"pkcs11 module missing", "      pkcs11: {module: /nonexistent/p11.so, token_label: t, key_label: k, pin_file: " + good + "}", "/nonexistent/p11.so|built without cgo"},
	} {
		_, err := provision(context.Background(), load(tc.extra), log, forCheck)
		if err == nil || !isConfigError(err) || !strings.Contains(err.Error(), "sources.dev") || !containsAny(err.Error(), strings.Split(tc.want, "|")) {
			t.Errorf("%s: err = %v", tc.name, err)
		}
		if err != nil && strings.Contains(err.Error(), "battery") {
			t.Errorf("%s: error shows the passphrase: %v", tc.name, err)
		}
	}
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
