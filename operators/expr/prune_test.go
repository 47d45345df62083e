package expr

import (
	"context"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// blockStats computes a column's Stats over rec as a Parquet writer would.
func blockStats(arr arrow.Array) (Stats, bool) {
	s := Stats{Rows: int64(arr.Len()), Nulls: int64(arr.NullN())}
	var lo, hi any
	less := func(a, b any) bool {
		switch a := a.(type) {
		case int64:
			return a < b.(int64)
		case uint64:
			return a < b.(uint64)
		case float64:
			return a < b.(float64)
		case string:
			return a < b.(string)
		}
		panic("type")
	}
	for i := 0; i < arr.Len(); i++ {
		if arr.IsNull(i) {
			continue
		}
		var v any
		switch a := arr.(type) {
		case *array.Int64:
			v = a.Value(i)
		case *array.Int32:
			v = int64(a.Value(i))
		case *array.Float64:
			v = a.Value(i)
		case *array.Float32:
			v = float64(a.Value(i))
		case *array.String:
			v = a.Value(i)
		case *array.LargeString:
			v = a.Value(i)
		case *array.Timestamp:
			v = int64(a.Value(i))
		default:
			return Stats{}, false
		}
		if lo == nil || less(v, lo) {
			lo = v
		}
		if hi == nil || less(hi, v) {
			hi = v
		}
	}
	s.HasMinMax, s.Min, s.Max = lo != nil, lo, hi
	return s, true
}

var prunePredicates = []string{
	"qty > 100", "qty >= 200", "qty < 0", "qty <= -7", "qty = 150", "qty != 150", "100 < qty", "-7 = qty",
	"qty > 99.5", "qty BETWEEN 1 AND 60", "qty IN (1, 2, 3)", "qty IN (150, 999)", "qty IS NULL", "qty IS NOT NULL",
	"price > 25", "price < -1", "price = 0", "price >= 30.25", "price > 20",
	"symbol = 'AAPL'", "symbol < 'B'", "symbol > 'zzz'", "symbol IN ('MSFT', 'GOOG')", "symbol >= 'amzn'",
	"ts > TIMESTAMP '2024-06-01 00:00:00'", "ts < TIMESTAMP '2024-01-01 00:00:00.5'", "ts = TIMESTAMP '2024-01-02 03:04:05'",
	"tsz >= TIMESTAMPTZ '2024-06-30 12:00:00+00'", "tsz < TIMESTAMPTZ '2024-01-01 00:00:00+00'",
	"small > 50", "small < -3", "name = 'beta'", "f32 > 2.9", "f32 < -0.5",
	"qty > 100 AND symbol = 'MSFT'", "qty > 1000 OR price > 1000", "qty > 1000 OR symbol = 'AAPL'",
	"NOT (qty > 100)", "qty + 1 > 100", "abs(qty) > 100", "qty > 100 AND length(symbol) = 4",
}

// TestMayMatchSound: over every block of consecutive test rows, a predicate
// MayMatch rules out selects no row; and the ruled-out cases are many, so
// the test fails if MayMatch only ever says maybe.
func TestMayMatchSound(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	rec := testBatch(t, mem)
	defer rec.Release()
	pruned := 0
	for _, src := range prunePredicates {
		c, err := Compile(src, testSchema)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		for i := 0; i < int(rec.NumRows()); i++ {
			for j := i + 1; j <= int(rec.NumRows()); j++ {
				block := rec.NewSlice(int64(i), int64(j))
				may := c.MayMatch(func(col int) (Stats, bool) { return blockStats(block.Column(col)) })
				out, _, err := c.Select(context.Background(), mem, block)
				if err != nil {
					t.Fatalf("%s: %v", src, err)
				}
				n := int64(0)
				if out != nil {
					n = out.NumRows()
					out.Release()
				}
				if !may && n > 0 {
					t.Errorf("%s on rows [%d,%d): MayMatch false, but %d rows pass", src, i, j, n)
				}
				if !may {
					pruned++
				}
				block.Release()
			}
		}
	}
	if pruned < 100 {
		t.Errorf("only %d blocks ruled out: MayMatch prunes too little", pruned)
	}
}

func TestMayMatchCases(t *testing.T) {
	st := map[string]Stats{
		"qty":    {Rows: 10, Nulls: 0, HasMinMax: true, Min: int64(10), Max: int64(20)},
		"price":  {Rows: 10, Nulls: 2, HasMinMax: true, Min: 1.5, Max: 2.5},
		"symbol": {Rows: 10, Nulls: 10},
		"small":  {Rows: 10, Nulls: -1, HasMinMax: false},
	}
	stats := func(col int) (Stats, bool) {
		s, ok := st[testSchema.Field(col).Name]
		return s, ok
	}
	for _, tc := range []struct {
		src  string
		want bool
	}{
		{"qty > 20", false}, {"qty >= 20", true}, {"qty < 10", false}, {"qty = 15", true}, {"qty = 21", false},
		{"qty != 15", true}, {"qty IN (1, 25)", false}, {"qty IN (1, 15)", true}, {"qty BETWEEN 21 AND 30", false},
		{"qty NOT BETWEEN 10 AND 20", true}, {"qty IS NULL", false}, {"qty IS NOT NULL", true},
		{"price > 2.5", false}, {"price > 2", true}, {"price IS NULL", true},
		{"symbol = 'A'", false}, {"symbol IS NULL", true}, {"symbol IS NOT NULL", false},
		{"small > 5", true}, {"small IS NULL", true}, {"flag", true},
		{"qty > 20 OR price > 2.5", false}, {"qty > 20 OR price > 2", true}, {"qty > 15 AND price > 3", false},
		{"QTY > 20", false}, {"\"QTY\" > 20", true},
	} {
		c, err := Compile(tc.src, testSchema)
		if err != nil {
			if tc.src == "\"QTY\" > 20" { // a quoted name matches exactly: no such column
				continue
			}
			t.Fatalf("%s: %v", tc.src, err)
		}
		if got := c.MayMatch(stats); got != tc.want {
			t.Errorf("%s: MayMatch %v, want %v", tc.src, got, tc.want)
		}
	}
	for src, want := range map[string]bool{"qty > 1": true, "qty + 1 > 1": false, "NOT qty > 1": false, "qty > 1 OR abs(qty) > 1": false} {
		c, err := Compile(src, testSchema)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Prunable(); got != want {
			t.Errorf("%s: Prunable %v, want %v", src, got, want)
		}
	}
}
