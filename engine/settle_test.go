package engine

import (
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// TestSettleDictionaries: after the fan-out settles a batch, consumers
// reading a dictionary's values at once (top level, in a struct field, in
// a list) only read. Run with -race: without the settling, arrow-go's
// lazy values array is a write both would make.
func TestSettleDictionaries(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dt := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}
	st := arrow.StructOf(arrow.Field{Name: "d", Type: dt, Nullable: true})
	s := arrow.NewSchema([]arrow.Field{
		{Name: "d", Type: dt, Nullable: true},
		{Name: "s", Type: st, Nullable: true},
		{Name: "l", Type: arrow.ListOf(dt), Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(mem, s)
	defer b.Release()
	for i := range 10 {
		_ = b.Field(0).(*array.BinaryDictionaryBuilder).AppendString(string(rune('a' + i%3)))
		sb := b.Field(1).(*array.StructBuilder)
		sb.Append(true)
		_ = sb.FieldBuilder(0).(*array.BinaryDictionaryBuilder).AppendString("x")
		lb := b.Field(2).(*array.ListBuilder)
		lb.Append(true)
		_ = lb.ValueBuilder().(*array.BinaryDictionaryBuilder).AppendString("y")
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	settleBatch(rec)

	read := func() int {
		n := rec.Column(0).(*array.Dictionary).Dictionary().Len()
		n += rec.Column(1).(*array.Struct).Field(0).(*array.Dictionary).Dictionary().Len()
		n += rec.Column(2).(*array.List).ListValues().(*array.Dictionary).Dictionary().Len()
		return n
	}
	var wg sync.WaitGroup
	got := make([]int, 2)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i] = read()
		}()
	}
	wg.Wait()
	if got[0] != 5 || got[1] != 5 {
		t.Fatalf("dictionary lengths %v, want 3+1+1 each", got)
	}
}
