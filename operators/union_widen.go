package operators

import (
	"fmt"
	"math"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// The widening rules of a union by name. Two types widen into one when
// every value of both is exact in it, with two documented exceptions:
// integers go to float64 (exact up to 2^53), as SQL engines do.
//
//	int8 → int16 → int32 → int64           the wider signed type
//	uintN with intM                        int(max(M, 2N)); uint64 with a signed type does not widen
//	uintN with uintM                       the wider
//	any integer with float32 or float64    float64
//	float32 with float64                   float64
//	timestamp[a, tz] with timestamp[b, tz] the finer unit (same time zone)
//	string with large_string               large_string
//	null with T                            T
//
// Anything else does not widen; with widen_to_string the column becomes
// text (textType).

// intTypes are the integer types, narrowest first within each signedness.
var intTypes = [...]struct {
	dt     arrow.DataType
	bits   int
	signed bool
}{
	{arrow.PrimitiveTypes.Int8, 8, true},
	{arrow.PrimitiveTypes.Int16, 16, true},
	{arrow.PrimitiveTypes.Int32, 32, true},
	{arrow.PrimitiveTypes.Int64, 64, true},
	{arrow.PrimitiveTypes.Uint8, 8, false},
	{arrow.PrimitiveTypes.Uint16, 16, false},
	{arrow.PrimitiveTypes.Uint32, 32, false},
	{arrow.PrimitiveTypes.Uint64, 64, false},
}

// intBits returns the width of an integer type and whether it is signed;
// bits is 0 for other types.
func intBits(dt arrow.DataType) (bits int, signed bool) {
	for _, t := range intTypes {
		if t.dt.ID() == dt.ID() {
			return t.bits, t.signed
		}
	}
	return 0, false
}

// intType returns the narrowest integer type of that signedness with at
// least bits bits (the widest when none has).
func intType(bits int, signed bool) arrow.DataType {
	var dt arrow.DataType
	for _, t := range intTypes {
		if t.signed == signed {
			dt = t.dt
			if t.bits >= bits {
				break
			}
		}
	}
	return dt
}

func isInt(dt arrow.DataType) bool {
	bits, _ := intBits(dt)
	return bits > 0
}

func isFloat(dt arrow.DataType) bool { return dt.ID() == arrow.FLOAT32 || dt.ID() == arrow.FLOAT64 }

func isString(dt arrow.DataType) bool {
	return dt.ID() == arrow.STRING || dt.ID() == arrow.LARGE_STRING
}

// widenType returns the type a and b widen into, and false when they do
// not (see the rules above).
func widenType(a, b arrow.DataType) (arrow.DataType, bool) {
	if arrow.TypeEqual(a, b) {
		return a, true
	}
	if a.ID() == arrow.NULL {
		return b, true
	}
	if b.ID() == arrow.NULL {
		return a, true
	}
	ab, as := intBits(a)
	bb, bs := intBits(b)
	switch {
	case ab > 0 && bb > 0:
		switch {
		case as == bs:
			return intType(max(ab, bb), as), true
		case !as && ab == 64, !bs && bb == 64:
			return nil, false // no signed type holds every uint64
		case as:
			return intType(max(ab, 2*bb), true), true
		default:
			return intType(max(bb, 2*ab), true), true
		}
	case (ab > 0 || isFloat(a)) && (bb > 0 || isFloat(b)):
		return arrow.PrimitiveTypes.Float64, true
	case isString(a) && isString(b):
		return arrow.BinaryTypes.LargeString, true
	}
	ta, aok := a.(*arrow.TimestampType)
	tb, bok := b.(*arrow.TimestampType)
	if aok && bok && ta.TimeZone == tb.TimeZone {
		return &arrow.TimestampType{Unit: max(ta.Unit, tb.Unit), TimeZone: ta.TimeZone}, true
	}
	return nil, false
}

// textType is the type of a column widen_to_string turns into text:
// large_string if either side is, string otherwise.
func textType(a, b arrow.DataType) arrow.DataType {
	if a.ID() == arrow.LARGE_STRING || b.ID() == arrow.LARGE_STRING {
		return arrow.BinaryTypes.LargeString
	}
	return arrow.BinaryTypes.String
}

// newBytes is how many bytes of out's buffers are not buffers of in: what
// a cast made (validity and string data it shares are passed by
// reference, and the engine counts them so).
func newBytes(out, in arrow.ArrayData) int64 {
	var n int64
	for _, b := range out.Buffers() {
		if b == nil || b.Len() == 0 {
			continue
		}
		shared := false
		for _, ib := range in.Buffers() {
			if ib == b {
				shared = true
				break
			}
		}
		if !shared {
			n += int64(b.Len())
		}
	}
	return n
}

// castColumn casts src to dt, one of the types widenType or textType
// returned for it. The result is new memory from mem, except the validity
// bitmap and string bytes, which are shared when they can be.
func castColumn(mem memory.Allocator, src arrow.Array, dt arrow.DataType) (arrow.Array, error) {
	n := src.Len()
	switch {
	case src.DataType().ID() == arrow.NULL:
		return array.MakeArrayOfNull(mem, dt, n), nil
	case isInt(dt) || dt.ID() == arrow.FLOAT64:
		if !isInt(src.DataType()) && !isFloat(src.DataType()) {
			break
		}
		return castNumber(mem, src, dt), nil
	case dt.ID() == arrow.TIMESTAMP && src.DataType().ID() == arrow.TIMESTAMP:
		return castTimestamp(mem, src.(*array.Timestamp), dt.(*arrow.TimestampType))
	case dt.ID() == arrow.LARGE_STRING && src.DataType().ID() == arrow.STRING:
		return stringToLarge(mem, src.(*array.String)), nil
	}
	if isString(dt) {
		return formatText(mem, src, dt)
	}
	return nil, fmt.Errorf("cannot cast %s to %s", src.DataType(), dt)
}

// validityOf returns src's validity bitmap for an output array starting
// at offset 0: src's own buffer (retained) when src starts at 0, a copy of
// its bits otherwise, nil when src has no nulls.
func validityOf(mem memory.Allocator, src arrow.Array) *memory.Buffer {
	if src.NullN() == 0 {
		return nil
	}
	d := src.Data()
	buf := d.Buffers()[0]
	if buf == nil {
		return nil
	}
	if d.Offset() == 0 {
		buf.Retain()
		return buf
	}
	out := memory.NewResizableBuffer(mem)
	out.Resize(int(bitutil.BytesForBits(int64(d.Len()))))
	bitutil.CopyBitmap(buf.Bytes(), d.Offset(), d.Len(), out.Bytes(), 0)
	return out
}

// castNumber widens integers and floats: each value is converted exactly
// (or to the nearest float64 for integers above 2^53), in a typed loop.
func castNumber(mem memory.Allocator, src arrow.Array, dt arrow.DataType) arrow.Array {
	n := src.Len()
	width := dt.(arrow.FixedWidthDataType).BitWidth() / 8
	vals := memory.NewResizableBuffer(mem)
	vals.Resize(n * width)
	b := vals.Bytes()
	switch dt.ID() {
	case arrow.FLOAT64:
		convertFrom(src, arrow.Float64Traits.CastFromBytes(b))
	case arrow.INT16:
		convertFrom(src, arrow.Int16Traits.CastFromBytes(b))
	case arrow.INT32:
		convertFrom(src, arrow.Int32Traits.CastFromBytes(b))
	case arrow.INT64:
		convertFrom(src, arrow.Int64Traits.CastFromBytes(b))
	case arrow.UINT16:
		convertFrom(src, arrow.Uint16Traits.CastFromBytes(b))
	case arrow.UINT32:
		convertFrom(src, arrow.Uint32Traits.CastFromBytes(b))
	case arrow.UINT64:
		convertFrom(src, arrow.Uint64Traits.CastFromBytes(b))
	default: // int8 and uint8 are never a widened type
		panic(fmt.Sprintf("operators: castNumber to %s", dt))
	}
	return newArray(mem, dt, src, vals)
}

type number interface {
	~int8 | ~int16 | ~int32 | ~int64 | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~float32 | ~float64
}

// convertFrom converts the values of src, a numeric array, into dst (its
// length). Null slots convert whatever they hold; the validity says they
// are null.
func convertFrom[D number](src arrow.Array, dst []D) {
	switch a := src.(type) {
	case *array.Int8:
		convert(a.Int8Values(), dst)
	case *array.Int16:
		convert(a.Int16Values(), dst)
	case *array.Int32:
		convert(a.Int32Values(), dst)
	case *array.Int64:
		convert(a.Int64Values(), dst)
	case *array.Uint8:
		convert(a.Uint8Values(), dst)
	case *array.Uint16:
		convert(a.Uint16Values(), dst)
	case *array.Uint32:
		convert(a.Uint32Values(), dst)
	case *array.Uint64:
		convert(a.Uint64Values(), dst)
	case *array.Float32:
		convert(a.Float32Values(), dst)
	case *array.Float64:
		convert(a.Float64Values(), dst)
	default:
		panic(fmt.Sprintf("operators: convertFrom %s", src.DataType()))
	}
}

func convert[S, D number](src []S, dst []D) {
	for i, v := range src {
		dst[i] = D(v)
	}
}

// castTimestamp converts to a finer unit; a value that does not fit the
// finer unit (beyond the years 1677–2262 in nanoseconds) is an error.
func castTimestamp(mem memory.Allocator, src *array.Timestamp, dt *arrow.TimestampType) (arrow.Array, error) {
	from := src.DataType().(*arrow.TimestampType).Unit
	mul := int64(1)
	for u := from; u < dt.Unit; u++ {
		mul *= 1000
	}
	n := src.Len()
	vals := memory.NewResizableBuffer(mem)
	vals.Resize(n * 8)
	out := arrow.Int64Traits.CastFromBytes(vals.Bytes())
	for i := range n {
		v := int64(src.Value(i))
		if src.IsValid(i) && (v > math.MaxInt64/mul || v < math.MinInt64/mul) {
			vals.Release()
			return nil, fmt.Errorf("row %d: timestamp %d %s does not fit in %s", i, v, from, dt.Unit)
		}
		out[i] = v * mul
	}
	return newArray(mem, dt, src, vals), nil
}

// stringToLarge widens the offsets to 64 bits; the string bytes and the
// validity are shared.
func stringToLarge(mem memory.Allocator, src *array.String) arrow.Array {
	n := src.Len()
	offs := memory.NewResizableBuffer(mem)
	offs.Resize((n + 1) * 8)
	out := arrow.Int64Traits.CastFromBytes(offs.Bytes())
	in := src.ValueOffsets() // n+1 offsets, from the array's own offset
	for i, o := range in {
		out[i] = int64(o)
	}
	return newArray(mem, arrow.BinaryTypes.LargeString, src, offs, src.Data().Buffers()[2])
}

// newArray makes an array of dt with src's length and nulls: src's
// validity (see validityOf), then vals, which it takes over, then any
// buffers of src it shares (string bytes).
func newArray(mem memory.Allocator, dt arrow.DataType, src arrow.Array, vals *memory.Buffer, shared ...*memory.Buffer) arrow.Array {
	valid := validityOf(mem, src)
	bufs := append([]*memory.Buffer{valid, vals}, shared...)
	d := array.NewData(dt, src.Len(), bufs, nil, src.NullN(), 0)
	defer d.Release()
	if valid != nil {
		valid.Release()
	}
	vals.Release()
	return array.MakeFromData(d)
}

// formatText is widen_to_string's cast: each valid value in its text form
// (integers in decimal, floats in the shortest form that reads back the
// same, true/false, timestamps as 2006-01-02 15:04:05[.fraction] with a Z
// when the type has a time zone, other types as Arrow prints them).
func formatText(mem memory.Allocator, src arrow.Array, dt arrow.DataType) (arrow.Array, error) {
	format := textFormatter(src)
	n := src.Len()
	b := array.NewBuilder(mem, dt) // a StringBuilder or a LargeStringBuilder
	defer b.Release()
	var bin *array.BinaryBuilder
	limit := math.MaxInt64
	switch sb := b.(type) {
	case *array.StringBuilder:
		bin, limit = sb.BinaryBuilder, math.MaxInt32
	case *array.LargeStringBuilder:
		bin = sb.BinaryBuilder
	}
	bin.Reserve(n)
	total := 0
	var scratch []byte
	for i := range n {
		if src.IsNull(i) {
			bin.AppendNull()
			continue
		}
		scratch = format(scratch[:0], i)
		if total += len(scratch); total > limit {
			return nil, fmt.Errorf("%d rows of text exceed a string array's 2 GiB", n)
		}
		bin.Append(scratch)
	}
	return b.NewArray(), nil
}

// textFormatter returns a function that appends row i of src as text.
func textFormatter(src arrow.Array) func(dst []byte, i int) []byte {
	switch a := src.(type) {
	case *array.Int8, *array.Int16, *array.Int32, *array.Int64:
		v := make([]int64, a.Len())
		convertFrom(a, v)
		return func(dst []byte, i int) []byte { return strconv.AppendInt(dst, v[i], 10) }
	case *array.Uint8, *array.Uint16, *array.Uint32, *array.Uint64:
		v := make([]uint64, a.Len())
		convertFrom(a, v)
		return func(dst []byte, i int) []byte { return strconv.AppendUint(dst, v[i], 10) }
	case *array.Float32:
		return func(dst []byte, i int) []byte { return strconv.AppendFloat(dst, float64(a.Value(i)), 'g', -1, 32) }
	case *array.Float64:
		return func(dst []byte, i int) []byte { return strconv.AppendFloat(dst, a.Value(i), 'g', -1, 64) }
	case *array.Boolean:
		return func(dst []byte, i int) []byte { return strconv.AppendBool(dst, a.Value(i)) }
	case *array.String:
		return func(dst []byte, i int) []byte { return append(dst, a.Value(i)...) }
	case *array.LargeString:
		return func(dst []byte, i int) []byte { return append(dst, a.Value(i)...) }
	case *array.Timestamp:
		dt := a.DataType().(*arrow.TimestampType)
		unit, zone := dt.Unit, dt.TimeZone != ""
		return func(dst []byte, i int) []byte {
			dst = a.Value(i).ToTime(unit).AppendFormat(dst, "2006-01-02 15:04:05.999999999")
			if zone {
				dst = append(dst, 'Z')
			}
			return dst
		}
	}
	return func(dst []byte, i int) []byte { return append(dst, src.ValueStr(i)...) }
}
