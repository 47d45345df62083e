package stateful

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/buffers"
	"github.com/zflowdev/zflow/engine"
)

// The join over its memory budget: a grace hash join.
//
// The build side's batches are held, by reference, while their bytes fit
// the budget (each batch charged twice its size, for the copy that makes
// them one batch, plus 16 bytes a row for the table), leaving a headroom
// free. The batch that does not fit switches the join to partitions: every
// build row held and every one after it goes to one of joinParts spill
// files by the hash of its key (rows with a NULL key to partition 0, where
// they never match). Once the build side has ended, each instance writes
// the probe rows it takes to its own joinParts files the same way. Probe
// batches that arrive before the build side has ended are held too, while
// they fit; past that they go to a spill file of the instance, unsorted,
// and are read back once the build side's fate is known.
//
// At the end every instance hands in its probe files and waits for the
// others; then each joins its share of the partitions, one at a time: the
// partition's build rows become a table, its probe rows stream past it.
// A partition whose build rows do not fit (a skewed key has all its rows
// in one) is joined in chunks of build rows that do, each chunk a pass
// over the partition's probe rows; a probe row's match is then remembered
// across the passes (one byte a row), for the rows that outer, semi and
// anti joins emit by it, which a last pass emits. An as-of join needs a
// key's rows together: its partition must fit in one chunk, or the join
// fails saying so.
//
// Spill files are Arrow IPC streams of the side's own schema, written and
// read through the Spiller of the instance that made them (spill.go); all
// of them are removed when the last instance is released, whatever
// happened.

// joinParts is how many partitions a spilled join has.
const joinParts = spillParts

// joinSpills counts the joins that went to partitions in this process
// (the tests check that a small budget did).
var joinSpills atomic.Int64

// spilledRun is a run and the spiller to read it through.
type spilledRun struct {
	s *Spiller
	r *Run
}

// heldBytes is what a batch of the build side holds of the budget while it
// is held: itself, its copy into one batch, its table entries.
func heldBytes(b arrow.RecordBatch) int64 {
	return 2*engine.BatchBytes(b) + 16*b.NumRows()
}

// fitsBudget reserves n bytes of b when they fit and leave head bytes
// available, and says whether it did. A nil budget has room for anything.
func fitsBudget(b buffers.Budget, n, head int64) bool {
	if b == nil {
		return true
	}
	if err := b.Reserve(n); err != nil {
		return false
	}
	if b.Available() < head {
		b.Unreserve(n)
		return false
	}
	return true
}

func unreserve(b buffers.Budget, n int64) {
	if b != nil && n > 0 {
		b.Unreserve(n)
	}
}

// holdBuild keeps a batch of the build side (borrowed), or writes it to
// the build partitions once the join has spilled or when it does not fit.
func (j *joinInst) holdBuild(ctx context.Context, in arrow.RecordBatch) error {
	sh := j.sh
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if !sh.spilled {
		need := heldBytes(in)
		if fitsBudget(j.ic.Budget, need, sh.headroom) {
			in.Retain()
			sh.batches = append(sh.batches, in)
			sh.held += need
			return nil
		}
		if err := j.spillBuildLocked(ctx); err != nil {
			return err
		}
	}
	return j.scatter(ctx, sh.buildSp, j.f.build, 0, in, &sh.buildW)
}

// spillBuildLocked switches the join to partitions: the build batches
// held go to the build partitions of this instance's spiller. sh.mu is
// held.
func (j *joinInst) spillBuildLocked(ctx context.Context) error {
	sh := j.sh
	sh.spilled = true
	sh.buildSp = j.spiller
	joinSpills.Add(1)
	if j.ic.Logger != nil {
		j.ic.Logger.Info("join: the build side is over the memory budget: joining by hash partitions on disk",
			"node", j.ic.Node, "partitions", joinParts)
	}
	unreserve(j.ic.Budget, sh.held)
	sh.held = 0
	for i, b := range sh.batches {
		err := j.scatter(ctx, sh.buildSp, j.f.build, 0, b, &sh.buildW)
		b.Release()
		sh.batches[i] = nil
		if err != nil {
			sh.batches = sh.batches[i+1:]
			return err
		}
	}
	sh.batches = nil
	return nil
}

// finishBuildLocked closes the build partitions' files. sh.mu is held.
func (sh *joinShared) finishBuildLocked() error {
	if err := finishWriters(&sh.buildW, sh.buildSp, &sh.buildRuns); err != nil {
		return fmt.Errorf("join: %w", err)
	}
	return nil
}

// finishWriters finishes the open writers of ws (made through s), forgets
// them, and adds each one's run to runs, by partition (the join's and the
// aggregate's partitions alike).
func finishWriters(ws *[joinParts]*RunWriter, s *Spiller, runs *[joinParts][]spilledRun) error {
	for p, w := range ws {
		if w == nil {
			continue
		}
		ws[p] = nil
		r, err := w.Finish()
		if err != nil {
			return err // "spill: finish <run>: …"; the caller says whose
		}
		runs[p] = append(runs[p], spilledRun{s, r})
	}
	return nil
}

// holdProbe keeps a probe batch (borrowed) that came before the build
// side ended: in memory while it fits, else in the instance's early file.
func (j *joinInst) holdProbe(ctx context.Context, in arrow.RecordBatch) error {
	if j.early == nil {
		// Half the budget stays for the build side, which needs it more.
		need := engine.BatchBytes(in)
		if fitsBudget(j.ic.Budget, need, j.sh.headroom+j.sh.capacity/2) {
			in.Retain()
			j.pending = append(j.pending, in)
			j.pendingHeld += need
			return nil
		}
		w, err := j.spiller.Create(ctx, j.f.sideSchema(j.probe))
		if err != nil {
			return fmt.Errorf("join: %w", err)
		}
		j.early = w
		for len(j.pending) > 0 {
			b := j.pending[0]
			err := w.Write(b)
			b.Release()
			j.pending[0] = nil
			j.pending = j.pending[1:]
			if err != nil {
				return err
			}
		}
		j.pending = nil
		unreserve(j.ic.Budget, j.pendingHeld)
		j.pendingHeld = 0
	}
	return j.early.Write(in)
}

// takeHeldProbe hands the probe batches held before the build side ended
// to fn, the ones in memory first, then those of the early file, and
// forgets them.
func (j *joinInst) takeHeldProbe(ctx context.Context, fn func(arrow.RecordBatch) error) error {
	// Each batch leaves j.pending only once handled: if fn fails, or
	// panics over the budget, Release frees the rest.
	for len(j.pending) > 0 {
		b := j.pending[0]
		j.pending[0] = nil
		j.pending = j.pending[1:]
		held := engine.BatchBytes(b)
		unreserve(j.ic.Budget, held)
		j.pendingHeld -= held
		if err := callReleasing(fn, b); err != nil {
			return err
		}
	}
	j.pending = nil
	if j.early == nil {
		return nil
	}
	w := j.early
	j.early = nil
	r, err := w.Finish()
	if err != nil {
		return fmt.Errorf("join: %w", err)
	}
	defer j.spiller.Remove(r)
	return readRuns(ctx, []spilledRun{{j.spiller, r}}, fn)
}

// callReleasing calls fn(b) and releases b, also when fn panics (an
// allocation over the budget does; the engine fails the run with it).
func callReleasing(fn func(arrow.RecordBatch) error, b arrow.RecordBatch) error {
	defer b.Release()
	return fn(b)
}

// readRuns hands every batch of runs, in order, to fn (borrowed).
func readRuns(ctx context.Context, runs []spilledRun, fn func(arrow.RecordBatch) error) error {
	for _, sr := range runs {
		if err := readRun(ctx, sr, fn); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

func readRun(ctx context.Context, sr spilledRun, fn func(arrow.RecordBatch) error) error {
	rd, err := sr.s.Open(ctx, sr.r)
	if err != nil {
		return fmt.Errorf("join: %w", err)
	}
	defer rd.Close()
	for {
		b, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("join: %w", err)
		}
		if err := callReleasing(fn, b); err != nil {
			return err
		}
	}
}

// scatterProbe writes a probe batch (borrowed) to this instance's probe
// partitions.
func (j *joinInst) scatterProbe(ctx context.Context, in arrow.RecordBatch) error {
	return j.scatter(ctx, j.spiller, j.probe, 0, in, &j.probeW)
}

// partOf is the partition of a key's hash at a level of partitioning: 4
// bits of it, the top ones at level 0, the next at level 1, and so on; a
// KeyTable uses the low bits, so a partition's keys still spread over its
// slots.
func partOf(hash uint64, level int) int {
	return int(hash >> (60 - 4*level) & (joinParts - 1))
}

// maxPartLevel is the deepest level of partitioning: joinParts⁴ = 65536
// partitions.
const maxPartLevel = 3

// keepsNull says whether side's rows with a NULL key can be in the
// output: an outer join keeps them, an anti join emits them. The others
// are not written to the partitions at all.
func (j *joinInst) keepsNull(side int) bool {
	if side == j.f.build {
		return j.keepBuild || (j.selectBuild && j.f.how == "anti")
	}
	return j.keepProbe || (j.selectProbe && j.f.how == "anti")
}

// scatter writes the rows of b (borrowed), a batch of side, to the
// partition writers ws by the hash of their keys at level (partOf),
// making a writer with sp where one is missing; a row with a NULL key
// goes to partition 0, or nowhere when the join drops it (keepsNull). A
// batch whose rows all go to one partition is written as it is;
// otherwise each partition's rows are gathered into a batch of their own
// (a copy, on the ledger as "join spill").
func (j *joinInst) scatter(ctx context.Context, sp *Spiller, side, level int, b arrow.RecordBatch, ws *[joinParts]*RunWriter) error {
	f, mem, ic := j.f, j.mem, j.ic
	n := int(b.NumRows())
	if n == 0 {
		return nil
	}
	write := func(p int, rec arrow.RecordBatch) error {
		if ws[p] == nil {
			w, err := sp.Create(ctx, f.sideSchema(side))
			if err != nil {
				return fmt.Errorf("join: %w", err)
			}
			ws[p] = w
		}
		return ws[p].Write(rec)
	}
	if len(f.keys[side]) == 0 { // an as-of join on time alone: one partition
		return write(0, b)
	}
	keys, err := f.keyArrays(ctx, mem, side, b)
	if err != nil {
		return err
	}
	defer releaseArrays(keys)
	enc, err := NewKeyEncoder(f.keyTypes[side])
	if err != nil {
		return err
	}
	var rows KeyRows
	if err := enc.Encode(keys, &rows); err != nil {
		return err
	}
	var pos [joinParts][]uint64
	keepNull := j.keepsNull(side)
	for i := range n {
		p := 0
		if !rows.Null(i) {
			p = partOf(rows.Hash[i], level)
		} else if !keepNull {
			continue
		}
		pos[p] = append(pos[p], uint64(i))
	}
	return writeParts(mem, f.sideSchema(side), b, &pos, write, ic, "join spill")
}

// writeParts writes the rows of b that pos lists for each partition as a
// batch of their own to write(p, …) (b itself when one partition has them
// all), counting the copies on the ledger as what.
func writeParts(mem memory.Allocator, schema *arrow.Schema, b arrow.RecordBatch, pos *[joinParts][]uint64,
	write func(p int, rec arrow.RecordBatch) error, ic *engine.InstanceContext, what string) error {
	n := int(b.NumRows())
	for p, ps := range pos {
		switch len(ps) {
		case 0:
			continue
		case n:
			return write(p, b)
		}
		cols := make([]arrow.Array, b.NumCols())
		for c, col := range b.Columns() {
			a, err := gatherArray(mem, col.DataType(), []arrow.Array{col}, ps)
			if err != nil {
				releaseArrays(cols)
				return fmt.Errorf("%s: partition column %q: %w", what, schema.Field(c).Name, err)
			}
			cols[c] = a
		}
		rec := array.NewRecordBatch(schema, cols, int64(len(ps)))
		releaseArrays(cols)
		if ic != nil && ic.Ledger != nil {
			ic.Ledger.Copied(what, engine.BatchBytes(rec))
		}
		err := write(p, rec)
		rec.Release()
		if err != nil {
			return err
		}
	}
	return nil
}

// finishSpilled is Finish of a join that went to partitions: this
// instance's probe files are handed in, and once every instance's are,
// it joins partitions Index, Index+Count, ….
func (j *joinInst) finishSpilled(ctx context.Context, out engine.Emitter) error {
	var mine [joinParts][]spilledRun
	if err := finishWriters(&j.probeW, j.spiller, &mine); err != nil {
		return fmt.Errorf("join: %w", err)
	}
	sh := j.sh
	sh.mu.Lock()
	for p, rs := range mine {
		sh.probeRuns[p] = append(sh.probeRuns[p], rs...)
	}
	sh.arrived++
	if sh.arrived == sh.n {
		close(sh.ready)
	}
	sh.mu.Unlock()
	select {
	case <-sh.ready:
	case <-ctx.Done():
		return ctx.Err()
	}
	for p := j.ic.Index; p < joinParts; p += sh.n {
		if err := j.joinPartition(ctx, out, sh.buildRuns[p], sh.probeRuns[p], 0); err != nil {
			return err
		}
	}
	return nil
}

// chunkRoom is the bytes of build batches a chunk may hold: this
// instance's share of what the budget has left beyond the headroom, a
// third of it (the batches read are on the budget already; their copy
// into one batch and the table take about as much again, and the other
// instances join partitions at the same time).
func (j *joinInst) chunkRoom() int64 {
	b := j.ic.Budget
	if b == nil {
		return 1 << 62
	}
	return max(b.Available()-j.sh.headroom, 0) / int64(j.sh.n) / 3
}

// repartition splits one partition of the given level: the rows of runs,
// of side, go to joinParts partitions of the next level. It says how many
// of those got rows.
func (j *joinInst) repartition(ctx context.Context, side, level int, runs []spilledRun) (out [joinParts][]spilledRun, used int, err error) {
	var ws [joinParts]*RunWriter
	defer func() {
		for _, w := range ws {
			if w != nil {
				w.Abort()
			}
		}
	}()
	err = readRuns(ctx, runs, func(b arrow.RecordBatch) error {
		return j.scatter(ctx, j.spiller, side, level+1, b, &ws)
	})
	if err != nil {
		return out, 0, err
	}
	if err := finishWriters(&ws, j.spiller, &out); err != nil {
		return out, 0, fmt.Errorf("join: %w", err) // the runs finished so far are in out, for the caller to remove
	}
	for _, rs := range out {
		if len(rs) > 0 {
			used++
		}
	}
	return out, used, nil
}

func runBytes(runs []spilledRun) int64 {
	var n int64
	for _, sr := range runs {
		n += sr.r.Bytes
	}
	return n
}

func removeRuns(runs ...[]spilledRun) {
	for _, rs := range runs {
		for _, sr := range rs {
			sr.s.Remove(sr.r)
		}
	}
}

// joinPartition joins a partition of the given level: its build rows
// (the runs builds) with its probe rows (probes). A partition whose build
// rows are more than a chunk is split by the next 4 bits of the hash, both
// sides, and each part joined the same way; one that does not split (a
// single key) or is at maxPartLevel is joined in chunks (joinspill's
// first comment). Its runs are removed when it is done.
func (j *joinInst) joinPartition(ctx context.Context, out engine.Emitter, builds, probes []spilledRun, level int) error {
	defer removeRuns(builds, probes)
	if len(builds) == 0 && len(probes) == 0 {
		return nil
	}
	if len(builds) > 0 && len(probes) > 0 && level < maxPartLevel && len(j.f.keys[j.f.build]) > 0 && runBytes(builds) > j.chunkRoom() {
		subB, used, err := j.repartition(ctx, j.f.build, level, builds)
		if err != nil {
			removeRuns(subB[:]...)
			return err
		}
		if used > 1 {
			subP, _, err := j.repartition(ctx, j.probe, level, probes)
			if err != nil {
				removeRuns(subB[:]...)
				removeRuns(subP[:]...)
				return err
			}
			removeRuns(builds, probes)
			builds, probes = nil, nil
			for q := range joinParts {
				if err := j.joinPartition(ctx, out, subB[q], subP[q], level+1); err != nil {
					for r := q + 1; r < joinParts; r++ {
						removeRuns(subB[r], subP[r])
					}
					return err
				}
			}
			return nil
		}
		removeRuns(subB[:]...) // one key: splitting does not help
	}
	q := &runQueue{ctx: ctx, runs: builds}
	defer q.close()
	multi := false
	for chunk := 0; ; chunk++ {
		more, err := j.joinChunk(ctx, out, q, probes, chunk == 0, &multi)
		if err != nil {
			return err
		}
		if !more {
			break
		}
	}
	if multi {
		return j.emitByMarks(ctx, out, probes)
	}
	return nil
}

// joinChunk joins the next chunk of build rows of q with probes and says
// whether more are left; the first chunk decides whether the partition
// is joined in several (multi). The chunk's table is released on the way
// out, also when the probe panics over the budget.
func (j *joinInst) joinChunk(ctx context.Context, out engine.Emitter, q *runQueue, probes []spilledRun, first bool, multi *bool) (bool, error) {
	tab, err := j.buildChunk(ctx, q)
	if err != nil {
		return false, err
	}
	defer func() {
		tab.release()
		j.tab, j.table = nil, nil
	}()
	more, err := q.more()
	if err != nil {
		return false, err
	}
	if first && more {
		*multi = true
		if err := j.startMarks(probes); err != nil {
			return false, err
		}
	}
	return more, j.passChunk(ctx, out, tab, probes)
}

// buildChunk makes the table of the next chunk of build rows from q: the
// batches that fit this instance's share of what the budget has left,
// at least one. When the table still does not fit, it tries again with
// half the batches (the rest go back to q), down to one.
func (j *joinInst) buildChunk(ctx context.Context, q *runQueue) (*joinTable, error) {
	room := j.chunkRoom()
	if j.f.how == "asof" {
		// An as-of join cannot be joined in chunks: try the whole
		// partition, whatever the room looks like now (the other
		// instances' use of the budget comes and goes, and an allocation
		// over it waits for their frees); it fails only if it does not fit.
		room = math.MaxInt64
	}
	var batches []arrow.RecordBatch
	defer func() {
		for _, b := range batches {
			b.Release()
		}
	}()
	var bytes int64
	for {
		b, err := q.next()
		if err != nil {
			return nil, err
		}
		if b == nil {
			break
		}
		if len(batches) > 0 && bytes+engine.BatchBytes(b) > room {
			q.pushBack(b)
			break
		}
		batches = append(batches, b)
		bytes += engine.BatchBytes(b)
	}
	for {
		tab, err := j.tryBuild(ctx, batches)
		if err == nil || !errors.Is(err, buffers.ErrBudgetExceeded) || len(batches) <= 1 {
			if err != nil && errors.Is(err, buffers.ErrBudgetExceeded) {
				err = fmt.Errorf("join: one batch of the build side's rows of a partition does not fit in the memory budget: %w", err)
			}
			return tab, err
		}
		half := len(batches) / 2
		for i := len(batches) - 1; i >= half; i-- {
			q.pushBack(batches[i])
		}
		batches = batches[:half]
	}
}

// tryBuild builds a table of batches (borrowed), an allocation over the
// budget returned as the error it panicked with.
func (j *joinInst) tryBuild(ctx context.Context, batches []arrow.RecordBatch) (tab *joinTable, err error) {
	defer func() {
		if r := recover(); r != nil {
			e, ok := r.(error)
			if !ok || !errors.Is(e, buffers.ErrBudgetExceeded) {
				panic(r)
			}
			tab, err = nil, e
		}
	}()
	return j.f.buildTable(ctx, j.ic, batches)
}

// startMarks makes the per-row match marks of the probe rows of runs.
func (j *joinInst) startMarks(probes []spilledRun) error {
	if j.f.how == "asof" {
		return errors.New("join: an as-of join's build rows of one hash partition (a key with many rows) do not fit in the memory budget; raise the join's memory:")
	}
	if !j.keepProbe && !j.selectProbe {
		return nil
	}
	var n int64
	for _, sr := range probes {
		n += sr.r.Rows
	}
	if err := reserveOrErr(j.ic.Budget, n); err != nil {
		return fmt.Errorf("join: the match marks of a partition's %d probe rows: %w", n, err)
	}
	j.marks = make([]bool, n)
	j.marksHeld = n
	return nil
}

func reserveOrErr(b buffers.Budget, n int64) error {
	if b == nil {
		return nil
	}
	return b.Reserve(n)
}

func (j *joinInst) dropMarks() {
	unreserve(j.ic.Budget, j.marksHeld)
	j.marks, j.marksHeld, j.markBase = nil, 0, 0
}

// passChunk streams a partition's probe rows past the table of one chunk
// of its build rows, then emits the chunk's build rows an outer, semi or
// anti join owes.
func (j *joinInst) passChunk(ctx context.Context, out engine.Emitter, tab *joinTable, probes []spilledRun) error {
	j.tab, j.table = tab, tab.table
	j.markBase = 0
	if j.keepBuild || j.selectBuild {
		j.matched = make([]bool, tab.rows())
		if err := reserveOrErr(j.ic.Budget, int64(len(j.matched))); err != nil {
			j.matched = nil
			return fmt.Errorf("join: the marks of the build rows matched: %w", err)
		}
		defer func() {
			unreserve(j.ic.Budget, int64(len(j.matched)))
			j.matched = nil
		}()
	}
	err := readRuns(ctx, probes, func(b arrow.RecordBatch) error {
		err := j.probeBatch(ctx, b, out)
		j.markBase += int(b.NumRows())
		return err
	})
	if err != nil || (!j.keepBuild && !j.selectBuild) {
		return err
	}
	return j.emitMatched(ctx, out, j.matched)
}

// emitByMarks is the last pass of a partition joined in chunks: the probe
// rows an outer join keeps (unmatched), or a semi (matched) or anti
// (unmatched) join emits.
func (j *joinInst) emitByMarks(ctx context.Context, out engine.Emitter, probes []spilledRun) error {
	defer j.dropMarks()
	if j.marks == nil {
		return nil
	}
	want := j.f.how == "semi"
	base := 0
	return readRuns(ctx, probes, func(b arrow.RecordBatch) error {
		n := int(b.NumRows())
		idx := j.pi[:0]
		for i := range n {
			if j.marks[base+i] == want {
				idx = append(idx, int32(i))
			}
		}
		base += n
		j.pi = idx
		if len(idx) == 0 {
			return nil
		}
		var keys []arrow.Array
		if !j.selectProbe {
			var err error
			if keys, err = j.f.keyArrays(ctx, j.mem, j.probe, b); err != nil {
				return err
			}
			defer releaseArrays(keys)
		}
		for len(idx) > 0 {
			part := idx[:min(len(idx), j.limit)]
			idx = idx[len(part):]
			var sides [2]sideRows
			sides[j.probe] = sideRows{batch: b, keys: keys, idx: part}
			if identity(part, n) {
				sides[j.probe].idx = nil
			}
			sides[j.f.build] = sideRows{absent: true}
			if err := j.emit(sides, j.probe, len(part), out); err != nil {
				return err
			}
		}
		return nil
	})
}

// runQueue reads the batches of runs in order, one at a time, with room
// to put batches back.
type runQueue struct {
	ctx  context.Context
	runs []spilledRun
	rd   *RunReader
	back []arrow.RecordBatch // put back, the next one last
}

// next is the next batch (the caller owns it), nil after the last.
func (q *runQueue) next() (arrow.RecordBatch, error) {
	if n := len(q.back); n > 0 {
		b := q.back[n-1]
		q.back = q.back[:n-1]
		return b, nil
	}
	for {
		if q.rd == nil {
			if len(q.runs) == 0 {
				return nil, nil
			}
			sr := q.runs[0]
			q.runs = q.runs[1:]
			rd, err := sr.s.Open(q.ctx, sr.r)
			if err != nil {
				return nil, fmt.Errorf("join: %w", err)
			}
			q.rd = rd
		}
		b, err := q.rd.Next()
		if errors.Is(err, io.EOF) {
			q.rd.Close()
			q.rd = nil
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("join: %w", err)
		}
		return b, nil
	}
}

// pushBack puts b (owned) back to be the next batch.
func (q *runQueue) pushBack(b arrow.RecordBatch) { q.back = append(q.back, b) }

// more says whether a batch is left (reading one ahead to know).
func (q *runQueue) more() (bool, error) {
	b, err := q.next()
	if err != nil || b == nil {
		return false, err
	}
	q.pushBack(b)
	return true, nil
}

func (q *runQueue) close() {
	for _, b := range q.back {
		b.Release()
	}
	q.back = nil
	if q.rd != nil {
		q.rd.Close()
		q.rd = nil
	}
}
