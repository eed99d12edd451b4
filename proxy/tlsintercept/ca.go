package tlsintercept

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"time"
)

// File names inside the state directory. ca.pem is public (users install
// it in their trust stores); ca-key.pem can mint a certificate for any name
// those users will trust, so it is as sensitive as a password.
const (
	caCertFile = "ca.pem"
	caKeyFile  = "ca-key.pem"

	caLifetime = 10 * 365 * 24 * time.Hour

	// Windows reports synthetic permission bits (0666/0777), so the mode
	// checks would always fail there; its ACLs are out of our reach.
	checkModes = runtime.GOOS != "windows"
)

// ErrNoCA is returned (wrapped) by LoadCA when the state directory holds
// no CA yet. The CLI can test for it with errors.Is and suggest
// `signet serve`, which creates the CA.
var ErrNoCA = errors.New("no local CA yet")

// authority is the loaded local CA.
type authority struct {
	cert     *x509.Certificate
	certPEM  []byte
	key      crypto.Signer
	certPath string
}

// LoadCA reads the CA certificate from stateDir without creating or
// changing anything, for `signet ca path` and `signet ca export`. It applies
// the same checks as Open (private directory, 0600 key, key matching the
// certificate), so the CLI reports the problem serve would hit. If neither
// file exists the error wraps ErrNoCA; only Open creates a CA, so there is
// exactly one place where a key is generated.
func LoadCA(stateDir string) (cert *x509.Certificate, certPEM []byte, path string, err error) {
	ca, err := loadCA(stateDir, time.Now())
	if err != nil {
		return nil, nil, "", err
	}
	if ca == nil {
		return nil, nil, "", fmt.Errorf("load CA from %s: %w: run 'signet serve' once to create it", stateDir, ErrNoCA)
	}
	return ca.cert, ca.certPEM, ca.certPath, nil
}

// openCA loads the CA from stateDir, creating the directory (0700) and a
// new CA when neither file exists.
func openCA(stateDir, hostname string, now time.Time) (*authority, error) {
	if err := ensurePrivateDir(stateDir); err != nil {
		return nil, err
	}
	ca, err := loadCA(stateDir, now)
	if err != nil || ca != nil {
		return ca, err
	}
	return createCA(stateDir, hostname, now)
}

// ensurePrivateDir creates dir with mode 0700 if it is missing. An existing
// directory is left as it is; loadCA checks its mode.
func ensurePrivateDir(dir string) error {
	if dir == "" {
		return errors.New("tlsintercept: Options.StateDir is empty: set the state directory that holds the CA")
	}
	_, err := os.Stat(dir)
	if err == nil {
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("state directory %s: %w", dir, err)
	}
	// MkdirAll applies the umask, which can only remove bits, so 0700 stays
	// private; intermediate directories get the same mode.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create state directory %s: %w", dir, err)
	}
	return nil
}

// loadCA returns the CA in stateDir, (nil, nil) when neither file exists,
// or an error that names the offending path and the fix.
func loadCA(stateDir string, now time.Time) (*authority, error) {
	if stateDir == "" {
		return nil, errors.New("tlsintercept: state directory is empty: set the directory that holds the CA")
	}
	if err := checkPrivateDir(stateDir); err != nil {
		return nil, err
	}
	certPath := filepath.Join(stateDir, caCertFile)
	keyPath := filepath.Join(stateDir, caKeyFile)

	certPEM, certErr := os.ReadFile(certPath)
	keyInfo, keyErr := os.Stat(keyPath)
	certMissing := errors.Is(certErr, fs.ErrNotExist)
	keyMissing := errors.Is(keyErr, fs.ErrNotExist)
	switch {
	case certMissing && keyMissing:
		return nil, nil
	case certMissing:
		return nil, fmt.Errorf("CA key %s exists but its certificate %s is missing: restore %s, or remove %s so that a new CA is created (clients must then trust the new one)", keyPath, certPath, caCertFile, keyPath)
	case keyMissing:
		return nil, fmt.Errorf("CA certificate %s exists but its key %s is missing: restore %s, or remove %s so that a new CA is created (clients must then trust the new one)", certPath, keyPath, caKeyFile, certPath)
	case certErr != nil:
		return nil, fmt.Errorf("read CA certificate %s: %w", certPath, certErr)
	case keyErr != nil:
		return nil, fmt.Errorf("stat CA key %s: %w", keyPath, keyErr)
	}
	// Check the mode before reading the key, so that a leaked key is
	// reported rather than quietly used.
	if !keyInfo.Mode().IsRegular() {
		return nil, fmt.Errorf("CA key %s is not a regular file", keyPath)
	}
	if perm := keyInfo.Mode().Perm(); checkModes && perm&0o077 != 0 {
		return nil, fmt.Errorf("CA key %s has mode %04o, readable or writable by others: run 'chmod 600 %s' (and consider the key leaked if others could read it)", keyPath, perm, keyPath)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("read CA key %s: %w", keyPath, err)
	}

	cert, err := parseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate %s: %w: restore the file, or remove %s and %s to create a new CA", certPath, err, certPath, keyPath)
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("parse CA key %s: %w: restore the file, or remove %s and %s to create a new CA", keyPath, err, certPath, keyPath)
	}
	if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("CA key %s does not match certificate %s: restore the matching pair, or remove both to create a new CA", keyPath, certPath)
	}
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("certificate %s is not a CA certificate (needs basic constraints CA:true and keyCertSign): remove %s and %s to create a new CA", certPath, certPath, keyPath)
	}
	if now.After(cert.NotAfter) {
		return nil, fmt.Errorf("CA certificate %s expired on %s: remove %s and %s to create a new CA, then make clients trust it", certPath, cert.NotAfter.Format(time.DateOnly), certPath, keyPath)
	}
	return &authority{cert: cert, certPEM: certPEM, key: key, certPath: certPath}, nil
}

// checkPrivateDir refuses a state directory that others can list or write:
// whoever can write it can swap ca.pem and ca-key.pem for their own.
func checkPrivateDir(dir string) error {
	info, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("state directory %s: %w: run 'signet serve' once to create it", dir, ErrNoCA)
	}
	if err != nil {
		return fmt.Errorf("state directory %s: %w", dir, err)
	}
	if !info.IsDir() {
		return fmt.Errorf("state directory %s is not a directory", dir)
	}
	if perm := info.Mode().Perm(); checkModes && perm&0o077 != 0 {
		return fmt.Errorf("state directory %s has mode %04o, accessible by group or others: run 'chmod 700 %s'", dir, perm, dir)
	}
	return nil
}

func parseCertPEM(data []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no CERTIFICATE PEM block")
	}
	return x509.ParseCertificate(block.Bytes)
}

// parseKeyPEM accepts PKCS#8 (what we write) and SEC 1 EC keys (what
// `openssl ecparam -genkey` writes), so a user can bring their own CA.
func parseKeyPEM(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	switch block.Type {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, err
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("unsupported key type %T", k)
		}
		return s, nil
	case "EC PRIVATE KEY":
		return x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("unexpected PEM block %q", block.Type)
	}
}

// createCA generates and writes a new CA. Each file is written to a
// temporary name with its final mode and then renamed, so a crash never
// leaves a half-written file; the key goes first so that a certificate on
// disk always has its key.
func createCA(stateDir, hostname string, now time.Time) (*authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:   "signet local CA " + hostname,
			Organization: []string{"signet"},
		},
		// An hour of slack for clients whose clock is a little behind.
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caLifetime),
		IsCA:                  true,
		BasicConstraintsValid: true,
		// The CA signs leaves only, never an intermediate.
		MaxPathLen:     0,
		MaxPathLenZero: true,
		KeyUsage:       x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse new CA certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode CA key: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})

	certPath := filepath.Join(stateDir, caCertFile)
	keyPath := filepath.Join(stateDir, caKeyFile)
	if err := writeFileAtomic(keyPath, keyPEM, 0o600); err != nil {
		return nil, fmt.Errorf("write CA key: %w", err)
	}
	if err := writeFileAtomic(certPath, certPEM, 0o644); err != nil {
		return nil, fmt.Errorf("write CA certificate: %w", err)
	}
	return &authority{cert: cert, certPEM: certPEM, key: key, certPath: certPath}, nil
}

// writeFileAtomic writes data to a temporary file in the same directory,
// created with mode (os.CreateTemp would use 0600 for the certificate too,
// and a later chmod leaves a window), and renames it over path. O_EXCL on
// the temporary name refuses a planted file or symlink.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	_, werr := f.Write(data)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	// The umask may have removed bits from the certificate's 0644; set the
	// intended mode explicitly (it never adds bits to the key's 0600).
	if err := os.Chmod(tmp, mode); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("chmod %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("rename %s to %s: %w", tmp, path, err)
	}
	return nil
}

// randomSerial returns a random positive 128-bit serial number (RFC 5280
// allows up to 20 octets; 128 bits of randomness makes collisions and
// prediction moot).
func randomSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	n, err := rand.Int(rand.Reader, limit)
	if err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	// Zero is not a valid serial number.
	return n.Add(n, big.NewInt(1)), nil
}
