package stateful

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/buffers"
	"github.com/zflowdev/zflow/engine"
)

// This file holds sort runs: a set of batches sorted in memory by several
// goroutines, the gather that builds output batches from the sorted
// order with arrow's take, and the k-way merge of sorted streams (the
// parts sorted in parallel, and spilled runs read back).

// memRun is the batches of one run and their key arrays, slot i for
// batch i (its arrival order).
type memRun struct {
	batches []arrow.RecordBatch
	keys    [][]arrow.Array
	rows    int
}

func (r *memRun) add(rec arrow.RecordBatch, keys []arrow.Array) {
	rec.Retain()
	r.batches = append(r.batches, rec)
	r.keys = append(r.keys, keys)
	r.rows += int(rec.NumRows())
}

func (r *memRun) release() {
	for i, b := range r.batches {
		b.Release()
		releaseAll(r.keys[i])
	}
	r.batches, r.keys, r.rows = nil, nil, 0
}

// sortedParts sorts the run's rows: the entries are cut into parts
// (workers of them), each sorted by its own goroutine of g, and the
// result is the sorted parts, to be merged (mergeParts). Entries come
// from the Go heap; the operator's reservation covers them (16 bytes a
// row).
func sortedParts(ctx context.Context, ic *engine.InstanceContext, o *rowOrder, r *memRun, workers int) ([][]entry, error) {
	for i, k := range r.keys {
		o.set(i, k)
	}
	ents := make([]entry, r.rows)
	// Part boundaries on batch boundaries when there are enough batches,
	// else on rows: either way contiguous, in input order.
	parts := max(1, min(workers, r.rows/4096))
	bounds := make([]int, parts+1)
	for p := range parts + 1 {
		bounds[p] = r.rows * p / parts
	}
	g := ic.Group(ctx)
	for p := range parts {
		g.Go(func(ctx context.Context) error {
			lo, hi := bounds[p], bounds[p+1]
			// Find the slot of row lo.
			s, base := 0, 0
			for base+int(r.batches[s].NumRows()) <= lo {
				base += int(r.batches[s].NumRows())
				s++
			}
			for i := lo; i < hi; {
				n := int(r.batches[s].NumRows())
				for row := i - base; row < n && i < hi; row++ {
					ents[i] = entry{p: o.prefix(s, row), pos: mkPos(s, row)}
					i++
				}
				base += n
				s++
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			slices.SortFunc(ents[lo:hi], o.cmpEntry)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := make([][]entry, parts)
	for p := range parts {
		out[p] = ents[bounds[p]:bounds[p+1]]
	}
	return out, nil
}

// partMerge yields the entries of sorted parts in order.
type partMerge struct {
	o     *rowOrder
	parts [][]entry
	h     []int // heap of part indexes, by their first entry
}

func newPartMerge(o *rowOrder, parts [][]entry) *partMerge {
	m := &partMerge{o: o, parts: parts}
	for i, p := range parts {
		if len(p) > 0 {
			m.h = append(m.h, i)
		}
	}
	heap.Init(m)
	return m
}

func (m *partMerge) Len() int { return len(m.h) }
func (m *partMerge) Less(i, j int) bool {
	return m.o.cmpEntry(m.parts[m.h[i]][0], m.parts[m.h[j]][0]) < 0
}
func (m *partMerge) Swap(i, j int) { m.h[i], m.h[j] = m.h[j], m.h[i] }
func (m *partMerge) Push(x any)    { m.h = append(m.h, x.(int)) }
func (m *partMerge) Pop() any {
	x := m.h[len(m.h)-1]
	m.h = m.h[:len(m.h)-1]
	return x
}

// next fills dst with up to len(dst) next positions and returns how
// many.
func (m *partMerge) next(dst []uint64) int {
	n := 0
	if len(m.parts) == 1 { // one part: no merge
		p := m.parts[0]
		for n < len(dst) && n < len(p) {
			dst[n] = p[n].pos
			n++
		}
		m.parts[0] = p[n:]
		return n
	}
	for n < len(dst) && len(m.h) > 0 {
		top := m.h[0]
		p := m.parts[top]
		dst[n] = p[0].pos
		n++
		m.parts[top] = p[1:]
		if len(p) == 1 {
			heap.Pop(m)
		} else {
			heap.Fix(m, 0)
		}
	}
	return n
}

// gatherer builds output batches from rows of a set of batches (slots):
// each column gathered from its chunks (gather.go). A dictionary column
// whose chunks have different dictionaries is concatenated once up front
// (arrow unifies the dictionaries), on the ledger as "sort gather".
type gatherer struct {
	schema *arrow.Schema
	cols   [][]arrow.Array // per column, its chunk per slot (one chunk when concatenated)
	flat   []bool          // the column was concatenated: rows are global
	starts []int64         // the first global row of each slot
	ledger *engine.Ledger
	reason string // the ledger's reason for the copies
	gpos   []uint64
}

func newGatherer(mem memory.Allocator, schema *arrow.Schema, batches []arrow.RecordBatch, ledger *engine.Ledger, reason string) (*gatherer, error) {
	g := &gatherer{schema: schema, starts: make([]int64, len(batches)), ledger: ledger, reason: reason,
		cols: make([][]arrow.Array, schema.NumFields()), flat: make([]bool, schema.NumFields())}
	var at int64
	for i, b := range batches {
		g.starts[i] = at
		at += b.NumRows()
	}
	for c := range schema.NumFields() {
		chunks := make([]arrow.Array, len(batches))
		for i, b := range batches {
			chunks[i] = b.Column(c)
			chunks[i].Retain()
		}
		g.cols[c] = chunks
		if schema.Field(c).Type.ID() != arrow.DICTIONARY || sameDictionary(chunks) {
			continue
		}
		flat, err := array.Concatenate(chunks, mem)
		if err != nil {
			g.release()
			return nil, fmt.Errorf("sort: gather column %s: %w", schema.Field(c).Name, err)
		}
		ledger.Copied(reason, engine.ArrayBytes(flat.Data()))
		releaseAll(chunks)
		g.cols[c], g.flat[c] = []arrow.Array{flat}, true
	}
	return g, nil
}

func sameDictionary(chunks []arrow.Array) bool {
	for _, c := range chunks[1:] {
		if c.Data().Dictionary() != chunks[0].Data().Dictionary() { // not Dictionary(): it caches, a racing write
			return false
		}
	}
	return true
}

func (g *gatherer) release() {
	for _, c := range g.cols {
		releaseAll(c)
	}
	g.cols = nil
}

// take returns a new batch of the rows at pos (slot<<32 | row), in that
// order; its bytes go on the ledger under the gatherer's reason.
//
// An allocation over a hard budget (a panic with a *buffers.BudgetError)
// comes back as that error, with nothing of the batch left allocated.
func (g *gatherer) take(mem memory.Allocator, pos []uint64) (_ arrow.RecordBatch, err error) {
	cols := make([]arrow.Array, len(g.cols))
	defer func() {
		if r := recover(); r != nil {
			releaseAll(cols)
			e, ok := r.(error)
			if !ok || !errors.Is(e, buffers.ErrBudgetExceeded) {
				panic(r)
			}
			err = fmt.Errorf("sort: gather %d rows: %w", len(pos), e)
		}
	}()
	var copied int64
	for c, chunks := range g.cols {
		p := pos
		if g.flat[c] {
			g.gpos = g.gpos[:0]
			for _, x := range pos {
				g.gpos = append(g.gpos, uint64(g.starts[x>>32]+int64(uint32(x))))
			}
			p = g.gpos
		}
		a, err := gatherArray(mem, g.schema.Field(c).Type, chunks, p)
		if err != nil {
			releaseAll(cols[:c])
			return nil, fmt.Errorf("sort: gather column %s: %w", g.schema.Field(c).Name, err)
		}
		cols[c] = a
		copied += engine.ArrayBytes(a.Data())
	}
	g.ledger.Copied(g.reason, copied)
	rec := array.NewRecordBatch(g.schema, cols, int64(len(pos)))
	releaseAll(cols)
	return rec, nil
}

// runMerge merges sorted streams of batches (spilled runs read back) into
// one order: a heap of cursors by their current row; ties go to the
// earlier stream, which holds earlier input, so the merge is stable.
// Rows picked refer to slots: a cursor's current batch is a slot; when
// it moves to its next batch the old one stays in its slot until the
// output batch that refers to it is gathered (flush).
type runMerge struct {
	ctx    context.Context
	mem    memory.Allocator
	keys   []SortKey
	o      *rowOrder
	schema *arrow.Schema
	ledger *engine.Ledger
	curs   []*cursor
	h      []*cursor
	slots  []slotBatch
	pos    []uint64
	// maxSlots is the most batches held at once: past it the rows picked
	// are gathered (flush), and the batches no cursor is on let go.
	maxSlots int
}

type slotBatch struct {
	rec  arrow.RecordBatch
	keys []arrow.Array
}

type cursor struct {
	idx  int // the stream's place in the merge (its input order)
	next func() (arrow.RecordBatch, error)
	rec  arrow.RecordBatch
	slot int
	row  int
	p    uint64
}

func newRunMerge(ctx context.Context, mem memory.Allocator, keys []SortKey, schema *arrow.Schema, ledger *engine.Ledger, streams []func() (arrow.RecordBatch, error), batchRows, maxSlots int) (*runMerge, error) {
	m := &runMerge{ctx: ctx, mem: mem, keys: keys, o: newRowOrder(keys), schema: schema, ledger: ledger,
		pos: make([]uint64, 0, batchRows), maxSlots: max(maxSlots, len(streams)+1)}
	for i, next := range streams {
		c := &cursor{idx: i, next: next}
		m.curs = append(m.curs, c)
		ok, err := m.load(c)
		if err != nil {
			m.release()
			return nil, err
		}
		if ok {
			m.h = append(m.h, c)
		}
	}
	heap.Init(m)
	return m, nil
}

// load reads the cursor's next non-empty batch into a new slot; false at
// the stream's end.
func (m *runMerge) load(c *cursor) (bool, error) {
	for {
		rec, err := c.next()
		if err == io.EOF {
			c.rec = nil
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if rec.NumRows() == 0 {
			rec.Release()
			continue
		}
		keys, _, err := evalKeys(m.ctx, m.mem, m.keys, rec)
		if err != nil {
			rec.Release()
			return false, err
		}
		c.rec, c.row, c.slot = rec, 0, len(m.slots)
		m.slots = append(m.slots, slotBatch{rec: rec, keys: keys})
		m.o.set(c.slot, keys)
		c.p = m.o.prefix(c.slot, 0)
		return true, nil
	}
}

func (m *runMerge) Len() int { return len(m.h) }
func (m *runMerge) Less(i, j int) bool {
	a, b := m.h[i], m.h[j]
	if a.p != b.p {
		return a.p < b.p
	}
	if c := m.o.tie(a.p, a.slot, a.row, b.slot, b.row); c != 0 {
		return c < 0
	}
	return a.idx < b.idx
}
func (m *runMerge) Swap(i, j int) { m.h[i], m.h[j] = m.h[j], m.h[i] }
func (m *runMerge) Push(x any)    { m.h = append(m.h, x.(*cursor)) }
func (m *runMerge) Pop() any {
	x := m.h[len(m.h)-1]
	m.h = m.h[:len(m.h)-1]
	return x
}

// run merges everything, handing each output batch (of up to batchRows
// rows) to emit, which takes ownership.
func (m *runMerge) run(emit func(arrow.RecordBatch) error) error {
	for len(m.h) > 0 {
		c := m.h[0]
		m.pos = append(m.pos, mkPos(c.slot, c.row))
		c.row++
		if c.row < int(c.rec.NumRows()) {
			c.p = m.o.prefix(c.slot, c.row)
			heap.Fix(m, 0)
		} else {
			ok, err := m.load(c)
			if err != nil {
				return err
			}
			if ok {
				heap.Fix(m, 0)
			} else {
				heap.Pop(m)
			}
		}
		if len(m.pos) == cap(m.pos) || len(m.h) == 0 || len(m.slots) >= m.maxSlots {
			if err := m.flush(emit); err != nil {
				return err
			}
		}
	}
	return m.flush(emit)
}

// flush gathers the rows picked so far into a batch, then drops the
// slots no cursor is on and renumbers the rest.
func (m *runMerge) flush(emit func(arrow.RecordBatch) error) error {
	if len(m.pos) > 0 {
		if err := m.ctx.Err(); err != nil {
			return err
		}
		recs := make([]arrow.RecordBatch, len(m.slots))
		for i, s := range m.slots {
			recs[i] = s.rec
		}
		g, err := newGatherer(m.mem, m.schema, recs, m.ledger, "sort gather")
		if err != nil {
			return err
		}
		out, err := g.take(m.mem, m.pos)
		g.release()
		if err != nil {
			return err
		}
		m.pos = m.pos[:0]
		if err := emit(out); err != nil {
			return err
		}
	}
	keep := m.slots[:0]
	live := map[int]int{}
	for _, c := range m.curs {
		if c.rec != nil {
			live[c.slot] = -1
		}
	}
	for i, s := range m.slots {
		if _, ok := live[i]; ok {
			live[i] = len(keep)
			keep = append(keep, s)
		} else {
			s.rec.Release()
			releaseAll(s.keys)
		}
	}
	clear(m.slots[len(keep):])
	m.slots = keep
	for _, c := range m.curs {
		if c.rec != nil {
			c.slot = live[c.slot]
		}
	}
	for i, s := range m.slots {
		m.o.set(i, s.keys)
	}
	return nil
}

func (m *runMerge) release() {
	for _, s := range m.slots {
		s.rec.Release()
		releaseAll(s.keys)
	}
	m.slots = nil
	m.h = nil
}
