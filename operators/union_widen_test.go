package operators

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

func TestWidenType(t *testing.T) {
	ts := func(u arrow.TimeUnit, tz string) arrow.DataType { return &arrow.TimestampType{Unit: u, TimeZone: tz} }
	p := arrow.PrimitiveTypes
	cases := []struct {
		a, b arrow.DataType
		want arrow.DataType // nil: does not widen
	}{
		{p.Int8, p.Int16, p.Int16},
		{p.Int32, p.Int8, p.Int32},
		{p.Int16, p.Int64, p.Int64},
		{p.Uint8, p.Int8, p.Int16},
		{p.Int8, p.Uint16, p.Int32},
		{p.Uint32, p.Int64, p.Int64},
		{p.Uint32, p.Int16, p.Int64},
		{p.Uint64, p.Int8, nil},
		{p.Uint8, p.Uint32, p.Uint32},
		{p.Int64, p.Float32, p.Float64},
		{p.Uint64, p.Float64, p.Float64},
		{p.Float32, p.Float64, p.Float64},
		{ts(arrow.Second, ""), ts(arrow.Millisecond, ""), ts(arrow.Millisecond, "")},
		{ts(arrow.Nanosecond, "UTC"), ts(arrow.Microsecond, "UTC"), ts(arrow.Nanosecond, "UTC")},
		{ts(arrow.Second, "UTC"), ts(arrow.Second, ""), nil},
		{arrow.BinaryTypes.String, arrow.BinaryTypes.LargeString, arrow.BinaryTypes.LargeString},
		{arrow.Null, p.Int32, p.Int32},
		{p.Int64, arrow.BinaryTypes.String, nil},
		{arrow.FixedWidthTypes.Boolean, p.Int8, nil},
		{ts(arrow.Second, ""), p.Int64, nil},
	}
	for _, c := range cases {
		for _, pair := range [][2]arrow.DataType{{c.a, c.b}, {c.b, c.a}} {
			got, ok := widenType(pair[0], pair[1])
			if ok != (c.want != nil) || (ok && !arrow.TypeEqual(got, c.want)) {
				t.Errorf("widen %s, %s: got %v %v, want %v", pair[0], pair[1], got, ok, c.want)
			}
		}
	}
}

// TestCastColumn casts sliced arrays (an offset, nulls) to each widened
// type and checks the values and that the string bytes stay shared.
func TestCastColumn(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	ib := array.NewUint32Builder(mem)
	ib.AppendValues([]uint32{9, 4000000000, 0, 7}, []bool{true, true, false, true})
	ints := ib.NewArray()
	ib.Release()
	defer ints.Release()
	sb := array.NewStringBuilder(mem)
	sb.AppendValues([]string{"x", "yy", "", "zzz"}, []bool{true, true, false, true})
	strs := sb.NewArray()
	sb.Release()
	defer strs.Release()
	tb := array.NewTimestampBuilder(mem, &arrow.TimestampType{Unit: arrow.Second})
	tb.AppendValues([]arrow.Timestamp{1, 2, 3, 1 << 62}, nil)
	tss := tb.NewArray()
	tb.Release()
	defer tss.Release()
	cases := []struct {
		src  arrow.Array
		to   arrow.DataType
		want string // the slice [1:4] after the cast
		err  string
	}{
		{ints, arrow.PrimitiveTypes.Int64, "[4000000000 (null) 7]", ""},
		{ints, arrow.PrimitiveTypes.Float64, "[4e+09 (null) 7]", ""},
		{ints, arrow.BinaryTypes.String, `["4000000000" (null) "7"]`, ""},
		{strs, arrow.BinaryTypes.LargeString, `["yy" (null) "zzz"]`, ""},
		{tss, &arrow.TimestampType{Unit: arrow.Millisecond}, "", "row 2: timestamp 4611686018427387904 s does not fit in ms"},
	}
	for _, c := range cases {
		s := array.NewSlice(c.src, 1, 4)
		got, err := castColumn(mem, s, c.to)
		s.Release()
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("%s → %s: got %v, want %q", c.src.DataType(), c.to, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if !arrow.TypeEqual(got.DataType(), c.to) || got.String() != c.want || got.NullN() != 1 {
			t.Errorf("%s → %s: %s %s, want %s", c.src.DataType(), c.to, got.DataType(), got, c.want)
		}
		if c.to.ID() == arrow.LARGE_STRING && got.Data().Buffers()[2] != c.src.Data().Buffers()[2] {
			t.Error("string → large_string copied the string bytes")
		}
		got.Release()
	}
}
