package stateful

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"

	"github.com/zflowdev/zflow/buffers"
	"github.com/zflowdev/zflow/engine"
)

// The aggregate runs in these tests through the engine, between a source
// that emits batches made by the test and a sink that renders every row
// as text, on a checked allocator that must end at zero.

type batchesConfig struct {
	schema  *arrow.Schema
	batches []arrow.RecordBatch
	// cancelAfter, when set, cancels the run after that many batches.
	cancelAfter int
	cancelWhen  func() bool // and, when set, once it says so
	cancel      func()
}

type batchesFactory struct{ c *batchesConfig }

func (f batchesFactory) Schema() *arrow.Schema { return f.c.schema }
func (f batchesFactory) New(*engine.InstanceContext) (any, error) {
	return batchesSource(f), nil
}

type batchesSource struct{ c *batchesConfig }

func (s batchesSource) Run(ctx context.Context, out engine.Emitter) error {
	for i, b := range s.c.batches {
		if s.c.cancelAfter > 0 && i >= s.c.cancelAfter && (s.c.cancelWhen == nil || s.c.cancelWhen()) {
			s.c.cancel()
			<-ctx.Done()
			return ctx.Err()
		}
		b.Retain()
		if err := out.Emit(b); err != nil {
			return err
		}
	}
	return nil
}

type rowsConfig struct {
	mu    *sync.Mutex
	rows  *[]string
	cols  *[]string
	count bool // only count the rows (benchmarks)
	n     int64
}

type rowsFactory struct{ c *rowsConfig }

func (rowsFactory) Schema() *arrow.Schema { return nil }
func (f rowsFactory) New(*engine.InstanceContext) (any, error) {
	return rowsSink(f), nil
}

type rowsSink struct{ c *rowsConfig }

func (s rowsSink) Write(_ context.Context, _ int, b arrow.RecordBatch) error {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if s.c.count {
		s.c.n += b.NumRows()
		return nil
	}
	if *s.c.cols == nil {
		for _, f := range b.Schema().Fields() {
			*s.c.cols = append(*s.c.cols, f.Name+" "+f.Type.String())
		}
	}
	for i := range int(b.NumRows()) {
		var vals []string
		for _, c := range b.Columns() {
			vals = append(vals, cellText(c, i))
		}
		*s.c.rows = append(*s.c.rows, strings.Join(vals, "|"))
	}
	return nil
}
func (rowsSink) Close(context.Context) error { return nil }
func (rowsSink) Commit() error               { return nil }
func (rowsSink) Abort()                      {}

// cellText renders a value; floats with 12 significant digits, so that
// sums added in another order compare equal.
func cellText(c arrow.Array, i int) string {
	if c.IsNull(i) {
		return "∅"
	}
	switch c := c.(type) {
	case *array.Float64:
		return fmt.Sprintf("%.12g", c.Value(i))
	case *array.Float32:
		return fmt.Sprintf("%.6g", c.Value(i))
	}
	return c.ValueStr(i)
}

func testRegistry() *engine.Registry {
	r := engine.NewRegistry()
	r.MustRegister(AggregateSpec())
	r.MustRegister(RepartitionSpec())
	r.MustRegister(WindowSpec())
	r.MustRegister(engine.Spec{Name: "batches", Kind: engine.KindSource, NewConfig: func() any { return &batchesConfig{} },
		Build: func(_ *engine.BuildContext, c any) (engine.Factory, error) {
			return batchesFactory{c.(*batchesConfig)}, nil
		}})
	r.MustRegister(engine.Spec{Name: "rows", Kind: engine.KindSink, MinInputs: 1, MaxInputs: 1, NewConfig: func() any { return &rowsConfig{} },
		Build: func(_ *engine.BuildContext, c any) (engine.Factory, error) { return rowsFactory{c.(*rowsConfig)}, nil }})
	return r
}

type runOpts struct {
	parallelism int
	budget      int64 // the aggregate node's own budget; 0 none
	batchRows   int
	cancelAfter int
	cancelWhen  func() bool
	// repartition, when set, puts a repartition by these columns
	// (round robin for an empty list) before the aggregate.
	repartition []string
}

type aggResult struct {
	cols    []string
	rows    []string // sorted
	summary engine.Summary
}

// runAgg runs batches through an aggregate and returns its rows sorted.
// It releases the batches.
func runAgg(t *testing.T, mem *memory.CheckedAllocator, batches []arrow.RecordBatch, groupBy []string, aggs engine.OrderedMap, o runOpts) (aggResult, error) {
	t.Helper()
	defer func() {
		for _, b := range batches {
			b.Release()
		}
	}()
	var res aggResult
	var mu sync.Mutex
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := &batchesConfig{schema: batches[0].Schema(), batches: batches, cancelAfter: o.cancelAfter, cancelWhen: o.cancelWhen, cancel: cancel}
	par := o.parallelism
	if par == 0 {
		par = 1
	}
	node := &engine.Node{ID: "agg", Kind: engine.KindTransform, Type: "aggregate", Inputs: []string{"src"}, Parallelism: par,
		Config: &AggregateConfig{GroupBy: groupBy, Aggregates: aggs}, ConfigFrom: engine.ConfigDefaults}
	var extra []*engine.Node
	if o.repartition != nil {
		node.Inputs = []string{"rep"}
		extra = append(extra, &engine.Node{ID: "rep", Kind: engine.KindTransform, Type: "repartition", Inputs: []string{"src"}, Parallelism: par,
			Config: &RepartitionConfig{By: o.repartition}, ConfigFrom: engine.ConfigLiteral})
	}
	if o.budget > 0 {
		node.Memory = &buffers.PoolConfig{Budget: o.budget}
	}
	s := engine.DefaultSettings()
	s.BatchRows = 4096
	if o.batchRows > 0 {
		s.BatchRows = o.batchRows
	}
	g := &engine.Graph{Name: "t", Settings: s, Nodes: []*engine.Node{
		{ID: "src", Kind: engine.KindSource, Type: "batches", Config: src},
		node,
		{ID: "out", Kind: engine.KindSink, Type: "rows", Inputs: []string{"agg"}, Config: &rowsConfig{mu: &mu, rows: &res.rows, cols: &res.cols}},
	}}
	g.Nodes = append(g.Nodes, extra...)
	p, err := engine.Compile(g, engine.CompileOptions{Registry: testRegistry()})
	if err != nil {
		return res, err
	}
	res.summary, err = p.Run(ctx, engine.RunOptions{Alloc: mem})
	sort.Strings(res.rows)
	return res, err
}

// ordered is an OrderedMap from name, expression pairs.
func ordered(kv ...string) engine.OrderedMap {
	var m engine.OrderedMap
	for i := 0; i+1 < len(kv); i += 2 {
		m = append(m, engine.MapEntry{Key: kv[i], Value: kv[i+1]})
	}
	return m
}

// batchOf builds a batch from columns given as (name, type, values...)
// with "∅" for NULL; every column has the same number of values.
type col struct {
	name string
	typ  arrow.DataType
	vals []string
}

func batchOf(t *testing.T, mem memory.Allocator, cols ...col) arrow.RecordBatch {
	t.Helper()
	var fields []arrow.Field
	var arrs []arrow.Array
	for _, c := range cols {
		fields = append(fields, arrow.Field{Name: c.name, Type: c.typ, Nullable: true})
		b := array.NewBuilder(mem, c.typ)
		for _, v := range c.vals {
			if v == "∅" {
				b.AppendNull()
			} else if db, ok := b.(*array.BinaryDictionaryBuilder); ok {
				if err := db.AppendString(v); err != nil {
					t.Fatal(err)
				}
			} else if err := b.AppendValueFromString(v); err != nil {
				t.Fatalf("%s %q: %v", c.typ, v, err)
			}
		}
		arrs = append(arrs, b.NewArray())
		b.Release()
	}
	n := 0
	if len(arrs) > 0 {
		n = arrs[0].Len()
	}
	rec := array.NewRecordBatch(arrow.NewSchema(fields, nil), arrs, int64(n))
	for _, a := range arrs {
		a.Release()
	}
	return rec
}

func vals(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func checkRows(t *testing.T, got aggResult, err error, want ...string) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(want)
	if strings.Join(got.rows, "\n") != strings.Join(want, "\n") {
		t.Errorf("rows:\n%s\nwant:\n%s", strings.Join(got.rows, "\n"), strings.Join(want, "\n"))
	}
}

func TestAggregateVWAP(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	trades := []arrow.RecordBatch{
		batchOf(t, mem,
			col{"symbol", arrow.BinaryTypes.String, vals("AAPL,MSFT,AAPL,∅")},
			col{"price", arrow.PrimitiveTypes.Float64, vals("10,20,12,5")},
			col{"qty", arrow.PrimitiveTypes.Int64, vals("100,10,300,7")}),
		batchOf(t, mem,
			col{"symbol", arrow.BinaryTypes.String, vals("MSFT,∅")},
			col{"price", arrow.PrimitiveTypes.Float64, vals("22,6")},
			col{"qty", arrow.PrimitiveTypes.Int64, vals("30,∅")}),
	}
	got, err := runAgg(t, mem, trades, []string{"symbol"},
		ordered("sum_qty", "sum(qty)", "vwap", "sum(price * qty) / sum(qty)", "cnt", "count(*)", "n_qty", "count(qty)"), runOpts{})
	checkRows(t, got, err,
		"AAPL|400|11.5|2|2",
		"MSFT|40|21.5|2|2",
		"∅|7|5|2|1",
	)
	if want := "symbol utf8,sum_qty int64,vwap float64,cnt int64,n_qty int64"; strings.Join(got.cols, ",") != want {
		t.Errorf("columns %v, want %s", got.cols, want)
	}
}

func TestAggregateKeyTypes(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dict := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}
	ts := &arrow.TimestampType{Unit: arrow.Microsecond}
	cases := []struct {
		typ  arrow.DataType
		keys string
		want []string
	}{
		{arrow.PrimitiveTypes.Int8, "1,2,1,∅,∅", []string{"1|2", "2|1", "∅|2"}},
		{arrow.PrimitiveTypes.Uint64, "18446744073709551615,2,18446744073709551615,∅,∅", []string{"18446744073709551615|2", "2|1", "∅|2"}},
		{arrow.PrimitiveTypes.Float64, "0,NaN,-0,∅,NaN", []string{"0|2", "NaN|2", "∅|1"}},
		{arrow.BinaryTypes.String, "a,,a,∅,∅", []string{"a|2", "|1", "∅|2"}},
		{arrow.BinaryTypes.LargeString, "a,b,a,∅,b", []string{"a|2", "b|2", "∅|1"}},
		{dict, "x,y,x,∅,y", []string{"x|2", "y|2", "∅|1"}},
		{arrow.FixedWidthTypes.Date32, "2024-01-02,2024-01-03,2024-01-02,∅,∅", []string{"2024-01-02|2", "2024-01-03|1", "∅|2"}},
		{ts, "2024-01-02T03:04:05,2024-01-02T03:04:05,2024-01-02T03:04:06,∅,∅", []string{"2024-01-02T03:04:05|2", "2024-01-02T03:04:06|1", "∅|2"}},
		{arrow.FixedWidthTypes.Boolean, "true,false,true,∅,true", []string{"true|3", "false|1", "∅|1"}},
		{&arrow.Decimal128Type{Precision: 10, Scale: 2}, "1.50,2.00,1.50,∅,∅", []string{"1.5|2", "2|1", "∅|2"}},
	}
	for _, c := range cases {
		t.Run(c.typ.String(), func(t *testing.T) {
			b := batchOf(t, mem, col{"k", c.typ, vals(c.keys)})
			got, err := runAgg(t, mem, []arrow.RecordBatch{b}, []string{"k"}, ordered("n", "count(*)"), runOpts{})
			checkRows(t, got, err, c.want...)
		})
	}
}

// TestAggregateFunctions checks every function on every type it takes,
// nulls included, against values worked out by hand (DuckDB's answers to
// the same SQL).
func TestAggregateFunctions(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	mk := func() []arrow.RecordBatch {
		return []arrow.RecordBatch{batchOf(t, mem,
			col{"g", arrow.BinaryTypes.String, vals("a,a,a,b,b,c")},
			col{"i", arrow.PrimitiveTypes.Int32, vals("1,∅,3,-4,5,∅")},
			col{"f", arrow.PrimitiveTypes.Float64, vals("1.5,2.5,∅,NaN,1,∅")},
			col{"s", arrow.BinaryTypes.String, vals("pear,∅,apple,zz,z,∅")},
			col{"d", arrow.FixedWidthTypes.Date32, vals("2024-03-01,2024-01-01,∅,2023-01-01,2025-01-01,∅")},
			col{"t", &arrow.TimestampType{Unit: arrow.Microsecond}, vals("2024-01-01T00:00:01,∅,2024-01-01T00:00:00,2020-01-01T00:00:00,2020-01-01T00:00:00,∅")},
			col{"b", arrow.FixedWidthTypes.Boolean, vals("true,true,∅,false,true,∅")},
			col{"m", &arrow.Decimal128Type{Precision: 12, Scale: 2}, vals("1.25,2.50,∅,-1.00,∅,∅")},
			col{"u", arrow.PrimitiveTypes.Uint8, vals("200,200,∅,1,2,∅")},
		)}
	}
	cases := []struct {
		agg  string
		typ  string
		want []string // groups a, b, c
	}{
		{"count(*)", "int64", vals("3,2,1")},
		{"count(i)", "int64", vals("2,2,0")},
		{"sum(i)", "int64", vals("4,1,∅")},
		{"sum(u)", "int64", vals("400,3,∅")},
		{"sum(f)", "float64", vals("4,NaN,∅")},
		{"sum(m)", "decimal(38, 2)", vals("3.75,-1,∅")},
		{"avg(i)", "float64", vals("2,0.5,∅")},
		{"mean(m)", "float64", vals("1.875,-1,∅")},
		{"min(i)", "int32", vals("1,-4,∅")},
		{"max(i)", "int32", vals("3,5,∅")},
		{"min(f)", "float64", vals("1.5,1,∅")},
		{"max(f)", "float64", vals("2.5,NaN,∅")},
		{"min(s)", "utf8", vals("apple,z,∅")},
		{"max(s)", "utf8", vals("pear,zz,∅")},
		{"min(d)", "date32", vals("2024-01-01,2023-01-01,∅")},
		{"max(d)", "date32", vals("2024-03-01,2025-01-01,∅")},
		{"max(t)", "timestamp[us]", vals("2024-01-01T00:00:01,2020-01-01T00:00:00,∅")},
		{"min(b)", "bool", vals("true,false,∅")},
		{"max(u)", "uint8", vals("200,2,∅")},
		{"first(i)", "int32", vals("1,-4,∅")},
		{"last(i)", "int32", vals("3,5,∅")},
		{"first(s)", "utf8", vals("pear,zz,∅")},
		{"last(f)", "float64", vals("∅,1,∅")},
		{"first(b)", "bool", vals("true,false,∅")},
		{"last(b)", "bool", vals("∅,true,∅")},
		{"stddev(i)", "float64", vals("1.41421356237,6.36396103068,∅")},
		{"stddev_samp(i)", "float64", vals("1.41421356237,6.36396103068,∅")},
		{"stddev_pop(i)", "float64", vals("1,4.5,∅")},
		{"variance(i)", "float64", vals("2,40.5,∅")},
		{"var_samp(m)", "float64", vals("0.78125,∅,∅")},
		{"var_pop(i)", "float64", vals("1,20.25,∅")},
		{"bool_and(b)", "bool", vals("true,false,∅")},
		{"bool_or(b)", "bool", vals("true,true,∅")},
		{"count(*) FILTER (WHERE i > 0)", "int64", vals("2,1,0")},
		{"sum(i) FILTER (WHERE s <> 'apple')", "int64", vals("1,1,∅")},
		{"sum(i * 2) FILTER (WHERE NULL)", "int64", vals("∅,∅,∅")},
		{"round(avg(f), 1)", "float64", vals("2,NaN,∅")},
		{"sum(i) / count(*)", "int64", vals("1,0,∅")}, // expr's / of integers is integer division
		{"sum(i) / count(*)::double", "float64", vals("1.33333333333,0.5,∅")},
		{"count(*) FILTER (WHERE i > 0) * 100.0 / count(*)", "float64", vals("66.6666666667,50,0")},
		{"g || '-' || count(*)", "utf8", vals("a-3,b-2,c-1")},
		{"min(m)", "decimal(12, 2)", vals("1.25,-1,∅")},
		{"max(m)", "decimal(12, 2)", vals("2.5,-1,∅")},
		{"count(DISTINCT u)", "int64", vals("1,2,0")},
		{"count(DISTINCT f)", "int64", vals("2,2,0")}, // NaN is one value
		{"count(DISTINCT u) FILTER (WHERE i > 0)", "int64", vals("1,1,0")},
		{"count(u) - count(DISTINCT u)", "int64", vals("1,0,0")},
		{"approx_count_distinct(s)", "int64", vals("2,2,0")},
		{"approx_quantile(i, 0.5)", "int32", vals("2,0,∅")}, // (1+3)/2; (-4+5)/2 = 0.5 rounds to even
		{"approx_quantile(f, 0)", "float64", vals("1.5,1,∅")},
	}
	for _, c := range cases {
		t.Run(c.agg, func(t *testing.T) {
			got, err := runAgg(t, mem, mk(), []string{"g"}, ordered("x", c.agg), runOpts{})
			want := []string{"a|" + c.want[0], "b|" + c.want[1], "c|" + c.want[2]}
			checkRows(t, got, err, want...)
			if err == nil && got.cols[1] != "x "+c.typ {
				t.Errorf("type %s, want %s", got.cols[1], c.typ)
			}
		})
	}
}

func TestAggregateGlobal(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	aggs := ordered("n", "count(*)", "s", "sum(x)", "a", "avg(x)", "m", "max(x)")
	for _, par := range []int{1, 2} {
		empty := batchOf(t, mem, col{"x", arrow.PrimitiveTypes.Int64, nil})
		got, err := runAgg(t, mem, []arrow.RecordBatch{empty}, nil, aggs, runOpts{parallelism: par})
		checkRows(t, got, err, "0|∅|∅|∅")
		b1 := batchOf(t, mem, col{"x", arrow.PrimitiveTypes.Int64, vals("1,2,∅")})
		b2 := batchOf(t, mem, col{"x", arrow.PrimitiveTypes.Int64, vals("10")})
		got, err = runAgg(t, mem, []arrow.RecordBatch{b1, b2}, nil, aggs, runOpts{parallelism: par})
		checkRows(t, got, err, "4|13|4.33333333333|10")
	}
}

func TestAggregateOverflow(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	for _, par := range []int{1, 2} {
		b := batchOf(t, mem,
			col{"k", arrow.BinaryTypes.String, vals("ok,big,big")},
			col{"x", arrow.PrimitiveTypes.Int64, vals("1,9223372036854775807,1")})
		_, err := runAgg(t, mem, []arrow.RecordBatch{b}, []string{"k"}, ordered("s", "sum(x)"), runOpts{parallelism: par})
		if err == nil || !strings.Contains(err.Error(), `aggregate "agg": sum(x) overflows int64 in the group (k = big)`) {
			t.Errorf("parallelism %d: %v, want the overflow of group big", par, err)
		}
	}
	// Two instances each within int64, their sum past it: the merge says so.
	b1 := batchOf(t, mem, col{"x", arrow.PrimitiveTypes.Int64, vals("9223372036854775807")})
	b2 := batchOf(t, mem, col{"x", arrow.PrimitiveTypes.Int64, vals("9223372036854775807")})
	_, err := runAgg(t, mem, []arrow.RecordBatch{b1, b2}, nil, ordered("s", "sum(x)"), runOpts{parallelism: 2})
	if err == nil || !strings.Contains(err.Error(), "overflows int64 in the group of the whole input") {
		t.Errorf("%v, want an overflow", err)
	}
}

func TestAggregateKeyExpressions(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	b := batchOf(t, mem,
		col{"id", arrow.PrimitiveTypes.Int64, vals("1,2,3,4,5,6")},
		col{"sym", arrow.BinaryTypes.String, vals("a,b,a,b,a,∅")},
		col{"price", arrow.PrimitiveTypes.Float64, vals("1,2,3,4,5,6")})
	got, err := runAgg(t, mem, []arrow.RecordBatch{b}, []string{"id % 2 AS k", "sym AS s"}, ordered("max_price", "max(price)", "k10", "k * 10"), runOpts{})
	checkRows(t, got, err, "1|a|5|10", "0|b|4|0", "0|∅|6|0")
	if want := "k int64,s utf8,max_price float64,k10 int64"; strings.Join(got.cols, ",") != want {
		t.Errorf("columns %v, want %s", got.cols, want)
	}
}

func TestAggregateErrors(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	cases := []struct {
		groupBy []string
		aggs    engine.OrderedMap
		want    string
	}{
		{nil, ordered("x", "frob(qty)"), `agg.aggregates.x@0: unknown function "frob"`},
		{nil, ordered("x", "sum(count(qty))"), "agg.aggregates.x@4: aggregate function count inside aggregate function sum: aggregates do not nest"},
		{[]string{"sym"}, ordered("x", "qty + sum(qty)"), `agg.aggregates.x@0: column "qty" must be in group_by or inside an aggregate function`},
		{nil, ordered("x", "sum(qty) FILTER (WHERE qty)"), "agg.aggregates.x@23: FILTER (WHERE qty) must be a boolean condition, but it is int64"},
		{nil, ordered("x", "sum(sym)"), "agg.aggregates.x@0: sum does not take a utf8 argument"},
		{nil, ordered("x", "sum(*)"), "agg.aggregates.x@0: sum(*) is not a function: only count takes *"},
		{nil, ordered("x", "sum(DISTINCT qty)"), "agg.aggregates.x@0: DISTINCT is supported in count(DISTINCT x) only, not in sum"},
		{nil, ordered("x", "approx_quantile(qty, 2)"), "agg.aggregates.x@21: approx_quantile's q must be a number literal in [0, 1], not 2"},
		{nil, ordered("x", "approx_quantile(qty, qty)"), "agg.aggregates.x@21: approx_quantile's q must be a number literal in [0, 1], not qty"},
		{nil, ordered("x", "approx_quantile(qty)"), "agg.aggregates.x@0: approx_quantile takes 2 arguments (x, q), got 1"},
		{[]string{"qty % 2"}, ordered("x", "count(*)"), `agg.group_by.0@0: the group_by expression "qty % 2" needs a name: write it as "qty % 2 AS name"`},
		{[]string{"sum(qty) AS s"}, nil, "agg.group_by.0@0: aggregate function sum is not allowed in group_by"},
		{nil, ordered("x", "sum(nope)"), `agg.aggregates.x@4: unknown column "nope"`},
		{nil, nil, "agg.aggregates: an aggregate needs group_by, aggregates or both"},
	}
	for _, c := range cases {
		b := batchOf(t, mem, col{"sym", arrow.BinaryTypes.String, vals("a")}, col{"qty", arrow.PrimitiveTypes.Int64, vals("1")})
		_, err := runAgg(t, mem, []arrow.RecordBatch{b}, c.groupBy, c.aggs, runOpts{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v %v: %v\nwant %s", c.groupBy, c.aggs, err, c.want)
		}
	}
}

// randomBatches makes nb batches of rows with an int64 key of card
// values, a string key of 7, and values with nulls; integer-valued
// floats, so that sums are exact in any order.
func randomBatches(t *testing.T, mem memory.Allocator, seed int64, nb, rows, card int) []arrow.RecordBatch {
	r := rand.New(rand.NewSource(seed))
	var out []arrow.RecordBatch
	for range nb {
		var k, s, x, f []string
		for range rows {
			k = append(k, strconv.Itoa(r.Intn(card)))
			if r.Intn(10) == 0 {
				s = append(s, "∅")
			} else {
				s = append(s, string(rune('a'+r.Intn(7))))
			}
			if r.Intn(8) == 0 {
				x = append(x, "∅")
			} else {
				x = append(x, strconv.Itoa(r.Intn(2000)-1000))
			}
			f = append(f, strconv.Itoa(r.Intn(100)))
		}
		out = append(out, batchOf(t, mem,
			col{"k", arrow.PrimitiveTypes.Int64, k}, col{"s", arrow.BinaryTypes.String, s},
			col{"x", arrow.PrimitiveTypes.Int32, x}, col{"f", arrow.PrimitiveTypes.Float64, f}))
	}
	return out
}

var randomAggs = ordered("n", "count(*)", "nx", "count(x)", "sx", "sum(x)", "af", "avg(f)", "mn", "min(x)", "mx", "max(s)",
	"v", "round(var_samp(f), 6)", "sd", "round(stddev_pop(x), 6)", "pos", "count(*) FILTER (WHERE x > 0)", "ba", "bool_or(x > 900)",
	"ratio", "sum(f) / sum(x)", "dx", "count(DISTINCT x)", "df", "count(DISTINCT f) FILTER (WHERE x > 0)")

// TestAggregateDistinctPasses: a group whose DISTINCT set outgrows the
// budget is merged in passes over hash slices of its values, and counts
// what one instance with memory to spare counts.
func TestAggregateDistinctPasses(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	aggs := ordered("dk", "count(DISTINCT k)", "n", "count(*)", "dks", "count(DISTINCT k) FILTER (WHERE x > 0)")
	serial, err := runAgg(t, mem, randomBatches(t, mem, 4, 12, 2000, 50000), nil, aggs, runOpts{})
	if err != nil {
		t.Fatal(err)
	}
	// One instance: with two, the one merging reads back a run holding the
	// other's whole set of the one group as one value, which need not fit
	// the headroom its own sets leave (see docs/aggregate.md).
	for _, par := range []int{1} {
		spills := aggSpills.Load()
		got, err := runAgg(t, mem, randomBatches(t, mem, 4, 12, 2000, 50000), nil, aggs, runOpts{parallelism: par, budget: 512 << 10})
		if err != nil {
			t.Fatalf("parallelism %d: %v", par, err)
		}
		if strings.Join(got.rows, "\n") != strings.Join(serial.rows, "\n") {
			t.Errorf("parallelism %d: %v, one instance with memory to spare: %v", par, got.rows, serial.rows)
		}
		if aggSpills.Load() == spills {
			t.Errorf("parallelism %d: did not spill", par)
		}
	}
}

// TestAggregateParallelSpill: one instance, two instances, and a budget so
// small that the table spills many times, give the same answers.
func TestAggregateParallelSpill(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	for _, seed := range []int64{1, 2} {
		for _, card := range []int{3, 5000} {
			groupBy := []string{"k", "s"}
			serial, err := runAgg(t, mem, randomBatches(t, mem, seed, 12, 2000, card), groupBy, randomAggs, runOpts{})
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range []runOpts{{parallelism: 2}, {budget: 2 << 20}, {parallelism: 2, budget: 2 << 20}} {
				spills := aggSpills.Load()
				got, err := runAgg(t, mem, randomBatches(t, mem, seed, 12, 2000, card), groupBy, randomAggs, o)
				if err != nil {
					t.Fatalf("seed %d card %d %+v: %v", seed, card, o, err)
				}
				if strings.Join(got.rows, "\n") != strings.Join(serial.rows, "\n") {
					t.Errorf("seed %d card %d %+v: %d rows differ from one instance's %d", seed, card, o, len(got.rows), len(serial.rows))
				}
				if o.budget > 0 && card > 1000 && aggSpills.Load() == spills {
					t.Errorf("seed %d card %d %+v: did not spill", seed, card, o)
				}
			}
		}
	}
}

// TestAggregateCancel cancels a run mid-input, with spilled files: no
// leak, no goroutine, no spill file left.
func TestAggregateCancel(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // where the spillers make their directories
	for _, par := range []int{1, 2} {
		spills := aggSpills.Load()
		_, err := runAgg(t, mem, randomBatches(t, mem, 3, 30, 2000, 50000), []string{"k", "s"}, randomAggs,
			runOpts{parallelism: par, budget: 2 << 20, cancelAfter: 4, cancelWhen: func() bool { return aggSpills.Load() > spills }})
		if err == nil {
			t.Fatal("a cancelled run succeeded")
		}
		if aggSpills.Load() == spills {
			t.Errorf("parallelism %d: cancelled before a spill", par)
		}
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("spill directories left in %s: %v", tmp, left)
	}
}

// TestAggregateSplitsPartition: groups whose partial states are wide (a
// first and a last of long strings each) under a budget that holds only a
// part of one hash partition's groups: the partition is split by the next
// hash bits, spilled, and merged part by part, with one and two instances,
// and the answer is the one of a run with memory to spare.
func TestAggregateSplitsPartition(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	aggs := ordered("n", "count(*)", "fs", "first(s)", "ls", "last(s)", "mx", "max(x)", "fx", "first(x)")
	serial, err := runAgg(t, mem, randomBatches(t, mem, 7, 12, 2000, 20000), []string{"k"}, aggs, runOpts{})
	if err != nil {
		t.Fatal(err)
	}
	for _, par := range []int{1, 2} {
		splits := aggSplits.Load()
		got, err := runAgg(t, mem, randomBatches(t, mem, 7, 12, 2000, 20000), []string{"k"}, aggs, runOpts{parallelism: par, budget: 192 << 10, batchRows: 256})
		if err != nil {
			t.Fatalf("parallelism %d: %v", par, err)
		}
		if strings.Join(got.rows, "\n") != strings.Join(serial.rows, "\n") {
			t.Errorf("parallelism %d: %d rows differ from one instance's with memory to spare (%d)", par, len(got.rows), len(serial.rows))
		}
		if aggSplits.Load() == splits {
			t.Errorf("parallelism %d: no partition was split", par)
		}
	}
}

// TestAggregateDictionaryKey: a dictionary key column groups as its
// values do — entries looked up once per batch (dictGroups), NULL rows,
// NULL and repeated dictionary values, dictionaries larger than the batch
// (the per-row way) — in memory and spilling, one and two instances.
func TestAggregateDictionaryKey(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dictType := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}
	make := func(asDict bool) []arrow.RecordBatch {
		r := rand.New(rand.NewSource(3))
		var out []arrow.RecordBatch
		for b := range 30 {
			rows := 2000
			if b%7 == 3 {
				rows = 20 // smaller than its dictionary: the per-row way
			}
			// A dictionary of its own per batch, with a NULL and a repeated value.
			words := []string{"a", "b", "∅", "c", "a"}
			for w := range 50 + r.Intn(400) {
				words = append(words, fmt.Sprintf("w%d", w*3))
			}
			var idx []int
			var x []string
			for range rows {
				if r.Intn(30) == 0 {
					idx = append(idx, -1)
				} else {
					idx = append(idx, r.Intn(len(words)))
				}
				x = append(x, strconv.Itoa(r.Intn(100)))
			}
			var keys arrow.Array
			if asDict {
				db := array.NewStringBuilder(mem)
				for _, w := range words {
					if w == "∅" {
						db.AppendNull()
					} else {
						db.Append(w)
					}
				}
				dict := db.NewArray()
				db.Release()
				ib := array.NewInt32Builder(mem)
				for _, i := range idx {
					if i < 0 {
						ib.AppendNull()
					} else {
						ib.Append(int32(i))
					}
				}
				ix := ib.NewArray()
				ib.Release()
				keys = array.NewDictionaryArray(dictType, ix, dict)
				ix.Release()
				dict.Release()
			} else {
				sb := array.NewStringBuilder(mem)
				for _, i := range idx {
					if i < 0 || words[i] == "∅" {
						sb.AppendNull()
					} else {
						sb.Append(words[i])
					}
				}
				keys = sb.NewArray()
				sb.Release()
			}
			xb := array.NewInt64Builder(mem)
			for _, v := range x {
				n, _ := strconv.ParseInt(v, 10, 64)
				xb.Append(n)
			}
			xs := xb.NewArray()
			xb.Release()
			schema := arrow.NewSchema([]arrow.Field{{Name: "k", Type: keys.DataType(), Nullable: true}, {Name: "x", Type: arrow.PrimitiveTypes.Int64}}, nil)
			out = append(out, array.NewRecordBatch(schema, []arrow.Array{keys, xs}, int64(rows)))
			keys.Release()
			xs.Release()
		}
		return out
	}
	aggs := ordered("n", "count(*)", "sx", "sum(x)", "dx", "count(DISTINCT x)")
	want, err := runAgg(t, mem, make(false), []string{"k"}, aggs, runOpts{})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []runOpts{{}, {parallelism: 2}, {budget: 256 << 10}, {parallelism: 2, budget: 256 << 10}} {
		got, err := runAgg(t, mem, make(true), []string{"k"}, aggs, o)
		if err != nil {
			t.Fatalf("%+v: %v", o, err)
		}
		if strings.Join(got.rows, "\n") != strings.Join(want.rows, "\n") {
			t.Errorf("%+v: %d groups, the plain strings give %d; first %v / %v", o, len(got.rows), len(want.rows), head(got.rows), head(want.rows))
		}
	}
}
