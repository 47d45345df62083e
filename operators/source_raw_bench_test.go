package operators

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/buffers"
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
// raw source on posix (pread straight into each batch's buffer, from Go's
// allocator — fresh zeroed pages per batch — or from a prefaulted hugepage
// arena that reuses them) and on mmap (each batch a slice of the mapping:
// nothing is read until a consumer touches it), against the baseline of a
// plain loop of os.File.ReadAt into one reused 1 MiB buffer. Run:
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
	arena, err := buffers.New(buffers.ArenaConfig{Kind: buffers.KindHugepage, Node: buffers.NoNode, Prefault: true,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer arena.Close()
	for _, v := range []struct {
		io, mem string
		alloc   memory.Allocator
	}{{"posix", "go", memory.NewGoAllocator()}, {"posix", "arena", arena}, {"mmap", "arena", arena}} {
		b.Run(fmt.Sprintf("read=raw/io=%s/mem=%s", v.io, v.mem), func(b *testing.B) {
			b.SetBytes(size)
			b.ReportAllocs()
			cfg := rawSrc(path, func(c *RawSourceConfig) { c.BlockSize, c.BatchRows, c.FileIO = 1<<20, 1, FileIO{IO: v.io} })
			f, err := buildFactory(RawSourceSpec(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				op, err := f.New(testIC(v.alloc, "src", "raw", 0))
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
