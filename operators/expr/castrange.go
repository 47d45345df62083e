package expr

import (
	"fmt"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/scalar"
)

// floatRangeNode checks that the floats of x, already rounded to whole
// numbers, fit the integer type dt, and passes x on: the cast after it runs
// with AllowFloatTruncate (nothing is left to truncate), under which
// arrow-go's cast does not check the range and turns 1e300, ±Inf and NaN
// into MinInt64. A value that does not fit, in a non-NULL row, is a
// run-time error, as an integer that does not fit is.
type floatRangeNode struct {
	x      node
	dt     arrow.DataType // the integer type the cast goes to
	lo, hi float64        // the whole numbers that fit are lo ≤ v < hi
	src    string
}

func newFloatRangeNode(x node, dt arrow.DataType, src string) *floatRangeNode {
	bits := dt.(arrow.FixedWidthDataType).BitWidth()
	n := &floatRangeNode{x: x, dt: dt, src: src}
	if arrow.IsUnsignedInteger(dt.ID()) {
		n.lo, n.hi = 0, math.Ldexp(1, bits)
	} else {
		n.lo, n.hi = -math.Ldexp(1, bits-1), math.Ldexp(1, bits-1)
	}
	return n
}

func (n *floatRangeNode) dtype() arrow.DataType { return n.x.dtype() }

func (n *floatRangeNode) eval(ev *evaluator) (value, error) {
	v, err := n.x.eval(ev)
	if err != nil {
		return value{}, err
	}
	var bad float64
	found := false
	switch a := v.arr.(type) {
	case *array.Float64:
		bad, found = n.outOfRange(a, a.Float64Values())
	case *array.Float32:
		bad, found = n.outOfRange(a, a.Float32Values())
	case nil:
		switch s := v.sc.(type) {
		case *scalar.Float64:
			bad, found = s.Value, s.IsValid() && !n.fits(s.Value)
		case *scalar.Float32:
			bad, found = float64(s.Value), s.IsValid() && !n.fits(float64(s.Value))
		}
	}
	if found {
		v.release()
		return value{}, fmt.Errorf("expr: %s: %w: float value %g not in range of %s", n.src, arrow.ErrInvalid, bad, typeName(n.dt))
	}
	return v, nil
}

func (n *floatRangeNode) fits(v float64) bool { return v >= n.lo && v < n.hi } // false for NaN

// outOfRange returns the first value of a non-NULL row that does not fit.
func (n *floatRangeNode) outOfRange(arr arrow.Array, vals any) (float64, bool) {
	check := func(i int, v float64) bool { return !n.fits(v) && arr.IsValid(i) }
	switch vals := vals.(type) {
	case []float64:
		for i, v := range vals {
			if check(i, v) {
				return v, true
			}
		}
	case []float32:
		for i, v := range vals {
			if check(i, float64(v)) {
				return float64(v), true
			}
		}
	}
	return 0, false
}
