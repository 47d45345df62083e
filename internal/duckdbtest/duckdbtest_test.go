package duckdbtest

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestValues checks names, DuckDB type names and the text of values of
// several types, NULLs among them, and strings that JSON and a naive
// line-based protocol would mangle.
func TestValues(t *testing.T) {
	db := Open(t)
	res := db.Query(t, `SELECT * FROM (VALUES
		(1, (-9223372036854775808)::BIGINT, 'plain', 1.5::DECIMAL(18,3), 0.1::DOUBLE, TRUE, DATE '2024-02-29', TIMESTAMP '2024-01-02 03:04:05.123456'),
		(2, NULL, 'tab' || chr(9) || 'bed', NULL, 1e20::DOUBLE, NULL, NULL, NULL),
		(3, 0, 'it''s "quoted"' || chr(10) || 'second line', -0.001::DECIMAL(18,3), NULL, FALSE, DATE '1970-01-01', TIMESTAMP '1970-01-01 00:00:00'),
		(4, 42, 'héllo ✓ 日本 🦆 \u0000x', 0::DECIMAL(18,3), -0.0::DOUBLE, NULL, NULL, NULL),
		(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
		(6, 7, '', NULL, 'inf'::DOUBLE, NULL, NULL, NULL)
	) AS v(i, big, s, dec, f, b, d, ts) ORDER BY i NULLS LAST`)
	if want := []string{"i", "big", "s", "dec", "f", "b", "d", "ts"}; !reflect.DeepEqual(res.Columns, want) {
		t.Errorf("columns %q, want %q", res.Columns, want)
	}
	wantTypes := []string{"INTEGER", "BIGINT", "VARCHAR", "DECIMAL(18,3)", "DOUBLE", "BOOLEAN", "DATE", "TIMESTAMP"}
	if !reflect.DeepEqual(res.Types, wantTypes) {
		t.Errorf("types %q, want %q", res.Types, wantTypes)
	}
	want := [][]any{
		{"1", "-9223372036854775808", "plain", "1.500", "0.1", "true", "2024-02-29", "2024-01-02 03:04:05.123456"},
		{"2", nil, "tab\tbed", nil, "1e+20", nil, nil, nil},
		{"3", "0", "it's \"quoted\"\nsecond line", "-0.001", nil, "false", "1970-01-01", "1970-01-01 00:00:00"},
		{"4", "42", `héllo ✓ 日本 🦆 \u0000x`, "0.000", "-0.0", nil, nil, nil},
		{"6", "7", "", nil, "inf", nil, nil, nil},
		{nil, nil, nil, nil, nil, nil, nil, nil},
	}
	if !reflect.DeepEqual(res.Rows, want) {
		t.Errorf("rows\n got %q\nwant %q", res.Rows, want)
	}
	if got, want := res.Strings()[4], "6|7||NULL|inf|NULL|NULL|NULL"; got != want {
		t.Errorf("Strings()[4] = %q, want %q", got, want)
	}
}

// TestRunErrorBetween checks that an error is recorded in its statement's
// Result and that the statements after it run in the same session.
func TestRunErrorBetween(t *testing.T) {
	db := Open(t)
	res := db.Run(t,
		"CREATE TABLE t AS SELECT range AS a FROM range(3)",
		"SELECT CAST('x' AS INTEGER)",
		"SELECT a * 10 AS b FROM t ORDER BY a",
		"SELECT * FROM no_such_table",
		"SELECT count(*) AS n FROM t",
	)
	if len(res) != 5 {
		t.Fatalf("%d results for 5 statements", len(res))
	}
	for _, i := range []int{0, 2, 4} {
		if res[i].Err != "" {
			t.Errorf("statement %d failed: %s", i, res[i].Err)
		}
	}
	if !strings.Contains(res[1].Err, "Conversion Error") || !strings.Contains(res[1].Err, "'x'") {
		t.Errorf("statement 1: error %q, want DuckDB's conversion error", res[1].Err)
	}
	if res[1].Rows != nil && len(res[1].Rows) != 0 {
		t.Errorf("statement 1: rows %q next to an error", res[1].Rows)
	}
	if !strings.Contains(res[3].Err, "no_such_table") {
		t.Errorf("statement 3: error %q, want one naming the table", res[3].Err)
	}
	if got, want := res[2].Strings(), []string{"0", "10", "20"}; !reflect.DeepEqual(got, want) {
		t.Errorf("statement 2: %q, want %q", got, want)
	}
	if got := res[4].Strings(); !reflect.DeepEqual(got, []string{"3"}) || res[4].Types[0] != "BIGINT" {
		t.Errorf("statement 4: %q %q, want [3] BIGINT", got, res[4].Types)
	}
}

// TestFreshSession checks that each Run starts a new session, with the
// settings the package promises.
func TestFreshSession(t *testing.T) {
	db := Open(t)
	db.Query(t, "CREATE TABLE kept AS SELECT 1 AS a")
	if r := db.Run(t, "SELECT * FROM kept")[0]; r.Err == "" {
		t.Errorf("a table of an earlier Run is visible: %q", r.Rows)
	}
	r := db.Query(t, "SELECT current_setting('threads') AS th, current_setting('TimeZone') AS tz")
	if got := r.Strings(); !reflect.DeepEqual(got, []string{"1|UTC"}) {
		t.Errorf("settings %q, want threads 1 and TimeZone UTC", got)
	}
	if res := db.Run(t); res != nil {
		t.Errorf("Run without statements gave %v", res)
	}
}

// TestOtherStatements checks statements that cannot be a subquery: they
// still give their columns and values, and several statements in one string
// give the last one's result.
func TestOtherStatements(t *testing.T) {
	db := Open(t)
	out := filepath.Join(t.TempDir(), "x.parquet")
	res := db.Run(t,
		"COPY (SELECT 1 AS a UNION ALL SELECT 2) TO '"+out+"' (FORMAT parquet)",
		"PRAGMA version",
		"CREATE TABLE q AS SELECT 'x;y' AS s; SELECT s || ';' AS s FROM q;",
		"SELECT 1; garbage",
	)
	if got := res[0].Strings(); res[0].Err != "" || !reflect.DeepEqual(got, []string{"2"}) {
		t.Errorf("COPY: %q %s, want a count of 2", got, res[0].Err)
	}
	if res[1].Err != "" || len(res[1].Rows) != 1 || !strings.HasPrefix(res[1].Rows[0][0].(string), "v") {
		t.Errorf("PRAGMA version: %+v", res[1])
	}
	if got := res[2].Strings(); res[2].Err != "" || !reflect.DeepEqual(got, []string{"x;y;"}) {
		t.Errorf("two statements: %q %s, want the second's rows", got, res[2].Err)
	}
	if !strings.Contains(res[3].Err, "garbage") {
		t.Errorf("a syntax error: %q, want DuckDB's parser error", res[3].Err)
	}
}

// TestLargeOutput checks a result of several megabytes.
func TestLargeOutput(t *testing.T) {
	db := Open(t)
	const n = 100000
	r := db.Query(t, "SELECT i, repeat('x', 40) || i AS s FROM range(100000) t(i) ORDER BY i DESC")
	if len(r.Rows) != n {
		t.Fatalf("%d rows, want %d", len(r.Rows), n)
	}
	for _, i := range []int{0, 1, n / 2, n - 1} {
		want := strings.Repeat("x", 40)
		if r.Rows[i][0] != strconv.Itoa(n-1-i) || r.Rows[i][1] != want+strconv.Itoa(n-1-i) {
			t.Fatalf("row %d is %q", i, r.Rows[i])
		}
	}
}

// TestParquetFromGo has DuckDB read a Parquet file written with pqarrow.
func TestParquetFromGo(t *testing.T) {
	db := Open(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "i8", Type: arrow.PrimitiveTypes.Int8, Nullable: true},
		{Name: "u32", Type: arrow.PrimitiveTypes.Uint32, Nullable: true},
		{Name: "f", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "d", Type: arrow.FixedWidthTypes.Date32, Nullable: true},
		{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Microsecond}, Nullable: true},
	}, nil)
	rec, _, err := array.RecordFromJSON(mem, schema, strings.NewReader(`[
		{"id": 1, "i8": -128, "u32": 4294967295, "f": 2.5, "s": "a\tb", "d": "2024-02-29", "ts": "2024-01-02T03:04:05.000001"},
		{"id": 2, "i8": null, "u32": null, "f": null, "s": null, "d": null, "ts": null},
		{"id": 3, "i8": 127, "u32": 0, "f": -0.125, "s": "日本\n", "d": "1969-12-31", "ts": "1969-12-31T23:59:59"}
	]`))
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()
	path := filepath.Join(t.TempDir(), "go.parquet")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pqarrow.NewFileWriter(schema, f, parquet.NewWriterProperties(parquet.WithAllocator(mem)),
		pqarrow.NewArrowWriterProperties(pqarrow.WithAllocator(mem), pqarrow.WithStoreSchema()))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	res := db.Run(t,
		"CREATE TABLE t AS SELECT * FROM read_parquet('"+path+"')",
		"SELECT * FROM t ORDER BY id",
	)
	if res[0].Err != "" {
		t.Fatal(res[0].Err)
	}
	r := res[1]
	wantTypes := []string{"BIGINT", "TINYINT", "UINTEGER", "DOUBLE", "VARCHAR", "DATE", "TIMESTAMP"}
	if !reflect.DeepEqual(r.Types, wantTypes) {
		t.Errorf("types %q, want %q", r.Types, wantTypes)
	}
	want := []string{
		"1|-128|4294967295|2.5|a\tb|2024-02-29|2024-01-02 03:04:05.000001",
		"2|NULL|NULL|NULL|NULL|NULL|NULL",
		"3|127|0|-0.125|日本\n|1969-12-31|1969-12-31 23:59:59",
	}
	if got := r.Strings(); !reflect.DeepEqual(got, want) {
		t.Errorf("rows\n got %q\nwant %q", got, want)
	}
}

// TestFailures runs the real process the ways it can fail and checks that
// the error says what happened, with node's stderr.
func TestFailures(t *testing.T) {
	db := Open(t)
	dir := t.TempDir()
	script := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name string
		db   *DB
		want []string
	}{
		{"no node", &DB{node: filepath.Join(dir, "no-node"), script: db.script},
			[]string{"no-node", "no stderr"}},
		{"script fails", &DB{node: db.node, script: script("fail.mjs", "process.stderr.write('boom: bad things\\n'); process.exit(3);")},
			[]string{"exit status 3", "stderr:\nboom: bad things"}},
		{"not JSON", &DB{node: db.node, script: script("text.mjs", "process.stdout.write('hello');")},
			[]string{"wrote 5 bytes that are not a JSON array"}},
		{"short answer", &DB{node: db.node, script: script("short.mjs", "process.stdout.write('[]');")},
			[]string{"answered 0 results for 2 statements"}},
		{"script throws", &DB{node: db.node, script: script("throw.mjs", "throw new Error('kaput');")},
			[]string{"exit status 1", "kaput"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.db.run(context.Background(), []string{"SELECT 1", "SELECT 2"})
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestLocate checks what Open says when DuckDB is not installed.
func TestLocate(t *testing.T) {
	Open(t) // the messages below need node to be found first
	root := t.TempDir()
	if _, err := locate(root); err == nil || !strings.Contains(err.Error(), "no DuckDB script") {
		t.Errorf("no script: %v", err)
	}
	if err := os.MkdirAll(filepath.Join(root, "bench", "duckdb"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, filepath.FromSlash(scriptRel)), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := locate(root); err == nil || !strings.Contains(err.Error(), "npm ci") {
		t.Errorf("no node_modules: %v", err)
	}
	sub := filepath.Join(root, "a", "b")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "go.mod"), []byte("module x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := repoRoot(sub); err != nil || got != root {
		t.Errorf("repoRoot(%s) = %q, %v; want %s", sub, got, err, root)
	}
}
