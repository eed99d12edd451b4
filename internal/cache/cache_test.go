package cache_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/signet-proxy/signet/internal/cache"
)

// op is one step of a scenario: "add k", "get k" or "remove k".
type op struct {
	do  string
	key int
}

func add(k int) op    { return op{"add", k} }
func get(k int) op    { return op{"get", k} }
func remove(k int) op { return op{"remove", k} }

func TestEvictsWhatThePolicySays(t *testing.T) {
	tests := []struct {
		name    string
		policy  cache.Policy
		size    int
		ops     []op
		evicted []int // in order
		held    []int // sorted
	}{
		{
			name: "lru drops the oldest when nothing was read", policy: cache.LRU, size: 3,
			ops:     []op{add(1), add(2), add(3), add(4), add(5)},
			evicted: []int{1, 2}, held: []int{3, 4, 5},
		},
		{
			name: "lru keeps what was read", policy: cache.LRU, size: 3,
			ops:     []op{add(1), add(2), add(3), get(1), add(4)},
			evicted: []int{2}, held: []int{1, 3, 4},
		},
		{
			name: "lru counts a re-add as a use", policy: cache.LRU, size: 2,
			ops:     []op{add(1), add(2), add(1), add(3)},
			evicted: []int{2}, held: []int{1, 3},
		},
		{
			name: "lru: a miss is not a use", policy: cache.LRU, size: 2,
			ops:     []op{add(1), add(2), get(9), add(3)},
			evicted: []int{1}, held: []int{2, 3},
		},
		{
			name: "lru: remove makes room without eviction", policy: cache.LRU, size: 2,
			ops:     []op{add(1), add(2), remove(1), add(3)},
			evicted: nil, held: []int{2, 3},
		},
		{
			name: "lru size one", policy: cache.LRU, size: 1,
			ops:     []op{add(1), get(1), add(2), add(3)},
			evicted: []int{1, 2}, held: []int{3},
		},
		{
			name: "lfu drops the least used even when recent", policy: cache.LFU, size: 3,
			ops:     []op{add(1), get(1), get(1), add(2), get(2), add(3), add(4)},
			evicted: []int{3}, held: []int{1, 2, 4},
		},
		{
			name: "lfu keeps an old but often used entry", policy: cache.LFU, size: 2,
			ops:     []op{add(1), get(1), get(1), get(1), add(2), get(2), add(3), add(4)},
			evicted: []int{2, 3}, held: []int{1, 4},
		},
		{
			name: "lfu ties go to the least recently used", policy: cache.LFU, size: 3,
			ops:     []op{add(1), add(2), add(3), get(2), get(1), get(3), add(4)},
			evicted: []int{2}, held: []int{1, 3, 4},
		},
		{
			name: "lfu ties without reads: the oldest", policy: cache.LFU, size: 2,
			ops:     []op{add(1), add(2), add(3)},
			evicted: []int{1}, held: []int{2, 3},
		},
		{
			name: "lfu counts a re-add as a use", policy: cache.LFU, size: 2,
			ops:     []op{add(1), add(2), add(1), add(3)},
			evicted: []int{2}, held: []int{1, 3},
		},
		{
			name: "lfu: remove forgets the count", policy: cache.LFU, size: 2,
			ops:     []op{add(1), get(1), get(1), remove(1), add(1), add(2), get(2), add(3)},
			evicted: []int{1}, held: []int{2, 3},
		},
		{
			name: "lfu: a miss is not a use", policy: cache.LFU, size: 2,
			ops:     []op{add(1), add(2), get(1), get(7), get(7), add(3)},
			evicted: []int{2}, held: []int{1, 3},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var evicted []int
			c, err := cache.New(cache.Options[int, string]{
				Policy: tt.policy, MaxSize: tt.size,
				OnEvict: func(k int, v string) {
					if v != fmt.Sprint("v", k) {
						t.Errorf("OnEvict(%d, %q): value does not belong to the key", k, v)
					}
					evicted = append(evicted, k)
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range tt.ops {
				switch o.do {
				case "add":
					c.Add(o.key, fmt.Sprint("v", o.key))
				case "get":
					c.Get(o.key)
				case "remove":
					c.Remove(o.key)
				}
			}
			if !slices.Equal(evicted, tt.evicted) {
				t.Errorf("evicted %v, want %v", evicted, tt.evicted)
			}
			var held []int
			// Read last, so these Gets change nothing that was checked.
			for k := range 10 {
				if _, ok := c.Get(k); ok {
					held = append(held, k)
				}
			}
			if !slices.Equal(held, tt.held) {
				t.Errorf("holds %v, want %v", held, tt.held)
			}
			if got := c.Stats().Evictions; got != uint64(len(tt.evicted)) {
				t.Errorf("Stats().Evictions = %d, want %d", got, len(tt.evicted))
			}
		})
	}
}

func TestStats(t *testing.T) {
	for _, p := range []cache.Policy{cache.LRU, cache.LFU} {
		t.Run(string(p), func(t *testing.T) {
			c, err := cache.New(cache.Options[string, int]{Policy: p, MaxSize: 2})
			if err != nil {
				t.Fatal(err)
			}
			c.Add("a", 1)
			c.Add("b", 2)
			c.Get("a")
			c.Get("a")
			c.Get("zz")
			if evicted := c.Add("c", 3); !evicted {
				t.Error("Add to a full cache reported no eviction")
			}
			if evicted := c.Add("c", 4); evicted {
				t.Error("Add of a held key reported an eviction")
			}
			if v, ok := c.Get("c"); !ok || v != 4 {
				t.Errorf("Get(c) = %d, %v; want 4, true", v, ok)
			}
			want := cache.Stats{Hits: 3, Misses: 1, Evictions: 1, Len: 2, MaxSize: 2}
			if got := c.Stats(); got != want {
				t.Errorf("Stats() = %+v, want %+v", got, want)
			}
			if v, ok := c.Remove("c"); !ok || v != 4 {
				t.Errorf("Remove(c) = %d, %v", v, ok)
			}
			if _, ok := c.Remove("c"); ok {
				t.Error("second Remove(c) found it")
			}
			if c.Len() != 1 {
				t.Errorf("Len() = %d after Remove, want 1", c.Len())
			}
		})
	}
}

func TestNewRefuses(t *testing.T) {
	for _, o := range []cache.Options[int, int]{
		{Policy: cache.LRU, MaxSize: 0},
		{Policy: cache.LFU, MaxSize: -1},
		{Policy: "fifo", MaxSize: 10},
	} {
		if _, err := cache.New(o); err == nil {
			t.Errorf("New(%+v) succeeded", o)
		}
	}
	c, err := cache.New(cache.Options[int, int]{MaxSize: 1})
	if err != nil || c.Policy() != cache.LRU {
		t.Errorf("New without policy: %v, policy %q; want lru", err, c.Policy())
	}
}

// OnEvict may call back into the cache: it runs outside the lock.
func TestOnEvictMayUseTheCache(t *testing.T) {
	var c *cache.Cache[int, int]
	c, err := cache.New(cache.Options[int, int]{MaxSize: 1, OnEvict: func(k, _ int) { c.Len(); c.Remove(k) }})
	if err != nil {
		t.Fatal(err)
	}
	c.Add(1, 1)
	c.Add(2, 2)
	if c.Len() != 1 {
		t.Errorf("Len() = %d", c.Len())
	}
}

// model is the obvious O(n) statement of both policies.
type model struct {
	lfu   bool
	max   int
	clock int
	keys  []int
	used  map[int]int // last use
	count map[int]int
	vals  map[int]int
}

func newModel(lfu bool, size int) *model {
	return &model{lfu: lfu, max: size, used: map[int]int{}, count: map[int]int{}, vals: map[int]int{}}
}

func (m *model) use(k int) {
	m.clock++
	m.used[k] = m.clock
	m.count[k]++
}

func (m *model) get(k int) (int, bool) {
	if !slices.Contains(m.keys, k) {
		return 0, false
	}
	m.use(k)
	return m.vals[k], true
}

func (m *model) add(k, v int) (evicted []int) {
	if slices.Contains(m.keys, k) {
		m.vals[k] = v
		m.use(k)
		return nil
	}
	if len(m.keys) >= m.max {
		victim := m.keys[0]
		for _, c := range m.keys[1:] {
			if m.lfu && m.count[c] != m.count[victim] {
				if m.count[c] < m.count[victim] {
					victim = c
				}
				continue
			}
			if m.used[c] < m.used[victim] {
				victim = c
			}
		}
		m.drop(victim)
		evicted = []int{victim}
	}
	m.keys = append(m.keys, k)
	m.vals[k] = v
	m.count[k] = 0
	m.use(k)
	return evicted
}

func (m *model) drop(k int) {
	m.keys = slices.DeleteFunc(m.keys, func(x int) bool { return x == k })
	delete(m.used, k)
	delete(m.count, k)
	delete(m.vals, k)
}

// run applies ops encoded as byte pairs (operation, key) to a cache and the
// model and fails at the first difference.
func run(t *testing.T, lfu bool, size int, ops []byte) {
	t.Helper()
	policy := cache.LRU
	if lfu {
		policy = cache.LFU
	}
	var evicted []int
	c, err := cache.New(cache.Options[int, int]{Policy: policy, MaxSize: size, OnEvict: func(k, _ int) { evicted = append(evicted, k) }})
	if err != nil {
		t.Fatal(err)
	}
	m := newModel(lfu, size)
	for i := 0; i+1 < len(ops); i += 2 {
		k := int(ops[i+1] % 16)
		switch ops[i] % 3 {
		case 0:
			evicted = evicted[:0]
			want := m.add(k, i)
			got := c.Add(k, i)
			if got != (len(want) > 0) || !slices.Equal(evicted, want) {
				t.Fatalf("step %d: Add(%d) evicted %v (reported %v), model evicted %v", i/2, k, evicted, got, want)
			}
		case 1:
			wv, wok := m.get(k)
			gv, gok := c.Get(k)
			if gv != wv || gok != wok {
				t.Fatalf("step %d: Get(%d) = %d, %v; model %d, %v", i/2, k, gv, gok, wv, wok)
			}
		case 2:
			_, wok := m.vals[k]
			if wok {
				m.drop(k)
			}
			if _, gok := c.Remove(k); gok != wok {
				t.Fatalf("step %d: Remove(%d) found %v; model %v", i/2, k, gok, wok)
			}
		}
		if c.Len() != len(m.keys) {
			t.Fatalf("step %d: Len() = %d; model %d", i/2, c.Len(), len(m.keys))
		}
	}
}

func FuzzAgainstModel(f *testing.F) {
	f.Add(false, uint8(3), []byte{0, 1, 0, 2, 0, 3, 1, 1, 0, 4, 1, 2})
	f.Add(true, uint8(3), []byte{0, 1, 1, 1, 1, 1, 0, 2, 1, 2, 0, 3, 0, 4, 2, 1, 0, 5})
	f.Add(true, uint8(1), []byte{0, 1, 0, 1, 0, 2, 1, 2})
	f.Fuzz(func(t *testing.T, lfu bool, size uint8, ops []byte) {
		run(t, lfu, int(size%8)+1, ops)
	})
}

// TestRandomAgainstModel runs long random sequences, seeded so a failure
// repeats.
func TestRandomAgainstModel(t *testing.T) {
	for seed := range uint64(20) {
		r := rand.New(rand.NewPCG(seed, 7))
		ops := make([]byte, 4000)
		for i := range ops {
			ops[i] = byte(r.UintN(256))
		}
		for _, lfu := range []bool{false, true} {
			run(t, lfu, 1+int(seed%10), ops)
		}
	}
}

// TestConcurrent is for the race detector; it checks the bound holds.
func TestConcurrent(t *testing.T) {
	for _, p := range []cache.Policy{cache.LRU, cache.LFU} {
		c, err := cache.New(cache.Options[int, int]{Policy: p, MaxSize: 50})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(g), 1))
				for range 5000 {
					k := int(r.UintN(200))
					switch r.UintN(3) {
					case 0:
						c.Add(k, k)
					case 1:
						if v, ok := c.Get(k); ok && v != k {
							t.Errorf("Get(%d) = %d", k, v)
						}
					case 2:
						c.Remove(k)
					}
				}
			})
		}
		wg.Wait()
		if s := c.Stats(); s.Len > 50 || s.Hits+s.Misses == 0 {
			t.Errorf("%s: %+v", p, s)
		}
	}
}

func BenchmarkCache(b *testing.B) {
	for _, p := range []cache.Policy{cache.LRU, cache.LFU} {
		const size = 1000
		keys := make([]string, 4*size)
		for i := range keys {
			keys[i] = fmt.Sprintf("bucket-%d.s3.eu-west-1.amazonaws.com", i)
		}
		b.Run(string(p)+"/get-hit", func(b *testing.B) {
			c, _ := cache.New(cache.Options[string, int]{Policy: p, MaxSize: size})
			for i := range size {
				c.Add(keys[i], i)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				c.Get(keys[i%size])
				i++
			}
		})
		b.Run(string(p)+"/add-evict", func(b *testing.B) {
			c, _ := cache.New(cache.Options[string, int]{Policy: p, MaxSize: size})
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				c.Add(keys[i%len(keys)], i)
				i++
			}
		})
		b.Run(string(p)+"/parallel-mixed", func(b *testing.B) {
			c, _ := cache.New(cache.Options[string, int]{Policy: p, MaxSize: size})
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				r := rand.New(rand.NewPCG(rand.Uint64(), 0))
				for pb.Next() {
					k := keys[r.UintN(uint(2*size))]
					if _, ok := c.Get(k); !ok {
						c.Add(k, 1)
					}
				}
			})
		})
	}
}
