package stateful

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/buffers"
	"github.com/zflowdev/zflow/engine"
)

// A join at run time. The engine delivers the batches of both inputs to
// any of the node's instances, interleaved, and tells every instance when
// an input has ended (engine.PortEnder: the join's spec sets PortEnds).
// The instances share one joinShared (InstanceContext.Shared): the build
// side's batches go into it as they arrive, by reference; a probe batch
// that arrives before the build side has ended is kept (Retained) by the
// instance that took it. When the build port ends, one instance builds
// the table (the others wait for it), then each probes the batches it
// kept, and every later probe batch at once. Nothing blocks on an input:
// a source feeding both sides (a self-join), or two joins reading each
// other's inputs, cannot deadlock; the price is that probe batches
// arriving before the build has ended wait in memory.
//
// A right or full join (with the build on the right; left or full with
// build: left) emits the build rows no probe row matched once every
// instance has finished: each instance marks the rows it matched, and
// the last to finish merges the marks and emits the rest. semi and anti
// with build: left emit the build rows matched or not, the same way.

// joinShared is what the instances of one join share in a run.
type joinShared struct {
	mu      sync.Mutex
	batches []arrow.RecordBatch // the build side until its port ends
	once    sync.Once
	tab     *joinTable
	err     error
	live    int    // instances not yet released
	running int    // instances not yet finished
	matched []bool // build rows matched by the instances finished so far

	// Over the budget (joinspill.go).
	headroom  int64 // what holding batches leaves free
	capacity  int64 // the budget available at the start, 0 without a limit
	held      int64 // reserved for the build batches held
	spilled   bool  // the build side went to partition files
	buildSp   *Spiller
	buildW    [joinParts]*RunWriter
	buildRuns [joinParts][]spilledRun
	probeRuns [joinParts][]spilledRun
	spillers  []*Spiller    // every instance's, closed with the last
	n         int           // instances
	arrived   int           // instances that handed in their probe files
	ready     chan struct{} // closed when every one has
}

func (f *joinFactory) New(ic *engine.InstanceContext) (any, error) {
	sh := ic.Shared(func() any {
		sh := &joinShared{n: max(ic.Count, 1), ready: make(chan struct{})}
		if ic.Budget != nil {
			if avail := ic.Budget.Available(); avail < 1<<62 {
				sh.headroom = min(avail/4, 64<<20)
				sh.capacity = avail
			}
		}
		return sh
	}).(*joinShared)
	j := &joinInst{f: f, sh: sh, ic: ic, mem: ic.Alloc, probe: 1 - f.build}
	if j.mem == nil {
		j.mem = memory.DefaultAllocator
	}
	j.spiller = NewSpiller(ic, j.mem)
	if sh.headroom > 0 {
		// A batch read back (early probe rows, a partition's) is on the
		// budget with the output it makes: half the headroom at most.
		j.spiller.MaxBatchBytes = max(sh.headroom/2, 4<<10)
	}
	sh.mu.Lock()
	sh.live++
	sh.running++
	sh.spillers = append(sh.spillers, j.spiller)
	sh.mu.Unlock()
	j.limit = outRowsFor(ic, f.schema)
	how := f.how
	probeLeft := j.probe == sideLeft
	j.keepProbe = (probeLeft && (how == "left" || how == "full")) || (!probeLeft && (how == "right" || how == "full")) ||
		(how == "asof" && f.cfg.Asof.KeepUnmatched)
	j.keepBuild = (!probeLeft && (how == "left" || how == "full")) || (probeLeft && (how == "right" || how == "full"))
	j.selectProbe = probeLeft && (how == "semi" || how == "anti")
	j.selectBuild = !probeLeft && (how == "semi" || how == "anti")
	return j, nil
}

// outRowsFor is the most rows of an output batch: settings.batch_rows (at
// least 1024), or fewer when the batches in flight — an edge's capacity,
// its consumer's (consumerQueue) and the one being made — would take more than a quarter
// of what the budget has left at the start (output batches are charged
// to the join until their consumer lets them go), at least 16.
func outRowsFor(ic *engine.InstanceContext, s *arrow.Schema) int {
	rows := max(ic.Settings.BatchRows, 1024)
	if ic.Budget == nil {
		return rows
	}
	avail := ic.Budget.Available()
	if avail >= 1<<62 {
		return rows
	}
	edge := ic.Settings.EdgeCapacity
	if edge <= 0 {
		edge = engine.DefaultSettings().EdgeCapacity
	}
	width := int64(1)
	for _, f := range s.Fields() {
		if fw, ok := f.Type.(arrow.FixedWidthDataType); ok {
			width += int64(max(fw.BitWidth()/8, 1)) + 1
		} else {
			width += 32 // a guess for a string's bytes and its offset
		}
	}
	fit := avail / 4 / int64(edge+2+consumerQueue) / width
	return int(max(min(fit, int64(rows)), 16))
}

// joinInst is one instance of a join.
type joinInst struct {
	f     *joinFactory
	sh    *joinShared
	ic    *engine.InstanceContext
	mem   memory.Allocator
	probe int // the side that streams
	limit int // output rows per batch, at most (but a probe batch's rows)

	keepProbe, keepBuild     bool // emit the side's rows without a match, the other side NULL
	selectProbe, selectBuild bool // semi/anti: emit the side's rows (not) matched

	tab     *joinTable          // nil until the build port has ended, and while spilled
	ended   bool                // the build port has ended
	pending []arrow.RecordBatch // probe batches that came before it had
	// Over the budget (joinspill.go).
	pendingHeld int64      // reserved for pending
	early       *RunWriter // the probe batches before the end that did not fit
	spiller     *Spiller
	probeW      [joinParts]*RunWriter
	marks       []bool // a chunked partition's probe rows matched
	markBase    int    // the partition's row of the batch probed
	marksHeld   int64
	matched     []bool    // build rows this instance matched (keepBuild, selectBuild)
	table       *KeyTable // the shared table, looked up through
	ids         []uint32
	pi, bi      []int32     // the rows of the current output: probe row, build row (-1: none)
	pos         [2][]uint64 // their gather positions, per side
	tkeys       []uint64
}

func (j *joinInst) Process(ctx context.Context, port int, in arrow.RecordBatch, out engine.Emitter) error {
	switch {
	case port == j.f.build:
		return j.holdBuild(ctx, in)
	case !j.ended:
		return j.holdProbe(ctx, in)
	case j.sh.spilled:
		return j.scatterProbe(ctx, in)
	}
	return j.probeBatch(ctx, in, out)
}

// EndPort builds the table when the build port ends (the first instance
// there builds it, the others wait) and probes the batches kept till then.
func (j *joinInst) EndPort(ctx context.Context, port int, out engine.Emitter) error {
	if port != j.f.build {
		return nil
	}
	sh := j.sh
	sh.once.Do(func() {
		sh.mu.Lock()
		defer sh.mu.Unlock()
		if !sh.spilled {
			// The estimate held the budget; the table's own allocations
			// charge it now. When they do not fit, the join spills after
			// all.
			unreserve(j.ic.Budget, sh.held)
			sh.held = 0
			sh.tab, sh.err = j.tryBuild(ctx, sh.batches)
			if sh.err == nil && sh.tab != nil {
				// Every instance probes and gathers from the table.
				engine.Settle(sh.tab.batch.Columns()...)
				engine.Settle(sh.tab.keys...)
			}
			if sh.err != nil && errors.Is(sh.err, buffers.ErrBudgetExceeded) {
				sh.err = j.spillBuildLocked(ctx)
			}
			for _, b := range sh.batches {
				b.Release()
			}
			sh.batches = nil
			if !sh.spilled {
				return
			}
		}
		sh.err = sh.finishBuildLocked()
	})
	if sh.err != nil {
		return sh.err
	}
	j.ended = true
	if sh.spilled {
		return j.takeHeldProbe(ctx, func(b arrow.RecordBatch) error { return j.scatterProbe(ctx, b) })
	}
	if sh.tab == nil {
		return errBuild
	}
	j.tab, j.table = sh.tab, sh.tab.table
	if j.keepBuild || j.selectBuild {
		j.matched = make([]bool, j.tab.rows())
		if err := j.ic.Budget.Reserve(int64(len(j.matched))); err != nil {
			j.matched = nil
			return fmt.Errorf("join: the marks of the build rows matched: %w", err)
		}
	}
	return j.takeHeldProbe(ctx, func(b arrow.RecordBatch) error { return j.probeBatch(ctx, b, out) })
}

// Finish emits the build rows the join owes once every instance has
// finished probing: the last instance to finish does it.
func (j *joinInst) Finish(ctx context.Context, out engine.Emitter) error {
	if !j.ended {
		return nil // the build never ended: the run was stopped
	}
	if j.sh.spilled {
		return j.finishSpilled(ctx, out)
	}
	if !j.keepBuild && !j.selectBuild {
		return nil
	}
	sh := j.sh
	sh.mu.Lock()
	if sh.matched == nil {
		sh.matched = j.matched
	} else {
		for r, m := range j.matched {
			if m {
				sh.matched[r] = true
			}
		}
	}
	sh.running--
	last := sh.running == 0
	sh.mu.Unlock()
	if !last {
		return nil
	}
	return j.emitMatched(ctx, out, sh.matched)
}

// emitMatched emits the build rows an outer join keeps (those matched
// says no probe row matched), or a semi (matched) or anti (not matched)
// join with the build on the left emits.
func (j *joinInst) emitMatched(ctx context.Context, out engine.Emitter, matched []bool) error {
	want := false // keepBuild: the rows not matched
	if j.selectBuild {
		want = j.f.how == "semi"
	}
	j.bi = j.bi[:0]
	for r, m := range matched {
		if m == want {
			j.bi = append(j.bi, int32(r))
			if len(j.bi) == j.limit {
				if err := j.emitBuildRows(ctx, out); err != nil {
					return err
				}
			}
		}
	}
	return j.emitBuildRows(ctx, out)
}

func (j *joinInst) Release() {
	for _, b := range j.pending {
		b.Release()
	}
	j.pending = nil
	unreserve(j.ic.Budget, j.pendingHeld)
	j.pendingHeld = 0
	if j.matched != nil {
		unreserve(j.ic.Budget, int64(len(j.matched)))
		j.matched = nil
	}
	j.dropMarks()
	if j.early != nil {
		j.early.Abort()
		j.early = nil
	}
	for p, w := range j.probeW {
		if w != nil {
			w.Abort()
			j.probeW[p] = nil
		}
	}
	sh := j.sh
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.live--
	if sh.live == 0 {
		for _, b := range sh.batches {
			if b != nil {
				b.Release()
			}
		}
		sh.batches = nil
		unreserve(j.ic.Budget, sh.held)
		sh.held = 0
		sh.tab.release()
		for p, w := range sh.buildW {
			if w != nil {
				w.Abort()
				sh.buildW[p] = nil
			}
		}
		for _, s := range sh.spillers {
			s.Close()
		}
		sh.spillers = nil
	}
}

// probeBatch joins one batch of the probe side (borrowed) against the
// table.
func (j *joinInst) probeBatch(ctx context.Context, in arrow.RecordBatch, out engine.Emitter) error {
	n := int(in.NumRows())
	if n == 0 {
		return nil
	}
	keys, err := j.f.keyArrays(ctx, j.mem, j.probe, in)
	if err != nil {
		return err
	}
	defer releaseArrays(keys)
	j.ids = grow(j.ids, n)
	if j.tab.rows() == 0 {
		for i := range j.ids {
			j.ids[i] = NoKey
		}
	} else if err := j.f.keyIDs(j.table, keys, j.ids, false); err != nil {
		return err
	}
	if j.selectProbe || j.selectBuild {
		return j.semi(in, out)
	}
	limit := j.limit
	pi, bi := j.pi[:0], j.bi[:0]
	flush := func() error {
		j.pi, j.bi = pi, bi
		err := j.emitPairs(in, keys, out)
		pi, bi = pi[:0], bi[:0]
		return err
	}
	tab := j.tab
	if j.f.how == "asof" {
		tc, err := j.f.timeArray(ctx, j.mem, j.probe, in)
		if err != nil {
			return err
		}
		j.tkeys = grow(j.tkeys, n)
		ok := timeKeys(tc, j.tkeys)
		for i, id := range j.ids {
			r := int32(-1)
			if id != NoKey && int(id) < len(tab.start)-1 && ok(i) {
				r = tab.asofRow(id, j.tkeys[i])
			}
			if r >= 0 || j.keepProbe {
				pi, bi = append(pi, int32(i)), append(bi, r)
			}
		}
		tc.Release()
		return flush()
	}
	head, next, matched := tab.head, tab.next, j.matched
	// A partition joined in chunks marks its probe rows matched; the last
	// pass emits the ones the join keeps (joinspill.go).
	marks := j.marks
	keepProbe := j.keepProbe && marks == nil
	for i, id := range j.ids {
		if id == NoKey {
			if keepProbe {
				pi, bi = append(pi, int32(i)), append(bi, -1)
			}
			continue
		}
		if marks != nil {
			marks[j.markBase+i] = true
		}
		for r := head[id]; r >= 0; r = next[r] {
			pi, bi = append(pi, int32(i)), append(bi, r)
			if matched != nil {
				matched[r] = true
			}
			if len(pi) >= limit { // also inside a key's chain: a skewed key has many rows
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	return flush()
}

// semi does semi and anti joins: with the probe on the left, it emits the
// probe rows with (semi) or without (anti) a match; with the build on the
// left, it marks the build rows matched, for Finish.
func (j *joinInst) semi(in arrow.RecordBatch, out engine.Emitter) error {
	if j.selectBuild {
		for _, id := range j.ids {
			if id != NoKey {
				for r := j.tab.head[id]; r >= 0; r = j.tab.next[r] {
					j.matched[r] = true
				}
			}
		}
		return nil
	}
	if j.marks != nil {
		for i, id := range j.ids {
			if id != NoKey {
				j.marks[j.markBase+i] = true
			}
		}
		return nil
	}
	want := j.f.how == "semi"
	pi := j.pi[:0]
	for i, id := range j.ids {
		if (id != NoKey) == want {
			pi = append(pi, int32(i))
			if len(pi) == j.limit {
				j.pi, j.bi = pi, j.bi[:0]
				if err := j.emitPairs(in, nil, out); err != nil {
					return err
				}
				pi = pi[:0]
			}
		}
	}
	j.pi, j.bi = pi, j.bi[:0]
	return j.emitPairs(in, nil, out)
}

// sideRows is where one side's values of an output batch come from:
// batch's rows idx (-1: NULL), all of batch in order (idx nil), or none
// of them (absent: the side's columns are NULL).
type sideRows struct {
	batch  arrow.RecordBatch
	keys   []arrow.Array // the cast key columns of batch
	idx    []int32
	absent bool
}

// emitPairs emits the rows j.pi (of the probe batch in) and j.bi (of the
// table), if any.
func (j *joinInst) emitPairs(in arrow.RecordBatch, keys []arrow.Array, out engine.Emitter) error {
	if len(j.pi) == 0 {
		return nil
	}
	var sides [2]sideRows
	sides[j.probe] = sideRows{batch: in, keys: keys, idx: j.pi}
	if from, ok := contiguous(j.pi); ok {
		// Rows from..from+len in order: a slice of the batch, by reference.
		if from == 0 && len(j.pi) == int(in.NumRows()) {
			sides[j.probe].idx = nil
		} else {
			to := int64(from + len(j.pi))
			sl := in.NewSlice(int64(from), to)
			defer sl.Release()
			skeys := make([]arrow.Array, len(keys))
			for i, k := range keys {
				skeys[i] = array.NewSlice(k, int64(from), to)
			}
			defer releaseArrays(skeys)
			sides[j.probe] = sideRows{batch: sl, keys: skeys}
		}
	}
	sides[j.f.build] = sideRows{batch: j.tab.batch, keys: j.tab.keys, idx: j.bi}
	if j.selectProbe {
		sides[j.f.build].absent = true
	}
	return j.emit(sides, j.probe, len(j.pi), out)
}

// emitBuildRows emits the build rows j.bi alone (the probe side NULL).
func (j *joinInst) emitBuildRows(ctx context.Context, out engine.Emitter) error {
	if len(j.bi) == 0 {
		return nil
	}
	var sides [2]sideRows
	sides[j.probe] = sideRows{absent: true}
	sides[j.f.build] = sideRows{batch: j.tab.batch, keys: j.tab.keys, idx: j.bi}
	err := j.emit(sides, j.f.build, len(j.bi), out)
	j.bi = j.bi[:0]
	return err
}

// emit makes and emits one output batch of n rows; the merged keys of on:
// come from side keyFrom, which has a row in each. The rows are gathered
// here (gather.go), in the instance's goroutine: an allocation beyond the
// budget panics where the engine recovers it, and the columns made so far
// are released on the way out.
func (j *joinInst) emit(sides [2]sideRows, keyFrom int, n int, out engine.Emitter) error {
	schema := j.f.schema
	cols := make([]arrow.Array, len(j.f.out))
	defer releaseArrays(cols)
	var pos [2][]uint64
	var gathered int64
	for c, oc := range j.f.out {
		side := oc.side
		if oc.key >= 0 {
			side = keyFrom
		}
		s := sides[side]
		if s.absent {
			cols[c] = array.MakeArrayOfNull(j.mem, schema.Field(c).Type, n)
			continue
		}
		src := s.batch.Column(oc.col)
		if oc.key >= 0 {
			src = s.keys[oc.key]
		}
		if s.idx == nil { // the probe batch's rows in order: by reference
			src.Retain()
			cols[c] = src
			continue
		}
		if pos[side] == nil {
			pos[side] = j.positions(side, s.idx)
		}
		a, err := gatherRows(j.mem, src, pos[side], s.idx)
		if err != nil {
			return fmt.Errorf("join: gather column %q: %w", schema.Field(c).Name, err)
		}
		cols[c] = a
		gathered += engine.ArrayBytes(a.Data())
	}
	j.ic.Ledger.Copied("join gather", gathered)
	b := array.NewRecordBatch(schema, cols, int64(n))
	return out.Emit(b)
}

// positions are the gather positions of rows idx of one array (slot 0),
// a NULL row (-1) as row 0; side picks the instance's buffer to reuse.
func (j *joinInst) positions(side int, idx []int32) []uint64 {
	p := grow(j.pos[side], len(idx))
	for i, r := range idx {
		p[i] = uint64(max(r, 0))
	}
	j.pos[side] = p
	return p
}

// gatherRows returns the rows pos of src; the rows where idx is -1 are
// NULL.
func gatherRows(mem memory.Allocator, src arrow.Array, pos []uint64, idx []int32) (arrow.Array, error) {
	nulls := 0
	for _, r := range idx {
		if r < 0 {
			nulls++
		}
	}
	if nulls == len(idx) || src.Len() == 0 {
		return array.MakeArrayOfNull(mem, src.DataType(), len(idx)), nil
	}
	a, err := gatherArray(mem, src.DataType(), []arrow.Array{src}, pos)
	if err != nil || nulls == 0 {
		return a, err
	}
	defer a.Release()
	return withNulls(mem, a, idx)
}

// withNulls is a with the rows where idx is -1 made NULL: a new validity
// bitmap, the other buffers shared.
func withNulls(mem memory.Allocator, a arrow.Array, idx []int32) (arrow.Array, error) {
	d := a.Data()
	if d.Offset() != 0 || len(d.Children()) > 0 {
		return nil, fmt.Errorf("join: no NULL rows for %s", a.DataType())
	}
	n := len(idx)
	t := &tracked{Allocator: mem}
	defer func() {
		if r := recover(); r != nil {
			t.releaseAll() // over the budget: leave nothing behind
			panic(r)
		}
	}()
	valid := t.newBuffer(int(bitutil.BytesForBits(int64(n))))
	vb := valid.Bytes()
	clear(vb)
	nulls := 0
	for i, r := range idx {
		if r >= 0 && a.IsValid(i) {
			bitutil.SetBit(vb, i)
		} else {
			nulls++
		}
	}
	bufs := append([]*memory.Buffer{valid}, d.Buffers()[1:]...)
	var nd *array.Data
	if dict := d.Dictionary(); dict != nil {
		nd = array.NewDataWithDictionary(a.DataType(), n, bufs, nulls, 0, dict.(*array.Data))
	} else {
		nd = array.NewData(a.DataType(), n, bufs, nil, nulls, 0)
	}
	valid.Release()
	defer nd.Release()
	return array.MakeFromData(nd), nil
}

// contiguous says whether idx is from, from+1, …, and from.
func contiguous(idx []int32) (int, bool) {
	if len(idx) == 0 {
		return 0, false
	}
	from := idx[0]
	for i, v := range idx {
		if v != from+int32(i) || v < 0 {
			return 0, false
		}
	}
	return int(from), true
}

// identity says whether idx is 0, 1, …, n-1.
func identity(idx []int32, n int) bool {
	if len(idx) != n {
		return false
	}
	for i, v := range idx {
		if v != int32(i) {
			return false
		}
	}
	return true
}

func releaseArrays(as []arrow.Array) {
	for _, a := range as {
		if a != nil {
			a.Release()
		}
	}
}

// keyArrays are side's key columns of b cast to the compared types; the
// caller releases them.
func (f *joinFactory) keyArrays(ctx context.Context, mem memory.Allocator, side int, b arrow.RecordBatch) ([]arrow.Array, error) {
	out := make([]arrow.Array, 0, len(f.keys[side]))
	for _, k := range f.keys[side] {
		a, err := castColumn(ctx, mem, k, b)
		if err != nil {
			releaseArrays(out)
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// timeArray is side's as-of time column of b, cast.
func (f *joinFactory) timeArray(ctx context.Context, mem memory.Allocator, side int, b arrow.RecordBatch) (arrow.Array, error) {
	return castColumn(ctx, mem, f.times[side], b)
}

func castColumn(_ context.Context, mem memory.Allocator, k keyCast, b arrow.RecordBatch) (arrow.Array, error) {
	a := b.Column(k.col)
	if k.typ == nil {
		a.Retain()
		return a, nil
	}
	return castKey(mem, a, k.typ)
}
