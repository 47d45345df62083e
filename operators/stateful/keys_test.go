package stateful

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// keyColumns builds one column of every key type from the same seven
// rows: rows 0 and 3 are equal in every column, row 2 is null in every
// column, and the others differ.
func keyColumns(t *testing.T, mem memory.Allocator) []arrow.Array {
	t.Helper()
	var cols []arrow.Array
	add := func(dt arrow.DataType, vals ...string) {
		b := array.NewBuilder(mem, dt)
		defer b.Release()
		for _, v := range vals {
			if v == "∅" {
				b.AppendNull()
				continue
			}
			if err := b.AppendValueFromString(v); err != nil {
				t.Fatalf("%s %q: %v", dt, v, err)
			}
		}
		cols = append(cols, b.NewArray())
	}
	add(arrow.FixedWidthTypes.Boolean, "true", "false", "∅", "true", "false", "true", "false")
	add(arrow.PrimitiveTypes.Int8, "1", "-1", "∅", "1", "2", "3", "4")
	add(arrow.PrimitiveTypes.Uint16, "1", "2", "∅", "1", "65535", "3", "4")
	add(arrow.PrimitiveTypes.Int32, "7", "8", "∅", "7", "9", "10", "-11")
	add(arrow.PrimitiveTypes.Int64, "-5", "-9223372036854775808", "∅", "-5", "6", "7", "9223372036854775807")
	add(arrow.PrimitiveTypes.Float64, "0", "1.5", "∅", "-0", "NaN", "2", "3")
	add(arrow.PrimitiveTypes.Float32, "0.5", "1.5", "∅", "0.5", "NaN", "2", "3")
	add(arrow.BinaryTypes.String, "a", "", "∅", "a", "ab", "abc", "é")
	add(arrow.BinaryTypes.LargeString, "x", "yy", "∅", "x", "", "zz", "w")
	add(arrow.BinaryTypes.Binary, "YQ==", "", "∅", "YQ==", "Yg==", "Yw==", "ZA==")
	add(arrow.FixedWidthTypes.Date32, "2024-01-01", "2024-01-02", "∅", "2024-01-01", "1970-01-01", "2000-02-29", "2024-12-31")
	add(&arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, "2024-01-01T00:00:00Z", "2024-01-01T00:00:01Z", "∅", "2024-01-01T00:00:00Z", "2023-01-01T00:00:00Z", "2022-01-01T00:00:00Z", "2021-01-01T00:00:00Z")
	add(&arrow.Decimal128Type{Precision: 18, Scale: 3}, "1.500", "-2.250", "∅", "1.500", "0.000", "3.000", "4.125")
	add(arrow.BinaryTypes.StringView, "v", "w", "∅", "v", "a long string view value", "y", "z")
	add(arrow.Null, "∅", "∅", "∅", "∅", "∅", "∅", "∅")
	// A dictionary column: indices into a dictionary with a null value.
	db := array.NewDictionaryBuilder(mem, &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int16, ValueType: arrow.BinaryTypes.String}).(*array.BinaryDictionaryBuilder)
	defer db.Release()
	for _, v := range []string{"d1", "d2", "∅", "d1", "d3", "d2x", "d4"} {
		if v == "∅" {
			db.AppendNull()
		} else if err := db.AppendString(v); err != nil {
			t.Fatal(err)
		}
	}
	cols = append(cols, db.NewArray())
	return cols
}

func TestKeyRoundTripAndEquality(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	cols := keyColumns(t, mem)
	defer releaseAll(cols)
	types := make([]arrow.DataType, len(cols))
	for i, c := range cols {
		types[i] = c.DataType()
	}
	enc, err := NewKeyEncoder(types)
	if err != nil {
		t.Fatal(err)
	}
	var rows KeyRows
	if err := enc.Encode(cols, &rows); err != nil {
		t.Fatal(err)
	}
	tab := NewKeyTable(nil)
	ids := make([]uint32, rows.N())
	if n, err := tab.FindOrInsert(&rows, nil, ids); err != nil || n != rows.N() {
		t.Fatal(n, err)
	}
	// Rows 0 and 3 agree in every column (-0 is 0), so they share an id;
	// every other row is its own key.
	want := []uint32{0, 1, 2, 0, 3, 4, 5}
	if fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Fatalf("ids %v, want %v", ids, want)
	}
	// The null column makes every row have a null key column.
	for i := range rows.N() {
		if !rows.Null(i) {
			t.Fatalf("row %d: the all-null column is null", i)
		}
	}
	// Decoding gives the keys back, a dictionary as its values.
	out, err := tab.KeyArrays(enc, mem, 0, uint32(tab.Len()))
	if err != nil {
		t.Fatal(err)
	}
	defer releaseAll(out)
	for ci, c := range out {
		if !arrow.TypeEqual(c.DataType(), enc.OutTypes()[ci]) {
			t.Fatalf("column %d: type %s, want %s", ci, c.DataType(), enc.OutTypes()[ci])
		}
		for id, row := range []int{0, 1, 2, 4, 5, 6} {
			got, wantS := c.ValueStr(id), cols[ci].ValueStr(row)
			if ci == 5 && row == 0 {
				wantS = "0"
			}
			if got != wantS {
				t.Errorf("column %d (%s) key %d: %q, want %q", ci, c.DataType(), id, got, wantS)
			}
		}
	}
	// Find sees the same ids and NoKey for a key not held.
	found := make([]uint32, rows.N())
	tab.Find(&rows, nil, found)
	if fmt.Sprint(found) != fmt.Sprint(want) {
		t.Fatalf("find %v, want %v", found, want)
	}
	empty := NewKeyTable(nil)
	empty.Find(&rows, []int32{1}, found[:1])
	if found[0] != NoKey {
		t.Fatalf("empty table found %d", found[0])
	}
}

// A dictionary key and a plain string key with the same values encode
// alike, so a join of the two sides matches.
func TestKeyDictionaryEqualsString(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	sb := array.NewStringBuilder(mem)
	sb.AppendValues([]string{"a", "b", ""}, []bool{true, true, false})
	s := sb.NewArray()
	sb.Release()
	defer s.Release()
	db := array.NewDictionaryBuilder(mem, &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int8, ValueType: arrow.BinaryTypes.String}).(*array.BinaryDictionaryBuilder)
	_ = db.AppendString("b")
	_ = db.AppendString("a")
	db.AppendNull()
	d := db.NewArray()
	db.Release()
	defer d.Release()
	es, _ := NewKeyEncoder([]arrow.DataType{s.DataType()})
	ed, _ := NewKeyEncoder([]arrow.DataType{d.DataType()})
	var rs, rd KeyRows
	if err := es.Encode([]arrow.Array{s}, &rs); err != nil {
		t.Fatal(err)
	}
	if err := ed.Encode([]arrow.Array{d}, &rd); err != nil {
		t.Fatal(err)
	}
	for i, j := range []int{1, 0, 2} {
		if string(rs.Row(i)) != string(rd.Row(j)) || rs.Hash[i] != rd.Hash[j] {
			t.Fatalf("string row %d %q, dictionary row %d %q", i, rs.Row(i), j, rd.Row(j))
		}
	}
}

// Sliced arrays encode their own rows, not their parent's.
func TestKeySliced(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	cols := keyColumns(t, mem)
	defer releaseAll(cols)
	types := make([]arrow.DataType, len(cols))
	sliced := make([]arrow.Array, len(cols))
	for i, c := range cols {
		types[i] = c.DataType()
		sliced[i] = array.NewSlice(c, 3, 5)
	}
	defer releaseAll(sliced)
	enc, _ := NewKeyEncoder(types)
	var whole, part KeyRows
	if err := enc.Encode(cols, &whole); err != nil {
		t.Fatal(err)
	}
	if err := enc.Encode(sliced, &part); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if string(part.Row(i)) != string(whole.Row(i+3)) {
			t.Fatalf("sliced row %d differs from row %d", i, i+3)
		}
	}
}

// A budget that refuses stops FindOrInsert at the row that did not fit,
// with the table intact, and it goes on once there is room.
func TestKeyTableBudget(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	b := array.NewInt64Builder(mem)
	for i := range 10000 {
		b.Append(int64(i % 5000))
	}
	col := b.NewArray()
	b.Release()
	defer col.Release()
	enc, _ := NewKeyEncoder([]arrow.DataType{col.DataType()})
	var rows KeyRows
	if err := enc.Encode([]arrow.Array{col}, &rows); err != nil {
		t.Fatal(err)
	}
	refused := errors.New("over budget")
	used, limit := int64(0), int64(40000)
	charge := func(n int64) error {
		if n > 0 && used+n > limit {
			return refused
		}
		used += n
		return nil
	}
	tab := NewKeyTable(charge)
	ids := make([]uint32, rows.N())
	done, err := tab.FindOrInsert(&rows, nil, ids)
	if !errors.Is(err, refused) || done == 0 || done >= 5000 {
		t.Fatalf("done %d, err %v: want a refusal part way", done, err)
	}
	if tab.Bytes() != used || used > limit {
		t.Fatalf("table holds %d, charged %d, limit %d", tab.Bytes(), used, limit)
	}
	for j := range done {
		if ids[j] != uint32(j) {
			t.Fatalf("row %d id %d", j, ids[j])
		}
	}
	limit = 1 << 30
	rest, err := tab.FindOrInsert(&rows, seq(done, rows.N()), ids[done:])
	if err != nil || rest != rows.N()-done {
		t.Fatal(rest, err)
	}
	if tab.Len() != 5000 {
		t.Fatalf("%d keys, want 5000", tab.Len())
	}
	for j := range rows.N() {
		if ids[j] != uint32(j%5000) {
			t.Fatalf("row %d id %d", j, ids[j])
		}
	}
	tab.Release()
	if used != 0 {
		t.Fatalf("%d bytes still charged after Release", used)
	}
}

func seq(from, to int) []int32 {
	s := make([]int32, 0, to-from)
	for i := from; i < to; i++ {
		s = append(s, int32(i))
	}
	return s
}

func TestKeyTypeRefused(t *testing.T) {
	err := KeyTypeOK(arrow.ListOf(arrow.PrimitiveTypes.Int32))
	if err == nil || !strings.Contains(err.Error(), "cannot be a key") {
		t.Fatalf("list key: %v", err)
	}
	_ = decimal128.Num{}
}

func BenchmarkKeyTableInt64(b *testing.B) {
	mem := memory.NewGoAllocator()
	for _, groups := range []int{500, 1_000_000} {
		b.Run(fmt.Sprint(groups), func(b *testing.B) {
			bb := array.NewInt64Builder(mem)
			for i := range 65536 {
				bb.Append(int64((i * 7919) % groups))
			}
			col := bb.NewArray()
			defer col.Release()
			enc, _ := NewKeyEncoder([]arrow.DataType{col.DataType()})
			var rows KeyRows
			ids := make([]uint32, col.Len())
			tab := NewKeyTable(nil)
			b.SetBytes(int64(col.Len()) * 8)
			for b.Loop() {
				_ = enc.Encode([]arrow.Array{col}, &rows)
				_, _ = tab.FindOrInsert(&rows, nil, ids)
			}
		})
	}
}

// TestKeysTwoDictionaryColumns: a key of two dictionary columns, each with
// a dictionary of its own, encodes each row as its values do.
func TestKeysTwoDictionaryColumns(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dt := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}
	build := func(values []string, idx []int) (dict, plain arrow.Array) {
		vb := array.NewStringBuilder(mem)
		vb.AppendValues(values, nil)
		v := vb.NewArray()
		vb.Release()
		ib := array.NewInt32Builder(mem)
		pb := array.NewStringBuilder(mem)
		for _, i := range idx {
			ib.Append(int32(i))
			pb.Append(values[i])
		}
		ix := ib.NewArray()
		dict = array.NewDictionaryArray(dt, ix, v)
		plain = pb.NewArray()
		ix.Release()
		v.Release()
		ib.Release()
		pb.Release()
		return dict, plain
	}
	d1, p1 := build([]string{"a", "bb", "ccc"}, []int{2, 0, 1, 1, 2})
	d2, p2 := build([]string{"x", "yyyyyyy"}, []int{0, 1, 1, 0, 0})
	defer func() {
		for _, a := range []arrow.Array{d1, p1, d2, p2} {
			a.Release()
		}
	}()
	de, err := NewKeyEncoder([]arrow.DataType{dt, dt})
	if err != nil {
		t.Fatal(err)
	}
	pe, err := NewKeyEncoder([]arrow.DataType{arrow.BinaryTypes.String, arrow.BinaryTypes.String})
	if err != nil {
		t.Fatal(err)
	}
	var dr, pr KeyRows
	if err := de.Encode([]arrow.Array{d1, d2}, &dr); err != nil {
		t.Fatal(err)
	}
	if err := pe.Encode([]arrow.Array{p1, p2}, &pr); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if !bytes.Equal(dr.Row(i), pr.Row(i)) || dr.Hash[i] != pr.Hash[i] {
			t.Errorf("row %d: %x as dictionaries, %x as values", i, dr.Row(i), pr.Row(i))
		}
	}
}
