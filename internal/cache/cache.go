// Package cache is a bounded, concurrency-safe map with a least recently
// used (LRU) or least frequently used (LFU) eviction policy, for the state
// signet keeps per upstream host and the leaf certificates it issues. Every
// operation is O(1), and the cache counts its hits, misses and evictions for
// metrics.
package cache

import (
	"fmt"
	"sync"
	"sync/atomic"
)

// Policy decides which entry a full cache gives up for a new one.
type Policy string

// Policies.
const (
	// LRU evicts the entry that was used least recently.
	LRU Policy = "lru"
	// LFU evicts the entry that was used least often; among entries used
	// equally often, the one used least recently.
	LFU Policy = "lfu"
)

// Options configure New.
type Options[K comparable, V any] struct {
	// Policy is LRU (the default when empty) or LFU.
	Policy Policy
	// MaxSize is how many entries the cache holds, at least 1.
	MaxSize int
	// OnEvict, when set, is called with every entry evicted to make room
	// for another: not for Remove, and not for a value replaced by Add of
	// its key. It runs after the cache's lock is released, so it may call
	// the cache, and in the goroutine that called Add.
	OnEvict func(key K, value V)
}

// Stats are a cache's figures so far.
type Stats struct {
	Hits      uint64 // Get found the key
	Misses    uint64 // Get did not find it
	Evictions uint64 // entries dropped to make room
	Len       int    // entries held now
	MaxSize   int
}

// Cache is a bounded map. Use New; the zero value is not usable.
type Cache[K comparable, V any] struct {
	policy  Policy
	max     int
	onEvict func(K, V)

	mu    sync.Mutex
	items map[K]*entry[K, V]
	// lru orders every entry by recency (LRU only), most recent first.
	lru entry[K, V]
	// freqs are the LFU frequency buckets in ascending order of count;
	// each holds its entries most recent first. Only non-empty buckets
	// are linked.
	freqs bucket[K, V]
	// spare is one unlinked bucket kept for reuse, so that the common
	// step of an entry moving up by one allocates nothing.
	spare *bucket[K, V]

	hits, misses, evictions atomic.Uint64
}

// entry is a node of a circular doubly linked list with a sentinel.
type entry[K comparable, V any] struct {
	key        K
	val        V
	prev, next *entry[K, V]
	bucket     *bucket[K, V] // LFU only
}

// bucket holds the LFU entries used count times; buckets form their own
// circular list with a sentinel.
type bucket[K comparable, V any] struct {
	count      uint64
	entries    entry[K, V] // sentinel
	prev, next *bucket[K, V]
}

// New builds an empty cache.
func New[K comparable, V any](opts Options[K, V]) (*Cache[K, V], error) {
	if opts.Policy == "" {
		opts.Policy = LRU
	}
	if opts.Policy != LRU && opts.Policy != LFU {
		return nil, fmt.Errorf("cache: unknown policy %q: use %q or %q", opts.Policy, LRU, LFU)
	}
	if opts.MaxSize < 1 {
		return nil, fmt.Errorf("cache: MaxSize is %d: it must be at least 1", opts.MaxSize)
	}
	c := &Cache[K, V]{
		policy:  opts.Policy,
		max:     opts.MaxSize,
		onEvict: opts.OnEvict,
		// Sized for the common case without reserving the whole bound.
		items: make(map[K]*entry[K, V], min(opts.MaxSize, 64)),
	}
	c.lru.prev, c.lru.next = &c.lru, &c.lru
	c.freqs.prev, c.freqs.next = &c.freqs, &c.freqs
	return c, nil
}

// Policy returns the cache's policy.
func (c *Cache[K, V]) Policy() Policy { return c.policy }

// Get returns the value for key and counts a use of it.
func (c *Cache[K, V]) Get(key K) (V, bool) {
	c.mu.Lock()
	e, ok := c.items[key]
	if !ok {
		c.mu.Unlock()
		c.misses.Add(1)
		var zero V
		return zero, false
	}
	c.touch(e)
	v := e.val
	c.mu.Unlock()
	c.hits.Add(1)
	return v, true
}

// Add sets key to value. A key already held counts as used; a new key in
// a full cache first evicts the entry the policy picks. It reports whether
// an entry was evicted.
func (c *Cache[K, V]) Add(key K, value V) (evicted bool) {
	c.mu.Lock()
	if e, ok := c.items[key]; ok {
		e.val = value
		c.touch(e)
		c.mu.Unlock()
		return false
	}
	var (
		e       *entry[K, V]
		oldKey  K
		oldVal  V
		dropped bool
	)
	if len(c.items) >= c.max {
		// Reuse the victim's node: a full cache allocates nothing for
		// the new entry.
		e = c.victim()
		c.unlink(e)
		delete(c.items, e.key)
		oldKey, oldVal, dropped = e.key, e.val, true
		*e = entry[K, V]{}
	} else {
		e = &entry[K, V]{}
	}
	e.key, e.val = key, value
	c.items[key] = e
	c.insert(e)
	c.mu.Unlock()
	if dropped {
		c.evictions.Add(1)
		if c.onEvict != nil {
			c.onEvict(oldKey, oldVal)
		}
	}
	return dropped
}

// Remove deletes key and returns the value it held.
func (c *Cache[K, V]) Remove(key K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[key]
	if !ok {
		var zero V
		return zero, false
	}
	c.unlink(e)
	delete(c.items, key)
	return e.val, true
}

// Len returns how many entries the cache holds.
func (c *Cache[K, V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items)
}

// Stats returns the counters so far and the current size.
func (c *Cache[K, V]) Stats() Stats {
	return Stats{
		Hits:      c.hits.Load(),
		Misses:    c.misses.Load(),
		Evictions: c.evictions.Load(),
		Len:       c.Len(),
		MaxSize:   c.max,
	}
}

// touch records a use of e; c.mu is held.
func (c *Cache[K, V]) touch(e *entry[K, V]) {
	if c.policy == LRU {
		if c.lru.next != e {
			detach(e)
			pushFront(&c.lru, e)
		}
		return
	}
	b := e.bucket
	next := b.next
	if next == &c.freqs || next.count != b.count+1 {
		next = c.newBucket(b.count+1, b)
	}
	detach(e)
	pushFront(&next.entries, e)
	e.bucket = next
	if b.entries.next == &b.entries {
		c.dropBucket(b)
	}
}

// insert links a new entry; c.mu is held.
func (c *Cache[K, V]) insert(e *entry[K, V]) {
	if c.policy == LRU {
		pushFront(&c.lru, e)
		return
	}
	b := c.freqs.next
	if b == &c.freqs || b.count != 1 {
		b = c.newBucket(1, &c.freqs)
	}
	pushFront(&b.entries, e)
	e.bucket = b
}

// unlink removes e from the policy's order; c.mu is held.
func (c *Cache[K, V]) unlink(e *entry[K, V]) {
	detach(e)
	if c.policy == LFU {
		if b := e.bucket; b.entries.next == &b.entries {
			c.dropBucket(b)
		}
		e.bucket = nil
	}
}

// victim is the entry to evict from a non-empty cache; c.mu is held.
func (c *Cache[K, V]) victim() *entry[K, V] {
	if c.policy == LRU {
		return c.lru.prev
	}
	// The lowest count, and in it the least recently used.
	return c.freqs.next.entries.prev
}

// newBucket links an empty bucket for count after after; c.mu is held.
func (c *Cache[K, V]) newBucket(count uint64, after *bucket[K, V]) *bucket[K, V] {
	b := c.spare
	if b != nil {
		c.spare = nil
	} else {
		b = &bucket[K, V]{}
	}
	b.count = count
	b.entries.prev, b.entries.next = &b.entries, &b.entries
	b.prev, b.next = after, after.next
	after.next.prev = b
	after.next = b
	return b
}

// dropBucket unlinks an empty bucket and keeps it as the spare.
func (c *Cache[K, V]) dropBucket(b *bucket[K, V]) {
	b.prev.next = b.next
	b.next.prev = b.prev
	b.prev, b.next = nil, nil
	c.spare = b
}

func detach[K comparable, V any](e *entry[K, V]) {
	e.prev.next = e.next
	e.next.prev = e.prev
	e.prev, e.next = nil, nil
}

func pushFront[K comparable, V any](root, e *entry[K, V]) {
	e.prev, e.next = root, root.next
	root.next.prev = e
	root.next = e
}
