// Package zflow is the embedding API of the zflow dataflow engine: load a
// pipeline from YAML (or build one in Go), register custom operators, and run
// it with your own allocator and logger.
//
//	p, err := zflow.Load("pipeline.yaml")
//	if err != nil { ... }           // errors say file:line:col
//	sum, err := p.Run(ctx)          // err names the operator that failed
//	sum.WriteText(os.Stderr)        // the summary table zflow run prints
//
// A custom transform is a config struct and a function applied to each
// batch: zflow.Register(zflow.Map(name, summary, build)) (see Map, Column,
// SetColumn); engine.Spec is the full operator contract.
//
// Importing this package links the built-in operators (package operators).
// A program that wants only its own operators can use packages engine and
// pipelines directly.
package zflow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/zflowdev/zflow/buffers"
	"github.com/zflowdev/zflow/engine"
	_ "github.com/zflowdev/zflow/operators" // built-in operators register themselves
	"github.com/zflowdev/zflow/pipelines"
	"github.com/zflowdev/zflow/telemetry"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Version is the engine's version, set at build time with
// -ldflags "-X github.com/zflowdev/zflow.Version=v0.1.0".
var Version = "v0.1.0-dev"

// Summary is what a run reports: per-operator rows, batches, bytes, bytes
// passed by reference and bytes copied, and time busy/blocked.
type Summary = engine.Summary

// Pipeline is a compiled pipeline, ready to run any number of times.
type Pipeline struct {
	name string
	file *pipelines.Pipeline // nil when built in Go
	plan *engine.Plan
}

// Option configures loading or building a pipeline.
type Option func(*options)

type options struct {
	registry *engine.Registry
	env      func(string) (string, bool)
	stdin    io.Reader
	rewrite  func(*engine.Graph) error
}

// WithRewrite lets f change the graph a pipeline file describes before it
// is compiled: a cluster worker makes it its shard of the run there
// (cluster.Job.WorkerGraph). An error from f is Load's or Parse's.
func WithRewrite(f func(*engine.Graph) error) Option { return func(o *options) { o.rewrite = f } }

// WithRegistry compiles against r instead of the default registry (which
// holds the built-in operators and anything passed to Register).
func WithRegistry(r *engine.Registry) Option { return func(o *options) { o.registry = r } }

// WithStdin makes a source with path "-" read r instead of os.Stdin. It is
// given when the pipeline is compiled because the source reads its schema
// then (peeking, without consuming: the run reads r from its start).
func WithStdin(r io.Reader) Option {
	return func(o *options) {
		if r != nil {
			o.stdin = engine.NewStdin(r) // one buffer, however often it is compiled
		}
	}
}

// WithEnv replaces os.LookupEnv for ${VAR} substitution in pipeline files.
func WithEnv(lookup func(string) (string, bool)) Option { return func(o *options) { o.env = lookup } }

func collect(opts []Option) options {
	var o options
	for _, f := range opts {
		f(&o)
	}
	return o
}

func (o options) pipelineOpts() []pipelines.Option {
	var po []pipelines.Option
	if o.registry != nil {
		po = append(po, pipelines.WithRegistry(o.registry))
	}
	if o.env != nil {
		po = append(po, pipelines.WithEnv(o.env))
	}
	if o.stdin != nil {
		po = append(po, pipelines.WithStdin(o.stdin))
	}
	return po
}

// Load reads, validates and compiles the pipeline file at path. Errors are a
// pipelines.ErrorList whose entries say file:line:col.
func Load(path string, opts ...Option) (*Pipeline, error) {
	o := collect(opts)
	f, err := pipelines.Load(path, o.pipelineOpts()...)
	if err != nil {
		return nil, err
	}
	return fromFile(f, o)
}

// Parse is Load for a pipeline held in memory; filename is used in errors.
func Parse(src []byte, filename string, opts ...Option) (*Pipeline, error) {
	o := collect(opts)
	f, err := pipelines.Parse(src, filename, o.pipelineOpts()...)
	if err != nil {
		return nil, err
	}
	return fromFile(f, o)
}

func fromFile(f *pipelines.Pipeline, o options) (*Pipeline, error) {
	if o.rewrite != nil {
		if err := o.rewrite(f.Graph); err != nil {
			return nil, err
		}
	}
	plan, err := f.Compile()
	if err != nil {
		return nil, err
	}
	return &Pipeline{name: f.Name, file: f, plan: plan}, nil
}

// Name is the pipeline's name.
func (p *Pipeline) Name() string { return p.name }

// Plan is the compiled plan: print it with WriteText, WriteDOT or WriteJSON.
func (p *Pipeline) Plan() *engine.Plan { return p.plan }

// RunOption configures one run.
type RunOption func(*runOptions)

type runOptions struct {
	engine.RunOptions
	tp           trace.TracerProvider
	mp           metric.MeterProvider
	batches      *float64
	ownProviders bool
}

// WithAllocator makes the run's pool out of mem instead of
// settings.memory (for example memory.NewCheckedAllocator in tests). Each
// operator still allocates through its own account of it: its figures
// are in the summary and settings.memory.budget still applies. Operators
// with a memory: block of their own keep their own pools.
func WithAllocator(mem memory.Allocator) RunOption {
	return func(o *runOptions) { o.Alloc = mem }
}

// WithMemory makes the run's pool from m instead of the pipeline's
// settings.memory (what `zflow run --arena` does); start from
// p.Plan().Settings.Memory to change one field. A kind this build does not
// have fails the run. Operators with a memory: block of their own keep
// their own pools.
func WithMemory(m buffers.PoolConfig) RunOption {
	return func(o *runOptions) { o.Memory = &m }
}

// WithBeforeCommit calls f once the pipeline has stopped and before its
// sinks publish (or discard) their output.
func WithBeforeCommit(f func()) RunOption { return func(o *runOptions) { o.BeforeCommit = f } }

// WithStdout makes a sink with path "-", and a stdout sink, write to w
// instead of os.Stdout.
func WithStdout(w io.Writer) RunOption { return func(o *runOptions) { o.Stdout = w } }

// WithLogger sends the run's log records to l.
func WithLogger(l *slog.Logger) RunOption { return func(o *runOptions) { o.Logger = l } }

// WithTracerProvider records the run's spans (one for the run, one per
// operator instance) on tp. Given this or WithMeterProvider, the run uses
// only the providers it is given: the pipeline's trace and metrics
// exporter settings are not used, and nothing global is touched. The
// caller flushes and shuts down its providers.
func WithTracerProvider(tp trace.TracerProvider) RunOption {
	return func(o *runOptions) { o.tp, o.ownProviders = tp, true }
}

// WithMeterProvider records the run's metrics on mp; see WithTracerProvider.
func WithMeterProvider(mp metric.MeterProvider) RunOption {
	return func(o *runOptions) { o.mp, o.ownProviders = mp, true }
}

// WithBatchSampling sets the fraction of source batches traced through
// every operator (settings.trace.batches in a pipeline file).
func WithBatchSampling(f float64) RunOption { return func(o *runOptions) { o.batches = &f } }

// TelemetryConfig is what the pipeline's settings.trace and
// settings.metrics ask for, with the standard OTEL_* environment variables
// applied over them (see telemetry.Config.ApplyEnv). For a pipeline built in
// Go only the environment variables count. A run uses it unless it is given
// providers (WithTracerProvider, WithMeterProvider).
func (p *Pipeline) TelemetryConfig() (telemetry.Config, error) {
	c := telemetry.Config{Version: Version, Traces: telemetry.TraceConfig{Exporter: "none", Sampling: 1}, Metrics: telemetry.MetricConfig{Exporter: "none"}}
	if p.file != nil {
		t, m := p.file.Settings.Trace, p.file.Settings.Metrics
		c.Traces = telemetry.TraceConfig{Exporter: t.Exporter, Protocol: t.Protocol, Endpoint: t.Endpoint, Sampling: t.Sampling}
		c.Metrics = telemetry.MetricConfig{Exporter: m.Exporter, Protocol: m.Protocol, Endpoint: m.Endpoint, Interval: m.Interval, Listen: m.Listen}
		c.Timeout = t.Timeout
	}
	err := c.ApplyEnv(nil)
	return c, err
}

// telemetry fills ro.Telemetry: the caller's providers, or providers set up
// here from the pipeline's settings (flushed before Run returns).
func (p *Pipeline) telemetry(ctx context.Context, ro *runOptions) {
	t := &ro.Telemetry
	if p.file != nil {
		t.BatchSampling = p.file.Settings.Trace.Batches
	}
	if ro.batches != nil {
		t.BatchSampling = *ro.batches
	}
	if ro.ownProviders {
		t.TracerProvider, t.MeterProvider = ro.tp, ro.mp
		return
	}
	cfg, err := p.TelemetryConfig()
	if err != nil {
		ro.Logger.Warn("telemetry off: "+err.Error(), "pipeline", p.name)
		return
	}
	if !cfg.Enabled() {
		return
	}
	tel, err := telemetry.Setup(ctx, cfg)
	if err != nil {
		ro.Logger.Warn("telemetry off: "+err.Error(), "pipeline", p.name)
		return
	}
	t.TracerProvider, t.MeterProvider = tel.TracerProvider(), tel.MeterProvider()
	t.Flush = func() error { return tel.Shutdown(context.Background()) }
}

// Run runs the pipeline until it ends, fails, or ctx is cancelled. On error
// the summary still holds what was done, and no sink has left a file under
// its final name.
func (p *Pipeline) Run(ctx context.Context, opts ...RunOption) (Summary, error) {
	return p.Start(ctx, opts...).Wait()
}

// Start starts the pipeline and returns at once; use the Execution's
// Snapshot for progress and Wait for the result.
func (p *Pipeline) Start(ctx context.Context, opts ...RunOption) *engine.Execution {
	var ro runOptions
	for _, f := range opts {
		f(&ro)
	}
	if ro.Logger == nil {
		ro.Logger = slog.New(slog.DiscardHandler)
	}
	p.telemetry(ctx, &ro)
	return p.plan.Start(ctx, ro.RunOptions)
}

// Register adds a custom operator to the default registry, so pipeline files
// can name it by spec.Name. It fails on a duplicate name.
func Register(spec engine.Spec) error { return engine.DefaultRegistry.Register(spec) }

// Builder builds a pipeline in Go, without YAML. Its nodes get the same
// defaults and checks as a pipeline file's (see engine.ConfigFrom):
//
//   - A config given as a struct pointer (&operators.CSVSinkConfig{Path:
//     "out.csv"}) is completed: each parameter left at its zero value takes
//     the operator's default, here header: true and delimiter: ",". The
//     struct passed in is not changed.
//   - To set a parameter to zero or false where its default is not, start
//     from the defaults with [Defaults]: every value set there is kept.
//   - nil means every default.
//
// A required parameter left at its zero value, and a value outside the
// parameter's allowed values, are errors of Build naming the node and the
// parameter (an engine.NodeError with Field set), worded as the YAML
// decoder words them.
type Builder struct {
	g        *engine.Graph
	registry *engine.Registry
	stdin    io.Reader
	funcs    map[*engine.Node]configFunc // nodes configured by Defaults
}

// New starts building a pipeline named name.
func New(name string, opts ...Option) *Builder {
	o := collect(opts)
	return &Builder{g: &engine.Graph{Name: name}, registry: o.registry, stdin: o.stdin}
}

// Settings sets the engine settings: batch rows, edge capacity, memory
// and pinning, as a pipeline file's settings: section does. Start from
// engine.DefaultSettings() (which the zero value also gets) to change
// one field: a pipeline built in Go with the same settings as a file runs
// on the same memory, with the same budgets and pinning.
func (b *Builder) Settings(s engine.Settings) *Builder { b.g.Settings = s; return b }

// Memory gives the node added last memory of its own, as a memory: block
// on a node in a pipeline file does: with a Kind, a pool of its own (say
// an arena bound to another NUMA node, or shared memory); without one, the
// run's pool under its own Budget.
func (b *Builder) Memory(m buffers.PoolConfig) *Builder {
	if len(b.g.Nodes) > 0 {
		b.g.Nodes[len(b.g.Nodes)-1].Memory = &m
	}
	return b
}

func (b *Builder) add(kind engine.Kind, id, typ string, cfg any, inputs []string) *Builder {
	n := &engine.Node{ID: id, Kind: kind, Type: typ, Config: cfg, Inputs: inputs, ConfigFrom: engine.ConfigLiteral}
	switch c := cfg.(type) {
	case nil:
		n.ConfigFrom = engine.ConfigDefaults
	case configFunc:
		n.Config, n.ConfigFrom = nil, engine.ConfigDefaults
		if b.funcs == nil {
			b.funcs = map[*engine.Node]configFunc{}
		}
		b.funcs[n] = c
	}
	b.g.Nodes = append(b.g.Nodes, n)
	return b
}

// Source adds a source node. cfg is the operator's config struct pointer
// (e.g. &operators.GenerateConfig{...}), a [Defaults], or nil for its
// defaults.
func (b *Builder) Source(id, typ string, cfg any) *Builder {
	return b.add(engine.KindSource, id, typ, cfg, nil)
}

// Transform adds a transform node reading from inputs; cfg is as for Source.
func (b *Builder) Transform(id, typ string, cfg any, inputs ...string) *Builder {
	return b.add(engine.KindTransform, id, typ, cfg, inputs)
}

// Parallel sets the parallelism of the node added last (operators
// whose Spec is Parallel); n 0 is auto, the default (see
// engine.Node.Parallelism); ordered says whether it keeps its input order.
func (b *Builder) Parallel(n int, ordered bool) *Builder {
	if len(b.g.Nodes) > 0 {
		last := b.g.Nodes[len(b.g.Nodes)-1]
		last.Parallelism, last.Unordered, last.Ordered = n, !ordered, ordered
	}
	return b
}

// Sink adds a sink node reading from inputs; cfg is as for Source.
func (b *Builder) Sink(id, typ string, cfg any, inputs ...string) *Builder {
	return b.add(engine.KindSink, id, typ, cfg, inputs)
}

// Build compiles the graph. Errors name the node and parameter at fault.
func (b *Builder) Build() (*Pipeline, error) {
	reg := b.registry
	if reg == nil {
		reg = engine.DefaultRegistry
	}
	var errs engine.Errors
	for _, n := range b.g.Nodes {
		f := b.funcs[n]
		if f == nil {
			continue
		}
		spec, err := reg.Lookup(n.Kind, n.Type)
		if err != nil {
			continue // Compile reports it
		}
		n.Config = spec.NewConfig()
		if err := f.apply(n.Config); err != nil {
			errs = append(errs, &engine.NodeError{Node: n.ID, Offset: -1, Msg: err.Error()})
		}
	}
	plan, err := engine.Compile(b.g, engine.CompileOptions{Registry: b.registry, Stdin: b.stdin})
	if err != nil {
		var ce engine.Errors
		if !errors.As(err, &ce) {
			ce = engine.Errors{err}
		}
		errs = append(errs, ce...)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("zflow: build %q: %w", b.g.Name, errs)
	}
	return &Pipeline{name: b.g.Name, plan: plan}, nil
}

// configFunc is what Defaults returns.
type configFunc interface {
	apply(cfg any) error
}

type defaultsFunc[T any] func(*T)

func (f defaultsFunc[T]) apply(cfg any) error {
	c, ok := cfg.(*T)
	if !ok {
		return fmt.Errorf("zflow.Defaults is given a func(*%v), but the operator's config is %T", reflect.TypeFor[T](), cfg)
	}
	f(c)
	return nil
}

// Defaults is a config for Builder's Source, Transform and Sink that starts
// from the operator's defaults (its Spec's NewConfig) and lets set change
// them. Unlike a struct literal's zero fields, which take the defaults,
// every value set keeps the value it is given, zero and false included:
//
//	b.Sink("out", "csv", zflow.Defaults(func(c *operators.CSVSinkConfig) {
//		c.Path, c.Header = "out.csv", false // no header line
//	}), "src")
//
// T is the operator's config struct type.
func Defaults[T any](set func(*T)) any { return defaultsFunc[T](set) }
