package operators

import (
	"errors"
	"math"
	"strconv"
	"testing"
)

// checkNumbers fails t where parseInt or parseFloat accept s but read it
// differently from strconv (bit for bit, the sign of zero included).
func checkNumbers(t *testing.T, s string) {
	t.Helper()
	if got, ok := parseInt([]byte(s)); ok {
		want, err := strconv.ParseInt(s, 10, 64)
		if err != nil || got != want {
			t.Fatalf("parseInt(%q) = %d, strconv: %d, %v", s, got, want, err)
		}
	}
	if got, ok := parseFloat([]byte(s)); ok {
		want, err := strconv.ParseFloat(s, 64)
		if err != nil || math.Float64bits(got) != math.Float64bits(want) {
			t.Fatalf("parseFloat(%q) = %v, strconv: %v, %v", s, got, want, err)
		}
	}
}

func TestParseNumbers(t *testing.T) {
	for _, tc := range []struct {
		in       string
		intOK    bool
		floatOK  bool
		floatVal float64
	}{
		{"0", true, true, 0},
		{"-0", true, true, math.Copysign(0, -1)},
		{"+42", true, true, 42},
		{"123456789012345678", true, false, 0},
		{"1234567890123456789", false, false, 0},
		{"345.48", false, true, 345.48},
		{"-0.0", false, true, math.Copysign(0, -1)},
		{"0.1", false, true, 0.1},
		{"19.450000000000003", false, false, 0},
		{"999999999999999", true, true, 999999999999999},
		{"9999999999999999", true, false, 0},
		{"0.000000000000001", false, false, 0}, // 16 digits
		{".5", false, false, 0},
		{"5.", false, false, 0},
		{"1e5", false, false, 0},
		{"1.2.3", false, false, 0},
		{"", false, false, 0},
		{"-", false, false, 0},
		{"1_000", false, false, 0},
		{"inf", false, false, 0},
		{"0x10", false, false, 0},
	} {
		if _, ok := parseInt([]byte(tc.in)); ok != tc.intOK {
			t.Errorf("parseInt(%q) ok = %v", tc.in, ok)
		}
		f, ok := parseFloat([]byte(tc.in))
		if ok != tc.floatOK || ok && math.Float64bits(f) != math.Float64bits(tc.floatVal) {
			t.Errorf("parseFloat(%q) = %v, %v; want %v, %v", tc.in, f, ok, tc.floatVal, tc.floatOK)
		}
		checkNumbers(t, tc.in)
	}
}

// FuzzParseNumbers checks the integer and float fast paths against strconv.
func FuzzParseNumbers(f *testing.F) {
	for _, s := range []string{"0", "-12", "+7", "345.48", "-0.0", "1e5", "0.30000000000000004", "123456789.123456"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkNumbers(t, s)
		if _, err := strconv.ParseFloat(s, 64); err != nil && !errors.Is(err, strconv.ErrRange) {
			if _, ok := parseFloat([]byte(s)); ok {
				t.Fatalf("parseFloat(%q) accepts what strconv refuses", s)
			}
		}
	})
}

// FuzzParseFloatDigits checks random plain decimals, which FuzzParseNumbers
// rarely builds, against strconv.
func FuzzParseFloatDigits(f *testing.F) {
	f.Add(uint64(34548), uint8(2), false)
	f.Add(uint64(999999999999999), uint8(15), true)
	f.Fuzz(func(t *testing.T, m uint64, frac uint8, neg bool) {
		s := strconv.FormatUint(m%1e16, 10)
		if k := int(frac % 17); k > 0 {
			for len(s) <= k {
				s = "0" + s
			}
			s = s[:len(s)-k] + "." + s[len(s)-k:]
		}
		if neg {
			s = "-" + s
		}
		checkNumbers(t, s)
	})
}
