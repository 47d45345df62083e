package textenc

import (
	"encoding/json"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

func TestAppendFloat(t *testing.T) {
	for _, tc := range []struct {
		f    float64
		bits int
		want string
	}{
		{0, 64, "0.0"}, {1, 64, "1.0"}, {-2.5, 64, "-2.5"}, {100, 64, "100.0"},
		{1e21, 64, "1e+21"}, {1.5e-7, 64, "1.5e-7"}, {123456789.125, 64, "123456789.125"},
		{math.NaN(), 64, "NaN"}, {math.Inf(1), 64, "+Inf"}, {math.Inf(-1), 64, "-Inf"},
		{float64(float32(0.1)), 32, "0.1"},
	} {
		got := string(AppendFloat(nil, tc.f, tc.bits))
		if got != tc.want {
			t.Errorf("AppendFloat(%v) = %q, want %q", tc.f, got, tc.want)
		}
		if !math.IsNaN(tc.f) {
			back, err := strconv.ParseFloat(got, tc.bits)
			if err != nil || (back != tc.f && !(tc.bits == 32 && float32(back) == float32(tc.f))) {
				t.Errorf("%q does not round-trip: %v %v", got, back, err)
			}
		}
	}
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"", "plain", `q"uote\back`, "tab\tnl\ncr\r", "\x00\x1f", "é ü 日本", "\u2028", "bad\xffutf8"} {
		got := AppendJSONString(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("%q -> %s: %v", s, got, err)
		}
		want := s
		if s == "bad\xffutf8" {
			want = "bad\ufffdutf8"
		}
		if back != want {
			t.Errorf("%q -> %s -> %q", s, got, back)
		}
	}
}

func TestQuoteCSV(t *testing.T) {
	for in, want := range map[string]string{
		"abc": "abc", "a,b": `"a,b"`, `say "hi"`: `"say ""hi"""`, "l1\nl2": "\"l1\nl2\"",
		" lead": `" lead"`, "": "",
	} {
		got := string(QuoteCSVTail([]byte("x|"+in), 2, ','))
		if got != "x|"+want {
			t.Errorf("%q -> %q, want %q", in, got, "x|"+want)
		}
	}
}

func TestColumns(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	tsType := &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "i", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "f", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "b", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
		{Name: "ts", Type: tsType, Nullable: true},
		{Name: "ntz", Type: &arrow.TimestampType{Unit: arrow.Nanosecond}, Nullable: true},
		{Name: "d", Type: arrow.FixedWidthTypes.Date32, Nullable: true},
		{Name: "bin", Type: arrow.BinaryTypes.Binary, Nullable: true},
		{Name: "l", Type: arrow.ListOf(arrow.PrimitiveTypes.Int32), Nullable: true},
	}, nil)
	bld := array.NewRecordBuilder(mem, schema)
	defer bld.Release()
	tm := time.Date(2024, 3, 1, 9, 30, 0, 123456000, time.UTC)
	bld.Field(0).(*array.Int64Builder).AppendValues([]int64{-7, 0}, []bool{true, false})
	bld.Field(1).(*array.Float64Builder).AppendValues([]float64{2, 0}, nil)
	bld.Field(2).(*array.StringBuilder).AppendValues([]string{"a,\"b\"", ""}, nil)
	bld.Field(3).(*array.BooleanBuilder).AppendValues([]bool{true, false}, nil)
	bld.Field(4).(*array.TimestampBuilder).AppendValues([]arrow.Timestamp{arrow.Timestamp(tm.UnixMicro()), 0}, nil)
	bld.Field(5).(*array.TimestampBuilder).AppendValues([]arrow.Timestamp{arrow.Timestamp(tm.UnixNano()), 0}, nil)
	bld.Field(6).(*array.Date32Builder).AppendValues([]arrow.Date32{arrow.Date32FromTime(tm), 0}, nil)
	bld.Field(7).(*array.BinaryBuilder).AppendValues([][]byte{{0xff, 0}, nil}, nil)
	lb := bld.Field(8).(*array.ListBuilder)
	lb.Append(true)
	lb.ValueBuilder().(*array.Int32Builder).AppendValues([]int32{1, 2}, nil)
	lb.AppendNull()
	rec := bld.NewRecordBatch()
	defer rec.Release()

	wantText := []string{"-7", "2.0", `a,"b"`, "true", "2024-03-01T09:30:00.123456Z", "2024-03-01T09:30:00.123456", "2024-03-01", "/wA=", "[1,2]"}
	wantCSV := []string{"-7", "2.0", `"a,""b"""`, "true", "2024-03-01T09:30:00.123456Z", "2024-03-01T09:30:00.123456", "2024-03-01", "/wA=", `"[1,2]"`}
	wantJSON := []string{"-7", "2.0", `"a,\"b\""`, "true", `"2024-03-01T09:30:00.123456Z"`, `"2024-03-01T09:30:00.123456"`, `"2024-03-01"`, `"/wA="`, "[1,2]"}
	var c Column
	for j, col := range rec.Columns() {
		c.Reset(col)
		if got := string(c.AppendText(nil, 0)); got != wantText[j] {
			t.Errorf("col %d text %q, want %q", j, got, wantText[j])
		}
		if got := string(c.AppendCSV(nil, 0, ',')); got != wantCSV[j] {
			t.Errorf("col %d csv %q, want %q", j, got, wantCSV[j])
		}
		if got := string(c.AppendJSON(nil, 0)); got != wantJSON[j] {
			t.Errorf("col %d json %q, want %q", j, got, wantJSON[j])
		}
	}
	c.Reset(rec.Column(0))
	if !c.IsNull(1) || string(c.AppendJSON(nil, 1)) != "null" || !c.Numeric() {
		t.Error("null int")
	}
	c.Reset(rec.Column(2))
	if got := string(c.AppendCSV(nil, 1, ',')); got != `""` {
		t.Errorf("empty string as csv: %q", got)
	}
	c.Reset(rec.Column(8))
	if string(c.AppendJSON(nil, 1)) != "null" {
		t.Error("null list")
	}
}

func BenchmarkAppendCSV(b *testing.B) {
	mem := memory.NewGoAllocator()
	bld := array.NewFloat64Builder(mem)
	for i := range 4096 {
		bld.Append(float64(i) * 1.25)
	}
	arr := bld.NewArray()
	defer arr.Release()
	var c Column
	buf := make([]byte, 0, 1<<16)
	b.ReportAllocs()
	for b.Loop() {
		c.Reset(arr)
		buf = buf[:0]
		for i := range arr.Len() {
			buf = c.AppendCSV(buf, i, ',')
		}
	}
}
