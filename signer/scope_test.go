package signer

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestIncomingScope(t *testing.T) {
	auth := func(v string) http.Header { return http.Header{"Authorization": {v}} }
	tests := []struct {
		name  string
		h     http.Header
		query string
		want  Scope
		ok    bool
	}{
		{"header", auth("AWS4-HMAC-SHA256 Credential=AKID/20240101/eu-west-1/sqs/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc"), "", Scope{"sqs", "eu-west-1"}, true},
		{"header no spaces", auth("AWS4-HMAC-SHA256 Credential=AKID/20240101/eu-west-1/s3/aws4_request,SignedHeaders=host,Signature=abc"), "", Scope{"s3", "eu-west-1"}, true},
		{"header capitalised service", auth("AWS4-HMAC-SHA256 Credential=A/20240101/us-east-1/IoTSecuredTunneling/aws4_request, SignedHeaders=host, Signature=0"), "", Scope{"IoTSecuredTunneling", "us-east-1"}, true},
		{"query", nil, "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20240101%2Fus-west-2%2Fs3%2Faws4_request&X-Amz-Signature=00", Scope{"s3", "us-west-2"}, true},
		{"query unescaped slashes", nil, "X-Amz-Credential=AKID/20240101/us-west-2/s3/aws4_request", Scope{"s3", "us-west-2"}, true},
		{"header beats query", auth("AWS4-HMAC-SHA256 Credential=A/20240101/eu-west-1/sqs/aws4_request"), "X-Amz-Credential=A%2F20240101%2Fus-west-2%2Fs3%2Faws4_request", Scope{"sqs", "eu-west-1"}, true},
		{"bad header falls back to query", auth("Bearer x"), "X-Amz-Credential=A%2F20240101%2Fus-west-2%2Fs3%2Faws4_request", Scope{"s3", "us-west-2"}, true},
		{"none", nil, "", Scope{}, false},
		{"sigv4a", auth("AWS4-ECDSA-P256-SHA256 Credential=A/20240101/s3/aws4_request, SignedHeaders=host, Signature=0"), "", Scope{}, false},
		{"algorithm prefix only", auth("AWS4-HMAC-SHA256Credential=A/20240101/us-east-1/s3/aws4_request"), "", Scope{}, false},
		{"short date", auth("AWS4-HMAC-SHA256 Credential=A/2024/us-east-1/s3/aws4_request"), "", Scope{}, false},
		{"wrong terminator", auth("AWS4-HMAC-SHA256 Credential=A/20240101/us-east-1/s3/aws5_request"), "", Scope{}, false},
		{"extra part", auth("AWS4-HMAC-SHA256 Credential=A/20240101/us-east-1/s3/x/aws4_request"), "", Scope{}, false},
		{"empty region", auth("AWS4-HMAC-SHA256 Credential=A/20240101//s3/aws4_request"), "", Scope{}, false},
		{"space in service", auth("AWS4-HMAC-SHA256 Credential=A/20240101/us-east-1/s 3/aws4_request"), "", Scope{}, false},
		{"two headers", http.Header{"Authorization": {"AWS4-HMAC-SHA256 Credential=A/20240101/us-east-1/s3/aws4_request", "AWS4-HMAC-SHA256 Credential=A/20240101/eu-west-1/s3/aws4_request"}}, "", Scope{}, false},
		{"two query credentials", nil, "X-Amz-Credential=A%2F20240101%2Fus-west-2%2Fs3%2Faws4_request&X-Amz-Credential=A%2F20240101%2Fus-east-1%2Fs3%2Faws4_request", Scope{}, false},
		{"bad query escape", nil, "X-Amz-Credential=%zz", Scope{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.h
			if h == nil {
				h = http.Header{}
			}
			got, ok := IncomingScope(h, tt.query)
			if got != tt.want || ok != tt.ok {
				t.Errorf("IncomingScope = %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestResolveScope(t *testing.T) {
	placeholder := http.Header{"Authorization": {"AWS4-HMAC-SHA256 Credential=A/20240101/eu-west-1/execute-api/aws4_request, SignedHeaders=host, Signature=0"}}
	tests := []struct {
		name     string
		host     string
		h        http.Header
		override Scope
		want     Scope
		errWords []string
	}{
		{"lookup", "sqs.us-east-1.amazonaws.com", http.Header{}, Scope{}, Scope{"sqs", "us-east-1"}, nil},
		{"incoming beats lookup", "sqs.us-east-1.amazonaws.com", placeholder, Scope{}, Scope{"execute-api", "eu-west-1"}, nil},
		{"override per field", "sqs.us-east-1.amazonaws.com", placeholder, Scope{Region: "ap-south-1"}, Scope{"execute-api", "ap-south-1"}, nil},
		{"override service, lookup region", "sqs.us-east-1.amazonaws.com", http.Header{}, Scope{Service: "custom"}, Scope{"custom", "us-east-1"}, nil},
		{"full override, unknown host", "api.example.com", http.Header{}, Scope{"execute-api", "us-east-1"}, Scope{"execute-api", "us-east-1"}, nil},
		{"unknown host", "api.example.com", http.Header{}, Scope{}, Scope{}, []string{"api.example.com", "`service`", "`region`"}},
		{"unknown host, region only", "api.example.com", http.Header{}, Scope{Region: "us-east-1"}, Scope{}, []string{"api.example.com", "`service`"}},
		{"unknown host, service only", "api.example.com", http.Header{}, Scope{Service: "es"}, Scope{}, []string{"api.example.com", "`region`"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ResolveScope(tt.host, tt.h, "", tt.override)
			if tt.errWords != nil {
				if !errors.Is(err, ErrUnknownScope) {
					t.Fatalf("err = %v", err)
				}
				for _, w := range tt.errWords {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %s", err, w)
					}
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("ResolveScope = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}
