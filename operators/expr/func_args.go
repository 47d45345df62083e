package expr

import (
	"fmt"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/arrow/scalar"
)

// The operands and results of the string and number functions
// (func_string.go, func_regexp.go, func_math.go): a function's kernel sees
// each argument through its raw buffers, an array or a constant alike, and
// writes its result into buffers sized up front, so the loop over the rows
// allocates nothing.

// strView is a string operand: the rows of an array, or one constant for
// every row (not materialised).
type strView struct {
	offs  []int32 // offs[i]..offs[i+1] is row i, from the array's offset
	data  []byte
	valid []byte // validity bitmap, nil when no row is null
	voff  int    // the array offset in valid
	k     []byte // the constant
	isK   bool
	nullK bool // a NULL constant: every row is null
}

// strViewOf returns v's string view; v must be a utf8 array or constant.
func strViewOf(v value) strView {
	if v.arr == nil {
		if !v.sc.IsValid() {
			return strView{isK: true, nullK: true}
		}
		return strView{isK: true, k: v.sc.(*scalar.String).Data()}
	}
	s := v.arr.(*array.String)
	offs, data := stringParts(s)
	sv := strView{offs: offs, data: data}
	if s.NullN() > 0 {
		sv.valid, sv.voff = s.NullBitmapBytes(), s.Data().Offset()
	}
	return sv
}

// at returns row i.
func (s *strView) at(i int) []byte {
	if s.isK {
		return s.k
	}
	return s.data[s.offs[i]:s.offs[i+1]]
}

// null reports whether row i is null.
func (s *strView) null(i int) bool {
	if s.isK {
		return s.nullK
	}
	return s.valid != nil && !bitutil.BitIsSet(s.valid, s.voff+i)
}

// size returns the bytes of all rows (one copy of a constant).
func (s *strView) size() int {
	if s.isK {
		return len(s.k)
	}
	return int(s.offs[len(s.offs)-1] - s.offs[0])
}

// int64View is an int64 operand: values indexed by i&mask (mask 0 for a
// constant) and the validity of an array.
type int64View struct {
	vals  []int64
	mask  int
	valid []byte
	voff  int
	nullK bool
}

func int64ViewOf(v value) int64View {
	if v.arr == nil && !v.sc.IsValid() {
		return int64View{vals: []int64{0}, nullK: true}
	}
	vals, mask := operand[int64](v)
	iv := int64View{vals: vals, mask: mask}
	if v.arr != nil && v.arr.NullN() > 0 {
		iv.valid, iv.voff = v.arr.NullBitmapBytes(), v.arr.Data().Offset()
	}
	return iv
}

func (v *int64View) at(i int) int64 { return v.vals[i&v.mask] }

func (v *int64View) null(i int) bool {
	return v.nullK || (v.valid != nil && !bitutil.BitIsSet(v.valid, v.voff+i))
}

// float64View is a float64 operand, as int64View.
type float64View struct {
	vals  []float64
	mask  int
	valid []byte
	voff  int
}

func float64ViewOf(v value) float64View {
	vals, mask := operand[float64](v)
	fv := float64View{vals: vals, mask: mask}
	if v.arr != nil && v.arr.NullN() > 0 {
		fv.valid, fv.voff = v.arr.NullBitmapBytes(), v.arr.Data().Offset()
	}
	return fv
}

func (v *float64View) at(i int) float64 { return v.vals[i&v.mask] }

func (v *float64View) null(i int) bool {
	return v.valid != nil && !bitutil.BitIsSet(v.valid, v.voff+i)
}

// validityN returns the validity of a result that is null where any of vals
// is: nil when none has a null, the one array's own bitmap (shared) when
// only one array at offset 0 has nulls, all clear when a constant is NULL,
// else a new AND of them.
func (ev *evaluator) validityN(vals ...value) *memory.Buffer {
	var arrs []arrow.Array
	for _, v := range vals {
		if v.arr == nil {
			if !v.sc.IsValid() {
				buf := newBuffer(ev.mem, int(bitutil.BytesForBits(int64(ev.n))))
				fillBits(buf.Bytes(), false)
				return buf
			}
			continue
		}
		if v.arr.NullN() > 0 {
			arrs = append(arrs, v.arr)
		}
	}
	switch {
	case len(arrs) == 0:
		return nil
	case len(arrs) == 1 && arrs[0].Data().Offset() == 0:
		b := arrs[0].Data().Buffers()[0]
		b.Retain()
		return b
	}
	return newValidity(ev.mem, ev.n, arrs...)
}

// strWriter writes a string array row by row into an offsets buffer of the
// exact size and a data buffer sized up front by the caller's estimate,
// grown by doubling if a row needs more.
type strWriter struct {
	offBuf  *memory.Buffer
	dataBuf *memory.Buffer
	offs    []int32
	data    []byte
	pos     int
	err     error
}

func newStrWriter(mem memory.Allocator, rows, size int) *strWriter {
	w := &strWriter{offBuf: newBuffer(mem, (rows+1)*4), dataBuf: newBuffer(mem, max(size, 0))}
	w.offs = arrow.Int32Traits.CastFromBytes(w.offBuf.Bytes())[:rows+1]
	w.data = w.dataBuf.Bytes()
	return w
}

// row starts row i; rows must be started in order, every one of them.
func (w *strWriter) row(i int) { w.offs[i] = int32(w.pos) }

// grow makes room for n more bytes.
func (w *strWriter) grow(n int) bool {
	if w.pos+n <= len(w.data) {
		return true
	}
	need := w.pos + n
	if need > math.MaxInt32 {
		if w.err == nil {
			w.err = fmt.Errorf("expr: a string result of more than %d bytes does not fit a string array", math.MaxInt32)
		}
		return false
	}
	size := min(max(need, 2*len(w.data), 64), math.MaxInt32)
	w.dataBuf.Resize(size)
	w.data = w.dataBuf.Bytes()
	return true
}

// write appends b to the current row.
func (w *strWriter) write(b []byte) {
	if len(b) == 0 || !w.grow(len(b)) {
		return
	}
	w.pos += copy(w.data[w.pos:], b)
}

// finish ends the last row and builds the array with validity valid (nil:
// no nulls), taking it over; on error it releases everything.
func (w *strWriter) finish(rows int, valid *memory.Buffer) (arrow.Array, error) {
	if w.err != nil {
		w.release()
		if valid != nil {
			valid.Release()
		}
		return nil, w.err
	}
	w.offs[rows] = int32(w.pos)
	w.dataBuf.ResizeNoShrink(w.pos)
	return finish(tString, rows, valid, w.offBuf, w.dataBuf), nil
}

func (w *strWriter) release() {
	w.offBuf.Release()
	w.dataBuf.Release()
}

// newBoolBuffer returns the values bitmap of a boolean result of rows rows,
// all false (every byte written), and its bytes.
func newBoolBuffer(mem memory.Allocator, rows int) (*memory.Buffer, []byte) {
	buf := newBuffer(mem, int(bitutil.BytesForBits(int64(rows))))
	b := buf.Bytes()
	for i := range b {
		b[i] = 0
	}
	return buf, b
}

// evalArgs evaluates every node of args; on error it releases what it made.
func (ev *evaluator) evalArgs(args []node, out []value) ([]value, error) {
	for _, a := range args {
		v, err := a.eval(ev)
		if err != nil {
			releaseAll(out)
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func releaseAll(vals []value) {
	for _, v := range vals {
		v.release()
	}
}
