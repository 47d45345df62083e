package engine

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"go.uber.org/goleak"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// fanGraph: src fans out to a and b, u unions them (fan-in, 2 instances of
// a), s1 takes u, s2 takes src.
func fanGraph(s1, s2 *collectConfig, pass *passConfig) *Graph {
	return &Graph{Name: "fan", Settings: Settings{EdgeCapacity: 4}, Nodes: []*Node{
		{ID: "src", Kind: KindSource, Type: "seq", Config: &seqConfig{Batches: 12, Rows: 100}},
		{ID: "a", Kind: KindTransform, Type: "pass", Config: pass, Inputs: []string{"src"}, Parallelism: 2},
		{ID: "b", Kind: KindTransform, Type: "pass", Inputs: []string{"src"}},
		{ID: "u", Kind: KindTransform, Type: "pass", Inputs: []string{"a", "b"}},
		{ID: "s1", Kind: KindSink, Type: "collect", Config: s1, Inputs: []string{"u"}},
		{ID: "s2", Kind: KindSink, Type: "collect", Config: s2, Inputs: []string{"src"}},
	}}
}

func attrMap(kv []attribute.KeyValue) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, a := range kv {
		m[a.Key] = a.Value
	}
	return m
}

func TestTraceSpanTree(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	mem := newCountingAlloc()
	s1, s2 := &collectConfig{}, &collectConfig{}
	p := mustCompile(t, fanGraph(s1, s2, &passConfig{}))
	sum, err := p.Run(context.Background(), RunOptions{Alloc: mem, Telemetry: Telemetry{
		TracerProvider: tp,
		Attributes:     []attribute.KeyValue{AttrArenaKind.String("heap")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	checkNoLeaks(t, mem)
	if started, ended := len(rec.Started()), len(rec.Ended()); started != ended {
		t.Fatalf("%d spans started, %d ended when Run returned", started, ended)
	}
	spans := rec.Ended()
	var root sdktrace.ReadOnlySpan
	byName := map[string][]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byName[s.Name()] = append(byName[s.Name()], s)
		if s.Name() == "zflow run fan" {
			root = s
		}
	}
	if root == nil {
		t.Fatalf("no run span among %d", len(spans))
	}
	// Exact tree: the run span, and one child per instance (a has 2).
	want := map[string]int{"zflow run fan": 1, "seq src": 1, "pass a": 2, "pass b": 1, "pass u": 1, "collect s1": 1, "collect s2": 1}
	got := map[string]int{}
	for name, ss := range byName {
		got[name] = len(ss)
		for _, s := range ss {
			if s == root {
				if s.Parent().IsValid() {
					t.Errorf("run span has a parent")
				}
				continue
			}
			if s.Parent().SpanID() != root.SpanContext().SpanID() || s.SpanContext().TraceID() != root.SpanContext().TraceID() {
				t.Errorf("span %q: parent %v, want the run span %v", name, s.Parent().SpanID(), root.SpanContext().SpanID())
			}
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("spans: got %v, want %v", got, want)
	}
	// Attributes: per instance figures sum to the summary's.
	sums := map[string]*OpStats{}
	for _, s := range spans {
		if s == root {
			continue
		}
		a := attrMap(s.Attributes())
		id := a[AttrOperatorID].AsString()
		if a[AttrPipeline].AsString() != "fan" || a[AttrArenaKind].AsString() != "heap" || a[AttrOperatorType].AsString() == "" {
			t.Errorf("%s: attributes %v", s.Name(), a)
		}
		if s.Status().Code == codes.Error {
			t.Errorf("%s: error status %v", s.Name(), s.Status())
		}
		st := sums[id]
		if st == nil {
			st = &OpStats{}
			sums[id] = st
		}
		st.RowsIn += a[AttrRowsIn].AsInt64()
		st.RowsOut += a[AttrRowsOut].AsInt64()
		st.BatchesIn += a[AttrBatchesIn].AsInt64()
		st.BatchesOut += a[AttrBatchesOut].AsInt64()
		st.BytesIn += a[AttrBytesIn].AsInt64()
		st.BytesOut += a[AttrBytesOut].AsInt64()
		st.BytesRef += a[AttrBytesRef].AsInt64()
		st.BytesCopied += a[AttrBytesCopied].AsInt64()
		st.Instances++
	}
	for _, o := range sum.Ops {
		g := sums[o.ID]
		if g == nil || g.RowsIn != o.RowsIn || g.RowsOut != o.RowsOut || g.BatchesIn != o.BatchesIn ||
			g.BatchesOut != o.BatchesOut || g.BytesIn != o.BytesIn || g.BytesOut != o.BytesOut ||
			g.BytesRef != o.BytesRef || g.BytesCopied != o.BytesCopied || g.Instances != o.Instances {
			t.Errorf("%s: spans say %+v, summary %+v", o.ID, g, o)
		}
	}
	if sum.Op("u").RowsIn != 2400 || sum.Op("src").BytesOut == 0 {
		t.Fatalf("unexpected summary %+v", sum.Ops)
	}
	// Links: u links to both a instances and b; s2 and a/b link to src.
	links := func(name string) []string {
		var out []string
		for _, l := range byName[name][0].Links() {
			la := attrMap(l.Attributes)
			out = append(out, la[AttrEdgeFrom].AsString())
			found := false
			for _, s := range spans {
				if s.SpanContext().SpanID() == l.SpanContext.SpanID() {
					found = strings.HasSuffix(s.Name(), " "+la[AttrEdgeFrom].AsString())
				}
			}
			if !found {
				t.Errorf("%s: link to %v is not the span of %s", name, l.SpanContext.SpanID(), la[AttrEdgeFrom].AsString())
			}
		}
		sort.Strings(out)
		return out
	}
	if l := links("pass u"); fmt.Sprint(l) != "[a a b]" {
		t.Errorf("u links %v, want [a a b]", l)
	}
	if l := links("collect s2"); fmt.Sprint(l) != "[src]" {
		t.Errorf("s2 links %v", l)
	}
	if l := links("seq src"); len(l) != 0 {
		t.Errorf("source links %v", l)
	}
	// Nothing is recorded after Run returned.
	n := len(rec.Started())
	if n != len(rec.Ended()) {
		t.Fatal("open spans after Run")
	}
}

func TestTraceErrorStatus(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	mem := newCountingAlloc()
	p := mustCompile(t, linear(&seqConfig{Batches: 100, Rows: 10}, &passConfig{FailAt: 3}, &collectConfig{}, 1, false))
	_, err := p.Run(context.Background(), RunOptions{Alloc: mem, Telemetry: Telemetry{TracerProvider: tp}})
	if err == nil {
		t.Fatal("want an error")
	}
	checkNoLeaks(t, mem)
	if len(rec.Started()) != len(rec.Ended()) {
		t.Fatal("open spans after Run")
	}
	status := map[string]sdktrace.Status{}
	for _, s := range rec.Ended() {
		status[s.Name()] = s.Status()
	}
	if st := status["pass p"]; st.Code != codes.Error || !strings.Contains(st.Description, "injected failure") {
		t.Errorf("failing operator status %+v", st)
	}
	if st := status["zflow run t"]; st.Code != codes.Error || !strings.Contains(st.Description, `operator "p"`) {
		t.Errorf("run status %+v", st)
	}
	for _, name := range []string{"seq src", "collect out"} {
		if status[name].Code == codes.Error {
			t.Errorf("%s was cancelled, not failed, but has status %+v", name, status[name])
		}
	}
}

func TestTraceBatchLineage(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	mem := newCountingAlloc()
	p := mustCompile(t, fanGraph(&collectConfig{}, &collectConfig{}, &passConfig{}))
	if _, err := p.Run(context.Background(), RunOptions{Alloc: mem, Telemetry: Telemetry{TracerProvider: tp, BatchSampling: 1}}); err != nil {
		t.Fatal(err)
	}
	checkNoLeaks(t, mem)
	names := map[[8]byte]string{} // span id → span name
	for _, s := range rec.Ended() {
		names[s.SpanContext().SpanID()] = s.Name()
	}
	// Each of the 12 source batches: a span at src, a, b, u (twice: via a
	// and via b), s1 (twice), s2. Each is a child of its producer's batch
	// span and links to the instance span it ran in.
	producer := map[string][]string{"batch a": {"batch src"}, "batch b": {"batch src"}, "batch u": {"batch a", "batch b"},
		"batch s1": {"batch u"}, "batch s2": {"batch src"}, "batch src": {"seq src"}}
	instance := map[string]string{"batch a": "pass a", "batch b": "pass b", "batch u": "pass u", "batch s1": "collect s1", "batch s2": "collect s2"}
	count := map[string]int{}
	for _, s := range rec.Ended() {
		if !strings.HasPrefix(s.Name(), "batch ") {
			continue
		}
		count[s.Name()]++
		parent := names[s.Parent().SpanID()]
		if !slices.Contains(producer[s.Name()], parent) {
			t.Errorf("%s: parent %q, want one of %v", s.Name(), parent, producer[s.Name()])
		}
		if want, ok := instance[s.Name()]; ok {
			if len(s.Links()) != 1 || names[s.Links()[0].SpanContext.SpanID()] != want {
				t.Errorf("%s: links %v, want the %s instance span", s.Name(), s.Links(), want)
			}
		}
	}
	want := map[string]int{"batch src": 12, "batch a": 12, "batch b": 12, "batch u": 24, "batch s1": 24, "batch s2": 12}
	if fmt.Sprint(count) != fmt.Sprint(want) {
		t.Fatalf("batch spans by operator %v, want %v", count, want)
	}
}

func TestMetrics(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	mem := newCountingAlloc()
	p := mustCompile(t, fanGraph(&collectConfig{}, &collectConfig{}, &passConfig{}))
	sum, err := p.Run(context.Background(), RunOptions{Alloc: mem, Telemetry: Telemetry{
		MeterProvider: mp,
		Gauges: func(o GaugeObserver) {
			o("zflow.arena.bytes_in_use", "By", "arena bytes", 4096, AttrArenaBacking.String("thp"))
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	checkNoLeaks(t, mem)
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	var latencyCount uint64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					id, _ := dp.Attributes.Value(AttrOperatorID)
					dir, _ := dp.Attributes.Value(AttrDirection)
					got[m.Name+"/"+id.AsString()+"/"+dir.AsString()] += dp.Value
				}
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					latencyCount += dp.Count
				}
			case metricdata.Gauge[int64]:
				t.Errorf("gauge %s still reported after Run returned", m.Name)
			}
		}
	}
	for _, o := range sum.Ops {
		checks := map[string]int64{
			"zflow.operator.rows/" + o.ID + "/in":     o.RowsIn,
			"zflow.operator.rows/" + o.ID + "/out":    o.RowsOut,
			"zflow.operator.batches/" + o.ID + "/out": o.BatchesOut,
			"zflow.operator.bytes/" + o.ID + "/in":    o.BytesIn,
			"zflow.operator.bytes/" + o.ID + "/out":   o.BytesOut,
		}
		for k, v := range checks {
			if got[k] != v {
				t.Errorf("%s = %d, summary says %d", k, got[k], v)
			}
		}
	}
	// Every batch crossed an edge once per consumer: src→a, src→b, src→s2,
	// a→u, b→u, u→s1.
	var crossings uint64
	for _, o := range sum.Ops {
		crossings += uint64(o.BatchesIn)
	}
	if latencyCount != crossings {
		t.Errorf("latency histogram has %d samples, %d batches crossed edges", latencyCount, crossings)
	}
}

func TestMetricsLiveGauges(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	mem := newCountingAlloc()
	pass := &passConfig{Sleep: 2e6} // 2 ms per batch: the edge fills up
	p := mustCompile(t, linear(&seqConfig{Batches: 40, Rows: 10}, pass, &collectConfig{}, 1, false))
	x := p.Start(context.Background(), RunOptions{Alloc: mem, Telemetry: Telemetry{
		MeterProvider: mp,
		Gauges: func(o GaugeObserver) {
			o("zflow.arena.bytes_in_use", "By", "arena bytes", 4096, AttrArenaBacking.String("thp"))
		},
	}})
	defer x.Wait()
	var depth, arena bool
	for !(depth && arena) {
		select {
		case <-x.Done():
			t.Fatalf("run ended before the gauges showed (depth %v, arena %v)", depth, arena)
		default:
		}
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(context.Background(), &rm); err != nil {
			t.Fatal(err)
		}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				g, ok := m.Data.(metricdata.Gauge[int64])
				if !ok {
					continue
				}
				for _, dp := range g.DataPoints {
					from, _ := dp.Attributes.Value(AttrEdgeFrom)
					if m.Name == "zflow.edge.queue.depth" && from.AsString() == "src" && dp.Value > 0 {
						depth = true
					}
					if m.Name == "zflow.arena.bytes_in_use" && dp.Value == 4096 {
						arena = true
					}
				}
			}
		}
	}
	if _, err := x.Wait(); err != nil {
		t.Fatal(err)
	}
	checkNoLeaks(t, mem)
}

// A constructor that fails stops the run before anything starts: with
// metrics on, Run still returns (it once waited for a pump never started).
func TestTelemetryBuildFailure(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	reg := testRegistry()
	reg.MustRegister(Spec{Name: "badsink", Kind: KindSink, MinInputs: 1, MaxInputs: 1, NewConfig: func() any { return &struct{}{} },
		Build: func(*BuildContext, any) (Factory, error) {
			return funcFactoryErr{fmt.Errorf("cannot open the output")}, nil
		}})
	p, err := Compile(&Graph{Name: "bad", Nodes: []*Node{
		{ID: "src", Kind: KindSource, Type: "seq", Config: &seqConfig{Batches: 2, Rows: 2}},
		{ID: "out", Kind: KindSink, Type: "badsink", Inputs: []string{"src"}},
	}}, CompileOptions{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	x := p.Start(context.Background(), RunOptions{Telemetry: Telemetry{TracerProvider: tp, MeterProvider: mp}})
	select {
	case <-x.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after a constructor failed")
	}
	if _, err := x.Wait(); err == nil || !strings.Contains(err.Error(), "cannot open the output") {
		t.Fatalf("error %v", err)
	}
	for _, s := range rec.Ended() {
		if s.Name() == "badsink out" && s.Status().Code != codes.Error {
			t.Errorf("failed constructor's span status %v", s.Status())
		}
	}
	if len(rec.Started()) != len(rec.Ended()) {
		t.Error("spans left open")
	}
	goleak.VerifyNone(t)
}

type funcFactoryErr struct{ err error }

func (funcFactoryErr) Schema() *arrow.Schema               { return nil }
func (f funcFactoryErr) New(*InstanceContext) (any, error) { return nil, f.err }

// ErrStop (a downstream limit) is a normal end: no "cancelled" event, no
// error status; batch spans cut short by another operator's failure are
// not errors either.
func TestTraceStopAndCancelAreNotErrors(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	mem := newCountingAlloc()
	p := mustCompile(t, linear(&seqConfig{Batches: 100, Rows: 10}, &passConfig{Stop: 3}, &collectConfig{}, 1, false))
	if _, err := p.Run(context.Background(), RunOptions{Alloc: mem, Telemetry: Telemetry{TracerProvider: tp, BatchSampling: 1}}); err != nil {
		t.Fatal(err)
	}
	checkNoLeaks(t, mem)
	for _, s := range rec.Ended() {
		if s.Status().Code == codes.Error {
			t.Errorf("%s: status %v in a run that stopped early on purpose", s.Name(), s.Status())
		}
		for _, ev := range s.Events() {
			if ev.Name == "cancelled" {
				t.Errorf("%s: a cancelled event for ErrStop", s.Name())
			}
		}
	}
	rec2 := tracetest.NewSpanRecorder()
	tp2 := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec2))
	defer tp2.Shutdown(context.Background())
	p = mustCompile(t, linear(&seqConfig{Batches: 100, Rows: 10}, &passConfig{FailAt: 5}, &collectConfig{Sleep: time.Millisecond}, 1, false))
	if _, err := p.Run(context.Background(), RunOptions{Alloc: mem, Telemetry: Telemetry{TracerProvider: tp2, BatchSampling: 1}}); err == nil {
		t.Fatal("want the injected failure")
	}
	checkNoLeaks(t, mem)
	var failed int
	for _, s := range rec2.Ended() {
		if s.Status().Code == codes.Error {
			switch s.Name() {
			case "pass p", "batch p", "zflow run t":
				failed++
			default:
				t.Errorf("%s: Error status, but only p failed", s.Name())
			}
		}
	}
	if failed != 3 {
		t.Errorf("%d spans with Error status, want the run, p and p's failing batch", failed)
	}
}
