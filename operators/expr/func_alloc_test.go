package expr

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// TestFunctionsDoNotAllocatePerRow evaluates each function over a batch of
// 100 and of 10000 rows and checks that the larger batch costs no more Go
// allocations: the kernels loop over buffers, and constants are not
// materialised per row. (regexp_replace is not here: Go's regexp returns
// each match's positions in a new slice.)
func TestFunctionsDoNotAllocatePerRow(t *testing.T) {
	exprs := []string{
		"substr(s, 2, 3)", "substr(s, n)", "substring(s, -3)",
		"replace(s, 'a', 'xy')", "trim(s, 'a ')", "ltrim(s)", "rtrim(s, 'éa')",
		"concat(s, '-', s, NULL)", "s || '-' || s", "split_part(s, ',', 2)", "split_part(s, '', n)",
		"starts_with(s, 'ab')", "contains(s, ',')", "regexp_matches(s, 'b,c')",
		"round(f)", "round(f, 2)", "round(n, -1)", "floor(f)", "ceil(n)", "sqrt(abs(f))", "ln(abs(f) + 1)",
		"pow(f, 2)", "greatest(n, 5, n)", "least(s, 'b')", "greatest(f, 0.5)", "nullif(n, 3)", "hash(s)", "hash(n)", "hash(f)",
	}
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "n", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "f", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	}, nil)
	batch := func(rows int) arrow.RecordBatch {
		b := array.NewRecordBuilder(memory.NewGoAllocator(), schema)
		defer b.Release()
		for i := 0; i < rows; i++ {
			if i%10 == 3 {
				b.Field(0).AppendNull()
				b.Field(1).AppendNull()
				b.Field(2).AppendNull()
				continue
			}
			b.Field(0).(*array.StringBuilder).Append(fmt.Sprintf(" a,b,c é%d ", i))
			b.Field(1).(*array.Int64Builder).Append(int64(i%7 - 3))
			b.Field(2).(*array.Float64Builder).Append(float64(i) / 3)
		}
		return b.NewRecordBatch()
	}
	if raceEnabled { // the race detector empties the pool of regexp machines
		exprs = slices.DeleteFunc(exprs, func(src string) bool { return strings.HasPrefix(src, "regexp") })
	}
	checkNoPerRowAllocs(t, schema, exprs, batch)
}
