package stateful

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"go.uber.org/goleak"

	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/io/storage"
)

var modes = []struct {
	suffix           string
	desc, nullsFirst bool
}{
	{"", false, false},
	{" DESC", true, false},
	{" ASC NULLS FIRST", false, true},
	{" desc nulls first", true, true},
	{" NULLS LAST", false, false},
}

// sortCase runs sort by `by` over the generated rows and checks the ids
// against the reference order of keys.
func sortCase(t *testing.T, e *testEnv, recs []arrow.RecordBatch, by []string, keys []refKey) *sorter {
	t.Helper()
	schema := genSchema()
	c, inst, err := runOp(context.Background(), e, SortSpec(), &SortConfig{By: by}, schema, recs)
	defer c.release()
	if err != nil {
		t.Fatalf("sort by %v: %v", by, err)
	}
	all := concat(t, e.mem, schema, recs)
	defer all.Release()
	want := refOrder(all, keys)
	got := c.ids
	if !slices.Equal(got, want) {
		i := 0
		for i < min(len(got), len(want)) && got[i] == want[i] {
			i++
		}
		t.Fatalf("sort by %v: %d rows, want %d; first difference at %d: got id %v, want %v",
			by, len(got), len(want), i, got[i:min(i+5, len(got))], want[i:min(i+5, len(want))])
	}
	if int(c.maxRows) > e.ic.Settings.BatchRows {
		t.Fatalf("batch of %d rows, batch_rows %d", c.maxRows, e.ic.Settings.BatchRows)
	}
	// Without a limit the output comes in whole batches (a sort once
	// emitted one row a batch when its budget had no limit).
	if e.ic.Budget.Limit() == 0 && len(got) >= e.ic.Settings.BatchRows && int(c.maxRows) != e.ic.Settings.BatchRows {
		t.Fatalf("sort by %v without a limit: batches of at most %d rows, want batch_rows %d", by, c.maxRows, e.ic.Settings.BatchRows)
	}
	if !e.text {
		return inst.(*sorter)
	}
	// Whole rows: every column of the output is the input's row.
	text := map[int64]string{}
	for i, row := range rowsText([]arrow.RecordBatch{all}) {
		text[all.Column(0).(*array.Int64).Value(i)] = row
	}
	out := c.rows
	for i, id := range got {
		if out[i] != text[id] {
			t.Fatalf("sort by %v: row %d is %q, input row %d was %q", by, i, out[i], id, text[id])
		}
	}
	return inst.(*sorter)
}

func TestSortEveryKeyType(t *testing.T) {
	defer goleak.VerifyNone(t)
	e := newEnv(t, 0, 700, engine.SpillSettings{})
	defer e.done(t)
	recs := genBatches(e.mem, 1, 3000, 700)
	defer releaseRecs(recs)
	schema := genSchema()
	for c := 1; c < schema.NumFields(); c++ {
		for _, m := range modes {
			name := schema.Field(c).Name
			t.Run(name+m.suffix, func(t *testing.T) {
				e.text = m.suffix == "" // whole rows once per type
				sortCase(t, e, recs, []string{name + m.suffix}, []refKey{{col: c, desc: m.desc, nullsFirst: m.nullsFirst}})
			})
		}
	}
}

func TestSortSeveralKeys(t *testing.T) {
	defer goleak.VerifyNone(t)
	e := newEnv(t, 0, 1000, engine.SpillSettings{})
	defer e.done(t)
	e.text = true
	recs := genBatches(e.mem, 2, 5000, 1000)
	defer releaseRecs(recs)
	col := func(name string) int { return genSchema().FieldIndices(name)[0] }
	for _, tc := range []struct {
		by   []string
		keys []refKey
	}{
		{[]string{"b", "s DESC", "i64"}, []refKey{{col: col("b")}, {col: col("s"), desc: true}, {col: col("i64")}}},
		{[]string{"dict NULLS FIRST", "f64 DESC"}, []refKey{{col: col("dict"), nullsFirst: true}, {col: col("f64"), desc: true}}},
		{[]string{"s", "bin", "ls DESC NULLS FIRST", "dec"}, []refKey{{col: col("s")}, {col: col("bin")}, {col: col("ls"), desc: true, nullsFirst: true}, {col: col("dec")}}},
		{[]string{"u8", "ts_ns DESC", "f32"}, []refKey{{col: col("u8")}, {col: col("ts_ns"), desc: true}, {col: col("f32")}}},
		{[]string{`"i8"`, "d32", "t64 DESC"}, []refKey{{col: col("i8")}, {col: col("d32")}, {col: col("t64"), desc: true}}},
	} {
		t.Run(strings.Join(tc.by, ","), func(t *testing.T) { sortCase(t, e, recs, tc.by, tc.keys) })
	}
}

// TestSortComputedKey sorts by an expression: the output has the input's
// columns only, in the order of the computed values.
func TestSortComputedKey(t *testing.T) {
	defer goleak.VerifyNone(t)
	e := newEnv(t, 0, 400, engine.SpillSettings{})
	defer e.done(t)
	recs := genBatches(e.mem, 3, 2000, 400)
	defer releaseRecs(recs)
	schema := genSchema()
	c, _, err := runOp(context.Background(), e, SortSpec(), &SortConfig{By: []string{"id % 7 DESC", "id"}}, schema, recs)
	defer c.release()
	if err != nil {
		t.Fatal(err)
	}
	if !c.schema.Equal(schema) {
		t.Fatalf("schema %s", c.schema)
	}
	got := c.ids
	want := make([]int64, 2000)
	for i := range want {
		want[i] = int64(i)
	}
	slices.SortStableFunc(want, func(a, b int64) int { return int(b%7) - int(a%7) })
	if !slices.Equal(got, want) {
		t.Fatalf("got %v..., want %v...", got[:10], want[:10])
	}
}

func TestSortEmptyAndOneRow(t *testing.T) {
	defer goleak.VerifyNone(t)
	e := newEnv(t, 0, 100, engine.SpillSettings{})
	defer e.done(t)
	schema := genSchema()
	c, _, err := runOp(context.Background(), e, SortSpec(), &SortConfig{By: []string{"s"}}, schema, nil)
	if err != nil || len(c.ids) != 0 {
		t.Fatalf("empty input: %d rows, %v", len(c.ids), err)
	}
	one := genBatches(e.mem, 4, 1, 100)
	defer releaseRecs(one)
	empty := one[0].NewSlice(0, 0)
	defer empty.Release()
	c, _, err = runOp(context.Background(), e, SortSpec(), &SortConfig{By: []string{"s DESC"}}, schema, []arrow.RecordBatch{empty, one[0], empty})
	defer c.release()
	if err != nil || len(c.ids) != 1 {
		t.Fatalf("one row: %v, %v", c.ids, err)
	}
}

// TestSortSlicedInput sorts batches that are slices of larger ones
// (offsets into their buffers), as a filter or limit upstream makes.
func TestSortSlicedInput(t *testing.T) {
	defer goleak.VerifyNone(t)
	e := newEnv(t, 0, 300, engine.SpillSettings{})
	defer e.done(t)
	e.text = true
	big := genBatches(e.mem, 5, 3000, 1000)
	defer releaseRecs(big)
	var recs []arrow.RecordBatch
	for _, b := range big {
		recs = append(recs, b.NewSlice(17, 500), b.NewSlice(500, 999))
	}
	defer releaseRecs(recs)
	col := func(name string) int { return genSchema().FieldIndices(name)[0] }
	sortCase(t, e, recs, []string{"s", "b DESC", "dict", "dec", "f64"}, []refKey{{col: col("s")}, {col: col("b"), desc: true}, {col: col("dict")}, {col: col("dec")}, {col: col("f64")}})
}

func TestSortBadKeys(t *testing.T) {
	schema := genSchema()
	for _, tc := range []struct {
		by   []string
		want string
	}{
		{nil, "by: needs at least one key"},
		{[]string{"nope"}, "by.0 (at offset 0)"},
		{[]string{"i64", "s + 1 DESC"}, "by.1 (at offset"},
		{[]string{"i64 LAST"}, "by.0 (at offset 4): LAST must follow NULLS"},
		{[]string{"i64 NULLS"}, "NULLS must be followed by FIRST or LAST"},
		{[]string{"DESC"}, "no expression to sort by"},
		{[]string{"i64 DESC DESC"}, "by.0"},
	} {
		_, err := SortSpec().Build(&engine.BuildContext{Node: "n", Inputs: []*arrow.Schema{schema}, Settings: engine.DefaultSettings()}, &SortConfig{By: tc.by})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("by %q: error %v, want it to contain %q", tc.by, err, tc.want)
		}
	}
}

// spillEnv is a budget small enough that 20 000 generated rows spill
// many runs.
func spillEnv(t *testing.T, dir string) *testEnv {
	return newEnv(t, 768<<10, 200, engine.SpillSettings{Dir: dir})
}

func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestSortSpills(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, comp := range []string{"none", "lz4", "zstd"} {
		t.Run(comp, func(t *testing.T) {
			dir := t.TempDir()
			e := spillEnv(t, dir)
			e.ic.Settings.Spill.Compression = comp
			e.text = comp == "none"
			defer e.done(t)
			recs := genBatches(e.mem, 6, 20000, 500)
			defer releaseRecs(recs)
			col := func(name string) int { return genSchema().FieldIndices(name)[0] }
			s := sortCase(t, e, recs, []string{"s", "dict DESC", "f64 NULLS FIRST", "dec"},
				[]refKey{{col: col("s")}, {col: col("dict"), desc: true}, {col: col("f64"), nullsFirst: true}, {col: col("dec")}})
			if s.spilledRuns < 4 {
				t.Fatalf("spilled %d runs, want several", s.spilledRuns)
			}
			t.Logf("%s: %d runs spilled, %d merge passes before the last", comp, s.spilledRuns, s.mergePasses)
			if left := dirEntries(t, dir); len(left) != 0 {
				t.Fatalf("left in the spill directory: %v", left)
			}
		})
	}
}

// TestSortSpillManyPasses makes the budget so small that the runs cannot
// all be merged at once.
func TestSortSpillManyPasses(t *testing.T) {
	s := spillSortCase(t, 400<<10, 100, 7, 40000, 200, "i32", "s")
	if s.mergePasses == 0 {
		t.Fatalf("%d runs merged in one pass; want several passes", s.spilledRuns)
	}
}

// TestSortSpillTightBudget sorts under a budget that holds only a few
// batches of settings.batch_rows: the sort shrinks the batches of its
// runs and its output and sizes the merge from what is left, and
// completes instead of failing the gather or the read-back over the
// budget.
func TestSortSpillTightBudget(t *testing.T) {
	s := spillSortCase(t, 128<<10, 4096, 11, 6000, 256, "s", "i32")
	if s.spilledRuns < 2 {
		t.Fatalf("%d runs spilled; want several", s.spilledRuns)
	}
}

// spillSortCase sorts rows generated from seed (in batches of inRows) by
// asc, then desc DESC, under a budget of limit bytes with batch_rows
// batchRows, checks the order and that no spill file is left, and
// returns the sorter.
func spillSortCase(t *testing.T, limit int64, batchRows int, seed uint64, rows, inRows int, asc, desc string) *sorter {
	t.Helper()
	defer goleak.VerifyNone(t)
	dir := t.TempDir()
	e := newEnv(t, limit, batchRows, engine.SpillSettings{Dir: dir})
	defer e.done(t)
	recs := genBatches(e.mem, seed, rows, inRows)
	defer releaseRecs(recs)
	col := func(name string) int { return genSchema().FieldIndices(name)[0] }
	s := sortCase(t, e, recs, []string{asc, desc + " DESC"}, []refKey{{col: col(asc)}, {col: col(desc), desc: true}})
	t.Logf("%d runs, %d passes before the last", s.spilledRuns, s.mergePasses)
	if left := dirEntries(t, dir); len(left) != 0 {
		t.Fatalf("left: %v", left)
	}
	return s
}

// TestSortSpillFailure injects EIO into the spill files' writes after a
// few have gone through: the run fails with it, and Release leaves no file
// and no byte behind.
func TestSortSpillFailure(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, failAt := range []int64{0, 1, 3} {
		dir := t.TempDir()
		e := spillEnv(t, dir)
		recs := genBatches(e.mem, 8, 20000, 500)
		var writes int64
		fault := func(c storage.Call, n int, err error) (int, error) {
			if c.Op == storage.OpWrite {
				writes++
				if writes > failAt {
					return 0, syscall.EIO
				}
			}
			return n, err
		}
		c, err := runSortWith(context.Background(), e, recs, func(s *sorter) { s.spill.fault = fault })
		c.release()
		releaseRecs(recs)
		if !errors.Is(err, syscall.EIO) {
			t.Fatalf("fail at write %d: err %v, want EIO", failAt, err)
		}
		if left := dirEntries(t, dir); len(left) != 0 {
			t.Fatalf("fail at write %d: left %v", failAt, left)
		}
		e.done(t)
	}
}

// TestSortSpillCancel cancels the run once the sort has spilled: it
// returns the context's error and leaves nothing.
func TestSortSpillCancel(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, at := range []string{"process", "merge"} {
		t.Run(at, func(t *testing.T) {
			dir := t.TempDir()
			e := spillEnv(t, dir)
			defer e.done(t)
			recs := genBatches(e.mem, 9, 20000, 500)
			defer releaseRecs(recs)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var s *sorter
			feed := recs
			if at == "process" {
				feed = recs[:30]
			}
			f, err := SortSpec().Build(&engine.BuildContext{Node: "n", Inputs: []*arrow.Schema{genSchema()}, Settings: e.ic.Settings}, &SortConfig{By: []string{"s", "i64"}})
			if err != nil {
				t.Fatal(err)
			}
			inst, _ := f.New(e.ic)
			s = inst.(*sorter)
			c := &collector{}
			for _, b := range feed {
				if err := s.Process(ctx, 0, b, c); err != nil {
					t.Fatal(err)
				}
			}
			if s.spilledRuns == 0 {
				t.Fatal("no spill before the cancel")
			}
			cancel()
			if at == "process" {
				err = s.Process(ctx, 0, recs[30], c)
				if err == nil {
					for _, b := range recs[31:] {
						if err = s.Process(ctx, 0, b, c); err != nil {
							break
						}
					}
				}
				if err == nil {
					err = s.Finish(ctx, c)
				}
			} else {
				err = s.Finish(ctx, c)
			}
			c.release()
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err %v, want context.Canceled", err)
			}
			if s.spill.Live() == 0 && len(dirEntries(t, dir)) == 0 {
				t.Log("nothing on disk before Release")
			}
			s.Release()
			if left := dirEntries(t, dir); len(left) != 0 {
				t.Fatalf("left: %v", left)
			}
		})
	}
}

// runSortWith runs a sort by s, i64 with prep applied to the instance
// first.
func runSortWith(ctx context.Context, e *testEnv, recs []arrow.RecordBatch, prep func(*sorter)) (*collector, error) {
	f, err := SortSpec().Build(&engine.BuildContext{Node: "n", Inputs: []*arrow.Schema{genSchema()}, Settings: e.ic.Settings}, &SortConfig{By: []string{"s", "i64"}})
	if err != nil {
		return &collector{}, err
	}
	inst, _ := f.New(e.ic)
	s := inst.(*sorter)
	defer s.Release()
	prep(s)
	c := &collector{}
	for _, b := range recs {
		if err := s.Process(ctx, 0, b, c); err != nil {
			return c, err
		}
	}
	return c, s.Finish(ctx, c)
}

// TestSortGatherLedger: the output's bytes are on the ledger as "sort
// gather".
func TestSortGatherLedger(t *testing.T) {
	e := newEnv(t, 0, 1000, engine.SpillSettings{})
	defer e.done(t)
	recs := genBatches(e.mem, 10, 3000, 1000)
	defer releaseRecs(recs)
	c, _, err := runOp(context.Background(), e, SortSpec(), &SortConfig{By: []string{"i64"}}, genSchema(), recs)
	defer c.release()
	if err != nil {
		t.Fatal(err)
	}
	out := c.bytes
	got := e.ic.Ledger.Copies()["sort gather"]
	if got < out {
		t.Fatalf("ledger has %d bytes of sort gather, output is %d", got, out)
	}
}

// TestNormBytes: the string prefix keeps order (a smaller prefix is a
// smaller string), and one whose length byte is under 8 holds the whole
// string (rowOrder.tie then skips comparing it), NUL bytes and all.
func TestNormBytes(t *testing.T) {
	vals := []string{"", "\x00", "\x00\x00", "a", "ab", "ab\x00", "ab\x00\x00", "abc", "abcdefg", "abcdefg\x00",
		"abcdefgh", "abcdefgi", "abcdefghij", "abcdefg\xff", "\xff\xff\xff\xff\xff\xff\xff", "\xff\xff\xff\xff\xff\xff\xff\xff"}
	for _, a := range vals {
		for _, b := range vals {
			pa, pb := normBytes([]byte(a)), normBytes([]byte(b))
			c := strings.Compare(a, b)
			if pa < pb && c >= 0 || pa > pb && c <= 0 {
				t.Errorf("%q vs %q: prefixes %x %x out of order", a, b, pa, pb)
			}
			if pa == pb && pa&0xff < 8 && a != b {
				t.Errorf("%q and %q share the whole prefix %x", a, b, pa)
			}
		}
	}
}
