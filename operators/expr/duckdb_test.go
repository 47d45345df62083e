package expr_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime/debug"
	"sort"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/zflowdev/zflow/internal/duckdbtest"
	"github.com/zflowdev/zflow/operators/expr"
)

// TestDuckDB is the differential test of the expression language: every
// expression of testdata/duckdb/*.sql runs in zflow and in DuckDB over the
// same table t (duckdb_data_test.go), and every value must agree. The corpus
// format and the dialect notes are in testdata/duckdb/README.md.

// knownDifferences are the expressions whose disagreement with DuckDB is
// understood, each with the reason. A listed expression is still run: its
// mismatches are logged, not failed, and the test fails when it agrees (the
// entry is stale) or when no corpus file holds it. Keep this list tiny.
var knownDifferences = map[string]string{
	// zflow's answer is the mathematical one and documented.
	"i64 % k": "MinInt64 % -1: zflow 0, DuckDB fails (Overflow in division)",
	"f64 / k": "x / 0: zflow NULL (documented), DuckDB IEEE ±inf or NaN",
	// A zone offset in a TIMESTAMP's text: zflow converts to UTC (the
	// instant is kept), DuckDB keeps the wall clock and drops the offset.
	"TIMESTAMP '2024-01-05 10:00:00+02:00'":          "zflow 08:00 UTC, DuckDB 10:00 (offset dropped)",
	"CAST('2024-01-05 10:00:00+02:00' AS TIMESTAMP)": "zflow 08:00 UTC, DuckDB 10:00 (offset dropped)",
	"upper(s)": "ß: zflow keeps it (Unicode simple case mapping), DuckDB gives ẞ (utf8proc)",
}

// corpusEntry is one expression of a corpus file.
type corpusEntry struct {
	file string // base name, e.g. core.sql
	line int
	src  string
	// wantError is set by a "--! error" line before the expression: it must
	// fail in DuckDB and in zflow.
	wantError bool
}

func (e corpusEntry) where() string { return fmt.Sprintf("%s:%d: %s", e.file, e.line, e.src) }

// readCorpus reads every testdata/duckdb/*.sql file.
func readCorpus(t *testing.T) []corpusEntry {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "duckdb", "*.sql"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no corpus: testdata/duckdb/*.sql matches nothing")
	}
	sort.Strings(files)
	var out []corpusEntry
	for _, path := range files {
		es, err := parseCorpus(path)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, es...)
	}
	return out
}

// parseCorpus reads one corpus file: one expression a line; blank lines and
// lines starting with -- are skipped, except the directive "--! error".
func parseCorpus(path string) ([]corpusEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	base := filepath.Base(path)
	var out []corpusEntry
	wantError, directiveLine := false, 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "--!"):
			switch d := strings.TrimSpace(strings.TrimPrefix(line, "--!")); d {
			case "error":
				if wantError {
					return nil, fmt.Errorf("%s:%d: two directives in a row", base, n)
				}
				wantError, directiveLine = true, n
			default:
				return nil, fmt.Errorf("%s:%d: unknown directive %q (known: error)", base, n, d)
			}
		case line == "" || strings.HasPrefix(line, "--"):
		default:
			if strings.Contains(line, ";") {
				return nil, fmt.Errorf("%s:%d: %q: an expression holds no ';'", base, n, line)
			}
			out = append(out, corpusEntry{file: base, line: n, src: line, wantError: wantError})
			wantError = false
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", base, err)
	}
	if wantError {
		return nil, fmt.Errorf("%s:%d: --! error with no expression after it", base, directiveLine)
	}
	return out, nil
}

func TestDuckDB(t *testing.T) {
	db := duckdbtest.Open(t)
	corpus := append(readCorpus(t), randomCorpus(*duckdbRandom, *duckdbSeed)...)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rec := oracleTable(t, mem)
	defer rec.Release()

	dir := t.TempDir()
	data := filepath.Join(dir, "t.parquet")
	writeParquet(t, mem, data, rec)
	stmts := []string{"CREATE TABLE t AS SELECT * FROM read_parquet(" + sqlString(data) + ")"}
	for i, e := range corpus {
		stmts = append(stmts, fmt.Sprintf("COPY (SELECT id, (%s\n) AS r FROM t ORDER BY id) TO %s (FORMAT parquet)",
			e.src, sqlString(resultPath(dir, i))))
	}
	res := db.Run(t, stmts...)
	if res[0].Err != "" {
		t.Fatalf("DuckDB cannot load table t: %s", res[0].Err)
	}

	seen := map[string]bool{}
	var failed, bothFail, known int
	for i, e := range corpus {
		seen[e.src] = true
		o := outcome{entry: e}
		o.duck = readDuck(t, mem, resultPath(dir, i), res[i+1].Err, rec.NumRows())
		o.zflow = evalZflow(mem, e.src, rec)
		problems := o.check(rec)
		o.release()
		reason, isKnown := knownDifferences[e.src]
		switch {
		case isKnown && len(problems) == 0:
			t.Errorf("%s: listed as a known difference (%s) but agrees with DuckDB: remove it from knownDifferences", e.where(), reason)
		case isKnown:
			known++
			t.Logf("%s: known difference (%s):\n\t%s", e.where(), reason, strings.Join(problems, "\n\t"))
		case len(problems) > 0:
			failed++
			t.Errorf("%s: %s", e.where(), strings.Join(problems, "\n"+e.where()+": "))
		}
		if o.duck.err != "" && o.zflow.err != nil {
			bothFail++
			t.Logf("%s: both fail: zflow at %s: %v; DuckDB: %s", e.where(), o.zflow.stage, o.zflow.err, firstLine(o.duck.err))
		}
	}
	for src := range knownDifferences {
		if !seen[src] {
			t.Errorf("knownDifferences lists %q, which no corpus file holds", src)
		}
	}
	t.Logf("%d expressions over %d rows: %d fail, %d known differences, %d fail in both as expected",
		len(corpus), rec.NumRows(), failed, known, bothFail)
}

func resultPath(dir string, i int) string { return filepath.Join(dir, fmt.Sprintf("r%04d.parquet", i)) }

// sqlString quotes s as a SQL string literal.
func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

func writeParquet(t *testing.T, mem memory.Allocator, path string, rec arrow.RecordBatch) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pqarrow.NewFileWriter(rec.Schema(), f,
		parquet.NewWriterProperties(parquet.WithAllocator(mem), parquet.WithMaxRowGroupLength(1000)),
		pqarrow.NewArrowWriterProperties(pqarrow.WithAllocator(mem)))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// duckResult is DuckDB's answer to one expression: its error, or the
// column r of its Parquet output (one array, in id order).
type duckResult struct {
	err string
	r   arrow.Array
}

// readDuck reads DuckDB's output for one expression, checking that it has
// one row per id in order. A file that cannot be read fails the test.
func readDuck(t *testing.T, mem memory.Allocator, path, duckErr string, rows int64) duckResult {
	t.Helper()
	if duckErr != "" {
		return duckResult{err: duckErr}
	}
	pf, err := file.OpenParquetFile(path, false, file.WithReadProps(parquet.NewReaderProperties(mem)))
	if err != nil {
		t.Fatalf("open DuckDB's output: %v", err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, mem)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatalf("read DuckDB's output %s: %v", path, err)
	}
	defer tbl.Release()
	if tbl.NumRows() != rows || tbl.NumCols() != 2 {
		t.Fatalf("DuckDB's output %s has %d rows and %d columns, want %d and 2", path, tbl.NumRows(), tbl.NumCols(), rows)
	}
	ids, err := array.Concatenate(tbl.Column(0).Data().Chunks(), mem)
	if err != nil {
		t.Fatal(err)
	}
	defer ids.Release()
	for i := range int(rows) {
		if id := ids.(*array.Int64).Value(i); id != int64(i) {
			t.Fatalf("DuckDB's output %s: row %d has id %d", path, i, id)
		}
	}
	r, err := array.Concatenate(tbl.Column(1).Data().Chunks(), mem)
	if err != nil {
		t.Fatal(err)
	}
	return duckResult{r: r}
}

// zflowResult is zflow's answer to one expression.
type zflowResult struct {
	stage string // "Compile", "Eval" or "panic", where err happened
	err   error
	dtype arrow.DataType // the compiled type
	r     arrow.Array
	// slices holds Eval over three slices of the batch (offsets that are
	// not multiples of 8 included), checked against r.
	slices []zflowSlice
	// For a boolean expression, Select over the batch: sel is the batch
	// of kept rows (nil when none is kept), selErr its error.
	sel    arrow.RecordBatch
	selErr error
}

type zflowSlice struct {
	from, to int
	r        arrow.Array
	err      error
}

// sliceBounds cut the batch for the sliced evaluation.
var sliceBounds = []int{0, 7, 1001}

// evalZflow compiles src and evaluates it over rec, whole and in slices,
// and as a filter when it is boolean. A panic is recovered and reported as
// the expression's failure, so that the other expressions are still
// checked (what it had allocated may stay outstanding).
func evalZflow(mem memory.Allocator, src string, rec arrow.RecordBatch) (out zflowResult) {
	defer func() {
		if p := recover(); p != nil {
			out.release()
			out = zflowResult{stage: "panic", err: fmt.Errorf("%v\n%s", p, debug.Stack())}
		}
	}()
	c, err := expr.Compile(src, rec.Schema())
	if err != nil {
		return zflowResult{stage: "Compile", err: err}
	}
	ctx := context.Background()
	out = zflowResult{dtype: c.Type()}
	if out.r, err = c.Eval(ctx, mem, rec); err != nil {
		return zflowResult{stage: "Eval", err: err, dtype: c.Type()}
	}
	if id := c.Type().ID(); id == arrow.BOOL || id == arrow.NULL {
		out.sel, _, out.selErr = c.Select(ctx, mem, rec)
	}
	n := int(rec.NumRows())
	for i, from := range sliceBounds {
		to := n
		if i+1 < len(sliceBounds) {
			to = sliceBounds[i+1]
		}
		part := rec.NewSlice(int64(from), int64(to))
		r, err := c.Eval(ctx, mem, part)
		part.Release()
		out.slices = append(out.slices, zflowSlice{from: from, to: to, r: r, err: err})
	}
	return out
}

// outcome pairs both answers to one expression.
type outcome struct {
	entry corpusEntry
	duck  duckResult
	zflow zflowResult
}

func (o *outcome) release() {
	if o.duck.r != nil {
		o.duck.r.Release()
	}
	o.zflow.release()
}

func (z *zflowResult) release() {
	if z.r != nil {
		z.r.Release()
	}
	for _, s := range z.slices {
		if s.r != nil {
			s.r.Release()
		}
	}
	if z.sel != nil {
		z.sel.Release()
	}
}

// maxRowsShown bounds the rows a failing expression reports.
const maxRowsShown = 3

// check compares the answers and returns what disagrees, one line each.
func (o *outcome) check(rec arrow.RecordBatch) []string {
	d, z := o.duck, o.zflow
	switch {
	case z.stage == "panic":
		return []string{fmt.Sprintf("zflow panics: %v", z.err)}
	case d.err != "" && z.err != nil:
		if !o.entry.wantError {
			return []string{fmt.Sprintf("fails in both, which the corpus does not expect (add \"--! error\" above it if it should): zflow at %s: %v; DuckDB: %s",
				z.stage, z.err, firstLine(d.err))}
		}
		return nil
	case d.err != "":
		return []string{fmt.Sprintf("DuckDB fails, zflow does not: DuckDB: %s", firstLine(d.err))}
	case z.err != nil:
		return []string{fmt.Sprintf("zflow fails at %s, DuckDB does not: %v", z.stage, z.err)}
	}
	var problems []string
	if o.entry.wantError {
		problems = append(problems, "marked \"--! error\" but succeeds in both")
	}
	if p := o.checkType(); p != "" {
		problems = append(problems, p)
	}
	if !arrow.TypeEqual(z.r.DataType(), z.dtype) {
		problems = append(problems, fmt.Sprintf("zflow's Eval gives %s, its Type() says %s", z.r.DataType(), z.dtype))
	}
	if d.r.Len() != z.r.Len() {
		return append(problems, fmt.Sprintf("zflow gave %d rows, DuckDB %d", z.r.Len(), d.r.Len()))
	}
	bad := 0
	for i := range d.r.Len() {
		zv, dv := cellOf(z.r, i), cellOf(d.r, i)
		if zv.equal(dv) {
			continue
		}
		if bad < maxRowsShown {
			problems = append(problems, fmt.Sprintf("row %d (id=%d): zflow %s, duckdb %s", i, i, zv, dv))
		}
		bad++
	}
	if bad > maxRowsShown {
		problems = append(problems, fmt.Sprintf("... and %d more rows (%d of %d differ)", bad-maxRowsShown, bad, d.r.Len()))
	}
	problems = append(problems, o.checkSelect(rec)...)
	for _, s := range z.slices {
		if s.err != nil {
			problems = append(problems, fmt.Sprintf("zflow fails on rows [%d, %d) alone, not on the whole batch: %v", s.from, s.to, s.err))
			continue
		}
		for i := range s.r.Len() {
			if sv, wv := cellOf(s.r, i), cellOf(z.r, s.from+i); !sv.same(wv) {
				problems = append(problems, fmt.Sprintf("row %d (id=%d): zflow gives %s on rows [%d, %d) alone, %s on the whole batch",
					s.from+i, s.from+i, sv, s.from, s.to, wv))
				break
			}
		}
	}
	return problems
}

// checkSelect checks Select, the filter, for a boolean expression: it must
// keep the rows where DuckDB's value is true (a NULL is not), in order, each
// with every column of rec as it is.
func (o *outcome) checkSelect(rec arrow.RecordBatch) []string {
	z := o.zflow
	if z.sel == nil && z.selErr == nil {
		if id := z.dtype.ID(); id != arrow.BOOL && id != arrow.NULL {
			return nil
		}
	}
	if z.selErr != nil {
		return []string{fmt.Sprintf("zflow's Select fails where Eval does not: %v", z.selErr)}
	}
	var want []int
	for i := range o.duck.r.Len() {
		if c := cellOf(o.duck.r, i); c.kind == cellBool && c.b {
			want = append(want, i)
		}
	}
	got := 0
	if z.sel != nil {
		got = int(z.sel.NumRows())
	}
	if got != len(want) {
		return []string{fmt.Sprintf("zflow's Select keeps %d rows, DuckDB's WHERE %d", got, len(want))}
	}
	for j, id := range want {
		for c := range int(rec.NumCols()) {
			if !cellOf(z.sel.Column(c), j).same(cellOf(rec.Column(c), id)) {
				return []string{fmt.Sprintf("zflow's Select: kept row %d is not row %d (id=%d) in column %s: %s",
					j, id, id, rec.ColumnName(c), cellOf(z.sel.Column(c), j))}
			}
		}
	}
	return nil
}

// checkType compares the result types when the expression is a CAST at top
// level: DuckDB's, as its Parquet output reads back into Arrow, against
// zflow's compiled type, modulo the equivalences of logicalType.
func (o *outcome) checkType() string {
	e, err := expr.Parse(o.entry.src)
	if err != nil {
		return ""
	}
	if _, ok := e.(*expr.Cast); !ok {
		return ""
	}
	dt, zt := logicalType(o.duck.r.DataType()), logicalType(o.zflow.dtype)
	if !arrow.TypeEqual(dt, zt) {
		return fmt.Sprintf("result type: zflow %s, DuckDB %s", o.zflow.dtype, o.duck.r.DataType())
	}
	return ""
}

// logicalType maps an Arrow type to the one it is compared as: large_utf8
// and dictionaries of strings are utf8.
func logicalType(dt arrow.DataType) arrow.DataType {
	switch dt.ID() {
	case arrow.LARGE_STRING:
		return arrow.BinaryTypes.String
	case arrow.DICTIONARY:
		return logicalType(dt.(*arrow.DictionaryType).ValueType)
	}
	return dt
}

func TestParseCorpus(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       []corpusEntry // file is x.sql
		err        string
	}{
		{"comments and blanks", "-- a comment\n\n  k + 1  \n--! error\nCAST(s AS bigint)\n-- after\nk",
			[]corpusEntry{{line: 3, src: "k + 1"}, {line: 5, src: "CAST(s AS bigint)", wantError: true}, {line: 7, src: "k"}}, ""},
		{"unknown directive", "k\n--! errors\nk", nil, `x.sql:2: unknown directive "errors" (known: error)`},
		{"directive at the end", "k\n--! error\n\n-- nothing\n", nil, "x.sql:2: --! error with no expression after it"},
		{"two directives", "--! error\n--! error\nk", nil, "x.sql:2: two directives in a row"},
		{"semicolon", "k;\n", nil, `x.sql:1: "k;": an expression holds no ';'`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x.sql")
			if err := os.WriteFile(path, []byte(tc.text), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := parseCorpus(path)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i := range tc.want {
				tc.want[i].file = "x.sql"
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
