package engine

import (
	"context"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func TestTraceCarrierRoundTrip(t *testing.T) {
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		TraceFlags: trace.FlagsSampled,
	})
	c := CarrierOf(sc)
	// The W3C spec's own example traceparent.
	if got := c.Traceparent(); got != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" {
		t.Fatalf("traceparent %s", got)
	}
	back, err := ParseTraceCarrier(c[:])
	if err != nil {
		t.Fatal(err)
	}
	got, err := back.SpanContext()
	if err != nil || !got.Equal(sc.WithRemote(true)) {
		t.Fatalf("round trip: %v %v", got, err)
	}
	if z := CarrierOf(trace.SpanContext{}); !z.IsZero() || z.Traceparent() != "" {
		t.Fatalf("zero carrier %v", z)
	}
	if sc, err := (TraceCarrier{}).SpanContext(); err != nil || sc.IsValid() {
		t.Fatalf("zero carrier decodes to %v %v", sc, err)
	}
}

func TestTraceCarrierBad(t *testing.T) {
	good := CarrierOf(trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: 1}))
	mut := func(f func(c *TraceCarrier)) []byte { c := good; f(&c); return c[:] }
	cases := map[string]struct {
		b    []byte
		want string
	}{
		"short":      {good[:10], "10 bytes, want 26"},
		"version":    {mut(func(c *TraceCarrier) { c[0] = 1 }), "version 1"},
		"flags":      {mut(func(c *TraceCarrier) { c[25] = 0x82 }), "unknown trace flags"},
		"zero trace": {mut(func(c *TraceCarrier) { clear(c[1:17]) }), "all-zero trace id"},
		"zero span":  {mut(func(c *TraceCarrier) { clear(c[17:25]) }), "all-zero parent id"},
	}
	for name, tc := range cases {
		if _, err := ParseTraceCarrier(tc.b); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", name, err, tc.want)
		}
	}
}

func FuzzParseTraceCarrier(f *testing.F) {
	good := CarrierOf(trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: 1}))
	f.Add(good[:])
	f.Add(make([]byte, 26))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseTraceCarrier(b)
		if err != nil {
			return
		}
		sc, err := c.SpanContext()
		if err != nil {
			t.Fatalf("parsed carrier does not decode: %v", err)
		}
		if c.IsZero() != !sc.IsValid() {
			t.Fatalf("zero %v but valid %v", c.IsZero(), sc.IsValid())
		}
		if !c.IsZero() && CarrierOf(sc) != c {
			t.Fatalf("re-encoding differs: %x vs %x", CarrierOf(sc), c)
		}
	})
}

// shipped is what crosses between the two "processes" of
// TestTraceAcrossProcesses: a batch and its carrier, as a transport would
// put them in a frame or a shared-memory descriptor.
type shipped struct {
	rec arrow.RecordBatch
	c   TraceCarrier
}

type shipSink struct{ out *[]shipped }

func (s shipSink) Write(ctx context.Context, _ int, in arrow.RecordBatch) error {
	in.Retain()
	*s.out = append(*s.out, shipped{in, InjectBatchTrace(ctx)})
	return nil
}
func (s shipSink) Close(context.Context) error { return nil }
func (s shipSink) Commit() error               { return nil }
func (s shipSink) Abort()                      {}

type recvSource struct{ in []shipped }

func (s recvSource) Run(ctx context.Context, out Emitter) error {
	for i, sh := range s.in {
		if err := out.(TracedEmitter).EmitTraced(sh.rec, sh.c); err != nil {
			for _, rest := range s.in[i+1:] {
				rest.rec.Release()
			}
			return err
		}
	}
	return nil
}

type funcFactory struct {
	schema *arrow.Schema
	new    func() any
}

func (f funcFactory) Schema() *arrow.Schema             { return f.schema }
func (f funcFactory) New(*InstanceContext) (any, error) { return f.new(), nil }

// TestTraceAcrossProcesses: a producer run ships its batches with their
// carriers; a consumer run (its own tracer provider, as another process
// would have) receives them. Each traced batch is then one trace across
// both: the consumer's batch spans are children of the producer's.
func TestTraceAcrossProcesses(t *testing.T) {
	mem := newCountingAlloc()
	var wire []shipped
	reg := testRegistry()
	reg.MustRegister(Spec{Name: "ship", Kind: KindSink, MinInputs: 1, MaxInputs: 1, NewConfig: func() any { return &struct{}{} },
		Build: func(*BuildContext, any) (Factory, error) {
			return funcFactory{nil, func() any { return shipSink{&wire} }}, nil
		}})
	reg.MustRegister(Spec{Name: "recv", Kind: KindSource, NewConfig: func() any { return &struct{}{} },
		Build: func(*BuildContext, any) (Factory, error) {
			return funcFactory{seqSchema, func() any { return recvSource{wire} }}, nil
		}})
	compile := func(g *Graph) *Plan {
		p, err := Compile(g, CompileOptions{Registry: reg})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	prodRec, consRec := tracetest.NewSpanRecorder(), tracetest.NewSpanRecorder()
	prodTP := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(prodRec))
	consTP := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(consRec))
	defer prodTP.Shutdown(context.Background())
	defer consTP.Shutdown(context.Background())

	producer := compile(&Graph{Name: "producer", Nodes: []*Node{
		{ID: "src", Kind: KindSource, Type: "seq", Config: &seqConfig{Batches: 5, Rows: 10}},
		{ID: "send", Kind: KindSink, Type: "ship", Inputs: []string{"src"}},
	}})
	if _, err := producer.Run(context.Background(), RunOptions{Alloc: mem, Telemetry: Telemetry{TracerProvider: prodTP, BatchSampling: 1}}); err != nil {
		t.Fatal(err)
	}
	consumer := compile(&Graph{Name: "consumer", Nodes: []*Node{
		{ID: "recv", Kind: KindSource, Type: "recv"},
		{ID: "p", Kind: KindTransform, Type: "pass", Inputs: []string{"recv"}},
		{ID: "out", Kind: KindSink, Type: "collect", Config: &collectConfig{}, Inputs: []string{"p"}},
	}})
	// Local batch sampling 0.01: the producer's sampled flag decides.
	if _, err := consumer.Run(context.Background(), RunOptions{Alloc: mem, Telemetry: Telemetry{TracerProvider: consTP, BatchSampling: 0.01}}); err != nil {
		t.Fatal(err)
	}
	checkNoLeaks(t, mem)

	sent := map[trace.SpanID]trace.TraceID{} // the producer's "batch send" spans
	for _, s := range prodRec.Ended() {
		if s.Name() == "batch send" {
			sent[s.SpanContext().SpanID()] = s.SpanContext().TraceID()
		}
	}
	if len(sent) != 5 || len(wire) != 5 {
		t.Fatalf("%d send spans, %d batches shipped", len(sent), len(wire))
	}
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, s := range consRec.Ended() {
		byID[s.SpanContext().SpanID()] = s
	}
	var recv, outs int
	for _, s := range consRec.Ended() {
		switch s.Name() {
		case "batch recv":
			recv++
			tid, ok := sent[s.Parent().SpanID()]
			if !ok || !s.Parent().IsRemote() || tid != s.SpanContext().TraceID() {
				t.Errorf("batch recv: parent %v (remote %v) is not a producer's send span in the same trace", s.Parent().SpanID(), s.Parent().IsRemote())
			}
		case "batch out":
			outs++
			// out ← p ← recv ← (producer) send: one trace.
			p := byID[s.Parent().SpanID()]
			if p == nil || p.Name() != "batch p" {
				t.Fatalf("batch out's parent is not batch p")
			}
			r := byID[p.Parent().SpanID()]
			if r == nil || r.Name() != "batch recv" || r.SpanContext().TraceID() != s.SpanContext().TraceID() {
				t.Fatalf("batch p's parent is not batch recv of the same trace")
			}
		}
	}
	if recv != 5 || outs != 5 {
		t.Fatalf("consumer traced %d received and %d written batches, want 5 and 5", recv, outs)
	}
}
