package stateful

import (
	"context"
	"fmt"
	"sort"
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
		if s.c.cancelAfter > 0 && i == s.c.cancelAfter {
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
	mu   *sync.Mutex
	rows *[]string
	cols *[]string
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
	src := &batchesConfig{schema: batches[0].Schema(), batches: batches, cancelAfter: o.cancelAfter, cancel: cancel}
	par := o.parallelism
	if par == 0 {
		par = 1
	}
	node := &engine.Node{ID: "agg", Kind: engine.KindTransform, Type: "aggregate", Inputs: []string{"src"}, Parallelism: par,
		Config: &AggregateConfig{GroupBy: groupBy, Aggregates: aggs}, ConfigFrom: engine.ConfigDefaults}
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
