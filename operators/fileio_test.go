package operators

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/internal/coltype"
	"github.com/zflowdev/zflow/internal/textenc"
)

// Helpers shared by the file source and sink tests.

func newMem() *memory.CheckedAllocator {
	return memory.NewCheckedAllocator(memory.NewGoAllocator())
}

func testIC(mem memory.Allocator, node, typ string, batchRows int) *engine.InstanceContext {
	s := engine.DefaultSettings()
	if batchRows > 0 {
		s.BatchRows = batchRows
	}
	return &engine.InstanceContext{
		Node: node, Type: typ, Index: 0, Count: 1, Alloc: mem,
		Logger: slog.New(slog.DiscardHandler), Ledger: engine.NewLedger(), Settings: s,
	}
}

// collector is an Emitter that keeps what it is given; stopAfter > 0 makes
// it return ErrStop once it holds that many batches.
type collector struct {
	recs      []arrow.RecordBatch
	stopAfter int
	err       error // returned by every Emit when set
}

func (c *collector) Emit(b arrow.RecordBatch) error {
	if c.err != nil {
		b.Release()
		return c.err
	}
	c.recs = append(c.recs, b)
	if c.stopAfter > 0 && len(c.recs) >= c.stopAfter {
		return engine.ErrStop
	}
	return nil
}

func (c *collector) release() {
	for _, r := range c.recs {
		r.Release()
	}
	c.recs = nil
}

func (c *collector) rows() int64 {
	var n int64
	for _, r := range c.recs {
		n += r.NumRows()
	}
	return n
}

// buildFactory compiles one node outside a graph.
func buildFactory(spec engine.Spec, cfg any, inputs ...*arrow.Schema) (engine.Factory, error) {
	return spec.Build(&engine.BuildContext{Node: "n", Inputs: inputs, Settings: engine.DefaultSettings()}, cfg)
}

// readSource builds and runs a source, returning its batches (the caller
// releases them) and its schema.
func readSourceAll(t *testing.T, mem memory.Allocator, spec engine.Spec, cfg any, batchRows int) (*collector, *arrow.Schema, error) {
	t.Helper()
	f, err := buildFactory(spec, cfg)
	if err != nil {
		return nil, nil, err
	}
	c, err := runSource(f, testIC(mem, "src", spec.Name, batchRows))
	return c, f.Schema(), err
}

// runSource runs one instance of the source factory f, made with ic, into
// a new collector. The caller releases the collector, which is nil when
// the instance could not be made.
func runSource(f engine.Factory, ic *engine.InstanceContext) (*collector, error) {
	op, err := f.New(ic)
	if err != nil {
		return nil, err
	}
	c := &collector{}
	err = op.(engine.Source).Run(context.Background(), c)
	if r, ok := op.(engine.Releaser); ok {
		r.Release()
	}
	return c, err
}

// rowsText renders batches as one JSON-ish line per row, for comparing
// data across formats.
func rowsText(recs []arrow.RecordBatch) []string {
	var out []string
	var buf []byte
	for _, r := range recs {
		cols := make([]textenc.Column, r.NumCols())
		for j := range cols {
			cols[j].Reset(r.Column(j))
		}
		for i := range int(r.NumRows()) {
			buf = buf[:0]
			for j := range cols {
				if j > 0 {
					buf = append(buf, '|')
				}
				buf = cols[j].AppendJSON(buf, i)
			}
			out = append(out, string(buf))
		}
	}
	return out
}

func schemaTypes(s *arrow.Schema) string {
	var parts []string
	for _, f := range s.Fields() {
		parts = append(parts, f.Name+":"+coltype.Name(f.Type))
	}
	return strings.Join(parts, ",")
}

// runGraph compiles and runs nodes on mem.
func runGraph(t *testing.T, mem memory.Allocator, batchRows int, nodes ...*engine.Node) (engine.Summary, error) {
	t.Helper()
	g := &engine.Graph{Name: t.Name(), Settings: engine.Settings{BatchRows: batchRows}, Nodes: nodes}
	p, err := engine.Compile(g, engine.CompileOptions{})
	if err != nil {
		return engine.Summary{}, err
	}
	return p.Run(context.Background(), engine.RunOptions{Alloc: mem})
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func writeTestFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// testGenConfig generates every generate type, with nulls and awkward
// strings.
func testGenConfig(rows int64) *GenerateConfig {
	return &GenerateConfig{
		Rows: rows, Seed: 42,
		Columns: []GenerateColumn{
			{Name: "id", Type: "int64", Sequence: true},
			{Name: "sym", Type: "string", Cardinality: 50, NullRatio: 0.1},
			{Name: "note", Type: "string", Values: []string{"plain", "a,b", `say "hi"`, "multi\nline", "日本", " padded ", "tab\there"}},
			{Name: "price", Type: "float64", Min: 1, Max: 500, NullRatio: 0.05},
			{Name: "qty", Type: "int32", Min: -1000, Max: 1000},
			{Name: "flag", Type: "bool", NullRatio: 0.2},
			{Name: "ts", Type: "timestamp", Start: "2024-01-02T09:30:00Z", Step: 1500000},
		},
	}
}

func TestColumnTypeEnum(t *testing.T) {
	if got := strings.Join(coltype.Names(), ","); got != columnTypeEnum {
		t.Fatalf("columnTypeEnum is stale:\n got %s\nwant %s", columnTypeEnum, got)
	}
}

func TestSpecsRegistered(t *testing.T) {
	for _, k := range []struct {
		kind engine.Kind
		name string
	}{
		{engine.KindSource, "generate"}, {engine.KindSource, "csv"}, {engine.KindSource, "ndjson"},
		{engine.KindSource, "parquet"}, {engine.KindSource, "arrow"},
		{engine.KindSink, "parquet"}, {engine.KindSink, "arrow"}, {engine.KindSink, "csv"},
		{engine.KindSink, "ndjson"}, {engine.KindSink, "stdout"}, {engine.KindSink, "discard"},
	} {
		s, err := engine.DefaultRegistry.Lookup(k.kind, k.name)
		if err != nil {
			t.Errorf("%s %s: %v", k.kind, k.name, err)
			continue
		}
		ps, err := engine.Params(s.NewConfig())
		if err != nil {
			t.Errorf("%s %s: params: %v", k.kind, k.name, err)
		}
		for _, p := range ps {
			if p.Doc == "" {
				t.Errorf("%s %s: parameter %s has no doc", k.kind, k.name, p.Name)
			}
		}
	}
}
