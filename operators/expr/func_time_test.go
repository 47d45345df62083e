package expr

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// timeSchema has a column of every date and timestamp kind.
var timeSchema = arrow.NewSchema([]arrow.Field{
	{Name: "d", Type: arrow.FixedWidthTypes.Date32, Nullable: true},
	{Name: "d64", Type: arrow.FixedWidthTypes.Date64, Nullable: true},
	{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Microsecond}, Nullable: true},
	{Name: "ts_s", Type: &arrow.TimestampType{Unit: arrow.Second}, Nullable: true},
	{Name: "ts_ms", Type: &arrow.TimestampType{Unit: arrow.Millisecond}, Nullable: true},
	{Name: "ts_ns", Type: &arrow.TimestampType{Unit: arrow.Nanosecond}, Nullable: true},
	{Name: "tz", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, Nullable: true},
	{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "n", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
	{Name: "b", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
}, nil)

// Rows: a leap day, the last microsecond before the epoch, all NULL, a
// date before 1970 in the Gregorian switch year, a year end in ISO week 1.
const timeRows = `[
{"d":"2024-02-29","d64":"2024-02-29","ts":"2024-01-31T10:11:12.123456","ts_s":"2024-01-31T10:11:12","ts_ms":"2024-01-31T10:11:12.123","ts_ns":"2024-01-31T10:11:12.123456789","tz":"2024-01-31T10:11:12Z","s":"2024-06-02","n":1,"b":true},
{"d":"1969-12-31","d64":"1969-12-31","ts":"1969-12-31T23:59:59.999999","ts_s":"1969-12-31T23:59:59","ts_ms":"1969-12-31T23:59:59.999","ts_ns":"1969-12-31T23:59:59.999999999","tz":"1969-12-31T23:59:59Z","s":"1969-12-31 23:59:59","n":-1,"b":false},
{"d":null,"d64":null,"ts":null,"ts_s":null,"ts_ms":null,"ts_ns":null,"tz":null,"s":null,"n":null,"b":null},
{"d":"1582-10-15","d64":"1582-10-15","ts":"1582-10-15T00:00:00","ts_s":"1900-03-01T00:00:00","ts_ms":"1900-03-01T00:00:00","ts_ns":"1900-03-01T00:00:00","tz":"1900-03-01T00:00:00Z","s":"1582-10-15","n":366,"b":null},
{"d":"2024-12-30","d64":"2024-12-30","ts":"2024-12-30T23:59:59","ts_s":"2024-12-30T23:59:59","ts_ms":"2024-12-30T23:59:59.5","ts_ns":"2024-12-30T23:59:59","tz":"2024-12-30T23:59:59Z","s":"2024-12-30T23:59:59Z","n":0,"b":true}
]`

// Each want is the rows as DuckDB prints them (checked with DuckDB 1.5.6),
// joined by |, and then the result type's DuckDB name.
var timeTests = []struct{ src, want, typ string }{
	{"d", "2024-02-29|1969-12-31|NULL|1582-10-15|2024-12-30", "DATE"},
	{"d = '2024-02-29'", "true|false|NULL|false|false", "BOOLEAN"},
	{"d64 < DATE '2000-01-01'", "false|true|NULL|true|false", "BOOLEAN"},
	{"d = ts_s", "false|false|NULL|false|false", "BOOLEAN"},
	{"d <= ts", "false|true|NULL|true|true", "BOOLEAN"},
	{"d BETWEEN '1969-12-31' AND DATE '2024-02-29'", "true|true|NULL|false|false", "BOOLEAN"},
	{"d IN ('2024-02-29', DATE '1582-10-15')", "true|false|NULL|true|false", "BOOLEAN"},
	{"d NOT IN (d, DATE '1582-10-15')", "false|false|NULL|false|false", "BOOLEAN"},
	{"CASE WHEN b THEN d ELSE DATE '2000-01-01' END", "2024-02-29|2000-01-01|2000-01-01|2000-01-01|2024-12-30", "DATE"},
	{"CASE WHEN b THEN d ELSE ts END", "2024-02-29 00:00:00|1969-12-31 23:59:59.999999|NULL|1582-10-15 00:00:00|2024-12-30 00:00:00", "TIMESTAMP"},
	{"coalesce(d, DATE '1970-01-01')", "2024-02-29|1969-12-31|1970-01-01|1582-10-15|2024-12-30", "DATE"},
	{"tz > '2024-01-01 00:00:00'", "true|false|NULL|false|true", "BOOLEAN"},
	// arithmetic
	{"d + 1", "2024-03-01|1970-01-01|NULL|1582-10-16|2024-12-31", "DATE"},
	{"n + d", "2024-03-01|1969-12-30|NULL|1583-10-16|2024-12-30", "DATE"},
	{"d - n", "2024-02-28|1970-01-01|NULL|1581-10-14|2024-12-30", "DATE"},
	{"d - DATE '2024-01-01'", "59|-19724|NULL|-161150|364", "BIGINT"},
	{"d + INTERVAL 1 MONTH", "2024-03-29 00:00:00|1970-01-31 00:00:00|NULL|1582-11-15 00:00:00|2025-01-30 00:00:00", "TIMESTAMP"},
	{"d - INTERVAL '1 year'", "2023-02-28 00:00:00|1968-12-31 00:00:00|NULL|1581-10-15 00:00:00|2023-12-30 00:00:00", "TIMESTAMP"},
	{"ts + INTERVAL '1 month'", "2024-02-29 10:11:12.123456|1970-01-31 23:59:59.999999|NULL|1582-11-15 00:00:00|2025-01-30 23:59:59", "TIMESTAMP"},
	{"INTERVAL 90 MINUTES + ts_s", "2024-01-31 11:41:12|1970-01-01 01:29:59|NULL|1900-03-01 01:30:00|2024-12-31 01:29:59", "TIMESTAMP"},
	{"ts_ms - INTERVAL '1 day 2 hours'", "2024-01-30 08:11:12.123|1969-12-30 21:59:59.999|NULL|1900-02-27 22:00:00|2024-12-29 21:59:59.5", "TIMESTAMP"},
	{"tz + INTERVAL 1 HOUR", "2024-01-31 11:11:12+00|1970-01-01 00:59:59+00|NULL|1900-03-01 01:00:00+00|2024-12-31 00:59:59+00", "TIMESTAMP WITH TIME ZONE"},
	{"ts_ns + INTERVAL 1 SECOND", "2024-01-31 10:11:13.123456|1970-01-01 00:00:01|NULL|1900-03-01 00:00:01|2024-12-31 00:00:00", "TIMESTAMP"},
	// date_part
	{"date_part('year', d)", "2024|1969|NULL|1582|2024", "BIGINT"},
	{"extract(month FROM d64)", "2|12|NULL|10|12", "BIGINT"},
	{"date_part('dow', d)", "4|3|NULL|5|1", "BIGINT"},
	{"date_part('isodow', d)", "4|3|NULL|5|1", "BIGINT"},
	{"date_part('doy', d)", "60|365|NULL|288|365", "BIGINT"},
	{"date_part('week', d)", "9|1|NULL|41|1", "BIGINT"},
	{"date_part('isoyear', d)", "2024|1970|NULL|1582|2025", "BIGINT"},
	{"date_part('quarter', ts)", "1|4|NULL|4|4", "BIGINT"},
	{"date_part('second', ts_ms)", "12|59|NULL|0|59", "BIGINT"},
	{"date_part('millisecond', ts)", "12123|59999|NULL|0|59000", "BIGINT"},
	{"date_part('microsecond', ts_ns)", "12123456|0|NULL|0|59000000", "BIGINT"},
	{"date_part('epoch', ts)", "1706695872.123456|-1e-06|NULL|-12219292800.0|1735603199.0", "DOUBLE"},
	{"extract('hour' FROM tz)", "10|23|NULL|0|23", "BIGINT"},
	// date_trunc
	{"date_trunc('month', d)", "2024-02-01 00:00:00|1969-12-01 00:00:00|NULL|1582-10-01 00:00:00|2024-12-01 00:00:00", "TIMESTAMP"},
	{"date_trunc('week', ts)", "2024-01-29 00:00:00|1969-12-29 00:00:00|NULL|1582-10-11 00:00:00|2024-12-30 00:00:00", "TIMESTAMP"},
	{"date_trunc('second', ts_ns)", "2024-01-31 10:11:12|1970-01-01 00:00:00|NULL|1900-03-01 00:00:00|2024-12-30 23:59:59", "TIMESTAMP"},
	{"date_trunc('hour', tz)", "2024-01-31 10:00:00+00|1969-12-31 23:00:00+00|NULL|1900-03-01 00:00:00+00|2024-12-30 23:00:00+00", "TIMESTAMP WITH TIME ZONE"},
	{"date_trunc('quarter', ts_ms)", "2024-01-01 00:00:00|1969-10-01 00:00:00|NULL|1900-01-01 00:00:00|2024-10-01 00:00:00", "TIMESTAMP"},
	// strftime, strptime
	{"strftime(d, '%d/%m/%Y %a')", "29/02/2024 Thu|31/12/1969 Wed|NULL|15/10/1582 Fri|30/12/2024 Mon", "VARCHAR"},
	{"strftime(ts, '%Y-%m-%d %I:%M:%S.%f %p')", "2024-01-31 10:11:12.123456 AM|1969-12-31 11:59:59.999999 PM|NULL|1582-10-15 12:00:00.000000 AM|2024-12-30 11:59:59.000000 PM", "VARCHAR"},
	{"strftime('%B %-d, %Y', ts_ms)", "January 31, 2024|December 31, 1969|NULL|March 1, 1900|December 30, 2024", "VARCHAR"},
	{"strptime(strftime(d, '%d.%m.%Y'), '%d.%m.%Y')", "2024-02-29 00:00:00|1969-12-31 00:00:00|NULL|1582-10-15 00:00:00|2024-12-30 00:00:00", "TIMESTAMP"},
	// epoch_ms
	{"epoch_ms(ts)", "1706695872123|0|NULL|-12219292800000|1735603199000", "BIGINT"},
	{"epoch_ms(d)", "1709164800000|-86400000|NULL|-12219292800000|1735516800000", "BIGINT"},
	{"epoch_ms(n)", "1970-01-01 00:00:00.001|1969-12-31 23:59:59.999|NULL|1970-01-01 00:00:00.366|1970-01-01 00:00:00", "TIMESTAMP"},
	// date_diff, make_date
	{"date_diff('day', d, ts)", "-29|0|NULL|0|0", "BIGINT"},
	{"date_diff('month', d, DATE '2024-03-31')", "1|651|NULL|5297|-9", "BIGINT"},
	{"datediff('year', ts_s, d64)", "0|0|NULL|-318|0", "BIGINT"},
	{"date_diff('week', d, ts_ms)", "-4|0|NULL|16559|0", "BIGINT"},
	{"date_diff('hour', ts, ts_ms)", "0|0|NULL|2782056|0", "BIGINT"},
	{"date_diff('second', ts_ms, ts)", "0|0|NULL|-10015401600|0", "BIGINT"},
	{"date_diff('quarter', tz, TIMESTAMPTZ '2000-01-01 00:00:00+00')", "-96|121|NULL|400|-99", "BIGINT"},
	{"make_date(2000 + n * 4, 2, 29)", "2004-02-29|1996-02-29|NULL|3464-02-29|2000-02-29", "DATE"},
	// epoch, epoch_us, epoch_ns, to_timestamp
	{"epoch(ts_ms)", "1706695872.123|-0.001|NULL|-2203891200.0|1735603199.5", "DOUBLE"},
	{"epoch_us(d64)", "1709164800000000|-86400000000|NULL|-12219292800000000|1735516800000000", "BIGINT"},
	{"epoch_ns(ts_ns)", "1706695872123456789|-1|NULL|-2203891200000000000|1735603199000000000", "BIGINT"},
	{"to_timestamp(n * 1.5)", "1970-01-01 00:00:01.5+00|1969-12-31 23:59:58.5+00|NULL|1970-01-01 00:09:09+00|1970-01-01 00:00:00+00", "TIMESTAMP WITH TIME ZONE"},
	// casts
	{"CAST(s AS TIMESTAMPTZ)", "2024-06-02 00:00:00+00|1969-12-31 23:59:59+00|NULL|1582-10-15 00:00:00+00|2024-12-30 23:59:59+00", "TIMESTAMP WITH TIME ZONE"},
	{"CAST(ts_ns AS TIMESTAMP)", "2024-01-31 10:11:12.123456|1970-01-01 00:00:00|NULL|1900-03-01 00:00:00|2024-12-30 23:59:59", "TIMESTAMP"},
	{"CAST(ts_ns AS DATE)", "2024-01-31|1970-01-01|NULL|1900-03-01|2024-12-30", "DATE"},
	{"CAST(ts AS TIMESTAMP_S)", "2024-01-31 10:11:12|1970-01-01 00:00:00|NULL|1582-10-15 00:00:00|2024-12-30 23:59:59", "TIMESTAMP_S"},
	{"CAST(d64 AS VARCHAR)", "2024-02-29|1969-12-31|NULL|1582-10-15|2024-12-30", "VARCHAR"},
	{"CAST(ts_s AS DATE)", "2024-01-31|1969-12-31|NULL|1900-03-01|2024-12-30", "DATE"},
}

func timeBatch(t testing.TB, mem memory.Allocator) arrow.RecordBatch {
	t.Helper()
	rec, _, err := array.RecordFromJSON(mem, timeSchema, strings.NewReader(timeRows))
	if err != nil {
		t.Fatalf("build time batch: %v", err)
	}
	return rec
}

// rowsText renders every row of arr as DuckDB prints it, joined by |.
func rowsText(arr arrow.Array) string {
	parts := make([]string, arr.Len())
	for i := range parts {
		if arr.IsNull(i) {
			parts[i] = "NULL"
		} else {
			parts[i] = valueText(arr, i)
		}
	}
	return strings.Join(parts, "|")
}

func TestTimeFunctions(t *testing.T) {
	ref := newMem()
	defer ref.AssertSize(t, 0)
	full := timeBatch(t, ref)
	defer full.Release()
	// The checked allocator, then one whose fresh memory is garbage (every
	// kernel must write every byte it hands out).
	for _, mem := range []*memory.CheckedAllocator{newMem(), memory.NewCheckedAllocator(poisonAllocator{})} {
		for _, tt := range timeTests {
			c, err := Compile(tt.src, timeSchema)
			if err != nil {
				t.Errorf("%s: %v", tt.src, err)
				continue
			}
			if got := sqlTypeName(c.Type()); got != tt.typ {
				t.Errorf("%s: type %s, want %s", tt.src, got, tt.typ)
			}
			// The whole batch, and slices of it (non-zero array offsets).
			for _, off := range []int64{0, 1, 3} {
				rec := full.NewSlice(off, full.NumRows())
				arr, err := c.Eval(context.Background(), mem, rec)
				rec.Release()
				if err != nil {
					t.Errorf("%s (offset %d): %v", tt.src, off, err)
					continue
				}
				want := strings.Join(strings.Split(tt.want, "|")[off:], "|")
				if got := rowsText(arr); got != want {
					t.Errorf("%s (offset %d):\n got %s\nwant %s", tt.src, off, got, want)
				}
				arr.Release()
			}
		}
		mem.AssertSize(t, 0)
	}
}

func TestTimeRuntimeErrors(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	rec := timeBatch(t, mem)
	defer rec.Release()
	for _, tt := range []struct{ src, want string }{
		{"strptime(s, '%Y-%m-%d %H:%M:%S')", `expr: strptime(s, '%Y-%m-%d %H:%M:%S'): could not parse string '2024-06-02' according to format '%Y-%m-%d %H:%M:%S'`},
		{"CAST(s AS INTEGER)", `could not convert string '2024-06-02' to INTEGER`},
		{"CAST(n AS UTINYINT)", "value -1 is out of range for UTINYINT"},
		{"epoch_ms(n * 9223372036854775)", "milliseconds is out of the timestamp range"},
		{"d + n * 30000000", "date out of range"},
		{"make_date(2023, 2, 28 + n)", "date out of range: 2023-2-29"},
	} {
		c, err := Compile(tt.src, timeSchema)
		if err != nil {
			t.Errorf("%s: %v", tt.src, err)
			continue
		}
		arr, err := c.Eval(context.Background(), mem, rec)
		if err == nil {
			arr.Release()
			t.Errorf("%s: no error, want %q", tt.src, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %q, want it to contain %q", tt.src, err, tt.want)
		}
	}
}

// TestTimeKernelsDoNotAllocatePerRow evaluates the casts, the date and time
// functions and the interval arithmetic over 100 and 10000 rows: the larger
// batch must cost no more Go allocations (the kernels loop over buffers).
// (A cast to DECIMAL is not here: decimal128 parses through math/big.)
func TestTimeKernelsDoNotAllocatePerRow(t *testing.T) {
	exprs := []string{
		"CAST(n AS TINYINT)", "CAST(f AS INTEGER)", "CAST(n AS REAL)", "CAST(f AS BOOLEAN)", "CAST(b AS INTEGER)",
		"CAST(si AS BIGINT)", "CAST(sf AS DOUBLE)", "CAST(sb AS BOOLEAN)", "CAST(sts AS TIMESTAMP)", "CAST(sts AS DATE)",
		"CAST(sts AS TIMESTAMPTZ)", "CAST(ts AS DATE)", "CAST(d AS TIMESTAMP)", "CAST(ts AS TIMESTAMP_MS)",
		"CAST(d AS VARCHAR)", "CAST(ts AS VARCHAR)", "CAST(f AS VARCHAR)",
		"d = '2024-06-02'", "d < ts", "d + 1", "d - DATE '2000-01-01'", "d + INTERVAL 1 MONTH", "ts - INTERVAL '90 minutes'",
		"date_part('year', d)", "date_part('week', ts)", "date_part('epoch', ts)", "extract(dow FROM ts)",
		"date_trunc('month', ts)", "date_trunc('week', d)", "epoch_ms(ts)", "epoch_ms(n)",
		"epoch(ts)", "epoch_ns(ts)", "to_timestamp(f)", "date_diff('month', d, ts)", "make_date(2000, 1, abs(n) % 28 + 1)",
		"strftime(ts, '%Y-%m-%d %H:%M:%S.%f %a')", "strptime(sts, '%Y-%m-%d %H:%M:%S')",
		"CASE WHEN b THEN d ELSE DATE '2000-01-01' END", "coalesce(d, DATE '2000-01-01')",
	}
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "n", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "f", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "b", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
		{Name: "si", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "sf", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "sb", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "sts", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "d", Type: arrow.FixedWidthTypes.Date32, Nullable: true},
		{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Microsecond}, Nullable: true},
	}, nil)
	batch := func(rows int) arrow.RecordBatch {
		b := array.NewRecordBuilder(memory.NewGoAllocator(), schema)
		defer b.Release()
		for i := 0; i < rows; i++ {
			if i%10 == 3 {
				for k := range schema.Fields() {
					b.Field(k).AppendNull()
				}
				continue
			}
			b.Field(0).(*array.Int64Builder).Append(int64(i%200 - 100))
			b.Field(1).(*array.Float64Builder).Append(float64(i%1000) / 3)
			b.Field(2).(*array.BooleanBuilder).Append(i%2 == 0)
			b.Field(3).(*array.StringBuilder).Append(" " + strconv.Itoa(i) + " ")
			b.Field(4).(*array.StringBuilder).Append(strconv.Itoa(i) + ".25")
			b.Field(5).(*array.StringBuilder).Append([]string{"true", "F", "yes", "0"}[i%4])
			b.Field(6).(*array.StringBuilder).Append(fmt.Sprintf("20%02d-0%d-1%d 1%d:0%d:2%d", i%100, i%9+1, i%10, i%10, i%10, i%10))
			b.Field(7).(*array.Date32Builder).Append(arrow.Date32(i*37 - 20000))
			b.Field(8).(*array.TimestampBuilder).Append(arrow.Timestamp(int64(i)*3_600_000_123 - 1e15))
		}
		return b.NewRecordBatch()
	}
	small, large := batch(100), batch(10000)
	defer small.Release()
	defer large.Release()
	mem := memory.NewGoAllocator()
	for _, src := range exprs {
		c, err := Compile(src, schema)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		allocs := func(rec arrow.RecordBatch) float64 {
			return testing.AllocsPerRun(5, func() {
				arr, err := c.Eval(context.Background(), mem, rec)
				if err != nil {
					t.Fatalf("%s: %v", src, err)
				}
				arr.Release()
			})
		}
		if s, l := allocs(small), allocs(large); l > s+2 {
			t.Errorf("%s: %v allocations for 100 rows, %v for 10000: it allocates per row", src, s, l)
		}
	}
}
