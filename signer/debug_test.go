package signer

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/signet-proxy/signet/credentials"
)

// TestTracingMatchesSuite: the trace is the canonical request and string
// to sign of AWS's test vectors, byte for byte.
func TestTracingMatchesSuite(t *testing.T) {
	for _, name := range []string{"get-vanilla", "get-vanilla-query-order-key-case", "post-header-key-case", "get-vanilla-with-session-token"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(suiteDir, name)
			var c suiteContext
			if err := json.Unmarshal(readFile(t, dir, "context.json"), &c); err != nil {
				t.Fatal(err)
			}
			var traces []Trace
			s := NewTracing(Options{Now: func() time.Time { return c.Timestamp }, SpoolDir: t.TempDir()},
				func(tr Trace) { traces = append(traces, tr) })
			r := parseSuiteRequest(t, readFile(t, dir, "request.txt"))
			creds := credentials.Credentials{
				AccessKeyID:     c.Credentials.AccessKeyID,
				SecretAccessKey: c.Credentials.SecretAccessKey,
				SessionToken:    c.Credentials.Token,
			}
			release, err := s.Sign(context.Background(), r, creds, Params{Scope: Scope{c.Service, c.Region}, Payload: PayloadSigned})
			if err != nil {
				t.Fatal(err)
			}
			defer release()
			if len(traces) != 1 {
				t.Fatalf("%d traces, want 1", len(traces))
			}
			if want := string(readFile(t, dir, "header-canonical-request.txt")); traces[0].CanonicalRequest != want {
				t.Errorf("canonical request\n got %q\nwant %q", traces[0].CanonicalRequest, want)
			}
			if want := string(readFile(t, dir, "header-string-to-sign.txt")); traces[0].StringToSign != want {
				t.Errorf("string to sign\n got %q\nwant %q", traces[0].StringToSign, want)
			}
		})
	}
}
