//go:build linux

package raw_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/io/mmap"
	"github.com/zflowdev/zflow/io/posix"
	"github.com/zflowdev/zflow/io/raw"
	"github.com/zflowdev/zflow/io/storage"
	"github.com/zflowdev/zflow/io/storage/storagetest"
)

type opener struct {
	name   string
	direct bool
	open   func(path string, flag int, o storage.Options) (storage.File, error)
}

func openers() []opener {
	p := func(path string, flag int, o storage.Options) (storage.File, error) {
		return posix.Open(path, flag, 0o644, o)
	}
	m := func(path string, flag int, o storage.Options) (storage.File, error) {
		return mmap.Open(path, flag, 0, o)
	}
	return []opener{{"posix", false, p}, {"posix-direct", true, p}, {"mmap", false, m}}
}

// openFile opens path with op, skipping the test where the file system
// refuses O_DIRECT.
func openFile(t *testing.T, op opener, path string, flag int) storage.File {
	t.Helper()
	f, err := op.open(path, flag, storage.Options{Direct: op.direct, QueueDepth: 3})
	if err != nil {
		if op.direct {
			t.Skipf("O_DIRECT refused here: %v", err)
		}
		t.Fatal(err)
	}
	return f
}

// TestRead reads ranges of a file whose size is no multiple of any block
// size, at unaligned offsets and lengths, across the end and past it, with
// padding, on every backend: the buffer holds the file's bytes (a slice of
// the mapping on mmap), O_DIRECT refuses none of the requests, and the
// allocator ends at zero.
func TestRead(t *testing.T) {
	const size = 5*raw.Chunk/2 + 4097
	for place, dir := range map[string]string{"disk": storagetest.DiskDir(t), "tmpfs": storagetest.ShmDir(t)} {
		path, data := storagetest.WriteFile(t, dir, "r.bin", size)
		for _, op := range openers() {
			if op.direct && place == "tmpfs" {
				continue
			}
			t.Run(place+"/"+op.name, func(t *testing.T) {
				mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
				defer mem.AssertSize(t, 0)
				f := openFile(t, op, path, os.O_RDONLY)
				defer f.Close()
				r := raw.NewReader(f, mem, 3)
				for _, c := range []struct {
					off     int64
					n, size int
				}{{0, size, size}, {1, 100, 100}, {511, 513, 513}, {4095, 3 * raw.Chunk, 3 * raw.Chunk}, {size - 10, 10, 16}, {size - 10, 100, 100}, {size + 5, 10, 10}, {12345, 0, 0}, {0, 7, 32}} {
					res, err := r.Read(context.Background(), c.off, c.n, c.size)
					if err != nil {
						t.Fatalf("read %d at %d: %v", c.n, c.off, err)
					}
					lo, hi := min(c.off, size), min(c.off+int64(c.n), size)
					want := data[lo:hi]
					if op.name == "mmap" && c.size == c.n {
						if !res.ByRef || res.Buf.Len() != len(want) {
							t.Errorf("read %d at %d: mapped read: by reference %v, %d bytes", c.n, c.off, res.ByRef, res.Buf.Len())
						}
					} else if res.ByRef || res.Buf.Len() != c.size {
						t.Errorf("read %d at %d: by reference %v, %d bytes, want a buffer of %d", c.n, c.off, res.ByRef, res.Buf.Len(), c.size)
					}
					got := res.Buf.Bytes()
					if res.N != len(want) || !bytes.Equal(got[:res.N], want) {
						t.Errorf("read %d at %d: %d bytes that differ from the file's %d", c.n, c.off, res.N, len(want))
					}
					if len(got) > res.N && bytes.ContainsFunc(got[res.N:], func(r rune) bool { return r != 0 }) {
						t.Errorf("read %d at %d into %d: the padding is not zero", c.n, c.off, c.size)
					}
					res.Buf.Release()
				}
				if op.direct && f.Stats().Refused != 0 {
					t.Errorf("O_DIRECT: %d requests refused for alignment", f.Stats().Refused)
				}
			})
		}
	}
}

// TestWrite writes pieces of odd sizes from aligned and unaligned
// addresses and reads the file back: it holds exactly the bytes given.
// Without O_DIRECT nothing is bounced; with it only what could not go
// straight is, and a piece that starts aligned at an aligned offset is
// written from the caller's memory.
func TestWrite(t *testing.T) {
	dir := storagetest.DiskDir(t)
	src := storagetest.Aligned(3*raw.Chunk+8192, 4096)
	for i := range src {
		src[i] = byte(i * 7 / 3)
	}
	for _, op := range openers()[:2] {
		for _, tc := range []struct {
			name   string
			pieces [][]byte
		}{
			{"aligned", [][]byte{src[:2*raw.Chunk], src[2*raw.Chunk : 2*raw.Chunk+4096]}},
			{"odd", [][]byte{src[:1], src[1:4099], src[4099 : 3*raw.Chunk+5], src[3*raw.Chunk+5 : 3*raw.Chunk+8000]}},
			{"aligned-then-tail", [][]byte{src[:4096], src[4096 : 8192+100]}},
			{"empty", nil},
		} {
			t.Run(op.name+"/"+tc.name, func(t *testing.T) {
				path := filepath.Join(dir, op.name+"-"+tc.name)
				if err := os.WriteFile(path, nil, 0o644); err != nil {
					t.Fatal(err)
				}
				f := openFile(t, op, path, os.O_WRONLY)
				w := raw.NewWriter(f, 2)
				var want []byte
				for _, p := range tc.pieces {
					if err := w.Write(context.Background(), p); err != nil {
						t.Fatal(err)
					}
					want = append(want, p...)
				}
				padded, err := w.Finish(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if f.Stats().Refused != 0 {
					t.Errorf("%d requests refused for alignment", f.Stats().Refused)
				}
				f.Close()
				if padded {
					if err := os.Truncate(path, w.Size()); err != nil {
						t.Fatal(err)
					}
				}
				got, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) || w.Size() != int64(len(want)) {
					t.Errorf("file holds %d bytes (size %d), want the %d written", len(got), w.Size(), len(want))
				}
				switch {
				case !op.direct && w.Bounced() != 0:
					t.Errorf("without O_DIRECT %d bytes bounced", w.Bounced())
				case op.direct && tc.name == "aligned" && w.Bounced() != 0:
					t.Errorf("aligned pieces: %d bytes bounced", w.Bounced())
				case op.direct && tc.name == "aligned-then-tail" && w.Bounced() >= int64(len(want)):
					t.Errorf("aligned start: all %d bytes bounced", w.Bounced())
				}
			})
		}
	}
}
