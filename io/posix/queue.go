package posix

import (
	"context"
	"fmt"
	"runtime"
	"sync"

	"github.com/zflowdev/zflow/io/storage"
)

// Queue is posix's storage.Queue: each Submit is one job, run by one of a
// few worker goroutines as a batch of its own (adjacent requests in one
// preadv2), while the caller goes on with its work; each Stage is a job
// the next Reap runs on the caller's goroutine, where it would only
// have waited. pread
// has no asynchronous form, so the overlap comes from threads, as in
// fio's psync engine with numjobs > 1 or glibc's POSIX AIO: the next
// blocks are read while the reader decodes the current one (on tmpfs the
// copy out of the page cache runs on the other CPU).
//
// Ownership is storage.Queue's: a request's Buf belongs to the queue from
// Submit until Reap hands it back. Jobs finish in any order; the Fault
// hook of Options is called from the workers, so it must be safe for
// concurrent use (the request numbers it sees are given in submission
// order). A request is never interrupted halfway: cancellation (Reap's
// context, Close) ends the jobs not yet started with the error, and Reap
// and Close wait for those that are running.
type Queue struct {
	f       *File
	op      storage.Op
	depth   int
	jobs    chan *job // to the workers
	done    chan *job // from the workers
	free    []*job    // reusable jobs (the caller's goroutine only)
	staged  []*job    // jobs Stage kept for the next Reap (or Submit)
	iov     []iovec   // scratch for the staged jobs Reap runs itself
	pending int       // requests submitted and not handed back
	running int       // jobs sent to the workers and not received back
	closed  bool
	wg      sync.WaitGroup

	mu   sync.Mutex
	stop error // set by cancellation: jobs not started end with it
}

// job is one Submit's requests.
type job struct {
	ctx  context.Context
	reqs []storage.Request
	tag  int
	seq  int64
}

var (
	_ storage.Queue  = (*Queue)(nil)
	_ storage.Queuer = (*File)(nil)
)

// Workers is how many goroutines run a queue's jobs: GOMAXPROCS, at most
// the queue's depth and at most maxWorkers. More than the CPUs only adds
// wake-ups (a pread of a cached page copies on the CPU that calls it); on
// a device the depth comes from the jobs' sizes (one preadv2 per job),
// not from the number of threads.
func Workers(depth int) int { return max(1, min(depth, runtime.GOMAXPROCS(0), maxWorkers)) }

const maxWorkers = 4

// NewQueue opens the file's Queue for op (storage.Queuer): depth 0 is the
// file's queue depth. A file has one open Queue at a time.
func (f *File) NewQueue(op storage.Op, depth int) (storage.Queue, error) {
	if f.q != nil && !f.q.closed {
		return nil, fmt.Errorf("posix: queue on %s: the file already has an open queue", f.name)
	}
	if depth <= 0 {
		depth = f.opts.Depth()
	}
	q := &Queue{f: f, op: op, depth: depth, jobs: make(chan *job, depth), done: make(chan *job, depth)}
	n := Workers(depth)
	q.wg.Add(n)
	for range n {
		go q.work()
	}
	f.q = q
	return q, nil
}

// work runs jobs until the queue closes its channel.
func (q *Queue) work() {
	defer q.wg.Done()
	var iov []iovec
	for j := range q.jobs {
		q.run(j, &iov)
		q.done <- j
	}
}

// run serves j's requests, or ends them all with the cancellation's
// error when the queue or j's context is cancelled.
func (q *Queue) run(j *job, iov *[]iovec) {
	q.mu.Lock()
	stop := q.stop
	q.mu.Unlock()
	if stop == nil {
		stop = j.ctx.Err()
	}
	if stop != nil {
		for i := range j.reqs {
			j.reqs[i].N, j.reqs[i].Err = 0, fmt.Errorf("posix: %s at %d of %s not started: %w", q.op, j.reqs[i].Off, q.f.name, stop)
		}
		return
	}
	q.f.serve(j.ctx, q.op, j.reqs, j.seq, iov)
}

func (q *Queue) Depth() int   { return q.depth }
func (q *Queue) Pending() int { return q.pending }

// Submit hands reqs to the workers as one job (after the staged ones).
func (q *Queue) Submit(ctx context.Context, reqs []storage.Request, tag int) error {
	j, err := q.add(ctx, reqs, tag)
	if j == nil {
		return err
	}
	for _, s := range q.staged {
		q.dispatch(s)
	}
	clear(q.staged)
	q.staged = q.staged[:0]
	q.dispatch(j)
	return nil
}

// Stage keeps reqs as one job for the next Reap, which runs it on the
// caller's goroutine instead of waiting (or the next Submit, which hands
// it to the workers first): a reader that reaps right after refilling
// (one request at a time, at depth 1) then pays no hand-off to a worker
// and back, which cost 40 % of 4 KiB reads on tmpfs.
func (q *Queue) Stage(ctx context.Context, reqs []storage.Request, tag int) error {
	j, err := q.add(ctx, reqs, tag)
	if j != nil {
		q.staged = append(q.staged, j)
	}
	return err
}

// dispatch sends j to the workers.
func (q *Queue) dispatch(j *job) {
	q.running++
	q.jobs <- j // never blocks: at most depth jobs (each at least one request) are out
}

// add checks and copies reqs into a job; nil when there is nothing to do.
func (q *Queue) add(ctx context.Context, reqs []storage.Request, tag int) (*job, error) {
	switch {
	case q.closed:
		return nil, fmt.Errorf("posix: submit to a closed queue of %s", q.f.name)
	case q.pending+len(reqs) > q.depth:
		return nil, fmt.Errorf("posix: submit %d requests to a queue of %s with %d of %d pending", len(reqs), q.f.name, q.pending, q.depth)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(reqs) == 0 {
		return nil, nil
	}
	var j *job
	if n := len(q.free); n > 0 {
		j, q.free = q.free[n-1], q.free[:n-1]
	} else {
		j = &job{}
	}
	j.ctx, j.tag, j.seq = ctx, tag, q.f.nextSeq(len(reqs))
	j.reqs = append(j.reqs[:0], reqs...)
	for i := range j.reqs {
		j.reqs[i].N, j.reqs[i].Err = 0, nil
	}
	q.pending += len(reqs)
	return j, nil
}

// Reap hands back the requests of finished jobs, waiting until at least
// min(max(atLeast, 1), Pending()) are back.
func (q *Queue) Reap(ctx context.Context, dst []storage.Done, atLeast int) ([]storage.Done, error) {
	if q.closed {
		return dst, fmt.Errorf("posix: reap from a closed queue of %s", q.f.name)
	}
	want := min(max(atLeast, 1), q.pending)
	got := 0
	if err := ctx.Err(); err != nil {
		return q.cancel(dst, err), err
	}
	for i, j := range q.staged {
		q.staged[i] = nil
		q.run(j, &q.iov)
		dst, got = q.handBack(dst, j), got+len(j.reqs)
	}
	q.staged = q.staged[:0]
	for got < want {
		select {
		case j := <-q.done:
			q.running--
			dst, got = q.handBack(dst, j), got+len(j.reqs)
		case <-ctx.Done():
			return q.cancel(dst, ctx.Err()), ctx.Err()
		}
	}
	for {
		select {
		case j := <-q.done:
			q.running--
			dst = q.handBack(dst, j)
		default:
			return dst, nil
		}
	}
}

// handBack appends j's requests to dst and keeps j for reuse (dropping
// its references to the caller's buffers).
func (q *Queue) handBack(dst []storage.Done, j *job) []storage.Done {
	for i, r := range j.reqs {
		dst = append(dst, storage.Done{Request: r, Tag: j.tag + i})
	}
	q.pending -= len(j.reqs)
	clear(j.reqs)
	j.ctx = nil
	q.free = append(q.free, j)
	return dst
}

// cancel ends the jobs not started (staged ones included) with err,
// waits for the running ones and hands every request back.
func (q *Queue) cancel(dst []storage.Done, err error) []storage.Done {
	q.mu.Lock()
	q.stop = err
	q.mu.Unlock()
	for i, j := range q.staged {
		q.staged[i] = nil
		q.run(j, nil) // ends them: q.stop is set
		dst = q.handBack(dst, j)
	}
	q.staged = q.staged[:0]
	for q.running > 0 {
		q.running--
		dst = q.handBack(dst, <-q.done)
	}
	q.mu.Lock()
	q.stop = nil // later jobs run again (a new context)
	q.mu.Unlock()
	return dst
}

// Close cancels the jobs not started, waits for the running ones, and
// stops the workers: no goroutine of the queue is left when it returns,
// and every buffer is the caller's again.
func (q *Queue) Close() error {
	if q.closed {
		return nil
	}
	q.cancel(nil, errQueueClosed)
	q.closed = true
	close(q.jobs)
	q.wg.Wait()
	return nil
}

// errQueueClosed is what requests ended by Queue.Close carry.
var errQueueClosed = fmt.Errorf("posix: queue closed")
