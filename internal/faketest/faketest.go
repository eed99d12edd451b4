// Package faketest holds what the strict fakes of AWS services share: the
// failures a test injects and the calls a fake records. Both are safe for
// concurrent use, since a fake serves requests on many goroutines.
package faketest

import (
	"slices"
	"sync"
)

// Faults queues failures to inject; F's zero value means "no failure".
type Faults[F comparable] struct {
	mu     sync.Mutex
	next   []F
	always F
	cycle  []F // FailCycle's pattern, and the position in it
	pos    int
}

// FailNext makes the next n calls fail with f, before any FailAlways.
func (q *Faults[F]) FailNext(f F, n int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for range n {
		q.next = append(q.next, f)
	}
}

// FailAlways makes every call fail with f, until FailAlways of the zero F.
func (q *Faults[F]) FailAlways(f F) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.always = f
}

// FailCycle makes calls fail in a repeating pattern, a steady failure
// rate that a long test can count on: the i-th call after it takes
// pattern[i % len(pattern)], the zero F meaning success. Queued and
// standing failures come first; an empty pattern ends the cycle.
func (q *Faults[F]) FailCycle(pattern ...F) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.cycle, q.pos = slices.Clone(pattern), 0
}

// Take returns the failure for the call at hand: a queued one first, else
// the standing one, else the cycle's next; the zero F for none.
func (q *Faults[F]) Take() F {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.next) > 0 {
		f := q.next[0]
		q.next = q.next[1:]
		return f
	}
	var none F
	if q.always != none || len(q.cycle) == 0 {
		return q.always
	}
	f := q.cycle[q.pos%len(q.cycle)]
	q.pos++
	return f
}

// Log records calls in the order they arrived.
type Log[C any] struct {
	mu    sync.Mutex
	calls []C
}

// Add records c.
func (l *Log[C]) Add(c C) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, c)
}

// All returns a copy of the calls so far.
func (l *Log[C]) All() []C {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls)
}

// Len is len(All()).
func (l *Log[C]) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.calls)
}

// Last is the latest call; ok is false when there was none.
func (l *Log[C]) Last() (c C, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.calls) == 0 {
		return c, false
	}
	return l.calls[len(l.calls)-1], true
}
