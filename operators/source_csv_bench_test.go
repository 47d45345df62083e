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
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/engine"
)

// writeTradesCSV writes rows of the bench's trades shape (ts, symbol, price,
// qty, as bench.TradesConfig through the csv sink) to dir and returns the
// path and the file size.
func writeTradesCSV(tb testing.TB, dir string, rows int) (string, int64) {
	return writeTrades(tb, filepath.Join(dir, fmt.Sprintf("trades_%d.csv", rows)), rows, "ts,symbol,price,qty\n",
		func(line []byte, ts time.Time, sym int, price float64, qty int64) []byte {
			line = ts.AppendFormat(line, time.RFC3339Nano)
			line = fmt.Appendf(line, ",SYM%04d,", sym)
			line = strconv.AppendFloat(line, price, 'g', -1, 64)
			line = append(line, ',')
			return strconv.AppendInt(line, qty, 10)
		})
}

// writeTrades writes head and rows of trades, each made by format (its
// newline added), to path and returns it and the file size.
func writeTrades(tb testing.TB, path string, rows int, head string, format func(line []byte, ts time.Time, sym int, price float64, qty int64) []byte) (string, int64) {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	rng := rand.New(rand.NewPCG(20240102, 1))
	start := time.Date(2024, 1, 2, 9, 30, 0, 0, time.UTC)
	var line []byte
	w.WriteString(head)
	for i := range rows {
		sym, price := rng.IntN(20), 10+float64(rng.IntN(49001))*0.01
		line = format(line[:0], start.Add(time.Duration(i)*time.Millisecond), sym, price, 1+rng.Int64N(1000))
		w.Write(append(line, '\n'))
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
			benchSource(b, mem, f, threads, rows, batch, size)
		})
	}
}

// benchSource runs source factory f b.N times with threads workers and
// batches of batch rows, checking it makes rows rows of size bytes.
func benchSource(b *testing.B, mem memory.Allocator, f engine.Factory, threads, rows, batch int, size int64) {
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		ic := testIC(mem, "src", "src", batch)
		ic.Settings.Threads = threads
		op, err := f.New(ic)
		if err != nil {
			b.Fatal(err)
		}
		var e releasingEmitter
		if err := op.(engine.Source).Run(context.Background(), &e); err != nil {
			b.Fatal(err)
		}
		if e.rows != int64(rows) {
			b.Fatalf("%d rows, want %d", e.rows, rows)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
}
