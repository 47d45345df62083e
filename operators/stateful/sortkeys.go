package stateful

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/operators/expr"
)

// This file holds the sort keys of sort and top_k: the by: items, parsed
// and compiled, and the comparator over the key arrays of many batches.
//
// A by: item is `expr [ASC|DESC] [NULLS FIRST|NULLS LAST]`, as in SQL's
// ORDER BY; the defaults are DuckDB's: ASC, NULLS LAST (whatever the
// direction: DESC does not move the NULLs). expr is any expression of
// package expr, a column or a computed value such as price * qty; a
// computed key is evaluated batch by batch and kept beside the batch, not
// added to the output. Floats order as DuckDB orders them: -0 equals 0 and
// NaN is greater than every number (+Inf included), so it comes last
// ascending and first descending.
//
// Comparing rows is the inner loop of a sort, so it runs in two steps
// (the normalized-key idea of DuckDB's sort and DataFusion's row format):
// each row's first key is first turned into a uint64 whose unsigned order
// is the key's order (prefix: signed integers with the sign bit flipped,
// floats by their IEEE bits, strings by their first 8 bytes big-endian,
// inverted for DESC, NULLs at 0 or the maximum), so most comparisons are
// one integer compare; only rows whose prefixes are equal go to the full
// comparator (tie), which reads the key arrays. When the first key is the
// only one and its prefix holds all of it (integers, floats, dates, times,
// timestamps, booleans), equal prefixes are equal keys and the arrays are
// read only to tell NULLs apart.

// SortKey is one compiled item of a by: list.
type SortKey struct {
	Src        string // the expression, as written
	Expr       *expr.Compiled
	Desc       bool
	NullsFirst bool
}

// keyedColumns is what an operator that passes its rows through, ordered
// by keys, reads (engine.ColumnUser): the columns its consumers read (out;
// nil, every one) and those of its keys.
func keyedColumns(keys []SortKey, out []string) []string {
	if out == nil {
		return nil
	}
	used := slices.Clone(out)
	for _, k := range keys {
		used = append(used, k.Expr.ColumnNames()...)
	}
	return used
}

// String renders the key the way the plan shows it: `price * qty DESC
// NULLS LAST`, every modifier written out.
func (k SortKey) String() string {
	dir, nulls := "ASC", "NULLS LAST"
	if k.Desc {
		dir = "DESC"
	}
	if k.NullsFirst {
		nulls = "NULLS FIRST"
	}
	return strings.TrimSpace(k.Src) + " " + dir + " " + nulls
}

// ParseSortKeys compiles the items of a by: list against schema. Errors
// are *engine.FieldError for field.i, with the byte offset in the item
// where one is known, all of them together (engine.Errors).
func ParseSortKeys(field string, items []string, schema *arrow.Schema) ([]SortKey, error) {
	if len(items) == 0 {
		return nil, engine.Errf(field, "needs at least one key (a column or an expression, with ASC|DESC and NULLS FIRST|LAST)")
	}
	var errs engine.Errors
	keys := make([]SortKey, 0, len(items))
	for i, item := range items {
		f := fmt.Sprintf("%s.%d", field, i)
		k, err := parseSortKey(item)
		if err != nil {
			errs = append(errs, &engine.FieldError{Field: f, Offset: err.off, Msg: err.msg})
			continue
		}
		c, cerr := expr.Compile(k.Src, schema)
		if cerr != nil {
			errs = append(errs, expr.FieldErrors(f, cerr)...)
			continue
		}
		if !SortableType(c.Type()) {
			errs = append(errs, &engine.FieldError{Field: f, Offset: 0,
				Msg: fmt.Sprintf("cannot sort by %s: its type %s has no order here (sortable: integers, floats, decimal128, strings, binary, dictionary strings, booleans, dates, times, timestamps, durations)", strings.TrimSpace(k.Src), c.Type())})
			continue
		}
		k.Expr = c
		keys = append(keys, k)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return keys, nil
}

type keyErr struct {
	off int
	msg string
}

// parseSortKey splits an item into its expression and its modifiers,
// which are read from the end: [NULLS FIRST|LAST] last, [ASC|DESC] before
// it. A modifier is a whole word after white space, so a quoted "desc"
// or a column named descr stays part of the expression.
func parseSortKey(item string) (SortKey, *keyErr) {
	k := SortKey{}
	rest := strings.TrimRightFunc(item, unicode.IsSpace)
	word := func() (string, int) { // the last word of rest and where it starts
		i := strings.LastIndexFunc(rest, func(r rune) bool { return !(r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r)) })
		if i < 0 {
			return strings.ToUpper(rest), 0
		}
		if !unicode.IsSpace(rune(rest[i])) {
			return "", -1
		}
		return strings.ToUpper(rest[i+1:]), i + 1
	}
	cut := func(at int) { rest = strings.TrimRightFunc(rest[:at], unicode.IsSpace) }
	if w, at := word(); w == "FIRST" || w == "LAST" {
		saved := rest
		cut(at)
		if n, nat := word(); n == "NULLS" {
			k.NullsFirst = w == "FIRST"
			cut(nat)
		} else {
			return k, &keyErr{off: at, msg: fmt.Sprintf("%s must follow NULLS (NULLS FIRST or NULLS LAST) in %q", saved[at:], item)}
		}
	} else if w == "NULLS" {
		return k, &keyErr{off: at, msg: fmt.Sprintf("NULLS must be followed by FIRST or LAST in %q", item)}
	}
	if w, at := word(); w == "ASC" || w == "DESC" {
		k.Desc = w == "DESC"
		cut(at)
	}
	if strings.TrimSpace(rest) == "" {
		return k, &keyErr{off: 0, msg: fmt.Sprintf("no expression to sort by in %q (write expr [ASC|DESC] [NULLS FIRST|LAST])", item)}
	}
	k.Src = rest
	return k, nil
}

// SortableType reports whether a key of type dt can be sorted by.
func SortableType(dt arrow.DataType) bool {
	switch dt.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64,
		arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64,
		arrow.FLOAT32, arrow.FLOAT64, arrow.BOOL, arrow.DECIMAL128,
		arrow.STRING, arrow.BINARY, arrow.LARGE_STRING, arrow.LARGE_BINARY,
		arrow.DATE32, arrow.DATE64, arrow.TIME32, arrow.TIME64, arrow.TIMESTAMP, arrow.DURATION,
		arrow.NULL:
		return true
	case arrow.DICTIONARY:
		switch dt.(*arrow.DictionaryType).ValueType.ID() {
		case arrow.STRING, arrow.BINARY, arrow.LARGE_STRING, arrow.LARGE_BINARY:
			return true
		}
	}
	return false
}

// evalKeys evaluates every key over rec: one array per key, owned by the
// caller (a bare column is the column itself, Retained), and the bytes the
// computed ones took (state to charge).
func evalKeys(ctx context.Context, mem memory.Allocator, keys []SortKey, rec arrow.RecordBatch) ([]arrow.Array, int64, error) {
	out := make([]arrow.Array, len(keys))
	var made int64
	for i, k := range keys {
		a, err := k.Expr.Eval(ctx, mem, rec)
		if err != nil {
			releaseAll(out[:i])
			return nil, 0, fmt.Errorf("sort key %s: %w", k.Src, err)
		}
		if _, col := k.Expr.Column(); !col {
			made += engine.ArrayBytes(a.Data())
		}
		out[i] = a
	}
	return out, made, nil
}

func releaseAll(as []arrow.Array) {
	for _, a := range as {
		if a != nil {
			a.Release()
		}
	}
}

// keyCol is one key's values over a set of batch slots, in ascending
// order, NULLs aside (keyVec handles them). set points slot s at array a,
// which the caller keeps alive while the slot is in use.
type keyCol interface {
	set(s int, a arrow.Array)
	compare(s1, r1, s2, r2 int) int
	// norm is the value's order-preserving prefix (ascending).
	norm(s, r int) uint64
}

// keyVec is one key over the slots: its values, NULLs and direction.
type keyVec struct {
	col        keyCol
	valid      [][]byte // per slot: the validity bitmap, nil when it has no NULLs
	off        []int    // per slot: the array's offset into its bitmap
	desc       bool
	nullsFirst bool
	whole      bool // norm holds the whole value: equal prefixes are equal values
}

func (k *keyVec) set(s int, a arrow.Array) {
	for len(k.valid) <= s {
		k.valid = append(k.valid, nil)
		k.off = append(k.off, 0)
	}
	k.valid[s], k.off[s] = nil, a.Data().Offset()
	if a.NullN() > 0 {
		k.valid[s] = a.NullBitmapBytes()
	}
	if a.DataType().ID() == arrow.NULL {
		return // every value is NULL; NullBitmapBytes is empty
	}
	k.col.set(s, a)
}

func (k *keyVec) null(s, r int) bool {
	v := k.valid[s]
	return v != nil && !bitutil.BitIsSet(v, k.off[s]+r)
}

// compare orders two rows by this key: direction and NULL placement
// applied.
func (k *keyVec) compare(s1, r1, s2, r2 int) int {
	n1, n2 := k.null(s1, r1), k.null(s2, r2)
	switch {
	case n1 && n2:
		return 0
	case n1 != n2:
		if n1 == k.nullsFirst {
			return -1
		}
		return 1
	}
	c := k.col.compare(s1, r1, s2, r2)
	if k.desc {
		return -c
	}
	return c
}

// prefix is the row's normalized key: direction applied, NULLs first (0)
// or last (the maximum).
func (k *keyVec) prefix(s, r int) uint64 {
	if k.null(s, r) {
		if k.nullsFirst {
			return 0
		}
		return math.MaxUint64
	}
	p := k.col.norm(s, r)
	if k.desc {
		return ^p
	}
	return p
}

// rowOrder compares rows of the slots by every key.
type rowOrder struct {
	vecs []keyVec
	// shortWhole: the first key is a string whose prefix holds the whole
	// value when it is shorter than 8 bytes (normBytes).
	shortWhole bool
}

func newRowOrder(keys []SortKey) *rowOrder {
	o := &rowOrder{vecs: make([]keyVec, len(keys))}
	for i, k := range keys {
		col, whole := newKeyCol(k.Expr.Type())
		o.vecs[i] = keyVec{col: col, desc: k.Desc, nullsFirst: k.NullsFirst, whole: whole}
	}
	if len(keys) > 0 {
		switch o.vecs[0].col.(type) {
		case *binCol[int32], *binCol[int64]:
			o.shortWhole = true
		}
	}
	return o
}

// set points slot s at the key arrays of one batch (one per key).
func (o *rowOrder) set(s int, keys []arrow.Array) {
	for i := range o.vecs {
		o.vecs[i].set(s, keys[i])
	}
}

// prefix is the first key's normalized value for a row.
func (o *rowOrder) prefix(s, r int) uint64 { return o.vecs[0].prefix(s, r) }

// compare orders two rows by all keys (0: equal keys).
func (o *rowOrder) compare(s1, r1, s2, r2 int) int { return o.compareFrom(0, s1, r1, s2, r2) }

func (o *rowOrder) compareFrom(first, s1, r1, s2, r2 int) int {
	for i := first; i < len(o.vecs); i++ {
		if c := o.vecs[i].compare(s1, r1, s2, r2); c != 0 {
			return c
		}
	}
	return 0
}

// tie orders two rows whose prefixes (p) are equal. When the prefix holds
// the whole first key — always for numbers, for a string shorter than 8
// bytes — equal prefixes are equal values unless one is NULL (a NULL's
// prefix can be a value's), so the first key is not compared again.
func (o *rowOrder) tie(p uint64, s1, r1, s2, r2 int) int {
	v := &o.vecs[0]
	whole := v.whole
	if !whole && o.shortWhole {
		if v.desc {
			p = ^p
		}
		whole = p&0xff < 8
	}
	if !whole {
		return o.compare(s1, r1, s2, r2)
	}
	n1, n2 := v.null(s1, r1), v.null(s2, r2)
	if n1 != n2 {
		if n1 == v.nullsFirst {
			return -1
		}
		return 1
	}
	return o.compareFrom(1, s1, r1, s2, r2)
}

// entry is a row to sort: its prefix and its place, slot<<32 | row, which
// is also its input order (slots are numbered in arrival order), so
// comparing it last makes any sort stable.
type entry struct {
	p   uint64
	pos uint64
}

func (e entry) slot() int { return int(e.pos >> 32) }
func (e entry) row() int  { return int(uint32(e.pos)) }

func mkPos(slot, row int) uint64 { return uint64(slot)<<32 | uint64(row) }

// cmpEntry is the sort order of entries: prefix, then the keys, then the
// input order.
func (o *rowOrder) cmpEntry(a, b entry) int {
	if a.p != b.p {
		if a.p < b.p {
			return -1
		}
		return 1
	}
	if c := o.tie(a.p, a.slot(), a.row(), b.slot(), b.row()); c != 0 {
		return c
	}
	return cmp.Compare(a.pos, b.pos)
}

// newKeyCol returns the comparator of a key type and whether its prefix
// holds the whole value.
func newKeyCol(dt arrow.DataType) (keyCol, bool) {
	switch dt.ID() {
	case arrow.INT8:
		return &intCol[int8]{}, true
	case arrow.INT16:
		return &intCol[int16]{}, true
	case arrow.INT32, arrow.DATE32, arrow.TIME32:
		return &intCol[int32]{}, true
	case arrow.INT64, arrow.DATE64, arrow.TIME64, arrow.TIMESTAMP, arrow.DURATION:
		return &intCol[int64]{}, true
	case arrow.UINT8:
		return &uintCol[uint8]{}, true
	case arrow.UINT16:
		return &uintCol[uint16]{}, true
	case arrow.UINT32:
		return &uintCol[uint32]{}, true
	case arrow.UINT64:
		return &uintCol[uint64]{}, true
	case arrow.FLOAT32:
		return &floatCol[float32]{}, true
	case arrow.FLOAT64:
		return &floatCol[float64]{}, true
	case arrow.BOOL:
		return &boolCol{}, true
	case arrow.DECIMAL128:
		return &decCol{}, false
	case arrow.STRING, arrow.BINARY:
		return &binCol[int32]{}, false
	case arrow.LARGE_STRING, arrow.LARGE_BINARY:
		return &binCol[int64]{}, false
	case arrow.DICTIONARY:
		vt := dt.(*arrow.DictionaryType).ValueType
		inner, _ := newKeyCol(vt)
		return &dictCol{values: inner}, false
	case arrow.NULL:
		return nullCol{}, true
	}
	panic(fmt.Sprintf("stateful: no comparator for %s (SortableType should have refused it)", dt))
}

// withSlot makes s long enough to hold slot i, keeping what it holds.
func withSlot[T any](s []T, i int) []T {
	for len(s) <= i {
		var z T
		s = append(s, z)
	}
	return s
}

type intCol[T int8 | int16 | int32 | int64] struct{ vals [][]T }

func (c *intCol[T]) set(s int, a arrow.Array) {
	c.vals = withSlot(c.vals, s)
	c.vals[s] = arrow.GetValues[T](a.Data(), 1)
}
func (c *intCol[T]) compare(s1, r1, s2, r2 int) int {
	return cmp.Compare(c.vals[s1][r1], c.vals[s2][r2])
}
func (c *intCol[T]) norm(s, r int) uint64 { return uint64(int64(c.vals[s][r])) ^ (1 << 63) }

type uintCol[T uint8 | uint16 | uint32 | uint64] struct{ vals [][]T }

func (c *uintCol[T]) set(s int, a arrow.Array) {
	c.vals = withSlot(c.vals, s)
	c.vals[s] = arrow.GetValues[T](a.Data(), 1)
}
func (c *uintCol[T]) compare(s1, r1, s2, r2 int) int {
	return cmp.Compare(c.vals[s1][r1], c.vals[s2][r2])
}
func (c *uintCol[T]) norm(s, r int) uint64 { return uint64(c.vals[s][r]) }

type floatCol[T float32 | float64] struct{ vals [][]T }

func (c *floatCol[T]) set(s int, a arrow.Array) {
	c.vals = withSlot(c.vals, s)
	c.vals[s] = arrow.GetValues[T](a.Data(), 1)
}
func (c *floatCol[T]) compare(s1, r1, s2, r2 int) int {
	return cmp.Compare(normFloat(float64(c.vals[s1][r1])), normFloat(float64(c.vals[s2][r2])))
}
func (c *floatCol[T]) norm(s, r int) uint64 { return normFloat(float64(c.vals[s][r])) }

// normFloat maps a float to a uint64 of the same order, DuckDB's: -0
// equals 0, every NaN is equal and above +Inf.
func normFloat(f float64) uint64 {
	if f != f {
		return math.MaxUint64
	}
	if f == 0 {
		return 1 << 63 // +0 and -0
	}
	b := math.Float64bits(f)
	if b>>63 != 0 {
		return ^b
	}
	return b | 1<<63
}

type boolCol struct {
	bits [][]byte
	off  []int
}

func (c *boolCol) set(s int, a arrow.Array) {
	c.bits, c.off = withSlot(c.bits, s), withSlot(c.off, s)
	c.bits[s], c.off[s] = a.Data().Buffers()[1].Bytes(), a.Data().Offset()
}
func (c *boolCol) get(s, r int) uint64 {
	if bitutil.BitIsSet(c.bits[s], c.off[s]+r) {
		return 1
	}
	return 0
}
func (c *boolCol) compare(s1, r1, s2, r2 int) int { return cmp.Compare(c.get(s1, r1), c.get(s2, r2)) }
func (c *boolCol) norm(s, r int) uint64           { return c.get(s, r) }

type decCol struct{ vals [][]decimal128.Num }

func (c *decCol) set(s int, a arrow.Array) {
	c.vals = withSlot(c.vals, s)
	c.vals[s] = arrow.GetValues[decimal128.Num](a.Data(), 1)
}
func (c *decCol) compare(s1, r1, s2, r2 int) int { return c.vals[s1][r1].Cmp(c.vals[s2][r2]) }
func (c *decCol) norm(s, r int) uint64 {
	return uint64(c.vals[s][r].HighBits()) ^ (1 << 63)
}

type binCol[O int32 | int64] struct {
	offs [][]O
	data [][]byte
}

func (c *binCol[O]) set(s int, a arrow.Array) {
	c.offs, c.data = withSlot(c.offs, s), withSlot(c.data, s)
	d := a.Data()
	c.offs[s] = arrow.GetOffsets[O](d, 1)
	if b := d.Buffers()[2]; b != nil {
		c.data[s] = b.Bytes()
	} else {
		c.data[s] = nil
	}
}
func (c *binCol[O]) get(s, r int) []byte {
	o := c.offs[s]
	return c.data[s][o[r]:o[r+1]]
}
func (c *binCol[O]) compare(s1, r1, s2, r2 int) int {
	return bytes.Compare(c.get(s1, r1), c.get(s2, r2))
}
func (c *binCol[O]) norm(s, r int) uint64 { return normBytes(c.get(s, r)) }

// normBytes is an order-preserving prefix of b: its first 7 bytes,
// big-endian, zero-padded, then its length capped at 8. A string shorter
// than 8 bytes is whole in it (equal prefixes, equal strings: rowOrder.tie
// relies on it); a longer one ends in 8, and equal prefixes then say
// nothing. Zero padding with the length after it keeps "ab" before
// "ab\x00".
func normBytes(b []byte) uint64 {
	var buf [8]byte
	copy(buf[:7], b)
	buf[7] = byte(min(len(b), 8))
	return binary.BigEndian.Uint64(buf[:])
}

// dictCol compares dictionary-encoded values by the values they stand
// for, so batches with different dictionaries compare right.
type dictCol struct {
	idx    []*array.Dictionary
	values keyCol // over the dictionaries, one slot each
}

func (c *dictCol) set(s int, a arrow.Array) {
	c.idx = withSlot(c.idx, s)
	d := a.(*array.Dictionary)
	c.idx[s] = d
	c.values.set(s, d.Dictionary())
}
func (c *dictCol) compare(s1, r1, s2, r2 int) int {
	return c.values.compare(s1, c.idx[s1].GetValueIndex(r1), s2, c.idx[s2].GetValueIndex(r2))
}
func (c *dictCol) norm(s, r int) uint64 { return c.values.norm(s, c.idx[s].GetValueIndex(r)) }

// nullCol is the key of an expression that is always NULL: every row
// equal.
type nullCol struct{}

func (nullCol) set(int, arrow.Array)           {}
func (nullCol) compare(int, int, int, int) int { return 0 }
func (nullCol) norm(int, int) uint64           { return 0 }
