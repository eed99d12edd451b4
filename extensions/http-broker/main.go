// Command http-broker is a signet credential provider (and, built
// natively, an AWS credential_process helper) that fetches credentials
// from an HTTP credential broker speaking the ECS container-credentials
// format: a GET answered with JSON {AccessKeyId, SecretAccessKey, Token,
// Expiration}. That is the ECS task-role endpoint, EKS Pod Identity, and
// many in-house brokers.
//
// Settings, from flags or else the variables the AWS SDKs read:
//
//	-url           AWS_CONTAINER_CREDENTIALS_FULL_URI      the broker's URL
//	-relative-uri  AWS_CONTAINER_CREDENTIALS_RELATIVE_URI  a path on ECS's http://169.254.170.2
//	-token-file    AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE  a file holding the Authorization value
//	(no flag)      AWS_CONTAINER_AUTHORIZATION_TOKEN       the Authorization value
//
// As with ECS, the token is sent as the Authorization header's value as
// it is: a broker that wants "Bearer x" gets the token "Bearer x", one
// that wants a raw token gets "x". The token file, when set, wins over
// the variable. The token has no flag so that it never sits on a
// command line.
//
// Build: GOOS=wasip1 GOARCH=wasm go build -o http-broker.wasm ./extensions/http-broker
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/signet-proxy/signet/extensions/sdk"
)

func main() {
	sdk.Main(func(ctx context.Context) (sdk.Credentials, error) {
		fs := flag.NewFlagSet("http-broker", flag.ContinueOnError)
		cfg := bindFlags(fs)
		if err := sdk.ParseFlags(fs, envNames()); err != nil {
			return sdk.Credentials{}, err
		}
		cfg.token = os.Getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN")
		return fetch(ctx, cfg)
	})
}

func envNames() map[string]string {
	return map[string]string{
		"url":          "AWS_CONTAINER_CREDENTIALS_FULL_URI",
		"relative-uri": "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
		"token-file":   "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
	}
}

// ecsHost is where ECS serves task credentials for a relative URI.
const ecsHost = "http://169.254.170.2"

type config struct {
	url, relativeURI, tokenFile string
	token                       string
}

func bindFlags(fs *flag.FlagSet) *config {
	c := &config{}
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.url, "url", "", "the broker's URL")
	fs.StringVar(&c.relativeURI, "relative-uri", "", "a path on "+ecsHost)
	fs.StringVar(&c.tokenFile, "token-file", "", "file holding the Authorization header value")
	return c
}

func fetch(ctx context.Context, cfg *config) (sdk.Credentials, error) {
	req, err := buildRequest(cfg)
	if err != nil {
		return sdk.Credentials{}, err
	}
	resp, err := sdk.Fetch(ctx, req)
	if err != nil {
		return sdk.Credentials{}, fmt.Errorf("credential broker: %w", err)
	}
	return parseResponse(resp.StatusCode, resp.Body)
}

func buildRequest(cfg *config) (sdk.Request, error) {
	target := cfg.url
	switch {
	case target == "" && cfg.relativeURI == "":
		return sdk.Request{}, errors.New("no broker: set -url (AWS_CONTAINER_CREDENTIALS_FULL_URI) or -relative-uri (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI)")
	case target == "":
		if !strings.HasPrefix(cfg.relativeURI, "/") {
			return sdk.Request{}, fmt.Errorf("-relative-uri must start with /")
		}
		target = ecsHost + cfg.relativeURI
	}
	if u, err := url.Parse(target); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return sdk.Request{}, errors.New("the broker's URL is not an http(s) URL")
	}
	token := cfg.token
	if cfg.tokenFile != "" {
		b, err := sdk.ReadFile(cfg.tokenFile)
		if err != nil {
			return sdk.Request{}, err
		}
		token = strings.TrimSpace(string(b))
		if token == "" {
			return sdk.Request{}, fmt.Errorf("token file %s is empty", cfg.tokenFile)
		}
	}
	if strings.ContainsAny(token, "\r\n\x00") {
		return sdk.Request{}, errors.New("the authorization token holds a line break")
	}
	req := sdk.Request{URL: target, Header: [][2]string{{"Accept", "application/json"}}}
	if token != "" {
		req.Header = append(req.Header, [2]string{"Authorization", token})
	}
	return req, nil
}

// brokerCredentials is the ECS container-credentials answer.
type brokerCredentials struct {
	AccessKeyID     string `json:"AccessKeyId"`
	SecretAccessKey string `json:"SecretAccessKey"`
	Token           string `json:"Token"`
	Expiration      string `json:"Expiration"`
	// Code and Message are an error answer's.
	Code    string `json:"code"`
	Message string `json:"message"`
}

// parseResponse reads the broker's answer. An error quotes the broker's
// code and message from a JSON error answer, never the raw body.
func parseResponse(status int, body []byte) (sdk.Credentials, error) {
	var r brokerCredentials
	jsonErr := json.Unmarshal(body, &r)
	if status != 200 {
		if jsonErr == nil && (r.Code != "" || r.Message != "") {
			return sdk.Credentials{}, fmt.Errorf("credential broker: HTTP %d: %s: %s", status, r.Code, r.Message)
		}
		return sdk.Credentials{}, fmt.Errorf("credential broker: HTTP %d", status)
	}
	if jsonErr != nil {
		return sdk.Credentials{}, fmt.Errorf("credential broker: the answer is not JSON: %w", jsonErr)
	}
	if r.AccessKeyID == "" || r.SecretAccessKey == "" {
		return sdk.Credentials{}, errors.New("credential broker: the answer lacks AccessKeyId or SecretAccessKey")
	}
	c := sdk.Credentials{AccessKeyID: r.AccessKeyID, SecretAccessKey: r.SecretAccessKey, SessionToken: r.Token}
	if r.Expiration != "" {
		exp, err := time.Parse(time.RFC3339, r.Expiration)
		if err != nil {
			return sdk.Credentials{}, fmt.Errorf("credential broker: Expiration %q: %w", r.Expiration, err)
		}
		c.Expiration = exp
	}
	return c, nil
}
