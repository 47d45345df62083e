package fastts

// pow10 holds 10^0 … 10^9.
var pow10 = [...]int64{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9}

// Date parses b as YYYY-MM-DD and returns the days since 1970-01-01.
func Date(b []byte) (days int64, ok bool) {
	if len(b) != 10 {
		return 0, false
	}
	return date(b)
}

// date parses the YYYY-MM-DD at the start of b, which has at least 10 bytes.
func date(b []byte) (int64, bool) {
	_ = b[9]
	y0, y1, y2, y3 := b[0]-'0', b[1]-'0', b[2]-'0', b[3]-'0'
	m0, m1, d0, d1 := b[5]-'0', b[6]-'0', b[8]-'0', b[9]-'0'
	if y0 > 9 || y1 > 9 || y2 > 9 || y3 > 9 || m0 > 9 || m1 > 9 || d0 > 9 || d1 > 9 || b[4] != '-' || b[7] != '-' {
		return 0, false
	}
	y := int64(y0)*1000 + int64(y1)*100 + int64(y2)*10 + int64(y3)
	m := int64(m0)*10 + int64(m1)
	d := int64(d0)*10 + int64(d1)
	if m < 1 || m > 12 || d < 1 || d > daysIn(m, y) {
		return 0, false
	}
	return daysFromCivil(uint32(y), uint32(m), uint32(d)), true
}

// daysFromCivil returns the days from 1970-01-01 to year y (0-9999), month
// m (1-12), day d of the proleptic Gregorian calendar: Hinnant's
// days_from_civil with the year shifted by one era of 400 years, so that
// all the arithmetic is on small unsigned numbers.
func daysFromCivil(y, m, d uint32) int64 {
	y += 400
	mp := m - 3
	if m <= 2 {
		y--
		mp = m + 9
	}
	era := y / 400
	yoe := y - era*400
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468 - 146097
}

// daysIn is the number of days of month m (1-12) of year y.
func daysIn(m, y int64) int64 {
	if m == 2 {
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	}
	return 30 + (m+m>>3)&1 // 31 in Jan, Mar, May, Jul, Aug, Oct, Dec
}

// Timestamp parses b as one of the package's shapes and returns it as a
// count of 10^-scale seconds since 1970-01-01T00:00:00Z: scale is 0 for
// seconds, 3 for milliseconds, 6 for microseconds, 9 for nanoseconds. A
// value with no zone is UTC. It refuses a fraction with more digits than
// scale and a value the unit cannot hold.
func Timestamp(b []byte, scale int) (int64, bool) {
	if len(b) < 10 || uint(scale) > 9 {
		return 0, false
	}
	days, ok := date(b)
	if !ok {
		return 0, false
	}
	if len(b) == 10 {
		return scaled(days*86400, 0, scale)
	}
	if len(b) < 19 || (b[10] != 'T' && b[10] != ' ') || b[13] != ':' || b[16] != ':' {
		return 0, false
	}
	h0, h1, n0, n1, s0, s1 := b[11]-'0', b[12]-'0', b[14]-'0', b[15]-'0', b[17]-'0', b[18]-'0'
	if h0 > 9 || h1 > 9 || n0 > 9 || n1 > 9 || s0 > 9 || s1 > 9 {
		return 0, false
	}
	hh, mm, ss := int64(h0)*10+int64(h1), int64(n0)*10+int64(n1), int64(s0)*10+int64(s1)
	if hh > 23 || mm > 59 || ss > 59 {
		return 0, false
	}
	sec := days*86400 + hh*3600 + mm*60 + ss
	i := 19
	var frac int64
	if i < len(b) && b[i] == '.' {
		i++
		start := i
		for i < len(b) && b[i]-'0' <= 9 {
			frac = frac*10 + int64(b[i]-'0')
			i++
		}
		n := i - start
		if n == 0 || n > scale {
			return 0, false
		}
		frac *= pow10[scale-n]
	}
	switch rest := b[i:]; len(rest) {
	case 0:
	case 1:
		if rest[0] != 'Z' {
			return 0, false
		}
	case 5, 6: // ±HHMM, ±HH:MM
		var z0, z1, z2, z3 byte
		if len(rest) == 5 {
			z0, z1, z2, z3 = rest[1]-'0', rest[2]-'0', rest[3]-'0', rest[4]-'0'
		} else {
			if rest[3] != ':' {
				return 0, false
			}
			z0, z1, z2, z3 = rest[1]-'0', rest[2]-'0', rest[4]-'0', rest[5]-'0'
		}
		if z0 > 9 || z1 > 9 || z2 > 9 || z3 > 9 {
			return 0, false
		}
		zh, zm := int64(z0)*10+int64(z1), int64(z2)*10+int64(z3)
		if zh > 23 || zm > 59 {
			return 0, false
		}
		off := zh*3600 + zm*60
		switch rest[0] {
		case '+':
			sec -= off
		case '-':
			sec += off
		default:
			return 0, false
		}
	default:
		return 0, false
	}
	return scaled(sec, frac, scale)
}

// scaled returns sec·10^scale + frac, refusing what would overflow.
// Years 0000-9999 fit at every scale below 9; at 9 only about 1678-2261 do.
func scaled(sec, frac int64, scale int) (int64, bool) {
	const maxNanoSec = 9223372036 // MaxInt64 / 1e9
	if scale == 9 && (sec >= maxNanoSec || sec <= -maxNanoSec) {
		return 0, false
	}
	return sec*pow10[scale] + frac, true
}
