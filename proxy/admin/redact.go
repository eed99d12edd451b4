package admin

import (
	"regexp"
	"strings"

	"github.com/signet-proxy/signet/credentials"
)

// Text that might be a secret in an error message that came from a
// provider (a message quoting a response body, say). Providers are written
// never to put one there; this is the second line, applied to every error
// text the admin API shows.
var (
	// Access key IDs: kept recognisable, as credentials.RedactKeyID does.
	// No word boundaries: an ID glued to other text is still an ID.
	keyIDRE = regexp.MustCompile(`(?:AKIA|ASIA|AROA|AIDA|AGPA|ANPA|ANVA|APKA|ABIA|ACCA)[A-Z0-9]{12,124}`)
	// JWTs (web identity tokens).
	jwtRE = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*`)
	// Secret keys are 40 characters of base64; session tokens are hundreds.
	// A diagnostic rarely has such a run; losing one is cheaper than
	// leaking a key.
	base64RunRE = regexp.MustCompile(`[A-Za-z0-9/+]{40,}={0,2}`)
)

const redactedText = "[REDACTED]"

func redact(s string) string {
	if s == "" {
		return ""
	}
	s = jwtRE.ReplaceAllString(s, redactedText)
	s = keyIDRE.ReplaceAllStringFunc(s, credentials.RedactKeyID)
	return base64RunRE.ReplaceAllString(s, redactedText)
}

// redactKeyID redacts an ID that is not redacted yet; one that
// credentials.RedactKeyID made already is kept.
func redactKeyID(id string) string {
	if strings.Contains(id, "…") || id == "****" || id == "<none>" {
		return id
	}
	return credentials.RedactKeyID(id)
}
