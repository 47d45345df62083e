package expr

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/scalar"

	"github.com/zflowdev/zflow/engine"
)

// Intervals, as DuckDB's INTERVAL: a constant of months, days and
// microseconds that dates and timestamps move by. Written
// INTERVAL 2 DAY, INTERVAL '90 minutes', INTERVAL '1 year 2 months',
// INTERVAL '01:30:00'. Adding months keeps the day of the month, clamped to
// the month's last day (Jan 31 + 1 month is Feb 29 in a leap year); then
// days are added on the calendar and the rest exactly.
//
// An interval is a constant only, typed month_day_nano_interval; it may be
// added to or subtracted from a date or timestamp, and is refused anywhere
// else (there are no interval columns or results).

func intervalScalar(iv Interval) scalar.Scalar {
	return scalar.NewMonthDayNanoIntervalScalar(arrow.MonthDayNanoInterval{
		Months: iv.Months, Days: iv.Days, Nanoseconds: iv.Micros * 1000,
	})
}

// String renders iv as DuckDB prints an INTERVAL: "1 year 2 months 3 days
// 04:05:06.5"; the empty interval is "00:00:00".
func (iv Interval) String() string {
	var parts []string
	plural := func(n int64, unit string) {
		if n == 0 {
			return
		}
		if n == 1 || n == -1 {
			parts = append(parts, fmt.Sprintf("%d %s", n, unit))
			return
		}
		parts = append(parts, fmt.Sprintf("%d %ss", n, unit))
	}
	plural(int64(iv.Months/12), "year")
	plural(int64(iv.Months%12), "month")
	plural(int64(iv.Days), "day")
	if iv.Micros != 0 || len(parts) == 0 {
		us := iv.Micros
		sign := ""
		if us < 0 {
			sign, us = "-", -us
		}
		t := fmt.Sprintf("%s%02d:%02d:%02d", sign, us/microsPerHour, us/microsPerMin%60, us/microsPerSec%60)
		if f := us % microsPerSec; f != 0 {
			t += strings.TrimRight(fmt.Sprintf(".%06d", f), "0")
		}
		parts = append(parts, t)
	}
	return strings.Join(parts, " ")
}

// intervalUnits maps the unit words of an interval (DuckDB's spellings) to
// months, days or microseconds per unit.
var intervalUnits = map[string]struct {
	months, days int64
	micros       int64
}{
	"millennium": {months: 12000}, "millennia": {months: 12000}, "millenniums": {months: 12000},
	"century": {months: 1200}, "centuries": {months: 1200},
	"decade": {months: 120}, "decades": {months: 120},
	"year": {months: 12}, "years": {months: 12}, "y": {months: 12}, "yr": {months: 12}, "yrs": {months: 12},
	"quarter": {months: 3}, "quarters": {months: 3},
	"month": {months: 1}, "months": {months: 1}, "mon": {months: 1}, "mons": {months: 1},
	"week": {days: 7}, "weeks": {days: 7}, "w": {days: 7},
	"day": {days: 1}, "days": {days: 1}, "d": {days: 1},
	"hour": {micros: microsPerHour}, "hours": {micros: microsPerHour}, "h": {micros: microsPerHour},
	"hr": {micros: microsPerHour}, "hrs": {micros: microsPerHour},
	"minute": {micros: microsPerMin}, "minutes": {micros: microsPerMin}, "m": {micros: microsPerMin},
	"min": {micros: microsPerMin}, "mins": {micros: microsPerMin},
	"second": {micros: microsPerSec}, "seconds": {micros: microsPerSec}, "s": {micros: microsPerSec},
	"sec": {micros: microsPerSec}, "secs": {micros: microsPerSec},
	"millisecond": {micros: 1000}, "milliseconds": {micros: 1000}, "ms": {micros: 1000},
	"msec": {micros: 1000}, "msecs": {micros: 1000},
	"microsecond": {micros: 1}, "microseconds": {micros: 1}, "us": {micros: 1},
	"usec": {micros: 1}, "usecs": {micros: 1},
}

// addUnits adds n units of unit to iv; a fraction of a month becomes days
// (30 to a month) and a fraction of a day microseconds, as in DuckDB.
func (iv *Interval) addUnits(n float64, unit string) error {
	u, ok := intervalUnits[strings.ToLower(unit)]
	if !ok {
		return fmt.Errorf("unknown interval unit %q", unit)
	}
	months, days, micros := float64(iv.Months), float64(iv.Days), float64(iv.Micros)
	switch {
	case u.months != 0:
		m := n * float64(u.months)
		whole := math.Trunc(m)
		months += whole
		d := (m - whole) * 30
		days += math.Trunc(d)
		micros += math.Round((d - math.Trunc(d)) * microsPerDay)
	case u.days != 0:
		d := n * float64(u.days)
		days += math.Trunc(d)
		micros += math.Round((d - math.Trunc(d)) * microsPerDay)
	default:
		micros += math.Round(n * float64(u.micros))
	}
	if math.Abs(months) > math.MaxInt32 || math.Abs(days) > math.MaxInt32 || math.Abs(micros) > 1<<62 {
		return fmt.Errorf("interval out of range")
	}
	iv.Months, iv.Days, iv.Micros = int32(months), int32(days), int64(micros)
	return nil
}

// parseIntervalText reads DuckDB's interval text: pairs of a number and a
// unit ("1 year 2 months", "1.5 hours"), and/or a time [-]HH:MM[:SS[.f]],
// with an optional trailing "ago" that negates the whole.
func parseIntervalText(s string) (Interval, error) {
	var iv Interval
	f := strings.Fields(s)
	if len(f) == 0 {
		return iv, fmt.Errorf("empty interval")
	}
	ago := false
	if strings.EqualFold(f[len(f)-1], "ago") {
		ago, f = true, f[:len(f)-1]
	}
	for i := 0; i < len(f); i++ {
		w := f[i]
		if strings.Contains(w, ":") {
			us, err := parseClock(w)
			if err != nil {
				return iv, err
			}
			iv.Micros += us
			continue
		}
		// A number glued to its unit ("5s", "2days") or followed by it.
		k := 0
		for k < len(w) && (isDigit(w[k]) || w[k] == '.' || w[k] == '-' || w[k] == '+') {
			k++
		}
		num, unit := w[:k], w[k:]
		if unit == "" {
			if i+1 >= len(f) {
				return iv, fmt.Errorf("number %s has no unit", num)
			}
			i++
			unit = f[i]
		}
		n, err := strconv.ParseFloat(num, 64)
		if err != nil {
			return iv, fmt.Errorf("expected a number, found %q", num)
		}
		if err := iv.addUnits(n, unit); err != nil {
			return iv, err
		}
	}
	if ago {
		iv = Interval{-iv.Months, -iv.Days, -iv.Micros}
	}
	return iv, nil
}

// parseClock reads [-]H:MM[:SS[.fraction]] as microseconds.
func parseClock(w string) (int64, error) {
	neg := strings.HasPrefix(w, "-")
	w = strings.TrimPrefix(strings.TrimPrefix(w, "-"), "+")
	parts := strings.Split(w, ":")
	if len(parts) > 3 {
		return 0, fmt.Errorf("invalid time %q in interval", w)
	}
	var us int64
	mult := []int64{microsPerHour, microsPerMin}
	for i, p := range parts {
		if i == 2 {
			sec, err := strconv.ParseFloat(p, 64)
			if err != nil || sec < 0 {
				return 0, fmt.Errorf("invalid seconds %q in interval", p)
			}
			us += int64(math.Round(sec * microsPerSec))
			continue
		}
		v, err := strconv.ParseInt(p, 10, 64)
		if err != nil || v < 0 || v > 1<<31 {
			return 0, fmt.Errorf("invalid time %q in interval", w)
		}
		us += v * mult[i]
	}
	if neg {
		us = -us
	}
	return us, nil
}

// parseInterval parses INTERVAL 'text', INTERVAL 'n' UNIT, INTERVAL n UNIT
// and INTERVAL (n) UNIT.
func (p *parser) parseInterval() (Expr, error) {
	start := p.tok.pos
	if err := p.advance(); err != nil { // INTERVAL
		return nil, err
	}
	var text string
	numeric := false
	switch {
	case p.tok.kind == tokString:
		text = p.tok.text
	case p.tok.is("("):
		if err := p.advance(); err != nil {
			return nil, err
		}
		neg := ""
		if p.tok.is("-") {
			neg = "-"
			if err := p.advance(); err != nil {
				return nil, err
			}
		}
		if p.tok.kind != tokInt && p.tok.kind != tokFloat {
			return nil, p.errf("expected a number in INTERVAL (...), found %s", p.tok.describe())
		}
		text, numeric = neg+p.tok.text, true
		if err := p.advance(); err != nil {
			return nil, err
		}
		if !p.tok.is(")") {
			return nil, p.errf("expected ) in INTERVAL (...), found %s", p.tok.describe())
		}
	default:
		neg := ""
		if p.tok.is("-") {
			neg = "-"
			if err := p.advance(); err != nil {
				return nil, err
			}
		}
		if p.tok.kind != tokInt {
			return nil, p.errf("expected an integer or a string after INTERVAL, found %s", p.tok.describe())
		}
		text, numeric = neg+p.tok.text, true
	}
	textPos, end := p.tok.pos, p.tok.end
	if err := p.advance(); err != nil {
		return nil, err
	}
	var iv Interval
	if p.tok.kind == tokIdent {
		if _, ok := intervalUnits[strings.ToLower(p.tok.text)]; ok && !isKeyword(p.tok.text) {
			n, err := strconv.ParseFloat(strings.TrimSpace(text), 64)
			if err != nil {
				return nil, &SyntaxError{Offset: textPos, Msg: fmt.Sprintf("INTERVAL %s %s: %s is not a number", quoteString(text), p.tok.text, quoteString(text))}
			}
			if err := iv.addUnits(n, p.tok.text); err != nil {
				return nil, p.errf("%v", err)
			}
			end = p.tok.end
			return &Literal{Pos: Pos{start, end}, Kind: LitInterval, Interval: iv}, p.advance()
		}
	}
	if numeric {
		return nil, p.errf("expected an interval unit (year, month, day, hour, minute, second...) after INTERVAL %s, found %s", text, p.tok.describe())
	}
	iv, err := parseIntervalText(text)
	if err != nil {
		if s := suggestUnit(text); s != "" {
			err = fmt.Errorf("%v, did you mean %q?", err, s)
		}
		return nil, &SyntaxError{Offset: textPos, Msg: fmt.Sprintf("invalid interval %s: %v", quoteString(text), err)}
	}
	return &Literal{Pos: Pos{start, end}, Kind: LitInterval, Interval: iv}, nil
}

// suggestUnit finds a unit near an unknown word of an interval text.
func suggestUnit(text string) string {
	units := make([]string, 0, len(intervalUnits))
	for u := range intervalUnits {
		if len(u) > 3 {
			units = append(units, u)
		}
	}
	for _, w := range strings.Fields(text) {
		if _, ok := intervalUnits[strings.ToLower(w)]; ok || strings.ContainsAny(w, "0123456789") {
			continue
		}
		if s := engine.Suggest(w, units); s != "" {
			return s
		}
	}
	return ""
}

// ---- arithmetic ----

// addMonths moves day number days by months on the calendar, clamping the
// day of the month.
func addMonths(days int64, months int64) int64 {
	if months == 0 {
		return days
	}
	y, m, d := civilFromDays(days)
	total := y*12 + int64(m-1) + months
	ny, nm := FloorDiv(total, 12), int(floorMod(total, 12))+1
	if dim := daysIn(ny, nm); d > dim {
		d = dim
	}
	return daysFromCivil(ny, nm, d)
}

// intervalNode is t ± interval for a timestamp t (a date is cast to a
// timestamp first), one pass over the values.
type intervalNode struct {
	x   node
	iv  Interval // already negated for -
	dt  *arrow.TimestampType
	src string
}

func (n *intervalNode) dtype() arrow.DataType { return n.dt }

func (n *intervalNode) eval(ev *evaluator) (value, error) {
	arr, err := ev.evalArray(n.x)
	if err != nil {
		return value{}, err
	}
	defer arr.Release()
	rows := arr.Len()
	d := arr.Data()
	src := castBytes[int64](d.Buffers()[1].Bytes())[d.Offset() : d.Offset()+rows]
	out := newBuffer(ev.mem, rows*8)
	dst := castBytes[int64](out.Bytes())[:rows]
	per := unitsPerSec(n.dt.Unit)
	perDay := per * secsPerDay
	exact, ok := scaleTicks(n.iv.Micros, microsPerSec, per)
	if !ok {
		out.Release()
		return value{}, evalErrf(n.src, "interval out of range for %s", sqlTypeName(n.dt))
	}
	var valid []byte
	if arr.NullN() > 0 {
		valid = arr.NullBitmapBytes()
	}
	calendar := n.iv.Months != 0 || n.iv.Days != 0
	for i, v := range src {
		inRange := true
		if calendar {
			days, tod := FloorDiv(v, perDay), floorMod(v, perDay)
			days = addMonths(days, int64(n.iv.Months)) + int64(n.iv.Days)
			inRange = days > math.MinInt64/perDay+1 && days < math.MaxInt64/perDay-1
			v = days*perDay + tod
		}
		r := v + exact
		if (exact > 0 && r < v) || (exact < 0 && r > v) || !inRange {
			if valid == nil || bitutil.BitIsSet(valid, d.Offset()+i) {
				out.Release()
				return value{}, evalErrf(n.src, "result out of range for %s", sqlTypeName(n.dt))
			}
		}
		dst[i] = r
	}
	return value{arr: finish(n.dt, rows, validOf(ev.mem, arr), out)}, nil
}

// dateArithNode is date ± integer days (a date) or date - date (BIGINT days).
type dateArithNode struct {
	l, r node // date32, and int64 or date32
	sub  bool
	dt   arrow.DataType
	src  string
}

func (n *dateArithNode) dtype() arrow.DataType { return n.dt }

func (n *dateArithNode) eval(ev *evaluator) (value, error) {
	return ev.evalBinary(n.l, n.r, n.dt, func(l, r value) (value, error) {
		rows := ev.n
		lv, lm := operand[int32](l)
		valid := ev.validity2(l, r)
		if n.dt.ID() == arrow.INT64 { // date - date
			rv, rm := operand[int32](r)
			out := newBuffer(ev.mem, rows*8)
			res := castBytes[int64](out.Bytes())[:rows]
			for i := range res {
				res[i] = int64(lv[i&lm]) - int64(rv[i&rm])
			}
			return value{arr: finish(n.dt, rows, valid, out)}, nil
		}
		rv, rm := operand[int64](r)
		out := newBuffer(ev.mem, rows*4)
		res := castBytes[int32](out.Bytes())[:rows]
		bad := -1
		for i := range res {
			k := rv[i&rm]
			if n.sub {
				k = -k
			}
			s := int64(lv[i&lm]) + k
			if s < math.MinInt32 || s > math.MaxInt32 || (k == math.MinInt64) {
				if bad < 0 && (valid == nil || bitutil.BitIsSet(valid.Bytes(), i)) {
					bad = i
				}
				s = 0
			}
			res[i] = int32(s)
		}
		if bad >= 0 {
			out.Release()
			if valid != nil {
				valid.Release()
			}
			return value{}, evalErrf(n.src, "date out of range")
		}
		return value{arr: finish(n.dt, rows, valid, out)}, nil
	})
}

// timeArith types + and - when an operand is a date, a timestamp or an
// interval; ok is false when neither is (the numeric case).
func (c *checker) timeArith(e *Binary, l, r node) (node, bool, error) {
	lc, rc := classOf(l.dtype()), classOf(r.dtype())
	timeish := func(k class) bool { return k == clsDate || k == clsTimestamp || k == clsInterval }
	if !timeish(lc) && !timeish(rc) {
		return nil, false, nil
	}
	bad := func() (node, bool, error) {
		return nil, true, typeErrf(e.Start, "operator %s does not apply to %s and %s", e.Op, c.desc(e.L, l), c.desc(e.R, r))
	}
	if n, ok, err := c.intervalConst(e, l, r); ok {
		return n, true, err
	}
	if e.Op != "+" && e.Op != "-" {
		return nil, false, nil // the numeric check names the operand
	}
	sub := e.Op == "-"
	// interval + t is t + interval.
	if lc == clsInterval && !sub && (rc == clsDate || rc == clsTimestamp || rc == clsNull) {
		l, r, lc, rc = r, l, rc, lc
		e = &Binary{Pos: e.Pos, Op: e.Op, L: e.R, R: e.L}
	}
	for _, k := range []struct {
		n node
		e Expr
	}{{l, e.L}, {r, e.R}} {
		if classOf(k.n.dtype()) == clsInterval && !isConst(k.n) {
			return nil, true, typeErrf(offset(k.e), "an interval must be a constant, got %s", c.desc(k.e, k.n))
		}
	}
	switch {
	case (lc == clsDate || lc == clsTimestamp) && rc == clsInterval:
		iv := r.(*constNode).sc.(*scalar.MonthDayNanoInterval).Value
		in := Interval{Months: iv.Months, Days: iv.Days, Micros: iv.Nanoseconds / 1000}
		if sub {
			in = Interval{-in.Months, -in.Days, -in.Micros}
		}
		// DuckDB: the result is a TIMESTAMP (microseconds) whatever the
		// unit, keeping a time zone.
		dt := tTimestampUS
		if lc == clsTimestamp {
			dt = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: canonical(l.dtype()).(*arrow.TimestampType).TimeZone}
		}
		x, err := c.coerce(l, dt, e.L)
		if err != nil {
			return nil, true, err
		}
		if isNullConst(x) {
			return nullOf(dt), true, nil
		}
		n, err := c.foldIf(&intervalNode{x: x, iv: in, dt: dt, src: c.text(e)}, e, x)
		return n, true, err
	case lc == clsDate && (rc == clsInt || rc == clsNull):
		return c.dateArith(e, l, r, sub, tDate32, tInt64)
	case lc == clsInt && rc == clsDate && !sub:
		return c.dateArith(&Binary{Pos: e.Pos, Op: e.Op, L: e.R, R: e.L}, r, l, false, tDate32, tInt64)
	case lc == clsDate && rc == clsDate && sub:
		return c.dateArith(e, l, r, true, tInt64, tDate32)
	case lc == clsNull && (rc == clsDate || rc == clsTimestamp) && !sub:
		return c.timeArith(&Binary{Pos: e.Pos, Op: e.Op, L: e.R, R: e.L}, r, l)
	case lc == clsTimestamp && rc == clsTimestamp && sub:
		return nil, true, typeErrf(e.Start, "%s gives an interval, which cannot be a result here; use epoch_ms(a) - epoch_ms(b)", c.text(e))
	}
	return bad()
}

func (c *checker) dateArith(e *Binary, l, r node, sub bool, dt, rdt arrow.DataType) (node, bool, error) {
	if isNullConst(l) || isNullConst(r) {
		return nullOf(dt), true, nil
	}
	l, err := c.coerce(l, tDate32, e.L)
	if err != nil {
		return nil, true, err
	}
	if r, err = c.coerce(r, rdt, e.R); err != nil {
		return nil, true, err
	}
	n, err := c.foldIf(&dateArithNode{l: l, r: r, sub: sub, dt: dt, src: c.text(e)}, e, l, r)
	return n, true, err
}

// constInterval returns the value of an interval constant.
func constInterval(n node) (Interval, bool) {
	k, ok := n.(*constNode)
	if !ok || !k.sc.IsValid() {
		return Interval{}, false
	}
	sc, ok := k.sc.(*scalar.MonthDayNanoInterval)
	if !ok {
		return Interval{}, false
	}
	return Interval{Months: sc.Value.Months, Days: sc.Value.Days, Micros: sc.Value.Nanoseconds / 1000}, true
}

// intervalConst folds interval ± interval and interval * number (either
// order) into one interval constant, as DuckDB computes them: a fraction of
// a month becomes days (30 to a month), a fraction of a day microseconds.
// ok is false when neither operand is an interval.
func (c *checker) intervalConst(e *Binary, l, r node) (node, bool, error) {
	li, lok := constInterval(l)
	ri, rok := constInterval(r)
	switch {
	case lok && rok && (e.Op == "+" || e.Op == "-"):
		sign := int64(1)
		if e.Op == "-" {
			sign = -1
		}
		m := int64(li.Months) + sign*int64(ri.Months)
		d := int64(li.Days) + sign*int64(ri.Days)
		us := li.Micros + sign*ri.Micros
		if m != int64(int32(m)) || d != int64(int32(d)) {
			return nil, true, typeErrf(e.Start, "%s: interval out of range", c.text(e))
		}
		return &constNode{sc: intervalScalar(Interval{int32(m), int32(d), us})}, true, nil
	case e.Op == "*" && (lok || rok):
		iv, k, ke := li, r, e.R
		if !lok {
			iv, k, ke = ri, l, e.L
		}
		f, ok := constNumber(k)
		if !ok {
			return nil, true, typeErrf(offset(ke), "an interval may only be multiplied by a constant number, got %s", c.desc(ke, k))
		}
		out, err := iv.scale(f)
		if err != nil {
			return nil, true, typeErrf(e.Start, "%s: %v", c.text(e), err)
		}
		return &constNode{sc: intervalScalar(out)}, true, nil
	}
	return nil, false, nil
}

// constNumber returns the value of a numeric constant.
func constNumber(n node) (float64, bool) {
	k, ok := n.(*constNode)
	if !ok || !k.sc.IsValid() {
		return 0, false
	}
	switch sc := k.sc.(type) {
	case *scalar.Int64:
		return float64(sc.Value), true
	case *scalar.Float64:
		return sc.Value, true
	}
	return 0, false
}

// scale multiplies iv by f.
func (iv Interval) scale(f float64) (Interval, error) {
	var out Interval
	m := float64(iv.Months) * f
	wm := math.Trunc(m)
	d := float64(iv.Days)*f + (m-wm)*30
	wd := math.Trunc(d)
	us := float64(iv.Micros)*f + (d-wd)*microsPerDay
	if math.Abs(wm) > math.MaxInt32 || math.Abs(wd) > math.MaxInt32 || math.Abs(us) > 1<<62 || math.IsNaN(us) {
		return out, fmt.Errorf("interval out of range")
	}
	out.Months, out.Days, out.Micros = int32(wm), int32(wd), int64(math.Round(us))
	return out, nil
}
