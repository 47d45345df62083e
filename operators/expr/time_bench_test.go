package expr

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Run: go test -run='^$' -bench=Time -benchmem ./operators/expr/
//
// The casts and date and time kernels over 64k rows. The baseline
// sub-benchmarks do the same work with the standard library, row by row
// (time.Time for the calendar, strconv for parsing): the cost to compare
// with in the same run. No results recorded yet.

var timeBenchSchema = arrow.NewSchema([]arrow.Field{
	{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Microsecond}, Nullable: true},
	{Name: "d", Type: arrow.FixedWidthTypes.Date32, Nullable: true},
	{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "si", Type: arrow.BinaryTypes.String, Nullable: true},
}, nil)

func timeBenchBatch(rows int) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.NewGoAllocator(), timeBenchSchema)
	defer b.Release()
	for i := 0; i < rows; i++ {
		us := int64(i)*977_777_777 + 946_684_800_000_000
		b.Field(0).(*array.TimestampBuilder).Append(arrow.Timestamp(us))
		b.Field(1).(*array.Date32Builder).Append(arrow.Date32(us / microsPerDay))
		b.Field(2).(*array.StringBuilder).Append(time.UnixMicro(us).UTC().Format("2006-01-02 15:04:05.999999"))
		b.Field(3).(*array.StringBuilder).Append(strconv.Itoa(i * 37))
	}
	return b.NewRecordBatch()
}

func BenchmarkTime(b *testing.B) {
	const rows = 1 << 16
	rec := timeBenchBatch(rows)
	defer rec.Release()
	mem := memory.NewGoAllocator()
	for _, src := range []string{
		"date_part('year', ts)", "date_trunc('month', ts)", "strftime(ts, '%Y-%m-%d %H:%M:%S')",
		"CAST(s AS TIMESTAMP)", "CAST(si AS BIGINT)", "CAST(ts AS VARCHAR)", "ts + INTERVAL 1 MONTH",
		"d >= '2010-01-01'",
	} {
		c, err := Compile(src, timeBenchSchema)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("expr=%s/rows=%d", src, rows), func(b *testing.B) {
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
	ts := rec.Column(0).(*array.Timestamp).TimestampValues()
	strs := rec.Column(2).(*array.String)
	out := make([]int64, rows)
	b.Run(fmt.Sprintf("baseline=year-time.Time/rows=%d", rows), func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for i, v := range ts {
				out[i] = int64(time.UnixMicro(int64(v)).UTC().Year())
			}
		}
	})
	b.Run(fmt.Sprintf("baseline=parse-time.Parse/rows=%d", rows), func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for i := range out {
				t, _ := time.Parse("2006-01-02 15:04:05.999999", strs.Value(i))
				out[i] = t.UnixMicro()
			}
		}
	})
}
