package stateful

import (
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// TestCastKey checks each of commonType's casts, NULLs and a sliced
// input included, against the values written by hand.
func TestCastKey(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ms := &arrow.TimestampType{Unit: arrow.Millisecond}
	us := &arrow.TimestampType{Unit: arrow.Microsecond}
	cases := []struct {
		from, to arrow.DataType
		in, want string // JSON
	}{
		{arrow.PrimitiveTypes.Int8, arrow.PrimitiveTypes.Int64, `[-3, null, 7, 127]`, `[-3, null, 7, 127]`},
		{arrow.PrimitiveTypes.Uint32, arrow.PrimitiveTypes.Int64, `[0, 4294967295, null, 5]`, `[0, 4294967295, null, 5]`},
		{arrow.PrimitiveTypes.Uint8, arrow.PrimitiveTypes.Int16, `[255, null, 1, 2]`, `[255, null, 1, 2]`},
		{arrow.PrimitiveTypes.Int32, arrow.PrimitiveTypes.Float64, `[-2, 3, null, 4]`, `[-2, 3, null, 4]`},
		{arrow.PrimitiveTypes.Int64, arrow.PrimitiveTypes.Float64, `[1, null, -5, 6]`, `[1, null, -5, 6]`},
		{arrow.PrimitiveTypes.Float32, arrow.PrimitiveTypes.Float64, `[1.5, null, -0.25, 8]`, `[1.5, null, -0.25, 8]`},
		{&arrow.TimestampType{Unit: arrow.Second}, ms, `[1, null, -2, 3]`, `[1000, null, -2000, 3000]`},
		{arrow.FixedWidthTypes.Date32, us, `[1, null, 0, -1]`, `[86400000000, null, 0, -86400000000]`},
	}
	for _, c := range cases {
		in, _, err := array.FromJSON(mem, c.from, strings.NewReader(c.in))
		if err != nil {
			t.Fatal(err)
		}
		want, _, err := array.FromJSON(mem, c.to, strings.NewReader(c.want))
		if err != nil {
			t.Fatal(err)
		}
		for _, off := range []int64{0, 1} { // whole, and sliced
			src := array.NewSlice(in, off, int64(in.Len()))
			got, err := castKey(mem, src, c.to)
			if err != nil {
				t.Fatalf("%s to %s: %v", c.from, c.to, err)
			}
			w := array.NewSlice(want, off, int64(want.Len()))
			if !array.Equal(got, w) {
				t.Errorf("%s to %s (offset %d): got %v, want %v", c.from, c.to, off, got, w)
			}
			got.Release()
			w.Release()
			src.Release()
		}
		in.Release()
		want.Release()
	}
	b, _, _ := array.FromJSON(mem, arrow.BinaryTypes.String, strings.NewReader(`["a"]`))
	defer b.Release()
	if _, err := castKey(mem, b, arrow.PrimitiveTypes.Int64); err == nil {
		t.Error("a string cast to int64 gave no error")
	}
}
