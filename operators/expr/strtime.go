package expr

import (
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// strftime and strptime with DuckDB's % specifiers:
//
//	%Y year            %y year in century   %m month 01-12      %d day 01-31
//	%H hour 00-23      %I hour 01-12        %p AM/PM            %M minute
//	%S second          %f microseconds (6)  %g milliseconds (3)  %n nanoseconds (9)
//	%j day of year     %b %a abbreviated month / weekday name   %B %A full name
//	%w weekday 0-6 (Sunday 0)  %u weekday 1-7 (Monday 1)
//	%U %W week of year (Sunday / Monday first)  %V %G ISO week and year
//	%z zone offset (+00)  %Z zone name  %c %x %X date and time, date, time
//	%% a percent sign; a '-' after % drops the padding (%-d)
//
// The format is a constant, compiled at Compile time: an unknown specifier
// is a *TypeError at the format's offset.

// fmtItem is one piece of a compiled format: literal text, or a specifier.
type fmtItem struct {
	lit   string
	spec  byte
	nopad bool
}

const fmtSpecs = "YymdHIpMSfgnjbBaAwuUWVGzZcxX%"

// compileFormat splits a format into items.
func compileFormat(f string) ([]fmtItem, error) {
	var items []fmtItem
	lit := 0
	for i := 0; i < len(f); i++ {
		if f[i] != '%' {
			continue
		}
		if lit < i {
			items = append(items, fmtItem{lit: f[lit:i]})
		}
		j := i + 1
		nopad := false
		if j < len(f) && f[j] == '-' {
			nopad, j = true, j+1
		}
		if j >= len(f) {
			return nil, fmt.Errorf("format %s ends in a lone %%", quoteString(f))
		}
		if strings.IndexByte(fmtSpecs, f[j]) < 0 {
			return nil, fmt.Errorf("unknown specifier %%%c in format %s (known: %%%s)", f[j], quoteString(f), strings.Join(strings.Split(fmtSpecs, ""), " %"))
		}
		items = append(items, fmtItem{spec: f[j], nopad: nopad})
		i, lit = j, j+1
	}
	if lit < len(f) {
		items = append(items, fmtItem{lit: f[lit:]})
	}
	return items, nil
}

var (
	monthNames = [12]string{"January", "February", "March", "April", "May", "June", "July",
		"August", "September", "October", "November", "December"}
	dayNames = [7]string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"}
)

func appendNum(dst []byte, v int64, width int, nopad bool) []byte {
	if nopad {
		width = 1
	}
	if v < 0 {
		dst = append(dst, '-')
		v = -v
	}
	return appendPad(dst, v, width)
}

// appendStrftime formats microseconds us by items.
func appendStrftime(dst []byte, items []fmtItem, us int64, zone string) []byte {
	days, tod := splitMicros(us)
	y, m, d := civilFromDays(days)
	for _, it := range items {
		if it.spec == 0 {
			dst = append(dst, it.lit...)
			continue
		}
		switch it.spec {
		case 'Y':
			dst = appendNum(dst, y, 4, it.nopad)
		case 'y':
			dst = appendNum(dst, floorMod(y, 100), 2, it.nopad)
		case 'm':
			dst = appendNum(dst, int64(m), 2, it.nopad)
		case 'd':
			dst = appendNum(dst, int64(d), 2, it.nopad)
		case 'H':
			dst = appendNum(dst, tod/microsPerHour, 2, it.nopad)
		case 'I':
			h := tod / microsPerHour % 12
			if h == 0 {
				h = 12
			}
			dst = appendNum(dst, h, 2, it.nopad)
		case 'p':
			if tod/microsPerHour < 12 {
				dst = append(dst, "AM"...)
			} else {
				dst = append(dst, "PM"...)
			}
		case 'M':
			dst = appendNum(dst, tod/microsPerMin%60, 2, it.nopad)
		case 'S':
			dst = appendNum(dst, tod/microsPerSec%60, 2, it.nopad)
		case 'f':
			dst = appendPad(dst, tod%microsPerSec, 6)
		case 'g':
			dst = appendPad(dst, tod%microsPerSec/1000, 3)
		case 'n':
			dst = appendPad(dst, tod%microsPerSec*1000, 9)
		case 'j':
			dst = appendNum(dst, days-daysFromCivil(y, 1, 1)+1, 3, it.nopad)
		case 'b':
			dst = append(dst, monthNames[m-1][:3]...)
		case 'B':
			dst = append(dst, monthNames[m-1]...)
		case 'a':
			dst = append(dst, dayNames[floorMod(days+4, 7)][:3]...)
		case 'A':
			dst = append(dst, dayNames[floorMod(days+4, 7)]...)
		case 'w':
			dst = appendNum(dst, floorMod(days+4, 7), 1, true)
		case 'u':
			dst = appendNum(dst, floorMod(days+3, 7)+1, 1, true)
		case 'U', 'W':
			// Week of the year, the first week starting on the year's first
			// Sunday (U) or Monday (W); days before it are week 0.
			doy := days - daysFromCivil(y, 1, 1)
			wd := floorMod(days+4, 7) // Sunday 0
			if it.spec == 'W' {
				wd = floorMod(days+3, 7) // Monday 0
			}
			dst = appendNum(dst, (doy+7-wd)/7, 2, it.nopad)
		case 'V':
			_, w := isoWeek(days)
			dst = appendNum(dst, w, 2, it.nopad)
		case 'G':
			iy, _ := isoWeek(days)
			dst = appendNum(dst, iy, 4, it.nopad)
		case 'z':
			dst = append(dst, "+00"...)
		case 'Z':
			dst = append(dst, zone...)
		case 'c':
			dst = appendStrftime(dst, isoItems, us, zone)
		case 'x':
			dst = appendStrftime(dst, isoItems[:5], us, zone)
		case 'X':
			dst = appendStrftime(dst, isoItems[6:], us, zone)
		case '%':
			dst = append(dst, '%')
		}
	}
	return dst
}

// isoItems is %Y-%m-%d %H:%M:%S, the expansion of %c (%x is its first
// five items, %X its last five).
var isoItems = []fmtItem{{spec: 'Y'}, {lit: "-"}, {spec: 'm'}, {lit: "-"}, {spec: 'd'}, {lit: " "},
	{spec: 'H'}, {lit: ":"}, {spec: 'M'}, {lit: ":"}, {spec: 'S'}}

func checkStrftime(c *checker, e *Call, args []node) (node, error) {
	xi, fi := 0, 1
	// DuckDB also takes strftime(format, x).
	if _, _, ok := constString(args[0]); ok && classOf(args[1].dtype()) != clsString {
		xi, fi = 1, 0
	}
	if err := c.timeArg(e, xi, args[xi]); err != nil {
		return nil, err
	}
	f, null, err := c.constStringArg(e, fi, args[fi], "format")
	if err != nil {
		return nil, err
	}
	items, err := compileFormat(f)
	if err != nil {
		return nil, typeErrf(offset(e.Args[fi]), "strftime: %v", err)
	}
	if null || isNullConst(args[xi]) {
		return nullOf(tString), nil
	}
	x, err := c.plainTime(args[xi], e.Args[xi])
	if err != nil {
		return nil, err
	}
	zone := ""
	if t, ok := x.dtype().(*arrow.TimestampType); ok {
		zone = t.TimeZone
	}
	return c.foldIf(&strftimeNode{x: x, items: items, zone: zone, src: c.text(e)}, e, x)
}

// strftimeNode is strftime(x, format).
type strftimeNode struct {
	x     node
	items []fmtItem
	zone  string
	src   string
}

func (n *strftimeNode) dtype() arrow.DataType { return tString }

func (n *strftimeNode) eval(ev *evaluator) (value, error) {
	arr, err := ev.evalArray(n.x)
	if err != nil {
		return value{}, err
	}
	defer arr.Release()
	us, release, err := microsOf(ev.mem, arr)
	if err != nil {
		return value{}, evalErrf(n.src, "%w", err)
	}
	defer release()
	return formatStrings(ev.mem, arr, func(dst []byte, i int) []byte {
		return appendStrftime(dst, n.items, us[i], n.zone)
	})
}

// ---- strptime ----

func checkStrptime(c *checker, e *Call, args []node) (node, error) {
	switch classOf(args[0].dtype()) {
	case clsString, clsNull:
	default:
		return nil, typeErrf(offset(e.Args[0]), "strptime needs a string, got %s", c.desc(e.Args[0], args[0]))
	}
	f, null, err := c.constStringArg(e, 1, args[1], "format")
	if err != nil {
		return nil, err
	}
	items, err := compileFormat(f)
	if err != nil {
		return nil, typeErrf(offset(e.Args[1]), "strptime: %v", err)
	}
	dt := &arrow.TimestampType{Unit: arrow.Microsecond}
	for _, it := range items {
		switch it.spec {
		case 'z':
			dt.TimeZone = "UTC"
		case 'n':
			dt.Unit = arrow.Nanosecond
		case 'c', 'x', 'X', 'U', 'W', 'V', 'G', 'u', 'w', 'Z':
			if it.spec != 'Z' {
				return nil, typeErrf(offset(e.Args[1]), "strptime: %%%c is not supported for parsing", it.spec)
			}
		}
	}
	if null || isNullConst(args[0]) {
		return nullOf(dt), nil
	}
	x, err := c.coerce(args[0], tString, e.Args[0])
	if err != nil {
		return nil, err
	}
	return c.foldIf(&strptimeNode{x: x, items: items, format: f, dt: dt, src: c.text(e)}, e, x)
}

// strptimeNode is strptime(s, format).
type strptimeNode struct {
	x      node
	items  []fmtItem
	format string
	dt     *arrow.TimestampType
	src    string
}

func (n *strptimeNode) dtype() arrow.DataType { return n.dt }

func (n *strptimeNode) eval(ev *evaluator) (value, error) {
	arr, err := ev.evalArray(n.x)
	if err != nil {
		return value{}, err
	}
	defer arr.Release()
	s := arr.(*array.String)
	rows := s.Len()
	out := newBuffer(ev.mem, rows*8)
	res := castBytes[int64](out.Bytes())[:rows]
	for i := range res {
		res[i] = 0
		if s.IsNull(i) {
			continue
		}
		v, ok := strptime(s.Value(i), n.items, n.dt.Unit == arrow.Nanosecond)
		if !ok {
			out.Release()
			return value{}, evalErrf(n.src, "could not parse string %s according to format %s", quoteString(s.Value(i)), quoteString(n.format))
		}
		res[i] = v
	}
	return value{arr: finish(n.dt, rows, validOf(ev.mem, arr), out)}, nil
}

// strptime parses s by items; it returns microseconds (nanoseconds when
// nanos) since the epoch, in UTC when the format has %z.
func strptime(s string, items []fmtItem, nanos bool) (int64, bool) {
	var (
		year      int64 = 1900
		month           = int64(1)
		day             = int64(1)
		doy             = int64(-1)
		hour, min int64
		sec, frac int64 // frac in nanoseconds
		pm        = -1  // -1: no %p
		offset    int64
	)
	i := 0
	num := func(maxDigits int) (int64, bool) {
		neg := false
		if i < len(s) && (s[i] == '-' || s[i] == '+') && maxDigits > 2 {
			neg, i = s[i] == '-', i+1
		}
		v, n := digits(s, i, maxDigits)
		if n == 0 {
			return 0, false
		}
		i += n
		if neg {
			v = -v
		}
		return v, true
	}
	name := func(names []string) (int64, bool) {
		for k, full := range names {
			for _, cand := range []string{full, full[:3]} {
				if len(s)-i >= len(cand) && strings.EqualFold(s[i:i+len(cand)], cand) {
					i += len(cand)
					return int64(k), true
				}
			}
		}
		return 0, false
	}
	var ok bool
	for _, it := range items {
		if it.spec == 0 {
			for k := 0; k < len(it.lit); k++ {
				c := it.lit[k]
				if c == ' ' {
					for i < len(s) && s[i] == ' ' {
						i++
					}
					continue
				}
				if i >= len(s) || s[i] != c {
					return 0, false
				}
				i++
			}
			continue
		}
		switch it.spec {
		case 'Y':
			year, ok = num(4)
		case 'y':
			var v int64
			if v, ok = num(2); ok {
				if v < 69 {
					year = 2000 + v
				} else {
					year = 1900 + v
				}
			}
		case 'm':
			month, ok = num(2)
		case 'd':
			day, ok = num(2)
		case 'H', 'I':
			hour, ok = num(2)
		case 'M':
			min, ok = num(2)
		case 'S':
			sec, ok = num(2)
		case 'j':
			doy, ok = num(3)
		case 'f', 'g', 'n':
			width := 9
			switch it.spec {
			case 'f':
				width = 6
			case 'g':
				width = 3
			}
			start := i
			var v int64
			if v, ok = num(width); ok {
				for k := i - start; k < 9; k++ {
					v *= 10
				}
				frac = v
			}
		case 'b', 'B':
			var k int64
			if k, ok = name(monthNames[:]); ok {
				month = k + 1
			}
		case 'a', 'A':
			_, ok = name(dayNames[:])
		case 'p':
			ok = len(s)-i >= 2
			if ok {
				switch strings.ToUpper(s[i : i+2]) {
				case "AM":
					pm = 0
				case "PM":
					pm = 1
				default:
					ok = false
				}
				i += 2
			}
		case 'z':
			ok = i < len(s)
			if ok && (s[i] == 'Z' || s[i] == 'z') {
				i++
				break
			}
			if ok = ok && (s[i] == '+' || s[i] == '-'); !ok {
				break
			}
			sign := int64(1)
			if s[i] == '-' {
				sign = -1
			}
			i++
			var oh, om int64
			var n int
			if oh, n = digits(s, i, 2); n != 2 {
				ok = false
				break
			}
			i += n
			if i < len(s) && s[i] == ':' {
				i++
			}
			if v, n := digits(s, i, 2); n == 2 {
				om, i = v, i+n
			}
			offset = sign * (oh*3600 + om*60)
		case 'Z':
			start := i
			for i < len(s) && (s[i] == '/' || s[i] == '_' || ('a' <= s[i]|0x20 && s[i]|0x20 <= 'z')) {
				i++
			}
			ok = i > start
		case '%':
			ok = i < len(s) && s[i] == '%'
			i++
		default:
			ok = false
		}
		if !ok {
			return 0, false
		}
	}
	for i < len(s) && s[i] == ' ' {
		i++
	}
	if i != len(s) {
		return 0, false
	}
	if pm >= 0 {
		if hour < 1 || hour > 12 {
			return 0, false
		}
		hour %= 12
		if pm == 1 {
			hour += 12
		}
	}
	if hour > 23 || min > 59 || sec > 60 {
		return 0, false
	}
	var days int64
	if doy >= 0 {
		if doy < 1 || doy > 365 || (doy == 366 && !isLeap(year)) {
			if doy != 366 {
				return 0, false
			}
		}
		days = daysFromCivil(year, 1, 1) + doy - 1
	} else {
		if month < 1 || month > 12 || day < 1 || day > int64(daysIn(year, int(month))) {
			return 0, false
		}
		days = daysFromCivil(year, int(month), int(day))
	}
	secs := days*secsPerDay + hour*3600 + min*60 + sec - offset
	if nanos {
		return secs*1_000_000_000 + frac, true
	}
	return secs*microsPerSec + frac/1000, true
}
