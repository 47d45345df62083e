package operators

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/zflowdev/zflow/engine"
)

// partInput is a CSV whose key columns hold the awkward values: characters
// to escape, an empty string, nulls; rows of one key are not contiguous.
const partInput = `day,k,n,v
2024-01-01,a/b,1,1.5
2024-01-02,x=y,2,2.5
2024-01-01,a/b,3,3.5
,50%,4,
2024-01-02,"",5,5.5
2024-01-01,plain,6,6.5
2024-01-02,x=y,7,7.5
2024-01-01,"tab	here",8,8.5
`

// TestPartitionedSinks writes partInput partitioned by day and k with each
// sink, then reads the tree back with the matching source's Hive
// partitioning: the same rows, the keys not inside the files, nothing left
// next to the tree.
func TestPartitionedSinks(t *testing.T) {
	dir := t.TempDir()
	in := writeTestFile(t, dir, "in.csv", partInput)
	mem := newMem()
	defer mem.AssertSize(t, 0)
	want := []string{
		`1|1.5|"2024-01-01"|"a/b"`, `2|2.5|"2024-01-02"|"x=y"`, `3|3.5|"2024-01-01"|"a/b"`, `4|null|null|"50%"`,
		`5|5.5|"2024-01-02"|""`, `6|6.5|"2024-01-01"|"plain"`, `7|7.5|"2024-01-02"|"x=y"`, `8|8.5|"2024-01-01"|"tab\there"`,
	}
	for _, tc := range []struct {
		kind    string
		sink    any
		source  func(string) (engine.Spec, any)
		maxOpen int
	}{
		{"parquet", &ParquetSinkConfig{PartitionBy: []string{"day", "k"}}, func(p string) (engine.Spec, any) {
			return ParquetSourceSpec(), &ParquetSourceConfig{Path: p, HivePartitioning: "true"}
		}, 64},
		{"csv", &CSVSinkConfig{PartitionBy: []string{"day", "k"}}, func(p string) (engine.Spec, any) {
			c := csvCfg(p)
			c.HivePartitioning = "true"
			return CSVSourceSpec(), c
		}, 1},
		{"ndjson", &NDJSONSinkConfig{PartitionBy: []string{"day", "k"}}, func(p string) (engine.Spec, any) {
			return NDJSONSourceSpec(), &NDJSONSourceConfig{Path: p, HivePartitioning: "true", InferRows: 100, UnknownKeys: "auto"}
		}, 2},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			out := filepath.Join(dir, tc.kind)
			setSinkPath(tc.sink, out)
			switch c := tc.sink.(type) {
			case *ParquetSinkConfig:
				c.MaxOpenFiles = tc.maxOpen
			case *CSVSinkConfig:
				c.MaxOpenFiles = tc.maxOpen
			case *NDJSONSinkConfig:
				c.MaxOpenFiles = tc.maxOpen
			}
			// Twice: the second run replaces the first's tree.
			for range 2 {
				sum, err := runGraph(t, mem, 3,
					&engine.Node{ID: "in", Kind: engine.KindSource, Type: "csv", Config: csvCfg(in), ConfigFrom: engine.ConfigLiteral},
					&engine.Node{ID: "out", Kind: engine.KindSink, Type: tc.kind, Config: tc.sink, ConfigFrom: engine.ConfigLiteral, Inputs: []string{"in"}})
				if err != nil {
					t.Fatal(err)
				}
				// 6 partitions; with max_open_files 1 and 2, reopened ones
				// make more files.
				if files := sum.Ops[1].Files; files < 6 || sum.Ops[0].Files != 1 {
					t.Errorf("summary: %d files read, %d written", sum.Ops[0].Files, files)
				}
				var b strings.Builder
				sum.WriteText(&b)
				if !strings.Contains(b.String(), "files: in 1, out ") {
					t.Errorf("summary text lacks the files:\n%s", b.String())
				}
			}
			if names := dirNames(t, dir); slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, ".") }) {
				t.Errorf("left next to the tree: %v", names)
			}
			for _, p := range []string{
				"day=2024-01-01/k=a%2Fb", "day=2024-01-02/k=x%3Dy", "day=__HIVE_DEFAULT_PARTITION__/k=50%25",
				"day=2024-01-02/k=", "day=2024-01-01/k=tab%09here",
			} {
				if _, err := os.Stat(filepath.Join(out, filepath.FromSlash(p), "part-0."+tc.kind)); err != nil {
					t.Errorf("missing partition: %v", err)
				}
			}
			if tc.maxOpen == 1 {
				// a/b was closed for x=y, and reopened: a second file.
				if _, err := os.Stat(filepath.Join(out, "day=2024-01-01", "k=a%2Fb", "part-1.csv")); err != nil {
					t.Errorf("max_open_files 1: %v", err)
				}
			}
			spec, cfg := tc.source(out)
			c, schema, err := readSourceAll(t, mem, spec, cfg, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer c.release()
			if got := schemaTypes(schema); got != "n:int64,v:float64,day:date32,k:string" {
				t.Errorf("schema read back: %s", got)
			}
			got := rowsText(c.recs)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("rows read back:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// TestPartitionedSinkErrors: partition_by is checked at compile time,
// naming the column.
func TestPartitionedSinkErrors(t *testing.T) {
	dir := t.TempDir()
	in := writeTestFile(t, dir, "in.csv", partInput)
	f, err := buildFactory(CSVSourceSpec(), csvCfg(in))
	if err != nil {
		t.Fatal(err)
	}
	schema := f.Schema()
	for _, tc := range []struct {
		name string
		cfg  any
		err  string
	}{
		{"float key", &ParquetSinkConfig{Path: filepath.Join(dir, "o"), Compression: "snappy", RowGroupRows: 10, Dictionary: "auto", MaxOpenFiles: 4, PartitionBy: []string{"v"}},
			`partition_by.0: column "v" is float64, which cannot be a partition key: a float's text is not an exact value`},
		{"unknown column", &CSVSinkConfig{Path: filepath.Join(dir, "o"), Delimiter: ",", MaxOpenFiles: 4, PartitionBy: []string{"dya"}},
			`partition_by.0: no column "dya" in the input, did you mean "day"?`},
		{"twice", &NDJSONSinkConfig{Path: filepath.Join(dir, "o"), MaxOpenFiles: 4, PartitionBy: []string{"k", "k"}},
			`partition_by.1: column "k" is listed twice`},
		{"every column", &NDJSONSinkConfig{Path: filepath.Join(dir, "o"), MaxOpenFiles: 4, PartitionBy: []string{"day", "k", "n"}},
			`partition_by: every column is a partition key: the files would hold no columns`},
		{"stdout", &CSVSinkConfig{Path: "-", Delimiter: ",", MaxOpenFiles: 4, PartitionBy: []string{"k"}},
			`partition_by: partitioned output is a directory tree, which standard output (path: -) cannot hold`},
		{"max open files", &CSVSinkConfig{Path: filepath.Join(dir, "o"), Delimiter: ",", PartitionBy: []string{"k"}},
			`max_open_files: must be ≥ 1, got 0`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var spec engine.Spec
			switch tc.cfg.(type) {
			case *ParquetSinkConfig:
				spec = ParquetSinkSpec()
			case *CSVSinkConfig:
				spec = CSVSinkSpec()
			case *NDJSONSinkConfig:
				spec = NDJSONSinkSpec()
			}
			in := schema
			if tc.name == "every column" {
				in = arrow.NewSchema(schema.Fields()[:3], nil) // day, k, n
			}
			_, err := buildFactory(spec, tc.cfg, in)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("got %v\nwant %q", err, tc.err)
			}
		})
	}
}

// TestPartitionedSinkFailedRun: a run that fails leaves the previous tree
// as it was and no temporary directory.
func TestPartitionedSinkFailedRun(t *testing.T) {
	dir := t.TempDir()
	good := writeTestFile(t, dir, "good.csv", "k,n\na,1\nb,2\n")
	bad := writeTestFile(t, dir, "bad.csv", "k,n\na,1\nb,2\nc,3\nd,oops\n")
	out := filepath.Join(dir, "out")
	mem := newMem()
	defer mem.AssertSize(t, 0)
	run := func(in string, cfg *CSVSourceConfig) error {
		cfg.Path = in
		_, err := runGraph(t, mem, 1,
			&engine.Node{ID: "in", Kind: engine.KindSource, Type: "csv", Config: cfg, ConfigFrom: engine.ConfigLiteral},
			&engine.Node{ID: "out", Kind: engine.KindSink, Type: "parquet", ConfigFrom: engine.ConfigLiteral,
				Config: &ParquetSinkConfig{Path: out, PartitionBy: []string{"k"}}, Inputs: []string{"in"}})
		return err
	}
	if err := run(good, &CSVSourceConfig{}); err != nil {
		t.Fatal(err)
	}
	c := &CSVSourceConfig{InferRows: 1}
	if err := run(bad, c); err == nil || !strings.Contains(err.Error(), `line 5, column "n"`) {
		t.Fatalf("got %v", err)
	}
	if got := dirNames(t, out); strings.Join(got, ",") != "k=a,k=b" {
		t.Errorf("the previous tree is now %v", got)
	}
	if got := dirNames(t, dir); strings.Join(got, ",") != "bad.csv,good.csv,out" {
		t.Errorf("left in the directory: %v", got)
	}
	// A file where the tree goes is refused, and kept.
	file := writeTestFile(t, dir, "file", "x")
	_, err := runGraph(t, mem, 1,
		&engine.Node{ID: "in", Kind: engine.KindSource, Type: "csv", Config: csvCfg(good), ConfigFrom: engine.ConfigLiteral},
		&engine.Node{ID: "out", Kind: engine.KindSink, Type: "csv", ConfigFrom: engine.ConfigLiteral,
			Config: &CSVSinkConfig{Path: file, PartitionBy: []string{"k"}}, Inputs: []string{"in"}})
	if err == nil || !strings.Contains(err.Error(), "exists and is not a directory") {
		t.Fatalf("got %v", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "x" {
		t.Errorf("file is now %q", b)
	}
}

// TestAppendHiveValue: directory names as DuckDB 1.5's COPY ... PARTITION_BY
// writes them (seen in its output).
func TestAppendHiveValue(t *testing.T) {
	for v, want := range map[string]string{
		"a/b": "a%2Fb", "x=y": "x%3Dy", "50%": "50%25", "tab\there": "tab%09here", "ü": "%C3%BC",
		"a b:c": "a%20b%3Ac", "a+b,c(d)": "a%2Bb%2Cc%28d%29", "q~r-s_t.u": "q~r-s_t.u", `"`: "%22",
		"x!y*z": "x%21y%2Az", "": "", "2024-01-02": "2024-01-02", "-5": "-5",
	} {
		if got := string(appendHiveValue(nil, []byte(v))); got != want {
			t.Errorf("%q: got %q, want %q", v, got, want)
		}
	}
}

// TestPartitionedSinkReadsItsOwnTree: a sink replacing the directory a
// source reads from is a compile error at both nodes.
func TestPartitionedSinkReadsItsOwnTree(t *testing.T) {
	dir := t.TempDir()
	mkTree(t, dir, map[string]string{"tree/k=1/part-0.csv": "n\n1\n", "tree/k=2/part-0.csv": "n\n2\n"})
	tree := filepath.Join(dir, "tree")
	g := &engine.Graph{Name: "own", Nodes: []*engine.Node{
		{ID: "in", Kind: engine.KindSource, Type: "csv", Config: csvCfg(filepath.Join(tree, "**", "*.csv")), ConfigFrom: engine.ConfigLiteral},
		{ID: "out", Kind: engine.KindSink, Type: "csv", Config: &CSVSinkConfig{Path: tree, PartitionBy: []string{"k"}}, ConfigFrom: engine.ConfigLiteral, Inputs: []string{"in"}},
	}}
	_, err := engine.Compile(g, engine.CompileOptions{})
	if err == nil || !strings.Contains(err.Error(), `out.path: source "in" reads `+filepath.Join(tree, "k=1", "part-0.csv")+`, inside this directory`) ||
		!strings.Contains(err.Error(), `in.path: sink "out" writes the directory `+tree) || strings.Count(err.Error(), "inside this directory") != 1 {
		t.Fatalf("got %v", err)
	}
}

// FuzzHiveValue: any value escapes to one directory name (no /, no NUL, no
// =) that the sources' reading unescapes back to the value. (The string
// __HIVE_DEFAULT_PARTITION__ itself reads back as null, as in Hive and
// DuckDB.)
func FuzzHiveValue(f *testing.F) {
	for _, s := range []string{"a/b", "x=y", "50%", "", ".", "..", "tab\there", "ü", "%2F", "__HIVE_DEFAULT_PARTITION__x", "\x00\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if v == hiveDefault {
			return
		}
		name := string(appendHiveValue(nil, []byte(v)))
		if strings.ContainsAny(name, "/\x00=") {
			t.Fatalf("%q escapes to %q", v, name)
		}
		keys, vals := hivePairs("root", "root/k="+name+"/part-0.csv")
		if len(keys) != 1 || keys[0] != "k" || vals[0] == nil || *vals[0] != v {
			t.Fatalf("%q -> %q -> %v %v", v, name, keys, vals)
		}
	})
}

// TestPartitionedSinkMixedKeys: batches whose keys are mixed row by row are
// gathered per partition (one write per partition and batch, the gather
// counted as a copy); every row is read back once, under its key.
func TestPartitionedSinkMixedKeys(t *testing.T) {
	dir := t.TempDir()
	mem := newMem()
	defer mem.AssertSize(t, 0)
	gen := &GenerateConfig{Rows: 20000, Seed: 3, Columns: []GenerateColumn{
		{Name: "id", Type: "int64", Sequence: true, Max: 1 << 40},
		{Name: "k", Type: "string", Cardinality: 7, NullRatio: 0.1},
		{Name: "b", Type: "bool"},
		{Name: "v", Type: "float64"},
	}}
	want, _, err := readSourceAll(t, mem, GenerateSpec(), gen, 1000)
	if err != nil {
		t.Fatal(err)
	}
	wantRows := rowsText(want.recs)
	want.release()
	for _, kind := range []string{"parquet", "ndjson"} {
		out := filepath.Join(dir, kind)
		var sink any = &ParquetSinkConfig{Path: out, PartitionBy: []string{"k", "b"}, RowGroupRows: 4096}
		if kind == "ndjson" {
			sink = &NDJSONSinkConfig{Path: out, PartitionBy: []string{"k", "b"}, MaxOpenFiles: 3}
		}
		sum, err := runGraph(t, mem, 1000,
			&engine.Node{ID: "g", Kind: engine.KindSource, Type: "generate", Config: gen},
			&engine.Node{ID: "out", Kind: engine.KindSink, Type: kind, Config: sink, ConfigFrom: engine.ConfigLiteral, Inputs: []string{"g"}})
		if err != nil {
			t.Fatal(err)
		}
		if sum.Ops[1].Copies["partition gather"] == 0 {
			t.Errorf("%s: mixed keys were not gathered: %v", kind, sum.Ops[1].Copies)
		}
		var spec engine.Spec
		var cfg any
		if kind == "parquet" {
			spec, cfg = ParquetSourceSpec(), &ParquetSourceConfig{Path: out, HivePartitioning: "true"}
		} else {
			spec, cfg = NDJSONSourceSpec(), &NDJSONSourceConfig{Path: out, HivePartitioning: "true", InferRows: 10, UnknownKeys: "auto",
				Columns: []ColumnDef{{Name: "id", Type: "int64"}, {Name: "v", Type: "float64"}}}
		}
		c, schema, err := readSourceAll(t, mem, spec, cfg, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got := schemaTypes(schema); got != "id:int64,v:float64,k:string,b:string" {
			t.Errorf("%s: schema %s", kind, got)
		}
		// id|v|k|b back to id|k|b|v, with b's text unquoted as the
		// generator's bool.
		got := rowsText(c.recs)
		c.release()
		for i, r := range got {
			f := strings.Split(r, "|")
			got[i] = f[0] + "|" + f[2] + "|" + strings.Trim(f[3], `"`) + "|" + f[1]
		}
		w := slices.Clone(wantRows)
		slices.Sort(w)
		slices.Sort(got)
		if !slices.Equal(got, w) {
			t.Errorf("%s: %d rows read back, %d written; first %v vs %v", kind, len(got), len(w), got[:3], w[:3])
		}
	}
}
