package engine

import (
	"context"
	"runtime"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// replay emits one prepared batch n times: a source that allocates
// nothing per batch, so what a run allocates per batch is the engine's.
type replay struct {
	rec arrow.RecordBatch
	n   int
}

func (r *replay) Run(_ context.Context, out Emitter) error {
	for range r.n {
		r.rec.Retain()
		if err := out.Emit(r.rec); err != nil {
			return err
		}
	}
	return nil
}

type replayFactory struct{ r *replay }

func (f replayFactory) Schema() *arrow.Schema                        { return seqSchema }
func (f replayFactory) New(*InstanceContext) (any, error)            { return f.r, nil }
func (dropSink) Write(context.Context, int, arrow.RecordBatch) error { return nil }
func (dropSink) Close(context.Context) error                         { return nil }
func (dropSink) Commit() error                                       { return nil }
func (dropSink) Abort()                                              {}

type dropSink struct{}
type dropFactory struct{}

func (dropFactory) Schema() *arrow.Schema             { return nil }
func (dropFactory) New(*InstanceContext) (any, error) { return dropSink{}, nil }

// TestOrderedParallelNoAllocs: an ordered parallel transform (tickets and
// a condition variable, no channel per batch) allocates nothing per batch:
// a run of 4000 batches allocates what a run of 400 does, give or take.
func TestOrderedParallelNoAllocs(t *testing.T) {
	b := array.NewInt64Builder(memory.DefaultAllocator)
	b.AppendValues([]int64{1, 2, 3}, nil)
	col := b.NewArray()
	b.Release()
	rec := array.NewRecordBatch(seqSchema, []arrow.Array{col}, 3)
	col.Release()
	defer rec.Release()
	r := &replay{rec: rec}
	reg := testRegistry()
	reg.MustRegister(Spec{Name: "replay", Kind: KindSource, NewConfig: func() any { return &struct{}{} },
		Build: func(*BuildContext, any) (Factory, error) { return replayFactory{r}, nil }})
	reg.MustRegister(Spec{Name: "drop", Kind: KindSink, MaxInputs: 1, NewConfig: func() any { return &struct{}{} },
		Build: func(*BuildContext, any) (Factory, error) { return dropFactory{}, nil }})
	p, err := Compile(&Graph{Name: "ordered", Settings: Settings{Memory: DefaultMemory()}, Nodes: []*Node{
		{ID: "src", Kind: KindSource, Type: "replay"},
		{ID: "p", Kind: KindTransform, Type: "pass", Config: &passConfig{}, Inputs: []string{"src"}, Parallelism: 2},
		{ID: "out", Kind: KindSink, Type: "drop", Inputs: []string{"p"}},
	}}, CompileOptions{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	mallocs := func(n int) uint64 {
		r.n = n
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		sum, err := p.Run(context.Background(), RunOptions{Alloc: memory.DefaultAllocator})
		runtime.ReadMemStats(&after)
		if err != nil || sum.Op("out").BatchesIn != int64(n) {
			t.Fatalf("run of %d: %v, %d batches", n, err, sum.Op("out").BatchesIn)
		}
		return after.Mallocs - before.Mallocs
	}
	mallocs(100) // warm up
	small, large := mallocs(400), mallocs(4000)
	perBatch := (float64(large) - float64(small)) / 3600
	t.Logf("mallocs: %d for 400 batches, %d for 4000: %.3f per batch", small, large, perBatch)
	if perBatch > 0.25 {
		t.Errorf("%.3f allocations per batch on the ordered parallel path", perBatch)
	}
}
