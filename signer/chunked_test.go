package signer

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/signet-proxy/signet/credentials"
)

// placeholderSig is what an SDK app with dummy keys puts in every chunk
// header as far as signet is concerned: 64 hex digits it must replace.
var placeholderSig = strings.Repeat("0", 64)

// frameChunks builds a signed aws-chunked body: data cut into chunks of
// size (the last shorter), each header carrying sig(i), the final chunk, and
// for trailer != "" the trailing lines and a trailer signature line.
func frameChunks(data []byte, size int, sig func(i int) string, trailer string, trailerSig string) []byte {
	var b bytes.Buffer
	i := 0
	for off := 0; off < len(data); off += size {
		end := min(off+size, len(data))
		fmt.Fprintf(&b, "%x%s%s\r\n", end-off, chunkSigPrefix, sig(i))
		b.Write(data[off:end])
		b.WriteString("\r\n")
		i++
	}
	fmt.Fprintf(&b, "0%s%s\r\n", chunkSigPrefix, sig(i))
	if trailer != "" {
		b.WriteString(trailer)
		b.WriteString(trailerSigPrefix + trailerSig + "\r\n")
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

func constSig(string) func(int) string { return func(int) string { return placeholderSig } }

// awsExampleKey is the key, date and scope of AWS's chunked upload examples
// ("Signature Calculations for the Authorization Header: Transferring
// Payload in Multiple Chunks" and "... Including Trailing Headers").
func awsExampleKey() streamKey {
	return streamKey{
		key:   signingKey("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "20130524", "us-east-1", "s3"),
		date:  "20130524T000000Z",
		scope: "20130524/us-east-1/s3/aws4_request",
	}
}

// TestChunkResignerAWSExamples: from the seed signature AWS publishes, the
// re-signed body must carry exactly AWS's published chunk signatures and
// trailer signature, and otherwise be the client's bytes.
func TestChunkResignerAWSExamples(t *testing.T) {
	data := bytes.Repeat([]byte{'a'}, 66560)
	tests := []struct {
		name       string
		seed       string
		sigs       []string
		trailer    string
		trailerSig string
		trailers   []string
	}{
		{"signed chunks", "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9", []string{
			"ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
			"0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
			"b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
		}, "", "", nil},
		{"signed chunks and trailer", "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e", []string{
			"b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
			"1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
			"2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992",
		}, "x-amz-checksum-crc32c:sOO8/Q==\r\n", "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435",
			[]string{"x-amz-checksum-crc32c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := frameChunks(data, 65536, constSig(""), tt.trailer, placeholderSig)
			want := frameChunks(data, 65536, func(i int) string { return tt.sigs[i] }, tt.trailer, tt.trailerSig)
			if tt.trailer == "" && len(want) != 66824 {
				t.Fatalf("framed %d bytes; AWS's example has Content-Length 66824", len(want))
			}
			ch := chunkedHeaders{decodedLength: int64(len(data)), trailers: tt.trailers}
			// One byte at a time: the parser must not depend on how the
			// client's body arrives.
			src := io.NopCloser(iotest.OneByteReader(bytes.NewReader(in)))
			got, err := io.ReadAll(newChunkResigner(src, awsExampleKey(), tt.seed, ch, MaxChunkSize))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("re-signed body differs from AWS's example\n got tail %q\nwant tail %q", tail(got), tail(want))
			}
		})
	}
}

func tail(b []byte) []byte { return b[max(0, len(b)-300):] }

// TestSignChunked: Sign re-signs a placeholder-signed aws-chunked request:
// new headers, and chunk signatures that the SDK's own stream signer
// computes from the new seed; the framing and Content-Length are the
// client's.
func TestSignChunked(t *testing.T) {
	data := make([]byte, 5<<20+12345)
	for i := range data {
		data[i] = byte(i * 7)
	}
	for _, mode := range []string{streamingSigned, streamingSignedTrailer} {
		t.Run(mode, func(t *testing.T) {
			trailer := ""
			if mode == streamingSignedTrailer {
				trailer = "x-amz-checksum-crc32:AAAAAA==\r\n"
			}
			in := frameChunks(data, 1<<20, constSig(""), trailer, placeholderSig)
			s, _ := newTestSigner(t, 0)
			r := newReq(t, "PUT", "http://s3.us-west-2.amazonaws.com/b/k", nil)
			r.Body = io.NopCloser(bytes.NewReader(in))
			r.ContentLength = int64(len(in))
			r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=PLACEHOLDER/20240101/us-west-2/s3/aws4_request, SignedHeaders=host, Signature="+placeholderSig)
			r.Header.Set("X-Amz-Date", "20240101T000000Z")
			r.Header.Set("X-Amz-Content-Sha256", mode)
			r.Header.Set("Content-Encoding", "aws-chunked")
			r.Header.Set("X-Amz-Decoded-Content-Length", strconv.Itoa(len(data)))
			if trailer != "" {
				r.Header.Set("X-Amz-Trailer", "x-amz-checksum-crc32")
			}
			release, err := s.Sign(context.Background(), r, testCreds, Params{Scope: s3Scope})
			if err != nil {
				t.Fatal(err)
			}
			defer release()
			want := "content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length"
			if trailer != "" {
				want += ";x-amz-trailer"
			}
			if sh := signedHeaders(t, r); sh != want {
				t.Errorf("SignedHeaders = %q, want %q", sh, want)
			}
			if r.Header.Get("X-Amz-Content-Sha256") != mode || r.Header.Get("Content-Encoding") != "aws-chunked" {
				t.Errorf("headers changed: %v", r.Header)
			}
			if r.ContentLength != int64(len(in)) || r.GetBody != nil {
				t.Errorf("ContentLength = %d (want %d), GetBody set = %v", r.ContentLength, len(in), r.GetBody != nil)
			}
			out, err := io.ReadAll(r.Body)
			if err != nil {
				t.Fatal(err)
			}
			if len(out) != len(in) {
				t.Fatalf("re-signed body is %d bytes, client's %d", len(out), len(in))
			}
			seed, _ := authSignature(r.Header.Get("Authorization"))
			sdk := v4.NewStreamSigner(aws.Credentials{AccessKeyID: testCreds.AccessKeyID, SecretAccessKey: testCreds.SecretAccessKey},
				"s3", "us-west-2", mustHex(t, seed))
			var chunks [][]byte
			for off := 0; off < len(data); off += 1 << 20 {
				chunks = append(chunks, data[off:min(off+1<<20, len(data))])
			}
			chunks = append(chunks, nil)
			var sigs []string
			for _, c := range chunks {
				sig, err := sdk.GetSignature(context.Background(), nil, c, testTime)
				if err != nil {
					t.Fatal(err)
				}
				sigs = append(sigs, hex.EncodeToString(sig))
			}
			// The trailer signature chains from the last chunk signature;
			// the SDK has no trailer signer, so it is checked by hand.
			ts := ""
			if trailer != "" {
				k := streamKey{key: signingKey(testCreds.SecretAccessKey, "20240102", "us-west-2", "s3")}
				ts = hex.EncodeToString(hmacBytes(k.key, trailerSigAlgo+"\n20240102T030405Z\n20240102/us-west-2/s3/aws4_request\n"+
					sigs[len(sigs)-1]+"\n"+sha([]byte("x-amz-checksum-crc32:AAAAAA==\n"))))
			}
			wantBody := frameChunks(data, 1<<20, func(i int) string { return sigs[i] }, trailer, ts)
			if !bytes.Equal(out, wantBody) {
				t.Errorf("re-signed body does not match the SDK's chunk signatures\n got tail %q\nwant tail %q", tail(out), tail(wantBody))
			}
		})
	}
}

func hmacBytes(key []byte, s string) []byte { return hmacSHA256(key, s) }

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestChunkResignerRejects: the parser takes AWS's framing and nothing else.
func TestChunkResignerRejects(t *testing.T) {
	good := frameChunks([]byte("hello"), 64, constSig(""), "", "")
	trl := "x-amz-checksum-crc32:AAAAAA==\r\n"
	goodTrailer := frameChunks([]byte("hello"), 64, constSig(""), trl, placeholderSig)
	sig := placeholderSig
	tests := []struct {
		name     string
		body     string
		decoded  int64
		trailers []string
		maxChunk int
		want     error
	}{
		{"empty body", "", 5, nil, 0, ErrBodyRead},
		{"no signature", "5\r\nhello\r\n0\r\n\r\n", 5, nil, 0, ErrBadRequest},
		{"short signature", "5;chunk-signature=abc\r\nhello\r\n", 5, nil, 0, ErrBadRequest},
		{"upper-case signature", "5;chunk-signature=" + strings.ToUpper(strings.Repeat("ab", 32)) + "\r\nhello\r\n", 5, nil, 0, ErrBadRequest},
		{"other extension", "5;chunk-signature=" + sig + ";x=y\r\nhello\r\n", 5, nil, 0, ErrBadRequest},
		{"size not hex", "0x5;chunk-signature=" + sig + "\r\nhello\r\n", 5, nil, 0, ErrBadRequest},
		{"size with space", " 5;chunk-signature=" + sig + "\r\nhello\r\n", 5, nil, 0, ErrBadRequest},
		{"size empty", ";chunk-signature=" + sig + "\r\nhello\r\n", 5, nil, 0, ErrBadRequest},
		{"size too long", "00000000000000005;chunk-signature=" + sig + "\r\nhello\r\n", 5, nil, 0, ErrBadRequest},
		{"bare LF header", "5;chunk-signature=" + sig + "\nhello\r\n", 5, nil, 0, ErrBadRequest},
		{"no CRLF after data", "5;chunk-signature=" + sig + "\r\nhelloXX0;chunk-signature=" + sig + "\r\n\r\n", 5, nil, 0, ErrBadRequest},
		{"short data", "5;chunk-signature=" + sig + "\r\nhel", 5, nil, 0, ErrBodyRead},
		{"no final chunk", "5;chunk-signature=" + sig + "\r\nhello\r\n", 5, nil, 0, ErrBodyRead},
		{"no final CRLF", "5;chunk-signature=" + sig + "\r\nhello\r\n0;chunk-signature=" + sig + "\r\n", 5, nil, 0, ErrBodyRead},
		{"data after end", string(good) + "x", 5, nil, 0, ErrBadRequest},
		{"more than decoded length", string(good), 4, nil, 0, ErrBadRequest},
		{"less than decoded length", string(good), 6, nil, 0, ErrBadRequest},
		{"chunk over limit", string(good), 5, nil, 4, ErrBadRequest},
		{"huge size", "ffffffffffffffff;chunk-signature=" + sig + "\r\n", 5, nil, 0, ErrBadRequest},
		{"long line", strings.Repeat("1", 5000), 5, nil, 0, ErrBadRequest},
		{"trailer missing", string(good), 5, []string{"x-amz-checksum-crc32"}, 0, ErrBadRequest},
		{"trailer not declared", string(goodTrailer), 5, []string{"x-amz-checksum-sha256"}, 0, ErrBadRequest},
		{"trailer without signature", strings.TrimSuffix(string(goodTrailer), "x-amz-trailer-signature:"+sig+"\r\n\r\n") + "\r\n", 5, []string{"x-amz-checksum-crc32"}, 0, ErrBadRequest},
		{"trailer signature short", strings.Replace(string(goodTrailer), "signature:"+sig, "signature:abc", 1), 5, []string{"x-amz-checksum-crc32"}, 0, ErrBadRequest},
		{"trailer LF only", strings.Replace(string(goodTrailer), "==\r\n", "==\n", 1), 5, []string{"x-amz-checksum-crc32"}, 0, ErrBadRequest},
		{"minio-go style trailer", strings.Replace(string(goodTrailer), "==\r\n", "==\n\r\n", 1), 5, []string{"x-amz-checksum-crc32"}, 0, ErrBadRequest},
		{"trailer twice", strings.Replace(string(goodTrailer), trl, trl+trl, 1), 5, []string{"x-amz-checksum-crc32"}, 0, ErrBadRequest},
		{"trailer not name:value", strings.Replace(string(goodTrailer), trl, "garbage\r\n", 1), 5, []string{"x-amz-checksum-crc32"}, 0, ErrBadRequest},
		{"trailer control char", strings.Replace(string(goodTrailer), "AAAAAA==", "AA\x01AA==", 1), 5, []string{"x-amz-checksum-crc32"}, 0, ErrBadRequest},
		{"trailer no end CRLF", strings.TrimSuffix(string(goodTrailer), "\r\n"), 5, []string{"x-amz-checksum-crc32"}, 0, ErrBodyRead},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			max := tt.maxChunk
			if max == 0 {
				max = MaxChunkSize
			}
			ch := chunkedHeaders{decodedLength: tt.decoded, trailers: tt.trailers}
			cr := newChunkResigner(io.NopCloser(strings.NewReader(tt.body)), awsExampleKey(), placeholderSig, ch, max)
			_, err := io.ReadAll(cr)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if strings.Contains(err.Error(), sig) {
				t.Errorf("error quotes a signature: %v", err)
			}
			if _, again := cr.Read(make([]byte, 10)); again == nil {
				t.Error("Read after a failure succeeded")
			}
		})
	}
	// And the good bodies pass, to show the cases above fail for their
	// one defect.
	for _, c := range []struct {
		body     []byte
		trailers []string
	}{{good, nil}, {goodTrailer, []string{"x-amz-checksum-crc32"}}} {
		cr := newChunkResigner(io.NopCloser(bytes.NewReader(c.body)), awsExampleKey(), placeholderSig, chunkedHeaders{decodedLength: 5, trailers: c.trailers}, MaxChunkSize)
		if out, err := io.ReadAll(cr); err != nil || len(out) != len(c.body) {
			t.Errorf("good body: %d bytes, %v", len(out), err)
		}
	}
}

// TestSignChunkedHeaderErrors: what the headers of a signed aws-chunked
// request must say, and SigV4a refused with a clear error.
func TestSignChunkedHeaderErrors(t *testing.T) {
	tests := []struct {
		name    string
		mode    string
		headers map[string]string
		noBody  bool
		want    error
		wantMsg string
	}{
		{"no decoded length", streamingSigned, nil, false, ErrBadRequest, "X-Amz-Decoded-Content-Length"},
		{"bad decoded length", streamingSigned, map[string]string{headerDecodedLength: "-5"}, false, ErrBadRequest, "X-Amz-Decoded-Content-Length"},
		{"trailer header without trailer mode", streamingSigned, map[string]string{headerDecodedLength: "5", headerTrailer: "x-amz-checksum-crc32"}, false, ErrBadRequest, "X-Amz-Trailer"},
		{"trailer mode without trailer header", streamingSignedTrailer, map[string]string{headerDecodedLength: "5"}, false, ErrBadRequest, "X-Amz-Trailer"},
		{"trailer named twice", streamingSignedTrailer, map[string]string{headerDecodedLength: "5", headerTrailer: "x-amz-checksum-crc32, X-Amz-Checksum-Crc32"}, false, ErrBadRequest, "twice"},
		{"trailer signature as trailer", streamingSignedTrailer, map[string]string{headerDecodedLength: "5", headerTrailer: "x-amz-trailer-signature"}, false, ErrBadRequest, "X-Amz-Trailer"},
		{"no body", streamingSigned, map[string]string{headerDecodedLength: "0"}, true, ErrBadRequest, "without a body"},
		{"sigv4a", streamingECDSA, map[string]string{headerDecodedLength: "5"}, false, ErrUnsupportedPayload, "SigV4a"},
		{"sigv4a trailer", streamingECDSATrailer, map[string]string{headerDecodedLength: "5"}, false, ErrUnsupportedPayload, "SigV4a"},
		{"unknown streaming mode", "STREAMING-SOMETHING-ELSE", nil, false, ErrUnsupportedPayload, "unknown aws-chunked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newTestSigner(t, 0)
			var body io.Reader
			if !tt.noBody {
				body = strings.NewReader("x")
			}
			r := newReq(t, "PUT", "https://b.s3.us-west-2.amazonaws.com/k", body)
			r.Header.Set("X-Amz-Content-Sha256", tt.mode)
			for k, v := range tt.headers {
				r.Header.Set(k, v)
			}
			release, err := s.Sign(context.Background(), r, testCreds, Params{Scope: s3Scope})
			release()
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("err = %v, want %v mentioning %q", err, tt.want, tt.wantMsg)
			}
			if r.Header.Get("Authorization") != "" {
				t.Error("request signed despite the error")
			}
		})
	}
}

// TestSignUnknownLengthS3Spools: S3 refuses a body without Content-Length,
// so one of unknown length is spooled for its length in every payload mode,
// and the client's own hash, when sent, is kept.
func TestSignUnknownLengthS3Spools(t *testing.T) {
	body := "streamed by curl -T -"
	tests := []struct {
		name     string
		scheme   string
		mode     PayloadMode
		header   string
		wantHash string
	}{
		{"https auto", "https", PayloadAuto, "", sha([]byte(body))},
		{"unsigned route", "http", PayloadUnsigned, "", sha([]byte(body))},
		{"client unsigned", "https", PayloadAuto, unsignedPayload, sha([]byte(body))},
		{"client hash kept", "https", PayloadAuto, sha([]byte("what the client says")), sha([]byte("what the client says"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newTestSigner(t, 0)
			r := newReq(t, "PUT", tt.scheme+"://b.s3.us-west-2.amazonaws.com/k", nil)
			r.Body = io.NopCloser(strings.NewReader(body))
			r.ContentLength = -1
			r.TransferEncoding = []string{"chunked"}
			if tt.header != "" {
				r.Header.Set("X-Amz-Content-Sha256", tt.header)
			}
			release, err := s.Sign(context.Background(), r, testCreds, Params{Scope: s3Scope, Payload: tt.mode})
			if err != nil {
				t.Fatal(err)
			}
			defer release()
			if r.ContentLength != int64(len(body)) || r.TransferEncoding != nil {
				t.Errorf("ContentLength = %d, TransferEncoding = %v", r.ContentLength, r.TransferEncoding)
			}
			if got := r.Header.Get("X-Amz-Content-Sha256"); got != tt.wantHash {
				t.Errorf("X-Amz-Content-Sha256 = %q, want %q", got, tt.wantHash)
			}
			if sh := signedHeaders(t, r); !strings.HasPrefix(sh, "content-length;") {
				t.Errorf("SignedHeaders = %q", sh)
			}
			if b, _ := io.ReadAll(r.Body); string(b) != body {
				t.Errorf("body = %q", b)
			}
		})
	}
}

// TestSignChunkedUnknownLength: the client's aws-chunked body of unknown
// length (Transfer-Encoding: chunked under aws-chunked, which S3 allows with
// X-Amz-Decoded-Content-Length) streams; it is not spooled.
func TestSignChunkedUnknownLength(t *testing.T) {
	in := frameChunks([]byte("hello"), 64, constSig(""), "", "")
	s, _ := newTestSigner(t, 0)
	r := newReq(t, "PUT", "https://b.s3.us-west-2.amazonaws.com/k", nil)
	r.Body = io.NopCloser(bytes.NewReader(in))
	r.ContentLength = -1
	r.Header.Set("X-Amz-Content-Sha256", streamingSigned)
	r.Header.Set(headerDecodedLength, "5")
	release, err := s.Sign(context.Background(), r, testCreds, Params{Scope: s3Scope})
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if r.ContentLength != -1 || strings.HasPrefix(signedHeaders(t, r), "content-length;") {
		t.Errorf("ContentLength = %d, SignedHeaders %q", r.ContentLength, signedHeaders(t, r))
	}
	out, err := io.ReadAll(r.Body)
	if err != nil || len(out) != len(in) {
		t.Errorf("body: %d bytes, %v", len(out), err)
	}
}

// TestSigningKeyMatchesSDK holds signet's key derivation to the SDK's: the
// SDK's stream signer and signet's chain give the same chunk signature.
func TestSigningKeyMatchesSDK(t *testing.T) {
	creds := credentials.Credentials{AccessKeyID: "AKID", SecretAccessKey: "secret/with+chars"}
	at := time.Date(2025, 12, 31, 23, 59, 59, 0, time.UTC)
	seed := sha([]byte("seed"))
	sdk := v4.NewStreamSigner(aws.Credentials{AccessKeyID: creds.AccessKeyID, SecretAccessKey: creds.SecretAccessKey}, "s3", "eu-central-1", mustHex(t, seed))
	want, err := sdk.GetSignature(context.Background(), nil, []byte("chunk"), at)
	if err != nil {
		t.Fatal(err)
	}
	c := newChunkResigner(io.NopCloser(http.NoBody), streamKey{
		key:   signingKey(creds.SecretAccessKey, "20251231", "eu-central-1", "s3"),
		date:  "20251231T235959Z",
		scope: "20251231/eu-central-1/s3/aws4_request",
	}, seed, chunkedHeaders{}, MaxChunkSize)
	if got := c.sign(chunkSigAlgo, emptySHA256, sha([]byte("chunk"))); got != hex.EncodeToString(want) {
		t.Errorf("chunk signature %s, SDK %x", got, want)
	}
}

// TestChunkResignerHoldsBackTheEnd: when the body turns out malformed after
// its last data chunk, the upstream has not been handed the last data byte,
// so it cannot take the body for complete.
func TestChunkResignerHoldsBackTheEnd(t *testing.T) {
	data := testBytes(3000)
	good := frameChunks(data, 1000, constSig(""), "", "")
	run := func(body []byte) ([]byte, error) {
		cr := newChunkResigner(io.NopCloser(bytes.NewReader(body)), awsExampleKey(), placeholderSig, chunkedHeaders{decodedLength: 3000}, MaxChunkSize)
		var out []byte
		buf := make([]byte, 7) // small reads: what was handed out before the error
		for {
			n, err := cr.Read(buf)
			out = append(out, buf[:n]...)
			if err != nil {
				return out, err
			}
		}
	}
	whole, err := run(good)
	if err != io.EOF || len(whole) != len(good) {
		t.Fatalf("good body: %d bytes, %v", len(whole), err)
	}
	final := len("0" + chunkSigPrefix + placeholderSig + "\r\n\r\n")
	for name, body := range map[string][]byte{
		"data after the end": append(bytes.Clone(good), 'x'),
		"final chunk cut":    good[:len(good)-1],
		"no final chunk":     good[:len(good)-final],
	} {
		out, err := run(body)
		if err == io.EOF || err == nil {
			t.Fatalf("%s: accepted", name)
		}
		if want := len(good) - final - heldBack; len(out) != want || !bytes.Equal(out, whole[:want]) {
			t.Errorf("%s: handed out %d bytes before failing, want the %d before the last data byte", name, len(out), want)
		}
	}
}

func testBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + i>>8)
	}
	return b
}
