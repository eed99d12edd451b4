package credentials

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const testAWSConfig = `# written by hand and by tools
[default]
region = us-west-2
output = json
cli_pager =

[profile prod-admin]
role_arn = arn:aws:iam::123456789012:role/Admin   # the admin role
source_profile = base
mfa_serial = arn:aws:iam::111122223333:mfa/alice
duration_seconds = 1800
external_id = ext-42
role_session_name = alice
region = eu-west-1
s3 =
  max_concurrent_requests = 20
  region = ignored-sub-key
granted_sso_start_url = https://example.awsapps.com/start
credential_process_cache = yes
x_future_tool_key = whatever ; with a comment

[sso-session corp]
sso_region = us-east-1

[profile base]
region = us-east-2

[services dev]
sts =
  endpoint_url = http://localhost:4566
`

func writeAWSConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadAWSProfile(t *testing.T) {
	file := writeAWSConfig(t, testAWSConfig)
	got, err := ReadAWSProfile(file, "prod-admin")
	if err != nil {
		t.Fatal(err)
	}
	want := AWSProfile{
		Name: "prod-admin", RoleARN: "arn:aws:iam::123456789012:role/Admin", SourceProfile: "base",
		MFASerial: "arn:aws:iam::111122223333:mfa/alice", Duration: 30 * time.Minute, ExternalID: "ext-42",
		RoleSessionName: "alice", Region: "eu-west-1",
	}
	if got != want {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if d, err := ReadAWSProfile(file, "default"); err != nil || d.Region != "us-west-2" {
		t.Errorf("default = %+v, %v", d, err)
	}
}

func TestReadAWSProfileErrors(t *testing.T) {
	tests := []struct{ name, body, profile, errHas string }{
		{"missing profile", testAWSConfig, "nope", "profile nope not found"},
		{"sso-session is not a profile", testAWSConfig, "corp", "profile corp not found"},
		{"bad duration", "[profile p]\nduration_seconds = 1h\n", "p", `duration_seconds "1h" is not a whole number`},
		// Found by FuzzReadAWSProfile: seconds past time.Duration's range
		// wrapped around, here to about 999s, which STS would take.
		{"duration that overflows", "[profile p]\nduration_seconds = 18446745073\n", "p", `duration_seconds "18446745073" is not a whole number`},
		{"bad header", "[profile p\nrole_arn = x\n", "p", "without ']'"},
		{"not key value", "[profile p]\nrole_arn\n", "p", "not key = value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadAWSProfile(writeAWSConfig(t, tt.body), tt.profile)
			if err == nil || !strings.Contains(err.Error(), tt.errHas) {
				t.Fatalf("err = %v, want %q", err, tt.errHas)
			}
		})
	}
	if _, err := ReadAWSProfile(filepath.Join(t.TempDir(), "none"), "p"); err == nil {
		t.Error("missing file: no error")
	}
}

func TestAWSConfigFile(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"AWS_CONFIG_FILE": "/etc/aws.conf", "HOME": "/h"}, "/etc/aws.conf"},
		{map[string]string{"AWS_CONFIG_FILE": "~/alt", "HOME": "/h"}, "/h/alt"},
		{map[string]string{"HOME": "/h"}, "/h/.aws/config"},
	}
	for _, tt := range tests {
		if got, err := AWSConfigFile(env(tt.env)); err != nil || got != tt.want {
			t.Errorf("%v: got %q, %v; want %q", tt.env, got, err, tt.want)
		}
	}
	if _, err := AWSConfigFile(env(nil)); err == nil {
		t.Error("no HOME: no error")
	}
}
