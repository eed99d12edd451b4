package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
)

// Refusing ambiguous request framing.
//
// Go's HTTP/1 server settles some ambiguities of a request quietly: it
// drops a Content-Length sent with Transfer-Encoding, keeps one of several
// identical Content-Lengths, folds obs-fold continuation lines, ignores
// Transfer-Encoding in HTTP/1.0, and for an absolute-form request takes
// the host from the URL and loses a Host header that names another. A
// proxy or load balancer in front of signet may settle the same request
// the other way, and then the two disagree on where one request ends or
// which host it is for: request smuggling, and with signet, a request
// signed that the front never saw. Handlers see the request only after Go
// settled it, so the check happens on the bytes.
//
// Each client connection of the proxy and reverse listeners, and each
// HTTP/1.1 connection inside an intercepted tunnel, is a *framingConn: its
// Read runs the bytes through framingScanner, an incremental parser of
// HTTP/1.1 request framing (request line and header section, then the body
// by Content-Length or chunked coding with its trailer section, then the
// next request) that follows Go's parser rule for rule. A header section
// is handed on only once it is complete and checked (most arrive in one
// read and pass in place, not copied), but for its first few bytes, which
// go early so that the server's header timeout starts when it would
// (framingScanner.early); bodies pass as they come. A refused
// request never reaches Go's server: in its place the server reads a
// bodiless stand-in request that carries framingMarker and
// Connection: close, then end of stream; guardFraming answers that
// stand-in with 400. A body whose chunked coding is broken is cut where it
// breaks (Go would fail to read it too). HTTP/2 connections are not
// scanned: their framing is binary and unambiguous.
//
// After CONNECT the connection is never again read as requests (Go's
// server closes it unless the handler takes it over), so scanning stops. A
// GET with an Upgrade header may become a WebSocket: the scanner holds
// back whatever follows it until the handler says whether the protocol
// switched (protocolSwitched) or not (guardFraming's resume).

// framingMarker is the header of the stand-in for a refused request. A
// client that sends it itself is refused too, so it only ever comes from
// the scanner.
const framingMarker = "X-Signet-Framing-Error"

// framingProblem is why a request was refused.
type framingProblem struct {
	code    string
	message string
	fix     string
}

func (p *framingProblem) answer() *proxyError {
	return &proxyError{status: http.StatusBadRequest, code: p.code, message: p.message, fix: p.fix}
}

const fixFraming = "send each request with one Content-Length or Transfer-Encoding: chunked (HTTP/1.1), " +
	"no folded header lines; if a proxy in front of signet sent it, fix that proxy (RFC 9112 sections 5 and 6)"

func ambiguous(message string) *framingProblem {
	return &framingProblem{code: codeAmbiguousFraming, message: message, fix: fixFraming}
}

// verdict is why framingScanner.scan stopped.
type verdict uint8

const (
	// vAll: everything was accepted.
	vAll verdict = iota
	// vMore: an incomplete header section starts at n; it must be held
	// and given again, from its start, with more bytes.
	vMore
	// vRefuse: the header section starting at n is refused (problem).
	vRefuse
	// vCut: the body is malformed at n; nothing from n on may pass.
	vCut
	// vSuspend: a request that may switch protocols ended at n.
	vSuspend
	// vRaw: from n on the stream is no longer requests (after CONNECT).
	vRaw
)

type scanState uint8

const (
	sHeader scanState = iota
	sBody             // Content-Length bytes; left counts down
	sChunkSize
	sChunkSizeWS // whitespace after the size
	sChunkExt
	sChunkLF
	sChunkData // left counts down
	sChunkDataCR
	sChunkDataLF
	sTrailerLine // at the start of a trailer line
	sTrailerName
	sTrailerValue
	sTrailerLF
	sTrailerEndLF
)

// Go's limits on chunked coding (net/http/internal/chunked.go and
// transfer.go), which the scanner must not be laxer than.
const (
	maxChunkLine    = 4094 // a chunk-size line without CRLF: it and CRLF fill a 4 KiB bufio.Reader
	maxChunkExcess  = 16 << 10
	maxTrailerBytes = 4096 // the trailer section must end within one bufio buffer
	// maxTrailerFields is Go 1.27's http.DefaultMaxHeaderValueCount,
	// which also bounds the lines of a trailer section (signet leaves
	// Server.MaxHeaderValueCount at its default). Older Go has no such
	// bound, and then this is merely stricter.
	maxTrailerFields = 500
)

// framingScanner follows the framing of a stream of HTTP/1.1 requests. It
// is the plain state machine: framingConn feeds it.
type framingScanner struct {
	state    scanState
	prevPOST bool // Go skips up to 4 CR or LF bytes after a POST
	suspend  bool // the request in progress ends in vSuspend
	h        headerScan
	left     uint64 // body or chunk data bytes still to come
	lineLen  int    // bytes of the chunk-size line so far
	digits   int
	size     uint64
	excess   int64 // Go's measure of chunk overhead
	trailer  int   // bytes of the trailer section so far
	tlines   int   // lines of the trailer section so far
	problem  *framingProblem
	// onHeader, for tests, sees each accepted header section: its
	// start and end in the slice given to scan.
	onHeader func(start, end int)
}

// headerScan is the header section in progress. Offsets count from the
// section's start, so that it can move to a hold buffer between reads.
type headerScan struct {
	off       int // where the next line starts
	lines     int // lines done, the request line included
	started   bool
	skip      int // CR and LF before the request line that Go discards
	mStart    int // the method
	mEnd      int
	tStart    int // the request target
	tEnd      int
	minor     byte // HTTP/1.x minor version
	clCount   int
	cl        uint64
	teCount   int
	chunked   bool
	hostCount int
	hStart    int // the Host header's value
	hEnd      int
	upgrade   bool
}

// scan reads b, which starts where the scanner stands (for a header
// section in progress: at its start), and returns how much of b may pass
// and why it stopped there if not at the end.
func (s *framingScanner) scan(b []byte) (int, verdict) {
	i := 0
	for i < len(b) {
		switch s.state {
		case sHeader:
			end, v := s.header(b[i:])
			if v == vMore || v == vRefuse {
				return i, v
			}
			if s.onHeader != nil {
				s.onHeader(i, i+end)
			}
			if v == vRaw {
				return len(b), vRaw
			}
			i += end
			if s.state == sHeader && s.suspend {
				s.suspend = false
				return i, vSuspend
			}
		case sBody:
			k := min(uint64(len(b)-i), s.left)
			i += int(k)
			s.left -= k
			if s.left == 0 {
				s.state = sHeader
				if s.suspend {
					s.suspend = false
					return i, vSuspend
				}
			}
		case sChunkData:
			k := min(uint64(len(b)-i), s.left)
			i += int(k)
			s.left -= k
			if s.left == 0 {
				s.state = sChunkDataCR
			}
		default:
			n, ok := s.chunked(b[i:])
			i += n
			if !ok {
				return i, vCut
			}
			if s.state == sHeader && s.suspend {
				s.suspend = false
				return i, vSuspend
			}
		}
	}
	return i, vAll
}

// chunked steps through chunk-size lines, the CRLF after chunk data and
// the trailer section, a byte at a time, until chunk data starts, the
// request ends or b does. It reports false, with the offset of the bad
// byte, when the coding is broken.
func (s *framingScanner) chunked(b []byte) (int, bool) {
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch s.state {
		case sChunkSize:
			v, hex := unhex(c)
			switch {
			case hex:
				s.digits++
				if s.digits > 16 {
					return i, s.cut("chunk size has more than 16 hex digits")
				}
				s.size = s.size<<4 | uint64(v)
			case s.digits == 0:
				return i, s.cut("chunk size is not a hex number")
			case c == ';':
				s.state = sChunkExt
			case c == ' ' || c == '\t':
				s.state = sChunkSizeWS
			case c == '\r':
				s.state = sChunkLF
				continue
			case c == '\n':
				return i, s.cut("chunk-size line ends with a bare LF")
			default:
				return i, s.cut("chunk size is not a hex number")
			}
			s.lineLen++
		case sChunkSizeWS:
			switch c {
			case ' ', '\t':
			case '\r':
				s.state = sChunkLF
				continue
			case '\n':
				return i, s.cut("chunk-size line ends with a bare LF")
			default:
				return i, s.cut("whitespace inside a chunk-size line")
			}
			s.lineLen++
			if s.lineLen > maxChunkLine {
				return i, s.cut("chunk-size line too long")
			}
		case sChunkExt:
			switch c {
			case '\r':
				s.state = sChunkLF
				continue
			case '\n':
				return i, s.cut("chunk-size line ends with a bare LF")
			}
			s.lineLen++
			if s.lineLen > maxChunkLine {
				return i, s.cut("chunk-size line too long")
			}
		case sChunkLF:
			if c != '\n' {
				return i, s.cut("CR without LF in a chunk-size line")
			}
			if s.lineLen > maxChunkLine {
				return i, s.cut("chunk-size line too long")
			}
			// Go's guard against chunks that are mostly overhead.
			s.excess += int64(s.lineLen) + 2
			s.excess -= 16 + 2*int64(s.size)
			s.excess = max(s.excess, 0)
			if s.excess > maxChunkExcess {
				return i, s.cut("chunked coding is mostly overhead")
			}
			if s.size == 0 {
				s.state, s.trailer, s.tlines = sTrailerLine, 0, 0
			} else {
				s.state, s.left = sChunkData, s.size
				return i + 1, true
			}
		case sChunkDataCR:
			if c != '\r' {
				return i, s.cut("chunk data not followed by CRLF")
			}
			s.state = sChunkDataLF
		case sChunkDataLF:
			if c != '\n' {
				return i, s.cut("chunk data not followed by CRLF")
			}
			s.state, s.size, s.digits, s.lineLen = sChunkSize, 0, 0, 0
		default:
			// The trailer section: field lines with CRLF, then CRLF,
			// within maxTrailerBytes (Go's readTrailer). Stricter than
			// Go in two ways, both refusals: a bare LF and a space in a
			// field name.
			s.trailer++
			if s.trailer > maxTrailerBytes {
				return i, s.cut("trailer section too long")
			}
			switch s.state {
			case sTrailerLine:
				switch {
				case c == '\r':
					s.state = sTrailerEndLF
				case isTokenByte(c):
					s.state = sTrailerName
				case c == ' ' || c == '\t':
					return i, s.cut("obs-fold in the trailer section")
				default:
					return i, s.cut("malformed trailer line")
				}
			case sTrailerName:
				switch {
				case c == ':':
					s.state = sTrailerValue
				case !isTokenByte(c):
					return i, s.cut("malformed trailer field name")
				}
			case sTrailerValue:
				switch {
				case c == '\r':
					s.state = sTrailerLF
				case !validValueByte(c):
					return i, s.cut("malformed trailer field value")
				}
			case sTrailerLF:
				if c != '\n' {
					return i, s.cut("CR without LF in the trailer section")
				}
				s.tlines++
				if s.tlines > maxTrailerFields {
					return i, s.cut("too many trailer fields")
				}
				s.state = sTrailerLine
			case sTrailerEndLF:
				if c != '\n' {
					return i, s.cut("CR without LF in the trailer section")
				}
				s.state = sHeader
				return i + 1, true
			}
		}
	}
	return len(b), true
}

func (s *framingScanner) cut(why string) bool {
	s.problem = ambiguous("malformed chunked request body: " + why)
	return false
}

// header scans the header section at the start of b from where it left
// off. With vAll it returns the section's length and has set up the body.
func (s *framingScanner) header(b []byte) (int, verdict) {
	h := &s.h
	if !h.started {
		if s.prevPOST {
			// Go's server discards CR and LF among the first 4 bytes
			// after a POST (for old clients that add a CRLF to
			// bodies), and waits for those 4 bytes to do it.
			if len(b) < 4 {
				return 0, vMore
			}
			for h.off < 4 && (b[h.off] == '\r' || b[h.off] == '\n') {
				h.off++
			}
			h.skip = h.off
		}
		h.started = true
	}
	for {
		rest := b[h.off:]
		j := bytes.IndexByte(rest, '\n')
		if j < 0 {
			return 0, vMore
		}
		start := h.off
		line := rest[:j]
		if j > 0 && line[j-1] == '\r' {
			line = line[:j-1]
		}
		h.off += j + 1
		if h.lines == 0 {
			if p := s.requestLine(line, start); p != nil {
				s.problem = p
				return 0, vRefuse
			}
			h.lines++
			continue
		}
		if len(line) == 0 {
			end := h.off
			return end, s.endHeader(b[:end])
		}
		h.lines++
		if p := s.headerLine(line, start); p != nil {
			s.problem = p
			return 0, vRefuse
		}
	}
}

// maxEarly is what Go's server waits for between requests, under the
// idle timeout, before its header timeout starts: it peeks 4 bytes.
const maxEarly = 4

// early returns how many bytes at the start of b, an incomplete header
// section, may go to the server before the section is checked: those that
// any stand-in for it begins with too (standIn): CR and LF that Go skips
// after a POST, then method bytes, a space and a slash; maxEarly at most.
// Without them the server would wait for a whole header section under
// its idle timeout, not its header timeout.
func (s *framingScanner) early(b []byte) int {
	i := 0
	if s.h.started {
		i = s.h.skip
	} else if s.prevPOST {
		for i < len(b) && i < maxEarly && (b[i] == '\r' || b[i] == '\n') {
			i++
		}
	}
	j := i
	for j < len(b) && j < maxEarly && isTokenByte(b[j]) {
		j++
	}
	if j > i && j < len(b) && j < maxEarly && b[j] == ' ' {
		j++
		if j < len(b) && j < maxEarly && b[j] == '/' {
			j++
		}
	}
	return j
}

// requestLine checks "METHOD SP target SP HTTP/1.x" as Go's server reads
// it; start is its offset in the section.
func (s *framingScanner) requestLine(line []byte, start int) *framingProblem {
	h := &s.h
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 || !isToken(line[:sp]) {
		return ambiguous("malformed request line")
	}
	h.mStart, h.mEnd = start, start+sp
	rest := line[sp+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	if sp2 <= 0 {
		return ambiguous("malformed request line")
	}
	h.tStart, h.tEnd = h.mEnd+1, h.mEnd+1+sp2
	v := rest[sp2+1:]
	if len(v) != 8 || string(v[:5]) != "HTTP/" || v[6] != '.' || !isDigit(v[5]) || !isDigit(v[7]) {
		return ambiguous("malformed HTTP version in the request line")
	}
	if v[5] != '1' {
		return ambiguous("HTTP version " + string(v[5:]) + " is not HTTP/1.x")
	}
	h.minor = v[7] - '0'
	return nil
}

// headerLine notes what one field line says about framing and hosts.
func (s *framingScanner) headerLine(line []byte, start int) *framingProblem {
	h := &s.h
	if line[0] == ' ' || line[0] == '\t' {
		return ambiguous("obsolete line folding: a header line starts with whitespace")
	}
	k := bytes.IndexByte(line, ':')
	if k <= 0 {
		return ambiguous("malformed header line")
	}
	name := line[:k]
	if c := name[k-1]; c == ' ' || c == '\t' {
		return ambiguous("whitespace between a header name and its colon")
	}
	value, vStart := trimOWS(line[k+1:])
	switch len(name) {
	case len("Host"):
		if equalFoldASCII(name, "Host") {
			h.hostCount++
			h.hStart = start + k + 1 + vStart
			h.hEnd = h.hStart + len(value)
		}
	case len("Upgrade"):
		if equalFoldASCII(name, "Upgrade") {
			h.upgrade = true
		}
	case len("Content-Length"):
		if equalFoldASCII(name, "Content-Length") {
			h.clCount++
			n, ok := parseContentLength(value)
			h.cl = n
			if !ok {
				return ambiguous("invalid Content-Length " + quoteClient(value))
			}
		}
	case len("Transfer-Encoding"):
		if equalFoldASCII(name, "Transfer-Encoding") {
			h.teCount++
			h.chunked = equalFoldASCII(value, "chunked")
		}
	case len(framingMarker):
		if equalFoldASCII(name, framingMarker) {
			return &framingProblem{code: codeBadRequest,
				message: "the header " + framingMarker + " is signet's own; a client may not send it",
				fix:     "remove the header " + framingMarker + " from the request"}
		}
	}
	return nil
}

// endHeader decides a complete header section (section is all of it) and
// sets up the body.
func (s *framingScanner) endHeader(section []byte) verdict {
	h := &s.h
	var p *framingProblem
	switch {
	case h.clCount > 0 && h.teCount > 0:
		p = ambiguous("the request has both Content-Length and Transfer-Encoding")
	case h.clCount > 1:
		p = ambiguous("the request has more than one Content-Length header")
	case h.teCount > 1:
		p = ambiguous("the request has more than one Transfer-Encoding header")
	case h.teCount == 1 && h.minor == 0:
		p = ambiguous("Transfer-Encoding in an HTTP/1.0 request")
	case h.teCount == 1 && !h.chunked:
		p = ambiguous("Transfer-Encoding other than chunked")
	case h.hostCount > 1:
		p = ambiguous("the request has more than one Host header")
	case h.hostCount == 1:
		p = hostMismatch(section[h.tStart:h.tEnd], section[h.hStart:h.hEnd])
	}
	if p != nil {
		s.problem = p
		return vRefuse
	}
	method := section[h.mStart:h.mEnd]
	s.prevPOST = string(method) == http.MethodPost
	if string(method) == http.MethodConnect {
		return vRaw
	}
	s.suspend = mayUpgrade(string(method), h.upgrade)
	switch {
	case h.chunked:
		s.state, s.size, s.digits, s.lineLen, s.excess = sChunkSize, 0, 0, 0, 0
	case h.cl > 0:
		s.state, s.left = sBody, h.cl
	}
	s.h = headerScan{}
	return vAll
}

// mayUpgrade is the one test, shared by the scanner and guardFraming, for
// a request whose handler may take the connection over for another
// protocol: signet switches only GETs that ask for WebSocket.
func mayUpgrade(method string, hasUpgrade bool) bool {
	return hasUpgrade && method == http.MethodGet
}

// hostMismatch compares the Host header with the authority of an
// absolute-form target, which Go's server takes instead.
func hostMismatch(target, host []byte) *framingProblem {
	scheme, authority, ok := targetAuthority(target)
	if !ok {
		return nil
	}
	if bytes.IndexByte(authority, '%') >= 0 {
		// Percent-encoded hosts: let the URL parser say what Go's
		// server will take.
		u, err := url.ParseRequestURI(string(target))
		if err != nil {
			return nil // Go's server refuses the request itself
		}
		authority = []byte(u.Host)
	}
	if len(authority) == 0 || sameHost(scheme, authority, host) {
		return nil
	}
	return &framingProblem{code: codeHostMismatch,
		message: "the Host header " + quoteClient(host) + " differs from the host " + quoteClient(authority) + " of the request target",
		fix:     "send the same host in the request target and the Host header"}
}

// targetAuthority returns the scheme and the host[:port] of an
// absolute-form request target as net/url parses it (ParseRequestURI):
// scheme ":", then "//" authority up to "/" (the query cut off first),
// userinfo up to the last "@" dropped.
func targetAuthority(t []byte) (scheme, authority []byte, ok bool) {
	if len(t) == 0 || !isAlpha(t[0]) {
		return nil, nil, false
	}
	i := 1
	for i < len(t) && (isAlpha(t[i]) || isDigit(t[i]) || t[i] == '+' || t[i] == '-' || t[i] == '.') {
		i++
	}
	if i == len(t) || t[i] != ':' {
		return nil, nil, false
	}
	scheme, rest := t[:i], t[i+1:]
	if q := bytes.IndexByte(rest, '?'); q >= 0 {
		rest = rest[:q]
	}
	if !bytes.HasPrefix(rest, []byte("//")) {
		return nil, nil, false
	}
	rest = rest[2:]
	if j := bytes.IndexByte(rest, '/'); j >= 0 {
		rest = rest[:j]
	}
	if at := bytes.LastIndexByte(rest, '@'); at >= 0 {
		rest = rest[at+1:]
	}
	return scheme, rest, true
}

// sameHost reports whether the Host header names the target's host: the
// same name (case and a trailing dot aside) and port (the scheme's
// default when left out).
func sameHost(scheme, authority, host []byte) bool {
	if bytes.EqualFold(authority, host) {
		return true
	}
	ah, ap := splitAuthority(authority)
	hh, hp := splitAuthority(host)
	def := ""
	switch {
	case equalFoldASCII(scheme, "http"), equalFoldASCII(scheme, "ws"):
		def = "80"
	case equalFoldASCII(scheme, "https"), equalFoldASCII(scheme, "wss"):
		def = "443"
	}
	if len(ap) == 0 {
		ap = []byte(def)
	}
	if len(hp) == 0 {
		hp = []byte(def)
	}
	ah = bytes.TrimSuffix(ah, []byte("."))
	hh = bytes.TrimSuffix(hh, []byte("."))
	return bytes.EqualFold(ah, hh) && bytes.Equal(ap, hp)
}

// splitAuthority splits host[:port], a bracketed IPv6 host included.
func splitAuthority(a []byte) (host, port []byte) {
	if len(a) > 0 && a[0] == '[' {
		if i := bytes.IndexByte(a, ']'); i >= 0 {
			if i+1 < len(a) && a[i+1] == ':' {
				return a[:i+1], a[i+2:]
			}
			return a[:i+1], nil
		}
		return a, nil
	}
	if i := bytes.LastIndexByte(a, ':'); i >= 0 {
		return a[:i], a[i+1:]
	}
	return a, nil
}

// parseContentLength parses as Go does: digits only, below 2^63.
func parseContentLength(v []byte) (uint64, bool) {
	if len(v) == 0 {
		return 0, false
	}
	var n uint64
	for _, c := range v {
		if !isDigit(c) {
			return 0, false
		}
		if n > (1<<63-1)/10 {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
		if n > 1<<63-1 {
			return 0, false
		}
	}
	return n, true
}

func trimOWS(v []byte) ([]byte, int) {
	i := 0
	for i < len(v) && (v[i] == ' ' || v[i] == '\t') {
		i++
	}
	j := len(v)
	for j > i && (v[j-1] == ' ' || v[j-1] == '\t') {
		j--
	}
	return v[i:j], i
}

func equalFoldASCII(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c, d := b[i], s[i]
		if c == d {
			continue
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// isTokenByte reports the tchar of RFC 9110 section 5.6.2.
func isTokenByte(c byte) bool {
	if isAlpha(c) || isDigit(c) {
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

func isToken(b []byte) bool {
	for _, c := range b {
		if !isTokenByte(c) {
			return false
		}
	}
	return len(b) > 0
}

// validValueByte is textproto's: VCHAR, SP, HTAB and obs-text.
func validValueByte(c byte) bool {
	return c == ' ' || c == '\t' || (c >= 0x21 && c != 0x7f)
}

// quoteClient quotes a client's bytes for a message and a log line: ASCII
// only, escaped, and short.
func quoteClient(b []byte) string {
	const limit = 128
	if len(b) > limit {
		return strconv.QuoteToASCII(string(b[:limit])) + "…"
	}
	return strconv.QuoteToASCII(string(b))
}

// framingConfig is what the connections of one listener share.
type framingConfig struct {
	log      *slog.Logger
	listener string
	// holdLimit is where the scanner stops holding an incomplete header
	// section: past what the server would read of one (MaxHeaderBytes,
	// 4 KiB of slack, and a bufio buffer read ahead). The section goes to
	// the server, which answers 431, and the stream ends after it.
	holdLimit int
}

func newFramingConfig(log *slog.Logger, listener string, srv *http.Server) *framingConfig {
	mhb := srv.MaxHeaderBytes
	if mhb <= 0 {
		mhb = http.DefaultMaxHeaderBytes
	}
	return &framingConfig{log: log, listener: listener, holdLimit: mhb + 3*4096}
}

type connMode uint8

const (
	mScan connMode = iota
	mSuspended
	mRaw // not HTTP/1 requests any more: bytes pass unscanned
	mEnd // the stand-in request (out), if any, then end of stream
)

// framingConn is a client connection whose requests' framing is checked
// before the server reads them (see the comment at the top of this file).
type framingConn struct {
	net.Conn
	cfg *framingConfig
	sc  framingScanner
	// buf[ps:] is pend: bytes read from the conn and not yet passed on,
	// starting where the scanner stands. ready is checked bytes to pass
	// on before anything else; out is the stand-in request.
	buf   []byte
	ps    int
	ready []byte
	out   []byte
	// given is how many bytes at the start of pend the server already
	// has: early ones of an incomplete header section (framingScanner.
	// early), or its one-byte background read while a switch was
	// undecided.
	given int
	mode  connMode
	// switched and resumed are set by the handler's goroutine.
	switched, resumed atomic.Bool
	// problem is the refused request's, for guardFraming.
	problem  *framingProblem
	tlsState *tls.ConnectionState
}

func newFramingConn(c net.Conn, cfg *framingConfig) *framingConn {
	return &framingConn{Conn: c, cfg: cfg}
}

func (c *framingConn) pend() []byte { return c.buf[c.ps:] }

func (c *framingConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if len(c.ready) > 0 {
			n := copy(p, c.ready)
			c.ready = c.ready[n:]
			return n, nil
		}
		switch c.mode {
		case mEnd:
			if len(c.out) > 0 {
				n := copy(p, c.out)
				c.out = c.out[n:]
				return n, nil
			}
			return 0, io.EOF
		case mRaw:
			if pend := c.pend(); len(pend) > 0 {
				c.ready, c.buf, c.ps = pend, nil, 0
				continue
			}
			return c.Conn.Read(p)
		case mSuspended:
			switch {
			case c.switched.Load():
				c.ps += c.given
				c.given = 0
				c.mode = mRaw
			case c.resumed.CompareAndSwap(true, false):
				c.mode = mScan
			default:
				return c.undecidedRead(p)
			}
			continue
		}
		if c.switched.Load() {
			// Taken over without a suspension: whatever is held is
			// the new protocol's.
			c.ps += c.given
			c.given = 0
			c.mode = mRaw
			continue
		}
		if len(c.pend()) > 0 {
			if !c.scanPending() {
				if err := c.readMore(); err != nil {
					return 0, err
				}
			}
			continue
		}
		// The common case: nothing held, the bytes are checked where
		// they land and, mostly, passed on as they are.
		n, err := c.Conn.Read(p)
		if n == 0 {
			return 0, err
		}
		k, v := c.sc.scan(p[:n])
		switch v {
		case vAll:
			return n, err
		case vRaw:
			c.mode = mRaw
			return n, err
		case vMore, vSuspend:
			c.buf = append(c.buf[:0], p[k:n]...)
			c.ps = 0
			if v == vSuspend {
				c.mode = mSuspended
			}
		case vRefuse:
			c.refuse(p[k:n], 0)
		case vCut:
			c.cutAt()
		}
		if k > 0 {
			return k, nil
		}
		if err != nil && v == vMore {
			return 0, err
		}
	}
}

// scanPending scans the held bytes; false means it needs more of them.
func (c *framingConn) scanPending() bool {
	pend := c.pend()
	k, v := c.sc.scan(pend)
	switch v {
	case vAll, vRaw:
		c.pass(len(pend))
		if v == vRaw {
			c.mode = mRaw
		}
	case vMore:
		if k > 0 {
			c.pass(k)
			return true
		}
		if e := c.sc.early(pend); e > c.given {
			c.ready = pend[c.given:e]
			c.given = e
			return true
		}
		if len(pend) > c.cfg.holdLimit {
			// More than the server reads of a header section: it
			// answers 431 before it reaches the end of these.
			c.cfg.log.Warn("request header section over the server's limit", "listener", c.cfg.listener,
				"remote", c.RemoteAddr().String(), "bytes", len(pend))
			c.pass(len(pend))
			c.mode = mEnd
			return true
		}
		return false
	case vRefuse:
		given := 0
		if k == 0 {
			given = c.given
		}
		c.pass(k)
		c.refuse(pend[k:], given)
	case vCut:
		c.pass(k)
		c.cutAt()
	case vSuspend:
		c.pass(k)
		c.mode = mSuspended
	}
	return true
}

// pass moves the first k held bytes to ready, less those the server has.
func (c *framingConn) pass(k int) {
	if k == 0 {
		return
	}
	pend := c.pend()
	c.ready = pend[c.given:k]
	c.given = 0
	c.ps += k
	if c.ps == len(c.buf) && cap(c.buf) > 64<<10 {
		// Do not keep a large hold buffer for the life of the conn;
		// ready still points into it until it is read.
		c.buf, c.ps = nil, 0
	}
}

// readMore reads into the hold buffer; ready is empty.
func (c *framingConn) readMore() error {
	if c.ps > 0 {
		n := copy(c.buf, c.buf[c.ps:])
		c.buf, c.ps = c.buf[:n], 0
	}
	if len(c.buf) == cap(c.buf) {
		nb := make([]byte, len(c.buf), max(2*cap(c.buf), 4096))
		copy(nb, c.buf)
		c.buf = nb
	}
	n, err := c.Conn.Read(c.buf[len(c.buf):cap(c.buf)])
	c.buf = c.buf[:len(c.buf)+n]
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// undecidedRead serves a read while a request that may switch protocols
// is with its handler. Only the server's background read (one byte, to
// notice a client that goes away) comes here, once; the byte is noted as
// given, to be scanned with the rest when the handler decides.
func (c *framingConn) undecidedRead(p []byte) (int, error) {
	if c.given > 0 {
		c.cfg.log.Error("connection read as requests while a protocol switch was undecided; closing it",
			"listener", c.cfg.listener, "remote", c.RemoteAddr().String())
		c.mode = mEnd
		return 0, io.EOF
	}
	if pend := c.pend(); len(pend) > 0 {
		p[0] = pend[0]
		c.given = 1
		return 1, nil
	}
	n, err := c.Conn.Read(p[:1])
	if n == 1 {
		c.buf = append(c.buf[:0], p[0])
		c.ps, c.given = 0, 1
		return 1, nil
	}
	return 0, err
}

// refuse puts the stand-in request in place of the refused one, whose
// bytes start at bad; the server already has the first given of them.
func (c *framingConn) refuse(bad []byte, given int) {
	p := c.sc.problem
	c.problem = p
	c.cfg.log.Warn("refused request", "listener", c.cfg.listener, "remote", c.RemoteAddr().String(),
		"code", p.code, "problem", p.message)
	c.mode, c.buf, c.ps = mEnd, nil, 0
	// Without a stand-in the stream ends in the middle of a request,
	// which the server drops without an answer.
	c.out = standIn(bad, &c.sc.h, given, p.code)
}

// standIn is the bodiless request that the server reads in place of a
// refused one: the same method (so that the client can read the answer,
// to a HEAD too) and framingMarker, after the CR and LF that Go skips. bad
// is the refused request's bytes and h the scanner's view of them. The
// server may already have the first given bytes (early, or its
// background read during a protocol switch); the stand-in leaves those
// out, and is nil if it cannot begin with them.
func standIn(bad []byte, h *headerScan, given int, code string) []byte {
	skip := min(h.skip, len(bad))
	var method []byte
	if h.mEnd > h.mStart && h.mEnd <= len(bad) {
		method = bad[h.mStart:h.mEnd]
	} else {
		// The request line was not read as one: the method the early
		// bytes began, if any.
		n := skip
		for n < len(bad) && isTokenByte(bad[n]) {
			n++
		}
		method = bad[skip:n]
	}
	if len(method) == 0 {
		method = []byte(http.MethodGet)
	}
	full := make([]byte, 0, 96+skip+len(method))
	full = append(full, bad[:skip]...)
	full = append(full, method...)
	full = append(full, " / HTTP/1.1\r\nHost: signet.invalid\r\n"+framingMarker+": "...)
	full = append(full, code...)
	full = append(full, "\r\nConnection: close\r\n\r\n"...)
	if given > len(bad) || !bytes.Equal(full[:given], bad[:given]) {
		return nil
	}
	return full[given:]
}

// cutAt ends the stream where a body broke its chunked coding; the
// handler's read of the body fails there.
func (c *framingConn) cutAt() {
	c.cfg.log.Warn("cut request body", "listener", c.cfg.listener, "remote", c.RemoteAddr().String(),
		"code", codeAmbiguousFraming, "problem", c.sc.problem.message)
	c.mode, c.buf, c.ps = mEnd, nil, 0
}

// protocolSwitched tells conn, taken over by a handler, that it no longer
// carries HTTP/1 requests.
func protocolSwitched(conn net.Conn) {
	if fc, ok := conn.(*framingConn); ok {
		fc.switched.Store(true)
	}
}

// resume tells c that the request that might have switched protocols did
// not; the server reads the next request after the handler returns.
func (c *framingConn) resume() { c.resumed.Store(true) }

// connectionState stands in for the server's own, which it does not see
// through the wrapper.
func (c *framingConn) connectionState() *tls.ConnectionState {
	if c.tlsState == nil {
		if tc, ok := c.Conn.(*tls.Conn); ok {
			st := tc.ConnectionState()
			c.tlsState = &st
		}
	}
	return c.tlsState
}

// CloseWrite half-closes the conn underneath: the server ends a response
// with it before closing, and tunnels pass an end of stream with it.
func (c *framingConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// ReadFrom keeps the conn underneath's zero-copy path for writes, which
// are not scanned.
func (c *framingConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// framingListener wraps each accepted conn in a framingConn.
type framingListener struct {
	net.Listener
	cfg *framingConfig
}

func (l *framingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newFramingConn(c, l.cfg), nil
}

type framingConnKey struct{}

// framingContext is an http.Server ConnContext: it gives handlers their
// connection's scanner.
func framingContext(ctx context.Context, c net.Conn) context.Context {
	if fc, ok := c.(*framingConn); ok {
		return context.WithValue(ctx, framingConnKey{}, fc)
	}
	return ctx
}

// guardFraming wraps a listener's handler: it answers the stand-in of a
// refused request with 400, and after a request that could have switched
// protocols and did not, lets the scanner go on.
func (s *Server) guardFraming(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fc, _ := r.Context().Value(framingConnKey{}).(*framingConn)
		if _, ok := r.Header[framingMarker]; ok {
			s.refuseFraming(w, r, fc)
			return
		}
		if fc == nil {
			next.ServeHTTP(w, r)
			return
		}
		if r.TLS == nil {
			r.TLS = fc.connectionState()
		}
		_, hasUpgrade := r.Header["Upgrade"]
		upgrade := mayUpgrade(r.Method, hasUpgrade)
		next.ServeHTTP(w, r)
		if upgrade {
			fc.resume()
		}
	})
}

// refuseFraming answers the stand-in request. The scanner logged it. A
// marker that did not come from the scanner (an HTTP/2 client's) is
// refused as a reserved header.
func (s *Server) refuseFraming(w http.ResponseWriter, r *http.Request, fc *framingConn) {
	ex := s.begin()
	defer s.finish(&ex, r)
	var pe *proxyError
	if fc != nil && fc.problem != nil {
		pe = fc.problem.answer()
	} else {
		s.log.Warn("refused request with a reserved header", "header", framingMarker, "remote", r.RemoteAddr, "proto", r.Proto)
		pe = &proxyError{status: http.StatusBadRequest, code: codeBadRequest,
			message: "the header " + framingMarker + " is signet's own; a client may not send it",
			fix:     "remove the header " + framingMarker + " from the request"}
	}
	w.Header().Set("Connection", "close")
	ex.fail(w, pe)
}
