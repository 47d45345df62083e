package expr

import (
	"fmt"
	"math"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// toStringNode is CAST(x AS string) for numbers, booleans and timestamps.
// arrow-go's own numeric-to-string cast kernels leak their builder's
// buffers (v18.8.0: the array they build is never released), which a
// checked allocator or an arena cannot afford, so the language formats
// these itself, in two passes (lengths, then bytes) into exact buffers.
//
// Formats: integers in decimal; floats as strconv 'g' with the shortest
// representation that round-trips; true/false; timestamps as
// "2006-01-02 15:04:05[.fraction]" in UTC, with a trailing "Z" when the
// type has a time zone.
type toStringNode struct {
	x node
}

func (n *toStringNode) dtype() arrow.DataType { return tString }

// formatsToString reports whether toStringNode handles dt.
func formatsToString(dt arrow.DataType) bool {
	switch dt.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64,
		arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64,
		arrow.FLOAT32, arrow.FLOAT64, arrow.BOOL, arrow.TIMESTAMP:
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
		return func(dst []byte, i int) []byte { return strconv.AppendFloat(dst, float64(a.Value(i)), 'g', -1, 32) }, nil
	case *array.Float64:
		return func(dst []byte, i int) []byte { return strconv.AppendFloat(dst, a.Value(i), 'g', -1, 64) }, nil
	case *array.Boolean:
		return func(dst []byte, i int) []byte { return strconv.AppendBool(dst, a.Value(i)) }, nil
	case *array.Timestamp:
		dt := a.DataType().(*arrow.TimestampType)
		unit, zone := dt.Unit, dt.TimeZone != ""
		return func(dst []byte, i int) []byte {
			dst = a.Value(i).ToTime(unit).AppendFormat(dst, "2006-01-02 15:04:05.999999999")
			if zone {
				dst = append(dst, 'Z')
			}
			return dst
		}, nil
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
