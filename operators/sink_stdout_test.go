package operators

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/zflowdev/zflow/engine"
)

func stdoutRun(t *testing.T, rows int64, cfg *StdoutConfig, cols ...GenerateColumn) string {
	t.Helper()
	mem := newMem()
	defer mem.AssertSize(t, 0)
	var out bytes.Buffer
	cfg.Out = &out
	_, err := runGraph(t, mem, 3,
		&engine.Node{ID: "gen", Kind: engine.KindSource, Type: "generate", Config: &GenerateConfig{Rows: rows, Seed: 1, Columns: cols}},
		&engine.Node{ID: "out", Kind: engine.KindSink, Type: "stdout", Config: cfg, Inputs: []string{"gen"}},
	)
	if err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func TestStdoutTable(t *testing.T) {
	cols := []GenerateColumn{
		{Name: "id", Type: "int64", Sequence: true, Min: 1, Max: 1000},
		{Name: "symbol", Type: "string", Values: []string{"AAPL", "MSFT", "a much longer value"}},
		{Name: "px", Type: "float64", Cardinality: 3, Min: 0.5, Max: 1000.5},
		{Name: "n", Type: "int32", NullRatio: 1},
	}
	got := stdoutRun(t, 10, &StdoutConfig{Format: "table", MaxRows: 4}, cols...)
	want := `id  symbol                  px     n
--  -------------------  -----  ----
 1  AAPL                 500.5  null
 2  a much longer value    0.5  null
 3  a much longer value  500.5  null
 4  a much longer value  500.5  null
… 6 more rows
`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if got := stdoutRun(t, 2, &StdoutConfig{Format: "table"}, cols[:1]...); got != "id\n--\n 1\n 2\n" {
		t.Errorf("all rows: %q", got)
	}
	if got := stdoutRun(t, 0, &StdoutConfig{Format: "table", MaxRows: 5}, cols[:2]...); got != "id  symbol\n--  ------\n(no rows)\n" {
		t.Errorf("no rows: %q", got)
	}
	if got := stdoutRun(t, 6, &StdoutConfig{Format: "table", MaxRows: 5}, cols[:1]...); !strings.HasSuffix(got, "… 1 more row\n") {
		t.Errorf("one more row: %q", got)
	}
}

func TestStdoutStreams(t *testing.T) {
	cols := []GenerateColumn{
		{Name: "id", Type: "int64", Sequence: true},
		{Name: "s", Type: "string", Values: []string{`q"uote`}},
	}
	if got := stdoutRun(t, 4, &StdoutConfig{Format: "csv"}, cols...); got != "id,s\n0,\"q\"\"uote\"\n1,\"q\"\"uote\"\n2,\"q\"\"uote\"\n3,\"q\"\"uote\"\n" {
		t.Errorf("csv: %q", got)
	}
	if got := stdoutRun(t, 0, &StdoutConfig{Format: "csv"}, cols...); got != "id,s\n" {
		t.Errorf("csv, no rows: %q", got)
	}
	if got := stdoutRun(t, 2, &StdoutConfig{Format: "ndjson"}, cols...); got != "{\"id\":0,\"s\":\"q\\\"uote\"}\n{\"id\":1,\"s\":\"q\\\"uote\"}\n" {
		t.Errorf("ndjson: %q", got)
	}
}

// TestStdoutTableAbort checks that a table is printed only on Commit.
func TestStdoutTableAbort(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	var out bytes.Buffer
	gf, _ := buildFactory(GenerateSpec(), testGenConfig(5))
	f, err := buildFactory(StdoutSpec(), &StdoutConfig{Format: "table", MaxRows: 20, Out: &out}, gf.Schema())
	if err != nil {
		t.Fatal(err)
	}
	var scratch []uint32
	rec, _ := gf.(*generateFactory).batch(mem, 0, 5, &scratch)
	defer rec.Release()
	op, _ := f.New(testIC(mem, "out", "stdout", 0))
	s := op.(engine.Sink)
	if err := s.Write(context.Background(), 0, rec); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.Abort()
	if err := s.Commit(); err != nil || out.Len() != 0 {
		t.Errorf("printed after Abort: %q, %v", out.String(), err)
	}
}

func TestDiscard(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	sum, err := runGraph(t, mem, 100,
		&engine.Node{ID: "gen", Kind: engine.KindSource, Type: "generate", Config: testGenConfig(1000)},
		&engine.Node{ID: "out", Kind: engine.KindSink, Type: "discard", Inputs: []string{"gen"}},
	)
	if err != nil {
		t.Fatal(err)
	}
	if o := sum.Op("out"); o.RowsIn != 1000 || o.BatchesIn != 10 || o.BytesCopied != 0 {
		t.Errorf("discard: %+v", o)
	}
}
