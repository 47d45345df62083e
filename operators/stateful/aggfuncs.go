package stateful

import (
	"bytes"
	"cmp"
	"fmt"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// The aggregate functions. Each is a state per group — typed slices
// indexed by the group's id in the operator's KeyTable — and kernels: one
// tight typed loop per batch over (group ids, values), picked by the
// argument's type once per batch, never per row. A state can give its
// groups' partial states as Arrow columns and fold such columns back in
// (merge): the parallel instances exchange their groups that way, and a
// spilled table is written and read back that way, so a function's merge
// is written once.
//
// Rows are chosen by a mask, a bitmap of the batch's rows (offset 0): the
// rows that pass the call's FILTER and, for every function but count(*),
// first and last, whose argument is not NULL. A nil mask is every row.

type aggKind uint8

const (
	aggCount aggKind = iota // count(x); count(*) has no argument
	aggSum
	aggAvg
	aggMin
	aggMax
	aggFirst
	aggLast
	aggVarSamp
	aggVarPop
	aggStddevSamp
	aggStddevPop
	aggBoolAnd
	aggBoolOr
	aggCountDistinct  // count(DISTINCT x)
	aggApproxDistinct // approx_count_distinct(x): a HyperLogLog per group
	aggApproxQuantile // approx_quantile(x, q): a t-digest per group
)

// aggFuncs are the functions by name; mean is avg, stddev stddev_samp,
// variance var_samp, as in DuckDB.
var aggFuncs = map[string]aggKind{
	"count": aggCount, "sum": aggSum, "avg": aggAvg, "mean": aggAvg, "min": aggMin, "max": aggMax,
	"first": aggFirst, "last": aggLast, "stddev": aggStddevSamp, "stddev_samp": aggStddevSamp,
	"stddev_pop": aggStddevPop, "variance": aggVarSamp, "var_samp": aggVarSamp, "var_pop": aggVarPop,
	"bool_and": aggBoolAnd, "bool_or": aggBoolOr,
	"approx_count_distinct": aggApproxDistinct, "approx_quantile": aggApproxQuantile,
}

// keepsNulls says the function takes rows whose argument is NULL (first
// and last return the first or last value, NULL or not, as DuckDB's).
func (k aggKind) keepsNulls() bool { return k == aggFirst || k == aggLast }

// aggResultType is the type of f(arg) (arg nil: count(*)), following
// DuckDB, or why the argument's type does not fit. sum of an integer is
// int64 here (DuckDB's is int128): a sum past int64 is an error.
func aggResultType(name string, k aggKind, arg arrow.DataType) (arrow.DataType, error) {
	if k == aggCount || k == aggCountDistinct || k == aggApproxDistinct {
		return arrow.PrimitiveTypes.Int64, nil
	}
	if arg.ID() == arrow.DICTIONARY {
		arg = arg.(*arrow.DictionaryType).ValueType
	}
	switch k {
	case aggSum:
		switch {
		case isInteger(arg):
			return arrow.PrimitiveTypes.Int64, nil
		case isFloat(arg):
			return arrow.PrimitiveTypes.Float64, nil
		case arg.ID() == arrow.DECIMAL128:
			return &arrow.Decimal128Type{Precision: 38, Scale: arg.(*arrow.Decimal128Type).Scale}, nil
		}
	case aggAvg, aggVarSamp, aggVarPop, aggStddevSamp, aggStddevPop:
		if isInteger(arg) || isFloat(arg) || arg.ID() == arrow.DECIMAL128 {
			return arrow.PrimitiveTypes.Float64, nil
		}
	case aggApproxQuantile:
		if isInteger(arg) || isFloat(arg) {
			return arg, nil
		}
	case aggMin, aggMax, aggFirst, aggLast:
		if arg.ID() == arrow.DECIMAL128 {
			return arg, nil
		}
		if pickWidth(arg) > 0 || isBytes(arg) || arg.ID() == arrow.BOOL {
			return arg, nil
		}
	case aggBoolAnd, aggBoolOr:
		if arg.ID() == arrow.BOOL {
			return arg, nil
		}
		return nil, fmt.Errorf("%s takes a boolean, not %s", name, arg)
	}
	return nil, fmt.Errorf("%s does not take a %s argument", name, arg)
}

func isInteger(t arrow.DataType) bool {
	switch t.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64, arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64:
		return true
	}
	return false
}

func isFloat(t arrow.DataType) bool { return t.ID() == arrow.FLOAT32 || t.ID() == arrow.FLOAT64 }

func isBytes(t arrow.DataType) bool {
	switch t.ID() {
	case arrow.STRING, arrow.LARGE_STRING, arrow.BINARY, arrow.LARGE_BINARY:
		return true
	}
	return false
}

// pickWidth is the byte width min/max/first/last store a value of type t
// in, as the integer or float of that width that orders like it (a date32
// as an int32, a timestamp as an int64); 0 when t is not one of those.
func pickWidth(t arrow.DataType) int {
	switch t.ID() {
	case arrow.INT8, arrow.UINT8:
		return 1
	case arrow.INT16, arrow.UINT16:
		return 2
	case arrow.INT32, arrow.UINT32, arrow.FLOAT32, arrow.DATE32, arrow.TIME32:
		return 4
	case arrow.INT64, arrow.UINT64, arrow.FLOAT64, arrow.DATE64, arrow.TIME64, arrow.TIMESTAMP, arrow.DURATION:
		return 8
	}
	return 0
}

// aggState is one aggregate call's state for every group of a table.
type aggState interface {
	// grow makes room for groups [0, n), new ones empty.
	grow(n int)
	// bytes is the memory the state holds.
	bytes() int64
	// update folds the rows of a batch chosen by mask into groups ids[i];
	// arg is nil for count(*); base is the batch's input position (its
	// sequence number << 32), first and last's row order. It returns the
	// group whose sum left int64, or -1.
	update(ids []uint32, arg arrow.Array, mask []byte, base int64) int
	// result is the function's value for each group listed.
	result(mem memory.Allocator, groups []uint32) arrow.Array
	// partialTypes are the types of the partial state's columns.
	partialTypes() []arrow.DataType
	// partial is the partial state of each group listed, as columns.
	partial(mem memory.Allocator, groups []uint32) []arrow.Array
	// merge folds row i of partial columns into group ids[i]; it returns
	// the group whose sum left int64, or -1.
	merge(ids []uint32, cols []arrow.Array) int
	// reset empties the state (and its memory).
	reset()
}

// newAggState makes the state of k over arguments of type arg (nil for
// count(*)) giving out (from aggResultType).
func newAggState(k aggKind, arg, out arrow.DataType) aggState {
	switch k {
	case aggCountDistinct: // over the keys of the column as it comes
		return newDistinctState(arg)
	case aggApproxDistinct:
		return newHLLState(arg)
	}
	if arg != nil && arg.ID() == arrow.DICTIONARY {
		arg = arg.(*arrow.DictionaryType).ValueType
	}
	switch k {
	case aggCount:
		return &countState{}
	case aggApproxQuantile:
		return &quantileState{out: out}
	case aggSum:
		switch {
		case isInteger(arg):
			return &sumIntState{}
		case isFloat(arg):
			return &sumFloatState{}
		default:
			return &sumDecState{out: out}
		}
	case aggAvg:
		return &avgState{scale: decScale(arg)}
	case aggVarSamp, aggVarPop, aggStddevSamp, aggStddevPop:
		return &momentState{kind: k, scale: decScale(arg)}
	case aggBoolAnd:
		return &pickBool{kind: aggMin}
	case aggBoolOr:
		return &pickBool{kind: aggMax}
	}
	// min, max, first, last
	switch {
	case arg.ID() == arrow.DECIMAL128 && (k == aggFirst || k == aggLast):
		return &pickDec{first: k == aggFirst, out: out}
	case arg.ID() == arrow.DECIMAL128:
		return &extremeDecState{max: k == aggMax, out: out}
	case arg.ID() == arrow.BOOL:
		return &pickBool{kind: k}
	case isBytes(arg):
		return &pickBytes{kind: k, out: out}
	}
	switch arg.ID() {
	case arrow.INT8:
		return &pickFixed[int8]{kind: k, out: out}
	case arrow.UINT8:
		return &pickFixed[uint8]{kind: k, out: out}
	case arrow.INT16:
		return &pickFixed[int16]{kind: k, out: out}
	case arrow.UINT16:
		return &pickFixed[uint16]{kind: k, out: out}
	case arrow.UINT32:
		return &pickFixed[uint32]{kind: k, out: out}
	case arrow.FLOAT32:
		return &pickFixed[float32]{kind: k, out: out}
	case arrow.UINT64:
		return &pickFixed[uint64]{kind: k, out: out}
	case arrow.FLOAT64:
		return &pickFixed[float64]{kind: k, out: out}
	}
	if pickWidth(arg) == 4 {
		return &pickFixed[int32]{kind: k, out: out}
	}
	return &pickFixed[int64]{kind: k, out: out}
}

func decScale(t arrow.DataType) int32 {
	if d, ok := t.(*arrow.Decimal128Type); ok {
		return d.Scale
	}
	return 0
}

// growTo extends s to n elements (new ones zero), doubling its capacity.
func growTo[T any](s []T, n int) []T {
	if n <= len(s) {
		return s
	}
	if n > cap(s) {
		s = append(make([]T, 0, max(n, 2*cap(s), 64)), s...)
	}
	return s[:n]
}

// on says whether row i is chosen by mask.
func on(mask []byte, i int) bool { return mask == nil || bitutil.BitIsSet(mask, i) }

// values is the fixed-width values of a, as T.
func values[T arrow.FixedWidthType](a arrow.Array) []T { return arrow.GetValues[T](a.Data(), 1) }

// fixedArray builds an array of type dt from vals, valid (nil: all valid).
func fixedArray[T arrow.FixedWidthType](mem memory.Allocator, dt arrow.DataType, vals []T, valid []bool) arrow.Array {
	n := len(vals)
	vb := memory.NewResizableBuffer(mem)
	vb.Resize(len(arrow.GetBytes(vals)))
	copy(vb.Bytes(), arrow.GetBytes(vals))
	return withValidity(mem, dt, n, vb, valid)
}

// withValidity makes the array of n values in buffer vb, with the
// validity valid (nil: all valid); it takes vb's reference.
func withValidity(mem memory.Allocator, dt arrow.DataType, n int, vb *memory.Buffer, valid []bool) arrow.Array {
	var nb *memory.Buffer
	nulls := 0
	if valid != nil {
		nb = memory.NewResizableBuffer(mem)
		nb.Resize(int(bitutil.BytesForBits(int64(n))))
		b := nb.Bytes()
		clear(b)
		for i, ok := range valid {
			if ok {
				bitutil.SetBit(b, i)
			} else {
				nulls++
			}
		}
		if nulls == 0 {
			nb.Release()
			nb = nil
		}
	}
	d := array.NewData(dt, n, []*memory.Buffer{nb, vb}, nil, nulls, 0)
	a := array.MakeFromData(d)
	d.Release()
	vb.Release()
	if nb != nil {
		nb.Release()
	}
	return a
}

// gather is s at the groups listed, into dst (reused).
func gather[T any](dst []T, s []T, groups []uint32) []T {
	dst = grow(dst, len(groups))
	for i, g := range groups {
		dst[i] = s[g]
	}
	return dst
}

// ---- count ----

type countState struct{ n []int64 }

func (s *countState) grow(n int)   { s.n = growTo(s.n, n) }
func (s *countState) bytes() int64 { return int64(cap(s.n)) * 8 }
func (s *countState) reset()       { *s = countState{} }
func (s *countState) partialTypes() []arrow.DataType {
	return []arrow.DataType{arrow.PrimitiveTypes.Int64}
}

func (s *countState) update(ids []uint32, _ arrow.Array, mask []byte, _ int64) int {
	n := s.n
	if mask == nil {
		for _, g := range ids {
			n[g]++
		}
		return -1
	}
	for i, g := range ids {
		if bitutil.BitIsSet(mask, i) {
			n[g]++
		}
	}
	return -1
}

func (s *countState) result(mem memory.Allocator, groups []uint32) arrow.Array {
	return fixedArray(mem, arrow.PrimitiveTypes.Int64, gather(nil, s.n, groups), nil)
}

func (s *countState) partial(mem memory.Allocator, groups []uint32) []arrow.Array {
	return []arrow.Array{s.result(mem, groups)}
}

func (s *countState) merge(ids []uint32, cols []arrow.Array) int {
	for i, v := range values[int64](cols[0]) {
		s.n[ids[i]] += v
	}
	return -1
}

// ---- sum of integers: int64, an overflow is an error ----

type sumIntState struct {
	sum  []int64
	seen []bool
}

func (s *sumIntState) grow(n int)   { s.sum, s.seen = growTo(s.sum, n), growTo(s.seen, n) }
func (s *sumIntState) bytes() int64 { return int64(cap(s.sum))*8 + int64(cap(s.seen)) }
func (s *sumIntState) reset()       { *s = sumIntState{} }
func (s *sumIntState) partialTypes() []arrow.DataType {
	return []arrow.DataType{arrow.PrimitiveTypes.Int64}
}

func (s *sumIntState) update(ids []uint32, a arrow.Array, mask []byte, _ int64) int {
	switch a.DataType().ID() {
	case arrow.INT8:
		return sumInts(s.sum, s.seen, ids, values[int8](a), mask)
	case arrow.INT16:
		return sumInts(s.sum, s.seen, ids, values[int16](a), mask)
	case arrow.INT32:
		return sumInts(s.sum, s.seen, ids, values[int32](a), mask)
	case arrow.INT64:
		return sumInts(s.sum, s.seen, ids, values[int64](a), mask)
	case arrow.UINT8:
		return sumInts(s.sum, s.seen, ids, values[uint8](a), mask)
	case arrow.UINT16:
		return sumInts(s.sum, s.seen, ids, values[uint16](a), mask)
	case arrow.UINT32:
		return sumInts(s.sum, s.seen, ids, values[uint32](a), mask)
	}
	// uint64: a value past int64 is an overflow of its group.
	v := values[uint64](a)
	for i, g := range ids {
		if on(mask, i) {
			if v[i] > math.MaxInt64 {
				return int(g)
			}
			if bad := addInt(s.sum, s.seen, g, int64(v[i])); bad >= 0 {
				return bad
			}
		}
	}
	return -1
}

func addInt(sum []int64, seen []bool, g uint32, x int64) int {
	r := sum[g] + x
	if (r^sum[g])&(r^x) < 0 {
		return int(g)
	}
	sum[g], seen[g] = r, true
	return -1
}

// sumInts is the sum kernel: r = s + x overflowed exactly when r's sign
// differs from both s's and x's.
func sumInts[T int8 | int16 | int32 | int64 | uint8 | uint16 | uint32](sum []int64, seen []bool, ids []uint32, v []T, mask []byte) int {
	v = v[:len(ids)]
	if mask == nil {
		for i, g := range ids {
			x := int64(v[i])
			r := sum[g] + x
			if (r^sum[g])&(r^x) < 0 {
				return int(g)
			}
			sum[g], seen[g] = r, true
		}
		return -1
	}
	for i, g := range ids {
		if bitutil.BitIsSet(mask, i) {
			x := int64(v[i])
			r := sum[g] + x
			if (r^sum[g])&(r^x) < 0 {
				return int(g)
			}
			sum[g], seen[g] = r, true
		}
	}
	return -1
}

func (s *sumIntState) result(mem memory.Allocator, groups []uint32) arrow.Array {
	return fixedArray(mem, arrow.PrimitiveTypes.Int64, gather(nil, s.sum, groups), gather(nil, s.seen, groups))
}

func (s *sumIntState) partial(mem memory.Allocator, groups []uint32) []arrow.Array {
	return []arrow.Array{s.result(mem, groups)}
}

func (s *sumIntState) merge(ids []uint32, cols []arrow.Array) int {
	c := cols[0]
	for i, v := range values[int64](c) {
		if c.IsValid(i) {
			if bad := addInt(s.sum, s.seen, ids[i], v); bad >= 0 {
				return bad
			}
		}
	}
	return -1
}

// ---- sum of floats ----

type sumFloatState struct {
	sum  []float64
	seen []bool
}

func (s *sumFloatState) grow(n int)   { s.sum, s.seen = growTo(s.sum, n), growTo(s.seen, n) }
func (s *sumFloatState) bytes() int64 { return int64(cap(s.sum))*8 + int64(cap(s.seen)) }
func (s *sumFloatState) reset()       { *s = sumFloatState{} }
func (s *sumFloatState) partialTypes() []arrow.DataType {
	return []arrow.DataType{arrow.PrimitiveTypes.Float64}
}

func (s *sumFloatState) update(ids []uint32, a arrow.Array, mask []byte, _ int64) int {
	if a.DataType().ID() == arrow.FLOAT32 {
		sumFloats(s.sum, s.seen, ids, values[float32](a), mask)
	} else {
		sumFloats(s.sum, s.seen, ids, values[float64](a), mask)
	}
	return -1
}

func sumFloats[T float32 | float64](sum []float64, seen []bool, ids []uint32, v []T, mask []byte) {
	v = v[:len(ids)]
	if mask == nil {
		for i, g := range ids {
			sum[g] += float64(v[i])
			seen[g] = true
		}
		return
	}
	for i, g := range ids {
		if bitutil.BitIsSet(mask, i) {
			sum[g] += float64(v[i])
			seen[g] = true
		}
	}
}

func (s *sumFloatState) result(mem memory.Allocator, groups []uint32) arrow.Array {
	return fixedArray(mem, arrow.PrimitiveTypes.Float64, gather(nil, s.sum, groups), gather(nil, s.seen, groups))
}

func (s *sumFloatState) partial(mem memory.Allocator, groups []uint32) []arrow.Array {
	return []arrow.Array{s.result(mem, groups)}
}

func (s *sumFloatState) merge(ids []uint32, cols []arrow.Array) int {
	c := cols[0]
	for i, v := range values[float64](c) {
		if c.IsValid(i) {
			s.sum[ids[i]] += v
			s.seen[ids[i]] = true
		}
	}
	return -1
}

// ---- min and max of decimals: of one scale, they order as integers ----

type extremeDecState struct {
	max bool
	out arrow.DataType
	val []decimal128.Num
	has []bool
}

func (s *extremeDecState) grow(n int)   { s.val, s.has = growTo(s.val, n), growTo(s.has, n) }
func (s *extremeDecState) bytes() int64 { return int64(cap(s.val))*16 + int64(cap(s.has)) }
func (s *extremeDecState) reset()       { *s = extremeDecState{max: s.max, out: s.out} }
func (s *extremeDecState) partialTypes() []arrow.DataType {
	return []arrow.DataType{s.out}
}

func (s *extremeDecState) take(g uint32, x decimal128.Num) {
	if !s.has[g] || (s.max && x.Greater(s.val[g])) || (!s.max && x.Less(s.val[g])) {
		s.val[g], s.has[g] = x, true
	}
}

func (s *extremeDecState) update(ids []uint32, a arrow.Array, mask []byte, _ int64) int {
	v := values[decimal128.Num](a)
	for i, g := range ids {
		if on(mask, i) {
			s.take(g, v[i])
		}
	}
	return -1
}

func (s *extremeDecState) result(mem memory.Allocator, groups []uint32) arrow.Array {
	return fixedArray(mem, s.out, gather(nil, s.val, groups), gather(nil, s.has, groups))
}

func (s *extremeDecState) partial(mem memory.Allocator, groups []uint32) []arrow.Array {
	return []arrow.Array{s.result(mem, groups)}
}

func (s *extremeDecState) merge(ids []uint32, cols []arrow.Array) int {
	c := cols[0]
	for i, v := range values[decimal128.Num](c) {
		if c.IsValid(i) {
			s.take(ids[i], v)
		}
	}
	return -1
}

// ---- first and last of decimals: the value and its input position ----

type pickDec struct {
	first bool
	out   arrow.DataType
	val   []decimal128.Num
	pos   []int64
	has   []bool
	null  []bool
}

func (s *pickDec) grow(n int) {
	s.val, s.pos, s.has, s.null = growTo(s.val, n), growTo(s.pos, n), growTo(s.has, n), growTo(s.null, n)
}
func (s *pickDec) bytes() int64 {
	return int64(cap(s.val))*16 + int64(cap(s.pos))*8 + int64(cap(s.has)) + int64(cap(s.null))
}
func (s *pickDec) reset() { *s = pickDec{first: s.first, out: s.out} }
func (s *pickDec) partialTypes() []arrow.DataType {
	return []arrow.DataType{s.out, arrow.PrimitiveTypes.Int64}
}

func (s *pickDec) update(ids []uint32, a arrow.Array, mask []byte, base int64) int {
	v := values[decimal128.Num](a)
	for i, g := range ids {
		if on(mask, i) && (!s.first || !s.has[g]) { // positions only grow within an instance
			s.val[g], s.has[g], s.pos[g], s.null[g] = v[i], true, base+int64(i), a.IsNull(i)
		}
	}
	return -1
}

func (s *pickDec) result(mem memory.Allocator, groups []uint32) arrow.Array {
	valid := make([]bool, len(groups))
	for i, g := range groups {
		valid[i] = s.has[g] && !s.null[g]
	}
	return fixedArray(mem, s.out, gather(nil, s.val, groups), valid)
}

func (s *pickDec) partial(mem memory.Allocator, groups []uint32) []arrow.Array {
	return []arrow.Array{s.result(mem, groups), positions(mem, s.pos, s.has, groups)}
}

func (s *pickDec) merge(ids []uint32, cols []arrow.Array) int {
	c := cols[0]
	v := values[decimal128.Num](c)
	pos := values[int64](cols[1])
	kind := aggLast
	if s.first {
		kind = aggFirst
	}
	for i, g := range ids {
		if cols[1].IsNull(i) {
			continue // the group took no row there
		}
		if takes(kind, s.has[g], s.pos[g], pos[i], 0) {
			s.val[g], s.has[g], s.pos[g], s.null[g] = v[i], true, pos[i], c.IsNull(i)
		}
	}
	return -1
}

// ---- sum of decimals: decimal(38, s); past 38 digits is an overflow ----

type sumDecState struct {
	out  arrow.DataType
	sum  []decimal128.Num
	seen []bool
}

func (s *sumDecState) grow(n int)   { s.sum, s.seen = growTo(s.sum, n), growTo(s.seen, n) }
func (s *sumDecState) bytes() int64 { return int64(cap(s.sum))*16 + int64(cap(s.seen)) }
func (s *sumDecState) reset()       { *s = sumDecState{out: s.out} }
func (s *sumDecState) partialTypes() []arrow.DataType {
	return []arrow.DataType{s.out}
}

func (s *sumDecState) add(g uint32, x decimal128.Num) int {
	r := s.sum[g].Add(x)
	if !r.FitsInPrecision(38) {
		return int(g)
	}
	s.sum[g], s.seen[g] = r, true
	return -1
}

func (s *sumDecState) update(ids []uint32, a arrow.Array, mask []byte, _ int64) int {
	v := values[decimal128.Num](a)
	for i, g := range ids {
		if on(mask, i) {
			if bad := s.add(g, v[i]); bad >= 0 {
				return bad
			}
		}
	}
	return -1
}

func (s *sumDecState) result(mem memory.Allocator, groups []uint32) arrow.Array {
	return fixedArray(mem, s.out, gather(nil, s.sum, groups), gather(nil, s.seen, groups))
}

func (s *sumDecState) partial(mem memory.Allocator, groups []uint32) []arrow.Array {
	return []arrow.Array{s.result(mem, groups)}
}

func (s *sumDecState) merge(ids []uint32, cols []arrow.Array) int {
	c := cols[0]
	for i, v := range values[decimal128.Num](c) {
		if c.IsValid(i) {
			if bad := s.add(ids[i], v); bad >= 0 {
				return bad
			}
		}
	}
	return -1
}

// floatsOf calls fn with a's values as float64s, a batch at a time: the
// numeric argument of avg and the variances, whatever its type (a
// decimal is converted row by row).
func floatKernel(a arrow.Array, scale int32, ids []uint32, mask []byte, k func(ids []uint32, v []float64, mask []byte), tmp *[]float64) {
	switch a.DataType().ID() {
	case arrow.FLOAT64:
		k(ids, values[float64](a), mask)
		return
	}
	buf := grow(*tmp, len(ids))
	*tmp = buf
	switch a.DataType().ID() {
	case arrow.INT8:
		toFloats(buf, values[int8](a))
	case arrow.INT16:
		toFloats(buf, values[int16](a))
	case arrow.INT32:
		toFloats(buf, values[int32](a))
	case arrow.INT64:
		toFloats(buf, values[int64](a))
	case arrow.UINT8:
		toFloats(buf, values[uint8](a))
	case arrow.UINT16:
		toFloats(buf, values[uint16](a))
	case arrow.UINT32:
		toFloats(buf, values[uint32](a))
	case arrow.UINT64:
		toFloats(buf, values[uint64](a))
	case arrow.FLOAT32:
		toFloats(buf, values[float32](a))
	case arrow.DECIMAL128:
		for i, v := range values[decimal128.Num](a) {
			buf[i] = v.ToFloat64(scale)
		}
	}
	k(ids, buf, mask)
}

func toFloats[T int8 | int16 | int32 | int64 | uint8 | uint16 | uint32 | uint64 | float32](dst []float64, v []T) {
	for i, x := range v[:len(dst)] {
		dst[i] = float64(x)
	}
}

// ---- avg: a float64 sum and a count ----

type avgState struct {
	scale int32
	sum   []float64
	n     []int64
	tmp   []float64
}

func (s *avgState) grow(n int) { s.sum, s.n = growTo(s.sum, n), growTo(s.n, n) }
func (s *avgState) bytes() int64 {
	return int64(cap(s.sum))*8 + int64(cap(s.n))*8 + int64(cap(s.tmp))*8
}
func (s *avgState) reset() { *s = avgState{scale: s.scale} }
func (s *avgState) partialTypes() []arrow.DataType {
	return []arrow.DataType{arrow.PrimitiveTypes.Float64, arrow.PrimitiveTypes.Int64}
}

func (s *avgState) update(ids []uint32, a arrow.Array, mask []byte, _ int64) int {
	floatKernel(a, s.scale, ids, mask, s.add, &s.tmp)
	return -1
}

func (s *avgState) add(ids []uint32, v []float64, mask []byte) {
	sum, n := s.sum, s.n
	v = v[:len(ids)]
	if mask == nil {
		for i, g := range ids {
			sum[g] += v[i]
			n[g]++
		}
		return
	}
	for i, g := range ids {
		if bitutil.BitIsSet(mask, i) {
			sum[g] += v[i]
			n[g]++
		}
	}
}

func (s *avgState) result(mem memory.Allocator, groups []uint32) arrow.Array {
	out := make([]float64, len(groups))
	valid := make([]bool, len(groups))
	for i, g := range groups {
		if s.n[g] > 0 {
			out[i], valid[i] = s.sum[g]/float64(s.n[g]), true
		}
	}
	return fixedArray(mem, arrow.PrimitiveTypes.Float64, out, valid)
}

func (s *avgState) partial(mem memory.Allocator, groups []uint32) []arrow.Array {
	return []arrow.Array{
		fixedArray(mem, arrow.PrimitiveTypes.Float64, gather(nil, s.sum, groups), nil),
		fixedArray(mem, arrow.PrimitiveTypes.Int64, gather(nil, s.n, groups), nil),
	}
}

func (s *avgState) merge(ids []uint32, cols []arrow.Array) int {
	n := values[int64](cols[1])
	for i, v := range values[float64](cols[0]) {
		s.sum[ids[i]] += v
		s.n[ids[i]] += n[i]
	}
	return -1
}

// ---- variance and standard deviation: Welford's (n, mean, M2), merged
// with Chan et al.'s formula ----

type momentState struct {
	kind  aggKind
	scale int32
	n     []int64
	mean  []float64
	m2    []float64
	tmp   []float64
}

func (s *momentState) grow(n int) {
	s.n, s.mean, s.m2 = growTo(s.n, n), growTo(s.mean, n), growTo(s.m2, n)
}
func (s *momentState) bytes() int64 {
	return int64(cap(s.n))*8 + int64(cap(s.mean))*8 + int64(cap(s.m2))*8 + int64(cap(s.tmp))*8
}
func (s *momentState) reset() { *s = momentState{kind: s.kind, scale: s.scale} }
func (s *momentState) partialTypes() []arrow.DataType {
	return []arrow.DataType{arrow.PrimitiveTypes.Int64, arrow.PrimitiveTypes.Float64, arrow.PrimitiveTypes.Float64}
}

func (s *momentState) update(ids []uint32, a arrow.Array, mask []byte, _ int64) int {
	floatKernel(a, s.scale, ids, mask, s.add, &s.tmp)
	return -1
}

func (s *momentState) add(ids []uint32, v []float64, mask []byte) {
	n, mean, m2 := s.n, s.mean, s.m2
	v = v[:len(ids)]
	for i, g := range ids {
		if mask != nil && !bitutil.BitIsSet(mask, i) {
			continue
		}
		x := v[i]
		n[g]++
		d := x - mean[g]
		mean[g] += d / float64(n[g])
		m2[g] += d * (x - mean[g])
	}
}

func (s *momentState) result(mem memory.Allocator, groups []uint32) arrow.Array {
	out := make([]float64, len(groups))
	valid := make([]bool, len(groups))
	for i, g := range groups {
		n := s.n[g]
		var v float64
		switch s.kind {
		case aggVarSamp, aggStddevSamp:
			if n < 2 {
				continue
			}
			v = s.m2[g] / float64(n-1)
		default:
			if n < 1 {
				continue
			}
			v = s.m2[g] / float64(n)
		}
		if s.kind == aggStddevSamp || s.kind == aggStddevPop {
			v = math.Sqrt(v)
		}
		out[i], valid[i] = v, true
	}
	return fixedArray(mem, arrow.PrimitiveTypes.Float64, out, valid)
}

func (s *momentState) partial(mem memory.Allocator, groups []uint32) []arrow.Array {
	return []arrow.Array{
		fixedArray(mem, arrow.PrimitiveTypes.Int64, gather(nil, s.n, groups), nil),
		fixedArray(mem, arrow.PrimitiveTypes.Float64, gather(nil, s.mean, groups), nil),
		fixedArray(mem, arrow.PrimitiveTypes.Float64, gather(nil, s.m2, groups), nil),
	}
}

func (s *momentState) merge(ids []uint32, cols []arrow.Array) int {
	nb, mb, m2b := values[int64](cols[0]), values[float64](cols[1]), values[float64](cols[2])
	for i, g := range ids {
		if nb[i] == 0 {
			continue
		}
		na := s.n[g]
		n := na + nb[i]
		d := mb[i] - s.mean[g]
		s.mean[g] += d * float64(nb[i]) / float64(n)
		s.m2[g] += m2b[i] + d*d*float64(na)*float64(nb[i])/float64(n)
		s.n[g] = n
	}
	return -1
}

// ---- min, max, first, last of fixed-width values ----

// number is a value min, max, first and last store as is.
type number interface {
	~int8 | ~int16 | ~int32 | ~int64 | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~float32 | ~float64
}

// pickFixed keeps one value per group: the least (min), the greatest
// (max; NaN is greater than every number, as in DuckDB), or the one at
// the least or greatest input position (first, last; a NULL is a value
// there). T is the integer or float that orders like the column's type.
type pickFixed[T number] struct {
	kind aggKind
	out  arrow.DataType
	val  []T
	pos  []int64 // first and last: the input position of val
	has  []bool  // the group took a row
	null []bool  // first and last: the value taken is NULL
}

func (s *pickFixed[T]) grow(n int) {
	s.val, s.has = growTo(s.val, n), growTo(s.has, n)
	if s.kind.keepsNulls() {
		s.pos, s.null = growTo(s.pos, n), growTo(s.null, n)
	}
}
func (s *pickFixed[T]) bytes() int64 {
	var z T
	w := int64(sizeOf(z))
	return int64(cap(s.val))*w + int64(cap(s.has)) + int64(cap(s.pos))*8 + int64(cap(s.null))
}
func (s *pickFixed[T]) reset() { *s = pickFixed[T]{kind: s.kind, out: s.out} }
func (s *pickFixed[T]) partialTypes() []arrow.DataType {
	return []arrow.DataType{s.out, arrow.PrimitiveTypes.Int64}
}

func sizeOf[T number](T) int {
	var z T
	switch any(z).(type) {
	case int8, uint8:
		return 1
	case int16, uint16:
		return 2
	case int32, uint32, float32:
		return 4
	}
	return 8
}

// isNaN is x != x: false for every integer.
func isNaN[T number](x T) bool { return x != x }

func (s *pickFixed[T]) update(ids []uint32, a arrow.Array, mask []byte, base int64) int {
	v := arrow.GetData[T](a.Data().Buffers()[1].Bytes())[a.Data().Offset():][:len(ids)]
	val, has := s.val, s.has
	switch s.kind {
	case aggMin:
		for i, g := range ids {
			if on(mask, i) {
				x := v[i]
				if !has[g] || x < val[g] || (isNaN(val[g]) && !isNaN(x)) {
					val[g], has[g] = x, true
				}
			}
		}
	case aggMax:
		for i, g := range ids {
			if on(mask, i) {
				x := v[i]
				if !has[g] || x > val[g] || (isNaN(x) && !isNaN(val[g])) {
					val[g], has[g] = x, true
				}
			}
		}
	default:
		// Within an instance positions only grow: first keeps the row it
		// took, last takes every row.
		first := s.kind == aggFirst
		for i, g := range ids {
			if on(mask, i) && (!first || !has[g]) {
				val[g], has[g], s.pos[g], s.null[g] = v[i], true, base+int64(i), a.IsNull(i)
			}
		}
	}
	return -1
}

func (s *pickFixed[T]) valid(groups []uint32) []bool {
	valid := make([]bool, len(groups))
	for i, g := range groups {
		valid[i] = s.has[g] && (s.null == nil || !s.null[g])
	}
	return valid
}

func (s *pickFixed[T]) result(mem memory.Allocator, groups []uint32) arrow.Array {
	return fixedPick(mem, s.out, gather(nil, s.val, groups), s.valid(groups))
}

// fixedPick builds a pick's array; T has the width of dt's values.
func fixedPick[T number](mem memory.Allocator, dt arrow.DataType, vals []T, valid []bool) arrow.Array {
	var z T
	w := sizeOf(z)
	vb := memory.NewResizableBuffer(mem)
	vb.Resize(len(vals) * w)
	dst := arrow.GetData[T](vb.Bytes())
	copy(dst, vals)
	return withValidity(mem, dt, len(vals), vb, valid)
}

func (s *pickFixed[T]) partial(mem memory.Allocator, groups []uint32) []arrow.Array {
	return []arrow.Array{s.result(mem, groups), positions(mem, s.pos, s.has, groups)}
}

// positions is the partial column of a pick's input positions: null for a
// group that took no row, so a merge knows a NULL value from no value.
func positions(mem memory.Allocator, pos []int64, has []bool, groups []uint32) arrow.Array {
	p := make([]int64, len(groups))
	if pos != nil {
		gather(p, pos, groups)
	}
	return fixedArray(mem, arrow.PrimitiveTypes.Int64, p, gather(nil, has, groups))
}

// takes says whether a partial row (value valid or not, at position p,
// present when took) replaces group g's value; cmp compares the two
// values (for min and max, both valid).
func takes(kind aggKind, had bool, hadPos, p int64, c int) bool {
	if !had {
		return true
	}
	switch kind {
	case aggMin:
		return c < 0
	case aggMax:
		return c > 0
	case aggFirst:
		return p < hadPos
	}
	return p > hadPos
}

func (s *pickFixed[T]) merge(ids []uint32, cols []arrow.Array) int {
	c := cols[0]
	v := arrow.GetData[T](c.Data().Buffers()[1].Bytes())[c.Data().Offset():]
	pos := values[int64](cols[1])
	for i, g := range ids {
		if cols[1].IsNull(i) {
			continue // the group took no row there
		}
		var hp int64
		if s.pos != nil {
			hp = s.pos[g]
		}
		x := v[i]
		cv := 0
		if !s.kind.keepsNulls() && s.has[g] {
			cv = cmpNaN(x, s.val[g])
		}
		if takes(s.kind, s.has[g], hp, pos[i], cv) {
			s.val[g], s.has[g] = x, true
			if s.pos != nil {
				s.pos[g], s.null[g] = pos[i], c.IsNull(i)
			}
		}
	}
	return -1
}

// cmpNaN orders NaN after every number.
func cmpNaN[T number](a, b T) int {
	switch {
	case isNaN(a) && isNaN(b):
		return 0
	case isNaN(a):
		return 1
	case isNaN(b):
		return -1
	}
	return cmp.Compare(a, b)
}

// ---- min, max, first, last of strings and binaries ----

// pickBytes keeps a copy of one value per group, in a buffer of the
// group's own that is reused as the value changes.
type pickBytes struct {
	kind aggKind
	out  arrow.DataType
	val  [][]byte
	pos  []int64
	has  []bool
	null []bool
	held int64 // bytes of the values' buffers
}

func (s *pickBytes) grow(n int) {
	s.val, s.has, s.pos, s.null = growTo(s.val, n), growTo(s.has, n), growTo(s.pos, n), growTo(s.null, n)
}
func (s *pickBytes) bytes() int64 {
	return int64(cap(s.val))*24 + int64(cap(s.has)) + int64(cap(s.pos))*8 + int64(cap(s.null)) + s.held
}
func (s *pickBytes) reset() { *s = pickBytes{kind: s.kind, out: s.out} }
func (s *pickBytes) partialTypes() []arrow.DataType {
	return []arrow.DataType{s.out, arrow.PrimitiveTypes.Int64}
}

func (s *pickBytes) set(g uint32, v []byte, p int64, null bool) {
	old := cap(s.val[g])
	s.val[g] = append(s.val[g][:0], v...)
	s.held += int64(cap(s.val[g]) - old)
	s.has[g], s.pos[g], s.null[g] = true, p, null
}

// bytesAt returns a function giving row i's bytes of a string, binary or
// dictionary-of-strings column (the dictionary looked up once per row).
func bytesAt(a arrow.Array) func(i int) []byte {
	if d, ok := a.(*array.Dictionary); ok {
		vals := bytesAt(d.Dictionary())
		return func(i int) []byte { return vals(d.GetValueIndex(i)) }
	}
	return func(i int) []byte { return varValue(a, i) }
}

func (s *pickBytes) update(ids []uint32, a arrow.Array, mask []byte, base int64) int {
	at := bytesAt(a)
	for i, g := range ids {
		if !on(mask, i) {
			continue
		}
		switch s.kind {
		case aggMin, aggMax:
			v := at(i)
			if !s.has[g] {
				s.set(g, v, 0, false)
			} else if c := bytes.Compare(v, s.val[g]); (c < 0) == (s.kind == aggMin) && c != 0 {
				s.set(g, v, 0, false)
			}
		case aggFirst:
			if !s.has[g] {
				s.setRow(g, a, at, i, base)
			}
		default:
			s.setRow(g, a, at, i, base)
		}
	}
	return -1
}

func (s *pickBytes) setRow(g uint32, a arrow.Array, at func(int) []byte, i int, base int64) {
	if a.IsNull(i) {
		s.set(g, nil, base+int64(i), true)
		return
	}
	s.set(g, at(i), base+int64(i), false)
}

func (s *pickBytes) result(mem memory.Allocator, groups []uint32) arrow.Array {
	b := array.NewBuilder(mem, s.out)
	defer b.Release()
	for _, g := range groups {
		if !s.has[g] || s.null[g] {
			b.AppendNull()
			continue
		}
		switch b := b.(type) {
		case *array.StringBuilder:
			b.BinaryBuilder.Append(s.val[g])
		case *array.LargeStringBuilder:
			b.BinaryBuilder.Append(s.val[g])
		case *array.BinaryBuilder:
			b.Append(s.val[g])
		}
	}
	return b.NewArray()
}

func (s *pickBytes) partial(mem memory.Allocator, groups []uint32) []arrow.Array {
	return []arrow.Array{s.result(mem, groups), positions(mem, s.pos, s.has, groups)}
}

func (s *pickBytes) merge(ids []uint32, cols []arrow.Array) int {
	c := cols[0]
	pos := values[int64](cols[1])
	for i, g := range ids {
		if cols[1].IsNull(i) {
			continue
		}
		var v []byte
		if c.IsValid(i) {
			v = varValue(c, i)
		}
		cv := 0
		if s.has[g] && !s.kind.keepsNulls() {
			cv = bytes.Compare(v, s.val[g])
		}
		if takes(s.kind, s.has[g], s.pos[g], pos[i], cv) {
			s.set(g, v, pos[i], c.IsNull(i))
		}
	}
	return -1
}

// ---- booleans: min (bool_and), max (bool_or), first, last ----

type pickBool struct {
	kind aggKind
	val  []bool
	pos  []int64
	has  []bool
	null []bool
}

func (s *pickBool) grow(n int) {
	s.val, s.has, s.pos, s.null = growTo(s.val, n), growTo(s.has, n), growTo(s.pos, n), growTo(s.null, n)
}
func (s *pickBool) bytes() int64 {
	return int64(cap(s.val)) + int64(cap(s.has)) + int64(cap(s.pos))*8 + int64(cap(s.null))
}
func (s *pickBool) reset() { *s = pickBool{kind: s.kind} }
func (s *pickBool) partialTypes() []arrow.DataType {
	return []arrow.DataType{arrow.FixedWidthTypes.Boolean, arrow.PrimitiveTypes.Int64}
}

func (s *pickBool) update(ids []uint32, a arrow.Array, mask []byte, base int64) int {
	b := a.(*array.Boolean)
	for i, g := range ids {
		if !on(mask, i) {
			continue
		}
		x := b.Value(i)
		switch s.kind {
		case aggMin:
			s.val[g] = x && (s.val[g] || !s.has[g])
		case aggMax:
			s.val[g] = x || s.val[g]
		case aggFirst:
			if s.has[g] {
				continue
			}
			fallthrough
		default:
			s.val[g], s.pos[g], s.null[g] = x, base+int64(i), b.IsNull(i)
		}
		s.has[g] = true
	}
	return -1
}

func (s *pickBool) result(mem memory.Allocator, groups []uint32) arrow.Array {
	b := array.NewBooleanBuilder(mem)
	defer b.Release()
	for _, g := range groups {
		if !s.has[g] || s.null[g] {
			b.AppendNull()
		} else {
			b.Append(s.val[g])
		}
	}
	return b.NewArray()
}

func (s *pickBool) partial(mem memory.Allocator, groups []uint32) []arrow.Array {
	return []arrow.Array{s.result(mem, groups), positions(mem, s.pos, s.has, groups)}
}

func (s *pickBool) merge(ids []uint32, cols []arrow.Array) int {
	c := cols[0].(*array.Boolean)
	pos := values[int64](cols[1])
	for i, g := range ids {
		if cols[1].IsNull(i) {
			continue
		}
		x := c.Value(i)
		switch s.kind {
		case aggMin:
			s.val[g] = x && (s.val[g] || !s.has[g])
		case aggMax:
			s.val[g] = x || s.val[g]
		default:
			if takes(s.kind, s.has[g], s.pos[g], pos[i], 0) {
				s.val[g], s.pos[g], s.null[g] = x, pos[i], c.IsNull(i)
			}
		}
		s.has[g] = true
	}
	return -1
}
