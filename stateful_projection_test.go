package zflow_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow"
)

// TestStatefulProjection: the stateful operators tell the engine which
// columns they read (engine.ColumnUser), so a Parquet source under them
// reads only those — the keys, the arguments, what passes through to a
// consumer that reads it, and a left column a needed right column's
// suffix depends on — and the narrowed pipelines still run.
func TestStatefulProjection(t *testing.T) {
	dir := t.TempDir()
	gen := fmt.Sprintf(`version: 1
name: gen
sources:
  t: {type: generate, rows: 5000, seed: 3, columns: [
      {name: id, type: int64, sequence: true},
      {name: k, type: int64, min: 0, max: 99},
      {name: s, type: string, cardinality: 30},
      {name: v, type: float64},
      {name: q, type: int64, min: 1, max: 9},
      {name: ts, type: timestamp}]}
  dim: {type: generate, rows: 100, seed: 4, columns: [
      {name: k, type: int64, sequence: true},
      {name: s, type: string, cardinality: 5},
      {name: w, type: float64}]}
sinks:
  tp: {type: parquet, inputs: [t], path: %s}
  dp: {type: parquet, inputs: [dim], path: %s}
`, filepath.Join(dir, "t.parquet"), filepath.Join(dir, "dim.parquet"))
	run(t, gen)
	sources := fmt.Sprintf(`version: 1
name: proj
sources:
  t: {type: parquet, path: %s}
`, filepath.Join(dir, "t.parquet"))
	dimSource := fmt.Sprintf("  dim: {type: parquet, path: %s}\n", filepath.Join(dir, "dim.parquet"))
	cases := []struct {
		name, ops, sinkIn string
		want              map[string]string // source → how its columns line starts ("" when it reads all)
	}{
		{"aggregate", `  a: {type: aggregate, inputs: [t], group_by: ["k % 10 AS b"], aggregates: {n: "count(*)", sv: "sum(v) FILTER (WHERE q > 2)"}}
`, "a", map[string]string{"t": "3 of 6 (projection: k, v, q)"}},
		{"count only", `  a: {type: aggregate, inputs: [t], aggregates: {n: "count(*)"}}
`, "a", map[string]string{"t": "1 of 6 (projection: id)"}},
		{"join then project", `  j: {type: join, inputs: [t, dim], how: left, "on": [k]}
  p: {type: project, inputs: [j], columns: [id, s_right]}
`, "p", map[string]string{"t": "3 of 6 (projection: id, k, s)", "dim": "2 of 3 (projection: k, s)"}},
		{"sort then project", `  o: {type: sort, inputs: [t], by: ["v DESC", ts]}
  p: {type: project, inputs: [o], columns: [id]}
`, "p", map[string]string{"t": "3 of 6 (projection: id, v, ts)"}},
		{"top_k then aggregate", `  o: {type: top_k, inputs: [t], by: ["q * v DESC"], k: 10}
  a: {type: aggregate, inputs: [o], group_by: [s], aggregates: {n: "count(*)"}}
`, "a", map[string]string{"t": "3 of 6 (projection: s, v, q)"}},
		{"sort to the sink", `  o: {type: sort, inputs: [t], by: [k]}
`, "o", map[string]string{"t": ""}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			y := sources
			if _, ok := c.want["dim"]; ok {
				y += dimSource
			}
			y += "operators:\n" + c.ops + fmt.Sprintf("sinks:\n  out: {type: parquet, inputs: [%s], path: %s}\n",
				c.sinkIn, filepath.Join(t.TempDir(), "out.parquet"))
			p, err := zflow.Parse([]byte(y), c.name+".yaml")
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range p.Plan().Describe().Nodes {
				want, ok := c.want[n.ID]
				if ok && ((n.Columns == "") != (want == "") || !strings.HasPrefix(n.Columns, want)) {
					t.Errorf("source %s: columns %q, want %q", n.ID, n.Columns, want)
				}
			}
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			if _, err := p.Run(t.Context(), zflow.WithAllocator(mem)); err != nil {
				t.Fatalf("run: %v", err)
			}
			mem.AssertSize(t, 0)
		})
	}
}

func run(t *testing.T, y string) {
	t.Helper()
	p, err := zflow.Parse([]byte(y), "gen.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// TestParquetOverBudget: a Parquet source whose row group does not fit
// the run's memory budget fails with the budget's error, not as if the
// file were malformed (the decoder's panic over the budget used to read
// "malformed input").
func TestParquetOverBudget(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "t.parquet")
	run(t, fmt.Sprintf(`version: 1
name: gen
sources:
  t: {type: generate, rows: 200000, seed: 5, columns: [{name: id, type: int64, sequence: true}, {name: s, type: string, cardinality: 100000}]}
sinks:
  out: {type: parquet, inputs: [t], path: %s}
`, path))
	p, err := zflow.Parse([]byte(fmt.Sprintf(`version: 1
name: tight
settings:
  memory: {budget: 1MiB}
sources:
  t: {type: parquet, path: %s}
sinks:
  out: {type: discard, inputs: [t]}
`, path)), "tight.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Run(t.Context())
	if err == nil || !strings.Contains(err.Error(), "memory budget exceeded") || strings.Contains(err.Error(), "malformed") {
		t.Fatalf("run: %v, want the budget's error", err)
	}
}
