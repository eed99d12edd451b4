package main

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/signet-proxy/signet/configs"
	"github.com/signet-proxy/signet/credentials"
	"github.com/signet-proxy/signet/credentials/pkcs11"
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

// pkcs11Signer opens the device key in a PKCS#11 token: c.Module, the token
// and key by the fields or by an RFC 7512 URI, the PIN from pin_file
// (pin-source in a URI) or pin_env. The returned signer is an io.Closer
// that releases the token; the iot provider closes it. A wrong PIN is not
// retried: tokens lock after a few wrong tries.
func pkcs11Signer(c *configs.PKCS11) (crypto.Signer, error) {
	opts := pkcs11.Options{Module: c.Module, TokenLabel: c.TokenLabel, TokenSerial: c.TokenSerial, Slot: c.Slot, KeyLabel: c.KeyLabel}
	pinFile := c.PinFile
	if c.URI != "" {
		u, src, err := pkcs11.ParseURI(c.URI)
		if err != nil {
			return nil, fmt.Errorf("uri: %w", err)
		}
		if src.Value != "" {
			return nil, errors.New("uri: pin-value puts the PIN in the config; use pin-source=file:PATH, pin_file or pin_env")
		}
		if c.Module != "" {
			u.Module = c.Module
		}
		opts = u
		if pinFile == "" {
			pinFile = src.File
		}
	}
	if c.KeyID != "" {
		id, err := hex.DecodeString(c.KeyID)
		if err != nil {
			return nil, fmt.Errorf("key_id %q is not hex: %w", c.KeyID, err)
		}
		opts.KeyID = id
	}
	switch {
	case pinFile != "":
		b, err := os.ReadFile(pinFile)
		if err != nil {
			return nil, fmt.Errorf("pin_file: %w", err)
		}
		opts.PIN = string(trimNewline(b))
	case c.PinEnv != "":
		v, ok := os.LookupEnv(c.PinEnv)
		if !ok || v == "" {
			return nil, fmt.Errorf("pin_env: %s is not set in signet's environment", c.PinEnv)
		}
		opts.PIN = v
	default:
		return nil, errors.New("no PIN: set pin_file or pin_env (or pin-source in the uri)")
	}
	key, err := pkcs11.Open(opts)
	if err != nil {
		return nil, err
	}
	return key.Signer(), nil
}

// trimNewline drops one trailing "\n" or "\r\n", as an editor or
// `echo` leaves it.
func trimNewline(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}
