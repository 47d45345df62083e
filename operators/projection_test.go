package operators

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/zflowdev/zflow/engine"
)

// projectionInputs writes the generated rows as every file source reads
// them, in two Hive partitions (part=a, part=b) per format, and returns
// the directory of each format.
func projectionInputs(t *testing.T) map[string]string {
	t.Helper()
	dir := t.TempDir()
	dirs := map[string]string{}
	for _, format := range []string{"csv", "ndjson", "parquet", "arrow"} {
		dirs[format] = filepath.Join(dir, format)
		for _, part := range []string{"a", "b"} {
			d := filepath.Join(dirs[format], "part="+part)
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(d, "t."+format)
			var cfg any
			switch format {
			case "csv":
				cfg = &CSVSinkConfig{Path: path, Header: true, Delimiter: ","}
			case "ndjson":
				cfg = &NDJSONSinkConfig{Path: path}
			case "parquet":
				cfg = &ParquetSinkConfig{Path: path, Compression: "snappy", RowGroupRows: 128, Dictionary: "auto"}
			case "arrow":
				cfg = &ArrowSinkConfig{Path: path, Format: "file"}
			}
			writeGenerated(t, dir, 700, format, cfg)
		}
	}
	return dirs
}

// projectionSource is the config of a source of format reading dir with
// a filename column, Hive partitions and pushdown as given.
func projectionSource(t *testing.T, format, dir string, pushdown bool) any {
	t.Helper()
	spec, err := engine.DefaultRegistry.Lookup(engine.KindSource, format)
	if err != nil {
		t.Fatal(err)
	}
	cfg := spec.NewConfig()
	switch c := cfg.(type) {
	case *CSVSourceConfig:
		c.Path, c.Filename, c.Pushdown = dir, "true", pushdown
	case *NDJSONSourceConfig:
		c.Path, c.Filename, c.Pushdown = dir, "true", pushdown
	case *ParquetSourceConfig:
		c.Path, c.Filename, c.Pushdown = dir, "true", pushdown
	case *ArrowSourceConfig:
		c.Path, c.Filename, c.Pushdown = dir, "true", pushdown
	}
	return cfg
}

// TestProjectionPushdown: every file source, in pipelines whose operators
// read fewer columns than it has, reads only those (the plan says how
// many), and every output is byte for byte the one of pushdown: false.
func TestProjectionPushdown(t *testing.T) {
	defer goleak.VerifyNone(t)
	dirs := projectionInputs(t)
	type node struct {
		id, typ string
		inputs  []string
		cfg     any
	}
	src := []string{"src"}
	pipelines := []struct {
		name      string
		nodes     []node
		reads     string // the source's columns line with pushdown (of 9: 7 generated, part, filename)
		unordered bool
	}{
		{"a filter on columns not in the output", []node{
			{"f", "filter", src, &FilterConfig{Where: "qty > 10 AND part = 'b'"}},
			{"p", "project", []string{"f"}, &ProjectConfig{Columns: []string{"sym", "price AS p"}}},
		}, "columns: 4 of 9 (projection: sym, price, qty, part)", false},
		{"star with drop and a computed column", []node{
			{"f", "filter", src, &FilterConfig{Where: "id % 3 = 0"}},
			{"p", "project", []string{"f"}, &ProjectConfig{Columns: []string{"*", "price * 2 AS dbl"}, Drop: []string{"note", "filename"}}},
		}, "columns: 7 of 9 (projection: id, sym, price, qty, flag, ts, part)", false},
		{"renamed columns and the file name", []node{
			{"p", "project", src, &ProjectConfig{Columns: []string{"filename", "id AS ident", "sym"}, Rename: map[string]string{"sym": "symbol"}}},
		}, "columns: 3 of 9 (projection: id, sym, filename)", false},
		{"a limit, then one column", []node{
			{"l", "limit", src, &LimitConfig{Count: 333}},
			{"p", "project", []string{"l"}, &ProjectConfig{Columns: []string{"ts"}}},
		}, "columns: 1 of 9 (projection: ts)", false},
		{"a union of two branches", []node{
			{"f1", "filter", src, &FilterConfig{Where: "flag"}},
			{"f2", "filter", src, &FilterConfig{Where: "NOT flag"}},
			{"u", "union", []string{"f1", "f2"}, &UnionConfig{}},
			{"p", "project", []string{"u"}, &ProjectConfig{Columns: []string{"id", "part"}}},
		}, "columns: 3 of 9 (projection: id, flag, part)", true},
	}
	type variant struct {
		format  string
		threads int    // 1: the text sources parse serially
		io      string // the backend
	}
	var variants []variant
	for format := range dirs {
		variants = append(variants, variant{format, 1, "auto"}, variant{format, 2, "auto"})
	}
	variants = append(variants, variant{"arrow", 2, "mmap"}, variant{"parquet", 2, "mmap"})
	for _, v := range variants {
		format, dir := v.format, dirs[v.format]
		for _, pl := range pipelines {
			t.Run(fmt.Sprintf("%s/threads=%d/io=%s/%s", format, v.threads, v.io, pl.name), func(t *testing.T) {
				mem := newMem()
				defer mem.AssertSize(t, 0)
				var outs [2][]byte
				var srcBytes [2]int64 // what the source emitted
				for k, push := range []bool{false, true} {
					out := filepath.Join(t.TempDir(), "out.csv")
					cfg := projectionSource(t, format, dir, push)
					reflect.ValueOf(cfg).Elem().FieldByName("IO").SetString(v.io)
					g := &engine.Graph{Name: "proj", Settings: engine.Settings{BatchRows: 100, Threads: v.threads}, Nodes: []*engine.Node{
						{ID: "src", Kind: engine.KindSource, Type: format, Config: cfg},
					}}
					last := ""
					for _, n := range pl.nodes {
						g.Nodes = append(g.Nodes, &engine.Node{ID: n.id, Kind: engine.KindTransform, Type: n.typ, Inputs: n.inputs, Config: n.cfg})
						last = n.id
					}
					g.Nodes = append(g.Nodes, &engine.Node{ID: "out", Kind: engine.KindSink, Type: "csv", Inputs: []string{last},
						Config: &CSVSinkConfig{Path: out, Header: true, Delimiter: ","}})
					p, err := engine.Compile(g, engine.CompileOptions{})
					if err != nil {
						t.Fatal(err)
					}
					var plan strings.Builder
					p.WriteText(&plan)
					if got := strings.Contains(plan.String(), pl.reads); got != push {
						t.Errorf("pushdown %v: the plan shows %q: %v\n%s", push, pl.reads, got, plan.String())
					}
					sum, err := p.Run(context.Background(), engine.RunOptions{Alloc: mem})
					if err != nil {
						t.Fatal(err)
					}
					srcBytes[k] = sum.Op("src").BytesOut
					if outs[k], err = os.ReadFile(out); err != nil {
						t.Fatal(err)
					}
				}
				if srcBytes[1] >= srcBytes[0] {
					t.Errorf("the source emitted %d bytes with pushdown, %d without", srcBytes[1], srcBytes[0])
				}
				if pl.unordered { // a union emits in arrival order
					for k := range outs {
						lines := strings.Split(string(outs[k]), "\n")
						slices.Sort(lines)
						outs[k] = []byte(strings.Join(lines, "\n"))
					}
				}
				if !bytes.Equal(outs[0], outs[1]) || len(outs[0]) < 100 {
					t.Errorf("the output differs with pushdown (%d bytes against %d):\n%.300s\n---\n%.300s", len(outs[1]), len(outs[0]), outs[1], outs[0])
				}
			})
		}
	}
}

// TestProjectionFanOut: a source feeding two branches reads the columns
// either reads, and each branch gets what it got without pushdown.
func TestProjectionFanOut(t *testing.T) {
	defer goleak.VerifyNone(t)
	dirs := projectionInputs(t)
	for _, format := range []string{"parquet", "csv"} {
		mem := newMem()
		var outs [2][2][]byte
		for k, push := range []bool{false, true} {
			tmp := t.TempDir()
			g := &engine.Graph{Name: "fan", Settings: engine.Settings{BatchRows: 100}, Nodes: []*engine.Node{
				{ID: "src", Kind: engine.KindSource, Type: format, Config: projectionSource(t, format, dirs[format], push)},
				{ID: "ids", Kind: engine.KindTransform, Type: "project", Inputs: []string{"src"}, Config: &ProjectConfig{Columns: []string{"id"}}},
				{ID: "big", Kind: engine.KindTransform, Type: "filter", Inputs: []string{"src"}, Config: &FilterConfig{Where: "price > 100"}},
				{ID: "syms", Kind: engine.KindTransform, Type: "project", Inputs: []string{"big"}, Config: &ProjectConfig{Columns: []string{"sym", "part"}}},
				{ID: "o1", Kind: engine.KindSink, Type: "csv", Inputs: []string{"ids"}, Config: &CSVSinkConfig{Path: filepath.Join(tmp, "1.csv"), Header: true, Delimiter: ","}},
				{ID: "o2", Kind: engine.KindSink, Type: "csv", Inputs: []string{"syms"}, Config: &CSVSinkConfig{Path: filepath.Join(tmp, "2.csv"), Header: true, Delimiter: ","}},
			}}
			p, err := engine.Compile(g, engine.CompileOptions{})
			if err != nil {
				t.Fatal(err)
			}
			const want = "4 of 9 (projection: id, sym, price, part)"
			if got := p.Describe().Nodes[0].Columns; strings.HasPrefix(got, want) != push {
				t.Errorf("%s, pushdown %v: columns %q, want %q", format, push, got, want)
			}
			if _, err := p.Run(context.Background(), engine.RunOptions{Alloc: mem}); err != nil {
				t.Fatal(err)
			}
			for i, name := range []string{"1.csv", "2.csv"} {
				if outs[k][i], err = os.ReadFile(filepath.Join(tmp, name)); err != nil {
					t.Fatal(err)
				}
			}
		}
		for i := range 2 {
			if !bytes.Equal(outs[0][i], outs[1][i]) {
				t.Errorf("%s: branch %d differs with pushdown", format, i+1)
			}
		}
		mem.AssertSize(t, 0)
	}
}

// TestProjectionErrors: a column a pipeline names that the source does not
// have is reported where it is named, with the suggestions of the whole
// schema (the first build sees every column); and a CSV value that does
// not parse stops the run only when its column is read.
func TestProjectionErrors(t *testing.T) {
	defer goleak.VerifyNone(t)
	dirs := projectionInputs(t)
	g := &engine.Graph{Name: "bad", Nodes: []*engine.Node{
		{ID: "src", Kind: engine.KindSource, Type: "parquet", Config: projectionSource(t, "parquet", dirs["parquet"], true)},
		{ID: "f", Kind: engine.KindTransform, Type: "filter", Inputs: []string{"src"}, Config: &FilterConfig{Where: "qty > 1"}},
		{ID: "p", Kind: engine.KindTransform, Type: "project", Inputs: []string{"f"}, Config: &ProjectConfig{Columns: []string{"id", "notes"}}},
		{ID: "out", Kind: engine.KindSink, Type: "discard", Inputs: []string{"p"}},
	}}
	_, err := engine.Compile(g, engine.CompileOptions{})
	if err == nil || !strings.Contains(err.Error(), `p.columns.1@0: unknown column "notes", did you mean "note"?`) {
		t.Errorf("error %v", err)
	}

	dir := t.TempDir()
	path := filepath.Join(dir, "bad.csv")
	if err := os.WriteFile(path, []byte("id,qty\n1,5\n2,x\n3,7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, push := range []bool{true, false} {
		cfg := &CSVSourceConfig{Path: path, Header: true, Delimiter: ",", NullValues: []string{""}, HivePartitioning: "auto", Pushdown: push,
			Columns: []ColumnDef{{Name: "id", Type: "int64"}, {Name: "qty", Type: "int64"}}, FileIO: defaultFileIO()}
		out := filepath.Join(dir, "out.csv")
		mem := newMem()
		_, err := runGraph(t, mem, 100,
			&engine.Node{ID: "src", Kind: engine.KindSource, Type: "csv", Config: cfg},
			&engine.Node{ID: "p", Kind: engine.KindTransform, Type: "project", Inputs: []string{"src"}, Config: &ProjectConfig{Columns: []string{"id"}}},
			&engine.Node{ID: "out", Kind: engine.KindSink, Type: "csv", Inputs: []string{"p"}, Config: &CSVSinkConfig{Path: out, Header: true, Delimiter: ","}},
		)
		if push && err != nil {
			t.Errorf("pushdown: qty is not read, yet: %v", err)
		}
		if !push && (err == nil || !strings.Contains(err.Error(), `line 3, column "qty": cannot parse "x"`)) {
			t.Errorf("pushdown false: error %v", err)
		}
		mem.AssertSize(t, 0)
	}
}
