package wasmhost

import (
	"regexp"
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	cases := []struct{ in, want string }{
		{"key AKIAIOSFODNN7EXAMPLE used", "key [REDACTED] used"},
		{"ASIAXXXXXXXXXXXXXXXX", "[REDACTED]"},
		{"secret=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY.", "secret=[REDACTED]."},
		{"Authorization: Bearer abc.def-ghi_jkl", "Authorization: Bearer [REDACTED]"},
		{"bearer  0123456789abcdef", "bearer  [REDACTED]"},
		{"jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl end", "jwt [REDACTED] end"},
		{`"SessionToken": "IQoJb3JpZ2luX2VjEHYaCXVzLWVhc3QtMSJHMEUCIQDx"`, `"SessionToken": "[REDACTED]"`},
		{"session_token=FwoGZXIvYXdzEJr", "session_token=[REDACTED]"},
		{"blob " + strings.Repeat("aB3+", 20) + "==", "blob [REDACTED]"},
		{"sha 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "sha [REDACTED]"},
		// not secrets: words, paths, short IDs, a token-ish word alone
		{"token expired at /usr/local/go/src/runtime/proc.go:250", "token expired at /usr/local/go/src/runtime/proc.go:250"},
		{"request id 1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901 failed", "request id 1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901 failed"},
		{"github.com/signet-proxy/signet/wasmhost/testdata/probe", "github.com/signet-proxy/signet/wasmhost/testdata/probe"},
		{"", ""},
	}
	for _, tc := range cases {
		if got := Redact(tc.in); got != tc.want {
			t.Errorf("Redact(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
}

func TestRedactTruncatedDropsCutWords(t *testing.T) {
	// The tail of a 40-character secret is shorter than any pattern.
	if got := redactTruncated("nFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY next line", true, false); got != "next line" {
		t.Errorf("head: %q", got)
	}
	if got := redactTruncated("first wJalrXUtnFEMI/K7MDE", false, true); got != "first" {
		t.Errorf("tail: %q", got)
	}
}

func TestTailBuffer(t *testing.T) {
	tb := newTailBuffer(8)
	for _, w := range []string{"abc", "defgh", "ijklm", "n"} {
		tb.Write([]byte(w))
	}
	if s, cut := tb.text(); s != "ghijklmn" || !cut {
		t.Errorf("got %q %v", s, cut)
	}
	tb.Write([]byte("0123456789"))
	if s, _ := tb.text(); s != "23456789" {
		t.Errorf("got %q", s)
	}
	small := newTailBuffer(8)
	small.Write([]byte("abc"))
	if s, cut := small.text(); s != "abc" || cut {
		t.Errorf("got %q %v", s, cut)
	}
}

var secretShapes = regexp.MustCompile(`(AKIA|ASIA)[A-Z0-9]{16}|eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.`)

// isolated40 is a run of exactly 40 base64 characters, the shape of an AWS
// secret key.
var isolated40 = regexp.MustCompile(`(?:^|[^A-Za-z0-9+/_=-])([A-Za-z0-9+/_-]{40})={0,2}(?:$|[^A-Za-z0-9+/_=-])`)

// FuzzRedact: redaction never panics, is stable, and leaves no text of a
// shape it promises to remove.
func FuzzRedact(f *testing.F) {
	f.Add("key AKIAIOSFODNN7EXAMPLE secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
	f.Add("Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig")
	f.Add("/usr/local/go/src/runtime/proc.go:250 +0x1d")
	f.Fuzz(func(t *testing.T, s string) {
		out := Redact(s)
		if again := Redact(out); again != out {
			t.Fatalf("not stable: %q -> %q -> %q", s, out, again)
		}
		if m := secretShapes.FindString(out); m != "" {
			t.Fatalf("%q left in %q", m, out)
		}
		if m := isolated40.FindStringSubmatch(out); m != nil {
			t.Fatalf("40-character run %q left in %q", m[1], out)
		}
	})
}
