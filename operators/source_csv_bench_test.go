package operators

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/zflowdev/zflow/engine"
)

// writeTradesCSV writes rows of the bench's trades shape (ts, symbol, price,
// qty, as bench.TradesConfig through the csv sink) to dir and returns the
// path and the file size.
func writeTradesCSV(tb testing.TB, dir string, rows int) (string, int64) {
	tb.Helper()
	path := filepath.Join(dir, fmt.Sprintf("trades_%d.csv", rows))
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	rng := rand.New(rand.NewPCG(20240102, 1))
	start := time.Date(2024, 1, 2, 9, 30, 0, 0, time.UTC)
	var line []byte
	w.WriteString("ts,symbol,price,qty\n")
	for i := range rows {
		line = start.Add(time.Duration(i)*time.Millisecond).AppendFormat(line[:0], time.RFC3339Nano)
		line = fmt.Appendf(line, ",SYM%04d,", rng.IntN(20))
		line = strconv.AppendFloat(line, 10+float64(rng.IntN(49001))*0.01, 'g', -1, 64)
		line = append(line, ',')
		line = strconv.AppendInt(line, 1+rng.Int64N(1000), 10)
		line = append(line, '\n')
		w.Write(line)
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	st, err := f.Stat()
	if err != nil {
		tb.Fatal(err)
	}
	f.Close()
	return path, st.Size()
}

// releasingEmitter counts and releases what it is given.
type releasingEmitter struct{ rows int64 }

func (e *releasingEmitter) Emit(b arrow.RecordBatch) error {
	e.rows += b.NumRows()
	b.Release()
	return nil
}

// BenchmarkCSVSource reads a generated trades CSV (types inferred, as the
// csv_to_parquet bench pipeline does) into batches and drops them, on one
// goroutine (threads=1) and cut into ranges parsed by 2 workers.
//
//	go test -run '^$' -bench CSVSource -benchtime 20x ./operators/
func BenchmarkCSVSource(b *testing.B) {
	const rows = 200_000
	path, size := writeTradesCSV(b, b.TempDir(), rows)
	for _, threads := range []int{1, 2} {
		const batch = 65536
		b.Run(fmt.Sprintf("threads=%d/rows=%d/batch=%d", threads, rows, batch), func(b *testing.B) {
			mem := newMem()
			defer mem.AssertSize(b, 0)
			f, err := buildFactory(CSVSourceSpec(), csvCfg(path))
			if err != nil {
				b.Fatal(err)
			}
			if got := schemaTypes(f.Schema()); got != "ts:timestamp,symbol:string,price:float64,qty:int64" {
				b.Fatalf("inferred %s", got)
			}
			b.SetBytes(size)
			b.ReportAllocs()
			for b.Loop() {
				ic := testIC(mem, "src", "csv", batch)
				ic.Settings.Threads = threads
				op, err := f.New(ic)
				if err != nil {
					b.Fatal(err)
				}
				var e releasingEmitter
				if err := op.(engine.Source).Run(context.Background(), &e); err != nil {
					b.Fatal(err)
				}
				if e.rows != rows {
					b.Fatalf("%d rows, want %d", e.rows, rows)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
		})
	}
}
