package fastts

import (
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
)

var benchTS = [][]byte{
	[]byte("2024-01-02T09:30:00.001Z"), []byte("2024-01-02T09:30:00Z"),
	[]byte("2024-01-02 09:30:00.123456"), []byte("2024-03-02T09:30:00.5+01:00"),
}

// BenchmarkTimestamp compares the fast path with the arrow parse it
// replaces, on the same four shapes.
//
//	go test -run '^$' -bench Timestamp ./internal/fastts/
func BenchmarkTimestamp(b *testing.B) {
	b.Run("fastts", func(b *testing.B) {
		b.ReportAllocs()
		var sum int64
		for i := 0; b.Loop(); i++ {
			v, _ := Timestamp(benchTS[i&3], 6)
			sum += v
		}
		_ = sum
	})
	b.Run("arrow", func(b *testing.B) {
		b.ReportAllocs()
		strs := make([]string, len(benchTS))
		for i, s := range benchTS {
			strs[i] = string(s)
		}
		var sum int64
		for i := 0; b.Loop(); i++ {
			v, _, _ := arrow.TimestampFromStringInLocation(strs[i&3], arrow.Microsecond, time.UTC)
			sum += int64(v)
		}
		_ = sum
	})
}
