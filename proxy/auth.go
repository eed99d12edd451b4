package proxy

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// BasicAuth checks Proxy-Authorization: Basic against a file of
// "user:password" lines, where a password is plain text or a bcrypt hash
// (htpasswd -B). Lines starting with # are comments.
type BasicAuth struct {
	users map[string][]byte // user -> password or bcrypt hash

	// bcrypt is slow on purpose; a credential that verified once is
	// remembered by its SHA-256 so that keep-alive clients do not pay it
	// on every request. Bounded: cleared when full.
	mu       sync.Mutex
	verified map[[sha256.Size]byte]struct{}
}

const maxVerified = 1024

// LoadBasicAuth reads path. The file holds secrets, so one that others can
// read is refused, as the CA key would be.
func LoadBasicAuth(path string) (*BasicAuth, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("proxy auth: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("proxy auth: %s is readable by others (mode %04o): chmod 600 it", path, fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("proxy auth: %w", err)
	}
	a := &BasicAuth{users: make(map[string][]byte), verified: make(map[[sha256.Size]byte]struct{})}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, pass, ok := strings.Cut(line, ":")
		if !ok || user == "" || pass == "" {
			return nil, fmt.Errorf("proxy auth: %s line %d: want user:password", path, n)
		}
		a.users[user] = []byte(pass)
	}
	if len(a.users) == 0 {
		return nil, fmt.Errorf("proxy auth: %s holds no user:password line", path)
	}
	return a, nil
}

func (a *BasicAuth) allow(r *http.Request) bool {
	h := r.Header.Get("Proxy-Authorization")
	scheme, cred, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
	if err != nil {
		return false
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok {
		return false
	}
	return a.Verify(user, pass)
}

// Verify reports whether user and password match a line of the file. The
// admin listener checks its Authorization: Basic with it.
func (a *BasicAuth) Verify(user, pass string) bool {
	want, known := a.users[user]
	if !known {
		return false
	}
	if !isBcrypt(want) {
		return subtle.ConstantTimeCompare([]byte(pass), want) == 1
	}
	sum := sha256.Sum256([]byte(user + ":" + pass))
	a.mu.Lock()
	_, seen := a.verified[sum]
	a.mu.Unlock()
	if seen {
		return true
	}
	if bcrypt.CompareHashAndPassword(want, []byte(pass)) != nil {
		return false
	}
	a.mu.Lock()
	if len(a.verified) >= maxVerified {
		clear(a.verified)
	}
	a.verified[sum] = struct{}{}
	a.mu.Unlock()
	return true
}

func isBcrypt(b []byte) bool {
	return bytes.HasPrefix(b, []byte("$2a$")) || bytes.HasPrefix(b, []byte("$2b$")) || bytes.HasPrefix(b, []byte("$2y$"))
}

func (s *Server) askForAuth(w http.ResponseWriter, r *http.Request, ex *exchange) {
	s.log.Info("proxy authentication failed", "remote", r.RemoteAddr, "method", r.Method, "host", r.Host)
	w.Header().Set("Proxy-Authenticate", `Basic realm="signet"`)
	ex.fail(w, &proxyError{status: http.StatusProxyAuthRequired, code: codeProxyAuth,
		message: "this proxy requires authentication",
		fix:     "put user:password in the proxy URL (http://user:password@host:port)"})
}
