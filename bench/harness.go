package bench

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/metrics"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/operators"
	"github.com/zflowdev/zflow/operators/expr"
)

// The workload. The predicate keeps qty > 100 (90 % of the rows) for 8 of
// the 20 symbols: about 36 % of the rows. The same predicate, data shape and
// computed column are used by the DuckDB comparison
// (pipelines/filter_project.yaml).
const (
	Where    = "qty > 100 AND symbol IN ('SYM0001', 'SYM0002', 'SYM0003', 'SYM0005', 'SYM0008', 'SYM0013', 'SYM0017', 'SYM0019')"
	Notional = "price * qty"
	Seed     = 20240102
	// Edges is the number of edges of the core pipeline: source → filter →
	// project → discard.
	Edges = 3
)

// TradesConfig is the generate source's config for rows trades, the same
// columns as pipelines/gen_trades.yaml.
func TradesConfig(rows int64, batchRows int) *operators.GenerateConfig {
	return &operators.GenerateConfig{
		Rows: rows, Seed: Seed, BatchRows: batchRows,
		Columns: []operators.GenerateColumn{
			{Name: "ts", Type: "timestamp", Start: "2024-01-02T09:30:00Z", Step: time.Millisecond},
			{Name: "symbol", Type: "string", Cardinality: 20, Prefix: "SYM"},
			{Name: "price", Type: "float64", Min: 10, Max: 500, Cardinality: 49001},
			{Name: "qty", Type: "int64", Min: 1, Max: 1000},
		},
	}
}

var (
	regOnce sync.Once
	reg     *engine.Registry
)

// Registry returns the private registry the benchmarks compile against: the
// built-in generate, filter, project and discard operators (from their
// exported specs) and the bench-only replay source and collect sink.
func Registry() *engine.Registry {
	regOnce.Do(func() {
		reg = engine.NewRegistry()
		for _, s := range []engine.Spec{
			operators.GenerateSpec(), operators.FilterSpec(), operators.ProjectSpec(), operators.DiscardSpec(),
			replaySpec(), collectSpec(),
		} {
			reg.MustRegister(s)
		}
	})
	return reg
}

// Data is a set of pre-generated batches. It owns one reference to each
// batch; Release drops them.
type Data struct {
	Schema  *arrow.Schema
	Batches []arrow.RecordBatch
	Rows    int64
	Bytes   int64 // engine.BatchBytes summed
}

// Release releases the batches.
func (d *Data) Release() {
	for i, b := range d.Batches {
		b.Release()
		d.Batches[i] = nil
	}
	d.Batches = nil
}

// Generate makes rows trades in batches of batchRows rows, allocated from
// mem, by running the real generate source into a collecting sink.
func Generate(ctx context.Context, mem memory.Allocator, rows int64, batchRows int) (*Data, error) {
	cs := &collectConfig{}
	g := &engine.Graph{
		Name:     "bench_generate_data",
		Settings: engine.Settings{BatchRows: batchRows},
		Nodes: []*engine.Node{
			{ID: "trades", Kind: engine.KindSource, Type: "generate", Config: TradesConfig(rows, batchRows)},
			{ID: "keep", Kind: engine.KindSink, Type: "bench_collect", Config: cs, Inputs: []string{"trades"}},
		},
	}
	p, err := engine.Compile(g, engine.CompileOptions{Registry: Registry()})
	if err != nil {
		return nil, fmt.Errorf("bench: compile the data generator: %w", err)
	}
	if _, err := p.Run(ctx, engine.RunOptions{Alloc: mem}); err != nil {
		return nil, fmt.Errorf("bench: generate %d rows: %w", rows, err)
	}
	d := &Data{Schema: p.Schema("trades"), Batches: cs.take()}
	for _, b := range d.Batches {
		d.Rows += b.NumRows()
		d.Bytes += engine.BatchBytes(b)
	}
	return d, nil
}

// Result is what one run (loop or pipeline) produced.
type Result struct {
	RowsOut  int64 // rows after the filter
	BytesOut int64 // payload of the projected batches (kept columns + notional)
}

// Loop is the baseline: the same compiled expressions the filter and project
// operators run, called in a plain loop with no engine around them.
type Loop struct {
	pred, notional *expr.Compiled
}

// NewLoop compiles Where and Notional against schema.
func NewLoop(schema *arrow.Schema) (*Loop, error) {
	pred, err := expr.Compile(Where, schema)
	if err != nil {
		return nil, fmt.Errorf("bench: compile %q: %w", Where, err)
	}
	// The filter keeps its input schema, so the project operator compiles
	// its column against the same schema.
	notional, err := expr.Compile(Notional, schema)
	if err != nil {
		return nil, fmt.Errorf("bench: compile %q: %w", Notional, err)
	}
	return &Loop{pred: pred, notional: notional}, nil
}

// Run filters every batch of d and computes the notional column of what is
// kept, releasing each result at once, as the discard sink does. It makes
// exactly the Select and Eval calls the filter and project operators make.
func (l *Loop) Run(ctx context.Context, mem memory.Allocator, d *Data) (Result, error) {
	var r Result
	for _, b := range d.Batches {
		kept, _, err := l.pred.Select(ctx, mem, b)
		if err != nil {
			return r, err
		}
		if kept == nil {
			continue
		}
		col, err := l.notional.Eval(ctx, mem, kept)
		if err != nil {
			kept.Release()
			return r, err
		}
		r.RowsOut += kept.NumRows()
		r.BytesOut += engine.BatchBytes(kept) + engine.ArrayBytes(col.Data())
		col.Release()
		kept.Release()
	}
	return r, nil
}

// Pipeline builds the core pipeline source → filter → project → discard. With
// d non-nil the source replays d's batches (by reference); with d nil it is
// the generate source making rows rows in batches of batchRows.
func Pipeline(d *Data, rows int64, batchRows int) (*engine.Plan, error) {
	src := &engine.Node{ID: "trades", Kind: engine.KindSource}
	name := "bench_replay"
	if d != nil {
		src.Type, src.Config = "bench_replay", &replayConfig{data: d}
	} else {
		name = "bench_generate"
		src.Type, src.Config = "generate", TradesConfig(rows, batchRows)
	}
	g := &engine.Graph{
		Name:     name,
		Settings: engine.Settings{BatchRows: batchRows},
		Nodes: []*engine.Node{
			src,
			{ID: "big", Kind: engine.KindTransform, Type: "filter", Inputs: []string{"trades"},
				Config: &operators.FilterConfig{Where: Where}},
			{ID: "notional", Kind: engine.KindTransform, Type: "project", Inputs: []string{"big"},
				Config: &operators.ProjectConfig{Columns: []string{"*", Notional + " AS notional"}}},
			{ID: "out", Kind: engine.KindSink, Type: "discard", Inputs: []string{"notional"}},
		},
	}
	p, err := engine.Compile(g, engine.CompileOptions{Registry: Registry()})
	if err != nil {
		return nil, fmt.Errorf("bench: compile %s: %w", name, err)
	}
	return p, nil
}

// BarePipeline builds replay → project(*) → project(*) → discard over d: the
// same three edges as Pipeline with next to no work on them (a project that
// keeps every column by reference only retains them into a new batch), so
// its time per batch per edge is the engine's cost of an edge crossing.
func BarePipeline(d *Data) (*engine.Plan, error) {
	all := &operators.ProjectConfig{Columns: []string{"*"}}
	g := &engine.Graph{
		Name:     "bench_bare",
		Settings: engine.Settings{BatchRows: int(max(1, d.Rows/int64(max(1, len(d.Batches)))))},
		Nodes: []*engine.Node{
			{ID: "trades", Kind: engine.KindSource, Type: "bench_replay", Config: &replayConfig{data: d}},
			{ID: "p1", Kind: engine.KindTransform, Type: "project", Inputs: []string{"trades"}, Config: all},
			{ID: "notional", Kind: engine.KindTransform, Type: "project", Inputs: []string{"p1"}, Config: all},
			{ID: "out", Kind: engine.KindSink, Type: "discard", Inputs: []string{"notional"}},
		},
	}
	p, err := engine.Compile(g, engine.CompileOptions{Registry: Registry()})
	if err != nil {
		return nil, fmt.Errorf("bench: compile bench_bare: %w", err)
	}
	return p, nil
}

// RunPipeline runs p (made by Pipeline or BarePipeline) with mem and returns what reached
// the sink, and the run's summary.
func RunPipeline(ctx context.Context, p *engine.Plan, mem memory.Allocator) (Result, engine.Summary, error) {
	sum, err := p.Run(ctx, engine.RunOptions{Alloc: mem})
	if err != nil {
		return Result{}, sum, err
	}
	r := Result{}
	if o := sum.Op("notional"); o != nil {
		r.RowsOut, r.BytesOut = o.RowsOut, o.BytesOut
	}
	return r, sum, nil
}

// Cost is the wall time, heap allocation count and goroutines started of
// one call.
type Cost struct {
	Elapsed    time.Duration
	Mallocs    uint64 // runtime.MemStats.Mallocs delta (every Go heap object, arrow buffers included)
	Goroutines uint64 // goroutines created (arrow-go's compute starts one per CallFunction)
}

const goroutinesCreated = "/sched/goroutines-created:goroutines"

func goroutines() uint64 {
	s := []metrics.Sample{{Name: goroutinesCreated}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// Measure runs fn once and returns its cost.
func Measure(fn func() error) (Cost, error) {
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	g0 := goroutines()
	t0 := time.Now()
	err := fn()
	el := time.Since(t0)
	g1 := goroutines()
	runtime.ReadMemStats(&m1)
	return Cost{Elapsed: el, Mallocs: m1.Mallocs - m0.Mallocs, Goroutines: g1 - g0}, err
}

// errNoData is returned by a replay source built without data.
var errNoData = errors.New("bench: replay source has no data")
