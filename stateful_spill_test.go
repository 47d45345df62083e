package zflow_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"

	"github.com/zflowdev/zflow"
	"github.com/zflowdev/zflow/engine"
)

// TestStatefulSpillFailures is the other half of issue 14's must-show 2:
// a stateful operator that has spilled and then fails — a bad row
// upstream while it still takes input, a bad row downstream while it
// emits, or the run's context cancelled once it has written spill files —
// leaves no spill file behind, the checked allocator at zero and no output
// file. Each operator runs over large6's t (12000 rows) with the spilling
// rerun's budget; a bad row is a CAST of 'x' to INTEGER at one id, which
// fails the run at that row, as a malformed value in a real file would.
func TestStatefulSpillFailures(t *testing.T) {
	defer goleak.VerifyNone(t)
	ds := diffDataSets[5]
	if ds.name != "large6" {
		t.Fatalf("diffDataSets[5] is %s, want large6", ds.name)
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	dataDir := t.TempDir()
	writeDataSet(t, mem, ds, dataDir)
	mem.AssertSize(t, 0)
	tmp, outRoot := t.TempDir(), t.TempDir()
	t.Setenv("TMPDIR", tmp) // t.TempDir would now be under it: outputs go under outRoot
	outDir := func(t *testing.T) string {
		d, err := os.MkdirTemp(outRoot, "out")
		if err != nil {
			t.Fatal(err)
		}
		return d
	}

	// The operators, each reading "in" (t, or t with a bad row) and with
	// state large enough to spill under diffSpillBudget: the sort keeps all
	// of t; the aggregate, distinct and the window have a group per distinct
	// hs (the window's, in each of 30 days); the join builds on t.
	ops := []struct{ typ, cfg string }{
		{"sort", `{type: sort, inputs: [in], by: [k, "v DESC"]}`},
		{"aggregate", `{type: aggregate, inputs: [in], group_by: [hs], aggregates: {n: "count(*)", sv: "sum(v)"}}`},
		{"join", `{type: join, inputs: [dim, in], how: inner, on: [k]}`},
		{"distinct", `{type: distinct, inputs: [in], by: [hs]}`},
		{"window", `{type: window, inputs: [in], time: ts, size: 24h, watermark: 1000000h, group_by: [hs], aggregates: {n: "count(*)", sv: "sum(v)"}}`},
	}
	for _, op := range ops {
		t.Run(op.typ, func(t *testing.T) {
			if _, err := engine.DefaultRegistry.Lookup(engine.KindTransform, op.typ); err != nil {
				t.Skipf("pending: operator type %s is not registered", op.typ)
			}
			if why, no := diffNoSpillYet[op.typ]; no {
				t.Skipf("%s cannot spill yet: %s", op.typ, why)
			}
			// The bad id is past the first spill (about 1280 rows of t fill
			// the budget) and before the end of the input.
			const badID = 7000
			bad := fmt.Sprintf(`CAST(CASE WHEN id = %d THEN 'x' ELSE '1' END AS INTEGER)`, badID)
			for _, tc := range []struct {
				name     string
				upstream string
				down     string
			}{
				{"bad row upstream", `{type: project, inputs: [t], columns: ["*", "` + bad + ` AS bad"]}`, ""},
				{"bad row downstream", `{type: filter, inputs: [t], where: "true"}`, downstreamBad(op.typ)},
			} {
				t.Run(tc.name, func(t *testing.T) {
					out := filepath.Join(outDir(t), "out.parquet")
					y := spillPipeline(dataDir, out, tc.upstream, op.cfg, tc.down)
					p, err := zflow.Parse([]byte(y), op.typ+".yaml")
					if err != nil {
						t.Fatalf("%v\n%s", err, y)
					}
					checked := memory.NewCheckedAllocator(memory.NewGoAllocator())
					sum, err := p.Run(context.Background(), zflow.WithAllocator(checked))
					if err == nil || !strings.Contains(err.Error(), "'x'") {
						t.Errorf("want the bad row's CAST error, got %v\n%s", err, y)
					}
					checkLeftovers(t, checked, tmp, out)
					t.Logf("%s: spill files before the failure: %d; error: %v", op.typ, spillFiles(sum.Op("op")), err)
				})
			}
			t.Run("cancel mid-spill", func(t *testing.T) {
				out := filepath.Join(outDir(t), "out.parquet")
				// A slow upstream would make this surer; instead the run is
				// cancelled as soon as the summary shows a spill file, and a
				// run that ends before that fails the test.
				y := spillPipeline(dataDir, out, `{type: filter, inputs: [t], where: "true"}`, op.cfg, "")
				p, err := zflow.Parse([]byte(y), op.typ+".yaml")
				if err != nil {
					t.Fatal(err)
				}
				checked := memory.NewCheckedAllocator(memory.NewGoAllocator())
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				x := p.Start(ctx, zflow.WithAllocator(checked))
				tick := time.NewTicker(200 * time.Microsecond)
				defer tick.Stop()
				spilled := false
			poll:
				for {
					select {
					case <-x.Done():
						break poll
					case <-tick.C:
						snap := x.Snapshot()
						if spillFiles(snap.Op("op")) > 0 {
							spilled = true
							cancel()
							break poll
						}
					}
				}
				_, err = x.Wait()
				switch {
				case !spilled:
					t.Errorf("the run ended (error %v) before the summary showed a spill file", err)
				case !errors.Is(err, context.Canceled):
					t.Errorf("cancelled mid-spill: want context.Canceled, got %v", err)
				}
				if err == nil {
					os.Remove(out) // a run that succeeded published it
				}
				checkLeftovers(t, checked, tmp, out)
			})
		})
	}
}

// downstreamBad is a project after the operator whose CAST fails on its
// first output row, so the operator fails while it emits.
func downstreamBad(typ string) string {
	col := "id"
	if typ == "aggregate" || typ == "window" {
		col = "n"
	}
	return `{type: project, inputs: [op], columns: ["*", "CAST(CASE WHEN ` + col + ` IS NULL THEN '1' ELSE 'x' END AS INTEGER) AS bad"]}`
}

// spillPipeline is t → in (upstream) → op (with diffSpillBudget) → down
// (when not "") → a parquet sink to out, with dim as a second source.
func spillPipeline(dataDir, out, upstream, op, down string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "version: 1\nname: spill_failure\nsettings: {batch_rows: %d}\n", diffSpillBatchRows)
	fmt.Fprintf(&b, "sources:\n  t: {type: parquet, path: %q}\n", filepath.Join(dataDir, "t.parquet"))
	if strings.Contains(op, "dim") {
		fmt.Fprintf(&b, "  dim: {type: parquet, path: %q}\n", filepath.Join(dataDir, "dim.parquet"))
	}
	op = strings.TrimSuffix(op, "}") + ", memory: {budget: " + diffSpillBudget + "}}"
	fmt.Fprintf(&b, "operators:\n  in: %s\n  op: %s\n", upstream, op)
	last := "op"
	if down != "" {
		fmt.Fprintf(&b, "  down: %s\n", down)
		last = "down"
	}
	fmt.Fprintf(&b, "sinks:\n  out: {type: parquet, inputs: [%s], path: %q}\n", last, out)
	return b.String()
}

// checkLeftovers fails t when a failed run left bytes on the allocator, a
// file in the temporary directory, or its output file.
func checkLeftovers(t *testing.T, checked *memory.CheckedAllocator, tmp, out string) {
	t.Helper()
	if n := checked.CurrentAlloc(); n != 0 {
		t.Errorf("%d bytes still allocated after the failed run", n)
	}
	if left := filesUnder(tmp); len(left) > 0 {
		t.Errorf("the failed run left %s in the temporary directory", strings.Join(left, ", "))
		for _, f := range left {
			os.RemoveAll(filepath.Join(tmp, f))
		}
	}
	if left := filesUnder(filepath.Dir(out)); len(left) > 0 {
		t.Errorf("the failed run left %s beside its output", strings.Join(left, ", "))
	}
}
