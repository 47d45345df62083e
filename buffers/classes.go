package buffers

import "math/bits"

// Size classes. Every block handed out is a whole class: 64, 128, 192, 256
// bytes, then four classes per doubling (320, 384, 448, 512, 640, …, 3 MiB,
// 3.5 MiB, 4 MiB), 60 classes in all. Every class is a multiple of 64, so
// blocks carved back to back from a 64-byte aligned span stay 64-byte
// aligned, and no request wastes more than a quarter of its block (beyond
// the first four classes). Requests above MaxClassSize get a mapping of
// their own (see large.go).
//
// A class owns spans: runs of blocks carved from an extent, each a multiple
// of the span granule so that the extent's span table (one entry per
// granule) maps any address back to its span, and so to its class.
const (
	// MinClassSize is the smallest block: arrow-go rounds buffers to 64
	// bytes anyway.
	MinClassSize = 64
	// MaxClassSize is the largest size class; larger requests are mapped on
	// their own.
	MaxClassSize = 4 << 20

	numClasses   = 4 + 4*(22-8) // 64..256 by 64, then 4 per doubling up to 4 MiB
	granuleShift = 16           // span granule: 64 KiB
	granule      = 1 << granuleShift
	// spanTarget is the size a span of a mid-sized class aims at: big
	// enough that a class grows by a hugepage at a time.
	spanTarget = 2 << 20
	// minSpanBlocks is how many blocks a small class carves at least.
	minSpanBlocks = 8
)

// classSizes holds the block size of each class, smallest first.
var classSizes = func() [numClasses]int {
	var s [numClasses]int
	i := 0
	for sz := 64; sz <= 256; sz += 64 {
		s[i] = sz
		i++
	}
	for shift := 8; shift < 22; shift++ {
		base, step := 1<<shift, 1<<(shift-2)
		for k := 1; k <= 4; k++ {
			s[i] = base + k*step
			i++
		}
	}
	return s
}()

// classOf returns the index of the smallest class that holds size bytes;
// size must be in 1..MaxClassSize.
func classOf(size int) int {
	if size <= 256 {
		return (size+63)>>6 - 1
	}
	s := uint(size - 1)
	shift := bits.Len(s) - 1 // floor(log2(size-1)), 8..21
	return 4 + (shift-8)*4 + int((s-1<<shift)>>(shift-2))
}

// spanLayout returns how many blocks of a class one span holds and the
// span's size in bytes (a multiple of the granule). Small classes carve
// at least 64 KiB; mid-sized ones about 2 MiB (8 blocks at least); the
// biggest one block per span.
func spanLayout(size int) (blocks int, bytes int) {
	want := size * minSpanBlocks
	if want > spanTarget {
		want = max(spanTarget, size)
	}
	want = max(want, granule)
	blocks = want / size
	bytes = roundUp(blocks*size, granule)
	// Fill the granule slack with more blocks when it has room for any.
	blocks = bytes / size
	return blocks, bytes
}

// roundUp rounds n up to a multiple of m, a power of two.
func roundUp[T ~int | ~int64 | ~uintptr](n, m T) T {
	return (n + m - 1) &^ (m - 1)
}
