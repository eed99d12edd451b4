package signer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
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

// presignValues are the raw values of the presigned-URL parameters of a
// raw query, the signatures and tokens an error must not show.
func presignValues(raw string) []string {
	var vals []string
	for _, pair := range strings.Split(raw, "&") {
		k, v, _ := strings.Cut(pair, "=")
		if uk, err := url.QueryUnescape(k); err == nil {
			k = uk
		}
		for _, p := range presignParams {
			if strings.EqualFold(k, p) && len(v) >= 8 {
				vals = append(vals, v)
			}
		}
	}
	return vals
}

// withoutPresign is url.ParseQuery(raw) less the presigned-URL
// parameters: what the SDK must sign and send.
func withoutPresign(raw string) (url.Values, error) {
	q, err := url.ParseQuery(raw)
	for k := range q {
		for _, p := range presignParams {
			if strings.EqualFold(k, p) {
				delete(q, k)
			}
		}
	}
	return q, err
}

// FuzzStripPresignParams: the incoming query is refused exactly when
// url.ParseQuery (the SDK's reader) would refuse or cut it; kept, it loses
// the presigned-URL parameters and nothing else, pairs in their order; an
// error never shows a presigned parameter's value.
func FuzzStripPresignParams(f *testing.F) {
	f.Add("Action=ListQueues&X-Amz-Credential=AKID%2F20240101%2Fus-east-1%2Fsqs%2Faws4_request&x-amz-signature=deadbeef&b=2&a=1")
	f.Add("prefix=a%2Bb+c&list-type=2&&=v&k")
	f.Add("X-Amz-Security-Token=IQoJb3JpZ2luX2VjEJr;rest")
	f.Add("a=%zz&X-Amz-Date=20240101T000000Z")
	f.Add("X%2DAmz%2DExpires=60&x-amz-meta=1")
	f.Fuzz(func(t *testing.T, raw string) {
		out, err := stripPresignParams(raw)
		want, perr := withoutPresign(raw)
		if (err != nil) != (perr != nil) {
			t.Fatalf("stripPresignParams(%q): %v; url.ParseQuery: %v", raw, err, perr)
		}
		if err != nil {
			for _, v := range presignValues(raw) {
				if strings.Contains(err.Error(), v) {
					t.Fatalf("error %q shows the value %q", err, v)
				}
			}
			return
		}
		got, gerr := url.ParseQuery(out)
		if gerr != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("stripPresignParams(%q) = %q: parameters %v (%v), want %v", raw, out, got, gerr, want)
		}
		if len(presignValues(out)) != 0 || !isSubsequence(pairs(out), pairs(raw)) {
			t.Fatalf("stripPresignParams(%q) = %q", raw, out)
		}
	})
}

// pairs are the non-empty '&'-separated pairs of a raw query.
func pairs(raw string) []string {
	var out []string
	for _, p := range strings.Split(raw, "&") {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

func isSubsequence(sub, of []string) bool {
	i := 0
	for _, s := range of {
		if i < len(sub) && sub[i] == s {
			i++
		}
	}
	return i == len(sub)
}

// FuzzSignQuery: Sign with any incoming query fails only with
// ErrBadRequest, and what goes on the wire is every parameter the client
// sent (as the SDK read and signed it) less the presigned-URL ones, for a
// header-signed service and for S3 with a path the SDK is shown in its
// canonical form.
func FuzzSignQuery(f *testing.F) {
	f.Add("Action=SendMessage&MessageBody=a+b%20c&QueueUrl=https%3A%2F%2Fq", false)
	f.Add("list-type=2&prefix=photos%2F2024&X-Amz-Signature=00", true)
	f.Add("uploads&", true)
	f.Add("a=1;b=2", false)
	f.Add("z=%E2%82%AC&z=&Z=1&%7E=~", true)
	s := New(Options{Now: func() time.Time { return testTime }, SpoolDir: f.TempDir()})
	f.Fuzz(func(t *testing.T, raw string, s3 bool) {
		host, sc, path := "sqs.us-east-1.amazonaws.com", sqsScope, "/"
		if s3 {
			host, sc, path = "b.s3.us-west-2.amazonaws.com", s3Scope, "/k/%7e"
		}
		u := &url.URL{Scheme: "https", Host: host, RawQuery: raw}
		if err := SetRawPath(u, path); err != nil {
			t.Fatal(err)
		}
		r := &http.Request{Method: http.MethodGet, URL: u, Host: host, Header: http.Header{}, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
		want, perr := withoutPresign(raw)
		release, err := s.Sign(context.Background(), r, testCreds, Params{Scope: sc})
		defer release()
		if err != nil {
			if !errors.Is(err, ErrBadRequest) || perr == nil {
				t.Fatalf("Sign with query %q: %v (url.ParseQuery: %v)", raw, err, perr)
			}
			return
		}
		if perr != nil {
			t.Fatalf("Sign took query %q that url.ParseQuery refuses: %v", raw, perr)
		}
		// SigV4's canonical query, which the wire carries, sorts the
		// values of a repeated name too.
		got, gerr := url.ParseQuery(r.URL.RawQuery)
		for _, q := range []url.Values{got, want} {
			for _, vs := range q {
				slices.Sort(vs)
			}
		}
		if gerr != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("query %q went out as %q: %v (%v), want %v", raw, r.URL.RawQuery, got, gerr, want)
		}
		if r.Header.Get("Authorization") == "" || wirePath(r.URL) != path {
			t.Fatalf("query %q: Authorization %q, path %q", raw, r.Header.Get("Authorization"), wirePath(r.URL))
		}
	})
}

// A query of more parameters than url.ParseQuery reads was signed and
// sent with no query at all.
func TestSignRefusesQueryPastParseLimit(t *testing.T) {
	s, _ := newTestSigner(t, 0)
	r := newReq(t, "GET", "https://sqs.us-east-1.amazonaws.com/?Action=ListQueues"+strings.Repeat("&a=1", 10000), nil)
	release, err := s.Sign(context.Background(), r, testCreds, Params{Scope: sqsScope})
	defer release()
	if !errors.Is(err, ErrBadRequest) {
		t.Fatalf("Sign = %v, query now %.40q; want ErrBadRequest", err, r.URL.RawQuery)
	}
}

// A semicolon in a presigned URL's parameter put its value (a signature or
// session token) into the error.
func TestSignQueryErrorHidesValues(t *testing.T) {
	s, _ := newTestSigner(t, 0)
	r := newReq(t, "GET", "https://sqs.us-east-1.amazonaws.com/?X-Amz-Security-Token=IQoJb3JpZ2luX2VjSECRET;x&a=1", nil)
	_, err := s.Sign(context.Background(), r, testCreds, Params{Scope: sqsScope})
	if !errors.Is(err, ErrBadRequest) || strings.Contains(err.Error(), "SECRET") || !strings.Contains(err.Error(), `semicolon in parameter "X-Amz-Security-Token"`) {
		t.Fatalf("Sign = %v", err)
	}
}
