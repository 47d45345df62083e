// Package telemetry builds OpenTelemetry providers for a zflow run from its
// settings, the standard OTEL_* environment variables and the CLI's flags:
// trace exporters (OTLP over gRPC or HTTP, stdout, an OTLP/JSON file),
// metric exporters (OTLP, stdout) and a Prometheus scrape endpoint.
//
// The engine never needs this package: it records through whatever
// trace.TracerProvider and metric.MeterProvider it is given (see
// engine.Telemetry). This package is for the CLI and for embedders that want
// zflow's defaults. It never touches the global providers.
//
// Delivery failures (collector down, unreachable or slow) never fail or hang
// a run: Shutdown flushes within Config.Timeout and reports what was lost as
// one DeliveryError, which callers print as a single warning. A collector
// that refuses connections costs one dial, not the timeout: each OTLP
// exporter first checks that the collector accepts a TCP connection (at
// most every 10 s; reach.go) and fails the export at once when it does not,
// where the OTLP exporters would retry until the timeout.
//
// The span and metric names and attributes follow the OpenTelemetry semantic
// conventions' style under the zflow. prefix; they are listed in
// engine/telemetry.go. The trace file is OTLP/JSON (the protobuf JSON
// mapping of opentelemetry-proto's TracesData, with hex ids), one object per
// line, the format of the Collector's file exporter.
package telemetry
