package signer

import (
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/smithy-go/logging"
)

// Trace is what the SDK computed for one signature, as AWS's
// SignatureDoesNotMatch answers print it: the canonical request and the
// string to sign. The canonical request holds the signed header values,
// the session token among them.
type Trace struct {
	CanonicalRequest string
	StringToSign     string
}

// NewTracing returns a Signer like New(opts) that hands every signature's
// Trace to trace before it returns from Sign. It is for `signet debug
// sign`; the proxy never traces, since a trace holds the session token.
func NewTracing(opts Options, trace func(Trace)) *Signer {
	s := New(opts)
	s.v4 = v4.NewSigner(func(o *v4.SignerOptions) {
		o.LogSigning = true
		o.Logger = traceLogger(trace)
	})
	return s
}

// traceLogger receives the SDK's signing log. The SDK logs the canonical
// request and the string to sign as the first two arguments of one
// Logf call (logSigningInfo in aws/signer/v4/v4.go); TestTracingMatchesSuite
// holds that to AWS's own test vectors.
type traceLogger func(Trace)

func (f traceLogger) Logf(_ logging.Classification, _ string, v ...any) {
	if len(v) < 2 {
		return
	}
	canonical, ok1 := v[0].(string)
	toSign, ok2 := v[1].(string)
	if ok1 && ok2 {
		f(Trace{CanonicalRequest: canonical, StringToSign: toSign})
	}
}
