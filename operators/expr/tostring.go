package expr

import (
	"fmt"
	"math"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// toStringNode is CAST(x AS string) for numbers, booleans, dates,
// timestamps and decimals. arrow-go's own numeric-to-string cast kernels
// leak their builder's buffers (v18.8.0: the array they build is never
// released), which a checked allocator or an arena cannot afford, so the
// language formats these itself, in two passes (lengths, then bytes) into
// exact buffers.
//
// Formats are DuckDB's: integers in decimal; floats with the fewest digits
// that round-trip, in fixed notation with at least one decimal (1.0) for
// decimal exponents -4 to 15 and as 1e+16 / 1e-05 outside; true/false;
// dates YYYY-MM-DD; timestamps YYYY-MM-DD HH:MM:SS[.fraction] with the
// fraction's trailing zeros dropped, and "+00" after a timestamp with a
// time zone (shown in UTC); years before 1 with " (BC)"; decimals with
// exactly their scale's digits.
type toStringNode struct {
	x node
}

func (n *toStringNode) dtype() arrow.DataType { return tString }

// formatsToString reports whether toStringNode handles dt.
func formatsToString(dt arrow.DataType) bool {
	switch dt.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64,
		arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64,
		arrow.FLOAT32, arrow.FLOAT64, arrow.BOOL, arrow.TIMESTAMP,
		arrow.DATE32, arrow.DATE64, arrow.DECIMAL128:
		return true
	}
	return false
}

func (n *toStringNode) eval(ev *evaluator) (value, error) {
	arr, err := ev.evalArray(n.x)
	if err != nil {
		return value{}, err
	}
	defer arr.Release()
	format, err := formatter(arr)
	if err != nil {
		return value{}, err
	}
	return formatStrings(ev.mem, arr, format)
}

// formatter returns a function that appends row i of arr to dst.
func formatter(arr arrow.Array) (func(dst []byte, i int) []byte, error) {
	switch a := arr.(type) {
	case *array.Int8:
		return func(dst []byte, i int) []byte { return strconv.AppendInt(dst, int64(a.Value(i)), 10) }, nil
	case *array.Int16:
		return func(dst []byte, i int) []byte { return strconv.AppendInt(dst, int64(a.Value(i)), 10) }, nil
	case *array.Int32:
		return func(dst []byte, i int) []byte { return strconv.AppendInt(dst, int64(a.Value(i)), 10) }, nil
	case *array.Int64:
		return func(dst []byte, i int) []byte { return strconv.AppendInt(dst, a.Value(i), 10) }, nil
	case *array.Uint8:
		return func(dst []byte, i int) []byte { return strconv.AppendUint(dst, uint64(a.Value(i)), 10) }, nil
	case *array.Uint16:
		return func(dst []byte, i int) []byte { return strconv.AppendUint(dst, uint64(a.Value(i)), 10) }, nil
	case *array.Uint32:
		return func(dst []byte, i int) []byte { return strconv.AppendUint(dst, uint64(a.Value(i)), 10) }, nil
	case *array.Uint64:
		return func(dst []byte, i int) []byte { return strconv.AppendUint(dst, a.Value(i), 10) }, nil
	case *array.Float32:
		return func(dst []byte, i int) []byte { return appendFloat(dst, float64(a.Value(i)), 32) }, nil
	case *array.Float64:
		return func(dst []byte, i int) []byte { return appendFloat(dst, a.Value(i), 64) }, nil
	case *array.Boolean:
		return func(dst []byte, i int) []byte { return strconv.AppendBool(dst, a.Value(i)) }, nil
	case *array.String:
		return func(dst []byte, i int) []byte { return append(dst, a.Value(i)...) }, nil
	case *array.Timestamp:
		dt := a.DataType().(*arrow.TimestampType)
		unit, zone := dt.Unit, dt.TimeZone != ""
		return func(dst []byte, i int) []byte { return appendTimestamp(dst, int64(a.Value(i)), unit, zone) }, nil
	case *array.Date32:
		return func(dst []byte, i int) []byte { return appendDate(dst, int64(a.Value(i))) }, nil
	case *array.Date64:
		return func(dst []byte, i int) []byte {
			return appendDate(dst, FloorDiv(int64(a.Value(i)), secsPerDay*1000))
		}, nil
	case *array.Decimal128:
		scale := a.DataType().(*arrow.Decimal128Type).Scale
		return func(dst []byte, i int) []byte { return append(dst, a.Value(i).ToString(scale)...) }, nil
	}
	return nil, fmt.Errorf("expr: cannot format %s as a string", typeName(arr.DataType()))
}

// formatStrings formats every valid row of arr. Null rows are empty and
// null. Per row it calls format through a function value: this is a cast,
// not a hot path, and strconv dominates the cost.
func formatStrings(mem memory.Allocator, arr arrow.Array, format func([]byte, int) []byte) (value, error) {
	rows := arr.Len()
	var scratch [64]byte
	total := 0
	for i := 0; i < rows; i++ {
		if arr.IsValid(i) {
			total += len(format(scratch[:0], i))
		}
	}
	if total > math.MaxInt32 {
		return value{}, fmt.Errorf("expr: formatting %d bytes is too large for a string array", total)
	}
	offBuf := newBuffer(mem, (rows+1)*4)
	offs := arrow.Int32Traits.CastFromBytes(offBuf.Bytes())[:rows+1]
	dataBuf := newBuffer(mem, total)
	data := dataBuf.Bytes()
	// Each row is formatted into scratch and copied: formatting straight
	// into data could write past its end (time's AppendFormat writes every
	// fraction digit before trimming the zeros), and an append past the
	// capacity would move the bytes off dataBuf.
	pos := 0
	for i := 0; i < rows; i++ {
		offs[i] = int32(pos)
		if arr.IsValid(i) {
			b := format(scratch[:0], i)
			if len(b) > total-pos {
				pos += len(b)
				break
			}
			pos += copy(data[pos:], b)
		}
	}
	if pos != total {
		offBuf.Release()
		dataBuf.Release()
		return value{}, fmt.Errorf("expr: formatting strings: sized %d bytes, wrote %d or more", total, pos)
	}
	offs[rows] = int32(pos)
	var valid *memory.Buffer
	if arr.NullN() > 0 {
		valid = newValidity(mem, rows, arr)
	}
	return value{arr: finish(tString, rows, valid, offBuf, dataBuf)}, nil
}

// appendFloat appends f as DuckDB prints a DOUBLE (bits 64) or FLOAT (32):
// the shortest digits that read back as f, fixed notation with a ".0" for
// whole numbers when the decimal exponent is in -4..15, otherwise
// d.ddde±XX; inf, -inf and nan.
func appendFloat(dst []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, "nan"...)
	case math.IsInf(f, 1):
		return append(dst, "inf"...)
	case math.IsInf(f, -1):
		return append(dst, "-inf"...)
	}
	var buf [32]byte
	e := strconv.AppendFloat(buf[:0], f, 'e', -1, bits) // -d.ddde±XX
	k := len(e) - 1
	for e[k] != 'e' {
		k--
	}
	exp := 0
	for _, c := range e[k+2:] {
		exp = exp*10 + int(c-'0')
	}
	if e[k+1] == '-' {
		exp = -exp
	}
	if exp < -4 || exp > 15 {
		dst = append(dst, e[:k+2]...) // mantissa, 'e' and the sign
		if d := e[k+2:]; len(d) < 2 {
			dst = append(dst, '0')
		}
		return append(dst, e[k+2:]...)
	}
	start := len(dst)
	dst = strconv.AppendFloat(dst, f, 'f', -1, bits)
	for _, c := range dst[start:] {
		if c == '.' {
			return dst
		}
	}
	return append(dst, ".0"...)
}
