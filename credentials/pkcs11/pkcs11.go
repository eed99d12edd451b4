// Package pkcs11 opens a private key that lives in a PKCS#11 token (an HSM,
// a smart card, a TPM behind a PKCS#11 module, SoftHSM) and hands it out as
// a crypto.Signer that crypto/tls can use as a client key: the key never
// leaves the token.
//
// Open needs cgo (the module is a C shared library, loaded with dlopen
// through github.com/ThalesGroup/crypto11). A build without cgo still has
// ParseURI and Options.Validate; its Open fails with ErrNoCGO. ParseURI
// reads RFC 7512 "pkcs11:" URIs.
//
// A token counts wrong PINs and locks itself after a few: Open a Key once
// and keep it, and never retry Open after an error that is ErrPIN.
package pkcs11

import (
	"crypto"
	"crypto/rsa"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
)

// Options say which module, token and key Open uses, and the PIN that
// unlocks the token.
type Options struct {
	// Module is the path of the PKCS#11 module, a shared library such as
	// /usr/lib/softhsm/libsofthsm2.so.
	Module string

	// The token: exactly one of TokenLabel, TokenSerial and Slot.
	TokenLabel  string
	TokenSerial string
	Slot        *int

	// The key: KeyLabel (CKA_LABEL), KeyID (CKA_ID), or both, in which case
	// both must match. Exactly one private key may match, and it needs its
	// public key object (or a certificate) with the same CKA_ID in the
	// token.
	KeyLabel string
	KeyID    []byte

	// PIN is the user PIN, already read by the caller. It never appears in
	// an error, in String or in a log line.
	PIN string `json:"-"`
}

// Validate checks Options without touching the module: everything but the
// PIN, which a caller may read later than it validates a config.
func (o Options) Validate() error {
	if o.Module == "" {
		return errorf(ErrInvalid, nil, "no PKCS#11 module given (the path of its shared library, such as /usr/lib/softhsm/libsofthsm2.so)")
	}
	var sel []string
	if o.TokenLabel != "" {
		sel = append(sel, "token label")
	}
	if o.TokenSerial != "" {
		sel = append(sel, "token serial")
	}
	if o.Slot != nil {
		sel = append(sel, "slot")
		if *o.Slot < 0 {
			return errorf(ErrInvalid, nil, "slot %d is negative", *o.Slot)
		}
	}
	switch len(sel) {
	case 0:
		return errorf(ErrInvalid, nil, "no token given: give one of token label, token serial or slot")
	case 1:
	default:
		return errorf(ErrInvalid, nil, "give only one of token label, token serial or slot, not %s", strings.Join(sel, " and "))
	}
	if o.KeyLabel == "" && len(o.KeyID) == 0 {
		return errorf(ErrInvalid, nil, "no key given on %s: give its label, its id, or both", o.tokenDesc())
	}
	return nil
}

// String describes Options for humans and logs, without the PIN.
func (o Options) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "module %q, %s, %s", o.Module, o.tokenDesc(), o.keyDesc())
	if o.PIN != "" {
		b.WriteString(", PIN set")
	}
	return b.String()
}

// GoString keeps %#v from printing the PIN.
func (o Options) GoString() string { return "pkcs11.Options{" + o.String() + "}" }

// LogValue keeps log/slog from printing the PIN.
func (o Options) LogValue() slog.Value { return slog.StringValue(o.String()) }

// tokenDesc names the token the way Options select it.
func (o Options) tokenDesc() string {
	switch {
	case o.TokenLabel != "":
		return fmt.Sprintf("token %q", o.TokenLabel)
	case o.TokenSerial != "":
		return fmt.Sprintf("token with serial %q", o.TokenSerial)
	case o.Slot != nil:
		return "the token in slot " + strconv.Itoa(*o.Slot)
	}
	return "no token"
}

// keyDesc names the key the way Options select it.
func (o Options) keyDesc() string {
	switch {
	case o.KeyLabel != "" && len(o.KeyID) > 0:
		return fmt.Sprintf("key with label %q and id %s", o.KeyLabel, hex.EncodeToString(o.KeyID))
	case o.KeyLabel != "":
		return fmt.Sprintf("key with label %q", o.KeyLabel)
	case len(o.KeyID) > 0:
		return "key with id " + hex.EncodeToString(o.KeyID)
	}
	return "no key"
}

// PINSource is where a URI says the PIN is: a file (pin-source), or the
// PIN itself (pin-value, which RFC 7512 discourages and a config file that
// others can read should refuse).
type PINSource struct {
	File  string
	Value string `json:"-"`
}

// String describes the source without the PIN.
func (p PINSource) String() string {
	switch {
	case p.File != "":
		return fmt.Sprintf("PIN from file %q", p.File)
	case p.Value != "":
		return "PIN given in the URI (pin-value)"
	}
	return "no PIN source"
}

// GoString keeps %#v from printing the PIN.
func (p PINSource) GoString() string { return "pkcs11.PINSource{" + p.String() + "}" }

// LogValue keeps log/slog from printing the PIN.
func (p PINSource) LogValue() slog.Value { return slog.StringValue(p.String()) }

// Kind classifies errors of this package; match them with errors.Is.
type Kind string

func (k Kind) Error() string { return string(k) }

// The kinds of error Open and ParseURI return.
const (
	// ErrInvalid: Options or a URI that cannot work as given.
	ErrInvalid Kind = "invalid PKCS#11 settings"
	// ErrModule: the module is missing, not a PKCS#11 library, or failed
	// to initialize.
	ErrModule Kind = "PKCS#11 module unusable"
	// ErrTokenNotFound: no initialized token matches.
	ErrTokenNotFound Kind = "PKCS#11 token not found"
	// ErrPIN: the token refused the PIN, or is locked. Do not retry with
	// the same PIN: each wrong try brings the token closer to locking.
	ErrPIN Kind = "PKCS#11 PIN rejected"
	// ErrKeyNotFound: no usable key matches, or more than one does.
	ErrKeyNotFound Kind = "PKCS#11 key not found"
	// ErrNoCGO: this binary was built without cgo and cannot load modules.
	ErrNoCGO Kind = "built without cgo"
	// ErrSign: the token failed to sign.
	ErrSign Kind = "PKCS#11 signature failed"
	// ErrClosed: the Key was closed.
	ErrClosed Kind = "PKCS#11 key closed"
)

// Error is what this package returns: a message for people, a Kind for
// errors.Is, and the cause from the module (a pkcs11.Error, say) for
// errors.As.
type Error struct {
	Kind Kind
	msg  string
	err  error
}

func (e *Error) Error() string {
	if e.err != nil {
		return "pkcs11: " + e.msg + ": " + e.err.Error()
	}
	return "pkcs11: " + e.msg
}

// Is reports whether target is the error's Kind.
func (e *Error) Is(target error) bool { return target == e.Kind }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.err }

func errorf(kind Kind, cause error, format string, args ...any) *Error {
	return &Error{Kind: kind, msg: fmt.Sprintf(format, args...), err: cause}
}

// Key is an open key in a token. It is safe for concurrent use; Close
// releases the token (the module is unloaded when its last Key closes).
type Key struct {
	desc   string // "key with label "x" on token "y""
	inner  crypto.Signer
	pub    crypto.PublicKey
	close  func() error
	closed atomic.Bool
	signer *signer
}

// Signer returns the key as a crypto.Signer for tls.Certificate.PrivateKey
// and the like. It is safe for concurrent use, and is an io.Closer whose
// Close closes the Key, so an owner that closes closable signers (such as
// credentials.IoT) releases the token.
func (k *Key) Signer() crypto.Signer { return k.signer }

// Public returns the public key: *rsa.PublicKey or *ecdsa.PublicKey.
func (k *Key) Public() crypto.PublicKey { return k.pub }

// String names the key and its token.
func (k *Key) String() string { return k.desc }

// Close releases the token. It waits for signatures in progress; later
// ones fail with ErrClosed. Only the first call does anything.
func (k *Key) Close() error {
	if !k.closed.CompareAndSwap(false, true) {
		return nil
	}
	if err := k.close(); err != nil {
		return errorf(ErrModule, err, "close %s", k.desc)
	}
	return nil
}

// signer is the crypto.Signer that Key.Signer returns.
type signer struct{ k *Key }

var (
	_ crypto.Signer = (*signer)(nil)
	_ io.Closer     = (*signer)(nil)
)

func (s *signer) Public() crypto.PublicKey { return s.k.pub }

// Close closes the Key.
func (s *signer) Close() error { return s.k.Close() }

// Sign signs digest in the token. For RSA, opts may be *rsa.PSSOptions
// (TLS 1.3 uses PSS); PSSSaltLengthAuto, which crypto11 refuses, becomes
// the longest salt the key allows, which is what it means when signing.
func (s *signer) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if s.k.closed.Load() {
		return nil, errorf(ErrClosed, nil, "sign with %s: the key is closed", s.k.desc)
	}
	if pss, ok := opts.(*rsa.PSSOptions); ok && pss.SaltLength == rsa.PSSSaltLengthAuto && pss.Hash.Available() {
		if pub, ok := s.k.pub.(*rsa.PublicKey); ok {
			// RFC 8017 9.1.1: emLen = ceil((modBits-1)/8), sLen <= emLen - hLen - 2.
			if n := (pub.N.BitLen()-1+7)/8 - pss.Hash.Size() - 2; n >= 0 {
				o := *pss
				o.SaltLength = n
				opts = &o
			}
		}
	}
	sig, err := s.k.inner.Sign(rand, digest, opts)
	if err != nil {
		if s.k.closed.Load() {
			return nil, errorf(ErrClosed, err, "sign with %s: the key is closed", s.k.desc)
		}
		return nil, errorf(ErrSign, err, "sign with %s", s.k.desc)
	}
	return sig, nil
}
