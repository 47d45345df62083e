package expr

import (
	"fmt"
	"math"
	mathbits "math/bits"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/arrow/scalar"
)

// Kernels arrow-go's compute package does not have: division and modulo
// that yield NULL for a zero divisor, and the row selection behind CASE and
// coalesce. They work on whole arrays through their raw buffers, allocate
// only through the evaluator's allocator, and broadcast a constant operand
// by indexing a one-element slice with a zero mask.

// newBuffer returns a buffer of size bytes from mem; its contents are
// undefined.
func newBuffer(mem memory.Allocator, size int) *memory.Buffer {
	b := memory.NewResizableBuffer(mem)
	b.Resize(size)
	return b
}

// newValidity returns a bitmap of n bits, offset 0, holding the AND of the
// validity of arrs (nil entries are skipped).
func newValidity(mem memory.Allocator, n int, arrs ...arrow.Array) *memory.Buffer {
	buf := newBuffer(mem, int(bitutil.BytesForBits(int64(n))))
	dst := buf.Bytes()
	for i := range dst {
		dst[i] = 0xff
	}
	for _, a := range arrs {
		if a == nil || a.NullN() == 0 {
			continue
		}
		andBitmap(dst, a.NullBitmapBytes(), a.Data().Offset(), n)
	}
	return buf
}

// andBitmap clears the bits of dst[0:n] whose bit src[off+i] is clear.
func andBitmap(dst, src []byte, off, n int) {
	if src == nil {
		return
	}
	if off%8 == 0 {
		src = src[off/8:]
		full := n / 8
		for i := 0; i < full; i++ {
			dst[i] &= src[i]
		}
		for i := full * 8; i < n; i++ {
			if !bitutil.BitIsSet(src, i) {
				bitutil.ClearBit(dst, i)
			}
		}
		return
	}
	for i := 0; i < n; i++ {
		if !bitutil.BitIsSet(src, off+i) {
			bitutil.ClearBit(dst, i)
		}
	}
}

// finish builds an array of type dt from a values buffer (or, for strings,
// offsets and data) and a validity bitmap, dropping the bitmap when it has
// no nulls. It takes over the buffers.
func finish(dt arrow.DataType, n int, valid *memory.Buffer, bufs ...*memory.Buffer) arrow.Array {
	nulls := 0
	if valid != nil {
		nulls = n - bitutil.CountSetBits(valid.Bytes(), 0, n)
		if nulls == 0 {
			valid.Release()
			valid = nil
		}
	}
	all := append([]*memory.Buffer{valid}, bufs...)
	data := array.NewData(dt, n, all, nil, nulls, 0)
	for _, b := range all {
		if b != nil {
			b.Release()
		}
	}
	defer data.Release()
	return array.MakeFromData(data)
}

// divModNode is l / r or l % r on int64 or float64 operands. A zero divisor
// yields NULL; integer division truncates toward zero, as in Go and SQL.
// MinInt64 / -1 overflows (a run-time error, as the other integer
// operators' overflows are); MinInt64 % -1 is 0.
type divModNode struct {
	op   byte // '/' or '%'
	l, r node
	dt   arrow.DataType
	src  string // the source text, for run-time errors
}

func (n *divModNode) dtype() arrow.DataType { return n.dt }

// int64Operand returns the values of v and the mask that indexes them: all
// ones for an array, zero for a constant (broadcast).
func int64Operand(v value) ([]int64, int) {
	if v.arr != nil {
		return v.arr.(*array.Int64).Int64Values(), -1
	}
	return []int64{v.sc.(*scalar.Int64).Value}, 0
}

func float64Operand(v value) ([]float64, int) {
	if v.arr != nil {
		return v.arr.(*array.Float64).Float64Values(), -1
	}
	return []float64{v.sc.(*scalar.Float64).Value}, 0
}

func (n *divModNode) eval(ev *evaluator) (value, error) {
	l, err := n.l.eval(ev)
	if err != nil {
		return value{}, err
	}
	defer l.release()
	r, err := n.r.eval(ev)
	if err != nil {
		return value{}, err
	}
	defer r.release()
	if l.nullScalar() || r.nullScalar() {
		arr, err := broadcast(ev.mem, scalar.MakeNullScalar(n.dt), ev.n)
		return value{arr: arr}, err
	}
	rows := ev.n
	valid := newValidity(ev.mem, rows, l.arr, r.arr)
	vb := valid.Bytes()
	out := newBuffer(ev.mem, rows*8)
	if n.dt.ID() == arrow.INT64 {
		lv, lm := int64Operand(l)
		rv, rm := int64Operand(r)
		res := arrow.Int64Traits.CastFromBytes(out.Bytes())[:rows]
		if n.op == '/' {
			for i := range res {
				a, b := lv[i&lm], rv[i&rm]
				if b == 0 {
					res[i] = 0
					bitutil.ClearBit(vb, i)
					continue
				}
				if b == -1 && a == math.MinInt64 && bitutil.BitIsSet(vb, i) {
					valid.Release()
					out.Release()
					return value{}, fmt.Errorf("expr: %s: %w", n.src, errOverflow)
				}
				res[i] = a / b
			}
		} else {
			for i := range res {
				b := rv[i&rm]
				if b == 0 {
					res[i] = 0
					bitutil.ClearBit(vb, i)
					continue
				}
				res[i] = lv[i&lm] % b
			}
		}
	} else {
		lv, lm := float64Operand(l)
		rv, rm := float64Operand(r)
		res := arrow.Float64Traits.CastFromBytes(out.Bytes())[:rows]
		if n.op == '/' {
			for i := range res {
				b := rv[i&rm]
				if b == 0 {
					res[i] = 0
					bitutil.ClearBit(vb, i)
					continue
				}
				res[i] = lv[i&lm] / b
			}
		} else {
			for i := range res {
				b := rv[i&rm]
				if b == 0 {
					res[i] = 0
					bitutil.ClearBit(vb, i)
					continue
				}
				res[i] = math.Mod(lv[i&lm], b)
			}
		}
	}
	return value{arr: finish(n.dt, rows, valid, out)}, nil
}

// chooseNode is CASE or coalesce: for each row it picks one of vals.
//
// CASE: conds has one boolean per WHEN (or, with operand, a value compared to
// the operand) and vals one result per WHEN plus the ELSE result last; a row
// takes the result of the first WHEN that is true, else the ELSE.
// coalesce: conds is nil; a row takes the first of vals that is not null.
type chooseNode struct {
	operand node
	conds   []node
	vals    []node
	dt      arrow.DataType
}

func (n *chooseNode) dtype() arrow.DataType { return n.dt }

// source is one candidate of a chooseNode, seen through its raw buffers.
type source struct {
	isConst bool
	null    bool   // constant NULL
	valid   []byte // nil: no nulls
	off     int
	u64     []uint64 // 8-byte values: int64, float64, timestamp
	c64     uint64
	u32     []uint32 // 4-byte values: date32
	c32     uint32
	bits    []byte // bool values
	cbool   bool
	offs    []int32 // string offsets (already shifted by the array offset)
	data    []byte
	cstr    []byte
}

func makeSource(v value) (source, error) {
	if v.arr == nil {
		s := source{isConst: true, null: !v.sc.IsValid()}
		if s.null {
			return s, nil
		}
		switch sc := v.sc.(type) {
		case *scalar.Int64:
			s.c64 = uint64(sc.Value)
		case *scalar.Float64:
			s.c64 = math.Float64bits(sc.Value)
		case *scalar.Timestamp:
			s.c64 = uint64(sc.Value)
		case *scalar.Date32:
			s.c32 = uint32(sc.Value)
		case *scalar.Uint64:
			s.c64 = sc.Value
		case *scalar.Boolean:
			s.cbool = sc.Value
		case *scalar.String:
			s.cstr = sc.Data()
		default:
			return s, fmt.Errorf("expr: CASE/coalesce on %s constants is not supported", typeName(v.sc.DataType()))
		}
		return s, nil
	}
	d := v.arr.Data()
	s := source{off: d.Offset()}
	if v.arr.NullN() > 0 {
		s.valid = v.arr.NullBitmapBytes()
	}
	switch a := v.arr.(type) {
	case *array.Boolean:
		s.bits = d.Buffers()[1].Bytes()
	case *array.String:
		s.offs = a.ValueOffsets()
		if b := d.Buffers()[2]; b != nil {
			s.data = b.Bytes()
		}
	case *array.Date32:
		s.u32 = arrow.Uint32Traits.CastFromBytes(d.Buffers()[1].Bytes())
	default:
		if id := d.DataType().ID(); id != arrow.INT64 && id != arrow.FLOAT64 && id != arrow.TIMESTAMP && id != arrow.UINT64 {
			return s, fmt.Errorf("expr: CASE/coalesce on %s is not supported", typeName(d.DataType()))
		}
		s.u64 = arrow.Uint64Traits.CastFromBytes(d.Buffers()[1].Bytes())
	}
	return s, nil
}

func (s *source) isValid(j int) bool { return s.valid == nil || bitutil.BitIsSet(s.valid, j) }

func (n *chooseNode) eval(ev *evaluator) (value, error) {
	vals := make([]value, 0, len(n.vals))
	defer func() {
		for _, v := range vals {
			v.release()
		}
	}()
	for _, vn := range n.vals {
		v, err := vn.eval(ev)
		if err != nil {
			return value{}, err
		}
		vals = append(vals, v)
	}
	rows := ev.n
	selBuf := newBuffer(ev.mem, rows*4)
	defer selBuf.Release()
	sel := arrow.Int32Traits.CastFromBytes(selBuf.Bytes())[:rows]
	srcs := make([]source, len(vals), len(vals)+1)
	for i, v := range vals {
		s, err := makeSource(v)
		if err != nil {
			return value{}, err
		}
		srcs[i] = s
	}
	if n.conds == nil {
		// coalesce: the last source, past the arguments, is NULL.
		srcs = append(srcs, source{isConst: true, null: true})
		fill(sel, int32(len(vals)))
		for k := len(vals) - 1; k >= 0; k-- {
			markValid(sel, int32(k), &srcs[k], rows)
		}
	} else if err := n.selectCase(ev, sel); err != nil {
		return value{}, err
	}
	switch n.dt.ID() {
	case arrow.INT64, arrow.FLOAT64, arrow.TIMESTAMP, arrow.UINT64:
		return value{arr: gather64(ev.mem, n.dt, sel, srcs)}, nil
	case arrow.DATE32:
		return value{arr: gather32(ev.mem, n.dt, sel, srcs)}, nil
	case arrow.BOOL:
		return value{arr: gatherBool(ev.mem, sel, srcs)}, nil
	case arrow.STRING:
		arr, err := gatherString(ev.mem, sel, srcs)
		return value{arr: arr}, err
	}
	return value{}, fmt.Errorf("expr: CASE/coalesce on %s is not supported", typeName(n.dt))
}

// selectCase sets sel[i] to the index of the first WHEN true at row i, or to
// len(conds) (the ELSE).
func (n *chooseNode) selectCase(ev *evaluator, sel []int32) error {
	var op value
	if n.operand != nil {
		var err error
		if op, err = n.operand.eval(ev); err != nil {
			return err
		}
		defer op.release()
	}
	fill(sel, int32(len(n.conds)))
	for k := len(n.conds) - 1; k >= 0; k-- {
		c, err := n.conds[k].eval(ev)
		if err != nil {
			return err
		}
		if n.operand != nil {
			eq, err := ev.call("CASE", "equal", nil, op, c)
			c.release()
			if err != nil {
				return err
			}
			c = eq
		}
		markTrue(sel, int32(k), c, len(sel))
		c.release()
	}
	return nil
}

func fill(sel []int32, k int32) {
	for i := range sel {
		sel[i] = k
	}
}

// markTrue sets sel[i] = k where the boolean v is true (and not null),
// skipping eight rows at a time where none is.
func markTrue(sel []int32, k int32, v value, rows int) {
	if v.arr == nil {
		if b, ok := v.sc.(*scalar.Boolean); ok && b.Valid && b.Value {
			fill(sel, k)
		}
		return
	}
	d := v.arr.Data()
	bits, off := d.Buffers()[1].Bytes(), d.Offset()
	var valid []byte
	if v.arr.NullN() > 0 {
		valid = v.arr.NullBitmapBytes()
	}
	if off%8 == 0 {
		bits = bits[off/8:]
		if valid != nil {
			valid = valid[off/8:]
		}
		for i := 0; i < rows; i += 8 {
			w := bits[i>>3]
			if valid != nil {
				w &= valid[i>>3]
			}
			for ; w != 0; w &= w - 1 {
				if r := i + mathbits.TrailingZeros8(w); r < rows {
					sel[r] = k
				}
			}
		}
		return
	}
	for i := 0; i < rows; i++ {
		j := off + i
		if bits[j>>3]&(byte(1)<<(j&7)) != 0 && (valid == nil || valid[j>>3]&(byte(1)<<(j&7)) != 0) {
			sel[i] = k
		}
	}
}

// markValid sets sel[i] = k where source s is not null.
func markValid(sel []int32, k int32, s *source, rows int) {
	switch {
	case s.isConst:
		if !s.null {
			fill(sel, k)
		}
	case s.valid == nil:
		fill(sel, k)
	default:
		for i := 0; i < rows; i++ {
			j := s.off + i
			if s.valid[j>>3]&(byte(1)<<(j&7)) != 0 {
				sel[i] = k
			}
		}
	}
}

func gather64(mem memory.Allocator, dt arrow.DataType, sel []int32, srcs []source) arrow.Array {
	rows := len(sel)
	valid := newValidity(mem, rows)
	vb := valid.Bytes()
	out := newBuffer(mem, rows*8)
	res := arrow.Uint64Traits.CastFromBytes(out.Bytes())[:rows]
	for i, k := range sel {
		s := &srcs[k]
		switch {
		case s.null:
			res[i] = 0
			bitutil.ClearBit(vb, i)
		case s.isConst:
			res[i] = s.c64
		default:
			j := s.off + i
			res[i] = s.u64[j]
			if !s.isValid(j) {
				bitutil.ClearBit(vb, i)
			}
		}
	}
	return finish(dt, rows, valid, out)
}

func gather32(mem memory.Allocator, dt arrow.DataType, sel []int32, srcs []source) arrow.Array {
	rows := len(sel)
	valid := newValidity(mem, rows)
	vb := valid.Bytes()
	out := newBuffer(mem, rows*4)
	res := arrow.Uint32Traits.CastFromBytes(out.Bytes())[:rows]
	for i, k := range sel {
		s := &srcs[k]
		switch {
		case s.null:
			res[i] = 0
			bitutil.ClearBit(vb, i)
		case s.isConst:
			res[i] = s.c32
		default:
			j := s.off + i
			res[i] = s.u32[j]
			if !s.isValid(j) {
				bitutil.ClearBit(vb, i)
			}
		}
	}
	return finish(dt, rows, valid, out)
}

func gatherBool(mem memory.Allocator, sel []int32, srcs []source) arrow.Array {
	rows := len(sel)
	valid := newValidity(mem, rows)
	vb := valid.Bytes()
	out := newBuffer(mem, len(vb))
	ob := out.Bytes()
	for i := range ob {
		ob[i] = 0
	}
	for i, k := range sel {
		s := &srcs[k]
		switch {
		case s.null:
			bitutil.ClearBit(vb, i)
		case s.isConst:
			if s.cbool {
				bitutil.SetBit(ob, i)
			}
		default:
			j := s.off + i
			if bitutil.BitIsSet(s.bits, j) {
				bitutil.SetBit(ob, i)
			}
			if !s.isValid(j) {
				bitutil.ClearBit(vb, i)
			}
		}
	}
	return finish(tBool, rows, valid, out)
}

func gatherString(mem memory.Allocator, sel []int32, srcs []source) (arrow.Array, error) {
	rows := len(sel)
	total := 0
	for i, k := range sel {
		s := &srcs[k]
		switch {
		case s.null:
		case s.isConst:
			total += len(s.cstr)
		default:
			total += int(s.offs[i+1] - s.offs[i])
		}
	}
	if total > math.MaxInt32 {
		return nil, fmt.Errorf("expr: CASE/coalesce result of %d bytes is too large for a string array", total)
	}
	valid := newValidity(mem, rows)
	vb := valid.Bytes()
	offBuf := newBuffer(mem, (rows+1)*4)
	offs := arrow.Int32Traits.CastFromBytes(offBuf.Bytes())[:rows+1]
	dataBuf := newBuffer(mem, total)
	data := dataBuf.Bytes()
	pos := 0
	for i, k := range sel {
		offs[i] = int32(pos)
		s := &srcs[k]
		switch {
		case s.null:
			bitutil.ClearBit(vb, i)
		case s.isConst:
			pos += copy(data[pos:], s.cstr)
		default:
			if !s.isValid(s.off + i) {
				bitutil.ClearBit(vb, i)
			}
			pos += copy(data[pos:], s.data[s.offs[i]:s.offs[i+1]])
		}
	}
	offs[rows] = int32(pos)
	return finish(tString, rows, valid, offBuf, dataBuf), nil
}

// broadcast returns an array of n copies of sc. It writes every byte it
// hands out (arrow-go's MakeArrayFromScalar and MakeArrayOfNull count on
// the allocator zeroing memory, which an arena need not do).
func broadcast(mem memory.Allocator, sc scalar.Scalar, n int) (arrow.Array, error) {
	dt := sc.DataType()
	if dt.ID() == arrow.NULL {
		return array.NewNull(n), nil
	}
	var valid *memory.Buffer
	if !sc.IsValid() {
		valid = newBuffer(mem, int(bitutil.BytesForBits(int64(n))))
		fillBits(valid.Bytes(), false)
	}
	switch v := sc.(type) {
	case *scalar.String:
		var s []byte
		if sc.IsValid() {
			s = v.Data()
		}
		if len(s)*n > math.MaxInt32 {
			return nil, fmt.Errorf("expr: %d copies of a %d-byte string are too large for a string array", n, len(s))
		}
		offBuf := newBuffer(mem, (n+1)*4)
		offs := arrow.Int32Traits.CastFromBytes(offBuf.Bytes())[:n+1]
		data := newBuffer(mem, len(s)*n)
		for i := range offs {
			offs[i] = int32(i * len(s))
		}
		for i := 0; i < n; i++ {
			copy(data.Bytes()[i*len(s):], s)
		}
		return finishNulls(dt, n, valid, offBuf, data), nil
	case *scalar.Boolean:
		out := newBuffer(mem, int(bitutil.BytesForBits(int64(n))))
		fillBits(out.Bytes(), v.Valid && v.Value)
		return finishNulls(dt, n, valid, out), nil
	}
	var bits uint64
	width := 8
	switch v := sc.(type) {
	case *scalar.Int64:
		bits = uint64(v.Value)
	case *scalar.Float64:
		bits = math.Float64bits(v.Value)
	case *scalar.Timestamp:
		bits = uint64(v.Value)
	case *scalar.Int32:
		bits, width = uint64(uint32(v.Value)), 4
	case *scalar.Date32:
		bits, width = uint64(uint32(v.Value)), 4
	default:
		if valid != nil {
			valid.Release()
		}
		return scalar.MakeArrayFromScalar(sc, n, mem)
	}
	if !sc.IsValid() {
		bits = 0
	}
	out := newBuffer(mem, n*width)
	if width == 8 {
		vals := arrow.Uint64Traits.CastFromBytes(out.Bytes())[:n]
		for i := range vals {
			vals[i] = bits
		}
	} else {
		vals := arrow.Uint32Traits.CastFromBytes(out.Bytes())[:n]
		for i := range vals {
			vals[i] = uint32(bits)
		}
	}
	return finishNulls(dt, n, valid, out), nil
}

// finishNulls is finish for a validity bitmap that is either nil or all
// clear (every row null).
func finishNulls(dt arrow.DataType, n int, valid *memory.Buffer, bufs ...*memory.Buffer) arrow.Array {
	if valid == nil {
		return finish(dt, n, nil, bufs...)
	}
	all := append([]*memory.Buffer{valid}, bufs...)
	data := array.NewData(dt, n, all, nil, n, 0)
	for _, b := range all {
		b.Release()
	}
	defer data.Release()
	return array.MakeFromData(data)
}
