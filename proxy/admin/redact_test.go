package admin

import (
	"regexp"
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"", ""},
		{"dial tcp 10.0.0.1:443: connection refused", "dial tcp 10.0.0.1:443: connection refused"},
		{"role arn:aws:iam::123456789012:role/service-role/my-long-role-name-for-things denied", "role arn:aws:iam::123456789012:role/service-role/my-long-role-name-for-things denied"},
		{"key AKIAIOSFODNN7EXAMPLE refused", "key AKIA…MPLE refused"},
		{`{"SecretAccessKey":"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}`, `{"SecretAccessKey":"[REDACTED]"}`},
		{"token IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ== end", "token [REDACTED] end"},
		{"jwt eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl bad", "jwt [REDACTED] bad"},
	} {
		if got := redact(tt.in); got != tt.want {
			t.Errorf("redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

var (
	fullKeyID = regexp.MustCompile(`(?:AKIA|ASIA)[A-Z0-9]{16}`)
	longRun   = regexp.MustCompile(`[A-Za-z0-9/+]{40}`)
)

// FuzzRedact: whatever an error says, what the API shows of it has no
// access key ID in full and no run that could be a secret key.
func FuzzRedact(f *testing.F) {
	f.Add("key AKIAIOSFODNN7EXAMPLE secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
	f.Add("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl")
	f.Add(strings.Repeat("AKIA", 20))
	f.Fuzz(func(t *testing.T, s string) {
		out := redact(s)
		if fullKeyID.MatchString(out) || longRun.MatchString(out) {
			t.Fatalf("redact(%q) = %q", s, out)
		}
	})
}
