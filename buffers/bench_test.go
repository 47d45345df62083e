//go:build linux

package buffers

import (
	"fmt"
	"log/slog"
	"syscall"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Benchmarks. Run:
//
//	go test -run '^$' -bench . -benchtime 2s ./buffers/
//
// They print figures and never assert one. faults/op is the minor page
// faults of the whole process (getrusage ru_minflt) per operation: the
// cost that "page faults cost more than copies" (docs/ARCHITECTURE.md,
// "Measured facts") is about.

func minorFaults(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return ru.Minflt
}

// benchArena builds a prefaulted arena of kind for a benchmark; for
// hugepages it reserves the pool (as root) and skips when it cannot.
func benchArena(b *testing.B, kind Kind, size int) *Allocator {
	b.Helper()
	const extent = 16 << 20
	if kind == KindHugepage {
		need := int64(extent+roundUp(size, Page2MiB)) / Page2MiB
		if free, err := readInt64(freeHugepages); err != nil || free < need {
			reserveHugepages(b, need)
		}
	}
	a, err := New(ArenaConfig{
		Kind: kind, Node: NoNode, ExtentSize: extent, Prefault: true,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := a.Close(); err != nil {
			b.Error(err)
		}
	})
	if got := a.Backing(); len(got.Fallbacks) > 0 {
		b.Skipf("arena %v fell back: %q", kind, got.Fallbacks)
	}
	return a
}

// BenchmarkAllocTouchFree: allocate a buffer, write one byte per 4 KiB
// page (the first touch), free it. Our arena (prefaulted THP or hugetlb
// extents; large sizes reuse their cached mapping) against
// memory.NewGoAllocator, whose big buffers come fresh from the OS once the
// GC has returned them.
func BenchmarkAllocTouchFree(b *testing.B) {
	for _, size := range []int{64 << 10, 1 << 20, 8 << 20, 64 << 20} {
		for _, alloc := range []string{"go", "thp", "hugepage"} {
			b.Run(fmt.Sprintf("size=%s/alloc=%s", sizeName(size), alloc), func(b *testing.B) {
				var mem memory.Allocator
				switch alloc {
				case "go":
					mem = memory.NewGoAllocator()
				case "thp":
					mem = benchArena(b, KindTHP, size)
				case "hugepage":
					mem = benchArena(b, KindHugepage, size)
				}
				mem.Free(mem.Allocate(size)) // carve the span / map the large block
				b.SetBytes(int64(size))
				b.ReportAllocs()
				f0 := minorFaults(b)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					buf := mem.Allocate(size)
					for j := 0; j < len(buf); j += 4096 {
						buf[j] = 1
					}
					mem.Free(buf)
				}
				b.StopTimer()
				b.ReportMetric(float64(minorFaults(b)-f0)/float64(b.N), "faults/op")
			})
		}
	}
}

// BenchmarkAllocFreeHot is the hot path: Allocate+Free of one class size,
// serial and from every P at once; 0 allocs/op for the arena.
func BenchmarkAllocFreeHot(b *testing.B) {
	for _, size := range []int{64, 4096, 64 << 10} {
		// arena is the allocator itself; account is an operator's account
		// of it (what the engine hands an operator: per-owner counting).
		for _, alloc := range []string{"go", "arena", "account"} {
			mk := func(b *testing.B) memory.Allocator {
				if alloc == "go" {
					return memory.NewGoAllocator()
				}
				a, _ := newTest(b, ArenaConfig{Kind: KindTHP, Node: NoNode, ExtentSize: 16 << 20, Logger: slog.New(slog.DiscardHandler)})
				if alloc == "account" {
					return a.Account("op", 0)
				}
				return a
			}
			b.Run(fmt.Sprintf("size=%s/alloc=%s/mode=serial", sizeName(size), alloc), func(b *testing.B) {
				mem := mk(b)
				mem.Free(mem.Allocate(size))
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					buf := mem.Allocate(size)
					buf[0] = 1
					mem.Free(buf)
				}
			})
			b.Run(fmt.Sprintf("size=%s/alloc=%s/mode=parallel", sizeName(size), alloc), func(b *testing.B) {
				mem := mk(b)
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						buf := mem.Allocate(size)
						buf[0] = 1
						mem.Free(buf)
					}
				})
			})
		}
	}
}

// BenchmarkZeroing measures the two ways to hand out zeroed blocks: clear
// the requested bytes when a block is reused (the default), or clear the
// whole block when it is freed. The buffer is written in full between, as
// a real user would.
func BenchmarkZeroing(b *testing.B) {
	for _, size := range []int{4096, 33000, 64 << 10, 1 << 20} {
		for _, mode := range []string{"reuse", "free"} {
			b.Run(fmt.Sprintf("size=%s/zero=%s", sizeName(size), mode), func(b *testing.B) {
				a, _ := newTest(b, ArenaConfig{Kind: KindTHP, Node: NoNode, ExtentSize: 16 << 20, Prefault: true,
					Logger: slog.New(slog.DiscardHandler)})
				a.zeroOnFree = mode == "free"
				a.Free(a.Allocate(size))
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					buf := a.Allocate(size)
					fillTag(buf, byte(i))
					a.Free(buf)
				}
			})
		}
	}
}

func sizeName(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}
