package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/signet-proxy/signet/credentials"
)

// maxAnswer bounds what FetchCredentials reads of an answer.
const maxAnswer = 64 << 10

// FetchCredentials asks a running signet's credential endpoint for the
// current keys of source: what `signet credential-process` prints when
// signet is running. baseURL is the admin listener ("http://127.0.0.1:8081");
// client nil means a client with a 30s timeout. Errors never hold the
// token or a key.
func FetchCredentials(ctx context.Context, client *http.Client, baseURL, token, source string) (credentials.Credentials, error) {
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	u, err := url.JoinPath(baseURL, "v1", "credentials", source)
	if err != nil {
		return credentials.Credentials{}, fmt.Errorf("admin: credentials of %s: bad admin URL: %w", source, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return credentials.Credentials{}, fmt.Errorf("admin: credentials of %s: %w", source, err)
	}
	req.Header.Set("Authorization", token)
	resp, err := client.Do(req)
	if err != nil {
		return credentials.Credentials{}, fmt.Errorf("admin: credentials of %s: %w", source, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return credentials.Credentials{}, fmt.Errorf("admin: credentials of %s: read answer: %w", source, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e apiError
		if json.Unmarshal(body, &e) != nil || e.Code == "" {
			e.Code = "not an admin API error"
		}
		return credentials.Credentials{}, fmt.Errorf("admin: credentials of %s: %s: %s: %s", source, resp.Status, e.Code, redact(e.Message))
	}
	var out ecsCredentials
	if err := json.Unmarshal(body, &out); err != nil {
		// The error of a half-read document could quote a key.
		return credentials.Credentials{}, fmt.Errorf("admin: credentials of %s: the answer is not credentials JSON", source)
	}
	if out.AccessKeyID == "" || out.SecretAccessKey == "" {
		return credentials.Credentials{}, errors.New("admin: credentials of " + source + ": the answer has no keys")
	}
	c := credentials.Credentials{
		AccessKeyID:     out.AccessKeyID,
		SecretAccessKey: out.SecretAccessKey,
		SessionToken:    out.Token,
		Identity:        out.RoleArn,
		Origin:          "signet admin " + source,
	}
	if out.Expiration != "" {
		if c.Expires, err = time.Parse(time.RFC3339, out.Expiration); err != nil {
			return credentials.Credentials{}, fmt.Errorf("admin: credentials of %s: Expiration is not an RFC 3339 time", source)
		}
	}
	return c, nil
}
