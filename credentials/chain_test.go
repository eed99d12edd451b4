package credentials

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// isolateAWSEnv points the SDK at files of the test's own and keeps it away
// from the machine's credentials and from instance metadata.
func isolateAWSEnv(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
		"AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	if err := os.WriteFile(filepath.Join(dir, "config"), []byte("[profile dev]\nregion = eu-west-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	creds := "[default]\naws_access_key_id = AKIADEFAULTEXAMPLE\naws_secret_access_key = default-secret\n\n" +
		"[dev]\naws_access_key_id = AKIADEVEXAMPLE0001\naws_secret_access_key = dev-secret\n"
	if err := os.WriteFile(filepath.Join(dir, "credentials"), []byte(creds), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestChain(t *testing.T) {
	isolateAWSEnv(t)
	tests := []struct {
		profile, wantKey string
	}{
		{"", "AKIADEFAULTEXAMPLE"},
		{"dev", "AKIADEVEXAMPLE0001"},
	}
	for _, tc := range tests {
		c, err := NewChain(context.Background(), ChainOptions{Profile: tc.profile})
		if err != nil {
			t.Fatalf("profile %q: %v", tc.profile, err)
		}
		got, err := c.Retrieve(context.Background())
		if err != nil {
			t.Fatalf("profile %q: %v", tc.profile, err)
		}
		if got.AccessKeyID != tc.wantKey || !strings.HasPrefix(got.Origin, "chain:") {
			t.Errorf("profile %q: got %v (origin %q), want key %s", tc.profile, got, got.Origin, tc.wantKey)
		}
	}
}

func TestChainUnknownProfileFailsAtStart(t *testing.T) {
	isolateAWSEnv(t)
	_, err := NewChain(context.Background(), ChainOptions{Profile: "nope"})
	if err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("err = %v, want an error naming the profile", err)
	}
}

func TestChainNoCredentialsIsAnError(t *testing.T) {
	dir := isolateAWSEnv(t)
	if err := os.WriteFile(filepath.Join(dir, "credentials"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := NewChain(context.Background(), ChainOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Retrieve(context.Background()); err == nil {
		t.Fatal("want an error when the chain finds no credentials")
	}
}
