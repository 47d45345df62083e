package expr

import (
	"context"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Gather takes rows in any order, repeats included, for the types with a
// loop of their own and for one that goes through arrow's take kernel (a
// list), from sliced columns, and leaves nothing allocated.
func TestGather(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "i", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "b", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
		{Name: "l", Type: arrow.ListOf(arrow.PrimitiveTypes.Int32), Nullable: true},
	}, nil)
	rb := array.NewRecordBuilder(mem, schema)
	defer rb.Release()
	for _, row := range []string{
		`{"i": 1, "s": "a", "b": true, "l": [1]}`,
		`{"i": null, "s": null, "b": null, "l": null}`,
		`{"i": 3, "s": "ccc", "b": false, "l": [3, 33]}`,
		`{"i": 4, "s": "", "b": true, "l": []}`,
		`{"i": 5, "s": "eeeee", "b": false, "l": [5]}`,
	} {
		if err := rb.UnmarshalJSON([]byte(row)); err != nil {
			t.Fatal(err)
		}
	}
	whole := rb.NewRecordBatch()
	defer whole.Release()
	rec := whole.NewSlice(1, 5) // rows 1..4 of the whole
	defer rec.Release()
	got, err := Gather(context.Background(), mem, rec, []int32{3, 0, 3, 1})
	if err != nil {
		t.Fatal(err)
	}
	defer got.Release()
	want := `[{"b":false,"i":5,"l":[5],"s":"eeeee"}
,{"b":null,"i":null,"l":null,"s":null}
,{"b":false,"i":5,"l":[5],"s":"eeeee"}
,{"b":false,"i":3,"l":[3,33],"s":"ccc"}
]`
	js, _ := got.MarshalJSON()
	if string(js) != want {
		t.Fatalf("gathered\n%s\nwant\n%s", js, want)
	}
	if GatheredBytes(got) <= 0 {
		t.Fatal("no bytes counted")
	}
}
