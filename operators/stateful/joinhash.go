package stateful

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/zflowdev/zflow/buffers"
	"github.com/zflowdev/zflow/engine"
)

// The build side of a join. Its batches are kept as they arrive (by
// reference); when its port ends they become one batch — the batch
// itself when there was one, else its columns concatenated (a copy, on
// the ledger as "join build") — so that output rows are gathered from
// one array per column with one take. Each row's key is encoded
// (keys.go) and given the id of its key in a KeyTable; the rows of a key
// are a chain through two arrays, head[id] the first row and next[row]
// the one after, in input order (DuckDB's chained hash table: no
// per-key allocation). A row with a NULL key is in no chain: it never
// matches. An as-of join instead sorts the rows of each key by time.
//
// The table is built once, by the first instance that reaches the end of
// the build port, and then only read: every instance probes it at once.
type joinTable struct {
	batch arrow.RecordBatch // every build row
	keys  []arrow.Array     // its key columns, cast to the compared types
	table *KeyTable
	head  []int32 // per key id: its first row, -1 none
	next  []int32 // per row: the next row of its key, -1 none
	// As-of: the rows of key id are order[start[id]:start[id+1]], by
	// time, times[k] the time of order[k] (timeKey's order).
	order   []int32
	start   []int32
	times   []uint64
	charge  func(int64) error
	charged int64 // the Go memory of the arrays above, on the budget
}

// budgetCharge makes the charge function of a KeyTable from a budget:
// growth is reserved (or refused), shrinking unreserved.
func budgetCharge(b buffers.Budget) func(int64) error {
	if b == nil {
		return nil
	}
	return func(n int64) error {
		if n < 0 {
			b.Unreserve(-n)
			return nil
		}
		return b.Reserve(n)
	}
}

// reserve charges n more bytes of Go memory the table holds.
func (t *joinTable) reserve(n int64) error {
	if t.charge != nil {
		if err := t.charge(n); err != nil {
			return fmt.Errorf("join: the build side's table does not fit in the memory budget: %w", err)
		}
	}
	t.charged += n
	return nil
}

func (t *joinTable) release() {
	if t == nil {
		return
	}
	if t.batch != nil {
		t.batch.Release()
	}
	for _, k := range t.keys {
		k.Release()
	}
	if t.table != nil {
		t.table.Release()
	}
	if t.charge != nil && t.charged > 0 {
		_ = t.charge(-t.charged)
	}
	*t = joinTable{}
}

// rows is the number of build rows.
func (t *joinTable) rows() int { return int(t.batch.NumRows()) }

// buildTable makes the table of the build side's batches (borrowed).
func (f *joinFactory) buildTable(ctx context.Context, ic *engine.InstanceContext, batches []arrow.RecordBatch) (t *joinTable, err error) {
	t = &joinTable{charge: budgetCharge(ic.Budget)}
	defer func() {
		if r := recover(); r != nil { // over the budget: leave nothing behind
			t.release()
			panic(r)
		}
		if err != nil {
			t.release()
		}
	}()
	if len(batches) > 1 && ic.Budget != nil {
		// Ask before copying: arrow's Concatenate turns an allocation
		// over the budget into an error but does not free what it had
		// made by then.
		var need int64
		for _, b := range batches {
			need += engine.BatchBytes(b)
		}
		if err := ic.Budget.Reserve(need); err != nil {
			return t, fmt.Errorf("join: the build side's batches made one: %w", err)
		}
		ic.Budget.Unreserve(need)
	}
	b, err := concatBatches(ic.Alloc, f.sideSchema(f.build), batches)
	if err != nil {
		return t, err
	}
	t.batch = b
	if len(batches) > 1 {
		ic.Ledger.Copied("join build", engine.BatchBytes(b))
	}
	if t.keys, err = f.keyArrays(ctx, ic.Alloc, f.build, b); err != nil {
		return t, err
	}
	n := t.rows()
	if n >= math.MaxInt32 {
		return t, fmt.Errorf("join: the build side has %d rows, more than a table holds (2³¹-1)", n)
	}
	t.table = NewKeyTable(t.charge)
	ids := make([]uint32, n)
	if err := t.reserve(int64(n) * 4); err != nil {
		return t, err
	}
	if err := f.keyIDs(t.table, t.keys, ids, true); err != nil {
		return t, err
	}
	if f.how == "asof" {
		return t, t.sortByTime(ctx, f, ic.Alloc, ids)
	}
	if err := t.reserve(int64(t.table.Len())*4 + int64(n)*4); err != nil {
		return t, err
	}
	t.head = make([]int32, t.table.Len())
	for i := range t.head {
		t.head[i] = -1
	}
	t.next = make([]int32, n)
	for r := n - 1; r >= 0; r-- { // backwards, so each chain is in row order
		if id := ids[r]; id != NoKey {
			t.next[r] = t.head[id]
			t.head[id] = int32(r)
		}
	}
	return t, nil
}

// keyIDs gives each row of the key columns keys its key's id in table,
// NoKey for a row with a NULL key (insert: adding the keys not held yet;
// else looking them up only). With no key columns (an as-of join on time
// alone) every row has id 0.
func (f *joinFactory) keyIDs(table *KeyTable, keys []arrow.Array, ids []uint32, insert bool) error {
	if len(keys) == 0 {
		for i := range ids {
			ids[i] = 0
		}
		return nil
	}
	types := make([]arrow.DataType, len(keys))
	for i, k := range keys {
		types[i] = k.DataType()
	}
	enc, err := NewKeyEncoder(types)
	if err != nil {
		return err
	}
	var rows KeyRows
	var valid []int32
	const chunk = 1 << 16
	slice := make([]arrow.Array, len(keys))
	for off := 0; off < len(ids); off += chunk {
		end := min(off+chunk, len(ids))
		for i, k := range keys {
			slice[i] = array.NewSlice(k, int64(off), int64(end))
		}
		err := enc.Encode(slice, &rows)
		for _, s := range slice {
			s.Release()
		}
		if err != nil {
			return err
		}
		valid = valid[:0]
		for i := range end - off {
			if rows.Null(i) {
				ids[off+i] = NoKey
			} else {
				valid = append(valid, int32(i))
			}
		}
		if len(valid) == 0 {
			continue // every key NULL (and a nil valid would mean every row)
		}
		out := make([]uint32, len(valid))
		if insert {
			if _, err := table.FindOrInsert(&rows, valid, out); err != nil {
				return fmt.Errorf("join: the build side's keys do not fit in the memory budget: %w", err)
			}
		} else {
			table.Find(&rows, valid, out)
		}
		for j, i := range valid {
			ids[off+int(i)] = out[j]
		}
	}
	return nil
}

// sortByTime lays out the as-of index: the rows of each key by time (rows
// with a NULL key or time left out; equal times keep their input order,
// and a probe takes the last of them).
func (t *joinTable) sortByTime(ctx context.Context, f *joinFactory, mem memory.Allocator, ids []uint32) error {
	n := t.rows()
	tc, err := f.timeArray(ctx, mem, f.build, t.batch)
	if err != nil {
		return err
	}
	defer tc.Release()
	nk := t.table.Len()
	if len(f.keys[0]) == 0 {
		nk = 1 // every row has key 0
	}
	if err := t.reserve(int64(nk+1)*4 + int64(n)*12); err != nil {
		return err
	}
	all := make([]uint64, n)
	ok := timeKeys(tc, all)
	t.start = make([]int32, nk+1)
	for r, id := range ids {
		if id != NoKey && ok(r) {
			t.start[id+1]++
		}
	}
	for i := 1; i <= nk; i++ {
		t.start[i] += t.start[i-1]
	}
	t.order = make([]int32, t.start[nk])
	at := slices.Clone(t.start[:nk])
	for r, id := range ids {
		if id != NoKey && ok(r) {
			t.order[at[id]] = int32(r)
			at[id]++
		}
	}
	for id := range nk {
		rows := t.order[t.start[id]:t.start[id+1]]
		slices.SortStableFunc(rows, func(a, b int32) int {
			switch x, y := all[a], all[b]; {
			case x < y:
				return -1
			case x > y:
				return 1
			}
			return 0
		})
	}
	t.times = make([]uint64, len(t.order))
	for k, r := range t.order {
		t.times[k] = all[r]
	}
	return nil
}

// asofRow is the build row of key id with the greatest time at or before
// tm, -1 when there is none.
func (t *joinTable) asofRow(id uint32, tm uint64) int32 {
	lo, hi := int(t.start[id]), int(t.start[id+1])
	times := t.times[lo:hi]
	// The first time after tm; the row before it is the one.
	k, _ := slices.BinarySearchFunc(times, tm, func(x, y uint64) int {
		if x <= y {
			return -1
		}
		return 1
	})
	if k == 0 {
		return -1
	}
	return t.order[lo+k-1]
}

// timeKeys writes each row's time of a (an integer, float, date or
// timestamp column) into dst as a uint64 whose order is the times'
// order, and returns whether a row has one (not NULL; not NaN).
func timeKeys(a arrow.Array, dst []uint64) func(int) bool {
	const sign = 1 << 63
	switch a := a.(type) {
	case *array.Int8:
		for i, v := range a.Int8Values() {
			dst[i] = uint64(int64(v)) ^ sign
		}
	case *array.Int16:
		for i, v := range a.Int16Values() {
			dst[i] = uint64(int64(v)) ^ sign
		}
	case *array.Int32:
		for i, v := range a.Int32Values() {
			dst[i] = uint64(int64(v)) ^ sign
		}
	case *array.Int64:
		for i, v := range a.Int64Values() {
			dst[i] = uint64(v) ^ sign
		}
	case *array.Date32:
		for i, v := range a.Date32Values() {
			dst[i] = uint64(int64(v)) ^ sign
		}
	case *array.Date64:
		for i, v := range a.Date64Values() {
			dst[i] = uint64(int64(v)) ^ sign
		}
	case *array.Timestamp:
		for i, v := range a.TimestampValues() {
			dst[i] = uint64(int64(v)) ^ sign
		}
	case *array.Uint8:
		for i, v := range a.Uint8Values() {
			dst[i] = uint64(v)
		}
	case *array.Uint16:
		for i, v := range a.Uint16Values() {
			dst[i] = uint64(v)
		}
	case *array.Uint32:
		for i, v := range a.Uint32Values() {
			dst[i] = uint64(v)
		}
	case *array.Uint64:
		copy(dst, a.Uint64Values())
	case *array.Float32:
		vals := a.Float32Values()
		for i, v := range vals {
			dst[i] = floatKey(float64(v))
		}
		return func(i int) bool { return a.IsValid(i) && vals[i] == vals[i] }
	case *array.Float64:
		vals := a.Float64Values()
		for i, v := range vals {
			dst[i] = floatKey(v)
		}
		return func(i int) bool { return a.IsValid(i) && vals[i] == vals[i] }
	default:
		panic(fmt.Sprintf("join: %s is not an as-of time (a bug: the compiler checks)", a.DataType()))
	}
	if a.NullN() == 0 {
		return func(int) bool { return true }
	}
	return a.IsValid
}

// floatKey maps a float to a uint64 of the same order (-0 as 0).
func floatKey(f float64) uint64 {
	if f == 0 {
		f = 0
	}
	b := math.Float64bits(f)
	if b>>63 == 1 {
		return ^b
	}
	return b | 1<<63
}

// concatBatches makes one batch of schema s from batches (borrowed): the
// batch itself, Retained, when there is one; an empty batch for none.
func concatBatches(mem memory.Allocator, s *arrow.Schema, batches []arrow.RecordBatch) (arrow.RecordBatch, error) {
	switch len(batches) {
	case 0:
		cols := make([]arrow.Array, s.NumFields())
		for i, f := range s.Fields() {
			cols[i] = array.MakeArrayOfNull(mem, f.Type, 0)
		}
		b := array.NewRecordBatch(s, cols, 0)
		for _, c := range cols {
			c.Release()
		}
		return b, nil
	case 1:
		batches[0].Retain()
		return batches[0], nil
	}
	cols := make([]arrow.Array, s.NumFields())
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	rows := int64(0)
	for _, b := range batches {
		rows += b.NumRows()
	}
	parts := make([]arrow.Array, len(batches))
	for i := range cols {
		for j, b := range batches {
			parts[j] = b.Column(i)
		}
		c, err := array.Concatenate(parts, mem)
		if err != nil {
			return nil, fmt.Errorf("join: concatenate the build side's column %q: %w", s.Field(i).Name, err)
		}
		cols[i] = c
	}
	return array.NewRecordBatch(s, cols, rows), nil
}

// errBuild is returned by instances whose table another instance failed
// to build (that one reports why).
var errBuild = errors.New("join: the build side failed")
