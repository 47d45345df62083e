package operators

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/engine"
)

// readTextWith runs one instance of a csv or ndjson source factory with
// threads workers and ranges of rangeBytes (0: the sizes the source picks)
// and returns its rows as text and its error.
func readTextWith(t testing.TB, mem memory.Allocator, f engine.Factory, threads, rangeBytes, batchRows int, stopAfter int) ([]string, error) {
	t.Helper()
	ic := testIC(mem, "src", "csv", batchRows)
	ic.Settings.Threads = threads
	op, err := f.New(ic)
	if err != nil {
		t.Fatal(err)
	}
	switch s := op.(type) {
	case *csvSource:
		s.rangeBytes = rangeBytes
	case *ndjsonSource:
		s.rangeBytes = rangeBytes
	}
	c := &collector{stopAfter: stopAfter}
	err = op.(engine.Source).Run(context.Background(), c)
	rows := rowsText(c.recs)
	c.release()
	return rows, err
}

// compareParallel reads the file of factory f serially and in parallel
// with ranges of every size in sizes, and fails t unless each parallel
// read makes the same rows, in the same order, or the same error.
func compareParallel(t testing.TB, f engine.Factory, sizes []int, batchRows int) {
	t.Helper()
	mem := newMem()
	defer mem.AssertSize(t, 0)
	want, werr := readTextWith(t, mem, f, 1, 0, batchRows, 0)
	for _, size := range sizes {
		for _, threads := range []int{2, 3} {
			got, err := readTextWith(t, mem, f, threads, size, batchRows, 0)
			if fmt.Sprint(err) != fmt.Sprint(werr) {
				t.Fatalf("ranges of %d bytes, %d threads: error\n got %v\nwant %v", size, threads, err, werr)
			}
			// Before an error, the rows emitted depend on the batches (the
			// run fails either way).
			if werr == nil && !slices.Equal(got, want) {
				t.Fatalf("ranges of %d bytes, %d threads: %d rows\n got %q\nwant %q", size, threads, len(got), trimRows(got), trimRows(want))
			}
		}
	}
}

func trimRows(r []string) []string {
	if len(r) > 20 {
		return append(r[:20:20], "…")
	}
	return r
}

// TestCSVParallelAdversarial: files cut into ranges at every byte offset
// read as the serial reader reads them — quoted newlines (LF and CRLF) and
// doubled quotes near every boundary, CRLF line ends, byte order marks,
// blank lines, a single huge row, files smaller than a range, a file with
// no rows, no final newline — and fail with the same error where the
// serial reader fails (a bare quote, a wrong field count, a value that is
// not its column's type, a quote left open).
func TestCSVParallelAdversarial(t *testing.T) {
	var quoted strings.Builder
	quoted.WriteString("id,text,tail\n")
	for i := range 60 {
		fmt.Fprintf(&quoted, "%d,\"%s\n%s\r\n%s\",z%d\n", i, strings.Repeat("x", i%7), strings.Repeat(`""`, i%3), strings.Repeat(",", i%4), i)
	}
	huge := "a,b\n1,\"" + strings.Repeat("0123456789\n\"\",", 300_000) + "\"\n2,x\n"
	every := []int{}
	for n := 1; n <= 48; n++ {
		every = append(every, n)
	}
	for _, tc := range []struct {
		name    string
		content string
		header  bool
		sizes   []int
	}{
		{"quoted newlines", quoted.String(), true, every},
		{"crlf", strings.ReplaceAll(quoted.String(), "\n", "\r\n"), true, every},
		{"bom", "\xEF\xBB\xBFa,b\n1,\"x\ny\"\n2,3\n", true, every},
		{"two boms", "\xEF\xBB\xBF\xEF\xBB\xBFa,b\n1,2\n", true, every},
		{"bom, no header", "\xEF\xBB\xBF1,2\n3,4\n", false, every},
		{"blank lines", "a,b\n\n1,2\r\n\r\n\n3,4\n\n", true, every},
		{"no final newline", "a,b\n1,2\n3,\"4\n5\"", true, every},
		{"tiny", "a\n1\n", true, []int{1, 2, 3, 1 << 20}},
		{"header only", "a,b\n", true, every},
		{"quoted empty and null", "a,b\n\"\",\n,\"\"\n", true, every},
		{"huge row", huge, true, []int{1, 4096, 1 << 20}},
		{"bare quote", "a,b\n1,2\n3,x\"y\n4,5\n6,\"7\n", true, every},
		{"field count", "a,b\n1,2\n3,4,5\n6,7\n", true, every},
		{"bad value", "a,b\n1,2\n3,4\nx,5\n\"6\n\",7\n", true, every},
		{"open quote", "a,b\n1,2\n3,\"4\n5,6\n", true, every},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeTestFile(t, t.TempDir(), "f.csv", tc.content)
			f, err := buildFactory(CSVSourceSpec(), &CSVSourceConfig{Path: path, Header: tc.header, Delimiter: ",", NullValues: []string{""}, InferRows: 1})
			if err != nil {
				t.Fatal(err)
			}
			compareParallel(t, f, tc.sizes, 4)
		})
	}
}

// TestCSVParallelSerialDialects: lazy_quotes and comment lines make a
// range boundary unprovable; such a file is read on one goroutine, and
// the log says why.
func TestCSVParallelSerialDialects(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	path := writeTestFile(t, t.TempDir(), "f.csv", "a,b\n# \"not a quote\n1,x\"y\n2,3\n")
	for _, tc := range []struct {
		cfg  CSVSourceConfig
		want string
	}{
		{CSVSourceConfig{LazyQuotes: true, Comment: "#"}, "lazy_quotes"},
		{CSVSourceConfig{Comment: "#", Columns: []ColumnDef{{Name: "a", Type: "string"}, {Name: "b", Type: "string"}}}, "comment"},
	} {
		cfg := tc.cfg
		cfg.Path, cfg.Header, cfg.Delimiter, cfg.NullValues, cfg.InferRows = path, true, ",", []string{""}, 10
		f, err := buildFactory(CSVSourceSpec(), &cfg)
		if err != nil {
			t.Fatal(err)
		}
		var log bytes.Buffer
		ic := testIC(mem, "src", "csv", 0)
		ic.Settings.Threads = 4
		ic.Logger = slog.New(slog.NewTextHandler(&log, nil))
		c, err := runSource(f, ic)
		if cfg.LazyQuotes && err != nil {
			t.Errorf("%s: %v", tc.want, err)
		}
		c.release()
		if !strings.Contains(log.String(), "reading the file on one goroutine") || !strings.Contains(log.String(), "reason="+`"`+tc.want) {
			t.Errorf("%s: log %q", tc.want, log.String())
		}
	}
}

// TestTextParallelStop: a consumer that wants no more stops the workers
// and the reader; nothing leaks (the checked allocator ends at zero, and
// -race sees the goroutines end before Run returns).
func TestTextParallelStop(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	dir := t.TempDir()
	csvPath, _ := writeTradesCSV(t, dir, 20_000)
	ndPath, _ := writeTradesNDJSON(t, dir, 20_000)
	for _, tc := range []struct {
		spec engine.Spec
		cfg  any
	}{
		{CSVSourceSpec(), csvCfg(csvPath)},
		{NDJSONSourceSpec(), &NDJSONSourceConfig{Path: ndPath, InferRows: 10, UnknownKeys: "auto"}},
	} {
		f, err := buildFactory(tc.spec, tc.cfg)
		if err != nil {
			t.Fatal(err)
		}
		all, err := readTextWith(t, mem, f, 2, 0, 1000, 0)
		if err != nil || len(all) != 20_000 {
			t.Errorf("%s: %d rows, %v", tc.spec.Name, len(all), err)
		}
		for _, stop := range []int{1, 3} {
			rows, err := readTextWith(t, mem, f, 2, 4096, 100, stop)
			if err != nil || len(rows) == 0 || !slices.Equal(rows, all[:len(rows)]) {
				t.Errorf("%s, stop after %d batches: %d rows, %v", tc.spec.Name, stop, len(rows), err)
			}
		}
	}
}

// FuzzCSVParallel reads the same text serially and in parallel, cut into
// ranges of 1 to 64 bytes, and requires the same rows in the same order,
// or the same error. Seeds: testdata/fuzz/FuzzCSVParallel.
//
//	go test -run '^$' -fuzz FuzzCSVParallel -fuzztime 10m ./operators/
func FuzzCSVParallel(f *testing.F) {
	for _, s := range []string{
		"a,b\n1,\"x\ny\"\n2,3\n", "a,b\r\n1,\"\"\"\r\n\"\r\n", "\xEF\xBB\xBFa\n1\n", "a,b\n1,x\"y\n", "a\n\"\n", "a,b\n\n\n1,2",
		"a,b,c\n1,2\n", "a\n\"1\"\"\n\n\"\r\n2\n",
	} {
		f.Add(s, uint8(3), true)
	}
	f.Fuzz(func(t *testing.T, content string, size uint8, header bool) {
		path := writeTestFile(t, t.TempDir(), "f.csv", content)
		fac, err := buildFactory(CSVSourceSpec(), &CSVSourceConfig{Path: path, Header: header, Delimiter: ",", NullValues: []string{""}, InferRows: 3})
		if err != nil {
			return // refused at compile time: nothing to run
		}
		compareParallel(t, fac, []int{int(size)%64 + 1}, 2)
	})
}

// TestNDJSONParallel: ndjson files cut into ranges at every byte offset
// read as the serial reader reads them (escaped newlines and quotes in
// strings, blank lines, CRLF, a long line, no final newline) and fail
// with the same error, record and line (a bad value, a key that is not a
// column, a broken object, an object cut short at the end).
func TestNDJSONParallel(t *testing.T) {
	var lines strings.Builder
	for i := range 50 {
		fmt.Fprintf(&lines, "{\"i\":%d,\"s\":\"%s\\n\\\"}\\u00e9\",\"f\":%d.5}\n", i, strings.Repeat("{", i%5), i)
		if i%7 == 0 {
			lines.WriteString("\n  \r\n")
		}
	}
	every := []int{}
	for n := 1; n <= 48; n++ {
		every = append(every, n)
	}
	head := "{\"i\":1,\"s\":\"a\",\"f\":1.5}\n"
	for _, tc := range []struct {
		name, content string
		sizes         []int
	}{
		{"lines", lines.String(), every},
		{"crlf", strings.ReplaceAll(lines.String(), "\n", "\r\n"), every},
		{"no final newline", head + `{"i":2}`, every},
		{"long line", head + `{"s":"` + strings.Repeat("x\\n", 500_000) + "\"}\n" + head, []int{1, 4096, 1 << 20}},
		{"bad value", head + head + `{"i":"x"}` + "\n" + head, every},
		{"unknown key", head + "\n" + head + `{"i":3,"late":1}` + "\n" + head, every},
		{"broken", head + head + `{"i":3,}` + "\n" + head, every},
		{"cut short", head + head + `{"i":3`, every},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeTestFile(t, t.TempDir(), "f.ndjson", tc.content)
			f, err := buildFactory(NDJSONSourceSpec(), &NDJSONSourceConfig{Path: path, InferRows: 1, UnknownKeys: "auto"})
			if err != nil {
				t.Fatal(err)
			}
			compareParallel(t, f, tc.sizes, 4)
		})
	}
}

// FuzzNDJSONParallel is FuzzCSVParallel for ndjson.
//
//	go test -run '^$' -fuzz FuzzNDJSONParallel -fuzztime 60s ./operators/
func FuzzNDJSONParallel(f *testing.F) {
	for _, s := range []string{"{\"a\":1}\n{\"a\":2}\n", "{\"a\":\"x\\ny\"}\r\n\n{\"a\":null}", "{\"a\":1}\n{\"b\":2}\n", "{\"a\":1}\n{\"a\":"} {
		f.Add(s, uint8(3))
	}
	f.Fuzz(func(t *testing.T, content string, size uint8) {
		path := writeTestFile(t, t.TempDir(), "f.ndjson", content)
		fac, err := buildFactory(NDJSONSourceSpec(), &NDJSONSourceConfig{Path: path, InferRows: 2, UnknownKeys: "auto"})
		if err != nil {
			return
		}
		compareParallel(t, fac, []int{int(size)%64 + 1}, 2)
	})
}
