// Package storagetest holds what the storage backends' tests share: real
// files on tmpfs (/dev/shm) and on the disk under the package being
// tested, filled with known bytes, and checks any backend must pass
// (Conformance). It is imported only by tests.
package storagetest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/zflowdev/zflow/io/storage"
)

// ShmDir is a fresh folder on tmpfs, removed after the test; the test is
// skipped where /dev/shm is not tmpfs.
func ShmDir(t testing.TB) string {
	t.Helper()
	f, err := storage.Probe("/dev/shm")
	if err != nil || f.FSType != "tmpfs" {
		t.Skipf("/dev/shm is not tmpfs here (%+v, %v)", f, err)
	}
	dir, err := os.MkdirTemp("/dev/shm", "zflow-io-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// DiskDir is a fresh folder on the disk the package under test lives on
// (its working directory), removed after the test.
func DiskDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp(".", ".disk-")
	if err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(abs) })
	return abs
}

// Dirs are the places every backend is tested on.
func Dirs(t testing.TB) map[string]string {
	return map[string]string{"tmpfs": ShmDir(t), "disk": DiskDir(t)}
}

// WriteFile writes size pseudo-random bytes (seeded by size) to dir/name
// and returns the path and the bytes.
func WriteFile(t testing.TB, dir, name string, size int) (string, []byte) {
	t.Helper()
	data := make([]byte, size)
	r := rand.New(rand.NewPCG(uint64(size), 7))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, data
}

// Aligned returns n bytes at an address that is a multiple of align,
// from the Go heap (which never moves them).
func Aligned(n, align int) []byte {
	if align <= 1 {
		return make([]byte, n)
	}
	b := make([]byte, n+align)
	off := 0
	if r := int(uintptrOf(b) % uintptr(align)); r != 0 {
		off = align - r
	}
	return b[off : off+n : off+n]
}

// Opener opens a file of one backend.
type Opener func(path string, flag int, perm os.FileMode, o storage.Options) (storage.File, error)

// ReadAll reads the whole of f in chunks of chunk bytes, several requests
// per batch, and returns what it read (the last request ends with
// io.EOF).
func ReadAll(t testing.TB, f storage.File, chunk int) []byte {
	t.Helper()
	size, err := f.Size()
	if err != nil {
		t.Fatal(err)
	}
	align := f.Align()
	var reqs []storage.Request
	for off := int64(0); off < size; off += int64(chunk) {
		reqs = append(reqs, storage.Request{Buf: Aligned(chunk, align), Off: off})
	}
	if err := f.ReadBatch(context.Background(), reqs); err != nil {
		t.Fatalf("%s: ReadBatch: %v", f.Name(), err)
	}
	var out []byte
	for i, r := range reqs {
		last := i == len(reqs)-1
		switch {
		case r.Err == nil && r.N == len(r.Buf):
		case last && errors.Is(r.Err, io.EOF) && r.N < len(r.Buf):
		default:
			t.Fatalf("%s: request %d (off %d, %d bytes): n=%d err=%v", f.Name(), i, r.Off, len(r.Buf), r.N, r.Err)
		}
		out = append(out, r.Buf[:r.N]...)
	}
	return out
}

// Conformance runs the checks every backend passes on real files in dir:
// whole reads in chunks that do not divide the size, a read across the
// end, reads past the end, EINTR/EAGAIN and short reads injected around
// the real calls, EIO on the k-th request, a cancelled context, and the
// ReaderAt adapter.
func Conformance(t *testing.T, dir string, open Opener) {
	const size = 3*4096 + 100 // not a multiple of any block size
	path, want := WriteFile(t, dir, "conf.bin", size)
	ctx := context.Background()

	t.Run("whole", func(t *testing.T) {
		for _, chunk := range []int{4096, 1000, 1 << 20} {
			f, err := open(path, os.O_RDONLY, 0, storage.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if got := ReadAll(t, f, chunk); !bytes.Equal(got, want) {
				t.Errorf("chunk %d: read %d bytes, differ from the file's %d", chunk, len(got), len(want))
			}
			f.Close()
		}
	})
	t.Run("short-at-end", func(t *testing.T) {
		f, err := open(path, os.O_RDONLY, 0, storage.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		reqs := []storage.Request{
			{Buf: make([]byte, 300), Off: size - 100},
			{Buf: make([]byte, 10), Off: size},
			{Buf: make([]byte, 10), Off: size + 5000},
			{Buf: make([]byte, 0), Off: 0},
		}
		if err := f.ReadBatch(ctx, reqs); err != nil {
			t.Fatal(err)
		}
		if reqs[0].N != 100 || !errors.Is(reqs[0].Err, io.EOF) || !bytes.Equal(reqs[0].Buf[:100], want[size-100:]) {
			t.Errorf("across the end: n=%d err=%v", reqs[0].N, reqs[0].Err)
		}
		for _, r := range reqs[1:3] {
			if r.N != 0 || !errors.Is(r.Err, io.EOF) {
				t.Errorf("at/after the end (off %d): n=%d err=%v", r.Off, r.N, r.Err)
			}
		}
		if reqs[3].N != 0 || reqs[3].Err != nil {
			t.Errorf("empty request: n=%d err=%v", reqs[3].N, reqs[3].Err)
		}
	})
	faults := []struct {
		name  string
		fault storage.Fault
		check func(t *testing.T, st storage.Stats, reqs []storage.Request)
	}{
		{"eintr-eagain", func(c storage.Call, n int, err error) (int, error) {
			switch c.Attempt {
			case 0:
				return 0, syscall.EINTR
			case 1:
				return 0, syscall.EAGAIN
			}
			return n, err
		}, func(t *testing.T, st storage.Stats, reqs []storage.Request) {
			// every call sequence (per request, or per vectored run of
			// them) meets EINTR then EAGAIN before its real result
			if st.Retries < 2 || st.Retries%2 != 0 {
				t.Errorf("retries %d, want two for each call sequence", st.Retries)
			}
		}},
		{"short-reads", func(c storage.Call, n int, err error) (int, error) {
			if err == nil && n > 7 {
				return n / 3, nil // the kernel returned less: the backend must ask for the rest
			}
			return n, err
		}, func(t *testing.T, st storage.Stats, reqs []storage.Request) {
			if st.Resubmit == 0 {
				t.Error("no continuation after a short read")
			}
		}},
		{"eio-on-request-2", func(c storage.Call, n int, err error) (int, error) {
			if c.Covers(2) {
				return 0, syscall.EIO
			}
			return n, err
		}, nil},
	}
	for _, fc := range faults {
		t.Run(fc.name, func(t *testing.T) {
			f, err := open(path, os.O_RDONLY, 0, storage.Options{Fault: fc.fault})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var reqs []storage.Request
			for off := 0; off < size; off += 1000 {
				reqs = append(reqs, storage.Request{Buf: make([]byte, 1000), Off: int64(off)})
			}
			if err := f.ReadBatch(ctx, reqs); err != nil {
				t.Fatal(err)
			}
			for i, r := range reqs {
				end := min(int(r.Off)+1000, size)
				if fc.check == nil && i == 2 {
					if !errors.Is(r.Err, syscall.EIO) {
						t.Errorf("request 2: err %v, want EIO", r.Err)
					}
					continue
				}
				if r.N != end-int(r.Off) || !bytes.Equal(r.Buf[:r.N], want[r.Off:end]) {
					t.Errorf("request %d: n=%d err=%v, want %d bytes of the file", i, r.N, r.Err, end-int(r.Off))
				}
				if (r.Err != nil) != (r.N < 1000) {
					t.Errorf("request %d: n=%d err=%v", i, r.N, r.Err)
				}
			}
			if fc.check != nil {
				fc.check(t, f.Stats(), reqs)
			}
		})
	}
	t.Run("cancelled", func(t *testing.T) {
		f, err := open(path, os.O_RDONLY, 0, storage.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		reqs := []storage.Request{{Buf: make([]byte, 10)}, {Buf: make([]byte, 10), Off: 10}}
		if err := f.ReadBatch(cctx, reqs); !errors.Is(err, context.Canceled) {
			t.Fatalf("ReadBatch under a cancelled context: %v", err)
		}
		for i, r := range reqs {
			if !errors.Is(r.Err, context.Canceled) {
				t.Errorf("request %d: err %v, want context.Canceled", i, r.Err)
			}
		}
	})
	t.Run("reader-at", func(t *testing.T) {
		f, err := open(path, os.O_RDONLY, 0, storage.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		ra := storage.NewReaderAt(ctx, f)
		got := make([]byte, size)
		if n, err := io.ReadFull(io.NewSectionReader(ra, 0, size), got); err != nil || n != size || !bytes.Equal(got, want) {
			t.Errorf("through io.ReaderAt: n=%d err=%v", n, err)
		}
		p := make([]byte, 200)
		if n, err := ra.ReadAt(p, size-50); n != 50 || err != io.EOF {
			t.Errorf("ReadAt across the end: n=%d err=%v, want 50, io.EOF", n, err)
		}
		rd := storage.NewReader(ctx, f)
		if pos, err := rd.Seek(-100, io.SeekEnd); err != nil || pos != size-100 {
			t.Fatalf("Seek(-100, end) = %d, %v", pos, err)
		}
		tail, err := io.ReadAll(rd)
		if err != nil || !bytes.Equal(tail, want[size-100:]) {
			t.Errorf("Read after Seek: %d bytes, %v", len(tail), err)
		}
		if _, err := rd.Seek(-1, io.SeekStart); err == nil {
			t.Error("Seek before the start succeeded")
		}
	})
}

// WriteConformance writes a file through a backend in uneven chunks, with
// short writes and EINTR injected around the real calls, and reads it back
// with the standard library.
func WriteConformance(t *testing.T, dir string, open Opener) {
	const size = 2*4096 + 333
	_, want := WriteFile(t, dir, "src.bin", size)
	path := filepath.Join(dir, "out.bin")
	calls := 0
	fault := func(c storage.Call, n int, err error) (int, error) {
		calls++
		switch {
		case c.Attempt == 0 && c.Seq%2 == 0:
			return 0, syscall.EINTR
		case err == nil && n > 5:
			return n - 5, nil // short write: the backend writes the rest
		}
		return n, err
	}
	f, err := open(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644, storage.Options{Fault: fault})
	if err != nil {
		t.Fatal(err)
	}
	var reqs []storage.Request
	for off := 0; off < size; off += 1500 {
		reqs = append(reqs, storage.Request{Buf: want[off:min(off+1500, size)], Off: int64(off)})
	}
	if err := f.WriteBatch(context.Background(), reqs); err != nil {
		t.Fatal(err)
	}
	for i, r := range reqs {
		if r.Err != nil || r.N != len(r.Buf) {
			t.Errorf("write %d: n=%d err=%v", i, r.N, r.Err)
		}
	}
	if st := f.Stats(); st.Retries == 0 || st.Resubmit == 0 || st.Bytes != size {
		t.Errorf("stats %+v: want retries, continuations and %d bytes", st, size)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("written file: %d bytes (%v), differ from the %d written", len(got), err, size)
	}
}
