package expr

import (
	"fmt"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// DECIMAL(p, s) values are Arrow decimal128 columns. The language casts
// them to and from numbers, strings and other decimals (rounding half away
// from zero, as DuckDB does, and failing when a value needs more than p
// digits) and returns them; arithmetic and comparisons on decimals are
// refused at Compile time with a hint to cast to DOUBLE. The conversions
// go through arrow's decimal128.Num row by row: a cast, not a hot path.

// castDecimal converts arr to or from a decimal type.
func castDecimal(mem memory.Allocator, arr arrow.Array, to arrow.DataType) (arrow.Array, error) {
	n := arr.Len()
	out := fixedOut(mem, to, n)
	ob := out.Bytes()
	for i := 0; i < n; i++ {
		if arr.IsNull(i) {
			clear(ob[i*to.(arrow.FixedWidthDataType).BitWidth()/8 : (i+1)*to.(arrow.FixedWidthDataType).BitWidth()/8])
			continue
		}
		if err := decimalRow(arr, i, to, ob); err != nil {
			out.Release()
			return nil, err
		}
	}
	return finish(to, n, validOf(mem, arr), out), nil
}

func decimalRow(arr arrow.Array, i int, to arrow.DataType, out []byte) error {
	if dt, ok := to.(*arrow.Decimal128Type); ok {
		num, err := toDecimal(arr, i, dt)
		if err != nil {
			return err
		}
		castBytes[decimal128.Num](out)[i] = num
		return nil
	}
	src := arr.(*array.Decimal128)
	scale := src.DataType().(*arrow.Decimal128Type).Scale
	v := src.Value(i)
	switch to.ID() {
	case arrow.FLOAT64:
		castBytes[float64](out)[i] = v.ToFloat64(scale)
		return nil
	case arrow.FLOAT32:
		castBytes[float32](out)[i] = v.ToFloat32(scale)
		return nil
	}
	// An integer: round half away from zero, then range-check.
	r := roundScale(v, scale, 0)
	lo, hi := intBounds(to.ID())
	if r.Less(decimal128.FromI64(lo)) || r.Greater(decimal128.FromU64(hi)) {
		return errOutOfRange(v.ToString(scale), to)
	}
	switch to.ID() {
	case arrow.INT8:
		castBytes[int8](out)[i] = int8(r.LowBits())
	case arrow.INT16:
		castBytes[int16](out)[i] = int16(r.LowBits())
	case arrow.INT32:
		castBytes[int32](out)[i] = int32(r.LowBits())
	case arrow.INT64:
		castBytes[int64](out)[i] = int64(r.LowBits())
	case arrow.UINT8:
		out[i] = uint8(r.LowBits())
	case arrow.UINT16:
		castBytes[uint16](out)[i] = uint16(r.LowBits())
	case arrow.UINT32:
		castBytes[uint32](out)[i] = uint32(r.LowBits())
	case arrow.UINT64:
		castBytes[uint64](out)[i] = r.LowBits()
	default:
		return fmt.Errorf("no cast from DECIMAL to %s", sqlTypeName(to))
	}
	return nil
}

// roundScale changes v from scale from to scale to, rounding half away
// from zero when digits are dropped.
func roundScale(v decimal128.Num, from, to int32) decimal128.Num {
	switch {
	case to > from:
		return v.IncreaseScaleBy(to - from)
	case to < from:
		neg := v.Sign() < 0
		a := v.Abs()
		q, rem := a.Div(decimal128.GetScaleMultiplier(int(from - to)))
		if rem.GreaterEqual(decimal128.GetHalfScaleMultiplier(int(from - to))) {
			q = q.Add(decimal128.FromI64(1))
		}
		if neg {
			q = q.Negate()
		}
		return q
	}
	return v
}

// toDecimal converts row i of arr to a decimal of type dt.
func toDecimal(arr arrow.Array, i int, dt *arrow.Decimal128Type) (decimal128.Num, error) {
	var num decimal128.Num
	switch a := arr.(type) {
	case *array.Decimal128:
		num = roundScale(a.Value(i), a.DataType().(*arrow.Decimal128Type).Scale, dt.Scale)
	case *array.String:
		s := trimSpace(a.Value(i))
		// Parse with spare digits, then round to the scale.
		v, err := decimal128.FromString(s, 38, min(dt.Scale+1, 38))
		if err != nil {
			return num, fmt.Errorf("could not convert string %s to %s", quoteString(a.Value(i)), sqlTypeName(dt))
		}
		num = roundScale(v, min(dt.Scale+1, 38), dt.Scale)
	case *array.Float32, *array.Float64:
		var f float64
		if f32, ok := a.(*array.Float32); ok {
			f = float64(f32.Value(i))
		} else {
			f = a.(*array.Float64).Value(i)
		}
		if math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) >= 1e38 {
			return num, errOutOfRange(valueText(arr, i), dt)
		}
		v, err := decimal128.FromFloat64(f, 38, min(dt.Scale+1, 38))
		if err != nil {
			return num, errOutOfRange(valueText(arr, i), dt)
		}
		num = roundScale(v, min(dt.Scale+1, 38), dt.Scale)
	default:
		var v decimal128.Num
		switch a := arr.(type) {
		case *array.Int8:
			v = decimal128.FromI64(int64(a.Value(i)))
		case *array.Int16:
			v = decimal128.FromI64(int64(a.Value(i)))
		case *array.Int32:
			v = decimal128.FromI64(int64(a.Value(i)))
		case *array.Int64:
			v = decimal128.FromI64(a.Value(i))
		case *array.Uint8:
			v = decimal128.FromU64(uint64(a.Value(i)))
		case *array.Uint16:
			v = decimal128.FromU64(uint64(a.Value(i)))
		case *array.Uint32:
			v = decimal128.FromU64(uint64(a.Value(i)))
		case *array.Uint64:
			v = decimal128.FromU64(a.Value(i))
		default:
			return num, fmt.Errorf("no cast from %s to %s", sqlTypeName(arr.DataType()), sqlTypeName(dt))
		}
		if !v.FitsInPrecision(dt.Precision - dt.Scale) {
			return num, errOutOfRange(valueText(arr, i), dt)
		}
		num = v.IncreaseScaleBy(dt.Scale)
	}
	if !num.FitsInPrecision(dt.Precision) {
		return num, errOutOfRange(valueText(arr, i), dt)
	}
	return num, nil
}
