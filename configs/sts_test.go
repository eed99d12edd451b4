package configs_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/signet-proxy/signet/configs"
)

const stsRole = "arn:aws:iam::123456789012:role/Admin"

// stsSource is a YAML source "a" of method sts with the given keys.
func stsSource(keys string) string {
	return "sources:\n  a:\n    method: sts\n    sts: {" + keys + "}\n"
}

func TestSTSErrorRules(t *testing.T) {
	role := "role_arn: " + stsRole
	tests := []struct {
		name, yaml string
		key        string
		value      string
		contains   string
	}{
		{"block missing", "sources:\n  a: {method: sts}\n", "sources.a.sts", "", "is required when method is sts"},
		{"static block on sts", "sources:\n  a: {method: sts, sts: {" + role + "}, static: {access_key_id: a, secret_access_key: b}}\n", "sources.a.static", "", "is not allowed when method is sts"},
		{"sts block on chain", "sources:\n  a: {method: chain, sts: {" + role + "}}\n", "sources.a.sts", "", "is not allowed when method is chain"},
		{"role missing", stsSource("region: us-east-1"), "sources.a.sts.role_arn", "", "is required; accepted: an IAM role ARN"},
		{"role not a role", stsSource("role_arn: arn:aws:iam::123456789012:user/bob"), "sources.a.sts.role_arn", "arn:aws:iam::123456789012:user/bob", "is not a valid role ARN"},
		{"role short account", stsSource("role_arn: arn:aws:iam::12345:role/x"), "sources.a.sts.role_arn", "arn:aws:iam::12345:role/x", "is not a valid role ARN"},
		{"role bad partition", stsSource("role_arn: arn:aws-xx:iam::123456789012:role/x"), "sources.a.sts.role_arn", "arn:aws-xx:iam::123456789012:role/x", "partitions aws, aws-cn, aws-us-gov"},
		{"duration short", stsSource(role + ", duration: 10m"), "sources.a.sts.duration", "10m0s", "is out of range; accepted: a duration from 15m to 12h"},
		{"duration long", stsSource(role + ", duration: 13h"), "sources.a.sts.duration", "13h0m0s", "is out of range"},
		{"duration number", stsSource(role + ", duration: 3600"), "sources.a.sts.duration", "3600", "a Go duration"},
		{"session name", stsSource(role + ", role_session_name: \"a b\""), "sources.a.sts.role_session_name", "a b", "2 to 64"},
		{"external id", stsSource(role + ", external_id: \"x\""), "sources.a.sts.external_id", "x", "2 to 1224"},
		{"policy json", stsSource(role + ", policy: \"{nope\""), "sources.a.sts.policy", "", "is not valid JSON"},
		{"policy arn", stsSource(role + ", policy_arns: [\"arn:aws:iam::aws:policy/ok\", \"nope\"]"), "sources.a.sts.policy_arns[1]", "nope", "is not a valid policy ARN"},
		{"tag key", stsSource(role + ", tags: {\"bad!\": x}"), "sources.a.sts.tags.bad!", "bad!", "is not a valid tag key"},
		{"tag dotted key value", stsSource(role + ", tags: {\"a.b\": \"v!\"}"), "sources.a.sts.tags.a.b", "v!", "is not a valid tag value"},
		{"transitive not a tag", stsSource(role + ", tags: {team: x}, transitive_tag_keys: [team, cost]"), "sources.a.sts.transitive_tag_keys[1]", "cost", "is not a key of tags"},
		{"source identity", stsSource(role + ", source_identity: \"a\""), "sources.a.sts.source_identity", "a", "is not valid"},
		{"region", stsSource(role + ", region: useast1"), "sources.a.sts.region", "useast1", "like us-east-1"},
		{"endpoint http remote", stsSource(role + ", endpoint: \"http://sts.example.com\""), "sources.a.sts.endpoint", "http://sts.example.com", "is plain http to a host that is not loopback"},
		{"endpoint path", stsSource(role + ", endpoint: \"https://sts.example.com/x\""), "sources.a.sts.endpoint", "https://sts.example.com/x", "has a path"},
		{"endpoint relative", stsSource(role + ", endpoint: \"sts.example.com\""), "sources.a.sts.endpoint", "sts.example.com", "is not an https URL"},
		{"endpoint credentials", stsSource(role + ", endpoint: \"https://u:pw@sts.example.com\""), "sources.a.sts.endpoint", "https://u:xxxxx@sts.example.com", "must not contain credentials"},
		{"source and profile", stsSource(role+", source: b, profile: p") + "  b: {method: chain}\n", "sources.a.sts.profile", "p", "is set together with source"},
		{"source unknown", stsSource(role + ", source: nope"), "sources.a.sts.source", "nope", "is not a declared source; accepted: one of the sources: a, default"},
		{"source self", stsSource(role + ", source: a"), "sources.a.sts.source", "a", "forms a cycle: a → a"},
		{"source cycle", stsSource(role+", source: b") + "  b:\n    method: sts\n    sts: {" + role + ", source: c}\n  c:\n    method: sts\n    sts: {" + role + ", source: a}\n",
			"sources.a.sts.source", "b", "forms a cycle: a → b → c → a"},
		{"chained duration", stsSource(role+", source: b, duration: 2h") + "  b:\n    method: sts\n    sts: {" + role + "}\n", "sources.a.sts.duration", "2h0m0s", "STS limits chained role sessions to one hour"},
		{"mfa without serial", stsSource(role + ", mfa: {command: [echo]}"), "sources.a.sts.serial_number", "", "is required with mfa or token_code"},
		{"serial without mfa", stsSource(role + ", serial_number: arn:aws:iam::123456789012:mfa/me"), "sources.a.sts.mfa", "", "is required when serial_number is set"},
		{"serial bad", stsSource(role + ", serial_number: short, token_code: \"123456\""), "sources.a.sts.serial_number", "short", "is not valid"},
		{"token with mfa", stsSource(role + ", serial_number: arn:aws:iam::123456789012:mfa/me, token_code: \"123456\", mfa: {command: [echo]}"), "sources.a.sts.token_code", "(redacted)", "is set together with mfa"},
		{"token malformed", stsSource(role + ", serial_number: arn:aws:iam::123456789012:mfa/me, token_code: \"12345\""), "sources.a.sts.token_code", "(redacted)", "is not a 6-digit code"},
		{"token number", stsSource(role + ", serial_number: arn:aws:iam::123456789012:mfa/me, token_code: 1234567"), "sources.a.sts.token_code", "(redacted)", "must be a string, not a number"},
		{"mfa command missing", stsSource(role + ", serial_number: arn:aws:iam::123456789012:mfa/me, mfa: {timeout: 5s}"), "sources.a.sts.mfa.command", "", "is required"},
		{"mfa command empty", stsSource(role + ", serial_number: arn:aws:iam::123456789012:mfa/me, mfa: {command: [\"\"]}"), "sources.a.sts.mfa.command[0]", "", "is empty"},
		{"mfa command pipe", stsSource(role + ", serial_number: arn:aws:iam::123456789012:mfa/me, mfa: {command: \"ykman oath code | tail -1\"}"), "sources.a.sts.mfa.command", "ykman oath code | tail -1", "uses shell syntax (|) but is never run by a shell"},
		{"mfa command variable", stsSource(role + ", serial_number: arn:aws:iam::123456789012:mfa/me, mfa: {command: \"get-code \\\"$HOME\\\"\"}"), "sources.a.sts.mfa.command", `get-code "$HOME"`, "uses shell expansion ($)"},
		{"mfa command quote", stsSource(role + ", serial_number: arn:aws:iam::123456789012:mfa/me, mfa: {command: \"a 'b\"}"), "sources.a.sts.mfa.command", "a 'b", "unterminated single quote"},
		{"mfa command number", stsSource(role + ", serial_number: arn:aws:iam::123456789012:mfa/me, mfa: {command: 5}"), "sources.a.sts.mfa.command", "5", "must be a list"},
		{"mfa timeout", stsSource(role + ", serial_number: arn:aws:iam::123456789012:mfa/me, mfa: {command: [x], timeout: 10m}"), "sources.a.sts.mfa.timeout", "10m0s", "is out of range"},
		{"mfa timeout negative", stsSource(role + ", serial_number: arn:aws:iam::123456789012:mfa/me, mfa: {command: [x], timeout: -1s}"), "sources.a.sts.mfa.timeout", "-1s", "is out of range"},
		{"mfa env", stsSource(role + ", serial_number: arn:aws:iam::123456789012:mfa/me, mfa: {command: [x], env: [HOME, \"A=B\"]}"), "sources.a.sts.mfa.env[1]", "A=B", "is not a variable name"},
		{"mfa unknown key", stsSource(role + ", serial_number: arn:aws:iam::123456789012:mfa/me, mfa: {command: [x], shell: true}"), "sources.a.sts.mfa.shell", "", "accepted: command, timeout, env"},
		{"sts unknown key", stsSource(role + ", mfa_serial: x"), "sources.a.sts.mfa_serial", "", "is not a known key; accepted: role_arn, role_session_name"},
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

func TestSTSCycleReportedOnce(t *testing.T) {
	role := "role_arn: " + stsRole
	_, err := configs.LoadBytes([]byte("state_dir: /s\n"+stsSource(role+", source: b")+"  b:\n    method: sts\n    sts: {"+role+", source: a}\n  c:\n    method: sts\n    sts: {"+role+", source: a}\n"), configs.FormatYAML)
	if err == nil {
		t.Fatal("no error")
	}
	if n := strings.Count(err.Error(), "forms a cycle"); n != 1 {
		t.Errorf("cycle reported %d times:\n%v", n, err)
	}
}

func TestSTSAccepted(t *testing.T) {
	role := "role_arn: " + stsRole
	tests := []struct{ name, yaml string }{
		{"minimal", stsSource(role)},
		{"govcloud and cn", stsSource("role_arn: arn:aws-us-gov:iam::123456789012:role/path/to/x") + "  b:\n    method: sts\n    sts: {role_arn: \"arn:aws-cn:iam::123456789012:role/x\"}\n"},
		{"profile only", stsSource("profile: prod-admin, mfa: {command: [ykman, oath, code]}")},
		{"chain of sts", stsSource(role+", source: b, duration: 1h") + "  b:\n    method: sts\n    sts: {" + role + ", source: c, duration: 12h}\n  c: {method: chain}\n"},
		{"loopback http endpoint", stsSource(role + ", endpoint: \"http://127.0.0.1:8443\"")},
		{"static token", stsSource(role + ", serial_number: \"GAHT12345678\", token_code: \"012345\"")},
		{"everything", stsSource(role + `, role_session_name: me@example.com, duration: 15m, external_id: "ext-1", policy: "{\"Version\":\"2012-10-17\"}", policy_arns: ["arn:aws:iam::aws:policy/ReadOnlyAccess"], tags: {team: a, "cost.center": "42"}, transitive_tag_keys: [team], source_identity: alice, serial_number: "arn:aws:iam::123456789012:mfa/me", mfa: {command: [x], timeout: 5m, env: [HOME]}, region: eu-west-1, endpoint: "https://sts.eu-west-1.amazonaws.com/"`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := configs.LoadBytes([]byte("state_dir: /s\n"+tt.yaml), configs.FormatYAML); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestSTSCommandString(t *testing.T) {
	tests := []struct {
		in   string
		want configs.Command
	}{
		{`ykman oath accounts code --single "AWS prod"`, configs.Command{"ykman", "oath", "accounts", "code", "--single", "AWS prod"}},
		{`op item get 'My AWS' --otp`, configs.Command{"op", "item", "get", "My AWS", "--otp"}},
		{`/opt/bin/get\ code  "a\"b" x''y`, configs.Command{"/opt/bin/get code", `a"b`, "xy"}},
		{`a ""`, configs.Command{"a", ""}},
	}
	for _, tt := range tests {
		y := "state_dir: /s\n" + stsSource("role_arn: "+stsRole+", serial_number: \"arn:aws:iam::123456789012:mfa/me\", mfa: {command: '"+strings.ReplaceAll(tt.in, "'", "''")+"'}")
		cfg, err := configs.LoadBytes([]byte(y), configs.FormatYAML)
		if err != nil {
			t.Fatalf("%s: %v", tt.in, err)
		}
		m := cfg.Sources["a"].STS.MFA
		if !reflect.DeepEqual(m.Command, tt.want) {
			t.Errorf("%s: command = %q, want %q", tt.in, m.Command, tt.want)
		}
		if time.Duration(m.Timeout) != configs.DefaultMFATimeout {
			t.Errorf("timeout = %v, want the default", time.Duration(m.Timeout))
		}
	}
}

// TestSTSFromEnv sets an sts source entirely from the environment, the
// command as one string.
func TestSTSFromEnv(t *testing.T) {
	cfg, err := configs.Load(configs.LoadOptions{Environ: []string{
		"HOME=/h",
		"SIGNET_SOURCES__A__METHOD=sts",
		"SIGNET_SOURCES__A__STS__ROLE_ARN=" + stsRole,
		"SIGNET_SOURCES__A__STS__DURATION=30m",
		"SIGNET_SOURCES__A__STS__SERIAL_NUMBER=arn:aws:iam::123456789012:mfa/me",
		"SIGNET_SOURCES__A__STS__MFA__COMMAND=ykman oath code",
	}})
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Sources["a"].STS
	if time.Duration(s.Duration) != 30*time.Minute || !reflect.DeepEqual(s.MFA.Command, configs.Command{"ykman", "oath", "code"}) {
		t.Errorf("sts = %+v, mfa %+v", s, s.MFA)
	}
}

func TestSTSRenderRoundTripAndRedaction(t *testing.T) {
	in := "state_dir: /s\n" + stsSource(`role_arn: `+stsRole+`, duration: 2h, tags: {"a.b": c}, policy_arns: ["arn:aws:iam::aws:policy/ReadOnlyAccess"], serial_number: "arn:aws:iam::123456789012:mfa/me", token_code: "987654"`) +
		"  b:\n    method: sts\n    sts: {role_arn: \"" + stsRole + "\", source: a, serial_number: \"arn:aws:iam::123456789012:mfa/me\", mfa: {command: [ykman, code], env: [HOME]}}\n"
	cfg, err := configs.LoadBytes([]byte(in), configs.FormatYAML)
	if err != nil {
		t.Fatal(err)
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
		red, err := cfg.Redacted().Render(format)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(red), "987654") {
			t.Errorf("%s: redacted render shows the token code:\n%s", format, red)
		}
	}
	r := cfg.Redacted()
	r.Sources["b"].STS.MFA.Command[0] = "changed"
	r.Sources["a"].STS.Tags["a.b"] = "changed"
	if cfg.Sources["b"].STS.MFA.Command[0] != "ykman" || cfg.Sources["a"].STS.Tags["a.b"] != "c" || cfg.Sources["a"].STS.TokenCode != "987654" {
		t.Error("Redacted shares or changes the original's sts block")
	}
}

func TestSTSTokenNotInErrors(t *testing.T) {
	for _, y := range []string{
		stsSource("role_arn: " + stsRole + ", serial_number: \"arn:aws:iam::123456789012:mfa/me\", token_code: \"98765x\""),
		stsSource("role_arn: " + stsRole + ", serial_number: \"arn:aws:iam::123456789012:mfa/me\", token_code: \"987654\", mfa: {command: [x]}"),
		stsSource("role_arn: " + stsRole + ", token_code: [987654]"),
	} {
		_, err := configs.LoadBytes([]byte("state_dir: /s\n"+y), configs.FormatYAML)
		if err == nil {
			t.Fatalf("no error for %s", y)
		}
		if strings.Contains(err.Error(), "98765") {
			t.Errorf("error leaks the token code: %v", err)
		}
	}
}
