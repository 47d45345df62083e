package zflow_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/goleak"

	"github.com/zflowdev/zflow"
	"github.com/zflowdev/zflow/buffers"
	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/operators"
)

// The runtime seams: memory policy below the facade, operator-visible
// budgets, the open copy ledger.

// twinYAML and twinBuilder are the same pipeline, from a file and from Go.
const twinYAML = `
version: 1
name: twin
settings:
  batch_rows: 8192
  pin: true
  memory: {arena: plain, node: 0, budget: 256MiB}
sources:
  trades:
    type: generate
    seed: 5
    rows: 100000
    columns:
      - {name: sym, type: string, cardinality: 20, prefix: S}
      - {name: qty, type: int64, min: 1, max: 1000}
operators:
  big: {type: filter, inputs: [trades], where: "qty > 500"}
sinks:
  out: {type: discard, inputs: [big]}
`

func twinBuilder(t *testing.T, s engine.Settings) *zflow.Pipeline {
	t.Helper()
	p, err := zflow.New("twin").Settings(s).
		Source("trades", "generate", &operators.GenerateConfig{Seed: 5, Rows: 100000, Columns: []operators.GenerateColumn{
			{Name: "sym", Type: "string", Cardinality: 20, Prefix: "S"},
			{Name: "qty", Type: "int64", Min: 1, Max: 1000},
		}}).
		Transform("big", "filter", &operators.FilterConfig{Where: "qty > 500"}, "trades").
		Sink("out", "discard", nil, "big").
		Build()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func runLogged(t *testing.T, p *zflow.Pipeline, opts ...zflow.RunOption) (engine.Summary, string) {
	t.Helper()
	var logs lockedBuffer
	opts = append(opts, zflow.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))))
	sum, err := p.Run(context.Background(), opts...)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, logs.String())
	}
	return sum, logs.String()
}

// comparable is the part of a memory report two runs of the same pipeline
// must agree on (the peak depends on scheduling).
func comparableReport(m *engine.MemoryReport) engine.MemoryReport {
	c := *m
	c.Peak = 0
	return c
}

// TestBuilderMatchesYAML: a pipeline built in Go with the same settings as
// a file gets the same arena, budget, node, pinning and memory report; and
// with no settings at all both get the default hugepage arena.
func TestBuilderMatchesYAML(t *testing.T) {
	defer goleak.VerifyNone(t)
	fromFile, err := zflow.Parse([]byte(twinYAML), "twin.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := engine.DefaultSettings()
	s.BatchRows, s.Pin = 8192, true
	s.Memory = buffers.PoolConfig{Kind: "plain", Bind: true, Node: 0, Budget: 256 << 20, Prefault: true}
	fromGo := twinBuilder(t, s)

	if a, b := fromFile.Plan().Info["memory"], fromGo.Plan().Info["memory"]; a != b || !strings.Contains(a, "arena plain, node 0, budget 256MiB") {
		t.Errorf("plans describe memory differently:\n file: %s\n go:   %s", a, b)
	}
	sumFile, logsFile := runLogged(t, fromFile)
	sumGo, logsGo := runLogged(t, fromGo)
	if sumFile.Memory == nil || sumGo.Memory == nil {
		t.Fatalf("memory reports: %v %v", sumFile.Memory, sumGo.Memory)
	}
	t.Logf("file: %+v", *sumFile.Memory)
	t.Logf("go:   %+v", *sumGo.Memory)
	if a, b := comparableReport(sumFile.Memory), comparableReport(sumGo.Memory); !reflect.DeepEqual(a, b) {
		t.Errorf("memory reports differ:\n file: %+v\n go:   %+v", a, b)
	}
	m := sumGo.Memory
	if m.Arena != "plain" || m.Node != 0 || m.Budget != 256<<20 || m.Mapped == 0 || m.Peak == 0 || len(m.Operators) != 3 {
		t.Errorf("go report: %+v", *m)
	}
	for _, id := range []string{"trades", "big", "out"} {
		for _, logs := range []string{logsFile, logsGo} {
			if !strings.Contains(logs, fmt.Sprintf(`pin: operator \"%s\" on node 0`, id)) {
				t.Errorf("no pin line for %s in:\n%s", id, logs)
			}
		}
		a, b := sumFile.Op(id).Memory, sumGo.Op(id).Memory
		if a == nil || b == nil || a.Pool != "plain" || b.Pool != "plain" {
			t.Errorf("%s: op memory %+v %+v", id, a, b)
		}
	}
	if sumFile.Op("out").RowsIn != sumGo.Op("out").RowsIn || sumGo.Op("out").RowsIn == 0 {
		t.Errorf("rows differ: %d %d", sumFile.Op("out").RowsIn, sumGo.Op("out").RowsIn)
	}

	// Nothing said: both run on the default arena.
	bare, err := zflow.Parse([]byte(strings.Replace(twinYAML, "  pin: true\n  memory: {arena: plain, node: 0, budget: 256MiB}\n", "", 1)), "bare.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s0 := engine.Settings{BatchRows: 8192}
	a, _ := runLogged(t, bare)
	b, _ := runLogged(t, twinBuilder(t, s0))
	if a.Memory.Arena != "hugepage" || b.Memory.Arena != "hugepage" || a.Memory.Page != b.Memory.Page || a.Memory.Node != -1 || b.Memory.Node != -1 {
		t.Errorf("default memory: file %+v, go %+v", *a.Memory, *b.Memory)
	}
}

// Test operators, registered once for the tests below.

// holdAll keeps every input batch and emits them all from Finish,
// reporting them as passed by reference.
type holdAll struct {
	ic   *engine.InstanceContext
	held []arrow.RecordBatch
}

func (h *holdAll) Process(_ context.Context, _ int, in arrow.RecordBatch, _ engine.Emitter) error {
	in.Retain()
	h.held = append(h.held, in)
	return nil
}

func (h *holdAll) Finish(_ context.Context, out engine.Emitter) error {
	for i, b := range h.held {
		h.held[i] = nil
		h.ic.Ledger.Referenced("held until the end", engine.BatchBytes(b))
		if err := out.Emit(b); err != nil {
			for _, r := range h.held[i+1:] {
				r.Release()
			}
			h.held = nil
			return err
		}
	}
	h.held = nil
	return nil
}

func (h *holdAll) Release() {
	for _, b := range h.held {
		if b != nil {
			b.Release()
		}
	}
}

// delayOne emits each batch one call late (held across calls), and the
// current one's first column in a batch of its own (shared with the
// input: the engine counts that part).
type delayOne struct {
	ic   *engine.InstanceContext
	prev arrow.RecordBatch
}

func (d *delayOne) Process(_ context.Context, _ int, in arrow.RecordBatch, out engine.Emitter) error {
	if d.prev != nil {
		p := d.prev
		d.prev = nil
		d.ic.Ledger.Referenced("held one call", engine.BatchBytes(p))
		if err := out.Emit(p); err != nil {
			return err
		}
	}
	in.Retain()
	d.prev = in
	return nil
}

func (d *delayOne) Finish(_ context.Context, out engine.Emitter) error {
	if d.prev == nil {
		return nil
	}
	p := d.prev
	d.prev = nil
	d.ic.Ledger.Referenced("held one call", engine.BatchBytes(p))
	return out.Emit(p)
}

func (d *delayOne) Release() {
	if d.prev != nil {
		d.prev.Release()
	}
}

// greedy allocates from a goroutine it starts itself, under engine.Group:
// over its budget that goroutine's Allocate panics, and the group turns
// the panic into the operator's error. It first checks that a
// reservation over the budget is refused without a panic.
type greedy struct{ ic *engine.InstanceContext }

func (g *greedy) Process(ctx context.Context, _ int, in arrow.RecordBatch, out engine.Emitter) error {
	if err := g.ic.Budget.Reserve(g.ic.Budget.Available() + 1); !errors.Is(err, buffers.ErrBudgetExceeded) {
		return fmt.Errorf("a reservation over the budget gave %v", err)
	}
	grp := g.ic.Group(ctx)
	grp.Go(func(context.Context) error {
		b := g.ic.Alloc.Allocate(4 << 20) // over the 1 MiB budget: panics
		g.ic.Alloc.Free(b)
		return nil
	})
	if err := grp.Wait(); err != nil {
		return err
	}
	in.Retain()
	return out.Emit(in)
}

type fnFactory struct {
	schema func() *arrow.Schema
	mk     func(ic *engine.InstanceContext) any
}

func (f fnFactory) Schema() *arrow.Schema                       { return f.schema() }
func (f fnFactory) New(ic *engine.InstanceContext) (any, error) { return f.mk(ic), nil }
func passSchema(bc *engine.BuildContext) func() *arrow.Schema {
	return func() *arrow.Schema { return bc.Inputs[0] }
}
func registerPass(name string, mk func(ic *engine.InstanceContext) any) {
	if err := zflow.Register(engine.Spec{
		Name: name, Kind: engine.KindTransform, Summary: "test operator", MinInputs: 1, MaxInputs: 1,
		NewConfig: func() any { return &struct{}{} },
		Build: func(bc *engine.BuildContext, _ any) (engine.Factory, error) {
			return fnFactory{schema: passSchema(bc), mk: mk}, nil
		},
	}); err != nil {
		panic(err)
	}
}

func init() {
	registerPass("test_hold_all", func(ic *engine.InstanceContext) any { return &holdAll{ic: ic} })
	registerPass("test_delay_one", func(ic *engine.InstanceContext) any { return &delayOne{ic: ic} })
	registerPass("test_greedy", func(ic *engine.InstanceContext) any { return &greedy{ic: ic} })
}

const ledgerYAML = `
version: 1
name: ledger
settings: {batch_rows: 4096}
sources:
  trades:
    type: generate
    seed: 9
    rows: 50000
    columns:
      - {name: sym, type: string, cardinality: 20, prefix: S}
      - {name: qty, type: int64, min: 1, max: 1000}
operators:
  late: {type: test_delay_one, inputs: [trades]}
  held: {type: test_hold_all, inputs: [late]}
  big:  {type: filter, inputs: [held], where: "qty > 500"}
sinks:
  out: {type: discard, inputs: [big]}
`

// TestLedgerHeldAndFinish: batches held across calls and batches emitted
// from Finish are by reference (as their operators report), not created;
// a filter's output is partly copied; the summary's columns add up and the
// spans say the same.
func TestLedgerHeldAndFinish(t *testing.T) {
	defer goleak.VerifyNone(t)
	p, err := zflow.Parse([]byte(ledgerYAML), "ledger.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	checked := memory.NewCheckedAllocator(memory.NewGoAllocator())
	sum, _ := runLogged(t, p, zflow.WithAllocator(checked), zflow.WithTracerProvider(tp))
	checked.AssertSize(t, 0)
	for _, id := range []string{"late", "held"} {
		o := sum.Op(id)
		if o.BytesOut == 0 || o.BytesRef != o.BytesOut || o.BytesNew != 0 || o.BytesCopied != 0 {
			t.Errorf("%s: out %d ref %d created %d copied %d: held batches must be all by reference", id, o.BytesOut, o.BytesRef, o.BytesNew, o.BytesCopied)
		}
	}
	if r := sum.Op("late").References; r["held one call"] != sum.Op("late").BytesOut {
		t.Errorf("late's reasons: %v", r)
	}
	if r := sum.Op("held").References; r["held until the end"] != sum.Op("held").BytesOut {
		t.Errorf("held's reasons: %v", r)
	}
	big := sum.Op("big")
	if big.BytesOut == 0 || big.BytesRef+big.BytesCopied+big.BytesNew != big.BytesOut {
		t.Errorf("big: out %d ≠ ref %d + copied %d + created %d", big.BytesOut, big.BytesRef, big.BytesCopied, big.BytesNew)
	}
	src := sum.Op("trades")
	if src.BytesNew != src.BytesOut || src.BytesRef != 0 {
		t.Errorf("generate: out %d created %d ref %d", src.BytesOut, src.BytesNew, src.BytesRef)
	}
	spanTotals(t, rec.Ended(), sum)
}

// spanTotals checks that the instance spans' byte attributes add up to the
// summary's, node by node.
func spanTotals(t *testing.T, spans []sdktrace.ReadOnlySpan, sum engine.Summary) {
	t.Helper()
	type fig struct{ out, ref, copied, created int64 }
	got := map[string]*fig{}
	for _, s := range spans {
		var id string
		var f fig
		for _, a := range s.Attributes() {
			switch a.Key {
			case engine.AttrOperatorID:
				id = a.Value.AsString()
			case engine.AttrBytesOut:
				f.out = a.Value.AsInt64()
			case engine.AttrBytesRef:
				f.ref = a.Value.AsInt64()
			case engine.AttrBytesCopied:
				f.copied = a.Value.AsInt64()
			case engine.AttrBytesCreated:
				f.created = a.Value.AsInt64()
			}
		}
		if id == "" || strings.HasPrefix(s.Name(), "batch ") {
			continue
		}
		if got[id] == nil {
			got[id] = &fig{}
		}
		g := got[id]
		g.out, g.ref, g.copied, g.created = g.out+f.out, g.ref+f.ref, g.copied+f.copied, g.created+f.created
	}
	for _, o := range sum.Ops {
		g := got[o.ID]
		if g == nil {
			t.Errorf("no span for %s", o.ID)
			continue
		}
		want := fig{o.BytesOut, o.BytesRef, o.BytesCopied, o.BytesNew}
		if *g != want {
			t.Errorf("%s: spans say %+v, summary %+v", o.ID, *g, want)
		}
	}
}

// TestOperatorBudget: a node's own memory.budget holds it alone (the
// error names it and says whose budget), a reservation beyond it is
// refused without a panic, and a goroutine the operator starts itself that
// allocates over the budget fails the run with an error instead of
// crashing the process.
func TestOperatorBudget(t *testing.T) {
	defer goleak.VerifyNone(t)
	t.Run("own limit", func(t *testing.T) {
		p, err := zflow.Parse([]byte(strings.Replace(ledgerYAML,
			`big:  {type: filter, inputs: [held], where: "qty > 500"}`,
			`big:  {type: filter, inputs: [held], where: "qty > 500", memory: {budget: 16KiB}}`, 1)), "budget.yaml")
		if err != nil {
			t.Fatal(err)
		}
		checked := memory.NewCheckedAllocator(memory.NewGoAllocator())
		sum, err := p.Run(context.Background(), zflow.WithAllocator(checked))
		checked.AssertSize(t, 0)
		var be *buffers.BudgetError
		var oe *engine.OpError
		if !errors.As(err, &be) || !errors.As(err, &oe) || oe.Op != "big" || !be.Own || be.Limit != 16<<10 {
			t.Fatalf("want big's own budget error, got %v", err)
		}
		if !strings.Contains(err.Error(), `operator "big" asked for`) || !strings.Contains(err.Error(), "of its own 16 KiB budget in use") {
			t.Errorf("message: %v", err)
		}
		if m := sum.Op("big").Memory; m == nil || m.Limit != 16<<10 || m.Peak > 16<<10 {
			t.Errorf("big's memory: %+v", m)
		}
		if m := sum.Op("held").Memory; m == nil || m.Limit != 0 {
			t.Errorf("held's memory: %+v", m)
		}
	})
	t.Run("goroutine over budget", func(t *testing.T) {
		p, err := zflow.Parse([]byte(strings.Replace(ledgerYAML,
			`late: {type: test_delay_one, inputs: [trades]}`,
			`late: {type: test_greedy, inputs: [trades], memory: {budget: 1MiB}}`, 1)), "greedy.yaml")
		if err != nil {
			t.Fatal(err)
		}
		for _, kind := range []string{"caller", "plain"} {
			var opts []zflow.RunOption
			checked := memory.NewCheckedAllocator(memory.NewGoAllocator())
			if kind == "caller" {
				opts = append(opts, zflow.WithAllocator(checked))
			}
			_, err = p.Run(context.Background(), opts...)
			checked.AssertSize(t, 0)
			var be *buffers.BudgetError
			var oe *engine.OpError
			if !errors.As(err, &be) || !errors.As(err, &oe) || oe.Op != "late" || !be.Own || be.Asked != 4<<20 {
				t.Fatalf("%s: want late's budget error from its goroutine, got %v", kind, err)
			}
		}
	})
	t.Run("run budget on the heap", func(t *testing.T) {
		p, err := zflow.Parse([]byte(strings.Replace(ledgerYAML, "settings: {batch_rows: 4096}",
			"settings: {batch_rows: 4096, memory: {arena: heap, budget: 512KiB}}", 1)), "heap.yaml")
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.Run(context.Background())
		var be *buffers.BudgetError
		if !errors.As(err, &be) || be.Own || be.Limit != 512<<10 {
			t.Fatalf("want the run's budget error, got %v", err)
		}
	})
}

// TestLedgerReasonsCheap: the ledger's hot path takes no lock and makes
// no allocation once a reason is known.
func TestLedgerReasonsCheap(t *testing.T) {
	l := engine.NewLedger()
	l.Copied("gather", 1)
	l.Referenced("held", 1)
	n := testing.AllocsPerRun(1000, func() {
		l.Copied("gather", 10)
		l.Referenced("held", 10)
	})
	if n != 0 {
		t.Fatalf("%v allocations per report", n)
	}
	if c, r := l.Copies(), l.References(); !maps.Equal(c, map[string]int64{"gather": 10011}) || !maps.Equal(r, map[string]int64{"held": 10011}) {
		t.Fatalf("copies %v refs %v", c, r)
	}
}

// TestPathClashes: two sinks on one file, or a sink on a file a source
// reads, are compile errors on both nodes — through a symlink too, and on
// the Go path as on the YAML one.
func TestPathClashes(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.csv")
	if err := os.WriteFile(in, []byte("a\n1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.csv")
	if err := os.Symlink(in, link); err != nil {
		t.Fatal(err)
	}
	_, err := zflow.New("clash").
		Source("src", "csv", &operators.CSVSourceConfig{Path: in}).
		Sink("out", "csv", &operators.CSVSinkConfig{Path: link}, "src").
		Build()
	if err == nil || !strings.Contains(err.Error(), `out.path: source "src" reads this file`) || !strings.Contains(err.Error(), `src.path: sink "out" writes this file`) {
		t.Fatalf("got %v", err)
	}
	_, err = zflow.New("clash2").
		Source("src", "csv", &operators.CSVSourceConfig{Path: in}).
		Sink("a", "csv", &operators.CSVSinkConfig{Path: filepath.Join(dir, "o.csv")}, "src").
		Sink("b", "parquet", &operators.ParquetSinkConfig{Path: filepath.Join(dir, "x", "..", "o.csv")}, "src").
		Build()
	if err == nil || !strings.Contains(err.Error(), `b.path: sink "a" writes the same file`) {
		t.Fatalf("got %v", err)
	}
}
