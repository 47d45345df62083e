package telemetry

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestApplyEnv(t *testing.T) {
	base := Config{Traces: TraceConfig{Exporter: "none", Endpoint: "file:4317", Sampling: 1}, Metrics: MetricConfig{Exporter: "none"}}
	cases := []struct {
		name string
		env  map[string]string
		want func(c Config) bool
		err  string
	}{
		{"nothing", nil, func(c Config) bool { return c.Traces == base.Traces && c.ServiceName == "" }, ""},
		{"endpoint and service", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SERVICE_NAME": "etl", "OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
			func(c Config) bool {
				return c.Traces.Endpoint == "http://collector:4318" && c.Metrics.Endpoint == "http://collector:4318" && c.ServiceName == "etl" &&
					c.Traces.Exporter == "otlp" && c.Traces.Protocol == "http" && c.Metrics.Exporter == "none"
			}, ""},
		{"signal endpoint wins", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "a:1", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "b:2"},
			func(c Config) bool { return c.Traces.Endpoint == "b:2" && c.Metrics.Endpoint == "a:1" }, ""},
		{"sampler ratio", map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"},
			func(c Config) bool { return c.Traces.Sampling == 0.25 }, ""},
		{"sampler off", map[string]string{"OTEL_TRACES_SAMPLER": "always_off"}, func(c Config) bool { return c.Traces.Sampling == 0 }, ""},
		{"console", map[string]string{"OTEL_TRACES_EXPORTER": "console", "OTEL_METRICS_EXPORTER": "prometheus"},
			func(c Config) bool { return c.Traces.Exporter == "stdout" && c.Metrics.Listen == "localhost:9464" }, ""},
		{"disabled", map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"},
			func(c Config) bool { return c.Traces.Exporter == "none" && !c.Enabled() }, ""},
		{"interval", map[string]string{"OTEL_METRIC_EXPORT_INTERVAL": "2500"}, func(c Config) bool { return c.Metrics.Interval == 2500*time.Millisecond }, ""},
		{"bad sampler", map[string]string{"OTEL_TRACES_SAMPLER": "sometimes"}, nil, `OTEL_TRACES_SAMPLER="sometimes"`},
		{"bad ratio", map[string]string{"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"}, nil, "between 0 and 1"},
		{"bad exporter", map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, nil, `OTEL_TRACES_EXPORTER="zipkin"`},
		{"bad protocol", map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, nil, "want grpc or http/protobuf"},
		{"bad interval", map[string]string{"OTEL_METRIC_EXPORT_INTERVAL": "soon"}, nil, "milliseconds"},
	}
	for _, tc := range cases {
		c := base
		err := c.ApplyEnv(env(tc.env))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || !tc.want(c) {
			t.Errorf("%s: %+v, %v", tc.name, c, err)
		}
	}
}

func TestSetupErrors(t *testing.T) {
	for _, c := range []Config{
		{Traces: TraceConfig{Exporter: "zipkin"}},
		{Traces: TraceConfig{Exporter: "otlp", Protocol: "quic", Sampling: 1}},
		{Traces: TraceConfig{Exporter: "stdout", Sampling: 3}},
		{Metrics: MetricConfig{Exporter: "statsd"}},
		{Metrics: MetricConfig{Listen: "256.0.0.1:99999"}},
	} {
		tel, err := Setup(context.Background(), c)
		if err == nil {
			tel.Shutdown(context.Background())
			t.Errorf("%+v: no error", c)
		} else if !strings.HasPrefix(err.Error(), "telemetry: ") {
			t.Errorf("%+v: error %q lacks the package prefix", c, err)
		}
	}
	tel, err := Setup(context.Background(), Config{})
	if err != nil || tel.TracerProvider() != nil || tel.MeterProvider() != nil || tel.Shutdown(context.Background()) != nil {
		t.Fatalf("empty config: %v", err)
	}
}

// TestTraceFile writes spans through the SDK into the OTLP/JSON file and
// reads them back.
func TestTraceFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trace.json")
	tel, err := Setup(context.Background(), Config{ServiceName: "svc", Traces: TraceConfig{File: path, Sampling: 1}})
	if err != nil {
		t.Fatal(err)
	}
	tr := tel.TracerProvider().Tracer("test")
	ctx, root := tr.Start(context.Background(), "root", trace.WithAttributes(attribute.Int64("n", 42), attribute.StringSlice("s", []string{"a", "b"})))
	_, child := tr.Start(ctx, "child", trace.WithLinks(trace.Link{SpanContext: root.SpanContext(), Attributes: []attribute.KeyValue{attribute.Bool("b", true)}}))
	child.RecordError(errors.New("boom"))
	child.SetStatus(codes.Error, "boom")
	child.End()
	root.End()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("trace file exists before Shutdown: %v", err)
	}
	if err := tel.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var td otlpTracesData
	if err := json.Unmarshal(b, &td); err != nil {
		t.Fatalf("not one JSON object: %v\n%s", err, b)
	}
	rs := td.ResourceSpans[0]
	svc := ""
	for _, a := range rs.Resource.Attributes {
		if a.Key == "service.name" {
			svc = *a.Value.String
		}
	}
	spans := rs.ScopeSpans[0].Spans
	if svc != "svc" || len(spans) != 2 {
		t.Fatalf("service %q, %d spans", svc, len(spans))
	}
	c, r := spans[0], spans[1]
	if c.Name != "child" || r.Name != "root" || c.ParentSpanID != r.SpanID || c.TraceID != r.TraceID || len(c.TraceID) != 32 || len(c.SpanID) != 16 {
		t.Fatalf("tree: %+v %+v", c, r)
	}
	if c.Status.Code != 2 || c.Status.Message != "boom" || len(c.Events) != 1 || c.Events[0].Name != "exception" {
		t.Fatalf("child status/events: %+v %+v", c.Status, c.Events)
	}
	if len(c.Links) != 1 || c.Links[0].SpanID != r.SpanID || *c.Links[0].Attributes[0].Value.Bool != true {
		t.Fatalf("links: %+v", c.Links)
	}
	if *r.Attributes[0].Value.Int != "42" || len(r.Attributes[1].Value.Array.Values) != 2 {
		t.Fatalf("attributes: %+v", r.Attributes)
	}
}

func TestTraceFileUnwritable(t *testing.T) {
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(notDir, "trace.json") // under a file: cannot be created
	tel, err := Setup(context.Background(), Config{Traces: TraceConfig{File: path, Sampling: 1}})
	if err != nil {
		t.Fatal(err)
	}
	_, s := tel.TracerProvider().Tracer("t").Start(context.Background(), "x")
	s.End()
	err = tel.Shutdown(context.Background())
	var de *DeliveryError
	if !errors.As(err, &de) || !strings.Contains(err.Error(), path) {
		t.Fatalf("want a DeliveryError naming the file, got %v", err)
	}
}

func TestStdoutExporters(t *testing.T) {
	var out lockedWriter
	tel, err := Setup(context.Background(), Config{Stdout: &out,
		Traces: TraceConfig{Exporter: "stdout", Sampling: 1}, Metrics: MetricConfig{Exporter: "stdout", Interval: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	_, s := tel.TracerProvider().Tracer("t").Start(context.Background(), "hello-span")
	s.End()
	c, _ := tel.MeterProvider().Meter("m").Int64Counter("hello.counter")
	c.Add(context.Background(), 3)
	if err := tel.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if !strings.Contains(got, `"Name":"hello-span"`) || !strings.Contains(got, `"Name":"hello.counter"`) {
		t.Fatalf("stdout exporters wrote:\n%s", got)
	}
}

type lockedWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// With the collector down, the trace file is still written in full.
func TestTraceFileWithCollectorDown(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trace.json")
	tel, err := Setup(context.Background(), Config{Timeout: 300 * time.Millisecond,
		Traces: TraceConfig{Exporter: "otlp", Endpoint: "127.0.0.1:1", File: path, Sampling: 1}})
	if err != nil {
		t.Fatal(err)
	}
	_, s := tel.TracerProvider().Tracer("t").Start(context.Background(), "kept", trace.WithAttributes(
		attribute.Float64("nan", math.NaN()), attribute.Float64("inf", math.Inf(-1))))
	s.End()
	var de *DeliveryError
	if err := tel.Shutdown(context.Background()); !errors.As(err, &de) {
		t.Fatalf("want a delivery error for the OTLP side, got %v", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("trace file lost when the collector was down: %v", err)
	}
	if !strings.Contains(string(b), `"name":"kept"`) || !strings.Contains(string(b), `"doubleValue":"NaN"`) || !strings.Contains(string(b), `"doubleValue":"-Infinity"`) {
		t.Fatalf("trace file: %s", b)
	}
}

// A Setup that fails (the Prometheus address is taken) leaves nothing
// behind: no goroutine, no trace file written over an old one.
func TestSetupFailureLeavesNothing(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	path := filepath.Join(t.TempDir(), "trace.json")
	if err := os.WriteFile(path, []byte("previous run\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		_, err := Setup(context.Background(), Config{
			Traces:  TraceConfig{File: path, Sampling: 1},
			Metrics: MetricConfig{Exporter: "stdout", Listen: busy.Addr().String(), Interval: time.Hour}, Stdout: io.Discard})
		if err == nil || !strings.Contains(err.Error(), "metrics endpoint") {
			t.Fatalf("want the bind error, got %v", err)
		}
	}
	if b, _ := os.ReadFile(path); string(b) != "previous run\n" {
		t.Fatalf("a failed Setup wrote the trace file: %q", b)
	}
	goleak.VerifyNone(t)
}

func TestApplyEnvBaseEndpoint(t *testing.T) {
	c := Config{Traces: TraceConfig{Exporter: "otlp", Protocol: "http"}, Metrics: MetricConfig{Exporter: "otlp", Listen: "x:1"}}
	if err := c.ApplyEnv(env(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://gw:4318/otlp", "OTEL_METRICS_EXPORTER": "prometheus"})); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range httpEndpoint(c.Traces.Endpoint, c.Traces.EndpointIsBase, "/v1/traces", func(s string) string { return s }, func(s string) string { return "host " + s }, "insecure") {
		got = append(got, o)
	}
	if len(got) != 1 || got[0] != "http://gw:4318/otlp/v1/traces" {
		t.Errorf("base endpoint with a path: %v", got)
	}
	if c.Metrics.Exporter != "none" || c.Metrics.Listen != "x:1" {
		t.Errorf("prometheus from the environment: %+v", c.Metrics)
	}
	d := Config{Metrics: MetricConfig{Listen: "127.0.0.1:9464"}}
	if err := d.ApplyEnv(env(map[string]string{"OTEL_SDK_DISABLED": "true"})); err != nil || d.Enabled() {
		t.Errorf("OTEL_SDK_DISABLED left %+v enabled", d)
	}
}
