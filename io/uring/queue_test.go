//go:build linux

package uring_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"

	"github.com/zflowdev/zflow/io/storage"
	"github.com/zflowdev/zflow/io/storage/storagetest"
	"github.com/zflowdev/zflow/io/uring"
)

func TestQueue(t *testing.T) {
	needUring(t)
	defer goleak.VerifyNone(t)
	for where, dir := range storagetest.Dirs(t) {
		t.Run(where, func(t *testing.T) { storagetest.QueueConformance(t, dir, open) })
	}
}

// The queue stays full: a sequential read that refills each slot as its
// request comes back has depth requests pending after every refill, and
// reaps several completions per io_uring_enter on average rather than
// draining the queue per batch. O_DIRECT on the disk, as the bench reads.
func TestQueueKeepsFull(t *testing.T) {
	needUring(t)
	defer goleak.VerifyNone(t)
	const bs, n, depth = 64 << 10, 256, 16
	path, want := storagetest.WriteFile(t, storagetest.DiskDir(t), "full.bin", bs*n)
	f, err := uring.Open(path, os.O_RDONLY, 0, storage.Options{Direct: true, QueueDepth: depth})
	if err != nil {
		t.Skipf("O_DIRECT here: %v", err)
	}
	defer f.Close()
	q, err := f.NewQueue(storage.OpRead, 0)
	if err != nil {
		t.Fatal(err)
	}
	if q.Depth() != depth {
		t.Fatalf("Depth() = %d, want the ring's %d", q.Depth(), depth)
	}
	ctx := context.Background()
	next := 0
	submit := func(buf []byte) {
		if next == n {
			return
		}
		add := q.Submit
		if next >= depth {
			add = q.Stage // refills go with the next Reap's wait
		}
		if err := add(ctx, []storage.Request{{Buf: buf, Off: int64(next * bs)}}, next); err != nil {
			t.Fatal(err)
		}
		next++
	}
	for range depth {
		submit(storagetest.Aligned(bs, f.Align()))
	}
	got := make([]byte, n*bs)
	var done []storage.Done
	reaps, short := 0, 0
	for q.Pending() > 0 {
		if done, err = q.Reap(ctx, done[:0], 4); err != nil {
			t.Fatal(err)
		}
		reaps++
		for _, d := range done {
			if d.Err != nil || d.N != bs {
				t.Fatalf("request %d: n=%d err=%v", d.Tag, d.N, d.Err)
			}
			copy(got[d.Off:], d.Buf)
			submit(d.Buf)
		}
		if next < n && q.Pending() != depth {
			short++
		}
	}
	if short > 0 {
		t.Errorf("%d times fewer than %d requests pending after a refill", short, depth)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("the file read back differs")
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	st := f.Stats()
	t.Logf("%d requests, %d reaps, %d io_uring_enter, stats %+v", n, reaps, st.Calls, st)
	if f.Ring().InFlight() != 0 {
		t.Errorf("%d in flight after Close", f.Ring().InFlight())
	}
}

// Cancelling the context mid-read: Reap cancels what is in the ring, waits
// for every completion and hands every buffer back; the ring has nothing
// in flight, and the checked allocator ends at zero once they are freed.
func TestQueueCancelMidFlight(t *testing.T) {
	needUring(t)
	defer goleak.VerifyNone(t)
	for where, dir := range storagetest.Dirs(t) {
		t.Run(where, func(t *testing.T) {
			const n, bs = 1024, 4096
			path, _ := storagetest.WriteFile(t, dir, "cancel.bin", n*bs)
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			fault := func(c storage.Call, got int, err error) (int, error) {
				if c.Seq == 200 {
					cancel()
				}
				return got, err
			}
			f, err := uring.Open(path, os.O_RDONLY, 0, storage.Options{QueueDepth: 32, Fault: fault})
			if err != nil {
				t.Fatal(err)
			}
			q, err := f.NewQueue(storage.OpRead, 0)
			if err != nil {
				t.Fatal(err)
			}
			next, back := 0, 0
			var done []storage.Done
			for range q.Depth() {
				if err := q.Submit(ctx, []storage.Request{{Buf: mem.Allocate(bs), Off: int64(next * bs)}}, next); err != nil {
					t.Fatal(err)
				}
				next++
			}
			var rerr error
			for rerr == nil && q.Pending() > 0 {
				done, rerr = q.Reap(ctx, done[:0], 4)
				for _, d := range done {
					back++
					if next < n && rerr == nil && ctx.Err() == nil {
						if err := q.Submit(ctx, []storage.Request{{Buf: d.Buf, Off: int64(next * bs)}}, next); err == nil {
							next++
							continue
						}
					}
					mem.Free(d.Buf)
				}
			}
			if !errors.Is(rerr, context.Canceled) {
				t.Fatalf("Reap: %v, want context.Canceled", rerr)
			}
			if q.Pending() != 0 || back != next {
				t.Errorf("%d pending after the cancelled Reap; %d submitted, %d handed back", q.Pending(), next, back)
			}
			if got := f.Ring().InFlight(); got != 0 {
				t.Errorf("ring reports %d in flight after the cancelled Reap", got)
			}
			t.Logf("%d submitted before the cancel; stats %+v", next, f.Stats())
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Closing a file whose queue has reads the kernel cannot complete (an
// empty FIFO) cancels them and waits for their completions: nothing is in
// flight on the ring once Close returns, and a batch on the ring was
// refused while they were pending.
func TestQueueCloseInFlight(t *testing.T) {
	needUring(t)
	defer goleak.VerifyNone(t)
	ring, f := emptyFIFO(t, 8)
	q, err := f.NewQueue(storage.OpRead, 4)
	if err != nil {
		t.Fatal(err)
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	reqs := make([]storage.Request, 4)
	for i := range reqs {
		reqs[i].Buf = mem.Allocate(100)
	}
	if err := q.Submit(context.Background(), reqs, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.ReadBatch(context.Background(), []storage.Request{{Buf: make([]byte, 10)}}); err == nil {
		t.Errorf("ReadBatch with a queue pending on the ring: no error")
	}
	if err := f.Close(); err != nil { // closes the queue: cancels the 4 reads and waits for them
		t.Fatal(err)
	}
	if n := ring.InFlight(); n != 0 {
		t.Errorf("%d in flight after Close", n)
	}
	if st := f.Stats(); st.Canceled != 4 {
		t.Errorf("Stats.Canceled = %d, want the 4 reads (stats %+v)", st.Canceled, st)
	}
	for _, r := range reqs {
		mem.Free(r.Buf) // the kernel holds none of them now
	}
	mem.AssertSize(t, 0)
}
