package proxy

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// writeLog records each Write call to it separately.
type writeLog struct {
	mu     sync.Mutex
	writes []string
	err    error
}

func (w *writeLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return 0, w.err
	}
	w.writes = append(w.writes, string(p))
	return len(p), nil
}

func (w *writeLog) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.writes...)
}

func TestLineBufferBatchesWholeLines(t *testing.T) {
	var out writeLog
	b := NewLineBuffer(&out)
	for _, l := range []string{"one\n", "two\n", "three\n"} {
		if n, err := b.Write([]byte(l)); n != len(l) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", l, n, err)
		}
	}
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := out.all(); len(got) != 1 || got[0] != "one\ntwo\nthree\n" {
		t.Errorf("writes %q, want the three lines in one write", got)
	}

	// A line that would overflow the buffer sends what waits first; one
	// as large as the buffer goes through on its own.
	big := strings.Repeat("x", lineBufferSize-1) + "\n"
	_, _ = b.Write([]byte("small\n"))
	_, _ = b.Write([]byte(big))
	_, _ = b.Write([]byte("after\n"))
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if got := out.all()[1:]; len(got) != 3 || got[0] != "small\n" || got[1] != big || got[2] != "after\n" {
		t.Errorf("writes after the first: %d of them, want small, the big line, after", len(got))
	}
	// After Close, writes go straight through.
	_, _ = b.Write([]byte("late\n"))
	if got := out.all(); got[len(got)-1] != "late\n" {
		t.Errorf("last write %q, want the line written after Close", got[len(got)-1])
	}
}

// TestLineBufferFlushesWithoutMoreWrites: a lone line reaches the writer
// without a Flush, a Close or another line behind it.
func TestLineBufferFlushesWithoutMoreWrites(t *testing.T) {
	var out writeLog
	b := NewLineBuffer(&out)
	defer b.Close()
	_, _ = b.Write([]byte("lonely\n"))
	for deadline := time.Now().Add(10 * time.Second); len(out.all()) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the line never reached the writer")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := out.all(); got[0] != "lonely\n" {
		t.Errorf("got %q", got)
	}
}

func TestLineBufferReportsWriteErrors(t *testing.T) {
	failed := errors.New("disk full")
	out := writeLog{err: failed}
	b := NewLineBuffer(&out)
	_, _ = b.Write([]byte("a\n"))
	if err := b.Flush(); !errors.Is(err, failed) {
		t.Errorf("Flush = %v, want the writer's error", err)
	}
	// The timer's flush has nobody to tell but the next Write.
	_, _ = b.Write([]byte("b\n"))
	b.flushLater()
	if _, err := b.Write([]byte("c\n")); !errors.Is(err, failed) {
		t.Errorf("Write after a failed timed flush = %v, want the writer's error", err)
	}
	out.mu.Lock()
	out.err = nil
	out.mu.Unlock()
	if err := b.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
}

// TestLineBufferConcurrentWritersKeepLinesWhole: lines written from many
// goroutines arrive whole and each exactly once.
func TestLineBufferConcurrentWritersKeepLinesWhole(t *testing.T) {
	var out writeLog
	b := NewLineBuffer(&out)
	const writers, lines = 8, 500
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range lines {
				_, _ = b.Write([]byte(strings.Repeat(string(rune('a'+w)), 10+i%50) + "\n"))
			}
		})
	}
	wg.Wait()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	all := strings.Join(out.all(), "")
	got := strings.Split(strings.TrimSuffix(all, "\n"), "\n")
	if len(got) != writers*lines {
		t.Fatalf("%d lines, want %d", len(got), writers*lines)
	}
	for _, l := range got {
		if l == "" || strings.Trim(l, l[:1]) != "" {
			t.Fatalf("mixed line %q", l)
		}
	}
	if !bytes.HasSuffix([]byte(all), []byte("\n")) {
		t.Error("output does not end with a whole line")
	}
}
