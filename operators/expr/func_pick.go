package expr

import (
	"bytes"
	"encoding/binary"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/arrow/scalar"
	"github.com/cespare/xxhash/v2"
)

// greatest, least, nullif and hash.

func init() {
	define(&funcDef{name: "greatest", sig: "greatest(a, ...)", min: 1, max: -1, check: checkPick})
	define(&funcDef{name: "least", sig: "least(a, ...)", min: 1, max: -1, check: checkPick})
	define(&funcDef{name: "nullif", sig: "nullif(a, b)", min: 2, max: 2, check: checkNullIf})
	define(&funcDef{name: "hash", sig: "hash(x, ...)", min: 1, max: -1, check: checkHash})
}

// checkPick is greatest(a, ...) or least(a, ...): the arguments are brought
// to one type, as coalesce's, and NULLs are skipped (the result is NULL only
// when every argument is), as in DuckDB. A float NaN is greater than every
// other number, as DuckDB orders it.
func checkPick(c *checker, e *Call, args []node) (node, error) {
	dt, ok, err := c.results(e.Name+" argument", args, e.Args)
	if err != nil || !ok {
		return poisonNode{}, err
	}
	if dt.ID() == arrow.NULL {
		return nullOf(tNull), nil
	}
	ns := make([]node, 0, len(args))
	for _, a := range args {
		if !isNullConst(a) {
			ns = append(ns, a)
		}
	}
	if len(ns) == 0 {
		return nullOf(dt), nil
	}
	if len(ns) == 1 {
		return ns[0], nil
	}
	greatest := e.Name == "greatest"
	var run func(ev *evaluator, vals []value) (arrow.Array, error)
	switch dt.ID() {
	case arrow.INT64, arrow.TIMESTAMP, arrow.DATE64, arrow.DURATION:
		run = func(ev *evaluator, vals []value) (arrow.Array, error) {
			return pickFixed[int64](ev, dt, vals, greatest, func(a, b int64) bool { return a < b }), nil
		}
	case arrow.INT32, arrow.DATE32:
		run = func(ev *evaluator, vals []value) (arrow.Array, error) {
			return pickFixed[int32](ev, dt, vals, greatest, func(a, b int32) bool { return a < b }), nil
		}
	case arrow.UINT64: // hash values
		run = func(ev *evaluator, vals []value) (arrow.Array, error) {
			return pickFixed[uint64](ev, dt, vals, greatest, func(a, b uint64) bool { return a < b }), nil
		}
	case arrow.FLOAT64:
		run = func(ev *evaluator, vals []value) (arrow.Array, error) {
			return pickFixed[float64](ev, dt, vals, greatest, lessNaNLast), nil
		}
	case arrow.STRING:
		run = func(ev *evaluator, vals []value) (arrow.Array, error) { return pickString(ev, vals, greatest) }
	case arrow.BOOL:
		run = func(ev *evaluator, vals []value) (arrow.Array, error) { return pickBool(ev, vals, greatest), nil }
	default:
		return nil, typeErrf(e.Start, "%s cannot order values of type %s", e.Name, typeName(dt))
	}
	return c.newFunc(e, dt, ns, run)
}

// lessNaNLast orders floats with NaN above +Inf.
func lessNaNLast(a, b float64) bool { return a < b || (math.IsNaN(b) && !math.IsNaN(a)) }

// pickState tracks, per row, whether a value has been picked yet.
type pickState struct {
	valid *memory.Buffer
	bits  []byte
}

func newPickState(mem memory.Allocator, n int) pickState {
	buf := newBuffer(mem, int(bitutil.BytesForBits(int64(n))))
	b := buf.Bytes()
	for i := range b {
		b[i] = 0
	}
	return pickState{valid: buf, bits: b}
}

// argNull reports whether row i of v is null (v is never a NULL constant:
// those were dropped at Compile time).
func argNull(v value, i int) bool {
	return v.arr != nil && v.arr.NullN() > 0 && v.arr.IsNull(i)
}

// pickFixed picks, column by column, the greatest (or least) non-null value
// of every row.
func pickFixed[T int32 | int64 | uint64 | float64](ev *evaluator, dt arrow.DataType, vals []value, greatest bool, less func(a, b T) bool) arrow.Array {
	buf := newBuffer(ev.mem, ev.n*int(dt.(arrow.FixedWidthDataType).BitWidth()/8))
	out := castBytes[T](buf.Bytes())[:ev.n]
	st := newPickState(ev.mem, ev.n)
	for _, v := range vals {
		xs, mask := fixedOperand[T](v)
		for i := range out {
			if argNull(v, i) {
				continue
			}
			x := xs[i&mask]
			if !bitutil.BitIsSet(st.bits, i) {
				out[i] = x
				bitutil.SetBit(st.bits, i)
				continue
			}
			if greatest && less(out[i], x) || !greatest && less(x, out[i]) {
				out[i] = x
			}
		}
	}
	for i := range out {
		if !bitutil.BitIsSet(st.bits, i) {
			var zero T
			out[i] = zero
		}
	}
	return finish(dt, ev.n, st.valid, buf)
}

// fixedOperand is operand for any fixed-width type whose values are Ts,
// uint64 included.
func fixedOperand[T int32 | int64 | uint64 | float64](v value) ([]T, int) {
	if v.arr != nil {
		d := v.arr.Data()
		return castBytes[T](d.Buffers()[1].Bytes())[d.Offset() : d.Offset()+v.arr.Len()], -1
	}
	return castBytes[T](v.sc.(scalar.PrimitiveScalar).Data())[:1], 0
}

// pickBool is pickFixed for booleans (false < true): greatest is the OR
// of the non-null values, least their AND.
func pickBool(ev *evaluator, vals []value, greatest bool) arrow.Array {
	buf, out := newBoolBuffer(ev.mem, ev.n)
	st := newPickState(ev.mem, ev.n)
	for _, v := range vals {
		for i := 0; i < ev.n; i++ {
			if argNull(v, i) {
				continue
			}
			x := boolAt(v, i)
			switch {
			case !bitutil.BitIsSet(st.bits, i):
				bitutil.SetBitTo(out, i, x)
				bitutil.SetBit(st.bits, i)
			case greatest && x:
				bitutil.SetBit(out, i)
			case !greatest && !x:
				bitutil.ClearBit(out, i)
			}
		}
	}
	return finish(tBool, ev.n, st.valid, buf)
}

// boolAt returns row i of the boolean v.
func boolAt(v value, i int) bool {
	if v.arr == nil {
		b, ok := v.sc.(*scalar.Boolean)
		return ok && b.Valid && b.Value
	}
	d := v.arr.Data()
	return bitutil.BitIsSet(d.Buffers()[1].Bytes(), d.Offset()+i)
}

// pickString picks per row the index of the greatest (least) string, then
// copies the picked strings.
func pickString(ev *evaluator, vals []value, greatest bool) (arrow.Array, error) {
	views := make([]strView, len(vals))
	size := 0
	for k, v := range vals {
		views[k] = strViewOf(v)
		size = max(size, estimate(&views[k], ev.n))
	}
	st := newPickState(ev.mem, ev.n)
	w := newStrWriter(ev.mem, ev.n, size)
	for i := 0; i < ev.n; i++ {
		w.row(i)
		var best []byte
		found := false
		for k := range views {
			if views[k].null(i) {
				continue
			}
			x := views[k].at(i)
			if c := bytes.Compare(x, best); !found || (greatest && c > 0) || (!greatest && c < 0) {
				best, found = x, true
			}
		}
		if found {
			bitutil.SetBit(st.bits, i)
			w.write(best)
		}
	}
	return w.finish(ev.n, st.valid)
}

// checkNullIf is nullif(a, b): NULL where a = b, else a, in a's type. The
// comparison is made in the type a and b have in common, as = makes it.
func checkNullIf(c *checker, e *Call, args []node) (node, error) {
	a, b := args[0], args[1]
	if _, ok := unify(a.dtype(), b.dtype(), isConst(a), isConst(b)); !ok {
		return nil, typeErrf(offset(e.Args[1]), "nullif cannot compare %s with %s", c.desc(e.Args[0], a), c.desc(e.Args[1], b))
	}
	if classOf(a.dtype()) == clsOther {
		return nil, typeErrf(offset(e.Args[0]), "nullif cannot compare %s", c.desc(e.Args[0], a))
	}
	if isNullConst(a) {
		return nullOf(canonical(b.dtype())), nil
	}
	dt := canonical(a.dtype())
	if a.dtype().ID() == arrow.UINT64 {
		dt = tUint64 // a hash stays one: int64 cannot hold every uint64
	}
	out, err := c.coerce(a, dt, e.Args[0])
	if err != nil {
		return nil, err
	}
	if isNullConst(b) {
		return out, nil
	}
	eq, err := c.compare(&Binary{Pos: Pos{e.Start, e.End}, Op: "=", L: e.Args[0], R: e.Args[1]})
	if err != nil {
		return nil, err
	}
	return c.newFunc(e, dt, []node{out, eq}, nullIfKernel)
}

// nullIfKernel returns a with a new validity bitmap, null where eq is true;
// a's value buffers are shared, not copied.
func nullIfKernel(ev *evaluator, vals []value) (arrow.Array, error) {
	a, err := ev.materialize(value{arr: vals[0].arr, sc: vals[0].sc})
	if err != nil {
		return nil, err
	}
	if vals[0].arr != nil {
		a.Retain() // materialize handed back the borrowed array itself
	}
	defer a.Release()
	d := a.Data()
	off := d.Offset()
	valid := newBuffer(ev.mem, int(bitutil.BytesForBits(int64(off+ev.n))))
	bits := valid.Bytes()
	for i := range bits {
		bits[i] = 0
	}
	eq := vals[1]
	nulls := 0
	for i := 0; i < ev.n; i++ {
		if a.IsNull(i) || (!argNull(eq, i) && boolAt(eq, i)) {
			nulls++
			continue
		}
		bitutil.SetBit(bits, off+i)
	}
	bufs := append([]*memory.Buffer{valid}, d.Buffers()[1:]...)
	data := array.NewData(d.DataType(), ev.n, bufs, nil, nulls, off)
	valid.Release()
	defer data.Release()
	return array.MakeFromData(data), nil
}

var tUint64 = arrow.PrimitiveTypes.Uint64

// hashNull is what hash(NULL) is in DuckDB, whatever the type.
const hashNull = 13787848793156543929

// checkHash is hash(x): a uint64 (DuckDB's UBIGINT) that is the same for
// equal values in every process, run and batch size: the xxhash64 of the
// value's canonical bytes. An integer of any width is its int64 value in 8
// little-endian bytes (a uint64 its own 8 bytes, the same for a value an
// int64 holds), a float its float64 bits with -0 as 0 and every NaN as one
// NaN, a string its bytes, a boolean the integer 0 or 1 (so hash(TRUE) =
// hash(1), as in DuckDB), a timestamp or date its stored integer in its own
// unit. NULL hashes to hashNull, as in DuckDB; other values differ from
// DuckDB's hash. With several arguments (a row key) the hashes are folded
// left to right: h = xxhash64(h ‖ hash(next)), both as 8 little-endian
// bytes, so hash(a, b) differs from hash(b, a).
func checkHash(c *checker, e *Call, args []node) (node, error) {
	ns := make([]node, len(args))
	for i, x := range args {
		switch classOf(x.dtype()) {
		case clsNull:
			ns[i] = nullOf(tUint64) // hashes to hashNull
			continue
		case clsOther:
			ns[i] = c.report(typeErrf(offset(e.Args[i]), "hash cannot hash %s", c.desc(e.Args[i], x)))
			continue
		}
		dt := canonical(x.dtype())
		if x.dtype().ID() == arrow.UINT64 {
			dt = tUint64 // its 8 bytes as they are: int64 cannot hold every uint64
		}
		n, err := c.coerce(x, dt, e.Args[i])
		if err != nil {
			n = c.report(asTypeError(err, e.Args[i]))
		}
		ns[i] = n
	}
	if poisoned(ns...) {
		return poisonNode{}, nil
	}
	return c.newFunc(e, tUint64, ns, hashKernel)
}

// hashKernel hashes the first argument, then folds in each next one:
// h = xxhash64(h ‖ hash(x)), both as 8 little-endian bytes.
func hashKernel(ev *evaluator, vals []value) (arrow.Array, error) {
	buf := newBuffer(ev.mem, ev.n*8)
	out := arrow.Uint64Traits.CastFromBytes(buf.Bytes())[:ev.n]
	if err := hashInto(ev, out, vals[0]); err != nil {
		buf.Release()
		return nil, err
	}
	if len(vals) > 1 {
		scratch := newBuffer(ev.mem, ev.n*8)
		defer scratch.Release()
		next := arrow.Uint64Traits.CastFromBytes(scratch.Bytes())[:ev.n]
		var pair [16]byte
		for _, v := range vals[1:] {
			if err := hashInto(ev, next, v); err != nil {
				buf.Release()
				return nil, err
			}
			for i := range out {
				binary.LittleEndian.PutUint64(pair[:8], out[i])
				binary.LittleEndian.PutUint64(pair[8:], next[i])
				out[i] = xxhash.Sum64(pair[:])
			}
		}
	}
	return finish(tUint64, ev.n, nil, buf), nil
}

// hashInto writes the hash of every row of v into out.
func hashInto(ev *evaluator, out []uint64, v value) error {
	if v.arr == nil && !v.sc.IsValid() {
		for i := range out {
			out[i] = hashNull
		}
		return nil
	}
	if v.arr == nil && v.dtype().ID() == arrow.UINT64 {
		arr, err := broadcast(ev.mem, v.sc, ev.n)
		if err != nil {
			return err
		}
		defer arr.Release()
		v = value{arr: arr}
	}
	var tmp [8]byte
	switch dt := v.dtype(); dt.ID() {
	case arrow.STRING:
		s := strViewOf(v)
		for i := range out {
			if s.null(i) {
				out[i] = hashNull
				continue
			}
			out[i] = xxhash.Sum64(s.at(i))
		}
	case arrow.BOOL:
		for i := range out {
			if argNull(v, i) {
				out[i] = hashNull
				continue
			}
			var x uint64
			if boolAt(v, i) {
				x = 1
			}
			binary.LittleEndian.PutUint64(tmp[:], x)
			out[i] = xxhash.Sum64(tmp[:])
		}
	case arrow.FLOAT64:
		xs, mask := operand[float64](v)
		for i := range out {
			if argNull(v, i) {
				out[i] = hashNull
				continue
			}
			f := xs[i&mask]
			switch {
			case f == 0:
				f = 0 // -0 = 0
			case math.IsNaN(f):
				f = math.NaN()
			}
			binary.LittleEndian.PutUint64(tmp[:], math.Float64bits(f))
			out[i] = xxhash.Sum64(tmp[:])
		}
	case arrow.INT32, arrow.DATE32:
		xs, mask := operand[int32](v)
		for i := range out {
			if argNull(v, i) {
				out[i] = hashNull
				continue
			}
			binary.LittleEndian.PutUint64(tmp[:], uint64(int64(xs[i&mask])))
			out[i] = xxhash.Sum64(tmp[:])
		}
	case arrow.UINT64:
		d := v.arr.Data()
		xs := arrow.Uint64Traits.CastFromBytes(d.Buffers()[1].Bytes())[d.Offset():]
		for i := range out {
			if argNull(v, i) {
				out[i] = hashNull
				continue
			}
			binary.LittleEndian.PutUint64(tmp[:], xs[i])
			out[i] = xxhash.Sum64(tmp[:])
		}
	default: // int64, timestamps, dates in int64
		xs, mask := operand[int64](v)
		for i := range out {
			if argNull(v, i) {
				out[i] = hashNull
				continue
			}
			binary.LittleEndian.PutUint64(tmp[:], uint64(xs[i&mask]))
			out[i] = xxhash.Sum64(tmp[:])
		}
	}
	return nil
}
