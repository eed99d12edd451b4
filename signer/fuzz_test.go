package signer

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func FuzzLookup(f *testing.F) {
	for _, h := range []string{
		"sqs.us-east-1.amazonaws.com", "my.bucket.s3.us-west-2.amazonaws.com",
		"abc.execute-api.cn-north-1.amazonaws.com.cn", "x.lambda-url.us-east-1.on.aws",
		"iam.amazonaws.com", "s3.amazonaws.com.evil.com", "[::1]:80", "a..b", "",
		"search-d-1.us-east-1.es.amazonaws.com", "runtime.sagemaker.us-east-1.amazonaws.com:443.",
	} {
		f.Add(h)
	}
	f.Fuzz(func(t *testing.T, host string) {
		sc, ok := Lookup(host)
		if ok != (sc.Service != "" && sc.Region != "") {
			t.Fatalf("Lookup(%q) = %+v, %v", host, sc, ok)
		}
		if !ok || strings.ContainsAny(host, ":[") || strings.HasSuffix(host, ".") {
			return
		}
		for _, variant := range []string{strings.ToUpper(host), host + ":8443", host + ".", strings.ToUpper(host) + ".:443"} {
			if sc2, ok2 := Lookup(variant); sc2 != sc || !ok2 {
				t.Fatalf("Lookup(%q) = %+v, %v; Lookup(%q) = %+v", variant, sc2, ok2, host, sc)
			}
		}
	})
}

func FuzzIncomingScope(f *testing.F) {
	f.Add("AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0", "")
	f.Add("", "X-Amz-Credential=AKID%2F20240101%2Fus-east-1%2Fs3%2Faws4_request")
	f.Add("AWS4-HMAC-SHA256 Credential=////", "X-Amz-Credential=%")
	f.Fuzz(func(t *testing.T, auth, query string) {
		h := http.Header{}
		if auth != "" {
			h.Set("Authorization", auth)
		}
		sc, ok := IncomingScope(h, query)
		if ok && (!scopeToken(sc.Service) || !scopeToken(sc.Region)) {
			t.Fatalf("IncomingScope accepted %+v", sc)
		}
	})
}

func FuzzSetRawPath(f *testing.F) {
	for _, p := range rawPathCases {
		f.Add(p)
	}
	f.Add("//%zz")
	f.Add("/a%2")
	f.Fuzz(func(t *testing.T, raw string) {
		u := &url.URL{Scheme: "https", Host: "example.com"}
		if err := SetRawPath(u, raw); err != nil {
			return
		}
		if got := u.RequestURI(); got != raw {
			t.Fatalf("SetRawPath(%q): RequestURI = %q", raw, got)
		}
		if got := sdkURIPath(u); got != raw {
			t.Fatalf("SetRawPath(%q): signed path = %q", raw, got)
		}
	})
}

// FuzzCanonicalPath: any wire path gives a canonical path that is stable,
// valid on the wire, and decodes to the same bytes as the wire path's valid
// escapes.
func FuzzCanonicalPath(f *testing.F) {
	for _, s := range []string{"/", "/b/p+q=r", "/%7e%2F", "/%zz%", "//a//", "/€", "/x!$&'()*,;:@y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, wire string) {
		c := canonicalPath(wire)
		if canonicalPath(c) != c || !isCanonicalPath(c) {
			t.Fatalf("canonicalPath(%q) = %q is not canonical", wire, c)
		}
		if strings.Count(c, "/") != strings.Count(wire, "/") {
			t.Fatalf("canonicalPath(%q) = %q changed the literal slashes", wire, c)
		}
	})
}

// FuzzChunkResigner: the aws-chunked parser never panics, fails only with
// ErrBadRequest or ErrBodyRead, and when it accepts a body it changes only
// signature digits: the same length, and re-signing its own output changes
// nothing.
func FuzzChunkResigner(f *testing.F) {
	trl := "x-amz-checksum-crc32:AAAAAA==\r\nX-Amz-Meta-X: v\r\n"
	f.Add(frameChunks([]byte("hello"), 64, constSig(""), "", ""), uint32(5), false)
	f.Add(frameChunks([]byte("hello, world"), 4, constSig(""), "", ""), uint32(12), false)
	f.Add(frameChunks([]byte("hello"), 2, constSig(""), trl, placeholderSig), uint32(5), true)
	f.Add(frameChunks(nil, 1, constSig(""), trl, placeholderSig), uint32(0), true)
	f.Add([]byte("5;chunk-signature="+placeholderSig+"\r\nhel"), uint32(5), false)
	f.Add([]byte("0;chunk-signature="+placeholderSig+"\r\n\r\nX"), uint32(0), false)
	f.Fuzz(func(t *testing.T, body []byte, decoded uint32, trailer bool) {
		ch := chunkedHeaders{decodedLength: int64(decoded)}
		if trailer {
			ch.trailers = []string{"x-amz-checksum-crc32", "x-amz-meta-x"}
		}
		run := func(in []byte) ([]byte, error) {
			cr := newChunkResigner(io.NopCloser(bytes.NewReader(in)), awsExampleKey(), placeholderSig, ch, 1<<16)
			return io.ReadAll(cr)
		}
		out, err := run(body)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) && !errors.Is(err, ErrBodyRead) {
				t.Fatalf("error %v is neither ErrBadRequest nor ErrBodyRead", err)
			}
			return
		}
		if len(out) != len(body) {
			t.Fatalf("accepted body of %d bytes came out as %d", len(body), len(out))
		}
		for i := range out {
			if out[i] != body[i] && !(isLowerHex(string(out[i])) && isLowerHex(string(body[i]))) {
				t.Fatalf("byte %d changed from %q to %q", i, body[i], out[i])
			}
		}
		again, err := run(out)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("re-signing the output: %v, equal %v", err, bytes.Equal(again, out))
		}
	})
}
