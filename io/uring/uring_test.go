//go:build linux

package uring_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/zflowdev/zflow/buffers"
	"github.com/zflowdev/zflow/io/mmap"
	"github.com/zflowdev/zflow/io/posix"
	"github.com/zflowdev/zflow/io/storage"
	"github.com/zflowdev/zflow/io/storage/storagetest"
	"github.com/zflowdev/zflow/io/uring"
)

func open(path string, flag int, perm os.FileMode, o storage.Options) (storage.File, error) {
	return uring.Open(path, flag, perm, o)
}

func needUring(t testing.TB) {
	t.Helper()
	if err := uring.Available(); err != nil {
		t.Skipf("io_uring unavailable: %v", err)
	}
}

func TestConformance(t *testing.T) {
	needUring(t)
	for where, dir := range storagetest.Dirs(t) {
		t.Run(where, func(t *testing.T) { storagetest.Conformance(t, dir, open) })
	}
}

func TestWrite(t *testing.T) {
	needUring(t)
	for where, dir := range storagetest.Dirs(t) {
		t.Run(where, func(t *testing.T) { storagetest.WriteConformance(t, dir, open) })
	}
}

func TestDirect(t *testing.T) {
	needUring(t)
	storagetest.Direct(t, open)
}

// Every backend reads the same bytes from the same file, on tmpfs and on
// the disk, and so does whatever auto picks.
func TestBackendsAgree(t *testing.T) {
	needUring(t)
	for where, dir := range storagetest.Dirs(t) {
		path, want := storagetest.WriteFile(t, dir, "same.bin", 1<<20+12345)
		for _, kind := range []string{"posix", "mmap", "uring", "auto"} {
			for _, whole := range []bool{false, true} {
				b, err := storage.Select(kind, path, storage.Options{WholeFile: whole})
				if err != nil {
					t.Fatalf("%s %s: %v", where, kind, err)
				}
				f, err := b.Open(path, os.O_RDONLY, 0)
				if err != nil {
					t.Fatalf("%s %s: %v", where, b.Name(), err)
				}
				if got := storagetest.ReadAll(t, f, 64<<10); !bytes.Equal(got, want) {
					t.Errorf("%s, io: %s (%s): bytes differ", where, kind, b.Name())
				}
				f.Close()
				if kind == "auto" {
					t.Logf("%s, whole=%v: auto → %s: %s", where, whole, b.Name(), b.Reason())
				}
			}
		}
	}
}

// Reads into a registered region (an mmap'd extent, like an arena's) go as
// READ_FIXED; a buffer outside it as plain READ; both land the same bytes.
func TestRegisteredBuffers(t *testing.T) {
	needUring(t)
	for where, dir := range storagetest.Dirs(t) {
		t.Run(where, func(t *testing.T) {
			path, want := storagetest.WriteFile(t, dir, "fixed.bin", 256<<10)
			extent, err := unix.Mmap(-1, 0, 2<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Munmap(extent)
			ring, err := uring.NewRing(uring.Config{Entries: 8})
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := ring.Close(); err != nil {
					t.Error(err)
				}
			}()
			if err := ring.RegisterBuffers([][]byte{extent}); err != nil {
				t.Skipf("IORING_REGISTER_BUFFERS refused: %v", err)
			}
			f, err := ring.Open(path, os.O_RDONLY, 0, storage.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			t.Logf("registered file: %v", f.Registered())
			var reqs []storage.Request
			for off := 0; off < len(want); off += 32 << 10 {
				reqs = append(reqs, storage.Request{Buf: extent[off+4096 : off+4096+32<<10], Off: int64(off)})
			}
			heap := make([]byte, 1000)
			reqs = append(reqs, storage.Request{Buf: heap, Off: 5})
			if err := f.ReadBatch(context.Background(), reqs); err != nil {
				t.Fatal(err)
			}
			for i, r := range reqs {
				if r.Err != nil || !bytes.Equal(r.Buf, want[r.Off:r.Off+int64(len(r.Buf))]) {
					t.Errorf("request %d: n=%d err=%v", i, r.N, r.Err)
				}
			}
			if st := f.Stats(); st.Fixed != int64(len(reqs)-1) {
				t.Errorf("Stats.Fixed = %d, want %d (every request but the heap one)", st.Fixed, len(reqs)-1)
			}
		})
	}
}

// Several files share one ring.
func TestSharedRing(t *testing.T) {
	needUring(t)
	dir := storagetest.DiskDir(t)
	ring, err := uring.NewRing(uring.Config{Entries: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer ring.Close()
	for i, size := range []int{100, 70000} {
		path, want := storagetest.WriteFile(t, dir, "s"+string(rune('a'+i)), size)
		f, err := ring.Open(path, os.O_RDONLY, 0, storage.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if got := storagetest.ReadAll(t, f, 4096); !bytes.Equal(got, want) {
			t.Errorf("file %d on a shared ring: bytes differ", i)
		}
		f.Close()
	}
}

func TestSQPoll(t *testing.T) {
	needUring(t)
	path, want := storagetest.WriteFile(t, storagetest.DiskDir(t), "sqpoll.bin", 100000)
	f, err := uring.Open(path, os.O_RDONLY, 0, storage.Options{QueueDepth: 8, SQPoll: true})
	if err != nil {
		t.Skipf("SQPOLL refused: %v", err)
	}
	defer f.Close()
	if got := storagetest.ReadAll(t, f, 8192); !bytes.Equal(got, want) {
		t.Error("SQPOLL read: bytes differ")
	}
}

// Cancelling the context with many reads queued and in flight: the batch
// returns context.Canceled only after every completion, the ring has
// nothing in flight, every request either finished whole or says it was
// cancelled, the checked allocator ends at zero and no goroutine is left.
func TestCancelMidFlight(t *testing.T) {
	needUring(t)
	defer goleak.VerifyNone(t)
	for where, dir := range storagetest.Dirs(t) {
		t.Run(where, func(t *testing.T) {
			const n, bs = 2048, 4096
			path, want := storagetest.WriteFile(t, dir, "cancel.bin", n*bs)
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			fault := func(c storage.Call, got int, err error) (int, error) {
				if c.Seq == 100 {
					cancel() // mid-flight: about 32 requests are in the ring
				}
				return got, err
			}
			f, err := uring.Open(path, os.O_RDONLY, 0, storage.Options{QueueDepth: 32, Fault: fault})
			if err != nil {
				t.Fatal(err)
			}
			reqs := make([]storage.Request, n)
			for i := range reqs {
				reqs[i] = storage.Request{Buf: mem.Allocate(bs), Off: int64(i * bs)}
			}
			err = f.ReadBatch(ctx, reqs)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("ReadBatch: %v, want context.Canceled", err)
			}
			if got := f.Ring().InFlight(); got != 0 {
				t.Errorf("ring reports %d in flight after the batch", got)
			}
			done, cancelled := 0, 0
			for i, r := range reqs {
				switch {
				case r.Err == nil && r.N == bs && bytes.Equal(r.Buf, want[i*bs:(i+1)*bs]):
					done++
				case errors.Is(r.Err, context.Canceled):
					cancelled++
				default:
					t.Fatalf("request %d: n=%d err=%v", i, r.N, r.Err)
				}
			}
			if done < 64 || cancelled == 0 {
				t.Errorf("%d done, %d cancelled: want most of the first 100 done and some cancelled", done, cancelled)
			}
			t.Logf("%d done, %d cancelled; stats %+v", done, cancelled, f.Stats())
			for _, r := range reqs {
				mem.Free(r.Buf)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// posix and mmap are referenced so this file's imports register them for
// Select; the assertion keeps the imports honest.
var _ = []any{posix.Name, mmap.Name}

// emptyFIFO opens an empty FIFO (reads of it wait for a writer that never
// comes) on a ring of its own with entries entries; the ring is closed at
// the test's end, which fails if anything is left in flight.
func emptyFIFO(t *testing.T, entries int) (*uring.Ring, *uring.File) {
	t.Helper()
	fifo := storagetest.DiskDir(t) + "/fifo"
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	ring, err := uring.NewRing(uring.Config{Entries: entries})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ring.Close(); err != nil {
			t.Error(err)
		}
	})
	f, err := ring.Open(fifo, os.O_RDWR, 0, storage.Options{}) // O_RDWR: the open does not wait for a writer
	if err != nil {
		t.Fatal(err)
	}
	return ring, f
}

// Reads that cannot complete (an empty FIFO) are in the ring when the
// context is cancelled: IORING_OP_ASYNC_CANCEL must cancel them, and the
// batch waits for their -ECANCELED completions before returning.
func TestCancelBlockedReads(t *testing.T) {
	needUring(t)
	defer goleak.VerifyNone(t)
	ring, f := emptyFIFO(t, 4)
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	reqs := make([]storage.Request, 8)
	for i := range reqs {
		reqs[i].Buf = make([]byte, 100)
	}
	if err := f.ReadBatch(ctx, reqs); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ReadBatch on an empty FIFO: %v, want the deadline", err)
	}
	if n := ring.InFlight(); n != 0 {
		t.Errorf("%d in flight after the batch", n)
	}
	st := f.Stats()
	if st.Canceled != 4 {
		t.Errorf("Stats.Canceled = %d, want the 4 reads in the ring (stats %+v)", st.Canceled, st)
	}
	for i, r := range reqs {
		if !errors.Is(r.Err, context.DeadlineExceeded) || r.N != 0 {
			t.Errorf("request %d: n=%d err=%v", i, r.N, r.Err)
		}
	}
}

// Arrow buffers carved from a zflow arena: its extents registered as fixed
// buffers, reads go as READ_FIXED straight into the Arrow buffers, and
// writes from them as WRITE_FIXED.
func TestArenaFixedBuffers(t *testing.T) {
	needUring(t)
	alloc, err := buffers.New(buffers.ArenaConfig{Kind: buffers.KindPlain, ExtentSize: 8 << 20, QuietFallback: true})
	if err != nil {
		t.Skipf("no arena here: %v", err)
	}
	defer func() {
		if err := alloc.Close(); err != nil {
			t.Error(err)
		}
	}()
	mem := memory.NewCheckedAllocator(alloc)
	defer mem.AssertSize(t, 0)
	dir := storagetest.DiskDir(t)
	path, want := storagetest.WriteFile(t, dir, "arena.bin", 300000)
	ring, err := uring.NewRing(uring.Config{Entries: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer ring.Close()
	bufs := make([]*memory.Buffer, 10)
	for i := range bufs {
		bufs[i] = memory.NewResizableBuffer(mem)
		bufs[i].Resize(30000)
	}
	defer func() {
		for _, b := range bufs {
			b.Release()
		}
	}()
	if err := ring.RegisterBuffers(alloc.Arena().Extents()); err != nil {
		t.Skipf("IORING_REGISTER_BUFFERS refused: %v", err)
	}
	f, err := ring.Open(path, os.O_RDWR, 0, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	reqs := make([]storage.Request, len(bufs))
	for i, b := range bufs {
		reqs[i] = storage.Request{Buf: b.Bytes(), Off: int64(i * 30000)}
	}
	if err := f.ReadBatch(context.Background(), reqs); err != nil {
		t.Fatal(err)
	}
	for i, r := range reqs {
		if r.Err != nil || !bytes.Equal(r.Buf, want[i*30000:(i+1)*30000]) {
			t.Errorf("read %d into an arena buffer: n=%d err=%v", i, r.N, r.Err)
		}
	}
	if st := f.Stats(); st.Fixed != int64(len(reqs)) {
		t.Errorf("Stats.Fixed = %d, want %d: arena buffers must go as READ_FIXED", st.Fixed, len(reqs))
	}
	for i := range reqs { // write them back shifted by one block: WRITE_FIXED
		reqs[i].Off += 300000
	}
	if err := f.WriteBatch(context.Background(), reqs); err != nil {
		t.Fatal(err)
	}
	if st := f.Stats(); st.Fixed != 2*int64(len(reqs)) {
		t.Errorf("Stats.Fixed = %d after the writes, want %d", st.Fixed, 2*len(reqs))
	}
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got[300000:], want) {
		t.Errorf("WRITE_FIXED from arena buffers: file differs (%v)", err)
	}
}

// Goroutines sharing one ring take turns through its lock; each gets its
// own file's bytes.
func TestSharedRingConcurrent(t *testing.T) {
	needUring(t)
	defer goleak.VerifyNone(t)
	dir := storagetest.ShmDir(t)
	ring, err := uring.NewRing(uring.Config{Entries: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer ring.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		path, want := storagetest.WriteFile(t, dir, "g"+string(rune('0'+g)), 50000+g*1000)
		f, err := ring.Open(path, os.O_RDONLY, 0, storage.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := 0; round < 20; round++ {
				reqs := make([]storage.Request, 0, 16)
				for off := 0; off < len(want); off += 4096 {
					reqs = append(reqs, storage.Request{Buf: make([]byte, 4096), Off: int64(off)})
				}
				if err := f.ReadBatch(context.Background(), reqs); err != nil {
					errs <- err
					return
				}
				for _, r := range reqs {
					end := min(int(r.Off)+4096, len(want))
					if !bytes.Equal(r.Buf[:r.N], want[r.Off:end]) {
						errs <- fmt.Errorf("%s at %d: bytes differ", f.Name(), r.Off)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := ring.InFlight(); n != 0 {
		t.Errorf("%d in flight", n)
	}
}
