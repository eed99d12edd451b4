package main

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/signet-proxy/signet/configs"
	"github.com/signet-proxy/signet/credentials"
)

// newIoTProvider builds the iot provider: the endpoint's roots (ca_file
// alone when set, else roots: the system's plus upstream.ca_file), and
// the client key from a PEM file or from loadPKCS11.
func newIoTProvider(c *configs.IoT, roots *x509.CertPool,
	loadPKCS11 func(*configs.PKCS11) (crypto.Signer, error)) (credentials.Provider, error) {
	if c == nil {
		return nil, errors.New("method iot needs an iot block")
	}
	opts := credentials.IoTOptions{
		Endpoint:    c.Endpoint,
		RoleAlias:   c.RoleAlias,
		ThingName:   c.ThingName,
		Certificate: c.Certificate,
		PrivateKey:  c.PrivateKey,
		RootCAs:     roots,
		Timeout:     time.Duration(c.Timeout),
	}
	if c.CAFile != "" {
		b, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("iot.ca_file: %w", err)
		}
		opts.RootCAs = x509.NewCertPool()
		if !opts.RootCAs.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("iot.ca_file: %s holds no PEM certificate", c.CAFile)
		}
	}
	if c.PrivateKeyPassphraseFile != "" {
		b, err := os.ReadFile(c.PrivateKeyPassphraseFile)
		if err != nil {
			return nil, fmt.Errorf("iot.private_key_passphrase_file: %w", err)
		}
		opts.Passphrase = trimNewline(b)
		defer clear(b)
	}
	if c.PKCS11 != nil {
		signer, err := loadPKCS11(c.PKCS11)
		if err != nil {
			return nil, fmt.Errorf("iot.pkcs11: %w", err)
		}
		opts.Signer = signer
	}
	p, err := credentials.NewIoT(opts)
	if err != nil {
		if closer, ok := opts.Signer.(interface{ Close() error }); ok {
			_ = closer.Close()
		}
		return nil, err
	}
	return p, nil
}

// pkcs11Signer is where the PKCS#11 key loader (package
// credentials/pkcs11) plugs in: it opens c.Module, logs in to the token
// with the PIN from c.PinFile or c.PinEnv, finds the private key, and
// returns it as a crypto.Signer (an io.Closer too, when it holds a
// session: the iot provider closes it).
func pkcs11Signer(c *configs.PKCS11) (crypto.Signer, error) {
	return nil, fmt.Errorf("module %s: PKCS#11 keys are not available in this build yet; use private_key", c.Module)
}

// trimNewline drops one trailing "\n" or "\r\n", as an editor or
// `echo` leaves it.
func trimNewline(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}
