//go:build linux

package buffers

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

func TestClassOf(t *testing.T) {
	for i, s := range classSizes {
		if s%64 != 0 {
			t.Errorf("class %d: size %d not a multiple of 64", i, s)
		}
		if i > 0 && s <= classSizes[i-1] {
			t.Errorf("class %d: size %d not above class %d (%d)", i, s, i-1, classSizes[i-1])
		}
	}
	if classSizes[0] != MinClassSize || classSizes[numClasses-1] != MaxClassSize {
		t.Fatalf("classes span %d..%d, want %d..%d", classSizes[0], classSizes[numClasses-1], MinClassSize, MaxClassSize)
	}
	for _, tc := range []struct{ size, want int }{
		{1, 64}, {64, 64}, {65, 128}, {256, 256}, {257, 320}, {320, 320}, {321, 384},
		{512, 512}, {513, 640}, {1000, 1024}, {4096, 4096}, {4097, 5120},
		{64 << 10, 64 << 10}, {(64 << 10) + 1, 80 << 10}, {1 << 20, 1 << 20},
		{3 << 20, 3 << 20}, {MaxClassSize - 1, MaxClassSize}, {MaxClassSize, MaxClassSize},
	} {
		if got := classSizes[classOf(tc.size)]; got != tc.want {
			t.Errorf("classOf(%d) = %d bytes, want %d", tc.size, got, tc.want)
		}
	}
	// Every size gets the smallest class that holds it.
	for size := 1; size <= MaxClassSize; size += 1 + size/97 {
		c := classOf(size)
		if classSizes[c] < size || (c > 0 && classSizes[c-1] >= size) {
			t.Fatalf("classOf(%d) = class %d (%d bytes)", size, c, classSizes[c])
		}
	}
}

func TestSpanLayout(t *testing.T) {
	for _, size := range classSizes {
		blocks, bytes := spanLayout(size)
		if blocks < 1 || bytes%granule != 0 || blocks*size > bytes || bytes-blocks*size >= size || bytes > MaxClassSize {
			t.Errorf("spanLayout(%d) = %d blocks in %d bytes", size, blocks, bytes)
		}
	}
}

// TestArrowContract checks what arrow-go assumes of an allocator, for
// every size up to a few pages and for large ones.
func TestArrowContract(t *testing.T) {
	a, _ := newTest(t, plainCfg())
	sizes := []int{}
	for s := 1; s <= 5000; s++ {
		sizes = append(sizes, s)
	}
	sizes = append(sizes, 64<<10, 1<<20, MaxClassSize-1, MaxClassSize, MaxClassSize+1, 9<<20)
	var held [][]byte
	for _, size := range sizes {
		b := a.Allocate(size)
		if len(b) != size || cap(b) != size {
			t.Fatalf("Allocate(%d): len %d cap %d", size, len(b), cap(b))
		}
		if addr(b)%64 != 0 {
			t.Fatalf("Allocate(%d) at %#x: not 64-byte aligned", size, addr(b))
		}
		for i, c := range b {
			if c != 0 {
				t.Fatalf("Allocate(%d): byte %d is %#x, want zeroed memory", size, i, c)
			}
		}
		for i := range b {
			b[i] = 0xA5 // dirty it for the next round
		}
		held = append(held, b)
	}
	for _, b := range held {
		a.Free(b)
	}
	// Second round: everything comes from the free lists and the large
	// cache, dirty, and must still come back zeroed.
	for _, size := range sizes {
		b := a.Allocate(size)
		if addr(b)%64 != 0 {
			t.Fatalf("reused Allocate(%d) at %#x: not 64-byte aligned", size, addr(b))
		}
		for i, c := range b {
			if c != 0 {
				t.Fatalf("reused Allocate(%d): byte %d is %#x, want zeroed memory", size, i, c)
			}
		}
		a.Free(b)
	}
	if b := a.Allocate(0); len(b) != 0 || b == nil {
		t.Errorf("Allocate(0) = %v (nil %v), want an empty non-nil slice", b, b == nil)
	} else {
		a.Free(b)
	}
}

func TestReallocate(t *testing.T) {
	a, _ := newTest(t, plainCfg())
	fill := func(b []byte, seed byte) {
		for i := range b {
			b[i] = seed + byte(i*7)
		}
	}
	check := func(what string, b []byte, n int, seed byte) {
		t.Helper()
		for i := 0; i < n; i++ {
			if b[i] != seed+byte(i*7) {
				t.Fatalf("%s: byte %d = %#x, want %#x", what, i, b[i], seed+byte(i*7))
			}
		}
		for i := n; i < len(b); i++ {
			if b[i] != 0 {
				t.Fatalf("%s: byte %d past the old contents = %#x, want 0", what, i, b[i])
			}
		}
	}
	for _, tc := range []struct {
		from, to int
		same     bool // stays in place (same class, or large within its mapping)
	}{
		{100, 120, true},            // same 128-byte class
		{120, 100, true},            // shrink within the class
		{100, 200, false},           // next class: moves
		{4096, 100, false},          // much smaller class: moves
		{64, 5000, false},           // grows
		{3 << 20, 9 << 20, false},   // class to large
		{9 << 20, 10 << 20, true},   // large, within its 10 MiB mapping
		{10 << 20, 6 << 20, true},   // shrink, still more than half the mapping
		{10 << 20, 1 << 20, false},  // large to class
		{10 << 20, 30 << 20, false}, // larger mapping
	} {
		t.Run(fmt.Sprintf("%d_to_%d", tc.from, tc.to), func(t *testing.T) {
			b := a.Allocate(tc.from)
			fill(b, byte(tc.from))
			// Dirty the rest of the block the way an earlier, longer use
			// would have: Reallocate must not expose it.
			if tc.same && tc.to > tc.from {
				big := a.Reallocate(tc.to, b)
				fill(big, 0xEE)
				b = a.Reallocate(tc.from, big)
				fill(b, byte(tc.from))
			}
			out := a.Reallocate(tc.to, b)
			if len(out) != tc.to || addr(out)%64 != 0 {
				t.Fatalf("Reallocate(%d) of %d: len %d at %#x", tc.to, tc.from, len(out), addr(out))
			}
			if moved := addr(out) != addr(b); moved == tc.same {
				t.Errorf("Reallocate(%d) of %d: moved=%v, want moved=%v", tc.to, tc.from, moved, !tc.same)
			}
			check("Reallocate", out, min(tc.from, tc.to), byte(tc.from))
			a.Free(out)
		})
	}
	// Reallocate of nothing allocates; to 0 frees.
	b := a.Reallocate(100, nil)
	if len(b) != 100 {
		t.Fatalf("Reallocate(100, nil): len %d", len(b))
	}
	if z := a.Reallocate(0, b); len(z) != 0 {
		t.Fatalf("Reallocate(0, b): len %d", len(z))
	}
	if st := a.Stats(); st.InUse != 0 {
		t.Errorf("after Reallocate(0, b): %d bytes in use", st.InUse)
	}
}

// TestCheckedAllocatorArrays builds real arrays and a record through
// memory.CheckedAllocator over ours: everything released, nothing left.
func TestCheckedAllocatorArrays(t *testing.T) {
	a, _ := newTest(t, ArenaConfig{Kind: KindTHP, Node: NoNode, ExtentSize: 16 << 20})
	mem := memory.NewCheckedAllocator(a.For("builders"))
	defer mem.AssertSize(t, 0)

	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "name", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "price", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	}, nil)
	for _, rows := range []int{1, 100, 10_000, 200_000} {
		rb := array.NewRecordBuilder(mem, schema)
		ids := rb.Field(0).(*array.Int64Builder)
		names := rb.Field(1).(*array.StringBuilder)
		prices := rb.Field(2).(*array.Float64Builder)
		for i := 0; i < rows; i++ {
			ids.Append(int64(i))
			if i%7 == 0 {
				names.AppendNull()
				prices.AppendNull()
			} else {
				names.Append(fmt.Sprintf("sym%d", i%100))
				prices.Append(float64(i) / 4)
			}
		}
		rec := rb.NewRecordBatch()
		rb.Release()
		col := rec.Column(0).(*array.Int64)
		if col.Len() != rows || col.Value(rows-1) != int64(rows-1) {
			t.Fatalf("rows=%d: column 0 has %d rows, last %d", rows, col.Len(), col.Value(rows-1))
		}
		if n := rec.Column(1).NullN(); n != (rows+6)/7 {
			t.Fatalf("rows=%d: %d nulls, want %d", rows, n, (rows+6)/7)
		}
		// Arrays of nulls rely on zeroed memory (validity bits all 0).
		nulls := array.MakeArrayOfNull(mem, arrow.PrimitiveTypes.Int64, rows)
		if nulls.NullN() != rows {
			t.Fatalf("MakeArrayOfNull(%d): %d nulls", rows, nulls.NullN())
		}
		nulls.Release()
		rec.Release()
	}
	if n := mem.CurrentAlloc(); n != 0 {
		t.Errorf("checked allocator: %d bytes outstanding", n)
	}
	st := a.Stats()
	if st.InUse != 0 || st.Blocks != 0 {
		t.Errorf("after releasing everything: %d bytes in use, %d blocks", st.InUse, st.Blocks)
	}
	if len(st.Owners) != 1 || st.Owners[0].Owner != "builders" || st.Owners[0].Peak == 0 {
		t.Errorf("owners: %+v, want only \"builders\"", st.Owners)
	}
}

// TestFreeMisuse: what is not ours, not a block start, or freed twice
// panics with a message saying so, and nothing is corrupted.
func TestFreeMisuse(t *testing.T) {
	a, _ := newTest(t, plainCfg())
	other, _ := newTest(t, plainCfg())
	b := a.Allocate(1000)
	large := a.Allocate(6 << 20)
	o := other.Allocate(1000)
	for _, tc := range []struct {
		name string
		f    func()
		want string
	}{
		{"go memory", func() { a.Free(make([]byte, 100)) }, "not allocated by this allocator"},
		{"other allocator", func() { a.Free(o) }, "not allocated by this allocator"},
		{"interior", func() { a.Free(b[64:]) }, "not the start of a block"},
		{"interior large", func() { a.Free(large[4096:]) }, "not allocated by this allocator"},
		{"realloc go memory", func() { a.Reallocate(10, make([]byte, 10)) }, "not allocated by this allocator"},
		{"negative", func() { a.Allocate(-1) }, "negative size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := mustPanic(t, tc.name, tc.f)
			err, ok := v.(error)
			if !ok || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("panic %v, want an error containing %q", v, tc.want)
			}
		})
	}
	a.Free(b)
	v := mustPanic(t, "double free", func() { a.Free(b) })
	if err, ok := v.(error); !ok || !strings.Contains(err.Error(), "double free") {
		t.Errorf("double free: panic %v", v)
	}
	a.Free(large)
	v = mustPanic(t, "double free large", func() { a.Free(large) })
	if err, ok := v.(error); !ok || !strings.Contains(err.Error(), "not allocated by this allocator") {
		t.Errorf("double free large: panic %v", v)
	}
	other.Free(o)
	// The allocator still works and accounts exactly.
	c := a.Allocate(1000)
	if addr(c) != addr(b) {
		t.Logf("block not reused at once (%#x then %#x): fine, just noting", addr(b), addr(c))
	}
	a.Free(c)
	if st := a.Stats(); st.InUse != 0 || st.Blocks != 0 {
		t.Errorf("after misuse: %+v", st)
	}
}

func TestCloseOutstanding(t *testing.T) {
	a, err := New(plainCfg())
	if err != nil {
		t.Fatal(err)
	}
	b := a.Allocate(100)
	l := a.Allocate(5 << 20)
	err = a.Close()
	if err == nil || !strings.Contains(err.Error(), "2 allocations") {
		t.Fatalf("Close with 2 outstanding: %v", err)
	}
	b[0] = 1 // still mapped
	a.Free(b)
	a.Free(l)
	if err := a.Close(); err != nil {
		t.Fatalf("Close after freeing: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if a.Arena().Mapped() != 0 {
		t.Errorf("after Close: %d bytes mapped", a.Arena().Mapped())
	}
	v := mustPanic(t, "Allocate after Close", func() { a.Allocate(10) })
	if err, ok := v.(error); !ok || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Allocate after Close: panic %v", v)
	}
}

func TestOwners(t *testing.T) {
	a, _ := newTest(t, plainCfg())
	x, y := a.For("x"), a.For("y")
	if a.For("x") != x {
		t.Error("For(x) twice gave two views")
	}
	if a.For("") != memory.Allocator(a) {
		t.Error(`For("") is not the allocator itself`)
	}
	bx := x.Allocate(1000)    // 1024-byte class
	by := y.Allocate(5000)    // 5120
	bz := a.Allocate(6 << 20) // large, 6 MiB rounded to the OS page
	y.Free(bx)                // freed through another view: still x's
	st := a.Stats()
	got := map[string]OwnerStats{}
	for _, o := range st.Owners {
		got[o.Owner] = o
	}
	if o := got["x"]; o.InUse != 0 || o.Peak != 1024 {
		t.Errorf("owner x: %+v", o)
	}
	if o := got["y"]; o.InUse != 5120 || o.Peak != 5120 {
		t.Errorf("owner y: %+v", o)
	}
	if o := got[""]; o.InUse != 6<<20 {
		t.Errorf("owner \"\": %+v", o)
	}
	if st.InUse != 5120+6<<20 {
		t.Errorf("in use %d, want %d", st.InUse, 5120+6<<20)
	}
	y.Free(by)
	a.Free(bz)
}

// TestHotPathNoAllocs: Allocate+Free of a class size makes no Go heap
// allocation once the class has a span.
func TestHotPathNoAllocs(t *testing.T) {
	a, _ := newTest(t, plainCfg())
	v := a.For("op")
	for _, size := range []int{64, 4096, 65536, 1 << 20} {
		a.Free(a.Allocate(size)) // carve the span first
		if n := testing.AllocsPerRun(1000, func() { a.Free(a.Allocate(size)) }); n != 0 {
			t.Errorf("Allocate+Free(%d): %v allocs/op, want 0", size, n)
		}
		if n := testing.AllocsPerRun(1000, func() { v.Free(v.Allocate(size)) }); n != 0 {
			t.Errorf("view Allocate+Free(%d): %v allocs/op, want 0", size, n)
		}
	}
	// Reused large blocks come from the cache without allocating either.
	a.Free(a.Allocate(8 << 20))
	if n := testing.AllocsPerRun(100, func() { a.Free(a.Allocate(8 << 20)) }); n != 0 {
		t.Errorf("Allocate+Free(8 MiB) from the cache: %v allocs/op, want 0", n)
	}
}

func TestParseKind(t *testing.T) {
	for _, k := range []Kind{KindPlain, KindTHP, KindHugepage} {
		got, err := ParseKind(k.String())
		if err != nil || got != k {
			t.Errorf("ParseKind(%q) = %v, %v", k.String(), got, err)
		}
	}
	if k, err := ParseKind("hugetlb"); err != nil || k != KindHugepage {
		t.Errorf("ParseKind(hugetlb) = %v, %v", k, err)
	}
	_, err := ParseKind("heap")
	if err == nil || !strings.Contains(err.Error(), `unknown arena kind "heap"`) {
		t.Errorf("ParseKind(heap): %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  ArenaConfig
		want string
	}{
		{ArenaConfig{Kind: KindHugepage, Page: 4 << 20}, "hugepage size 4 MiB not supported"},
		{ArenaConfig{Kind: KindTHP, Page: Page1GiB}, "transparent hugepages are 2 MiB"},
		{ArenaConfig{Kind: Kind(7)}, "not supported"},
		{ArenaConfig{Bind: true, Node: -2}, "NUMA node -2"},
		{ArenaConfig{Node: NoNode, Budget: 1 << 20, SoftBudget: 2 << 20}, "soft budget 2 MiB above the hard budget 1 MiB"},
	} {
		_, err := New(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v): %v, want %q", tc.cfg, err, tc.want)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "buffers: ") {
			t.Errorf("New(%+v): %q does not start with the package", tc.cfg, err)
		}
	}
}

func TestBudgetErrorMessage(t *testing.T) {
	for _, tc := range []struct {
		e    BudgetError
		want string
	}{
		{BudgetError{Owner: "big", Asked: 64 << 20, InUse: 2083059712, Limit: 2 << 30},
			`memory budget exceeded: operator "big" asked for 64 MiB with 1.94 GiB of 2 GiB in use`},
		{BudgetError{Asked: 100, InUse: 1536, Limit: 2048},
			`memory budget exceeded: asked for 100 B with 1.5 KiB of 2 KiB in use`},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
		if !errors.Is(&tc.e, ErrBudgetExceeded) {
			t.Errorf("%v is not ErrBudgetExceeded", &tc.e)
		}
	}
}

// TestLargeCache: freed large mappings are kept up to LargeCache bytes,
// the oldest evicted first, and reused by a later allocation that fits.
func TestLargeCache(t *testing.T) {
	cfg := plainCfg()
	cfg.LargeCache = 12 << 20
	a, _ := newTest(t, cfg)
	base := a.Arena().Mapped()
	var bs [][]byte
	for i := 0; i < 3; i++ {
		bs = append(bs, a.Allocate(6<<20))
	}
	first := addr(bs[0])
	for _, b := range bs {
		a.Free(b)
	}
	st := a.Stats()
	if st.Large.Cached != 2 || st.Large.CachedBytes != 12<<20 || st.Mapped != base+12<<20 {
		t.Errorf("after freeing 3 × 6 MiB with a 12 MiB cache: %+v, mapped %d (extents %d)", st.Large, st.Mapped, base)
	}
	b := a.Allocate(5 << 20) // fits a cached 6 MiB mapping (not wasting half of it)
	if addr(b) == first {
		t.Errorf("reused the mapping that should have been evicted first")
	}
	if st := a.Stats(); st.Large.Reuses != 1 || st.Large.Maps != 3 {
		t.Errorf("after a reuse: %+v", st.Large)
	}
	a.Free(b)

	cfg.LargeCache = -1 // none
	n, _ := newTest(t, cfg)
	base = n.Arena().Mapped()
	n.Free(n.Allocate(6 << 20))
	if st := n.Stats(); st.Large.Cached != 0 || st.Mapped != base {
		t.Errorf("without a cache: %+v, mapped %d, want %d", st.Large, st.Mapped, base)
	}
}

// AllocateUnzeroed skips clearing a reused block, and only that: the block
// is aligned, sized and charged like Allocate's, and memory it handed out
// and that was written comes back zeroed from the next Allocate, small
// and large (the large cache's dirty mark covers what the caller wrote).
func TestAllocateUnzeroed(t *testing.T) {
	a, _ := newTest(t, plainCfg())
	var u Unzeroed = a.For("reader").(*ownerView)
	for _, size := range []int{100, 64 << 10, MaxClassSize + 1, 9 << 20} {
		b := u.AllocateUnzeroed(size)
		if len(b) != size || cap(b) != size || addr(b)%64 != 0 {
			t.Fatalf("AllocateUnzeroed(%d): len %d cap %d at %#x", size, len(b), cap(b), addr(b))
		}
		if st := a.InUse(); st < int64(size) {
			t.Errorf("AllocateUnzeroed(%d): %d bytes in use, not charged", size, st)
		}
		for i := range b {
			b[i] = 0x5A
		}
		a.Free(b)
		b = a.Allocate(size)
		for i, c := range b {
			if c != 0 {
				t.Fatalf("Allocate(%d) after an unzeroed use: byte %d is %#x, want zeroed memory", size, i, c)
			}
		}
		for i := range b {
			b[i] = 0x5A
		}
		a.Free(b)
		// The same block again, unzeroed: the old bytes may still be
		// there (that is the point); nothing else is promised.
		a.Free(u.AllocateUnzeroed(size))
	}
}

// UnzeroedBuffer: n bytes long, its capacity rounded to 64 with the bytes
// past n cleared even when the block held others, freed by Release (the
// allocator closes at zero); over an allocator without AllocateUnzeroed it
// is a zeroed resizable buffer.
func TestUnzeroedBuffer(t *testing.T) {
	a, _ := newTest(t, plainCfg())
	for _, n := range []int{1, 63, 64, 100, 3 << 20} {
		dirty := a.AllocateUnzeroed((n + 63) &^ 63)
		for i := range dirty {
			dirty[i] = 0xEE
		}
		a.Free(dirty)
		b := UnzeroedBuffer(a, n)
		if b.Len() != n || b.Cap() != (n+63)&^63 {
			t.Fatalf("UnzeroedBuffer(%d): len %d cap %d", n, b.Len(), b.Cap())
		}
		for i, c := range b.Buf()[n:] {
			if c != 0 {
				t.Fatalf("UnzeroedBuffer(%d): padding byte %d is %#x", n, n+i, c)
			}
		}
		b.Release()
	}
	if a.InUse() != 0 {
		t.Errorf("%d bytes in use after the buffers' Release", a.InUse())
	}
	g := memory.NewCheckedAllocator(memory.NewGoAllocator())
	b := UnzeroedBuffer(g, 100)
	if b.Len() != 100 || bytes.Count(b.Bytes(), []byte{0}) != 100 {
		t.Errorf("over a Go allocator: len %d, want 100 zeroed bytes", b.Len())
	}
	b.Release()
	g.AssertSize(t, 0)
}
