package expr

import (
	"fmt"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// The number functions, with DuckDB's names, result types and semantics:
// round, floor, ceil and ceiling, sqrt, ln, pow and power. Integers compute
// as int64 and floats as float64 (the language's canonical types); each
// function is one loop over the batch's buffers.

func init() {
	define(&funcDef{name: "round", sig: "round(x[, digits])", min: 1, max: 2, check: checkRound})
	for _, name := range []string{"floor", "ceil", "ceiling", "sqrt", "ln"} {
		define(&funcDef{name: name, sig: name + "(x)", min: 1, max: 1, check: checkFloatFunc})
	}
	define(&funcDef{name: "pow", sig: "pow(x, y)", min: 2, max: 2, check: checkPow})
	define(&funcDef{name: "power", sig: "power(x, y)", min: 2, max: 2, check: checkPow})
}

// newFloat64s returns a float64 buffer of n values and its slice.
func newFloat64s(mem memory.Allocator, n int) (*memory.Buffer, []float64) {
	buf := newBuffer(mem, n*8)
	return buf, arrow.Float64Traits.CastFromBytes(buf.Bytes())[:n]
}

func newInt64s(mem memory.Allocator, n int) (*memory.Buffer, []int64) {
	buf := newBuffer(mem, n*8)
	return buf, arrow.Int64Traits.CastFromBytes(buf.Bytes())[:n]
}

// checkRound is round(x[, digits]): half away from zero. An integer stays
// an integer (int64) and a float a float (float64), as in DuckDB; a NULL
// digits gives NULL.
func checkRound(c *checker, e *Call, args []node) (node, error) {
	x := c.argNumber(e, args, 0, "a number", false)
	ns := []node{x}
	if len(args) == 2 {
		ns = append(ns, c.argInt(e, args, 1, "an integer number of digits"))
	}
	if poisoned(ns...) {
		return poisonNode{}, nil
	}
	dt := x.dtype()
	if anyNullConst(ns...) {
		return nullOf(dt), nil
	}
	if dt.ID() == arrow.INT64 {
		if len(ns) == 1 {
			return x, nil // round of an integer is the integer
		}
		return c.newFunc(e, dt, ns, roundIntKernel)
	}
	return c.newFunc(e, dt, ns, roundFloatKernel)
}

// roundFloat is DuckDB's round of a double to digits places: scale by a
// power of ten, round half away from zero, scale back; a result that
// overflows is the input for digits > 0 and 0 for digits < 0.
func roundFloat(x float64, digits int64) float64 {
	if digits >= 0 {
		m := math.Pow10(int(min(digits, 400)))
		r := math.Round(x*m) / m
		if math.IsInf(r, 0) || math.IsNaN(r) {
			return x
		}
		return r
	}
	m := math.Pow10(int(min(-digits, 400)))
	r := math.Round(x/m) * m
	if math.IsInf(r, 0) || math.IsNaN(r) {
		return 0
	}
	return r
}

func roundFloatKernel(ev *evaluator, vals []value) (arrow.Array, error) {
	x := float64ViewOf(vals[0])
	buf, out := newFloat64s(ev.mem, ev.n)
	if len(vals) == 1 {
		for i := range out {
			out[i] = math.Round(x.at(i))
		}
	} else {
		d := int64ViewOf(vals[1])
		for i := range out {
			out[i] = roundFloat(x.at(i), d.at(i))
		}
	}
	return finish(tFloat64, ev.n, ev.validityN(vals...), buf), nil
}

// pow10s holds 10^0 … 10^18, every power of ten an int64 holds.
var pow10s = func() (p [19]int64) {
	p[0] = 1
	for i := 1; i < len(p); i++ {
		p[i] = p[i-1] * 10
	}
	return p
}()

// roundIntKernel rounds integers to digits places: a digits ≥ 0 changes
// nothing, a negative one rounds to a multiple of 10^-digits, half away from
// zero. (DuckDB wraps around where the result overflows the type; zflow
// fails the batch, as its other integer arithmetic does.)
func roundIntKernel(ev *evaluator, vals []value) (arrow.Array, error) {
	x, d := int64ViewOf(vals[0]), int64ViewOf(vals[1])
	buf, out := newInt64s(ev.mem, ev.n)
	for i := range out {
		v, dg := x.at(i), d.at(i)
		switch {
		case dg >= 0:
			out[i] = v
		case dg <= -19:
			out[i] = 0
		default:
			p := pow10s[-dg]
			half := p / 2
			if v < 0 {
				half = -half
			}
			s := v + half
			if (s > v) != (half > 0) && !x.null(i) && !d.null(i) {
				buf.Release()
				return nil, fmt.Errorf("round(%d, %d) overflows int64", v, dg)
			}
			out[i] = s / p * p
		}
	}
	return finish(tInt64, ev.n, ev.validityN(vals...), buf), nil
}

// checkFloatFunc is floor, ceil, ceiling, sqrt or ln: a float64 result for
// any number (DuckDB's floor and ceil of an integer are DOUBLE too).
func checkFloatFunc(c *checker, e *Call, args []node) (node, error) {
	x := c.argNumber(e, args, 0, "a number", true)
	if poisoned(x) {
		return x, nil
	}
	if isNullConst(x) {
		return nullOf(tFloat64), nil
	}
	name := e.Name
	return c.newFunc(e, tFloat64, []node{x}, func(ev *evaluator, vals []value) (arrow.Array, error) {
		return floatKernel(ev, name, vals[0])
	})
}

// floatKernel runs one of checkFloatFunc's functions. sqrt of a negative
// number and ln of zero or of a negative number are errors, as in DuckDB;
// infinities and NaN go through as IEEE 754 says.
func floatKernel(ev *evaluator, name string, v value) (arrow.Array, error) {
	x := float64ViewOf(v)
	buf, out := newFloat64s(ev.mem, ev.n)
	bad := -1
	switch name {
	case "floor":
		for i := range out {
			out[i] = math.Floor(x.at(i))
		}
	case "ceil", "ceiling":
		for i := range out {
			out[i] = math.Ceil(x.at(i))
		}
	case "sqrt":
		for i := range out {
			f := x.at(i)
			if f < 0 && bad < 0 && !x.null(i) {
				bad = i
			}
			out[i] = math.Sqrt(f)
		}
	case "ln":
		for i := range out {
			f := x.at(i)
			if f <= 0 && bad < 0 && !x.null(i) {
				bad = i
			}
			out[i] = math.Log(f)
		}
	}
	if bad >= 0 {
		buf.Release()
		f := x.at(bad)
		switch {
		case name == "sqrt":
			return nil, fmt.Errorf("cannot take the square root of a negative number (%g)", f)
		case f == 0:
			return nil, fmt.Errorf("cannot take the logarithm of zero")
		}
		return nil, fmt.Errorf("cannot take the logarithm of a negative number (%g)", f)
	}
	return finish(tFloat64, ev.n, ev.validityN(v), buf), nil
}

// checkPow is pow(x, y), a float64 as in DuckDB, with IEEE 754's answers
// where it overflows (+Inf) or has none (NaN), as DuckDB's.
func checkPow(c *checker, e *Call, args []node) (node, error) {
	ns := []node{c.argNumber(e, args, 0, "a number", true), c.argNumber(e, args, 1, "a number exponent", true)}
	if poisoned(ns...) {
		return poisonNode{}, nil
	}
	if anyNullConst(ns...) {
		return nullOf(tFloat64), nil
	}
	return c.newFunc(e, tFloat64, ns, func(ev *evaluator, vals []value) (arrow.Array, error) {
		x, y := float64ViewOf(vals[0]), float64ViewOf(vals[1])
		buf, out := newFloat64s(ev.mem, ev.n)
		for i := range out {
			out[i] = math.Pow(x.at(i), y.at(i))
		}
		return finish(tFloat64, ev.n, ev.validityN(vals...), buf), nil
	})
}
