package expr

import (
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
)

// Calendar arithmetic on day numbers (days since 1970-01-01, proleptic
// Gregorian, as Arrow's date32 and DuckDB's DATE count them) and the text
// forms of dates and timestamps DuckDB reads and writes. Everything here
// works on integers: no time.Time, no allocation, so the cast and function
// kernels can call it per row.

const (
	microsPerSec  = 1_000_000
	microsPerMin  = 60 * microsPerSec
	microsPerHour = 60 * microsPerMin
	microsPerDay  = 24 * microsPerHour
	secsPerDay    = 86400
)

// daysFromCivil returns the day number of y-m-d (Howard Hinnant's
// days_from_civil).
func daysFromCivil(y int64, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := FloorDiv(y, 400)
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := int64((153*mp+2)/5 + d - 1)
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// civilFromDays is the inverse of daysFromCivil.
func civilFromDays(z int64) (y int64, m, d int) {
	z += 719468
	era := FloorDiv(z, 146097)
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y = yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = int(doy - (153*mp+2)/5 + 1)
	m = int(mp + 3)
	if m > 12 {
		m -= 12
	}
	if m <= 2 {
		y++
	}
	return y, m, d
}

// FloorDiv is a / b rounded toward negative infinity (Go's / truncates):
// the bucket of a time before the epoch is the one below.
func FloorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func floorMod(a, b int64) int64 { return a - FloorDiv(a, b)*b }

func isLeap(y int64) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

func daysIn(y int64, m int) int {
	switch m {
	case 2:
		if isLeap(y) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// unitsPerSec is the number of ticks of unit u in one second.
func unitsPerSec(u arrow.TimeUnit) int64 {
	switch u {
	case arrow.Second:
		return 1
	case arrow.Millisecond:
		return 1_000
	case arrow.Microsecond:
		return 1_000_000
	}
	return 1_000_000_000
}

// dateTime is a parsed date and time of day; nanos is the fraction of the
// second, offset the zone offset in seconds east of UTC.
type dateTime struct {
	days      int64
	secs      int64 // seconds since midnight
	nanos     int64
	offset    int64
	hasTime   bool
	hasOffset bool
}

// parseErr is the error of a date or timestamp text that does not parse;
// the kernels wrap it with the value and the expression.
type parseErr string

func (e parseErr) Error() string { return string(e) }

// digits reads 1 to max ASCII digits of s from i; n is how many it read.
func digits(s string, i, max int) (v int64, n int) {
	for n < max && i+n < len(s) && isDigit(s[i+n]) {
		v = v*10 + int64(s[i+n]-'0')
		n++
	}
	return v, n
}

func trimSpace(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t' || s[0] == '\n' || s[0] == '\r') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t' || s[len(s)-1] == '\n' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	return s
}

// parseDateTime reads DuckDB's text forms of a date or timestamp, spaces
// around it allowed: YYYY-MM-DD, then optionally ' ' or 'T' and
// HH:MM[:SS[.fraction]], then optionally a zone: Z, UTC, ±HH, ±HH:MM, ±HHMM.
// Fraction digits past nanoseconds are dropped. A DATE reads the same text
// and ignores the time, which must still be valid.
func parseDateTime(s string) (dateTime, error) {
	var dt dateTime
	s = trimSpace(s)
	i := 0
	neg := false
	if i < len(s) && (s[i] == '-' || s[i] == '+') {
		neg = s[i] == '-'
		i++
	}
	y, n := digits(s, i, 9)
	if n < 1 {
		return dt, parseErr("expected a year")
	}
	if neg {
		y = -y
	}
	i += n
	if i >= len(s) || s[i] != '-' {
		return dt, parseErr("expected '-' after the year")
	}
	i++
	mo, n := digits(s, i, 2)
	if n < 1 {
		return dt, parseErr("expected a month")
	}
	i += n
	if i >= len(s) || s[i] != '-' {
		return dt, parseErr("expected '-' after the month")
	}
	i++
	d, n := digits(s, i, 2)
	if n < 1 {
		return dt, parseErr("expected a day")
	}
	i += n
	if mo < 1 || mo > 12 || d < 1 || int(d) > daysIn(y, int(mo)) {
		return dt, parseErr("date field value out of range")
	}
	dt.days = daysFromCivil(y, int(mo), int(d))
	if i == len(s) {
		return dt, nil
	}
	if s[i] != ' ' && s[i] != 'T' {
		return dt, parseErr("unexpected text after the date")
	}
	i++
	for i < len(s) && s[i] == ' ' {
		i++
	}
	h, n := digits(s, i, 2)
	if n < 1 {
		return dt, parseErr("expected an hour")
	}
	i += n
	if i >= len(s) || s[i] != ':' {
		return dt, parseErr("expected ':' after the hour")
	}
	i++
	mi, n := digits(s, i, 2)
	if n != 2 {
		return dt, parseErr("expected two digits of minutes")
	}
	i += n
	var sec int64
	if i < len(s) && s[i] == ':' {
		i++
		if sec, n = digits(s, i, 2); n != 2 {
			return dt, parseErr("expected two digits of seconds")
		}
		i += n
		if i < len(s) && s[i] == '.' {
			i++
			start := i
			var frac int64
			for i < len(s) && isDigit(s[i]) {
				if i-start < 9 {
					frac = frac*10 + int64(s[i]-'0')
				}
				i++
			}
			if i == start {
				return dt, parseErr("expected digits after '.'")
			}
			for k := i - start; k < 9; k++ {
				frac *= 10
			}
			dt.nanos = frac
		}
	}
	if h > 24 || mi > 59 || sec > 59 || (h == 24 && (mi != 0 || sec != 0 || dt.nanos != 0)) {
		return dt, parseErr("time field value out of range")
	}
	dt.secs, dt.hasTime = h*3600+mi*60+sec, true
	for i < len(s) && s[i] == ' ' {
		i++
	}
	if i == len(s) {
		return dt, nil
	}
	switch {
	case s[i:] == "Z" || s[i:] == "z" || s[i:] == "UTC" || s[i:] == "utc":
		dt.hasOffset = true
		return dt, nil
	case s[i] == '+' || s[i] == '-':
		sign := int64(1)
		if s[i] == '-' {
			sign = -1
		}
		i++
		oh, n := digits(s, i, 2)
		if n != 2 {
			return dt, parseErr("expected two digits of zone hours")
		}
		i += n
		var om int64
		if i < len(s) && s[i] == ':' {
			i++
		}
		if i < len(s) {
			if om, n = digits(s, i, 2); n != 2 {
				return dt, parseErr("expected two digits of zone minutes")
			}
			i += n
		}
		if i != len(s) || oh > 15 || om > 59 {
			return dt, parseErr("invalid zone offset")
		}
		dt.offset, dt.hasOffset = sign*(oh*3600+om*60), true
		return dt, nil
	}
	return dt, parseErr("unexpected text after the time")
}

// toUnit returns dt as ticks of u since the epoch (wall clock, or UTC when
// utc and dt has an offset), truncating finer digits; ok is false when it
// does not fit in int64.
func (dt dateTime) toUnit(u arrow.TimeUnit, utc bool) (int64, bool) {
	secs := dt.secs
	if utc {
		secs -= dt.offset
	}
	per := unitsPerSec(u)
	frac := dt.nanos / (1_000_000_000 / per)
	days := dt.days
	// days*86400*per + secs*per + frac, checked.
	const lim = 1 << 62
	if days > lim/secsPerDay/per || days < -lim/secsPerDay/per {
		return 0, false
	}
	return (days*secsPerDay+secs)*per + frac, true
}

// appendDate appends day number days as DuckDB writes a DATE:
// YYYY-MM-DD, with " (BC)" for years before 1 (year 0 is 1 BC).
func appendDate(dst []byte, days int64) []byte {
	dst, bc := appendYMD(dst, days)
	if bc {
		dst = append(dst, " (BC)"...)
	}
	return dst
}

// appendYMD appends day number days as YYYY-MM-DD, a year before 1 as
// its number BC (year 0 is 1 BC); bc says it was, for the caller to
// append " (BC)" after whatever follows the date.
func appendYMD(dst []byte, days int64) ([]byte, bool) {
	y, m, d := civilFromDays(days)
	bc := y <= 0
	if bc {
		y = 1 - y
	}
	dst = appendPad(dst, y, 4)
	dst = append(dst, '-')
	dst = appendPad(dst, int64(m), 2)
	dst = append(dst, '-')
	dst = appendPad(dst, int64(d), 2)
	return dst, bc
}

func appendPad(dst []byte, v int64, width int) []byte {
	var buf [20]byte
	s := strconv.AppendInt(buf[:0], v, 10)
	for k := len(s); k < width; k++ {
		dst = append(dst, '0')
	}
	return append(dst, s...)
}

// appendTimestamp appends ticks v of unit u as DuckDB writes a TIMESTAMP:
// YYYY-MM-DD HH:MM:SS[.fraction without trailing zeros]; zone adds "+00"
// (a TIMESTAMPTZ shown in UTC).
func appendTimestamp(dst []byte, v int64, u arrow.TimeUnit, zone bool) []byte {
	per := unitsPerSec(u)
	secs, frac := FloorDiv(v, per), floorMod(v, per)
	days, sod := FloorDiv(secs, secsPerDay), floorMod(secs, secsPerDay)
	dst, bc := appendYMD(dst, days)
	dst = append(dst, ' ')
	dst = appendPad(dst, sod/3600, 2)
	dst = append(dst, ':')
	dst = appendPad(dst, sod/60%60, 2)
	dst = append(dst, ':')
	dst = appendPad(dst, sod%60, 2)
	if frac != 0 {
		width := 0
		for p := per; p > 1; p /= 10 {
			width++
		}
		for frac%10 == 0 {
			frac /= 10
			width--
		}
		dst = append(dst, '.')
		dst = appendPad(dst, frac, width)
	}
	if zone {
		dst = append(dst, "+00"...)
	}
	if bc {
		dst = append(dst, " (BC)"...)
	}
	return dst
}
