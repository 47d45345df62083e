package units

import "strconv"

var byteUnits = [...]string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}

// Bytes formats a byte count with binary units and at most two decimals,
// trailing zeros dropped: "512 B", "64 MiB", "1.94 GiB", "-2 KiB".
func Bytes(n int64) string {
	const unit = 1024
	// In uint64, so that the magnitude of math.MinInt64 fits.
	u, sign := uint64(n), ""
	if n < 0 {
		u, sign = -u, "-"
	}
	if u < unit {
		return sign + strconv.FormatUint(u, 10) + " B"
	}
	v, i := float64(u)/unit, 0
	for v >= unit-0.005 && i < len(byteUnits)-1 { // so that 1023.999 MiB reads 1 GiB
		v /= unit
		i++
	}
	f := strconv.FormatFloat(v, 'f', 2, 64)
	for f[len(f)-1] == '0' {
		f = f[:len(f)-1]
	}
	if f[len(f)-1] == '.' {
		f = f[:len(f)-1]
	}
	return sign + f + " " + byteUnits[i]
}
