package signer

import (
	"context"
	"net/http"
	"net/url"
	"testing"
)

func BenchmarkSign(b *testing.B) {
	for _, bc := range []struct {
		name  string
		url   string
		scope Scope
	}{
		{"s3", "https://my-bucket.s3.us-west-2.amazonaws.com/some/key.txt?versionId=3", s3Scope},
		{"sqs", "https://sqs.us-east-1.amazonaws.com/?Action=ListQueues&Version=2012-11-05", sqsScope},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s, _ := newTestSigner(b, 0)
			u, _ := url.Parse(bc.url)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				uc := *u
				r := &http.Request{Method: "GET", URL: &uc, Host: uc.Host, Header: http.Header{
					"Authorization": {"AWS4-HMAC-SHA256 Credential=A/20240101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0"},
					"User-Agent":    {"bench"},
				}, Body: http.NoBody}
				release, err := s.Sign(ctx, r, testCreds, Params{Scope: bc.scope, Payload: PayloadAuto})
				if err != nil {
					b.Fatal(err)
				}
				release()
			}
		})
	}
}

func BenchmarkLookup(b *testing.B) {
	for _, h := range []string{"sqs.us-east-1.amazonaws.com", "my.bucket.s3.us-west-2.amazonaws.com", "Unknown.Example.com:443"} {
		b.Run(h, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Lookup(h)
			}
		})
	}
}
