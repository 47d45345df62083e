package expr

import (
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
)

// daysFromCivil and civilFromDays agree with the time package over a wide
// range, both sides of the epoch and of year 0.
func TestCivilDays(t *testing.T) {
	for days := int64(-800_000); days <= 800_000; days += 37 {
		y, m, d := civilFromDays(days)
		if back := daysFromCivil(y, m, d); back != days {
			t.Fatalf("day %d: %d-%d-%d gives back %d", days, y, m, d, back)
		}
		tm := time.Unix(days*secsPerDay, 0).UTC()
		if int64(tm.Year()) != y || int(tm.Month()) != m || tm.Day() != d {
			t.Fatalf("day %d: %d-%d-%d, time says %s", days, y, m, d, tm)
		}
	}
}

func TestParseDateTime(t *testing.T) {
	for _, tt := range []struct {
		in      string
		us      int64 // wall clock
		utc     int64 // with the offset applied
		wantErr string
	}{
		{"1970-01-01", 0, 0, ""},
		{" 2024-1-5 ", 1704412800_000000, 1704412800_000000, ""},
		{"2024-01-05T10:00:00.1234567", 1704448800_123456, 1704448800_123456, ""},
		{"2024-01-05 10:00:00Z", 1704448800_000000, 1704448800_000000, ""},
		{"2024-01-05 10:00:00 UTC", 1704448800_000000, 1704448800_000000, ""},
		{"2024-01-05 10:00:00+02", 1704448800_000000, 1704441600_000000, ""},
		{"2024-01-05 10:00:00-0530", 1704448800_000000, 1704468600_000000, ""},
		{"2024-01-05 10:00-05:30", 1704448800_000000, 1704468600_000000, ""},
		{"1969-12-31 23:59:59.999999", -1, -1, ""},
		{"2024-02-30", 0, 0, "date field value out of range"},
		{"2023-02-29", 0, 0, "date field value out of range"},
		{"2024-01-05 25:00", 0, 0, "time field value out of range"},
		{"2024-01-05 10", 0, 0, "expected ':' after the hour"},
		{"2024-01-05x", 0, 0, "unexpected text after the date"},
		{"2024-01-05 10:00:00 CET", 0, 0, "unexpected text after the time"},
		{"", 0, 0, "expected a year"},
	} {
		dt, err := parseDateTime(tt.in)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("%q: error %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		wall, _ := dt.toUnit(arrow.Microsecond, false)
		utc, _ := dt.toUnit(arrow.Microsecond, true)
		if wall != tt.us || utc != tt.utc {
			t.Errorf("%q: wall %d utc %d, want %d %d", tt.in, wall, utc, tt.us, tt.utc)
		}
	}
}

func TestParseIntervalText(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"1 hour", "01:00:00"},
		{"90 minutes", "01:30:00"},
		{"1.5 hours", "01:30:00"},
		{"1.5 days", "1 day 12:00:00"},
		{"1.5 months", "1 month 15 days"},
		{"1 year 13 months", "2 years 1 month"},
		{"2 weeks", "14 days"},
		{"1 quarter", "3 months"},
		{"1 decade", "10 years"},
		{"1 day ago", "-1 day"},
		{"1 hour -30 minutes", "00:30:00"},
		{"1:30", "01:30:00"},
		{"2 days 01:30:00", "2 days 01:30:00"},
		{"5s 2ms 3us", "00:00:05.002003"},
	} {
		iv, err := parseIntervalText(tt.in)
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if got := iv.String(); got != tt.want {
			t.Errorf("%q = %q, want %q (DuckDB)", tt.in, got, tt.want)
		}
	}
}

// FuzzTimeText feeds the date, interval, integer and strptime parsers
// arbitrary text: no panic, and a date that parses prints and parses back
// to itself.
func FuzzTimeText(f *testing.F) {
	for _, s := range []string{"2024-02-29", "-0044-03-15 10:00:00.5+02:00", "1969-12-31T23:59:59.999999Z",
		"1 year 2 months ago", "01:30:00.25", "0x1F", "1_000", "-2.5e3", "Jun 2 2024 1pm", "99999-12-31 24:00:00"} {
		f.Add(s)
	}
	items, _ := compileFormat("%b %d %Y %I%p")
	f.Fuzz(func(t *testing.T, s string) {
		if dt, err := parseDateTime(s); err == nil && dt.days > -100_000_000 && dt.days < 100_000_000 {
			us, ok := dt.toUnit(arrow.Microsecond, false)
			if !ok {
				t.Fatalf("%q: in range but does not fit microseconds", s)
			}
			text := string(appendTimestamp(nil, us, arrow.Microsecond, false))
			if y, _, _ := civilFromDays(dt.days); y > 0 {
				back, err := parseDateTime(text)
				if err != nil {
					t.Fatalf("%q printed %q, which does not parse: %v", s, text, err)
				}
				if b, _ := back.toUnit(arrow.Microsecond, false); b != us {
					t.Fatalf("%q printed %q, which parses to %d, not %d", s, text, b, us)
				}
			}
		}
		if iv, err := parseIntervalText(s); err == nil {
			back, err := parseIntervalText(iv.String())
			if err != nil || back != iv {
				t.Fatalf("interval %q printed %q, parsed back %v, %v", s, iv.String(), back, err)
			}
		}
		parseInteger(s, false)
		parseInteger(s, true)
		strptime(s, items, false)
		if its, err := compileFormat(s); err == nil {
			appendStrftime(nil, its, 1717322400_000000, "UTC")
		}
	})
}
