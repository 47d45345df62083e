package expr

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

func TestLocalDiff(t *testing.T) {
	path := os.Getenv("ZZ_EXPRS")
	if path == "" {
		t.Skip()
	}
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "i8", Type: arrow.PrimitiveTypes.Int8, Nullable: true},
		{Name: "i16", Type: arrow.PrimitiveTypes.Int16, Nullable: true},
		{Name: "i32", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
		{Name: "i64", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "u32", Type: arrow.PrimitiveTypes.Uint32, Nullable: true},
		{Name: "f32", Type: arrow.PrimitiveTypes.Float32, Nullable: true},
		{Name: "f64", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "s2", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "b", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
		{Name: "d", Type: arrow.FixedWidthTypes.Date32, Nullable: true},
		{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Microsecond}, Nullable: true},
		{Name: "ts_ms", Type: &arrow.TimestampType{Unit: arrow.Millisecond}, Nullable: true},
	}, nil)
	rows := `[
{"id":1,"i8":5,"i16":300,"i32":70000,"i64":1234567890123,"u32":7,"f32":1.5,"f64":2.5,"s":"2024-06-02","s2":" 42 ","b":true,"d":"2024-02-29","ts":"2024-01-31T10:11:12.123456","ts_ms":"2024-01-31T10:11:12.123"},
{"id":2,"i8":-5,"i16":-300,"i32":-70000,"i64":-9,"u32":0,"f32":-0.5,"f64":-2.5,"s":"1969-12-31 23:59:59","s2":"yes","b":false,"d":"1969-12-31","ts":"1969-12-31T23:59:59.999999","ts_ms":"1900-03-01T00:00:00"},
{"id":3,"i8":null,"i16":null,"i32":null,"i64":null,"u32":null,"f32":null,"f64":null,"s":null,"s2":null,"b":null,"d":null,"ts":null,"ts_ms":null},
{"id":4,"i8":127,"i16":32767,"i32":2147483647,"i64":0,"u32":4294967295,"f32":3.25,"f64":1e16,"s":"abc","s2":"0","b":null,"d":"2000-01-01","ts":"2000-12-31T23:59:59","ts_ms":"2038-01-19T03:14:07.999"},
{"id":5,"i8":-128,"i16":0,"i32":0,"i64":-1,"u32":1,"f32":0,"f64":0.0001,"s":"","s2":"T","b":true,"d":"1582-10-15","ts":"2024-12-30T00:00:00","ts_ms":"1970-01-01T00:00:00.001"}
]`
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	rec, _, err := array.RecordFromJSON(mem, schema, strings.NewReader(rows))
	if err != nil {
		t.Fatal(err)
	}
	defer mem.AssertSize(t, 0)
	defer rec.Release()
	f, _ := os.Open(path)
	defer f.Close()
	out, _ := os.Create(os.Getenv("ZZ_OUT"))
	defer out.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		e := strings.TrimSpace(sc.Text())
		if e == "" || strings.HasPrefix(e, "--") {
			continue
		}
		c, err := Compile(e, schema)
		if err != nil {
			fmt.Fprintf(out, "%s\tERROR\t%v\n", e, err)
			continue
		}
		arr, err := c.Eval(context.Background(), mem, rec)
		if err != nil {
			fmt.Fprintf(out, "%s\tERROR\t%v\n", e, err)
			continue
		}
		var vals []string
		for i := 0; i < arr.Len(); i++ {
			if arr.IsNull(i) {
				vals = append(vals, "NULL")
			} else {
				vals = append(vals, valueText(arr, i))
			}
		}
		arr.Release()
		fmt.Fprintf(out, "%s\t%s\t%s\n", e, strings.Join(vals, "|"), sqlTypeName(c.Type()))
	}
}
