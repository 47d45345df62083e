package arrowcheck

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// stringArray makes a string array of typ over the raw offsets, values and
// validity given (nil: none), at offset off with n values and nulls as its
// declared null count: anything a file or a socket could claim. It is nil
// where arrow-go refuses to make the array at all (it panics, which the
// readers recover from before any validation).
func stringArray[T int32 | int64](typ arrow.DataType, offsets []T, values []byte, valid []byte, off, n, nulls int) (a arrow.Array) {
	defer func() {
		if recover() != nil {
			a = nil
		}
	}()
	ob := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(offsets))), len(offsets)*int(unsafe.Sizeof(T(0))))
	var vb *memory.Buffer
	if valid != nil {
		vb = memory.NewBufferBytes(valid)
	}
	d := array.NewData(typ, n, []*memory.Buffer{vb, memory.NewBufferBytes(ob), memory.NewBufferBytes(values)}, nil, nulls, off)
	defer d.Release()
	return array.MakeFromData(d)
}

// same checks that Full and arrow-go's ValidateFull agree on a, error
// message included, and says whether a was an invalid array (nil: none).
func same(t *testing.T, name string, a arrow.Array) (invalid bool) {
	t.Helper()
	if a == nil {
		return false
	}
	defer a.Release()
	want, got := array.ValidateFull(a), Full(a)
	if (want == nil) != (got == nil) || (want != nil && want.Error() != got.Error()) {
		t.Fatalf("%s: Full = %v, array.ValidateFull = %v", name, got, want)
	}
	return want != nil
}

func TestFullAgreesWithArrow(t *testing.T) {
	u := arrow.BinaryTypes.String
	é := "\u00e9" // 2 bytes
	euro := "€"   // 3 bytes
	emoji := "😀"  // 4 bytes
	vals := []byte("ab" + é + euro + emoji + "z")
	cases := []struct {
		name    string
		offsets []int32
		values  []byte
		valid   []byte
		off, n  int
		nulls   int
	}{
		{"ascii", []int32{0, 1, 2, 2, 3}, []byte("abc"), nil, 0, 4, 0},
		{"multibyte", []int32{0, 2, 4, 7, 11, 12}, vals, nil, 0, 5, 0},
		{"sliced", []int32{0, 2, 4, 7, 11, 12}, vals, nil, 2, 2, 0},
		{"empty", []int32{0}, nil, nil, 0, 0, 0},
		{"all empty strings, no values", []int32{0, 0, 0}, nil, nil, 0, 2, 0},
		{"nulls", []int32{0, 1, 1, 2}, []byte("ab"), []byte{0b101}, 0, 3, 1},
		{"null count wrong", []int32{0, 1, 1, 2}, []byte("ab"), []byte{0b101}, 0, 3, 0},
		{"null count without bitmap", []int32{0, 1, 2}, []byte("ab"), nil, 0, 2, 1},
		{"decreasing", []int32{0, 3, 2, 4}, []byte("abcd"), nil, 0, 3, 0},
		{"negative first", []int32{-1, 2, 4}, []byte("abcd"), nil, 0, 2, 0},
		{"past the values", []int32{0, 2, 9}, []byte("abcd"), nil, 0, 2, 0},
		{"cut inside a character", []int32{0, 3, 4}, []byte("a" + é + "b"), nil, 0, 2, 0},
		{"cut inside a 4-byte character", []int32{0, 2, 5}, []byte("a" + emoji), nil, 0, 2, 0},
		{"invalid byte", []int32{0, 2, 4}, []byte{'a', 0xff, 'b', 'c'}, nil, 0, 2, 0},
		{"invalid byte outside the slice", []int32{0, 2, 4}, []byte{'a', 0xff, 'b', 'c'}, nil, 1, 1, 0},
		{"too few offsets", []int32{0, 1}, []byte("ab"), nil, 0, 2, 0},
	}
	invalid := 0
	for _, c := range cases {
		if same(t, c.name, stringArray(u, c.offsets, c.values, c.valid, c.off, c.n, c.nulls)) {
			invalid++
		}
		o64 := make([]int64, len(c.offsets))
		for i, o := range c.offsets {
			o64[i] = int64(o)
		}
		same(t, c.name+" (large)", stringArray(arrow.BinaryTypes.LargeString, o64, c.values, c.valid, c.off, c.n, c.nulls))
	}
	// decreasing, cut inside (2), invalid byte, null counts (2) at least.
	if invalid < 6 {
		t.Fatalf("only %d of the cases reached validation as invalid arrays", invalid)
	}
}

// TestFullRandom compares with arrow-go on random offsets over random
// mixtures of ASCII, multi-byte characters and invalid bytes.
func TestFullRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	pieces := []string{"a", "bc", "\u00e9", "€", "😀", "\xff", "\xc3", "\x80", ""}
	bad, built := 0, 0
	for i := range 5000 {
		var vals []byte
		for range r.IntN(12) {
			vals = append(vals, pieces[r.IntN(len(pieces))]...)
		}
		n := r.IntN(6)
		offs := make([]int32, n+1)
		for k := range offs {
			offs[k] = int32(r.IntN(len(vals) + 1))
			if r.IntN(3) > 0 { // mostly sorted
				offs[k] = int32(len(vals) * k / max(n, 1))
			}
		}
		a := stringArray(arrow.BinaryTypes.String, offs, vals, nil, 0, n, 0)
		if a != nil {
			built++
		}
		if same(t, fmt.Sprintf("random %d", i), a) {
			bad++
		}
	}
	if bad == 0 || bad == built {
		t.Fatalf("%d of %d random arrays invalid: the generator does not cover both outcomes", bad, built)
	}
}

func TestRecordFull(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	sb := array.NewStringBuilder(mem)
	sb.AppendValues([]string{"x", "€", ""}, []bool{true, true, false})
	ib := array.NewInt64Builder(mem)
	ib.AppendValues([]int64{1, 2, 3}, nil)
	cols := []arrow.Array{ib.NewArray(), sb.NewArray()}
	sb.Release()
	ib.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: "n", Type: arrow.PrimitiveTypes.Int64}, {Name: "s", Type: arrow.BinaryTypes.String, Nullable: true}}, nil)
	rec := array.NewRecordBatch(schema, cols, 3)
	for _, c := range cols {
		c.Release()
	}
	defer rec.Release()
	if err := RecordFull(rec); err != nil {
		t.Fatal(err)
	}
	bad := stringArray(arrow.BinaryTypes.String, []int32{0, 1, 3, 3}, []byte{'x', 0xe2, 0x82}, []byte{0b011}, 0, 3, 1)
	defer bad.Release()
	rec2 := array.NewRecordBatch(schema, []arrow.Array{cols[0], bad}, 3)
	defer rec2.Release()
	want := array.ValidateRecordFull(rec2)
	if got := RecordFull(rec2); want == nil || got == nil || got.Error() != want.Error() {
		t.Fatalf("RecordFull = %v, array.ValidateRecordFull = %v", got, want)
	}
}

// BenchmarkRecordFull compares with arrow-go on short ASCII strings, as
// the generate source makes them.
func BenchmarkRecordFull(b *testing.B) {
	sb := array.NewStringBuilder(memory.DefaultAllocator)
	for i := range 65536 {
		sb.Append("sym_" + string(rune('0'+i%10)) + "042")
	}
	a := sb.NewArray()
	defer a.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: "s", Type: arrow.BinaryTypes.String}}, nil)
	rec := array.NewRecordBatch(schema, []arrow.Array{a}, int64(a.Len()))
	defer rec.Release()
	b.Run("check=arrowcheck", func(b *testing.B) {
		for b.Loop() {
			if err := RecordFull(rec); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("check=arrow-go", func(b *testing.B) {
		for b.Loop() {
			if err := array.ValidateRecordFull(rec); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestPiecesValid: the one-pass check on hand-made offsets, hostile ones
// included (a decrease hidden by wrap-around, a value starting inside a
// character, offsets past the bytes).
func TestPiecesValid(t *testing.T) {
	const max32 = 1<<31 - 1
	for _, tc := range []struct {
		name    string
		offsets []int32
		values  string
		want    bool
	}{
		{"ascii", []int32{0, 1, 3, 3, 6}, "abcdef", true},
		{"empty", []int32{0, 0, 0}, "", true},
		{"utf8", []int32{0, 2, 3}, "éa", true},
		{"inside a character", []int32{0, 1, 3}, "éa", false},
		{"invalid utf8", []int32{0, 1, 2}, "\xffa", false},
		{"decrease", []int32{0, 3, 2, 4}, "abcd", false},
		{"wrap-around decrease", []int32{0, max32, -2, 4}, "abcd", false},
		{"negative first", []int32{-1, 2}, "ab", false},
		{"past the bytes", []int32{0, 5}, "ab", false},
		{"long ascii", []int32{0, 40, 77}, strings.Repeat("x", 77), true},
		{"long, one byte not ascii", []int32{0, 40, 78}, strings.Repeat("x", 60) + "é" + strings.Repeat("x", 16), true},
	} {
		if got := piecesValid(tc.offsets, []byte(tc.values)); got != tc.want {
			t.Errorf("%s: int32 %v", tc.name, got)
		}
		o64 := make([]int64, len(tc.offsets))
		for i, o := range tc.offsets {
			o64[i] = int64(o)
		}
		if tc.name == "wrap-around decrease" {
			o64[1] = 1<<63 - 1
		}
		if got := piecesValid(o64, []byte(tc.values)); got != tc.want {
			t.Errorf("%s: int64 %v", tc.name, got)
		}
	}
}
