package units

import (
	"math"
	"testing"
)

func TestBytes(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1024, "1 KiB"}, {1536, "1.5 KiB"}, {64 << 20, "64 MiB"},
		{2 << 20, "2 MiB"}, {2083059712, "1.94 GiB"}, {2 << 30, "2 GiB"}, {(1 << 30) - 1, "1 GiB"},
		{11234213888, "10.46 GiB"}, {3840755982336, "3.49 TiB"}, {-2048, "-2 KiB"},
		{math.MaxInt64, "8 EiB"}, {math.MinInt64, "-8 EiB"},
	} {
		if got := Bytes(tc.n); got != tc.want {
			t.Errorf("Bytes(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}
