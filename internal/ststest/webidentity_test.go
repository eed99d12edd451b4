package ststest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

const (
	issuer    = "https://oidc.ststest.example"
	clientID  = "sts.amazonaws.com"
	webRole   = "arn:aws:iam::123456789012:role/web"
	webSub    = "system:serviceaccount:default:app"
	otherRole = "arn:aws:iam::123456789012:role/other"
)

type webIdentityResponse struct {
	Subject         string `xml:"AssumeRoleWithWebIdentityResult>SubjectFromWebIdentityToken"`
	Audience        string `xml:"AssumeRoleWithWebIdentityResult>Audience"`
	Provider        string `xml:"AssumeRoleWithWebIdentityResult>Provider"`
	ARN             string `xml:"AssumeRoleWithWebIdentityResult>AssumedRoleUser>Arn"`
	AccessKeyID     string `xml:"AssumeRoleWithWebIdentityResult>Credentials>AccessKeyId"`
	SecretAccessKey string `xml:"AssumeRoleWithWebIdentityResult>Credentials>SecretAccessKey"`
	SessionToken    string `xml:"AssumeRoleWithWebIdentityResult>Credentials>SessionToken"`
	Expiration      string `xml:"AssumeRoleWithWebIdentityResult>Credentials>Expiration"`
}

type stsErrorBody struct {
	Code    string `xml:"Error>Code"`
	Message string `xml:"Error>Message"`
}

// postWebIdentity sends an unsigned AssumeRoleWithWebIdentity.
func postWebIdentity(t *testing.T, s *Server, form url.Values) (int, []byte) {
	t.Helper()
	form.Set("Action", "AssumeRoleWithWebIdentity")
	if !form.Has("Version") {
		form.Set("Version", "2011-06-15")
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Post(s.URL()+"/", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

type webFixture struct {
	s      *Server
	rsaKey *rsa.PrivateKey
	ecKey  *ecdsa.PrivateKey
	minted []Minted
}

func newWebFixture(t *testing.T) *webFixture {
	t.Helper()
	f := &webFixture{}
	var err error
	if f.rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if f.ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	f.s = New(t, Options{PlainHTTP: true, OnMint: func(m Minted) error {
		f.minted = append(f.minted, m)
		return nil
	}})
	f.s.AddOIDCProvider(OIDCProvider{Issuer: issuer, ClientIDs: []string{clientID}, Keys: []crypto.PublicKey{&f.rsaKey.PublicKey, &f.ecKey.PublicKey}})
	f.s.AddOIDCProvider(OIDCProvider{Issuer: "https://untrusted.example", ClientIDs: []string{clientID}, Keys: []crypto.PublicKey{&f.rsaKey.PublicKey}})
	f.s.AddRole(Role{ARN: webRole, OIDCIssuers: []string{issuer}, OIDCSubject: webSub})
	f.s.AddRole(Role{ARN: otherRole})
	return f
}

func goodClaims() map[string]any {
	now := time.Now()
	return map[string]any{"iss": issuer, "sub": webSub, "aud": clientID,
		"iat": now.Add(-time.Minute).Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix()}
}

func sign(t *testing.T, key crypto.Signer, claims map[string]any) string {
	t.Helper()
	tok, err := SignJWT(key, claims)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestAssumeRoleWithWebIdentityMints(t *testing.T) {
	for _, alg := range []string{"RS256", "ES256"} {
		t.Run(alg, func(t *testing.T) {
			f := newWebFixture(t)
			var key crypto.Signer = f.rsaKey
			if alg == "ES256" {
				key = f.ecKey
			}
			f.s.SetLifetime(2 * time.Minute)
			claims := goodClaims()
			claims["aud"] = []string{"someone-else", clientID}
			status, body := postWebIdentity(t, f.s, url.Values{"RoleArn": {webRole}, "RoleSessionName": {"app@ns.x"},
				"WebIdentityToken": {sign(t, key, claims)}, "DurationSeconds": {"900"}})
			if status != 200 {
				t.Fatalf("status %d: %s", status, body)
			}
			var r webIdentityResponse
			if err := xml.Unmarshal(body, &r); err != nil {
				t.Fatal(err)
			}
			if r.Subject != webSub || r.Audience != clientID || r.Provider != "oidc.ststest.example" ||
				r.ARN != "arn:aws:sts::123456789012:assumed-role/web/app@ns.x" || !strings.HasPrefix(r.AccessKeyID, "ASIA") {
				t.Errorf("answer %+v", r)
			}
			if len(f.minted) != 1 {
				t.Fatalf("OnMint called %d times", len(f.minted))
			}
			m := f.minted[0]
			if m.AccessKeyID != r.AccessKeyID || m.SecretAccessKey != r.SecretAccessKey || m.SessionToken != r.SessionToken ||
				m.Provider != r.Provider || m.Subject != webSub || m.Audience != clientID || m.RoleARN != webRole {
				t.Errorf("OnMint got %+v, answer %+v", m, r)
			}
			if life := m.Expires.Sub(m.Issued); life != 2*time.Minute {
				t.Errorf("lifetime %v, want SetLifetime's 2m", life)
			}
			if id, ok := f.s.IdentityOf(r.AccessKeyID); !ok || id != r.ARN {
				t.Errorf("IdentityOf(minted) = %q, %v", id, ok)
			}
			c, ok := f.s.LastCall()
			if !ok || c.Action != "AssumeRoleWithWebIdentity" || c.AccessKeyID != "" || c.Issuer != issuer ||
				c.Subject != webSub || c.Audience != clientID || c.DurationSeconds != 900 || c.Error != "" {
				t.Errorf("call %+v", c)
			}
		})
	}
}

func TestAssumeRoleWithWebIdentityRefuses(t *testing.T) {
	f := newWebFixture(t)
	wrongKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	with := func(k string, v any) map[string]any {
		c := goodClaims()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	good := sign(t, f.rsaKey, goodClaims())
	parts := strings.Split(good, ".")
	now := time.Now()
	cases := []struct {
		name   string
		form   url.Values
		status int
		code   string
		msg    string // part of the message
	}{
		{"no role", url.Values{"RoleSessionName": {"s1"}, "WebIdentityToken": {good}}, 400, "ValidationError", "'roleArn'"},
		{"no session name", url.Values{"RoleArn": {webRole}, "WebIdentityToken": {good}}, 400, "ValidationError", "'roleSessionName' failed to satisfy constraint: Member must not be null"},
		{"short session name", url.Values{"RoleArn": {webRole}, "RoleSessionName": {"s"}, "WebIdentityToken": {good}}, 400, "ValidationError", "greater than or equal to 2"},
		{"session name pattern", url.Values{"RoleArn": {webRole}, "RoleSessionName": {"has space"}, "WebIdentityToken": {good}}, 400, "ValidationError", "regular expression pattern"},
		{"long session name", url.Values{"RoleArn": {webRole}, "RoleSessionName": {strings.Repeat("a", 65)}, "WebIdentityToken": {good}}, 400, "ValidationError", "less than or equal to 64"},
		{"no token", url.Values{"RoleArn": {webRole}, "RoleSessionName": {"s1"}}, 400, "ValidationError", "'webIdentityToken'"},
		{"duration too short", url.Values{"RoleArn": {webRole}, "RoleSessionName": {"s1"}, "WebIdentityToken": {good}, "DurationSeconds": {"899"}}, 400, "ValidationError", "greater than or equal to 900"},
		{"duration over the role's max", url.Values{"RoleArn": {webRole}, "RoleSessionName": {"s1"}, "WebIdentityToken": {good}, "DurationSeconds": {"7200"}}, 400, "ValidationError", "MaxSessionDuration"},
		{"not a JWT", url.Values{"RoleArn": {webRole}, "RoleSessionName": {"s1"}, "WebIdentityToken": {"abcd.efgh"}}, 400, "InvalidIdentityToken", "not a valid JWT"},
		{"alg none", url.Values{"RoleArn": {webRole}, "RoleSessionName": {"s1"}, "WebIdentityToken": {b64([]byte(`{"alg":"none"}`)) + "." + parts[1] + "."}}, 400, "InvalidIdentityToken", "algorithm"},
		{"tampered payload", url.Values{"RoleArn": {webRole}, "RoleSessionName": {"s1"}, "WebIdentityToken": {parts[0] + "." + b64([]byte(`{"iss":"`+issuer+`","aud":"`+clientID+`","sub":"x","exp":9999999999}`)) + "." + parts[2]}}, 400, "InvalidIdentityToken", "signature"},
		{"signed by another key", url.Values{"RoleArn": {webRole}, "RoleSessionName": {"s1"}, "WebIdentityToken": {sign(t, wrongKey, goodClaims())}}, 400, "InvalidIdentityToken", "signature"},
		{"unknown issuer", url.Values{"RoleArn": {webRole}, "RoleSessionName": {"s1"}, "WebIdentityToken": {sign(t, f.rsaKey, with("iss", "https://elsewhere.example"))}}, 400, "InvalidIdentityToken", "No OpenIDConnect provider found in your account for https://elsewhere.example"},
		{"wrong audience", url.Values{"RoleArn": {webRole}, "RoleSessionName": {"s1"}, "WebIdentityToken": {sign(t, f.rsaKey, with("aud", "other"))}}, 400, "InvalidIdentityToken", "Incorrect token audience"},
		{"no audience", url.Values{"RoleArn": {webRole}, "RoleSessionName": {"s1"}, "WebIdentityToken": {sign(t, f.rsaKey, with("aud", nil))}}, 400, "InvalidIdentityToken", "Incorrect token audience"},
		{"expired", url.Values{"RoleArn": {webRole}, "RoleSessionName": {"s1"}, "WebIdentityToken": {sign(t, f.rsaKey, with("exp", now.Add(-time.Second).Unix()))}}, 400, "ExpiredTokenException", "Token expired"},
		{"no exp", url.Values{"RoleArn": {webRole}, "RoleSessionName": {"s1"}, "WebIdentityToken": {sign(t, f.rsaKey, with("exp", nil))}}, 400, "InvalidIdentityToken", "exp"},
		{"not yet valid", url.Values{"RoleArn": {webRole}, "RoleSessionName": {"s1"}, "WebIdentityToken": {sign(t, f.rsaKey, with("nbf", now.Add(time.Hour).Unix()))}}, 400, "InvalidIdentityToken", "nbf"},
		{"issued in the future", url.Values{"RoleArn": {webRole}, "RoleSessionName": {"s1"}, "WebIdentityToken": {sign(t, f.rsaKey, with("iat", now.Add(time.Hour).Unix()))}}, 400, "InvalidIdentityToken", "before issued"},
		{"role does not trust the issuer", url.Values{"RoleArn": {otherRole}, "RoleSessionName": {"s1"}, "WebIdentityToken": {good}}, 403, "AccessDenied", "sts:AssumeRoleWithWebIdentity"},
		{"issuer registered, not trusted", url.Values{"RoleArn": {webRole}, "RoleSessionName": {"s1"}, "WebIdentityToken": {sign(t, f.rsaKey, with("iss", "https://untrusted.example"))}}, 403, "AccessDenied", "sts:AssumeRoleWithWebIdentity"},
		{"unknown role", url.Values{"RoleArn": {"arn:aws:iam::123456789012:role/nope"}, "RoleSessionName": {"s1"}, "WebIdentityToken": {good}}, 403, "AccessDenied", "sts:AssumeRoleWithWebIdentity"},
		{"other subject", url.Values{"RoleArn": {webRole}, "RoleSessionName": {"s1"}, "WebIdentityToken": {sign(t, f.rsaKey, with("sub", "system:serviceaccount:default:intruder"))}}, 403, "AccessDenied", "sts:AssumeRoleWithWebIdentity"},
		{"wrong version", url.Values{"Version": {"2010-05-08"}, "RoleArn": {webRole}, "RoleSessionName": {"s1"}, "WebIdentityToken": {good}}, 400, "InvalidAction", "version 2010-05-08"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := postWebIdentity(t, f.s, tc.form)
			var e stsErrorBody
			if err := xml.Unmarshal(body, &e); err != nil {
				t.Fatalf("status %d, body not XML: %v\n%s", status, err, body)
			}
			if status != tc.status || e.Code != tc.code || !strings.Contains(e.Message, tc.msg) {
				t.Errorf("status %d %s %q; want %d %s containing %q", status, e.Code, e.Message, tc.status, tc.code, tc.msg)
			}
			if tok := tc.form.Get("WebIdentityToken"); len(tok) > 10 && strings.Contains(string(body), tok) {
				t.Errorf("the error echoes the token")
			}
		})
	}
	if len(f.minted) != 0 {
		t.Errorf("%d sessions minted by refused calls", len(f.minted))
	}
}

func TestAssumeRoleWithWebIdentityFailures(t *testing.T) {
	f := newWebFixture(t)
	form := func() url.Values {
		return url.Values{"RoleArn": {webRole}, "RoleSessionName": {"s1"}, "WebIdentityToken": {sign(t, f.rsaKey, goodClaims())}}
	}
	f.s.FailNext(FailInternal, 1)
	f.s.FailNext(FailThrottle, 1)
	if status, body := postWebIdentity(t, f.s, form()); status != 500 || !strings.Contains(string(body), "InternalFailure") {
		t.Errorf("FailInternal: %d %s", status, body)
	}
	if status, body := postWebIdentity(t, f.s, form()); status != 400 || !strings.Contains(string(body), "Throttling") {
		t.Errorf("FailThrottle: %d %s", status, body)
	}
	f.s.FailNext(FailExpired, 1)
	status, body := postWebIdentity(t, f.s, form())
	var r webIdentityResponse
	if err := xml.Unmarshal(body, &r); status != 200 || err != nil {
		t.Fatalf("FailExpired: %d %v %s", status, err, body)
	}
	if exp, err := time.Parse(time.RFC3339, r.Expiration); err != nil || exp.After(time.Now()) {
		t.Errorf("FailExpired answered Expiration %q", r.Expiration)
	}
	f.s.FailNext(FailMalformed, 1)
	status, body = postWebIdentity(t, f.s, form())
	if err := xml.Unmarshal(body, &r); status != 200 || err == nil {
		t.Errorf("FailMalformed: %d, XML parsed (%v)", status, err)
	}
	if status, body := postWebIdentity(t, f.s, form()); status != 200 {
		t.Errorf("after the failures: %d %s", status, body)
	}
	var codes []string
	for _, c := range f.s.Calls() {
		codes = append(codes, c.Error)
	}
	if got := strings.Join(codes, ","); got != "InternalFailure,Throttling,,," {
		t.Errorf("call errors %q", got)
	}
}

func TestAssumeRoleWithWebIdentityIgnoresASignature(t *testing.T) {
	f := newWebFixture(t)
	form := url.Values{"Action": {"AssumeRoleWithWebIdentity"}, "Version": {"2011-06-15"}, "RoleArn": {webRole},
		"RoleSessionName": {"s1"}, "WebIdentityToken": {sign(t, f.rsaKey, goodClaims())}}
	req, err := http.NewRequest(http.MethodPost, f.s.URL()+"/", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIANOBODY/20260101/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=00")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("status %d, want 200: the token is the credential", resp.StatusCode)
	}
}

func FuzzCheckToken(f *testing.F) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	good, err := SignJWT(key, goodClaims())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add("a.b.c")
	f.Add(b64([]byte(`{"alg":"ES256"}`)) + "." + b64([]byte(`{"iss":"`+issuer+`","aud":[1,2],"exp":"x"}`)) + ".")
	f.Add("...")
	providers := map[string]OIDCProvider{issuer: {Issuer: issuer, ClientIDs: []string{clientID}, Keys: []crypto.PublicKey{&key.PublicKey}}}
	f.Fuzz(func(t *testing.T, token string) {
		_, aud, e := checkToken(token, providers, time.Now())
		if e == nil && aud != clientID {
			t.Errorf("accepted with audience %q", aud)
		}
		if e != nil && len(token) > 8 && strings.Contains(e.message, token) {
			t.Errorf("the error echoes the token")
		}
	})
}

func TestCertificatePEMIsTheServedCertificate(t *testing.T) {
	s := New(t, Options{})
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.CertificatePEM()) {
		t.Fatalf("CertificatePEM is not PEM: %q", s.CertificatePEM())
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Post(s.URL()+"/", "application/x-www-form-urlencoded", strings.NewReader("Action=GetCallerIdentity&Version=2011-06-15"))
	if err != nil {
		t.Fatalf("TLS with the PEM as the only root: %v", err)
	}
	resp.Body.Close()
	if New(t, Options{PlainHTTP: true}).CertificatePEM() != nil {
		t.Errorf("a plain HTTP fake has a certificate")
	}
}
