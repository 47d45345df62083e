package operators

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// TestValidateRecordFull checks the fast path against arrow-go's
// ValidateRecordFull on valid and broken string columns: both accept or
// both refuse, and a refusal carries arrow-go's error.
func TestValidateRecordFull(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	for _, large := range []bool{false, true} {
		typ := arrow.DataType(arrow.BinaryTypes.String)
		if large {
			typ = arrow.BinaryTypes.LargeString
		}
		valid := func(vals []string, nulls []bool) arrow.Array {
			b := array.NewBuilder(mem, typ)
			defer b.Release()
			for i, v := range vals {
				if nulls != nil && nulls[i] {
					b.AppendNull()
				} else {
					b.(interface{ Append(string) }).Append(v)
				}
			}
			return b.NewArray()
		}
		// raw builds a string array from its buffers as a file could hold them.
		raw := func(offsets []int64, data string, n int) arrow.Array {
			var ob *memory.Buffer
			if large {
				ob = memory.NewBufferBytes(arrow.Int64Traits.CastToBytes(offsets))
			} else {
				o32 := make([]int32, len(offsets))
				for i, o := range offsets {
					o32[i] = int32(o)
				}
				ob = memory.NewBufferBytes(arrow.Int32Traits.CastToBytes(o32))
			}
			d := array.NewData(typ, n, []*memory.Buffer{nil, ob, memory.NewBufferBytes([]byte(data))}, nil, 0, 0)
			defer d.Release()
			return array.MakeFromData(d)
		}
		long := make([]string, 100)
		for i := range long {
			long[i] = "SYM0001-a-longer-ascii-value"
		}
		cases := []struct {
			name string
			col  arrow.Array
			ok   bool
		}{
			{"ascii", valid([]string{"a", "bc", "", "def"}, nil), true},
			{"ascii with nulls", valid([]string{"a", "", "c"}, []bool{false, true, false}), true},
			{"ascii, many", valid(long, nil), true},
			{"utf8", valid([]string{"a", "é", "日本"}, nil), true},
			{"empty", valid(nil, nil), true},
			{"slice", slice(valid(long, nil), 10, 20), true},
			{"bad utf8", raw([]int64{0, 1, 3}, "a\xff\xfe", 2), false},
			{"utf8 split between values", raw([]int64{0, 1, 2}, "\xc3\xa9", 2), false},
			{"decreasing offsets", raw([]int64{0, 3, 1, 4}, "abcd", 3), false},
			{"negative first offset", raw([]int64{-1, 2}, "ab", 1), false},
		}
		for _, c := range cases {
			schema := arrow.NewSchema([]arrow.Field{{Name: "s", Type: typ, Nullable: true}}, nil)
			rec := array.NewRecordBatch(schema, []arrow.Array{c.col}, int64(c.col.Len()))
			c.col.Release()
			want := array.ValidateRecordFull(rec)
			got := validateRecordFull(rec)
			if (want == nil) != c.ok {
				t.Errorf("large=%v %s: arrow-go says %v; the case expects ok=%v", large, c.name, want, c.ok)
			}
			if (got == nil) != (want == nil) || (got != nil && got.Error() != want.Error()) {
				t.Errorf("large=%v %s: got %v, arrow-go %v", large, c.name, got, want)
			}
			rec.Release()
		}
	}
}

// slice returns a[i:j] and releases a.
func slice(a arrow.Array, i, j int64) arrow.Array {
	defer a.Release()
	return array.NewSlice(a, i, j)
}
