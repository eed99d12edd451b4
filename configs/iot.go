package configs

import (
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// IoT gets temporary credentials from the AWS IoT Core credentials
// provider, authenticating with the device's X.509 certificate over
// mutual TLS. The key is a PEM file (PrivateKey) or a PKCS#11 token
// (PKCS11): exactly one of the two.
type IoT struct {
	// Endpoint is the account's credentials provider endpoint, from
	// `aws iot describe-endpoint --endpoint-type iot:CredentialProvider`:
	// PREFIX.credentials.iot.REGION.amazonaws.com, as host, host:port or
	// https://host[:port]. Port 443 when none is given.
	Endpoint string `koanf:"endpoint" yaml:"endpoint" json:"endpoint" toml:"endpoint"`
	// RoleAlias is the IoT role alias whose role is assumed.
	RoleAlias string `koanf:"role_alias" yaml:"role_alias" json:"role_alias" toml:"role_alias"`
	// ThingName, when set, is sent as x-amzn-iot-thingname; the
	// certificate must be attached to the thing.
	ThingName string `koanf:"thing_name" yaml:"thing_name,omitempty" json:"thing_name,omitempty" toml:"thing_name,omitempty"`
	// Certificate is a PEM file: the device certificate, then any
	// intermediates.
	Certificate string `koanf:"certificate" yaml:"certificate" json:"certificate" toml:"certificate"`
	// PrivateKey is a PEM file of the certificate's key: PKCS#1, SEC1,
	// PKCS#8, or encrypted PKCS#8 (PBES2, PBKDF2 HMAC-SHA256, AES-CBC).
	PrivateKey string `koanf:"private_key" yaml:"private_key,omitempty" json:"private_key,omitempty" toml:"private_key,omitempty"`
	// PrivateKeyPassphraseFile holds the passphrase of an encrypted
	// PrivateKey (one trailing newline is ignored).
	PrivateKeyPassphraseFile string `koanf:"private_key_passphrase_file" yaml:"private_key_passphrase_file,omitempty" json:"private_key_passphrase_file,omitempty" toml:"private_key_passphrase_file,omitempty"`
	// PKCS11 is a key on a PKCS#11 token, instead of PrivateKey.
	PKCS11 *PKCS11 `koanf:"pkcs11" yaml:"pkcs11,omitempty" json:"pkcs11,omitempty" toml:"pkcs11,omitempty"`
	// CAFile is a PEM bundle that alone verifies the endpoint's
	// certificate; empty means the system roots (plus upstream.ca_file).
	CAFile string `koanf:"ca_file" yaml:"ca_file,omitempty" json:"ca_file,omitempty" toml:"ca_file,omitempty"`
	// Timeout bounds one call, TLS handshake included; default 10s, at
	// most 5m and at most the source's refresh.timeout.
	Timeout Duration `koanf:"timeout" yaml:"timeout" json:"timeout" toml:"timeout"`
}

// PKCS11 names a private key on a PKCS#11 token: either URI (RFC 7512),
// or a token (TokenLabel, TokenSerial or Slot) and a key (KeyLabel or
// KeyID). The PIN is never written in the config: PinFile or PinEnv.
type PKCS11 struct {
	// Module is the PKCS#11 library, such as
	// /usr/lib/softhsm/libsofthsm2.so.
	Module      string `koanf:"module" yaml:"module" json:"module" toml:"module"`
	TokenLabel  string `koanf:"token_label" yaml:"token_label,omitempty" json:"token_label,omitempty" toml:"token_label,omitempty"`
	TokenSerial string `koanf:"token_serial" yaml:"token_serial,omitempty" json:"token_serial,omitempty" toml:"token_serial,omitempty"`
	// Slot is a slot ID; 0 is a valid slot, so unset is nil.
	Slot     *int   `koanf:"slot" yaml:"slot,omitempty" json:"slot,omitempty" toml:"slot,omitempty"`
	KeyLabel string `koanf:"key_label" yaml:"key_label,omitempty" json:"key_label,omitempty" toml:"key_label,omitempty"`
	// KeyID is the key's CKA_ID in hex, like 01 or a1b2c3.
	KeyID string `koanf:"key_id" yaml:"key_id,omitempty" json:"key_id,omitempty" toml:"key_id,omitempty"`
	// PinFile holds the user PIN (one trailing newline is ignored).
	PinFile string `koanf:"pin_file" yaml:"pin_file,omitempty" json:"pin_file,omitempty" toml:"pin_file,omitempty"`
	// PinEnv names the environment variable that holds the user PIN.
	PinEnv string `koanf:"pin_env" yaml:"pin_env,omitempty" json:"pin_env,omitempty" toml:"pin_env,omitempty"`
	// URI is an RFC 7512 pkcs11: URI of the key (token and object or id),
	// instead of the fields above; pin-value is refused.
	URI string `koanf:"uri" yaml:"uri,omitempty" json:"uri,omitempty" toml:"uri,omitempty"`
	// Pin exists only to refuse an inline PIN with a clear error.
	Pin string `koanf:"pin" yaml:"pin,omitempty" json:"pin,omitempty" toml:"pin,omitempty"`
}

// IoT limits.
const (
	DefaultIoTTimeout = 10 * time.Second
	maxIoTTimeout     = 5 * time.Minute
)

var (
	roleAliasRE = regexp.MustCompile(`^[\w=,@-]{1,128}$`)
	thingNameRE = regexp.MustCompile(`^[a-zA-Z0-9:_-]{1,128}$`)
	hexRE       = regexp.MustCompile(`^([0-9a-fA-F]{2})+$`)
)

const (
	iotEndpointAccepted = "the credentials provider endpoint, as host, host:port or https://host[:port], like c2example.credentials.iot.us-east-1.amazonaws.com"
	pkcs11TokenAccepted = "exactly one of token_label, token_serial or slot (or a uri)"
	pkcs11KeyAccepted   = "exactly one of key_label or key_id (or a uri)"
	pkcs11PinAccepted   = "exactly one of pin_file (a file holding the PIN) or pin_env (a variable holding it)"
)

func (s *IoT) normalize() {
	if s.Timeout == 0 {
		s.Timeout = Duration(DefaultIoTTimeout)
	}
}

func (s *IoT) validate(p path, refresh Refresh) Errors {
	var errs Errors
	add := func(e *Error) {
		if e != nil {
			errs = append(errs, e)
		}
	}
	add(checkIoTEndpoint(p.field("endpoint"), s.Endpoint))
	switch {
	case s.RoleAlias == "":
		add(newError(p.field("role_alias"), "", "is required", "the name of an IoT role alias: 1 to 128 letters, digits and =,@_-"))
	case !roleAliasRE.MatchString(s.RoleAlias):
		add(newError(p.field("role_alias"), s.RoleAlias, "is not a valid role alias", "1 to 128 letters, digits and =,@_-"))
	}
	if s.ThingName != "" && !thingNameRE.MatchString(s.ThingName) {
		add(newError(p.field("thing_name"), s.ThingName, "is not a valid thing name", "1 to 128 letters, digits and :_-"))
	}
	if s.Certificate == "" {
		add(newError(p.field("certificate"), "", "is required", "a PEM file with the device certificate (and any intermediates)"))
	}
	switch {
	case s.PrivateKey != "" && s.PKCS11 != nil:
		add(newError(p.field("pkcs11"), "", "is set together with private_key", "either private_key (a PEM file) or a pkcs11 block, not both"))
	case s.PrivateKey == "" && s.PKCS11 == nil:
		add(newError(p.field("private_key"), "", "is required", "a PEM file with the certificate's key, or a pkcs11 block instead"))
	}
	if s.PrivateKeyPassphraseFile != "" && s.PrivateKey == "" {
		add(newError(p.field("private_key_passphrase_file"), s.PrivateKeyPassphraseFile, "is set but private_key is not", "remove it, or set private_key to an encrypted PKCS#8 PEM file"))
	}
	if s.PKCS11 != nil {
		errs = append(errs, s.PKCS11.validate(p.field("pkcs11"))...)
	}
	if d := time.Duration(s.Timeout); d <= 0 || d > maxIoTTimeout {
		add(newError(p.field("timeout"), d.String(), "is out of range", "a Go duration like 10s, more than 0 and at most 5m"))
	} else if rt := time.Duration(refresh.Timeout); rt > 0 && d > rt {
		add(newError(p.field("timeout"), d.String(), "is longer than refresh.timeout ("+rt.String()+"): the source would give up first",
			"a duration at most refresh.timeout, or a longer refresh.timeout"))
	}
	return errs
}

func (k *PKCS11) validate(p path) Errors {
	var errs Errors
	add := func(e *Error) {
		if e != nil {
			errs = append(errs, e)
		}
	}
	if k.Pin != "" {
		// The value is never echoed: it is a PIN.
		add(newError(p.field("pin"), "", "is not allowed: a PIN is never written in the config", pkcs11PinAccepted))
	}
	if k.Module == "" {
		add(newError(p.field("module"), "", "is required", "the path of the PKCS#11 library, like /usr/lib/softhsm/libsofthsm2.so"))
	}
	count := func(set ...bool) int {
		n := 0
		for _, b := range set {
			if b {
				n++
			}
		}
		return n
	}
	pins := count(k.PinFile != "", k.PinEnv != "")
	if pins > 1 {
		add(newError(p.field("pin_env"), k.PinEnv, "is set together with pin_file", pkcs11PinAccepted))
	}
	if k.PinEnv != "" && !envNameRE.MatchString(k.PinEnv) {
		add(newError(p.field("pin_env"), k.PinEnv, "is not a variable name", "a name like SIGNET_PKCS11_PIN"))
	}
	if k.Slot != nil && *k.Slot < 0 {
		add(newError(p.field("slot"), strconv.Itoa(*k.Slot), "is negative", "a slot ID, 0 or more"))
	}
	tokens := count(k.TokenLabel != "", k.TokenSerial != "", k.Slot != nil)
	keys := count(k.KeyLabel != "", k.KeyID != "")
	if k.KeyID != "" && !hexRE.MatchString(k.KeyID) {
		add(newError(p.field("key_id"), k.KeyID, "is not hex", "the key's CKA_ID as hex digits, like 01 or a1b2c3"))
	}
	if k.URI != "" {
		if tokens+keys > 0 {
			add(newError(p.field("uri"), "", "is set together with token or key fields",
				"either uri, or token_label/token_serial/slot with key_label/key_id, not both"))
		}
		add(checkPKCS11URI(p.field("uri"), k.URI))
		return errs
	}
	if tokens != 1 {
		problem := "is required"
		if tokens > 1 {
			problem = "is set together with token_serial or slot"
		}
		add(newError(p.field("token_label"), "", problem, pkcs11TokenAccepted))
	}
	if keys != 1 {
		problem := "is required"
		if keys > 1 {
			problem = "is set together with key_id"
		}
		add(newError(p.field("key_label"), "", problem, pkcs11KeyAccepted))
	}
	if pins == 0 {
		add(newError(p.field("pin_file"), "", "is required", pkcs11PinAccepted))
	}
	return errs
}

// checkPKCS11URI checks the shape of an RFC 7512 URI: the pkcs11 scheme,
// an object or id, and no pin-value (a PIN in the config). The value is
// not echoed, since a URI may carry one.
func checkPKCS11URI(p path, v string) *Error {
	const accepted = "an RFC 7512 URI like pkcs11:token=signet;object=device-key;type=private, with the PIN in pin_file or pin_env"
	rest, ok := strings.CutPrefix(v, "pkcs11:")
	if !ok {
		return newError(p, "", "is not a pkcs11: URI", accepted)
	}
	path, query, _ := strings.Cut(rest, "?")
	attrs := map[string]bool{}
	for _, part := range append(strings.Split(path, ";"), strings.Split(query, "&")...) {
		if part == "" {
			continue
		}
		name, val, ok := strings.Cut(part, "=")
		if _, err := url.PathUnescape(val); !ok || name == "" || err != nil {
			return newError(p, "", "has an attribute that is not name=value", accepted)
		}
		attrs[strings.ToLower(name)] = true
	}
	switch {
	case attrs["pin-value"]:
		return newError(p, "", "has a pin-value: a PIN is never written in the config", accepted)
	case !attrs["object"] && !attrs["id"]:
		return newError(p, "", "names no key (object= or id=)", accepted)
	}
	return nil
}

// checkIoTEndpoint accepts what credentials.ParseIoTEndpoint accepts.
func checkIoTEndpoint(p path, v string) *Error {
	if v == "" {
		return newError(p, "", "is required", iotEndpointAccepted)
	}
	hostPort := v
	if strings.Contains(v, "://") {
		u, err := url.Parse(v)
		if err != nil {
			return newError(p, "", "is not a valid URL", iotEndpointAccepted)
		}
		shown := u.Redacted()
		switch {
		case u.Scheme != SchemeHTTPS:
			return newError(p, shown, "is not an https URL", iotEndpointAccepted)
		case u.User != nil:
			return newError(p, shown, "must not contain credentials", iotEndpointAccepted)
		case u.Path != "" && u.Path != "/":
			return newError(p, shown, "has a path: signet adds /role-aliases/ALIAS/credentials itself", iotEndpointAccepted)
		case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
			return newError(p, shown, "has a query or fragment", iotEndpointAccepted)
		}
		hostPort = u.Host
	}
	host := hostPort
	if h, port, err := net.SplitHostPort(hostPort); err == nil {
		if !validPort(port, 1) {
			return newError(p, v, "has an invalid port", iotEndpointAccepted)
		}
		host = h
	} else if strings.Count(hostPort, ":") == 1 || strings.HasPrefix(hostPort, "[") {
		return newError(p, v, "is not valid", iotEndpointAccepted)
	}
	if host == "" || !validHost(host) {
		return newError(p, v, "has no valid host", iotEndpointAccepted)
	}
	return nil
}

func (s *IoT) clone() *IoT {
	out := *s
	if s.PKCS11 != nil {
		k := *s.PKCS11
		if k.Slot != nil {
			slot := *k.Slot
			k.Slot = &slot
		}
		out.PKCS11 = &k
	}
	return &out
}
