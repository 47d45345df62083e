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

// BenchmarkCore is the expression work of the core pipeline benchmark
// (generate → filter → project price * qty → discard): the filter's
// predicate with an 8-string IN list, Select over the batch, and the
// projection.
//
// Run: go test -run='^$' -bench=Core -benchmem -count=5 -cpu 1,2 ./operators/expr/

const coreWhere = "qty > 100 AND symbol IN ('SYM0001', 'SYM0002', 'SYM0003', 'SYM0005', 'SYM0008', 'SYM0013', 'SYM0017', 'SYM0019')"

// coreBatch makes rows trades with qty 0..199 (1% null), price, and one of
// 32 symbols SYM0000..SYM0031 (1% null).
func coreBatch(mem memory.Allocator, rows int) arrow.RecordBatch {
	rng := rand.New(rand.NewPCG(3, 5))
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
		if rng.IntN(100) == 0 {
			sym.AppendNull()
		} else {
			sym.Append(fmt.Sprintf("SYM%04d", rng.IntN(32)))
		}
	}
	return b.NewRecordBatch()
}

func BenchmarkCore(b *testing.B) {
	const rows = 64 << 10
	mem := &poolAllocator{}
	rec := coreBatch(mem, rows)
	defer rec.Release()
	ctx := context.Background()
	where, err := Compile(coreWhere, benchSchema)
	if err != nil {
		b.Fatal(err)
	}
	proj, err := Compile("price * qty", benchSchema)
	if err != nil {
		b.Fatal(err)
	}
	in, err := Compile("symbol IN ('SYM0001', 'SYM0002', 'SYM0003', 'SYM0005', 'SYM0008', 'SYM0013', 'SYM0017', 'SYM0019')", benchSchema)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		c    *Compiled
	}{{"eval=in8", in}, {"eval=where", where}, {"eval=price*qty", proj}} {
		b.Run(fmt.Sprintf("%s/rows=%d", bc.name, rows), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				arr, err := bc.c.Eval(ctx, mem, rec)
				if err != nil {
					b.Fatal(err)
				}
				arr.Release()
			}
		})
	}
	b.Run(fmt.Sprintf("select=where/rows=%d", rows), func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			out, _, err := where.Select(ctx, mem, rec)
			if err != nil {
				b.Fatal(err)
			}
			out.Release()
		}
	})
	b.Run(fmt.Sprintf("pipeline/rows=%d", rows), func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			out, _, err := where.Select(ctx, mem, rec)
			if err != nil {
				b.Fatal(err)
			}
			arr, err := proj.Eval(ctx, mem, out)
			if err != nil {
				b.Fatal(err)
			}
			arr.Release()
			out.Release()
		}
	})
}
