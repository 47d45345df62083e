//go:build linux

package uring_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/zflowdev/zflow/io/storage"
	"github.com/zflowdev/zflow/io/storage/storagetest"
)

// Parquet reads through storage.Reader on every backend, and every backend
// gives the same table.
func TestParquetThroughBackends(t *testing.T) {
	needUring(t)
	for where, dir := range storagetest.Dirs(t) {
		path := filepath.Join(dir, "t.parquet")
		want := writeParquet(t, path)
		for _, name := range []string{"posix", "uring", "mmap"} {
			t.Run(where+"/"+name, func(t *testing.T) {
				mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
				defer mem.AssertSize(t, 0)
				b, err := storage.New(name, storage.Options{}, "test")
				if err != nil {
					t.Fatal(err)
				}
				f, err := b.Open(path, os.O_RDONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				ctx := context.Background()
				tbl, err := pqarrow.ReadTable(ctx, storage.NewReader(ctx, f), parquet.NewReaderProperties(mem), pqarrow.ArrowReadProperties{}, mem)
				if err != nil {
					t.Fatal(err)
				}
				defer tbl.Release()
				if tbl.NumRows() != want.NumRows() || tbl.NumCols() != want.NumCols() {
					t.Fatalf("read %dx%d through %s, want %dx%d", tbl.NumRows(), tbl.NumCols(), name, want.NumRows(), want.NumCols())
				}
				for c := 0; c < int(want.NumCols()); c++ {
					if !array.ChunkedEqual(tbl.Column(c).Data(), want.Column(c).Data()) {
						t.Errorf("column %s read through %s differs", want.Schema().Field(c).Name, name)
					}
				}
				if st := f.Stats(); st.Requests == 0 {
					t.Error("the Parquet reader did not read through the backend")
				}
			})
		}
		want.Release()
	}
}

func writeParquet(t *testing.T, path string) arrow.Table {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "name", Type: arrow.BinaryTypes.String, Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	for i := 0; i < 20000; i++ {
		b.Field(0).(*array.Int64Builder).Append(int64(i * 3))
		if i%5 == 0 {
			b.Field(1).(*array.StringBuilder).AppendNull()
		} else {
			b.Field(1).(*array.StringBuilder).Append("n" + string(rune('a'+i%26)))
		}
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	tbl := array.NewTableFromRecords(schema, []arrow.RecordBatch{rec})
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	props := parquet.NewWriterProperties(parquet.WithMaxRowGroupLength(5000))
	if err := pqarrow.WriteTable(tbl, out, 5000, props, pqarrow.DefaultWriterProps()); err != nil {
		t.Fatal(err)
	}
	return tbl
}
