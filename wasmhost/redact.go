package wasmhost

import (
	"regexp"
	"strings"
)

// redacted replaces anything that looks like a secret.
const redacted = "[REDACTED]"

// These patterns run before the base64-run scan because they contain
// characters ('.', ' ') that end a run, so the scan alone would leave
// pieces of them behind.
var (
	jwtPattern    = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*`)
	bearerPattern = regexp.MustCompile(`(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{8,}`)
	// key=value and "key": "value" forms of token fields.
	tokenFieldPattern = regexp.MustCompile(`(?i)\b((?:access_?|session_?|id_?|refresh_?)?token["']?\s*[:=]\s*["']?)[A-Za-z0-9._~+/=-]{8,}`)
	// AWS access key IDs: a four-letter type prefix and 16 more characters.
	awsKeyIDPattern = regexp.MustCompile(`(AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|ABIA|ACCA|APKA)[A-Z0-9]{16}`)
)

// uuidPattern matches UUIDs, which are request IDs in logs, not secrets.
var uuidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// minSecretRun is the shortest run of base64 characters that may be a
// secret on its own. Shorter runs are words, IDs and numbers.
const minSecretRun = 32

// Redact replaces what looks like a secret in s with [REDACTED]: AWS access
// key IDs, 40-character secret keys, JWTs, bearer tokens and long runs of
// base64. It errs towards redacting: the text is diagnostics for an
// operator, and a lost hex digest costs less than a leaked key.
func Redact(s string) string {
	s = jwtPattern.ReplaceAllString(s, redacted)
	s = bearerPattern.ReplaceAllString(s, "${1}"+redacted)
	s = tokenFieldPattern.ReplaceAllString(s, "${1}"+redacted)
	s = awsKeyIDPattern.ReplaceAllString(s, redacted)
	return redactRuns(s)
}

// redactRuns replaces runs of base64 (standard or URL alphabet) that look
// random: exactly 40 characters (the length of an AWS secret key, which
// may contain '/'), or at least minSecretRun characters mixing letters and
// digits and not shaped like a path.
func redactRuns(s string) string {
	var b strings.Builder
	last := 0
	for i := 0; i < len(s); {
		if !isBase64Byte(s[i]) { // a lone '=' too
			i++
			continue
		}
		j := i
		for j < len(s) && isBase64Byte(s[j]) {
			j++
		}
		// '=' is only padding: it ends a run, so "key=value" is two words.
		for k := 0; k < 2 && j < len(s) && s[j] == '='; k++ {
			j++
		}
		if looksSecret(s[i:j]) {
			if b.Len() == 0 {
				b.Grow(len(s))
			}
			b.WriteString(s[last:i])
			b.WriteString(redacted)
			last = j
		}
		i = j
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

func looksSecret(run string) bool {
	body := strings.TrimRight(run, "=")
	if len(body) == 40 {
		return true
	}
	if len(body) < minSecretRun || uuidPattern.MatchString(body) {
		return false
	}
	var letter, digit bool
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case c >= '0' && c <= '9':
			digit = true
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
			letter = true
		}
	}
	// A path such as /usr/lib/go-1.26/src/runtime has a '/' every few
	// characters; random base64 has one in 64.
	paths := strings.Count(body, "/")
	return letter && digit && paths*16 <= len(body)
}

func isBase64Byte(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' ||
		c == '+' || c == '/' || c == '_' || c == '-'
}

// redactTruncated redacts s, a window cut out of a longer text: a token
// cut at either edge could be the unrecognisable remainder of a secret,
// so the partial word at each cut edge is dropped before redacting.
func redactTruncated(s string, cutHead, cutTail bool) string {
	if cutHead {
		if i := strings.IndexAny(s, " \t\r\n"); i >= 0 {
			s = s[i+1:]
		} else {
			s = ""
		}
	}
	if cutTail {
		if i := strings.LastIndexAny(s, " \t\r\n"); i >= 0 {
			s = s[:i]
		} else {
			s = ""
		}
	}
	return Redact(s)
}
