//go:build linux

package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awscreds "github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Placeholder keys, as an SDK app pointed at signet holds them: versitygw
// knows only testAccessKey, so an upload can only succeed if signet
// re-signed every part of it that these keys signed.
const (
	placeholderKey    = "AKIDPLACEHOLDER00000"
	placeholderSecret = "placeholder/secret/not+known+upstream"
)

// Sizes of the multi-chunk uploads: a bit over 5 MiB, and an odd size that
// ends in a short chunk.
var chunkedSizes = []int{5<<20 + 12345, 1234567}

// ----------------------------------------------------- recording upstream

// upstreamPut is what a PUT looked like when it reached the upstream, after
// signet.
type upstreamPut struct {
	Path          string
	Header        http.Header
	ContentLength int64
	Chunked       bool // Transfer-Encoding: chunked
	head, tail    []byte
}

// FirstLine is the first line of the body: the first chunk header of an
// aws-chunked body.
func (p *upstreamPut) FirstLine() string {
	line, _, _ := bytes.Cut(p.head, []byte("\r\n"))
	return string(line)
}

// recordingUpstream sits between signet and versitygw, passes every request
// through unchanged and notes each PUT's headers and the ends of its body:
// what the upstream received is then a fact, not an inference.
type recordingUpstream struct {
	srv  *httptest.Server
	mu   sync.Mutex
	puts []*upstreamPut
}

func startRecordingUpstream(t testing.TB, target string) *recordingUpstream {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recordingUpstream{}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = pr.In.Host // the signed Host
		},
		Transport: &http.Transport{Proxy: nil},
	}
	rec.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && r.ContentLength != 0 {
			p := &upstreamPut{Path: r.URL.EscapedPath(), Header: r.Header.Clone(), ContentLength: r.ContentLength,
				Chunked: len(r.TransferEncoding) > 0 && r.TransferEncoding[0] == "chunked"}
			r.Body = &bodyEnds{ReadCloser: r.Body, p: p, mu: &rec.mu}
			rec.mu.Lock()
			rec.puts = append(rec.puts, p)
			rec.mu.Unlock()
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(rec.srv.Close)
	return rec
}

func (rec *recordingUpstream) Addr() string { return strings.TrimPrefix(rec.srv.URL, "http://") }

// lastPut returns the last PUT to path.
func (rec *recordingUpstream) lastPut(t testing.TB, path string) *upstreamPut {
	t.Helper()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for i := len(rec.puts) - 1; i >= 0; i-- {
		if rec.puts[i].Path == path {
			p := *rec.puts[i]
			p.head = bytes.Clone(p.head)
			p.tail = bytes.Clone(p.tail)
			return &p
		}
	}
	t.Fatalf("no PUT %s reached the upstream", path)
	return nil
}

// bodyEnds keeps the first 256 and the last 512 bytes of a body.
type bodyEnds struct {
	io.ReadCloser
	p  *upstreamPut
	mu *sync.Mutex
}

func (b *bodyEnds) Read(buf []byte) (int, error) {
	n, err := b.ReadCloser.Read(buf)
	b.mu.Lock()
	if len(b.p.head) < 256 {
		b.p.head = append(b.p.head, buf[:min(n, 256-len(b.p.head))]...)
	}
	b.p.tail = append(b.p.tail, buf[:n]...)
	if len(b.p.tail) > 512 {
		b.p.tail = append(b.p.tail[:0], b.p.tail[len(b.p.tail)-512:]...)
	}
	b.mu.Unlock()
	return n, err
}

// chunkedSetup is versitygw behind the recorder behind signet, whose
// forward proxy signs s3.us-east-1.amazonaws.com (also intercepted over
// https) and whose one reverse listener signs everything for versitygw.
type chunkedSetup struct {
	rec   *recordingUpstream
	s     *signetProc
	caPEM []byte // signet's CA, for intercepted https
}

func newChunkedSetup(t *testing.T, routeExtra string) *chunkedSetup {
	t.Helper()
	v := startVersity(t)
	rec := startRecordingUpstream(t, v.URL())
	state := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	s := startSignet(t, s3Config(&versity{Addr: rec.Addr()}, testSecretKey, routeExtra, "state_dir: "+state+"\n"), 1)
	ca, err := os.ReadFile(filepath.Join(state, "ca.pem"))
	if err != nil {
		t.Fatalf("signet's CA: %v", err)
	}
	return &chunkedSetup{rec: rec, s: s, caPEM: ca}
}

// ------------------------------------------- the SDK's unsigned trailer

// sentPut is what the SDK put on the wire for a PUT, seen below the SDK.
type sentPut struct {
	contentSHA256, contentEncoding string
	contentLength                  int64
}

type sdkCapture struct {
	next http.RoundTripper
	mu   sync.Mutex
	puts map[string]sentPut
}

func (c *sdkCapture) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPut {
		c.mu.Lock()
		c.puts[r.URL.EscapedPath()] = sentPut{r.Header.Get("X-Amz-Content-Sha256"), r.Header.Get("Content-Encoding"), r.ContentLength}
		c.mu.Unlock()
	}
	return c.next.RoundTrip(r)
}

func (c *sdkCapture) sent(t testing.TB, path string) sentPut {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.puts[path]
	if !ok {
		t.Fatalf("the SDK sent no PUT %s", path)
	}
	return p
}

// newS3SDKClient is aws-sdk-go-v2's S3 client with placeholder keys, going
// through signet's forward proxy: for https endpoints by CONNECT (signet
// intercepts with its CA), for http ones as a plain proxy request. No
// retries: a failure shows as it is.
func newS3SDKClient(t testing.TB, cs *chunkedSetup, endpoint string, opts ...func(*s3.Options)) (*s3.Client, *sdkCapture) {
	t.Helper()
	proxy, _ := url.Parse(cs.s.ProxyURL())
	tr := &http.Transport{Proxy: http.ProxyURL(proxy), TLSClientConfig: tlsConfigFor(t, cs.caPEM)}
	capture := &sdkCapture{next: tr, puts: map[string]sentPut{}}
	cfg := aws.Config{
		Region:      testRegion,
		Credentials: awscreds.NewStaticCredentialsProvider(placeholderKey, placeholderSecret, ""),
		HTTPClient:  &http.Client{Transport: capture, Timeout: 2 * time.Minute},
		Retryer:     func() aws.Retryer { return aws.NopRetryer{} },
	}
	c := s3.NewFromConfig(cfg, append([]func(*s3.Options){func(o *s3.Options) {
		o.UsePathStyle = true
		o.BaseEndpoint = aws.String(endpoint)
	}}, opts...)...)
	return c, capture
}

func crc32Base64(b []byte) string {
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], crc32.ChecksumIEEE(b))
	return base64.StdEncoding.EncodeToString(sum[:])
}

func testData(n int, seed byte) []byte {
	b := make([]byte, n)
	g := newGenReader(int64(n))
	io.ReadFull(g, b)
	for i := range b {
		b[i] ^= seed
	}
	return b
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestChunkedSDKForms: aws-sdk-go-v2's S3 client, with placeholder keys and
// signet as its proxy, uploads multi-chunk objects in the payload form each
// setting gives, and versitygw verifies what signet made of them. Read from
// its source (service/internal/checksum, v1.11.13): the SDK streams
// aws-chunked only over https, and only unsigned
// (STREAMING-UNSIGNED-PAYLOAD-TRAILER), whenever a checksum is calculated
// (RequestChecksumCalculation when_supported, the default, or an explicit
// ChecksumAlgorithm); over plain http it hashes the whole body and sends
// the checksum as a header. It never sends signed chunks
// (STREAMING-AWS4-HMAC-SHA256-PAYLOAD): TestChunkedSignedMinio covers
// those with minio-go.
func TestChunkedSDKForms(t *testing.T) {
	cs := newChunkedSetup(t, "")
	ctx := context.Background()
	tests := []struct {
		name       string
		endpoint   string
		algo       types.ChecksumAlgorithm
		calc       aws.RequestChecksumCalculation
		wantSHA256 string // X-Amz-Content-Sha256 the SDK sends and the upstream gets; "hex" = a digest
		wantCE     string
	}{
		{"https, CRC32", "https://" + s3Host, types.ChecksumAlgorithmCrc32, aws.RequestChecksumCalculationWhenSupported, "STREAMING-UNSIGNED-PAYLOAD-TRAILER", "aws-chunked"},
		{"https, default checksum", "https://" + s3Host, "", aws.RequestChecksumCalculationWhenSupported, "STREAMING-UNSIGNED-PAYLOAD-TRAILER", "aws-chunked"},
		{"https, checksum when required", "https://" + s3Host, "", aws.RequestChecksumCalculationWhenRequired, "UNSIGNED-PAYLOAD", ""},
		{"http, CRC32", "http://" + s3Host, types.ChecksumAlgorithmCrc32, aws.RequestChecksumCalculationWhenSupported, "hex", ""},
	}
	bucket := "sdk-forms"
	c, _ := newS3SDKClient(t, cs, "https://"+s3Host)
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, capture := newS3SDKClient(t, cs, tt.endpoint, func(o *s3.Options) { o.RequestChecksumCalculation = tt.calc })
			for j, size := range chunkedSizes {
				data := testData(size, byte(i*16+j))
				key := fmt.Sprintf("obj-%d-%d", i, size)
				path := "/" + bucket + "/" + key
				in := &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(data),
					ContentLength: aws.Int64(int64(size)), ChecksumAlgorithm: tt.algo}
				if _, err := c.PutObject(ctx, in); err != nil {
					t.Fatalf("PutObject %d bytes: %v", size, err)
				}
				sent, got := capture.sent(t, path), cs.rec.lastPut(t, path)
				checkForm(t, sent, got, tt.wantSHA256, tt.wantCE)
				if tt.wantCE == "aws-chunked" {
					if d := got.Header.Get("X-Amz-Decoded-Content-Length"); d != strconv.Itoa(size) {
						t.Errorf("upstream X-Amz-Decoded-Content-Length %q, want %d", d, size)
					}
					if !bytes.Contains(got.tail, []byte("\r\nx-amz-checksum-crc32:"+crc32Base64(data)+"\r\n")) {
						t.Errorf("upstream body does not end with the CRC32 trailer: %q", got.tail)
					}
				}

				// Read back through signet; the SDK checks the stored
				// CRC32 against the body, and so does the sha256 here.
				out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), ChecksumMode: types.ChecksumModeEnabled})
				if err != nil {
					t.Fatalf("GetObject: %v", err)
				}
				back, err := io.ReadAll(out.Body)
				out.Body.Close()
				if err != nil {
					t.Fatalf("GetObject body: %v", err)
				}
				if sha256Hex(back) != sha256Hex(data) {
					t.Errorf("read back %d bytes that differ from the %d uploaded", len(back), len(data))
				}
				if tt.algo != "" || tt.calc == aws.RequestChecksumCalculationWhenSupported {
					if got := aws.ToString(out.ChecksumCRC32); got != crc32Base64(data) {
						t.Errorf("versitygw stored CRC32 %q, want %q", got, crc32Base64(data))
					}
				}
				if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}); err != nil {
					t.Errorf("DeleteObject: %v", err)
				}
			}
		})
	}
	if _, err := c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Errorf("delete bucket: %v", err)
	}
}

// checkForm: the client sent the payload form wanted, the upstream got the
// same form and the same framed length, signed with the real key.
func checkForm(t *testing.T, sent sentPut, got *upstreamPut, wantSHA256, wantCE string) {
	t.Helper()
	for who, v := range map[string]string{"the client sent": sent.contentSHA256, "the upstream got": got.Header.Get("X-Amz-Content-Sha256")} {
		if ok := v == wantSHA256 || (wantSHA256 == "hex" && len(v) == 64); !ok {
			t.Errorf("%s X-Amz-Content-Sha256 %q, want %q", who, v, wantSHA256)
		}
	}
	if got.Header.Get("X-Amz-Content-Sha256") != sent.contentSHA256 {
		t.Errorf("X-Amz-Content-Sha256: client %q, upstream %q", sent.contentSHA256, got.Header.Get("X-Amz-Content-Sha256"))
	}
	if ce := got.Header.Get("Content-Encoding"); ce != wantCE || sent.contentEncoding != wantCE {
		t.Errorf("Content-Encoding: client %q, upstream %q, want %q", sent.contentEncoding, ce, wantCE)
	}
	if got.ContentLength != sent.contentLength || got.Chunked {
		t.Errorf("Content-Length: client %d, upstream %d (chunked %v)", sent.contentLength, got.ContentLength, got.Chunked)
	}
	if !strings.Contains(got.Header.Get("Authorization"), "Credential="+testAccessKey+"/") {
		t.Errorf("upstream Authorization is not signed with the real key")
	}
	t.Logf("%s: client sent X-Amz-Content-Sha256 %s, Content-Encoding %q, Content-Length %d; upstream got %s, %q, %d, signed with the real key",
		got.Path, short(sent.contentSHA256), sent.contentEncoding, sent.contentLength,
		short(got.Header.Get("X-Amz-Content-Sha256")), got.Header.Get("Content-Encoding"), got.ContentLength)
}

// short shortens a hex digest for a log line; modes stay whole.
func short(v string) string {
	if len(v) == 64 {
		return v[:8] + "…"
	}
	return v
}

// ------------------------------------------------------- signed chunks

// buildS3Client builds testdata/s3client, a module of its own (minio-go
// stays out of signet's go.mod); the Go module proxy serves its
// dependencies the first time.
func buildS3Client(t testing.TB) string {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "s3client")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, ".")
	cmd.Dir = filepath.Join(root, "e2e", "testdata", "s3client")
	cmd.Env = append(withoutSignetVars(os.Environ()), "GOWORK=off", "GOFLAGS=-mod=readonly")
	if b, err := cmd.CombinedOutput(); err != nil {
		missing(t, "go build e2e/testdata/s3client (minio-go from the Go module proxy): %v\n%s", err, b)
	}
	return out
}

type s3clientReport struct {
	Put *struct {
		Path             string            `json:"path"`
		Headers          map[string]string `json:"headers"`
		KeyID            string            `json:"key_id"`
		ContentLength    int64             `json:"content_length"`
		FirstChunkHeader string            `json:"first_chunk_header"`
	} `json:"put"`
	PutSHA256 string `json:"put_sha256"`
	GetSHA256 string `json:"get_sha256"`
	GetSize   int64  `json:"get_size"`
	Error     string `json:"error"`
}

// TestChunkedSignedMinio: minio-go, a real S3 SDK, with placeholder keys,
// streams each PUT over plain http as signed aws-chunked
// (STREAMING-AWS4-HMAC-SHA256-PAYLOAD, 64 KiB chunks, each signed with the
// placeholder key). Through signet's forward proxy and through its reverse
// listener, versitygw must accept every re-signed chunk, and the object
// must read back byte-identical. The recorder shows the chunks arrive with
// other signatures than the client's, in the client's framing and length.
func TestChunkedSignedMinio(t *testing.T) {
	bin := buildS3Client(t)
	cs := newChunkedSetup(t, "")
	paths := []struct{ name, endpoint, proxy string }{
		{"forward proxy", s3Host, cs.s.ProxyURL()},
		{"reverse listener", cs.s.Reverse[0], ""},
	}
	for i, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			for _, size := range chunkedSizes {
				bucket, key := fmt.Sprintf("minio-%d", i), fmt.Sprintf("obj-%d", size)
				args := []string{"-endpoint", p.endpoint, "-bucket", bucket, "-key", key, "-size", strconv.Itoa(size),
					"-access-key", placeholderKey, "-secret-key", placeholderSecret}
				if p.proxy != "" {
					args = append(args, "-proxy", p.proxy)
				}
				rep := runS3Client(t, bin, args...)
				if rep.Put == nil || rep.Put.Headers["X-Amz-Content-Sha256"] != "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" || rep.Put.KeyID != placeholderKey {
					t.Fatalf("minio-go did not send a placeholder-signed STREAMING-AWS4-HMAC-SHA256-PAYLOAD PUT: %+v", rep.Put)
				}
				if rep.PutSHA256 != rep.GetSHA256 || rep.GetSize != int64(size) {
					t.Errorf("read back %d bytes, sha256 %s; uploaded %d, sha256 %s", rep.GetSize, rep.GetSHA256, size, rep.PutSHA256)
				}
				got := cs.rec.lastPut(t, rep.Put.Path)
				checkForm(t, sentPut{rep.Put.Headers["X-Amz-Content-Sha256"], rep.Put.Headers["Content-Encoding"], rep.Put.ContentLength},
					got, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "aws-chunked")
				if d := got.Header.Get("X-Amz-Decoded-Content-Length"); d != strconv.Itoa(size) {
					t.Errorf("upstream X-Amz-Decoded-Content-Length %q, want %d", d, size)
				}
				clientSize, clientSig, _ := strings.Cut(rep.Put.FirstChunkHeader, ";chunk-signature=")
				upSize, upSig, _ := strings.Cut(got.FirstLine(), ";chunk-signature=")
				if clientSize != "10000" || upSize != clientSize || len(upSig) != 64 || upSig == clientSig {
					t.Errorf("first chunk: client sent size %q, upstream got size %q with a new signature: %v", clientSize, upSize, upSig != clientSig)
				}
			}
		})
	}
}

func runS3Client(t *testing.T, bin string, args ...string) s3clientReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = baseEnv(t.TempDir())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var rep s3clientReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("s3client %q: %v; stdout %q, stderr %s", args, runErr, stdout.String(), stderr.String())
	}
	if runErr != nil || rep.Error != "" {
		t.Fatalf("s3client: %v: %s\nstderr: %s", runErr, rep.Error, stderr.String())
	}
	return rep
}

// frameSigned is a signed aws-chunked body as AWS documents it, with
// placeholder signatures (signet replaces them without checking them):
// chunks of chunk bytes, the final chunk, and for trailer != "" the
// trailing line and a trailer signature line.
func frameSigned(data []byte, chunk int, trailer string) []byte {
	sig := strings.Repeat("0", 64)
	var b bytes.Buffer
	for off := 0; off < len(data); off += chunk {
		end := min(off+chunk, len(data))
		fmt.Fprintf(&b, "%x;chunk-signature=%s\r\n", end-off, sig)
		b.Write(data[off:end])
		b.WriteString("\r\n")
	}
	fmt.Fprintf(&b, "0;chunk-signature=%s\r\n", sig)
	if trailer != "" {
		b.WriteString(trailer + "\r\nx-amz-trailer-signature:" + sig + "\r\n")
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// TestChunkedSignedTrailer: signed chunks with a signed CRC32 trailer
// (STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER), framed as AWS documents it.
// No SDK available here sends this form as AWS documents it (minio-go ends
// its trailer line with LF and adds an empty line, which versitygw and
// signet both refuse), so the client is this test, with placeholder
// signatures. versitygw verifies the re-signed chunks, the trailer
// signature and the CRC32; a wrong CRC32 is refused by versitygw, not let
// through.
func TestChunkedSignedTrailer(t *testing.T) {
	cs := newChunkedSetup(t, "")
	g := newGoClient(cs.s.ProxyURL())
	bucket := "signed-trailer"
	if !want2xx(t, "create bucket", g.Do(t, "PUT", "http://"+s3Host+"/"+bucket, nil)) {
		t.FailNow()
	}
	put := func(key string, data []byte, mode, trailer string) (*http.Response, []byte, int) {
		body := frameSigned(data, 64<<10, trailer)
		req, err := http.NewRequest("PUT", "http://"+s3Host+"/"+bucket+"/"+key, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+placeholderKey+"/20240101/us-east-1/s3/aws4_request, SignedHeaders=content-encoding;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length, Signature="+strings.Repeat("0", 64))
		req.Header.Set("X-Amz-Date", "20240101T000000Z")
		req.Header.Set("X-Amz-Content-Sha256", mode)
		req.Header.Set("Content-Encoding", "aws-chunked")
		req.Header.Set("X-Amz-Decoded-Content-Length", strconv.Itoa(len(data)))
		if trailer != "" {
			req.Header.Set("X-Amz-Trailer", "x-amz-checksum-crc32")
		}
		resp, err := g.c.Do(req)
		if err != nil {
			t.Fatalf("PUT %s: %v", key, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b, len(body)
	}
	for _, size := range chunkedSizes {
		for _, mode := range []string{"STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"} {
			data := testData(size, byte(len(mode)))
			trailer := ""
			if strings.HasSuffix(mode, "-TRAILER") {
				trailer = "x-amz-checksum-crc32:" + crc32Base64(data)
			}
			key := fmt.Sprintf("obj-%d-%s", size, strings.ToLower(mode[len(mode)-7:]))
			resp, body, framed := put(key, data, mode, trailer)
			if resp.StatusCode != 200 {
				t.Fatalf("PUT %s (%s, %d bytes): %d %s\n%s", key, mode, size, resp.StatusCode, resp.Header.Get("X-Signet-Error"), body)
			}
			got := cs.rec.lastPut(t, "/"+bucket+"/"+key)
			checkForm(t, sentPut{mode, "aws-chunked", int64(framed)}, got, mode, "aws-chunked")
			if trailer != "" && !bytes.Contains(got.tail, []byte("\r\n"+trailer+"\r\nx-amz-trailer-signature:")) {
				t.Errorf("upstream body does not end with the trailer: %q", got.tail)
			}
			r := g.Do(t, "GET", "http://"+s3Host+"/"+bucket+"/"+key, nil)
			if !want2xx(t, "GET "+key, r) || sha256Hex(r.Body) != sha256Hex(data) {
				t.Errorf("GET %s: %d bytes that differ from the %d uploaded", key, len(r.Body), len(data))
			}
			want2xx(t, "DELETE "+key, g.Do(t, "DELETE", "http://"+s3Host+"/"+bucket+"/"+key, nil))
		}
	}

	// A wrong checksum in a correctly re-signed trailer: versitygw, which
	// checks it, refuses the object.
	data := testData(100000, 7)
	resp, body, _ := put("bad-crc", data, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", "x-amz-checksum-crc32:"+crc32Base64([]byte("other")))
	if resp.StatusCode != 400 || resp.Header.Get("X-Signet-Error") != "" || !bytes.Contains(body, []byte("BadDigest")) {
		t.Errorf("wrong CRC32: %d %q, want versitygw's 400 BadDigest\n%s", resp.StatusCode, resp.Header.Get("X-Signet-Error"), body)
	}
	want2xx(t, "delete bucket", g.Do(t, "DELETE", "http://"+s3Host+"/"+bucket, nil))
}

// TestChunkedMalformedRefused: a body that is not aws-chunked as its
// headers claim gets signet's 400 and nothing is stored, wherever the fault
// is. A fault after the last data chunk is found only once all the data has
// gone upstream; signet holds back the last data byte until then, because
// versitygw (like any upstream that counts data bytes) would otherwise take
// a body cut short after X-Amz-Decoded-Content-Length bytes for complete.
func TestChunkedMalformedRefused(t *testing.T) {
	cs := newChunkedSetup(t, "")
	g := newGoClient(cs.s.ProxyURL())
	bucket := "malformed"
	if !want2xx(t, "create bucket", g.Do(t, "PUT", "http://"+s3Host+"/"+bucket, nil)) {
		t.FailNow()
	}
	good := frameSigned(testData(200000, 1), 64<<10, "")
	second := bytes.Index(good[1:], []byte(";chunk-signature=")) + 1
	tests := []struct {
		name, code string
		body       []byte
	}{
		{"bare LF in the first header", "bad-request", bytes.Replace(good, []byte("\r\n"), []byte("\n"), 1)},
		{"bad second chunk size", "bad-request", append(append(bytes.Clone(good[:second-5]), 'z'), good[second-4:]...)},
		{"cut in the data", "request-body-read-failed", good[:100000]},
		{"no final chunk", "request-body-read-failed", good[:len(good)-86]},
		{"bytes after the end", "bad-request", append(bytes.Clone(good), "extra"...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("PUT", "http://"+s3Host+"/"+bucket+"/obj", bytes.NewReader(tt.body))
			req.Header.Set("X-Amz-Content-Sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
			req.Header.Set("Content-Encoding", "aws-chunked")
			req.Header.Set("X-Amz-Decoded-Content-Length", "200000")
			resp, err := g.c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 400 || resp.Header.Get("X-Signet-Error") != tt.code {
				t.Errorf("status %d, X-Signet-Error %q; want 400 %s\n%s", resp.StatusCode, resp.Header.Get("X-Signet-Error"), tt.code, b)
			}
			if r := g.Do(t, "HEAD", "http://"+s3Host+"/"+bucket+"/obj", nil); r.Status != 404 {
				t.Errorf("HEAD after a refused PUT: %d, want 404", r.Status)
				g.Do(t, "DELETE", "http://"+s3Host+"/"+bucket+"/obj", nil)
			}
		})
	}
	want2xx(t, "delete bucket", g.Do(t, "DELETE", "http://"+s3Host+"/"+bucket, nil))
}

// ------------------------------------------- Transfer-Encoding: chunked

// TestChunkedTransferEncodingCurl: `curl -T -` sends a body of unknown
// length (Transfer-Encoding: chunked). S3 refuses a PUT without
// Content-Length (411 MissingContentLength), so signet spools such a body
// to learn its length, whatever the route's payload mode: the upstream
// must get a Content-Length and no chunked framing, on a `payload:
// unsigned` route (which would otherwise stream the body as it came),
// through the forward proxy and through an intercepted https tunnel.
func TestChunkedTransferEncodingCurl(t *testing.T) {
	curl := needCommand(t, "curl")
	cs := newChunkedSetup(t, "    payload: unsigned")
	caFile := writeTestFile(t, filepath.Join(t.TempDir(), "signet-ca.pem"), cs.caPEM)
	g := newGoClient(cs.s.ProxyURL())
	bucket := "curl-te"
	if !want2xx(t, "create bucket", g.Do(t, "PUT", "http://"+s3Host+"/"+bucket, nil)) {
		t.FailNow()
	}
	for _, scheme := range []string{"http", "https"} {
		t.Run(scheme, func(t *testing.T) {
			data := testData(3<<20+333, byte(len(scheme)))
			key := "from-stdin-" + scheme
			u := scheme + "://" + s3Host + "/" + bucket + "/" + key
			cmd := exec.Command(curl, "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-x", cs.s.ProxyURL(),
				"--cacert", caFile, "-T", "-", u)
			cmd.Env = baseEnv(t.TempDir())
			cmd.Stdin = bytes.NewReader(data)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil || string(out) != "200" {
				t.Fatalf("curl -T - %s: %v, status %q\n%s", u, err, out, stderr.String())
			}
			got := cs.rec.lastPut(t, "/"+bucket+"/"+key)
			if got.Chunked || got.ContentLength != int64(len(data)) {
				t.Errorf("upstream got Content-Length %d, chunked %v; want %d, not chunked", got.ContentLength, got.Chunked, len(data))
			}
			if h := got.Header.Get("X-Amz-Content-Sha256"); h != sha256Hex(data) {
				t.Errorf("upstream X-Amz-Content-Sha256 %q, want the body's sha256 (spooled, so hashed)", h)
			}
			r := g.Do(t, "GET", "http://"+s3Host+"/"+bucket+"/"+key, nil)
			if !want2xx(t, "GET "+key, r) || sha256Hex(r.Body) != sha256Hex(data) {
				t.Errorf("GET %s: %d bytes that differ from the %d uploaded", key, len(r.Body), len(data))
			}
			want2xx(t, "DELETE "+key, g.Do(t, "DELETE", "http://"+s3Host+"/"+bucket+"/"+key, nil))
		})
	}
	want2xx(t, "delete bucket", g.Do(t, "DELETE", "http://"+s3Host+"/"+bucket, nil))
}

// tlsConfigFor trusts only caPEM (signet's CA).
func tlsConfigFor(t testing.TB, caPEM []byte) *tls.Config {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("signet's ca.pem holds no certificate")
	}
	return &tls.Config{RootCAs: pool}
}
