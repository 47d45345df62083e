package operators

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/zflowdev/zflow/engine"
)

// BenchmarkParquetSink encodes 1Mi rows of the bench's trades shape (ts,
// symbol, price, qty, as bench/pipelines/gen_trades.yaml) as one zstd row
// group, with one encoder (pqarrow's FileWriter, the path before the
// parallel one) and with a column encoder per CPU, in the same run:
//
//	go test -run '^$' -bench ParquetSink -benchtime 5x ./operators
func BenchmarkParquetSink(b *testing.B) {
	const rows, batch = 1 << 20, 65536
	mem := newMem()
	gen := &GenerateConfig{Rows: rows, Seed: 20240102, Columns: []GenerateColumn{
		{Name: "ts", Type: "timestamp", Start: "2024-01-02T09:30:00Z", Step: 1000000},
		{Name: "symbol", Type: "string", Cardinality: 20, Prefix: "SYM"},
		{Name: "price", Type: "float64", Min: 10, Max: 500, Cardinality: 49001},
		{Name: "qty", Type: "int64", Min: 1, Max: 1000},
	}}
	gf, err := buildFactory(GenerateSpec(), gen)
	if err != nil {
		b.Fatal(err)
	}
	var scratch []uint32
	var recs []arrow.RecordBatch
	for row := int64(0); row < rows; row += batch {
		rec, err := gf.(*generateFactory).batch(mem, row, batch, &scratch)
		if err != nil {
			b.Fatal(err)
		}
		recs = append(recs, rec)
	}
	defer func() {
		for _, r := range recs {
			r.Release()
		}
	}()
	dir := b.TempDir()
	for _, workers := range []int{1, (*engine.InstanceContext)(nil).Workers()} {
		b.Run(fmt.Sprintf("rows=%d/batch=%d/workers=%d", rows, batch, workers), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(rows * 32))
			cfg := &ParquetSinkConfig{Path: filepath.Join(dir, "o.parquet"), Compression: "zstd", Dictionary: "auto", RowGroupRows: rows, FileIO: defaultFileIO()}
			f, err := buildFactory(ParquetSinkSpec(), cfg, recs[0].Schema())
			if err != nil {
				b.Fatal(err)
			}
			f.(*parquetSinkFactory).workers = workers
			for b.Loop() {
				op, err := f.New(testIC(mem, "out", "parquet", 0))
				if err != nil {
					b.Fatal(err)
				}
				s := op.(engine.Sink)
				for _, r := range recs {
					if err := s.Write(context.Background(), 0, r); err != nil {
						b.Fatal(err)
					}
				}
				if err := s.Close(context.Background()); err != nil {
					b.Fatal(err)
				}
				op.(engine.Releaser).Release()
				s.Abort()
			}
		})
	}
}
