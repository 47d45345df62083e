package operators

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/engine"
)

// mkTree writes files (name -> content) under dir.
func mkTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestResolvePaths(t *testing.T) {
	dir := t.TempDir()
	mkTree(t, dir, map[string]string{
		"a.csv": "", "b.csv": "", "c.txt": "", ".hidden.csv": "", "_SUCCESS": "",
		"sub/d.csv": "", "sub/deep/e.csv": "", "sub/_tmp/f.csv": "", ".git/g.csv": "",
		"k=1/x.csv": "", "k=2/y.csv": "", "only/_SUCCESS": "", "only/.crc": "",
	})
	rel := func(ps []string) []string {
		out := make([]string, len(ps))
		for i, p := range ps {
			r, _ := filepath.Rel(dir, p)
			out[i] = filepath.ToSlash(r)
		}
		return out
	}
	j := func(p string) string { return filepath.Join(dir, p) }
	for _, tc := range []struct {
		name    string
		entries []string
		want    []string
		err     string
	}{
		{"glob", []string{j("*.csv")}, []string{"a.csv", "b.csv"}, ""},
		{"double star", []string{j("**/*.csv")}, []string{"a.csv", "b.csv", "k=1/x.csv", "k=2/y.csv", "sub/_tmp/f.csv", "sub/d.csv", "sub/deep/e.csv"}, ""},
		{"star matches directories", []string{j("*/*.csv")}, []string{"k=1/x.csv", "k=2/y.csv", "sub/d.csv"}, ""},
		{"double star in the middle", []string{j("sub/**/e.csv")}, []string{"sub/deep/e.csv"}, ""},
		{"directory", []string{dir}, []string{"a.csv", "b.csv", "c.txt", "k=1/x.csv", "k=2/y.csv", "sub/d.csv", "sub/deep/e.csv"}, ""},
		{"list keeps its order", []string{j("b.csv"), j("a.csv"), j("sub")}, []string{"b.csv", "a.csv", "sub/d.csv", "sub/deep/e.csv"}, ""},
		{"hidden named explicitly", []string{j(".*.csv")}, []string{".hidden.csv"}, ""},
		{"no match", []string{j("*.parquet")}, nil, "no file matches"},
		{"no match under a missing directory", []string{j("nope/*.csv")}, nil, "no file matches"},
		{"bad pattern", []string{j("[.csv")}, nil, "bad pattern"},
		{"star star glued", []string{j("a**/x.csv")}, nil, "** must be a whole path element"},
		{"missing file", []string{j("none.csv")}, nil, "no such file"},
		{"empty directory", []string{j("only")}, nil, "holds no files to read"},
		{"stdin with files", []string{"-", j("a.csv")}, nil, "cannot be listed with other paths"},
		{"empty entry", []string{""}, nil, "is empty"},
		{"nothing", nil, nil, "is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := resolvePaths("csv", tc.entries)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, want an error containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := rel(s.files); !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestHivePairs(t *testing.T) {
	for _, tc := range []struct {
		root, file string
		keys       []string
		vals       []string // "<nil>" for null
	}{
		{"out", "out/k=1/j=a%2Fb/part-0.parquet", []string{"k", "j"}, []string{"1", "a/b"}},
		{"out", "out/k=__HIVE_DEFAULT_PARTITION__/part-0.csv", []string{"k"}, []string{"<nil>"}},
		{"", "k=%3D%25/x.csv", []string{"k"}, []string{"=%"}},
		{"out", "out/plain/x.csv", nil, nil},
	} {
		keys, vals := hivePairs(tc.root, tc.file)
		var got []string
		for _, v := range vals {
			if v == nil {
				got = append(got, "<nil>")
			} else {
				got = append(got, *v)
			}
		}
		if !slices.Equal(keys, tc.keys) || !slices.Equal(got, tc.vals) {
			t.Errorf("%s: got %v %v, want %v %v", tc.file, keys, got, tc.keys, tc.vals)
		}
	}
}

// TestMultiFileSources reads the same rows split over several files, with
// the file name and Hive partition columns, from each file source.
func TestMultiFileSources(t *testing.T) {
	dir := t.TempDir()
	mkTree(t, dir, map[string]string{
		"csv/day=2024-01-01/k=1/a.csv":    "x,s\n1,a\n2,b\n",
		"csv/day=2024-01-02/k=2/b.csv":    "x,s\n3,c\n",
		"csv/day=2024-01-02/k=2/_SUCCESS": "",
		"nd/one.ndjson":                   "{\"x\":1,\"s\":\"a\"}\n",
		"nd/two.ndjson":                   "{\"x\":2,\"s\":\"b\"}\n{\"x\":3,\"s\":\"c\"}\n",
	})
	mem := newMem()
	defer mem.AssertSize(t, 0)
	for _, tc := range []struct {
		name  string
		spec  engine.Spec
		cfg   any
		types string
		rows  []string
	}{
		{"csv directory with hive keys", CSVSourceSpec(), func() any {
			c := csvCfg(filepath.Join(dir, "csv"))
			c.Filename = "true"
			return c
		}(), "x:int64,s:string,day:date32,k:int64,filename:string", []string{
			`1|"a"|"2024-01-01"|1|"` + filepath.Join(dir, "csv/day=2024-01-01/k=1/a.csv") + `"`,
			`2|"b"|"2024-01-01"|1|"` + filepath.Join(dir, "csv/day=2024-01-01/k=1/a.csv") + `"`,
			`3|"c"|"2024-01-02"|2|"` + filepath.Join(dir, "csv/day=2024-01-02/k=2/b.csv") + `"`,
		}},
		{"csv glob without hive", CSVSourceSpec(), func() any {
			c := csvCfg(filepath.Join(dir, "csv/**/*.csv"))
			c.HivePartitioning = "false"
			return c
		}(), "x:int64,s:string", []string{`1|"a"`, `2|"b"`, `3|"c"`}},
		{"ndjson list, named file column", NDJSONSourceSpec(), &NDJSONSourceConfig{
			Files:    []string{filepath.Join(dir, "nd/two.ndjson"), filepath.Join(dir, "nd/one.ndjson")},
			Filename: "src", InferRows: 10, UnknownKeys: "auto", HivePartitioning: "auto",
		}, "x:int64,s:string,src:string", []string{
			`2|"b"|"` + filepath.Join(dir, "nd/two.ndjson") + `"`,
			`3|"c"|"` + filepath.Join(dir, "nd/two.ndjson") + `"`,
			`1|"a"|"` + filepath.Join(dir, "nd/one.ndjson") + `"`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, schema, err := readSourceAll(t, mem, tc.spec, tc.cfg, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer c.release()
			if got := schemaTypes(schema); got != tc.types {
				t.Errorf("schema %s, want %s", got, tc.types)
			}
			if got := rowsText(c.recs); !slices.Equal(got, tc.rows) {
				t.Errorf("rows\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.rows, "\n"))
			}
		})
	}
}

// TestMultiFileParquetArrow writes two parquet and two arrow files with the
// sinks and reads them back as one source, in parallel too.
func TestMultiFileParquetArrow(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"p=1", "p=2"} {
		os.MkdirAll(filepath.Join(dir, "pq", n), 0o755)
		writeGenerated(t, dir, 500, "parquet", &ParquetSinkConfig{Path: filepath.Join(dir, "pq", n, "data.parquet"), Compression: "snappy", RowGroupRows: 100, Dictionary: "auto"})
		writeGenerated(t, dir, 300, "arrow", &ArrowSinkConfig{Path: filepath.Join(dir, "ar", n+".arrow"), Format: "file", Compression: "none"})
	}
	writeGenerated(t, dir, 200, "arrow", &ArrowSinkConfig{Path: filepath.Join(dir, "ar", "p=3.arrows"), Format: "stream", Compression: "none"})
	mem := newMem()
	defer mem.AssertSize(t, 0)
	for _, tc := range []struct {
		name string
		spec engine.Spec
		cfg  any
		rows int64
		last string
	}{
		{"parquet directory", ParquetSourceSpec(), &ParquetSourceConfig{Path: filepath.Join(dir, "pq"), HivePartitioning: "auto"}, 1000, "p:int64"},
		{"arrow files and a stream", ArrowSourceSpec(), &ArrowSourceConfig{Path: filepath.Join(dir, "ar", "*"), Format: "auto", Validate: "full", HivePartitioning: "auto", Filename: "true"}, 800, "filename:string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := buildFactory(tc.spec, tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasSuffix(schemaTypes(f.Schema()), tc.last) {
				t.Errorf("schema %s", schemaTypes(f.Schema()))
			}
			for _, par := range []int{1, 3} {
				var rows int64
				for i := range par {
					ic := testIC(mem, "src", tc.spec.Name, 0)
					ic.Index, ic.Count = i, par
					c, err := runSource(f, ic)
					if c != nil {
						rows += c.rows()
						c.release()
					}
					if err != nil {
						t.Fatal(err)
					}
				}
				if rows != tc.rows {
					t.Errorf("parallelism %d: %d rows, want %d", par, rows, tc.rows)
				}
			}
		})
	}
}

// TestMultiFileErrors: every file must have the first one's columns, and
// the errors name both files and the column.
func TestMultiFileErrors(t *testing.T) {
	dir := t.TempDir()
	mkTree(t, dir, map[string]string{
		"names/a.csv": "x,y\n1,2\n", "names/b.csv": "x,z\n1,2\n",
		"count/a.csv": "x,y\n1,2\n", "count/b.csv": "x\n1\n",
		"hive/k=1/a.csv": "x\n1\n", "hive/b.csv": "x\n2\n",
		"clash/x=1/a.csv": "x\n1\n",
		"late/a.csv":      "x\n1\n", "late/b.csv": "x\nnope\n",
	})
	writeGenerated(t, dir, 10, "parquet", &ParquetSinkConfig{Path: filepath.Join(dir, "pq", "a.parquet"), Compression: "snappy", RowGroupRows: 100, Dictionary: "auto"})
	writeGenerated(t, dir, 10, "csv", &CSVSinkConfig{Path: filepath.Join(dir, "pq", "b.csv"), Header: true, Delimiter: ","})
	os.Rename(filepath.Join(dir, "pq", "b.csv"), filepath.Join(dir, "pq", "b.parquet"))
	mem := newMem()
	defer mem.AssertSize(t, 0)
	for _, tc := range []struct {
		name string
		spec engine.Spec
		cfg  any
		err  string
	}{
		{"column names differ", CSVSourceSpec(), csvCfg(filepath.Join(dir, "names")),
			`csv: column 2 is "z" in ` + filepath.Join(dir, "names/b.csv") + ` but "y" in ` + filepath.Join(dir, "names/a.csv") + ` (the first file`},
		{"column count differs", CSVSourceSpec(), csvCfg(filepath.Join(dir, "count", "*.csv")),
			filepath.Join(dir, "count/b.csv") + ` has 1 columns, but ` + filepath.Join(dir, "count/a.csv") + ` (the first file, which sets the columns) has 2`},
		{"hive keys differ", CSVSourceSpec(), func() any { c := csvCfg(filepath.Join(dir, "hive")); c.HivePartitioning = "true"; return c }(),
			filepath.Join(dir, "hive/b.csv") + ` has no key=value directories under ` + filepath.Join(dir, "hive")},
		{"hive keys differ later", CSVSourceSpec(), func() any {
			c := csvCfg(filepath.Join(dir, "hive", "k=1", "a.csv"))
			c.Files = []string{filepath.Join(dir, "hive", "*.csv")}
			c.HivePartitioning = "true"
			return c
		}(), "a.csv is partitioned by k, but " + filepath.Join(dir, "hive/b.csv") + " by nothing"},
		{"hive key is a column", CSVSourceSpec(), csvCfg(filepath.Join(dir, "clash")), `partition key "x" is also a column`},
		{"filename clashes", CSVSourceSpec(), func() any { c := csvCfg(filepath.Join(dir, "late")); c.Filename = "x"; return c }(), `column "x" already exists`},
		{"a later file's value", CSVSourceSpec(), csvCfg(filepath.Join(dir, "late")), filepath.Join(dir, "late/b.csv") + `: line 2, column "x"`},
		{"parquet among others", ParquetSourceSpec(), &ParquetSourceConfig{Path: filepath.Join(dir, "pq"), HivePartitioning: "auto"}, filepath.Join(dir, "pq/b.parquet") + " is not a Parquet file"},
		{"parquet from stdin", ParquetSourceSpec(), &ParquetSourceConfig{Path: "-", HivePartitioning: "auto"}, "parquet: cannot read standard input: a Parquet file keeps its schema and row group index in a footer"},
		{"glob matches nothing", ParquetSourceSpec(), &ParquetSourceConfig{Path: filepath.Join(dir, "*.parquet"), HivePartitioning: "auto"}, `parquet: no file matches "` + filepath.Join(dir, "*.parquet") + `"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := readSourceAll(t, mem, tc.spec, tc.cfg, 0)
			if c != nil {
				c.release()
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("got %v\nwant an error containing %q", err, tc.err)
			}
		})
	}
}

// TestStdinSources reads csv (plain and gzip), ndjson and an Arrow stream
// from a non-seekable standard input supplied by the caller.
func TestStdinSources(t *testing.T) {
	dir := t.TempDir()
	stream := writeGenerated(t, dir, 300, "arrow", &ArrowSinkConfig{Path: filepath.Join(dir, "s.arrows"), Format: "stream", Compression: "none"})
	streamBytes, err := os.ReadFile(stream)
	if err != nil {
		t.Fatal(err)
	}
	gz, err := os.ReadFile("testdata/compressed/trades.csv.gz")
	if err != nil {
		t.Skip("no gzip fixture:", err)
	}
	mem := newMem()
	defer mem.AssertSize(t, 0)
	for _, tc := range []struct {
		name  string
		spec  engine.Spec
		cfg   any
		input []byte
		rows  int64
		types string
	}{
		{"csv", CSVSourceSpec(), csvCfg("-"), []byte("a,b\n1,x\n2,y\n"), 2, "a:int64,b:string"},
		{"csv gzip", CSVSourceSpec(), csvCfg("-"), gz, -1, ""},
		{"ndjson", NDJSONSourceSpec(), &NDJSONSourceConfig{Path: "-", InferRows: 5, UnknownKeys: "auto", Filename: "true", HivePartitioning: "auto"}, []byte("{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n"), 3, "a:int64,filename:string"},
		{"arrow stream", ArrowSourceSpec(), &ArrowSourceConfig{Path: "-", Format: "auto", Validate: "full", HivePartitioning: "auto"}, streamBytes, 300, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// a pipe is not seekable
			in := &onlyReader{r: bytes.NewReader(tc.input)}
			st := engine.NewStdin(in)
			f, err := tc.spec.Build(&engine.BuildContext{Node: "n", Settings: engine.DefaultSettings(), Stdin: st}, tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if tc.types != "" && schemaTypes(f.Schema()) != tc.types {
				t.Errorf("schema %s", schemaTypes(f.Schema()))
			}
			ic := testIC(mem, "src", tc.spec.Name, 0)
			ic.Stdin = st
			c, err := runSource(f, ic)
			if c != nil {
				defer c.release()
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.rows >= 0 && c.rows() != tc.rows {
				t.Errorf("%d rows, want %d", c.rows(), tc.rows)
			}
			if tc.rows < 0 && c.rows() == 0 {
				t.Error("no rows")
			}
		})
	}
	// An Arrow IPC file on standard input is refused with the fix.
	file := writeGenerated(t, dir, 10, "arrow", &ArrowSinkConfig{Path: filepath.Join(dir, "f.arrow"), Format: "file", Compression: "none"})
	fb, _ := os.ReadFile(file)
	_, err = ArrowSourceSpec().Build(&engine.BuildContext{Node: "n", Settings: engine.DefaultSettings(), Stdin: engine.NewStdin(bytes.NewReader(fb))},
		&ArrowSourceConfig{Path: "-", Format: "auto", Validate: "full", HivePartitioning: "auto"})
	if err == nil || !strings.Contains(err.Error(), "send an IPC stream") {
		t.Fatalf("arrow file on stdin: %v", err)
	}
}

// onlyReader hides every method but Read (a pipe cannot seek).
type onlyReader struct{ r *bytes.Reader }

func (o *onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

var _ memory.Allocator = newMem()
