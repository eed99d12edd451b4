package credentials

import (
	"bytes"
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/pbkdf2"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// DefaultIoTTimeout bounds one call to the IoT credentials provider when
// IoTOptions.Timeout is zero.
const DefaultIoTTimeout = 10 * time.Second

// maxIoTBody caps what is read of an answer: AWS's is well under 4 KiB.
const maxIoTBody = 64 << 10

// IoTThingNameHeader carries the thing name to the credentials provider.
const IoTThingNameHeader = "x-amzn-iot-thingname"

// IoTOptions configure NewIoT. The client key is either PrivateKey (a PEM
// file) or Signer (a key that stays where it is, such as a PKCS#11 token);
// exactly one must be given.
type IoTOptions struct {
	// Endpoint is the account's credentials provider endpoint
	// (`aws iot describe-endpoint --endpoint-type iot:CredentialProvider`):
	// PREFIX.credentials.iot.REGION.amazonaws.com, as host, host:port or
	// https://host[:port]. The port defaults to 443.
	Endpoint string
	// RoleAlias names the IoT role alias whose role is assumed.
	RoleAlias string
	// ThingName, when set, is sent in the x-amzn-iot-thingname header; the
	// certificate must be attached to the thing.
	ThingName string

	// Certificate is a PEM file: the client certificate first, then any
	// intermediate certificates.
	Certificate string
	// PrivateKey is a PEM file of the certificate's key: PKCS#1 RSA, SEC1
	// EC, PKCS#8 RSA or EC, or encrypted PKCS#8 (PBES2 with PBKDF2
	// HMAC-SHA256 and AES-CBC) with Passphrase.
	PrivateKey string
	// Passphrase decrypts an encrypted PKCS#8 PrivateKey.
	Passphrase []byte
	// Signer is the certificate's key when it is not in a file. NewIoT
	// takes ownership: Close closes it when it is an io.Closer.
	Signer crypto.Signer

	// RootCAs verify the endpoint's certificate; nil means the system roots.
	RootCAs *x509.CertPool
	// Timeout bounds one call, connection and TLS handshake included;
	// zero means DefaultIoTTimeout.
	Timeout time.Duration
	// DialContext replaces the dialer (tests: a name that resolves
	// elsewhere); nil means a net.Dialer.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	Clock       Clock
}

// IoT is a Provider of the temporary credentials the AWS IoT Core
// credentials provider hands out to a device that authenticates with its
// X.509 certificate over mutual TLS: one GET per Retrieve, over one
// reused client.
type IoT struct {
	roleAlias string
	thingName string
	endpoint  string // host:port
	url       string
	signer    crypto.Signer
	client    *http.Client
	clock     Clock
}

var _ Provider = (*IoT)(nil)

// NewIoT reads the certificate (and the key, when it is a file), checks
// that they belong together and that the certificate is valid now, and
// builds the mTLS client. It calls nothing.
func NewIoT(opts IoTOptions) (*IoT, error) {
	if opts.Clock == nil {
		opts.Clock = SystemClock{}
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultIoTTimeout
	}
	host, hostPort, err := ParseIoTEndpoint(opts.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("iot: %w", err)
	}
	switch {
	case opts.RoleAlias == "":
		return nil, errors.New("iot: role_alias is required")
	case opts.Certificate == "":
		return nil, fmt.Errorf("iot: role alias %s: certificate is required", opts.RoleAlias)
	case opts.PrivateKey == "" && opts.Signer == nil:
		return nil, fmt.Errorf("iot: role alias %s: a private key is required (a PEM file, or a PKCS#11 key)", opts.RoleAlias)
	case opts.PrivateKey != "" && opts.Signer != nil:
		return nil, fmt.Errorf("iot: role alias %s: a PEM private key and a PKCS#11 key cannot both be given", opts.RoleAlias)
	}
	chain, leaf, err := readCertificateChain(opts.Certificate)
	if err != nil {
		return nil, fmt.Errorf("iot: certificate %s: %w", opts.Certificate, err)
	}
	signer := opts.Signer
	if signer == nil {
		data, err := os.ReadFile(opts.PrivateKey)
		if err != nil {
			return nil, fmt.Errorf("iot: private key: %w", err)
		}
		if signer, err = ParsePrivateKeyPEM(data, opts.Passphrase); err != nil {
			return nil, fmt.Errorf("iot: private key %s: %w", opts.PrivateKey, err)
		}
	}
	if err := CheckKeyPair(leaf, signer); err != nil {
		return nil, fmt.Errorf("iot: %s and its key: %w", opts.Certificate, err)
	}
	now := opts.Clock.Now()
	switch {
	case now.After(leaf.NotAfter):
		return nil, fmt.Errorf("iot: certificate %s expired at %s (NotAfter): issue a new certificate for the thing",
			opts.Certificate, leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(leaf.NotBefore):
		return nil, fmt.Errorf("iot: certificate %s is not valid before %s (NotBefore): check this machine's clock",
			opts.Certificate, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	cert := &tls.Certificate{Certificate: chain, PrivateKey: signer, Leaf: leaf}

	dial := opts.DialContext
	if dial == nil {
		dial = (&net.Dialer{Timeout: opts.Timeout, KeepAlive: 30 * time.Second}).DialContext
	}
	tr := &http.Transport{
		// Never a proxy from the environment: signet may be that proxy.
		Proxy:       nil,
		DialContext: dial,
		TLSClientConfig: &tls.Config{
			MinVersion: tls.VersionTLS12,
			RootCAs:    opts.RootCAs,
			ServerName: host,
			// Always offer the certificate, whatever CAs the server
			// lists: AWS IoT accepts certificates of CAs it never names.
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil },
			ClientSessionCache:   tls.NewLRUClientSessionCache(4),
		},
		// HTTP/1.1: one GET per refresh gains nothing from HTTP/2, and
		// with it a refused client certificate (an alert after a TLS 1.3
		// handshake) surfaces as "client conn could not be established"
		// instead of the alert that says what to check.
		ForceAttemptHTTP2:     false,
		TLSHandshakeTimeout:   opts.Timeout,
		ResponseHeaderTimeout: opts.Timeout,
		MaxIdleConns:          2,
		IdleConnTimeout:       90 * time.Second,
	}
	return &IoT{
		roleAlias: opts.RoleAlias,
		thingName: opts.ThingName,
		endpoint:  hostPort,
		url:       "https://" + hostPort + "/role-aliases/" + url.PathEscape(opts.RoleAlias) + "/credentials",
		signer:    signer,
		client: &http.Client{
			Transport: tr,
			Timeout:   opts.Timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
		clock: opts.Clock,
	}, nil
}

// Close drops idle connections and closes the key when it can be closed
// (a PKCS#11 session).
func (p *IoT) Close() error {
	p.client.CloseIdleConnections()
	if c, ok := p.signer.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// iotAnswer is the credentials provider's JSON, success or error.
type iotAnswer struct {
	Credentials *struct {
		AccessKeyID     string `json:"accessKeyId"`
		SecretAccessKey string `json:"secretAccessKey"`
		SessionToken    string `json:"sessionToken"`
		Expiration      string `json:"expiration"`
	} `json:"credentials"`
	Message string `json:"message"`
}

// Retrieve asks the credentials provider once.
func (p *IoT) Retrieve(ctx context.Context) (Credentials, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return Credentials{}, fmt.Errorf("iot: role alias %s: %w", p.roleAlias, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "signet")
	if p.thingName != "" {
		req.Header.Set(IoTThingNameHeader, p.thingName)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return Credentials{}, p.explainTransport(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxIoTBody+1))
	if err != nil {
		return Credentials{}, fmt.Errorf("iot: role alias %s: reading the answer of %s: %w", p.roleAlias, p.endpoint, err)
	}
	return p.parseAnswer(resp.StatusCode, body)
}

// parseAnswer reads the credentials provider's answer: its status and
// (up to maxIoTBody+1 bytes of) its body. It does no I/O.
func (p *IoT) parseAnswer(status int, body []byte) (Credentials, error) {
	if len(body) > maxIoTBody {
		return Credentials{}, fmt.Errorf("iot: role alias %s: the answer of %s is larger than %d bytes, which is not the credentials provider's (check endpoint)",
			p.roleAlias, p.endpoint, maxIoTBody)
	}
	var a iotAnswer
	jsonErr := json.Unmarshal(body, &a)
	if status != http.StatusOK {
		msg := a.Message
		if jsonErr != nil || msg == "" {
			msg = "(no message; body: " + printable(string(body), 200) + ")"
			if carriesCredentials(body) {
				msg = "(no message; the body holds credentials, not shown)"
			}
		}
		return Credentials{}, &IoTError{
			RoleAlias: p.roleAlias, ThingName: p.thingName, Endpoint: p.endpoint,
			Status: status, Message: printable(msg, 512),
			Hint: iotHint(status, msg, p.thingName),
		}
	}
	if jsonErr != nil {
		return Credentials{}, fmt.Errorf("iot: role alias %s: the answer of %s is not the credentials provider's JSON (check endpoint): %w", p.roleAlias, p.endpoint, jsonErr)
	}
	c := a.Credentials
	if c == nil || c.AccessKeyID == "" || c.SecretAccessKey == "" || c.SessionToken == "" || c.Expiration == "" {
		return Credentials{}, fmt.Errorf("iot: role alias %s: %s answered without complete credentials", p.roleAlias, p.endpoint)
	}
	exp, err := time.Parse(time.RFC3339, c.Expiration)
	if err != nil {
		return Credentials{}, fmt.Errorf("iot: role alias %s: %s answered an expiration %q that is not an RFC 3339 time", p.roleAlias, p.endpoint, printable(c.Expiration, 64))
	}
	if now := p.clock.Now(); !exp.After(now) {
		return Credentials{}, fmt.Errorf("iot: role alias %s: %s sent credentials that expired at %s, before now (%s): check this machine's clock",
			p.roleAlias, p.endpoint, exp.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return Credentials{
		AccessKeyID:     c.AccessKeyID,
		SecretAccessKey: c.SecretAccessKey,
		SessionToken:    c.SessionToken,
		Expires:         exp,
		Origin:          "iot:" + p.roleAlias,
	}, nil
}

// carriesCredentials reports whether a body holds a secret key or a
// session token, read as leniently as a JSON reader would (the first
// value, keys in any case): such a body is never shown in an error,
// whatever its status.
func carriesCredentials(body []byte) bool {
	var a iotAnswer
	_ = json.NewDecoder(bytes.NewReader(body)).Decode(&a)
	return a.Credentials != nil && (a.Credentials.SecretAccessKey != "" || a.Credentials.SessionToken != "")
}

// IoTError is an error answer of the credentials provider: the HTTP
// status, AWS's message and what to check.
type IoTError struct {
	RoleAlias string
	ThingName string
	Endpoint  string
	Status    int
	Message   string // AWS's message
	Hint      string
}

func (e *IoTError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "iot: role alias %s", e.RoleAlias)
	if e.ThingName != "" {
		fmt.Fprintf(&b, " (thing %s)", e.ThingName)
	}
	fmt.Fprintf(&b, ": %s answered %d %s: %s", e.Endpoint, e.Status, http.StatusText(e.Status), e.Message)
	if e.Hint != "" {
		b.WriteString("; ")
		b.WriteString(e.Hint)
	}
	return b.String()
}

func iotHint(status int, msg, thing string) string {
	lower := strings.ToLower(msg)
	switch {
	case status == http.StatusForbidden && strings.Contains(lower, "thing"):
		if thing == "" {
			return "check thing_name: the certificate's policy needs a thing name, and none is configured"
		}
		return "check thing_name: the thing must exist in this account and region and the certificate must be attached to it (aws iot attach-thing-principal)"
	case status == http.StatusForbidden:
		return "check that the certificate is registered with AWS IoT in the endpoint's account and region and is ACTIVE, and that a policy attached to it allows iot:AssumeRoleWithCertificate on the role alias"
	case status == http.StatusNotFound:
		return "check role_alias: it must exist in the account and region of the endpoint (aws iot describe-role-alias)"
	case status == http.StatusBadRequest:
		return "check the role alias's role: its trust policy must let credentials.iot.amazonaws.com call sts:AssumeRole, and the alias's credentialDurationSeconds must be at most the role's maximum session duration"
	case status == http.StatusTooManyRequests:
		return "the credentials provider is throttling; signet retries with backoff"
	case status >= 500:
		return "the credentials provider failed; signet retries with backoff"
	}
	return ""
}

// explainTransport says what to check when no HTTP answer came.
func (p *IoT) explainTransport(err error) error {
	prefix := fmt.Sprintf("iot: role alias %s: %s", p.roleAlias, p.endpoint)
	var unknown x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	var opErr *net.OpError
	switch {
	case errors.As(err, &unknown):
		return fmt.Errorf("%s: its certificate is not signed by a trusted CA (check endpoint, and ca_file if it is set): %w", prefix, err)
	case errors.As(err, &hostErr):
		return fmt.Errorf("%s: its certificate is not for this name (check endpoint): %w", prefix, err)
	case errors.As(err, &invalid):
		return fmt.Errorf("%s: its certificate is not valid (check endpoint and this machine's clock): %w", prefix, err)
	case errors.As(err, &opErr) && opErr.Op == "remote error":
		return fmt.Errorf("%s refused the client certificate (check that it is registered with AWS IoT in this account and region and ACTIVE): %w", prefix, err)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || isTimeout(err):
		return fmt.Errorf("%s: no answer in time (check endpoint and the network): %w", prefix, err)
	case errors.As(err, &opErr):
		return fmt.Errorf("%s: cannot reach it (check endpoint and the network): %w", prefix, err)
	}
	return fmt.Errorf("%s: %w", prefix, err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// printable keeps at most n runes of s, with control characters replaced,
// so that whatever a server sends cannot forge log lines.
func printable(s string, n int) string {
	var b strings.Builder
	for i, r := range []rune(strings.TrimSpace(s)) {
		if i == n {
			b.WriteString("…")
			break
		}
		if unicode.IsControl(r) {
			r = ' '
		}
		b.WriteRune(r)
	}
	return b.String()
}

// ParseIoTEndpoint accepts host, host:port or https://host[:port][/] and
// returns the host (for SNI and verification) and host:port (port 443
// when none is given).
func ParseIoTEndpoint(s string) (host, hostPort string, err error) {
	raw := s
	if s == "" {
		return "", "", errors.New("endpoint is required")
	}
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return "", "", fmt.Errorf("endpoint %q is not a valid URL", raw)
		}
		switch {
		case u.Scheme != "https":
			return "", "", fmt.Errorf("endpoint %q: only https is accepted", raw)
		case u.User != nil, u.RawQuery != "", u.ForceQuery, u.Fragment != "", u.Path != "" && u.Path != "/":
			return "", "", fmt.Errorf("endpoint %q must be a bare https://host[:port], without path, query or credentials", raw)
		}
		s = u.Host
	}
	host, port := s, "443"
	if h, p, err := net.SplitHostPort(s); err == nil {
		host, port = h, p
	} else if strings.Count(s, ":") == 1 || strings.HasPrefix(s, "[") {
		return "", "", fmt.Errorf("endpoint %q is not host or host:port", raw)
	}
	if host == "" || strings.ContainsAny(host, "/?#@ ") {
		return "", "", fmt.Errorf("endpoint %q has no valid host", raw)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || strings.Trim(port, "0123456789") != "" {
		return "", "", fmt.Errorf("endpoint %q has an invalid port", raw)
	}
	return host, net.JoinHostPort(host, port), nil
}

// IoTEndpointRegion is the region of a credentials provider endpoint
// (PREFIX.credentials.iot.REGION.amazonaws.com[.cn]), or "" when the host
// does not have that form.
func IoTEndpointRegion(endpoint string) string {
	host, _, err := ParseIoTEndpoint(endpoint)
	if err != nil {
		return ""
	}
	labels := strings.Split(strings.ToLower(strings.TrimSuffix(host, ".")), ".")
	for i := 0; i+3 < len(labels); i++ {
		if labels[i] == "credentials" && labels[i+1] == "iot" && labels[i+3] == "amazonaws" {
			return labels[i+2]
		}
	}
	return ""
}

// readCertificateChain reads every CERTIFICATE block of a PEM file: the
// first is the client certificate.
func readCertificateChain(file string) ([][]byte, *x509.Certificate, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, nil, err
	}
	var chain [][]byte
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			chain = append(chain, b.Bytes)
		}
	}
	if len(chain) == 0 {
		return nil, nil, errors.New("holds no PEM CERTIFICATE block")
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return nil, nil, fmt.Errorf("first certificate: %w", err)
	}
	for i, der := range chain[1:] {
		if _, err := x509.ParseCertificate(der); err != nil {
			return nil, nil, fmt.Errorf("certificate %d of the chain: %w", i+2, err)
		}
	}
	return chain, leaf, nil
}

// ErrKeyMismatch is returned when a certificate's public key is not the
// key's.
var ErrKeyMismatch = errors.New("certificate and key do not match")

// CheckKeyPair reports whether cert carries the public key of signer, and
// whether signer is a kind of key TLS client authentication can use.
func CheckKeyPair(cert *x509.Certificate, signer crypto.Signer) error {
	pub := signer.Public()
	switch pub.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey:
	default:
		return fmt.Errorf("the key is a %T; AWS IoT certificates use RSA or ECDSA keys", pub)
	}
	eq, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !eq.Equal(pub) {
		return ErrKeyMismatch
	}
	return nil
}

// ErrKeyPassphrase is returned when an encrypted key needs a passphrase
// and none was given, or the given one does not decrypt it.
var ErrKeyPassphrase = errors.New("wrong or missing passphrase")

// ErrKeyEncryption is returned for an encrypted key in a scheme signet
// does not decrypt.
var ErrKeyEncryption = errors.New("unsupported key encryption")

// reencrypt is how to turn a key into the one encrypted form signet reads.
const reencrypt = "re-encrypt it with: openssl pkcs8 -topk8 -v2 aes-256-cbc -v2prf hmacWithSHA256 -in OLD -out NEW"

// ParsePrivateKeyPEM reads the first private key of a PEM file: PKCS#1
// ("RSA PRIVATE KEY"), SEC1 ("EC PRIVATE KEY"), PKCS#8 ("PRIVATE KEY")
// or encrypted PKCS#8 ("ENCRYPTED PRIVATE KEY", PBES2 with PBKDF2
// HMAC-SHA256 and AES-128/192/256-CBC), decrypted with passphrase. Only
// RSA and ECDSA keys are returned. Go's standard library decrypts no
// PKCS#8, and no such module is in this build, hence the small PBES2
// reader below (RFC 8018).
func ParsePrivateKeyPEM(data, passphrase []byte) (crypto.Signer, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, errors.New("holds no PEM private key block (RSA PRIVATE KEY, EC PRIVATE KEY, PRIVATE KEY or ENCRYPTED PRIVATE KEY)")
		}
		switch b.Type {
		case "RSA PRIVATE KEY", "EC PRIVATE KEY":
			if _, enc := b.Headers["DEK-Info"]; enc || b.Headers["Proc-Type"] != "" {
				return nil, fmt.Errorf("%w: legacy OpenSSL PEM encryption (Proc-Type: 4,ENCRYPTED); %s", ErrKeyEncryption, reencrypt)
			}
			if b.Type == "RSA PRIVATE KEY" {
				k, err := x509.ParsePKCS1PrivateKey(b.Bytes)
				if err != nil {
					return nil, fmt.Errorf("RSA PRIVATE KEY (PKCS#1): %w", err)
				}
				return k, nil
			}
			k, err := x509.ParseECPrivateKey(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("EC PRIVATE KEY (SEC1): %w", err)
			}
			return k, nil
		case "PRIVATE KEY":
			return parsePKCS8Signer(b.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			if len(passphrase) == 0 {
				return nil, fmt.Errorf("%w: the key is encrypted (ENCRYPTED PRIVATE KEY) and no passphrase is configured (private_key_passphrase_file)", ErrKeyPassphrase)
			}
			der, err := decryptPKCS8(b.Bytes, passphrase)
			if err != nil {
				return nil, err
			}
			return parsePKCS8Signer(der)
		}
		// Other blocks (EC PARAMETERS, CERTIFICATE) are skipped.
	}
}

func parsePKCS8Signer(der []byte) (crypto.Signer, error) {
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("PRIVATE KEY (PKCS#8): %w", err)
	}
	switch k := k.(type) {
	case *rsa.PrivateKey:
		return k, nil
	case *ecdsa.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("PRIVATE KEY (PKCS#8) holds a %T; AWS IoT certificates use RSA or ECDSA keys", k)
}

var (
	oidPBES2          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2         = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidHMACWithSHA1   = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 7}
	oidHMACWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	oidAES128CBC      = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}
	oidAES192CBC      = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}
	oidAES256CBC      = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
)

// maxPBKDF2Iterations keeps a hostile or damaged file from making start
// take minutes; OpenSSL writes 2048, other tools up to a few 100000.
const maxPBKDF2Iterations = 10_000_000

// encryptedPrivateKeyInfo is RFC 5958's EncryptedPrivateKeyInfo.
type encryptedPrivateKeyInfo struct {
	Algorithm     pkix.AlgorithmIdentifier
	EncryptedData []byte
}

type pbes2Params struct {
	KeyDerivationFunc pkix.AlgorithmIdentifier
	EncryptionScheme  pkix.AlgorithmIdentifier
}

type pbkdf2Params struct {
	Salt           []byte
	IterationCount int
	KeyLength      int                      `asn1:"optional"`
	PRF            pkix.AlgorithmIdentifier `asn1:"optional"`
}

// decryptPKCS8 decrypts an EncryptedPrivateKeyInfo in PBES2 with PBKDF2
// HMAC-SHA256 and AES-CBC, and refuses every other scheme by name.
func decryptPKCS8(der, passphrase []byte) ([]byte, error) {
	var info encryptedPrivateKeyInfo
	if rest, err := asn1.Unmarshal(der, &info); err != nil || len(rest) > 0 {
		return nil, fmt.Errorf("ENCRYPTED PRIVATE KEY is not a valid EncryptedPrivateKeyInfo: %v", errOr(err, "trailing data"))
	}
	if !info.Algorithm.Algorithm.Equal(oidPBES2) {
		return nil, fmt.Errorf("%w: %s (PBES1 or PKCS#12 schemes are not read); %s", ErrKeyEncryption, info.Algorithm.Algorithm, reencrypt)
	}
	var params pbes2Params
	if rest, err := asn1.Unmarshal(info.Algorithm.Parameters.FullBytes, &params); err != nil || len(rest) > 0 {
		return nil, fmt.Errorf("ENCRYPTED PRIVATE KEY: PBES2 parameters: %v", errOr(err, "trailing data"))
	}
	if !params.KeyDerivationFunc.Algorithm.Equal(oidPBKDF2) {
		return nil, fmt.Errorf("%w: key derivation %s (only PBKDF2 is read; scrypt is not); %s", ErrKeyEncryption, params.KeyDerivationFunc.Algorithm, reencrypt)
	}
	var kdf pbkdf2Params
	if rest, err := asn1.Unmarshal(params.KeyDerivationFunc.Parameters.FullBytes, &kdf); err != nil || len(rest) > 0 {
		return nil, fmt.Errorf("ENCRYPTED PRIVATE KEY: PBKDF2 parameters: %v", errOr(err, "trailing data"))
	}
	switch prf := kdf.PRF.Algorithm; {
	case prf.Equal(oidHMACWithSHA256):
	case len(prf) == 0 || prf.Equal(oidHMACWithSHA1):
		return nil, fmt.Errorf("%w: PBKDF2 with HMAC-SHA1; %s", ErrKeyEncryption, reencrypt)
	default:
		return nil, fmt.Errorf("%w: PBKDF2 with PRF %s (only HMAC-SHA256 is read); %s", ErrKeyEncryption, prf, reencrypt)
	}
	var keyLen int
	switch alg := params.EncryptionScheme.Algorithm; {
	case alg.Equal(oidAES128CBC):
		keyLen = 16
	case alg.Equal(oidAES192CBC):
		keyLen = 24
	case alg.Equal(oidAES256CBC):
		keyLen = 32
	default:
		return nil, fmt.Errorf("%w: cipher %s (only AES-CBC is read); %s", ErrKeyEncryption, alg, reencrypt)
	}
	switch {
	case len(kdf.Salt) == 0:
		return nil, errors.New("ENCRYPTED PRIVATE KEY: PBKDF2 salt is empty")
	case kdf.IterationCount < 1 || kdf.IterationCount > maxPBKDF2Iterations:
		return nil, fmt.Errorf("ENCRYPTED PRIVATE KEY: PBKDF2 iteration count %d is not between 1 and %d", kdf.IterationCount, maxPBKDF2Iterations)
	case kdf.KeyLength != 0 && kdf.KeyLength != keyLen:
		return nil, fmt.Errorf("ENCRYPTED PRIVATE KEY: PBKDF2 key length %d does not fit the cipher (%d)", kdf.KeyLength, keyLen)
	}
	var iv []byte
	if rest, err := asn1.Unmarshal(params.EncryptionScheme.Parameters.FullBytes, &iv); err != nil || len(rest) > 0 || len(iv) != aes.BlockSize {
		return nil, errors.New("ENCRYPTED PRIVATE KEY: the AES-CBC IV is not 16 bytes")
	}
	ct := info.EncryptedData
	if len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
		return nil, errors.New("ENCRYPTED PRIVATE KEY: the encrypted data is not whole AES blocks")
	}
	key, err := pbkdf2.Key(sha256.New, string(passphrase), kdf.Salt, kdf.IterationCount, keyLen)
	if err != nil {
		return nil, fmt.Errorf("ENCRYPTED PRIVATE KEY: PBKDF2: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	pt := make([]byte, len(ct))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(pt, ct)
	// PKCS#7 padding. A wrong passphrase gives random bytes: bad padding,
	// or (1 time in ~256) good padding and then not a PKCS#8 structure,
	// which the parse below reports the same way.
	n := int(pt[len(pt)-1])
	if n == 0 || n > aes.BlockSize || subtle.ConstantTimeCompare(pt[len(pt)-n:], bytesOf(byte(n), n)) != 1 {
		return nil, fmt.Errorf("%w: the key does not decrypt", ErrKeyPassphrase)
	}
	pt = pt[:len(pt)-n]
	var probe asn1.RawValue
	if rest, err := asn1.Unmarshal(pt, &probe); err != nil || len(rest) > 0 {
		return nil, fmt.Errorf("%w: the key does not decrypt", ErrKeyPassphrase)
	}
	return pt, nil
}

func bytesOf(b byte, n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = b
	}
	return out
}

func errOr(err error, fallback string) any {
	if err != nil {
		return err
	}
	return fallback
}
