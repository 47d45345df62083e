//go:build linux

package zflow_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"

	"github.com/zflowdev/zflow"
	"github.com/zflowdev/zflow/buffers"
	"github.com/zflowdev/zflow/engine"
)

// arenaPipeline: generate → filter → project → parquet, allocating from the
// arena settings.memory describes.
const arenaPipeline = `
version: 1
name: arena
settings:
  batch_rows: 16384
  memory: {%s}
sources:
  trades:
    type: generate
    seed: 3
    rows: %d
    columns:
      - {name: sym, type: string, cardinality: 50, prefix: S}
      - {name: qty, type: int64, min: 1, max: 1000}
      - {name: price, type: float64, min: 1, max: 100}
operators:
  big: {type: filter, inputs: [trades], where: "qty > 100"}
  notional: {type: project, inputs: [big], columns: [sym, "price * qty AS notional"], parallelism: 2}
sinks:
  out: {type: parquet, inputs: [notional], path: out.parquet}
`

func runArena(t *testing.T, memSettings string, rows int) (engine.Summary, error, string) {
	t.Helper()
	t.Chdir(t.TempDir())
	p, err := zflow.Parse([]byte(fmt.Sprintf(arenaPipeline, memSettings, rows)), "arena.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	sum, err := p.Run(context.Background(), zflow.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))))
	goleak.VerifyNone(t)
	return sum, err, logs.String()
}

// TestArenaRun runs a pipeline on each arena kind: the same rows come out as
// on the Go heap, the summary says what the kernel gave, and the arena
// closes with nothing outstanding (a leak would be logged as an error).
func TestArenaRun(t *testing.T) {
	heap, err, _ := runArena(t, "arena: heap", 200000)
	if err != nil {
		t.Fatal(err)
	}
	if m := heap.Memory; m == nil || m.Arena != "heap" || m.Mapped != 0 || m.Peak == 0 || len(m.Operators) != 4 {
		t.Fatalf("heap run's memory report: %+v", heap.Memory)
	}
	for _, kind := range []string{"hugepage", "thp", "plain"} {
		t.Run(kind, func(t *testing.T) {
			sum, err, logs := runArena(t, "arena: "+kind, 200000)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(logs, "level=ERROR") {
				t.Fatalf("errors logged:\n%s", logs)
			}
			m := sum.Memory
			if m == nil || m.Mapped == 0 || m.Peak == 0 {
				t.Fatalf("memory report %+v", m)
			}
			if got, want := sum.Op("out").RowsIn, heap.Op("out").RowsIn; got != want {
				t.Fatalf("%d rows reached the sink, %d on the heap", got, want)
			}
			var total int64
			for _, n := range m.ByBacking {
				total += n
			}
			if total != m.Mapped {
				t.Fatalf("by backing %v does not add up to mapped %d", m.ByBacking, m.Mapped)
			}
			if kind == "plain" && (m.ByBacking["plain"] != m.Mapped || m.Huge != 0) {
				t.Fatalf("plain arena got %+v", m)
			}
			if kind == "hugepage" && m.ByBacking["hugetlb"] == 0 && len(m.Fallbacks) == 0 {
				t.Fatalf("hugepage arena got no hugetlb pages and says no why: %+v", m)
			}
			t.Logf("%s: %+v", kind, *m)
		})
	}
}

// TestArenaChecked runs the examples' allocations through the arena under
// arrow's checked allocator: zero bytes outstanding at the end.
func TestArenaChecked(t *testing.T) {
	a, err := buffers.New(buffers.ArenaConfig{Kind: buffers.KindTHP, Node: buffers.NoNode, Prefault: true})
	if err != nil {
		t.Fatal(err)
	}
	mem := memory.NewCheckedAllocator(a)
	p, err := zflow.Load(filepath.Join(repoRoot, "pipelines/examples/quickstart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	if _, err := p.Run(context.Background(), zflow.WithAllocator(mem)); err != nil {
		t.Fatal(err)
	}
	mem.AssertSize(t, 0)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestHardBudget: a run that needs more than its hard budget fails with an
// error naming the operator and the sizes, and publishes nothing.
func TestHardBudget(t *testing.T) {
	_, err, _ := runArena(t, "arena: thp, budget: 4MiB", 2000000)
	var be *buffers.BudgetError
	if !errors.As(err, &be) {
		t.Fatalf("want a BudgetError, got %v", err)
	}
	var oe *engine.OpError
	if !errors.As(err, &oe) || oe.Op != be.Owner {
		t.Fatalf("the error names operator %q, the budget error %q: %v", oe.Op, be.Owner, err)
	}
	msg := err.Error()
	for _, want := range []string{fmt.Sprintf("operator %q", be.Owner), "memory budget exceeded", "of 4 MiB in use", "asked for"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "panic") {
		t.Errorf("a budget error is reported as a panic: %s", msg)
	}
	t.Log(msg)
}

// TestSoftBudget: under a soft budget well below what the run would hold,
// allocations wait for frees (backpressure) and the run completes with the
// same output.
func TestSoftBudget(t *testing.T) {
	free, err, _ := runArena(t, "arena: thp", 300000)
	if err != nil {
		t.Fatal(err)
	}
	soft, err, logs := runArena(t, "arena: thp, soft_budget: 3MiB", 300000)
	if err != nil {
		t.Fatalf("soft budget run failed: %v\n%s", err, logs)
	}
	if soft.Op("out").RowsIn != free.Op("out").RowsIn {
		t.Fatalf("rows %d vs %d", soft.Op("out").RowsIn, free.Op("out").RowsIn)
	}
	if soft.Memory.SoftWaits == 0 {
		t.Fatalf("no allocation waited at the soft budget: %+v (unbounded peak %d)", soft.Memory, free.Memory.Peak)
	}
	t.Logf("soft budget 3 MiB: %d waits, peak %d (without: peak %d)", soft.Memory.SoftWaits, soft.Memory.Peak, free.Memory.Peak)
}
