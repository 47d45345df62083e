package stateful

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"go.uber.org/goleak"

	"github.com/zflowdev/zflow/engine"
)

// writeTable writes a lookup table of n accounts (id 0, 2, 4, …: the odd
// ids are missing; one NULL id) with a name and a score, in row groups of
// rgRows, and returns its path and the rows by id.
func writeTable(t *testing.T, dir string, n, rgRows int, dupAt int) (string, map[int64]string) {
	t.Helper()
	schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "name", Type: arrow.BinaryTypes.String, Nullable: true}, {Name: "score", Type: arrow.PrimitiveTypes.Float64, Nullable: true}}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	want := map[int64]string{}
	for i := range n {
		id := int64(2 * i)
		if i == dupAt {
			id = 0
		}
		b.Field(0).(*array.Int64Builder).Append(id)
		name := fmt.Sprintf("account-%d-%s", id, strings.Repeat("x", i%17))
		b.Field(1).(*array.StringBuilder).Append(name)
		b.Field(2).(*array.Float64Builder).Append(float64(i) / 4)
		want[id] = fmt.Sprintf("%s|%g", name, float64(i)/4)
	}
	b.Field(0).AppendNull()
	b.Field(1).(*array.StringBuilder).Append("null-key")
	b.Field(2).AppendNull()
	rec := b.NewRecordBatch()
	defer rec.Release()
	path := filepath.Join(dir, "accounts.parquet")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	tbl := array.NewTableFromRecords(schema, []arrow.RecordBatch{rec})
	defer tbl.Release()
	if err := pqarrow.WriteTable(tbl, f, int64(rgRows), parquet.NewWriterProperties(), pqarrow.DefaultWriterProps()); err != nil {
		t.Fatal(err)
	}
	return path, want
}

// streamBatches are batches of account ids drawn from [0, 2n) (so half
// miss), some NULL, with a value column.
func streamBatches(mem memory.Allocator, seed uint64, n, rows, batch int) []arrow.RecordBatch {
	r := rand.New(rand.NewPCG(seed, 2))
	schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "v", Type: arrow.PrimitiveTypes.Int64, Nullable: true}}, nil)
	var out []arrow.RecordBatch
	for from := 0; from < rows; from += batch {
		b := array.NewRecordBuilder(mem, schema)
		for i := from; i < min(from+batch, rows); i++ {
			if r.IntN(40) == 0 {
				b.Field(0).AppendNull()
			} else {
				b.Field(0).(*array.Int64Builder).Append(r.Int64N(int64(2 * n)))
			}
			b.Field(1).(*array.Int64Builder).Append(int64(i))
		}
		out = append(out, b.NewRecordBatch())
		b.Release()
	}
	return out
}

func runLookup(t *testing.T, mem memory.Allocator, batches []arrow.RecordBatch, cfg *LookupJoinConfig, par int) ([]string, engine.Summary, error) {
	t.Helper()
	defer releaseRecs(batches)
	reg := testRegistry()
	reg.MustRegister(LookupJoinSpec())
	var rows, cols []string
	var mu sync.Mutex
	g := &engine.Graph{Name: "t", Settings: engine.DefaultSettings(), Nodes: []*engine.Node{
		{ID: "src", Kind: engine.KindSource, Type: "batches", Config: &batchesConfig{schema: batches[0].Schema(), batches: batches}},
		{ID: "l", Kind: engine.KindTransform, Type: "lookup_join", Inputs: []string{"src"}, Parallelism: par, Config: cfg, ConfigFrom: engine.ConfigDefaults},
		{ID: "out", Kind: engine.KindSink, Type: "rows", Inputs: []string{"l"}, Config: &rowsConfig{mu: &mu, rows: &rows, cols: &cols}},
	}}
	p, err := engine.Compile(g, engine.CompileOptions{Registry: reg})
	if err != nil {
		return nil, engine.Summary{}, err
	}
	sum, err := p.Run(context.Background(), engine.RunOptions{Alloc: mem})
	sort.Strings(rows)
	return rows, sum, err
}

// TestLookupJoin: left and inner lookups, one and two instances, against
// a map of the table; a cache as big as the table reads each row group
// once, a small one reads them again and still answers right; nothing is
// left allocated.
func TestLookupJoin(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	const n = 40000
	path, table := writeTable(t, t.TempDir(), n, 2000, -1)
	for _, tc := range []struct {
		how   string
		par   int
		cache engine.Size
	}{
		{"left", 1, 64 << 20},
		{"inner", 2, 64 << 20},
		{"left", 2, 1 << 20}, // 20 row groups of about 100 KiB: the cache holds some
	} {
		t.Run(fmt.Sprintf("%s ×%d cache %s", tc.how, tc.par, tc.cache), func(t *testing.T) {
			reads := lookupReads.Load()
			batches := streamBatches(mem, 9, n, 60000, 3000)
			var want []string
			for _, b := range batches {
				ids, vs := b.Column(0).(*array.Int64), b.Column(1).(*array.Int64)
				for i := range ids.Len() {
					row, ok := table[ids.Value(i)]
					if ids.IsNull(i) || !ok {
						if tc.how == "inner" {
							continue
						}
						row = "∅|∅"
					}
					want = append(want, fmt.Sprintf("%s|%d|%s", cellText(ids, i), vs.Value(i), row))
				}
			}
			sort.Strings(want)
			got, sum, err := runLookup(t, mem, batches, &LookupJoinConfig{Table: path, On: []string{"id"}, How: tc.how, CacheBytes: tc.cache, Suffix: "_right"}, tc.par)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("%d rows, want %d; first %v / %v", len(got), len(want), head(got), head(want))
			}
			switch r := lookupReads.Load() - reads; {
			case tc.cache > 1<<20 && r != 20:
				t.Errorf("a cache bigger than the table read %d row groups, want each of the 20 once", r)
			case tc.cache == 1<<20 && r <= 20:
				t.Errorf("a cache smaller than the table read %d row groups: it should have read some again", r)
			}
			if c := opCopies(sum, "l")["lookup_join gather"]; c == 0 {
				t.Error("no gather on the ledger")
			}
		})
	}
}

// TestLookupJoinErrors: a table the lookup cannot use is refused with the
// reason: a duplicate key (at run time, naming it), a missing column,
// keys of another type, a file that is not Parquet.
func TestLookupJoinErrors(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dir := t.TempDir()
	dup, _ := writeTable(t, dir, 5000, 1000, 3000)
	_, _, err := runLookup(t, mem, streamBatches(mem, 1, 10, 10, 10), &LookupJoinConfig{Table: dup, On: []string{"id"}, How: "left", CacheBytes: 1 << 20}, 1)
	if err == nil || !strings.Contains(err.Error(), "has key (0) twice (row group 0 row 0, and row group 3 row 0)") {
		t.Errorf("duplicate key: got %v", err)
	}
	bad := filepath.Join(dir, "bad.parquet")
	if err := os.WriteFile(bad, []byte("PAR1 this is not a parquet file PAR1"), 0o644); err != nil {
		t.Fatal(err)
	}
	in := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int32}, {Name: "v", Type: arrow.PrimitiveTypes.Int64}}, nil)
	in64 := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}, {Name: "nope", Type: arrow.PrimitiveTypes.Int64}}, nil)
	for _, tc := range []struct {
		in   *arrow.Schema
		cfg  LookupJoinConfig
		want string
	}{
		{in, LookupJoinConfig{Table: dup, On: []string{"id"}}, "key \"id\" is int32 in the stream and int64 in the table"},
		{in64, LookupJoinConfig{Table: dup, On: []string{"nope"}}, "the table " + dup + " has no column \"nope\" (it has: id, name, score)"},
		{in64, LookupJoinConfig{Table: dup, On: []string{"id"}, Columns: []string{"zzz"}}, "no column \"zzz\""},
		{in64, LookupJoinConfig{Table: bad, On: []string{"id"}}, bad},
		{in64, LookupJoinConfig{Table: filepath.Join(dir, "missing.parquet"), On: []string{"id"}}, "no such file"},
	} {
		cfg := tc.cfg
		cfg.CacheBytes, cfg.Suffix, cfg.How = 1<<20, "_right", "left"
		_, err := LookupJoinSpec().Build(&engine.BuildContext{Node: "l", Inputs: []*arrow.Schema{tc.in}}, &cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want %q", tc.cfg, err, tc.want)
		}
	}
}
