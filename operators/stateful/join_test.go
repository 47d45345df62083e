package stateful

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/zflowdev/zflow/engine"
)

// The join is tested through the engine (its ports, barrier and shared
// state are the engine's), with a source of given batches and a sink that
// keeps the rows as text, against a nested-loop join written here.

// batchesConfig names the batches a test source emits.
type batchesConfig struct {
	Key string `zflow:"key"`
}

var testData sync.Map // key → []arrow.RecordBatch (a source) or *collected (a sink)

type collected struct {
	mu   sync.Mutex
	rows []string
	s    *arrow.Schema
}

type batchSource struct{ batches []arrow.RecordBatch }

func (s *batchSource) Run(ctx context.Context, out engine.Emitter) error {
	for _, b := range s.batches {
		b.Retain()
		if err := out.Emit(b); err != nil {
			return err
		}
	}
	return nil
}

type batchSourceFactory struct{ batches []arrow.RecordBatch }

func (f *batchSourceFactory) Schema() *arrow.Schema { return f.batches[0].Schema() }
func (f *batchSourceFactory) New(*engine.InstanceContext) (any, error) {
	return &batchSource{f.batches}, nil
}

type rowSink struct{ c *collected }

func (s *rowSink) Write(_ context.Context, _ int, in arrow.RecordBatch) error {
	rows := rowStrings(in)
	s.c.mu.Lock()
	s.c.rows = append(s.c.rows, rows...)
	s.c.s = in.Schema()
	s.c.mu.Unlock()
	return nil
}
func (s *rowSink) Close(context.Context) error { return nil }
func (s *rowSink) Commit() error               { return nil }
func (s *rowSink) Abort()                      {}

type rowSinkFactory struct{ c *collected }

func (f *rowSinkFactory) Schema() *arrow.Schema                    { return nil }
func (f *rowSinkFactory) New(*engine.InstanceContext) (any, error) { return &rowSink{f.c}, nil }

func testRegistry() *engine.Registry {
	r := engine.NewRegistry()
	r.MustRegister(JoinSpec())
	r.MustRegister(engine.Spec{Name: "batches", Kind: engine.KindSource, NewConfig: func() any { return &batchesConfig{} },
		Build: func(_ *engine.BuildContext, c any) (engine.Factory, error) {
			v, _ := testData.Load(c.(*batchesConfig).Key)
			return &batchSourceFactory{v.([]arrow.RecordBatch)}, nil
		}})
	r.MustRegister(engine.Spec{Name: "rows", Kind: engine.KindSink, MinInputs: 1, MaxInputs: 1, NewConfig: func() any { return &batchesConfig{} },
		Build: func(_ *engine.BuildContext, c any) (engine.Factory, error) {
			v, _ := testData.Load(c.(*batchesConfig).Key)
			return &rowSinkFactory{v.(*collected)}, nil
		}})
	return r
}

var registry = testRegistry()

var keyN int64
var keyMu sync.Mutex

func newKey() string {
	keyMu.Lock()
	defer keyMu.Unlock()
	keyN++
	return strconv.FormatInt(keyN, 10)
}

// joinRun joins left and right (batches; borrowed) with cfg, parallelism
// par, and returns the output rows as text, sorted, and the schema.
func joinRun(t *testing.T, mem memory.Allocator, left, right []arrow.RecordBatch, cfg JoinConfig, par int) ([]string, *arrow.Schema, error) {
	t.Helper()
	lk, rk, sk := newKey(), newKey(), newKey()
	testData.Store(lk, left)
	testData.Store(rk, right)
	c := &collected{}
	testData.Store(sk, c)
	defer func() { testData.Delete(lk); testData.Delete(rk); testData.Delete(sk) }()
	inputs := []string{"l", "r"}
	nodes := []*engine.Node{
		{ID: "l", Kind: engine.KindSource, Type: "batches", Config: &batchesConfig{lk}},
		{ID: "r", Kind: engine.KindSource, Type: "batches", Config: &batchesConfig{rk}},
	}
	if left[0] == right[0] { // a self-join: one source on both ports
		nodes, inputs = nodes[:1], []string{"l", "l"}
	}
	nodes = append(nodes,
		&engine.Node{ID: "j", Kind: engine.KindTransform, Type: "join", Inputs: inputs, Config: &cfg, ConfigFrom: engine.ConfigLiteral, Parallelism: par},
		&engine.Node{ID: "out", Kind: engine.KindSink, Type: "rows", Inputs: []string{"j"}, Config: &batchesConfig{sk}})
	g := &engine.Graph{Name: "join", Settings: engine.Settings{Threads: 2, BatchRows: 4096}, Nodes: nodes}
	p, err := engine.Compile(g, engine.CompileOptions{Registry: registry})
	if err != nil {
		return nil, nil, err
	}
	_, err = p.Run(context.Background(), engine.RunOptions{Alloc: mem})
	slices.Sort(c.rows)
	return c.rows, c.s, err
}

func rowStrings(b arrow.RecordBatch) []string {
	out := make([]string, b.NumRows())
	for i := range out {
		var sb strings.Builder
		for c, col := range b.Columns() {
			if c > 0 {
				sb.WriteByte('|')
			}
			sb.WriteString(cell(col, i))
		}
		out[i] = sb.String()
	}
	return out
}

func cell(a arrow.Array, i int) string {
	if a.IsNull(i) {
		return "NULL"
	}
	if d, ok := a.(*array.Dictionary); ok {
		return cell(d.Dictionary(), d.GetValueIndex(i))
	}
	return a.ValueStr(i)
}

// table is one side's rows as text, for the nested-loop join.
type table struct {
	names []string
	rows  [][]string
}

func tableOf(bs []arrow.RecordBatch) table {
	var t table
	for _, f := range bs[0].Schema().Fields() {
		t.names = append(t.names, f.Name)
	}
	for _, b := range bs {
		for i := range int(b.NumRows()) {
			var r []string
			for _, c := range b.Columns() {
				r = append(r, cell(c, i))
			}
			t.rows = append(t.rows, r)
		}
	}
	return t
}

func colIndex(t table, name string) int { return slices.Index(t.names, name) }

// nestedLoop is the join by definition.
func nestedLoop(l, r table, cfg JoinConfig) []string {
	lk, rk := cfg.LeftOn, cfg.RightOn
	using := len(cfg.On) > 0
	if using {
		lk, rk = cfg.On, cfg.On
	}
	li, ri := make([]int, len(lk)), make([]int, len(rk))
	for k := range lk {
		li[k], ri[k] = colIndex(l, lk[k]), colIndex(r, rk[k])
	}
	match := func(a, b []string) bool {
		for k := range li {
			if a[li[k]] == "NULL" || b[ri[k]] == "NULL" || !numEq(a[li[k]], b[ri[k]]) {
				return false
			}
		}
		return true
	}
	var out []string
	row := func(a, b []string) string {
		var cells []string
		for c := range l.names {
			switch {
			case a != nil:
				if k := slices.Index(li, c); k >= 0 && using && b != nil {
					cells = append(cells, a[c]) // equal to b's
				} else {
					cells = append(cells, a[c])
				}
			case using && slices.Contains(li, c):
				cells = append(cells, b[ri[slices.Index(li, c)]])
			default:
				cells = append(cells, "NULL")
			}
		}
		if cfg.How == "semi" || cfg.How == "anti" {
			return strings.Join(cells, "|")
		}
		for c := range r.names {
			if using && slices.Contains(ri, c) {
				continue
			}
			if b == nil {
				cells = append(cells, "NULL")
			} else {
				cells = append(cells, b[c])
			}
		}
		return strings.Join(cells, "|")
	}
	rmatched := make([]bool, len(r.rows))
	for _, a := range l.rows {
		found := false
		if cfg.How == "asof" {
			lt := mustInt(a[colIndex(l, cfg.Asof.Left)])
			best, bestT := -1, int64(0)
			for j, b := range r.rows {
				ts := b[colIndex(r, cfg.Asof.Right)]
				if !match(a, b) || ts == "NULL" || a[colIndex(l, cfg.Asof.Left)] == "NULL" {
					continue
				}
				if rt := mustInt(ts); rt <= lt && (best < 0 || rt >= bestT) {
					best, bestT = j, rt
				}
			}
			if best >= 0 {
				out = append(out, row(a, r.rows[best]))
			} else if cfg.Asof.KeepUnmatched {
				out = append(out, row(a, nil))
			}
			continue
		}
		for j, b := range r.rows {
			if match(a, b) {
				found = true
				rmatched[j] = true
				if cfg.How != "semi" && cfg.How != "anti" {
					out = append(out, row(a, b))
				}
			}
		}
		switch {
		case cfg.How == "semi" && found, cfg.How == "anti" && !found:
			out = append(out, row(a, nil))
		case !found && (cfg.How == "left" || cfg.How == "full"):
			out = append(out, row(a, nil))
		}
	}
	if cfg.How == "right" || cfg.How == "full" {
		for j, b := range r.rows {
			if !rmatched[j] {
				out = append(out, row(nil, b))
			}
		}
	}
	slices.Sort(out)
	return out
}

func numEq(a, b string) bool {
	if a == b {
		return true
	}
	x, err1 := strconv.ParseFloat(a, 64)
	y, err2 := strconv.ParseFloat(b, 64)
	return err1 == nil && err2 == nil && x == y
}

func mustInt(s string) int64 {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		panic(err)
	}
	return v
}

func fromJSON(t testing.TB, mem memory.Allocator, s *arrow.Schema, js ...string) []arrow.RecordBatch {
	t.Helper()
	var out []arrow.RecordBatch
	for _, j := range js {
		b, _, err := array.RecordFromJSON(mem, s, strings.NewReader(j))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func release(bs []arrow.RecordBatch) {
	for _, b := range bs {
		b.Release()
	}
}

var (
	trades = arrow.NewSchema([]arrow.Field{
		{Name: "sym", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "ts", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "qty", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
	}, nil)
	quotes = arrow.NewSchema([]arrow.Field{
		{Name: "sym", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "ts", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "px", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	}, nil)
)

// TestJoinEveryHow checks each kind of join, on each build side and at
// parallelism 1 and 2, against the nested loop: duplicate keys on both
// sides (N:M), NULL keys on both, rows without a match on both, a clash
// of a non-key name (ts → ts_right).
func TestJoinEveryHow(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	left := fromJSON(t, mem, trades,
		`[{"sym":"A","ts":1,"qty":10},{"sym":"B","ts":2,"qty":20},{"sym":null,"ts":3,"qty":30}]`,
		`[{"sym":"A","ts":4,"qty":40},{"sym":"C","ts":5,"qty":50},{"sym":"D","ts":6,"qty":null}]`)
	defer release(left)
	right := fromJSON(t, mem, quotes,
		`[{"sym":"A","ts":0,"px":1.5},{"sym":"A","ts":3,"px":2.5},{"sym":null,"ts":1,"px":9}]`,
		`[{"sym":"C","ts":2,"px":3.5},{"sym":"E","ts":1,"px":4.5}]`)
	defer release(right)
	for _, how := range []string{"inner", "left", "right", "full", "semi", "anti"} {
		for _, build := range []string{"right", "left"} {
			for _, par := range []int{1, 2} {
				cfg := JoinConfig{How: how, On: []string{"sym"}, Build: build}
				t.Run(fmt.Sprintf("%s/build=%s/par=%d", how, build, par), func(t *testing.T) {
					got, _, err := joinRun(t, mem, left, right, cfg, par)
					if err != nil {
						t.Fatal(err)
					}
					want := nestedLoop(tableOf(left), tableOf(right), cfg)
					if !slices.Equal(got, want) {
						t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
					}
				})
			}
		}
	}
}
