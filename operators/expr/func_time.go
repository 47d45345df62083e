package expr

import (
	"fmt"
	"math"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/engine"
)

// Date and time functions, with DuckDB's names and semantics:
//
//	date_part(part, x)   extract(part FROM x)   BIGINT (epoch, julian: DOUBLE)
//	date_trunc(part, x)  TIMESTAMP (TIMESTAMPTZ for a TIMESTAMPTZ)
//	strftime(x, format)  VARCHAR
//	strptime(s, format)  TIMESTAMP (TIMESTAMPTZ when the format has %z)
//	epoch_ms(x)          BIGINT milliseconds of a date or timestamp
//	epoch_ms(n)          TIMESTAMP of n milliseconds since the epoch
//
// x is a date or a timestamp of any unit; the kernels work in
// microseconds (DuckDB's TIMESTAMP precision): a timestamp[ns] is truncated
// to microseconds first, toward zero, as DuckDB does. part and format must be constant strings, checked at
// Compile time.

func init() {
	define(&funcDef{name: "date_part", sig: "date_part(part, x)", min: 2, max: 2, check: checkDatePart})
	define(&funcDef{name: "date_trunc", sig: "date_trunc(part, x)", min: 2, max: 2, check: checkDateTrunc})
	define(&funcDef{name: "strftime", sig: "strftime(x, format)", min: 2, max: 2, check: checkStrftime})
	define(&funcDef{name: "strptime", sig: "strptime(s, format)", min: 2, max: 2, check: checkStrptime})
	define(&funcDef{name: "epoch_ms", sig: "epoch_ms(x)", min: 1, max: 1, check: checkEpochMs})
}

// timePart is a field of a date or timestamp.
type timePart uint8

const (
	partYear timePart = iota
	partMonth
	partDay
	partDecade
	partCentury
	partMillennium
	partQuarter
	partWeek
	partDow
	partIsodow
	partDoy
	partIsoyear
	partYearweek
	partHour
	partMinute
	partSecond
	partMillisecond
	partMicrosecond
	partEpoch
	partEra
	partJulian
)

// timeParts maps DuckDB's part names and aliases to parts.
var timeParts = map[string]timePart{
	"year": partYear, "years": partYear, "y": partYear, "yr": partYear, "yrs": partYear,
	"month": partMonth, "months": partMonth, "mon": partMonth, "mons": partMonth,
	"day": partDay, "days": partDay, "d": partDay, "dayofmonth": partDay,
	"decade": partDecade, "decades": partDecade, "dec": partDecade, "decs": partDecade,
	"century": partCentury, "centuries": partCentury, "cent": partCentury, "c": partCentury,
	"millennium": partMillennium, "millennia": partMillennium, "mil": partMillennium, "mils": partMillennium,
	"quarter": partQuarter, "quarters": partQuarter,
	"week": partWeek, "weeks": partWeek, "w": partWeek, "weekofyear": partWeek,
	"dow": partDow, "dayofweek": partDow, "weekday": partDow,
	"isodow": partIsodow,
	"doy":    partDoy, "dayofyear": partDoy,
	"isoyear":  partIsoyear,
	"yearweek": partYearweek,
	"hour":     partHour, "hours": partHour, "h": partHour, "hr": partHour, "hrs": partHour,
	"minute": partMinute, "minutes": partMinute, "min": partMinute, "mins": partMinute, "m": partMinute,
	"second": partSecond, "seconds": partSecond, "sec": partSecond, "secs": partSecond, "s": partSecond,
	"millisecond": partMillisecond, "milliseconds": partMillisecond, "ms": partMillisecond,
	"msec": partMillisecond, "msecs": partMillisecond,
	"microsecond": partMicrosecond, "microseconds": partMicrosecond, "us": partMicrosecond,
	"usec": partMicrosecond, "usecs": partMicrosecond,
	"epoch": partEpoch, "era": partEra, "julian": partJulian,
}

// truncParts are the parts date_trunc accepts.
var truncParts = map[timePart]bool{
	partMillennium: true, partCentury: true, partDecade: true, partYear: true, partQuarter: true,
	partMonth: true, partWeek: true, partDay: true, partHour: true, partMinute: true, partSecond: true,
	partMillisecond: true, partMicrosecond: true, partIsoyear: true,
}

// constPart reads the constant part argument of date_part or date_trunc.
func (c *checker) constPart(e *Call, i int, n node, allowed map[timePart]bool) (timePart, bool, error) {
	s, null, ok := constString(n)
	if !ok {
		return 0, false, typeErrf(offset(e.Args[i]), "%s: the part must be a constant string such as 'year', got %s", e.Name, c.desc(e.Args[i], n))
	}
	if null {
		return 0, true, nil
	}
	p, ok := timeParts[strings.ToLower(s)]
	if !ok || (allowed != nil && !allowed[p]) {
		names := make([]string, 0, len(timeParts))
		for name, q := range timeParts {
			if len(name) > 3 && (allowed == nil || allowed[q]) {
				names = append(names, name)
			}
		}
		if sug := engine.Suggest(strings.ToLower(s), names); sug != "" {
			return 0, false, typeErrf(offset(e.Args[i]), "%s: unknown part %s, did you mean '%s'?", e.Name, quoteString(s), sug)
		}
		return 0, false, typeErrf(offset(e.Args[i]), "%s: unknown part %s", e.Name, quoteString(s))
	}
	return p, false, nil
}

// timeArg checks that argument i is a date or a timestamp (or NULL).
func (c *checker) timeArg(e *Call, i int, n node) error {
	switch classOf(n.dtype()) {
	case clsDate, clsTimestamp, clsNull:
		return nil
	}
	return typeErrf(offset(e.Args[i]), "%s needs a date or a timestamp, got %s", e.Name, c.desc(e.Args[i], n))
}

// plainTime brings a date or timestamp argument to its canonical type
// (a dictionary decoded).
func (c *checker) plainTime(n node, e Expr) (node, error) {
	return c.coerce(n, canonical(n.dtype()), e)
}

func checkDatePart(c *checker, e *Call, args []node) (node, error) {
	part, null, err := c.constPart(e, 0, args[0], nil)
	if err != nil {
		return nil, err
	}
	if err := c.timeArg(e, 1, args[1]); err != nil {
		return nil, err
	}
	dt := arrow.DataType(tInt64)
	if part == partEpoch || part == partJulian {
		dt = tFloat64
	}
	if null || isNullConst(args[1]) {
		return nullOf(dt), nil
	}
	x, err := c.plainTime(args[1], e.Args[1])
	if err != nil {
		return nil, err
	}
	return c.foldIf(&timeFuncNode{fn: tfPart, part: part, x: x, dt: dt, src: c.text(e)}, e, x)
}

func checkDateTrunc(c *checker, e *Call, args []node) (node, error) {
	part, null, err := c.constPart(e, 0, args[0], truncParts)
	if err != nil {
		return nil, err
	}
	if err := c.timeArg(e, 1, args[1]); err != nil {
		return nil, err
	}
	dt := arrow.DataType(tTimestampUS)
	if t, ok := canonical(args[1].dtype()).(*arrow.TimestampType); ok && t.TimeZone != "" {
		dt = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: t.TimeZone}
	}
	if null || isNullConst(args[1]) {
		return nullOf(dt), nil
	}
	x, err := c.plainTime(args[1], e.Args[1])
	if err != nil {
		return nil, err
	}
	return c.foldIf(&timeFuncNode{fn: tfTrunc, part: part, x: x, dt: dt, src: c.text(e)}, e, x)
}

func checkEpochMs(c *checker, e *Call, args []node) (node, error) {
	x := args[0]
	switch classOf(x.dtype()) {
	case clsNull:
		return nullOf(tInt64), nil
	case clsInt:
		x, err := c.coerce(x, tInt64, e.Args[0])
		if err != nil {
			return nil, err
		}
		return c.foldIf(&timeFuncNode{fn: tfFromEpochMs, x: x, dt: tTimestampUS, src: c.text(e)}, e, x)
	case clsDate, clsTimestamp:
		x, err := c.plainTime(x, e.Args[0])
		if err != nil {
			return nil, err
		}
		return c.foldIf(&timeFuncNode{fn: tfEpochMs, x: x, dt: tInt64, src: c.text(e)}, e, x)
	}
	return nil, typeErrf(offset(e.Args[0]), "epoch_ms needs a date, a timestamp or an integer, got %s", c.desc(e.Args[0], x))
}

// timeFn is the kind of a timeFuncNode.
type timeFn uint8

const (
	tfPart timeFn = iota
	tfTrunc
	tfEpochMs
	tfFromEpochMs
)

// timeFuncNode is date_part, date_trunc or epoch_ms: one pass over the
// microseconds of its argument.
type timeFuncNode struct {
	fn   timeFn
	part timePart
	x    node
	dt   arrow.DataType
	src  string
}

func (n *timeFuncNode) dtype() arrow.DataType { return n.dt }

// microsOf returns the values of a date or timestamp array as microseconds
// since the epoch, one per row (from the array's offset); release frees a
// converted copy. A value that does not fit is an error.
func microsOf(mem memory.Allocator, arr arrow.Array) (vals []int64, release func(), err error) {
	d := arr.Data()
	off, n := d.Offset(), arr.Len()
	release = func() {}
	var mul, div int64 = 1, 1
	var src32 []int32
	var src64 []int64
	switch t := arr.DataType().(type) {
	case *arrow.Date32Type:
		src32, mul = castBytes[int32](d.Buffers()[1].Bytes())[off:off+n], microsPerDay
	case *arrow.Date64Type:
		src64, mul = castBytes[int64](d.Buffers()[1].Bytes())[off:off+n], 1000
	case *arrow.TimestampType:
		src64 = castBytes[int64](d.Buffers()[1].Bytes())[off : off+n]
		switch t.Unit {
		case arrow.Microsecond:
			return src64, release, nil
		case arrow.Second:
			mul = microsPerSec
		case arrow.Millisecond:
			mul = 1000
		case arrow.Nanosecond:
			div = 1000
		}
	default:
		return nil, release, fmt.Errorf("not a date or timestamp: %s", typeName(arr.DataType()))
	}
	buf := newBuffer(mem, n*8)
	out := castBytes[int64](buf.Bytes())[:n]
	var valid []byte
	if arr.NullN() > 0 {
		valid = arr.NullBitmapBytes()
	}
	for i := range out {
		var v int64
		if src32 != nil {
			v = int64(src32[i])
		} else {
			v = src64[i]
		}
		if div != 1 {
			out[i] = v / div // toward zero, as DuckDB converts TIMESTAMP_NS
			continue
		}
		r := v * mul
		if v != 0 && r/mul != v {
			if valid == nil || bitutil.BitIsSet(valid, off+i) {
				buf.Release()
				return nil, func() {}, fmt.Errorf("%s is out of the microsecond range", valueText(arr, i))
			}
			r = 0
		}
		out[i] = r
	}
	return out, buf.Release, nil
}

func (n *timeFuncNode) eval(ev *evaluator) (value, error) {
	arr, err := ev.evalArray(n.x)
	if err != nil {
		return value{}, err
	}
	defer arr.Release()
	rows := arr.Len()
	var us []int64
	if n.fn == tfFromEpochMs {
		d := arr.Data()
		us = castBytes[int64](d.Buffers()[1].Bytes())[d.Offset() : d.Offset()+rows]
	} else {
		var release func()
		if us, release, err = microsOf(ev.mem, arr); err != nil {
			return value{}, evalErrf(n.src, "%w", err)
		}
		defer release()
	}
	out := newBuffer(ev.mem, rows*8)
	var valid []byte
	if arr.NullN() > 0 {
		valid = arr.NullBitmapBytes()
	}
	off := arr.Data().Offset()
	switch n.fn {
	case tfPart:
		if n.dt.ID() == arrow.FLOAT64 {
			res := castBytes[float64](out.Bytes())[:rows]
			for i, v := range us {
				res[i] = floatPart(n.part, v)
			}
		} else {
			res := castBytes[int64](out.Bytes())[:rows]
			for i, v := range us {
				res[i] = intPart(n.part, v)
			}
		}
	case tfTrunc:
		res := castBytes[int64](out.Bytes())[:rows]
		for i, v := range us {
			res[i] = truncMicros(n.part, v)
		}
	case tfEpochMs:
		res := castBytes[int64](out.Bytes())[:rows]
		for i, v := range us {
			res[i] = v / 1000 // toward zero, as DuckDB
		}
	case tfFromEpochMs:
		res := castBytes[int64](out.Bytes())[:rows]
		for i, v := range us {
			r := v * 1000
			if v > math.MaxInt64/1000 || v < math.MinInt64/1000 {
				if valid == nil || bitutil.BitIsSet(valid, off+i) {
					out.Release()
					return value{}, evalErrf(n.src, "%d milliseconds is out of the timestamp range", v)
				}
				r = 0
			}
			res[i] = r
		}
	}
	return value{arr: finish(n.dt, rows, validOf(ev.mem, arr), out)}, nil
}

// splitMicros returns the day number and the microseconds since midnight.
func splitMicros(v int64) (days, tod int64) {
	return FloorDiv(v, microsPerDay), floorMod(v, microsPerDay)
}

// isoWeek returns the ISO 8601 year and week of day number days.
func isoWeek(days int64) (year int64, week int64) {
	// The Thursday of the same ISO week decides the year.
	dow := floorMod(days+3, 7) // Monday = 0 (1970-01-01 was a Thursday)
	thu := days - dow + 3
	y, _, _ := civilFromDays(thu)
	jan1 := daysFromCivil(y, 1, 1)
	return y, (thu-jan1)/7 + 1
}

func intPart(p timePart, v int64) int64 {
	days, tod := splitMicros(v)
	switch p {
	case partHour:
		return tod / microsPerHour
	case partMinute:
		return tod / microsPerMin % 60
	case partSecond:
		return tod / microsPerSec % 60
	case partMillisecond:
		return tod % microsPerMin / 1000
	case partMicrosecond:
		return tod % microsPerMin
	case partDow:
		return floorMod(days+4, 7) // Sunday = 0
	case partIsodow:
		return floorMod(days+3, 7) + 1 // Monday = 1
	case partWeek:
		_, w := isoWeek(days)
		return w
	case partIsoyear:
		y, _ := isoWeek(days)
		return y
	case partYearweek:
		y, w := isoWeek(days)
		if y < 0 {
			return y*100 - w
		}
		return y*100 + w
	}
	y, m, d := civilFromDays(days)
	switch p {
	case partYear:
		return y
	case partMonth:
		return int64(m)
	case partDay:
		return int64(d)
	case partQuarter:
		return int64(m-1)/3 + 1
	case partDoy:
		return days - daysFromCivil(y, 1, 1) + 1
	case partDecade:
		return y / 10
	case partCentury:
		if y > 0 {
			return (y-1)/100 + 1
		}
		return -((-y)/100 + 1)
	case partMillennium:
		if y > 0 {
			return (y-1)/1000 + 1
		}
		return -((-y)/1000 + 1)
	case partEra:
		if y > 0 {
			return 1
		}
		return 0
	}
	return 0
}

func floatPart(p timePart, v int64) float64 {
	if p == partJulian {
		days, tod := splitMicros(v)
		return float64(days+2440588) + float64(tod)/microsPerDay
	}
	return float64(v) / microsPerSec // epoch
}

// truncMicros truncates microseconds v to the start of its part.
func truncMicros(p timePart, v int64) int64 {
	days, tod := splitMicros(v)
	switch p {
	case partMicrosecond:
		return v
	case partMillisecond:
		return v - floorMod(v, 1000)
	case partSecond:
		return v - floorMod(v, microsPerSec)
	case partMinute:
		return v - floorMod(v, microsPerMin)
	case partHour:
		return v - floorMod(v, microsPerHour)
	case partDay:
		return v - tod
	case partWeek:
		return (days - floorMod(days+3, 7)) * microsPerDay
	case partIsoyear:
		y, _ := isoWeek(days)
		jan4 := daysFromCivil(y, 1, 4)
		return (jan4 - floorMod(jan4+3, 7)) * microsPerDay
	}
	y, m, _ := civilFromDays(days)
	switch p {
	case partMonth:
		return daysFromCivil(y, m, 1) * microsPerDay
	case partQuarter:
		return daysFromCivil(y, (m-1)/3*3+1, 1) * microsPerDay
	case partYear:
		return daysFromCivil(y, 1, 1) * microsPerDay
	case partDecade:
		return daysFromCivil(y/10*10, 1, 1) * microsPerDay
	case partCentury:
		return daysFromCivil(y/100*100, 1, 1) * microsPerDay
	case partMillennium:
		return daysFromCivil(y/1000*1000, 1, 1) * microsPerDay
	}
	return v
}

// ---- extract(part FROM x) ----

// parseExtract parses EXTRACT(part FROM x) into date_part('part', x); the
// part may be a word or a string.
func (p *parser) parseExtract() (Expr, error) {
	start := p.tok.pos
	if err := p.advance(); err != nil { // EXTRACT
		return nil, err
	}
	if err := p.advance(); err != nil { // (
		return nil, err
	}
	t := p.tok
	if t.kind != tokIdent && t.kind != tokString {
		return nil, p.errf("expected a part (year, month, day...) in EXTRACT, found %s", t.describe())
	}
	part := &Literal{Pos: Pos{t.pos, t.end}, Kind: LitString, Str: strings.ToLower(t.text)}
	if err := p.advance(); err != nil {
		return nil, err
	}
	if !p.tok.is("FROM") {
		return nil, p.errf("expected FROM in EXTRACT, found %s", p.tok.describe())
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	x, err := p.parseExpr()
	if err != nil {
		return nil, err
	}
	end := p.tok.end
	if err := p.expect(")", " to close the EXTRACT"); err != nil {
		return nil, err
	}
	return &Call{Pos: Pos{start, end}, Name: "date_part", Args: []Expr{part, x}}, nil
}

// constStringArg reads a constant string argument (a format), or reports
// a *TypeError at its offset.
func (c *checker) constStringArg(e *Call, i int, n node, what string) (string, bool, error) {
	s, null, ok := constString(n)
	if !ok {
		return "", false, typeErrf(offset(e.Args[i]), "%s: the %s must be a constant string, got %s", e.Name, what, c.desc(e.Args[i], n))
	}
	return s, null, nil
}
