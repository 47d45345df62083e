package telemetry

import (
	"fmt"
	"io"

	"go.opentelemetry.io/otel/exporters/stdout/stdoutmetric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

func newStdoutMetricExporter(w io.Writer) (sdkmetric.Exporter, error) {
	exp, err := stdoutmetric.New(stdoutmetric.WithWriter(w))
	if err != nil {
		return nil, fmt.Errorf("telemetry: stdout metric exporter: %w", err)
	}
	return exp, nil
}
