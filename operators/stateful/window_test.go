package stateful

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"

	"github.com/zflowdev/zflow/buffers"
	"github.com/zflowdev/zflow/engine"
)

var secTS = &arrow.TimestampType{Unit: arrow.Second}

// event is a row of the window tests: an event time in seconds (null
// when !ok), a key and a value.
type event struct {
	t   int64
	ok  bool
	key string
	v   int64
}

// eventBatches cuts events into batches of size rows: ts (seconds), k, v.
func eventBatches(mem memory.Allocator, evs []event, size int) []arrow.RecordBatch {
	schema := arrow.NewSchema([]arrow.Field{{Name: "ts", Type: secTS, Nullable: true},
		{Name: "k", Type: arrow.BinaryTypes.String, Nullable: true}, {Name: "v", Type: arrow.PrimitiveTypes.Int64, Nullable: true}}, nil)
	var out []arrow.RecordBatch
	for from := 0; from < len(evs); from += size {
		b := array.NewRecordBuilder(mem, schema)
		for _, e := range evs[from:min(from+size, len(evs))] {
			if e.ok {
				b.Field(0).(*array.TimestampBuilder).Append(arrow.Timestamp(e.t))
			} else {
				b.Field(0).AppendNull()
			}
			b.Field(1).(*array.StringBuilder).Append(e.key)
			b.Field(2).(*array.Int64Builder).Append(e.v)
		}
		out = append(out, b.NewRecordBatch())
		b.Release()
	}
	return out
}

type windowRun struct {
	rows, late []string // sorted
	summary    engine.Summary
}

// runWindow runs batches through a window node (cfg; its late port read
// by a second sink) and returns both outputs as sorted text rows.
func runWindow(t *testing.T, mem memory.Allocator, batches []arrow.RecordBatch, cfg *WindowConfig, budget int64) (windowRun, error) {
	t.Helper()
	defer releaseRecs(batches)
	var res windowRun
	var mu sync.Mutex
	var cols, lcols []string
	node := &engine.Node{ID: "w", Kind: engine.KindTransform, Type: "window", Inputs: []string{"src"}, Config: cfg, ConfigFrom: engine.ConfigDefaults}
	if budget > 0 {
		node.Memory = &buffers.PoolConfig{Budget: budget}
	}
	s := engine.DefaultSettings()
	s.BatchRows = 4096
	g := &engine.Graph{Name: "t", Settings: s, Nodes: []*engine.Node{
		{ID: "src", Kind: engine.KindSource, Type: "batches", Config: &batchesConfig{schema: batches[0].Schema(), batches: batches}},
		node,
		{ID: "out", Kind: engine.KindSink, Type: "rows", Inputs: []string{"w"}, Config: &rowsConfig{mu: &mu, rows: &res.rows, cols: &cols}},
		{ID: "lateout", Kind: engine.KindSink, Type: "rows", Inputs: []string{"w.late"}, Config: &rowsConfig{mu: &mu, rows: &res.late, cols: &lcols}},
	}}
	p, err := engine.Compile(g, engine.CompileOptions{Registry: testRegistry()})
	if err != nil {
		return res, err
	}
	res.summary, err = p.Run(context.Background(), engine.RunOptions{Alloc: mem})
	sort.Strings(res.rows)
	sort.Strings(res.late)
	return res, err
}

// refWindow is the window's semantics written out row by row: the
// watermark as the rows before a row left it, the windows holding the
// row, late when every one of them has closed; count(*) and sum(v) per
// window and key. Times are seconds.
func refWindow(evs []event, size, hop, wm, late int64) (rows, lates []string) {
	type wk struct {
		s   int64
		ok  bool
		key string
	}
	type agg struct{ n, sum int64 }
	aggs := map[wk]*agg{}
	maxTs := int64(math.MinInt64)
	add := func(k wk, v int64) {
		a := aggs[k]
		if a == nil {
			a = &agg{}
			aggs[k] = a
		}
		a.n++
		a.sum += v
	}
	ts := func(s int64) string { return time.Unix(s, 0).UTC().Format("2006-01-02T15:04:05") }
	for _, e := range evs {
		if !e.ok {
			add(wk{key: e.key}, e.v)
			continue
		}
		placed := false
		for s := int64(math.Floor(float64(e.t)/float64(hop))) * hop; s > e.t-size; s -= hop {
			if maxTs != math.MinInt64 && s+size+late <= maxTs-wm {
				continue
			}
			add(wk{s: s, ok: true, key: e.key}, e.v)
			placed = true
		}
		if !placed {
			lates = append(lates, fmt.Sprintf("%s|%s|%d", ts(e.t), e.key, e.v))
		}
		maxTs = max(maxTs, e.t)
	}
	for k, a := range aggs {
		start, end := "∅", "∅"
		if k.ok {
			start, end = ts(k.s), ts(k.s+size)
		}
		rows = append(rows, fmt.Sprintf("%s|%s|%s|%d|%d", start, end, k.key, a.n, a.sum))
	}
	sort.Strings(rows)
	sort.Strings(lates)
	return rows, lates
}

// randomEvents makes n events about a second apart, each displaced by up
// to jitter seconds either way, some with NULL times.
func randomEvents(seed uint64, n int, jitter int64, nulls bool) []event {
	r := rand.New(rand.NewPCG(seed, 1))
	evs := make([]event, n)
	for i := range evs {
		evs[i] = event{t: 1_700_000_000 + int64(i), ok: true, key: fmt.Sprintf("k%d", r.IntN(5)), v: int64(r.IntN(100))}
		if jitter > 0 {
			evs[i].t += r.Int64N(2*jitter+1) - jitter
		}
		if nulls && r.IntN(50) == 0 {
			evs[i].ok = false
		}
	}
	return evs
}

// TestWindowAgainstReference: tumbling and hopping windows, in order and
// out of order, watermark and lateness, NULL times, in memory and
// spilling, against refWindow: the windows, their groups, the late rows.
func TestWindowAgainstReference(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	aggs := ordered("n", "count(*)", "sv", "sum(v)")
	for _, tc := range []struct {
		name                 string
		size, hop, wm, late  int64 // seconds
		jitter               int64
		nulls                bool
		batch                int
		budget               int64
		wantLate, wantNoLate bool
	}{
		{name: "tumbling in order", size: 60, jitter: 0, batch: 1000, wantNoLate: true},
		{name: "tumbling in order, one-row batches", size: 60, batch: 1, wantNoLate: true},
		{name: "hopping in order", size: 60, hop: 15, batch: 777, wantNoLate: true},
		{name: "out of order, no watermark", size: 60, jitter: 30, batch: 500, nulls: true, wantLate: true},
		{name: "out of order, watermark covers it", size: 60, wm: 60, jitter: 30, batch: 500, nulls: true, wantNoLate: true},
		{name: "out of order, lateness covers part", size: 30, hop: 10, wm: 5, late: 10, jitter: 40, batch: 300, wantLate: true},
		{name: "spilling", size: 86400, jitter: 5, wm: 10, batch: 2000, budget: 512 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hop := tc.hop
			if hop == 0 {
				hop = tc.size
			}
			n := 20000
			if tc.budget > 0 {
				n = 100000
			}
			evs := randomEvents(uint64(len(tc.name)), n, tc.jitter, tc.nulls)
			if tc.budget > 0 {
				for i := range evs { // many keys, so that a window's groups outgrow the budget
					evs[i].key = fmt.Sprintf("key%06d", i%40000)
				}
			}
			wantRows, wantLate := refWindow(evs, tc.size, hop, tc.wm, tc.late)
			cfg := &WindowConfig{Time: "ts", Size: time.Duration(tc.size) * time.Second, Hop: time.Duration(tc.hop) * time.Second,
				Watermark: time.Duration(tc.wm) * time.Second, AllowedLateness: time.Duration(tc.late) * time.Second,
				GroupBy: []string{"k"}, Aggregates: aggs}
			spills := aggSpills.Load()
			got, err := runWindow(t, mem, eventBatches(mem, evs, tc.batch), cfg, tc.budget)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got.rows, "\n") != strings.Join(wantRows, "\n") {
				t.Errorf("%d window rows, want %d; first: %v / %v", len(got.rows), len(wantRows), head(got.rows), head(wantRows))
			}
			if strings.Join(got.late, "\n") != strings.Join(wantLate, "\n") {
				t.Errorf("%d late rows, want %d; first: %v / %v", len(got.late), len(wantLate), head(got.late), head(wantLate))
			}
			if tc.wantLate && len(wantLate) == 0 || tc.wantNoLate && len(wantLate) > 0 {
				t.Errorf("the case is not what it says: %d late rows", len(wantLate))
			}
			if tc.budget > 0 && aggSpills.Load() == spills {
				t.Error("did not spill")
			}
		})
	}
}

func head(s []string) []string { return s[:min(len(s), 2)] }

// TestWindowClosesAsTheWatermarkPasses: a window is emitted when the
// watermark passes its end plus the allowed lateness — not at the end of
// the input — and rows for it after that are late.
func TestWindowClosesAsTheWatermarkPasses(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	e := newEnv(t, 0, 1024, engine.SpillSettings{})
	defer e.done(t)
	cfg := &WindowConfig{Time: "ts", Size: time.Minute, AllowedLateness: 15 * time.Second, Aggregates: ordered("n", "count(*)")}
	ev := func(ts ...int64) []event {
		var out []event
		for _, x := range ts {
			out = append(out, event{t: x, ok: true, key: "a"})
		}
		return out
	}
	batches := [][]event{ev(0, 10, 70), ev(30, 65), ev(80), ev(20, 90), ev(200)}
	// After each batch: the windows emitted so far (by start), and the late rows.
	wantOut := []string{"", "", "0:3", "0:3", "0:3 60:4"}
	wantLate := []int{0, 0, 0, 1, 1}
	build, err := WindowSpec().Build(&engine.BuildContext{Node: "w", Inputs: []*arrow.Schema{eventSchema()}, Settings: e.ic.Settings}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := build.New(e.ic)
	if err != nil {
		t.Fatal(err)
	}
	w := inst.(*window)
	defer w.Release()
	c := &collector{keep: true}
	defer c.release()
	for i, evs := range batches {
		b := eventBatches(e.mem, evs, 10)[0]
		err := w.Process(context.Background(), 0, b, c)
		b.Release()
		if err != nil {
			t.Fatal(err)
		}
		if got := windowCounts(c.recs); got != wantOut[i] {
			t.Errorf("after batch %d: emitted %q, want %q", i, got, wantOut[i])
		}
		if int(w.lateRows) != wantLate[i] {
			t.Errorf("after batch %d: %d late rows, want %d", i, w.lateRows, wantLate[i])
		}
	}
	if err := w.Finish(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if got := windowCounts(c.recs); got != "0:3 60:4 180:1" {
		t.Errorf("at the end: %q", got)
	}
}

func eventSchema() *arrow.Schema {
	return arrow.NewSchema([]arrow.Field{{Name: "ts", Type: secTS, Nullable: true},
		{Name: "k", Type: arrow.BinaryTypes.String, Nullable: true}, {Name: "v", Type: arrow.PrimitiveTypes.Int64, Nullable: true}}, nil)
}

// windowCounts renders emitted window rows (window_start, window_end, n)
// as "start:n ..." in seconds.
func windowCounts(recs []arrow.RecordBatch) string {
	var parts []string
	for _, r := range recs {
		st, n := r.Column(0).(*array.Timestamp), r.Column(2).(*array.Int64)
		for i := range int(r.NumRows()) {
			parts = append(parts, fmt.Sprintf("%d:%d", st.Value(i), n.Value(i)))
		}
	}
	return strings.Join(parts, " ")
}

// TestWindowErrors: configs a window cannot run are refused at compile
// time, saying which parameter and why.
func TestWindowErrors(t *testing.T) {
	in := eventSchema()
	aggs := ordered("n", "count(*)")
	for _, tc := range []struct {
		cfg  WindowConfig
		want string
	}{
		{WindowConfig{Time: "k", Size: time.Minute, Aggregates: aggs}, "the event time must be a timestamp"},
		{WindowConfig{Time: "nope", Size: time.Minute, Aggregates: aggs}, "nope"},
		{WindowConfig{Time: "ts", Size: 0, Aggregates: aggs}, "size: must be positive"},
		{WindowConfig{Time: "ts", Size: time.Minute, Hop: 25 * time.Second, Aggregates: aggs}, "must be a multiple of hop"},
		{WindowConfig{Time: "ts", Size: time.Minute, Hop: 2 * time.Minute, Aggregates: aggs}, "must be a multiple of hop"},
		{WindowConfig{Time: "ts", Size: 1500 * time.Millisecond, Aggregates: aggs}, "not a whole number of the time column's unit"},
		{WindowConfig{Time: "ts", Size: time.Minute, Watermark: -time.Second, Aggregates: aggs}, "watermark: must be 0 or more"},
		{WindowConfig{Time: "ts", Size: time.Minute, GroupBy: []string{"k AS window_start"}, Aggregates: aggs}, "window adds"},
		{WindowConfig{Time: "ts", Size: time.Minute, Aggregates: ordered("window_end", "count(*)")}, "window adds"},
		{WindowConfig{Time: "ts", Size: time.Minute, Aggregates: ordered("x", "sum(k)")}, "sum"},
	} {
		_, err := WindowSpec().Build(&engine.BuildContext{Node: "w", Inputs: []*arrow.Schema{in}}, &tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

// TestWindowPortErrors: an input naming an output port that does not
// exist is refused, saying which ports there are.
func TestWindowPortErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"w.nope", `window "w" has no output port "nope"; its ports: late`},
		{"src.late", `batches "src" has one output, no port "late" (write "src")`},
		{"x.late", `input "x.late" does not exist`},
	} {
		g := &engine.Graph{Name: "t", Settings: engine.DefaultSettings(), Nodes: []*engine.Node{
			{ID: "src", Kind: engine.KindSource, Type: "batches", Config: &batchesConfig{schema: eventSchema()}},
			{ID: "w", Kind: engine.KindTransform, Type: "window", Inputs: []string{"src"}, ConfigFrom: engine.ConfigDefaults,
				Config: &WindowConfig{Time: "ts", Size: time.Minute, Aggregates: ordered("n", "count(*)")}},
			{ID: "out", Kind: engine.KindSink, Type: "rows", Inputs: []string{"w"}, Config: &rowsConfig{}},
			{ID: "late", Kind: engine.KindSink, Type: "rows", Inputs: []string{tc.in}, Config: &rowsConfig{}},
		}}
		_, err := engine.Compile(g, engine.CompileOptions{Registry: testRegistry()})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.in, err, tc.want)
		}
	}
}
