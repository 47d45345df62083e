package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Config says where a run's spans and metrics go.
type Config struct {
	// ServiceName is the resource's service.name; OTEL_SERVICE_NAME
	// overrides it; empty means "zflow".
	ServiceName string
	// Version is the resource's service.version.
	Version string
	Traces  TraceConfig
	Metrics MetricConfig
	// Timeout bounds every export and the final flush; 0 means 5 s.
	Timeout time.Duration
	// Stdout is where the stdout exporters write; nil means os.Stdout.
	Stdout io.Writer
}

// TraceConfig chooses the trace exporter.
type TraceConfig struct {
	Exporter string // none, stdout or otlp
	Protocol string // grpc (default) or http (OTLP/HTTP protobuf)
	Endpoint string // host:port or a URL; empty means the OTLP default (localhost:4317, :4318 for http)
	// EndpointIsBase says Endpoint came from OTEL_EXPORTER_OTLP_ENDPOINT:
	// for OTLP/HTTP the signal's path (/v1/traces) is appended to it.
	EndpointIsBase bool
	Sampling       float64 // fraction of runs traced (parent-based trace-id ratio)
	File           string  // also write the spans to this OTLP/JSON file
}

// MetricConfig chooses the metric exporters.
type MetricConfig struct {
	Exporter       string        // none, stdout or otlp
	Protocol       string        // grpc (default) or http
	Endpoint       string        // as TraceConfig.Endpoint
	EndpointIsBase bool          // as TraceConfig.EndpointIsBase
	Interval       time.Duration // OTLP/stdout export interval; 0 means 10 s
	Listen         string        // serve a Prometheus scrape endpoint at this host:port
}

// Enabled tells whether c asks for anything at all.
func (c Config) Enabled() bool {
	return c.Traces.Exporter != "none" && c.Traces.Exporter != "" || c.Traces.File != "" ||
		c.Metrics.Exporter != "none" && c.Metrics.Exporter != "" || c.Metrics.Listen != ""
}

// ApplyEnv applies the standard OpenTelemetry environment variables that
// this package honours, read through getenv (os.Getenv when nil). They
// override the pipeline file (the deployment knows better than the file),
// and the CLI's flags override them. Honoured: OTEL_SDK_DISABLED,
// OTEL_SERVICE_NAME, OTEL_TRACES_EXPORTER, OTEL_METRICS_EXPORTER,
// OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_{TRACES,METRICS}_ENDPOINT,
// OTEL_EXPORTER_OTLP_PROTOCOL, OTEL_TRACES_SAMPLER (+_ARG),
// OTEL_METRIC_EXPORT_INTERVAL. OTEL_RESOURCE_ATTRIBUTES and the OTLP
// exporters' own variables (headers, certificates, compression) are read by
// the SDK itself.
func (c *Config) ApplyEnv(getenv func(string) string) error {
	if getenv == nil {
		getenv = os.Getenv
	}
	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") {
		c.Traces.Exporter, c.Metrics.Exporter, c.Metrics.Listen = "none", "none", ""
		return nil
	}
	if v := getenv("OTEL_SERVICE_NAME"); v != "" {
		c.ServiceName = v
	}
	exporter := func(name, v string, into *string) error {
		switch v {
		case "":
		case "none", "otlp":
			*into = v
		case "console", "stdout":
			*into = "stdout"
		case "prometheus":
			if name == "OTEL_METRICS_EXPORTER" {
				*into = "none" // metrics are pulled, not pushed
				if c.Metrics.Listen == "" {
					c.Metrics.Listen = "localhost:9464"
				}
				return nil
			}
			fallthrough
		default:
			return fmt.Errorf("telemetry: %s=%q: want otlp, console or none", name, v)
		}
		return nil
	}
	if err := exporter("OTEL_TRACES_EXPORTER", getenv("OTEL_TRACES_EXPORTER"), &c.Traces.Exporter); err != nil {
		return err
	}
	if err := exporter("OTEL_METRICS_EXPORTER", getenv("OTEL_METRICS_EXPORTER"), &c.Metrics.Exporter); err != nil {
		return err
	}
	if v := getenv("OTEL_EXPORTER_OTLP_PROTOCOL"); v != "" {
		p, err := parseProtocol(v)
		if err != nil {
			return fmt.Errorf("telemetry: OTEL_EXPORTER_OTLP_PROTOCOL: %w", err)
		}
		c.Traces.Protocol, c.Metrics.Protocol = p, p
	}
	if v := getenv("OTEL_EXPORTER_OTLP_ENDPOINT"); v != "" {
		c.Traces.Endpoint, c.Metrics.Endpoint = v, v
		c.Traces.EndpointIsBase, c.Metrics.EndpointIsBase = true, true
	}
	if v := getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"); v != "" {
		c.Traces.Endpoint, c.Traces.EndpointIsBase = v, false
	}
	if v := getenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"); v != "" {
		c.Metrics.Endpoint, c.Metrics.EndpointIsBase = v, false
	}
	if v := getenv("OTEL_TRACES_SAMPLER"); v != "" {
		r, err := samplerRatio(v, getenv("OTEL_TRACES_SAMPLER_ARG"))
		if err != nil {
			return err
		}
		c.Traces.Sampling = r
	}
	if v := getenv("OTEL_METRIC_EXPORT_INTERVAL"); v != "" {
		ms, err := strconv.Atoi(v)
		if err != nil || ms <= 0 {
			return fmt.Errorf("telemetry: OTEL_METRIC_EXPORT_INTERVAL=%q: want milliseconds > 0", v)
		}
		c.Metrics.Interval = time.Duration(ms) * time.Millisecond
	}
	return nil
}

func parseProtocol(v string) (string, error) {
	switch v {
	case "grpc", "":
		return "grpc", nil
	case "http", "http/protobuf":
		return "http", nil
	}
	return "", fmt.Errorf("protocol %q: want grpc or http/protobuf", v)
}

// samplerRatio maps OTEL_TRACES_SAMPLER to the fraction of runs traced.
// zflow's runs are root traces (or children of the embedder's span, which
// the parent-based sampler follows), so the parentbased_ and plain forms
// mean the same here.
func samplerRatio(name, arg string) (float64, error) {
	switch strings.TrimPrefix(name, "parentbased_") {
	case "always_on":
		return 1, nil
	case "always_off":
		return 0, nil
	case "traceidratio":
		if arg == "" {
			return 1, nil
		}
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || r < 0 || r > 1 || r != r {
			return 0, fmt.Errorf("telemetry: OTEL_TRACES_SAMPLER_ARG=%q: want a ratio between 0 and 1", arg)
		}
		return r, nil
	}
	return 0, fmt.Errorf("telemetry: OTEL_TRACES_SAMPLER=%q: want always_on, always_off, traceidratio or their parentbased_ forms", name)
}

// Telemetry is a set of providers built by Setup; Shutdown flushes them.
type Telemetry struct {
	cfg     Config
	tp      *sdktrace.TracerProvider
	mp      *sdkmetric.MeterProvider
	srv     *http.Server
	ln      net.Listener
	srvDone chan struct{}

	dests []string // where telemetry goes, for the warning

	mu     sync.Mutex
	errs   int
	first  error
	closed bool
}

// Setup builds the providers c asks for. Exporters connect lazily: a
// collector that is down does not fail Setup (it fails delivery, reported by
// Shutdown). Only a bad configuration or a Prometheus address that cannot
// be bound is an error.
func Setup(ctx context.Context, c Config) (*Telemetry, error) {
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Second
	}
	if c.ServiceName == "" {
		c.ServiceName = "zflow"
	}
	if c.Stdout == nil {
		c.Stdout = os.Stdout
	}
	t := &Telemetry{cfg: c}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		semconv.ServiceName(c.ServiceName), semconv.ServiceVersion(c.Version)))
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	if r, err := resource.New(ctx, resource.WithFromEnv()); err == nil {
		if m, err := resource.Merge(res, r); err == nil {
			res = m
		}
	}
	// Metrics first: binding the Prometheus address is what most often
	// fails, and nothing of the traces (the trace file) exists yet then.
	if err := t.setupMetrics(ctx, res); err != nil {
		return nil, err
	}
	if err := t.setupTraces(ctx, res); err != nil {
		t.stopMetrics()
		return nil, err
	}
	return t, nil
}

func (t *Telemetry) setupTraces(ctx context.Context, res *resource.Resource) error {
	c := t.cfg
	ratio := c.Traces.Sampling
	if ratio < 0 || ratio > 1 || ratio != ratio {
		return fmt.Errorf("telemetry: trace sampling %v: want a ratio between 0 and 1", ratio)
	}
	var opts []sdktrace.TracerProviderOption
	// The file first: the provider shuts its processors down in order and
	// gives up on the rest when the deadline passes, and a collector that
	// is down must not cost the file.
	if c.Traces.File != "" {
		t.dests = append(t.dests, "traces: file "+c.Traces.File)
		opts = append(opts, sdktrace.WithSyncer(capturedSpanExporter{NewFileExporter(c.Traces.File), t, nil}))
	}
	switch c.Traces.Exporter {
	case "", "none":
	case "stdout":
		exp, err := stdouttrace.New(stdouttrace.WithWriter(c.Stdout))
		if err != nil {
			return fmt.Errorf("telemetry: stdout trace exporter: %w", err)
		}
		opts = append(opts, sdktrace.WithSyncer(exp))
	case "otlp":
		exp, err := t.otlpTraceExporter(ctx)
		if err != nil {
			return err
		}
		t.dests = append(t.dests, "traces: "+dest(c.Traces.Protocol, c.Traces.Endpoint))
		r := newReach(c.Traces.Protocol, c.Traces.Endpoint, "TRACES", c.Timeout)
		opts = append(opts, sdktrace.WithBatcher(capturedSpanExporter{exp, t, r}, sdktrace.WithExportTimeout(c.Timeout),
			sdktrace.WithMaxQueueSize(8192), sdktrace.WithMaxExportBatchSize(1024)))
	default:
		return fmt.Errorf("telemetry: trace exporter %q: want none, stdout or otlp", c.Traces.Exporter)
	}
	if len(opts) == 0 {
		return nil
	}
	opts = append(opts, sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))))
	t.tp = sdktrace.NewTracerProvider(opts...)
	return nil
}

func (t *Telemetry) otlpTraceExporter(ctx context.Context) (sdktrace.SpanExporter, error) {
	c := t.cfg.Traces
	proto, err := parseProtocol(c.Protocol)
	if err != nil {
		return nil, fmt.Errorf("telemetry: trace exporter: %w", err)
	}
	retry := t.cfg.Timeout
	if proto == "http" {
		opts := []otlptracehttp.Option{otlptracehttp.WithTimeout(t.cfg.Timeout),
			otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: true, InitialInterval: 100 * time.Millisecond, MaxInterval: time.Second, MaxElapsedTime: retry})}
		if c.Endpoint != "" {
			opts = append(opts, httpEndpoint(c.Endpoint, c.EndpointIsBase, "/v1/traces", otlptracehttp.WithEndpointURL, otlptracehttp.WithEndpoint, otlptracehttp.WithInsecure())...)
		}
		exp, err := otlptracehttp.New(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("telemetry: otlp/http trace exporter: %w", err)
		}
		return exp, nil
	}
	opts := []otlptracegrpc.Option{otlptracegrpc.WithTimeout(t.cfg.Timeout),
		otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: true, InitialInterval: 100 * time.Millisecond, MaxInterval: time.Second, MaxElapsedTime: retry})}
	if c.Endpoint != "" {
		opts = append(opts, grpcEndpoint(c.Endpoint, otlptracegrpc.WithEndpointURL, otlptracegrpc.WithEndpoint, otlptracegrpc.WithInsecure())...)
	}
	exp, err := otlptracegrpc.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("telemetry: otlp/grpc trace exporter: %w", err)
	}
	return exp, nil
}

// dest describes an OTLP destination for messages.
func dest(protocol, endpoint string) string {
	p, _ := parseProtocol(protocol)
	if endpoint == "" {
		endpoint = "default endpoint"
		if v := os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT"); v != "" {
			endpoint = v
		}
	}
	return "otlp/" + p + " " + endpoint
}

// grpcEndpoint: a URL is taken as is (http:// means plaintext); a bare
// host:port means plaintext, the common case of a local collector.
func grpcEndpoint[O any](ep string, withURL func(string) O, withEndpoint func(string) O, insecure O) []O {
	if strings.Contains(ep, "://") {
		return []O{withURL(ep)}
	}
	return []O{withEndpoint(ep), insecure}
}

// httpEndpoint: a URL without a path gets the signal's path; a base
// endpoint (OTEL_EXPORTER_OTLP_ENDPOINT) always gets it appended, as the
// OTLP exporter spec says; a bare host:port means plaintext.
func httpEndpoint[O any](ep string, base bool, path string, withURL func(string) O, withEndpoint func(string) O, insecure O) []O {
	if i := strings.Index(ep, "://"); i >= 0 {
		if base {
			ep = strings.TrimRight(ep, "/") + path
		} else if !strings.Contains(ep[i+3:], "/") {
			ep += path
		}
		return []O{withURL(ep)}
	}
	return []O{withEndpoint(ep), insecure}
}

func (t *Telemetry) setupMetrics(ctx context.Context, res *resource.Resource) error {
	c := t.cfg
	interval := c.Metrics.Interval
	if interval <= 0 {
		interval = 10 * time.Second
	}
	// Everything that can fail comes before anything that starts a
	// goroutine or holds a port, so a failed Setup leaves nothing behind.
	var exp sdkmetric.Exporter
	var r *reach
	switch c.Metrics.Exporter {
	case "", "none":
	case "stdout":
		e, err := newStdoutMetricExporter(c.Stdout)
		if err != nil {
			return err
		}
		exp = e
	case "otlp":
		e, err := t.otlpMetricExporter(ctx)
		if err != nil {
			return err
		}
		exp = e
		r = newReach(c.Metrics.Protocol, c.Metrics.Endpoint, "METRICS", c.Timeout)
		t.dests = append(t.dests, "metrics: "+dest(c.Metrics.Protocol, c.Metrics.Endpoint))
	default:
		return fmt.Errorf("telemetry: metric exporter %q: want none, stdout or otlp", c.Metrics.Exporter)
	}
	var readers []sdkmetric.Option
	var reg *prometheus.Registry
	if c.Metrics.Listen != "" {
		reg = prometheus.NewRegistry()
		pexp, err := otelprom.New(otelprom.WithRegisterer(reg))
		if err != nil {
			return fmt.Errorf("telemetry: prometheus exporter: %w", err)
		}
		ln, err := net.Listen("tcp", c.Metrics.Listen)
		if err != nil {
			if exp != nil {
				_ = exp.Shutdown(ctx)
			}
			return fmt.Errorf("telemetry: metrics endpoint: %w", err)
		}
		t.ln = ln
		readers = append(readers, sdkmetric.WithReader(pexp))
	}
	if exp != nil {
		readers = append(readers, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(capturedMetricExporter{exp, t, r},
			sdkmetric.WithInterval(interval), sdkmetric.WithTimeout(c.Timeout))))
	}
	if len(readers) == 0 {
		return nil
	}
	t.mp = sdkmetric.NewMeterProvider(append(readers, sdkmetric.WithResource(res))...)
	if t.ln != nil {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
		t.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		t.srvDone = make(chan struct{})
		go func() {
			defer close(t.srvDone)
			_ = t.srv.Serve(t.ln) // returns http.ErrServerClosed once stopped
		}()
	}
	return nil
}

func (t *Telemetry) otlpMetricExporter(ctx context.Context) (sdkmetric.Exporter, error) {
	c := t.cfg
	proto, err := parseProtocol(c.Metrics.Protocol)
	if err != nil {
		return nil, fmt.Errorf("telemetry: metric exporter: %w", err)
	}
	var exp sdkmetric.Exporter
	if proto == "http" {
		opts := []otlpmetrichttp.Option{otlpmetrichttp.WithTimeout(c.Timeout),
			otlpmetrichttp.WithRetry(otlpmetrichttp.RetryConfig{Enabled: true, InitialInterval: 100 * time.Millisecond, MaxInterval: time.Second, MaxElapsedTime: c.Timeout})}
		if ep := c.Metrics.Endpoint; ep != "" {
			opts = append(opts, httpEndpoint(ep, c.Metrics.EndpointIsBase, "/v1/metrics", otlpmetrichttp.WithEndpointURL, otlpmetrichttp.WithEndpoint, otlpmetrichttp.WithInsecure())...)
		}
		exp, err = otlpmetrichttp.New(ctx, opts...)
	} else {
		opts := []otlpmetricgrpc.Option{otlpmetricgrpc.WithTimeout(c.Timeout),
			otlpmetricgrpc.WithRetry(otlpmetricgrpc.RetryConfig{Enabled: true, InitialInterval: 100 * time.Millisecond, MaxInterval: time.Second, MaxElapsedTime: c.Timeout})}
		if ep := c.Metrics.Endpoint; ep != "" {
			opts = append(opts, grpcEndpoint(ep, otlpmetricgrpc.WithEndpointURL, otlpmetricgrpc.WithEndpoint, otlpmetricgrpc.WithInsecure())...)
		}
		exp, err = otlpmetricgrpc.New(ctx, opts...)
	}
	if err != nil {
		return nil, fmt.Errorf("telemetry: otlp metric exporter: %w", err)
	}
	return exp, nil
}

// stopMetrics undoes setupMetrics after a later step of Setup failed.
func (t *Telemetry) stopMetrics() {
	if t.mp != nil {
		_ = t.mp.Shutdown(context.Background())
	}
	t.stopServer(context.Background())
}

// stopServer stops the Prometheus endpoint: a graceful shutdown bounded by
// ctx (and a second at most), then whatever connections are left are
// closed.
func (t *Telemetry) stopServer(ctx context.Context) {
	if t.srv == nil {
		if t.ln != nil {
			t.ln.Close()
		}
		return
	}
	sctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := t.srv.Shutdown(sctx); err != nil {
		_ = t.srv.Close()
	}
	<-t.srvDone
}

// TracerProvider is the provider runs should record spans on; nil when
// traces go nowhere.
func (t *Telemetry) TracerProvider() trace.TracerProvider {
	if t == nil || t.tp == nil {
		return nil
	}
	return t.tp
}

// MeterProvider is the provider runs should record metrics on; nil when
// metrics go nowhere.
func (t *Telemetry) MeterProvider() metric.MeterProvider {
	if t == nil || t.mp == nil {
		return nil
	}
	return t.mp
}

// MetricsAddr is the address the Prometheus endpoint listens on (with the
// port chosen when Listen said :0), or "".
func (t *Telemetry) MetricsAddr() string {
	if t == nil || t.ln == nil {
		return ""
	}
	return t.ln.Addr().String()
}

// Handle counts an error from the OpenTelemetry SDK (an export that failed);
// install it with otel.SetErrorHandler to turn the SDK's own log lines into
// the single warning Shutdown returns.
func (t *Telemetry) Handle(err error) {
	if err == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.errs++
	if t.first == nil {
		t.first = err
	}
}

// DeliveryError says that telemetry could not all be delivered; the run it
// belongs to is not affected.
type DeliveryError struct {
	To     []string // the destinations, like "traces: otlp/grpc localhost:4317"
	Errors int      // failures seen (exports, flushes)
	First  error    // the first of them
}

func (e *DeliveryError) Error() string {
	more := ""
	if e.Errors > 1 {
		more = fmt.Sprintf(" (%d errors)", e.Errors)
	}
	return fmt.Sprintf("telemetry not delivered (%s): %v%s; the run itself is not affected", strings.Join(e.To, ", "), e.First, more)
}

func (e *DeliveryError) Unwrap() error { return e.First }

// Shutdown flushes and stops everything within the configured timeout (or
// ctx's deadline, if sooner), and stops the Prometheus endpoint. It never
// blocks longer than that, whatever the collector does. The error, if any,
// is a *DeliveryError (or a trace file that could not be written).
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	t.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
	defer cancel()
	var wg sync.WaitGroup
	if t.tp != nil {
		wg.Go(func() { t.Handle(t.shutdownTraces(ctx)) })
	}
	if t.mp != nil {
		wg.Go(func() { t.Handle(t.mp.Shutdown(ctx)) })
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		// An exporter ignoring its context: leave it behind rather than
		// hang the process; it holds no batches of ours.
		t.Handle(fmt.Errorf("flush did not finish in time (timeout %v): %w", t.cfg.Timeout, context.Cause(ctx)))
	}
	t.stopServer(ctx)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.errs == 0 {
		return nil
	}
	return &DeliveryError{To: t.dests, Errors: t.errs, First: t.first}
}

func (t *Telemetry) shutdownTraces(ctx context.Context) error {
	if t.tp == nil {
		return nil
	}
	err := t.tp.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("flush did not finish within %v", t.cfg.Timeout)
	}
	return err
}
