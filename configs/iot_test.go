package configs_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/signet-proxy/signet/configs"
)

const iotBase = `endpoint: c2example.credentials.iot.us-east-1.amazonaws.com, role_alias: signet-role, certificate: /d/cert.pem`

// iotSource is a YAML source "a" of method iot with the given keys.
func iotSource(keys string) string {
	return "sources:\n  a:\n    method: iot\n    iot: {" + keys + "}\n"
}

func TestIoTErrorRules(t *testing.T) {
	key := iotBase + ", private_key: /d/key.pem"
	p11 := func(keys string) string { return iotSource(iotBase + ", pkcs11: {" + keys + "}") }
	const mod = "module: /usr/lib/softhsm/libsofthsm2.so"
	tests := []struct {
		name, yaml string
		key        string
		value      string
		contains   string
	}{
		{"block missing", "sources:\n  a: {method: iot}\n", "sources.a.iot", "", "is required when method is iot"},
		{"iot block on sts", stsSource("role_arn: "+stsRole) + "    iot: {" + key + "}\n", "sources.a.iot", "", "is not allowed when method is sts"},
		{"sts block on iot", iotSource(key) + "    sts: {role_arn: " + stsRole + "}\n", "sources.a.sts", "", "is not allowed when method is iot"},
		{"endpoint missing", iotSource("role_alias: r, certificate: c, private_key: k"), "sources.a.iot.endpoint", "", "is required"},
		{"endpoint http", iotSource(strings.Replace(key, "endpoint: ", "endpoint: http://", 1)), "sources.a.iot.endpoint", "http://c2example.credentials.iot.us-east-1.amazonaws.com", "is not an https URL"},
		{"endpoint path", iotSource(strings.Replace(key, "us-east-1.amazonaws.com", "us-east-1.amazonaws.com/role-aliases", 1)), "sources.a.iot.endpoint", "c2example.credentials.iot.us-east-1.amazonaws.com/role-aliases", "has no valid host"},
		{"endpoint url path", iotSource(strings.Replace(key, "endpoint: c2example.credentials.iot.us-east-1.amazonaws.com", `endpoint: "https://h.example.com/x"`, 1)), "sources.a.iot.endpoint", "https://h.example.com/x", "has a path"},
		{"endpoint port", iotSource(strings.Replace(key, "amazonaws.com", "amazonaws.com:99999", 1)), "sources.a.iot.endpoint", "c2example.credentials.iot.us-east-1.amazonaws.com:99999", "has an invalid port"},
		{"role alias missing", iotSource("endpoint: h.example.com, certificate: c, private_key: k"), "sources.a.iot.role_alias", "", "is required"},
		{"role alias bad", iotSource(strings.Replace(key, "signet-role", `"a/b"`, 1)), "sources.a.iot.role_alias", "a/b", "is not a valid role alias"},
		{"thing name bad", iotSource(key + ", thing_name: \"a b\""), "sources.a.iot.thing_name", "a b", "is not a valid thing name"},
		{"certificate missing", iotSource("endpoint: h.example.com, role_alias: r, private_key: k"), "sources.a.iot.certificate", "", "is required"},
		{"no key", iotSource(iotBase), "sources.a.iot.private_key", "", "is required; accepted: a PEM file with the certificate's key, or a pkcs11 block"},
		{"both keys", iotSource(key + ", pkcs11: {" + mod + ", token_label: t, key_label: k, pin_env: PIN}"), "sources.a.iot.pkcs11", "", "is set together with private_key"},
		{"timeout zero", iotSource(key + ", timeout: -1s"), "sources.a.iot.timeout", "-1s", "is out of range"},
		{"timeout long", iotSource(key+", timeout: 6m") + "    refresh: {timeout: 10m}\n", "sources.a.iot.timeout", "6m0s", "is out of range"},
		{"timeout over refresh", iotSource(key + ", timeout: 40s"), "sources.a.iot.timeout", "40s", "is longer than refresh.timeout (30s)"},
		{"unknown key", iotSource(key + ", duration_seconds: 3600"), "sources.a.iot.duration_seconds", "", "is not a known key; accepted: endpoint, role_alias"},
		{"pkcs11 module missing", p11("token_label: t, key_label: k, pin_env: PIN"), "sources.a.iot.pkcs11.module", "", "is required"},
		{"pkcs11 no token", p11(mod + ", key_label: k, pin_env: PIN"), "sources.a.iot.pkcs11.token_label", "", "exactly one of token_label, token_serial or slot"},
		{"pkcs11 two tokens", p11(mod + ", token_label: t, slot: 0, key_label: k, pin_env: PIN"), "sources.a.iot.pkcs11.token_label", "", "is set together with token_serial or slot"},
		{"pkcs11 no key", p11(mod + ", token_serial: \"0123\", pin_env: PIN"), "sources.a.iot.pkcs11.key_label", "", "exactly one of key_label or key_id"},
		{"pkcs11 two keys", p11(mod + ", token_label: t, key_label: k, key_id: \"01\", pin_env: PIN"), "sources.a.iot.pkcs11.key_label", "", "is set together with key_id"},
		{"pkcs11 key id not hex", p11(mod + ", token_label: t, key_id: xyz, pin_env: PIN"), "sources.a.iot.pkcs11.key_id", "xyz", "is not hex"},
		{"pkcs11 slot negative", p11(mod + ", slot: -1, key_label: k, pin_env: PIN"), "sources.a.iot.pkcs11.slot", "-1", "is negative"},
		{"pkcs11 no pin", p11(mod + ", token_label: t, key_label: k"), "sources.a.iot.pkcs11.pin_file", "", "exactly one of pin_file"},
		{"pkcs11 two pins", p11(mod + ", token_label: t, key_label: k, pin_file: /p, pin_env: PIN"), "sources.a.iot.pkcs11.pin_env", "PIN", "is set together with pin_file"},
		{"pkcs11 pin env name", p11(mod + ", token_label: t, key_label: k, pin_env: \"A=1\""), "sources.a.iot.pkcs11.pin_env", "A=1", "is not a variable name"},
		{"pkcs11 inline pin", p11(mod + ", token_label: t, key_label: k, pin: \"917263\""), "sources.a.iot.pkcs11.pin", "", "a PIN is never written in the config"},
		{"pkcs11 uri pin-value", p11(mod + ", uri: \"pkcs11:token=t;object=k?pin-value=917263\""), "sources.a.iot.pkcs11.uri", "", "has a pin-value"},
		{"pkcs11 uri scheme", p11(mod + ", uri: \"token=t;object=k\""), "sources.a.iot.pkcs11.uri", "", "is not a pkcs11: URI"},
		{"pkcs11 uri no key", p11(mod + ", uri: \"pkcs11:token=t\""), "sources.a.iot.pkcs11.uri", "", "names no key"},
		{"pkcs11 uri and fields", p11(mod + ", uri: \"pkcs11:token=t;object=k\", key_label: k"), "sources.a.iot.pkcs11.uri", "", "is set together with token or key fields"},
		{"pkcs11 unknown key", p11(mod + ", token_label: t, key_label: k, pin_env: PIN, user_pin: \"1\""), "sources.a.iot.pkcs11.user_pin", "", "is not a known key"},
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
			if strings.Contains(err.Error(), "917263") {
				t.Errorf("error shows the PIN: %v", err)
			}
		})
	}
	_, err := configs.LoadBytes([]byte("state_dir: /s\n"+iotSource(iotBase+", pkcs11: {"+mod+", token_label: t, key_label: k, pin_env: PIN}, private_key_passphrase_file: /p")), configs.FormatYAML)
	findError(t, err, "sources.a.iot.private_key_passphrase_file")
}

func TestIoTAccepted(t *testing.T) {
	const mod = "module: /usr/lib/softhsm/libsofthsm2.so"
	tests := []struct{ name, yaml string }{
		{"pem", iotSource(iotBase + ", private_key: /d/key.pem")},
		{"everything pem", iotSource(iotBase + ", thing_name: \"sensor-42:a_b\", private_key: /d/key.pem, private_key_passphrase_file: /d/pass, ca_file: /d/AmazonRootCA1.pem, timeout: 30s")},
		{"https endpoint", iotSource(strings.Replace(iotBase, "endpoint: ", "endpoint: https://", 1) + ", private_key: k")},
		{"loopback endpoint with port", iotSource("endpoint: \"127.0.0.1:8443\", role_alias: r, certificate: c, private_key: k")},
		{"pkcs11 fields", iotSource(iotBase + ", pkcs11: {" + mod + ", token_label: signet, key_label: device, pin_file: /d/pin}")},
		{"pkcs11 slot 0 and id", iotSource(iotBase + ", pkcs11: {" + mod + ", slot: 0, key_id: \"a1B2\", pin_env: SIGNET_PIN}")},
		{"pkcs11 uri", iotSource(iotBase + ", pkcs11: {" + mod + ", uri: \"pkcs11:token=signet;object=device%20key;type=private\", pin_env: SIGNET_PIN}")},
		{"long timeout with long refresh", iotSource(iotBase+", private_key: k, timeout: 2m") + "    refresh: {timeout: 3m}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := configs.LoadBytes([]byte("state_dir: /s\n"+tt.yaml), configs.FormatYAML); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestIoTDefaultsRoundTripAndClone(t *testing.T) {
	in := "state_dir: /s\n" + iotSource(iotBase+", thing_name: t1, private_key: /d/key.pem") +
		"  b:\n    method: iot\n    iot: {" + iotBase + ", pkcs11: {module: /m.so, slot: 0, key_id: \"01\", pin_env: PIN}}\n"
	cfg, err := configs.LoadBytes([]byte(in), configs.FormatYAML)
	if err != nil {
		t.Fatal(err)
	}
	a, b := cfg.Sources["a"].IoT, cfg.Sources["b"].IoT
	if time.Duration(a.Timeout) != configs.DefaultIoTTimeout || a.ThingName != "t1" || b.PKCS11 == nil || b.PKCS11.Slot == nil || *b.PKCS11.Slot != 0 {
		t.Fatalf("loaded %+v and %+v", a, b)
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
	r := cfg.Redacted()
	*r.Sources["b"].IoT.PKCS11.Slot = 7
	r.Sources["a"].IoT.ThingName = "changed"
	if *cfg.Sources["b"].IoT.PKCS11.Slot != 0 || cfg.Sources["a"].IoT.ThingName != "t1" {
		t.Error("Redacted shares the original's iot block")
	}
}

// TestIoTFromEnv sets an iot source entirely from the environment.
func TestIoTFromEnv(t *testing.T) {
	cfg, err := configs.Load(configs.LoadOptions{Environ: []string{
		"HOME=/h",
		"SIGNET_SOURCES__A__METHOD=iot",
		"SIGNET_SOURCES__A__IOT__ENDPOINT=c2example.credentials.iot.eu-west-1.amazonaws.com",
		"SIGNET_SOURCES__A__IOT__ROLE_ALIAS=r",
		"SIGNET_SOURCES__A__IOT__CERTIFICATE=/c.pem",
		"SIGNET_SOURCES__A__IOT__PKCS11__MODULE=/m.so",
		"SIGNET_SOURCES__A__IOT__PKCS11__SLOT=3",
		"SIGNET_SOURCES__A__IOT__PKCS11__KEY_LABEL=k",
		"SIGNET_SOURCES__A__IOT__PKCS11__PIN_ENV=PIN",
	}})
	if err != nil {
		t.Fatal(err)
	}
	if k := cfg.Sources["a"].IoT.PKCS11; k.Slot == nil || *k.Slot != 3 || k.KeyLabel != "k" {
		t.Errorf("pkcs11 = %+v", k)
	}
}
