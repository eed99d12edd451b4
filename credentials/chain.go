package credentials

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
)

// Chain fetches credentials the way the AWS CLI and SDKs do: environment,
// shared config and credentials files (with an optional profile), SSO, web
// identity, container and instance metadata, in the SDK's order.
type Chain struct {
	profile string
	cache   *aws.CredentialsCache
}

var _ Provider = (*Chain)(nil)

// ChainOptions configure NewChain.
type ChainOptions struct {
	// Profile selects a profile of the shared config files; "" means the
	// SDK's own choice (AWS_PROFILE, else "default").
	Profile string
}

// NewChain resolves the SDK's default chain once, so that a profile that
// does not exist is an error at start rather than on the first request.
// Fetching the keys themselves waits until the Source asks.
func NewChain(ctx context.Context, opts ChainOptions) (*Chain, error) {
	var loadOpts []func(*config.LoadOptions) error
	if opts.Profile != "" {
		loadOpts = append(loadOpts, config.WithSharedConfigProfile(opts.Profile))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("chain: load AWS config (profile %q): %w", opts.Profile, err)
	}
	cache, ok := cfg.Credentials.(*aws.CredentialsCache)
	if !ok {
		cache = aws.NewCredentialsCache(cfg.Credentials)
	}
	return &Chain{profile: opts.Profile, cache: cache}, nil
}

// Retrieve fetches fresh keys. The SDK keeps its own cache; it is
// invalidated first because the Source, not the SDK, decides when keys are
// old enough to replace, and it does so before they expire.
func (c *Chain) Retrieve(ctx context.Context) (Credentials, error) {
	c.cache.Invalidate()
	v, err := c.cache.Retrieve(ctx)
	if err != nil {
		return Credentials{}, fmt.Errorf("chain: retrieve credentials (profile %q): %w", c.profile, err)
	}
	creds := Credentials{
		AccessKeyID:     v.AccessKeyID,
		SecretAccessKey: v.SecretAccessKey,
		SessionToken:    v.SessionToken,
		Origin:          "chain:" + v.Source,
	}
	if v.CanExpire {
		creds.Expires = v.Expires
	}
	return creds, nil
}
