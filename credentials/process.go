package credentials

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The AWS credential_process output format ("Sourcing credentials with an
// external process" in the AWS SDKs and Tools Reference Guide): one JSON
// object on stdout. Both the wasm provider and `signet credential-process`
// speak it.
const (
	processVersion = 1
	// maxProcessOutput bounds what ParseProcessOutput reads, the same cap
	// wasmhost puts on a module's stdout.
	maxProcessOutput = 64 << 10
)

// ProcessError is a credential_process output that cannot be used. Its
// message names the problem and the key, never a value that could be a
// credential: a half-valid output may hold a real secret.
type ProcessError struct {
	Problem string
}

func (e *ProcessError) Error() string { return "credential_process output " + e.Problem }

func processErr(format string, args ...any) error {
	return &ProcessError{Problem: fmt.Sprintf(format, args...)}
}

// ParseProcessOutput reads credential_process JSON: Version must be the
// number 1, AccessKeyId and SecretAccessKey non-empty strings, SessionToken
// an optional string, Expiration an optional RFC 3339 time after now.
// Unknown keys are ignored; whitespace around the object is allowed,
// anything else after it is not. Keys match exactly, as in botocore: a
// case-insensitive match could take a key the writer meant as something
// else. Expires is zero when there is no Expiration.
func ParseProcessOutput(data []byte, now time.Time) (Credentials, error) {
	if len(data) > maxProcessOutput {
		return Credentials{}, processErr("is larger than %d bytes", maxProcessOutput)
	}
	trimmed := bytes.Trim(data, " \t\r\n")
	if len(trimmed) == 0 {
		return Credentials{}, processErr("is empty: the program printed nothing on stdout")
	}
	if trimmed[0] != '{' {
		return Credentials{}, processErr("is not a JSON object")
	}
	fields, err := objectFields(trimmed)
	if err != nil {
		return Credentials{}, err
	}

	v, ok := fields["Version"]
	if !ok || string(v) == "null" {
		return Credentials{}, processErr("has no Version: want \"Version\": 1")
	}
	// Any JSON number equal to 1 (1.0 too), as botocore compares it.
	if n, err := strconv.ParseFloat(string(v), 64); err != nil {
		return Credentials{}, processErr("has a Version that is %s, not the number 1", jsonKind(v))
	} else if n != processVersion {
		return Credentials{}, processErr("has Version %s; only version 1 is known", shortNumber(v))
	}

	var c Credentials
	for _, f := range []struct {
		key      string
		dst      *string
		required bool
	}{
		{"AccessKeyId", &c.AccessKeyID, true},
		{"SecretAccessKey", &c.SecretAccessKey, true},
		{"SessionToken", &c.SessionToken, false},
	} {
		raw, ok := fields[f.key]
		if !ok || string(raw) == "null" {
			if f.required {
				return Credentials{}, processErr("has no %s", f.key)
			}
			continue
		}
		if err := json.Unmarshal(raw, f.dst); err != nil {
			return Credentials{}, processErr("has %s %s that is %s, not a string", article(f.key), f.key, jsonKind(raw))
		}
		switch {
		case *f.dst == "" && f.required:
			return Credentials{}, processErr("has an empty %s", f.key)
		case !printableASCII(*f.dst):
			// These go into HTTP headers; a control character could
			// split one.
			return Credentials{}, processErr("has %s %s with a character that is not printable ASCII", article(f.key), f.key)
		}
	}

	if raw, ok := fields["Expiration"]; ok && string(raw) != "null" {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return Credentials{}, processErr("has an Expiration that is %s, not a string", jsonKind(raw))
		}
		exp, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return Credentials{}, processErr("has an Expiration that is not an RFC 3339 time like 2026-11-28T12:00:00Z")
		}
		if !exp.After(now) {
			return Credentials{}, processErr("has an Expiration %s that is not after now (%s): the credentials are already expired, or a clock is wrong",
				exp.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		}
		c.Expires = exp
	}
	return c, nil
}

// objectFields reads the one JSON object in data into its top-level keys
// and raw values. A repeated known key is refused: which of two keys a
// reader takes is up to the reader, and two readers could disagree.
func objectFields(data []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil { // '{', checked by the caller
		return nil, syntaxErr(err)
	}
	fields := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, syntaxErr(err)
		}
		key, ok := tok.(string)
		if !ok {
			return nil, processErr("is not valid JSON")
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, syntaxErr(err)
		}
		if _, dup := fields[key]; dup && isProcessKey(key) {
			return nil, processErr("has %s twice", key)
		}
		fields[key] = raw
	}
	if _, err := dec.Token(); err != nil { // '}'
		return nil, syntaxErr(err)
	}
	if off := dec.InputOffset(); int(off) != len(data) {
		return nil, processErr("has more after the JSON object (at byte %d): print one object only", off)
	}
	return fields, nil
}

func article(key string) string {
	if strings.ContainsRune("AEIOU", rune(key[0])) {
		return "an"
	}
	return "a"
}

func isProcessKey(k string) bool {
	switch k {
	case "Version", "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration":
		return true
	}
	return false
}

// syntaxErr keeps only the offset of a JSON error: encoding/json's message
// quotes the offending character, which may be part of a secret.
func syntaxErr(err error) error {
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return processErr("is not valid JSON (at byte %d)", se.Offset)
	}
	return processErr("is not valid JSON (it ends too early)")
}

// jsonKind names the type of a JSON value without showing it.
func jsonKind(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "empty"
	}
	switch raw[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "a list"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// shortNumber shows a number that is not 1; a long one is not shown.
func shortNumber(raw json.RawMessage) string {
	if len(raw) > 16 {
		return "(a long number)"
	}
	return string(raw)
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// processOutput is the JSON that MarshalProcessOutput writes, in the order
// the AWS documentation shows.
type processOutput struct {
	Version         int    `json:"Version"`
	AccessKeyID     string `json:"AccessKeyId"`
	SecretAccessKey string `json:"SecretAccessKey"`
	SessionToken    string `json:"SessionToken,omitempty"`
	Expiration      string `json:"Expiration,omitempty"`
}

// MarshalProcessOutput writes c as credential_process JSON, one line with
// a trailing newline, for an AWS SDK or CLI to read. The expiry is written
// in UTC to the second, rounded down, so a reader never keeps the keys
// longer than they last.
func MarshalProcessOutput(c Credentials) ([]byte, error) {
	if c.AccessKeyID == "" || c.SecretAccessKey == "" {
		return nil, errors.New("credential_process output: no access key ID or secret access key")
	}
	out := processOutput{
		Version:         processVersion,
		AccessKeyID:     c.AccessKeyID,
		SecretAccessKey: c.SecretAccessKey,
		SessionToken:    c.SessionToken,
	}
	if c.CanExpire() {
		out.Expiration = c.Expires.UTC().Truncate(time.Second).Format(time.RFC3339)
	}
	b, err := json.Marshal(out)
	if err != nil {
		// Only strings and an int: this cannot fail, and if it did the
		// error could hold no value worth hiding.
		return nil, fmt.Errorf("credential_process output: %w", err)
	}
	return append(b, '\n'), nil
}
