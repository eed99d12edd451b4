package tlsintercept

import (
	"context"
	"errors"
	"io/fs"
	"slices"
	"testing"
	"time"
)

func TestMemStorage(t *testing.T) {
	ctx := context.Background()
	s := newMemStorage(3)
	for _, k := range []string{"certificates/i/a.test/a.test.crt", "certificates/i/a.test/a.test.key", "certificates/i/b.test/b.test.crt"} {
		if err := s.Store(ctx, k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	lists := []struct {
		prefix    string
		recursive bool
		want      []string
	}{
		{"certificates/i", false, []string{"certificates/i/a.test", "certificates/i/b.test"}},
		{"certificates", true, []string{"certificates/i", "certificates/i/a.test", "certificates/i/a.test/a.test.crt", "certificates/i/a.test/a.test.key", "certificates/i/b.test", "certificates/i/b.test/b.test.crt"}},
	}
	for _, l := range lists {
		got, err := s.List(ctx, l.prefix, l.recursive)
		if err != nil || !slices.Equal(got, l.want) {
			t.Errorf("List(%q, %v) = %v, %v; want %v", l.prefix, l.recursive, got, err, l.want)
		}
	}
	if info, err := s.Stat(ctx, "certificates/i/a.test"); err != nil || info.IsTerminal {
		t.Errorf("Stat(dir) = %+v, %v", info, err)
	}
	if !s.Exists(ctx, "certificates/i/b.test") {
		t.Error("Exists(dir) = false")
	}

	// A fourth entry evicts the oldest.
	if err := s.Store(ctx, "x", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx, "certificates/i/a.test/a.test.crt"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("oldest entry after eviction: %v, want fs.ErrNotExist", err)
	}

	if err := s.Delete(ctx, "certificates/i"); err != nil {
		t.Fatal(err)
	}
	if s.Exists(ctx, "certificates/i/b.test/b.test.crt") {
		t.Error("Delete(dir) left a key under it")
	}
	if _, err := s.Stat(ctx, "nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat(missing) = %v, want fs.ErrNotExist", err)
	}
}

func TestMemStorageLock(t *testing.T) {
	ctx := context.Background()
	s := newMemStorage(0)
	if err := s.Lock(ctx, "n"); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := s.Lock(short, "n"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock of a held name = %v, want deadline exceeded", err)
	}
	got := make(chan error, 1)
	go func() { got <- s.Lock(ctx, "n") }()
	if err := s.Unlock(ctx, "n"); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("Lock after Unlock: %v", err)
	}
	if err := s.Unlock(ctx, "n"); err != nil {
		t.Fatal(err)
	}
	if err := s.Unlock(ctx, "n"); err == nil {
		t.Error("Unlock of a free name succeeded")
	}
}
