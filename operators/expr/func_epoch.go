package expr

import (
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
)

// Epoch conversions, as DuckDB has them:
//
//	epoch(x)         DOUBLE seconds of a date or timestamp since 1970-01-01
//	epoch_us(x)      BIGINT microseconds
//	epoch_ns(x)      BIGINT nanoseconds (an error past the year 2262)
//	to_timestamp(n)  TIMESTAMPTZ of n seconds (a number; fractions kept to
//	                 the microsecond)

func init() {
	define(&funcDef{name: "epoch", sig: "epoch(x)", min: 1, max: 1, check: checkEpoch})
	define(&funcDef{name: "epoch_us", sig: "epoch_us(x)", min: 1, max: 1, check: checkEpochUnit})
	define(&funcDef{name: "epoch_ns", sig: "epoch_ns(x)", min: 1, max: 1, check: checkEpochUnit})
	define(&funcDef{name: "to_timestamp", sig: "to_timestamp(seconds)", min: 1, max: 1, check: checkToTimestamp})
}

func checkEpoch(c *checker, e *Call, args []node) (node, error) {
	if err := c.timeArg(e, 0, args[0]); err != nil {
		return nil, err
	}
	if isNullConst(args[0]) {
		return nullOf(tFloat64), nil
	}
	x, err := c.plainTime(args[0], e.Args[0])
	if err != nil {
		return nil, err
	}
	return c.foldIf(&timeFuncNode{fn: tfPart, part: partEpoch, x: x, dt: tFloat64, src: c.text(e)}, e, x)
}

func checkEpochUnit(c *checker, e *Call, args []node) (node, error) {
	if err := c.timeArg(e, 0, args[0]); err != nil {
		return nil, err
	}
	if isNullConst(args[0]) {
		return nullOf(tInt64), nil
	}
	x, err := c.plainTime(args[0], e.Args[0])
	if err != nil {
		return nil, err
	}
	mul := int64(1)
	if e.Name == "epoch_ns" {
		mul = 1000
	}
	return c.foldIf(&epochUnitNode{x: x, mul: mul, src: c.text(e)}, e, x)
}

// epochUnitNode is epoch_us(x) (mul 1) or epoch_ns(x) (mul 1000).
type epochUnitNode struct {
	x   node
	mul int64
	src string
}

func (n *epochUnitNode) dtype() arrow.DataType { return tInt64 }

func (n *epochUnitNode) eval(ev *evaluator) (value, error) {
	arr, err := ev.evalArray(n.x)
	if err != nil {
		return value{}, err
	}
	defer arr.Release()
	// A timestamp[ns] keeps its nanoseconds for epoch_ns.
	if t, ok := arr.DataType().(*arrow.TimestampType); ok && t.Unit == arrow.Nanosecond && n.mul == 1000 {
		d := arr.Data()
		rows := arr.Len()
		out := newBuffer(ev.mem, rows*8)
		copy(castBytes[int64](out.Bytes())[:rows], castBytes[int64](d.Buffers()[1].Bytes())[d.Offset():d.Offset()+rows])
		return value{arr: finish(tInt64, rows, validOf(ev.mem, arr), out)}, nil
	}
	us, release, err := microsOf(ev.mem, arr)
	if err != nil {
		return value{}, evalErrf(n.src, "%w", err)
	}
	defer release()
	rows := arr.Len()
	out := newBuffer(ev.mem, rows*8)
	res := castBytes[int64](out.Bytes())[:rows]
	var valid []byte
	if arr.NullN() > 0 {
		valid = arr.NullBitmapBytes()
	}
	off := arr.Data().Offset()
	for i, v := range us {
		if n.mul != 1 && (v > math.MaxInt64/n.mul || v < math.MinInt64/n.mul) {
			if valid == nil || bitutil.BitIsSet(valid, off+i) {
				out.Release()
				return value{}, evalErrf(n.src, "%s is out of the nanosecond range", valueText(arr, i))
			}
			v = 0
		}
		res[i] = v * n.mul
	}
	return value{arr: finish(tInt64, rows, validOf(ev.mem, arr), out)}, nil
}

func checkToTimestamp(c *checker, e *Call, args []node) (node, error) {
	x := args[0]
	switch classOf(x.dtype()) {
	case clsNull:
		return nullOf(tTimestampTZ), nil
	case clsInt, clsFloat:
	default:
		return nil, typeErrf(offset(e.Args[0]), "to_timestamp needs a number of seconds, got %s", c.desc(e.Args[0], x))
	}
	x, err := c.coerce(x, tFloat64, e.Args[0])
	if err != nil {
		return nil, err
	}
	return c.foldIf(&toTimestampNode{x: x, src: c.text(e)}, e, x)
}

// toTimestampNode is to_timestamp(seconds).
type toTimestampNode struct {
	x   node
	src string
}

func (n *toTimestampNode) dtype() arrow.DataType { return tTimestampTZ }

func (n *toTimestampNode) eval(ev *evaluator) (value, error) {
	arr, err := ev.evalArray(n.x)
	if err != nil {
		return value{}, err
	}
	defer arr.Release()
	d := arr.Data()
	rows := arr.Len()
	src := castBytes[float64](d.Buffers()[1].Bytes())[d.Offset() : d.Offset()+rows]
	out := newBuffer(ev.mem, rows*8)
	res := castBytes[int64](out.Bytes())[:rows]
	var valid []byte
	if arr.NullN() > 0 {
		valid = arr.NullBitmapBytes()
	}
	for i, f := range src {
		us := math.Round(f * microsPerSec)
		if !(us > math.MinInt64 && us < math.MaxInt64) { // NaN too
			if valid == nil || bitutil.BitIsSet(valid, d.Offset()+i) {
				out.Release()
				return value{}, evalErrf(n.src, "epoch seconds %s are out of the timestamp range", valueText(arr, i))
			}
			us = 0
		}
		res[i] = int64(us)
	}
	return value{arr: finish(tTimestampTZ, rows, validOf(ev.mem, arr), out)}, nil
}
