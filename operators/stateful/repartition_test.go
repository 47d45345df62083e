package stateful

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"

	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/operators/expr"
)

// laneSink is a parallel sink that records, for each of its instances,
// the rows it was given as text, and the PartitionedBy it was told.
type laneSink struct {
	mu   sync.Mutex
	rows map[int][]string
	by   map[int][]string
}

type laneSinkFactory struct{ s *laneSink }

func (laneSinkFactory) Schema() *arrow.Schema { return nil }
func (f laneSinkFactory) New(ic *engine.InstanceContext) (any, error) {
	f.s.mu.Lock()
	f.s.by[ic.Index] = ic.PartitionedBy
	f.s.mu.Unlock()
	return &laneInst{s: f.s, k: ic.Index}, nil
}

type laneInst struct {
	s *laneSink
	k int
}

func (l *laneInst) Write(_ context.Context, _ int, b arrow.RecordBatch) error {
	rows := rowsText([]arrow.RecordBatch{b})
	l.s.mu.Lock()
	l.s.rows[l.k] = append(l.s.rows[l.k], rows...)
	l.s.mu.Unlock()
	return nil
}
func (*laneInst) Close(context.Context) error { return nil }
func (*laneInst) Commit() error               { return nil }
func (*laneInst) Abort()                      {}

// runLanes runs batches through a repartition (by, ×par) into a laneSink
// of sinks instances, and returns the sink and the run's summary.
func runLanes(t *testing.T, mem memory.Allocator, batches []arrow.RecordBatch, by []string, par, sinks int) (*laneSink, engine.Summary) {
	t.Helper()
	reg := testRegistry()
	ls := &laneSink{rows: map[int][]string{}, by: map[int][]string{}}
	reg.MustRegister(engine.Spec{Name: "lanes", Kind: engine.KindSink, Parallel: true, MinInputs: 1, MaxInputs: 1, NewConfig: func() any { return &struct{}{} },
		Build: func(*engine.BuildContext, any) (engine.Factory, error) { return laneSinkFactory{ls}, nil }})
	s := engine.DefaultSettings()
	s.BatchRows = 4096
	g := &engine.Graph{Name: "t", Settings: s, Nodes: []*engine.Node{
		{ID: "src", Kind: engine.KindSource, Type: "batches", Config: &batchesConfig{schema: batches[0].Schema(), batches: batches}},
		{ID: "rep", Kind: engine.KindTransform, Type: "repartition", Inputs: []string{"src"}, Parallelism: par,
			Config: &RepartitionConfig{By: by}, ConfigFrom: engine.ConfigLiteral},
		{ID: "out", Kind: engine.KindSink, Type: "lanes", Inputs: []string{"rep"}, Parallelism: sinks, Unordered: true},
	}}
	p, err := engine.Compile(g, engine.CompileOptions{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	if err := p.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if sinks > 1 && !strings.Contains(text.String(), fmt.Sprintf("lanes: routes to %d lane(s)", sinks)) {
		t.Errorf("the plan does not show the lanes:\n%s", text.String())
	}
	sum, err := p.Run(context.Background(), engine.RunOptions{Alloc: mem})
	if err != nil {
		t.Fatal(err)
	}
	return ls, sum
}

// TestRepartitionHash: every row reaches exactly one instance of the
// consumer, every key only one, the keys spread over all of them, NULL
// keys included; on random input the rows are gathered (counted copies),
// on input clustered by the key they go as slices (no copy).
func TestRepartitionHash(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	for _, tc := range []struct {
		name      string
		by        []string
		keyCol    []int // the columns of a row's key in its text
		par, sink int
		clustered bool
	}{
		{"one key, 2 into 3", []string{"k"}, []int{0}, 2, 3, false},
		{"two keys with nulls, 1 into 2", []string{"s", "k"}, []int{1, 0}, 1, 2, false},
		{"clustered, 2 into 2", []string{"k"}, []int{0}, 2, 2, true},
		{"one consumer instance", []string{"k"}, []int{0}, 2, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			batches := randomBatches(t, mem, 7, 10, 3000, 500)
			if tc.clustered {
				// 20 keys in order: runs of about 1500 rows of a key.
				releaseRecs(batches)
				batches = clusterBy(t, mem, randomBatches(t, mem, 7, 10, 3000, 20))
			}
			want := rowsText(batches)
			ls, sum := runLanes(t, mem, batches, tc.by, tc.par, tc.sink)
			releaseRecs(batches)
			var got []string
			owner := map[string]int{}
			for k, rows := range ls.rows {
				if tc.sink > 1 && len(rows) == 0 {
					t.Errorf("instance %d got no rows", k)
				}
				for _, r := range rows {
					f := strings.Split(r, "|")
					var key []string
					for _, c := range tc.keyCol {
						key = append(key, f[c])
					}
					kk := strings.Join(key, "|")
					if o, ok := owner[kk]; ok && o != k {
						t.Fatalf("key %s went to instances %d and %d", kk, o, k)
					}
					owner[kk] = k
				}
				got = append(got, rows...)
			}
			if len(ls.rows) != tc.sink {
				t.Errorf("%d of %d instances got rows", len(ls.rows), tc.sink)
			}
			sort.Strings(got)
			sort.Strings(want)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("%d rows out, %d in, or they differ", len(got), len(want))
			}
			for k, by := range ls.by {
				if wantBy := tc.by; tc.sink > 1 && strings.Join(by, ",") != strings.Join(wantBy, ",") {
					t.Errorf("instance %d was told PartitionedBy %v, want %v", k, by, wantBy)
				}
			}
			copies := opCopies(sum, "rep")["repartition gather"]
			switch {
			case tc.sink == 1 && copies != 0:
				t.Errorf("one lane: %d bytes gathered, want none", copies)
			case tc.clustered && copies != 0:
				t.Errorf("clustered input: %d bytes gathered, want slices only", copies)
			case !tc.clustered && tc.sink > 1 && copies == 0:
				t.Errorf("random input: no gather on the ledger")
			}
		})
	}
}

// TestRepartitionRoundRobin: without by, whole batches go to the lanes in
// turn, by reference.
func TestRepartitionRoundRobin(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	batches := randomBatches(t, mem, 3, 12, 1000, 50)
	want := rowsText(batches)
	ls, sum := runLanes(t, mem, batches, nil, 1, 3)
	releaseRecs(batches)
	var got []string
	for k := range 3 {
		if n := len(ls.rows[k]); n != 4000 {
			t.Errorf("instance %d got %d rows, want 4 batches of 1000", k, n)
		}
		if ls.by[k] != nil {
			t.Errorf("round robin: instance %d was told PartitionedBy %v", k, ls.by[k])
		}
		got = append(got, ls.rows[k]...)
	}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatal("rows differ")
	}
	if c := opCopies(sum, "rep"); len(c) != 0 {
		t.Errorf("round robin copied: %v", c)
	}
}

// TestRepartitionAggregateLocal: an aggregate behind a repartition by
// some of its group keys keeps its groups per instance (no merge between
// instances), in memory and spilling, and gives the serial answer; by
// other columns it merges as usual.
func TestRepartitionAggregateLocal(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	groupBy := []string{"k", "s"}
	serial, err := runAgg(t, mem, randomBatches(t, mem, 5, 12, 2000, 5000), groupBy, randomAggs, runOpts{})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []runOpts{
		{parallelism: 2, repartition: []string{"k"}},
		{parallelism: 2, repartition: []string{"s", "k"}},
		{parallelism: 2, repartition: []string{"k"}, budget: 2 << 20},
		{parallelism: 2, repartition: []string{"x"}}, // not a key: merged
		{parallelism: 2, repartition: []string{}},    // round robin: merged
	} {
		local, spills := aggLocal.Load(), aggSpills.Load()
		got, err := runAgg(t, mem, randomBatches(t, mem, 5, 12, 2000, 5000), groupBy, randomAggs, o)
		if err != nil {
			t.Fatalf("%+v: %v", o, err)
		}
		if strings.Join(got.rows, "\n") != strings.Join(serial.rows, "\n") {
			t.Errorf("%+v: %d rows differ from one instance's %d", o, len(got.rows), len(serial.rows))
		}
		keyed := len(o.repartition) > 0 && o.repartition[0] != "x"
		if n := aggLocal.Load() - local; keyed != (n == 2) {
			t.Errorf("%+v: %d instances kept their groups to themselves", o, n)
		}
		if o.budget > 0 && aggSpills.Load() == spills {
			t.Errorf("%+v: did not spill", o)
		}
	}
}

// TestRepartitionOrderedRefused: a consumer of a repartition running
// several instances has no one order, and asking for one is an error.
func TestRepartitionOrderedRefused(t *testing.T) {
	reg := testRegistry()
	g := &engine.Graph{Name: "t", Settings: engine.DefaultSettings(), Nodes: []*engine.Node{
		{ID: "src", Kind: engine.KindSource, Type: "batches", Config: &batchesConfig{schema: genSchema()}},
		{ID: "rep", Kind: engine.KindTransform, Type: "repartition", Inputs: []string{"src"}, Config: &RepartitionConfig{By: []string{"i64"}}, ConfigFrom: engine.ConfigLiteral},
		{ID: "agg", Kind: engine.KindTransform, Type: "aggregate", Inputs: []string{"rep"}, Parallelism: 2, Ordered: true,
			Config: &AggregateConfig{GroupBy: []string{"i64"}}, ConfigFrom: engine.ConfigDefaults},
		{ID: "out", Kind: engine.KindSink, Type: "rows", Inputs: []string{"agg"}, Config: &rowsConfig{}},
	}}
	_, err := engine.Compile(g, engine.CompileOptions{Registry: reg})
	var errs engine.Errors
	if !errors.As(err, &errs) || !strings.Contains(err.Error(), `its input "rep" is an exchange`) {
		t.Fatalf("want the exchange's order refused, got %v", err)
	}
}

// clusterBy returns the rows of batches sorted by their first column, k,
// in batches of the same sizes (and releases the input).
func clusterBy(t *testing.T, mem memory.Allocator, batches []arrow.RecordBatch) []arrow.RecordBatch {
	t.Helper()
	all := concat(t, mem, batches[0].Schema(), batches)
	releaseRecs(batches)
	defer all.Release()
	k := all.Column(0).(*array.Int64)
	order := make([]int32, k.Len())
	for i := range order {
		order[i] = int32(i)
	}
	sort.SliceStable(order, func(a, b int) bool { return k.Value(int(order[a])) < k.Value(int(order[b])) })
	var out []arrow.RecordBatch
	for from := 0; from < len(order); from += 3000 {
		b, err := expr.Gather(context.Background(), mem, all, order[from:min(from+3000, len(order))])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// opCopies is the copy ledger of node id in a summary.
func opCopies(s engine.Summary, id string) map[string]int64 {
	for _, o := range s.Ops {
		if o.ID == id {
			return o.Copies
		}
	}
	return nil
}
