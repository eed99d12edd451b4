package admin

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// TokenFileName is the file in the state directory that holds the token
// signet generates when admin.token_file is not set.
const TokenFileName = "admin-token"

const minTokenLen = 16

// NewToken returns a fresh random token: 32 bytes from crypto/rand,
// base64url, 43 characters.
func NewToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("admin: new token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// CheckToken reports whether tok can be the credential endpoint's token:
// at least 16 characters, printable ASCII without spaces, because the SDKs
// send it as a header value as it is. The error never shows the token.
func CheckToken(tok string) error {
	if len(tok) < minTokenLen {
		return fmt.Errorf("the token has %d characters: use at least %d", len(tok), minTokenLen)
	}
	for i := range len(tok) {
		if c := tok[i]; c < 0x21 || c > 0x7e {
			return fmt.Errorf("the token has a character that is not printable ASCII at byte %d: a header cannot carry it", i)
		}
	}
	return nil
}

// ReadTokenFile reads the token from path (admin.token_file). One trailing
// line break is dropped; anything else must pass CheckToken. A file that
// others can read is refused, as proxy_auth.file is.
func ReadTokenFile(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("admin: token file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("admin: token file %s is readable by others (mode %04o): chmod 600 it", path, fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("admin: token file: %w", err)
	}
	tok := strings.TrimSuffix(strings.TrimSuffix(string(data), "\n"), "\r")
	if err := CheckToken(tok); err != nil {
		return "", fmt.Errorf("admin: token file %s: %w", path, err)
	}
	return tok, nil
}

// WriteTokenFile writes tok to path with mode 0600, replacing what was
// there in one rename so that a reader never sees half a token. There is
// no trailing line break: the AWS SDKs send the contents of
// AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE as they are.
func WriteTokenFile(path, tok string) error {
	if err := CheckToken(tok); err != nil {
		return fmt.Errorf("admin: write token: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("admin: write token: %w", err)
	}
	f, err := os.CreateTemp(dir, ".admin-token-*")
	if err != nil {
		return fmt.Errorf("admin: write token: %w", err)
	}
	tmp := f.Name()
	_, werr := f.WriteString(tok)
	cerr := f.Close()
	if err := errors.Join(werr, cerr, os.Chmod(tmp, 0o600)); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("admin: write token: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("admin: write token: %w", err)
	}
	return nil
}

// LoadOrCreateToken gives the token for this run and the file that holds
// it (for AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE): read from tokenFile when
// set, else freshly generated and written to stateDir/admin-token.
func LoadOrCreateToken(tokenFile, stateDir string) (tok, path string, err error) {
	if tokenFile != "" {
		tok, err = ReadTokenFile(tokenFile)
		return tok, tokenFile, err
	}
	if tok, err = NewToken(); err != nil {
		return "", "", err
	}
	path = filepath.Join(stateDir, TokenFileName)
	if err := WriteTokenFile(path, tok); err != nil {
		return "", "", err
	}
	return tok, path, nil
}
