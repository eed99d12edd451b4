package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"flag"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signet-proxy/signet/extensions/sdk"
	"github.com/signet-proxy/signet/internal/ststest"
)

const (
	testIssuer = "https://oidc.web-identity.test"
	testRole   = "arn:aws:iam::123456789012:role/web-identity"
)

// TestFetchFromFakeSTS runs the provider natively against the strict fake
// STS: the token from a file, the unsigned call, the answer parsed.
func TestFetchFromFakeSTS(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var minted []ststest.Minted
	f := ststest.New(t, ststest.Options{PlainHTTP: true, OnMint: func(m ststest.Minted) error {
		minted = append(minted, m)
		return nil
	}})
	f.AddOIDCProvider(ststest.OIDCProvider{Issuer: testIssuer, ClientIDs: []string{"sts.amazonaws.com"}, Keys: []crypto.PublicKey{&key.PublicKey}})
	f.AddRole(ststest.Role{ARN: testRole, OIDCIssuers: []string{testIssuer}})

	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	write := func(exp time.Time) string {
		tok, err := ststest.SignJWT(key, map[string]any{"iss": testIssuer, "sub": "system:serviceaccount:ns:app",
			"aud": "sts.amazonaws.com", "exp": exp.Unix()})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(tokenFile, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return tok
	}
	write(time.Now().Add(time.Hour))

	cfg := parse(t, []string{"-role-arn", testRole, "-token-file", tokenFile, "-endpoint", f.URL(), "-duration", "15m"}, nil)
	c, err := fetch(context.Background(), cfg, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(minted) != 1 || c.AccessKeyID != minted[0].AccessKeyID || c.SecretAccessKey != minted[0].SecretAccessKey ||
		c.SessionToken != minted[0].SessionToken || c.Expiration.Unix() != minted[0].Expires.Unix() {
		t.Errorf("provider returned %s, the fake minted %+v", c.AccessKeyID, minted)
	}
	call, _ := f.LastCall()
	if call.DurationSeconds != 900 || !strings.HasPrefix(call.RoleSessionName, "signet-web-identity-") || call.Issuer != testIssuer {
		t.Errorf("STS saw %+v", call)
	}

	tok := write(time.Now().Add(-time.Minute))
	_, err = fetch(context.Background(), cfg, time.Now())
	if err == nil || !strings.Contains(err.Error(), "ExpiredTokenException") || !strings.Contains(err.Error(), "expired token") {
		t.Errorf("expired token: %v", err)
	}
	if err != nil && strings.Contains(err.Error(), tok) {
		t.Errorf("the error holds the token")
	}

	cfg.roleARN = "arn:aws:iam::123456789012:role/untrusting"
	write(time.Now().Add(time.Hour))
	if _, err := fetch(context.Background(), cfg, time.Now()); err == nil || !strings.Contains(err.Error(), "AccessDenied") {
		t.Errorf("untrusting role: %v", err)
	}
}

func parse(t *testing.T, args []string, env map[string]string) *config {
	t.Helper()
	fs := flag.NewFlagSet("web-identity", flag.ContinueOnError)
	cfg := bindFlags(fs)
	if err := sdk.ParseArgs(fs, args, envNames(), func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestFetchErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no role", []string{"-token-file", empty}, "no role"},
		{"no token file", []string{"-role-arn", testRole, "-token-file", filepath.Join(dir, "absent")}, "absent"},
		{"empty token", []string{"-role-arn", testRole, "-token-file", empty}, "is empty"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := fetch(context.Background(), parse(t, tc.args, nil), time.Now())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestBuildRequest(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	cases := []struct {
		name    string
		args    []string
		env     map[string]string
		url     string
		form    url.Values
		wantErr string
	}{
		{"defaults", []string{"-role-arn", testRole}, nil, "https://sts.us-east-1.amazonaws.com/",
			url.Values{"RoleSessionName": {"signet-web-identity-1800000000"}}, ""},
		{"environment", nil, map[string]string{"AWS_ROLE_ARN": testRole, "AWS_REGION": "eu-west-3", "AWS_ROLE_SESSION_NAME": "pod-1"},
			"https://sts.eu-west-3.amazonaws.com/", url.Values{"RoleSessionName": {"pod-1"}}, ""},
		{"flags win over the environment", []string{"-region", "ap-south-1"}, map[string]string{"AWS_ROLE_ARN": testRole, "AWS_REGION": "eu-west-3"},
			"https://sts.ap-south-1.amazonaws.com/", nil, ""},
		{"China", []string{"-role-arn", testRole, "-region", "cn-north-1"}, nil, "https://sts.cn-north-1.amazonaws.com.cn/", nil, ""},
		{"endpoint with a path", []string{"-role-arn", testRole, "-endpoint", "http://127.0.0.1:1/sts"}, nil, "http://127.0.0.1:1/sts", nil, ""},
		{"duration", []string{"-role-arn", testRole, "-duration", "2h"}, nil, "https://sts.us-east-1.amazonaws.com/", url.Values{"DurationSeconds": {"7200"}}, ""},
		{"duration in seconds", []string{"-role-arn", testRole, "--duration", "3600"}, nil, "https://sts.us-east-1.amazonaws.com/", url.Values{"DurationSeconds": {"3600"}}, ""},
		{"duration too short", []string{"-role-arn", testRole, "-duration", "10m"}, nil, "", nil, "15m to 12h"},
		{"bad endpoint", []string{"-role-arn", testRole, "-endpoint", "ftp://x"}, nil, "", nil, "not an http(s) URL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := buildRequest(parse(t, tc.args, tc.env), "tok.en.value", now)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if req.Method != "POST" || req.URL != tc.url {
				t.Errorf("%s %s, want POST %s", req.Method, req.URL, tc.url)
			}
			form, err := url.ParseQuery(string(req.Body))
			if err != nil {
				t.Fatal(err)
			}
			want := url.Values{"Action": {"AssumeRoleWithWebIdentity"}, "Version": {"2011-06-15"}, "RoleArn": {testRole}, "WebIdentityToken": {"tok.en.value"}}
			for k, v := range tc.form {
				want[k] = v
			}
			for k, v := range want {
				if form.Get(k) != v[0] {
					t.Errorf("%s = %q, want %q", k, form.Get(k), v[0])
				}
			}
			if _, ok := form["DurationSeconds"]; ok && tc.form.Get("DurationSeconds") == "" {
				t.Errorf("DurationSeconds sent unasked")
			}
			for _, h := range req.Header {
				if strings.EqualFold(h[0], "Authorization") {
					t.Errorf("the call is signed or authorized: %q", h)
				}
			}
		})
	}
}

const okXML = `<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>sub</SubjectFromWebIdentityToken>
    <AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/r/s</Arn><AssumedRoleId>AROAX:s</AssumedRoleId></AssumedRoleUser>
    <Credentials>
      <SessionToken>TOKEN</SessionToken>
      <SecretAccessKey>SECRET</SecretAccessKey>
      <Expiration>2026-11-28T12:00:00Z</Expiration>
      <AccessKeyId>ASIAEXAMPLE</AccessKeyId>
    </Credentials>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>`

func TestParseResponse(t *testing.T) {
	const token = "eyJhbGciOi.secretpayload.sig"
	errXML := func(code, msg string) string {
		return `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>` + code +
			`</Code><Message>` + msg + `</Message></Error><RequestId>req-9</RequestId></ErrorResponse>`
	}
	cases := []struct {
		name   string
		status int
		body   string
		want   string // error part, "" for success
	}{
		{"ok", 200, okXML, ""},
		{"invalid token", 400, errXML("InvalidIdentityToken", "Incorrect token audience"), "InvalidIdentityToken: Incorrect token audience (HTTP 400, request id req-9): check that the token's issuer"},
		{"expired", 400, errXML("ExpiredTokenException", "Token expired: current date/time 2 must be before the expiration date/time 1"), "ExpiredTokenException"},
		{"denied", 403, errXML("AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity"), "trust policy"},
		{"echoed token", 400, errXML("InvalidIdentityToken", "bad token "+token), "bad token [token]"},
		{"not STS", 503, "<html>busy</html>", "HTTP 503, and the body is not an STS error"},
		{"not XML", 200, "{}", "not XML"},
		{"other answer", 200, `<AssumeRoleResponse><AssumeRoleResult/></AssumeRoleResponse>`, "not an AssumeRoleWithWebIdentityResponse"},
		{"no secret", 200, strings.Replace(okXML, "<SecretAccessKey>SECRET</SecretAccessKey>", "", 1), "lacks part"},
		{"bad expiration", 200, strings.Replace(okXML, "2026-11-28T12:00:00Z", "tomorrow", 1), `Expiration "tomorrow"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, arn, err := parseResponse(tc.status, []byte(tc.body), token)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				want := sdk.Credentials{AccessKeyID: "ASIAEXAMPLE", SecretAccessKey: "SECRET", SessionToken: "TOKEN",
					Expiration: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)}
				if c != want || arn != "arn:aws:sts::123456789012:assumed-role/r/s" {
					t.Errorf("got %+v %s", c, arn)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), token) {
				t.Errorf("the error holds the token")
			}
		})
	}
}

func FuzzParseResponse(f *testing.F) {
	f.Add(200, []byte(okXML))
	f.Add(400, []byte(`<ErrorResponse><Error><Code>X</Code><Message>m</Message></Error></ErrorResponse>`))
	f.Add(500, []byte("<"))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		c, _, err := parseResponse(status, body, "the.token.value")
		if err == nil && (c.AccessKeyID == "" || c.SecretAccessKey == "" || c.Expiration.IsZero()) {
			t.Errorf("accepted incomplete credentials %+v", c)
		}
		if err != nil && strings.Contains(err.Error(), "the.token.value") {
			t.Errorf("the error holds the token")
		}
	})
}
