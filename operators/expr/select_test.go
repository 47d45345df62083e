package expr

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/zflowdev/zflow/engine"
)

// A bare column reference returns the column itself: same buffers, one more
// reference.
func TestColumnIsZeroCopy(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	rec := testBatch(t, mem)
	defer rec.Release()
	for _, src := range []string{"price", `"my col"`, "symbol", "(qty)"} {
		c, err := Compile(src, testSchema)
		if err != nil {
			t.Fatal(err)
		}
		idx, ok := c.Column()
		if !ok {
			t.Fatalf("%s: Column() not ok", src)
		}
		before := mem.CurrentAlloc()
		arr, err := c.Eval(context.Background(), mem, rec)
		if err != nil {
			t.Fatal(err)
		}
		if mem.CurrentAlloc() != before {
			t.Errorf("%s: Eval allocated %d bytes", src, mem.CurrentAlloc()-before)
		}
		col := rec.Column(idx)
		got, want := arr.Data().Buffers()[1].Bytes(), col.Data().Buffers()[1].Bytes()
		if &got[0] != &want[0] {
			t.Errorf("%s: Eval copied the column's values", src)
		}
		if arr.Data() != col.Data() {
			t.Errorf("%s: Eval returned a new ArrayData", src)
		}
		arr.Release()
	}
}

func TestSelect(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	rec := testBatch(t, mem)
	defer rec.Release()
	ctx := context.Background()

	for _, src := range []string{"TRUE", "symbol IS NOT NULL OR qty > 0 OR qty IS NULL", "1 = 1"} {
		c, err := Compile(src, testSchema)
		if err != nil {
			t.Fatal(err)
		}
		out, copied, err := c.Select(ctx, mem, rec)
		if err != nil {
			t.Fatal(err)
		}
		if out != rec || copied != 0 {
			t.Errorf("%s: pass-all returned %p (copied %d), want the input batch %p", src, out, copied, rec)
		}
		out.Release()
	}

	for _, src := range []string{"FALSE", "NULL", "qty > 1000", "flag AND NULL AND qty < 0", "qty / 0 > 1"} {
		c, err := Compile(src, testSchema)
		if err != nil {
			t.Fatal(err)
		}
		out, copied, err := c.Select(ctx, mem, rec)
		if err != nil || out != nil || copied != 0 {
			t.Errorf("%s: got %v, %d, %v; want nil", src, out, copied, err)
		}
	}

	// flag is [true,false,null,true,false,null]: NULL rows are dropped.
	c, err := Compile("flag", testSchema)
	if err != nil {
		t.Fatal(err)
	}
	out, copied, err := c.Select(ctx, mem, rec)
	if err != nil {
		t.Fatal(err)
	}
	if out.NumRows() != 2 || copied != engine.BatchBytes(out) || copied == 0 {
		t.Errorf("flag: %d rows, copied %d (batch bytes %d)", out.NumRows(), copied, engine.BatchBytes(out))
	}
	qty := out.Column(0).(*array.Int64)
	if qty.Value(0) != 50 || qty.Value(1) != 200 {
		t.Errorf("flag: kept qty %v", qty)
	}
	out.Release()

	c, err = Compile("qty > 100 AND symbol IN ('AAPL', 'MSFT')", testSchema)
	if err != nil {
		t.Fatal(err)
	}
	out, _, err = c.Select(ctx, mem, rec)
	if err != nil {
		t.Fatal(err)
	}
	if out.NumRows() != 1 || out.Column(2).(*array.String).Value(0) != "MSFT" {
		t.Errorf("select: got %v", out)
	}
	out.Release()

	c, err = Compile("qty + 1", testSchema)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Select(ctx, mem, rec); err == nil || !strings.Contains(err.Error(), "a predicate must be boolean, not int64") {
		t.Errorf("Select on int64: %v", err)
	}

	// A zero-row batch passes through.
	empty := rec.NewSlice(0, 0)
	defer empty.Release()
	c, _ = Compile("qty > 1", testSchema)
	out, _, err = c.Select(ctx, mem, empty)
	if err != nil || out != empty {
		t.Errorf("Select on 0 rows: %v, %v", out, err)
	}
	out.Release()
}

// TestSelectSliced selects on a sliced batch, whose arrays have offsets.
func TestSelectSliced(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	full := testBatch(t, mem)
	defer full.Release()
	rec := full.NewSlice(1, 6) // rows 1..5
	defer rec.Release()
	c, err := Compile("flag OR qty < 0", testSchema)
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := c.Select(context.Background(), mem, rec)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	// rows 1..5: flag F,N,T,F,N; qty 150,null,200,0,-7 → kept rows 3 and 5.
	qty := out.Column(0).(*array.Int64)
	if out.NumRows() != 2 || qty.Value(0) != 200 || qty.Value(1) != -7 {
		t.Errorf("got %v", out)
	}
}

// TestConcurrentEval shares one Compiled between goroutines (run with -race).
func TestConcurrentEval(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	rec := testBatch(t, mem)
	defer rec.Release()
	srcs := []string{
		"qty > 100 AND symbol IN ('AAPL','MSFT')",
		"CASE WHEN flag THEN lower(name) ELSE coalesce(symbol, 'x') END",
		"name LIKE '%a%' OR price / qty > 0.1",
		"CAST(qty AS string)",
		"small IN (5, 7, 100) OR qty NOT IN (50, 150) OR ts IN (TIMESTAMP '2024-01-01')",
	}
	want := make([]string, len(srcs))
	comp := make([]*Compiled, len(srcs))
	for i, src := range srcs {
		var err error
		if comp[i], err = Compile(src, testSchema); err != nil {
			t.Fatal(err)
		}
		if want[i], _, err = evalJSON(t, mem, rec, src); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 50 {
				i := (g + k) % len(srcs)
				arr, err := comp[i].Eval(context.Background(), mem, rec)
				if err != nil {
					errs <- err.Error()
					return
				}
				b, _ := arr.MarshalJSON()
				arr.Release()
				if string(b) != want[i] {
					errs <- srcs[i] + ": " + string(b)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

var _ arrow.RecordBatch = (arrow.RecordBatch)(nil)
