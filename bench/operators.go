package bench

import (
	"context"
	"errors"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/zflowdev/zflow/engine"
)

// The bench-only operators. They live in the private Registry, never in
// engine.DefaultRegistry.

// replayConfig carries the batches to replay; it has no YAML parameters.
type replayConfig struct{ data *Data }

// replaySpec is a source that emits pre-made batches by reference: each Emit
// hands the engine a new reference (Retain), the Data keeps its own. So the
// pipeline computes on exactly the batches the Loop baseline sees.
func replaySpec() engine.Spec {
	return engine.Spec{
		Name: "bench_replay", Kind: engine.KindSource,
		Summary:   "emits pre-generated batches, retained (benchmarks only)",
		NewConfig: func() any { return &replayConfig{} },
		Build: func(bc *engine.BuildContext, c any) (engine.Factory, error) {
			cfg := c.(*replayConfig)
			if cfg.data == nil {
				return nil, errNoData
			}
			return replayFactory{cfg.data}, nil
		},
	}
}

type replayFactory struct{ d *Data }

func (f replayFactory) Schema() *arrow.Schema { return f.d.Schema }

func (f replayFactory) New(ic *engine.InstanceContext) (any, error) { return replaySource(f), nil }

type replaySource struct{ d *Data }

func (s replaySource) Run(ctx context.Context, out engine.Emitter) error {
	for _, b := range s.d.Batches {
		if err := ctx.Err(); err != nil {
			return err
		}
		b.Retain()
		if err := out.Emit(b); err != nil {
			if errors.Is(err, engine.ErrStop) {
				return nil
			}
			return err
		}
	}
	return nil
}

// collectConfig receives the batches a collect sink kept.
type collectConfig struct {
	mu      sync.Mutex
	batches []arrow.RecordBatch
}

func (c *collectConfig) take() []arrow.RecordBatch {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.batches
	c.batches = nil
	return out
}

// collectSpec is a sink that keeps (Retains) every batch it gets, in order,
// for Generate; on Abort it releases them.
func collectSpec() engine.Spec {
	return engine.Spec{
		Name: "bench_collect", Kind: engine.KindSink, MinInputs: 1, MaxInputs: 1,
		Summary:   "keeps every batch (benchmarks only)",
		NewConfig: func() any { return &collectConfig{} },
		Build: func(bc *engine.BuildContext, c any) (engine.Factory, error) {
			return collectFactory{c.(*collectConfig)}, nil
		},
	}
}

type collectFactory struct{ cfg *collectConfig }

func (collectFactory) Schema() *arrow.Schema { return nil }

func (f collectFactory) New(ic *engine.InstanceContext) (any, error) { return collectSink(f), nil }

type collectSink struct{ cfg *collectConfig }

func (s collectSink) Write(ctx context.Context, port int, in arrow.RecordBatch) error {
	in.Retain()
	s.cfg.mu.Lock()
	s.cfg.batches = append(s.cfg.batches, in)
	s.cfg.mu.Unlock()
	return nil
}

func (s collectSink) Close(ctx context.Context) error { return nil }
func (s collectSink) Commit() error                   { return nil }

func (s collectSink) Abort() {
	for _, b := range s.cfg.take() {
		b.Release()
	}
}
