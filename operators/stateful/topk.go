package stateful

import (
	"container/heap"
	"context"
	"fmt"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/buffers"
	"github.com/zflowdev/zflow/engine"
)

// TopKConfig is the config of the top_k transform.
type TopKConfig struct {
	By []string `zflow:"by" required:"true" doc:"sort keys, as sort's: each an expression with ASC or DESC and NULLS FIRST or NULLS LAST (defaults ASC, NULLS LAST)" example:"[\"notional DESC NULLS LAST\"]"`
	K  int      `zflow:"k" required:"true" doc:"how many rows to keep: the first k in the by: order (≥ 1)" example:"100"`
}

// TopKSpec declares top_k: the first k rows of the input in the by:
// order, as sort followed by limit would give them (ties kept in input
// order), without sorting the input: a bounded heap of k rows, whose
// worst row every new row is compared with first (one integer compare
// for most rows, the prefix of sortkeys.go). One instance (its answer is
// one order): the work per row is that compare, far less than what
// produced the row.
//
// Memory: the rows in the heap point into the input batches they came
// from, which stay held (by reference); when the rows held in batches
// pass twice k plus a batch, the k rows are gathered into one batch and
// the rest let go. Held bytes are reserved on the budget; top_k does not
// spill (its state is bounded by k), and a k whose rows do not fit fails
// with the budget's error.
func TopKSpec() engine.Spec {
	return engine.Spec{
		Name: "top_k", Kind: engine.KindTransform, Parallel: false, MinInputs: 1, MaxInputs: 1,
		Summary:   "keep the first k rows by one or more keys (a bounded heap, no full sort)",
		Doc:       "Keys as sort's (DuckDB's ORDER BY: NULLS LAST by default, NaN above every number). Rows with equal keys keep their input order, so the answer is that of sort then limit k. Emitted when the input ends, sorted, in batches of settings.batch_rows (gathered: copies on the ledger as \"top_k gather\").",
		Example:   `{type: top_k, inputs: [with_notional], by: ["notional DESC NULLS LAST"], k: 100}`,
		NewConfig: func() any { return &TopKConfig{} },
		Build: func(bc *engine.BuildContext, c any) (engine.Factory, error) {
			cfg := c.(*TopKConfig)
			var errs engine.Errors
			if cfg.K < 1 {
				errs = append(errs, engine.Errf("k", "must be ≥ 1, got %d", cfg.K))
			} else if cfg.K > maxTopK {
				errs = append(errs, engine.Errf("k", "must be at most %d (use sort and limit for more), got %d", maxTopK, cfg.K))
			}
			keys, err := ParseSortKeys("by", cfg.By, bc.Inputs[0])
			if err != nil {
				errs = append(errs, err)
			}
			if len(errs) > 0 {
				return nil, errs
			}
			return &topKFactory{keys: keys, k: cfg.K, schema: bc.Inputs[0]}, nil
		},
	}
}

// maxTopK bounds k: the heap's positions hold a row number in 32 bits.
const maxTopK = 1 << 30

func init() { engine.Register(TopKSpec()) }

type topKFactory struct {
	keys   []SortKey
	k      int
	schema *arrow.Schema
}

func (f *topKFactory) Schema() *arrow.Schema { return f.schema }

// InputColumns: the columns read downstream and the keys' (engine.ColumnUser).
func (f *topKFactory) InputColumns(_ int, out []string) []string { return keyedColumns(f.keys, out) }
func (f *topKFactory) Describe() string {
	return fmt.Sprintf("k: %d, by: %s", f.k, describeKeys(f.keys))
}

func (f *topKFactory) New(ic *engine.InstanceContext) (any, error) {
	return &topK{ic: ic, keys: f.keys, k: f.k, schema: f.schema, mem: ic.Alloc, budget: ic.Budget,
		batchRows: batchRows(ic), order: newRowOrder(f.keys)}, nil
}

type topK struct {
	ic        *engine.InstanceContext
	keys      []SortKey
	k         int
	schema    *arrow.Schema
	mem       memory.Allocator
	budget    buffers.Budget
	batchRows int
	order     *rowOrder

	h        []entry     // max-heap: the worst row kept on top
	slots    []slotBatch // batches rows of h point into; nil rec once none does
	refs     []int       // per slot: rows of h in it
	held     int         // rows in the slots still held
	reserved []int64     // per slot: bytes reserved for it
	scratch  []entry     // Finish's sorted copy
	compacts int         // times the heap was gathered into one batch
}

// heap.Interface over h, worst first.
func (t *topK) Len() int           { return len(t.h) }
func (t *topK) Less(i, j int) bool { return t.order.cmpEntry(t.h[i], t.h[j]) > 0 }
func (t *topK) Swap(i, j int)      { t.h[i], t.h[j] = t.h[j], t.h[i] }
func (t *topK) Push(x any)         { t.h = append(t.h, x.(entry)) }
func (t *topK) Pop() any {
	x := t.h[len(t.h)-1]
	t.h = t.h[:len(t.h)-1]
	return x
}

func (t *topK) Process(ctx context.Context, _ int, in arrow.RecordBatch, _ engine.Emitter) error {
	n := int(in.NumRows())
	if n == 0 {
		return nil
	}
	keys, made, err := evalKeys(ctx, t.mem, t.keys, in)
	if err != nil {
		return err
	}
	slot := len(t.slots)
	t.order.set(slot, keys)
	took := 0
	for r := range n {
		p := t.order.prefix(slot, r)
		e := entry{p: p, pos: mkPos(slot, r)}
		if len(t.h) < t.k {
			heap.Push(t, e)
			took++
			continue
		}
		top := t.h[0]
		// A new row is later than every kept one: on equal keys it loses.
		if p > top.p || (p == top.p && t.order.cmpEntry(e, top) > 0) {
			continue
		}
		if top.slot() == slot {
			took-- // a row of this batch, pushed out by a later one
		} else {
			t.drop(top.slot())
		}
		t.h[0] = e
		heap.Fix(t, 0)
		took++
	}
	if took == 0 { // the next batch takes the slot over
		releaseAll(keys)
		return nil
	}
	need := engine.BatchBytes(in) + made
	if t.budget != nil {
		if err := t.budget.Reserve(need); err != nil {
			releaseAll(keys)
			// The slot's rows are in the heap: keep the batch held without a
			// reservation until compaction, which is due now.
			need = 0
			in.Retain()
			t.slots = append(t.slots, slotBatch{rec: in, keys: nil})
			t.refs = append(t.refs, took)
			t.reserved = append(t.reserved, 0)
			t.held += n
			if err := t.compact(ctx, true); err != nil {
				return fmt.Errorf("top_k: %d rows do not fit the memory budget: %w", t.k, err)
			}
			return nil
		}
	}
	in.Retain()
	t.slots = append(t.slots, slotBatch{rec: in, keys: keys})
	t.refs = append(t.refs, took)
	t.reserved = append(t.reserved, need)
	t.held += n
	if t.held > 2*t.k+t.batchRows {
		return t.compact(ctx, false)
	}
	return nil
}

// drop counts one row of slot s out of the heap, letting the batch go
// when it was the last.
func (t *topK) drop(s int) {
	t.refs[s]--
	if t.refs[s] == 0 {
		t.free(s)
	}
}

func (t *topK) free(s int) {
	sb := &t.slots[s]
	if sb.rec == nil {
		return
	}
	t.held -= int(sb.rec.NumRows())
	sb.rec.Release()
	releaseAll(sb.keys)
	sb.rec, sb.keys = nil, nil
	if t.budget != nil && t.reserved[s] > 0 {
		t.budget.Unreserve(t.reserved[s])
	}
	t.reserved[s] = 0
}

// compact gathers the heap's rows, in input order, into one batch that
// becomes slot 0, and lets every other batch go. Over budget (strict),
// the new batch must be reserved or it is an error.
func (t *topK) compact(ctx context.Context, strict bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t.compacts++
	// Input order of the kept rows = order of their positions.
	byPos := slices.Clone(t.h)
	slices.SortFunc(byPos, func(a, b entry) int {
		switch {
		case a.pos < b.pos:
			return -1
		case a.pos > b.pos:
			return 1
		}
		return 0
	})
	pos := make([]uint64, len(byPos))
	for i, e := range byPos {
		pos[i] = e.pos
	}
	recs := make([]arrow.RecordBatch, len(t.slots))
	for i, s := range t.slots {
		recs[i] = s.rec
	}
	g, err := newGatherer(t.mem, t.schema, nonNil(recs), t.ic.Ledger, "top_k gather")
	if err != nil {
		return err
	}
	// newGatherer numbers the held batches densely: map the slots.
	dense := make([]uint64, len(t.slots))
	d := uint64(0)
	for i, r := range recs {
		if r != nil {
			dense[i] = d
			d++
		}
	}
	for i, p := range pos {
		pos[i] = dense[p>>32]<<32 | uint64(uint32(p))
	}
	rec, err := g.take(t.mem, pos)
	g.release()
	if err != nil {
		return err
	}
	keys, made, err := evalKeys(ctx, t.mem, t.keys, rec)
	if err != nil {
		rec.Release()
		return err
	}
	need := engine.BatchBytes(rec) + made
	for s := range t.slots {
		t.free(s)
	}
	if t.budget != nil {
		if err := t.budget.Reserve(need); err != nil {
			if strict {
				rec.Release()
				releaseAll(keys)
				t.slots, t.refs, t.reserved, t.h = nil, nil, nil, nil
				return err
			}
			need = 0
		}
	}
	// Renumber: the kept rows are slot 0, rows 0.. in input order.
	newPos := map[uint64]uint64{}
	for i, e := range byPos {
		newPos[e.pos] = uint64(i)
	}
	for i := range t.h {
		t.h[i].pos = newPos[t.h[i].pos]
	}
	t.slots = []slotBatch{{rec: rec, keys: keys}}
	t.refs = []int{len(t.h)}
	t.reserved = []int64{need}
	t.held = int(rec.NumRows())
	t.order.set(0, keys)
	return nil
}

func nonNil(recs []arrow.RecordBatch) []arrow.RecordBatch {
	out := make([]arrow.RecordBatch, 0, len(recs))
	for _, r := range recs {
		if r != nil {
			out = append(out, r)
		}
	}
	return out
}

func (t *topK) Finish(ctx context.Context, out engine.Emitter) error {
	if len(t.h) == 0 {
		return nil
	}
	sorted := slices.Clone(t.h)
	slices.SortFunc(sorted, t.order.cmpEntry)
	recs := make([]arrow.RecordBatch, len(t.slots))
	dense := make([]uint64, len(t.slots))
	var d uint64
	for i, s := range t.slots {
		recs[i] = s.rec
		if s.rec != nil {
			dense[i] = d
			d++
		}
	}
	g, err := newGatherer(t.mem, t.schema, nonNil(recs), t.ic.Ledger, "top_k gather")
	if err != nil {
		return err
	}
	defer g.release()
	pos := make([]uint64, 0, t.batchRows)
	for i := 0; i < len(sorted); i += t.batchRows {
		if err := ctx.Err(); err != nil {
			return err
		}
		pos = pos[:0]
		for _, e := range sorted[i:min(i+t.batchRows, len(sorted))] {
			pos = append(pos, dense[e.slot()]<<32|uint64(uint32(e.pos)))
		}
		rec, err := g.take(t.mem, pos)
		if err != nil {
			return err
		}
		if err := out.Emit(rec); err != nil {
			return err
		}
	}
	return nil
}

// Release lets go of the batches held (engine.Releaser).
func (t *topK) Release() {
	for s := range t.slots {
		t.free(s)
	}
	t.slots, t.refs, t.reserved, t.h = nil, nil, nil, nil
}
