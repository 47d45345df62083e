package storage

import (
	"context"
	"fmt"
)

// Queue is the asynchronous form of a File: requests submitted to it stay
// in flight across calls, so a reader keeps the device busy while it
// works on what came back (fio's model: refill a slot as soon as it
// frees), where ReadBatch drains the queue at the end of each batch.
//
// Ownership: a request's Buf belongs to the backend from Submit until Reap
// hands that request back (or Close returns); the caller must neither
// read, reuse nor free it in between. Reap returns requests in completion
// order, each with the tag it was submitted with; results (N, Err) mean
// what they mean for ReadBatch.
//
// A Queue is used by one goroutine at a time, like its File. While a
// Queue has requests pending, ReadBatch and WriteBatch on the same file
// (or, for io_uring, on any file of the same ring) are refused.
type Queue interface {
	// Depth is the most requests that may be pending at once.
	Depth() int
	// Pending is how many requests were submitted and not yet handed
	// back by Reap.
	Pending() int
	// Submit hands reqs to the backend, reqs[i] tagged tags+i, and returns
	// without waiting for them: the caller's reqs slice may be reused at
	// once (the queue keeps copies of the requests; the buffers stay the
	// backend's). Submitting more than Depth()-Pending() is an error (a
	// caller's bug). A request refused up front (O_DIRECT alignment) comes
	// back from the next Reap with its error.
	Submit(ctx context.Context, reqs []Request, tag int) error
	// Stage is Submit without telling the kernel yet: the requests go at
	// the next Reap's wait (or Submit), one system call for both. For a
	// reader that reaps right after refilling; one that works meanwhile
	// Submits, so the device has them during the work.
	Stage(ctx context.Context, reqs []Request, tag int) error
	// Reap appends completed requests to dst and returns it: at least
	// min(max(atLeast, 1), Pending()) of them, waiting for them, and every
	// other completion already there. A reader that waits for one
	// request passes 1; a streaming reader passes a fraction of the depth
	// to reap completions in batches (fewer wake-ups) while the rest keep
	// the device busy. When ctx is cancelled, Reap cancels what is in
	// flight, waits for every completion (no buffer is handed back while
	// the kernel may still write it), returns them all with their results
	// (cancelled ones carry ctx's error) and ctx's error.
	Reap(ctx context.Context, dst []Done, atLeast int) ([]Done, error)
	// Close cancels what is still in flight and waits for every
	// completion; the buffers of requests not reaped are the caller's
	// again when it returns. Closing the File closes its open Queue.
	Close() error
}

// Done is a request a Queue handed back, with the tag it was submitted
// with.
type Done struct {
	Request
	Tag int
}

// Queuer is the optional interface of a File with a Queue of its own
// (io/uring). depth is the most requests in flight (0: the file's queue
// depth; more than the backend can hold is capped).
type Queuer interface {
	NewQueue(op Op, depth int) (Queue, error)
}

// NewQueue returns f's own Queue when its backend has one (Queuer), else a
// Queue over f's synchronous batches: Submit collects requests and Reap
// reads (or writes) all of them as one ReadBatch (posix serves adjacent
// ones with one preadv2; mmap copies). Either way one reader's code drives
// every backend.
func NewQueue(f File, op Op, depth int) (Queue, error) {
	if q, ok := f.(Queuer); ok {
		return q.NewQueue(op, depth)
	}
	if depth <= 0 {
		depth = DefaultQueueDepth
	}
	return &batchQueue{f: f, op: op, depth: depth}, nil
}

// batchQueue is a Queue over File's synchronous batches.
type batchQueue struct {
	f      File
	op     Op
	depth  int
	reqs   []Request
	tags   []int
	closed bool
}

func (q *batchQueue) Depth() int   { return q.depth }
func (q *batchQueue) Pending() int { return len(q.reqs) }

func (q *batchQueue) Submit(ctx context.Context, reqs []Request, tag int) error {
	if q.closed {
		return fmt.Errorf("storage: submit to a closed queue of %s", q.f.Name())
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(q.reqs)+len(reqs) > q.depth {
		return fmt.Errorf("storage: submit %d requests to a queue of %s with %d of %d pending", len(reqs), q.f.Name(), len(q.reqs), q.depth)
	}
	for i, r := range reqs {
		q.reqs = append(q.reqs, r)
		q.tags = append(q.tags, tag+i)
	}
	return nil
}

// Stage is Submit: nothing of a synchronous backend starts before Reap.
func (q *batchQueue) Stage(ctx context.Context, reqs []Request, tag int) error {
	return q.Submit(ctx, reqs, tag)
}

func (q *batchQueue) Reap(ctx context.Context, dst []Done, atLeast int) ([]Done, error) {
	if len(q.reqs) == 0 {
		return dst, nil
	}
	var err error
	if q.op == OpWrite {
		err = q.f.WriteBatch(ctx, q.reqs)
	} else {
		err = q.f.ReadBatch(ctx, q.reqs)
	}
	for i, r := range q.reqs {
		dst = append(dst, Done{Request: r, Tag: q.tags[i]})
	}
	clear(q.reqs) // keep no reference to the buffers
	q.reqs, q.tags = q.reqs[:0], q.tags[:0]
	return dst, err
}

// Close drops what was submitted and not reaped: nothing of a synchronous
// backend is in flight between calls.
func (q *batchQueue) Close() error {
	clear(q.reqs)
	q.reqs, q.tags, q.closed = q.reqs[:0], q.tags[:0], true
	return nil
}
