package fastts

import (
	"fmt"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
)

var units = []struct {
	scale int
	unit  arrow.TimeUnit
}{{0, arrow.Second}, {3, arrow.Millisecond}, {6, arrow.Microsecond}, {9, arrow.Nanosecond}}

func TestTimestamp(t *testing.T) {
	us := func(s string) int64 {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm.UnixMicro()
	}
	for _, tc := range []struct {
		in   string
		want int64 // µs; ignored unless ok
		ok   bool
	}{
		{"1970-01-01T00:00:00Z", 0, true},
		{"1970-01-01", 0, true},
		{"2024-01-02T09:30:00.001Z", us("2024-01-02T09:30:00.001Z"), true},
		{"2024-01-02 09:30:00.001", us("2024-01-02T09:30:00.001Z"), true},
		{"2024-01-02T09:30:00.5", us("2024-01-02T09:30:00.5Z"), true},
		{"2024-01-02T09:30:00.123456Z", us("2024-01-02T09:30:00.123456Z"), true},
		{"2024-01-02T03:04:05+01:00", us("2024-01-02T02:04:05Z"), true},
		{"2024-01-02T03:04:05-0130", us("2024-01-02T04:34:05Z"), true},
		{"2024-01-02T03:04:05.25-00:00", us("2024-01-02T03:04:05.25Z"), true},
		{"1969-12-31T23:59:59.999999Z", -1, true},
		{"1900-03-01T00:00:00Z", us("1900-03-01T00:00:00Z"), true},
		{"0000-01-01T00:00:00Z", us("0000-01-01T00:00:00Z"), true},
		{"0000-02-29T00:00:00Z", us("0000-02-29T00:00:00Z"), true}, // year 0 is a leap year
		{"9999-12-31T23:59:59.999999Z", us("9999-12-31T23:59:59.999999Z"), true},
		{"2000-02-29T12:00:00Z", us("2000-02-29T12:00:00Z"), true},
		{"2024-02-29T00:00:00Z", us("2024-02-29T00:00:00Z"), true},
		{"2024-12-31T23:59:59Z", us("2024-12-31T23:59:59Z"), true},

		// refused: invalid, or left to the slow path
		{"2023-02-29T00:00:00Z", 0, false},
		{"1900-02-29T00:00:00Z", 0, false},
		{"2024-04-31T00:00:00Z", 0, false},
		{"2024-13-01T00:00:00Z", 0, false},
		{"2024-00-01T00:00:00Z", 0, false},
		{"2024-01-00T00:00:00Z", 0, false},
		{"2024-01-02T24:00:00Z", 0, false},
		{"2024-01-02T23:60:00Z", 0, false},
		{"2016-12-31T23:59:60Z", 0, false},         // leap second: time.Parse rejects it too
		{"2024-01-02T03:04:05.1234567Z", 0, false}, // more digits than µs
		{"2024-01-02T03:04:05.Z", 0, false},
		{"2024-01-02T03:04:05,5Z", 0, false},
		{"2024-01-02T03:04:05z", 0, false},
		{"2024-01-02t03:04:05Z", 0, false},
		{"2024-01-02T03:04:05+24:00", 0, false},
		{"2024-01-02T03:04:05+01:60", 0, false},
		{"2024-01-02T03:04:05+01", 0, false},
		{"2024-01-02T03:04:05+01:00:00", 0, false},
		{"2024-01-02T03:04:05+01-00", 0, false},
		{"2024-01-02T03:04", 0, false},
		{"2024-01-02T3:04:05Z", 0, false},
		{"2024-01-02Z", 0, false},
		{"2024-1-02T03:04:05Z", 0, false},
		{"+024-01-02T03:04:05Z", 0, false},
		{"2024-01-02T03:04:05 ", 0, false},
		{" 2024-01-02T03:04:05", 0, false},
		{"", 0, false},
	} {
		got, ok := Timestamp([]byte(tc.in), 6)
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("Timestamp(%q, 6) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
		if ok {
			checkSlow(t, tc.in)
		}
	}
}

func TestTimestampUnits(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want [4]int64 // s, ms, µs, ns
		ok   [4]bool
	}{
		{"2024-01-02T03:04:05Z", [4]int64{1704164645, 1704164645000, 1704164645000000, 1704164645000000000}, [4]bool{true, true, true, true}},
		{"2024-01-02T03:04:05.1Z", [4]int64{0, 1704164645100, 1704164645100000, 1704164645100000000}, [4]bool{false, true, true, true}},
		{"2024-01-02T03:04:05.123456789Z", [4]int64{0, 0, 0, 1704164645123456789}, [4]bool{false, false, false, true}},
		{"1677-09-21T00:12:44Z", [4]int64{-9223372036, -9223372036000, -9223372036000000, 0}, [4]bool{true, true, true, false}},
		{"2262-04-11T23:47:16Z", [4]int64{9223372036, 9223372036000, 9223372036000000, 0}, [4]bool{true, true, true, false}},
		{"2262-04-11T23:47:15.999999999Z", [4]int64{0, 0, 0, 9223372035999999999}, [4]bool{false, false, false, true}},
	} {
		for i, u := range units {
			got, ok := Timestamp([]byte(tc.in), u.scale)
			if ok != tc.ok[i] || (ok && got != tc.want[i]) {
				t.Errorf("Timestamp(%q, %d) = %d, %v; want %d, %v", tc.in, u.scale, got, ok, tc.want[i], tc.ok[i])
			}
		}
		checkSlow(t, tc.in)
	}
}

func TestDate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1970-01-01", 0, true},
		{"1970-01-02", 1, true},
		{"1969-12-31", -1, true},
		{"2024-02-29", 19782, true},
		{"2000-03-01", 11017, true},
		{"0000-01-01", -719528, true},
		{"9999-12-31", 2932896, true},
		{"2023-02-29", 0, false},
		{"2024-02-30", 0, false},
		{"2024-06-31", 0, false},
		{"2024-1-01", 0, false},
		{"2024/01/01", 0, false},
		{"2024-01-01 ", 0, false},
		{"2024-01-01T00:00:00", 0, false},
	} {
		got, ok := Date([]byte(tc.in))
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("Date(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
		checkDate(t, tc.in)
	}
}

// TestDaysFromCivil walks every day of years 0000-9999 against time.Date.
func TestDaysFromCivil(t *testing.T) {
	day := time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)
	for day.Year() < 10000 {
		y, m, d := day.Date()
		if got, want := daysFromCivil(uint32(y), uint32(m), uint32(d)), day.Unix()/86400; got != want {
			t.Fatalf("daysFromCivil(%d, %d, %d) = %d, want %d", y, m, d, got, want)
		}
		if got := daysIn(int64(m), int64(y)); got != int64(time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()) {
			t.Fatalf("daysIn(%d, %d) = %d", m, y, got)
		}
		day = day.AddDate(0, 0, 1)
	}
}

// checkSlow checks that wherever Timestamp accepts s, the slow path the
// csv source falls back to (arrow.TimestampFromStringInLocation, which
// calls time.Parse) accepts it too with the same value, and that
// time.Parse(RFC3339Nano) agrees where it accepts s.
func checkSlow(t *testing.T, s string) {
	t.Helper()
	for _, u := range units {
		got, ok := Timestamp([]byte(s), u.scale)
		if !ok {
			continue
		}
		want, _, err := arrow.TimestampFromStringInLocation(s, u.unit, time.UTC)
		if err != nil {
			t.Fatalf("Timestamp(%q, %d) = %d, but arrow refuses it: %v", s, u.scale, got, err)
		}
		if int64(want) != got {
			t.Fatalf("Timestamp(%q, %d) = %d, arrow says %d", s, u.scale, got, want)
		}
		if tm, err := time.Parse(time.RFC3339Nano, s); err == nil {
			var ref int64
			switch u.scale {
			case 0:
				ref = tm.Unix()
			case 3:
				ref = tm.UnixMilli()
			case 6:
				ref = tm.UnixMicro()
			case 9:
				ref = tm.UnixNano()
			}
			if ref != got {
				t.Fatalf("Timestamp(%q, %d) = %d, time.Parse says %d", s, u.scale, got, ref)
			}
		}
	}
}

// checkDate checks Date against time.Parse(time.DateOnly) both ways: the
// fast path must accept exactly what time.Parse accepts.
func checkDate(t *testing.T, s string) {
	t.Helper()
	got, ok := Date([]byte(s))
	tm, err := time.Parse(time.DateOnly, s)
	if ok != (err == nil) {
		t.Fatalf("Date(%q) ok = %v, time.Parse: %v", s, ok, err)
	}
	if ok && got != int64(arrow.Date32FromTime(tm)) {
		t.Fatalf("Date(%q) = %d, time.Parse says %d", s, got, arrow.Date32FromTime(tm))
	}
}

// FuzzTimestamp checks Timestamp and Date against the slow paths on
// arbitrary bytes.
func FuzzTimestamp(f *testing.F) {
	for _, s := range []string{
		"2024-01-02T09:30:00.001Z", "2024-01-02 09:30:00", "2024-01-02", "2024-01-02T03:04:05.123456789+05:30",
		"1969-12-31T23:59:59-0800", "2016-12-31T23:59:60Z", "2024-02-30T00:00:00Z", "0000-01-01T00:00:00Z",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkSlow(t, s)
		checkDate(t, s)
	})
}

// FuzzTimestampFields builds well-shaped timestamps from fuzzed fields, so
// that most inputs are near-valid, and checks that Timestamp accepts
// exactly those of them the slow path accepts (but for values refused as
// out of the nanosecond range), with the same value.
func FuzzTimestampFields(f *testing.F) {
	f.Add(uint16(2024), uint8(1), uint8(2), uint8(9), uint8(30), uint8(0), uint32(1000000), uint8(3), uint8(0), uint8(0), uint8(0), false)
	f.Add(uint16(2016), uint8(12), uint8(31), uint8(23), uint8(59), uint8(60), uint32(0), uint8(0), uint8(1), uint8(5), uint8(30), true)
	f.Add(uint16(1900), uint8(2), uint8(29), uint8(0), uint8(0), uint8(0), uint32(123456789), uint8(9), uint8(2), uint8(23), uint8(59), false)
	f.Fuzz(func(t *testing.T, y uint16, mo, d, h, mi, sec uint8, nanos uint32, digits, zone, zh, zm uint8, space bool) {
		sep := byte('T')
		if space {
			sep = ' '
		}
		s := fmt.Sprintf("%04d-%02d-%02d%c%02d:%02d:%02d", y%10000, mo%14, d%33, sep, h%26, mi%62, sec%62)
		if n := int(digits % 11); n > 0 {
			s += "." + fmt.Sprintf("%09d", nanos%1e9)[:min(n, 9)]
			if n == 10 {
				s += "0"
			}
		}
		switch zone % 6 {
		case 1:
			s += "Z"
		case 2:
			s += fmt.Sprintf("+%02d:%02d", zh%26, zm%62)
		case 3:
			s += fmt.Sprintf("-%02d%02d", zh%26, zm%62)
		case 4:
			s = s[:10] // date only
		case 5:
			s += fmt.Sprintf("-%02d:%02d", zh%26, zm%62)
		}
		checkSlow(t, s)
		checkDate(t, s)
		for _, u := range units {
			want, _, err := arrow.TimestampFromStringInLocation(s, u.unit, time.UTC)
			if _, ok := Timestamp([]byte(s), u.scale); !ok && err == nil {
				if yr := y % 10000; u.scale == 9 && (yr <= 1678 || yr >= 2261) {
					continue
				}
				t.Fatalf("Timestamp(%q, %d) refused, arrow reads %d", s, u.scale, want)
			}
		}
	})
}
