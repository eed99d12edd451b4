package signer

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/signet-proxy/signet/credentials"
)

// TestPresignIoTVectors compares Presign with URLs computed outside Go, by a
// short Python program written from the AWS IoT Device SDK for JavaScript's
// prepareWebSocketUrl/signUrl (hashlib and hmac only): the canonical query
// of the four X-Amz- parameters plus the client's own, "host" as the only
// signed header, the hash of the empty payload, then X-Amz-Signature and,
// outside the signature, X-Amz-Security-Token.
func TestPresignIoTVectors(t *testing.T) {
	cases := []struct {
		name  string
		url   string
		scope Scope
		at    time.Time
		token string
		want  string
	}{
		{
			name:  "session token appended after signing",
			url:   "https://abc123-ats.iot.us-east-1.amazonaws.com/mqtt",
			scope: Scope{"iotdevicegateway", "us-east-1"},
			at:    time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC),
			token: "IQoJb3JpZ2luX2VjEXAMPLE+token/with=chars",
			want: "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fiotdevicegateway%2Faws4_request" +
				"&X-Amz-Date=20150830T123600Z&X-Amz-SignedHeaders=host" +
				"&X-Amz-Signature=6298b2262e4020b389c61403c0c7f8000463e0ea940ce29c96c5bf88c54a87f2" +
				"&X-Amz-Security-Token=IQoJb3JpZ2luX2VjEXAMPLE%2Btoken%2Fwith%3Dchars",
		},
		{
			// The same signature as above: the token is not part of it.
			name:  "long-term keys",
			url:   "https://abc123-ats.iot.us-east-1.amazonaws.com/mqtt",
			scope: Scope{"iotdevicegateway", "us-east-1"},
			at:    time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC),
			want: "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fiotdevicegateway%2Faws4_request" +
				"&X-Amz-Date=20150830T123600Z&X-Amz-SignedHeaders=host" +
				"&X-Amz-Signature=6298b2262e4020b389c61403c0c7f8000463e0ea940ce29c96c5bf88c54a87f2",
		},
		{
			// Another port is part of the signed host; the client's own
			// parameter is signed in its sorted place; a placeholder
			// presignature from an SDK with dummy keys is replaced.
			name: "port, client parameter, placeholder presignature",
			url: "https://a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com:8443/mqtt?x-amz-customauthorizer-name=my%20auth" +
				"&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=PLACEHOLDER%2F20240101%2Feu-west-1%2Fiotdevicegateway%2Faws4_request" +
				"&X-Amz-Date=20240101T000000Z&X-Amz-SignedHeaders=host&X-Amz-Signature=00&X-Amz-Security-Token=placeholder",
			scope: Scope{"iotdevicegateway", "eu-west-1"},
			at:    time.Date(2024, 2, 29, 23, 59, 59, 0, time.UTC),
			want: "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20240229%2Feu-west-1%2Fiotdevicegateway%2Faws4_request" +
				"&X-Amz-Date=20240229T235959Z&X-Amz-SignedHeaders=host&x-amz-customauthorizer-name=my%20auth" +
				"&X-Amz-Signature=a36ae59b56234147fd2979fa01e05f2cf366cb8285823775d09b8ba355cba260",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := New(Options{Now: func() time.Time { return tc.at }})
			r := newReq(t, "GET", tc.url, nil)
			r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
			r.Header.Set("Sec-WebSocket-Protocol", "mqtt")
			r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=PLACEHOLDER/20240101/us-east-1/iotdevicegateway/aws4_request, SignedHeaders=host, Signature=00")
			r.Header.Set("X-Amz-Security-Token", "placeholder")
			creds := testCreds
			creds.SessionToken = tc.token
			if err := s.Presign(context.Background(), r, creds, Params{Scope: tc.scope}); err != nil {
				t.Fatal(err)
			}
			if r.URL.RawQuery != tc.want {
				t.Errorf("query\n got %s\nwant %s", r.URL.RawQuery, tc.want)
			}
			for _, h := range []string{"Authorization", "X-Amz-Date", "X-Amz-Security-Token"} {
				if v := r.Header.Get(h); v != "" {
					t.Errorf("header %s = %q left on a presigned request", h, v)
				}
			}
			if r.Header.Get("Sec-WebSocket-Key") == "" || r.URL.Path != "/mqtt" {
				t.Errorf("Presign changed what it must not: header %v, path %q", r.Header, r.URL.Path)
			}
		})
	}
}

// TestPresignVerifiesIndependently checks Presign at the real clock against
// a verifier written here from the SigV4 documentation, the way the test
// IoT front in e2e checks it: many tokens, none of them signed.
func TestPresignVerifiesIndependently(t *testing.T) {
	s := New(Options{})
	for _, tok := range []string{"", "a", "FwoGZXIvYXdzEJr//////////wEaDOzK+/=", strings.Repeat("x~y-z_.", 100)} {
		r := newReq(t, "GET", "https://abc123-ats.iot.ap-northeast-1.amazonaws.com/mqtt?clientId=dev%2F1", nil)
		creds := credentials.Credentials{AccessKeyID: "AKIAPRESIGNTEST", SecretAccessKey: "presign/secret+key", SessionToken: tok}
		if err := s.Presign(context.Background(), r, creds, Params{Scope: Scope{"iotdevicegateway", "ap-northeast-1"}}); err != nil {
			t.Fatal(err)
		}
		if err := verifyIoTPresigned(r.Host, r.URL.EscapedPath(), r.URL.RawQuery, creds, time.Now()); err != nil {
			t.Errorf("token %q: %v\nquery %s", tok, err, r.URL.RawQuery)
		}
	}
}

// verifyIoTPresigned recomputes an IoT presigned URL's signature from its
// query, without the SDK: the canonical query is every parameter but
// X-Amz-Signature and X-Amz-Security-Token.
func verifyIoTPresigned(host, path, rawQuery string, creds credentials.Credentials, now time.Time) error {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return err
	}
	if got := q.Get("X-Amz-Security-Token"); got != creds.SessionToken {
		return errors.New("X-Amz-Security-Token is not the session token")
	}
	if creds.SessionToken != "" && !strings.HasSuffix(rawQuery, "&X-Amz-Security-Token="+escapeQueryValue(creds.SessionToken)) {
		return errors.New("X-Amz-Security-Token is not the last parameter")
	}
	date := q.Get("X-Amz-Date")
	at, err := time.Parse("20060102T150405Z", date)
	if err != nil {
		return err
	}
	if d := now.Sub(at); d < -time.Minute || d > 5*time.Minute {
		return errors.New("X-Amz-Date is not fresh")
	}
	cred := strings.Split(q.Get("X-Amz-Credential"), "/")
	if len(cred) != 5 || cred[0] != creds.AccessKeyID || cred[1] != date[:8] || cred[3] != "iotdevicegateway" || cred[4] != "aws4_request" {
		return errors.New("bad X-Amz-Credential " + q.Get("X-Amz-Credential"))
	}
	if q.Get("X-Amz-SignedHeaders") != "host" || q.Get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256" {
		return errors.New("bad algorithm or signed headers")
	}
	var pairs []string
	for k, vs := range q {
		if k == "X-Amz-Signature" || k == "X-Amz-Security-Token" {
			continue
		}
		for _, v := range vs {
			pairs = append(pairs, escapeQueryValue(k)+"="+escapeQueryValue(v))
		}
	}
	sort.Strings(pairs)
	emptyHash := sha256.Sum256(nil)
	creq := strings.Join([]string{"GET", path, strings.Join(pairs, "&"), "host:" + host + "\n", "host", hex.EncodeToString(emptyHash[:])}, "\n")
	crHash := sha256.Sum256([]byte(creq))
	scope := strings.Join(cred[1:], "/")
	sts := "AWS4-HMAC-SHA256\n" + date + "\n" + scope + "\n" + hex.EncodeToString(crHash[:])
	key := []byte("AWS4" + creds.SecretAccessKey)
	for _, part := range cred[1:] {
		key = presignTestHMAC(key, part)
	}
	want := hex.EncodeToString(presignTestHMAC(key, sts))
	if !hmac.Equal([]byte(q.Get("X-Amz-Signature")), []byte(want)) {
		return errors.New("signature does not verify")
	}
	return nil
}

func presignTestHMAC(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

func TestPresignRefuses(t *testing.T) {
	s, _ := newTestSigner(t, 0)
	iot := Scope{"iotdevicegateway", "us-east-1"}
	cases := []struct {
		name  string
		r     *http.Request
		creds credentials.Credentials
		scope Scope
		want  error
	}{
		{"no credentials", newReq(t, "GET", "https://h.iot.us-east-1.amazonaws.com/mqtt", nil), credentials.Credentials{}, iot, ErrNoCredentials},
		{"no scope", newReq(t, "GET", "https://h.iot.us-east-1.amazonaws.com/mqtt", nil), testCreds, Scope{Service: "iotdevicegateway"}, ErrUnknownScope},
		{"s3", newReq(t, "GET", "https://b.s3.us-east-1.amazonaws.com/k", nil), testCreds, Scope{"s3", "us-east-1"}, ErrBadRequest},
		{"body", newReq(t, "POST", "https://h.iot.us-east-1.amazonaws.com/mqtt", strings.NewReader("x")), testCreds, iot, ErrBadRequest},
		{"bad query", newReq(t, "GET", "https://h.iot.us-east-1.amazonaws.com/mqtt?a=%zz", nil), testCreds, iot, ErrBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Presign(context.Background(), tc.r, tc.creds, Params{Scope: tc.scope})
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestPresignedScope(t *testing.T) {
	cases := []struct {
		method, url string
		scope       Scope
		want        Scope
		ok          bool
	}{
		{"GET", "https://abc-ats.iot.us-east-1.amazonaws.com/mqtt", Scope{"iotdata", "us-east-1"}, Scope{"iotdevicegateway", "us-east-1"}, true},
		{"GET", "https://abc-ats.iot.us-east-1.amazonaws.com/mqtt?x=1", Scope{"iotdevicegateway", "eu-west-1"}, Scope{"iotdevicegateway", "eu-west-1"}, true},
		{"GET", "https://abc-ats.iot.us-east-1.amazonaws.com/topics/t", Scope{"iotdata", "us-east-1"}, Scope{}, false},
		{"POST", "https://abc-ats.iot.us-east-1.amazonaws.com/mqtt", Scope{"iotdata", "us-east-1"}, Scope{}, false},
		{"GET", "https://abc-ats.iot.us-east-1.amazonaws.com/mqtt/", Scope{"iotdata", "us-east-1"}, Scope{}, false},
		{"GET", "https://id.execute-api.us-east-1.amazonaws.com/mqtt", Scope{"execute-api", "us-east-1"}, Scope{}, false},
	}
	for _, tc := range cases {
		r := newReq(t, tc.method, tc.url, nil)
		got, ok := PresignedScope(r, tc.scope)
		if got != tc.want || ok != tc.ok {
			t.Errorf("PresignedScope(%s %s, %v) = %v, %v; want %v, %v", tc.method, tc.url, tc.scope, got, ok, tc.want, tc.ok)
		}
	}
	// The endpoint table gives IoT data hosts the HTTP API's name, which
	// PresignedScope turns into the MQTT gateway's.
	if sc, ok := Lookup("abc123-ats.iot.us-east-1.amazonaws.com"); !ok || sc != (Scope{"iotdata", "us-east-1"}) {
		t.Errorf("Lookup(IoT data host) = %v, %v", sc, ok)
	}
}
