// Command web-identity is a signet credential provider (and, built
// natively, an AWS credential_process helper) that exchanges an OpenID
// Connect token for role credentials with STS AssumeRoleWithWebIdentity,
// like the AWS SDKs do for a Kubernetes projected service-account token
// (IRSA) or a CI system's OIDC token.
//
// The token is read from a file (under signet: the source's `dir`,
// mounted at /config); the call is an unsigned form POST, the token being
// the credential. Settings come from flags, or from the variables the AWS
// SDKs read when a flag is not given:
//
//	-role-arn      AWS_ROLE_ARN                 the role to assume (required)
//	-token-file    AWS_WEB_IDENTITY_TOKEN_FILE  default /config/token
//	-session-name  AWS_ROLE_SESSION_NAME        default signet-web-identity-<unix time>
//	-region        AWS_REGION                   default us-east-1
//	-endpoint      AWS_ENDPOINT_URL_STS         default https://sts.REGION.amazonaws.com
//	-duration      (flag only)                  session length: 1h, or seconds (3600); default STS's (1h)
//
// Build: GOOS=wasip1 GOARCH=wasm go build -o web-identity.wasm ./extensions/web-identity
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/signet-proxy/signet/extensions/sdk"
)

func main() {
	sdk.Main(func(ctx context.Context) (sdk.Credentials, error) {
		fs := flag.NewFlagSet("web-identity", flag.ContinueOnError)
		cfg := bindFlags(fs)
		if err := sdk.ParseFlags(fs, envNames()); err != nil {
			return sdk.Credentials{}, err
		}
		return fetch(ctx, cfg, time.Now())
	})
}

// envNames are the AWS SDKs' variables for the flags.
func envNames() map[string]string {
	return map[string]string{
		"role-arn":     "AWS_ROLE_ARN",
		"token-file":   "AWS_WEB_IDENTITY_TOKEN_FILE",
		"session-name": "AWS_ROLE_SESSION_NAME",
		"region":       "AWS_REGION",
		"endpoint":     "AWS_ENDPOINT_URL_STS",
	}
}

type config struct {
	roleARN, tokenFile, sessionName, region, endpoint string
	duration                                          time.Duration
}

func bindFlags(fs *flag.FlagSet) *config {
	c := &config{}
	fs.SetOutput(io.Discard) // errors are returned, and Main prints them
	fs.StringVar(&c.roleARN, "role-arn", "", "ARN of the role to assume")
	fs.StringVar(&c.tokenFile, "token-file", sdk.DefaultDir+"/token", "file holding the OIDC token")
	fs.StringVar(&c.sessionName, "session-name", "", "role session name")
	fs.StringVar(&c.region, "region", "us-east-1", "STS region")
	fs.StringVar(&c.endpoint, "endpoint", "", "STS endpoint URL")
	fs.Var((*seconds)(&c.duration), "duration", "session duration: a Go duration (1h) or seconds (3600)")
	return c
}

func fetch(ctx context.Context, cfg *config, now time.Time) (sdk.Credentials, error) {
	if cfg.roleARN == "" {
		return sdk.Credentials{}, fmt.Errorf("no role: set -role-arn or AWS_ROLE_ARN")
	}
	raw, err := sdk.ReadFile(cfg.tokenFile)
	if err != nil {
		return sdk.Credentials{}, err
	}
	token := strings.TrimSpace(string(raw))
	if token == "" {
		return sdk.Credentials{}, fmt.Errorf("token file %s is empty", cfg.tokenFile)
	}
	req, err := buildRequest(cfg, token, now)
	if err != nil {
		return sdk.Credentials{}, err
	}
	resp, err := sdk.Fetch(ctx, req)
	if err != nil {
		return sdk.Credentials{}, fmt.Errorf("STS AssumeRoleWithWebIdentity: %w", err)
	}
	creds, arn, err := parseResponse(resp.StatusCode, resp.Body, token)
	if err != nil {
		return sdk.Credentials{}, err
	}
	sdk.Log(sdk.LevelInfo, "assumed %s with the token in %s, until %s", arn, cfg.tokenFile, creds.Expiration.UTC().Format(time.RFC3339))
	return creds, nil
}

// endpointOf is the regional STS endpoint, or the configured one.
func endpointOf(cfg *config) string {
	if cfg.endpoint != "" {
		return cfg.endpoint
	}
	domain := "amazonaws.com"
	if strings.HasPrefix(cfg.region, "cn-") {
		domain = "amazonaws.com.cn"
	}
	return "https://sts." + cfg.region + "." + domain
}

func sessionName(cfg *config, now time.Time) string {
	if cfg.sessionName != "" {
		return cfg.sessionName
	}
	return "signet-web-identity-" + strconv.FormatInt(now.Unix(), 10)
}

// seconds is a flag value: a Go duration, or a whole number of seconds
// as STS's DurationSeconds and the AWS CLI take it.
type seconds time.Duration

func (s *seconds) String() string { return time.Duration(*s).String() }

func (s *seconds) Set(v string) error {
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		*s = seconds(time.Duration(n) * time.Second)
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("not a duration (1h) or a number of seconds (3600)")
	}
	*s = seconds(d)
	return nil
}

func durationSeconds(d time.Duration) (string, error) {
	if d == 0 {
		return "", nil
	}
	if d < 15*time.Minute || d > 12*time.Hour || d%time.Second != 0 {
		return "", fmt.Errorf("-duration %s: STS takes whole seconds from 15m to 12h", d)
	}
	return strconv.FormatInt(int64(d/time.Second), 10), nil
}
