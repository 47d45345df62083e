package expr

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// testSchema is the schema most tests compile against.
var testSchema = arrow.NewSchema([]arrow.Field{
	{Name: "qty", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "price", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "symbol", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "flag", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
	{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Microsecond}, Nullable: true},
	{Name: "small", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
	{Name: "name", Type: arrow.BinaryTypes.LargeString, Nullable: true},
	{Name: "f32", Type: arrow.PrimitiveTypes.Float32, Nullable: true},
	{Name: "tsz", Type: &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "UTC"}, Nullable: true},
	{Name: "my col", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "Mixed", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
}, nil)

const testRows = `[
{"qty": 50,   "price": 10.5,  "symbol": "AAPL", "flag": true,  "ts": "2024-01-01T00:00:00", "small": 5,    "name": "Alpha",   "f32": 1.5,  "tsz": "2024-01-01T00:00:00Z", "my col": 1, "Mixed": 10},
{"qty": 150,  "price": 20.0,  "symbol": "MSFT", "flag": false, "ts": "2024-01-02T03:04:05", "small": -3,   "name": "beta",    "f32": 2.5,  "tsz": "2024-01-02T03:04:05Z", "my col": 2, "Mixed": 20},
{"qty": null, "price": 30.25, "symbol": "GOOG", "flag": null,  "ts": null,                  "small": 0,    "name": null,      "f32": null, "tsz": null,                  "my col": null, "Mixed": 30},
{"qty": 200,  "price": null,  "symbol": null,   "flag": true,  "ts": "2024-06-30T12:00:00", "small": null, "name": "Ünïcode", "f32": -1,   "tsz": "2024-06-30T12:00:00Z", "my col": 4, "Mixed": 40},
{"qty": 0,    "price": 0,     "symbol": "AAPL", "flag": false, "ts": "2023-12-31T23:59:59", "small": 7,    "name": "",        "f32": 0,    "tsz": "2023-12-31T23:59:59Z", "my col": 5, "Mixed": 50},
{"qty": -7,   "price": -2.5,  "symbol": "amzn", "flag": null,  "ts": "2024-01-02T00:00:00", "small": 100,  "name": "a%b_c",   "f32": 3,    "tsz": "2024-01-02T00:00:00Z", "my col": 6, "Mixed": 60}
]`

func newMem() *memory.CheckedAllocator { return memory.NewCheckedAllocator(memory.NewGoAllocator()) }

// testBatch builds the six test rows.
func testBatch(t testing.TB, mem memory.Allocator) arrow.RecordBatch {
	t.Helper()
	rec, _, err := array.RecordFromJSON(mem, testSchema, strings.NewReader(testRows))
	if err != nil {
		t.Fatalf("build test batch: %v", err)
	}
	return rec
}

// evalJSON compiles src, evaluates it on the test batch and renders the
// result as JSON.
func evalJSON(t *testing.T, mem memory.Allocator, rec arrow.RecordBatch, src string) (string, arrow.DataType, error) {
	t.Helper()
	arr, err := evalChecked(t, mem, rec, src)
	if err != nil {
		return "", nil, err
	}
	defer arr.Release()
	b, err := arr.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return string(b), arr.DataType(), nil
}

// evalChecked compiles src against rec's schema and evaluates it on rec;
// the result must have rec's rows and the type Type() promised. The caller
// releases it.
func evalChecked(t *testing.T, mem memory.Allocator, rec arrow.RecordBatch, src string) (arrow.Array, error) {
	t.Helper()
	c, err := Compile(src, rec.Schema())
	if err != nil {
		return nil, err
	}
	arr, err := c.Eval(context.Background(), mem, rec)
	if err != nil {
		return nil, err
	}
	if arr.Len() != int(rec.NumRows()) {
		arr.Release()
		t.Fatalf("%s: got %d rows, want %d", src, arr.Len(), rec.NumRows())
	}
	if !arrow.TypeEqual(arr.DataType(), c.Type()) {
		arr.Release()
		t.Fatalf("%s: array type %s, Type() says %s", src, arr.DataType(), c.Type())
	}
	return arr, nil
}

// poisonAllocator hands out memory filled with garbage: a kernel of this
// package that reads bytes it did not write shows up as a wrong result.
// (arrow-go itself counts on zeroed memory in places, MakeArrayOfNull for
// one; its Mallocator uses calloc. This package does not.)
type poisonAllocator struct{}

func (poisonAllocator) Allocate(size int) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = 0xA5
	}
	return b
}

func (p poisonAllocator) Reallocate(size int, b []byte) []byte {
	n := p.Allocate(size)
	copy(n, b)
	return n
}

func (poisonAllocator) Free([]byte) {}

// compileErrorCase is an expression that does not compile: the offset and
// message of its first *TypeError.
type compileErrorCase struct {
	src    string
	offset int
	msg    string
}

// checkCompileErrors compiles each case against testSchema and checks that
// it fails with a *TypeError at the case's offset with its message.
func checkCompileErrors(t *testing.T, tests []compileErrorCase) {
	t.Helper()
	for _, tt := range tests {
		_, err := Compile(tt.src, testSchema)
		var te *TypeError
		if !errors.As(err, &te) {
			t.Errorf("Compile(%q): got %v, want a *TypeError", tt.src, err)
			continue
		}
		if te.Offset != tt.offset || te.Msg != tt.msg {
			t.Errorf("Compile(%q):\n got @%d %s\nwant @%d %s", tt.src, te.Offset, te.Msg, tt.offset, tt.msg)
		}
	}
}

// evalError evaluates src on rec and returns its error's text, "" when it
// succeeds.
func evalError(t *testing.T, mem memory.Allocator, rec arrow.RecordBatch, src string) string {
	t.Helper()
	if _, _, err := evalJSON(t, mem, rec, src); err != nil {
		return err.Error()
	}
	return ""
}

// dictBatch builds a batch of one dictionary-encoded string column, sym:
// "AAPL", "MSFT", "AAPL", NULL, "GOOG".
func dictBatch(t *testing.T, mem memory.Allocator) (arrow.RecordBatch, *arrow.DictionaryType) {
	t.Helper()
	dt := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}
	b := array.NewDictionaryBuilder(mem, dt).(*array.BinaryDictionaryBuilder)
	defer b.Release()
	for _, s := range []string{"AAPL", "MSFT", "AAPL", "", "GOOG"} {
		if s == "" {
			b.AppendNull()
		} else if err := b.AppendString(s); err != nil {
			t.Fatal(err)
		}
	}
	col := b.NewArray()
	defer col.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: "sym", Type: dt, Nullable: true}}, nil)
	return array.NewRecordBatch(schema, []arrow.Array{col}, int64(col.Len())), dt
}

// checkNoPerRowAllocs compiles each of exprs against schema and evaluates
// it over batch(100) and batch(10000): the larger batch must cost no more
// Go allocations (give or take two), or the kernel allocates per row.
func checkNoPerRowAllocs(t *testing.T, schema *arrow.Schema, exprs []string, batch func(rows int) arrow.RecordBatch) {
	t.Helper()
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
