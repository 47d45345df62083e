package operators

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/zflowdev/zflow/engine"
)

// fileSinkCases are the file sinks, each writing to name in dir.
func fileSinkCases(dir string) []struct {
	name string
	spec engine.Spec
	cfg  any
} {
	return []struct {
		name string
		spec engine.Spec
		cfg  any
	}{
		{"parquet", ParquetSinkSpec(), &ParquetSinkConfig{Path: filepath.Join(dir, "o.parquet"), Compression: "snappy", RowGroupRows: 100}},
		{"arrow-file", ArrowSinkSpec(), &ArrowSinkConfig{Path: filepath.Join(dir, "o.arrow"), Format: "file", Compression: "zstd"}},
		{"arrow-stream", ArrowSinkSpec(), &ArrowSinkConfig{Path: filepath.Join(dir, "o.arrows"), Format: "stream", Compression: "none"}},
		{"csv", CSVSinkSpec(), &CSVSinkConfig{Path: filepath.Join(dir, "o.csv"), Header: true, Delimiter: ","}},
		{"ndjson", NDJSONSinkSpec(), &NDJSONSinkConfig{Path: filepath.Join(dir, "o.ndjson")}},
	}
}

// TestSinkAbort drives each file sink directly: Abort after Write, Abort
// after Close, Close without Commit, and Release before Abort (the order
// the executor uses on error) must all leave the directory empty.
func TestSinkAbort(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	gf, err := buildFactory(GenerateSpec(), testGenConfig(300))
	if err != nil {
		t.Fatal(err)
	}
	var scratch []uint32
	batch, err := gf.(*generateFactory).batch(mem, 0, 300, &scratch)
	if err != nil {
		t.Fatal(err)
	}
	defer batch.Release()

	for _, how := range []string{"write-abort", "close-abort", "release-abort", "abort-twice", "no-write-abort"} {
		dir := t.TempDir()
		for _, tc := range fileSinkCases(dir) {
			f, err := buildFactory(tc.spec, tc.cfg, batch.Schema())
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			op, err := f.New(testIC(mem, "out", tc.spec.Name, 0))
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			s := op.(engine.Sink)
			if how != "no-write-abort" {
				if err := s.Write(context.Background(), 0, batch); err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
			}
			switch how {
			case "close-abort":
				if err := s.Close(context.Background()); err != nil {
					t.Fatalf("%s: close: %v", tc.name, err)
				}
				// Closed but not committed: nothing under the final name.
				if _, err := os.Stat(sinkPath(tc.cfg)); !os.IsNotExist(err) {
					t.Errorf("%s: final file exists after Close, before Commit", tc.name)
				}
			case "release-abort":
				if r, ok := op.(engine.Releaser); ok {
					r.Release()
				}
			}
			s.Abort()
			if how == "abort-twice" {
				s.Abort()
			}
			if r, ok := op.(engine.Releaser); ok {
				r.Release()
			}
			if err := s.Commit(); err == nil {
				t.Errorf("%s/%s: Commit after Abort succeeded", how, tc.name)
			}
		}
		if names := dirNames(t, dir); len(names) != 0 {
			t.Errorf("%s: directory holds %v", how, names)
		}
	}
}

// TestSinkCommitWithoutClose checks that a sink refuses to publish a file
// it did not finish.
func TestSinkCommitWithoutClose(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	dir := t.TempDir()
	gf, _ := buildFactory(GenerateSpec(), testGenConfig(10))
	for _, tc := range fileSinkCases(dir) {
		f, err := buildFactory(tc.spec, tc.cfg, gf.Schema())
		if err != nil {
			t.Fatal(err)
		}
		op, err := f.New(testIC(mem, "out", tc.spec.Name, 0))
		if err != nil {
			t.Fatal(err)
		}
		if err := op.(engine.Sink).Commit(); err == nil {
			t.Errorf("%s: Commit before Close succeeded", tc.name)
		}
		op.(engine.Sink).Abort()
		if r, ok := op.(engine.Releaser); ok {
			r.Release()
		}
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("directory holds %v", names)
	}
}

// TestSinkFailedRun runs a pipeline whose source fails part way: the file
// sinks must not publish anything, and every byte must be freed.
func TestSinkFailedRun(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("a,b\n")
	for i := range 3000 {
		b.WriteString("1,x\n")
		if i == 2500 {
			b.WriteString("oops,x\n")
		}
	}
	bad := writeTestFile(t, dir, "bad.csv", b.String())
	outDir := filepath.Join(dir, "out")
	for _, tc := range fileSinkCases(outDir) {
		_, err := runGraph(t, mem, 100,
			&engine.Node{ID: "in", Kind: engine.KindSource, Type: "csv",
				Config: &CSVSourceConfig{Path: bad, Header: true, Delimiter: ",", NullValues: []string{""}, InferRows: 100}},
			&engine.Node{ID: "out", Kind: engine.KindSink, Type: tc.spec.Name, Config: tc.cfg, Inputs: []string{"in"}},
		)
		var oe *engine.OpError
		if !errors.As(err, &oe) || oe.Op != "in" {
			t.Fatalf("%s: want the csv source's error, got %v", tc.name, err)
		}
		if !strings.Contains(err.Error(), "line 2503") || !strings.Contains(err.Error(), `"oops"`) {
			t.Errorf("%s: error does not name the line and value: %v", tc.name, err)
		}
	}
	if names := dirNames(t, outDir); len(names) != 0 {
		t.Errorf("failed runs left %v", names)
	}
}

func TestSinkReplacesAtomically(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	dir := t.TempDir()
	path := writeTestFile(t, dir, "o.csv", "old\n")
	_, err := runGraph(t, mem, 0,
		&engine.Node{ID: "gen", Kind: engine.KindSource, Type: "generate",
			Config: &GenerateConfig{Rows: 2, Columns: []GenerateColumn{{Name: "n", Type: "int64", Sequence: true}}}},
		&engine.Node{ID: "out", Kind: engine.KindSink, Type: "csv", Config: &CSVSinkConfig{Path: path, Header: true, Delimiter: ","}, Inputs: []string{"gen"}},
	)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "n\n0\n1\n" {
		t.Errorf("got %q", b)
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{"o.csv"}) {
		t.Errorf("directory holds %v", names)
	}
}

func TestSinkConfigErrors(t *testing.T) {
	gf, _ := buildFactory(GenerateSpec(), testGenConfig(1))
	s := gf.Schema()
	for _, tc := range []struct {
		spec  engine.Spec
		cfg   any
		field string
	}{
		{ParquetSinkSpec(), &ParquetSinkConfig{Path: "x", Compression: "lzo", RowGroupRows: 1}, "compression"},
		{ParquetSinkSpec(), &ParquetSinkConfig{Path: "x", Compression: "snappy"}, "row_group_rows"},
		{ParquetSinkSpec(), &ParquetSinkConfig{Compression: "snappy", RowGroupRows: 1}, "path"},
		{ArrowSinkSpec(), &ArrowSinkConfig{Path: "x", Format: "feather"}, "format"},
		{ArrowSinkSpec(), &ArrowSinkConfig{Path: "x", Format: "file", Compression: "brotli"}, "compression"},
		{CSVSinkSpec(), &CSVSinkConfig{Path: "x", Delimiter: ";;"}, "delimiter"},
		{CSVSinkSpec(), &CSVSinkConfig{Path: "x", Delimiter: "→"}, "delimiter"},
		{StdoutSpec(), &StdoutConfig{Format: "yaml"}, "format"},
		{StdoutSpec(), &StdoutConfig{Format: "table", MaxRows: -1}, "max_rows"},
	} {
		_, err := buildFactory(tc.spec, tc.cfg, s)
		var fe *engine.FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%s %+v: want an error on %s, got %v", tc.spec.Name, tc.cfg, tc.field, err)
		}
	}
}
