package faketest

import (
	"slices"
	"testing"
)

func TestFaultsOrder(t *testing.T) {
	var q Faults[int]
	q.FailAlways(9)
	q.FailNext(1, 2)
	q.FailNext(2, 1)
	var got []int
	for range 5 {
		got = append(got, q.Take())
	}
	want := []int{1, 1, 2, 9, 9}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Take sequence = %v, want %v", got, want)
		}
	}
	q.FailAlways(0)
	if f := q.Take(); f != 0 {
		t.Fatalf("after FailAlways(0): %d", f)
	}
}

func TestFaultsCycle(t *testing.T) {
	var q Faults[int]
	q.FailCycle(0, 0, 7)
	q.FailNext(1, 1)
	var got []int
	for range 7 {
		got = append(got, q.Take())
	}
	// The queued failure first; the cycle does not advance for it.
	if want := []int{1, 0, 0, 7, 0, 0, 7}; !slices.Equal(got, want) {
		t.Fatalf("Take sequence = %v, want %v", got, want)
	}
	q.FailAlways(9)
	if f := q.Take(); f != 9 {
		t.Fatalf("FailAlways under a cycle: %d, want 9", f)
	}
	q.FailAlways(0)
	if f := q.Take(); f != 0 {
		t.Fatalf("the cycle after FailAlways(0): %d, want 0 (it goes on where it was)", f)
	}
	q.FailCycle()
	for range 3 {
		if f := q.Take(); f != 0 {
			t.Fatalf("after FailCycle(): %d", f)
		}
	}
}

func TestLog(t *testing.T) {
	var l Log[string]
	if _, ok := l.Last(); ok || l.Len() != 0 {
		t.Fatal("an empty log has a last call")
	}
	l.Add("a")
	l.Add("b")
	all := l.All()
	all[0] = "changed"
	if last, ok := l.Last(); !ok || last != "b" || l.Len() != 2 || l.All()[0] != "a" {
		t.Fatalf("log = %v", l.All())
	}
}
