package operators

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/io/storage/storagetest"
)

// countEmitter counts and releases every batch it is given.
type countEmitter struct{ rows int64 }

func (d *countEmitter) Emit(b arrow.RecordBatch) error {
	d.rows += b.NumRows()
	b.Release()
	return nil
}

// BenchmarkRawSource reads a 64 MiB file on tmpfs as 1 MiB blocks with the
// raw source on posix (pread straight into each batch's buffer) and on
// mmap (each batch a slice of the mapping), against the baseline of a
// plain loop of os.File.ReadAt into one reused 1 MiB buffer (no batches,
// no allocation). Run:
//
//	go test ./operators -run '^$' -bench RawSource -benchtime=20x
func BenchmarkRawSource(b *testing.B) {
	const size = 64 << 20
	dir := storagetest.ShmDir(b)
	path, _ := storagetest.WriteFile(b, dir, "in.bin", size)
	b.Run("read=pread-loop", func(b *testing.B) {
		b.SetBytes(size)
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		buf := make([]byte, 1<<20)
		for b.Loop() {
			for off := int64(0); off < size; off += int64(len(buf)) {
				if _, err := f.ReadAt(buf, off); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	for _, io := range []string{"posix", "mmap"} {
		b.Run(fmt.Sprintf("read=raw/io=%s", io), func(b *testing.B) {
			b.SetBytes(size)
			b.ReportAllocs()
			cfg := rawSrc(path, func(c *RawSourceConfig) { c.BlockSize, c.BatchRows, c.FileIO = 1<<20, 1, FileIO{IO: io} })
			f, err := buildFactory(RawSourceSpec(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			mem := memory.NewGoAllocator()
			for b.Loop() {
				op, err := f.New(testIC(mem, "src", "raw", 0))
				if err != nil {
					b.Fatal(err)
				}
				d := &countEmitter{}
				if err := op.(engine.Source).Run(context.Background(), d); err != nil {
					b.Fatal(err)
				}
				if d.rows != size>>20 {
					b.Fatalf("%d blocks, want %d", d.rows, size>>20)
				}
			}
		})
	}
}
