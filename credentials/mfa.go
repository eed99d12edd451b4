package credentials

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// DefaultMFATimeout bounds one run of an MFA command when MFAOptions
// leaves Timeout zero.
const DefaultMFATimeout = 30 * time.Second

const (
	maxMFAStdout = 64 << 10 // more than any token printer needs
	maxMFAStderr = 300      // characters of stderr kept in an error
)

// Compiled regexps are read-only after package initialisation.
var (
	// A token is six digits with no letter, digit or '_' on either side.
	mfaTokenRE = regexp.MustCompile(`\b[0-9]{6}\b`)
	// Redacted from stderr: anything that could be a code or a key.
	longDigitsRE = regexp.MustCompile(`[0-9]{4,}`)
	secretishRE  = regexp.MustCompile(`[A-Za-z0-9/+=_-]{20,}`)
)

// MFAOptions configure NewMFACommand.
type MFAOptions struct {
	// Timeout bounds one run; zero means DefaultMFATimeout.
	Timeout time.Duration
	// Env names the only environment variables the command gets, with
	// the values this process has. Nothing else is passed, not even PATH.
	Env []string
}

// MFACommand runs a program that prints an MFA code, without a shell and
// with only the listed environment. The code is the last standalone
// 6-digit number on its stdout.
type MFACommand struct {
	path    string // resolved with this process's PATH
	argv    []string
	timeout time.Duration
	env     []string
}

// NewMFACommand resolves argv[0] with this process's PATH, so that a
// missing program is an error at start.
func NewMFACommand(argv []string, opts MFAOptions) (*MFACommand, error) {
	if len(argv) == 0 || argv[0] == "" {
		return nil, errors.New("mfa: command is empty")
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return nil, fmt.Errorf("mfa: command %s: %w", quoteArgv(argv), err)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultMFATimeout
	}
	return &MFACommand{path: path, argv: append([]string(nil), argv...), timeout: opts.Timeout, env: append([]string(nil), opts.Env...)}, nil
}

// String names the command for errors and logs.
func (m *MFACommand) String() string { return quoteArgv(m.argv) }

// Timeout is the longest one run may take.
func (m *MFACommand) Timeout() time.Duration { return m.timeout }

// Token runs the command once and returns the code it printed. Errors name
// the command and never contain the code; stderr is included redacted and
// cut short.
func (m *MFACommand) Token(ctx context.Context) (string, error) {
	timedOut := errors.New("mfa command timed out")
	ctx, cancel := context.WithTimeoutCause(ctx, m.timeout, timedOut)
	defer cancel()
	cmd := exec.CommandContext(ctx, m.path, m.argv[1:]...)
	cmd.Args[0] = m.argv[0]
	// A non-nil, possibly empty Env: nil would mean the whole of ours.
	cmd.Env = []string{}
	for _, name := range m.env {
		if v, ok := os.LookupEnv(name); ok {
			cmd.Env = append(cmd.Env, name+"="+v)
		}
	}
	cmd.Stdin = nil
	stdout := &capped{max: maxMFAStdout}
	stderr := &capped{max: 4 * maxMFAStderr}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// A child that keeps the pipes open (a script's sleep) must not keep
	// Wait from returning once the command is killed.
	cmd.WaitDelay = time.Second
	setProcessGroup(cmd)
	err := cmd.Run()
	switch {
	case context.Cause(ctx) == timedOut:
		return "", fmt.Errorf("mfa: command %s timed out after %s", m, m.timeout)
	case ctx.Err() != nil:
		return "", fmt.Errorf("mfa: command %s: %w", m, context.Cause(ctx))
	case err != nil:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("mfa: command %s failed (%s)%s", m, ee.ProcessState, stderrSuffix(stderr.String()))
		}
		return "", fmt.Errorf("mfa: command %s: %w", m, err)
	}
	code, err := parseMFAOutput(stdout.String(), stderr.String())
	if err != nil {
		return "", fmt.Errorf("mfa: command %s %w", m, err)
	}
	return code, nil
}

// parseMFAOutput is the code in what a successful MFA command printed: the
// last standalone 6-digit number on stdout. The error holds nothing of
// stdout, and of stderr only its redacted suffix: either may hold a code
// or a secret.
func parseMFAOutput(stdout, stderr string) (string, error) {
	matches := mfaTokenRE.FindAllString(stdout, -1)
	if len(matches) == 0 {
		return "", fmt.Errorf("printed no 6-digit token on stdout%s", stderrSuffix(stderr))
	}
	return matches[len(matches)-1], nil
}

// stderrSuffix is ": stderr: ..." with digit runs and long key-like words
// replaced, on one line, cut short; "" when stderr is empty.
func stderrSuffix(s string) string {
	s = strings.Join(strings.Fields(strings.ToValidUTF8(s, "?")), " ")
	if s == "" {
		return ""
	}
	s = redactText(s)
	if r := []rune(s); len(r) > maxMFAStderr {
		s = string(r[:maxMFAStderr]) + "…"
	}
	return ": stderr: " + s
}

// redactText hides what could be an MFA code or a secret in text that goes
// into an error.
func redactText(s string) string {
	s = secretishRE.ReplaceAllString(s, "[redacted]")
	return longDigitsRE.ReplaceAllStringFunc(s, func(d string) string { return strings.Repeat("#", len(d)) })
}

func quoteArgv(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		if a == "" || strings.ContainsAny(a, " \t\n\"'\\") {
			a = strconv.Quote(a)
		}
		q[i] = a
	}
	return "[" + strings.Join(q, " ") + "]"
}

// capped keeps the first max bytes written and drops the rest, so that a
// command that floods its output cannot grow memory.
type capped struct {
	buf bytes.Buffer
	max int
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - c.buf.Len(); room > 0 {
		c.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (c *capped) String() string { return c.buf.String() }
