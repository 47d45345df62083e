package stateful

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/zflowdev/zflow/engine"
)

// countSink counts the rows it is given.
type countSink struct{ n *atomic.Int64 }

func (s *countSink) Write(_ context.Context, _ int, in arrow.RecordBatch) error {
	s.n.Add(in.NumRows())
	return nil
}
func (s *countSink) Close(context.Context) error { return nil }
func (s *countSink) Commit() error               { return nil }
func (s *countSink) Abort()                      {}

var benchCount atomic.Int64

func init() {
	registry.MustRegister(engine.Spec{Name: "count", Kind: engine.KindSink, MinInputs: 1, MaxInputs: 1, NewConfig: func() any { return &keyedData{} },
		Build: func(*engine.BuildContext, any) (engine.Factory, error) { return countFactory{}, nil }})
}

type countFactory struct{}

func (countFactory) Schema() *arrow.Schema                    { return nil }
func (countFactory) New(*engine.InstanceContext) (any, error) { return &countSink{&benchCount}, nil }

// benchSide makes rows rows of (k int64 in [0, keys), v int64, tag
// string) in batches of 64Ki.
func benchSide(mem memory.Allocator, rows, keys int, prefix string) []arrow.RecordBatch {
	s := arrow.NewSchema([]arrow.Field{{Name: "k", Type: arrow.PrimitiveTypes.Int64},
		{Name: prefix + "v", Type: arrow.PrimitiveTypes.Int64}, {Name: prefix + "x", Type: arrow.PrimitiveTypes.Float64}}, nil)
	var out []arrow.RecordBatch
	for off := 0; off < rows; off += 1 << 16 {
		b := array.NewRecordBuilder(mem, s)
		n := min(1<<16, rows-off)
		for i := off; i < off+n; i++ {
			k := int64(uint64(i) * 0x9E3779B97F4A7C15 % uint64(keys))
			if rows == keys {
				k = int64(i) // the dimension: each key once
			}
			b.Field(0).(*array.Int64Builder).Append(k)
			b.Field(1).(*array.Int64Builder).Append(int64(i))
			b.Field(2).(*array.Float64Builder).Append(float64(i) / 3)
		}
		out = append(out, b.NewRecordBatch())
		b.Release()
	}
	return out
}

// BenchmarkJoin: an inner join of probe rows with a dimension of build
// rows (each probe key in it), threads 1 and 2. Run the big ones alone:
//
//	go test -run '^$' -bench 'Join/probe=10000000' -benchtime 3x ./operators/stateful/
func BenchmarkJoin(b *testing.B) {
	mem := memory.NewGoAllocator()
	for _, c := range []struct{ probe, build int }{{1_000_000, 500}, {10_000_000, 500}, {10_000_000, 1_000_000}} {
		if testing.Short() && c.probe > 1_000_000 {
			continue
		}
		var probe, build []arrow.RecordBatch
		for _, threads := range []int{1, 2} {
			b.Run(fmt.Sprintf("probe=%d/build=%d/threads=%d", c.probe, c.build, threads), func(b *testing.B) {
				if probe == nil {
					probe = benchSide(mem, c.probe, c.build, "p")
					build = benchSide(mem, c.build, c.build, "b")
				}
				pk, bk := newKey(), newKey()
				testData.Store(pk, probe)
				testData.Store(bk, build)
				g := &engine.Graph{Name: "bench", Settings: engine.Settings{Threads: threads, BatchRows: 1 << 16}, Nodes: []*engine.Node{
					{ID: "p", Kind: engine.KindSource, Type: "batches", Config: &keyedData{pk}},
					{ID: "b", Kind: engine.KindSource, Type: "batches", Config: &keyedData{bk}},
					{ID: "j", Kind: engine.KindTransform, Type: "join", Inputs: []string{"p", "b"}, Config: &JoinConfig{On: []string{"k"}}, ConfigFrom: engine.ConfigLiteral},
					{ID: "out", Kind: engine.KindSink, Type: "count", Inputs: []string{"j"}, Config: &keyedData{}},
				}}
				p, err := engine.Compile(g, engine.CompileOptions{Registry: registry})
				if err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					benchCount.Store(0)
					if _, err := p.Run(context.Background(), engine.RunOptions{}); err != nil {
						b.Fatal(err)
					}
					if got := benchCount.Load(); got != int64(c.probe) {
						b.Fatalf("%d rows out, want %d", got, c.probe)
					}
				}
				b.ReportMetric(float64(c.probe)*float64(b.N)/b.Elapsed().Seconds()/1e6, "Mrows/s")
			})
		}
		release(probe)
		release(build)
	}
}
