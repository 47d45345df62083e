package posix_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"

	"github.com/zflowdev/zflow/io/posix"
	"github.com/zflowdev/zflow/io/storage"
	"github.com/zflowdev/zflow/io/storage/storagetest"
)

// A Submit is one job: its adjacent requests go as one preadv2 on a
// worker, and several jobs run at once; the file reads back equal at
// every depth, on tmpfs and the disk, and Close leaves no worker behind.
func TestQueueJobs(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the queues' cleanups
	for where, dir := range storagetest.Dirs(t) {
		t.Run(where, func(t *testing.T) {
			path, want := storagetest.WriteFile(t, dir, "jobs.bin", 1<<20+4321)
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			for _, depth := range []int{1, 2, 16} {
				f, err := posix.Open(path, os.O_RDONLY, 0, storage.Options{})
				if err != nil {
					t.Fatal(err)
				}
				if got := storagetest.QueueRead(t, f, mem, 64<<10, depth); !bytes.Equal(got, want) {
					t.Errorf("depth %d: the file read back differs", depth)
				}
				if err := f.Close(); err != nil {
					t.Fatal(err)
				}
			}
			f, q := openQueue(t, path, storage.Options{}, 8)
			reqs := make([]storage.Request, 4)
			for i := range reqs {
				reqs[i] = storage.Request{Buf: make([]byte, 1000), Off: int64(i * 1000)}
			}
			if err := q.Submit(context.Background(), reqs, 10); err != nil {
				t.Fatal(err)
			}
			if err := f.ReadBatch(context.Background(), reqs[:1]); err == nil {
				t.Errorf("ReadBatch with 4 requests pending on the queue: no error")
			}
			done, err := q.Reap(context.Background(), nil, 4)
			if err != nil || len(done) != 4 {
				t.Fatalf("Reap: %d back, %v", len(done), err)
			}
			for _, d := range done {
				if d.Err != nil || !bytes.Equal(d.Buf, want[d.Off:d.Off+1000]) || d.Tag != 10+int(d.Off/1000) {
					t.Errorf("request at %d (tag %d): n=%d err=%v", d.Off, d.Tag, d.N, d.Err)
				}
			}
			if runtime.GOOS == "linux" {
				if st := f.Stats(); st.Calls != 1 {
					t.Errorf("4 adjacent requests in one Submit: %d calls, want one preadv2", st.Calls)
				}
			}
		})
	}
}

// Reap under a cancelled context, with one job running (held inside its
// read by the Fault hook) and others waiting: the running one finishes
// whole (a read is never cut halfway), the waiting ones come back with the
// context's error without being read, and Reap returns only when every
// request is back. Close with a job running waits for it likewise; no
// worker outlives it.
func TestQueueCancelRunning(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the queues' cleanups
	dir := storagetest.ShmDir(t)
	path, want := storagetest.WriteFile(t, dir, "cancel.bin", 64<<10)
	for _, how := range []string{"reap", "close", "file close"} {
		t.Run(how, func(t *testing.T) {
			entered, release := make(chan struct{}), make(chan struct{})
			var reads atomic.Int64
			fault := func(c storage.Call, n int, err error) (int, error) {
				if reads.Add(1) == 1 {
					close(entered)
					<-release
				}
				return n, err
			}
			f, q := openQueue(t, path, storage.Options{Fault: fault}, 8)
			ctx, cancel := context.WithCancel(context.Background())
			bufs := make([][]byte, 8)
			for i := range bufs {
				bufs[i] = make([]byte, 4096)
				// One job per request, 8 KiB apart: none adjacent.
				if err := q.Submit(ctx, []storage.Request{{Buf: bufs[i], Off: int64(i) * 8192}}, i); err != nil {
					t.Fatal(err)
				}
			}
			<-entered // a worker is inside the first read; the other jobs wait or run
			cancel()
			close(release) // the held read finishes; the cancellation is already visible
			var done []storage.Done
			var err error
			switch how {
			case "reap":
				done, err = q.Reap(ctx, nil, 1)
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("Reap under a cancelled context: %v", err)
				}
				if len(done) != 8 || q.Pending() != 0 {
					t.Fatalf("%d requests back, %d pending; want all 8 back", len(done), q.Pending())
				}
			case "close":
				if err := q.Close(); err != nil {
					t.Fatal(err)
				}
			case "file close":
				if err := f.Close(); err != nil {
					t.Fatal(err)
				}
			}
			read := 0
			for _, d := range done {
				switch {
				case d.Err == nil:
					read++
					if d.N != 4096 || !bytes.Equal(d.Buf, want[d.Off:d.Off+4096]) {
						t.Errorf("request %d: read %d bytes, differing from the file", d.Tag, d.N)
					}
				case !errors.Is(d.Err, context.Canceled):
					t.Errorf("request %d: %v, want context.Canceled or a whole read", d.Tag, d.Err)
				}
			}
			if how == "reap" && read == 0 {
				t.Errorf("the read held in flight came back cancelled: it had started")
			}
			if how != "reap" {
				if _, err := q.Reap(context.Background(), nil, 1); err == nil {
					t.Errorf("Reap on a closed queue: no error")
				}
			}
		})
	}
}

// Staged requests wait for the next Reap: under a cancelled context they
// come back with its error and are never read.
func TestQueueStagedCancelled(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the queues' cleanups
	path, _ := storagetest.WriteFile(t, storagetest.ShmDir(t), "staged.bin", 8192)
	f, q := openQueue(t, path, storage.Options{}, 4)
	ctx, cancel := context.WithCancel(context.Background())
	if err := q.Stage(ctx, []storage.Request{{Buf: make([]byte, 4096)}, {Buf: make([]byte, 4096), Off: 4096}}, 0); err != nil {
		t.Fatal(err)
	}
	cancel()
	done, err := q.Reap(ctx, nil, 2)
	if !errors.Is(err, context.Canceled) || len(done) != 2 {
		t.Fatalf("Reap: %d back, %v", len(done), err)
	}
	for _, d := range done {
		if !errors.Is(d.Err, context.Canceled) || d.N != 0 {
			t.Errorf("staged request %d: n=%d err=%v, want not started", d.Tag, d.N, d.Err)
		}
	}
	if st := f.Stats(); st.Calls != 0 {
		t.Errorf("%d calls made for cancelled staged requests", st.Calls)
	}
}

// openQueue opens path with o and a read queue of depth on it, both closed
// at the test's end (again, for the tests that close them themselves).
func openQueue(t *testing.T, path string, o storage.Options, depth int) (*posix.File, storage.Queue) {
	t.Helper()
	f, err := posix.Open(path, os.O_RDONLY, 0, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	q, err := f.NewQueue(storage.OpRead, depth)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return f, q
}
