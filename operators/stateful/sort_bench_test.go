package stateful

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/engine"
)

// benchBatches are rows of (k int64, s string): random ints, strings
// from 500 symbols, in batches of 64Ki.
func benchBatches(mem memory.Allocator, rows int) (*arrow.Schema, []arrow.RecordBatch) {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "k", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
	}, nil)
	r := rand.New(rand.NewPCG(1, 2))
	var out []arrow.RecordBatch
	for start := 0; start < rows; start += 65536 {
		b := array.NewRecordBuilder(mem, schema)
		for range min(65536, rows-start) {
			b.Field(0).(*array.Int64Builder).Append(r.Int64N(1 << 40))
			b.Field(1).(*array.StringBuilder).Append(fmt.Sprintf("sym_%04d", r.IntN(500)))
		}
		out = append(out, b.NewRecordBatch())
		b.Release()
	}
	return schema, out
}

// BenchmarkSortCompare sorts the entries of 1M rows by (k, s) and by
// (s, k): with the normalized prefix of the first key (what sort does),
// and with the full comparator on every compare (the baseline), in the
// same run.
func BenchmarkSortCompare(b *testing.B) {
	mem := memory.NewGoAllocator()
	schema, recs := benchBatches(mem, 1<<20)
	defer releaseRecs(recs)
	for _, by := range [][]string{{"k", "s"}, {"s", "k"}} {
		b.Run(by[0]+","+by[1], func(b *testing.B) { benchCompare(b, mem, schema, recs, by) })
	}
}

func benchCompare(b *testing.B, mem memory.Allocator, schema *arrow.Schema, recs []arrow.RecordBatch, by []string) {
	keys, err := ParseSortKeys("by", by, schema)
	if err != nil {
		b.Fatal(err)
	}
	o := newRowOrder(keys)
	var base []entry
	for i, r := range recs {
		ks, _, _ := evalKeys(context.Background(), mem, keys, r)
		defer releaseAll(ks)
		o.set(i, ks)
		for row := range int(r.NumRows()) {
			base = append(base, entry{p: o.prefix(i, row), pos: mkPos(i, row)})
		}
	}
	ents := make([]entry, len(base))
	b.Run("prefix", func(b *testing.B) {
		for b.Loop() {
			copy(ents, base)
			slices.SortFunc(ents, o.cmpEntry)
		}
	})
	b.Run("comparator", func(b *testing.B) {
		for b.Loop() {
			copy(ents, base)
			slices.SortFunc(ents, func(x, y entry) int {
				if c := o.compare(x.slot(), x.row(), y.slot(), y.row()); c != 0 {
					return c
				}
				if x.pos < y.pos {
					return -1
				}
				return 1
			})
		}
	})
}

// BenchmarkSortSpill sorts rows by (k, s) through the operator in memory
// and with a budget that makes it spill: the spill/in-memory ratio is the
// ratio of the two ns/op. rows=1M by default (go test -bench
// SortSpill -benchtime 1x).
func BenchmarkSortSpill(b *testing.B) {
	for _, rows := range []int{1 << 20} {
		mem := memory.NewGoAllocator()
		schema, recs := benchBatches(mem, rows)
		for _, budget := range []int64{0, 8 << 20} {
			b.Run(fmt.Sprintf("rows=%d/budget=%d", rows, budget), func(b *testing.B) {
				for b.Loop() {
					e := newEnv(&testing.T{}, budget, 65536, engine.SpillSettings{Dir: b.TempDir()})
					c, _, err := runOp(context.Background(), e, SortSpec(), &SortConfig{By: []string{"k", "s"}}, schema, recs)
					if err != nil {
						b.Fatal(err)
					}
					c.release()
				}
			})
		}
		releaseRecs(recs)
	}
}
