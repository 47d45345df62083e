package expr

import (
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
)

// date_diff (datediff) and make_date, as DuckDB has them:
//
//	date_diff(part, start, end)  BIGINT: how many part boundaries lie
//	                             between start and end (negative when end
//	                             is earlier); week counts whole 7-day spans
//	make_date(year, month, day)  DATE; a day that does not exist is a
//	                             run-time error

func init() {
	define(&funcDef{name: "date_diff", sig: "date_diff(part, start, end)", min: 3, max: 3, check: checkDateDiff})
	define(&funcDef{name: "datediff", sig: "datediff(part, start, end)", min: 3, max: 3, check: checkDateDiff})
	define(&funcDef{name: "make_date", sig: "make_date(year, month, day)", min: 3, max: 3, check: checkMakeDate})
}

// diffParts are the parts date_diff counts.
var diffParts = map[timePart]bool{
	partMillennium: true, partCentury: true, partDecade: true, partYear: true, partQuarter: true,
	partMonth: true, partWeek: true, partDay: true, partDow: true, partIsodow: true, partDoy: true,
	partIsoyear: true, partHour: true, partMinute: true, partSecond: true, partMillisecond: true,
	partMicrosecond: true, partEpoch: true,
}

func checkDateDiff(c *checker, e *Call, args []node) (node, error) {
	part, null, err := c.constPart(e, 0, args[0], diffParts)
	if err != nil {
		return nil, err
	}
	for i := 1; i <= 2; i++ {
		if err := c.timeArg(e, i, args[i]); err != nil {
			return nil, err
		}
	}
	if null || isNullConst(args[1]) || isNullConst(args[2]) {
		return nullOf(tInt64), nil
	}
	a, err := c.plainTime(args[1], e.Args[1])
	if err != nil {
		return nil, err
	}
	b, err := c.plainTime(args[2], e.Args[2])
	if err != nil {
		return nil, err
	}
	return c.foldIf(&dateDiffNode{part: part, a: a, b: b, src: c.text(e)}, e, a, b)
}

// dateDiffNode is date_diff(part, a, b).
type dateDiffNode struct {
	part timePart
	a, b node
	src  string
}

func (n *dateDiffNode) dtype() arrow.DataType { return tInt64 }

func (n *dateDiffNode) eval(ev *evaluator) (value, error) {
	aa, err := ev.evalArray(n.a)
	if err != nil {
		return value{}, err
	}
	defer aa.Release()
	ba, err := ev.evalArray(n.b)
	if err != nil {
		return value{}, err
	}
	defer ba.Release()
	av, ra, err := microsOf(ev.mem, aa)
	if err != nil {
		return value{}, evalErrf(n.src, "%w", err)
	}
	defer ra()
	bv, rb, err := microsOf(ev.mem, ba)
	if err != nil {
		return value{}, evalErrf(n.src, "%w", err)
	}
	defer rb()
	rows := ev.n
	out := newBuffer(ev.mem, rows*8)
	res := castBytes[int64](out.Bytes())[:rows]
	for i := range res {
		res[i] = diffMicros(n.part, av[i], bv[i])
	}
	return value{arr: finish(tInt64, rows, newValidity(ev.mem, rows, aa, ba), out)}, nil
}

// diffMicros counts the part boundaries from a to b (microseconds).
func diffMicros(p timePart, a, b int64) int64 {
	switch p {
	case partMicrosecond:
		return b - a
	case partMillisecond:
		return FloorDiv(b, 1000) - FloorDiv(a, 1000)
	case partSecond, partEpoch:
		return FloorDiv(b, microsPerSec) - FloorDiv(a, microsPerSec)
	case partMinute:
		return FloorDiv(b, microsPerMin) - FloorDiv(a, microsPerMin)
	case partHour:
		return FloorDiv(b, microsPerHour) - FloorDiv(a, microsPerHour)
	}
	da, db := FloorDiv(a, microsPerDay), FloorDiv(b, microsPerDay)
	switch p {
	case partDay, partDow, partIsodow, partDoy:
		return db - da
	case partWeek:
		return (db - da) / 7 // whole weeks, toward zero
	case partIsoyear:
		ya, _ := isoWeek(da)
		yb, _ := isoWeek(db)
		return yb - ya
	}
	ya, ma, _ := civilFromDays(da)
	yb, mb, _ := civilFromDays(db)
	switch p {
	case partMonth:
		return (yb*12 + int64(mb)) - (ya*12 + int64(ma))
	case partQuarter:
		return (yb*4 + int64(mb-1)/3) - (ya*4 + int64(ma-1)/3)
	case partYear:
		return yb - ya
	case partDecade:
		return yb/10 - ya/10
	case partCentury:
		return yb/100 - ya/100
	case partMillennium:
		return yb/1000 - ya/1000
	}
	return 0
}

func checkMakeDate(c *checker, e *Call, args []node) (node, error) {
	for i, a := range args {
		switch classOf(a.dtype()) {
		case clsInt, clsNull:
		default:
			return nil, typeErrf(offset(e.Args[i]), "make_date needs integers (year, month, day), got %s", c.desc(e.Args[i], a))
		}
	}
	for _, a := range args {
		if isNullConst(a) {
			return nullOf(tDate32), nil
		}
	}
	ns := make([]node, 3)
	for i, a := range args {
		var err error
		if ns[i], err = c.coerce(a, tInt64, e.Args[i]); err != nil {
			return nil, err
		}
	}
	return c.foldIf(&makeDateNode{args: ns, src: c.text(e)}, e, ns...)
}

// makeDateNode is make_date(year, month, day).
type makeDateNode struct {
	args []node // int64
	src  string
}

func (n *makeDateNode) dtype() arrow.DataType { return tDate32 }

func (n *makeDateNode) eval(ev *evaluator) (value, error) {
	var vs [3]value
	defer func() {
		for _, v := range vs {
			v.release()
		}
	}()
	for i, a := range n.args {
		v, err := a.eval(ev)
		if err != nil {
			return value{}, err
		}
		vs[i] = v
	}
	yv, ym := operand[int64](vs[0])
	mv, mm := operand[int64](vs[1])
	dv, dm := operand[int64](vs[2])
	rows := ev.n
	valid := newValidity(ev.mem, rows, vs[0].arr, vs[1].arr, vs[2].arr)
	out := newBuffer(ev.mem, rows*4)
	res := castBytes[int32](out.Bytes())[:rows]
	vb := valid.Bytes()
	for i := range res {
		res[i] = 0
		if !bitutil.BitIsSet(vb, i) {
			continue
		}
		y, m, d := yv[i&ym], mv[i&mm], dv[i&dm]
		if m < 1 || m > 12 || d < 1 || y < -5_000_000 || y > 5_000_000 || d > int64(daysIn(y, int(m))) {
			out.Release()
			valid.Release()
			return value{}, evalErrf(n.src, "date out of range: %d-%d-%d", y, m, d)
		}
		days := daysFromCivil(y, int(m), int(d))
		if days < math.MinInt32 || days > math.MaxInt32 {
			out.Release()
			valid.Release()
			return value{}, evalErrf(n.src, "date out of range: %d-%d-%d", y, m, d)
		}
		res[i] = int32(days)
	}
	return value{arr: finish(tDate32, rows, valid, out)}, nil
}
