package expr

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Run: go test -run='^$' -bench=. -benchmem ./operators/expr/
//
// The baseline sub-benchmarks compute the same result with a plain Go loop
// over the raw values into a preallocated slice: the floor the vectorised
// evaluation is compared with in the same run.

var benchSchema = arrow.NewSchema([]arrow.Field{
	{Name: "qty", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "price", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "symbol", Type: arrow.BinaryTypes.String, Nullable: true},
}, nil)

// benchBatch makes rows trades: qty 0..199 (1% null), price 1..500, one of
// eight symbols.
func benchBatch(mem memory.Allocator, rows int) arrow.RecordBatch {
	rng := rand.New(rand.NewPCG(7, 11))
	syms := []string{"AAPL", "MSFT", "GOOG", "AMZN", "META", "NVDA", "TSLA", "IBM"}
	b := array.NewRecordBuilder(mem, benchSchema)
	defer b.Release()
	qty := b.Field(0).(*array.Int64Builder)
	price := b.Field(1).(*array.Float64Builder)
	sym := b.Field(2).(*array.StringBuilder)
	for range rows {
		if rng.IntN(100) == 0 {
			qty.AppendNull()
		} else {
			qty.Append(int64(rng.IntN(200)))
		}
		price.Append(1 + rng.Float64()*499)
		sym.Append(syms[rng.IntN(len(syms))])
	}
	return b.NewRecordBatch()
}

func BenchmarkEval(b *testing.B) {
	const rows = 64 << 10
	mem := memory.NewGoAllocator() // the checked allocator's bookkeeping would dominate
	rec := benchBatch(mem, rows)
	defer rec.Release()
	ctx := context.Background()
	for _, bc := range []struct{ name, src string }{
		{"expr=filter", "qty > 100 AND symbol IN ('AAPL','MSFT')"},
		{"expr=price*qty", "price * qty"},
		{"expr=case", "CASE WHEN qty > 100 THEN 'big' ELSE symbol END"},
		{"expr=like", "symbol LIKE 'A%'"},
		{"expr=div", "qty / 7"},
	} {
		c, err := Compile(bc.src, benchSchema)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("%s/rows=%d", bc.name, rows), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				arr, err := c.Eval(ctx, mem, rec)
				if err != nil {
					b.Fatal(err)
				}
				arr.Release()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
		})
	}

	c, err := Compile("qty > 100 AND symbol IN ('AAPL','MSFT')", benchSchema)
	if err != nil {
		b.Fatal(err)
	}
	b.Run(fmt.Sprintf("select=filter/rows=%d", rows), func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			out, _, err := c.Select(ctx, mem, rec)
			if err != nil {
				b.Fatal(err)
			}
			out.Release()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
	})

	qty := rec.Column(0).(*array.Int64)
	price := rec.Column(1).(*array.Float64)
	sym := rec.Column(2).(*array.String)
	b.Run(fmt.Sprintf("baseline=filter/rows=%d", rows), func(b *testing.B) {
		b.ReportAllocs()
		out := make([]bool, rows)
		for b.Loop() {
			for i := range out {
				s := sym.Value(i)
				out[i] = qty.IsValid(i) && qty.Value(i) > 100 && (s == "AAPL" || s == "MSFT")
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
	})
	b.Run(fmt.Sprintf("baseline=price*qty/rows=%d", rows), func(b *testing.B) {
		b.ReportAllocs()
		out := make([]float64, rows)
		q, p := qty.Int64Values(), price.Float64Values()
		for b.Loop() {
			for i := range out {
				out[i] = p[i] * float64(q[i])
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
	})
}

func BenchmarkCompile(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile("qty > 100 AND symbol IN ('AAPL','MSFT')", benchSchema); err != nil {
			b.Fatal(err)
		}
	}
}
