package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signet-proxy/signet/credentials"
	"github.com/signet-proxy/signet/proxy/admin"
)

type processJSON struct {
	Version         int
	AccessKeyID     string `json:"AccessKeyId"`
	SecretAccessKey string
	SessionToken    string
	Expiration      string
}

func runCredentialProcessCmd(t *testing.T, env []string, args ...string) (int, processJSON, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), append([]string{"credential-process"}, args...), &stdout, &stderr, env)
	var out processJSON
	if code == exitOK {
		if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
			t.Fatalf("stdout is not credential_process JSON: %v: %q", err, stdout.String())
		}
		if !bytes.HasSuffix(stdout.Bytes(), []byte("}\n")) || bytes.Count(stdout.Bytes(), []byte("\n")) != 1 {
			t.Errorf("stdout is not one JSON line: %q", stdout.String())
		}
	}
	return code, out, stderr.String()
}

// TestCredentialProcess: with no signet running it prints the source's
// own keys; with one running (its token file in the state directory, its
// admin listener where the config says) it prints what that signet
// serves; a running signet's refusal is an error, not a silent fallback.
func TestCredentialProcess(t *testing.T) {
	state := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adminAddr := ln.Addr().String()
	ln.Close() // nothing listens there until the "running" case
	cfgFile := filepath.Join(t.TempDir(), "signet.yaml")
	writeFile(t, cfgFile, "state_dir: "+state+"\nadmin: {listen: "+adminAddr+"}\nsources:\n"+
		"  ci: {method: static, static: {access_key_id: AKIAEXAMPLEKEY000001, secret_access_key: very-secret-value}}\n"+
		"routes:\n  - hosts: ['*.amazonaws.com']\n    source: ci\n")
	env := []string{"HOME=" + t.TempDir(), "AWS_EC2_METADATA_DISABLED=true"}

	t.Run("no signet running", func(t *testing.T) {
		code, out, stderr := runCredentialProcessCmd(t, env, "-c", cfgFile)
		if code != exitOK || out.Version != 1 || out.AccessKeyID != "AKIAEXAMPLEKEY000001" || out.SecretAccessKey != "very-secret-value" || out.Expiration != "" {
			t.Errorf("exit %d, %+v, stderr %q", code, out, stderr)
		}
	})
	t.Run("unknown source", func(t *testing.T) {
		code, _, stderr := runCredentialProcessCmd(t, env, "-c", cfgFile, "--source", "nope")
		if code != exitConfig || !strings.Contains(stderr, `"nope"`) {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
	})

	// A running signet: its admin API with a token in the state
	// directory, serving other keys for ci than the config's (as an sts
	// source's session would differ from a fresh one).
	tok, _, err := admin.LoadOrCreateToken("", state)
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	served := credentials.NewSource("ci", credentials.ProviderFunc(func(context.Context) (credentials.Credentials, error) {
		return credentials.Credentials{AccessKeyID: "ASIASERVEDBYSIGNET01", SecretAccessKey: "served-secret-value", SessionToken: "served-token", Expires: exp}, nil
	}), credentials.SourceOptions{})
	h, err := admin.New(admin.Options{Catalog: admin.Catalog{Sources: map[string]credentials.Source{"ci": served}}, Token: tok})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := admin.Listen(ctx, adminAddr, h, nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, time.Second) }()
	t.Cleanup(func() { cancel(); <-done })

	t.Run("from the running signet", func(t *testing.T) {
		code, out, stderr := runCredentialProcessCmd(t, env, "-c", cfgFile)
		if code != exitOK || out.AccessKeyID != "ASIASERVEDBYSIGNET01" || out.SecretAccessKey != "served-secret-value" ||
			out.SessionToken != "served-token" || out.Expiration != exp.Format(time.RFC3339) {
			t.Errorf("exit %d, %+v, stderr %q", code, out, stderr)
		}
	})
	t.Run("direct", func(t *testing.T) {
		code, out, _ := runCredentialProcessCmd(t, env, "-c", cfgFile, "--direct")
		if code != exitOK || out.AccessKeyID != "AKIAEXAMPLEKEY000001" {
			t.Errorf("exit %d, %+v", code, out)
		}
	})
	t.Run("refused by the running signet", func(t *testing.T) {
		// A token file from another run: the running signet says 401.
		if err := admin.WriteTokenFile(filepath.Join(state, admin.TokenFileName), strings.Repeat("x", 43)); err != nil {
			t.Fatal(err)
		}
		code, _, stderr := runCredentialProcessCmd(t, env, "-c", cfgFile)
		if code != exitFail || !strings.Contains(stderr, "401") || strings.Contains(stderr, tok) {
			t.Errorf("exit %d, stderr %q; want 1 and the 401", code, stderr)
		}
	})
	if _, err := os.Stat(filepath.Join(state, "ca.pem")); err == nil {
		t.Errorf("credential-process created the CA")
	}
}
