package signer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
)

const (
	headerContentSHA256 = "X-Amz-Content-Sha256"

	emptySHA256           = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	unsignedPayload       = "UNSIGNED-PAYLOAD"
	streamingUnsignedTrlr = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"

	// spoolChunk is the copy buffer size: big enough that a large upload is
	// not read in tiny syscalls, small enough to keep per-request memory low.
	spoolChunk = 32 << 10
)

// payload settles the body of r and returns the payload hash to sign with.
// When it spools, r.Body, r.ContentLength and r.GetBody are replaced and the
// returned release removes the spool; on error nothing is left behind.
//
// A body of unknown length (Transfer-Encoding: chunked from the client, as
// with `curl -T -`) is spooled for S3 whatever the payload mode: S3 answers
// a PUT without Content-Length with 411 MissingContentLength. Re-framing it
// as signet's own aws-chunked body would not help, because S3 then needs
// X-Amz-Decoded-Content-Length, the same length known up front. The spool
// hashes as it goes, so the body is then signed with its hash too (unless
// the client sent its own, which AWS checks). The client's own aws-chunked
// modes carry that header and stream as they are.
func (s *Signer) payload(ctx context.Context, r *http.Request, p Params) (string, func(), error) {
	s3 := isS3Style(p.Scope.Service)
	switch p.Payload {
	case "", PayloadAuto, PayloadSigned, PayloadUnsigned:
	default:
		return "", noRelease, fmt.Errorf("sign request for %q: payload mode %q: %w", hostOf(r), p.Payload, ErrUnsupportedPayload)
	}
	needLength := s3 && unknownLength(r)

	client := r.Header.Values(headerContentSHA256)
	if len(client) > 1 {
		return "", noRelease, fmt.Errorf("sign request for %q: %d X-Amz-Content-Sha256 headers: %w", hostOf(r), len(client), ErrUnsupportedPayload)
	}
	sent := len(client) == 1
	if sent {
		v := client[0]
		switch {
		case len(v) == 64 && isLowerHex(v):
			// AWS checks the body against this hash, so trusting it cannot
			// make signet vouch for a body the client did not send.
			if needLength {
				_, release, err := s.spoolBody(ctx, r)
				if err != nil {
					return "", noRelease, err
				}
				return v, release, nil
			}
			return v, noRelease, nil
		case v == streamingUnsignedTrlr, isSignedStreaming(v):
			// aws-chunked: streamed; Sign re-signs the chunks of the
			// signed forms.
			return v, noRelease, nil
		case v == unsignedPayload:
			if !needLength && (p.Payload == PayloadUnsigned || (s3 && p.Payload != PayloadSigned)) {
				return v, noRelease, nil
			}
			// Otherwise the body is spooled below (the route wants it
			// signed, or S3 needs its length) and the header replaced.
		case v == streamingECDSA, v == streamingECDSATrailer:
			return "", noRelease, fmt.Errorf("sign request for %q: client signs aws-chunked payload %q with SigV4a (ECDSA), and signet signs with SigV4 only: configure the client for SigV4: %w", hostOf(r), v, ErrUnsupportedPayload)
		case strings.HasPrefix(v, "STREAMING-"):
			return "", noRelease, fmt.Errorf("sign request for %q: unknown aws-chunked payload mode %q: %w", hostOf(r), truncate(v, 80), ErrUnsupportedPayload)
		default:
			return "", noRelease, fmt.Errorf("sign request for %q: X-Amz-Content-Sha256 %q is neither a SHA-256 hex digest nor a known mode: %w", hostOf(r), truncate(v, 80), ErrUnsupportedPayload)
		}
	}

	hash, release := emptySHA256, noRelease
	switch {
	case r.Body == nil || r.Body == http.NoBody:
		// An outgoing request with a non-nil Body and ContentLength 0 has an
		// unknown length, so only a missing body counts as empty.
	case needLength:
		var err error
		hash, release, err = s.spoolBody(ctx, r)
		if err != nil {
			return "", noRelease, err
		}
	case p.Payload == PayloadUnsigned,
		p.Payload != PayloadSigned && s3 && strings.EqualFold(r.URL.Scheme, "https"):
		// Streamed untouched. With an unknown length (not S3) the SDK
		// leaves content-length out of the signature and the transport
		// sends chunked, which matches.
		hash = unsignedPayload
	default:
		var err error
		hash, release, err = s.spoolBody(ctx, r)
		if err != nil {
			return "", noRelease, err
		}
	}
	if s3 || sent {
		r.Header.Set(headerContentSHA256, hash)
	}
	return hash, release, nil
}

// unknownLength reports whether r has a body whose length the transport
// does not know: for an outgoing request, ContentLength 0 with a body means
// unknown, as does -1.
func unknownLength(r *http.Request) bool {
	return r.Body != nil && r.Body != http.NoBody && r.ContentLength <= 0
}

// spoolBody copies r.Body through SHA-256 into memory up to the spool limit
// and into a private temp file past it, then points r at the copy.
func (s *Signer) spoolBody(ctx context.Context, r *http.Request) (string, func(), error) {
	body := r.Body
	// The original body is consumed (or abandoned) here, so it is closed
	// here: the transport will only ever see the spool.
	defer body.Close()

	sp := &spool{limit: s.spoolMem, dir: s.spoolDir, budget: s.budget}
	if r.ContentLength > 0 && r.ContentLength <= s.spoolMem {
		sp.mem = make([]byte, 0, r.ContentLength)
	}
	if r.ContentLength > s.spoolMem {
		// Bound to reach the disk: refused before a byte is read, so a
		// client that waits for 100 Continue never sends it.
		if err := sp.reserve(r.ContentLength); err != nil {
			return "", noRelease, fmt.Errorf("sign request for %q: %w", hostOf(r), err)
		}
	}
	h := sha256.New()
	if err := s.copyBody(ctx, sp, h, body); err != nil {
		sp.release()
		return "", noRelease, fmt.Errorf("sign request for %q: %w", hostOf(r), err)
	}

	r.ContentLength = sp.size
	r.TransferEncoding = nil
	r.Header.Del("Transfer-Encoding")
	r.Header.Del("Content-Length")
	if sp.size == 0 {
		r.Body, r.GetBody = http.NoBody, func() (io.ReadCloser, error) { return http.NoBody, nil }
	} else {
		r.Body, _ = sp.reader()
		r.GetBody = sp.reader
	}
	return hex.EncodeToString(h.Sum(nil)), sp.release, nil
}

// copyBody streams src into sp and h, checking ctx between chunks so a
// cancelled request stops spooling; a Read already blocked returns when the
// client connection goes away.
func (s *Signer) copyBody(ctx context.Context, sp *spool, h hash.Hash, src io.Reader) error {
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	buf := *bp
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("spool body: %w", err)
		}
		n, rerr := src.Read(buf)
		if n > 0 {
			h.Write(buf[:n])
			if err := sp.write(buf[:n]); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return fmt.Errorf("%w: after %d bytes: %w", ErrBodyRead, sp.size, rerr)
		}
	}
}

// spool holds one request body: in mem while it fits in limit, else in file.
type spool struct {
	limit int64
	dir   string
	mem   []byte
	file  *os.File
	// name is set while the temp file still has a directory entry, on
	// systems that refuse to unlink an open file.
	name string
	size int64
	once sync.Once
	// budget is shared by every spool of a Signer; reserved is this
	// spool's part of it, given back by release.
	budget   *spoolBudget
	reserved int64
}

// reserve makes sure the spool's file may hold n bytes in all.
func (sp *spool) reserve(n int64) error {
	if n <= sp.reserved {
		return nil
	}
	if !sp.budget.take(n - sp.reserved) {
		return fmt.Errorf("%w: %d bytes of bodies on disk allowed, %d in use, this one needs %d",
			ErrSpoolFull, sp.budget.max, sp.budget.used.Load(), n-sp.reserved)
	}
	sp.reserved = n
	return nil
}

func (sp *spool) write(p []byte) error {
	if sp.file == nil && sp.size+int64(len(p)) <= sp.limit {
		sp.mem = appendCapped(sp.mem, p, sp.limit)
		sp.size += int64(len(p))
		return nil
	}
	// Everything goes to the file from here, what was in memory too.
	if err := sp.reserve(sp.size + int64(len(p))); err != nil {
		return err
	}
	if sp.file == nil {
		if err := sp.spill(); err != nil {
			return err
		}
	}
	if _, err := sp.file.Write(p); err != nil {
		return fmt.Errorf("%w: write %d bytes: %w", ErrSpool, len(p), err)
	}
	sp.size += int64(len(p))
	return nil
}

// spill moves what is in memory to a new temp file and frees the memory.
func (sp *spool) spill() error {
	f, err := os.CreateTemp(sp.dir, "signet-body-*")
	if err != nil {
		return fmt.Errorf("%w: create temp file: %w", ErrSpool, err)
	}
	sp.file = f
	// Unlinked at once where the OS allows it, so the data disappears with
	// the process even if release never runs.
	if err := os.Remove(f.Name()); err != nil {
		sp.name = f.Name()
	}
	if _, err := f.Write(sp.mem); err != nil {
		return fmt.Errorf("%w: write %d bytes: %w", ErrSpool, len(sp.mem), err)
	}
	sp.mem = nil
	return nil
}

// reader returns a fresh reader over the whole spool; it is also GetBody, so
// the transport can replay the body on retry.
func (sp *spool) reader() (io.ReadCloser, error) {
	if sp.file != nil {
		return io.NopCloser(io.NewSectionReader(sp.file, 0, sp.size)), nil
	}
	return io.NopCloser(bytes.NewReader(sp.mem)), nil
}

// release closes and removes the temp file and gives back its part of the
// budget; it is safe to call many times.
func (sp *spool) release() {
	sp.once.Do(func() {
		if sp.file != nil {
			_ = sp.file.Close()
		}
		if sp.name != "" {
			_ = os.Remove(sp.name)
		}
		sp.budget.give(sp.reserved)
	})
}

// spoolBudget counts the bytes reserved for spool files against max
// (0: no limit). Reservations come and go with requests, so it is a
// counter rather than a semaphore that waits: a client over the limit is
// told at once, and may retry.
type spoolBudget struct {
	max  int64
	used atomic.Int64
}

// take reserves n bytes, or reports that they would exceed max.
func (b *spoolBudget) take(n int64) bool {
	if b.max <= 0 {
		b.used.Add(n)
		return true
	}
	for {
		u := b.used.Load()
		if n > b.max-u {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

func (b *spoolBudget) give(n int64) {
	if n != 0 {
		b.used.Add(-n)
	}
}

// SpoolBytes is how many bytes are reserved for spool files now, by the
// requests being signed or sent.
func (s *Signer) SpoolBytes() int64 { return s.budget.used.Load() }

// appendCapped appends p to b, growing the backing array at most to limit so
// that the in-memory spool never holds more than limit bytes of capacity.
func appendCapped(b, p []byte, limit int64) []byte {
	need := len(b) + len(p)
	if need <= cap(b) {
		return append(b, p...)
	}
	c := max(2*cap(b), need, 4096)
	c = int(min(int64(c), limit))
	nb := make([]byte, len(b), c)
	copy(nb, b)
	return append(nb, p...)
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
