package expr

import (
	"context"
	"fmt"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Run: go test -run='^$' -bench=Functions -benchmem ./operators/expr/
//
// Each string and number function over benchBatch's trades. The baseline is
// lower(symbol), the string loop the package had before (changeCase): the
// new kernels should stay within a small factor of it per row, and allocate
// a constant number of times per batch (TestFunctionsDoNotAllocatePerRow
// holds them to that; regexp_replace allocates per matching row). Not yet
// recorded on a quiet machine.
func BenchmarkFunctions(b *testing.B) {
	exprs := []string{
		"lower(symbol)", // baseline
		"substr(symbol, 2, 2)",
		"replace(symbol, 'A', 'aa')",
		"trim(symbol, 'AM')",
		"concat(symbol, '-', qty)",
		"symbol || symbol",
		"split_part(symbol, 'A', 2)",
		"contains(symbol, 'OO')",
		"regexp_matches(symbol, '^[AM]')",
		"regexp_replace(symbol, 'A', 'a', 'g')",
		"round(price, 1)",
		"sqrt(price)",
		"greatest(qty, 100)",
		"nullif(qty, 0)",
		"hash(symbol)",
	}
	mem := memory.NewGoAllocator()
	rec := benchBatch(mem, 1<<16)
	defer rec.Release()
	benchExprs(b, mem, rec, exprs)
}

// benchExprs runs a sub-benchmark expr=<src>/rows=<n> for each of exprs:
// src compiled against rec's schema and evaluated on rec with mem.
func benchExprs(b *testing.B, mem memory.Allocator, rec arrow.RecordBatch, exprs []string) {
	for _, src := range exprs {
		c, err := Compile(src, rec.Schema())
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("expr=%s/rows=%d", src, rec.NumRows()), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				arr, err := c.Eval(context.Background(), mem, rec)
				if err != nil {
					b.Fatal(err)
				}
				arr.Release()
			}
		})
	}
}
