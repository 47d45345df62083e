package storagetest

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/zflowdev/zflow/io/storage"
)

// BenchSize is the file the benchmarks read.
const BenchSize = 64 << 20

var (
	benchMu    sync.Mutex
	benchFiles = map[string]string{}
)

// BenchFile writes (once per process and folder) a BenchSize file under
// dir and returns its path; the caller's cleanup of dir removes it.
func BenchFile(b *testing.B, dir string) string {
	b.Helper()
	benchMu.Lock()
	defer benchMu.Unlock()
	path := filepath.Join(dir, "bench.bin")
	if p, ok := benchFiles[path]; ok {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i * 31)
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	for off := 0; off < BenchSize; off += len(buf) {
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	benchFiles[path] = path
	return path
}

// BenchRead reads f with batches of depth requests of block bytes:
// sequentially from the start (wrapping) or at random block-aligned
// offsets. It reports bytes/s (b.SetBytes per request batch) and
// allocations.
func BenchRead(b *testing.B, f storage.File, block, depth int, random bool) {
	align := max(f.Align(), 1)
	reqs := make([]storage.Request, depth)
	for i := range reqs {
		reqs[i].Buf = Aligned(block, align)
	}
	blocks := int64(BenchSize / block)
	rng := rand.New(rand.NewPCG(1, 2))
	next := int64(0)
	ctx := context.Background()
	b.SetBytes(int64(block * depth))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		for i := range reqs {
			if random {
				reqs[i].Off = rng.Int64N(blocks) * int64(block)
			} else {
				reqs[i].Off = next * int64(block)
				next = (next + 1) % blocks
			}
		}
		if err := f.ReadBatch(ctx, reqs); err != nil {
			b.Fatal(err)
		}
		for i := range reqs {
			if reqs[i].Err != nil {
				b.Fatal(reqs[i].Err)
			}
		}
	}
	b.ReportMetric(float64(b.N*depth)/b.Elapsed().Seconds(), "req/s")
}

// Patterns are the two read patterns every backend is measured on.
var Patterns = []struct {
	Name         string
	Block, Depth int
	Random       bool
}{
	{"seq_1MiB_qd8", 1 << 20, 8, false},
	{"rand_4KiB_qd32", 4 << 10, 32, true},
}

// BenchBackend runs Patterns over open on tmpfs and on the disk (and with
// O_DIRECT on the disk when direct), as sub-benchmarks.
func BenchBackend(b *testing.B, open Opener, direct bool) {
	dirs := []struct {
		where string
		dir   string
	}{{"tmpfs", ShmDir(b)}, {"disk", DiskDir(b)}}
	for _, d := range dirs {
		path := BenchFile(b, d.dir)
		for _, dio := range []bool{false, true} {
			if dio && (!direct || d.where == "tmpfs") {
				continue
			}
			for _, p := range Patterns {
				name := "where=" + d.where + "/pattern=" + p.Name
				if dio {
					name += "/direct"
				}
				b.Run(name, func(b *testing.B) {
					f, err := open(path, os.O_RDONLY, 0, storage.Options{Direct: dio, QueueDepth: p.Depth})
					if err != nil {
						b.Skip(err)
					}
					defer f.Close()
					BenchRead(b, f, p.Block, p.Depth, p.Random)
				})
			}
		}
	}
}
