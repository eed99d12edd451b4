package admin_test

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	"github.com/aws/aws-sdk-go-v2/credentials/endpointcreds"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"

	"github.com/signet-proxy/signet/credentials"
	"github.com/signet-proxy/signet/internal/ststest"
	"github.com/signet-proxy/signet/proxy/admin"
)

// serve runs h on a real loopback listener until the test ends.
func serve(t *testing.T, h http.Handler) *admin.Server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := admin.Listen(ctx, "127.0.0.1:0", h, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return srv
}

// isolate clears every variable through which the SDK's default chain
// could find credentials other than the container endpoint.
func isolate(t *testing.T) {
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "",
		"AWS_PROFILE": "", "AWS_DEFAULT_PROFILE": "", "AWS_WEB_IDENTITY_TOKEN_FILE": "", "AWS_ROLE_ARN": "",
		"AWS_CONFIG_FILE": filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "", "AWS_CONTAINER_CREDENTIALS_FULL_URI": "",
		"AWS_CONTAINER_AUTHORIZATION_TOKEN": "", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": "",
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_REGION": "us-east-1",
	} {
		t.Setenv(k, v)
	}
}

// The AWS SDK's default chain, pointed at the admin listener as an ECS
// task or EKS pod would be, gets the source's current keys.
func TestSDKContainerCredentials(t *testing.T) {
	f := newFixture(t)
	srv := serve(t, f.handler(t, nil))
	tokenFile := filepath.Join(t.TempDir(), admin.TokenFileName)
	if err := admin.WriteTokenFile(tokenFile, token); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  map[string]string
	}{
		{"token", map[string]string{"AWS_CONTAINER_AUTHORIZATION_TOKEN": token}},
		{"token file", map[string]string{"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": tokenFile}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolate(t)
			t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", srv.URL()+"/v1/credentials/prod")
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			cfg, err := config.LoadDefaultConfig(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			got, err := cfg.Credentials.Retrieve(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			want, _ := f.sources["prod"].Credentials(t.Context())
			if got.AccessKeyID != want.AccessKeyID || got.SecretAccessKey != want.SecretAccessKey || got.SessionToken != want.SessionToken ||
				// The SDK's cache moves the expiry 5 minutes earlier.
				!got.CanExpire || !got.Expires.Equal(want.Expires.Add(-5*time.Minute)) || got.AccountID != "123456789012" {
				t.Errorf("SDK got %+v (expires %v), want the source's %v", redactAWS(got), got.Expires, want)
			}
		})
	}
}

func redactAWS(c aws.Credentials) string {
	return credentials.Credentials{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, SessionToken: c.SessionToken}.String()
}

// A client with a wrong or no token gets 401 and learns nothing else.
func TestSDKContainerCredentialsWrongToken(t *testing.T) {
	f := newFixture(t)
	srv := serve(t, f.handler(t, nil))
	for _, tok := range []string{"", "not-the-token-0123456789"} {
		p := endpointcreds.New(srv.URL()+"/v1/credentials/prod", func(o *endpointcreds.Options) {
			o.AuthorizationToken = tok
			o.Retryer = aws.NopRetryer{}
		})
		_, err := p.Retrieve(t.Context())
		var status interface{ HTTPStatusCode() int }
		if !errors.As(err, &status) || status.HTTPStatusCode() != 401 {
			t.Fatalf("token %q: %v", tok, err)
		}
		if !strings.Contains(err.Error(), "Unauthorized: missing or wrong authorization token") {
			t.Errorf("error: %v", err)
		}
		noSecrets(t, "error", err.Error())
	}
	noSecrets(t, "logs", f.logs.String())
}

// The SDK's instance metadata provider gets the IMDS source's keys.
func TestSDKIMDSCredentials(t *testing.T) {
	f := newFixture(t)
	srv := serve(t, f.handler(t, func(o *admin.Options) { o.IMDS = true }))
	client := imds.New(imds.Options{Endpoint: srv.URL(), ClientEnableState: imds.ClientEnabled})
	p := ec2rolecreds.New(func(o *ec2rolecreds.Options) { o.Client = client })
	got, err := p.Retrieve(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got.AccessKeyID != keyID || got.SecretAccessKey != secret || got.SessionToken != session || !got.CanExpire {
		t.Errorf("SDK got %s", redactAWS(got))
	}
	// IMDSv1 (no session token) is refused.
	req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL()+"/latest/meta-data/iam/security-credentials/prod", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("IMDSv1 request: %d", resp.StatusCode)
	}
	noSecrets(t, "logs", f.logs.String())
}

// /v1/whoami asks a (fake, strict) STS with the source's own keys.
func TestWhoamiAgainstSTS(t *testing.T) {
	f := newFixture(t)
	st := ststest.New(t, ststest.Options{})
	st.AddUser(staticKey, staticSec, "arn:aws:iam::123456789012:user/ci")
	h := f.handler(t, func(o *admin.Options) {
		o.Whoami = func(ctx context.Context, c credentials.Credentials) (credentials.Identity, error) {
			return credentials.Whoami(ctx, c, credentials.WhoamiOptions{Endpoint: st.URL(), RootCAs: st.RootCAs(), Region: st.Region()})
		}
	})
	rec := do(h, "GET", "/v1/whoami?source=ci", nil)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"arn":"arn:aws:iam::123456789012:user/ci"`) {
		t.Errorf("%d %s", rec.Code, rec.Body)
	}
	// prod's keys are unknown to this STS: its refusal comes back, redacted.
	rec = do(h, "GET", "/v1/whoami?source=prod", nil)
	if rec.Code != 502 {
		t.Errorf("%d %s", rec.Code, rec.Body)
	}
	noSecrets(t, "whoami", rec.Body.String())
}

func TestFetchCredentials(t *testing.T) {
	f := newFixture(t)
	srv := serve(t, f.handler(t, nil))
	got, err := admin.FetchCredentials(t.Context(), nil, srv.URL(), token, "prod")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := f.sources["prod"].Credentials(t.Context())
	if got.AccessKeyID != want.AccessKeyID || got.SecretAccessKey != want.SecretAccessKey || got.SessionToken != want.SessionToken ||
		!got.Expires.Equal(want.Expires) || got.Identity != roleARN {
		t.Errorf("got %v, want %v", got, want)
	}
	if got, err := admin.FetchCredentials(t.Context(), nil, srv.URL(), token, "ci"); err != nil || got.CanExpire() || got.AccessKeyID != staticKey {
		t.Errorf("static: %v %v", got, err)
	}
	for _, tt := range []struct{ tok, source, contains string }{
		{"wrong-token-0123456789", "prod", "401 Unauthorized: Unauthorized"},
		{token, "nope", "404 Not Found: NoSuchSource"},
		{token, "broken", "503 Service Unavailable: CredentialsUnavailable"},
	} {
		_, err := admin.FetchCredentials(t.Context(), nil, srv.URL(), tt.tok, tt.source)
		if err == nil || !strings.Contains(err.Error(), tt.contains) {
			t.Errorf("%s: %v, want %q", tt.source, err, tt.contains)
		}
		if err != nil {
			noSecrets(t, "error", err.Error())
		}
	}
}
