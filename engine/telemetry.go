package engine

import (
	"context"
	"errors"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// InstrumentationName is the OpenTelemetry scope of the engine's spans and
// metrics.
const InstrumentationName = "github.com/zflowdev/zflow/engine"

// Attribute keys of the engine's spans and metrics (OpenTelemetry
// semantic-convention style, under the zflow. prefix).
const (
	AttrPipeline        = attribute.Key("zflow.pipeline.name")
	AttrOperatorID      = attribute.Key("zflow.operator.id")
	AttrOperatorType    = attribute.Key("zflow.operator.type")
	AttrOperatorKind    = attribute.Key("zflow.operator.kind")
	AttrInstance        = attribute.Key("zflow.operator.instance")
	AttrInstances       = attribute.Key("zflow.operator.instances")
	AttrRowsIn          = attribute.Key("zflow.rows.in")
	AttrRowsOut         = attribute.Key("zflow.rows.out")
	AttrBatchesIn       = attribute.Key("zflow.batches.in")
	AttrBatchesOut      = attribute.Key("zflow.batches.out")
	AttrBytesIn         = attribute.Key("zflow.bytes.in")
	AttrBytesOut        = attribute.Key("zflow.bytes.out")
	AttrBytesRef        = attribute.Key("zflow.bytes.by_reference")
	AttrBytesCopied     = attribute.Key("zflow.bytes.copied")
	AttrBytesCreated    = attribute.Key("zflow.bytes.created")
	AttrBatchSeq        = attribute.Key("zflow.batch.seq")
	AttrBatchRows       = attribute.Key("zflow.batch.rows")
	AttrBatchBytes      = attribute.Key("zflow.batch.bytes")
	AttrEdgeFrom        = attribute.Key("zflow.edge.from")
	AttrEdgeTo          = attribute.Key("zflow.edge.to")
	AttrEdgePort        = attribute.Key("zflow.edge.port")
	AttrDirection       = attribute.Key("zflow.direction") // "in" or "out"
	AttrCopyReason      = attribute.Key("zflow.copy.reason")
	AttrArenaKind       = attribute.Key("zflow.arena.kind")
	AttrArenaBacking    = attribute.Key("zflow.arena.backing")
	AttrArenaNode       = attribute.Key("zflow.arena.numa_node")
	AttrIOBackend       = attribute.Key("zflow.io.backend")
	AttrIOBackendReason = attribute.Key("zflow.io.backend.reason")
)

// Telemetry configures a run's OpenTelemetry instrumentation. The zero value
// records nothing and costs nothing. The engine never touches the global
// providers: it uses what it is given here.
type Telemetry struct {
	// TracerProvider gets a span per run and a child span per operator
	// instance; nil means no spans.
	TracerProvider trace.TracerProvider
	// MeterProvider gets the run's counters, histograms and gauges; nil
	// means no metrics.
	MeterProvider metric.MeterProvider
	// BatchSampling is the fraction (0 to 1) of source batches traced
	// through the whole graph: such a batch gets a span at its source and
	// at every operator it passes, each linked to its producer's. 0 means
	// operator spans only.
	BatchSampling float64
	// Attributes are set on the run span and on every operator span (the
	// arena kind and NUMA node, for example).
	Attributes []attribute.KeyValue
	// MetricsInterval is how often the live counters are copied into the
	// OpenTelemetry counters while the run goes on; 0 means one second.
	// The final values are always copied before Run returns.
	MetricsInterval time.Duration
	// Gauges, if set, is called at every metric collection during the run
	// for extra gauges (the arena's bytes in use by backing kind); it
	// reports through the observer it gets.
	Gauges func(GaugeObserver)
	// Flush, if set, is called once the run span has ended and before Run
	// returns (to flush exporters the caller set up for this run); its
	// error is logged as a warning, never the run's error.
	Flush func() error
}

// GaugeObserver takes one gauge value; see Telemetry.Gauges.
type GaugeObserver func(name, unit, desc string, value int64, attrs ...attribute.KeyValue)

// runTel is one run's instrumentation. A nil *runTel records nothing.
type runTel struct {
	x       *Execution
	tracer  trace.Tracer
	runSpan trace.Span
	spanCtx context.Context // ctx carrying the run span
	common  []attribute.KeyValue
	sample  float64
	batches bool

	// spans[node][instance]
	spans [][]trace.Span

	m *runMetrics
}

func newRunTel(x *Execution, ctx context.Context, t Telemetry) (*runTel, context.Context) {
	if t.TracerProvider == nil && t.MeterProvider == nil {
		return nil, ctx
	}
	rt := &runTel{x: x, sample: min(max(t.BatchSampling, 0), 1)}
	rt.common = append([]attribute.KeyValue{AttrPipeline.String(x.plan.Name)}, t.Attributes...)
	if t.TracerProvider != nil {
		rt.tracer = t.TracerProvider.Tracer(InstrumentationName)
		rt.batches = rt.sample > 0
		ctx, rt.runSpan = rt.tracer.Start(ctx, "zflow run "+x.plan.Name,
			trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(rt.common...))
		rt.spanCtx = ctx
		rt.spans = make([][]trace.Span, len(x.plan.nodes))
	}
	if t.MeterProvider != nil {
		rt.m = newRunMetrics(x, t)
	}
	return rt, ctx
}

// startInstances starts every instance's span, in topological order, so a
// consumer's span can link to its producers' spans (fan-in and fan-out).
func (rt *runTel) startInstances() {
	if rt == nil || rt.tracer == nil {
		return
	}
	p := rt.x.plan
	idx := map[*planNode]int{}
	for i, n := range p.nodes {
		idx[n] = i
	}
	for i, n := range p.nodes {
		var links []trace.Link
		for port, in := range n.Inputs {
			for _, s := range rt.spans[idx[in]] {
				links = append(links, trace.Link{SpanContext: s.SpanContext(), Attributes: []attribute.KeyValue{
					AttrEdgeFrom.String(in.ID), AttrEdgeTo.String(n.ID), AttrEdgePort.Int(port),
				}})
			}
		}
		rt.spans[i] = make([]trace.Span, n.Parallelism)
		for k := range n.Parallelism {
			attrs := append([]attribute.KeyValue{
				AttrOperatorID.String(n.ID), AttrOperatorType.String(n.Spec.Name),
				AttrOperatorKind.String(n.Spec.Kind.String()),
				AttrInstance.Int(k), AttrInstances.Int(n.Parallelism),
			}, rt.common...)
			_, s := rt.tracer.Start(rt.spanCtx, n.Spec.Name+" "+n.ID,
				trace.WithAttributes(attrs...), trace.WithLinks(links...))
			rt.spans[i][k] = s
		}
	}
}

func (rt *runTel) span(node, k int) trace.Span {
	if rt == nil || rt.spans == nil || rt.spans[node] == nil {
		return nil
	}
	return rt.spans[node][k]
}

// endInstance sets an instance span's figures and status and ends it.
func (rt *runTel) endInstance(node, k int, em *emitter, led *Ledger, err error, cause bool) {
	s := rt.span(node, k)
	if s == nil {
		return
	}
	c := em.c
	copied, ref, out := led.copied.Load(), c.ref.Load()+led.ref.Load(), c.bytesOut.Load()
	s.SetAttributes(
		AttrRowsIn.Int64(c.rowsIn.Load()), AttrRowsOut.Int64(c.rowsOut.Load()),
		AttrBatchesIn.Int64(c.batchesIn.Load()), AttrBatchesOut.Int64(c.batchesOut.Load()),
		AttrBytesIn.Int64(c.bytesIn.Load()), AttrBytesOut.Int64(out),
		AttrBytesRef.Int64(ref), AttrBytesCopied.Int64(copied),
	)
	if rt.x.plan.nodes[node].Spec.Kind != KindSink {
		s.SetAttributes(AttrBytesCreated.Int64(max(0, out-ref-copied)))
	}
	if bt := em.bt; bt != nil && bt.open != nil { // a panic left a batch span open
		bt.end(bt.open, err, cause)
	}
	switch {
	case cause:
		s.RecordError(err)
		s.SetStatus(codes.Error, err.Error())
	case err != nil && !errors.Is(err, ErrStop):
		s.AddEvent("cancelled", trace.WithAttributes(attribute.String("zflow.reason", err.Error())))
	}
	s.End()
}

// startMetrics starts the metric pump once every instance is running.
func (rt *runTel) startMetrics() {
	if rt != nil {
		rt.m.start()
	}
}

// stopMetrics reports the final figures and unregisters the gauges.
func (rt *runTel) stopMetrics() {
	if rt != nil {
		rt.m.stop()
	}
}

// endUnstarted ends the spans of a run whose instance (node, k) failed to
// start: nothing ran.
func (rt *runTel) endUnstarted(node, k int, err error) {
	if rt == nil || rt.spans == nil {
		return
	}
	for i, ss := range rt.spans {
		for j, s := range ss {
			if i == node && j == k {
				s.RecordError(err)
				s.SetStatus(codes.Error, err.Error())
			} else {
				s.AddEvent("not started")
			}
			s.End()
		}
	}
}

// endRun ends the run span with the run's totals and outcome.
func (rt *runTel) endRun(sum *Summary, err error) {
	if rt == nil {
		return
	}
	rt.m.stop()
	defer rt.flush()
	if rt.runSpan == nil {
		return
	}
	rows, bytes, copied, ref := sum.Totals()
	rt.runSpan.SetAttributes(AttrRowsIn.Int64(rows), AttrBytesIn.Int64(bytes),
		AttrBytesCopied.Int64(copied), AttrBytesRef.Int64(ref))
	if err != nil {
		rt.runSpan.RecordError(err)
		rt.runSpan.SetStatus(codes.Error, err.Error())
	}
	rt.runSpan.End()
}

func (rt *runTel) flush() {
	if f := rt.x.opts.Telemetry.Flush; f != nil {
		if err := f(); err != nil {
			rt.x.opts.Logger.Warn(err.Error(), "pipeline", rt.x.plan.Name)
		}
	}
}

// instCtx is the context an instance runs under: the run's, carrying the
// instance span so operators can start their own child spans.
func (rt *runTel) instCtx(ctx context.Context, node, k int) context.Context {
	if s := rt.span(node, k); s != nil {
		return trace.ContextWithSpan(ctx, s)
	}
	return ctx
}

// batchTel is the per-instance part of batch tracing, owned by the
// instance's goroutine.
type batchTel struct {
	rt     *runTel
	open   trace.Span           // the batch span begun and not yet ended
	name   string               // span name: "batch <node id>"
	attrs  []attribute.KeyValue // operator id and instance
	span   trace.Span           // the instance span
	source bool
	seq    int64
	cur    *trace.SpanContext // the batch being processed, if traced
}

// sourceBatch decides whether a batch a source emits is traced; if so it
// records the batch's span and returns its context to travel with it.
func (b *batchTel) sourceBatch(rec interface{ NumRows() int64 }, bytes int64) *trace.SpanContext {
	if !b.source || (b.rt.sample < 1 && rand.Float64() >= b.rt.sample) {
		return nil
	}
	_, s := b.rt.tracer.Start(trace.ContextWithSpan(context.Background(), b.span), b.name,
		trace.WithAttributes(b.attrs...),
		trace.WithAttributes(AttrBatchSeq.Int64(b.seq), AttrBatchRows.Int64(rec.NumRows()), AttrBatchBytes.Int64(bytes)))
	s.End()
	sc := s.SpanContext()
	return &sc
}

// arrive counts a batch taken off an edge and, when it is traced, begins
// its span here and returns ctx carrying it (so InjectBatchTrace in the
// operator finds the batch's span). Without batch tracing (b nil) it
// returns ctx and no span.
func (b *batchTel) arrive(ctx context.Context, it item, size int64) (context.Context, trace.Span) {
	if b == nil {
		return ctx, nil
	}
	b.seq++
	if it.sc == nil {
		return ctx, nil
	}
	s := b.begin(it.sc, it.rec.NumRows(), size)
	return trace.ContextWithSpan(ctx, s), s
}

// begin starts the span of a traced batch arriving at this instance: a
// child of the producer's batch span (so a traced batch's way through the
// graph, and across processes, is one tree), linked to this instance's span.
// It makes the span the instance's current (cur) and open one until end.
// The caller has counted the batch in seq (every batch, traced or not).
func (b *batchTel) begin(from *trace.SpanContext, rows, bytes int64) trace.Span {
	_, s := b.rt.tracer.Start(trace.ContextWithSpanContext(context.Background(), *from), b.name,
		trace.WithLinks(trace.Link{SpanContext: b.span.SpanContext()}),
		trace.WithAttributes(b.attrs...),
		trace.WithAttributes(AttrBatchSeq.Int64(b.seq), AttrBatchRows.Int64(rows), AttrBatchBytes.Int64(bytes)))
	sc := s.SpanContext()
	b.cur = &sc
	b.open = s
	return s
}

// end ends a batch span; it is marked Error only when its operator's error
// is the run's failure (not ErrStop, not a consequence of another's).
func (b *batchTel) end(s trace.Span, err error, cause bool) {
	if cause {
		s.SetStatus(codes.Error, err.Error())
	}
	s.End()
	b.cur, b.open = nil, nil
}

// failure tells whether err from Process or Write is a real failure of this
// operator rather than ErrStop or the run's cancellation.
func (x *Execution) failure(err error) bool {
	if err == nil || errors.Is(err, ErrStop) {
		return false
	}
	return x.runCtx.Err() == nil || !(errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded))
}

// runMetrics holds a run's instruments. Counters are fed from the live
// instance counters by a pump (every MetricsInterval and once at the end), so the
// batch path pays nothing for them; edge latency is recorded per batch.
type runMetrics struct {
	x        *Execution
	interval time.Duration
	rows     metric.Int64Counter
	batches  metric.Int64Counter
	bytes    metric.Int64Counter
	copied   metric.Int64Counter
	ref      metric.Int64Counter
	latency  metric.Float64Histogram
	depth    metric.Int64ObservableGauge
	meter    metric.Meter
	gaugeFn  func(GaugeObserver)
	reg      metric.Registration

	nodeIn, nodeOut []metric.AddOption // by node
	nodeAttrs       [][]attribute.KeyValue
	edges           []edgeMetric // by edge index
	last            []OpStats    // what was reported so far, by node
	lastCopies      []map[string]int64

	stopOnce sync.Once
	started  bool // set by start, in Start's goroutine, before any stop
	quit     chan struct{}
	done     chan struct{}
}

type edgeMetric struct {
	from, to string
	attrs    []metric.RecordOption // one element, passed as attrs... so no slice is made per Record
	obsAttrs metric.ObserveOption
	depth    atomic.Int64
}

func newRunMetrics(x *Execution, t Telemetry) *runMetrics {
	meter := t.MeterProvider.Meter(InstrumentationName)
	m := &runMetrics{x: x, interval: t.MetricsInterval, quit: make(chan struct{}), done: make(chan struct{})}
	if m.interval <= 0 {
		m.interval = time.Second
	}
	// Instrument errors only come from invalid names (a bug); the SDK then
	// hands back a working no-op instrument.
	m.rows, _ = meter.Int64Counter("zflow.operator.rows", metric.WithUnit("{row}"),
		metric.WithDescription("rows into and out of an operator"))
	m.batches, _ = meter.Int64Counter("zflow.operator.batches", metric.WithUnit("{batch}"),
		metric.WithDescription("batches into and out of an operator"))
	m.bytes, _ = meter.Int64Counter("zflow.operator.bytes", metric.WithUnit("By"),
		metric.WithDescription("payload bytes into and out of an operator"))
	m.copied, _ = meter.Int64Counter("zflow.operator.bytes_copied", metric.WithUnit("By"),
		metric.WithDescription("payload bytes an operator copied, by reason (the copy ledger)"))
	m.ref, _ = meter.Int64Counter("zflow.operator.bytes_by_reference", metric.WithUnit("By"),
		metric.WithDescription("output bytes that share an input's buffers"))
	m.latency, _ = meter.Float64Histogram("zflow.edge.batch.latency", metric.WithUnit("s"),
		metric.WithDescription("time a batch waits on an edge, from Emit to the consumer taking it"),
		metric.WithExplicitBucketBoundaries(1e-6, 5e-6, 2e-5, 1e-4, 5e-4, 2e-3, 1e-2, 5e-2, 0.25, 1, 5))
	m.depth, _ = meter.Int64ObservableGauge("zflow.edge.queue.depth", metric.WithUnit("{batch}"),
		metric.WithDescription("batches waiting on an edge"))
	m.meter, m.gaugeFn = meter, t.Gauges

	p := x.plan
	m.nodeAttrs = make([][]attribute.KeyValue, len(p.nodes))
	m.nodeIn = make([]metric.AddOption, len(p.nodes))
	m.nodeOut = make([]metric.AddOption, len(p.nodes))
	m.last = make([]OpStats, len(p.nodes))
	m.lastCopies = make([]map[string]int64, len(p.nodes))
	for i, n := range p.nodes {
		a := []attribute.KeyValue{AttrPipeline.String(p.Name), AttrOperatorID.String(n.ID), AttrOperatorType.String(n.Spec.Name)}
		m.nodeAttrs[i] = a
		m.nodeIn[i] = metric.WithAttributeSet(attribute.NewSet(append(a, AttrDirection.String("in"))...))
		m.nodeOut[i] = metric.WithAttributeSet(attribute.NewSet(append(a, AttrDirection.String("out"))...))
		m.lastCopies[i] = map[string]int64{}
	}
	return m
}

// register registers the gauges' callback; called once every edge is known.
func (m *runMetrics) register() {
	name := m.x.plan.Name
	gauges := map[string]metric.Int64ObservableGauge{}
	obs := append([]metric.Observable{m.depth}, declareGauges(m.meter, m.gaugeFn, gauges)...)
	m.reg, _ = m.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for i := range m.edges {
			e := &m.edges[i]
			o.ObserveInt64(m.depth, e.depth.Load(), e.obsAttrs)
		}
		if m.gaugeFn != nil {
			m.gaugeFn(func(gname, _, _ string, v int64, attrs ...attribute.KeyValue) {
				if g, ok := gauges[gname]; ok { // only gauges declared up front
					o.ObserveInt64(g, v, metric.WithAttributes(append(attrs, AttrPipeline.String(name))...))
				}
			})
		}
		return nil
	}, obs...)
}

// declareGauges asks Telemetry.Gauges once, outside a collection, for the
// names of its gauges, and makes an instrument for each.
func declareGauges(meter metric.Meter, fn func(GaugeObserver), into map[string]metric.Int64ObservableGauge) []metric.Observable {
	if fn == nil {
		return nil
	}
	var out []metric.Observable
	fn(func(name, unit, desc string, _ int64, _ ...attribute.KeyValue) {
		if _, ok := into[name]; ok {
			return
		}
		g, err := meter.Int64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
		if err != nil {
			return
		}
		into[name] = g
		out = append(out, g)
	})
	return out
}

// addEdge registers the edge from→to and returns its index.
func (m *runMetrics) addEdge(from, to string) int32 {
	if m == nil {
		return -1
	}
	set := attribute.NewSet(AttrPipeline.String(m.x.plan.Name), AttrEdgeFrom.String(from), AttrEdgeTo.String(to))
	m.edges = append(m.edges, edgeMetric{from: from, to: to,
		attrs: []metric.RecordOption{metric.WithAttributeSet(set)}, obsAttrs: metric.WithAttributeSet(set)})
	return int32(len(m.edges) - 1)
}

func (m *runMetrics) start() {
	if m == nil {
		return
	}
	m.register()
	m.started = true
	go func() {
		defer close(m.done)
		tk := time.NewTicker(m.interval)
		defer tk.Stop()
		for {
			select {
			case <-tk.C:
				m.pump()
			case <-m.quit:
				return
			}
		}
	}()
}

// stop ends the pump, reports the final figures and unregisters the gauges:
// nothing is recorded after it returns.
func (m *runMetrics) stop() {
	if m == nil {
		return
	}
	m.stopOnce.Do(func() {
		if !m.started {
			return // the run failed before it started: nothing ran, nothing to report
		}
		close(m.quit)
		<-m.done
		m.pump()
		if m.reg != nil {
			_ = m.reg.Unregister()
		}
	})
}

// pump adds what the live counters gained since the last pump.
func (m *runMetrics) pump() {
	ctx := context.Background()
	for i, n := range m.x.plan.nodes {
		now := m.x.stats[i].snapshot(n)
		was := &m.last[i]
		add := func(c metric.Int64Counter, d int64, o metric.AddOption) {
			if d > 0 {
				c.Add(ctx, d, o)
			}
		}
		add(m.rows, now.RowsIn-was.RowsIn, m.nodeIn[i])
		add(m.rows, now.RowsOut-was.RowsOut, m.nodeOut[i])
		add(m.batches, now.BatchesIn-was.BatchesIn, m.nodeIn[i])
		add(m.batches, now.BatchesOut-was.BatchesOut, m.nodeOut[i])
		add(m.bytes, now.BytesIn-was.BytesIn, m.nodeIn[i])
		add(m.bytes, now.BytesOut-was.BytesOut, m.nodeOut[i])
		add(m.ref, now.BytesRef-was.BytesRef, m.nodeOut[i])
		reasons := make([]string, 0, len(now.Copies))
		for r := range now.Copies {
			reasons = append(reasons, r)
		}
		sort.Strings(reasons)
		for _, r := range reasons {
			if d := now.Copies[r] - m.lastCopies[i][r]; d > 0 {
				m.copied.Add(ctx, d, metric.WithAttributes(append(m.nodeAttrs[i], AttrCopyReason.String(r))...))
				m.lastCopies[i][r] = now.Copies[r]
			}
		}
		*was = now
	}
}

// sent is called as a batch enters edge e; it returns the timestamp the
// consumer's received needs.
func (m *runMetrics) sent(e int32) int64 {
	m.edges[e].depth.Add(1)
	return int64(time.Since(m.x.start))
}

func (m *runMetrics) received(e int32, at int64) {
	m.edges[e].depth.Add(-1)
	d := time.Duration(int64(time.Since(m.x.start)) - at)
	m.latency.Record(context.Background(), d.Seconds(), m.edges[e].attrs...)
}

// SetAttributes adds attributes to this instance's span (for example the
// I/O backend it chose and why); without tracing it does nothing.
func (ic *InstanceContext) SetAttributes(kv ...attribute.KeyValue) {
	if ic == nil || ic.span == nil {
		return
	}
	ic.span.SetAttributes(kv...)
}
