//go:build cgo

package pkcs11

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// checkSigns signs with the key and verifies the signature with its
// public key: ECDSA, RSA PKCS#1 v1.5, RSA-PSS (salt = hash, and auto).
func checkSigns(t *testing.T, k *Key) {
	t.Helper()
	s := k.Signer()
	msg := []byte("signet pkcs11 test message")
	d256 := sha256.Sum256(msg)
	d384 := sha512.Sum384(msg)
	switch pub := k.Public().(type) {
	case *ecdsa.PublicKey:
		sig, err := s.Sign(rand.Reader, d256[:], crypto.SHA256)
		if err != nil {
			t.Fatalf("ECDSA Sign: %v", err)
		}
		if !ecdsa.VerifyASN1(pub, d256[:], sig) {
			t.Fatal("ECDSA signature does not verify")
		}
	case *rsa.PublicKey:
		sig, err := s.Sign(rand.Reader, d256[:], crypto.SHA256)
		if err != nil {
			t.Fatalf("RSA PKCS#1 v1.5 Sign: %v", err)
		}
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, d256[:], sig); err != nil {
			t.Fatalf("RSA PKCS#1 v1.5 signature: %v", err)
		}
		for _, opts := range []*rsa.PSSOptions{
			{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}, // what TLS 1.3 asks
			{SaltLength: rsa.PSSSaltLengthAuto, Hash: crypto.SHA256},
			{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA384},
		} {
			d := d256[:]
			if opts.Hash == crypto.SHA384 {
				d = d384[:]
			}
			sig, err := s.Sign(rand.Reader, d, opts)
			if err != nil {
				t.Fatalf("RSA-PSS Sign (%v, salt %d): %v", opts.Hash, opts.SaltLength, err)
			}
			verify := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto, Hash: opts.Hash}
			if err := rsa.VerifyPSS(pub, opts.Hash, d, sig, verify); err != nil {
				t.Fatalf("RSA-PSS signature (%v, salt %d): %v", opts.Hash, opts.SaltLength, err)
			}
		}
	default:
		t.Fatalf("public key is a %T", pub)
	}
}

func TestOpenAndSign(t *testing.T) {
	tok := newTestToken(t)
	slot := tok.slot
	for _, tc := range []struct {
		name string
		opts Options
		rsa  bool
	}{
		{"ec by label", tok.options("ec", nil), false},
		{"ec by id", tok.options("", []byte{1}), false},
		{"ec by label and id", tok.options("ec", []byte{1}), false},
		{"rsa by label", tok.options("rsa", nil), true},
		{"rsa by id", tok.options("", []byte{3}), true},
		{"token by serial", Options{Module: tok.module, TokenSerial: tok.serial, KeyLabel: "rsa", PIN: tok.pin}, true},
		{"token by slot", Options{Module: tok.module, Slot: &slot, KeyID: []byte{1}, PIN: tok.pin}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := tok.open(t, tc.opts)
			if tc.rsa {
				if pub, ok := k.Public().(*rsa.PublicKey); !ok || !pub.Equal(tok.rsa) {
					t.Fatalf("Public() = %T, not the imported RSA key", k.Public())
				}
			} else if pub, ok := k.Public().(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
				t.Fatalf("Public() = %T, want a P-256 key", k.Public())
			}
			if k.Signer().Public() != k.Public() {
				t.Error("Signer().Public() differs from Public()")
			}
			checkSigns(t, k)
		})
	}
}

func TestOpenErrors(t *testing.T) {
	tok := newTestToken(t)
	notLib := filepath.Join(t.TempDir(), "libnot.so")
	if err := os.WriteFile(notLib, []byte("not a library\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	slot := 4242
	const wrongPIN = "wrong-pin-4711"
	for _, tc := range []struct {
		name string
		opts Options
		kind Kind
		want []string
	}{
		{"wrong PIN", Options{Module: tok.module, TokenLabel: tok.label, KeyLabel: "ec", PIN: wrongPIN}, ErrPIN,
			[]string{`PIN rejected by token "signet-test"`, "CKR_PIN_INCORRECT"}},
		{"unknown token label", Options{Module: tok.module, TokenLabel: "nope", KeyLabel: "ec", PIN: tok.pin}, ErrTokenNotFound,
			[]string{`token "nope" not found in module ` + tok.module, `tokens there: `, `"signet-test" (serial "` + tok.serial + `", slot `, `"spare" (serial `}},
		{"unknown serial", Options{Module: tok.module, TokenSerial: "0000", KeyLabel: "ec", PIN: tok.pin}, ErrTokenNotFound,
			[]string{`token with serial "0000" not found`, `"signet-test"`}},
		{"unknown slot", Options{Module: tok.module, Slot: &slot, KeyLabel: "ec", PIN: tok.pin}, ErrTokenNotFound,
			[]string{"the token in slot 4242 not found", `"spare"`}},
		{"missing key label", tok.options("nokey", nil), ErrKeyNotFound,
			[]string{`no key with label "nokey" on token "signet-test"`, `key pairs there: `, `EC label "ec" id 01`, `RSA label "rsa" id 03`}},
		{"missing key id", tok.options("", []byte{0x7f}), ErrKeyNotFound,
			[]string{`no key with id 7f on token "signet-test"`}},
		{"label and id of different keys", tok.options("ec", []byte{3}), ErrKeyNotFound,
			[]string{`no key with label "ec" and id 03`}},
		{"module does not exist", Options{Module: "/nonexistent/libpkcs11.so", TokenLabel: tok.label, KeyLabel: "ec", PIN: tok.pin}, ErrModule,
			[]string{"PKCS#11 module /nonexistent/libpkcs11.so does not exist"}},
		{"module is not a library", Options{Module: notLib, TokenLabel: tok.label, KeyLabel: "ec", PIN: tok.pin}, ErrModule,
			[]string{"cannot load PKCS#11 module " + notLib}},
		{"module is a directory", Options{Module: t.TempDir(), TokenLabel: tok.label, KeyLabel: "ec", PIN: tok.pin}, ErrModule,
			[]string{"is a directory"}},
		{"no PIN", Options{Module: tok.module, TokenLabel: tok.label, KeyLabel: "ec"}, ErrInvalid,
			[]string{`no PIN given for token "signet-test"`}},
		{"two tokens", Options{Module: tok.module, TokenLabel: tok.label, TokenSerial: tok.serial, KeyLabel: "ec", PIN: tok.pin}, ErrInvalid,
			[]string{"only one of token label, token serial or slot, not token label and token serial"}},
		{"no key", Options{Module: tok.module, TokenLabel: tok.label, PIN: tok.pin}, ErrInvalid,
			[]string{`no key given on token "signet-test"`}},
		{"no module", Options{TokenLabel: tok.label, KeyLabel: "ec", PIN: tok.pin}, ErrInvalid,
			[]string{"no PKCS#11 module given"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := Open(tc.opts)
			if err == nil {
				k.Close()
				t.Fatal("Open succeeded")
			}
			msg := err.Error()
			t.Log(msg)
			if !errors.Is(err, tc.kind) {
				t.Errorf("errors.Is(err, %q) = false", tc.kind)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q", w)
				}
			}
			for _, secret := range []string{tok.pin, wrongPIN, testSOPIN} {
				if strings.Contains(msg, secret) {
					t.Errorf("error contains a PIN")
				}
			}
		})
	}
}

// After the last Key on a token is closed, the token is logged out: the
// next Open checks its PIN again.
func TestWrongPINAfterClose(t *testing.T) {
	tok := newTestToken(t)
	k, err := Open(tok.options("ec", nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	o := tok.options("ec", nil)
	o.PIN = "wrong"
	if k, err := Open(o); !errors.Is(err, ErrPIN) {
		if k != nil {
			k.Close()
		}
		t.Fatalf("Open with a wrong PIN after Close: %v", err)
	}
}

// PKCS#11 logs the process in to the token, not one session: while a Key
// holds the token, another Open is already logged in and its PIN is not
// checked (Open's documentation says so). This pins that behaviour.
func TestWrongPINWhileTokenIsOpen(t *testing.T) {
	tok := newTestToken(t)
	tok.open(t, tok.options("ec", nil))
	o := tok.options("rsa", nil)
	o.PIN = "wrong"
	k, err := Open(o)
	if err != nil {
		t.Fatalf("Open with a wrong PIN while the token is open: %v (if crypto11 now checks it, update Open's documentation)", err)
	}
	k.Close()
}

func TestClose(t *testing.T) {
	tok := newTestToken(t)
	k, err := Open(tok.options("ec", nil))
	if err != nil {
		t.Fatal(err)
	}
	s := k.Signer()
	c, ok := s.(io.Closer)
	if !ok {
		t.Fatal("Signer() is not an io.Closer")
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Signer().Close: %v", err)
	}
	if err := k.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	d := sha256.Sum256([]byte("x"))
	_, err = s.Sign(rand.Reader, d[:], crypto.SHA256)
	if !errors.Is(err, ErrClosed) || !strings.Contains(err.Error(), `key with label "ec" on token "signet-test"`) {
		t.Fatalf("Sign after Close: %v", err)
	}
}

func TestOptionsHidePIN(t *testing.T) {
	o := Options{Module: "/m.so", TokenLabel: "t", KeyLabel: "k", PIN: testPIN}
	p := PINSource{Value: testPIN}
	for _, s := range []string{o.String(), o.GoString(), o.LogValue().String(), p.String(), p.GoString(), p.LogValue().String()} {
		if strings.Contains(s, testPIN) {
			t.Errorf("%q contains the PIN", s)
		}
	}
}

// testPKI is a CA, a server certificate for 127.0.0.1, and client
// certificates for keys in the token.
type testPKI struct {
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	pool   *x509.CertPool
	server tls.Certificate
}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "signet pkcs11 test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	p := &testPKI{ca: ca, caKey: caKey, pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p.server = tls.Certificate{
		Certificate: [][]byte{p.issue(t, srvKey.Public(), x509.ExtKeyUsageServerAuth)},
		PrivateKey:  srvKey,
	}
	return p
}

func (p *testPKI) issue(t testing.TB, pub crypto.PublicKey, usage x509.ExtKeyUsage) []byte {
	t.Helper()
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "signet pkcs11 test"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, pub, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// serveTLS runs a TLS server on 127.0.0.1 that requires a client
// certificate from the test CA, checks it is want, and answers "ok".
func (p *testPKI) serveTLS(t testing.TB, version uint16, want []byte) string {
	t.Helper()
	cfg := &tls.Config{
		Certificates: []tls.Certificate{p.server},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    p.pool,
		MinVersion:   version,
		MaxVersion:   version,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(30 * time.Second))
				tc := tls.Server(c, cfg)
				if err := tc.Handshake(); err != nil {
					t.Errorf("server handshake: %v", err)
					return
				}
				st := tc.ConnectionState()
				if len(st.PeerCertificates) == 0 || string(st.PeerCertificates[0].Raw) != string(want) {
					t.Error("server: the client certificate is not the one issued for the token key")
					return
				}
				if st.Version != version {
					t.Errorf("server: version %x, want %x", st.Version, version)
				}
				_, _ = tc.Write([]byte("ok"))
			})
		}
	})
	return ln.Addr().String()
}

// recorder notes the options TLS signs with.
type recorder struct {
	crypto.Signer
	mu   sync.Mutex
	opts []crypto.SignerOpts
}

func (r *recorder) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	r.mu.Lock()
	r.opts = append(r.opts, opts)
	r.mu.Unlock()
	return r.Signer.Sign(rand, digest, opts)
}

// dialTLS makes one mutual-TLS connection and reads the server's "ok".
func dialTLS(addr string, p *testPKI, cert tls.Certificate, version uint16) error {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 30 * time.Second}, "tcp", addr, &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      p.pool,
		MinVersion:   version,
		MaxVersion:   version,
	})
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	// In TLS 1.3 the server checks the client's certificate after the
	// client's handshake is over: only its answer proves it accepted it.
	buf := make([]byte, 2)
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != "ok" {
		return errors.New("server answered " + string(buf))
	}
	return nil
}

func TestMutualTLS(t *testing.T) {
	tok := newTestToken(t)
	p := newTestPKI(t)
	for _, keyLabel := range []string{"ec", "rsa"} {
		t0 := time.Now()
		k := tok.open(t, tok.options(keyLabel, nil))
		t.Logf("Open %s key: %v", keyLabel, time.Since(t0).Round(time.Microsecond))
		der := p.issue(t, k.Public(), x509.ExtKeyUsageClientAuth)
		for _, v := range []struct {
			name    string
			version uint16
		}{{"TLS1.2", tls.VersionTLS12}, {"TLS1.3", tls.VersionTLS13}} {
			t.Run(keyLabel+"/"+v.name, func(t *testing.T) {
				addr := p.serveTLS(t, v.version, der)
				rec := &recorder{Signer: k.Signer()}
				t0 := time.Now()
				if err := dialTLS(addr, p, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: rec}, v.version); err != nil {
					t.Fatalf("handshake: %v", err)
				}
				t.Logf("one mutual-TLS handshake with the token key: %v", time.Since(t0).Round(time.Microsecond))
				if len(rec.opts) != 1 {
					t.Fatalf("the token key signed %d times, want 1", len(rec.opts))
				}
				_, pss := rec.opts[0].(*rsa.PSSOptions)
				t.Logf("signed with %T (%v)", rec.opts[0], rec.opts[0].HashFunc())
				if keyLabel == "rsa" && v.version == tls.VersionTLS13 && !pss {
					t.Errorf("TLS 1.3 signed with %T, want RSA-PSS", rec.opts[0])
				}
			})
		}
		t.Run(keyLabel+"/20 concurrent handshakes", func(t *testing.T) {
			addr := p.serveTLS(t, tls.VersionTLS13, der)
			cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k.Signer()}
			errs := make(chan error, 20)
			var wg sync.WaitGroup
			t0 := time.Now()
			for range 20 {
				wg.Go(func() { errs <- dialTLS(addr, p, cert, tls.VersionTLS13) })
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Error(err)
				}
			}
			t.Logf("20 concurrent handshakes: %v", time.Since(t0).Round(time.Microsecond))
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	tok := newTestToken(b)
	for _, keyLabel := range []string{"ec", "rsa"} {
		b.Run(keyLabel, func(b *testing.B) {
			for b.Loop() {
				k, err := Open(tok.options(keyLabel, nil))
				if err != nil {
					b.Fatal(err)
				}
				k.Close()
			}
		})
	}
}

func BenchmarkMutualTLSHandshake(b *testing.B) {
	tok := newTestToken(b)
	p := newTestPKI(b)
	for _, keyLabel := range []string{"ec", "rsa"} {
		k := tok.open(b, tok.options(keyLabel, nil))
		der := p.issue(b, k.Public(), x509.ExtKeyUsageClientAuth)
		cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k.Signer()}
		b.Run(keyLabel+"/TLS1.3", func(b *testing.B) {
			addr := p.serveTLS(b, tls.VersionTLS13, der)
			for b.Loop() {
				if err := dialTLS(addr, p, cert, tls.VersionTLS13); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
