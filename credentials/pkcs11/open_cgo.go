//go:build cgo

package pkcs11

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ThalesGroup/crypto11"
	p11 "github.com/miekg/pkcs11"
)

const (
	// maxSessions bounds the sessions one Key opens: small tokens (a
	// secure element, a TPM) have few, and a client key signs rarely.
	maxSessions = 8
	// poolWait bounds how long a signature waits for a free session.
	poolWait = 30 * time.Second
	// maxListed bounds the tokens or keys an error lists.
	maxListed = 10
)

// Open loads the module, finds the token, logs in with the PIN and finds
// the key pair (RSA or ECDSA). The Key is safe for concurrent use; Close
// it when done. The errors say which of module, token, PIN and key was
// wrong (errors.Is with ErrModule, ErrTokenNotFound, ErrPIN,
// ErrKeyNotFound, ErrInvalid) and never contain the PIN.
//
// An ErrPIN is final: retrying with the same PIN only brings the token
// closer to locking itself.
//
// PKCS#11 logs a whole process in to a token, not a session: while
// another Key of this process holds the same token open, the token is
// already logged in and Open cannot check the PIN it is given (crypto11
// accepts CKR_USER_ALREADY_LOGGED_IN). A wrong PIN then shows only once
// the token is opened alone.
func Open(opts Options) (*Key, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.PIN == "" {
		return nil, errorf(ErrInvalid, nil, "no PIN given for %s", opts.tokenDesc())
	}
	if err := checkModuleFile(opts.Module); err != nil {
		return nil, err
	}
	tok := opts.tokenDesc()
	cfg := &crypto11.Config{
		Path:            opts.Module,
		TokenLabel:      opts.TokenLabel,
		TokenSerial:     opts.TokenSerial,
		SlotNumber:      opts.Slot,
		Pin:             opts.PIN,
		MaxSessions:     maxSessions,
		PoolWaitTimeout: poolWait,
	}
	ctx, err := crypto11.Configure(cfg)
	if err != nil {
		return nil, configureError(opts, err)
	}
	keys, err := ctx.FindKeyPairs(opts.KeyID, labelBytes(opts.KeyLabel))
	if err != nil {
		ctx.Close()
		if err.Error() == "could not find public key to match private key" { // crypto11 errNoPublicHalf
			return nil, errorf(ErrKeyNotFound, nil, "%s on %s has no public key object and no certificate with the same id; the token must hold one of them", opts.keyDesc(), tok)
		}
		return nil, errorf(ErrKeyNotFound, err, "find %s on %s", opts.keyDesc(), tok)
	}
	switch len(keys) {
	case 0:
		msg := fmt.Sprintf("no %s on %s", opts.keyDesc(), tok)
		if list := listKeys(ctx); list != "" {
			msg += " (" + list + ")"
		}
		ctx.Close()
		return nil, errorf(ErrKeyNotFound, nil, "%s", msg)
	case 1:
	default:
		ctx.Close()
		return nil, errorf(ErrKeyNotFound, nil, "%d keys match %s on %s: give both label and id, or make them unique", len(keys), opts.keyDesc(), tok)
	}
	switch pub := keys[0].Public().(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey:
	default:
		ctx.Close()
		return nil, errorf(ErrKeyNotFound, nil, "%s on %s is a %T key; TLS client keys here are RSA or ECDSA", opts.keyDesc(), tok, pub)
	}
	return newKey(opts.keyDesc()+" on "+tok, keys[0], ctx.Close), nil
}

// newKey wraps a signer from the token; close releases the token.
func newKey(desc string, inner crypto.Signer, close func() error) *Key {
	k := &Key{desc: desc, inner: inner, pub: inner.Public(), close: close}
	k.signer = &signer{k: k}
	return k
}

// checkModuleFile gives a missing module its own error: crypto11 reports
// every dlopen failure as "failed to open module".
func checkModuleFile(path string) error {
	if !strings.Contains(path, "/") {
		return nil // a bare name: dlopen searches the library path
	}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return errorf(ErrModule, nil, "PKCS#11 module %s does not exist", path)
	case err != nil:
		return errorf(ErrModule, err, "PKCS#11 module %s", path)
	case fi.IsDir():
		return errorf(ErrModule, nil, "PKCS#11 module %s is a directory, not the module's library file", path)
	}
	return nil
}

// configureError turns an error of crypto11.Configure into one that says
// which part was wrong. crypto11 v1.6.2 exports no error values: the
// texts below are its own, and the tests pin them.
func configureError(opts Options, err error) error {
	tok := opts.tokenDesc()
	var rv p11.Error
	switch msg := err.Error(); {
	case strings.Contains(msg, "failed to open module"):
		return errorf(ErrModule, nil, "cannot load PKCS#11 module %s: not a shared library for this system, or one of its dependencies is missing", opts.Module)
	case strings.Contains(msg, "failed to initialize module"):
		return errorf(ErrModule, unwrapP11(err), "PKCS#11 module %s failed to initialize (C_Initialize); for SoftHSM, check SOFTHSM2_CONF and its token directory", opts.Module)
	case msg == "could not find PKCS#11 token":
		return errorf(ErrTokenNotFound, nil, "%s not found in module %s (%s)", tok, opts.Module, listTokens(opts.Module))
	case errors.As(err, &rv) && strings.Contains(msg, "log into"):
		switch rv {
		case p11.CKR_PIN_INCORRECT, p11.CKR_PIN_INVALID, p11.CKR_PIN_LEN_RANGE:
			return errorf(ErrPIN, rv, "PIN rejected by %s; do not retry with the same PIN: tokens lock after a few wrong tries", tok)
		case p11.CKR_PIN_LOCKED:
			return errorf(ErrPIN, rv, "%s is locked after too many wrong PINs; its security officer must unlock it", tok)
		case p11.CKR_PIN_EXPIRED:
			return errorf(ErrPIN, rv, "the PIN of %s has expired; set a new one", tok)
		case p11.CKR_USER_PIN_NOT_INITIALIZED:
			return errorf(ErrPIN, rv, "%s has no user PIN yet; initialize it", tok)
		}
		return errorf(ErrPIN, rv, "log in to %s", tok)
	}
	return errorf(ErrModule, unwrapP11(err), "open %s in module %s", tok, opts.Module)
}

// unwrapP11 returns the PKCS#11 return value inside err when there is
// one: crypto11's own wording of it adds nothing.
func unwrapP11(err error) error {
	var rv p11.Error
	if errors.As(err, &rv) {
		return rv
	}
	return err
}

// listTokens describes the initialized tokens in a module, for an error
// that says a token was not found. It loads the module on its own: if
// another Key in this process has it loaded, it borrows that
// initialization and leaves it in place.
func listTokens(module string) string {
	m := p11.New(module)
	if m == nil {
		return "could not load it to list its tokens"
	}
	defer m.Destroy()
	switch err := m.Initialize(); {
	case err == nil:
		defer func() { _ = m.Finalize() }()
	case errors.Is(err, p11.Error(p11.CKR_CRYPTOKI_ALREADY_INITIALIZED)):
	default:
		return "could not list its tokens: " + err.Error()
	}
	slots, err := m.GetSlotList(true)
	if err != nil {
		return "could not list its tokens: " + err.Error()
	}
	var names []string
	for _, s := range slots {
		ti, err := m.GetTokenInfo(s)
		if err != nil || ti.Flags&p11.CKF_TOKEN_INITIALIZED == 0 {
			continue
		}
		if len(names) == maxListed {
			names = append(names, "…")
			break
		}
		names = append(names, fmt.Sprintf("%q (serial %q, slot %d)", ti.Label, ti.SerialNumber, s))
	}
	if len(names) == 0 {
		return "it has no initialized token"
	}
	return "tokens there: " + strings.Join(names, ", ")
}

// listKeys describes the key pairs in a token, for an error that says a
// key was not found.
func listKeys(ctx *crypto11.Context) string {
	all, err := ctx.FindAllKeyPairs()
	if err != nil {
		return ""
	}
	if len(all) == 0 {
		return "the token holds no key pair"
	}
	var names []string
	for _, k := range all {
		if len(names) == maxListed {
			names = append(names, "…")
			break
		}
		attrs, err := ctx.GetAttributes(k, []crypto11.AttributeType{crypto11.CkaLabel, crypto11.CkaId})
		if err != nil {
			continue
		}
		desc := keyType(k)
		if a := attrs[crypto11.CkaLabel]; a != nil && len(a.Value) > 0 {
			desc += fmt.Sprintf(" label %q", a.Value)
		}
		if a := attrs[crypto11.CkaId]; a != nil && len(a.Value) > 0 {
			desc += " id " + hex.EncodeToString(a.Value)
		}
		names = append(names, desc)
	}
	return "key pairs there: " + strings.Join(names, ", ")
}

func keyType(k crypto.Signer) string {
	switch k.Public().(type) {
	case *rsa.PublicKey:
		return "RSA"
	case *ecdsa.PublicKey:
		return "EC"
	}
	return "other"
}

func labelBytes(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}
