package operators

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/operators/expr"
	"go.uber.org/goleak"
)

// tradesBatch makes a small batch: symbol, price, qty.
func tradesBatch(mem memory.Allocator, syms []string, prices []float64, qty []int64) arrow.RecordBatch {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "symbol", Type: arrow.BinaryTypes.String},
		{Name: "price", Type: arrow.PrimitiveTypes.Float64},
		{Name: "qty", Type: arrow.PrimitiveTypes.Int64},
	}, nil)
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	b.Field(0).(*array.StringBuilder).AppendValues(syms, nil)
	b.Field(1).(*array.Float64Builder).AppendValues(prices, nil)
	b.Field(2).(*array.Int64Builder).AppendValues(qty, nil)
	return b.NewRecordBatch()
}

func newTransform(t *testing.T, mem memory.Allocator, spec engine.Spec, cfg any, in *arrow.Schema) (engine.Transform, *arrow.Schema, *engine.InstanceContext) {
	t.Helper()
	f, err := buildFactory(spec, cfg, in)
	if err != nil {
		t.Fatalf("build %s: %v", spec.Name, err)
	}
	ic := testIC(mem, spec.Name, spec.Name, 0)
	op, err := f.New(ic)
	if err != nil {
		t.Fatal(err)
	}
	return op.(engine.Transform), f.Schema(), ic
}

func bufAddr(a arrow.Array, i int) uintptr {
	return uintptr(unsafe.Pointer(&a.Data().Buffers()[i].Bytes()[0]))
}

func TestProjectSharesBuffers(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	in := tradesBatch(mem, []string{"A", "B", "C"}, []float64{1, 2, 3}, []int64{10, 20, 30})
	defer in.Release()
	cfg := &ProjectConfig{Columns: []string{"symbol", "qty AS quantity", "price * qty AS notional"}}
	op, schema, _ := newTransform(t, mem, ProjectSpec(), cfg, in.Schema())
	if got := schema.String(); !strings.Contains(got, "quantity: type=int64") || !strings.Contains(got, "notional: type=float64") {
		t.Fatalf("schema: %s", got)
	}
	c := &collector{}
	defer c.release()
	if err := op.Process(context.Background(), 0, in, c); err != nil {
		t.Fatal(err)
	}
	out := c.recs[0]
	// Kept columns are the same memory as the input's, buffer by buffer.
	for _, pair := range [][2]int{{0, 0}, {1, 2}} {
		o, i := out.Column(pair[0]), in.Column(pair[1])
		for b := 1; b < len(i.Data().Buffers()); b++ {
			if bufAddr(o, b) != bufAddr(i, b) {
				t.Fatalf("output column %d buffer %d is at %#x, input's at %#x: copied", pair[0], b, bufAddr(o, b), bufAddr(i, b))
			}
		}
	}
	if got := out.Column(2).(*array.Float64).Float64Values(); got[0] != 10 || got[2] != 90 {
		t.Fatalf("notional %v", got)
	}
}

func TestProjectDropRenameStar(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	in := tradesBatch(mem, []string{"A"}, []float64{1}, []int64{10})
	defer in.Release()
	cfg := &ProjectConfig{Columns: []string{"*", "CAST(qty AS double) AS q"}, Drop: []string{"price"}, Rename: map[string]string{"symbol": "sym"}}
	_, schema, _ := newTransform(t, mem, ProjectSpec(), cfg, in.Schema())
	var names []string
	for _, f := range schema.Fields() {
		names = append(names, f.Name)
	}
	if strings.Join(names, ",") != "sym,qty,q" {
		t.Fatalf("columns %v", names)
	}
}

func TestProjectErrors(t *testing.T) {
	in := tradesBatch(memory.NewGoAllocator(), nil, nil, nil)
	defer in.Release()
	cases := []struct {
		cfg  *ProjectConfig
		want string
	}{
		{&ProjectConfig{Columns: []string{"qyt"}}, `columns.0 (at offset 0): unknown column "qyt", did you mean "qty"?`},
		{&ProjectConfig{Drop: []string{"prise"}}, `drop.0: column "prise" does not exist, did you mean "price"?`},
		{&ProjectConfig{Columns: []string{"qty", "qty"}}, `output column "qty" appears twice`},
		{&ProjectConfig{Columns: []string{"symbol + 1 AS x"}}, `columns.0 (at offset`},
	}
	for _, c := range cases {
		_, err := buildFactory(ProjectSpec(), c.cfg, in.Schema())
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want %q", c.cfg, err, c.want)
		}
	}
}

func TestSplitAlias(t *testing.T) {
	cases := map[string][2]string{
		"qty":                     {"qty", ""},
		"qty AS q":                {"qty ", "q"},
		"CAST(qty AS int32)":      {"CAST(qty AS int32)", ""},
		"CAST(qty AS int32) as x": {"CAST(qty AS int32) ", "x"},
		"'a as b' AS s":           {"'a as b' ", "s"},
		`price * qty AS "my col"`: {"price * qty ", "my col"},
		"has_as":                  {"has_as", ""},
	}
	for in, want := range cases {
		e, a := expr.SplitAlias(in)
		if e != want[0] || a != want[1] {
			t.Errorf("SplitAlias(%q) = %q, %q; want %q, %q", in, e, a, want[0], want[1])
		}
	}
}

func TestFilterPassAllReemitsSameBatch(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	in := tradesBatch(mem, []string{"A", "B", "C"}, []float64{1, 2, 3}, []int64{10, 20, 30})
	defer in.Release()
	op, _, ic := newTransform(t, mem, FilterSpec(), &FilterConfig{Where: "qty > 0"}, in.Schema())
	c := &collector{}
	defer c.release()
	if err := op.Process(context.Background(), 0, in, c); err != nil {
		t.Fatal(err)
	}
	if len(c.recs) != 1 || c.recs[0] != in {
		t.Fatalf("a pass-all filter must re-emit its input batch itself")
	}
	if n := ic.Ledger.Copies()["filter compact"]; n != 0 {
		t.Fatalf("pass-all filter reported %d bytes copied", n)
	}
	// Some rows: a new, compacted batch, and its bytes on the ledger.
	op2, _, ic2 := newTransform(t, mem, FilterSpec(), &FilterConfig{Where: "symbol <> 'B'"}, in.Schema())
	if err := op2.Process(context.Background(), 0, in, c); err != nil {
		t.Fatal(err)
	}
	if len(c.recs) != 2 || c.recs[1].NumRows() != 2 || ic2.Ledger.Copies()["filter compact"] == 0 {
		t.Fatalf("partial filter: %d batches, copies %v", len(c.recs), ic2.Ledger.Copies())
	}
	// No rows: nothing emitted.
	op3, _, _ := newTransform(t, mem, FilterSpec(), &FilterConfig{Where: "qty > 1000"}, in.Schema())
	if err := op3.Process(context.Background(), 0, in, c); err != nil || len(c.recs) != 2 {
		t.Fatalf("empty filter emitted: %v %d", err, len(c.recs))
	}
}

func TestFilterNotBoolean(t *testing.T) {
	in := tradesBatch(memory.NewGoAllocator(), nil, nil, nil)
	defer in.Release()
	_, err := buildFactory(FilterSpec(), &FilterConfig{Where: "qty + 1"}, in.Schema())
	if err == nil || !strings.Contains(err.Error(), "boolean") {
		t.Fatalf("got %v", err)
	}
}

func TestLimitSlicesAndStops(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	in := tradesBatch(mem, []string{"A", "B", "C"}, []float64{1, 2, 3}, []int64{10, 20, 30})
	defer in.Release()
	op, _, _ := newTransform(t, mem, LimitSpec(), &LimitConfig{Count: 4, Offset: 1}, in.Schema())
	c := &collector{}
	defer c.release()
	if err := op.Process(context.Background(), 0, in, c); err != nil {
		t.Fatal(err)
	}
	if err := op.Process(context.Background(), 0, in, c); err != engine.ErrStop {
		t.Fatalf("want ErrStop after the limit, got %v", err)
	}
	if c.rows() != 4 || c.recs[0].NumRows() != 2 || c.recs[1].NumRows() != 2 {
		t.Fatalf("rows %d", c.rows())
	}
	// The slices share the input's buffers.
	if bufAddr(c.recs[1].Column(2), 1) != bufAddr(in.Column(2), 1) {
		t.Fatal("limit copied instead of slicing")
	}
}

func TestLimitInPipelineStopsSource(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := newMem()
	defer mem.AssertSize(t, 0)
	gen := testGenConfig(1 << 40) // effectively endless
	sum, err := runGraph(t, mem, 1000,
		&engine.Node{ID: "g", Kind: engine.KindSource, Type: "generate", Config: gen},
		&engine.Node{ID: "l", Kind: engine.KindTransform, Type: "limit", Config: &LimitConfig{Count: 2500}, Inputs: []string{"g"}},
		&engine.Node{ID: "d", Kind: engine.KindSink, Type: "discard", Inputs: []string{"l"}},
	)
	if err != nil {
		t.Fatal(err)
	}
	if got := sum.Op("d").RowsIn; got != 2500 {
		t.Fatalf("discard got %d rows", got)
	}
}

func TestUnion(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := newMem()
	defer mem.AssertSize(t, 0)
	sum, err := runGraph(t, mem, 100,
		&engine.Node{ID: "a", Kind: engine.KindSource, Type: "generate", Config: testGenConfig(1000)},
		&engine.Node{ID: "b", Kind: engine.KindSource, Type: "generate", Config: testGenConfig(500)},
		&engine.Node{ID: "u", Kind: engine.KindTransform, Type: "union", Inputs: []string{"a", "b"}},
		&engine.Node{ID: "d", Kind: engine.KindSink, Type: "discard", Inputs: []string{"u"}},
	)
	if err != nil {
		t.Fatal(err)
	}
	if u := sum.Op("u"); u.RowsOut != 1500 || u.BytesRef != u.BytesOut {
		t.Fatalf("union: %+v", u)
	}
	// Mismatched schemas are a compile error naming both inputs.
	other := testGenConfig(10)
	other.Columns = other.Columns[:1]
	_, err = runGraph(t, mem, 100,
		&engine.Node{ID: "a", Kind: engine.KindSource, Type: "generate", Config: testGenConfig(10)},
		&engine.Node{ID: "b", Kind: engine.KindSource, Type: "generate", Config: other},
		&engine.Node{ID: "u", Kind: engine.KindTransform, Type: "union", Inputs: []string{"a", "b"}},
		&engine.Node{ID: "d", Kind: engine.KindSink, Type: "discard", Inputs: []string{"u"}},
	)
	if err == nil || !strings.Contains(err.Error(), `input "b" has 1 columns`) {
		t.Fatalf("got %v", err)
	}
}

// TestUnionByName unions real files whose columns differ in order, presence
// and type (testdata/union: CSV, NDJSON and Parquet) and checks the schema,
// the rows (sorted: a union passes batches in arrival order), what was
// copied, and the compile errors.
func TestUnionByName(t *testing.T) {
	defer goleak.VerifyNone(t)
	src := func(id, file string) *engine.Node {
		n := &engine.Node{ID: id, Kind: engine.KindSource, ConfigFrom: engine.ConfigLiteral}
		path := filepath.Join("..", "testdata", "union", file) // shared with pipelines/examples/union_by_name.yaml
		switch filepath.Ext(file) {
		case ".csv":
			n.Type, n.Config = "csv", &CSVSourceConfig{Path: path, Header: true}
		case ".ndjson":
			n.Type, n.Config = "ndjson", &NDJSONSourceConfig{Path: path}
		case ".parquet":
			n.Type, n.Config = "parquet", &ParquetSourceConfig{Path: path}
		}
		return n
	}
	cases := []struct {
		name   string
		files  []string
		cfg    UnionConfig
		schema string // the output's columns, name:type
		rows   []string
		cast   bool   // bytes counted as "union cast"
		err    string // a compile error
	}{
		{
			name:   "csv+ndjson: missing columns are null",
			files:  []string{"east.csv", "west.ndjson"},
			cfg:    UnionConfig{ByName: true},
			schema: "region:utf8 qty:int64 price:float64 note:utf8",
			rows:   []string{"east,1,1.5,", "east,2,2.25,", "west,3,,late", "west,4,,"},
		},
		{
			name:   "parquet first: its order, int32 and float32 widened",
			files:  []string{"north.parquet", "east.csv", "west.ndjson"},
			cfg:    UnionConfig{ByName: true},
			schema: "qty:int64 region:utf8 price:float64 ts:timestamp[ms, tz=UTC] note:utf8",
			rows: []string{"1,east,1.5,,", "2,east,2.25,,", "3,west,,,late", "4,west,,,",
				"5,north,0.5,2024-01-02T09:40:00Z,", ",north,8.0,2024-01-02T09:40:00.25Z,"},
			cast: true,
		},
		{
			name:  "int and string do not widen",
			files: []string{"east.csv", "south.csv"},
			cfg:   UnionConfig{ByName: true},
			err:   `inputs.1: column "qty" is int64 in input "i0" but utf8 in input "i1", which do not widen into one type (cast one side with a project, or set widen_to_string: true to union them as text)`,
		},
		{
			name:   "widen_to_string: numbers as text",
			files:  []string{"east.csv", "south.csv", "north.parquet"},
			cfg:    UnionConfig{ByName: true, WidenToString: true},
			schema: "region:utf8 qty:utf8 price:float64 ts:timestamp[ms, tz=UTC]",
			rows: []string{"east,1,1.5,", "east,2,2.25,", "south,many,,", "south,7,,",
				"north,5,0.5,2024-01-02T09:40:00Z", "north,,8.0,2024-01-02T09:40:00.25Z"},
			cast: true,
		},
		{
			name:  "by position: different columns",
			files: []string{"east.csv", "west.ndjson"},
			err:   `column 3 of input "i1" is note utf8, but of "i0" it is price float64; by_name: true matches columns by name and widens types`,
		},
		{
			name:  "widen_to_string needs by_name",
			files: []string{"east.csv", "east.csv"},
			cfg:   UnionConfig{WidenToString: true},
			err:   `widen_to_string: widen_to_string needs by_name: true`,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mem := newMem()
			defer mem.AssertSize(t, 0)
			var nodes []*engine.Node
			var ids []string
			for i, f := range c.files {
				id := fmt.Sprintf("i%d", i)
				nodes = append(nodes, src(id, f))
				ids = append(ids, id)
			}
			cfg := c.cfg
			out := filepath.Join(t.TempDir(), "out.csv")
			nodes = append(nodes,
				&engine.Node{ID: "u", Kind: engine.KindTransform, Type: "union", Config: &cfg, Inputs: ids},
				&engine.Node{ID: "w", Kind: engine.KindSink, Type: "csv", Config: &CSVSinkConfig{Path: out}, ConfigFrom: engine.ConfigLiteral, Inputs: []string{"u"}})
			g := &engine.Graph{Name: t.Name(), Settings: engine.Settings{BatchRows: 1}, Nodes: nodes}
			p, err := engine.Compile(g, engine.CompileOptions{})
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("got %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var cols []string
			for _, f := range p.Schema("u").Fields() {
				cols = append(cols, f.Name+":"+f.Type.String())
			}
			if got := strings.Join(cols, " "); got != c.schema {
				t.Errorf("schema %s, want %s", got, c.schema)
			}
			sum, err := p.Run(context.Background(), engine.RunOptions{Alloc: mem})
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			var names []string
			for _, col := range cols {
				names = append(names, strings.SplitN(col, ":", 2)[0])
			}
			if want := strings.Join(names, ","); lines[0] != want {
				t.Errorf("header %q, want %q", lines[0], want)
			}
			got, want := lines[1:], slices.Clone(c.rows)
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("rows\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			u := sum.Op("u")
			if cast := u.Copies["union cast"]; (cast > 0) != c.cast || u.BytesCopied != cast {
				t.Errorf("copies %v, copied %d; want a union cast: %v", u.Copies, u.BytesCopied, c.cast)
			}
			// Every case has a column some input lacks: its nulls are new
			// bytes (created), never counted as copied.
			if u.BytesNew == 0 || u.BytesRef == 0 {
				t.Errorf("created %d, by reference %d: want both > 0", u.BytesNew, u.BytesRef)
			}
			if u.RowsOut != int64(len(c.rows)) {
				t.Errorf("rows out %d", u.RowsOut)
			}
		})
	}
}
