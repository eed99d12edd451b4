package signer

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// aws-chunked bodies signed chunk by chunk (S3's "Transferring Payload in
// Multiple Chunks" and "Including Trailing Headers"). An SDK app that signed
// with placeholder keys signed every chunk with them too, so signet re-signs
// each chunk with the real key as the body streams, chained from the seed
// signature of the re-signed headers. Only the 64 hex digits of each
// signature change: every other byte of the framing is the client's, so the
// framed length, and with it Content-Length, stays what the client sent.
const (
	streamingSigned        = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
	streamingSignedTrailer = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
	// SigV4a: an ECDSA key pair derived from the secret, and a scope with a
	// region set instead of a region. Signet signs with SigV4 only.
	streamingECDSA        = "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD"
	streamingECDSATrailer = "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER"

	headerDecodedLength = "X-Amz-Decoded-Content-Length"
	headerTrailer       = "X-Amz-Trailer"

	chunkSigPrefix   = ";chunk-signature="
	trailerSigPrefix = "x-amz-trailer-signature:"
	chunkSigAlgo     = "AWS4-HMAC-SHA256-PAYLOAD"
	trailerSigAlgo   = "AWS4-HMAC-SHA256-TRAILER"

	// MaxChunkSize bounds one chunk of a signed aws-chunked body. A chunk's
	// signature sits before its data, so the whole chunk is held while it is
	// hashed: this is the most memory one such request takes. SDKs send
	// 64 KiB (S3's documented size) to 1 MiB.
	MaxChunkSize = 16 << 20

	// maxChunkLine bounds a chunk header or trailer line; a signed chunk
	// header is at most 16 + 17 + 64 + 2 bytes.
	maxChunkLine = 1024
	// maxTrailerBytes and maxTrailers bound the trailing headers, which are
	// held until the trailer signature line.
	maxTrailerBytes = 16 << 10
	maxTrailers     = 16
)

// isSignedStreaming reports whether hash is a signed aws-chunked mode whose
// chunks signet must re-sign.
func isSignedStreaming(hash string) bool {
	return hash == streamingSigned || hash == streamingSignedTrailer
}

// chunkedHeaders is what a signed aws-chunked request declares about its
// body in its headers.
type chunkedHeaders struct {
	decodedLength int64
	trailers      []string // lower-case names from X-Amz-Trailer, sorted; nil without a trailer
}

// checkChunkedHeaders validates the headers a signed aws-chunked request
// needs before anything is signed: S3 requires the decoded length up front,
// and the -TRAILER form must name its trailing headers.
func checkChunkedHeaders(r *http.Request, mode string) (chunkedHeaders, error) {
	var ch chunkedHeaders
	if r.Body == nil || r.Body == http.NoBody {
		return ch, fmt.Errorf("sign request for %q: %s without a body: %w", hostOf(r), mode, ErrBadRequest)
	}
	dl := r.Header.Values(headerDecodedLength)
	if len(dl) != 1 {
		return ch, fmt.Errorf("sign request for %q: %s needs exactly one %s header, got %d: %w", hostOf(r), mode, headerDecodedLength, len(dl), ErrBadRequest)
	}
	n, err := parseDecimal(dl[0])
	if err != nil {
		return ch, fmt.Errorf("sign request for %q: %s %q: %w", hostOf(r), headerDecodedLength, truncate(dl[0], 40), ErrBadRequest)
	}
	ch.decodedLength = n
	tv := r.Header.Values(headerTrailer)
	if mode != streamingSignedTrailer {
		if len(tv) != 0 {
			return ch, fmt.Errorf("sign request for %q: %s with %s (trailers need %s): %w", hostOf(r), mode, headerTrailer, streamingSignedTrailer, ErrBadRequest)
		}
		return ch, nil
	}
	for _, v := range tv {
		for name := range strings.SplitSeq(v, ",") {
			name = strings.ToLower(strings.TrimSpace(name))
			if name == "" {
				continue
			}
			if !isToken(name) || name == strings.TrimSuffix(trailerSigPrefix, ":") {
				return ch, fmt.Errorf("sign request for %q: %s names %q: %w", hostOf(r), headerTrailer, truncate(name, 40), ErrBadRequest)
			}
			if slices.Contains(ch.trailers, name) {
				return ch, fmt.Errorf("sign request for %q: %s names %q twice: %w", hostOf(r), headerTrailer, name, ErrBadRequest)
			}
			ch.trailers = append(ch.trailers, name)
		}
	}
	if len(ch.trailers) == 0 || len(ch.trailers) > maxTrailers {
		return ch, fmt.Errorf("sign request for %q: %s needs %s naming 1 to %d trailing headers, got %d: %w", hostOf(r), streamingSignedTrailer, headerTrailer, maxTrailers, len(ch.trailers), ErrBadRequest)
	}
	slices.Sort(ch.trailers)
	return ch, nil
}

// parseDecimal parses a non-negative decimal length: digits only, no sign.
func parseDecimal(s string) (int64, error) {
	if s == "" || len(s) > 19 || !allDigits(s) {
		return 0, errors.New("not a decimal length")
	}
	return strconv.ParseInt(s, 10, 64)
}

// isToken reports whether s is an HTTP header field name (RFC 9110 token).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// streamKey is what chains the chunk signatures of one request: the SigV4
// signing key and the date and scope of the seed signature.
type streamKey struct {
	key   []byte
	date  string // 20060102T150405Z
	scope string // 20060102/region/service/aws4_request
}

// signingKey derives the SigV4 signing key. The SDK derives (and caches) the
// same key for SignHTTP but does not export it; its StreamSigner covers
// chunk signatures but not the trailer signature, so signet derives the key
// once per request and signs both itself (the tests hold it to the SDK's
// StreamSigner and to AWS's published examples).
func signingKey(secret, day, region, service string) []byte {
	k := hmacSHA256([]byte("AWS4"+secret), day)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, service)
	return hmacSHA256(k, "aws4_request")
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

// newStreamKey reads the seed signature and signing time from r as the SDK
// signed it, so that the chunk signatures chain from exactly those.
func newStreamKey(r *http.Request, secret string, sc Scope) (streamKey, string, error) {
	date := r.Header.Get("X-Amz-Date")
	t, err := time.Parse("20060102T150405Z", date)
	if err != nil {
		return streamKey{}, "", fmt.Errorf("sign request for %q: signed X-Amz-Date %q: %w", hostOf(r), date, err)
	}
	seed, ok := authSignature(r.Header.Get("Authorization"))
	if !ok {
		return streamKey{}, "", fmt.Errorf("sign request for %q: no signature in the signed Authorization header", hostOf(r))
	}
	day := t.Format("20060102")
	return streamKey{
		key:   signingKey(secret, day, sc.Region, sc.Service),
		date:  date,
		scope: day + "/" + sc.Region + "/" + sc.Service + "/aws4_request",
	}, seed, nil
}

// authSignature returns the Signature= value of a SigV4 Authorization header.
func authSignature(auth string) (string, bool) {
	_, sig, ok := strings.Cut(auth, "Signature=")
	if !ok {
		return "", false
	}
	sig, _, _ = strings.Cut(sig, ",")
	sig = strings.TrimSpace(sig)
	return sig, len(sig) == 64 && isLowerHex(sig)
}

// resignChunks replaces r.Body with a reader that re-signs the client's
// aws-chunked body with k, chained from seed. It runs after the headers are
// signed; the body cannot be replayed, so GetBody goes.
func resignChunks(r *http.Request, k streamKey, seed string, ch chunkedHeaders) {
	r.Body = newChunkResigner(r.Body, k, seed, ch, MaxChunkSize)
	r.GetBody = nil
}

// chunkResigner reads a signed aws-chunked body and yields it with every
// chunk signature (and the trailer signature) replaced by one made with the
// real key. It holds one chunk at a time. Its parser is strict: the framing
// AWS documents and nothing else, since signet vouches with its signature
// for how the bytes divide into chunks.
//
//	chunk   = size-hex ";chunk-signature=" 64*lower-hex CRLF data CRLF
//	final   = "0;chunk-signature=" 64*lower-hex CRLF
//	body    = *chunk final CRLF                        (STREAMING-AWS4-HMAC-SHA256-PAYLOAD)
//	body    = *chunk final 1*(name ":" value CRLF)
//	          "x-amz-trailer-signature:" 64*lower-hex CRLF CRLF   (…-TRAILER)
type chunkResigner struct {
	src      *bufio.Reader
	body     io.Closer
	k        streamKey
	mac      hash.Hash // HMAC-SHA256 with k.key
	prev     string    // the previous signature, hex
	ch       chunkedHeaders
	maxChunk int
	decoded  int64 // data bytes so far

	buf  []byte // held bytes of the previous chunk, then the current framed chunk
	out  []byte // what Read has not handed out yet (a tail of buf)
	held []byte // the end of the previous data chunk, not handed out yet
	done bool
	err  error // sticky: once failed, every Read fails
}

// heldBack is how much of each data chunk (its last data byte and CRLF)
// waits until the next chunk header has parsed, and the end of the last one
// until the whole body has: the upstream never sees all the data of a body
// signet then refuses. A lenient upstream that keeps a body cut short once
// it has X-Amz-Decoded-Content-Length bytes (versitygw does) cannot store
// it.
const heldBack = 3

func newChunkResigner(body io.ReadCloser, k streamKey, seed string, ch chunkedHeaders, maxChunk int) *chunkResigner {
	return &chunkResigner{
		src:      bufio.NewReaderSize(body, 4096),
		body:     body,
		k:        k,
		mac:      hmac.New(sha256.New, k.key),
		prev:     seed,
		ch:       ch,
		maxChunk: maxChunk,
	}
}

func (c *chunkResigner) Read(p []byte) (int, error) {
	for len(c.out) == 0 {
		switch {
		case c.err != nil:
			return 0, c.err
		case c.done:
			return 0, io.EOF
		}
		if err := c.next(); err != nil {
			c.err = err
		}
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
	return n, nil
}

func (c *chunkResigner) Close() error { return c.body.Close() }

// next parses one chunk of the client's body and frames it, re-signed, in
// c.out.
func (c *chunkResigner) next() error {
	line, err := c.line("chunk header")
	if err != nil {
		return err
	}
	sizeTok, sig, ok := strings.Cut(string(line[:len(line)-2]), chunkSigPrefix)
	if !ok {
		return c.malformed("chunk header without %q", chunkSigPrefix)
	}
	if len(sig) != 64 || !isLowerHex(sig) {
		return c.malformed("chunk signature is not 64 lower-case hex digits")
	}
	if sizeTok == "" || len(sizeTok) > 16 || strings.TrimLeft(sizeTok, "0123456789abcdefABCDEF") != "" {
		return c.malformed("chunk size %q is not hexadecimal", truncate(sizeTok, 20))
	}
	size, err := strconv.ParseUint(sizeTok, 16, 64)
	if err != nil || size > uint64(c.maxChunk) {
		return c.malformed("chunk size %q is over the %d-byte limit", truncate(sizeTok, 20), c.maxChunk)
	}
	if size > uint64(c.ch.decodedLength-c.decoded) {
		return c.malformed("chunks carry more than the %d bytes of %s", c.ch.decodedLength, headerDecodedLength)
	}
	if size == 0 {
		return c.final(sizeTok)
	}

	// buf: the held bytes of the previous chunk, this chunk's header (its
	// length is known: only the signature changes), data and CRLF.
	var held [heldBack]byte
	h := copy(held[:], c.held)
	hdr := h + len(sizeTok) + len(chunkSigPrefix) + 64 + 2
	need := hdr + int(size) + 2
	if cap(c.buf) < need {
		c.buf = make([]byte, need)
	}
	c.buf = c.buf[:need]
	c.held = nil
	data := c.buf[hdr : hdr+int(size)]
	if _, err := io.ReadFull(c.src, data); err != nil {
		return c.readErr("chunk data", err)
	}
	if err := c.crlf("chunk data"); err != nil {
		return err
	}
	c.decoded += int64(size)
	sum := sha256.Sum256(data)
	newSig := c.sign(chunkSigAlgo, emptySHA256, hex.EncodeToString(sum[:]))
	n := copy(c.buf, held[:h])
	n += copy(c.buf[n:], sizeTok)
	n += copy(c.buf[n:], chunkSigPrefix)
	n += copy(c.buf[n:], newSig)
	c.buf[n], c.buf[n+1] = '\r', '\n'
	c.buf[need-2], c.buf[need-1] = '\r', '\n'
	c.out, c.held = c.buf[:need-heldBack], c.buf[need-heldBack:]
	return nil
}

// final handles the zero-size chunk and, for the -TRAILER form, the
// trailing headers and their signature, then checks that the body ends.
func (c *chunkResigner) final(sizeTok string) error {
	if c.decoded != c.ch.decodedLength {
		return c.malformed("chunks carry %d bytes, %s says %d", c.decoded, headerDecodedLength, c.ch.decodedLength)
	}
	var b bytes.Buffer
	b.Write(c.held)
	c.held = nil
	b.WriteString(sizeTok)
	b.WriteString(chunkSigPrefix)
	b.WriteString(c.sign(chunkSigAlgo, emptySHA256, emptySHA256))
	b.WriteString("\r\n")
	if c.ch.trailers == nil {
		if err := c.crlf("final chunk"); err != nil {
			return err
		}
	} else if err := c.trailer(&b); err != nil {
		return err
	}
	b.WriteString("\r\n")
	if _, err := c.src.ReadByte(); err == nil {
		return c.malformed("data after the final chunk")
	} else if err != io.EOF {
		return c.readErr("end of body", err)
	}
	c.out = b.Bytes()
	c.done = true
	return nil
}

// trailer reads the trailing header lines up to and including the trailer
// signature line, and writes them to b with the signature replaced. The
// lines themselves pass byte for byte; the signature covers their canonical
// form, "name:value\n" with lower-case names and trimmed values, sorted by
// name.
func (c *chunkResigner) trailer(b *bytes.Buffer) error {
	type field struct{ name, value string }
	var fields []field
	size := 0
	for {
		line, err := c.line("trailer")
		if err != nil {
			return err
		}
		text := string(line[:len(line)-2])
		if sig, ok := strings.CutPrefix(text, trailerSigPrefix); ok {
			if len(sig) != 64 || !isLowerHex(sig) {
				return c.malformed("trailer signature is not 64 lower-case hex digits")
			}
			break
		}
		size += len(line)
		if size > maxTrailerBytes || len(fields) == maxTrailers {
			return c.malformed("trailing headers over %d bytes or %d lines", maxTrailerBytes, maxTrailers)
		}
		name, value, ok := strings.Cut(text, ":")
		if !ok || !isToken(name) {
			return c.malformed("trailer line is not name:value")
		}
		name = strings.ToLower(name)
		value = strings.Trim(value, " \t")
		if !isFieldValue(value) {
			return c.malformed("trailer %q has a control character in its value", name)
		}
		if !slices.Contains(c.ch.trailers, name) {
			return c.malformed("trailer %q is not named in %s", name, headerTrailer)
		}
		if slices.ContainsFunc(fields, func(f field) bool { return f.name == name }) {
			return c.malformed("trailer %q sent twice", name)
		}
		fields = append(fields, field{name, value})
		b.Write(line)
	}
	if len(fields) != len(c.ch.trailers) {
		return c.malformed("%d trailing headers, %s names %d", len(fields), headerTrailer, len(c.ch.trailers))
	}
	if err := c.crlf("trailer"); err != nil {
		return err
	}
	slices.SortFunc(fields, func(a, b field) int { return strings.Compare(a.name, b.name) })
	h := sha256.New()
	for _, f := range fields {
		h.Write([]byte(f.name))
		h.Write([]byte{':'})
		h.Write([]byte(f.value))
		h.Write([]byte{'\n'})
	}
	b.WriteString(trailerSigPrefix)
	b.WriteString(c.signTrailer(hex.EncodeToString(h.Sum(nil))))
	b.WriteString("\r\n")
	return nil
}

// sign makes the next chunk signature and chains it.
func (c *chunkResigner) sign(algo, headersHash, dataHash string) string {
	return c.chain(algo + "\n" + c.k.date + "\n" + c.k.scope + "\n" + c.prev + "\n" + headersHash + "\n" + dataHash)
}

func (c *chunkResigner) signTrailer(trailerHash string) string {
	return c.chain(trailerSigAlgo + "\n" + c.k.date + "\n" + c.k.scope + "\n" + c.prev + "\n" + trailerHash)
}

func (c *chunkResigner) chain(stringToSign string) string {
	c.mac.Reset()
	c.mac.Write([]byte(stringToSign))
	c.prev = hex.EncodeToString(c.mac.Sum(nil))
	return c.prev
}

// line reads one CRLF-terminated line of at most maxChunkLine bytes.
func (c *chunkResigner) line(what string) ([]byte, error) {
	line, err := c.src.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) || len(line) > maxChunkLine {
		return nil, c.malformed("%s line over %d bytes", what, maxChunkLine)
	}
	if err != nil {
		return nil, c.readErr(what, err)
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, c.malformed("%s line not ended by CRLF", what)
	}
	return line, nil
}

func (c *chunkResigner) crlf(after string) error {
	var two [2]byte
	if _, err := io.ReadFull(c.src, two[:]); err != nil {
		return c.readErr(after, err)
	}
	if two != [2]byte{'\r', '\n'} {
		return c.malformed("no CRLF after %s", after)
	}
	return nil
}

// malformed is a framing error: the client's body is not aws-chunked as
// AWS defines it. Messages never quote a signature.
func (c *chunkResigner) malformed(format string, args ...any) error {
	return fmt.Errorf("%w: aws-chunked body after %d data bytes: %s", ErrBadRequest, c.decoded, fmt.Sprintf(format, args...))
}

// readErr is the client's body failing or ending early.
func (c *chunkResigner) readErr(what string, err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("%w: aws-chunked body after %d data bytes, reading %s: %w", ErrBodyRead, c.decoded, what, err)
}

// isFieldValue: visible ASCII, spaces and tabs (obs-text is refused too: a
// trailer signet signs must mean the same to every parser).
func isFieldValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c >= 0x7f {
			return false
		}
	}
	return true
}
