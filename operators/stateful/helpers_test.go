package stateful

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/buffers"
	"github.com/zflowdev/zflow/engine"
)

// testEnv is an instance context over a checked allocator, with an own
// budget when limit > 0 (a heap pool account, the engine's kind).
type testEnv struct {
	mem  *memory.CheckedAllocator
	pool buffers.Pool
	ic   *engine.InstanceContext
	keep bool // collectors keep the batches
	text bool // collectors keep the rows as text (slow: only where whole rows are checked)
}

func newEnv(t *testing.T, limit int64, batchRows int, spill engine.SpillSettings) *testEnv {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	s := engine.DefaultSettings()
	s.BatchRows = batchRows
	s.Spill = spill
	s.Threads = 2
	e := &testEnv{mem: mem}
	ic := &engine.InstanceContext{Node: "n", Type: "sort", Count: 1, Alloc: mem,
		Logger: slog.New(slog.DiscardHandler), Ledger: engine.NewLedger(), Settings: s}
	// As in a run, the operator allocates through an account of a pool:
	// with a limit of its own when limit > 0, else under none (Available
	// is then MaxInt64, which the operators must not add to).
	pool, err := buffers.NewHeapPool("caller", mem, buffers.PoolConfig{})
	if err != nil {
		t.Fatal(err)
	}
	acct := pool.Account("n", max(limit, 0))
	ic.Alloc, ic.Budget = acct, acct
	e.pool = pool
	e.ic = ic
	return e
}

// done checks that nothing is left: allocator at zero, pool closed.
func (e *testEnv) done(t *testing.T) {
	t.Helper()
	if e.pool != nil {
		if err := e.pool.Close(); err != nil {
			t.Errorf("pool close: %v", err)
		}
	}
	e.mem.AssertSize(t, 0)
}

// collector is the consumer of a test: it keeps the batches (keep), or,
// like a sink, reads them — ids, rows as text, sizes — and releases them
// at once, so that a tight budget holds only what the operator holds.
type collector struct {
	keep    bool
	text    bool // keep rows as text
	recs    []arrow.RecordBatch
	ids     []int64
	rows    []string
	maxRows int64
	bytes   int64
	schema  *arrow.Schema
}

func (c *collector) Emit(b arrow.RecordBatch) error {
	c.ids = append(c.ids, ids([]arrow.RecordBatch{b})...)
	if c.text {
		c.rows = append(c.rows, rowsText([]arrow.RecordBatch{b})...)
	}
	c.maxRows = max(c.maxRows, b.NumRows())
	c.bytes += engine.BatchBytes(b)
	c.schema = b.Schema()
	if c.keep {
		c.recs = append(c.recs, b)
	} else {
		b.Release()
	}
	return nil
}
func (c *collector) release() {
	for _, r := range c.recs {
		r.Release()
	}
	c.recs = nil
}

// runOp builds spec with cfg over schema and pushes batches through one
// instance, returning what it emitted (the caller releases it).
func runOp(ctx context.Context, e *testEnv, spec engine.Spec, cfg any, schema *arrow.Schema, batches []arrow.RecordBatch) (*collector, any, error) {
	f, err := spec.Build(&engine.BuildContext{Node: "n", Inputs: []*arrow.Schema{schema}, Settings: e.ic.Settings}, cfg)
	if err != nil {
		return nil, nil, err
	}
	inst, err := f.New(e.ic)
	if err != nil {
		return nil, nil, err
	}
	op := inst.(engine.Transform)
	c := &collector{keep: e.keep, text: e.text}
	defer func() {
		if r, ok := inst.(engine.Releaser); ok {
			r.Release()
		}
	}()
	for _, b := range batches {
		if err := op.Process(ctx, 0, b, c); err != nil {
			return c, inst, err
		}
	}
	return c, inst, op.(engine.Finisher).Finish(ctx, c)
}

// genSchema has a column of every sortable type, and id, the row's input
// position (to check stability).
func genSchema() *arrow.Schema {
	dict := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int16, ValueType: arrow.BinaryTypes.String}
	return arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "i8", Type: arrow.PrimitiveTypes.Int8, Nullable: true},
		{Name: "i16", Type: arrow.PrimitiveTypes.Int16, Nullable: true},
		{Name: "i32", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
		{Name: "i64", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "u8", Type: arrow.PrimitiveTypes.Uint8, Nullable: true},
		{Name: "u16", Type: arrow.PrimitiveTypes.Uint16, Nullable: true},
		{Name: "u32", Type: arrow.PrimitiveTypes.Uint32, Nullable: true},
		{Name: "u64", Type: arrow.PrimitiveTypes.Uint64, Nullable: true},
		{Name: "f32", Type: arrow.PrimitiveTypes.Float32, Nullable: true},
		{Name: "f64", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "b", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
		{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "bin", Type: arrow.BinaryTypes.Binary, Nullable: true},
		{Name: "ls", Type: arrow.BinaryTypes.LargeString, Nullable: true},
		{Name: "dict", Type: dict, Nullable: true},
		{Name: "d32", Type: arrow.FixedWidthTypes.Date32, Nullable: true},
		{Name: "d64", Type: arrow.FixedWidthTypes.Date64, Nullable: true},
		{Name: "ts_s", Type: arrow.FixedWidthTypes.Timestamp_s, Nullable: true},
		{Name: "ts_ms", Type: arrow.FixedWidthTypes.Timestamp_ms, Nullable: true},
		{Name: "ts_us", Type: arrow.FixedWidthTypes.Timestamp_us, Nullable: true},
		{Name: "ts_ns", Type: arrow.FixedWidthTypes.Timestamp_ns, Nullable: true},
		{Name: "t32", Type: arrow.FixedWidthTypes.Time32ms, Nullable: true},
		{Name: "t64", Type: arrow.FixedWidthTypes.Time64ns, Nullable: true},
		{Name: "dec", Type: &arrow.Decimal128Type{Precision: 20, Scale: 2}, Nullable: true},
		{Name: "dur", Type: arrow.FixedWidthTypes.Duration_us, Nullable: true},
	}, nil)
}

var (
	floatPool = []float64{math.NaN(), math.Inf(1), math.Inf(-1), 0, math.Copysign(0, -1), 1.5, -1.5, 2, -2, 1e300, -1e-300}
	strPool   = []string{"", "a", "a\x00", "ab", "abcdefgh", "abcdefghi", "abcdefgh\x00", "b", "zz", "Z", "abcdefgg~", "é"}
)

// genBatches makes rows of genSchema in batches of batchRows, values drawn
// from small pools (many ties), about one in eight NULL. Each batch has
// its own dictionary.
func genBatches(mem memory.Allocator, seed uint64, rows, batchRows int) []arrow.RecordBatch {
	r := rand.New(rand.NewPCG(seed, 7))
	schema := genSchema()
	var out []arrow.RecordBatch
	for start := 0; start < rows; start += batchRows {
		n := min(batchRows, rows-start)
		b := array.NewRecordBuilder(mem, schema)
		for i := range n {
			b.Field(0).(*array.Int64Builder).Append(int64(start + i))
			for c := 1; c < schema.NumFields(); c++ {
				fb := b.Field(c)
				if r.IntN(8) == 0 {
					fb.AppendNull()
					continue
				}
				k := r.IntN(7) - 3 // -3..3
				switch fb := fb.(type) {
				case *array.Int8Builder:
					fb.Append([]int8{math.MinInt8, -1, 0, 1, math.MaxInt8, 5, -5}[k+3])
				case *array.Int16Builder:
					fb.Append(int16(k * 1000))
				case *array.Int32Builder:
					fb.Append([]int32{math.MinInt32, -7, 0, 7, math.MaxInt32, 100, -100}[k+3])
				case *array.Int64Builder:
					fb.Append([]int64{math.MinInt64, -1, 0, 1, math.MaxInt64, 1 << 40, -(1 << 40)}[k+3])
				case *array.Uint8Builder:
					fb.Append(uint8(k + 3))
				case *array.Uint16Builder:
					fb.Append(uint16((k + 3) * 10000))
				case *array.Uint32Builder:
					fb.Append([]uint32{0, 1, math.MaxUint32, 1 << 31, 5, 6, 7}[k+3])
				case *array.Uint64Builder:
					fb.Append([]uint64{0, 1, math.MaxUint64, 1 << 63, (1 << 63) - 1, 6, 7}[k+3])
				case *array.Float32Builder:
					fb.Append(float32(floatPool[r.IntN(len(floatPool))]))
				case *array.Float64Builder:
					fb.Append(floatPool[r.IntN(len(floatPool))])
				case *array.BooleanBuilder:
					fb.Append(k > 0)
				case *array.StringBuilder:
					fb.Append(strPool[r.IntN(len(strPool))])
				case *array.BinaryBuilder:
					fb.Append([]byte(strPool[r.IntN(len(strPool))]))
				case *array.LargeStringBuilder:
					fb.Append(strPool[r.IntN(len(strPool))])
				case *array.BinaryDictionaryBuilder:
					fb.AppendString(strPool[r.IntN(len(strPool))])
				case *array.Date32Builder:
					fb.Append(arrow.Date32(k * 365))
				case *array.Date64Builder:
					fb.Append(arrow.Date64(int64(k) * 86400000))
				case *array.TimestampBuilder:
					fb.Append(arrow.Timestamp(int64(k) * 1_000_003))
				case *array.Time32Builder:
					fb.Append(arrow.Time32(k + 3))
				case *array.Time64Builder:
					fb.Append(arrow.Time64(int64(k+3) * 1000))
				case *array.Decimal128Builder:
					v := []decimal128.Num{decimal128.FromI64(-5), decimal128.FromI64(0), decimal128.FromI64(7),
						decimal128.New(1, 0), decimal128.New(-1, 5), decimal128.New(math.MaxInt64, math.MaxUint64), decimal128.FromI64(-1)}[k+3]
					fb.Append(v)
				case *array.DurationBuilder:
					fb.Append(arrow.Duration(k))
				default:
					panic(fmt.Sprintf("no generator for %T", fb))
				}
			}
		}
		out = append(out, b.NewRecordBatch())
		b.Release()
	}
	return out
}

func releaseRecs(rs []arrow.RecordBatch) {
	for _, r := range rs {
		r.Release()
	}
}

// refCompare is the reference order of one value pair of a column,
// written independently of sortkeys.go: typed Value accessors, NaN above
// everything, -0 = 0, both valid.
func refCompare(a arrow.Array, i, j int) int {
	c3 := func(less, greater bool) int {
		switch {
		case less:
			return -1
		case greater:
			return 1
		}
		return 0
	}
	fl := func(x, y float64) int {
		xn, yn := math.IsNaN(x), math.IsNaN(y)
		switch {
		case xn && yn:
			return 0
		case xn:
			return 1
		case yn:
			return -1
		}
		return c3(x < y, x > y)
	}
	switch a := a.(type) {
	case *array.Int8:
		return c3(a.Value(i) < a.Value(j), a.Value(i) > a.Value(j))
	case *array.Int16:
		return c3(a.Value(i) < a.Value(j), a.Value(i) > a.Value(j))
	case *array.Int32:
		return c3(a.Value(i) < a.Value(j), a.Value(i) > a.Value(j))
	case *array.Int64:
		return c3(a.Value(i) < a.Value(j), a.Value(i) > a.Value(j))
	case *array.Uint8:
		return c3(a.Value(i) < a.Value(j), a.Value(i) > a.Value(j))
	case *array.Uint16:
		return c3(a.Value(i) < a.Value(j), a.Value(i) > a.Value(j))
	case *array.Uint32:
		return c3(a.Value(i) < a.Value(j), a.Value(i) > a.Value(j))
	case *array.Uint64:
		return c3(a.Value(i) < a.Value(j), a.Value(i) > a.Value(j))
	case *array.Float32:
		return fl(float64(a.Value(i)), float64(a.Value(j)))
	case *array.Float64:
		return fl(a.Value(i), a.Value(j))
	case *array.Boolean:
		return c3(!a.Value(i) && a.Value(j), a.Value(i) && !a.Value(j))
	case *array.String:
		return c3(a.Value(i) < a.Value(j), a.Value(i) > a.Value(j))
	case *array.LargeString:
		return c3(a.Value(i) < a.Value(j), a.Value(i) > a.Value(j))
	case *array.Binary:
		return bytes.Compare(a.Value(i), a.Value(j))
	case *array.Dictionary:
		d := a.Dictionary().(*array.String)
		x, y := d.Value(a.GetValueIndex(i)), d.Value(a.GetValueIndex(j))
		return c3(x < y, x > y)
	case *array.Date32:
		return c3(a.Value(i) < a.Value(j), a.Value(i) > a.Value(j))
	case *array.Date64:
		return c3(a.Value(i) < a.Value(j), a.Value(i) > a.Value(j))
	case *array.Timestamp:
		return c3(a.Value(i) < a.Value(j), a.Value(i) > a.Value(j))
	case *array.Time32:
		return c3(a.Value(i) < a.Value(j), a.Value(i) > a.Value(j))
	case *array.Time64:
		return c3(a.Value(i) < a.Value(j), a.Value(i) > a.Value(j))
	case *array.Duration:
		return c3(a.Value(i) < a.Value(j), a.Value(i) > a.Value(j))
	case *array.Decimal128:
		return a.Value(i).Cmp(a.Value(j))
	}
	panic(fmt.Sprintf("refCompare: %T", a))
}

// refKey is a key of the reference sort: a column, a direction, NULLs.
type refKey struct {
	col        int
	desc       bool
	nullsFirst bool
}

// refOrder returns the ids (input positions) of the rows of one
// concatenated batch in the reference order: a stable insertion-free
// merge sort by the keys.
func refOrder(rec arrow.RecordBatch, keys []refKey) []int64 {
	n := int(rec.NumRows())
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	less := func(i, j int) int {
		for _, k := range keys {
			a := rec.Column(k.col)
			ni, nj := a.IsNull(i), a.IsNull(j)
			if ni && nj {
				continue
			}
			if ni != nj {
				if ni == k.nullsFirst {
					return -1
				}
				return 1
			}
			c := refCompare(a, i, j)
			if k.desc {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return 0
	}
	// A plain stable merge sort, so the reference does not share
	// slices.SortFunc with the code under test.
	tmp := make([]int, n)
	var msort func(lo, hi int)
	msort = func(lo, hi int) {
		if hi-lo < 2 {
			return
		}
		mid := (lo + hi) / 2
		msort(lo, mid)
		msort(mid, hi)
		i, j, k := lo, mid, lo
		for i < mid && j < hi {
			if less(idx[j], idx[i]) < 0 {
				tmp[k] = idx[j]
				j++
			} else {
				tmp[k] = idx[i]
				i++
			}
			k++
		}
		copy(tmp[k:], idx[i:mid])
		k += mid - i
		copy(tmp[k:], idx[j:hi])
		copy(idx[lo:hi], tmp[lo:hi])
	}
	msort(0, n)
	ids := rec.Column(0).(*array.Int64)
	out := make([]int64, n)
	for i, r := range idx {
		out[i] = ids.Value(r)
	}
	return out
}

// concat joins batches into one (the caller releases it).
func concat(t *testing.T, mem memory.Allocator, schema *arrow.Schema, recs []arrow.RecordBatch) arrow.RecordBatch {
	t.Helper()
	cols := make([]arrow.Array, schema.NumFields())
	var n int64
	for _, r := range recs {
		n += r.NumRows()
	}
	for c := range cols {
		if len(recs) == 0 {
			cols[c] = array.MakeArrayOfNull(mem, schema.Field(c).Type, 0)
			continue
		}
		parts := make([]arrow.Array, len(recs))
		for i, r := range recs {
			parts[i] = r.Column(c)
		}
		a, err := array.Concatenate(parts, mem)
		if err != nil {
			t.Fatal(err)
		}
		cols[c] = a
	}
	rec := array.NewRecordBatch(schema, cols, n)
	for _, c := range cols {
		c.Release()
	}
	return rec
}

// ids reads the id column of batches (the first, when it is int64).
func ids(recs []arrow.RecordBatch) []int64 {
	var out []int64
	for _, r := range recs {
		if a, ok := r.Column(0).(*array.Int64); ok {
			out = append(out, a.Int64Values()...)
		}
	}
	return out
}

// rowsText renders every row of batches, to compare whole rows.
func rowsText(recs []arrow.RecordBatch) []string {
	var out []string
	for _, r := range recs {
		for i := range int(r.NumRows()) {
			var b bytes.Buffer
			for c := range int(r.NumCols()) {
				fmt.Fprintf(&b, "%s|", r.Column(c).ValueStr(i))
			}
			out = append(out, b.String())
		}
	}
	return out
}
