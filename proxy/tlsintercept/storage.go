package tlsintercept

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
)

// memStorage is certmagic's Storage, held in memory.
//
// certmagic's default FileStorage writes every leaf private key to disk
// under the user's data directory, where its mode would be looser than the
// CA key's 0600 and it would outlive the process. Leaves are cheap to
// reissue (milliseconds, from a local CA), so keeping them only in memory
// is the simplest safe choice: nothing to clean up, nothing to leak.
//
// It is bounded: when full, the oldest entry is dropped. That loses
// nothing that matters, because certmagic's Cache is the real cache of
// certificates in use; a dropped entry only means a reissue.
type memStorage struct {
	max int

	mu      sync.Mutex
	entries map[string]memEntry
	seq     uint64 // insertion order, to find the oldest entry
	locks   map[string]chan struct{}
}

type memEntry struct {
	value    []byte
	modified time.Time
	seq      uint64
}

var (
	_ certmagic.Storage = (*memStorage)(nil)
)

func newMemStorage(maxEntries int) *memStorage {
	return &memStorage{
		max:     maxEntries,
		entries: make(map[string]memEntry),
		locks:   make(map[string]chan struct{}),
	}
}

// Lock blocks until name is free or ctx ends. Locks are process-local,
// which is all certmagic needs: this storage is not shared with any other
// process.
func (s *memStorage) Lock(ctx context.Context, name string) error {
	for {
		s.mu.Lock()
		held, busy := s.locks[name]
		if !busy {
			s.locks[name] = make(chan struct{})
			s.mu.Unlock()
			return nil
		}
		s.mu.Unlock()
		select {
		case <-held:
		case <-ctx.Done():
			return fmt.Errorf("lock %s: %w", name, ctx.Err())
		}
	}
}

func (s *memStorage) Unlock(_ context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	held, busy := s.locks[name]
	if !busy {
		return fmt.Errorf("unlock %s: not locked", name)
	}
	delete(s.locks, name)
	close(held)
	return nil
}

func (s *memStorage) Store(_ context.Context, key string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, exists := s.entries[key]; !exists && s.max > 0 && len(s.entries) >= s.max {
		s.evictOldestLocked()
	}
	s.seq++
	// Copy: certmagic may reuse its buffer after Store returns.
	s.entries[key] = memEntry{value: append([]byte(nil), value...), modified: time.Now(), seq: s.seq}
	return nil
}

// evictOldestLocked drops the least recently stored entry. A linear scan
// is fine: the storage holds a few thousand entries at most and Store runs
// once per issuance, not per handshake.
func (s *memStorage) evictOldestLocked() {
	var oldest string
	var oldestSeq uint64
	for k, e := range s.entries {
		if oldest == "" || e.seq < oldestSeq {
			oldest, oldestSeq = k, e.seq
		}
	}
	delete(s.entries, oldest)
}

// Load returns fs.ErrNotExist for a missing key: certmagic tests for it
// with errors.Is to tell "not yet issued" from a failure.
func (s *memStorage) Load(_ context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[key]
	if !ok {
		return nil, fmt.Errorf("load %s: %w", key, fs.ErrNotExist)
	}
	return append([]byte(nil), e.value...), nil
}

// Delete removes key and, as the interface requires, every key under it.
func (s *memStorage) Delete(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	prefix := key + "/"
	for k := range s.entries {
		if k == key || strings.HasPrefix(k, prefix) {
			delete(s.entries, k)
		}
	}
	return nil
}

// Exists reports a key stored as is, or a "directory" that prefixes one.
func (s *memStorage) Exists(_ context.Context, key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.entries[key]; ok {
		return true
	}
	prefix := key + "/"
	for k := range s.entries {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}

// List returns the keys under prefix, like a directory walk: only the
// direct children when recursive is false, and every key and intermediate
// directory when it is true.
func (s *memStorage) List(_ context.Context, prefix string, recursive bool) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	dir := strings.TrimSuffix(prefix, "/")
	seen := make(map[string]struct{})
	for k := range s.entries {
		rel := k
		if dir != "" {
			var ok bool
			if rel, ok = strings.CutPrefix(k, dir+"/"); !ok {
				continue
			}
		}
		parts := strings.Split(rel, "/")
		if !recursive {
			parts = parts[:1]
		}
		for i := range parts {
			seen[path.Join(dir, strings.Join(parts[:i+1], "/"))] = struct{}{}
		}
	}
	if len(seen) == 0 {
		return nil, fmt.Errorf("list %s: %w", prefix, fs.ErrNotExist)
	}
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys, nil
}

func (s *memStorage) Stat(_ context.Context, key string) (certmagic.KeyInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.entries[key]; ok {
		return certmagic.KeyInfo{Key: key, Modified: e.modified, Size: int64(len(e.value)), IsTerminal: true}, nil
	}
	prefix := key + "/"
	for k := range s.entries {
		if strings.HasPrefix(k, prefix) {
			return certmagic.KeyInfo{Key: key, IsTerminal: false}, nil
		}
	}
	return certmagic.KeyInfo{}, fmt.Errorf("stat %s: %w", key, fs.ErrNotExist)
}

func (s *memStorage) String() string { return "tlsintercept.memStorage" }
