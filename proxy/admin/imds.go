package admin

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// IMDSv2 protocol names, as the EC2 instance metadata service uses them.
const (
	imdsTokenHeader = "X-Aws-Ec2-Metadata-Token"
	imdsTTLHeader   = "X-Aws-Ec2-Metadata-Token-Ttl-Seconds"
	imdsMaxTTL      = 21600
	imdsCredsPath   = "/latest/meta-data/iam/security-credentials/"
	// imdsStaticLifetime is the Expiration given to keys that never
	// expire: the IMDS format has no way to say "never", and the SDKs
	// refetch within the hour anyway.
	imdsStaticLifetime = time.Hour
)

// imds serves the subset of the EC2 instance metadata service (IMDSv2
// only: every GET needs a session token) that credential providers use.
//
// Session tokens are stateless: the expiry and an HMAC of it under a key
// made per process, so they cost no memory and die with the process, as
// IMDS tokens die with the instance.
//
// The hop limit of real IMDS (the IP TTL of its answers, 1 by default) is
// not reproduced: the listener is loopback only, which no packet can
// leave, and the config refuses IMDS on any other address.
type imds struct {
	h   *Handler
	key []byte
}

func newIMDS(h *Handler) (*imds, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("admin: imds token key: %w", err)
	}
	return &imds{h: h, key: key}, nil
}

func (m *imds) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// As IMDS does: a request that went through a proxy (one that adds
	// X-Forwarded-For) is refused, so that a server-side request forgery
	// through a proxy on this host cannot reach the keys.
	if _, ok := r.Header["X-Forwarded-For"]; ok {
		m.refuse(w, r, http.StatusForbidden, "forwarded request")
		return
	}
	// A browser tricked by DNS rebinding sends the attacker's host name;
	// SDKs send the address they were given.
	if !directHost(r.Host) {
		m.refuse(w, r, http.StatusForbidden, "host is not an IP address or localhost")
		return
	}
	if r.URL.Path == "/latest/api/token" {
		m.serveToken(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		plain(w, http.StatusMethodNotAllowed, "")
		return
	}
	if !m.valid(r.Header.Get(imdsTokenHeader)) {
		m.refuse(w, r, http.StatusUnauthorized, "missing, wrong or expired session token")
		return
	}
	role := m.h.catalog.Load().IMDSSource
	switch name, ok := strings.CutPrefix(r.URL.Path, imdsCredsPath); {
	case !ok || role == "":
		plain(w, http.StatusNotFound, "")
	case name == "":
		plain(w, http.StatusOK, role)
	case name == role:
		m.serveCredentials(w, r, role)
	default:
		plain(w, http.StatusNotFound, "")
	}
}

func (m *imds) refuse(w http.ResponseWriter, r *http.Request, status int, reason string) {
	m.h.log.Warn("instance metadata request refused", "remote", r.RemoteAddr, "path", r.URL.Path, "reason", reason)
	plain(w, status, "")
}

func (m *imds) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut {
		w.Header().Set("Allow", "PUT")
		plain(w, http.StatusMethodNotAllowed, "")
		return
	}
	ttl, err := strconv.Atoi(r.Header.Get(imdsTTLHeader))
	if err != nil || ttl < 1 || ttl > imdsMaxTTL {
		plain(w, http.StatusBadRequest, "")
		return
	}
	w.Header().Set(imdsTTLHeader, strconv.Itoa(ttl))
	plain(w, http.StatusOK, m.token(m.h.now().Add(time.Duration(ttl)*time.Second)))
}

// token is base64url(expiry as 8 bytes of Unix seconds, HMAC-SHA256 of
// them).
func (m *imds) token(expires time.Time) string {
	var b [8 + sha256.Size]byte
	binary.BigEndian.PutUint64(b[:8], uint64(expires.Unix()))
	mac := hmac.New(sha256.New, m.key)
	mac.Write(b[:8])
	mac.Sum(b[8:8])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (m *imds) valid(tok string) bool {
	// Strict: each token has exactly one spelling.
	raw, err := base64.RawURLEncoding.Strict().DecodeString(tok)
	if err != nil || len(raw) != 8+sha256.Size {
		return false
	}
	mac := hmac.New(sha256.New, m.key)
	mac.Write(raw[:8])
	if !hmac.Equal(mac.Sum(nil), raw[8:]) {
		return false
	}
	expires := time.Unix(int64(binary.BigEndian.Uint64(raw[:8])), 0)
	return m.h.now().Before(expires)
}

// imdsCredentials is the instance metadata credentials document.
type imdsCredentials struct {
	Code            string `json:"Code"`
	LastUpdated     string `json:"LastUpdated"`
	Type            string `json:"Type"`
	AccessKeyID     string `json:"AccessKeyId"`
	SecretAccessKey string `json:"SecretAccessKey"`
	Token           string `json:"Token"`
	Expiration      string `json:"Expiration"`
}

func (m *imds) serveCredentials(w http.ResponseWriter, r *http.Request, name string) {
	src, ok := m.h.catalog.Load().Sources[name]
	if !ok {
		plain(w, http.StatusNotFound, "")
		return
	}
	c, err := src.Credentials(r.Context())
	if err != nil {
		m.h.log.Warn("credential request failed", "endpoint", "imds", "source", name, "remote", r.RemoteAddr, "error", redact(err.Error()))
		plain(w, http.StatusServiceUnavailable, "")
		return
	}
	now := m.h.now()
	updated := src.State().LastRefresh
	if updated.IsZero() {
		updated = now
	}
	exp := c.Expires
	if !c.CanExpire() {
		exp = now.Add(imdsStaticLifetime)
	}
	m.h.log.Info("credentials served", "endpoint", "imds", "source", name, "remote", r.RemoteAddr, "credentials", c)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, imdsCredentials{
		Code:            "Success",
		LastUpdated:     updated.UTC().Format(time.RFC3339),
		Type:            "AWS-HMAC",
		AccessKeyID:     c.AccessKeyID,
		SecretAccessKey: c.SecretAccessKey,
		Token:           c.SessionToken,
		Expiration:      exp.UTC().Format(time.RFC3339),
	})
}

// directHost reports whether a Host header names an IP address or
// localhost, with or without a port.
func directHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	return net.ParseIP(host) != nil || strings.EqualFold(host, "localhost")
}

func plain(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}
