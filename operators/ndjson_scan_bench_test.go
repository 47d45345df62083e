package operators

import (
	"bytes"
	"fmt"
	"os"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
)

// BenchmarkNDJSONDecode decodes the lines of a trades NDJSON file (as the
// ndjson sink writes them) into batches, with the old decoder (goccy/go-json
// and arrow-go's UnmarshalOne per line) and with the scanner, in the same
// run: compare their ns/row.
//
//	go test -run '^$' -bench NDJSONDecode -benchtime 5x ./operators/
func BenchmarkNDJSONDecode(b *testing.B) {
	const rows, batch = 200_000, 65536
	path, size := writeTradesNDJSON(b, b.TempDir(), rows)
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	f, err := buildFactory(NDJSONSourceSpec(), &NDJSONSourceConfig{Path: path, InferRows: 1000})
	if err != nil {
		b.Fatal(err)
	}
	schema := f.(*ndjsonFactory).fileSchema
	if got := schemaTypes(schema); got != "ts:timestamp,symbol:string,price:float64,qty:int64" {
		b.Fatalf("inferred %s", got)
	}
	lines := bytes.SplitAfter(data[:len(data)-1], []byte{'\n'})
	for _, dec := range []string{"old", "scanner"} {
		b.Run(fmt.Sprintf("decoder=%s/rows=%d/batch=%d", dec, rows, batch), func(b *testing.B) {
			mem := newMem()
			defer mem.AssertSize(b, 0)
			bld := array.NewRecordBuilder(mem, schema)
			defer bld.Release()
			sc := newNDJSONScanner(schema, bld, nil, true, path, "")
			b.SetBytes(size)
			b.ReportAllocs()
			for b.Loop() {
				n := 0
				for _, line := range lines {
					var err error
					if dec == "old" {
						err = decodeLineOld(bld, line)
					} else {
						if n == 0 {
							sc.reserve(batch)
						}
						err = sc.row(line)
					}
					if err != nil {
						b.Fatal(err)
					}
					if n++; n == batch {
						rec := bld.NewRecordBatch()
						sc.noteData(rec)
						rec.Release()
						n = 0
					}
				}
				bld.NewRecordBatch().Release()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
		})
	}
}

// BenchmarkNDJSONSource reads the trades NDJSON file through the source,
// on 1 worker and on 2 (ranges parsed in parallel, emitted in order).
//
//	go test -run '^$' -bench NDJSONSource -benchtime 5x ./operators/
func BenchmarkNDJSONSource(b *testing.B) {
	const rows, batch = 200_000, 65536
	path, size := writeTradesNDJSON(b, b.TempDir(), rows)
	f, err := buildFactory(NDJSONSourceSpec(), &NDJSONSourceConfig{Path: path, InferRows: 1000})
	if err != nil {
		b.Fatal(err)
	}
	for _, threads := range []int{1, 2} {
		b.Run(fmt.Sprintf("threads=%d/rows=%d/batch=%d", threads, rows, batch), func(b *testing.B) {
			mem := newMem()
			defer mem.AssertSize(b, 0)
			benchSource(b, mem, f, threads, rows, batch, size)
		})
	}
}
