// Command s3client uploads one object with minio-go, a real S3 SDK, and
// reads it back, for the e2e tests of signet's aws-chunked re-signing.
// Over plain HTTP minio-go streams a PUT as signed aws-chunked
// (STREAMING-AWS4-HMAC-SHA256-PAYLOAD, 64 KiB chunks), which aws-sdk-go-v2
// never does. It runs as its own module so that minio-go stays out of
// signet's go.mod.
//
// It prints one JSON object on stdout: what it sent for the PUT (headers
// and the first chunk header line), the sha256 of the bytes it uploaded and
// of those it read back, or an error.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

type sent struct {
	Method           string            `json:"method"`
	Path             string            `json:"path"`
	Headers          map[string]string `json:"headers"`
	KeyID            string            `json:"key_id"`
	ContentLength    int64             `json:"content_length"`
	FirstChunkHeader string            `json:"first_chunk_header"`
}

type report struct {
	Put       *sent  `json:"put,omitempty"`
	PutSHA256 string `json:"put_sha256,omitempty"`
	GetSHA256 string `json:"get_sha256,omitempty"`
	GetSize   int64  `json:"get_size,omitempty"`
	Error     string `json:"error,omitempty"`
}

// recorder notes the PUT as it leaves the client.
type recorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	put  *sent
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPut && req.Body != nil {
		s := &sent{Method: req.Method, Path: req.URL.Path, ContentLength: req.ContentLength, Headers: map[string]string{}}
		for _, h := range []string{"X-Amz-Content-Sha256", "Content-Encoding", "X-Amz-Decoded-Content-Length", "X-Amz-Trailer"} {
			s.Headers[h] = req.Header.Get(h)
		}
		// The key id only: a signature, even a placeholder one, is not
		// printed.
		_, cred, _ := strings.Cut(req.Header.Get("Authorization"), "Credential=")
		s.KeyID, _, _ = strings.Cut(cred, "/")
		req.Body = &peekBody{ReadCloser: req.Body, s: s}
		r.mu.Lock()
		r.put = s
		r.mu.Unlock()
	}
	return r.next.RoundTrip(req)
}

// peekBody keeps the first line of the body: the first chunk header.
type peekBody struct {
	io.ReadCloser
	s    *sent
	head []byte
}

func (p *peekBody) Read(b []byte) (int, error) {
	n, err := p.ReadCloser.Read(b)
	if len(p.head) < 200 {
		p.head = append(p.head, b[:min(n, 200-len(p.head))]...)
		if i := bytes.Index(p.head, []byte("\r\n")); i >= 0 {
			p.s.FirstChunkHeader = string(p.head[:i])
		}
	}
	return n, err
}

// gen yields n deterministic bytes.
type gen struct {
	x    uint32
	n, i int64
}

func (g *gen) Read(p []byte) (int, error) {
	if g.i >= g.n {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), g.n-g.i)]
	for k := range p {
		g.x ^= g.x << 13
		g.x ^= g.x >> 17
		g.x ^= g.x << 5
		p[k] = byte(g.x)
	}
	g.i += int64(len(p))
	return len(p), nil
}

func main() {
	endpoint := flag.String("endpoint", "", "S3 endpoint host[:port], plain HTTP")
	proxy := flag.String("proxy", "", "HTTP proxy URL (signet's forward proxy)")
	bucket := flag.String("bucket", "", "bucket (created if missing)")
	key := flag.String("key", "", "object key")
	size := flag.Int64("size", 0, "object size in bytes")
	access := flag.String("access-key", "", "access key id")
	secret := flag.String("secret-key", "", "secret access key")
	trailer := flag.Bool("trailer", false, "send a CRC32C checksum as a signed trailer (STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER)")
	flag.Parse()

	rep := run(*endpoint, *proxy, *bucket, *key, *size, *access, *secret, *trailer)
	_ = json.NewEncoder(os.Stdout).Encode(rep)
	if rep.Error != "" {
		os.Exit(1)
	}
}

func run(endpoint, proxy, bucket, key string, size int64, access, secret string, trailer bool) report {
	var rep report
	fail := func(err error) report { rep.Error = err.Error(); return rep }
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	if proxy != "" {
		u, err := url.Parse(proxy)
		if err != nil {
			return fail(err)
		}
		tr.Proxy = http.ProxyURL(u)
	}
	rec := &recorder{next: tr}
	c, err := minio.New(endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(access, secret, ""),
		Secure:       false,
		Transport:    rec,
		Region:       "us-east-1",
		BucketLookup: minio.BucketLookupPath,
		// With trailing headers, a checksum goes after the last chunk.
		TrailingHeaders: trailer,
		// One attempt: a failure shows as it is.
		MaxRetries: 1,
	})
	if err != nil {
		return fail(err)
	}
	// For AWS hosts minio-go picks the dual-stack name by default; the
	// tests route s3.us-east-1.amazonaws.com only.
	c.SetS3EnableDualstack(false)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if ok, err := c.BucketExists(ctx, bucket); err != nil {
		return fail(fmt.Errorf("bucket exists: %w", err))
	} else if !ok {
		if err := c.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: "us-east-1"}); err != nil {
			return fail(fmt.Errorf("make bucket: %w", err))
		}
	}
	h := sha256.New()
	body := io.TeeReader(&gen{x: 2463534242, n: size}, h)
	opts := minio.PutObjectOptions{ContentType: "application/octet-stream"}
	if trailer {
		opts.Checksum = minio.ChecksumCRC32C
	}
	if _, err := c.PutObject(ctx, bucket, key, body, size, opts); err != nil {
		return fail(fmt.Errorf("put object: %w", err))
	}
	rec.mu.Lock()
	rep.Put = rec.put
	rec.mu.Unlock()
	rep.PutSHA256 = hex.EncodeToString(h.Sum(nil))
	obj, err := c.GetObject(ctx, bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return fail(fmt.Errorf("get object: %w", err))
	}
	defer obj.Close()
	h.Reset()
	n, err := io.Copy(h, obj)
	if err != nil {
		return fail(fmt.Errorf("get object: %w", err))
	}
	rep.GetSize = n
	rep.GetSHA256 = hex.EncodeToString(h.Sum(nil))
	return rep
}
