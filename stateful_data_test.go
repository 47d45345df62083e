package zflow_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// The data sets of the stateful differential test (stateful_duckdb_test.go):
// generated here, seeded, into Parquet files that zflow's parquet source
// and DuckDB's read_parquet both read. Every data set has the same tables
// with the same columns (listed in testdata/stateful/README.md; keep the
// two in step), so every corpus entry runs on every data set unless it
// names some; what differs is the distribution of the values.

// diffDataSet describes one data set.
type diffDataSet struct {
	name string
	seed uint64
	rows int // rows of t; the other tables are sized from it
	// keys is the number of distinct values of the key k; zipf draws them
	// Zipf-skewed (s = 1.3) instead of uniformly.
	keys int
	zipf bool
	// nulls is the fraction of NULLs in every nullable column of t.
	nulls float64
	// oneGroup gives every row of t the same keys (k, k2, s, ds); allNull
	// makes them all NULL.
	oneGroup, allNull bool
	// nan puts NaN, +Inf and -Inf among f's values.
	nan bool
	// emptyDims leaves every table but t and trades empty: keys missing on
	// the build side, and an empty build side.
	emptyDims bool
}

// diffDataSets are the data sets, in the order the test runs them.
var diffDataSets = []diffDataSet{
	{name: "uniform1", seed: 1, rows: 3000, keys: 200, nulls: 0.05},
	{name: "uniform2", seed: 2, rows: 3000, keys: 50, nulls: 0.2},
	{name: "zipf3", seed: 3, rows: 5000, keys: 1000, zipf: true, nulls: 0.05},
	{name: "highcard4", seed: 4, rows: 3000, keys: 12000, nulls: 0.01},
	{name: "nonull5", seed: 5, rows: 2000, keys: 100},
	{name: "large6", seed: 6, rows: 12000, keys: 5000, zipf: true, nulls: 0.1},
	{name: "empty", seed: 7, rows: 0, keys: 10, nulls: 0.1},
	{name: "one", seed: 8, rows: 1, keys: 10},
	{name: "onegroup", seed: 9, rows: 2000, keys: 1, oneGroup: true, nulls: 0.05},
	{name: "allnull", seed: 10, rows: 2000, keys: 10, allNull: true, nulls: 0.05},
	{name: "nan11", seed: 11, rows: 2000, keys: 40, nulls: 0.05, nan: true},
	{name: "emptydims", seed: 12, rows: 1500, keys: 30, nulls: 0.05, emptyDims: true},
}

// diffTables are the table names of every data set.
var diffTables = []string{"t", "dim", "dim2", "multi", "u", "trades", "quotes"}

// diffColumn is one generated column: nil from gen is a NULL.
type diffColumn struct {
	name string
	typ  arrow.DataType
	gen  func(i int) any
}

var (
	diffDec     = &arrow.Decimal128Type{Precision: 12, Scale: 2}
	diffTS      = &arrow.TimestampType{Unit: arrow.Microsecond}
	diffDict    = &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}
	diffEpoch   = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	diffDay2020 = int32(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).Unix() / 86400)
	// diffWords are s's values: low cardinality, with an empty string,
	// blanks, and multi-byte letters.
	diffWords = []string{"apple", "banana", "cherry", "date", "elder", "fig", "grape", "", " ", "Äpfel", "日本", "🦆"}
	diffSyms  = []string{"AAPL", "MSFT", "GOOG", "AMZN", "META", "NVDA", "TSLA", "IBM"}
)

// gen holds the random source of one table and the data set's rates.
type gen struct {
	ds   diffDataSet
	r    *rand.Rand
	zipf *rand.Zipf
}

func newGen(ds diffDataSet, table string) *gen {
	var h uint64
	for _, c := range table {
		h = h*31 + uint64(c)
	}
	g := &gen{ds: ds, r: rand.New(rand.NewPCG(ds.seed, h))}
	if ds.zipf && ds.keys > 1 {
		g.zipf = rand.NewZipf(g.r, 1.3, 1, uint64(ds.keys-1))
	}
	return g
}

// null says whether the next value is NULL, at the data set's rate.
func (g *gen) null() bool { return g.ds.nulls > 0 && g.r.Float64() < g.ds.nulls }

// or returns v, or nil (NULL) at the data set's rate.
func (g *gen) or(v any) any {
	if g.null() {
		return nil
	}
	return v
}

// key draws a value of k: uniform or Zipf over [0, keys).
func (g *gen) key() int64 {
	if g.zipf != nil {
		return int64(g.zipf.Uint64())
	}
	return g.r.Int64N(int64(max(g.ds.keys, 1)))
}

// factColumns are t's columns.
func factColumns(g *gen) []diffColumn {
	ds := g.ds
	keyed := func(one any, draw func() any) func(int) any {
		return func(int) any {
			switch {
			case ds.allNull:
				return nil
			case ds.oneGroup:
				return one
			}
			return g.or(draw())
		}
	}
	return []diffColumn{
		{"id", arrow.PrimitiveTypes.Int64, func(i int) any { return int64(i) }},
		{"k", arrow.PrimitiveTypes.Int64, keyed(int64(7), func() any { return g.key() })},
		{"k2", arrow.PrimitiveTypes.Int32, keyed(int32(3), func() any { return int32(g.r.IntN(10)) })},
		{"s", arrow.BinaryTypes.String, keyed("apple", func() any { return diffWords[g.r.IntN(len(diffWords))] })},
		{"hs", arrow.BinaryTypes.String, func(int) any { return g.or(fmt.Sprintf("h%d", g.r.IntN(max(ds.rows, 1)))) }},
		{"ds", diffDict, keyed("sym00", func() any { return fmt.Sprintf("sym%02d", g.r.IntN(30)) })},
		{"v", arrow.PrimitiveTypes.Int64, func(int) any { return g.or(g.r.Int64N(2001) - 1000) }},
		{"i32", arrow.PrimitiveTypes.Int32, func(int) any {
			return g.or(int32(g.r.Int64N(math.MaxInt32*2+1) - math.MaxInt32))
		}},
		{"f", arrow.PrimitiveTypes.Float64, func(int) any {
			if ds.nan && g.r.IntN(10) == 0 {
				return []float64{math.NaN(), math.Inf(1), math.Inf(-1)}[g.r.IntN(3)]
			}
			return g.or(math.Round((g.r.Float64()*1100-100)*1000) / 1000)
		}},
		{"d", arrow.FixedWidthTypes.Date32, func(int) any { return g.or(arrow.Date32(diffDay2020 + g.r.Int32N(2000))) }},
		{"ts", diffTS, func(int) any { return g.or(arrow.Timestamp(diffEpoch + g.r.Int64N(30*86400*1_000_000))) }},
		{"b", arrow.FixedWidthTypes.Boolean, func(int) any { return g.or(g.r.IntN(2) == 0) }},
		{"dec", diffDec, func(int) any { return g.or(decimal128.FromI64(g.r.Int64N(2_000_001) - 1_000_000)) }},
	}
}

// diffTable generates one table of ds: its columns and row count.
func diffTable(ds diffDataSet, name string) (cols []diffColumn, rows int) {
	g := newGen(ds, name)
	keys := max(ds.keys, 1)
	dims := !ds.emptyDims
	size := func(n int) int {
		if !dims {
			return 0
		}
		return n
	}
	switch name {
	case "t":
		return factColumns(g), ds.rows
	case "dim":
		// 1:N with t on k: every key of [0, keys + keys/5) but every fifth
		// (keys of t missing here, keys here missing in t), then one NULL key.
		var ks []any
		for k := range keys + keys/5 {
			if k%5 != 4 {
				ks = append(ks, int64(k))
			}
		}
		ks = append(ks, nil)
		return []diffColumn{
			{"k", arrow.PrimitiveTypes.Int64, func(i int) any { return ks[i] }},
			{"name", arrow.BinaryTypes.String, func(i int) any { return fmt.Sprintf("n%v", ks[i]) }},
			{"w", arrow.PrimitiveTypes.Float64, func(int) any { return math.Round(g.r.Float64()*1e6) / 1e3 }},
			{"s", arrow.BinaryTypes.String, func(int) any { return diffWords[g.r.IntN(len(diffWords))] }},
		}, size(len(ks))
	case "dim2":
		// Unique (k, k2) pairs, about half of them, and a few NULL keys.
		type pair struct{ k, k2 any }
		var ps []pair
		for k := range min(keys, 2000) {
			for k2 := range 10 {
				if g.r.IntN(2) == 0 {
					ps = append(ps, pair{int64(k), int32(k2)})
				}
			}
		}
		ps = append(ps, pair{nil, int32(1)}, pair{int64(0), nil}, pair{nil, nil})
		return []diffColumn{
			{"k", arrow.PrimitiveTypes.Int64, func(i int) any { return ps[i].k }},
			{"k2", arrow.PrimitiveTypes.Int32, func(i int) any { return ps[i].k2 }},
			{"x", arrow.PrimitiveTypes.Int64, func(int) any { return g.r.Int64N(1000) }},
		}, size(len(ps))
	case "multi":
		// N:M with t on k: 0 to 3 rows per key, and NULL keys.
		var ks []any
		for k := range min(keys, 3000) + 10 {
			for range g.r.IntN(4) {
				ks = append(ks, int64(k))
			}
		}
		ks = append(ks, nil, nil)
		return []diffColumn{
			{"k", arrow.PrimitiveTypes.Int64, func(i int) any { return ks[i] }},
			{"tag", arrow.BinaryTypes.String, func(int) any { return fmt.Sprintf("t%d", g.r.IntN(100)) }},
			{"m", arrow.PrimitiveTypes.Int64, func(int) any { return g.or(g.r.Int64N(100)) }},
		}, size(len(ks))
	case "u":
		// 1:1 with t on id: ids of t but every third, and ids t lacks.
		var ids []int64
		for id := range ds.rows + ds.rows/10 + 3 {
			if id%3 != 2 {
				ids = append(ids, int64(id))
			}
		}
		return []diffColumn{
			{"id", arrow.PrimitiveTypes.Int64, func(i int) any { return ids[i] }},
			{"uv", arrow.PrimitiveTypes.Int64, func(int) any { return g.or(g.r.Int64N(1_000_000)) }},
			{"s", arrow.BinaryTypes.String, func(int) any { return g.or(diffWords[g.r.IntN(len(diffWords))]) }},
		}, size(len(ids))
	case "trades", "quotes":
		// Time-ordered, timestamps unique within a table (so the nearest
		// earlier quote is never a tie); a trade may come before any quote
		// of its symbol.
		n := max(ds.rows/2, min(ds.rows, 1))
		step := int64(1000)
		if name == "quotes" {
			n = size(n)
			step = 700
		}
		cols := []diffColumn{
			{"sym", arrow.BinaryTypes.String, func(int) any { return diffSyms[g.r.IntN(len(diffSyms))] }},
			{"ts", diffTS, func(i int) any { return arrow.Timestamp(diffEpoch + int64(i)*step*1000 + g.r.Int64N(step)) }},
		}
		if name == "quotes" {
			return append(cols,
				diffColumn{"bid", arrow.PrimitiveTypes.Float64, func(int) any { return float64(g.r.IntN(10000)) / 100 }},
				diffColumn{"ask", arrow.PrimitiveTypes.Float64, func(int) any { return float64(g.r.IntN(10000))/100 + 0.01 }},
			), n
		}
		return append([]diffColumn{{"id", arrow.PrimitiveTypes.Int64, func(i int) any { return int64(i) }}},
			append(cols, diffColumn{"qty", arrow.PrimitiveTypes.Int64, func(int) any { return g.r.Int64N(1000) + 1 }})...), n
	}
	panic("stateful data: no table " + name)
}

// buildRecord makes the table's record from its columns; the caller
// releases it.
func buildRecord(mem memory.Allocator, cols []diffColumn, rows int) arrow.RecordBatch {
	fields := make([]arrow.Field, len(cols))
	for i, c := range cols {
		fields[i] = arrow.Field{Name: c.name, Type: c.typ, Nullable: true}
	}
	b := array.NewRecordBuilder(mem, arrow.NewSchema(fields, nil))
	defer b.Release()
	for row := range rows {
		for i, c := range cols {
			appendValue(b.Field(i), c.gen(row))
		}
	}
	return b.NewRecordBatch()
}

// appendValue appends v, or a NULL when v is nil, to fb.
func appendValue(fb array.Builder, v any) {
	if v == nil {
		fb.AppendNull()
		return
	}
	switch b := fb.(type) {
	case *array.Int64Builder:
		b.Append(v.(int64))
	case *array.Int32Builder:
		b.Append(v.(int32))
	case *array.Float64Builder:
		b.Append(v.(float64))
	case *array.StringBuilder:
		b.Append(v.(string))
	case *array.BinaryDictionaryBuilder:
		if err := b.AppendString(v.(string)); err != nil {
			panic(err)
		}
	case *array.BooleanBuilder:
		b.Append(v.(bool))
	case *array.Date32Builder:
		b.Append(v.(arrow.Date32))
	case *array.TimestampBuilder:
		b.Append(v.(arrow.Timestamp))
	case *array.Decimal128Builder:
		b.Append(v.(decimal128.Num))
	default:
		panic(fmt.Sprintf("stateful data: no append for %T", fb))
	}
}

// writeDataSet writes every table of ds as dir/<table>.parquet, in row
// groups of 1500 rows (so a table arrives in several batches, whose
// boundaries are not those of settings.batch_rows).
func writeDataSet(t *testing.T, mem memory.Allocator, ds diffDataSet, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range diffTables {
		cols, rows := diffTable(ds, name)
		rec := buildRecord(mem, cols, rows)
		err := writeParquetFile(mem, filepath.Join(dir, name+".parquet"), rec)
		rec.Release()
		if err != nil {
			t.Fatalf("data set %s, table %s: %v", ds.name, name, err)
		}
	}
}

func writeParquetFile(mem memory.Allocator, path string, rec arrow.RecordBatch) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w, err := pqarrow.NewFileWriter(rec.Schema(), f,
		parquet.NewWriterProperties(parquet.WithAllocator(mem), parquet.WithMaxRowGroupLength(1500)),
		pqarrow.NewArrowWriterProperties(pqarrow.WithAllocator(mem), pqarrow.WithStoreSchema()))
	if err != nil {
		f.Close()
		return err
	}
	if err := w.Write(rec); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}
