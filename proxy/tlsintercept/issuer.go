package tlsintercept

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
)

// leafLifetime is short because renewing costs a signature, not a round
// trip to a public CA: a leaf that escapes is useful for a week at most,
// and certmagic renews on demand during handshakes.
const leafLifetime = 7 * 24 * time.Hour

// localIssuer is a certmagic.Issuer that signs certmagic's CSRs with the
// local CA.
type localIssuer struct {
	ca       *authority
	allow    func(string) bool
	now      func() time.Time
	lifetime time.Duration
	log      *slog.Logger
	key      string

	issued atomic.Uint64
	closed atomic.Bool
}

var _ certmagic.Issuer = (*localIssuer)(nil)

func newLocalIssuer(ca *authority, allow func(string) bool, now func() time.Time, log *slog.Logger) *localIssuer {
	sum := sha256.Sum256(ca.cert.Raw)
	return &localIssuer{
		ca:       ca,
		allow:    allow,
		now:      now,
		lifetime: leafLifetime,
		log:      log,
		// Leaves of another CA (after the user replaced it) must never be
		// served as ours, so the key names this CA.
		key: "signet-local-ca-" + hex.EncodeToString(sum[:8]),
	}
}

func (li *localIssuer) IssuerKey() string { return li.key }

// Issue signs csr. Every failure is wrapped in certmagic.ErrNoRetry: none
// of them heals by waiting, and certmagic would otherwise retry with
// backoff while a client's handshake hangs.
func (li *localIssuer) Issue(_ context.Context, csr *x509.CertificateRequest) (*certmagic.IssuedCertificate, error) {
	der, err := li.sign(csr)
	if err != nil {
		return nil, certmagic.ErrNoRetry{Err: err}
	}
	li.issued.Add(1)
	return &certmagic.IssuedCertificate{
		// The leaf alone: clients that trust the CA have it, and sending a
		// root in the chain only costs bytes.
		Certificate: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
	}, nil
}

func (li *localIssuer) sign(csr *x509.CertificateRequest) ([]byte, error) {
	if li.closed.Load() {
		return nil, errors.New("issue leaf certificate: interceptor is closed")
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("issue leaf certificate: bad CSR signature: %w", err)
	}
	// certmagic asks for one name per certificate; anything else (emails,
	// URIs, several names) did not come from our on-demand path.
	if len(csr.EmailAddresses)+len(csr.URIs) > 0 || len(csr.DNSNames)+len(csr.IPAddresses) != 1 {
		return nil, fmt.Errorf("issue leaf certificate: CSR must name exactly one host, got DNS %q IP %v", csr.DNSNames, csr.IPAddresses)
	}
	host := ""
	if len(csr.DNSNames) == 1 {
		host = csr.DNSNames[0]
	} else {
		host = csr.IPAddresses[0].String()
	}
	// A wildcard leaf would let one tunnel's certificate serve every
	// sibling name, and certmagic's cache would match it that way.
	if strings.Contains(host, "*") {
		return nil, fmt.Errorf("issue leaf certificate for %s: wildcard names are never issued", host)
	}
	// DecisionFunc already asked; asking again here covers every other
	// path into the issuer (renewals, future certmagic code).
	if !li.allow(host) {
		return nil, fmt.Errorf("issue leaf certificate for %s: host is not intercepted", host)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, fmt.Errorf("issue leaf certificate for %s: %w", host, err)
	}
	now := li.now()
	notAfter := now.Add(li.lifetime)
	if notAfter.After(li.ca.cert.NotAfter) {
		notAfter = li.ca.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: commonName(host)},
		// Slack for a client clock a little behind ours.
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              csr.DNSNames,
		IPAddresses:           csr.IPAddresses,
	}
	if _, isRSA := csr.PublicKey.(*rsa.PublicKey); isRSA {
		// RSA key exchange in TLS 1.2 encrypts with the leaf key.
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, li.ca.cert, csr.PublicKey, li.ca.key)
	if err != nil {
		return nil, fmt.Errorf("issue leaf certificate for %s: %w", host, err)
	}
	li.log.Debug("issued leaf certificate", "host", host, "not_after", notAfter)
	return der, nil
}

// commonName returns host for the subject CN, which clients ignore in
// favour of the SAN but humans read; X.509 caps it at 64 characters.
func commonName(host string) string {
	if len(host) > 64 {
		return ""
	}
	return host
}
