package expr

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// castNode is CAST(x AS type) with DuckDB's rules, in this package's own
// loops over the raw buffers: numbers and booleans to numbers and booleans
// (out of range is an error, floats to integers round half away from
// zero), strings to numbers, booleans, dates, timestamps and decimals
// (DuckDB's accepted forms), dates and timestamps to each other.
// (To strings is toStringNode; decimals are decimal.go.)
//
// A value that does not convert fails the batch, naming the value and the
// expression; a NULL row never fails.
type castNode struct {
	x   node
	dt  arrow.DataType
	src string
}

func (n *castNode) dtype() arrow.DataType { return n.dt }

// castKind says which loop of castNode converts from to to; "" when none does.
func castKind(from, to arrow.DataType) string {
	fc, tc := castClass(from), castClass(to)
	switch {
	case fc == "num" && tc == "num":
		return "num"
	case fc == "string" && (tc == "num" || tc == "date" || tc == "timestamp"):
		return "parse"
	case (fc == "date" || fc == "timestamp") && (tc == "date" || tc == "timestamp"):
		return "time"
	case fc == "decimal" || tc == "decimal":
		if fc == "num" || fc == "decimal" || (fc == "string" && tc == "decimal") {
			if from.ID() != arrow.BOOL && to.ID() != arrow.BOOL {
				return "decimal"
			}
		}
	}
	return ""
}

func castClass(dt arrow.DataType) string {
	switch dt.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64,
		arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64,
		arrow.FLOAT32, arrow.FLOAT64, arrow.BOOL:
		return "num"
	case arrow.STRING:
		return "string"
	case arrow.DATE32, arrow.DATE64:
		return "date"
	case arrow.TIMESTAMP:
		return "timestamp"
	case arrow.DECIMAL128:
		return "decimal"
	}
	return ""
}

func (n *castNode) eval(ev *evaluator) (value, error) {
	arr, err := ev.evalArray(n.x)
	if err != nil {
		return value{}, err
	}
	defer arr.Release()
	var out arrow.Array
	switch castKind(arr.DataType(), n.dt) {
	case "num":
		out, err = castNumbers(ev.mem, arr, n.dt)
	case "parse":
		out, err = parseStrings(ev.mem, arr.(*array.String), n.dt)
	case "time":
		out, err = castTimes(ev.mem, arr, n.dt)
	case "decimal":
		out, err = castDecimal(ev.mem, arr, n.dt)
	default:
		err = fmt.Errorf("no cast from %s to %s", sqlTypeName(arr.DataType()), sqlTypeName(n.dt))
	}
	if err != nil {
		return value{}, fmt.Errorf("expr: %s: %w", n.src, err)
	}
	return value{arr: out}, nil
}

// evalErrf is a run-time error of the expression src: "expr: src: msg",
// with msg wrapped so that a failed constant fold shows it alone.
func evalErrf(src, format string, args ...any) error {
	return fmt.Errorf("expr: %s: %w", src, fmt.Errorf(format, args...))
}

// fixedOut allocates the values buffer of n fixed-width results of dt.
func fixedOut(mem memory.Allocator, dt arrow.DataType, n int) *memory.Buffer {
	if dt.ID() == arrow.BOOL {
		b := newBuffer(mem, int(bitutil.BytesForBits(int64(n))))
		fillBits(b.Bytes(), false)
		return b
	}
	return newBuffer(mem, n*dt.(arrow.FixedWidthDataType).BitWidth()/8)
}

// validOf returns a copy of arr's validity at offset 0, or nil without nulls.
func validOf(mem memory.Allocator, arr arrow.Array) *memory.Buffer {
	if arr.NullN() == 0 {
		return nil
	}
	return newValidity(mem, arr.Len(), arr)
}

// errOutOfRange is DuckDB's out-of-range message for a cast.
func errOutOfRange(v string, to arrow.DataType) error {
	return fmt.Errorf("value %s is out of range for %s", v, sqlTypeName(to))
}

// ---- numbers and booleans ----

type numeric interface {
	~int8 | ~int16 | ~int32 | ~int64 | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~float32 | ~float64
}

// castNumbers converts an integer, float or boolean array to another of
// those types.
func castNumbers(mem memory.Allocator, arr arrow.Array, to arrow.DataType) (arrow.Array, error) {
	n := arr.Len()
	d := arr.Data()
	out := fixedOut(mem, to, n)
	c := numCast{vals: d.Buffers()[1].Bytes(), off: d.Offset(), n: n, to: to.ID(), out: out.Bytes()}
	if arr.NullN() > 0 {
		c.valid = arr.NullBitmapBytes()
	}
	bad := -1
	switch arr.DataType().ID() {
	case arrow.BOOL:
		boolTo(c)
	case arrow.INT8:
		bad = castFrom[int8](c)
	case arrow.INT16:
		bad = castFrom[int16](c)
	case arrow.INT32:
		bad = castFrom[int32](c)
	case arrow.INT64:
		bad = castFrom[int64](c)
	case arrow.UINT8:
		bad = castFrom[uint8](c)
	case arrow.UINT16:
		bad = castFrom[uint16](c)
	case arrow.UINT32:
		bad = castFrom[uint32](c)
	case arrow.UINT64:
		bad = castFrom[uint64](c)
	case arrow.FLOAT32:
		bad = castFrom[float32](c)
	case arrow.FLOAT64:
		bad = castFrom[float64](c)
	}
	if bad >= 0 {
		out.Release()
		return nil, errOutOfRange(valueText(arr, bad), to)
	}
	return finish(to, n, validOf(mem, arr), out), nil
}

// numCast is one cast of n numbers or booleans: the source's values
// buffer vals and validity valid (nil without nulls), both from bit or
// row off, and the output buffer out of type to, from row 0.
type numCast struct {
	vals, valid []byte
	off, n      int
	to          arrow.Type
	out         []byte
}

// valueText renders row i of arr for a message, as DuckDB would print it.
func valueText(arr arrow.Array, i int) string {
	f, err := formatter(arr)
	if err != nil {
		return "?"
	}
	return string(f(nil, i))
}

// boolTo converts booleans to 0/1 (or copies them); it never fails.
func boolTo(c numCast) {
	switch c.to {
	case arrow.BOOL:
		bitutil.CopyBitmap(c.vals, c.off, c.n, c.out, 0)
	case arrow.INT8, arrow.UINT8:
		boolLoop(c, c.out)
	case arrow.INT16, arrow.UINT16:
		boolLoop(c, castBytes[uint16](c.out))
	case arrow.INT32, arrow.UINT32:
		boolLoop(c, castBytes[uint32](c.out))
	case arrow.INT64, arrow.UINT64:
		boolLoop(c, castBytes[uint64](c.out))
	case arrow.FLOAT32:
		boolLoop(c, castBytes[float32](c.out))
	case arrow.FLOAT64:
		boolLoop(c, castBytes[float64](c.out))
	}
}

func boolLoop[D numeric](c numCast, dst []D) {
	dst = dst[:c.n]
	for i := range dst {
		var v D
		if bitutil.BitIsSet(c.vals, c.off+i) {
			v = 1
		}
		dst[i] = v
	}
}

// castFrom converts the source values, of type S, into c.to; it returns
// the index of the first valid row out of range, or -1.
func castFrom[S numeric](c numCast) int {
	src := castBytes[S](c.vals)[c.off : c.off+c.n]
	lo, hi := intBounds(c.to)
	switch c.to {
	case arrow.INT8:
		return numLoop(src, c.valid, c.off, castBytes[int8](c.out), lo, hi)
	case arrow.INT16:
		return numLoop(src, c.valid, c.off, castBytes[int16](c.out), lo, hi)
	case arrow.INT32:
		return numLoop(src, c.valid, c.off, castBytes[int32](c.out), lo, hi)
	case arrow.INT64:
		return numLoop(src, c.valid, c.off, castBytes[int64](c.out), lo, hi)
	case arrow.UINT8:
		return numLoop(src, c.valid, c.off, castBytes[uint8](c.out), lo, hi)
	case arrow.UINT16:
		return numLoop(src, c.valid, c.off, castBytes[uint16](c.out), lo, hi)
	case arrow.UINT32:
		return numLoop(src, c.valid, c.off, castBytes[uint32](c.out), lo, hi)
	case arrow.UINT64:
		return numLoop(src, c.valid, c.off, castBytes[uint64](c.out), lo, hi)
	case arrow.FLOAT32:
		return floatLoop(src, c.valid, c.off, castBytes[float32](c.out), math.MaxFloat32)
	case arrow.FLOAT64:
		return floatLoop(src, c.valid, c.off, castBytes[float64](c.out), math.MaxFloat64)
	case arrow.BOOL:
		for i, v := range src {
			if v != 0 {
				bitutil.SetBit(c.out, i)
			}
		}
	}
	return -1
}

// floatBounds returns the range [lo, hi) a rounded float must fall in to
// convert to an integer type with bounds lo..hi.
func floatBounds(lo int64, hi uint64) (float64, float64) {
	if hi == math.MaxUint64 || hi == math.MaxInt64 {
		return float64(lo), float64(hi) // 2^64 or 2^63 exactly: exclusive
	}
	return float64(lo), float64(hi) + 1
}

func isFloatType[T numeric]() bool {
	var one T = 1
	return one/2 != 0
}

func isSigned[T numeric]() bool {
	var zero T
	return zero-1 < zero
}

// numLoop converts to an integer type D with bounds [lo, hi]: integers are
// range-checked, floats rounded half away from zero first.
func numLoop[S numeric, D int8 | int16 | int32 | int64 | uint8 | uint16 | uint32 | uint64](src []S, valid []byte, off int, dst []D, lo int64, hi uint64) int {
	dst = dst[:len(src)]
	bad := false
	switch {
	case isFloatType[S]():
		flo, fhi := floatBounds(lo, hi)
		for i, v := range src {
			f := math.RoundToEven(float64(v))
			ok := f >= flo && f < fhi
			bad = bad || (!ok && (valid == nil || bitutil.BitIsSet(valid, off+i)))
			if ok {
				dst[i] = D(f)
			} else {
				dst[i] = 0
			}
		}
	case isSigned[S]():
		for i, v := range src {
			s := int64(v)
			ok := s >= lo && (s < 0 || uint64(s) <= hi)
			bad = bad || (!ok && (valid == nil || bitutil.BitIsSet(valid, off+i)))
			dst[i] = D(s)
		}
	default:
		for i, v := range src {
			u := uint64(v)
			ok := u <= hi
			bad = bad || (!ok && (valid == nil || bitutil.BitIsSet(valid, off+i)))
			dst[i] = D(u)
		}
	}
	if !bad {
		return -1
	}
	// The slow path, once: find the first valid row that is out of range.
	for i, v := range src {
		if valid != nil && !bitutil.BitIsSet(valid, off+i) {
			continue
		}
		var ok bool
		switch {
		case isFloatType[S]():
			flo, fhi := floatBounds(lo, hi)
			f := math.RoundToEven(float64(v))
			ok = f >= flo && f < fhi
		case isSigned[S]():
			s := int64(v)
			ok = s >= lo && (s < 0 || uint64(s) <= hi)
		default:
			ok = uint64(v) <= hi
		}
		if !ok {
			return i
		}
	}
	return -1
}

// floatLoop converts to float32 or float64; a finite value beyond max is
// out of range (infinities and NaN convert).
func floatLoop[S numeric, D float32 | float64](src []S, valid []byte, off int, dst []D, max float64) int {
	dst = dst[:len(src)]
	for i, v := range src {
		f := float64(v)
		if f > max || f < -max {
			if !math.IsInf(f, 0) && (valid == nil || bitutil.BitIsSet(valid, off+i)) {
				return i
			}
		}
		dst[i] = D(f)
	}
	return -1
}

// ---- strings ----

// parseStrings converts strings to numbers, booleans, dates or
// timestamps, as DuckDB's casts read them.
func parseStrings(mem memory.Allocator, s *array.String, to arrow.DataType) (arrow.Array, error) {
	n := s.Len()
	out := fixedOut(mem, to, n)
	ob := out.Bytes()
	for i := 0; i < n; i++ {
		if s.IsNull(i) {
			if to.ID() != arrow.BOOL {
				clear(ob[i*to.(arrow.FixedWidthDataType).BitWidth()/8 : (i+1)*to.(arrow.FixedWidthDataType).BitWidth()/8])
			}
			continue
		}
		if err := parseInto(s.Value(i), to, ob, i); err != nil {
			out.Release()
			return nil, err
		}
	}
	return finish(to, n, validOf(mem, s), out), nil
}

// parseInto parses v as type to into row i of out.
func parseInto(v string, to arrow.DataType, out []byte, i int) error {
	switch to.ID() {
	case arrow.BOOL:
		b, ok := parseBool(v)
		if !ok {
			return fmt.Errorf("could not convert string %s to BOOLEAN", quoteString(v))
		}
		if b {
			bitutil.SetBit(out, i)
		}
		return nil
	case arrow.FLOAT32, arrow.FLOAT64:
		// As DuckDB: a number beyond the type's range is ±inf, not an error.
		f, err := strconv.ParseFloat(trimSpace(v), 64)
		if err != nil && !isRangeErr(err) {
			return fmt.Errorf("could not convert string %s to %s", quoteString(v), sqlTypeName(to))
		}
		if to.ID() == arrow.FLOAT32 {
			castBytes[float32](out)[i] = float32(f)
			return nil
		}
		castBytes[float64](out)[i] = f
		return nil
	case arrow.DATE32, arrow.DATE64:
		dt, err := parseDateTime(v)
		if err != nil {
			return fmt.Errorf("could not convert string %s to DATE: %v", quoteString(v), err)
		}
		if to.ID() == arrow.DATE64 {
			castBytes[int64](out)[i] = dt.days * secsPerDay * 1000
			return nil
		}
		if dt.days < math.MinInt32 || dt.days > math.MaxInt32 {
			return errOutOfRange(quoteString(v), to)
		}
		castBytes[int32](out)[i] = int32(dt.days)
		return nil
	case arrow.TIMESTAMP:
		tt := to.(*arrow.TimestampType)
		dt, err := parseDateTime(v)
		if err != nil {
			return fmt.Errorf("could not convert string %s to %s: %v", quoteString(v), sqlTypeName(to), err)
		}
		// A zone offset in the text is converted to UTC, for TIMESTAMP as
		// for TIMESTAMPTZ: '10:00+02:00' is the instant 08:00 UTC. (DuckDB
		// keeps the wall clock of a TIMESTAMP and drops the offset, which
		// silently moves the instant; zflow does not.) The text is read to
		// microseconds (nanoseconds for TIMESTAMP_NS), digits past them
		// dropped, and then rounded to a coarser unit.
		unit := tt.Unit
		if unit < arrow.Microsecond {
			unit = arrow.Microsecond
		}
		ts, ok := dt.toUnit(unit, true)
		if ok && unit != tt.Unit {
			ts, ok = scaleTicks(ts, microsPerSec, unitsPerSec(tt.Unit))
		}
		if !ok {
			return errOutOfRange(quoteString(v), to)
		}
		castBytes[int64](out)[i] = ts
		return nil
	}
	// integers
	isUnsigned := arrow.IsUnsignedInteger(to.ID())
	iv, uv, ok, over := parseInteger(v, isUnsigned)
	if !ok {
		return fmt.Errorf("could not convert string %s to %s", quoteString(v), sqlTypeName(to))
	}
	lo, hi := intBounds(to.ID())
	switch {
	case over, isUnsigned && uv > hi:
		return errOutOfRange(trimSpace(v), to)
	case !isUnsigned && (iv < lo || (iv > 0 && uint64(iv) > hi)):
		return errOutOfRange(trimSpace(v), to)
	}
	switch to.ID() {
	case arrow.INT8:
		castBytes[int8](out)[i] = int8(iv)
	case arrow.INT16:
		castBytes[int16](out)[i] = int16(iv)
	case arrow.INT32:
		castBytes[int32](out)[i] = int32(iv)
	case arrow.INT64:
		castBytes[int64](out)[i] = iv
	case arrow.UINT8:
		out[i] = uint8(uv)
	case arrow.UINT16:
		castBytes[uint16](out)[i] = uint16(uv)
	case arrow.UINT32:
		castBytes[uint32](out)[i] = uint32(uv)
	case arrow.UINT64:
		castBytes[uint64](out)[i] = uv
	}
	return nil
}

func isRangeErr(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

func intBounds(id arrow.Type) (int64, uint64) {
	switch id {
	case arrow.INT8:
		return math.MinInt8, math.MaxInt8
	case arrow.INT16:
		return math.MinInt16, math.MaxInt16
	case arrow.INT32:
		return math.MinInt32, math.MaxInt32
	case arrow.INT64:
		return math.MinInt64, math.MaxInt64
	case arrow.UINT8:
		return 0, math.MaxUint8
	case arrow.UINT16:
		return 0, math.MaxUint16
	case arrow.UINT32:
		return 0, math.MaxUint32
	}
	return 0, math.MaxUint64
}

// parseInteger reads an integer as DuckDB's cast does: surrounding spaces,
// a sign, decimal digits with '_' separators, a 0x hex prefix, or a
// decimal or exponent form that is rounded half away from zero ('2.5' is
// 3). ok is false for text that is not a number; over is true for a number
// out of the range of int64 (uint64 when unsigned), which the caller
// reports as out of range.
func parseInteger(v string, unsigned bool) (iv int64, uv uint64, ok, over bool) {
	s := trimSpace(v)
	if s == "" {
		return 0, 0, false, false
	}
	clean := s
	if strings.IndexByte(s, '_') >= 0 {
		if s[0] == '_' || s[len(s)-1] == '_' || strings.Contains(s, "__") {
			return 0, 0, false, false
		}
		clean = strings.ReplaceAll(s, "_", "")
	}
	body, neg := clean, false
	if body[0] == '+' || body[0] == '-' {
		neg, body = body[0] == '-', body[1:]
	}
	base := 10
	if len(body) > 2 && body[0] == '0' && (body[1] == 'x' || body[1] == 'X') {
		base, body = 16, body[2:]
	}
	if body == "" || body[0] == '+' || body[0] == '-' {
		return 0, 0, false, false
	}
	u, err := strconv.ParseUint(body, base, 64)
	switch {
	case err == nil && unsigned:
		if neg && u != 0 {
			return 0, 0, true, true
		}
		return 0, u, true, false
	case err == nil && neg:
		if u > 1<<63 {
			return 0, 0, true, true
		}
		return -int64(u), 0, true, false // -(1<<63) wraps to MinInt64
	case err == nil:
		if u > math.MaxInt64 {
			return 0, 0, true, true
		}
		return int64(u), 0, true, false
	case isRangeErr(err):
		return 0, 0, true, true
	case base != 10:
		return 0, 0, false, false
	}
	for _, c := range body {
		if !(isDigit(byte(c)) || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-') {
			return 0, 0, false, false
		}
	}
	f, err := strconv.ParseFloat(clean, 64)
	if err != nil && !isRangeErr(err) {
		return 0, 0, false, false
	}
	f = math.Round(f)
	switch {
	case unsigned && (f < 0 || f >= 18446744073709551616.0):
		return 0, 0, true, true
	case unsigned:
		return 0, uint64(f), true, false
	case f >= 9223372036854775808.0 || f < -9223372036854775808.0:
		return 0, 0, true, true
	}
	return int64(f), 0, true, false
}

// parseBool reads DuckDB's boolean strings: true/t/yes/y/1 and
// false/f/no/n/0, any case, no surrounding spaces.
func parseBool(s string) (bool, bool) {
	if len(s) > 5 {
		return false, false
	}
	for _, w := range [...]string{"true", "t", "yes", "y", "1"} {
		if strings.EqualFold(s, w) {
			return true, true
		}
	}
	for _, w := range [...]string{"false", "f", "no", "n", "0"} {
		if strings.EqualFold(s, w) {
			return false, true
		}
	}
	return false, false
}

// ---- dates and timestamps ----

// scaleTicks converts v ticks of 1/from seconds to ticks of 1/to seconds;
// ok is false when the result overflows int64.
func scaleTicks(v, from, to int64) (int64, bool) {
	if to >= from {
		f := to / from
		r := v * f
		if v != 0 && (r/f != v) {
			return 0, false
		}
		return r, true
	}
	// Coarser: DuckDB truncates nanoseconds to microseconds (toward zero),
	// and rounds microseconds to the nearest tick (half away from zero).
	if from == 1_000_000_000 {
		v, from = v/1000, 1_000_000
		if to == from {
			return v, true
		}
	}
	f := from / to
	q, rem := v/f, v%f
	if rem >= (f+1)/2 {
		q++
	} else if -rem >= (f+1)/2 {
		q--
	}
	return q, true
}

// castTimes converts between date32, date64 and timestamps of any unit.
// A timestamp becomes a date by flooring to its day; a coarser timestamp
// unit rounds to the nearest tick, as DuckDB does.
func castTimes(mem memory.Allocator, arr arrow.Array, to arrow.DataType) (arrow.Array, error) {
	n := arr.Len()
	d := arr.Data()
	off := d.Offset()
	// Express the source in ticks per second srcPer (a date32 counts days).
	var src64 []int64
	var src32 []int32
	var srcPer int64 // ticks per second; 0 for date32 (days)
	switch t := arr.DataType().(type) {
	case *arrow.Date32Type:
		src32 = castBytes[int32](d.Buffers()[1].Bytes())[off : off+n]
	case *arrow.Date64Type:
		src64, srcPer = castBytes[int64](d.Buffers()[1].Bytes())[off:off+n], 1000
	case *arrow.TimestampType:
		src64, srcPer = castBytes[int64](d.Buffers()[1].Bytes())[off:off+n], unitsPerSec(t.Unit)
	}
	out := fixedOut(mem, to, n)
	valid := validOf(mem, arr)
	var vb []byte
	if valid != nil {
		vb = valid.Bytes()
	}
	fail := func(i int) (arrow.Array, error) {
		out.Release()
		if valid != nil {
			valid.Release()
		}
		return nil, errOutOfRange(valueText(arr, i), to)
	}
	switch t := to.(type) {
	case *arrow.Date32Type:
		dst := castBytes[int32](out.Bytes())[:n]
		if src32 != nil {
			copy(dst, src32)
			break
		}
		perDay := srcPer * secsPerDay
		for i, v := range src64 {
			if srcPer == 1_000_000_000 {
				v = v / 1000 * 1000 // DuckDB goes through microseconds, truncating
			}
			days := FloorDiv(v, perDay)
			if days < math.MinInt32 || days > math.MaxInt32 {
				if vb == nil || bitutil.BitIsSet(vb, i) {
					return fail(i)
				}
				days = 0
			}
			dst[i] = int32(days)
		}
	case *arrow.Date64Type, *arrow.TimestampType:
		dstPer := int64(1000)
		if tt, ok := t.(*arrow.TimestampType); ok {
			dstPer = unitsPerSec(tt.Unit)
		}
		dst := castBytes[int64](out.Bytes())[:n]
		if src32 != nil {
			perDay := dstPer * secsPerDay
			for i, v := range src32 {
				dst[i] = int64(v) * perDay // |v| < 2^31, perDay ≤ 8.64e13: may overflow for ns
				if dstPer == 1_000_000_000 && (v > 106751 || v < -106751) {
					if vb == nil || bitutil.BitIsSet(vb, i) {
						return fail(i)
					}
				}
			}
			break
		}
		if _, isDate := to.(*arrow.Date64Type); isDate {
			// date64 holds midnights: floor to the day.
			perDay := srcPer * secsPerDay
			for i, v := range src64 {
				days := FloorDiv(v, perDay)
				dst[i] = days * secsPerDay * 1000
			}
			break
		}
		for i, v := range src64 {
			r, ok := scaleTicks(v, srcPer, dstPer)
			if !ok && (vb == nil || bitutil.BitIsSet(vb, i)) {
				return fail(i)
			}
			dst[i] = r
		}
	}
	return finish(to, n, valid, out), nil
}
