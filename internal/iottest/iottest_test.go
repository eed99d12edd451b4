package iottest_test

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/signet-proxy/signet/internal/iottest"
)

const (
	alias = "signet-device-role"
	role  = "arn:aws:iam::123456789012:role/Device"
)

// client is an mTLS client of the fake with cert (nil: none).
func client(s *iottest.Server, cert *iottest.Client, serverName string) *http.Client {
	cfg := &tls.Config{RootCAs: s.RootCAs(), ServerName: serverName, MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{{Certificate: [][]byte{cert.Cert.Raw}, PrivateKey: cert.Key}}
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, TLSClientConfig: cfg}}
}

func get(t *testing.T, c *http.Client, s *iottest.Server, method, path, thing string) (int, map[string]any, error) {
	t.Helper()
	req, err := http.NewRequest(method, "https://"+s.Addr()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if thing != "" {
		req.Header.Set("x-amzn-iot-thingname", thing)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m, nil
}

// TestFakeIsStrict: each check of the fake refuses what AWS refuses.
func TestFakeIsStrict(t *testing.T) {
	var minted []iottest.Minted
	s := iottest.New(t, iottest.Options{OnMint: func(m iottest.Minted) error { minted = append(minted, m); return nil }})
	s.AddRoleAlias(alias, role)
	dev := s.CA().ClientCert(t, iottest.ClientOptions{Key: iottest.RSA})
	other := s.CA().ClientCert(t, iottest.ClientOptions{})
	s.AttachThing("thing-1", dev.Cert)
	s.AttachThing("thing-2", other.Cert)
	stranger := iottest.NewCA(t, "unknown CA").ClientCert(t, iottest.ClientOptions{})
	expired := s.CA().ClientCert(t, iottest.ClientOptions{Expired: true})
	ok := "/role-aliases/" + alias + "/credentials"

	for _, tc := range []struct {
		name string
		cert *iottest.Client
		sni  string
	}{{"no client certificate", nil, "localhost"}, {"certificate of another CA", stranger, "localhost"},
		{"expired certificate", expired, "localhost"}, {"wrong SNI", dev, "example.com"}} {
		c := client(s, tc.cert, tc.sni)
		// Only the fake's SNI check can refuse example.com.
		c.Transport.(*http.Transport).TLSClientConfig.InsecureSkipVerify = tc.sni != "localhost"
		if code, _, err := get(t, c, s, "GET", ok, ""); err == nil {
			t.Errorf("%s: answered %d, want a failed handshake", tc.name, code)
		}
	}

	c := client(s, dev, "localhost")
	for _, tc := range []struct {
		name, method, path, thing string
		status                    int
		message                   string
	}{
		{"POST", "POST", ok, "", 405, ""},
		{"other path", "GET", "/role-aliases/" + alias, "", 404, ""},
		{"unknown alias", "GET", "/role-aliases/nope/credentials", "", 404, iottest.MsgRoleAliasNotFound},
		{"thing of another certificate", "GET", ok, "thing-2", 403, iottest.MsgInvalidThingName},
		{"unknown thing", "GET", ok, "thing-9", 403, iottest.MsgInvalidThingName},
	} {
		code, m, err := get(t, c, s, tc.method, tc.path, tc.thing)
		if err != nil || code != tc.status || (tc.message != "" && m["message"] != tc.message) {
			t.Errorf("%s: %d %v (%v), want %d %q", tc.name, code, m, err, tc.status, tc.message)
		}
	}
	if len(minted) != 0 {
		t.Fatalf("minted %d sessions for refused requests", len(minted))
	}

	s.SetLifetime(20 * time.Minute)
	code, m, err := get(t, c, s, "GET", ok, "thing-1")
	if err != nil || code != 200 {
		t.Fatalf("good request: %d %v %v", code, m, err)
	}
	creds, _ := m["credentials"].(map[string]any)
	exp, perr := time.Parse(time.RFC3339, creds["expiration"].(string))
	if len(minted) != 1 || creds["accessKeyId"] != minted[0].AccessKeyID || creds["sessionToken"] != minted[0].SessionToken ||
		perr != nil || time.Until(exp) < 19*time.Minute || minted[0].ThingName != "thing-1" || minted[0].RoleARN != role ||
		minted[0].CertificateID != iottest.Fingerprint(dev.Cert) {
		t.Errorf("answer %v does not match the minted session %+v", creds, minted)
	}

	for _, f := range []struct {
		f      iottest.Failure
		status int
		check  func(body map[string]any) bool
	}{
		{iottest.FailAccessDenied, 403, func(b map[string]any) bool { return b["message"] == iottest.MsgAccessDenied }},
		{iottest.FailNotFound, 404, func(b map[string]any) bool { return b["message"] == iottest.MsgRoleAliasNotFound }},
		{iottest.FailAssumeRole, 400, func(b map[string]any) bool { return b["message"] == iottest.MsgCannotAssumeRole }},
		{iottest.FailInternal, 500, func(b map[string]any) bool { return b["message"] != nil }},
		{iottest.FailMalformed, 200, func(b map[string]any) bool { return b == nil }},
		{iottest.FailIncomplete, 200, func(b map[string]any) bool {
			cr, _ := b["credentials"].(map[string]any)
			return cr != nil && cr["sessionToken"] == nil && cr["accessKeyId"] != nil
		}},
	} {
		s.FailNext(f.f, 1)
		code, m, err := get(t, c, s, "GET", ok, "")
		if err != nil || code != f.status || !f.check(m) {
			t.Errorf("failure %d: %d %v %v", f.f, code, m, err)
		}
	}
	if len(minted) != 1 {
		t.Errorf("failed calls minted sessions: %d", len(minted))
	}

	s2 := iottest.New(t, iottest.Options{CA: s.CA(), OnMint: func(iottest.Minted) error { return errors.New("verifier down") }})
	s2.AddRoleAlias(alias, role)
	if code, m, err := get(t, client(s2, dev, "127.0.0.1"), s2, "GET", ok, ""); err != nil || code != 500 || !strings.Contains(m["message"].(string), "verifier down") {
		t.Errorf("OnMint error: %d %v %v", code, m, err)
	}

	calls := s.Calls()
	if len(calls) == 0 || calls[0].ServerName != "localhost" || calls[0].CertificateID != iottest.Fingerprint(dev.Cert) {
		t.Errorf("calls not recorded: %+v", calls)
	}
}

// TestMoreFailures: FailHang holds the request until the client gives
// up, FailNotJSON answers a page no JSON parser takes, FailExpired mints
// (OnMint sees it) and answers a session that is over.
func TestMoreFailures(t *testing.T) {
	var minted []iottest.Minted
	s := iottest.New(t, iottest.Options{OnMint: func(m iottest.Minted) error { minted = append(minted, m); return nil }})
	s.AddRoleAlias(alias, role)
	dev := s.CA().ClientCert(t, iottest.ClientOptions{})
	c := client(s, dev, "localhost")
	path := "/role-aliases/" + alias + "/credentials"

	c.Timeout = 300 * time.Millisecond
	s.FailNext(iottest.FailHang, 1)
	start := time.Now()
	if code, _, err := get(t, c, s, "GET", path, ""); err == nil {
		t.Errorf("FailHang answered %d", code)
	} else if took := time.Since(start); took < 300*time.Millisecond {
		t.Errorf("FailHang ended after %s, before the client gave up", took)
	}
	c.Timeout = 5 * time.Second

	s.FailNext(iottest.FailNotJSON, 1)
	if code, m, err := get(t, c, s, "GET", path, ""); err != nil || code != 200 || m != nil {
		t.Errorf("FailNotJSON: %d %v %v", code, m, err)
	}
	if len(minted) != 0 {
		t.Fatalf("FailHang or FailNotJSON minted %d sessions", len(minted))
	}

	s.FailNext(iottest.FailExpired, 1)
	code, m, err := get(t, c, s, "GET", path, "")
	cr, _ := m["credentials"].(map[string]any)
	if err != nil || code != 200 || cr == nil {
		t.Fatalf("FailExpired: %d %v %v", code, m, err)
	}
	exp, perr := time.Parse(time.RFC3339, cr["expiration"].(string))
	if perr != nil || exp.After(time.Now()) || len(minted) != 1 || !minted[0].Expires.Truncate(time.Second).Equal(exp) ||
		cr["accessKeyId"] != minted[0].AccessKeyID {
		t.Errorf("FailExpired answered %v (%v), minted %+v", cr, perr, minted)
	}
	calls := s.Calls()
	if len(calls) != 3 || calls[0].Status != -1 || calls[1].Status != 200 || calls[2].Status != 200 {
		t.Errorf("calls %+v", calls)
	}
	if code, _, err := get(t, c, s, "GET", path, ""); err != nil || code != 200 || len(minted) != 2 {
		t.Errorf("after the failures: %d %v, %d minted", code, err, len(minted))
	}
}
