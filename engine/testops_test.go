package engine

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"
)

// Test-only operators, registered in a private registry.

var seqSchema = arrow.NewSchema([]arrow.Field{{Name: "n", Type: arrow.PrimitiveTypes.Int64}}, nil)

type seqConfig struct {
	Batches int `zflow:"batches" doc:"number of batches"`
	Rows    int `zflow:"rows" doc:"rows per batch"`
	// Produced counts batches emitted, for backpressure tests.
	Produced *atomic.Int64
	// Delay between batches.
	Delay time.Duration
}

type seqFactory struct{ cfg *seqConfig }

func (f seqFactory) Schema() *arrow.Schema { return seqSchema }
func (f seqFactory) New(ic *InstanceContext) (any, error) {
	return &seqSource{cfg: f.cfg, mem: ic.Alloc, index: ic.Index, count: max(ic.Count, 1)}, nil
}

type shardSeqFactory struct{ cfg *seqConfig }

func (f shardSeqFactory) Schema() *arrow.Schema { return seqSchema }
func (f shardSeqFactory) New(ic *InstanceContext) (any, error) {
	return &seqSource{cfg: f.cfg, mem: ic.Alloc, count: 1, mine: ic.Mine}, nil
}

// seqSource emits batches 0, 1, … Batches-1; with several instances each
// emits every count-th from its index, and only those mine says are its
// when it is set (a sharded run's share).
type seqSource struct {
	cfg          *seqConfig
	mem          memory.Allocator
	index, count int
	mine         func(int) bool
}

func (s *seqSource) Run(ctx context.Context, out Emitter) error {
	for i := s.index; i < s.cfg.Batches; i += s.count {
		if s.mine != nil && !s.mine(i) {
			continue
		}
		if s.cfg.Delay > 0 {
			time.Sleep(s.cfg.Delay)
		}
		b := array.NewInt64Builder(s.mem)
		for j := 0; j < s.cfg.Rows; j++ {
			b.Append(int64(i*s.cfg.Rows + j))
		}
		col := b.NewArray()
		b.Release()
		rec := array.NewRecordBatch(seqSchema, []arrow.Array{col}, int64(s.cfg.Rows))
		col.Release()
		if s.cfg.Produced != nil {
			s.cfg.Produced.Add(1)
		}
		if err := out.Emit(rec); err != nil {
			return err
		}
	}
	return nil
}

type passConfig struct {
	FailAt int `zflow:"fail_at" doc:"fail on this batch (1-based), 0 never"`
	Stop   int `zflow:"stop_after" doc:"return ErrStop after this many batches"`
	Sleep  time.Duration
	seen   atomic.Int64
}

type passFactory struct {
	cfg    *passConfig
	schema *arrow.Schema
}

func (f passFactory) Schema() *arrow.Schema { return f.schema }
func (f passFactory) New(ic *InstanceContext) (any, error) {
	return &passOp{cfg: f.cfg}, nil
}

type passOp struct{ cfg *passConfig }

func (p *passOp) Process(ctx context.Context, port int, in arrow.RecordBatch, out Emitter) error {
	n := p.cfg.seen.Add(1)
	if p.cfg.Sleep > 0 {
		time.Sleep(p.cfg.Sleep * time.Duration(1+n%3))
	}
	if p.cfg.FailAt > 0 && int(n) == p.cfg.FailAt {
		return errors.New("injected failure")
	}
	in.Retain()
	if err := out.Emit(in); err != nil {
		return err
	}
	if p.cfg.Stop > 0 && int(n) >= p.cfg.Stop {
		return ErrStop
	}
	return nil
}

type collectConfig struct {
	Sleep time.Duration
	mu    sync.Mutex
	got   []int64 // first value of each batch
	rows  int64
	state string // "", "closed", "committed", "aborted"
}

type collectFactory struct{ cfg *collectConfig }

func (f collectFactory) Schema() *arrow.Schema { return nil }
func (f collectFactory) New(ic *InstanceContext) (any, error) {
	return &collectSink{cfg: f.cfg}, nil
}

type collectSink struct{ cfg *collectConfig }

func (s *collectSink) Write(ctx context.Context, port int, in arrow.RecordBatch) error {
	if s.cfg.Sleep > 0 {
		time.Sleep(s.cfg.Sleep)
	}
	s.cfg.mu.Lock()
	defer s.cfg.mu.Unlock()
	if in.NumRows() > 0 && in.NumCols() > 0 {
		s.cfg.got = append(s.cfg.got, in.Column(0).(*array.Int64).Value(0))
	}
	s.cfg.rows += in.NumRows()
	return nil
}
func (s *collectSink) Close(ctx context.Context) error { s.set("closed"); return nil }
func (s *collectSink) Commit() error                   { s.set("committed"); return nil }
func (s *collectSink) Abort()                          { s.set("aborted") }
func (s *collectSink) set(st string) {
	s.cfg.mu.Lock()
	s.cfg.state = st
	s.cfg.mu.Unlock()
}

func testRegistry() *Registry {
	r := NewRegistry()
	r.MustRegister(Spec{
		Name: "seq", Kind: KindSource, Summary: "counting source",
		NewConfig: func() any { return &seqConfig{Batches: 10, Rows: 100} },
		Build: func(bc *BuildContext, cfg any) (Factory, error) {
			return seqFactory{cfg.(*seqConfig)}, nil
		},
	})
	r.MustRegister(Spec{
		Name: "pseq", Kind: KindSource, Summary: "counting source whose instances share the batches", Parallel: true,
		NewConfig: func() any { return &seqConfig{Batches: 10, Rows: 100} },
		Build: func(bc *BuildContext, cfg any) (Factory, error) {
			return seqFactory{cfg.(*seqConfig)}, nil
		},
	})
	r.MustRegister(Spec{
		Name: "sseq", Kind: KindSource, Summary: "counting source whose instances, across shards, share the batches", Parallel: true, Shardable: true,
		NewConfig: func() any { return &seqConfig{Batches: 10, Rows: 100} },
		Build: func(bc *BuildContext, cfg any) (Factory, error) {
			return shardSeqFactory{cfg.(*seqConfig)}, nil
		},
	})
	r.MustRegister(Spec{
		Name: "pass", Kind: KindTransform, Parallel: true, MinInputs: 1, MaxInputs: -1,
		NewConfig: func() any { return &passConfig{} },
		Build: func(bc *BuildContext, cfg any) (Factory, error) {
			for i, s := range bc.Inputs[1:] {
				if !s.Equal(bc.Inputs[0]) {
					return nil, Errf("inputs", "input %d schema differs", i+1)
				}
			}
			return passFactory{cfg.(*passConfig), bc.Inputs[0]}, nil
		},
	})
	r.MustRegister(Spec{
		Name: "collect", Kind: KindSink, MinInputs: 1, MaxInputs: -1,
		NewConfig: func() any { return &collectConfig{} },
		Build: func(bc *BuildContext, cfg any) (Factory, error) {
			return collectFactory{cfg.(*collectConfig)}, nil
		},
	})
	return r
}

// countingAlloc counts every byte ever allocated, on top of a checked
// allocator that must end at zero.
type countingAlloc struct {
	*memory.CheckedAllocator
	total atomic.Int64
}

func newCountingAlloc() *countingAlloc {
	return &countingAlloc{CheckedAllocator: memory.NewCheckedAllocator(memory.NewGoAllocator())}
}

func (a *countingAlloc) Allocate(n int) []byte {
	a.total.Add(int64(n))
	return a.CheckedAllocator.Allocate(n)
}

func (a *countingAlloc) Reallocate(n int, b []byte) []byte {
	if n > len(b) {
		a.total.Add(int64(n - len(b)))
	}
	return a.CheckedAllocator.Reallocate(n, b)
}

func mustCompile(t testing.TB, g *Graph) *Plan {
	t.Helper()
	p, err := Compile(g, CompileOptions{Registry: testRegistry()})
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return p
}

func checkNoLeaks(t *testing.T, mem *countingAlloc) {
	t.Helper()
	mem.AssertSize(t, 0)
	goleak.VerifyNone(t)
}
