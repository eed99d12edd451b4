package credentials

import (
	"context"
	"errors"
)

// Static is a Provider of fixed keys from the config file.
type Static struct {
	creds Credentials
}

var _ Provider = (*Static)(nil)

// NewStatic returns a Provider that always hands out the same keys.
func NewStatic(accessKeyID, secretAccessKey, sessionToken string) (*Static, error) {
	if accessKeyID == "" || secretAccessKey == "" {
		return nil, errors.New("static: access_key_id and secret_access_key are both required")
	}
	return &Static{creds: Credentials{
		AccessKeyID:     accessKeyID,
		SecretAccessKey: secretAccessKey,
		SessionToken:    sessionToken,
		Origin:          "static",
	}}, nil
}

// Retrieve returns the configured keys.
func (s *Static) Retrieve(context.Context) (Credentials, error) { return s.creds, nil }
