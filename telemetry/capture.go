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
// package does not touch).

type capturedSpanExporter struct {
	sdktrace.SpanExporter
	t *Telemetry
}

func (e capturedSpanExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if err := e.SpanExporter.ExportSpans(ctx, spans); err != nil {
		e.t.Handle(err)
	}
	return nil
}

type capturedMetricExporter struct {
	sdkmetric.Exporter
	t *Telemetry
}

func (e capturedMetricExporter) Export(ctx context.Context, rm *metricdata.ResourceMetrics) error {
	if err := e.Exporter.Export(ctx, rm); err != nil {
		e.t.Handle(err)
	}
	return nil
}
