package operators

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/zflowdev/zflow/engine"
)

// LimitConfig is the config of the limit transform.
type LimitConfig struct {
	Count  int64 `zflow:"count" required:"true" doc:"number of rows to pass on" example:"1000"`
	Offset int64 `zflow:"offset" doc:"rows to skip before counting"`
}

// LimitSpec declares the limit transform: it passes the first count rows
// (after skipping offset) and then tells its producers to stop. Batches pass
// by reference; a batch cut at the boundary is a zero-copy slice.
func LimitSpec() engine.Spec {
	return engine.Spec{
		Name: "limit", Kind: engine.KindTransform, MinInputs: 1, MaxInputs: 1,
		Summary:   "pass the first N rows, then stop upstream",
		Example:   "{type: limit, inputs: [src], count: 1000}",
		NewConfig: func() any { return &LimitConfig{} },
		Build: func(bc *engine.BuildContext, c any) (engine.Factory, error) {
			cfg := c.(*LimitConfig)
			if cfg.Count < 0 {
				return nil, engine.Errf("count", "count must be ≥ 0, got %d", cfg.Count)
			}
			if cfg.Offset < 0 {
				return nil, engine.Errf("offset", "offset must be ≥ 0, got %d", cfg.Offset)
			}
			return &limitFactory{cfg: *cfg, schema: bc.Inputs[0]}, nil
		},
	}
}

func init() { engine.Register(LimitSpec()) }

type limitFactory struct {
	cfg    LimitConfig
	schema *arrow.Schema
}

func (f *limitFactory) Schema() *arrow.Schema { return f.schema }

func (f *limitFactory) Describe() string {
	if f.cfg.Offset > 0 {
		return fmt.Sprintf("count: %d, offset: %d", f.cfg.Count, f.cfg.Offset)
	}
	return fmt.Sprintf("count: %d", f.cfg.Count)
}

// InputColumns is what limit passes on: what its consumers read
// (engine.ColumnUser).
func (f *limitFactory) InputColumns(_ int, out []string) []string { return out }

func (f *limitFactory) New(*engine.InstanceContext) (any, error) {
	return &limit{skip: f.cfg.Offset, left: f.cfg.Count}, nil
}

type limit struct {
	skip, left int64
}

func (l *limit) Process(ctx context.Context, _ int, in arrow.RecordBatch, out engine.Emitter) error {
	if l.left <= 0 {
		return engine.ErrStop
	}
	n := in.NumRows()
	lo := min(l.skip, n)
	l.skip -= lo
	hi := min(n, lo+l.left)
	if hi > lo {
		l.left -= hi - lo
		var b arrow.RecordBatch
		if lo == 0 && hi == n {
			in.Retain()
			b = in
		} else {
			b = in.NewSlice(lo, hi) // shares in's buffers
		}
		if err := out.Emit(b); err != nil {
			return err
		}
	}
	if l.left <= 0 {
		return engine.ErrStop
	}
	return nil
}
