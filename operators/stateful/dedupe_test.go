package stateful

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"

	"github.com/zflowdev/zflow/buffers"
	"github.com/zflowdev/zflow/engine"
)

// collect is an Emitter that keeps what it is given.
type collect struct{ got []arrow.RecordBatch }

func (c *collect) Emit(b arrow.RecordBatch) error { c.got = append(c.got, b); return nil }

func (c *collect) release() {
	for _, b := range c.got {
		b.Release()
	}
	c.got = nil
}

// rows renders the batches' rows as "v1|v2|…", in order.
func (c *collect) rows() []string {
	var out []string
	for _, b := range c.got {
		for i := range int(b.NumRows()) {
			var cells []string
			for _, col := range b.Columns() {
				cells = append(cells, col.ValueStr(i))
			}
			out = append(out, strings.Join(cells, "|"))
		}
	}
	return out
}

func testContext(mem memory.Allocator, node string) *engine.InstanceContext {
	return &engine.InstanceContext{Node: node, Type: node, Count: 1, Alloc: mem,
		Logger: slog.New(slog.DiscardHandler), Ledger: engine.NewLedger(), Settings: engine.DefaultSettings()}
}

// idBatch is a batch of (id int64, s string), ids as given (-1 is null).
func idBatch(mem memory.Allocator, ids ...int64) arrow.RecordBatch {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "s", Type: arrow.BinaryTypes.String},
	}, nil)
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	for i, id := range ids {
		if id < 0 {
			b.Field(0).AppendNull()
		} else {
			b.Field(0).(*array.Int64Builder).Append(id)
		}
		b.Field(1).(*array.StringBuilder).Append(fmt.Sprintf("r%d", i))
	}
	return b.NewRecordBatch()
}

func newDedupe(t *testing.T, mem memory.Allocator, cfg *DedupeConfig, in *arrow.Schema, budget buffers.Budget) (*dedupe, error) {
	t.Helper()
	f, err := DedupeSpec().Build(&engine.BuildContext{Node: "dd", Inputs: []*arrow.Schema{in}, Settings: engine.DefaultSettings()}, cfg)
	if err != nil {
		return nil, err
	}
	ic := testContext(mem, "dd")
	ic.Budget = budget
	op, err := f.New(ic)
	if err != nil {
		return nil, err
	}
	return op.(*dedupe), nil
}

// Duplicates within a batch and across batches are dropped, the first of
// each key passes, in order; a null key is a key like any other; a batch
// of new keys only passes by reference.
func TestDedupe(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	b1 := idBatch(mem, 1, 2, 1, -1, 3, -1)
	b2 := idBatch(mem, 3, 4, 2, 5)
	b3 := idBatch(mem, 6, 7)
	defer b1.Release()
	defer b2.Release()
	defer b3.Release()
	d, err := newDedupe(t, mem, &DedupeConfig{By: []string{"id"}, MaxBytes: 8 << 20}, b1.Schema(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var out collect
	defer out.release()
	for _, b := range []arrow.RecordBatch{b1, b2, b3} {
		if err := d.Process(context.Background(), 0, b, &out); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Finish(context.Background(), &out); err != nil {
		t.Fatal(err)
	}
	d.Release()
	want := "1|r0 2|r1 (null)|r3 3|r4 4|r1 5|r3 6|r0 7|r1"
	if got := strings.Join(out.rows(), " "); got != want {
		t.Fatalf("dedupe passed\n%s\nwant\n%s", got, want)
	}
	if out.got[len(out.got)-1] != b3 {
		t.Error("a batch of new keys only was copied, not passed by reference")
	}
	if d.dropped != 4 {
		t.Errorf("dropped %d rows, want 4", d.dropped)
	}
}

// With a TTL a key is forgotten after it: its duplicate passes again.
func TestDedupeTTL(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	b := idBatch(mem, 1)
	defer b.Release()
	d, err := newDedupe(t, mem, &DedupeConfig{By: []string{"id", "s"}, MaxBytes: 1 << 20, TTL: 50 * time.Millisecond}, b.Schema(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Release()
	var out collect
	defer out.release()
	for range 2 {
		if err := d.Process(context.Background(), 0, b, &out); err != nil {
			t.Fatal(err)
		}
	}
	if len(out.rows()) != 1 {
		t.Fatalf("within the ttl: %v passed", out.rows())
	}
	// ristretto's expiry is checked on Get against the key's deadline.
	time.Sleep(120 * time.Millisecond)
	if err := d.Process(context.Background(), 0, b, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.rows()) != 2 {
		t.Fatalf("after the ttl: %v passed, want the row again", out.rows())
	}
}

// testBudget is a budget with a limit, as a node's memory: budget gives.
type testBudget struct {
	buffers.Budget
	used, limit int64
}

func (b *testBudget) Reserve(n int64) error {
	if b.used+n > b.limit {
		return &buffers.BudgetError{Owner: "dd", Own: true, Asked: n, InUse: b.used, Limit: b.limit}
	}
	b.used += n
	return nil
}
func (b *testBudget) Unreserve(n int64) { b.used -= n }

// The cache is charged to the budget when the operator starts and given
// back when it ends; one that does not fit is a clear error.
func TestDedupeBudget(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := memory.NewGoAllocator()
	b := idBatch(mem, 1)
	defer b.Release()
	budget := &testBudget{limit: 4 << 20}
	_, err := newDedupe(t, mem, &DedupeConfig{By: []string{"id"}, MaxBytes: 8 << 20}, b.Schema(), budget)
	if !errors.Is(err, buffers.ErrBudgetExceeded) || !strings.Contains(err.Error(), "lower max_bytes") {
		t.Fatalf("a cache over the budget: %v", err)
	}
	d, err := newDedupe(t, mem, &DedupeConfig{By: []string{"id"}, MaxBytes: 2 << 20}, b.Schema(), budget)
	if err != nil {
		t.Fatal(err)
	}
	if budget.used < 2<<20 {
		t.Fatalf("the cache charged %d bytes, max_bytes is 2 MiB", budget.used)
	}
	d.Release()
	if budget.used != 0 {
		t.Fatalf("%d bytes still charged after Release", budget.used)
	}
}

// Bad configs get errors naming the parameter.
func TestDedupeConfigErrors(t *testing.T) {
	mem := memory.NewGoAllocator()
	b := idBatch(mem, 1)
	defer b.Release()
	for _, c := range []struct {
		cfg  DedupeConfig
		want string
	}{
		{DedupeConfig{By: []string{"idd"}, MaxBytes: 1 << 20}, `by.0: no column "idd" in the input, did you mean "id"?`},
		{DedupeConfig{By: []string{"id", "id"}, MaxBytes: 1 << 20}, `by.1: column "id" is listed twice`},
		{DedupeConfig{By: []string{"id"}, MaxBytes: 1000}, "max_bytes: want at least 1 MiB"},
		{DedupeConfig{By: []string{"id"}, MaxBytes: 1 << 20, TTL: -time.Second}, "ttl: must be 0"},
		{DedupeConfig{MaxBytes: 1 << 20}, "by: name at least one key column"},
	} {
		_, err := newDedupe(t, mem, &c.cfg, b.Schema(), nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
}
