package stateful

import (
	"context"
	"fmt"
	"math"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/buffers"
	"github.com/zflowdev/zflow/engine"
)

// SortConfig is the config of the sort transform.
type SortConfig struct {
	By []string `zflow:"by" required:"true" doc:"sort keys, most significant first: each an expression (a column, or computed like price * qty) with ASC or DESC and NULLS FIRST or NULLS LAST; the defaults are DuckDB's, ASC and NULLS LAST" example:"[symbol, ts DESC]"`
}

// entryBytes is the state a buffered row costs beside its batch: its
// sort entry (16 bytes) and its share of the gather's index (8).
const entryBytes = 24

// SortSpec declares sort: one total order of its whole input, so one
// instance (Parallel false), which sorts with settings.threads
// goroutines and merges their parts.
//
// Memory: the sort keeps its input batches by reference (no copy) with
// the key arrays it computed, and charges their bytes, and 24 bytes a
// row of sort state, to its budget with a reservation (buffers.Budget)
// before it takes a batch. When the budget says no, the rows held so far
// are sorted and written out as a run (spill.go), and the batches let go;
// at the end the runs are merged, several passes when they are more than
// the memory left can read at once. The batches it makes (output and
// runs) are cut to outRows, so that those in flight downstream take at
// most a quarter of the budget; a merge pass reads as many runs as the
// rest holds a batch of (plan), so a budget of a few batches suffices. The batches it holds were allocated
// by the operators upstream, so in a shared pool their bytes count both
// there and in the sort's reservation: the sort spills early rather than
// let its producer hit the pool's limit.
func SortSpec() engine.Spec {
	return engine.Spec{
		Name: "sort", Kind: engine.KindTransform, Parallel: false, MinInputs: 1, MaxInputs: 1,
		Summary:   "sort all rows by one or more keys (stable; spills sorted runs to disk over its memory budget)",
		Doc:       "Keys are compared as DuckDB's ORDER BY does: NULLS LAST unless NULLS FIRST, whatever the direction; -0 = 0; NaN above every number. Equal keys keep their input order. The output is emitted when the input ends, in batches of settings.batch_rows (fewer rows when the batches in flight downstream would take more than a quarter of the sort's budget), gathered with arrow's take (copies on the ledger as \"sort gather\"). Over its budget (memory: budget: on the node, or the run's) it writes sorted runs as Arrow IPC files under settings.spill.dir and merges them; the plan says where, the summary how much.",
		Example:   `{type: sort, inputs: [trades], by: [symbol, "ts DESC", "price * qty DESC NULLS FIRST"]}`,
		NewConfig: func() any { return &SortConfig{} },
		Build: func(bc *engine.BuildContext, c any) (engine.Factory, error) {
			cfg := c.(*SortConfig)
			keys, err := ParseSortKeys("by", cfg.By, bc.Inputs[0])
			if err != nil {
				return nil, err
			}
			if _, err := ipcOptions(bc.Settings.Spill); err != nil {
				return nil, engine.Errf("settings.spill.compression", "%v", err)
			}
			return &sortFactory{keys: keys, schema: bc.Inputs[0], spill: bc.Settings.Spill}, nil
		},
	}
}

func init() { engine.Register(SortSpec()) }

type sortFactory struct {
	keys   []SortKey
	schema *arrow.Schema
	spill  engine.SpillSettings
}

func (f *sortFactory) Schema() *arrow.Schema { return f.schema }
func (f *sortFactory) Describe() string      { return "by: " + describeKeys(f.keys) }

// InputColumns: the columns read downstream and the keys' (engine.ColumnUser).
func (f *sortFactory) InputColumns(_ int, out []string) []string { return keyedColumns(f.keys, out) }

// DescribeSpill says where the sort may spill (engine.SpillDescriber).
func (f *sortFactory) DescribeSpill() string { return DescribeSpill("sorted runs", f.spill) }

func describeKeys(keys []SortKey) string {
	s := make([]string, len(keys))
	for i, k := range keys {
		s[i] = k.String()
	}
	return strings.Join(s, ", ")
}

func (f *sortFactory) New(ic *engine.InstanceContext) (any, error) {
	return &sorter{ic: ic, keys: f.keys, schema: f.schema, mem: ic.Alloc, budget: ic.Budget,
		batchRows: batchRows(ic), spill: NewSpiller(ic, ic.Alloc), order: newRowOrder(f.keys)}, nil
}

func batchRows(ic *engine.InstanceContext) int {
	if ic.Settings.BatchRows > 0 {
		return ic.Settings.BatchRows
	}
	return engine.DefaultSettings().BatchRows
}

type sorter struct {
	ic        *engine.InstanceContext
	keys      []SortKey
	schema    *arrow.Schema
	mem       memory.Allocator
	budget    buffers.Budget // nil: no limit (unit tests without a pool)
	batchRows int
	order     *rowOrder

	run      memRun
	reserved int64
	spill    *Spiller
	runs     []*Run

	perRow      int64 // the most bytes an input row took, for headroom
	keyRow      int64 // the most bytes a row's computed keys took
	spilledRuns int   // runs written from memory
	mergePasses int   // merge passes that wrote a run (before the last)
}

// fits charges n more bytes to the budget when they fit and leave head
// bytes available (room for the batches the sort will make: gathered
// output, read-back runs), or charges nothing and says no.
func (s *sorter) fits(n, head int64) bool {
	if s.budget == nil {
		s.reserved += n
		return true
	}
	if err := s.budget.Reserve(n); err != nil {
		return false
	}
	if s.budget.Available() < head {
		s.budget.Unreserve(n)
		return false
	}
	s.reserved += n
	return true
}

func (s *sorter) unreserve() {
	if s.budget != nil && s.reserved > 0 {
		s.budget.Unreserve(s.reserved)
	}
	s.reserved = 0
}

// capacity is the bytes the sort may have in use at once: what it has
// reserved and what its budget has left; math.MaxInt64 without a budget.
func (s *sorter) capacity() int64 {
	if s.budget == nil {
		return math.MaxInt64
	}
	avail := s.budget.Available()
	if avail > math.MaxInt64-s.reserved { // no limit (Available is MaxInt64)
		return math.MaxInt64
	}
	return s.reserved + avail
}

// edgeBatches is how many output batches may be alive at once outside
// the sort: an edge holds settings.edge_capacity of them, its consumer
// one more and may queue consumerQueue more, and one is being gathered.
func (s *sorter) edgeBatches() int64 {
	edge := s.ic.Settings.EdgeCapacity
	if edge <= 0 {
		edge = engine.DefaultSettings().EdgeCapacity
	}
	return int64(edge + 2 + consumerQueue)
}

// consumerQueue is how many batches past the one it works on a consumer
// may still hold: the Parquet sink queues 4 per column for its encoders
// and encodes a fifth. Output batches stay on the account of the
// operator that made them until then (a 128 KiB budget failed without
// this when the encoders fell behind).
const consumerQueue = 5

// outRows is the rows of a batch the sort makes (output, and the batches
// of its runs): settings.batch_rows, or fewer when the batches in flight
// (edgeBatches) would take more than a quarter of what the sort may use,
// at least 1. Output batches are charged to the sort's account until
// their consumer lets them go, so a budget that holds a few batches
// still sees the sort through, in small batches.
func (s *sorter) outRows() int {
	c := s.capacity()
	if c == math.MaxInt64 {
		return s.batchRows
	}
	fit := c / 4 / s.edgeBatches() / max(s.perRow, 1)
	return int(min(int64(s.batchRows), max(fit, 1)))
}

// headroom is the room the sort keeps free for the batches it makes
// rather than holds: edgeBatches of outRows rows of perRow bytes.
func (s *sorter) headroom(perRow int64) int64 {
	return s.edgeBatches() * perRow * int64(s.outRows())
}

func (s *sorter) Process(ctx context.Context, _ int, in arrow.RecordBatch, _ engine.Emitter) error {
	if in.NumRows() == 0 {
		return nil
	}
	keys, made, err := evalKeys(ctx, s.mem, s.keys, in)
	if err != nil {
		return err
	}
	need := engine.BatchBytes(in) + made + entryBytes*in.NumRows()
	s.perRow = max(s.perRow, engine.BatchBytes(in)/in.NumRows()+1)
	s.keyRow = max(s.keyRow, made/in.NumRows()+1)
	head := s.headroom(s.perRow)
	if !s.fits(need, head) {
		if s.run.rows > 0 {
			if err := s.spillRun(ctx); err != nil {
				releaseAll(keys)
				return err
			}
		}
		if !s.fits(need, head) {
			// Even alone the batch is over the budget: it is held for the
			// call anyway; sort it and write it out at once.
			s.run.add(in, keys)
			return s.spillRun(ctx)
		}
	}
	s.run.add(in, keys)
	return nil
}

// sortRun sorts the rows held and calls emit with batches of rows rows,
// in order.
func (s *sorter) sortRun(ctx context.Context, rows int, emit func(arrow.RecordBatch) error) error {
	if s.run.rows == 0 {
		return nil
	}
	parts, err := sortedParts(ctx, s.ic, s.order, &s.run, s.ic.Workers())
	if err != nil {
		return err
	}
	g, err := newGatherer(s.mem, s.schema, s.run.batches, s.ic.Ledger, "sort gather")
	if err != nil {
		return err
	}
	defer g.release()
	m := newPartMerge(s.order, parts)
	pos := make([]uint64, rows)
	for {
		n := m.next(pos)
		if n == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		out, err := g.take(s.mem, pos[:n])
		if err != nil {
			return err
		}
		if err := emit(out); err != nil {
			return err
		}
	}
}

// spillRun sorts the rows held, writes them out as a run and lets them
// go.
func (s *sorter) spillRun(ctx context.Context) error {
	r, err := s.spill.WriteRun(ctx, s.schema, func(emit func(arrow.RecordBatch) error) error {
		return s.sortRun(ctx, s.spillRows(), emit)
	})
	if err != nil {
		return err
	}
	s.runs = append(s.runs, r)
	s.spilledRuns++
	s.run.release()
	s.unreserve()
	return nil
}

func (s *sorter) Finish(ctx context.Context, out engine.Emitter) error {
	emit := func(b arrow.RecordBatch) error { return out.Emit(b) }
	if len(s.runs) == 0 {
		err := s.sortRun(ctx, s.outRows(), emit)
		s.run.release()
		s.unreserve()
		return err
	}
	if s.run.rows > 0 {
		if err := s.spillRun(ctx); err != nil {
			return err
		}
	}
	return s.mergeRuns(ctx, emit)
}

// spillRows is the rows of a batch written to a run: outRows, so that
// the merge can read a batch of several runs at once beside the output.
func (s *sorter) spillRows() int { return s.outRows() }

// maxFanIn caps the runs merged at once.
const maxFanIn = 64

// mergePlan is how one merge pass uses memory.
type mergePlan struct {
	fanIn    int // runs read at once: at least 2, at most maxFanIn
	maxSlots int // run batches held at once (each run's current one, and those the output still refers to)
	rows     int // rows of an output batch
}

// plan sizes the merge of runs from what the budget has left: the output
// batches in flight (edgeBatches of rows rows) come first, then a batch
// of each run read back (with its keys), one more for the run that
// moves on, and, when there is room, more old batches before a flush.
func (s *sorter) plan(runs []*Run) mergePlan {
	rows := s.outRows()
	if s.budget == nil {
		return mergePlan{fanIn: maxFanIn, maxSlots: 4 * maxFanIn, rows: rows}
	}
	// A batch read back costs its bytes, its computed keys (twice: an
	// expression makes its result beside its operands) and the padding
	// of its buffers (64 bytes each: a few a column), which small
	// batches feel.
	pad := int64(3*64) * int64(s.schema.NumFields()+2*len(s.keys))
	var per int64 = 1
	for _, r := range runs {
		if r.Batches > 0 {
			n := r.Rows / r.Batches
			per = max(per, max(r.Bytes/r.Batches, n*s.perRow)+2*n*s.keyRow+pad)
		}
	}
	room := s.budget.Available() - s.edgeBatches()*int64(rows)*s.perRow
	fan := int(max(2, min(int64(maxFanIn), room/per-1)))
	slots := int(max(int64(fan)+1, min(int64(4*fan), room/per)))
	return mergePlan{fanIn: fan, maxSlots: slots, rows: rows}
}

// mergeRuns merges the spilled runs, in passes of fanIn runs while there
// are more, and emits the last pass.
func (s *sorter) mergeRuns(ctx context.Context, emit func(arrow.RecordBatch) error) error {
	for len(s.runs) > 1 {
		p := s.plan(s.runs)
		if len(s.runs) <= p.fanIn {
			break
		}
		k := p.fanIn
		// Merge the first k runs (the earliest input: order stays stable)
		// into one, which takes their place.
		r, err := s.spill.WriteRun(ctx, s.schema, func(emit func(arrow.RecordBatch) error) error {
			return s.merge(ctx, s.runs[:k], p, emit)
		})
		if err != nil {
			return err
		}
		for _, old := range s.runs[:k] {
			s.spill.Remove(old)
		}
		s.runs = append([]*Run{r}, s.runs[k:]...)
		s.mergePasses++
	}
	err := s.merge(ctx, s.runs, s.plan(s.runs), emit)
	for _, r := range s.runs {
		s.spill.Remove(r)
	}
	s.runs = nil
	return err
}

// merge merges runs in one pass.
func (s *sorter) merge(ctx context.Context, runs []*Run, p mergePlan, emit func(arrow.RecordBatch) error) error {
	var readers []*RunReader
	defer func() {
		for _, r := range readers {
			r.Close()
		}
	}()
	streams := make([]func() (arrow.RecordBatch, error), len(runs))
	for i, r := range runs {
		rd, err := s.spill.Open(ctx, r)
		if err != nil {
			return err
		}
		readers = append(readers, rd)
		streams[i] = rd.Next
	}
	m, err := newRunMerge(ctx, s.mem, s.keys, s.schema, s.ic.Ledger, streams, p.rows, p.maxSlots)
	if err != nil {
		return err
	}
	defer m.release()
	if err := m.run(emit); err != nil {
		return fmt.Errorf("sort: merge %d runs: %w", len(runs), err)
	}
	return nil
}

// Release lets go of everything the sort holds and removes its spill
// files (engine.Releaser): called whatever happened.
func (s *sorter) Release() {
	s.run.release()
	s.unreserve()
	if err := s.spill.Close(); err != nil && s.ic.Logger != nil {
		s.ic.Logger.Error("sort: remove spill files", "err", err)
	}
}
