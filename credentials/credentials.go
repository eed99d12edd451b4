// Package credentials owns where signing keys come from: a Provider fetches
// one set of credentials, and a Source keeps a named, refreshing cache of one
// provider so that callers never see expired keys.
package credentials

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// Credentials is one set of AWS keys. Its String, GoString and LogValue
// methods never reveal the secret or the session token, so a value that ends
// up in a log line or an error by accident leaks nothing.
type Credentials struct {
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
	// Expires is when AWS stops accepting the keys; zero means they do not
	// expire (long-term IAM user keys).
	Expires time.Time
	// Origin names what produced the keys, for operators ("static",
	// "chain:SharedConfigCredentials: default").
	Origin string
	// Identity is the ARN AWS will take the keys for, when the provider
	// learns it without asking (AssumeRole's AssumedRoleUser); "" when not
	// known. `signet whoami` asks.
	Identity string
}

// CanExpire reports whether the credentials carry an expiry time.
func (c Credentials) CanExpire() bool { return !c.Expires.IsZero() }

// Expired reports whether the credentials are past their expiry at now.
func (c Credentials) Expired(now time.Time) bool {
	return c.CanExpire() && !now.Before(c.Expires)
}

// Valid reports whether the credentials hold keys and are not expired at now.
func (c Credentials) Valid(now time.Time) bool {
	return c.AccessKeyID != "" && c.SecretAccessKey != "" && !c.Expired(now)
}

// String describes the credentials without their secrets.
func (c Credentials) String() string {
	s := "access key " + RedactKeyID(c.AccessKeyID)
	if c.SessionToken != "" {
		s += " (session)"
	}
	if c.CanExpire() {
		s += " expires " + c.Expires.UTC().Format(time.RFC3339)
	}
	return s
}

// GoString keeps %#v from printing the struct fields, secrets included.
func (c Credentials) GoString() string { return "credentials.Credentials{" + c.String() + "}" }

// Format makes every fmt verb, %+v included, use the redacted String.
func (c Credentials) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = f.Write([]byte(c.GoString()))
		return
	}
	_, _ = f.Write([]byte(c.String()))
}

// LogValue gives slog the redacted form.
func (c Credentials) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("access_key_id", RedactKeyID(c.AccessKeyID))}
	if c.CanExpire() {
		attrs = append(attrs, slog.Time("expires", c.Expires))
	}
	if c.Origin != "" {
		attrs = append(attrs, slog.String("origin", c.Origin))
	}
	return slog.GroupValue(attrs...)
}

// RedactKeyID keeps the first four and last four characters of an access
// key id: enough for an operator to tell keys apart (AKIA… vs ASIA…), and no
// more than AWS itself prints in CloudTrail.
func RedactKeyID(id string) string {
	if len(id) <= 8 {
		if id == "" {
			return "<none>"
		}
		return "****"
	}
	return id[:4] + "…" + id[len(id)-4:]
}

// Provider fetches one set of credentials from where they live. It does no
// caching: a Source decides when to call it.
type Provider interface {
	Retrieve(ctx context.Context) (Credentials, error)
}

// ProviderFunc adapts a function to Provider.
type ProviderFunc func(ctx context.Context) (Credentials, error)

// Retrieve calls f.
func (f ProviderFunc) Retrieve(ctx context.Context) (Credentials, error) { return f(ctx) }

// Source is a named, refreshing cache of one Provider. Credentials returns
// keys that are valid now, refreshing first when it must; it never returns
// expired keys.
type Source interface {
	Name() string
	Credentials(ctx context.Context) (Credentials, error)
	State() State
}

// State is what a Source reports about itself for health checks, metrics and
// the admin API. It never holds a secret.
type State struct {
	Name         string
	Method       string
	Identity     string // ARN, when the provider reported it
	AccessKeyID  string // redacted
	Expires      time.Time
	LastRefresh  time.Time
	LastError    string
	RefreshCount int
}

// Clock is the time source; tests pass one they can set.
type Clock interface {
	Now() time.Time
	// After is time.After on this clock.
	After(d time.Duration) <-chan time.Time
}

// SystemClock is the wall clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// After returns time.After(d).
func (SystemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
