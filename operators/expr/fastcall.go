package expr

import (
	"encoding/binary"
	"fmt"
	"math/bits"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/arrow/scalar"
)

// This package's own loops for the compute calls of a typical predicate and
// projection: + - * on int64 and float64 (int64 checked for overflow, as
// arrow's add, subtract and multiply are), the six comparisons on int64,
// timestamps, dates, durations, int32 and float64, Kleene AND/OR, and the
// casts that cannot fail: a narrower integer to int64, an integer to
// float64 (where the cast allows rounding, as coerce's does). Each
// arrow-go compute.CallFunction starts a goroutine, hands the result back
// over a channel and allocates its executor state, which at 64k rows costs
// more than the arithmetic, and more again with several Ps. The loops run
// over the raw buffers with a constant operand broadcast by a zero index
// mask, and give the same results as the kernels: a NULL operand gives a
// NULL row; an overflow in a NULL row is not an error. Anything else still
// goes through compute.CallFunction.

var errOverflow = fmt.Errorf("%w: overflow", arrow.ErrInvalid)

// fastCall runs fn over args when a loop of this file handles it; ok is
// false when it does not.
func (ev *evaluator) fastCall(src, fn string, args []value) (v value, ok bool, err error) {
	if len(args) != 2 || (args[0].arr == nil && args[1].arr == nil) {
		return value{}, false, nil
	}
	l, r := args[0], args[1]
	lt, rt := l.dtype(), r.dtype()
	if !arrow.TypeEqual(lt, rt) {
		return value{}, false, nil
	}
	switch fn {
	case "and_kleene", "or_kleene":
		if lt.ID() != arrow.BOOL {
			return value{}, false, nil
		}
		return value{arr: ev.kleene(fn == "and_kleene", l, r)}, true, nil
	case "add", "subtract", "multiply":
		if l.nullScalar() || r.nullScalar() {
			arr, err := broadcast(ev.mem, scalar.MakeNullScalar(lt), ev.n)
			return value{arr: arr}, true, err
		}
		switch lt.ID() {
		case arrow.INT64:
			v, err := ev.intArith(src, fn, l, r)
			return v, true, err
		case arrow.FLOAT64:
			return ev.floatArith(fn, l, r), true, nil
		}
		return value{}, false, nil
	case "equal", "not_equal", "less", "less_equal", "greater", "greater_equal":
		var op cmpOp
		switch fn {
		case "equal":
			op = cmpEQ
		case "not_equal":
			op = cmpNE
		case "less":
			op = cmpLT
		case "less_equal":
			op = cmpLE
		case "greater":
			op = cmpGT
		case "greater_equal":
			op = cmpGE
		}
		switch lt.ID() {
		case arrow.INT64, arrow.TIMESTAMP, arrow.DATE64, arrow.DURATION, arrow.TIME64,
			arrow.INT32, arrow.DATE32, arrow.TIME32, arrow.FLOAT64:
		default:
			return value{}, false, nil
		}
		if l.nullScalar() || r.nullScalar() {
			arr, err := broadcast(ev.mem, scalar.MakeNullScalar(tBool), ev.n)
			return value{arr: arr}, true, err
		}
		out := newBuffer(ev.mem, int(bitutil.BytesForBits(int64(ev.n))))
		switch lt.ID() {
		case arrow.INT32, arrow.DATE32, arrow.TIME32:
			lv, lm := operand[int32](l)
			rv, rm := operand[int32](r)
			compareLoop(op, lv, lm, rv, rm, out.Bytes(), ev.n)
		case arrow.FLOAT64:
			lv, lm := operand[float64](l)
			rv, rm := operand[float64](r)
			compareLoop(op, lv, lm, rv, rm, out.Bytes(), ev.n)
		default:
			lv, lm := operand[int64](l)
			rv, rm := operand[int64](r)
			compareLoop(op, lv, lm, rv, rm, out.Bytes(), ev.n)
		}
		return value{arr: finish(tBool, ev.n, ev.validity2(l, r), out)}, true, nil
	}
	return value{}, false, nil
}

// operand returns the values of v, from its array offset, and the mask
// that indexes them: all ones for an array, zero for a constant.
func operand[T int32 | int64 | float64](v value) ([]T, int) {
	if v.arr != nil {
		d := v.arr.Data()
		return castBytes[T](d.Buffers()[1].Bytes())[d.Offset() : d.Offset()+v.arr.Len()], -1
	}
	var c T
	switch sc := v.sc.(type) {
	case *scalar.Int64:
		c = T(sc.Value)
	case *scalar.Float64:
		c = T(sc.Value)
	case *scalar.Int32:
		c = T(sc.Value)
	case *scalar.Timestamp:
		c = T(sc.Value)
	case *scalar.Date64:
		c = T(sc.Value)
	case *scalar.Date32:
		c = T(sc.Value)
	case *scalar.Duration:
		c = T(sc.Value)
	case *scalar.Time64:
		c = T(sc.Value)
	case *scalar.Time32:
		c = T(sc.Value)
	default:
		panic(fmt.Sprintf("expr: no constant operand of type %T", v.sc))
	}
	return []T{c}, 0
}

// validity2 returns the validity of a binary operation on l and r: nil when
// neither has a null, the operand's own bitmap (shared) when only one array
// at offset 0 has nulls, else a new AND of both.
func (ev *evaluator) validity2(l, r value) *memory.Buffer {
	var withNulls [2]arrow.Array
	k := 0
	for _, v := range []value{l, r} {
		if v.arr != nil && v.arr.NullN() > 0 {
			withNulls[k] = v.arr
			k++
		}
	}
	switch {
	case k == 0:
		return nil
	case k == 1 && withNulls[0].Data().Offset() == 0:
		b := withNulls[0].Data().Buffers()[0]
		b.Retain()
		return b
	}
	return newValidity(ev.mem, ev.n, withNulls[:k]...)
}

type cmpOp uint8

const (
	cmpEQ cmpOp = iota
	cmpNE
	cmpLT
	cmpLE
	cmpGT
	cmpGE
)

// compareLoop sets bit i of out to l[i] op r[i], for n rows, every byte
// of out[:ceil(n/8)] written. One loop per operator, so the compare is
// inlined (a func value per row would be an indirect call).
func compareLoop[T int32 | int64 | float64](op cmpOp, l []T, lm int, r []T, rm int, out []byte, n int) {
	switch op {
	case cmpEQ:
		cmpLoopEQ(l, lm, r, rm, out, n)
	case cmpNE:
		cmpLoopNE(l, lm, r, rm, out, n)
	case cmpLT:
		cmpLoopLT(l, lm, r, rm, out, n)
	case cmpLE:
		cmpLoopLE(l, lm, r, rm, out, n)
	case cmpGT:
		cmpLoopGT(l, lm, r, rm, out, n)
	case cmpGE:
		cmpLoopGE(l, lm, r, rm, out, n)
	}
}

func cmpLoopEQ[T int32 | int64 | float64](l []T, lm int, r []T, rm int, out []byte, n int) {
	i := 0
	for ; i+64 <= n; i += 64 {
		var w uint64
		for j := range 64 {
			w |= b2u(l[(i+j)&lm] == r[(i+j)&rm]) << j
		}
		binary.LittleEndian.PutUint64(out[i/8:], w)
	}
	var w uint64
	for j := 0; i+j < n; j++ {
		w |= b2u(l[(i+j)&lm] == r[(i+j)&rm]) << j
	}
	for k := i; k < n; k += 8 {
		out[k/8] = byte(w)
		w >>= 8
	}
}

func cmpLoopNE[T int32 | int64 | float64](l []T, lm int, r []T, rm int, out []byte, n int) {
	i := 0
	for ; i+64 <= n; i += 64 {
		var w uint64
		for j := range 64 {
			w |= b2u(l[(i+j)&lm] != r[(i+j)&rm]) << j
		}
		binary.LittleEndian.PutUint64(out[i/8:], w)
	}
	var w uint64
	for j := 0; i+j < n; j++ {
		w |= b2u(l[(i+j)&lm] != r[(i+j)&rm]) << j
	}
	for k := i; k < n; k += 8 {
		out[k/8] = byte(w)
		w >>= 8
	}
}

func cmpLoopLT[T int32 | int64 | float64](l []T, lm int, r []T, rm int, out []byte, n int) {
	i := 0
	for ; i+64 <= n; i += 64 {
		var w uint64
		for j := range 64 {
			w |= b2u(l[(i+j)&lm] < r[(i+j)&rm]) << j
		}
		binary.LittleEndian.PutUint64(out[i/8:], w)
	}
	var w uint64
	for j := 0; i+j < n; j++ {
		w |= b2u(l[(i+j)&lm] < r[(i+j)&rm]) << j
	}
	for k := i; k < n; k += 8 {
		out[k/8] = byte(w)
		w >>= 8
	}
}

func cmpLoopLE[T int32 | int64 | float64](l []T, lm int, r []T, rm int, out []byte, n int) {
	i := 0
	for ; i+64 <= n; i += 64 {
		var w uint64
		for j := range 64 {
			w |= b2u(l[(i+j)&lm] <= r[(i+j)&rm]) << j
		}
		binary.LittleEndian.PutUint64(out[i/8:], w)
	}
	var w uint64
	for j := 0; i+j < n; j++ {
		w |= b2u(l[(i+j)&lm] <= r[(i+j)&rm]) << j
	}
	for k := i; k < n; k += 8 {
		out[k/8] = byte(w)
		w >>= 8
	}
}

func cmpLoopGT[T int32 | int64 | float64](l []T, lm int, r []T, rm int, out []byte, n int) {
	i := 0
	for ; i+64 <= n; i += 64 {
		var w uint64
		for j := range 64 {
			w |= b2u(l[(i+j)&lm] > r[(i+j)&rm]) << j
		}
		binary.LittleEndian.PutUint64(out[i/8:], w)
	}
	var w uint64
	for j := 0; i+j < n; j++ {
		w |= b2u(l[(i+j)&lm] > r[(i+j)&rm]) << j
	}
	for k := i; k < n; k += 8 {
		out[k/8] = byte(w)
		w >>= 8
	}
}

func cmpLoopGE[T int32 | int64 | float64](l []T, lm int, r []T, rm int, out []byte, n int) {
	i := 0
	for ; i+64 <= n; i += 64 {
		var w uint64
		for j := range 64 {
			w |= b2u(l[(i+j)&lm] >= r[(i+j)&rm]) << j
		}
		binary.LittleEndian.PutUint64(out[i/8:], w)
	}
	var w uint64
	for j := 0; i+j < n; j++ {
		w |= b2u(l[(i+j)&lm] >= r[(i+j)&rm]) << j
	}
	for k := i; k < n; k += 8 {
		out[k/8] = byte(w)
		w >>= 8
	}
}

func (ev *evaluator) floatArith(fn string, l, r value) value {
	lv, lm := operand[float64](l)
	rv, rm := operand[float64](r)
	out := newBuffer(ev.mem, ev.n*8)
	res := castBytes[float64](out.Bytes())[:ev.n]
	if lm == -1 && rm == -1 {
		// Two arrays, the common case: no index masks, no bounds checks.
		lv, rv = lv[:len(res)], rv[:len(res)]
		switch fn {
		case "add":
			for i := range res {
				res[i] = lv[i] + rv[i]
			}
		case "subtract":
			for i := range res {
				res[i] = lv[i] - rv[i]
			}
		case "multiply":
			for i := range res {
				res[i] = lv[i] * rv[i]
			}
		}
		return value{arr: finish(tFloat64, ev.n, ev.validity2(l, r), out)}
	}
	switch fn {
	case "add":
		for i := range res {
			res[i] = lv[i&lm] + rv[i&rm]
		}
	case "subtract":
		for i := range res {
			res[i] = lv[i&lm] - rv[i&rm]
		}
	case "multiply":
		for i := range res {
			res[i] = lv[i&lm] * rv[i&rm]
		}
	}
	return value{arr: finish(tFloat64, ev.n, ev.validity2(l, r), out)}
}

// intArith is checked int64 arithmetic: overflow in a non-NULL row is an
// error, as with arrow's add, subtract and multiply.
func (ev *evaluator) intArith(src, fn string, l, r value) (value, error) {
	lv, lm := operand[int64](l)
	rv, rm := operand[int64](r)
	out := newBuffer(ev.mem, ev.n*8)
	res := castBytes[int64](out.Bytes())[:ev.n]
	var ov uint64 // nonzero when some row, maybe a NULL one, overflowed
	switch fn {
	case "add":
		for i := range res {
			a, b := lv[i&lm], rv[i&rm]
			s := a + b
			res[i] = s
			ov |= uint64((a ^ s) & (b ^ s))
		}
		ov >>= 63
	case "subtract":
		for i := range res {
			a, b := lv[i&lm], rv[i&rm]
			d := a - b
			res[i] = d
			ov |= uint64((a ^ b) & (a ^ d))
		}
		ov >>= 63
	case "multiply":
		for i := range res {
			a, b := lv[i&lm], rv[i&rm]
			res[i] = a * b
			ov |= mulOverflow(a, b)
		}
	}
	valid := ev.validity2(l, r)
	if ov != 0 && (valid == nil || overflowInValid(fn, lv, lm, rv, rm, valid.Bytes(), ev.n)) {
		out.Release()
		if valid != nil {
			valid.Release()
		}
		return value{}, fmt.Errorf("expr: %s: %w", src, errOverflow)
	}
	return value{arr: finish(tInt64, ev.n, valid, out)}, nil
}

// mulOverflow is nonzero when a*b overflows int64: the high word of the
// signed 128-bit product is not the sign extension of the low word.
func mulOverflow(a, b int64) uint64 {
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	hi -= uint64(b & (a >> 63))
	hi -= uint64(a & (b >> 63))
	return hi ^ uint64(int64(lo)>>63)
}

// overflowInValid reports whether fn overflows in a row whose bit is set in
// valid (the slow path, taken only once some row overflowed).
func overflowInValid(fn string, lv []int64, lm int, rv []int64, rm int, valid []byte, n int) bool {
	for i := 0; i < n; i++ {
		if !bitutil.BitIsSet(valid, i) {
			continue
		}
		a, b := lv[i&lm], rv[i&rm]
		var o bool
		switch fn {
		case "add":
			s := a + b
			o = (a^s)&(b^s) < 0
		case "subtract":
			d := a - b
			o = (a^b)&(a^d) < 0
		case "multiply":
			o = mulOverflow(a, b) != 0
		}
		if o {
			return true
		}
	}
	return false
}

// kleene is AND (and) or OR over two booleans with Kleene logic, 64 rows
// at a time: FALSE AND NULL is FALSE, TRUE OR NULL is TRUE.
func (ev *evaluator) kleene(and bool, l, r value) arrow.Array {
	n := ev.n
	nb := int(bitutil.BytesForBits(int64(n)))
	lv, lval, lc := boolWords(ev.mem, l, n)
	defer lc.release()
	rv, rval, rc := boolWords(ev.mem, r, n)
	defer rc.release()
	out := newBuffer(ev.mem, nb)
	valid := newBuffer(ev.mem, nb)
	ob, vb := out.Bytes(), valid.Bytes()
	word := func(b []byte, c uint64, i int) uint64 {
		if b == nil {
			return c
		}
		if i+8 <= len(b) {
			return binary.LittleEndian.Uint64(b[i:])
		}
		var w uint64
		for k := len(b) - 1; k >= i; k-- {
			w = w<<8 | uint64(b[k])
		}
		return w
	}
	for i := 0; i < nb; i += 8 {
		a, av := word(lv.bits, lv.c, i), word(lval.bits, lval.c, i)
		b, bv := word(rv.bits, rv.c, i), word(rval.bits, rval.c, i)
		var o, v uint64
		if and {
			v = (av & bv) | (av &^ a) | (bv &^ b)
			o = a & b & v
		} else {
			v = (av & bv) | (av & a) | (bv & b)
			o = (a | b) & v
		}
		if i+8 <= nb {
			binary.LittleEndian.PutUint64(ob[i:], o)
			binary.LittleEndian.PutUint64(vb[i:], v)
			continue
		}
		for k := i; k < nb; k++ {
			ob[k] = byte(o)
			vb[k] = byte(v)
			o >>= 8
			v >>= 8
		}
	}
	return finish(tBool, n, valid, out)
}

// bitsOrConst is a bitmap from offset 0, or, when bits is nil, the word c
// repeated (a constant, or no validity bitmap).
type bitsOrConst struct {
	bits []byte
	c    uint64
}

// compacted holds an array made to realign a sliced boolean; release it.
type compacted struct{ a arrow.Array }

func (c compacted) release() {
	if c.a != nil {
		c.a.Release()
	}
}

// boolWords returns the values and validity of the boolean v as bitmaps
// from bit 0 of n rows (realigning a sliced array into a copy).
func boolWords(mem memory.Allocator, v value, n int) (vals, valid bitsOrConst, c compacted) {
	if v.arr == nil {
		b, _ := v.sc.(*scalar.Boolean)
		if b != nil && b.Valid {
			valid.c = ^uint64(0)
			if b.Value {
				vals.c = ^uint64(0)
			}
		}
		return vals, valid, c
	}
	arr := v.arr
	if off := arr.Data().Offset(); off%8 != 0 {
		arr.Retain()
		arr = compactBool(mem, arr)
		c.a = arr
	}
	d := arr.Data()
	start := d.Offset() / 8
	nb := int(bitutil.BytesForBits(int64(n)))
	vals.bits = d.Buffers()[1].Bytes()[start : start+nb]
	if arr.NullN() > 0 {
		valid.bits = d.Buffers()[0].Bytes()[start : start+nb]
	} else {
		valid.c = ^uint64(0)
	}
	return vals, valid, c
}

// fastCast casts an integer array to int64 (from a type that always fits)
// or to float64 (when opts allows rounding); ok is false for other casts.
func (ev *evaluator) fastCast(opts *compute.CastOptions, x value) (value, bool) {
	if x.arr == nil || opts.ToType == nil {
		return value{}, false
	}
	to := opts.ToType.ID()
	if to != arrow.INT64 && !(to == arrow.FLOAT64 && opts.AllowFloatTruncate) {
		return value{}, false
	}
	d := x.arr.Data()
	var vals []byte
	if b := d.Buffers()[1]; b != nil {
		vals = b.Bytes()
	}
	off, n := d.Offset(), x.arr.Len()
	out := newBuffer(ev.mem, n*8)
	var ok bool
	if to == arrow.INT64 {
		ok = convertInts(x.arr.DataType().ID(), vals, off, castBytes[int64](out.Bytes())[:n], false)
	} else {
		ok = convertInts(x.arr.DataType().ID(), vals, off, castBytes[float64](out.Bytes())[:n], true)
	}
	if !ok {
		out.Release()
		return value{}, false
	}
	return value{arr: finish(opts.ToType, n, ev.validity2(x, value{}), out)}, true
}

// convertInts converts the integers of type id in vals, from element off,
// into dst; it returns false for a type it does not convert (a uint64 or
// int64 to int64 is not a conversion it makes; to float64 any integer is).
func convertInts[D int64 | float64](id arrow.Type, vals []byte, off int, dst []D, toFloat bool) bool {
	switch id {
	case arrow.INT8:
		convert(castBytes[int8](vals)[off:], dst)
	case arrow.INT16:
		convert(castBytes[int16](vals)[off:], dst)
	case arrow.INT32:
		convert(castBytes[int32](vals)[off:], dst)
	case arrow.UINT8:
		convert(castBytes[uint8](vals)[off:], dst)
	case arrow.UINT16:
		convert(castBytes[uint16](vals)[off:], dst)
	case arrow.UINT32:
		convert(castBytes[uint32](vals)[off:], dst)
	case arrow.INT64:
		if !toFloat {
			return false
		}
		convert(castBytes[int64](vals)[off:], dst)
	case arrow.UINT64:
		if !toFloat {
			return false
		}
		convert(castBytes[uint64](vals)[off:], dst)
	default:
		return false
	}
	return true
}

func convert[S int8 | int16 | int32 | int64 | uint8 | uint16 | uint32 | uint64, D int64 | float64](src []S, dst []D) {
	src = src[:len(dst)]
	for i, v := range src {
		dst[i] = D(v)
	}
}
