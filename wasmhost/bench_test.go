//go:build unix

package wasmhost

import (
	"context"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user+system CPU time: on a shared machine it
// says more about cost than wall time does.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N)/1e6, "cpu-ms/op")
}

// BenchmarkRunTrivial is one call of a provider that prints credentials
// and exits: the fixed cost of a call (instantiate, Go runtime start).
func BenchmarkRunTrivial(b *testing.B) {
	m := load(b, ModuleConfig{Args: []string{"creds"}})
	ctx := context.Background()
	cpu := cpuTime()
	var ds []time.Duration
	for b.Loop() {
		res, err := m.Run(ctx)
		if err != nil {
			b.Fatal(err)
		}
		ds = append(ds, res.Duration)
	}
	reportCPU(b, cpu)
	slices.Sort(ds)
	b.ReportMetric(float64(ds[len(ds)/2])/1e6, "p50-ms")
}

// BenchmarkRunCPUBound is a call that computes (SHA-256 and JSON): the
// cost of the deadline checks on every loop and call (RATIONALE.md).
func BenchmarkRunCPUBound(b *testing.B) {
	m := load(b, ModuleConfig{Args: []string{"work"}, Timeout: time.Minute})
	ctx := context.Background()
	cpu := cpuTime()
	for b.Loop() {
		if _, err := m.Run(ctx); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu)
}

// BenchmarkLoad is Load of the probe (a Go wasip1 module of about 4 MB):
// cold compiles; disk reads the compilation cache of an earlier process
// (a fresh Host on the same CacheDir); memory shares the code of a module
// already loaded in this Host.
func BenchmarkLoad(b *testing.B) {
	needGuests(b)
	ctx := context.Background()
	loadOnce := func(b *testing.B, dir string) {
		h, err := New(ctx, Options{CacheDir: dir})
		if err != nil {
			b.Fatal(err)
		}
		defer h.Close(ctx)
		m, err := h.Load(ctx, ModuleConfig{Path: probeWasm})
		if err != nil {
			b.Fatal(err)
		}
		m.Close(ctx)
	}
	b.Run("cold", func(b *testing.B) {
		root := b.TempDir()
		cpu := cpuTime()
		i := 0
		for b.Loop() {
			i++
			loadOnce(b, filepath.Join(root, strconv.Itoa(i)))
		}
		reportCPU(b, cpu)
	})
	b.Run("disk", func(b *testing.B) {
		dir := b.TempDir()
		loadOnce(b, dir)
		cpu := cpuTime()
		for b.Loop() {
			loadOnce(b, dir)
		}
		reportCPU(b, cpu)
	})
	b.Run("memory", func(b *testing.B) {
		cpu := cpuTime()
		for b.Loop() {
			m, err := sharedHost.Load(ctx, ModuleConfig{Path: probeWasm})
			if err != nil {
				b.Fatal(err)
			}
			m.Close(ctx)
		}
		reportCPU(b, cpu)
	})
}
