package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signet-proxy/signet/configs"
)

// TestProvisionSTS builds an sts source chained to a static one. Nothing
// listens on the endpoint, so a fetch shows that the chained source's keys
// were found (signing happens first) and that the error names the role.
func TestProvisionSTS(t *testing.T) {
	dir := t.TempDir()
	mfa := filepath.Join(dir, "mfa.sh")
	if err := os.WriteFile(mfa, []byte("#!/bin/sh\necho 123456\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	yaml := func(command string) string {
		return `state_dir: ` + dir + `
sources:
  base:
    method: static
    static: {access_key_id: AKIAIOSFODNN7EXAMPLE, secret_access_key: secret}
  admin:
    method: sts
    sts:
      source: base
      role_arn: arn:aws:iam::123456789012:role/Admin
      serial_number: arn:aws:iam::123456789012:mfa/me
      mfa: {command: [` + command + `], timeout: 5s}
      region: eu-west-1
      endpoint: http://127.0.0.1:1
`
	}
	cfg, err := configs.LoadBytes([]byte(yaml(mfa)), configs.FormatYAML)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cs, err := provision(context.Background(), cfg, log, forCheck)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = cs.sources["admin"].Credentials(ctx)
	if err == nil || !strings.Contains(err.Error(), "sts: assume role arn:aws:iam::123456789012:role/Admin: cannot reach http://127.0.0.1:1") {
		t.Fatalf("err = %v", err)
	}

	cfg, err = configs.LoadBytes([]byte(yaml("signet-no-such-mfa-program")), configs.FormatYAML)
	if err != nil {
		t.Fatal(err)
	}
	_, err = provision(context.Background(), cfg, log, forCheck)
	if err == nil || !isConfigError(err) || !strings.Contains(err.Error(), "sources.admin") || !strings.Contains(err.Error(), "signet-no-such-mfa-program") {
		t.Fatalf("missing MFA program: err = %v", err)
	}
}
