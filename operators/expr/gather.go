package expr

import (
	"context"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Gather returns the rows idx of rec, in idx's order (an index may repeat),
// allocated from mem: the copy a stateful operator makes when rows must
// move (a join's matches, a sort's order, a dedupe's survivors). Booleans,
// numbers, dates, times, timestamps, strings and binaries are gathered by
// a loop of their own; other types go through arrow's take kernel. The
// bytes it copies are the result's buffers (GatheredBytes), for the
// caller's copy ledger.
func Gather(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch, idx []int32) (arrow.RecordBatch, error) {
	cols := make([]arrow.Array, rec.NumCols())
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	for i, col := range rec.Columns() {
		c, err := GatherArray(ctx, mem, col, idx)
		if err != nil {
			return nil, err
		}
		cols[i] = c
	}
	return array.NewRecordBatch(rec.Schema(), cols, int64(len(idx))), nil
}

// GatherArray is Gather for one column.
func GatherArray(ctx context.Context, mem memory.Allocator, col arrow.Array, idx []int32) (arrow.Array, error) {
	if c := gatherArray(mem, col, idx); c != nil {
		return c, nil
	}
	b := array.NewInt32Builder(mem)
	b.AppendValues(idx, nil)
	ix := b.NewArray()
	b.Release()
	defer ix.Release()
	ectx := compute.DefaultExecCtx()
	ectx.NumParallel = 1
	tctx := compute.SetExecCtx(compute.WithAllocator(ctx, mem), ectx)
	return compute.TakeArray(tctx, col, ix)
}

// GatheredBytes is the bytes of rec's buffers: what Gather copied to make
// it.
func GatheredBytes(rec arrow.RecordBatch) int64 {
	var n int64
	var walk func(d arrow.ArrayData)
	walk = func(d arrow.ArrayData) {
		for _, b := range d.Buffers() {
			if b != nil {
				n += int64(b.Len())
			}
		}
		for _, c := range d.Children() {
			walk(c)
		}
		if d.DataType().ID() == arrow.DICTIONARY {
			walk(d.Dictionary())
		}
	}
	for _, c := range rec.Columns() {
		walk(c.Data())
	}
	return n
}
