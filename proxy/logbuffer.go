package proxy

import (
	"io"
	"sync"
	"time"
)

// Flush policy of a LineBuffer: lines wait at most lineBufferDelay, and
// never more than lineBufferSize bytes wait.
const (
	lineBufferDelay = 100 * time.Millisecond
	lineBufferSize  = 32 << 10
)

// LineBuffer batches log lines on their way to w, so that an access log
// costs one write for many requests rather than one each. What is written
// reaches w within 100 ms, at once when 32 KiB are waiting, and on Flush or
// Close. Each Write is kept whole (slog handlers write one record per
// call), so lines never interleave with other writers of w.
//
// It is safe for concurrent use; the zero value is not usable.
type LineBuffer struct {
	mu     sync.Mutex
	w      io.Writer
	buf    []byte
	timer  *time.Timer
	armed  bool // a flush is scheduled
	closed bool
	err    error // the last write error, returned by the next Write
}

// NewLineBuffer returns a LineBuffer for w. Close it to write what is left.
func NewLineBuffer(w io.Writer) *LineBuffer {
	b := &LineBuffer{w: w, buf: make([]byte, 0, lineBufferSize)}
	b.timer = time.AfterFunc(time.Hour, b.flushLater)
	b.timer.Stop()
	return b
}

// Write queues p. After Close it writes through.
func (b *LineBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return b.w.Write(p)
	}
	if err := b.err; err != nil {
		b.err = nil
		return 0, err
	}
	if len(b.buf)+len(p) > lineBufferSize {
		if err := b.flushLocked(); err != nil {
			return 0, err
		}
		if len(p) >= lineBufferSize {
			return b.w.Write(p)
		}
	}
	b.buf = append(b.buf, p...)
	if !b.armed {
		b.armed = true
		b.timer.Reset(lineBufferDelay)
	}
	return len(p), nil
}

// Flush writes what is waiting.
func (b *LineBuffer) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.flushLocked()
}

// flushLater is the timer's flush. Its error has nobody to go to but the
// next Write.
func (b *LineBuffer) flushLater() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.flushLocked(); err != nil && b.err == nil {
		b.err = err
	}
}

func (b *LineBuffer) flushLocked() error {
	b.armed = false
	if len(b.buf) == 0 {
		return nil
	}
	_, err := b.w.Write(b.buf)
	b.buf = b.buf[:0]
	return err
}

// Close writes what is waiting; later writes go straight to w. It does
// not close w.
func (b *LineBuffer) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.timer.Stop()
	b.closed = true
	return b.flushLocked()
}
