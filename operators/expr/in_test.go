package expr

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// TestStrSet checks the IN hash set against a map, with strings of every
// length up to 40 that share prefixes and suffixes, read at every position
// of a buffer (so word loads at the buffer's end take the byte path).
func TestStrSet(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alpha := "ab\x00\xff"
	randStr := func() string {
		n := rng.IntN(41)
		b := make([]byte, n)
		for i := range b {
			b[i] = alpha[rng.IntN(len(alpha))]
		}
		return string(b)
	}
	for round := range 200 {
		var list []string
		want := map[string]bool{}
		for range rng.IntN(40) {
			s := randStr()
			list = append(list, s)
			want[s] = true
		}
		uniq := make([]string, 0, len(want))
		for s := range want {
			uniq = append(uniq, s)
		}
		probing, _ := buildStrSet(uniq, 128, 0, false)
		for _, set := range []strSet{newStrSet(list), probing} {
			for _, s := range list {
				if !set.has([]byte(s), 0, len(s)) {
					t.Fatalf("round %d: member %q not found", round, s)
				}
			}
			for range 200 {
				s := randStr()
				if rng.IntN(3) == 0 && len(list) > 0 {
					s = list[rng.IntN(len(list))]
				}
				pre := rng.IntN(9)
				buf := []byte(strings.Repeat("a", pre) + s)
				if got := set.has(buf, pre, len(s)); got != want[s] {
					t.Fatalf("round %d: has(%q) = %v, want %v (list %q)", round, s, got, want[s], list)
				}
				if set.perfect && len(s) <= 16 {
					if got := set.hasShort(buf, pre, len(s)) == 1; got != want[s] {
						t.Fatalf("round %d: hasShort(%q) = %v, want %v (list %q)", round, s, got, want[s], list)
					}
				}
			}
		}
	}
}

// TestInStrSliced compares IN over a sliced string column with nulls with a
// row-by-row evaluation, with and without NULL in the list.
func TestInStrSliced(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	rng := rand.New(rand.NewPCG(3, 4))
	schema := arrow.NewSchema([]arrow.Field{{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true}}, nil)
	b := array.NewStringBuilder(mem)
	var vals []*string
	for range 1000 {
		if rng.IntN(10) == 0 {
			b.AppendNull()
			vals = append(vals, nil)
			continue
		}
		s := fmt.Sprintf("SYM%0*d", rng.IntN(14), rng.IntN(40))
		b.Append(s)
		vals = append(vals, &s)
	}
	col := b.NewArray()
	b.Release()
	defer col.Release()
	list := []string{"SYM1", "SYM01", "SYM0000000000017", "SYM00000000000003", "SYM3", "SYM0000005", ""}
	member := map[string]bool{}
	quoted := make([]string, len(list))
	for i, s := range list {
		member[s] = true
		quoted[i] = "'" + s + "'"
	}
	for _, withNull := range []bool{false, true} {
		src := "s IN (" + strings.Join(quoted, ", ")
		if withNull {
			src += ", NULL"
		}
		src += ")"
		c, err := Compile(src, schema)
		if err != nil {
			t.Fatal(err)
		}
		for _, off := range []int{0, 1, 7, 13} {
			sl := array.NewSlice(col, int64(off), int64(len(vals)-off/2))
			rec := array.NewRecordBatch(schema, []arrow.Array{sl}, int64(sl.Len()))
			sl.Release()
			got, err := c.Eval(context.Background(), mem, rec)
			rec.Release()
			if err != nil {
				t.Fatal(err)
			}
			g := got.(*array.Boolean)
			for i := 0; i < g.Len(); i++ {
				v := vals[off+i]
				wantNull := v == nil || (withNull && !member[*v])
				if g.IsNull(i) != wantNull || (!wantNull && g.Value(i) != member[*v]) {
					t.Fatalf("%s offset %d row %d (%v): got null=%v %v", src, off, i, v, g.IsNull(i), g.Value(i))
				}
			}
			got.Release()
		}
	}
}

// TestInLongList checks a list longer than maxSmallIn, which takes arrow's
// is_in kernel, against the hash set.
func TestInLongList(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	rec := testBatch(t, mem)
	defer rec.Release()
	for _, n := range []int{maxSmallIn - 1, maxSmallIn + 1} {
		var b strings.Builder
		b.WriteString("symbol IN ('AAPL', 'GOOG'")
		for i := range n - 2 {
			fmt.Fprintf(&b, ", 'x%d'", i)
		}
		b.WriteString(")")
		got, _, err := evalJSON(t, mem, rec, b.String())
		if err != nil {
			t.Fatal(err)
		}
		if want := "[true,false,true,null,true,false]"; got != want {
			t.Errorf("%d strings: got %s, want %s", n, got, want)
		}
	}
}

// TestStrSetPerfect: the core benchmark's list gets a perfect hash, so its
// lookups read one slot.
func TestStrSetPerfect(t *testing.T) {
	list := []string{"SYM0001", "SYM0002", "SYM0003", "SYM0005", "SYM0008", "SYM0013", "SYM0017", "SYM0019"}
	for n := 1; n <= len(list); n++ {
		if s := newStrSet(list[:n]); !s.perfect {
			t.Errorf("%d strings: no perfect hash", n)
		}
	}
	var many []string
	for i := range 64 {
		many = append(many, fmt.Sprintf("K%d", i))
	}
	if s := newStrSet(many); !s.perfect {
		t.Errorf("64 strings: no perfect hash")
	}
}
