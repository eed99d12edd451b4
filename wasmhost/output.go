package wasmhost

import (
	"errors"
	"sync"
)

// errStdoutFull is what the guest's fd_write sees (as EIO) once stdout is
// over its cap.
var errStdoutFull = errors.New("stdout over its limit")

// cappedBuffer keeps up to max bytes and remembers whether more was written.
type cappedBuffer struct {
	mu   sync.Mutex
	max  int
	buf  []byte
	over bool
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.over || len(c.buf)+len(p) > c.max {
		c.over = true
		return 0, errStdoutFull
	}
	c.buf = append(c.buf, p...)
	return len(p), nil
}

func (c *cappedBuffer) result() (b []byte, over bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf, c.over
}

// tailBuffer keeps the last len(ring) bytes written to it.
type tailBuffer struct {
	mu      sync.Mutex
	ring    []byte
	start   int // index of the oldest byte once full
	full    bool
	written int64
}

func newTailBuffer(size int) *tailBuffer {
	return &tailBuffer{ring: make([]byte, 0, size)}
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	t.written += int64(n)
	size := cap(t.ring)
	if len(p) >= size {
		t.ring = append(t.ring[:0], p[len(p)-size:]...)
		t.start, t.full = 0, true
		return n, nil
	}
	for len(p) > 0 {
		if !t.full {
			room := size - len(t.ring)
			k := min(room, len(p))
			t.ring = append(t.ring, p[:k]...)
			p = p[k:]
			t.full = len(t.ring) == size
			continue
		}
		k := copy(t.ring[t.start:], p)
		p = p[k:]
		t.start = (t.start + k) % size
	}
	return n, nil
}

// text returns the kept bytes, oldest first, and whether older bytes were
// dropped.
func (t *tailBuffer) text() (s string, cut bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.full {
		return string(t.ring), false
	}
	out := make([]byte, 0, len(t.ring))
	out = append(out, t.ring[t.start:]...)
	out = append(out, t.ring[:t.start]...)
	return string(out), t.written > int64(len(t.ring))
}

// stderrTail returns the redacted tail of a guest's stderr, at most
// stderrKeep bytes. The ring keeps twice that, so that the partial line
// dropped at the cut edge and the redaction still leave a full tail.
func stderrTail(t *tailBuffer) string {
	s, cut := t.text()
	s = redactTruncated(s, cut, false)
	if len(s) > stderrKeep {
		s = redactTruncated(s[len(s)-stderrKeep:], true, false)
	}
	return s
}
