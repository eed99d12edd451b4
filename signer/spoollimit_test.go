package signer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"
)

// TestSpoolLimit: bodies on disk are bounded all together; a body of known
// length is refused before any of it is read, one of unknown length when it
// grows past what is left, and every refusal or release gives the bytes back.
func TestSpoolLimit(t *testing.T) {
	const mem, limit = 1024, 100_000
	newSigner := func(t *testing.T) *Signer {
		return New(Options{Now: func() time.Time { return testTime }, SpoolDir: t.TempDir(), SpoolMemory: mem, MaxSpoolBytes: limit})
	}
	// sign spools a body of n bytes; known says whether its length is given.
	sign := func(s *Signer, n int, known bool) (func(), *countingReader, error) {
		r := newReq(t, "POST", "https://sqs.us-east-1.amazonaws.com/", nil)
		cr := &countingReader{r: bytes.NewReader(bytes.Repeat([]byte("b"), n))}
		r.Body = io.NopCloser(cr)
		if known {
			r.ContentLength = int64(n)
		}
		release, err := s.Sign(context.Background(), r, testCreds, Params{Scope: sqsScope})
		return release, cr, err
	}
	tests := []struct {
		name      string
		held      int  // a body spooled and not yet released
		n         int  // the next body
		known     bool // its length is given
		wantFull  bool
		wantReads bool // whether any of it was read
	}{
		{"fits", 0, limit, true, false, true},
		{"known too big", 0, limit + 1, true, true, false},
		{"unknown too big", 0, limit + 1, false, true, true},
		{"known over what is left", 60_000, 50_000, true, true, false},
		{"unknown over what is left", 60_000, 50_000, false, true, true},
		{"in memory never counts", limit, mem, true, false, true},
		{"exactly what is left", 60_000, 40_000, false, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSigner(t)
			holdRelease := noRelease
			if tt.held > 0 {
				var err error
				if holdRelease, _, err = sign(s, tt.held, true); err != nil {
					t.Fatal(err)
				}
			}
			release, cr, err := sign(s, tt.n, tt.known)
			release()
			if full := errors.Is(err, ErrSpoolFull); full != tt.wantFull {
				t.Fatalf("err = %v, want ErrSpoolFull: %v", err, tt.wantFull)
			}
			if tt.wantFull && errors.Is(err, ErrSpool) {
				t.Errorf("a full spool is reported as a spool failure: %v", err)
			}
			if read := cr.n > 0; read != tt.wantReads {
				t.Errorf("read %d bytes of the body; want any read: %v", cr.n, tt.wantReads)
			}
			if got := s.SpoolBytes(); got != int64(tt.held) {
				t.Errorf("after the second body, %d bytes reserved, want %d (the held body's)", got, tt.held)
			}
			holdRelease()
			if got := s.SpoolBytes(); got != 0 {
				t.Errorf("after every release, %d bytes reserved, want 0", got)
			}
		})
	}
}

func TestSpoolLimitGivenBackOnAbort(t *testing.T) {
	s := New(Options{Now: func() time.Time { return testTime }, SpoolDir: t.TempDir(), SpoolMemory: 1024, MaxSpoolBytes: 60_000})
	for _, known := range []bool{true, false} {
		r := newReq(t, "POST", "https://sqs.us-east-1.amazonaws.com/", nil)
		r.Body = io.NopCloser(&abortingReader{data: bytes.Repeat([]byte("x"), 50_000), failAt: 25_000})
		if known {
			r.ContentLength = 50_000
		}
		release, err := s.Sign(context.Background(), r, testCreds, Params{Scope: sqsScope})
		release()
		if !errors.Is(err, errClientGone) {
			t.Fatalf("known length %v: err = %v", known, err)
		}
		if got := s.SpoolBytes(); got != 0 {
			t.Errorf("known length %v: %d bytes still reserved after an aborted body", known, got)
		}
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}
