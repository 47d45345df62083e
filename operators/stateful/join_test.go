package stateful

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/zflowdev/zflow/buffers"
	"github.com/zflowdev/zflow/engine"
	"go.uber.org/goleak"
)

// The join is tested through the engine (its ports, barrier and shared
// state are the engine's), with a source of given batches and a sink that
// keeps the rows as text, against a nested-loop join written here.

// keyedData names the batches a test source emits.
type keyedData struct {
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

func joinTestRegistry() *engine.Registry {
	r := engine.NewRegistry()
	r.MustRegister(JoinSpec())
	r.MustRegister(engine.Spec{Name: "batches", Kind: engine.KindSource, NewConfig: func() any { return &keyedData{} },
		Build: func(_ *engine.BuildContext, c any) (engine.Factory, error) {
			v, _ := testData.Load(c.(*keyedData).Key)
			return &batchSourceFactory{v.([]arrow.RecordBatch)}, nil
		}})
	r.MustRegister(engine.Spec{Name: "rows", Kind: engine.KindSink, MinInputs: 1, MaxInputs: 1, NewConfig: func() any { return &keyedData{} },
		Build: func(_ *engine.BuildContext, c any) (engine.Factory, error) {
			v, _ := testData.Load(c.(*keyedData).Key)
			return &rowSinkFactory{v.(*collected)}, nil
		}})
	return r
}

var registry = joinTestRegistry()

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
	return joinRunIn(t, mem, left, right, cfg, par, 0, engine.SpillSettings{})
}

// joinRunIn is joinRun with the join's memory budget (0: none) and spill
// settings.
func joinRunIn(t *testing.T, mem memory.Allocator, left, right []arrow.RecordBatch, cfg JoinConfig, par int, budget int64, spill engine.SpillSettings) ([]string, *arrow.Schema, error) {
	t.Helper()
	lk, rk, sk := newKey(), newKey(), newKey()
	testData.Store(lk, left)
	testData.Store(rk, right)
	c := &collected{}
	testData.Store(sk, c)
	defer func() { testData.Delete(lk); testData.Delete(rk); testData.Delete(sk) }()
	inputs := []string{"l", "r"}
	nodes := []*engine.Node{
		{ID: "l", Kind: engine.KindSource, Type: "batches", Config: &keyedData{lk}},
		{ID: "r", Kind: engine.KindSource, Type: "batches", Config: &keyedData{rk}},
	}
	if left[0] == right[0] { // a self-join: one source on both ports
		nodes, inputs = nodes[:1], []string{"l", "l"}
	}
	nodes = append(nodes,
		&engine.Node{ID: "j", Kind: engine.KindTransform, Type: "join", Inputs: inputs, Config: &cfg, ConfigFrom: engine.ConfigLiteral, Parallelism: par},
		&engine.Node{ID: "out", Kind: engine.KindSink, Type: "rows", Inputs: []string{"j"}, Config: &keyedData{sk}})
	if budget > 0 {
		nodes[len(nodes)-2].Memory = &buffers.PoolConfig{Budget: budget}
	}
	g := &engine.Graph{Name: "join", Settings: engine.Settings{Threads: 2, BatchRows: 4096, Spill: spill}, Nodes: nodes}
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
			lts := a[colIndex(l, cfg.Asof.Left)]
			best, bestT := -1, int64(0)
			for j, b := range r.rows {
				if lts == "NULL" {
					break
				}
				lt := mustInt(lts)
				ts := b[colIndex(r, cfg.Asof.Right)]
				if !match(a, b) || ts == "NULL" {
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
	defer goleak.VerifyNone(t)
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

// randomSide makes batches of rows with two keys (k1 int32/int64, k2
// string or a dictionary of strings), a value and a time, with NULL keys
// and duplicate keys, over few distinct keys.
func randomSide(mem memory.Allocator, rng *rand.Rand, rows, batch int, k1 arrow.DataType, dict bool, val string) []arrow.RecordBatch {
	k2 := arrow.DataType(arrow.BinaryTypes.String)
	if dict {
		k2 = &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}
	}
	s := arrow.NewSchema([]arrow.Field{
		{Name: "k1", Type: k1, Nullable: true}, {Name: "k2", Type: k2, Nullable: true},
		{Name: val, Type: arrow.PrimitiveTypes.Int64}, {Name: "t", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	}, nil)
	var out []arrow.RecordBatch
	for off := 0; off < rows; off += batch {
		b := array.NewRecordBuilder(mem, s)
		for i := off; i < min(off+batch, rows); i++ {
			if rng.IntN(10) == 0 {
				b.Field(0).AppendNull()
			} else if k1.ID() == arrow.INT32 {
				b.Field(0).(*array.Int32Builder).Append(int32(rng.IntN(5)))
			} else {
				b.Field(0).(*array.Int64Builder).Append(int64(rng.IntN(5)))
			}
			name := string(rune('a' + rng.IntN(3)))
			switch kb := b.Field(1).(type) {
			case *array.StringBuilder:
				if rng.IntN(10) == 0 {
					kb.AppendNull()
				} else {
					kb.Append(name)
				}
			case *array.BinaryDictionaryBuilder:
				if rng.IntN(10) == 0 {
					kb.AppendNull()
				} else {
					_ = kb.AppendString(name)
				}
			}
			b.Field(2).(*array.Int64Builder).Append(int64(i))
			if rng.IntN(10) == 0 {
				b.Field(3).AppendNull()
			} else {
				b.Field(3).(*array.Int64Builder).Append(int64(rng.IntN(50)))
			}
		}
		out = append(out, b.NewRecordBatch())
		b.Release()
	}
	return out
}

// TestJoinRandom: two keys of different types on the two sides (int32
// with int64, a dictionary with strings), many batches, at parallelism 1
// and 2, every how and both build sides, and the as-of join.
func TestJoinRandom(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rng := rand.New(rand.NewPCG(1, 2))
	left := randomSide(mem, rng, 700, 64, arrow.PrimitiveTypes.Int32, true, "lv")
	defer release(left)
	right := randomSide(mem, rng, 300, 50, arrow.PrimitiveTypes.Int64, false, "rv")
	defer release(right)
	var cfgs []JoinConfig
	for _, how := range []string{"inner", "left", "right", "full", "semi", "anti"} {
		cfgs = append(cfgs, JoinConfig{How: how, LeftOn: []string{"k1", "k2"}, RightOn: []string{"k1", "k2"}},
			JoinConfig{How: how, LeftOn: []string{"k1", "k2"}, RightOn: []string{"k1", "k2"}, Build: "left"})
		if how != "right" && how != "full" {
			cfgs = append(cfgs, JoinConfig{How: how, On: []string{"k1", "k2"}})
		}
	}
	cfgs = append(cfgs,
		JoinConfig{How: "asof", On: []string{"k1", "k2"}, Asof: AsofConfig{Left: "t", Right: "t"}},
		JoinConfig{How: "asof", On: []string{"k1"}, Asof: AsofConfig{Left: "t", Right: "t", KeepUnmatched: true}})
	for _, cfg := range cfgs {
		want := nestedLoop(tableOf(left), tableOf(right), cfg)
		if cfg.How == "asof" {
			// Equal right times make several answers right; the nested
			// loop takes the last, so does the join at parallelism 1.
			cfg := cfg
			got, _, err := joinRun(t, mem, left, right, cfg, 1)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("%+v: %d rows, want %d\n%s", cfg, len(got), len(want), diff(got, want))
			}
			continue
		}
		for _, par := range []int{1, 2} {
			got, _, err := joinRun(t, mem, left, right, cfg, par)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("%+v par %d: %d rows, want %d\n%s", cfg, par, len(got), len(want), diff(got, want))
			}
		}
	}
}

func diff(got, want []string) string {
	var sb strings.Builder
	for _, g := range got {
		if !slices.Contains(want, g) {
			fmt.Fprintf(&sb, "+ %s\n", g)
		}
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			fmt.Fprintf(&sb, "- %s\n", w)
		}
	}
	if sb.Len() > 2000 {
		return sb.String()[:2000]
	}
	return sb.String()
}

// TestJoinSelf: one source feeds both ports (inputs: [l, l]); its batches
// reach both sides by reference and nothing waits for anything.
func TestJoinSelf(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rng := rand.New(rand.NewPCG(3, 4))
	side := randomSide(mem, rng, 2000, 100, arrow.PrimitiveTypes.Int64, false, "v")
	defer release(side)
	for _, par := range []int{1, 2} {
		cfg := JoinConfig{How: "inner", On: []string{"k1", "k2"}}
		got, _, err := joinRun(t, mem, side, side, cfg, par)
		if err != nil {
			t.Fatal(err)
		}
		want := nestedLoop(tableOf(side), tableOf(side), cfg)
		if !slices.Equal(got, want) {
			t.Errorf("par %d: %d rows, want %d", par, len(got), len(want))
		}
	}
}

// TestJoinEmpty: an empty build side, an empty probe side.
func TestJoinEmpty(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	full := fromJSON(t, mem, trades, `[{"sym":"A","ts":1,"qty":10},{"sym":"B","ts":2,"qty":20}]`)
	defer release(full)
	empty := fromJSON(t, mem, quotes, `[]`)
	defer release(empty)
	emptyL := fromJSON(t, mem, trades, `[]`)
	defer release(emptyL)
	fullR := fromJSON(t, mem, quotes, `[{"sym":"A","ts":0,"px":1.5}]`)
	defer release(fullR)
	for _, how := range []string{"inner", "left", "right", "full", "semi", "anti"} {
		for _, c := range []struct{ l, r []arrow.RecordBatch }{{full, empty}, {emptyL, fullR}, {emptyL, empty}} {
			cfg := JoinConfig{How: how, On: []string{"sym"}}
			got, _, err := joinRun(t, mem, c.l, c.r, cfg, 2)
			if err != nil {
				t.Fatal(err)
			}
			if want := nestedLoop(tableOf(c.l), tableOf(c.r), cfg); !slices.Equal(got, want) {
				t.Errorf("%s: got %q, want %q", how, got, want)
			}
		}
	}
}

// TestJoinAsofEdges: an exact tie of times, no earlier row, a NULL time,
// several keys, inner and keep_unmatched.
func TestJoinAsofEdges(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	left := fromJSON(t, mem, trades, `[{"sym":"A","ts":5,"qty":1},{"sym":"A","ts":3,"qty":2},{"sym":"A","ts":0,"qty":3},
		{"sym":"B","ts":9,"qty":4},{"sym":"A","ts":null,"qty":5},{"sym":null,"ts":9,"qty":6},{"sym":"C","ts":1,"qty":7}]`)
	defer release(left)
	right := fromJSON(t, mem, quotes, `[{"sym":"A","ts":3,"px":1},{"sym":"A","ts":1,"px":2},{"sym":"B","ts":10,"px":3},
		{"sym":"A","ts":null,"px":4},{"sym":"A","ts":6,"px":5}]`)
	defer release(right)
	got, _, err := joinRun(t, mem, left, right, JoinConfig{How: "asof", On: []string{"sym"}, Asof: AsofConfig{Left: "ts", Right: "ts"}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"A|3|2|3|1", "A|5|1|3|1"} // 3 ties with 3; 0 has no earlier row
	if !slices.Equal(got, want) {
		t.Errorf("inner: got %q, want %q", got, want)
	}
	got, _, err = joinRun(t, mem, left, right, JoinConfig{How: "asof", On: []string{"sym"}, Asof: AsofConfig{Left: "ts", Right: "ts", KeepUnmatched: true}}, 2)
	if err != nil {
		t.Fatal(err)
	}
	want = []string{"A|0|3|NULL|NULL", "A|3|2|3|1", "A|5|1|3|1", "A|NULL|5|NULL|NULL", "B|9|4|NULL|NULL", "C|1|7|NULL|NULL", "NULL|9|6|NULL|NULL"}
	if !slices.Equal(got, want) {
		t.Errorf("keep_unmatched: got %q, want %q", got, want)
	}
	// No keys: the latest quote of any symbol.
	got, _, err = joinRun(t, mem, left, right, JoinConfig{How: "asof", Asof: AsofConfig{Left: "ts", Right: "ts"}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	want = []string{"A|3|2|A|3|1", "A|5|1|A|3|1", "B|9|4|A|6|5", "C|1|7|A|1|2", "NULL|9|6|A|6|5"}
	if !slices.Equal(got, want) {
		t.Errorf("no keys: got %q, want %q", got, want)
	}
}

// TestJoinErrors: the compile errors name the parameter and say why.
func TestJoinErrors(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	l := fromJSON(t, mem, trades, `[{"sym":"A","ts":1,"qty":10}]`)
	defer release(l)
	r := fromJSON(t, mem, quotes, `[{"sym":"A","ts":0,"px":1.5}]`)
	defer release(r)
	for _, c := range []struct {
		cfg  JoinConfig
		want string
	}{
		{JoinConfig{On: []string{"sim"}}, `j.on.0: input "l" has no column "sim", did you mean "sym"?`},
		{JoinConfig{LeftOn: []string{"sym", "ts"}, RightOn: []string{"sym", "nope"}}, `j.right_on.1: input "r" has no column "nope"`},
		{JoinConfig{How: "outer", On: []string{"sym"}}, `how`},
		{JoinConfig{LeftOn: []string{"qty"}, RightOn: []string{"sym"}}, `j.right_on.0: key "qty" is int32 in "l" and "sym" is utf8 in "r": these types do not compare`},
		{JoinConfig{}, `j.on: a join needs key columns`},
		{JoinConfig{LeftOn: []string{"sym"}, RightOn: []string{"sym", "ts"}}, `j.right_on: left_on has 1 columns and right_on 2`},
		{JoinConfig{How: "asof", On: []string{"sym"}}, `j.asof: how: asof needs asof:`},
		{JoinConfig{How: "asof", On: []string{"sym"}, Asof: AsofConfig{Left: "sym", Right: "sym"}}, `j.asof.right: time "sym" is utf8`},
		{JoinConfig{How: "asof", On: []string{"sym"}, Build: "left", Asof: AsofConfig{Left: "ts", Right: "ts"}}, `j.build: an as-of join builds the right side`},
		{JoinConfig{On: []string{"sym"}, Suffix: "x"}, ""}, // ts → tsx
	} {
		_, _, err := joinRun(t, mem, l, r, c.cfg, 1)
		if c.want == "" {
			if err != nil {
				t.Errorf("%+v: %v", c.cfg, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.cfg, err, c.want)
		}
	}
}

// TestJoinCast: int32 keys with int64 ones, on: — the merged key is
// int64; timestamps of two units.
func TestJoinCast(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ls := arrow.NewSchema([]arrow.Field{{Name: "k", Type: arrow.PrimitiveTypes.Int32}, {Name: "at", Type: &arrow.TimestampType{Unit: arrow.Millisecond}}}, nil)
	rs := arrow.NewSchema([]arrow.Field{{Name: "k", Type: arrow.PrimitiveTypes.Int64}, {Name: "at", Type: &arrow.TimestampType{Unit: arrow.Microsecond}}}, nil)
	l := fromJSON(t, mem, ls, `[{"k":1,"at":1},{"k":2,"at":2}]`)
	defer release(l)
	r := fromJSON(t, mem, rs, `[{"k":1,"at":1000},{"k":3,"at":1500}]`)
	defer release(r)
	got, s, err := joinRun(t, mem, l, r, JoinConfig{How: "full", On: []string{"k"}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if s.Field(0).Type.ID() != arrow.INT64 || len(got) != 3 || !strings.HasPrefix(got[2], "3|NULL|") {
		t.Errorf("%v %q", s, got)
	}
	got, _, err = joinRun(t, mem, l, r, JoinConfig{How: "inner", On: []string{"k", "at"}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !strings.HasPrefix(got[0], "1|") {
		t.Errorf("timestamps of two units: %q", got)
	}
}
