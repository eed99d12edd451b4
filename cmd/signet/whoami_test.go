package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signet-proxy/signet/internal/ststest"
)

// whoami prints the assumed role: GetCallerIdentity signed with the keys
// AssumeRole returned, not with the keys that called it.
func TestWhoami(t *testing.T) {
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	f := ststest.New(t, ststest.Options{PlainHTTP: true})
	f.AddUser("AKIAIOSFODNN7EXAMPLE", "base-secret-value", "arn:aws:iam::111122223333:user/alice")
	const role = "arn:aws:iam::111122223333:role/Admin"
	f.AddRole(ststest.Role{ARN: role, MaxSessionDuration: 12 * time.Hour})
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	writeFile(t, cfg, fmt.Sprintf(`sources:
  base: {method: static, static: {access_key_id: AKIAIOSFODNN7EXAMPLE, secret_access_key: base-secret-value}}
  admin:
    method: sts
    sts: {role_arn: %q, source: base, endpoint: %q, region: %q}
routes:
  - {hosts: ["*.amazonaws.com"], source: admin}
`, role, f.URL(), f.Region()))
	env := []string{"HOME=" + t.TempDir()}
	tests := []struct {
		args    []string
		want    int
		wantOut string
		wantErr string
	}{
		{[]string{"whoami", "-c", cfg}, exitOK, ":assumed-role/Admin/", ""},
		{[]string{"whoami", "-c", cfg, "--source", "base", "--endpoint", f.URL(), "--region", f.Region()}, exitOK, "arn:aws:iam::111122223333:user/alice", ""},
		{[]string{"whoami", "-c", cfg, "--source", "nope"}, exitConfig, "", `"nope"`},
	}
	for _, tc := range tests {
		var stdout, stderr bytes.Buffer
		got := run(context.Background(), tc.args, &stdout, &stderr, env)
		if got != tc.want || !strings.Contains(stdout.String(), tc.wantOut) || !strings.Contains(stderr.String(), tc.wantErr) {
			t.Errorf("%v: exit %d\nstdout: %s\nstderr: %s", tc.args, got, &stdout, &stderr)
		}
		if strings.Contains(stdout.String()+stderr.String(), "base-secret-value") {
			t.Errorf("%v printed a secret", tc.args)
		}
	}
}
