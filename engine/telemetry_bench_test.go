package engine

import (
	"context"
	"fmt"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// BenchmarkTelemetry puts absolute figures on what telemetry adds to a run,
// below what a whole-pipeline benchmark on a noisy VM can resolve:
// batches=1 is the fixed cost per run (the run and operator spans, the
// metric pump), batches=1000 adds the per-batch cost (edge latency, and
// with batch tracing a span per batch per operator). Subtract "off".
//
//	go test -run '^$' -bench Telemetry -benchtime 2s ./engine/
func BenchmarkTelemetry(b *testing.B) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter(), sdktrace.WithMaxQueueSize(1<<16)))
	defer tp.Shutdown(context.Background())
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	defer mp.Shutdown(context.Background())
	variants := []struct {
		name string
		t    Telemetry
	}{
		{"off", Telemetry{}},
		{"spans", Telemetry{TracerProvider: tp}},
		{"spans+metrics", Telemetry{TracerProvider: tp, MeterProvider: mp}},
		{"batch-spans", Telemetry{TracerProvider: tp, BatchSampling: 1}},
	}
	mem := memory.NewGoAllocator()
	for _, batches := range []int{1, 1000} {
		p := mustCompile(b, linear(&seqConfig{Batches: batches, Rows: 8}, &passConfig{}, &collectConfig{}, 1, false))
		for _, v := range variants {
			b.Run(fmt.Sprintf("batches=%d/%s", batches, v.name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := p.Run(context.Background(), RunOptions{Alloc: mem, Telemetry: v.t}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
