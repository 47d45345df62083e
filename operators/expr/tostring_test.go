package expr

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// TestCastTimestampToStringAtBufferEnd formats timestamps whose strings
// fill the data buffer to a multiple of 64 bytes (the allocator's size
// class, so its capacity ends there too), the last with a fraction whose
// zeros time's AppendFormat writes before trimming them. Formatting in
// place wrote past the buffer's end, the append moved the bytes off it,
// and the last row came out as NUL bytes (found by the DuckDB oracle on
// CAST(ts AS varchar) over a slice).
func TestCastTimestampToStringAtBufferEnd(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	schema := arrow.NewSchema([]arrow.Field{{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Microsecond}, Nullable: true}}, nil)
	// 9 whole seconds of 19 bytes and one of 21: 192 bytes.
	want := make([]string, 0, 11)
	for range 9 {
		want = append(want, "2024-01-02 03:04:05")
	}
	want = append(want, "2024-01-02 03:04:05.5")
	var rows []string
	for i, w := range want {
		rows = append(rows, `{"ts": "`+strings.Replace(w, " ", "T", 1)+`"}`)
		if i == 4 {
			rows = append(rows, `{"ts": null}`)
		}
	}
	rec, _, err := array.RecordFromJSON(mem, schema, strings.NewReader("["+strings.Join(rows, ",")+"]"))
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()
	c, err := Compile("CAST(ts AS string)", schema)
	if err != nil {
		t.Fatal(err)
	}
	arr, err := c.Eval(context.Background(), mem, rec)
	if err != nil {
		t.Fatal(err)
	}
	defer arr.Release()
	s := arr.(*array.String)
	if n := len(s.ValueBytes()); n != 192 {
		t.Fatalf("the strings take %d bytes, want 192 (the case this test is about)", n)
	}
	want = slices.Insert(want, 5, "")
	for i, w := range want {
		if got := s.Value(i); got != w || s.IsNull(i) != (i == 5) {
			t.Errorf("row %d: %q (null %v), want %q", i, got, s.IsNull(i), w)
		}
	}
}
