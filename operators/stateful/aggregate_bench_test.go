package stateful

import (
	"context"
	"fmt"
	"math/rand"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/engine"
)

// BenchmarkAggregate: 10M rows of (int64 key, int64 qty, float64 price)
// in batches of 64Ki, group by the key with 500 and with 1M groups,
// sum(qty), count(*), avg(price), on 1 and 2 instances, through the
// engine (a source of batches made once, a sink that drops the groups).
//
//	go test -run XXX -bench Aggregate -benchtime 1x ./operators/stateful
func BenchmarkAggregate(b *testing.B) {
	const rows, batch = 10_000_000, 65536
	for _, groups := range []int{500, 1_000_000} {
		mem := memory.NewGoAllocator()
		r := rand.New(rand.NewSource(1))
		var batches []arrow.RecordBatch
		schema := arrow.NewSchema([]arrow.Field{
			{Name: "k", Type: arrow.PrimitiveTypes.Int64}, {Name: "qty", Type: arrow.PrimitiveTypes.Int64},
			{Name: "price", Type: arrow.PrimitiveTypes.Float64}}, nil)
		for done := 0; done < rows; done += batch {
			n := min(batch, rows-done)
			kb, qb, pb := array.NewInt64Builder(mem), array.NewInt64Builder(mem), array.NewFloat64Builder(mem)
			for range n {
				kb.Append(int64(r.Intn(groups)))
				qb.Append(int64(r.Intn(1000)))
				pb.Append(r.Float64() * 100)
			}
			cols := []arrow.Array{kb.NewArray(), qb.NewArray(), pb.NewArray()}
			batches = append(batches, array.NewRecordBatch(schema, cols, int64(n)))
			for _, c := range cols {
				c.Release()
			}
		}
		for _, threads := range []int{1, 2} {
			b.Run(fmt.Sprintf("rows=%d/groups=%d/threads=%d", rows, groups, threads), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					var out []string
					var cols []string
					var mu sync.Mutex
					g := &engine.Graph{Name: "bench", Settings: engine.DefaultSettings(), Nodes: []*engine.Node{
						{ID: "src", Kind: engine.KindSource, Type: "batches", Config: &batchesConfig{schema: schema, batches: batches}},
						{ID: "agg", Kind: engine.KindTransform, Type: "aggregate", Inputs: []string{"src"}, Parallelism: threads,
							Config:     &AggregateConfig{GroupBy: []string{"k"}, Aggregates: ordered("s", "sum(qty)", "n", "count(*)", "a", "avg(price)")},
							ConfigFrom: engine.ConfigDefaults},
						{ID: "out", Kind: engine.KindSink, Type: "rows", Inputs: []string{"agg"}, Config: &rowsConfig{mu: &mu, rows: &out, cols: &cols, count: true}},
					}}
					p, err := engine.Compile(g, engine.CompileOptions{Registry: testRegistry()})
					if err != nil {
						b.Fatal(err)
					}
					if _, err := p.Run(context.Background(), engine.RunOptions{}); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/rows, "ns/row")
			})
		}
		for _, bt := range batches {
			bt.Release()
		}
	}
}
