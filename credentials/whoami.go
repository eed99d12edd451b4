package credentials

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// Identity is whom AWS takes a set of keys for.
type Identity struct {
	Account string
	ARN     string
	UserID  string
}

// WhoamiOptions say which STS endpoint answers.
type WhoamiOptions struct {
	// Region picks the regional STS endpoint; "" is us-east-1.
	Region string
	// Endpoint overrides the endpoint URL (tests, VPC endpoints).
	Endpoint string
	// RootCAs verifies STS's certificate; nil means the system roots.
	RootCAs *x509.CertPool
}

// Whoami asks STS GetCallerIdentity with the request signed by creds
// themselves. For an sts source that is the assumed role, not the keys
// that called AssumeRole: the identity signet's requests really carry.
func Whoami(ctx context.Context, creds Credentials, opts WhoamiOptions) (Identity, error) {
	if creds.AccessKeyID == "" || creds.SecretAccessKey == "" {
		return Identity{}, errors.New("whoami: no credentials")
	}
	region := opts.Region
	if region == "" {
		region = "us-east-1"
	}
	client := sts.New(sts.Options{
		Region: region,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: creds.AccessKeyID, SecretAccessKey: creds.SecretAccessKey, SessionToken: creds.SessionToken}, nil
		}),
		HTTPClient: stsHTTPClient(opts.RootCAs),
		Retryer:    retry.NewStandard(func(o *retry.StandardOptions) { o.MaxAttempts = stsAttempts }),
	}, func(o *sts.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
	})
	out, err := client.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return Identity{}, fmt.Errorf("whoami: get caller identity for %s: %w", RedactKeyID(creds.AccessKeyID), err)
	}
	return Identity{Account: aws.ToString(out.Account), ARN: aws.ToString(out.Arn), UserID: aws.ToString(out.UserId)}, nil
}
