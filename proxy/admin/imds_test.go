package admin_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/signet-proxy/signet/proxy/admin"
)

const (
	ttlHeader   = "X-aws-ec2-metadata-token-ttl-seconds"
	tokenHeader = "X-aws-ec2-metadata-token"
	credsPath   = "/latest/meta-data/iam/security-credentials/"
)

func TestIMDS(t *testing.T) {
	f := newFixture(t)
	h := f.handler(t, func(o *admin.Options) { o.IMDS = true })
	rec := do(h, "PUT", "/latest/api/token", map[string]string{ttlHeader: "60"})
	if rec.Code != 200 || rec.Header().Get(ttlHeader) != "60" || rec.Body.Len() < 40 {
		t.Fatalf("token: %d %q %q", rec.Code, rec.Header().Get(ttlHeader), rec.Body)
	}
	tok := rec.Body.String()
	with := map[string]string{tokenHeader: tok}

	tests := []struct {
		name, method, path string
		header             map[string]string
		host               string
		status             int
		body               string
	}{
		{"token without ttl", "PUT", "/latest/api/token", nil, "", 400, ""},
		{"token ttl zero", "PUT", "/latest/api/token", map[string]string{ttlHeader: "0"}, "", 400, ""},
		{"token ttl too long", "PUT", "/latest/api/token", map[string]string{ttlHeader: "21601"}, "", 400, ""},
		{"token ttl not a number", "PUT", "/latest/api/token", map[string]string{ttlHeader: "1h"}, "", 400, ""},
		{"token ttl longest", "PUT", "/latest/api/token", map[string]string{ttlHeader: "21600"}, "", 200, ""},
		{"token by GET", "GET", "/latest/api/token", map[string]string{ttlHeader: "60"}, "", 405, ""},
		{"token through a proxy", "PUT", "/latest/api/token", map[string]string{ttlHeader: "60", "X-Forwarded-For": "10.0.0.9"}, "", 403, ""},
		{"token by DNS rebinding", "PUT", "/latest/api/token", map[string]string{ttlHeader: "60"}, "attacker.example:8081", 403, ""},
		{"token for localhost", "PUT", "/latest/api/token", map[string]string{ttlHeader: "60"}, "localhost:8081", 200, ""},
		{"token for ipv6", "PUT", "/latest/api/token", map[string]string{ttlHeader: "60"}, "[::1]:8081", 200, ""},
		{"role without session (IMDSv1)", "GET", credsPath, nil, "", 401, ""},
		{"role with bad session", "GET", credsPath, map[string]string{tokenHeader: tamper(tok)}, "", 401, ""},
		{"role with garbage session", "GET", credsPath, map[string]string{tokenHeader: "%%%"}, "", 401, ""},
		{"role", "GET", credsPath, with, "", 200, "prod"},
		{"role through a proxy", "GET", credsPath, map[string]string{tokenHeader: tok, "X-Forwarded-For": "10.0.0.9"}, "", 403, ""},
		{"other role", "GET", credsPath + "ci", with, "", 404, ""},
		{"other metadata", "GET", "/latest/meta-data/instance-id", with, "", 404, ""},
		{"credentials by PUT", "PUT", credsPath + "prod", with, "", 405, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, tt.path, nil)
			r.Host = "169.254.169.254"
			if tt.host != "" {
				r.Host = tt.host
			}
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code != tt.status || (tt.body != "" && rec.Body.String() != tt.body) {
				t.Errorf("%d %q; want %d %q", rec.Code, rec.Body, tt.status, tt.body)
			}
			noSecrets(t, "answer", rec.Body.String())
		})
	}

	rec = do(h, "GET", credsPath+"prod", with)
	var doc map[string]string
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil || rec.Code != 200 {
		t.Fatalf("%d %s: %v", rec.Code, rec.Body, err)
	}
	want := map[string]string{
		"Code": "Success", "Type": "AWS-HMAC", "LastUpdated": "2030-06-01T12:00:00Z",
		"AccessKeyId": keyID, "SecretAccessKey": secret, "Token": session, "Expiration": "2030-06-01T13:00:00Z",
	}
	for k, v := range want {
		if doc[k] != v {
			t.Errorf("%s = %q, want %q", k, doc[k], v)
		}
	}

	// A session token dies at its TTL.
	f.clk.Add(61 * time.Second)
	if rec := do(h, "GET", credsPath, with); rec.Code != 401 {
		t.Errorf("expired session: %d", rec.Code)
	}
	// Keys that never expire get an hour, the IMDS format having no "never".
	cat := f.cat
	cat.IMDSSource = "ci"
	h.SetCatalog(cat)
	tok = do(h, "PUT", "/latest/api/token", map[string]string{ttlHeader: "60"}).Body.String()
	rec = do(h, "GET", credsPath+"ci", map[string]string{tokenHeader: tok})
	if !strings.Contains(rec.Body.String(), `"Expiration":"2030-06-01T13:01:01Z"`) {
		t.Errorf("static keys: %s", rec.Body)
	}
	logs := f.logs.String()
	noSecrets(t, "logs", logs)
	if strings.Contains(logs, tok) {
		t.Error("a session token was logged")
	}
}

// With IMDS off, /latest/ is just an unknown path.
func TestIMDSOff(t *testing.T) {
	f := newFixture(t)
	h := f.handler(t, nil)
	if rec := do(h, "PUT", "/latest/api/token", map[string]string{ttlHeader: "60"}); rec.Code != 404 {
		t.Errorf("%d %s", rec.Code, rec.Body)
	}
}

// FuzzIMDSSession: no session token but one the endpoint made opens the
// credentials.
func FuzzIMDSSession(f *testing.F) {
	fx := newFixture(f)
	h, err := admin.New(admin.Options{Catalog: fx.cat, IMDS: true, Now: fx.clk.Now})
	if err != nil {
		f.Fatal(err)
	}
	f.Add("")
	f.Add("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add(strings.Repeat("_", 54))
	minted := do(h, "PUT", "/latest/api/token", map[string]string{ttlHeader: "5"}).Body.String()
	f.Add(minted)
	f.Add(tamper(minted))
	f.Add(minted[:len(minted)-1] + "B") // the same bytes, if padding bits were ignored
	f.Fuzz(func(t *testing.T, tok string) {
		r := httptest.NewRequest("GET", credsPath, nil)
		r.Host = "169.254.169.254"
		r.Header[http.CanonicalHeaderKey(tokenHeader)] = []string{tok}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if (rec.Code == 200) != (tok == minted) {
			t.Fatalf("session %q: %d", tok, rec.Code)
		}
	})
}

// tamper changes one character in the middle of a token (in the MAC).
func tamper(tok string) string {
	b := []byte(tok)
	if b[30] == 'A' {
		b[30] = 'B'
	} else {
		b[30] = 'A'
	}
	return string(b)
}

// FuzzIMDSTokenTTL: a session is issued exactly for a whole number of
// seconds from 1 to 21600, and says so.
func FuzzIMDSTokenTTL(f *testing.F) {
	fx := newFixture(f)
	h, err := admin.New(admin.Options{Catalog: fx.cat, IMDS: true, Now: fx.clk.Now})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"1", "21600", "21601", "0", "-1", "+60", "1e3", " 60", "99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ttl string) {
		r := httptest.NewRequest("PUT", "/latest/api/token", nil)
		r.Host = "169.254.169.254"
		r.Header[http.CanonicalHeaderKey(ttlHeader)] = []string{ttl}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		n, err := strconv.Atoi(ttl)
		ok := err == nil && n >= 1 && n <= 21600
		if (rec.Code == 200) != ok {
			t.Fatalf("ttl %q: %d", ttl, rec.Code)
		}
		if ok && rec.Header().Get(ttlHeader) != strconv.Itoa(n) {
			t.Fatalf("ttl %q answered as %q", ttl, rec.Header().Get(ttlHeader))
		}
	})
}
