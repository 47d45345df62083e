package operators

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/zflowdev/zflow/engine"
)

// TestRoundTrip writes generated data with each file sink through a real
// run, reads it back with the matching source and compares every value.
func TestRoundTrip(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	gen := testGenConfig(3000)
	c, genSchema, err := readSourceAll(t, mem, GenerateSpec(), gen, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := rowsText(c.recs)
	c.release()

	textTypes := map[string]string{"qty": "int32"} // int32 reads back as int64 unless told
	for _, tc := range []struct {
		name    string
		file    string
		sink    any
		sinkTyp string
		source  func(path string) (engine.Spec, any)
		copies  string
	}{
		{"parquet-snappy", "o.parquet", &ParquetSinkConfig{Compression: "snappy", RowGroupRows: 1000, Dictionary: "always"}, "parquet",
			func(p string) (engine.Spec, any) { return ParquetSourceSpec(), &ParquetSourceConfig{Path: p} }, "parquet encode"},
		{"parquet-zstd", "o.parquet", &ParquetSinkConfig{Compression: "zstd", RowGroupRows: 1 << 20}, "parquet",
			func(p string) (engine.Spec, any) { return ParquetSourceSpec(), &ParquetSourceConfig{Path: p} }, "parquet encode"},
		{"parquet-gzip", "o.parquet", &ParquetSinkConfig{Compression: "gzip", RowGroupRows: 700, Dictionary: "never"}, "parquet",
			func(p string) (engine.Spec, any) { return ParquetSourceSpec(), &ParquetSourceConfig{Path: p} }, "parquet encode"},
		{"parquet-none", "o.parquet", &ParquetSinkConfig{Compression: "none", RowGroupRows: 1 << 20}, "parquet",
			func(p string) (engine.Spec, any) { return ParquetSourceSpec(), &ParquetSourceConfig{Path: p} }, "parquet encode"},
		{"arrow-file", "o.arrow", &ArrowSinkConfig{Format: "file", Compression: "none"}, "arrow",
			func(p string) (engine.Spec, any) {
				return ArrowSourceSpec(), &ArrowSourceConfig{Path: p, Format: "auto", Validate: "full"}
			}, "arrow ipc write"},
		{"arrow-stream-zstd", "o.arrows", &ArrowSinkConfig{Format: "stream", Compression: "zstd"}, "arrow",
			func(p string) (engine.Spec, any) {
				return ArrowSourceSpec(), &ArrowSourceConfig{Path: p, Format: "auto", Validate: "full"}
			}, "arrow ipc write"},
		{"arrow-file-lz4", "o.arrow", &ArrowSinkConfig{Format: "file", Compression: "lz4"}, "arrow",
			func(p string) (engine.Spec, any) {
				return ArrowSourceSpec(), &ArrowSourceConfig{Path: p, Format: "file", Validate: "basic"}
			}, "arrow ipc write"},
		{"csv", "o.csv", &CSVSinkConfig{Header: true, Delimiter: ","}, "csv",
			func(p string) (engine.Spec, any) {
				cfg := CSVSourceSpec().NewConfig().(*CSVSourceConfig)
				cfg.Path, cfg.Types, cfg.InferRows = p, textTypes, 5000
				return CSVSourceSpec(), cfg
			}, "csv encode"},
		{"csv-tab", "o.tsv", &CSVSinkConfig{Header: true, Delimiter: "\t"}, "csv",
			func(p string) (engine.Spec, any) {
				cfg := CSVSourceSpec().NewConfig().(*CSVSourceConfig)
				cfg.Path, cfg.Types, cfg.Delimiter = p, textTypes, "tab"
				return CSVSourceSpec(), cfg
			}, "csv encode"},
		{"ndjson", "o.ndjson", &NDJSONSinkConfig{}, "ndjson",
			func(p string) (engine.Spec, any) {
				return NDJSONSourceSpec(), &NDJSONSourceConfig{Path: p, Types: textTypes, InferRows: 1000}
			}, "ndjson encode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "sub", tc.file) // the sink makes "sub"
			setSinkPath(tc.sink, path)
			sum, err := runGraph(t, mem, 512,
				&engine.Node{ID: "gen", Kind: engine.KindSource, Type: "generate", Config: gen},
				&engine.Node{ID: "out", Kind: engine.KindSink, Type: tc.sinkTyp, Config: tc.sink, Inputs: []string{"gen"}},
			)
			if err != nil {
				t.Fatal(err)
			}
			if got := sum.Op("out").Copies[tc.copies]; got <= 0 {
				t.Errorf("ledger: %q = %d, want > 0 (copies %v)", tc.copies, got, sum.Op("out").Copies)
			}
			if names := dirNames(t, filepath.Dir(path)); !slices.Equal(names, []string{tc.file}) {
				t.Errorf("directory holds %v, want only %s", names, tc.file)
			}
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != 0o644 {
				t.Errorf("mode %v", st.Mode().Perm())
			}
			spec, cfg := tc.source(path)
			c, schema, err := readSourceAll(t, mem, spec, cfg, 1000)
			if err != nil {
				t.Fatal(err)
			}
			defer c.release()
			if got, want := schemaTypes(schema), schemaTypes(genSchema); got != want {
				t.Errorf("schema\n got %s\nwant %s", got, want)
			}
			for _, r := range c.recs {
				if !r.Schema().Equal(schema) {
					t.Fatalf("batch schema %v differs from the compiled %v", r.Schema(), schema)
				}
				if r.NumRows() > 1000 {
					t.Errorf("batch of %d rows, batch_rows is 1000", r.NumRows())
				}
			}
			got := rowsText(c.recs)
			if len(got) != len(want) {
				t.Fatalf("%d rows, want %d", len(got), len(want))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("row %d:\n got %s\nwant %s", i, got[i], want[i])
				}
			}
		})
	}
}

func setSinkPath(cfg any, path string) {
	switch c := cfg.(type) {
	case *ParquetSinkConfig:
		c.Path = path
	case *ArrowSinkConfig:
		c.Path = path
	case *CSVSinkConfig:
		c.Path = path
	case *NDJSONSinkConfig:
		c.Path = path
	}
}

// TestEmptyOutputs checks that sinks given no rows still write a readable
// file with the schema.
func TestEmptyOutputs(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	gen := &GenerateConfig{Rows: 0, Columns: []GenerateColumn{{Name: "a", Type: "int64"}, {Name: "b", Type: "string"}}}
	dir := t.TempDir()
	for _, tc := range []struct {
		typ  string
		cfg  any
		read func(p string) (engine.Spec, any)
	}{
		{"parquet", &ParquetSinkConfig{Path: filepath.Join(dir, "e.parquet"), Compression: "snappy", RowGroupRows: 10},
			func(p string) (engine.Spec, any) { return ParquetSourceSpec(), &ParquetSourceConfig{Path: p} }},
		{"arrow", &ArrowSinkConfig{Path: filepath.Join(dir, "e.arrow"), Format: "file"},
			func(p string) (engine.Spec, any) {
				return ArrowSourceSpec(), &ArrowSourceConfig{Path: p, Format: "auto", Validate: "full"}
			}},
		{"arrow", &ArrowSinkConfig{Path: filepath.Join(dir, "e.arrows"), Format: "stream"},
			func(p string) (engine.Spec, any) {
				return ArrowSourceSpec(), &ArrowSourceConfig{Path: p, Format: "auto", Validate: "full"}
			}},
		{"csv", &CSVSinkConfig{Path: filepath.Join(dir, "e.csv"), Header: true, Delimiter: ","},
			func(p string) (engine.Spec, any) {
				return CSVSourceSpec(), &CSVSourceConfig{Path: p, Header: true, Delimiter: ",", InferRows: 10}
			}},
	} {
		_, err := runGraph(t, mem, 0,
			&engine.Node{ID: "gen", Kind: engine.KindSource, Type: "generate", Config: gen},
			&engine.Node{ID: "out", Kind: engine.KindSink, Type: tc.typ, Config: tc.cfg, Inputs: []string{"gen"}},
		)
		if err != nil {
			t.Fatalf("%s: %v", tc.typ, err)
		}
		spec, cfg := tc.read(sinkPath(tc.cfg))
		c, schema, err := readSourceAll(t, mem, spec, cfg, 0)
		if err != nil {
			t.Fatalf("%s: read back: %v", tc.typ, err)
		}
		if c.rows() != 0 || schema.NumFields() != 2 || schema.Field(1).Name != "b" {
			t.Errorf("%s: %d rows, schema %v", tc.typ, c.rows(), schema)
		}
		c.release()
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "e.csv")); string(b) != "a,b\n" {
		t.Errorf("empty csv: %q", b)
	}
}

func sinkPath(cfg any) string {
	switch c := cfg.(type) {
	case *ParquetSinkConfig:
		return c.Path
	case *ArrowSinkConfig:
		return c.Path
	case *CSVSinkConfig:
		return c.Path
	case *NDJSONSinkConfig:
		return c.Path
	}
	return ""
}
