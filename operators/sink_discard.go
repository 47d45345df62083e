package operators

import (
	"context"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/zflowdev/zflow/engine"
)

// DiscardConfig configures the discard sink; it has no parameters.
type DiscardConfig struct{}

// DiscardSpec is the spec of the discard sink.
func DiscardSpec() engine.Spec {
	return engine.Spec{
		Name:    "discard",
		Kind:    engine.KindSink,
		Summary: "consumes batches and drops them (for benchmarks and dry runs)",
		Example: `type: discard
inputs: [trades]`,
		Parallel:  true,
		MinInputs: 1, MaxInputs: -1,
		NewConfig: func() any { return &DiscardConfig{} },
		Build: func(bc *engine.BuildContext, cfg any) (engine.Factory, error) {
			return discardFactory{}, nil
		},
	}
}

func init() { engine.Register(DiscardSpec()) }

type discardFactory struct{}

func (discardFactory) Schema() *arrow.Schema { return nil }

func (discardFactory) New(ic *engine.InstanceContext) (any, error) { return discardSink{}, nil }

type discardSink struct{}

func (discardSink) Write(ctx context.Context, port int, in arrow.RecordBatch) error { return nil }
func (discardSink) Close(ctx context.Context) error                                 { return nil }
func (discardSink) Commit() error                                                   { return nil }
func (discardSink) Abort()                                                          {}
