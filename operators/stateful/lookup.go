package stateful

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/dgraph-io/ristretto/v2"

	"github.com/zflowdev/zflow/buffers"
	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/operators/expr"
)

// LookupJoinConfig is the config of lookup_join.
type LookupJoinConfig struct {
	Table      string      `zflow:"table" required:"true" doc:"the lookup table: a Parquet file. Only its key columns are read whole (into an index of key → row); the other columns are read a row group at a time, when a stream row needs one of its rows, and kept in a cache" example:"accounts.parquet"`
	On         []string    `zflow:"on" required:"true" doc:"the key columns, named and typed alike in the stream and the table; a key must be unique in the table (a duplicate fails the run, naming it)" example:"[account]"`
	Columns    []string    `zflow:"columns" doc:"the table columns to add to each stream row (default: all but the keys)" example:"[name, tier]"`
	How        string      `zflow:"how" enum:"left,inner" doc:"left: a stream row whose key is NULL or not in the table gets NULLs; inner: it is dropped"`
	CacheBytes engine.Size `zflow:"cache_bytes" doc:"memory for decoded row groups of the table: a ristretto cache (cost = bytes, admission by frequency), so the row groups the stream asks for most stay decoded and the others are read again when asked for"`
	Suffix     string      `zflow:"suffix" doc:"added to the name of a table column the stream has too"`
}

// noRow is the location of a NULL key in the index: never looked up.
const noRow = ^uint64(0)

// defaultLookupCache is the cache's default size.
const defaultLookupCache = 64 << 20

// LookupJoinSpec declares lookup_join.
func LookupJoinSpec() engine.Spec {
	return engine.Spec{
		Name: "lookup_join", Kind: engine.KindTransform, BatchLocal: true, Parallel: true, MinInputs: 1, MaxInputs: 1,
		Summary: "enrich a stream with the columns of a table's row of the same key, through a cache (the table is read as needed, not loaded)",
		Doc: "For each row of its input, finds the row of the table (a Parquet file) with the same key (on:) and adds its columns. " +
			"Unlike join, the table is not loaded: when the run starts the key columns are read into an index (a hash table of key → row group and row, charged to the budget), " +
			"and a stream batch's lookups read the row groups holding their rows, decoding only the columns asked for. Decoded row groups go through a ristretto cache of cache_bytes, " +
			"so a stream that keeps asking for the same part of the table reads it once. The stream's columns pass by reference; the table's values are gathered (\"lookup_join gather\" on the copy ledger). " +
			"Rows keep their order (parallel instances share the index and the cache). A NULL key matches nothing.",
		Example:   `{type: lookup_join, inputs: [trades], table: accounts.parquet, on: [account], columns: [name, tier]}`,
		NewConfig: func() any { return &LookupJoinConfig{How: "left", CacheBytes: defaultLookupCache, Suffix: "_right"} },
		Build:     buildLookupJoin,
	}
}

func init() { engine.Register(LookupJoinSpec()) }

type lookupFactory struct {
	cfg      LookupJoinConfig
	node     string
	schema   *arrow.Schema // the output
	keys     []int         // the stream's key columns
	tkeys    []int         // the table's key columns (parquet leaves)
	tvals    []int         // the table's value columns (parquet leaves)
	valueSch *arrow.Schema // the table's value columns as decoded
	enc      *KeyEncoder
	nrg      int
}

func buildLookupJoin(bc *engine.BuildContext, c any) (engine.Factory, error) {
	cfg := *c.(*LookupJoinConfig)
	in := bc.Inputs[0]
	f := &lookupFactory{cfg: cfg, node: bc.Node}
	keys, errs := columnsByName(in, "on", cfg.On)
	if len(cfg.On) == 0 {
		errs = append(errs, engine.Errf("on", "name at least one key column"))
	}
	if cfg.CacheBytes < 1<<20 {
		errs = append(errs, engine.Errf("cache_bytes", "want at least 1 MiB, got %d bytes", int64(cfg.CacheBytes)))
	}
	if len(errs) > 0 {
		return nil, engine.Errors(errs)
	}
	f.keys = keys
	pf, fr, err := openTable(cfg.Table, memory.DefaultAllocator)
	if err != nil {
		return nil, engine.Errf("table", "%v", err)
	}
	defer pf.Close()
	ts, err := fr.Schema()
	if err != nil {
		return nil, engine.Errf("table", "%s: %v", cfg.Table, err)
	}
	leaf := func(name, field string) (int, arrow.Field, error) {
		idx := ts.FieldIndices(name)
		if len(idx) != 1 {
			return 0, arrow.Field{}, engine.Errf(field, "the table %s has no column %q (it has: %s)", cfg.Table, name, strings.Join(engine.FieldNames(ts), ", "))
		}
		sf := &fr.Manifest.Fields[idx[0]]
		if !sf.IsLeaf() {
			return 0, arrow.Field{}, engine.Errf(field, "the table's column %q is nested (%s): a lookup reads flat columns", name, ts.Field(idx[0]).Type)
		}
		return sf.ColIndex, ts.Field(idx[0]), nil
	}
	for i, name := range cfg.On {
		col, tf, err := leaf(name, fmt.Sprintf("on.%d", i))
		if err != nil {
			return nil, err
		}
		if st := in.Field(keys[i]).Type; !arrow.TypeEqual(st, tf.Type) {
			return nil, engine.Errf(fmt.Sprintf("on.%d", i), "key %q is %s in the stream and %s in the table: cast one so they agree", name, st, tf.Type)
		}
		f.tkeys = append(f.tkeys, col)
	}
	cols := cfg.Columns
	if len(cols) == 0 {
		for _, fl := range ts.Fields() {
			if !slices.Contains(cfg.On, fl.Name) {
				cols = append(cols, fl.Name)
			}
		}
	}
	var vfields []arrow.Field
	out := slices.Clone(in.Fields())
	for i, name := range cols {
		col, tf, err := leaf(name, fmt.Sprintf("columns.%d", i))
		if err != nil {
			return nil, err
		}
		f.tvals = append(f.tvals, col)
		tf.Nullable = true
		vfields = append(vfields, tf)
		if in.HasField(tf.Name) {
			tf.Name += cfg.Suffix
		}
		if slices.ContainsFunc(out, func(o arrow.Field) bool { return o.Name == tf.Name }) {
			return nil, engine.Errf(fmt.Sprintf("columns.%d", i), "the output would have two columns %q: choose another suffix", tf.Name)
		}
		out = append(out, tf)
	}
	f.valueSch = arrow.NewSchema(vfields, nil)
	f.schema = arrow.NewSchema(out, nil)
	f.nrg = pf.NumRowGroups()
	if f.enc, err = NewKeyEncoder(keyTypes(in, keys)); err != nil {
		return nil, engine.Errf("on", "%v", err)
	}
	return f, nil
}

// openTable opens a Parquet file for reading through arrow.
func openTable(path string, mem memory.Allocator) (pf *file.Reader, fr *pqarrow.FileReader, err error) {
	defer func() {
		if r := recover(); r != nil {
			if pf != nil {
				pf.Close()
			}
			pf, fr, err = nil, nil, fmt.Errorf("%s: malformed Parquet file (the reader panicked: %v)", path, r)
		}
	}()
	pf, err = file.OpenParquetFile(path, false)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	fr, err = pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, mem)
	if err != nil {
		pf.Close()
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return pf, fr, nil
}

func (f *lookupFactory) Schema() *arrow.Schema { return f.schema }

func (f *lookupFactory) Describe() string {
	return fmt.Sprintf("%s join on %s with %s (%d row groups; index of keys in memory, row groups through a %s cache)",
		f.cfg.How, strings.Join(f.cfg.On, ", "), f.cfg.Table, f.nrg, engine.Size(f.cfg.CacheBytes))
}

func (f *lookupFactory) New(ic *engine.InstanceContext) (any, error) {
	mem := ic.Alloc
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	t := ic.Shared(func() any { return &lookupTable{f: f} }).(*lookupTable)
	if err := t.open(ic, mem); err != nil {
		return nil, err
	}
	return &lookupJoin{f: f, ic: ic, mem: mem, t: t}, nil
}

// lookupTable is what the instances of a node share: the index of the
// table's keys, the open file, and the cache of decoded row groups.
type lookupTable struct {
	f    *lookupFactory
	once sync.Once
	err  error

	mu    sync.Mutex // the reader, and decoding
	pf    *file.Reader
	fr    *pqarrow.FileReader
	index *KeyTable
	loc   []uint64 // by key id: row group << 32 | row
	cache *ristretto.Cache[uint64, *rowGroup]
	// live are the row groups the cache holds a reference to, under
	// liveMu (not mu: the cache's goroutine drops them while a decoding
	// instance, holding mu, waits for it).
	liveMu sync.Mutex
	live   map[*rowGroup]struct{}
	users  int
	bytes  int64 // what loc holds, reserved from the budget
	bud    buffers.Budget
	mem    memory.Allocator // the node's: decoded row groups
}

// rowGroup is a decoded row group's value columns. It is released when
// neither the cache nor a batch in process holds it.
type rowGroup struct {
	mu     sync.Mutex
	rec    arrow.RecordBatch
	refs   int
	cached bool // the cache's reference is among refs
}

func (g *rowGroup) acquire() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.refs == 0 {
		return false // released: read it again
	}
	g.refs++
	return true
}

func (g *rowGroup) unref() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.refs--
	if g.refs == 0 {
		g.rec.Release()
	}
}

// uncache drops the cache's reference, once.
func (t *lookupTable) uncache(g *rowGroup) {
	g.mu.Lock()
	was := g.cached
	g.cached = false
	g.mu.Unlock()
	if was {
		t.liveMu.Lock()
		delete(t.live, g)
		t.liveMu.Unlock()
		g.unref()
	}
}

// open builds the index once, for every instance.
func (t *lookupTable) open(ic *engine.InstanceContext, mem memory.Allocator) error {
	t.once.Do(func() { t.err = t.build(ic, mem) })
	if t.err == nil {
		t.mu.Lock()
		t.users++
		t.mu.Unlock()
	}
	return t.err
}

func (t *lookupTable) build(ic *engine.InstanceContext, mem memory.Allocator) (err error) {
	f := t.f
	t.bud, t.mem = ic.Budget, mem
	charge := func(n int64) error {
		if t.bud == nil {
			return nil
		}
		if n < 0 {
			t.bud.Unreserve(-n)
			return nil
		}
		return t.bud.Reserve(n)
	}
	t.index = NewKeyTable(charge)
	if t.pf, t.fr, err = openTable(f.cfg.Table, mem); err != nil {
		return fmt.Errorf("lookup_join: %w", err)
	}
	defer func() {
		if err != nil {
			t.close()
		}
	}()
	var rows KeyRows
	var ids []uint32
	for rg := range t.pf.NumRowGroups() {
		rec, err := t.readGroup(rg, f.tkeys)
		if err != nil {
			return err
		}
		cols := rec.Columns()
		if err := f.enc.Encode(cols, &rows); err != nil {
			rec.Release()
			return fmt.Errorf("lookup_join: table %s: row group %d: %w", f.cfg.Table, rg, err)
		}
		n := rows.N()
		ids = grow(ids, n)
		before := uint32(t.index.Len())
		if _, err := t.index.FindOrInsert(&rows, nil, ids); err != nil {
			rec.Release()
			return fmt.Errorf("lookup_join: the index of the table's keys: %w", err)
		}
		grown := int64(t.index.Len()-int(before)) * 8 // loc's entries
		if err := charge(grown); err != nil {
			rec.Release()
			return fmt.Errorf("lookup_join: the index of the table's keys: %w", err)
		}
		t.bytes += grown
		for i := range n {
			id := ids[i]
			if int(id) < len(t.loc) { // seen before
				if rows.Null(i) {
					continue // NULL keys are never looked up
				}
				first := t.loc[id]
				k := describeKey(cols, i)
				rec.Release()
				return fmt.Errorf("lookup_join: the table %s has key %s twice (row group %d row %d, and row group %d row %d): a lookup table needs unique keys",
					f.cfg.Table, k, first>>32, uint32(first), rg, i)
			}
			if rows.Null(i) {
				t.loc = append(t.loc, noRow)
				continue
			}
			t.loc = append(t.loc, uint64(rg)<<32|uint64(i))
		}
		rec.Release()
	}
	maxCost := int64(f.cfg.CacheBytes)
	if t.bud != nil {
		if avail := t.bud.Available(); avail < 1<<62 && maxCost > avail/2 {
			ic.Logger.Warn("lookup_join: cache_bytes is more than half the budget left; the cache gets half", "node", f.node,
				"cache_bytes", engine.Size(maxCost), "budget_available", engine.Size(avail))
			maxCost = max(avail/2, 1)
		}
	}
	t.live = map[*rowGroup]struct{}{}
	t.cache, err = ristretto.NewCache(&ristretto.Config[uint64, *rowGroup]{
		NumCounters: int64(max(10*t.pf.NumRowGroups(), 1000)), MaxCost: maxCost, BufferItems: 64,
		OnEvict:  func(it *ristretto.Item[*rowGroup]) { t.uncache(it.Value) },
		OnReject: func(it *ristretto.Item[*rowGroup]) { t.uncache(it.Value) },
	})
	if err != nil {
		return fmt.Errorf("lookup_join: %w", err)
	}
	return nil
}

// describeKey renders row i of key columns for an error message.
func describeKey(cols []arrow.Array, i int) string {
	var parts []string
	for _, c := range cols {
		parts = append(parts, c.ValueStr(i))
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// lookupReads counts the row groups of value columns decoded, in this
// process (tests: a cache as big as the table reads each once).
var lookupReads atomic.Int64

// readGroup decodes columns cols of row group rg as one batch.
func (t *lookupTable) readGroup(rg int, cols []int) (rec arrow.RecordBatch, err error) {
	defer func() {
		if r := recover(); r != nil {
			if e, ok := r.(error); ok && errors.Is(e, buffers.ErrBudgetExceeded) {
				err = fmt.Errorf("lookup_join: table %s: row group %d does not fit the memory budget: %w", t.f.cfg.Table, rg, e)
				return
			}
			err = fmt.Errorf("lookup_join: table %s: row group %d: malformed file (the reader panicked: %v)", t.f.cfg.Table, rg, r)
		}
	}()
	tbl, err := t.fr.ReadRowGroups(context.Background(), cols, []int{rg})
	if err != nil {
		return nil, fmt.Errorf("lookup_join: table %s: row group %d: %w", t.f.cfg.Table, rg, err)
	}
	defer tbl.Release()
	arrs := make([]arrow.Array, tbl.NumCols())
	defer func() {
		for _, a := range arrs {
			if a != nil {
				a.Release()
			}
		}
	}()
	for i := range arrs {
		ch := tbl.Column(i).Data().Chunks()
		if len(ch) == 1 {
			ch[0].Retain()
			arrs[i] = ch[0]
		} else if arrs[i], err = array.Concatenate(ch, t.mem); err != nil {
			return nil, fmt.Errorf("lookup_join: table %s: row group %d: %w", t.f.cfg.Table, rg, err)
		}
	}
	return array.NewRecordBatch(tbl.Schema(), arrs, tbl.NumRows()), nil
}

// group returns row group rg's value columns, acquired: from the cache,
// or decoded (and offered to the cache).
func (t *lookupTable) group(rg int) (*rowGroup, error) {
	if g, ok := t.cache.Get(uint64(rg)); ok && g.acquire() {
		return g, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if g, ok := t.cache.Get(uint64(rg)); ok && g.acquire() { // another instance read it meanwhile
		return g, nil
	}
	rec, err := t.readGroup(rg, t.f.tvals)
	if err != nil {
		return nil, err
	}
	lookupReads.Add(1)
	engine.Settle(rec.Columns()...)                 // instances gather from it at once
	g := &rowGroup{rec: rec, refs: 2, cached: true} // the caller's and the cache's
	t.liveMu.Lock()
	t.live[g] = struct{}{}
	t.liveMu.Unlock()
	if !t.cache.Set(uint64(rg), g, engine.BatchBytes(rec)) {
		t.uncache(g)
	}
	t.cache.Wait()
	return g, nil
}

// release lets go of the table when its last user is done.
func (t *lookupTable) release() {
	t.mu.Lock()
	t.users--
	last := t.users == 0
	t.mu.Unlock()
	if last {
		t.close()
	}
}

func (t *lookupTable) close() {
	if t.cache != nil {
		t.cache.Close()
		t.cache = nil
	}
	t.liveMu.Lock()
	live := make([]*rowGroup, 0, len(t.live))
	for g := range t.live {
		live = append(live, g)
	}
	t.liveMu.Unlock()
	for _, g := range live {
		t.uncache(g)
	}
	if t.index != nil {
		t.index.Release()
		t.index = nil
	}
	if t.bud != nil && t.bytes > 0 {
		t.bud.Unreserve(t.bytes)
		t.bytes = 0
	}
	t.loc = nil
	if t.pf != nil {
		t.pf.Close()
		t.pf = nil
	}
}

type lookupJoin struct {
	f   *lookupFactory
	ic  *engine.InstanceContext
	mem memory.Allocator
	t   *lookupTable

	rows  KeyRows
	ids   []uint32
	sel   []int32
	idx   []int32  // per output row: -1 no match, else its position's index
	pos   []uint64 // slot << 32 | row in the batch's row groups
	keep  []int32  // inner: the stream rows kept
	slots []int32  // by row group: its slot among held this batch, -1 none
	held  []*rowGroup
	rgs   []int // the row group of each of held
}

func (j *lookupJoin) Release() { j.t.release() }

func (j *lookupJoin) Process(ctx context.Context, _ int, in arrow.RecordBatch, out engine.Emitter) error {
	n := int(in.NumRows())
	if n == 0 {
		return nil
	}
	if err := j.f.enc.Encode(pick(in, j.f.keys), &j.rows); err != nil {
		return fmt.Errorf("lookup_join: %w", err)
	}
	j.ids = grow(j.ids, n)
	if len(j.sel) < n {
		j.sel = make([]int32, n)
		for i := range j.sel {
			j.sel[i] = int32(i)
		}
	}
	j.t.index.Find(&j.rows, j.sel[:n], j.ids)
	if j.slots == nil {
		j.slots = make([]int32, j.t.pf.NumRowGroups()) // the file the index was built from
		for i := range j.slots {
			j.slots[i] = -1
		}
	}
	j.idx, j.pos, j.keep = j.idx[:0], j.pos[:0], j.keep[:0]
	defer func() {
		for k, g := range j.held {
			g.unref()
			j.slots[j.rgs[k]] = -1
		}
		j.held, j.rgs = j.held[:0], j.rgs[:0]
	}()
	inner := j.f.cfg.How == "inner"
	for i := range n {
		id := j.ids[i]
		if j.rows.Null(i) || id == NoKey || j.t.loc[id] == noRow {
			if !inner {
				j.idx = append(j.idx, -1)
				j.pos = append(j.pos, 0)
			}
			continue
		}
		l := j.t.loc[id]
		rg := int(l >> 32)
		slot := j.slots[rg]
		if slot < 0 {
			g, err := j.t.group(rg)
			if err != nil {
				return err
			}
			slot = int32(len(j.held))
			j.slots[rg] = slot
			j.held = append(j.held, g)
			j.rgs = append(j.rgs, rg)
		}
		j.idx = append(j.idx, int32(len(j.pos)))
		j.pos = append(j.pos, uint64(slot)<<32|l&0xffffffff)
		if inner {
			j.keep = append(j.keep, int32(i))
		}
	}
	rows := len(j.pos)
	if rows == 0 {
		return nil
	}
	stream := in
	if inner && rows < n {
		g, err := expr.Gather(ctx, j.mem, in, j.keep)
		if err != nil {
			return fmt.Errorf("lookup_join: %w", err)
		}
		j.ic.Ledger.Copied("lookup_join gather", expr.GatheredBytes(g))
		stream = g
		defer g.Release()
	}
	vals, err := j.values(rows)
	if err != nil {
		return err
	}
	cols := make([]arrow.Array, 0, len(stream.Columns())+len(vals))
	for _, c := range stream.Columns() {
		c.Retain()
		cols = append(cols, c)
	}
	cols = append(cols, vals...)
	b := array.NewRecordBatch(j.f.schema, cols, int64(rows))
	releaseAll(cols)
	return out.Emit(b)
}

// values gathers the table's value columns of the batch's rows: NULLs
// where there is no match (left).
func (j *lookupJoin) values(rows int) ([]arrow.Array, error) {
	if len(j.held) == 0 { // no row matched
		out := make([]arrow.Array, j.f.valueSch.NumFields())
		for c, fl := range j.f.valueSch.Fields() {
			out[c] = array.MakeArrayOfNull(j.mem, fl.Type, rows)
		}
		return out, nil
	}
	recs := make([]arrow.RecordBatch, len(j.held))
	for i, g := range j.held {
		recs[i] = g.rec
	}
	gt, err := newGatherer(j.mem, j.f.valueSch, recs, j.ic.Ledger, "lookup_join gather")
	if err != nil {
		return nil, fmt.Errorf("lookup_join: %w", err)
	}
	defer gt.release()
	b, err := gt.take(j.mem, j.pos)
	if err != nil {
		return nil, fmt.Errorf("lookup_join: %w", err)
	}
	defer b.Release()
	out := make([]arrow.Array, b.NumCols())
	missing := slices.Contains(j.idx, -1)
	for c, a := range b.Columns() {
		if !missing {
			a.Retain()
			out[c] = a
			continue
		}
		if out[c], err = withNulls(j.mem, a, j.idx); err != nil {
			releaseAll(out[:c])
			return nil, fmt.Errorf("lookup_join: column %s: %w", j.f.valueSch.Field(c).Name, err)
		}
	}
	return out, nil
}
