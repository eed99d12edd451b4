package signer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/signet-proxy/signet/credentials"
)

var (
	testTime  = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	testCreds = credentials.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}
	sqsScope  = Scope{"sqs", "us-east-1"}
	s3Scope   = Scope{"s3", "us-west-2"}
)

func newTestSigner(t testing.TB, mem int64) (*Signer, string) {
	dir := t.TempDir()
	return New(Options{Now: func() time.Time { return testTime }, SpoolDir: dir, SpoolMemory: mem}), dir
}

func newReq(t testing.TB, method, rawURL string, body io.Reader) *http.Request {
	t.Helper()
	r, err := http.NewRequest(method, rawURL, body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func signedHeaders(t *testing.T, r *http.Request) string {
	t.Helper()
	auth := r.Header.Get("Authorization")
	_, rest, ok := strings.Cut(auth, "SignedHeaders=")
	if !ok {
		t.Fatalf("no SignedHeaders in %q", auth)
	}
	sh, _, _ := strings.Cut(rest, ",")
	return sh
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestSignReplacesPlaceholderAuth(t *testing.T) {
	s, _ := newTestSigner(t, 0)
	r := newReq(t, "GET", "https://sqs.us-east-1.amazonaws.com/?Action=ListQueues&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=PLACEHOLDER%2F20240101%2Fus-east-1%2Fsqs%2Faws4_request&X-Amz-Date=20240101T000000Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host&x-amz-signature=deadbeef&X-Amz-Security-Token=tok", nil)
	r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=PLACEHOLDER/20240101/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=00")
	r.Header.Set("X-Amz-Date", "20000101T000000Z")
	r.Header.Set("X-Amz-Security-Token", "placeholder-token")
	r.Header["x-amz-date"] = []string{"stale"} // a non-canonical copy must not survive

	release, err := s.Sign(context.Background(), r, testCreds, Params{Scope: sqsScope})
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	auth := r.Header.Get("Authorization")
	if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240102/us-east-1/sqs/aws4_request, ") {
		t.Errorf("Authorization = %q", auth)
	}
	if got := r.Header.Values("X-Amz-Date"); len(got) != 1 || got[0] != "20240102T030405Z" {
		t.Errorf("X-Amz-Date = %q", got)
	}
	//lint:ignore SA1008 looking for the non-canonical copy is the point
	if _, ok := r.Header["x-amz-date"]; ok {
		t.Error("stale lower-case x-amz-date kept")
	}
	if r.Header.Get("X-Amz-Security-Token") != "" {
		t.Error("placeholder session token kept for long-term credentials")
	}
	if r.URL.RawQuery != "Action=ListQueues" {
		t.Errorf("query = %q, want presign params stripped", r.URL.RawQuery)
	}
	if sh := signedHeaders(t, r); sh != "host;x-amz-date" {
		t.Errorf("SignedHeaders = %q", sh)
	}
}

func TestSignSessionToken(t *testing.T) {
	s, _ := newTestSigner(t, 0)
	r := newReq(t, "GET", "https://sqs.us-east-1.amazonaws.com/", nil)
	creds := testCreds
	creds.SessionToken = "session-token"
	release, err := s.Sign(context.Background(), r, creds, Params{Scope: sqsScope})
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if r.Header.Get("X-Amz-Security-Token") != "session-token" {
		t.Errorf("token = %q", r.Header.Get("X-Amz-Security-Token"))
	}
	if sh := signedHeaders(t, r); sh != "host;x-amz-date;x-amz-security-token" {
		t.Errorf("SignedHeaders = %q", sh)
	}
}

func TestSignErrors(t *testing.T) {
	s, _ := newTestSigner(t, 0)
	tests := []struct {
		name   string
		creds  credentials.Credentials
		scope  Scope
		mode   PayloadMode
		header string
		want   error
	}{
		{"no key id", credentials.Credentials{SecretAccessKey: "x"}, sqsScope, "", "", ErrNoCredentials},
		{"no secret", credentials.Credentials{AccessKeyID: "x"}, sqsScope, "", "", ErrNoCredentials},
		{"no scope", testCreds, Scope{}, "", "", ErrUnknownScope},
		{"scope with slash", testCreds, Scope{"s3/x", "us-east-1"}, "", "", ErrUnknownScope},
		{"streaming signed, no decoded length", testCreds, s3Scope, "", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", ErrBadRequest},
		{"streaming signed trailer, no decoded length", testCreds, s3Scope, "", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", ErrBadRequest},
		{"streaming ecdsa", testCreds, s3Scope, "", "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD", ErrUnsupportedPayload},
		{"garbage hash", testCreds, s3Scope, "", "not-a-hash", ErrUnsupportedPayload},
		{"upper-case hex", testCreds, s3Scope, "", strings.ToUpper(emptySHA256), ErrUnsupportedPayload},
		{"bad mode", testCreds, s3Scope, "sometimes", "", ErrUnsupportedPayload},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newReq(t, "PUT", "https://b.s3.us-west-2.amazonaws.com/k", strings.NewReader("data"))
			if tt.header != "" {
				r.Header.Set("X-Amz-Content-Sha256", tt.header)
			}
			release, err := s.Sign(context.Background(), r, tt.creds, Params{Scope: tt.scope, Payload: tt.mode})
			if release == nil {
				t.Fatal("nil release")
			}
			release()
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	r := newReq(t, "GET", "https://sqs.us-east-1.amazonaws.com/?a=%zz", nil)
	if _, err := s.Sign(context.Background(), r, testCreds, Params{Scope: sqsScope}); !errors.Is(err, ErrBadRequest) {
		t.Errorf("malformed query: err = %v", err)
	}
}

// TestSignPathEscaping checks the canonical URI through the signature: S3
// signs the raw path as sent, other services escape it once more.
func TestSignPathEscaping(t *testing.T) {
	tests := []struct {
		scope      Scope
		path, want string
	}{
		{sqsScope, "/a%2Fb", "/a%252Fb"},
		{sqsScope, "/a/b~c", "/a/b~c"},
		{sqsScope, "/%E2%82%AC", "/%25E2%2582%25AC"},
		{s3Scope, "/a%2Fb", "/a%2Fb"},
		{s3Scope, "//double//slash", "//double//slash"},
		{s3Scope, "/%E2%82%AC%20x", "/%E2%82%AC%20x"},
		// S3 verifiers decode the path and escape it their way, so a
		// client that left sub-delimiters raw or escaped an unreserved
		// character is signed in that form, not byte for byte.
		{s3Scope, "/a%2fb+c=d", "/a%2Fb%2Bc%3Dd"},
		{s3Scope, "/x!$&'()*,;:@y", "/x%21%24%26%27%28%29%2A%2C%3B%3A%40y"},
		{s3Scope, "/tilde%7e%7E~", "/tilde~~~"},
		{s3Scope, "/bad%zz", "/bad%25zz"},
	}
	for _, tt := range tests {
		t.Run(tt.scope.Service+tt.path, func(t *testing.T) {
			if got := canonicalURIFor(t, tt.scope, tt.path, tt.want); got != tt.want {
				t.Errorf("canonical URI = %q, want %q", got, tt.want)
			}
		})
	}
}

// canonicalURIFor finds the canonical URI signet signs for path, which the
// SDK does not expose: the path itself, the path escaped once more, or want.
func canonicalURIFor(t *testing.T, scope Scope, path, want string) string {
	t.Helper()
	s, _ := newTestSigner(t, 0)
	sig := func(scope Scope, p string) string {
		r := newReq(t, "GET", "https://example.amazonaws.com/", nil)
		if err := SetRawPath(r.URL, p); err != nil {
			t.Fatal(err)
		}
		if err := s.signHTTP(context.Background(), r, testCreds, scope, emptySHA256); err != nil {
			t.Fatal(err)
		}
		return r.Header.Get("Authorization")
	}
	target := sig(scope, path)
	// Sign each candidate with S3's rule (no escaping) under the same scope:
	// the candidate whose signature matches is the canonical URI.
	for _, cand := range []string{path, strings.ReplaceAll(path, "%", "%25"), want} {
		r := newReq(t, "GET", "https://example.amazonaws.com/", nil)
		if err := SetRawPath(r.URL, cand); err != nil {
			t.Fatal(err)
		}
		if err := s.v4.SignHTTP(context.Background(), awsCreds(testCreds), r, emptySHA256, scope.Service, scope.Region, testTime, disableURIPathEscaping); err != nil {
			t.Fatal(err)
		}
		if r.Header.Get("Authorization") == target {
			return cand
		}
	}
	return "<none>"
}

func TestSignPayload(t *testing.T) {
	body := []byte("hello, signet")
	bodyHash := sha(body)
	tests := []struct {
		name       string
		scope      Scope
		scheme     string
		mode       PayloadMode
		header     string // client's X-Amz-Content-Sha256
		noBody     bool
		wantHash   string // X-Amz-Content-Sha256 sent; "" = none
		wantSpool  bool
		wantSigned string
	}{
		{"s3 https auto streams unsigned", s3Scope, "https", PayloadAuto, "", false, unsignedPayload, false, "content-length;host;x-amz-content-sha256;x-amz-date"},
		{"s3 http auto spools", s3Scope, "http", PayloadAuto, "", false, bodyHash, true, "content-length;host;x-amz-content-sha256;x-amz-date"},
		{"s3 https signed spools", s3Scope, "https", PayloadSigned, "", false, bodyHash, true, ""},
		{"s3 no body", s3Scope, "https", PayloadAuto, "", true, emptySHA256, false, "host;x-amz-content-sha256;x-amz-date"},
		{"s3 client hex trusted", s3Scope, "http", PayloadSigned, bodyHash, false, bodyHash, false, ""},
		{"s3 client unsigned kept", s3Scope, "http", PayloadAuto, unsignedPayload, false, unsignedPayload, false, ""},
		{"s3 client unsigned, route signed", s3Scope, "https", PayloadSigned, unsignedPayload, false, bodyHash, true, ""},
		{"s3 trailer kept", s3Scope, "https", PayloadSigned, streamingUnsignedTrlr, false, streamingUnsignedTrlr, false, ""},
		{"sqs auto spools, no header", sqsScope, "https", PayloadAuto, "", false, "", true, "content-length;host;x-amz-date"},
		{"sqs no body", sqsScope, "https", PayloadAuto, "", true, "", false, "host;x-amz-date"},
		{"sqs unsigned mode", sqsScope, "https", PayloadUnsigned, "", false, "", false, ""},
		{"sqs client hex kept", sqsScope, "https", PayloadAuto, bodyHash, false, bodyHash, false, "content-length;host;x-amz-content-sha256;x-amz-date"},
		{"sqs client unsigned hashed", sqsScope, "https", PayloadAuto, unsignedPayload, false, bodyHash, true, ""},
		{"sqs client unsigned, unsigned mode", sqsScope, "https", PayloadUnsigned, unsignedPayload, false, unsignedPayload, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newTestSigner(t, 0)
			var rb io.Reader
			if !tt.noBody {
				rb = bytes.NewReader(body)
			}
			r := newReq(t, "PUT", tt.scheme+"://example.amazonaws.com/k", rb)
			if !tt.noBody {
				// As the proxy passes it on: a plain reader, not one
				// http.NewRequest can snapshot.
				r.Body = io.NopCloser(bytes.NewReader(body))
				r.GetBody = nil
			}
			if tt.header != "" {
				r.Header.Set("X-Amz-Content-Sha256", tt.header)
			}
			orig := r.Body
			release, err := s.Sign(context.Background(), r, testCreds, Params{Scope: tt.scope, Payload: tt.mode})
			if err != nil {
				t.Fatal(err)
			}
			defer release()
			if got := r.Header.Get("X-Amz-Content-Sha256"); got != tt.wantHash {
				t.Errorf("X-Amz-Content-Sha256 = %q, want %q", got, tt.wantHash)
			}
			if spooled := r.Body != orig && !tt.noBody; spooled != tt.wantSpool {
				t.Errorf("spooled = %v, want %v", spooled, tt.wantSpool)
			}
			if tt.wantSigned != "" {
				if sh := signedHeaders(t, r); sh != tt.wantSigned {
					t.Errorf("SignedHeaders = %q, want %q", sh, tt.wantSigned)
				}
			}
			if tt.noBody {
				return
			}
			got, _ := io.ReadAll(r.Body)
			if !bytes.Equal(got, body) {
				t.Errorf("body = %q", got)
			}
			if tt.wantSpool {
				if r.ContentLength != int64(len(body)) || r.GetBody == nil {
					t.Errorf("ContentLength = %d, GetBody nil = %v", r.ContentLength, r.GetBody == nil)
				}
				again, _ := r.GetBody()
				if b, _ := io.ReadAll(again); !bytes.Equal(b, body) {
					t.Errorf("GetBody = %q", b)
				}
			}
		})
	}
}

// TestSignUnknownLengthUnsigned: a streamed body of unknown length must not
// sign a content-length the transport will not send. (S3 bodies of unknown
// length are spooled instead: TestSignUnknownLengthS3Spools.)
func TestSignUnknownLengthUnsigned(t *testing.T) {
	s, _ := newTestSigner(t, 0)
	r := newReq(t, "PUT", "https://sqs.us-east-1.amazonaws.com/", io.MultiReader(strings.NewReader("abc")))
	r.ContentLength = -1
	release, err := s.Sign(context.Background(), r, testCreds, Params{Scope: sqsScope, Payload: PayloadUnsigned})
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if sh := signedHeaders(t, r); strings.Contains(sh, "content-length") {
		t.Errorf("SignedHeaders = %q", sh)
	}
	if r.ContentLength != -1 {
		t.Errorf("ContentLength = %d", r.ContentLength)
	}
}

func TestSignChunkedSpoolGetsLength(t *testing.T) {
	s, _ := newTestSigner(t, 0)
	r := newReq(t, "POST", "https://sqs.us-east-1.amazonaws.com/", nil)
	r.Body = io.NopCloser(strings.NewReader("Action=ListQueues"))
	r.ContentLength = -1
	r.TransferEncoding = []string{"chunked"}
	release, err := s.Sign(context.Background(), r, testCreds, Params{Scope: sqsScope})
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if r.ContentLength != int64(len("Action=ListQueues")) || r.TransferEncoding != nil {
		t.Errorf("ContentLength = %d, TransferEncoding = %v", r.ContentLength, r.TransferEncoding)
	}
	if sh := signedHeaders(t, r); sh != "content-length;host;x-amz-date" {
		t.Errorf("SignedHeaders = %q", sh)
	}
}

func dirEntries(t *testing.T, dir string) int {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

// openSpoolFiles counts open descriptors on deleted signet temp files, which
// is how an unlinked spool shows up on Linux.
func openSpoolFiles(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	n := 0
	for _, fd := range fds {
		target, err := os.Readlink("/proc/self/fd/" + fd.Name())
		if err == nil && strings.Contains(target, "signet-body-") {
			n++
		}
	}
	return n
}

func TestSpoolMemoryAndDisk(t *testing.T) {
	small := bytes.Repeat([]byte("a"), 100)
	big := bytes.Repeat([]byte("0123456789abcdef"), 10_000) // 160 kB, several copy chunks
	for _, tt := range []struct {
		name   string
		body   []byte
		onDisk bool
	}{
		{"memory", small, false},
		{"disk", big, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, dir := newTestSigner(t, 1024)
			before := openSpoolFiles(t)
			r := newReq(t, "POST", "https://sqs.us-east-1.amazonaws.com/", nil)
			r.Body = io.NopCloser(bytes.NewReader(tt.body))
			r.ContentLength = int64(len(tt.body))
			release, err := s.Sign(context.Background(), r, testCreds, Params{Scope: sqsScope})
			if err != nil {
				t.Fatal(err)
			}
			if got := openSpoolFiles(t) - before; (got == 1) != tt.onDisk {
				t.Errorf("open spool files = %d, on disk = %v", got, tt.onDisk)
			}
			if n := dirEntries(t, dir); n != 0 {
				t.Errorf("%d directory entries left in the spool dir while in use (want unlinked)", n)
			}
			got, _ := io.ReadAll(r.Body)
			if !bytes.Equal(got, tt.body) {
				t.Errorf("body differs: %d bytes, want %d", len(got), len(tt.body))
			}
			again, _ := r.GetBody()
			if got, _ := io.ReadAll(again); !bytes.Equal(got, tt.body) {
				t.Error("GetBody differs")
			}
			release()
			release() // idempotent
			if got := openSpoolFiles(t) - before; got != 0 {
				t.Errorf("%d spool files still open after release", got)
			}
		})
	}
}

// abortingReader fails half-way, like a client that disconnects.
type abortingReader struct {
	data   []byte
	failAt int
	off    int
	onRead func(off int)
}

var errClientGone = errors.New("client went away")

func (a *abortingReader) Read(p []byte) (int, error) {
	if a.onRead != nil {
		a.onRead(a.off)
	}
	if a.off >= a.failAt {
		return 0, errClientGone
	}
	n := copy(p, a.data[a.off:min(a.failAt, a.off+1000)])
	a.off += n
	return n, nil
}

func TestSpoolCleanupOnFailure(t *testing.T) {
	data := bytes.Repeat([]byte("x"), 50_000)
	t.Run("client abort", func(t *testing.T) {
		s, dir := newTestSigner(t, 1024)
		before := openSpoolFiles(t)
		r := newReq(t, "POST", "https://sqs.us-east-1.amazonaws.com/", nil)
		r.Body = io.NopCloser(&abortingReader{data: data, failAt: 25_000})
		release, err := s.Sign(context.Background(), r, testCreds, Params{Scope: sqsScope})
		release()
		if !errors.Is(err, ErrBodyRead) || !errors.Is(err, errClientGone) {
			t.Fatalf("err = %v", err)
		}
		if n := dirEntries(t, dir); n != 0 || openSpoolFiles(t) != before {
			t.Errorf("spool left behind: %d entries", n)
		}
	})
	t.Run("context cancelled", func(t *testing.T) {
		s, dir := newTestSigner(t, 1024)
		before := openSpoolFiles(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		r := newReq(t, "POST", "https://sqs.us-east-1.amazonaws.com/", nil)
		r.Body = io.NopCloser(&abortingReader{data: data, failAt: len(data), onRead: func(off int) {
			if off >= 10_000 {
				cancel()
			}
		}})
		release, err := s.Sign(ctx, r, testCreds, Params{Scope: sqsScope})
		release()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
		if n := dirEntries(t, dir); n != 0 || openSpoolFiles(t) != before {
			t.Errorf("spool left behind: %d entries", n)
		}
	})
	t.Run("spool dir missing", func(t *testing.T) {
		s := New(Options{Now: func() time.Time { return testTime }, SpoolDir: t.TempDir() + "/missing", SpoolMemory: 10})
		r := newReq(t, "POST", "https://sqs.us-east-1.amazonaws.com/", nil)
		r.Body = io.NopCloser(bytes.NewReader(data))
		release, err := s.Sign(context.Background(), r, testCreds, Params{Scope: sqsScope})
		release()
		if !errors.Is(err, ErrSpool) {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestUnsignedHeadersMatchSDK holds unsignedHeaders to what the SDK really
// leaves out, and checks that everything else in r.Header is signed.
func TestUnsignedHeadersMatchSDK(t *testing.T) {
	s, _ := newTestSigner(t, 0)
	r := newReq(t, "GET", "https://sqs.us-east-1.amazonaws.com/", nil)
	for _, h := range unsignedHeaders {
		r.Header.Set(h.name, "v")
	}
	r.Header.Set("X-Custom", "v")
	r.Header.Set("Content-Type", "text/plain")
	release, err := s.Sign(context.Background(), r, testCreds, Params{Scope: sqsScope})
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if sh := signedHeaders(t, r); sh != "content-type;host;x-amz-date;x-custom" {
		t.Errorf("SignedHeaders = %q", sh)
	}
}

func TestSignHostWithPort(t *testing.T) {
	s, _ := newTestSigner(t, 0)
	r := newReq(t, "GET", "https://sqs.us-east-1.amazonaws.com:443/", nil)
	r.Host = "sqs.us-east-1.amazonaws.com:443"
	release, err := s.Sign(context.Background(), r, testCreds, Params{Scope: sqsScope})
	if err != nil {
		t.Fatal(err)
	}
	release()
	if r.Host != "sqs.us-east-1.amazonaws.com" {
		t.Errorf("Host = %q: the default port must not be signed, Go does not send it", r.Host)
	}
}
