package expr

import (
	"context"
	"encoding/binary"
	"strconv"
	"testing"

	"github.com/cespare/xxhash/v2"

	"github.com/apache/arrow-go/v18/arrow/array"
)

// TestHash checks hash's promises: fixed values (the same in every process
// and run: xxhash64 of the canonical bytes), equal values hash equal
// whatever their width, NULL hashes to DuckDB's constant, and a row's hash
// does not depend on the batch it is in.
func TestHash(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	rec := testBatch(t, mem)
	defer rec.Release()
	tests := []struct{ src, want string }{
		// xxhash64("a") = 0xd24ec4f1a98c6e5b; xxhash64("") = 0xef46db3751d8e999.
		{"hash('a')", "[15154266338359012955,15154266338359012955,15154266338359012955,15154266338359012955,15154266338359012955,15154266338359012955]"},
		{"hash(NULL)", "[13787848793156543929,13787848793156543929,13787848793156543929,13787848793156543929,13787848793156543929,13787848793156543929]"},
		{"hash(name) = hash('')", "[false,false,false,false,true,false]"},
		{"hash(name) = hash(NULL)", "[false,false,true,false,false,false]"},
		{"hash(small) = hash(CAST(small AS int64))", "[true,true,true,true,true,true]"},
		{"hash(qty) = hash(qty + 0)", "[true,true,true,true,true,true]"},
		{"hash(f32) = hash(CAST(f32 AS double))", "[true,true,true,true,true,true]"},
		{"hash(price * 0) = hash(0.0)", "[true,true,true,false,true,true]"}, // -0 hashes as 0
		{"hash(symbol) = hash(upper(symbol))", "[true,true,true,true,true,false]"},
		{"hash(symbol) = hash(name)", "[false,false,false,false,false,false]"},
		{"hash(flag) = hash(TRUE)", "[true,false,false,true,false,false]"},
		{"hash(flag) = hash(1)", "[true,false,false,true,false,false]"}, // as in DuckDB
		{"hash(qty) IN (hash(50), hash(0))", "[true,false,false,false,true,false]"},
		{"hash(ts) = hash(ts)", "[true,true,true,true,true,true]"},
		{"hash(hash(name)) = hash(hash(name))", "[true,true,true,true,true,true]"},
		// Hashes are compared, picked and nulled as uint64.
		{"greatest(hash(symbol), hash(name)) >= hash(symbol)", "[true,true,true,true,true,true]"},
		{"least(hash(symbol), hash(NULL), hash('a')) = least(hash(NULL), hash('a'), hash(symbol))", "[true,true,true,true,true,true]"},
		{"greatest(hash('a'), hash(NULL))", "[15154266338359012955,15154266338359012955,15154266338359012955,15154266338359012955,15154266338359012955,15154266338359012955]"},
		{"nullif(hash(name), hash('')) IS NULL", "[false,false,false,false,true,false]"},
		{"coalesce(nullif(hash(name), hash('')), hash(NULL)) = hash(NULL)", "[false,false,true,false,true,false]"},
		{"hash(hash(NULL))", "[4107362844620371459,4107362844620371459,4107362844620371459,4107362844620371459,4107362844620371459,4107362844620371459]"},
	}
	for _, tt := range tests {
		got, _, err := evalJSON(t, mem, rec, tt.src)
		if err != nil || got != tt.want {
			t.Errorf("%s:\n got %s %v\nwant %s", tt.src, got, err, tt.want)
		}
	}
	// Several arguments fold left to right: h = xxhash64(h ‖ hash(next)).
	var pair [16]byte
	binary.LittleEndian.PutUint64(pair[:8], xxhash.Sum64String("a"))
	binary.LittleEndian.PutUint64(pair[8:], hashNull)
	ha := xxhash.Sum64(pair[:])
	for _, tt := range []struct{ src, want string }{
		{"hash('a', NULL) = " + strconv.FormatUint(ha, 10), "[true,true,true,true,true,true]"},
		{"hash(symbol, qty) = hash(symbol, qty)", "[true,true,true,true,true,true]"},
		{"hash(symbol, qty) = hash(qty, symbol)", "[false,false,false,false,false,false]"},
		{"hash(symbol, qty, flag) = hash(symbol, qty, flag = TRUE)", "[true,true,true,true,true,true]"},
		{"hash(name, NULL) = hash(name, CAST(NULL AS string))", "[true,true,true,true,true,true]"},
		{"hash(name, small) = hash(name, CAST(small AS bigint))", "[true,true,true,true,true,true]"},
	} {
		got, _, err := evalJSON(t, mem, rec, tt.src)
		if err != nil || got != tt.want {
			t.Errorf("%s:\n got %s %v\nwant %s", tt.src, got, err, tt.want)
		}
	}
	// The same rows give the same hashes in batches of any size.
	c, err := Compile("hash(symbol)", testSchema)
	if err != nil {
		t.Fatal(err)
	}
	full, err := c.Eval(context.Background(), mem, rec)
	if err != nil {
		t.Fatal(err)
	}
	defer full.Release()
	for lo := int64(0); lo < rec.NumRows(); lo++ {
		part := rec.NewSlice(lo, lo+1)
		one, err := c.Eval(context.Background(), mem, part)
		part.Release()
		if err != nil {
			t.Fatal(err)
		}
		if got, want := one.(*array.Uint64).Value(0), full.(*array.Uint64).Value(int(lo)); got != want || one.NullN() != 0 {
			t.Errorf("row %d alone: %d, in the batch: %d", lo, got, want)
		}
		one.Release()
	}
}
