// Command sdkcreds is an ordinary AWS SDK app for the e2e tests of
// signet's credential endpoints: it takes its credentials from the
// aws-sdk-go-v2 default chain (config.LoadDefaultConfig), exactly as an
// app beside signet would, so the environment decides where they come
// from: AWS_CONTAINER_CREDENTIALS_FULL_URI with
// AWS_CONTAINER_AUTHORIZATION_TOKEN(_FILE) (signet's admin listener), or a
// profile with credential_process in AWS_CONFIG_FILE (`signet
// credential-process`). It then PUTs an object and GETs it back with the
// S3 client, signing itself, straight to the endpoint given (versitygw,
// not through signet), so the keys are checked by a real verifier.
//
// It prints one JSON object: the access key ID it got (never the secret or
// the token), the SDK's name for the provider that gave them, their
// expiry, and the body read back; or an error. It exits 1 on an error.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

type report struct {
	AccessKeyID string `json:"access_key_id,omitempty"`
	Source      string `json:"source,omitempty"`
	HasToken    bool   `json:"has_token"`
	CanExpire   bool   `json:"can_expire"`
	Expires     string `json:"expires,omitempty"`
	Got         string `json:"got,omitempty"`
	Error       string `json:"error,omitempty"`
}

func main() {
	endpoint := flag.String("endpoint", "", "S3 endpoint URL (versitygw), plain HTTP")
	bucket := flag.String("bucket", "", "existing bucket")
	key := flag.String("key", "", "object key")
	body := flag.String("body", "", "object body")
	flag.Parse()

	rep := run(*endpoint, *bucket, *key, *body)
	_ = json.NewEncoder(os.Stdout).Encode(rep)
	if rep.Error != "" {
		os.Exit(1)
	}
}

func run(endpoint, bucket, key, body string) report {
	var rep report
	fail := func(what string, err error) report { rep.Error = what + ": " + err.Error(); return rep }
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// No proxy: the app talks to versitygw itself, and to the credential
	// endpoint on loopback.
	hc := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) { tr.Proxy = nil })
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("us-east-1"), config.WithHTTPClient(hc))
	if err != nil {
		return fail("load default config", err)
	}
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return fail("retrieve credentials", err)
	}
	rep.AccessKeyID, rep.Source, rep.HasToken, rep.CanExpire = creds.AccessKeyID, creds.Source, creds.SessionToken != "", creds.CanExpire
	if creds.CanExpire {
		rep.Expires = creds.Expires.UTC().Format(time.RFC3339)
	}
	c := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.UsePathStyle = true
		o.RetryMaxAttempts = 1
	})
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: bytes.NewReader([]byte(body))}); err != nil {
		return fail("put object", err)
	}
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key})
	if err != nil {
		return fail("get object", err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		return fail("get object", err)
	}
	rep.Got = string(b)
	if rep.Got != body {
		return fail("get object", fmt.Errorf("read back %d bytes, not the %d written", len(b), len(body)))
	}
	return rep
}
