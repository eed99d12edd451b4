// Package iottest is a strict fake of the AWS IoT Core credentials
// provider for tests: a TLS server that requires a client certificate
// signed by its test CA, answers only GET /role-aliases/ALIAS/credentials
// for the role aliases it knows, checks that a thing name sent in
// x-amzn-iot-thingname is attached to the certificate that connected, and
// answers in AWS's JSON shapes, or fails on demand. Options.OnMint hands
// every minted session to the test, so that a real verifier can learn it.
//
// It also makes the certificates such tests need: a CA, server
// certificates, and RSA or EC client certificates (optionally expired),
// with their keys in every PEM encoding the provider reads.
package iottest

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signet-proxy/signet/internal/faketest"
)

// ------------------------------------------------------------------ PKI

// CA is a test certificate authority.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	// PEM is the CA certificate, for a ca_file.
	PEM []byte
}

// NewCA makes a self-signed ECDSA P-256 CA named name.
func NewCA(tb testing.TB, name string) *CA {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(tb),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"signet tests"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return &CA{Cert: cert, Key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// Pool trusts the CA alone.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// ServerCert issues a server certificate for names (DNS names or IP
// addresses).
func (ca *CA) ServerCert(tb testing.TB, names ...string) tls.Certificate {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(tb),
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		tb.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der, ca.Cert.Raw}, PrivateKey: key, Leaf: leaf}
}

// KeyType is the kind of key of a client certificate.
type KeyType int

// Key types.
const (
	EC  KeyType = iota // ECDSA P-256
	RSA                // RSA 2048
)

// ClientOptions say what client certificate to issue.
type ClientOptions struct {
	Key KeyType
	// Expired makes a certificate whose NotAfter has passed.
	Expired bool
	// CommonName defaults to "signet-test-device".
	CommonName string
}

// Client is a device certificate and its key.
type Client struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	// CertPEM is the certificate followed by the CA certificate (a chain).
	CertPEM []byte
}

// ClientCert issues a client (device) certificate.
func (ca *CA) ClientCert(tb testing.TB, o ClientOptions) *Client {
	tb.Helper()
	var key crypto.Signer
	var err error
	if o.Key == RSA {
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	} else {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		tb.Fatal(err)
	}
	if o.CommonName == "" {
		o.CommonName = "signet-test-device"
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(tb),
		Subject:      pkix.Name{CommonName: o.CommonName},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if o.Key == RSA {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	if o.Expired {
		tmpl.NotBefore = time.Now().Add(-48 * time.Hour)
		tmpl.NotAfter = time.Now().Add(-24 * time.Hour)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return &Client{Cert: cert, Key: key, CertPEM: append(certPEM, ca.PEM...)}
}

// Fingerprint is the SHA-256 of the certificate, hex: AWS IoT's
// certificate ID.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// PKCS1PEM is the key as "RSA PRIVATE KEY"; it fails for an EC key.
func (c *Client) PKCS1PEM(tb testing.TB) []byte {
	tb.Helper()
	k, ok := c.Key.(*rsa.PrivateKey)
	if !ok {
		tb.Fatal("PKCS1PEM: not an RSA key")
	}
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
}

// SEC1PEM is the key as "EC PRIVATE KEY" (with the EC PARAMETERS block
// OpenSSL writes first); it fails for an RSA key.
func (c *Client) SEC1PEM(tb testing.TB) []byte {
	tb.Helper()
	k, ok := c.Key.(*ecdsa.PrivateKey)
	if !ok {
		tb.Fatal("SEC1PEM: not an EC key")
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		tb.Fatal(err)
	}
	params, _ := asn1.Marshal(asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7})
	return append(pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: params}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})...)
}

// PKCS8PEM is the key as "PRIVATE KEY".
func (c *Client) PKCS8PEM(tb testing.TB) []byte {
	tb.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(c.Key)
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// EncryptedPKCS8PEM is the key as "ENCRYPTED PRIVATE KEY": PBES2 with
// PBKDF2 HMAC-SHA256 (2048 iterations) and AES-256-CBC, as
// `openssl pkcs8 -topk8 -v2 aes-256-cbc` writes it.
func (c *Client) EncryptedPKCS8PEM(tb testing.TB, passphrase string) []byte {
	tb.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(c.Key)
	if err != nil {
		tb.Fatal(err)
	}
	salt, iv := make([]byte, 16), make([]byte, aes.BlockSize)
	_, _ = rand.Read(salt)
	_, _ = rand.Read(iv)
	const iter = 2048
	key, err := pbkdf2.Key(sha256.New, passphrase, salt, iter, 32)
	if err != nil {
		tb.Fatal(err)
	}
	n := aes.BlockSize - len(der)%aes.BlockSize
	pt := append(slices.Clone(der), slices.Repeat([]byte{byte(n)}, n)...)
	block, _ := aes.NewCipher(key)
	ct := make([]byte, len(pt))
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(ct, pt)

	type algID struct {
		Algorithm  asn1.ObjectIdentifier
		Parameters asn1.RawValue `asn1:"optional"`
	}
	raw := func(v any) asn1.RawValue {
		b, err := asn1.Marshal(v)
		if err != nil {
			tb.Fatal(err)
		}
		return asn1.RawValue{FullBytes: b}
	}
	kdf := struct {
		Salt []byte
		Iter int
		PRF  algID
	}{salt, iter, algID{Algorithm: asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}, Parameters: asn1.NullRawValue}}
	pbes2 := struct{ KDF, Enc algID }{
		algID{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}, raw(kdf)},
		algID{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}, raw(iv)},
	}
	info := struct {
		Alg  algID
		Data []byte
	}{algID{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}, raw(pbes2)}, ct}
	out, err := asn1.Marshal(info)
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: out})
}

func serial(tb testing.TB) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// --------------------------------------------------------------- server

// Failure is a way the fake can be told to fail a credentials request
// that passed its checks.
type Failure int

// Failures.
const (
	// FailAccessDenied answers 403 {"message":"Access Denied"}.
	FailAccessDenied Failure = iota + 1
	// FailNotFound answers 404, as for an unknown role alias.
	FailNotFound
	// FailAssumeRole answers 400, as when the role's trust policy does not
	// let the credentials provider assume it.
	FailAssumeRole
	// FailInternal answers 500.
	FailInternal
	// FailMalformed answers 200 with JSON cut off in the secret key.
	FailMalformed
	// FailIncomplete answers 200 with JSON that lacks the session token.
	FailIncomplete
	// FailHang answers nothing until the client gives up.
	FailHang
	// FailNotJSON answers 200 with a body that is not JSON, as a captive
	// portal or a misrouted proxy would; nothing is minted.
	FailNotJSON
	// FailExpired mints a session (OnMint sees it) whose expiration has
	// passed, and answers it.
	FailExpired
)

// AWS's messages, as the fake answers them.
const (
	MsgAccessDenied      = "Access Denied"
	MsgInvalidThingName  = "Invalid thing name passed"
	MsgRoleAliasNotFound = "Role alias does not exist"
	MsgCannotAssumeRole  = "Unable to assume the role, or the role to assume does not exist"
	MsgInternal          = "An internal error occurred"
)

// Options configure New.
type Options struct {
	// CA verifies client certificates; nil makes one (Server.CA).
	CA *CA
	// ServerNames are the names of the server certificate and the SNI
	// the fake insists on when a client sends one; default
	// "localhost" and "127.0.0.1".
	ServerNames []string
	// Now is the fake's clock; default time.Now.
	Now func() time.Time
	// OnMint, when set, is called with every session minted, before the
	// answer is sent. An error fails the call with 500 and the session is
	// not handed out.
	OnMint func(Minted) error
}

// Minted is a session the fake handed out.
type Minted struct {
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
	Issued          time.Time
	Expires         time.Time
	// RoleAlias was asked for; RoleARN is its role.
	RoleAlias string
	RoleARN   string
	// ThingName was sent, "" when none; CertificateID is the SHA-256 of
	// the client certificate.
	ThingName     string
	CertificateID string
}

// Call is one request that completed a TLS handshake with a verified
// client certificate.
type Call struct {
	Method, Path  string
	RoleAlias     string
	ThingName     string
	CertificateID string
	// ServerName is the SNI the client sent.
	ServerName string
	TLSVersion uint16
	// Resumed reports a resumed TLS session.
	Resumed bool
	// Status is the HTTP status answered; -1 for FailHang, which
	// answers nothing.
	Status int
}

// Server is the fake. Its methods are safe for concurrent use.
type Server struct {
	srv        *httptest.Server
	ca         *CA
	serverCA   *CA
	names      []string
	now        func() time.Time
	onMint     func(Minted) error
	mu         sync.Mutex
	aliases    map[string]string // alias → role ARN
	things     map[string]string // thing → certificate ID
	lifetime   time.Duration
	faults     faketest.Faults[Failure]
	calls      faketest.Log[Call]
	conns      int
	handshakes int
}

// New starts the fake on a loopback port; it is closed when the test ends.
func New(tb testing.TB, o Options) *Server {
	tb.Helper()
	s := &Server{
		ca: o.CA, names: o.ServerNames, now: o.Now, onMint: o.OnMint,
		aliases: map[string]string{}, things: map[string]string{},
		lifetime: time.Hour,
	}
	if s.ca == nil {
		s.ca = NewCA(tb, "iottest device CA")
	}
	if len(s.names) == 0 {
		s.names = []string{"localhost", "127.0.0.1"}
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.serverCA = NewCA(tb, "iottest server CA")
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.TLS = &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{s.serverCA.ServerCert(tb, s.names...)},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    s.ca.Pool(),
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			s.mu.Lock()
			s.handshakes++
			s.mu.Unlock()
			if hello.ServerName != "" && !slices.Contains(s.names, hello.ServerName) {
				return nil, fmt.Errorf("iottest: SNI %q is not one of %v", hello.ServerName, s.names)
			}
			return nil, nil
		},
	}
	s.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.mu.Lock()
			s.conns++
			s.mu.Unlock()
		}
	}
	// Refused handshakes are what many tests are about, not noise.
	s.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.srv.EnableHTTP2 = true
	s.srv.StartTLS()
	tb.Cleanup(s.srv.Close)
	return s
}

// Addr is the fake's host:port, 127.0.0.1:PORT.
func (s *Server) Addr() string { return s.srv.Listener.Addr().String() }

// Port is the fake's port.
func (s *Server) Port() string {
	_, p, _ := net.SplitHostPort(s.Addr())
	return p
}

// CA is the CA whose client certificates the fake accepts.
func (s *Server) CA() *CA { return s.ca }

// RootCAs trust the fake's server certificate.
func (s *Server) RootCAs() *x509.CertPool { return s.serverCA.Pool() }

// RootPEM is the CA of the fake's server certificate, for a ca_file.
func (s *Server) RootPEM() []byte { return s.serverCA.PEM }

// AddRoleAlias makes a role alias known, for role roleARN.
func (s *Server) AddRoleAlias(alias, roleARN string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.aliases[alias] = roleARN
}

// AttachThing attaches a certificate to a thing: the thing name is then
// accepted from clients with that certificate.
func (s *Server) AttachThing(thing string, cert *x509.Certificate) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.things[thing] = Fingerprint(cert)
}

// SetLifetime makes minted sessions live for d (default 1h).
func (s *Server) SetLifetime(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lifetime = d
}

// FailNext fails the next n requests that pass the checks with f.
func (s *Server) FailNext(f Failure, n int) {
	s.faults.FailNext(f, n)
}

// FailAlways fails every request that passes the checks with f, until
// FailAlways(0).
func (s *Server) FailAlways(f Failure) {
	s.faults.FailAlways(f)
}

// Calls returns the requests received so far.
func (s *Server) Calls() []Call {
	return s.calls.All()
}

// Conns counts TCP connections accepted.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// Handshakes counts TLS handshakes begun (full or resumed).
func (s *Server) Handshakes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.handshakes
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	c := Call{Method: r.Method, Path: r.URL.Path, ThingName: r.Header.Get("x-amzn-iot-thingname")}
	if st := r.TLS; st != nil {
		c.ServerName, c.TLSVersion, c.Resumed = st.ServerName, st.Version, st.DidResume
		if len(st.PeerCertificates) > 0 {
			c.CertificateID = Fingerprint(st.PeerCertificates[0])
		}
	}
	s.mu.Lock()
	roleARN, aliasKnown := "", false
	alias, ok := strings.CutPrefix(r.URL.Path, "/role-aliases/")
	alias, ok2 := strings.CutSuffix(alias, "/credentials")
	pathOK := ok && ok2 && alias != "" && !strings.Contains(alias, "/")
	if pathOK {
		c.RoleAlias = alias
		roleARN, aliasKnown = s.aliases[alias]
	}
	thingCert, thingKnown := s.things[c.ThingName]
	lifetime := s.lifetime
	s.mu.Unlock()

	answer := func(status int, v any) {
		c.Status = status
		s.calls.Add(c)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("x-amzn-RequestId", randomHex(16))
		w.WriteHeader(status)
		if b, ok := v.([]byte); ok {
			_, _ = w.Write(b)
			return
		}
		_ = json.NewEncoder(w).Encode(v)
	}
	msg := func(m string) map[string]string { return map[string]string{"message": m} }

	switch {
	case c.CertificateID == "":
		answer(http.StatusForbidden, msg(MsgAccessDenied))
		return
	case r.Method != http.MethodGet:
		answer(http.StatusMethodNotAllowed, msg("Method not allowed"))
		return
	case !pathOK:
		answer(http.StatusNotFound, msg("Not Found"))
		return
	case c.ThingName != "" && (!thingKnown || thingCert != c.CertificateID):
		answer(http.StatusForbidden, msg(MsgInvalidThingName))
		return
	case !aliasKnown:
		answer(http.StatusNotFound, msg(MsgRoleAliasNotFound))
		return
	}
	fail := s.faults.Take()
	switch fail {
	case FailAccessDenied:
		answer(http.StatusForbidden, msg(MsgAccessDenied))
		return
	case FailNotFound:
		answer(http.StatusNotFound, msg(MsgRoleAliasNotFound))
		return
	case FailAssumeRole:
		answer(http.StatusBadRequest, msg(MsgCannotAssumeRole))
		return
	case FailInternal:
		answer(http.StatusInternalServerError, msg(MsgInternal))
		return
	case FailNotJSON:
		c.Status = http.StatusOK
		s.calls.Add(c)
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, "<html><body><h1>Sign in to continue</h1></body></html>\n")
		return
	case FailHang:
		c.Status = -1
		s.calls.Add(c)
		<-r.Context().Done()
		// Abort rather than return: a handler that returns has answered
		// 200 with an empty body, which a client still listening would
		// take for an answer.
		panic(http.ErrAbortHandler)
	}

	now := s.now()
	m := Minted{
		AccessKeyID:     "ASIA" + randomID(16),
		SecretAccessKey: randomSecret(40),
		SessionToken:    "IQoJb3JpZ2luX2VjE" + randomSecret(200),
		Issued:          now,
		Expires:         now.Add(lifetime),
		RoleAlias:       alias,
		RoleARN:         roleARN,
		ThingName:       c.ThingName,
		CertificateID:   c.CertificateID,
	}
	if fail == FailExpired {
		m.Expires = now.Add(-time.Minute)
	}
	creds := map[string]string{
		"accessKeyId":     m.AccessKeyID,
		"secretAccessKey": m.SecretAccessKey,
		"sessionToken":    m.SessionToken,
		"expiration":      m.Expires.UTC().Format(time.RFC3339),
	}
	switch fail {
	case FailMalformed:
		b, _ := json.Marshal(map[string]any{"credentials": creds})
		cut := strings.Index(string(b), m.SecretAccessKey) + 10
		answer(http.StatusOK, b[:cut])
		return
	case FailIncomplete:
		delete(creds, "sessionToken")
		answer(http.StatusOK, map[string]any{"credentials": creds})
		return
	}
	if s.onMint != nil {
		if err := s.onMint(m); err != nil {
			answer(http.StatusInternalServerError, msg("OnMint: "+err.Error()))
			return
		}
	}
	answer(http.StatusOK, map[string]any{"credentials": creds})
}

const idChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = idChars[int(b[i])%len(idChars)]
	}
	return string(b)
}

const secretChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

func randomSecret(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = secretChars[int(b[i])%len(secretChars)]
	}
	return string(b)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
