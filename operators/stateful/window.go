package stateful

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/operators/expr"
)

// WindowConfig is the config of window.
type WindowConfig struct {
	Time            string            `zflow:"time" required:"true" doc:"the event time of a row: a timestamp column, or an expression giving a timestamp" example:"ts"`
	Size            time.Duration     `zflow:"size" required:"true" doc:"the length of a window; windows are aligned to the Unix epoch (a 1m window starts on a whole minute)" example:"1m"`
	Hop             time.Duration     `zflow:"hop" doc:"hopping windows: a window of size starts every hop (at most size; size must be a multiple of it), so a row is in size/hop windows; 0: tumbling windows (hop = size)" example:"10s"`
	Watermark       time.Duration     `zflow:"watermark" doc:"how far the watermark trails the latest event time seen so far: rows may arrive this much out of order and still be counted; 0: the input is in event-time order" example:"5s"`
	AllowedLateness time.Duration     `zflow:"allowed_lateness" doc:"how long past the watermark a window stays open for rows that are later still; a window is emitted, once, when the watermark passes its end plus this" example:"30s"`
	GroupBy         []string          `zflow:"group_by" doc:"keys within a window, as for aggregate: columns or \"expression AS name\"; none: one row per window" example:"[symbol]"`
	Aggregates      engine.OrderedMap `zflow:"aggregates" doc:"the aggregates of each window and group, as for aggregate (every function of aggregate, FILTER, expressions over aggregates)" example:"{trades: \"count(*)\", vwap: \"sum(price * qty) / sum(qty)\"}"`
}

// WindowSpec declares window.
func WindowSpec() engine.Spec {
	return engine.Spec{
		Name: "window", Kind: engine.KindTransform, MinInputs: 1, MaxInputs: 1,
		Summary: "aggregate rows over tumbling or hopping event-time windows, with a watermark and allowed lateness",
		Doc: "Each row falls in the windows [start, start + size) that contain its event time (time:): one for tumbling windows, size/hop for hopping ones. " +
			"Within a window, rows are grouped by group_by and aggregated as by aggregate, and every window is emitted once, when it closes: " +
			"window_start and window_end (the time column's type), the keys, then the aggregates. " +
			"The watermark is the latest event time seen minus watermark:, advanced row by row, so the answer does not depend on how the input is cut into batches; " +
			"a row is late for a window when the watermark, as the rows before it left it, has passed the window's end plus allowed_lateness; the window is emitted after the batch that closed it, " +
			"and at the end of the input every window still open closes, in order of start. " +
			"A row that arrives for a window already closed is late: it is left out of that window, and a row left out of all its windows is counted (the run's log says how many) and, " +
			"when a node reads this one's late port (inputs: [NODE.late]), sent there as it came. " +
			"Rows whose event time is NULL form one window of their own with NULL start and end, emitted at the end, as SQL groups a NULL bucket. " +
			"A window's state is charged to the operator's budget and spills as an aggregate's does. " +
			"One instance: the watermark is a property of the whole stream. " +
			"A batch's rows of one window are passed to it by reference when they are consecutive (input in time order), gathered otherwise (\"window gather\" on the copy ledger).",
		Example:   `{type: window, inputs: [trades], time: ts, size: 1m, watermark: 5s, group_by: [symbol], aggregates: {trades: "count(*)", vwap: "sum(price * qty) / sum(qty)"}}`,
		Outputs:   []string{"late"},
		NewConfig: func() any { return &WindowConfig{} },
		Build:     buildWindow,
	}
}

func init() { engine.Register(WindowSpec()) }

type windowFactory struct {
	cfg    WindowConfig
	in     *arrow.Schema
	time   *expr.Compiled
	unit   arrow.TimeUnit
	ttype  arrow.DataType
	size   int64 // in the time column's unit
	hop    int64
	wm     int64
	late   int64
	agg    *aggFactory
	schema *arrow.Schema
}

func buildWindow(bc *engine.BuildContext, c any) (engine.Factory, error) {
	cfg := *c.(*WindowConfig)
	in := bc.Inputs[0]
	var errs engine.Errors
	f := &windowFactory{cfg: cfg, in: in}
	tree, err := expr.Parse(cfg.Time)
	if err == nil {
		f.time, err = expr.CompileExpr(cfg.Time, tree, in)
	}
	if err != nil {
		errs = append(errs, expr.FieldErrors("time", err)...)
	} else if tt, ok := f.time.Type().(*arrow.TimestampType); !ok {
		errs = append(errs, engine.Errf("time", "the event time must be a timestamp, %q is %s (cast it: CAST(x AS TIMESTAMP))", cfg.Time, f.time.Type()))
	} else {
		f.unit, f.ttype = tt.Unit, tt
	}
	per := int64(time.Nanosecond)
	if f.ttype != nil {
		per = int64(f.unit.Multiplier())
	}
	inUnit := func(field string, d time.Duration, positive bool) int64 {
		switch {
		case positive && d <= 0:
			errs = append(errs, engine.Errf(field, "must be positive, got %v", d))
		case d < 0:
			errs = append(errs, engine.Errf(field, "must be 0 or more, got %v", d))
		case int64(d)%per != 0:
			errs = append(errs, engine.Errf(field, "%v is not a whole number of the time column's unit (%s)", d, time.Duration(per)))
		}
		return int64(d) / per
	}
	f.size = inUnit("size", cfg.Size, true)
	f.hop = f.size
	if cfg.Hop != 0 {
		f.hop = inUnit("hop", cfg.Hop, true)
		if cfg.Hop > cfg.Size || (cfg.Hop > 0 && cfg.Size%cfg.Hop != 0) {
			errs = append(errs, engine.Errf("hop", "size (%v) must be a multiple of hop (%v)", cfg.Size, cfg.Hop))
		}
	}
	f.wm = inUnit("watermark", cfg.Watermark, false)
	f.late = inUnit("allowed_lateness", cfg.AllowedLateness, false)
	p, err := planAggregate(in, cfg.GroupBy, cfg.Aggregates)
	if err != nil {
		errs = append(errs, err.(engine.Errors)...)
	}
	if _, err := ipcOptions(bc.Settings.Spill); err != nil {
		errs = append(errs, engine.Errf("settings.spill.compression", "%v", err))
	}
	if len(errs) > 0 {
		return nil, errs
	}
	for i, k := range p.keys {
		if k.name == "window_start" || k.name == "window_end" {
			return nil, engine.Errf(fmt.Sprintf("group_by.%d", i), "%q is the name of a column window adds: name the key otherwise (\"… AS name\")", k.name)
		}
	}
	for _, o := range p.outs {
		if o.name == "window_start" || o.name == "window_end" {
			return nil, engine.Errf("aggregates."+o.name, "%q is the name of a column window adds", o.name)
		}
	}
	f.agg = &aggFactory{plan: p, node: bc.Node, batchRows: bc.Settings.BatchRows, spill: bc.Settings.Spill, runs: map[any]*aggRun{}}
	fields := []arrow.Field{{Name: "window_start", Type: f.ttype, Nullable: true}, {Name: "window_end", Type: f.ttype, Nullable: true}}
	f.schema = arrow.NewSchema(append(fields, p.schema.Fields()...), nil)
	return f, nil
}

func (f *windowFactory) Schema() *arrow.Schema { return f.schema }

// OutputSchema is the schema of output port 1, late: the input's.
func (f *windowFactory) OutputSchema(port int) *arrow.Schema {
	if port == 1 {
		return f.in
	}
	return f.schema
}

func (f *windowFactory) Describe() string {
	kind := fmt.Sprintf("tumbling %v", f.cfg.Size)
	if f.hop != f.size {
		kind = fmt.Sprintf("hopping %v every %v", f.cfg.Size, f.cfg.Hop)
	}
	s := fmt.Sprintf("%s windows on %s; watermark %v behind the latest, allowed lateness %v", kind, f.cfg.Time, f.cfg.Watermark, f.cfg.AllowedLateness)
	if len(f.cfg.GroupBy) > 0 {
		s += "; group_by: " + strings.Join(f.cfg.GroupBy, ", ")
	}
	return s
}

func (f *windowFactory) DescribeSpill() string {
	return DescribeSpill("a window's partial states by hash partition", f.agg.spill)
}

func (f *windowFactory) New(ic *engine.InstanceContext) (any, error) {
	mem := ic.Alloc
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	w := &window{f: f, ic: ic, mem: mem, open: map[int64]*aggregate{}, maxTs: math.MinInt64}
	if ic.Budget != nil {
		if avail := ic.Budget.Available(); avail < 1<<62 {
			w.headroom = min(avail/4, 64<<20)
		}
	}
	return w, nil
}

// window is the one instance of a window node: an aggregate per open
// window, by its start.
type window struct {
	f     *windowFactory
	ic    *engine.InstanceContext
	mem   memory.Allocator
	open  map[int64]*aggregate
	null  *aggregate // the window of NULL event times
	maxTs int64      // the latest event time seen; MinInt64 before any

	// headroom is what the windows' tables and states leave free of the
	// budget together (for the batch in process, gathers, output): a
	// quarter of what was available at the start, at most 64 MiB.
	headroom int64

	lateRows int64
	// scratch: the windows a batch's rows go to, each with its rows; the
	// slices are kept from batch to batch, and hit is the last one used
	// (in time order, most rows go where the row before them went).
	parts []windowRows
	used  int
	hit   int
	index map[int64]int // start → part, when a batch has more than linearWindows
	late  []int32
	nulls []int32
}

// watermark is the latest event time seen minus the watermark delay.
func (w *window) watermark() int64 {
	if w.maxTs == math.MinInt64 {
		return math.MinInt64
	}
	return w.maxTs - w.f.wm
}

// closed says whether the window starting at s has been emitted: the
// watermark has passed its end plus the allowed lateness.
func (w *window) closed(s int64, wm int64) bool {
	return wm != math.MinInt64 && s+w.f.size+w.f.late <= wm
}

func (w *window) Process(ctx context.Context, _ int, in arrow.RecordBatch, out engine.Emitter) error {
	n := int(in.NumRows())
	if n == 0 {
		return nil
	}
	tarr, err := w.f.time.Eval(ctx, w.mem, in)
	if err != nil {
		return fmt.Errorf("window: time %s: %w", w.f.cfg.Time, err)
	}
	defer tarr.Release()
	ts := tarr.(*array.Timestamp)
	w.used, w.hit = 0, 0
	clear(w.index)
	w.late, w.nulls = w.late[:0], w.nulls[:0]
	for i := range n {
		if ts.IsNull(i) {
			w.nulls = append(w.nulls, int32(i))
			continue
		}
		t := int64(ts.Value(i))
		wm := w.watermark() // as the rows before this one left it
		placed := false
		// The windows holding t start at multiples of hop in (t - size, t].
		for s := expr.FloorDiv(t, w.f.hop) * w.f.hop; s > t-w.f.size; s -= w.f.hop {
			if w.closed(s, wm) {
				continue
			}
			w.add(s, int32(i))
			placed = true
		}
		if !placed {
			w.late = append(w.late, int32(i))
		}
		w.maxTs = max(w.maxTs, t)
	}
	parts := w.parts[:w.used]
	slices.SortFunc(parts, func(a, b windowRows) int { return cmp.Compare(a.start, b.start) })
	for _, p := range parts {
		s := p.start
		a, err := w.window(s)
		if err != nil {
			return err
		}
		if err := w.feed(ctx, a, in, p.rows); err != nil {
			return err
		}
	}
	if len(w.nulls) > 0 {
		if w.null == nil {
			if w.null, err = w.newAgg(); err != nil {
				return err
			}
		}
		if err := w.feed(ctx, w.null, in, w.nulls); err != nil {
			return err
		}
	}
	if len(w.late) > 0 {
		w.lateRows += int64(len(w.late))
		if err := w.emitLate(ctx, in, out); err != nil {
			return err
		}
	}
	return w.closeUpTo(ctx, w.watermark(), out)
}

// windowRows are the rows of a batch that go to the window at start.
type windowRows struct {
	start int64
	rows  []int32
}

// add puts row i among the rows of the window at start. The windows of
// the batch are looked up among the last one used, then one by one, then,
// once a batch has more than linearWindows of them (input out of time
// order), through a map.
func (w *window) add(start int64, i int32) {
	k := -1
	switch {
	case w.hit < w.used && w.parts[w.hit].start == start:
		k = w.hit
	case w.used > linearWindows:
		if j, ok := w.index[start]; ok {
			k = j
		}
	default:
		for j := range w.used {
			if w.parts[j].start == start {
				k = j
				break
			}
		}
	}
	if k < 0 {
		if w.used == len(w.parts) {
			w.parts = append(w.parts, windowRows{})
		}
		k = w.used
		w.parts[k] = windowRows{start: start, rows: w.parts[k].rows[:0]}
		w.used++
		if w.used > linearWindows {
			if w.index == nil {
				w.index = map[int64]int{}
			}
			if w.used == linearWindows+1 {
				for j := range w.used {
					w.index[w.parts[j].start] = j
				}
			}
			w.index[start] = k
		}
	}
	w.hit = k
	w.parts[k].rows = append(w.parts[k].rows, i)
}

// linearWindows is how many windows of a batch add looks through one by
// one before it indexes them.
const linearWindows = 16

// window returns the open window starting at s, made if need be.
func (w *window) window(s int64) (*aggregate, error) {
	if a := w.open[s]; a != nil {
		return a, nil
	}
	a, err := w.newAgg()
	if err != nil {
		return nil, err
	}
	w.open[s] = a
	return a, nil
}

// newAgg makes the aggregate of one window: one instance of its own, on
// the node's budget and allocator.
func (w *window) newAgg() (*aggregate, error) {
	ic := *w.ic
	ic.Index, ic.Count = 0, 1
	x, err := w.f.agg.New(&ic)
	if err != nil {
		return nil, err
	}
	a := x.(*aggregate)
	a.headroom = w.headroom
	a.onFull = w.spillOthers
	a.onePart = true // a spill writes one file per window, not one per hash partition
	return a, nil
}

// spillOthers writes the groups of every window but full to spill files,
// when the budget refuses full more: it says whether that freed anything.
func (w *window) spillOthers(ctx context.Context, full *aggregate) (bool, error) {
	freed := false
	for _, a := range w.all() {
		if a != full && a.table.Len() > 0 {
			if err := a.spill(ctx); err != nil {
				return freed, err
			}
			freed = true
		}
	}
	return freed, nil
}

// all is every window's aggregate, in order of start, the NULL window last.
func (w *window) all() []*aggregate {
	starts := make([]int64, 0, len(w.open))
	for s := range w.open {
		starts = append(starts, s)
	}
	slices.Sort(starts)
	out := make([]*aggregate, 0, len(starts)+1)
	for _, s := range starts {
		out = append(out, w.open[s])
	}
	if w.null != nil {
		out = append(out, w.null)
	}
	return out
}

// feed gives rows of in to a window's aggregate: the batch itself when it
// is all of them, a slice when they are consecutive, else a gathered copy.
func (w *window) feed(ctx context.Context, a *aggregate, in arrow.RecordBatch, rows []int32) error {
	n, first, last := len(rows), int64(rows[0]), int64(rows[len(rows)-1])
	var b arrow.RecordBatch
	switch {
	case n == int(in.NumRows()):
		return a.Process(ctx, 0, in, nil)
	case last-first+1 == int64(n):
		b = in.NewSlice(first, last+1)
	default:
		g, err := expr.Gather(ctx, w.mem, in, rows)
		if err != nil {
			return fmt.Errorf("window: %w", err)
		}
		w.ic.Ledger.Copied("window gather", expr.GatheredBytes(g))
		b = g
	}
	defer b.Release()
	return a.Process(ctx, 0, b, nil)
}

// emitLate sends the late rows of in to the late port, when a node reads it.
func (w *window) emitLate(ctx context.Context, in arrow.RecordBatch, out engine.Emitter) error {
	pe, ok := out.(engine.PortEmitter)
	if !ok || !pe.PortUsed(1) {
		return nil
	}
	var b arrow.RecordBatch
	if len(w.late) == int(in.NumRows()) {
		in.Retain()
		b = in
	} else {
		g, err := expr.Gather(ctx, w.mem, in, w.late)
		if err != nil {
			return fmt.Errorf("window: late rows: %w", err)
		}
		w.ic.Ledger.Copied("window late", expr.GatheredBytes(g))
		b = g
	}
	return pe.EmitPort(1, b)
}

// closeUpTo emits and drops, in order of start, the open windows the
// watermark wm has closed.
func (w *window) closeUpTo(ctx context.Context, wm int64, out engine.Emitter) error {
	var due []int64
	for s := range w.open {
		if wm == math.MaxInt64 || w.closed(s, wm) {
			due = append(due, s)
		}
	}
	slices.Sort(due)
	for _, s := range due {
		a := w.open[s]
		delete(w.open, s)
		err := w.emitWindow(ctx, a, s, true, out)
		a.Release()
		if err != nil {
			return err
		}
	}
	return nil
}

// emitWindow finishes a window's aggregate and emits its rows with
// window_start and window_end (NULL for the window of NULL times).
func (w *window) emitWindow(ctx context.Context, a *aggregate, start int64, valid bool, out engine.Emitter) error {
	if a.spilledAny() {
		// Merging what it spilled takes memory the other windows' groups
		// hold: they go to their files too.
		if _, err := w.spillOthers(ctx, a); err != nil {
			return err
		}
	}
	return a.Finish(ctx, &windowEmitter{w: w, start: start, valid: valid, out: out})
}

// Finish closes every window still open, then the NULL window.
func (w *window) Finish(ctx context.Context, out engine.Emitter) error {
	if err := w.closeUpTo(ctx, math.MaxInt64, out); err != nil {
		return err
	}
	if w.null != nil {
		a := w.null
		w.null = nil
		err := w.emitWindow(ctx, a, 0, false, out)
		a.Release()
		if err != nil {
			return err
		}
	}
	if w.ic.Logger != nil && w.lateRows > 0 {
		w.ic.Logger.Warn("window: rows arrived after their windows had closed", "node", w.ic.Node, "late_rows", w.lateRows,
			"watermark", w.f.cfg.Watermark, "allowed_lateness", w.f.cfg.AllowedLateness)
	}
	return nil
}

// Release drops the windows a failed or cancelled run left open.
func (w *window) Release() {
	for s, a := range w.open {
		a.Release()
		delete(w.open, s)
	}
	if w.null != nil {
		w.null.Release()
		w.null = nil
	}
}

// windowEmitter puts window_start and window_end before the columns of
// a window's aggregate output.
type windowEmitter struct {
	w     *window
	start int64
	valid bool
	out   engine.Emitter
}

func (e *windowEmitter) Emit(b arrow.RecordBatch) error {
	defer b.Release()
	n := int(b.NumRows())
	cols := make([]arrow.Array, 0, b.NumCols()+2)
	for _, v := range []int64{e.start, e.start + e.w.f.size} {
		tb := array.NewTimestampBuilder(e.w.mem, e.w.f.ttype.(*arrow.TimestampType))
		tb.Reserve(n)
		for range n {
			if e.valid {
				tb.UnsafeAppend(arrow.Timestamp(v))
			} else {
				tb.UnsafeAppendBoolToBitmap(false)
			}
		}
		cols = append(cols, tb.NewArray())
		tb.Release()
	}
	for _, c := range b.Columns() {
		c.Retain()
		cols = append(cols, c)
	}
	rec := array.NewRecordBatch(e.w.f.schema, cols, int64(n))
	for _, c := range cols {
		c.Release()
	}
	return e.out.Emit(rec)
}
