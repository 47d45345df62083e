package expr

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/engine"
)

// gatherSchema has a column of every type Select gathers itself, and a list
// column that takes arrow's filter kernel; m is the predicate.
var gatherSchema = arrow.NewSchema([]arrow.Field{
	{Name: "m", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
	{Name: "i8", Type: arrow.PrimitiveTypes.Int8, Nullable: true},
	{Name: "i16", Type: arrow.PrimitiveTypes.Int16, Nullable: true},
	{Name: "i32", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
	{Name: "i64", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "u8", Type: arrow.PrimitiveTypes.Uint8, Nullable: true},
	{Name: "u16", Type: arrow.PrimitiveTypes.Uint16, Nullable: true},
	{Name: "u32", Type: arrow.PrimitiveTypes.Uint32, Nullable: true},
	{Name: "u64", Type: arrow.PrimitiveTypes.Uint64, Nullable: true},
	{Name: "f32", Type: arrow.PrimitiveTypes.Float32, Nullable: true},
	{Name: "f64", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "d32", Type: arrow.FixedWidthTypes.Date32, Nullable: true},
	{Name: "d64", Type: arrow.FixedWidthTypes.Date64, Nullable: true},
	{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "UTC"}, Nullable: true},
	{Name: "t32", Type: arrow.FixedWidthTypes.Time32ms, Nullable: true},
	{Name: "dur", Type: arrow.FixedWidthTypes.Duration_us, Nullable: true},
	{Name: "b", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
	{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "bin", Type: arrow.BinaryTypes.Binary, Nullable: true},
	{Name: "ls", Type: arrow.BinaryTypes.LargeString, Nullable: true},
	{Name: "lb", Type: arrow.BinaryTypes.LargeBinary, Nullable: true},
	{Name: "list", Type: arrow.ListOf(arrow.PrimitiveTypes.Int64), Nullable: true},
}, nil)

// gatherBatch makes a random batch of gatherSchema: each column has nulls
// with its own probability (sometimes none), m is true with probability
// pTrue.
func gatherBatch(mem memory.Allocator, rng *rand.Rand, rows int, pTrue float64) arrow.RecordBatch {
	b := array.NewRecordBuilder(mem, gatherSchema)
	defer b.Release()
	for f, fb := range b.Fields() {
		pNull := []float64{0, 0.01, 0.3, 1}[rng.IntN(4)]
		if rng.IntN(3) == 0 {
			pNull = 0
		}
		for range rows {
			if rng.Float64() < pNull {
				fb.AppendNull()
				continue
			}
			r := rng.Uint64()
			switch fb := fb.(type) {
			case *array.BooleanBuilder:
				if f == 0 {
					fb.Append(rng.Float64() < pTrue)
				} else {
					fb.Append(r&1 == 1)
				}
			case *array.Int8Builder:
				fb.Append(int8(r))
			case *array.Int16Builder:
				fb.Append(int16(r))
			case *array.Int32Builder:
				fb.Append(int32(r))
			case *array.Int64Builder:
				fb.Append(int64(r))
			case *array.Uint8Builder:
				fb.Append(uint8(r))
			case *array.Uint16Builder:
				fb.Append(uint16(r))
			case *array.Uint32Builder:
				fb.Append(uint32(r))
			case *array.Uint64Builder:
				fb.Append(r)
			case *array.Float32Builder:
				fb.Append(float32(r % 1000))
			case *array.Float64Builder:
				fb.Append(float64(r%100000) / 7)
			case *array.Date32Builder:
				fb.Append(arrow.Date32(int32(r)))
			case *array.Date64Builder:
				fb.Append(arrow.Date64(int64(r)))
			case *array.TimestampBuilder:
				fb.Append(arrow.Timestamp(int64(r)))
			case *array.Time32Builder:
				fb.Append(arrow.Time32(int32(r % 86400000)))
			case *array.DurationBuilder:
				fb.Append(arrow.Duration(int64(r)))
			case *array.StringBuilder:
				fb.Append(fmt.Sprintf("%.*x", rng.IntN(12), r))
			case *array.BinaryBuilder:
				fb.Append([]byte(fmt.Sprintf("%.*x", rng.IntN(12), r)))
			case *array.LargeStringBuilder:
				fb.Append(fmt.Sprintf("%.*x", rng.IntN(12), r))
			case *array.ListBuilder:
				fb.Append(true)
				vb := fb.ValueBuilder().(*array.Int64Builder)
				for range rng.IntN(3) {
					vb.Append(int64(r))
				}
			default:
				panic(fmt.Sprintf("no generator for %T", fb))
			}
		}
	}
	return b.NewRecordBatch()
}

// TestSelectGather compares Select with arrow's FilterRecordBatch on random
// batches, sliced at random offsets, with the predicate as a bare (possibly
// sliced) boolean column and as a computed mask.
func TestSelectGather(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	rng := rand.New(rand.NewPCG(5, 6))
	ctx := context.Background()
	preds := make([]*Compiled, 0, 2)
	for _, src := range []string{"m", "m AND i64 IS NOT NULL"} {
		c, err := Compile(src, gatherSchema)
		if err != nil {
			t.Fatal(err)
		}
		preds = append(preds, c)
	}
	for round := range 60 {
		rows := 1 + rng.IntN(300)
		full := gatherBatch(mem, rng, rows, []float64{0.02, 0.5, 0.97}[round%3])
		lo := rng.IntN(rows)
		hi := lo + rng.IntN(rows-lo+1)
		rec := full.NewSlice(int64(lo), int64(hi))
		full.Release()
		for _, c := range preds {
			mask, err := c.Eval(ctx, mem, rec)
			if err != nil {
				t.Fatal(err)
			}
			want, err := compute.FilterRecordBatch(compute.WithAllocator(ctx, mem), rec, mask,
				&compute.FilterOptions{NullSelection: compute.SelectionDropNulls})
			mask.Release()
			if err != nil {
				t.Fatal(err)
			}
			got, copied, err := c.Select(ctx, mem, rec)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case rec.NumRows() == 0:
				if got != rec {
					t.Errorf("round %d %s: on 0 rows got %v, want the input", round, c, got)
				}
				got.Release()
			case want.NumRows() == 0:
				if got != nil {
					t.Errorf("round %d %s: got %d rows, want none", round, c, got.NumRows())
				}
			case got == nil:
				t.Errorf("round %d %s: got nil, want %d rows", round, c, want.NumRows())
			default:
				if !array.RecordEqual(got, want) {
					t.Errorf("round %d %s [%d:%d]:\ngot  %v\nwant %v", round, c, lo, hi, got, want)
				}
				if got != rec && copied != engine.BatchBytes(got) {
					t.Errorf("round %d %s: copied %d, batch bytes %d", round, c, copied, engine.BatchBytes(got))
				}
				// Every byte of the gathered columns is written: the same
				// result from an allocator that hands out garbage.
				if got != rec {
					pgot, _, err := c.Select(ctx, poisonAllocator{}, rec)
					if err != nil {
						t.Fatal(err)
					}
					for i := 0; i < int(got.NumCols())-1; i++ {
						if !array.Equal(pgot.Column(i), got.Column(i)) {
							t.Errorf("round %d %s: column %s differs with a poisoned allocator:\n%v\n%v",
								round, c, gatherSchema.Field(i).Name, pgot.Column(i), got.Column(i))
						}
					}
					pgot.Release()
				}
				got.Release()
			}
			want.Release()
		}
		rec.Release()
	}
}
