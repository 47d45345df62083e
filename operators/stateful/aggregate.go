package stateful

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/buffers"
	"github.com/zflowdev/zflow/engine"
)

// AggregateConfig is the config of the aggregate transform.
type AggregateConfig struct {
	GroupBy    []string          `zflow:"group_by" doc:"the grouping keys, each a column or \"expression AS name\"; rows with equal keys form a group (NULL is a key like any other); none: one row over the whole input" example:"[symbol, \"id % 1000000 AS k\"]"`
	Aggregates engine.OrderedMap `zflow:"aggregates" doc:"output column: expression over aggregate calls, in the order written — count(*), count(x), sum, avg (mean), min, max, first, last, stddev (stddev_samp), stddev_pop, variance (var_samp), var_pop, bool_and, bool_or, count(DISTINCT x), approx_count_distinct, approx_quantile(x, q), each with an optional FILTER (WHERE cond); an argument may be an expression (sum(price * qty)) and so may the result (sum(a) / sum(b), round(avg(x), 2))" example:"{vwap: \"sum(price * qty) / sum(qty)\", cnt: \"count(*)\"}"`
}

// AggregateSpec declares aggregate: a vectorized hash group-by.
func AggregateSpec() engine.Spec {
	return engine.Spec{
		Name: "aggregate", Kind: engine.KindTransform, Parallel: true, Unordered: true, MinInputs: 1, MaxInputs: 1,
		Summary: "group rows by keys and compute aggregates per group (hash group-by; parallel; spills over its budget)",
		Doc: "Output: the group_by columns in order, then the aggregates in the order written; groups come out in no promised order. " +
			"Types follow DuckDB, except that sum of integers is int64 (DuckDB: int128) and a sum past int64 fails the run naming the group. " +
			"sum of decimal(p,s) is decimal(38,s); avg, stddev and variance are double; min, max, first and last keep the argument's type. " +
			"No group_by gives one row, also over no input (count 0, sum NULL). " +
			"first and last take the first and last row of the group in input order with one instance; with several, rows are numbered by the batch they came in, in the order the instances took them (see docs/aggregate.md). " +
			"Parallel instances aggregate their share and merge the partial states by hash partition at the end; over its memory budget an instance writes its groups' partial states to spill files by hash partition and merges them at the end.",
		Example:   `{type: aggregate, inputs: [trades], group_by: [symbol], aggregates: {volume: "sum(qty)", vwap: "sum(price * qty) / sum(qty)", cnt: "count(*)"}}`,
		NewConfig: func() any { return &AggregateConfig{} },
		Build: func(bc *engine.BuildContext, c any) (engine.Factory, error) {
			cfg := c.(*AggregateConfig)
			p, err := planAggregate(bc.Inputs[0], cfg.GroupBy, cfg.Aggregates)
			if err != nil {
				return nil, err
			}
			if _, err := ipcOptions(bc.Settings.Spill); err != nil {
				return nil, engine.Errf("settings.spill.compression", "%v", err)
			}
			return &aggFactory{plan: p, node: bc.Node, batchRows: bc.Settings.BatchRows, spill: bc.Settings.Spill, runs: map[any]*aggRun{},
				local: p.groupsBy(bc.PartitionedBy)}, nil
		},
	}
}

func init() { engine.Register(AggregateSpec()) }

// spillParts is how many hash partitions an instance's groups are split
// into, in spill files and in the exchange between parallel instances
// (instance i merges the partitions q with q % instances == i).
const spillParts = 16

type aggFactory struct {
	plan      *aggPlan
	node      string
	batchRows int
	spill     engine.SpillSettings
	desc      string // Describe's, when not the aggregate's own (distinct)
	local     bool   // the input is partitioned by group keys (aggregate.local)

	mu   sync.Mutex
	runs map[any]*aggRun // the run being set up, by its instances' budget
}

func (f *aggFactory) Schema() *arrow.Schema { return f.plan.schema }

// InputColumns is what the aggregate reads (engine.ColumnUser): the
// columns of its group_by expressions and of its calls' arguments and
// FILTER conditions, whichever of its outputs are needed (every call is
// computed). count(*) alone reads none.
func (f *aggFactory) InputColumns(_ int, _ []string) []string {
	used := []string{}
	for _, k := range f.plan.keys {
		used = append(used, k.expr.ColumnNames()...)
	}
	for _, c := range f.plan.calls {
		if c.arg != nil {
			used = append(used, c.arg.ColumnNames()...)
		}
		if c.filter != nil {
			used = append(used, c.filter.ColumnNames()...)
		}
	}
	return used
}

// DictionaryOK says col may arrive as a dictionary (engine.DictionaryUser):
// it is a group key as it is and read by nothing else, so its groups, and
// the key column put back in the output (as the dictionary's value type),
// are the same; a batch with it as the one key finds its groups per
// dictionary entry (dictGroups).
func (f *aggFactory) DictionaryOK(_ int, col string) bool {
	key := false
	for _, k := range f.plan.keys {
		if k.col == col {
			key = true
		} else if slices.Contains(k.expr.ColumnNames(), col) {
			return false
		}
	}
	for _, c := range f.plan.calls {
		if (c.arg != nil && slices.Contains(c.arg.ColumnNames(), col)) || (c.filter != nil && slices.Contains(c.filter.ColumnNames(), col)) {
			return false
		}
	}
	return key
}

// DescribeSpill says where the aggregate may spill (engine.SpillDescriber).
func (f *aggFactory) DescribeSpill() string {
	return DescribeSpill("partial states by hash partition", f.spill)
}

func (f *aggFactory) Describe() string {
	s := f.desc
	if s == "" {
		var keys, aggs []string
		for _, k := range f.plan.keys {
			keys = append(keys, k.expr.String()+" AS "+k.name)
		}
		for _, o := range f.plan.outs {
			aggs = append(aggs, o.name)
		}
		s = fmt.Sprintf("group_by: [%s]; aggregates: [%s]; %d distinct calls", strings.Join(keys, ", "), strings.Join(aggs, ", "), len(f.plan.calls))
	}
	if f.local {
		s += "; each instance keeps its groups (its input is partitioned by group keys): no merge between instances"
	}
	return s
}

// New makes instance ic.Index. The instances of one run share an aggRun:
// the first one made creates it, keyed by the run's budget for the node
// (every instance of a node in one run shares it), and the last one made
// takes it off the factory, so that runs of one plan do not mix.
func (f *aggFactory) New(ic *engine.InstanceContext) (any, error) {
	count := max(ic.Count, 1)
	var key any = ic.Budget
	f.mu.Lock()
	r := f.runs[key]
	if r == nil {
		r = newAggRun(count)
		f.runs[key] = r
	}
	r.made++
	if r.made == count {
		delete(f.runs, key)
	}
	f.mu.Unlock()
	a := &aggregate{f: f, p: f.plan, run: r, ic: ic, index: ic.Index, mem: ic.Alloc, budget: ic.Budget,
		local: count > 1 && f.plan.groupsBy(ic.PartitionedBy)}
	if a.mem == nil {
		a.mem = memory.DefaultAllocator
	}
	a.spiller = NewSpiller(ic, a.mem)
	r.mu.Lock()
	r.spillers = append(r.spillers, a.spiller)
	r.mu.Unlock()
	if a.budget != nil {
		if avail := a.budget.Available(); avail < 1<<62 {
			a.headroom = min(avail/4, 64<<20)
		}
	}
	a.table = NewKeyTable(a.charge)
	a.states = make([]aggState, len(a.p.calls))
	for j, c := range a.p.calls {
		var at arrow.DataType
		if c.arg != nil {
			at = c.arg.Type()
		}
		a.states[j] = newAggState(c.kind, at, c.out)
		if q, ok := a.states[j].(*quantileState); ok {
			q.q = c.q
		}
	}
	a.masks = make([][]byte, len(a.p.calls))
	return a, nil
}

// aggRun is what the instances of one run share: the batch numbering of
// first and last, the exchange of partial states at the end, and the
// instances' spillers (each its own directory), closed when the last
// instance is released: an instance reads the runs other instances wrote
// of its partitions.
type aggRun struct {
	n    int
	made int // under aggFactory.mu
	seq  atomic.Int64

	mu       sync.Mutex
	parts    [][]*partials // [instance][partition], set when it arrives
	arrived  int
	ready    chan struct{} // closed when every instance has arrived
	released int
	spillers []*Spiller
}

func newAggRun(n int) *aggRun {
	r := &aggRun{n: n, parts: make([][]*partials, n), ready: make(chan struct{})}
	return r
}

// partials are one partition's partial states from one instance: batches
// in memory and spilled runs (read through the spiller that wrote them).
type partials struct {
	batches []arrow.RecordBatch
	runs    []*Run
	spiller *Spiller
}

func (p *partials) release() {
	for _, b := range p.batches {
		b.Release()
	}
	p.batches = nil
}

type aggregate struct {
	f      *aggFactory
	p      *aggPlan
	run    *aggRun
	ic     *engine.InstanceContext
	index  int
	mem    memory.Allocator
	budget buffers.Budget

	table   *KeyTable
	states  []aggState
	charged int64 // the states' bytes reserved from the budget
	// headroom is what charge leaves free for writing a spill: a quarter
	// of the budget available at the start, at most 64 MiB.
	headroom int64

	rows KeyRows
	ids  []uint32
	sel  []int32 // 0, 1, 2, ...: the rows of a batch, sliced to resume
	n    int     // the rows of the batch in process

	// A batch whose one key is a dictionary (dictGroups): the encoded
	// entries, each entry's group (-1 unused), the entries used, their ids.
	drows       KeyRows
	entry       []int64
	usedEntries []int32
	dids        []uint32
	masks       [][]byte
	keys        []arrow.Array // scratch: the key columns of a batch
	args        []arrow.Array
	filts       []arrow.Array

	spiller *Spiller
	spilled [spillParts][]*Run
	// local is set when the input is hash-partitioned by columns that are
	// all group keys: every group is whole in one instance, which merges
	// and emits its own partials without waiting for the others.
	local bool
	// onFull, when set, is asked first when the budget refuses the table
	// or the states more: an owner of several aggregates on one budget (a
	// window's) spills the others, and says whether that freed anything.
	onFull func(ctx context.Context, full *aggregate) (bool, error)
	// onePart keeps all groups in partition 0: one spill file per spill
	// instead of one per partition, for an instance with few groups among
	// many (a window's); a merge that does not fit is split as any
	// partition is, by the next bits of the hash.
	onePart bool
}

// charge is the table's and the states' way to the budget. It says no
// while the budget has room for the request but would be left with less
// than the headroom: writing a spill takes memory too (a partition's
// partial states as a batch, the IPC writer's buffers).
func (a *aggregate) charge(n int64) error {
	if a.budget == nil {
		return nil
	}
	if n < 0 {
		a.budget.Unreserve(-n)
		return nil
	}
	if a.headroom > 0 && a.budget.Available()-n < a.headroom {
		return &buffers.BudgetError{Owner: a.f.node, Asked: n + a.headroom, InUse: a.budget.Used(), Limit: a.budget.Used() + a.budget.Available()}
	}
	return a.budget.Reserve(n)
}

func (a *aggregate) Process(ctx context.Context, _ int, in arrow.RecordBatch, _ engine.Emitter) error {
	n := int(in.NumRows())
	base := a.run.seq.Add(1) << 32
	defer a.releaseScratch()
	for _, k := range a.p.keys {
		arr, err := k.expr.Eval(ctx, a.mem, in)
		if err != nil {
			return fmt.Errorf("aggregate: group_by %s: %w", k.name, err)
		}
		a.keys = append(a.keys, arr)
	}
	for _, c := range a.p.calls {
		var arg, filt arrow.Array
		var err error
		if c.arg != nil {
			if arg, err = c.arg.Eval(ctx, a.mem, in); err != nil {
				return fmt.Errorf("aggregate: %s: %w", c.text, err)
			}
		}
		a.args = append(a.args, arg)
		if c.filter != nil {
			if filt, err = c.filter.Eval(ctx, a.mem, in); err != nil {
				return fmt.Errorf("aggregate: %s: %w", c.text, err)
			}
		}
		a.filts = append(a.filts, filt)
	}
	if n == 0 {
		return nil
	}
	a.n = n
	if d, ok := a.dictKey(); ok {
		done, err := a.dictGroups(ctx, d, n, base)
		if done || err != nil {
			return err
		}
	}
	if err := a.encode(n); err != nil {
		return err
	}
	a.ids = grow(a.ids, n)
	if len(a.sel) < n {
		a.sel = make([]int32, n)
		for i := range a.sel {
			a.sel[i] = int32(i)
		}
	}
	for from := 0; from < n; {
		k, err := a.table.FindOrInsert(&a.rows, a.sel[from:n], a.ids[from:n])
		if k > 0 {
			if uerr := a.update(from, from+k, base); uerr != nil {
				return uerr
			}
		}
		from += k
		if err == nil {
			err = a.chargeStates()
		}
		if err != nil {
			if !errors.Is(err, buffers.ErrBudgetExceeded) {
				return fmt.Errorf("aggregate: %w", err)
			}
			if rerr := a.relieve(ctx, err); rerr != nil {
				return rerr
			}
		}
	}
	return nil
}

// relieve makes room after the budget refused the table or the states
// more (err): the owner's other aggregates spill first (onFull), else this
// one's table does.
func (a *aggregate) relieve(ctx context.Context, err error) error {
	if a.onFull != nil {
		freed, ferr := a.onFull(ctx, a)
		if ferr != nil || freed {
			return ferr
		}
	}
	if a.table.Len() == 0 {
		return fmt.Errorf("aggregate: not one group fits in the memory budget: %w", err)
	}
	return a.spill(ctx)
}

// dictKey is the batch's key column when it is the only one and a
// dictionary: its groups can be found per dictionary entry, not per row.
func (a *aggregate) dictKey() (*array.Dictionary, bool) {
	if len(a.keys) != 1 {
		return nil, false
	}
	d, ok := a.keys[0].(*array.Dictionary)
	return d, ok && a.p.enc.cols[0].dict != nil
}

// dictGroups finds the groups of a batch whose one key is a dictionary
// column: the dictionary's entries the batch uses are encoded and looked
// up once each (their encoding is what a row of that value encodes to),
// and each row takes its entry's group. It says false, having changed
// nothing a row depends on, when the per-row way is better (a dictionary
// larger than the batch) or when the budget refuses a group (the per-row
// way then spills as it goes).
func (a *aggregate) dictGroups(ctx context.Context, d *array.Dictionary, n int, base int64) (bool, error) {
	dict := d.Dictionary()
	m := dict.Len()
	if m > n {
		return false, nil
	}
	entry := grow(a.entry, m)
	a.entry = entry
	for j := range entry {
		entry[j] = -1
	}
	hasNull := false
	for i := range n {
		if d.IsValid(i) {
			entry[d.GetValueIndex(i)] = 0
		} else {
			hasNull = true
		}
	}
	used := a.usedEntries[:0]
	for j, e := range entry {
		if e == 0 {
			used = append(used, int32(j))
		}
	}
	a.usedEntries = used
	if err := a.p.enc.cols[0].dict.Encode([]arrow.Array{dict}, &a.drows); err != nil {
		return false, fmt.Errorf("aggregate: %w", err)
	}
	a.dids = grow(a.dids, len(used))
	if k, err := a.table.FindOrInsert(&a.drows, used, a.dids); err != nil || k < len(used) {
		return false, nil
	}
	for j, e := range used {
		entry[e] = int64(a.dids[j])
	}
	nullID := int64(-1)
	if hasNull {
		one := KeyRows{Data: []byte{0}, Offs: []int32{0, 1}, Hash: []uint64{HashKey([]byte{0})}, anyNull: []bool{true}}
		var id [1]uint32
		if k, err := a.table.FindOrInsert(&one, nil, id[:]); err != nil || k < 1 {
			return false, nil
		}
		nullID = int64(id[0])
	}
	a.ids = grow(a.ids, n)
	for i := range n {
		if d.IsValid(i) {
			a.ids[i] = uint32(entry[d.GetValueIndex(i)])
		} else {
			a.ids[i] = uint32(nullID)
		}
	}
	if err := a.update(0, n, base); err != nil {
		return true, err
	}
	if err := a.chargeStates(); err != nil {
		if !errors.Is(err, buffers.ErrBudgetExceeded) {
			return true, fmt.Errorf("aggregate: %w", err)
		}
		return true, a.relieve(ctx, err)
	}
	return true, nil
}

// encode puts the batch's keys into a.rows; with no group_by every row
// has the empty key.
func (a *aggregate) encode(n int) error {
	if len(a.p.keys) > 0 {
		return a.p.enc.Encode(a.keys, &a.rows)
	}
	r := &a.rows
	if len(r.Hash) != n || (n > 0 && r.Hash[0] != HashKey(nil)) {
		r.Data = r.Data[:0]
		r.Offs = grow(r.Offs, n+1)
		clear(r.Offs)
		r.Hash = grow(r.Hash, n)
		h := HashKey(nil)
		for i := range r.Hash {
			r.Hash[i] = h
		}
	}
	return nil
}

// update folds rows [from, to) of the batch, whose group ids are set, into
// the states.
func (a *aggregate) update(from, to int, base int64) error {
	for _, s := range a.states {
		s.grow(a.table.Len())
	}
	ids := a.ids[from:to]
	for j, c := range a.p.calls {
		arg, filt := a.args[j], a.filts[j]
		if from > 0 || to < a.n {
			if arg != nil {
				arg = array.NewSlice(arg, int64(from), int64(to))
				defer arg.Release()
			}
			if filt != nil {
				filt = array.NewSlice(filt, int64(from), int64(to))
				defer filt.Release()
			}
		}
		mask := a.mask(j, c, arg, filt, to-from)
		if bad := a.states[j].update(ids, arg, mask, base+int64(from)); bad >= 0 {
			return a.overflow(c, a.table, uint32(bad))
		}
	}
	return nil
}

// mask is the bitmap of the rows call j takes, nil for all: those whose
// FILTER is true and (but for first and last) whose argument is not NULL.
func (a *aggregate) mask(j int, c *aggCall, arg, filt arrow.Array, n int) []byte {
	useArg := arg != nil && !c.kind.keepsNulls() && arg.NullN() > 0
	if filt == nil && !useArg {
		return nil
	}
	m := grow(a.masks[j], int(bitutil.BytesForBits(int64(n))))
	a.masks[j] = m
	for i := range m {
		m[i] = 0xff
	}
	if filt != nil {
		fd := filt.Data()
		if filt.DataType().ID() != arrow.BOOL || fd.Buffers()[1] == nil {
			clear(m) // a NULL condition takes no row
			return m
		}
		vals, valid, off := fd.Buffers()[1].Bytes(), fd.Buffers()[0], fd.Offset()
		for i := range n {
			if !bitutil.BitIsSet(vals, off+i) || (valid != nil && !bitutil.BitIsSet(valid.Bytes(), off+i)) {
				bitutil.ClearBit(m, i)
			}
		}
	}
	if useArg {
		ad := arg.Data()
		if v := ad.Buffers()[0]; v != nil {
			vb, off := v.Bytes(), ad.Offset()
			for i := range n {
				if !bitutil.BitIsSet(vb, off+i) {
					bitutil.ClearBit(m, i)
				}
			}
		}
	}
	return m
}

// chargeStates reserves what the states grew by since the last charge.
func (a *aggregate) chargeStates() error {
	var held int64
	for _, s := range a.states {
		held += s.bytes()
	}
	d := held - a.charged
	if d == 0 {
		return nil
	}
	if err := a.charge(d); err != nil {
		return err
	}
	a.charged = held
	return nil
}

// overflow is the error of a sum that left int64 in group g of table t.
func (a *aggregate) overflow(c *aggCall, t *KeyTable, g uint32) error {
	return fmt.Errorf("aggregate %q: %s overflows int64 in the group %s (sums of integers are int64; CAST the argument to DOUBLE or DECIMAL for more)", a.f.node, c.text, a.describeGroup(t, g))
}

// describeGroup renders group g's keys: (symbol = 'AAPL', day = 2024-01-02).
func (a *aggregate) describeGroup(t *KeyTable, g uint32) string {
	if len(a.p.keys) == 0 {
		return "of the whole input"
	}
	cols, err := t.KeyArrays(a.p.enc, a.mem, g, g+1)
	if err != nil {
		return fmt.Sprintf("#%d", g)
	}
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = a.p.keys[i].name + " = " + c.ValueStr(0)
		c.Release()
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

func (a *aggregate) releaseScratch() {
	for _, s := range [][]arrow.Array{a.keys, a.args, a.filts} {
		for _, x := range s {
			if x != nil {
				x.Release()
			}
		}
	}
	a.keys, a.args, a.filts = a.keys[:0], a.args[:0], a.filts[:0]
}

// resetTable empties the table and the states, giving their memory back.
func (a *aggregate) resetTable() {
	a.table.Release()
	for _, s := range a.states {
		s.reset()
	}
	if a.charged > 0 {
		_ = a.charge(-a.charged)
	}
	a.charged = 0
}

// partition lists the table's groups by hash partition.
func (a *aggregate) partition() [spillParts][]uint32 {
	var parts [spillParts][]uint32
	if a.onePart {
		for id := range uint32(a.table.Len()) {
			parts[0] = append(parts[0], id)
		}
		return parts
	}
	for id := range uint32(a.table.Len()) {
		q := Partition(a.table.Hash(id), spillParts)
		parts[q] = append(parts[q], id)
	}
	return parts
}

// partialBatch is the partial states of groups (of one partition) as a
// batch: the encoded key, then each call's partial columns.
func (a *aggregate) partialBatch(groups []uint32) arrow.RecordBatch {
	kb := array.NewBinaryBuilder(a.mem, arrow.BinaryTypes.Binary)
	for _, g := range groups {
		kb.Append(a.table.Key(g))
	}
	cols := []arrow.Array{kb.NewArray()}
	kb.Release()
	for _, s := range a.states {
		cols = append(cols, s.partial(a.mem, groups)...)
	}
	b := array.NewRecordBatch(a.partialSchema(), cols, int64(len(groups)))
	for _, c := range cols {
		c.Release()
	}
	return b
}

func (a *aggregate) partialSchema() *arrow.Schema {
	fields := []arrow.Field{{Name: "key", Type: arrow.BinaryTypes.Binary}}
	for j, s := range a.states {
		for k, t := range s.partialTypes() {
			fields = append(fields, arrow.Field{Name: fmt.Sprintf("c%d_%d", j, k), Type: t, Nullable: true})
		}
	}
	return arrow.NewSchema(fields, nil)
}

// spill writes the table's groups to the instance's spiller, one run per
// hash partition, and empties the table. Each run is finished as it is
// written, so the run's summary counts it at once.
func (a *aggregate) spill(ctx context.Context) error {
	parts := a.partition()
	schema := a.partialSchema()
	for q, groups := range parts {
		if len(groups) == 0 {
			continue
		}
		r, err := a.spiller.WriteRun(ctx, schema, func(emit func(arrow.RecordBatch) error) error {
			b := a.partialBatch(groups)
			if a.ic != nil && a.ic.Ledger != nil {
				a.ic.Ledger.Copied("aggregate spill", engine.BatchBytes(b))
			}
			return emit(b)
		})
		if err != nil {
			return fmt.Errorf("aggregate %q: spill: %w", a.f.node, err)
		}
		a.spilled[q] = append(a.spilled[q], r)
	}
	a.resetTable()
	aggSpills.Add(1)
	return nil
}

// aggSpills counts the times an aggregate instance spilled its table, in
// this process (the tests check that a small budget did spill).
var aggSpills atomic.Int64

// Finish emits the groups. One instance that never spilled emits its
// table as it is; otherwise every instance hands its partial states in,
// by partition, waits for the others, and merges and emits its own
// partitions.
func (a *aggregate) Finish(ctx context.Context, out engine.Emitter) error {
	if len(a.p.keys) == 0 && (a.table.Len() == 0) {
		// One row over no input: the group of the empty key exists.
		a.rows = KeyRows{Offs: []int32{0, 0}, Hash: []uint64{HashKey(nil)}}
		a.ids = grow(a.ids, 1)
		if _, err := a.table.FindOrInsert(&a.rows, nil, a.ids[:1]); err != nil {
			return fmt.Errorf("aggregate: %w", err)
		}
		for _, s := range a.states {
			s.grow(1)
		}
	}
	spilled := a.spilledAny()
	if a.local {
		aggLocal.Add(1)
	}
	if (a.run.n == 1 || a.local) && !spilled {
		return a.emitTable(ctx, out, a.table, a.states)
	}
	if (spilled || (a.headroom > 0 && a.charged > a.headroom) || a.charged+a.table.Bytes() > minFinishSpill) && a.table.Len() > 0 {
		// What is left goes to the files too: the merge needs the memory
		// (also when the table, held while the other instances merge,
		// is more than the headroom, or, without a budget, big: its
		// partial states would be a second copy of it in memory).
		if err := a.spill(ctx); err != nil {
			return err
		}
	}
	// Hand in this instance's partials.
	mine := make([]*partials, spillParts)
	parts := a.partition()
	for q := range mine {
		mine[q] = &partials{runs: a.spilled[q], spiller: a.spiller}
		if len(parts[q]) > 0 {
			mine[q].batches = append(mine[q].batches, a.partialBatch(parts[q]))
		}
	}
	a.resetTable()
	r := a.run
	r.mu.Lock()
	r.parts[a.index] = mine
	r.arrived++
	if r.arrived == r.n {
		close(r.ready)
	}
	r.mu.Unlock()
	if a.local {
		for q := range mine {
			if err := a.mergeSet(ctx, out, mine[q:q+1], 0); err != nil {
				return err
			}
		}
		return nil
	}
	select {
	case <-r.ready:
	case <-ctx.Done():
		return ctx.Err()
	}
	for q := a.index; q < spillParts; q += r.n {
		if err := a.mergePartition(ctx, out, q); err != nil {
			return err
		}
	}
	return nil
}

// spilledAny says whether the instance has written partial states to
// spill files.
func (a *aggregate) spilledAny() bool {
	for _, rs := range a.spilled {
		if len(rs) > 0 {
			return true
		}
	}
	return false
}

// mergePartition merges partition q of every instance into a fresh table
// and emits it (mergeSet).
func (a *aggregate) mergePartition(ctx context.Context, out engine.Emitter, q int) error {
	srcs := make([]*partials, 0, a.run.n)
	for i := range a.run.n {
		srcs = append(srcs, a.run.parts[i][q])
	}
	return a.mergeSet(ctx, out, srcs, 0)
}

// minFinishSpill is the smallest table an instance writes to spill files
// at the end, rather than handing it to the merge in memory, when it has
// no budget to keep: the 1M groups of bench/stateful.sh's gb1m (55 MiB of
// partial states) peaked at 417 MiB RSS handed in memory, 354 MiB
// spilled, in the same time; a small table is not worth its files.
const minFinishSpill = 16 << 20

// aggLocal counts the instances that kept their groups to themselves
// (local) in this process (tests).
var aggLocal atomic.Int64

// aggSplits counts the partitions split again in this process (tests).
var aggSplits atomic.Int64

// maxAggLevel is how many times a partition is split again by the next
// 4 bits of its keys' hash when its groups do not fit: 16⁴ ways at most.
const maxAggLevel = 3

// mergeSet merges the partial states of srcs, one hash partition of the
// given level, into a fresh table and emits it; the partials are released
// (their runs removed) either way.
//
// The sets of count(DISTINCT x) may not fit where the other states do:
// when the merge exceeds the budget it starts over in passes, each
// keeping the values of one hash slice of of (1, 4, 16, ...) and counting
// them before the next; the other states are merged in the first pass.
// When the groups themselves do not fit, the partition is split by the
// next 4 bits of the hash into 16 spilled parts, each merged the same way
// (a partition holds 1/16 of the groups per level).
func (a *aggregate) mergeSet(ctx context.Context, out engine.Emitter, srcs []*partials, level int) error {
	defer releasePartials(srcs)
	defer a.resetTable()
	var err error
	for of := 1; ; of *= 4 {
		if err = a.mergePasses(ctx, srcs, of); err == nil || !errors.Is(err, buffers.ErrBudgetExceeded) {
			break
		}
		a.resetTable()
		if !a.hasDistinct() || of >= 1<<12 {
			break
		}
	}
	switch {
	case err == nil:
		releasePartials(srcs) // before emitting: the memory of what was merged
		return a.emitTable(ctx, out, a.table, a.states)
	case !errors.Is(err, buffers.ErrBudgetExceeded):
		return err
	case level >= maxAggLevel:
		return fmt.Errorf("aggregate %q: the groups of one hash partition do not fit in the memory budget, even split %d ways: %w", a.f.node, 1<<(4*(level+1)), err)
	}
	a.resetTable()
	subs, err := a.splitSet(ctx, srcs, level+1)
	releasePartials(srcs)
	if err != nil {
		releasePartials(subs)
		return err
	}
	for i, sub := range subs {
		if sub == nil {
			continue
		}
		if err := a.mergeSet(ctx, out, []*partials{sub}, level+1); err != nil {
			releasePartials(subs[i+1:])
			return err
		}
	}
	return nil
}

// splitSet writes the partial states of srcs to spillParts runs by the
// hash bits of level (partOf), one partials per part (nil when empty).
func (a *aggregate) splitSet(ctx context.Context, srcs []*partials, level int) ([]*partials, error) {
	aggSplits.Add(1)
	var ws [spillParts]*RunWriter
	defer func() {
		for _, w := range ws {
			if w != nil {
				w.Abort()
			}
		}
	}()
	schema := a.partialSchema()
	write := func(p int, rec arrow.RecordBatch) error {
		if ws[p] == nil {
			w, err := a.spiller.Create(ctx, schema)
			if err != nil {
				return fmt.Errorf("aggregate %q: %w", a.f.node, err)
			}
			ws[p] = w
		}
		return ws[p].Write(rec)
	}
	split := func(b arrow.RecordBatch) error {
		keys := b.Column(0).(*array.Binary)
		var pos [spillParts][]uint64
		for i := range keys.Len() {
			p := partOf(HashKey(keys.Value(i)), level)
			pos[p] = append(pos[p], uint64(i))
		}
		return writeParts(a.mem, schema, b, &pos, write, a.ic, "aggregate spill")
	}
	for _, src := range srcs {
		for _, b := range src.batches {
			if err := split(b); err != nil {
				return nil, err
			}
		}
		for _, run := range src.runs {
			if err := readRun(ctx, spilledRun{src.spiller, run}, split); err != nil {
				return nil, err
			}
		}
	}
	var runs [spillParts][]spilledRun
	err := finishWriters(&ws, a.spiller, &runs)
	subs := make([]*partials, spillParts)
	for p, rs := range runs {
		for _, sr := range rs {
			subs[p] = &partials{runs: []*Run{sr.r}, spiller: a.spiller}
		}
	}
	if err != nil {
		return subs, fmt.Errorf("aggregate %q: %w", a.f.node, err)
	}
	return subs, nil
}

// releasePartials releases the batches of each and removes its runs; it
// may be called again.
func releasePartials(ps []*partials) {
	for _, p := range ps {
		if p == nil {
			continue
		}
		for _, run := range p.runs {
			p.spiller.Remove(run)
		}
		p.runs = nil
		p.release()
	}
}

func (a *aggregate) hasDistinct() bool {
	for _, s := range a.states {
		if _, ok := s.(*distinctState); ok {
			return true
		}
	}
	return false
}

// mergePasses merges srcs in of passes (see mergeSet).
func (a *aggregate) mergePasses(ctx context.Context, srcs []*partials, of int) error {
	var rows KeyRows
	for sub := range of {
		for _, s := range a.states {
			if d, ok := s.(*distinctState); ok {
				d.slice(uint64(sub), uint64(of))
			}
		}
		for _, p := range srcs {
			for _, b := range p.batches {
				if err := a.mergeBatch(b, &rows, sub > 0); err != nil {
					return err
				}
			}
			for _, run := range p.runs {
				if err := a.mergeRun(ctx, p.spiller, run, &rows, sub > 0); err != nil {
					return err
				}
			}
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if of > 1 {
			for _, s := range a.states {
				if d, ok := s.(*distinctState); ok {
					d.count()
				}
			}
			if err := a.chargeStates(); err != nil {
				return err
			}
		}
	}
	return nil
}

// mergeRun folds a spilled run of partial states into the table
// (onlyDistinct: only the DISTINCT sets).
func (a *aggregate) mergeRun(ctx context.Context, s *Spiller, run *Run, rows *KeyRows, onlyDistinct bool) error {
	rd, err := s.Open(ctx, run)
	if err != nil {
		return fmt.Errorf("aggregate %q: %w", a.f.node, err)
	}
	defer rd.Close()
	for {
		b, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("aggregate %q: %w", a.f.node, err)
		}
		err = a.mergeBatch(b, rows, onlyDistinct)
		b.Release()
		if err != nil {
			return err
		}
	}
	return nil
}

// mergeBatch folds a batch of partial states into the table
// (onlyDistinct: only into the DISTINCT sets).
func (a *aggregate) mergeBatch(b arrow.RecordBatch, rows *KeyRows, onlyDistinct bool) error {
	n := int(b.NumRows())
	if n == 0 {
		return nil
	}
	keys := b.Column(0).(*array.Binary)
	offs := keys.ValueOffsets()
	rows.Data = keys.ValueBytes()
	rows.Offs = grow(rows.Offs, n+1)
	rows.Hash = grow(rows.Hash, n)
	for i := range n + 1 {
		rows.Offs[i] = offs[i] - offs[0]
	}
	for i := range n {
		rows.Hash[i] = HashKey(rows.Row(i))
	}
	a.ids = grow(a.ids, n)
	if _, err := a.table.FindOrInsert(rows, nil, a.ids[:n]); err != nil {
		return fmt.Errorf("aggregate %q: merging a partition of the groups: %w", a.f.node, err)
	}
	for _, s := range a.states {
		s.grow(a.table.Len())
	}
	col := 1
	for j, s := range a.states {
		k := len(s.partialTypes())
		if _, ok := s.(*distinctState); onlyDistinct && !ok {
			col += k
			continue
		}
		if bad := s.merge(a.ids[:n], b.Columns()[col:col+k]); bad >= 0 {
			return a.overflow(a.p.calls[j], a.table, uint32(bad))
		}
		col += k
	}
	if err := a.chargeStates(); err != nil {
		return fmt.Errorf("aggregate %q: merging a partition of the groups: %w", a.f.node, err)
	}
	return nil
}

// emitTable emits the groups of t in batches of settings.batch_rows.
func (a *aggregate) emitTable(ctx context.Context, out engine.Emitter, t *KeyTable, states []aggState) error {
	step := a.f.batchRows
	if step <= 0 {
		step = 65536
	}
	groups := make([]uint32, 0, min(step, t.Len()))
	for from := 0; from < t.Len(); from += step {
		to := min(from+step, t.Len())
		groups = groups[:0]
		for g := from; g < to; g++ {
			groups = append(groups, uint32(g))
		}
		b, err := a.outputBatch(ctx, t, states, groups)
		if err != nil {
			return err
		}
		if err := out.Emit(b); err != nil {
			return err
		}
	}
	return nil
}

func (a *aggregate) outputBatch(ctx context.Context, t *KeyTable, states []aggState, groups []uint32) (arrow.RecordBatch, error) {
	n := len(groups)
	keys, err := t.KeyArrays(a.p.enc, a.mem, groups[0], groups[n-1]+1)
	if err != nil {
		return nil, err
	}
	cols := keys
	for _, s := range states {
		cols = append(cols, s.result(a.mem, groups))
	}
	inner := array.NewRecordBatch(a.p.inner, cols, int64(n))
	for _, c := range cols {
		c.Release()
	}
	defer inner.Release()
	outCols := make([]arrow.Array, 0, a.p.schema.NumFields())
	for i := range a.p.keys {
		c := inner.Column(i)
		c.Retain()
		outCols = append(outCols, c)
	}
	for _, o := range a.p.outs {
		c, err := o.expr.Eval(ctx, a.mem, inner)
		if err != nil {
			for _, c := range outCols {
				c.Release()
			}
			return nil, fmt.Errorf("aggregate: %s: %w", o.name, err)
		}
		outCols = append(outCols, c)
	}
	if a.p.perm != nil {
		cols := make([]arrow.Array, len(a.p.perm))
		for i, j := range a.p.perm {
			cols[i] = outCols[j]
		}
		outCols = cols
	}
	b := array.NewRecordBatch(a.p.schema, outCols, int64(n))
	for _, c := range outCols {
		c.Release()
	}
	return b, nil
}

// Release gives back what the instance holds; the last instance of the
// run out removes the spill files and releases partials nobody merged (a
// failed or cancelled run).
func (a *aggregate) Release() {
	a.releaseScratch()
	a.resetTable()
	r := a.run
	r.mu.Lock()
	defer r.mu.Unlock()
	r.released++
	if r.released < r.n {
		return
	}
	for _, ps := range r.parts {
		for _, p := range ps {
			if p != nil {
				p.release()
			}
		}
	}
	for _, s := range r.spillers {
		s.Close()
	}
}
