package credentials

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signet-proxy/signet/internal/iottest"
)

const (
	iotHost     = "c1a2b3d4e5f6g7.credentials.iot.eu-central-1.amazonaws.com"
	iotAlias    = "signet-device-role"
	iotRole     = "arn:aws:iam::123456789012:role/Device"
	iotThing    = "sensor-42"
	fixturePass = "signet-fixture-passphrase"
)

// iotFake is the fake credentials provider under a real-looking name,
// which the provider dials at the fake's loopback address.
type iotFake struct {
	*iottest.Server
	dev  *iottest.Client // attached to iotThing
	dir  string
	cert string // dev's certificate chain file
	key  string // dev's key file (PKCS#8)
}

func newIoTFake(t *testing.T, o iottest.Options) *iotFake {
	t.Helper()
	o.ServerNames = []string{iotHost}
	s := iottest.New(t, o)
	s.AddRoleAlias(iotAlias, iotRole)
	f := &iotFake{Server: s, dir: t.TempDir()}
	f.dev = s.CA().ClientCert(t, iottest.ClientOptions{})
	s.AttachThing(iotThing, f.dev.Cert)
	f.cert = f.write(t, "cert.pem", f.dev.CertPEM)
	f.key = f.write(t, "key.pem", f.dev.PKCS8PEM(t))
	return f
}

func (f *iotFake) write(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(f.dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// opts are options that work against f; tests change what they test.
func (f *iotFake) opts() IoTOptions {
	addr := f.Addr()
	return IoTOptions{
		Endpoint:    iotHost,
		RoleAlias:   iotAlias,
		ThingName:   iotThing,
		Certificate: f.cert,
		PrivateKey:  f.key,
		RootCAs:     f.RootCAs(),
		Timeout:     5 * time.Second,
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			if a != iotHost+":443" {
				return nil, errors.New("test dialer: unexpected address " + a)
			}
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}
}

func TestParsePrivateKeyPEM(t *testing.T) {
	ca := iottest.NewCA(t, "ca")
	rsaDev := ca.ClientCert(t, iottest.ClientOptions{Key: iottest.RSA})
	ecDev := ca.ClientCert(t, iottest.ClientOptions{Key: iottest.EC})
	fixture := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", "iot", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	fixtureKey := func(name string) crypto.PublicKey {
		k, err := ParsePrivateKeyPEM(fixture(name), nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return k.Public()
	}
	tests := []struct {
		name       string
		pem        []byte
		passphrase string
		want       crypto.PublicKey // nil: an error is wanted
		wantErr    error
		contains   string
	}{
		{"PKCS#1 RSA", rsaDev.PKCS1PEM(t), "", rsaDev.Key.Public(), nil, ""},
		{"SEC1 EC with EC PARAMETERS", ecDev.SEC1PEM(t), "", ecDev.Key.Public(), nil, ""},
		{"PKCS#8 RSA", rsaDev.PKCS8PEM(t), "", rsaDev.Key.Public(), nil, ""},
		{"PKCS#8 EC", ecDev.PKCS8PEM(t), "", ecDev.Key.Public(), nil, ""},
		{"PKCS#8 after a certificate", append(ecDev.CertPEM, ecDev.PKCS8PEM(t)...), "", ecDev.Key.Public(), nil, ""},
		{"encrypted PKCS#8 EC", ecDev.EncryptedPKCS8PEM(t, "right"), "right", ecDev.Key.Public(), nil, ""},
		{"encrypted PKCS#8 RSA", rsaDev.EncryptedPKCS8PEM(t, "right"), "right", rsaDev.Key.Public(), nil, ""},
		{"encrypted PKCS#8 wrong passphrase", ecDev.EncryptedPKCS8PEM(t, "right"), "not-the-passphrase-7x", nil, ErrKeyPassphrase, "does not decrypt"},
		{"encrypted PKCS#8 no passphrase", ecDev.EncryptedPKCS8PEM(t, "right"), "", nil, ErrKeyPassphrase, "private_key_passphrase_file"},
		// OpenSSL's own encryption, so that a mistake made the same way
		// in the helper and the reader cannot hide.
		{"openssl aes-256-cbc sha256", fixture("ec-aes256-sha256.pem"), fixturePass, fixtureKey("ec.pem"), nil, ""},
		{"openssl aes-128-cbc sha256 RSA", fixture("rsa-aes128-sha256.pem"), fixturePass, fixtureKey("rsa.pem"), nil, ""},
		{"openssl wrong passphrase", fixture("rsa-aes128-sha256.pem"), fixturePass + "x", nil, ErrKeyPassphrase, ""},
		{"openssl hmacWithSHA1", fixture("ec-sha1.pem"), fixturePass, nil, ErrKeyEncryption, "HMAC-SHA1"},
		{"openssl PBES1", fixture("ec-pbes1.pem"), fixturePass, nil, ErrKeyEncryption, "PBES1"},
		{"openssl scrypt", fixture("ec-scrypt.pem"), fixturePass, nil, ErrKeyEncryption, "scrypt"},
		{"openssl legacy PEM encryption", fixture("rsa-legacy.pem"), fixturePass, nil, ErrKeyEncryption, "Proc-Type"},
		{"no key", ecDev.CertPEM, "", nil, nil, "no PEM private key"},
		{"damaged PKCS#8", []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), "", nil, nil, "PKCS#8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParsePrivateKeyPEM(tt.pem, []byte(tt.passphrase))
			if tt.want != nil {
				if err != nil {
					t.Fatal(err)
				}
				if !k.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(tt.want) {
					t.Fatal("parsed a different key")
				}
				switch k.(type) {
				case *rsa.PrivateKey, *ecdsa.PrivateKey:
				default:
					t.Errorf("key type %T", k)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v is not %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.contains) {
				t.Errorf("error %q does not contain %q", err, tt.contains)
			}
			if tt.passphrase != "" && strings.Contains(err.Error(), tt.passphrase) {
				t.Errorf("error shows the passphrase: %v", err)
			}
		})
	}
}

func TestNewIoTChecks(t *testing.T) {
	f := newIoTFake(t, iottest.Options{})
	otherKey := f.write(t, "other.pem", f.CA().ClientCert(t, iottest.ClientOptions{}).PKCS8PEM(t))
	expired := f.CA().ClientCert(t, iottest.ClientOptions{Expired: true})
	expiredCert := f.write(t, "expired.pem", expired.CertPEM)
	expiredKey := f.write(t, "expired-key.pem", expired.PKCS8PEM(t))
	tests := []struct {
		name     string
		change   func(*IoTOptions)
		contains []string
	}{
		{"key of another certificate", func(o *IoTOptions) { o.PrivateKey = otherKey }, []string{"certificate and key do not match"}},
		{"signer of another certificate", func(o *IoTOptions) {
			o.PrivateKey, o.Signer = "", f.CA().ClientCert(t, iottest.ClientOptions{Key: iottest.RSA}).Key
		}, []string{"certificate and key do not match"}},
		{"expired certificate", func(o *IoTOptions) { o.Certificate, o.PrivateKey = expiredCert, expiredKey },
			[]string{"expired at " + expired.Cert.NotAfter.UTC().Format(time.RFC3339) + " (NotAfter)", expiredCert}},
		{"no key", func(o *IoTOptions) { o.PrivateKey = "" }, []string{"a private key is required"}},
		{"two keys", func(o *IoTOptions) { o.Signer = f.dev.Key }, []string{"cannot both be given"}},
		{"key file missing", func(o *IoTOptions) { o.PrivateKey = filepath.Join(f.dir, "nope.pem") }, []string{"nope.pem"}},
		{"certificate file is a key", func(o *IoTOptions) { o.Certificate = f.key }, []string{"no PEM CERTIFICATE"}},
		{"no role alias", func(o *IoTOptions) { o.RoleAlias = "" }, []string{"role_alias is required"}},
		{"http endpoint", func(o *IoTOptions) { o.Endpoint = "http://" + iotHost }, []string{"only https"}},
		{"endpoint with path", func(o *IoTOptions) { o.Endpoint = "https://" + iotHost + "/role-aliases" }, []string{"without path"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := f.opts()
			tt.change(&o)
			p, err := NewIoT(o)
			if err == nil {
				p.Close()
				t.Fatal("no error")
			}
			for _, c := range tt.contains {
				if !strings.Contains(err.Error(), c) {
					t.Errorf("error %q does not contain %q", err, c)
				}
			}
		})
	}
	if _, err := NewIoT(func() IoTOptions { o := f.opts(); o.PrivateKey = otherKey; return o }()); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("mismatch error %v is not ErrKeyMismatch", err)
	}
	if len(f.Calls()) != 0 {
		t.Errorf("NewIoT called the endpoint")
	}
}

// TestIoTRetrieve: credentials over mTLS with every kind of key, the thing
// name sent, SNI the endpoint's name, and one connection for many calls.
func TestIoTRetrieve(t *testing.T) {
	var minted []iottest.Minted
	f := newIoTFake(t, iottest.Options{OnMint: func(m iottest.Minted) error { minted = append(minted, m); return nil }})
	f.SetLifetime(30 * time.Minute)
	rsaDev := f.CA().ClientCert(t, iottest.ClientOptions{Key: iottest.RSA})
	f.AttachThing("rsa-thing", rsaDev.Cert)
	ecDev := f.CA().ClientCert(t, iottest.ClientOptions{Key: iottest.EC})
	f.AttachThing("ec-thing", ecDev.Cert)
	tests := []struct {
		name   string
		dev    *iottest.Client
		thing  string
		key    []byte
		pass   string
		signer crypto.Signer
	}{
		{"PKCS#1 RSA", rsaDev, "rsa-thing", rsaDev.PKCS1PEM(t), "", nil},
		{"SEC1 EC", ecDev, "ec-thing", ecDev.SEC1PEM(t), "", nil},
		{"PKCS#8 RSA", rsaDev, "rsa-thing", rsaDev.PKCS8PEM(t), "", nil},
		{"PKCS#8 EC", ecDev, "ec-thing", ecDev.PKCS8PEM(t), "", nil},
		{"encrypted PKCS#8 EC", ecDev, "ec-thing", ecDev.EncryptedPKCS8PEM(t, "pw"), "pw", nil},
		{"crypto.Signer RSA", rsaDev, "rsa-thing", nil, "", rsaDev.Key},
		{"crypto.Signer EC, no thing name", ecDev, "", nil, "", ecDev.Key},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := f.opts()
			o.Certificate = f.write(t, "c"+string(rune('a'+i))+".pem", tt.dev.CertPEM)
			o.PrivateKey, o.Signer, o.Passphrase, o.ThingName = "", tt.signer, []byte(tt.pass), tt.thing
			if tt.key != nil {
				o.PrivateKey = f.write(t, "k"+string(rune('a'+i))+".pem", tt.key)
			}
			p, err := NewIoT(o)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			conns := f.Conns()
			for n := range 3 {
				c, err := p.Retrieve(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				m := minted[len(minted)-1]
				if c.AccessKeyID != m.AccessKeyID || c.SecretAccessKey != m.SecretAccessKey || c.SessionToken != m.SessionToken ||
					!c.Expires.Equal(m.Expires.Truncate(time.Second)) || c.Origin != "iot:"+iotAlias || c.Identity != "" {
					t.Fatalf("call %d: got %v (origin %q), minted %s expiring %s", n, c, c.Origin, m.AccessKeyID, m.Expires)
				}
				if m.ThingName != tt.thing || m.CertificateID != iottest.Fingerprint(tt.dev.Cert) || m.RoleARN != iotRole {
					t.Errorf("minted for thing %q cert %s role %s", m.ThingName, m.CertificateID, m.RoleARN)
				}
			}
			calls := f.Calls()
			last := calls[len(calls)-1]
			if last.ServerName != iotHost || last.Path != "/role-aliases/"+iotAlias+"/credentials" || last.Method != "GET" || last.TLSVersion < 0x0303 {
				t.Errorf("call %+v", last)
			}
			if n := f.Conns() - conns; n != 1 {
				t.Errorf("3 calls took %d connections, want 1 (the client is reused)", n)
			}
		})
	}
}

// TestIoTErrors: every failure is an error (never credentials) that says
// what happened, with AWS's message and what to check.
func TestIoTErrors(t *testing.T) {
	f := newIoTFake(t, iottest.Options{})
	stranger := iottest.NewCA(t, "not registered with IoT").ClientCert(t, iottest.ClientOptions{})
	strangerCert, strangerKey := f.write(t, "s.pem", stranger.CertPEM), f.write(t, "sk.pem", stranger.PKCS8PEM(t))
	other := f.CA().ClientCert(t, iottest.ClientOptions{})
	f.AttachThing("someone-else", other.Cert)
	tests := []struct {
		name     string
		fail     iottest.Failure
		change   func(*IoTOptions)
		status   int // of an *IoTError; 0 when another error is wanted
		contains []string
	}{
		{"endpoint of an unknown CA", 0, func(o *IoTOptions) { o.RootCAs = iottest.NewCA(t, "x").Pool() }, 0,
			[]string{"not signed by a trusted CA", "check endpoint"}},
		{"client certificate of an unknown CA", 0, func(o *IoTOptions) { o.Certificate, o.PrivateKey = strangerCert, strangerKey }, 0,
			[]string{"refused the client certificate", "registered with AWS IoT"}},
		{"access denied", iottest.FailAccessDenied, nil, 403, []string{iottest.MsgAccessDenied, "iot:AssumeRoleWithCertificate"}},
		{"thing not attached", 0, func(o *IoTOptions) { o.ThingName = "someone-else" }, 403,
			[]string{iottest.MsgInvalidThingName, "check thing_name", "attach-thing-principal"}},
		{"unknown role alias", 0, func(o *IoTOptions) { o.RoleAlias = "nope" }, 404, []string{iottest.MsgRoleAliasNotFound, "check role_alias"}},
		{"role alias gone", iottest.FailNotFound, nil, 404, []string{iottest.MsgRoleAliasNotFound}},
		{"cannot assume role", iottest.FailAssumeRole, nil, 400, []string{iottest.MsgCannotAssumeRole, "trust policy", "credentialDurationSeconds"}},
		{"internal error", iottest.FailInternal, nil, 500, []string{iottest.MsgInternal, "retries with backoff"}},
		{"malformed JSON", iottest.FailMalformed, nil, 0, []string{"not the credentials provider's JSON"}},
		{"incomplete JSON", iottest.FailIncomplete, nil, 0, []string{"without complete credentials"}},
		{"nothing listening", 0, func(o *IoTOptions) {
			o.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, "127.0.0.1:1")
			}
		}, 0, []string{"cannot reach it"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := f.opts()
			if tt.change != nil {
				tt.change(&o)
			}
			p, err := NewIoT(o)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if tt.fail != 0 {
				f.FailNext(tt.fail, 1)
			}
			c, err := p.Retrieve(context.Background())
			if err == nil {
				t.Fatalf("no error; got %v", c)
			}
			if c != (Credentials{}) {
				t.Errorf("credentials %v came with the error", c)
			}
			var ie *IoTError
			if isIoT := errors.As(err, &ie); isIoT != (tt.status != 0) || (isIoT && ie.Status != tt.status) {
				t.Errorf("error %v: IoTError %v, status %d; want status %d", err, isIoT, statusOf(ie), tt.status)
			}
			for _, s := range append(tt.contains, "iot: role alias "+o.RoleAlias) {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
}

func statusOf(e *IoTError) int {
	if e == nil {
		return 0
	}
	return e.Status
}

// TestIoTAnswerChecks: answers the fake never gives, from a plain TLS
// server that asks for no client certificate.
func TestIoTAnswerChecks(t *testing.T) {
	var body string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if body == "big" {
			_, _ = w.Write([]byte(`{"credentials":{"accessKeyId":"` + strings.Repeat("A", 100<<10) + `"}}`))
			return
		}
		_, _ = w.Write([]byte(body))
	}))
	defer srv.Close()
	dev := iottest.NewCA(t, "ca").ClientCert(t, iottest.ClientOptions{})
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	_ = os.WriteFile(cert, dev.CertPEM, 0o600)
	_ = os.WriteFile(key, dev.PKCS8PEM(t), 0o600)
	past := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	for _, tt := range []struct{ body, contains string }{
		{"big", "larger than"},
		{`{"credentials":{"accessKeyId":"ASIA1","secretAccessKey":"s","sessionToken":"t","expiration":"` + past + `"}}`, "expired at"},
		{`{"credentials":{"accessKeyId":"ASIA1","secretAccessKey":"s","sessionToken":"t","expiration":"tomorrow"}}`, "not an RFC 3339 time"},
		{`{"credentials":{"accessKeyId":"ASIA1","secretAccessKey":"s","sessionToken":"t","expiration":"2099-01-01T00:00:00Z"}} trailing`, "not the credentials provider's JSON"},
		{`{}`, "without complete credentials"},
	} {
		body = tt.body
		p, err := NewIoT(IoTOptions{Endpoint: srv.URL, RoleAlias: "a", Certificate: cert, PrivateKey: key, RootCAs: poolOf(srv)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Retrieve(context.Background()); err == nil || !strings.Contains(err.Error(), tt.contains) {
			t.Errorf("body %.60q: error %v, want %q", tt.body, err, tt.contains)
		}
		p.Close()
	}
}

func poolOf(srv *httptest.Server) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(srv.Certificate())
	return p
}

func TestParseIoTEndpoint(t *testing.T) {
	tests := []struct{ in, host, hostPort, err string }{
		{iotHost, iotHost, iotHost + ":443", ""},
		{iotHost + ":8443", iotHost, iotHost + ":8443", ""},
		{"https://" + iotHost, iotHost, iotHost + ":443", ""},
		{"https://" + iotHost + "/", iotHost, iotHost + ":443", ""},
		{"https://127.0.0.1:9443", "127.0.0.1", "127.0.0.1:9443", ""},
		{"[::1]:9443", "::1", "[::1]:9443", ""},
		{"", "", "", "required"},
		{"http://" + iotHost, "", "", "only https"},
		{"https://u:p@" + iotHost, "", "", "without path"},
		{"https://" + iotHost + "/x", "", "", "without path"},
		{iotHost + ":0", "", "", "invalid port"},
		{iotHost + ":https", "", "", "invalid port"},
		{iotHost + "/x", "", "", "no valid host"},
	}
	for _, tt := range tests {
		host, hp, err := ParseIoTEndpoint(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: error %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || host != tt.host || hp != tt.hostPort {
			t.Errorf("%q: %q %q %v, want %q %q", tt.in, host, hp, err, tt.host, tt.hostPort)
		}
	}
}

func TestIoTEndpointRegion(t *testing.T) {
	for in, want := range map[string]string{
		iotHost: "eu-central-1",
		"https://abc.credentials.iot.us-gov-west-1.amazonaws.com:443": "us-gov-west-1",
		"abc.credentials.iot.cn-north-1.amazonaws.com.cn":             "cn-north-1",
		"ABC.Credentials.IoT.us-east-1.AmazonAWS.com":                 "us-east-1",
		"localhost:8443":                      "",
		"abc-ats.iot.us-east-1.amazonaws.com": "",
	} {
		if got := IoTEndpointRegion(in); got != want {
			t.Errorf("%s: %q, want %q", in, got, want)
		}
	}
}

// TestIoTSessionReuse: a refresh after the idle connection was dropped
// resumes the TLS session instead of a full handshake; and it logs what
// one Retrieve costs, cold, resumed and on a kept connection.
func TestIoTSessionReuse(t *testing.T) {
	f := newIoTFake(t, iottest.Options{})
	for _, kt := range []struct {
		name string
		key  iottest.KeyType
	}{{"EC P-256", iottest.EC}, {"RSA 2048", iottest.RSA}} {
		dev := f.CA().ClientCert(t, iottest.ClientOptions{Key: kt.key})
		o := f.opts()
		o.ThingName = ""
		o.Certificate = f.write(t, kt.name+"-cert.pem", dev.CertPEM)
		o.PrivateKey = f.write(t, kt.name+"-key.pem", dev.PKCS8PEM(t))
		p, err := NewIoT(o)
		if err != nil {
			t.Fatal(err)
		}
		timed := func() time.Duration {
			start := time.Now()
			if _, err := p.Retrieve(context.Background()); err != nil {
				t.Fatal(err)
			}
			return time.Since(start)
		}
		cold := timed()
		kept := timed()
		p.client.CloseIdleConnections()
		resumed := timed()
		calls := f.Calls()
		if last := calls[len(calls)-1]; !last.Resumed {
			t.Errorf("%s: the call after the connection closed did a full handshake, want a resumed session", kt.name)
		}
		if calls[len(calls)-3].Resumed {
			t.Errorf("%s: the first call resumed a session it cannot have had", kt.name)
		}
		t.Logf("%s: one Retrieve over loopback: cold %s, resumed %s, kept connection %s", kt.name,
			cold.Round(10*time.Microsecond), resumed.Round(10*time.Microsecond), kept.Round(10*time.Microsecond))
		p.Close()
	}
}

// An answer that is not 200 but carries credentials (a 203 from a caching
// middlebox, say) put the start of its body, secret key included, into
// the error. Found by FuzzIoTAnswer.
func TestIoTErrorHidesCredentialsOfAnyStatus(t *testing.T) {
	p := &IoT{roleAlias: "a", endpoint: "e:443", clock: fixedClock(fuzzNow)}
	const secret = "iotSecretKeyExample/0123456789+abcdefABCD"
	for _, body := range []string{
		`{"credentials":{"accessKeyId":"ASIA1","secretAccessKey":"` + secret + `","sessionToken":"t","expiration":"2026-11-28T12:00:00Z"}}`,
		`{"CREDENTIALS":{"SecretAccessKey":"` + secret + `"}} trailing`,
	} {
		_, err := p.parseAnswer(http.StatusNonAuthoritativeInfo, []byte(body))
		var ie *IoTError
		if !errors.As(err, &ie) || strings.Contains(err.Error(), secret[:20]) || !strings.Contains(err.Error(), "the body holds credentials, not shown") {
			t.Errorf("body %.40q: error %v", body, err)
		}
	}
	_, err := p.parseAnswer(http.StatusBadGateway, []byte("<html>Bad Gateway</html>"))
	if err == nil || !strings.Contains(err.Error(), "body: <html>Bad Gateway</html>") {
		t.Errorf("an answer without credentials is no longer shown: %v", err)
	}
}
