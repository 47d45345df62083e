package storagetest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"syscall"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/io/storage"
)

// QueueRead reads the whole of f through a storage.Queue of depth depth
// in requests of chunk bytes (buffers from mem), refilling each slot as
// its request comes back (Submit to fill the queue, Stage to refill it), as a sequential reader does, and returns what
// it read, placed by each request's tag. It fails the test on any
// request's error but the last one's io.EOF. The buffers go back to mem.
func QueueRead(t testing.TB, f storage.File, mem memory.Allocator, chunk, depth int) []byte {
	t.Helper()
	size, err := f.Size()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	q, err := storage.NewQueue(f, storage.OpRead, depth)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	out := make([]byte, size)
	nreq := int((size + int64(chunk) - 1) / int64(chunk))
	next := 0
	var done []storage.Done
	// submit hands buf over for the next chunk: with Submit at first, with
	// Stage (sent by the next Reap) when refilling.
	submit := func(buf []byte) {
		if next >= nreq {
			mem.Free(buf)
			return
		}
		req := []storage.Request{{Buf: buf, Off: int64(next) * int64(chunk)}}
		add := q.Submit
		if next >= q.Depth() {
			add = q.Stage
		}
		if err := add(ctx, req, next); err != nil {
			t.Fatalf("%s: Submit: %v", f.Name(), err)
		}
		next++
	}
	for range min(q.Depth(), nreq) {
		submit(mem.Allocate(chunk)) // 64-byte aligned: enough without O_DIRECT
	}
	for q.Pending() > 0 {
		done, err = q.Reap(ctx, done[:0], 1)
		if err != nil {
			t.Fatalf("%s: Reap: %v", f.Name(), err)
		}
		if len(done) == 0 {
			t.Fatalf("%s: Reap returned nothing with %d pending", f.Name(), q.Pending())
		}
		for _, d := range done {
			last := d.Tag == nreq-1
			switch {
			case d.Err == nil && d.N == len(d.Buf):
			case last && errors.Is(d.Err, io.EOF) && d.N < len(d.Buf):
			default:
				t.Fatalf("%s: request %d (off %d): n=%d err=%v", f.Name(), d.Tag, d.Off, d.N, d.Err)
			}
			copy(out[d.Off:], d.Buf[:d.N])
			submit(d.Buf[:chunk])
		}
	}
	return out
}

// QueueConformance runs the checks every backend's storage.Queue passes
// on a real file in dir: the whole file read back at depth 1, 4 and 32 in
// chunks that do not divide its size; short reads and EINTR injected
// around the real calls; Submit beyond the depth refused; a cancelled
// context ending Reap with every buffer handed back. Every buffer comes
// from a checked allocator that ends at zero.
func QueueConformance(t *testing.T, dir string, open Opener) {
	const size = 300*1000 + 123
	path, want := WriteFile(t, dir, "queue.bin", size)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	for _, depth := range []int{1, 4, 32} {
		f, err := open(path, os.O_RDONLY, 0, storage.Options{QueueDepth: 32})
		if err != nil {
			t.Fatal(err)
		}
		if got := QueueRead(t, f, mem, 1000, depth); !bytes.Equal(got, want) {
			t.Errorf("depth %d: the file read back differs", depth)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("faults", func(t *testing.T) {
		fault := func(c storage.Call, n int, err error) (int, error) {
			switch {
			case c.Seq%7 == 3 && c.Attempt == 0:
				return 0, syscall.EINTR
			case c.Seq%5 == 1 && c.Attempt == 0 && n > 10:
				return n / 3, nil
			}
			return n, err
		}
		f, err := open(path, os.O_RDONLY, 0, storage.Options{Fault: fault})
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if got := QueueRead(t, f, mem, 4096, 8); !bytes.Equal(got, want) {
			t.Errorf("with EINTR and short reads injected: the file read back differs")
		}
	})
	t.Run("overfull", func(t *testing.T) {
		q := openQueue(t, open, path, 2)
		reqs := make([]storage.Request, 3)
		for i := range reqs {
			reqs[i] = storage.Request{Buf: make([]byte, 10), Off: int64(i * 10)}
		}
		if err := q.Submit(context.Background(), reqs, 0); err == nil {
			t.Errorf("Submit of 3 requests to a queue of depth 2: no error")
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		q := openQueue(t, open, path, 4)
		ctx, cancel := context.WithCancel(context.Background())
		reqs := make([]storage.Request, 4)
		for i := range reqs {
			reqs[i] = storage.Request{Buf: mem.Allocate(1000), Off: int64(i * 1000)}
		}
		if err := q.Submit(ctx, reqs, 0); err != nil {
			t.Fatal(err)
		}
		cancel()
		var done []storage.Done
		for q.Pending() > 0 {
			var err error
			if done, err = q.Reap(ctx, done, 1); !errors.Is(err, context.Canceled) {
				t.Fatalf("Reap under a cancelled context: %v", err)
			}
		}
		if len(done) != 4 {
			t.Fatalf("%d requests handed back, want 4", len(done))
		}
		for _, d := range done {
			if d.Err != nil && !errors.Is(d.Err, context.Canceled) {
				t.Errorf("request %d: %v", d.Tag, d.Err)
			}
			mem.Free(d.Buf)
		}
		if err := q.Submit(ctx, reqs[:1], 0); !errors.Is(err, context.Canceled) {
			t.Errorf("Submit under a cancelled context: %v", err)
		}
	})
}

// openQueue opens path for reading and a read queue of depth on it, both
// closed at the test's end.
func openQueue(t *testing.T, open Opener, path string, depth int) storage.Queue {
	t.Helper()
	f, err := open(path, os.O_RDONLY, 0, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	q, err := storage.NewQueue(f, storage.OpRead, depth)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}
