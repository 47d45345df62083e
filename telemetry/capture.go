package telemetry

import (
	"context"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// The exporters are wrapped so that a failed export is counted here, for
// the one warning Shutdown returns, instead of going to the SDK's global
// error handler (which logs a line per failure, through globals this
// package does not touch). An OTLP exporter's wrapper also has a reach:
// when the collector refuses connections, the export fails at once
// instead of retrying until the timeout (see reach).

type capturedSpanExporter struct {
	sdktrace.SpanExporter
	t     *Telemetry
	reach *reach // nil: not an OTLP exporter, or its address is not known here
}

func (e capturedSpanExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if err := e.reach.check(ctx); err != nil {
		e.t.Handle(err)
		return nil
	}
	if err := e.SpanExporter.ExportSpans(ctx, spans); err != nil {
		e.t.Handle(err)
	}
	return nil
}

type capturedMetricExporter struct {
	sdkmetric.Exporter
	t     *Telemetry
	reach *reach
}

func (e capturedMetricExporter) Export(ctx context.Context, rm *metricdata.ResourceMetrics) error {
	if err := e.reach.check(ctx); err != nil {
		e.t.Handle(err)
		return nil
	}
	if err := e.Exporter.Export(ctx, rm); err != nil {
		e.t.Handle(err)
	}
	return nil
}
