package operators

import (
	"bytes"
	"fmt"
	"os"
	"testing"
)

// BenchmarkCSVScan splits the bench's trades CSV into fields, nothing more.
//
//	go test -run '^$' -bench CSVScan ./operators/
func BenchmarkCSVScan(b *testing.B) {
	const rows = 200_000
	path, size := writeTradesCSV(b, b.TempDir(), rows)
	src, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	b.Run(fmt.Sprintf("rows=%d", rows), func(b *testing.B) {
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			s := newCSVScanner(bytes.NewReader(src), ',', 0, false, 0)
			n := 0
			for {
				if _, err := s.next(); err != nil {
					break
				}
				n++
			}
			if n != rows+1 {
				b.Fatalf("%d records", n)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
	})
}
