//go:build linux

package uring

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"syscall"

	"github.com/zflowdev/zflow/io/storage"
)

// queueBit marks the user_data of a Queue's SQEs (queueBit | slot), apart
// from a batch's (index+1) and the cancel and timeout tags.
const queueBit = uint64(1) << 48

// errQueueClosed is what requests cancelled by Queue.Close carry.
var errQueueClosed = errors.New("uring: queue closed")

// Queue keeps a file's requests in flight across calls (storage.Queue):
// a slot per request, up to its depth; Submit fills SQEs and submits them
// with one io_uring_enter that does not wait (Stage leaves that to Reap); Reap waits in one
// io_uring_enter for at least one completion and reaps every one ready,
// resubmitting retries and the rest of short transfers before it waits.
// The slots keep the requests (and so their buffers) referenced until
// they are handed back.
type Queue struct {
	f     *File
	op    storage.Op
	depth int
	reqs  []storage.Request // per slot
	st    []reqState
	tags  []int
	free  []int // free slots
	retry []int // slots waiting for an SQE
	ready []int // slots done, not yet handed back
	// pending counts slots in use (submitted, not handed back);
	// inflight SQEs in the kernel, cancels included.
	pending, inflight int
	closed            bool
	ts                syscall.Timespec
}

var (
	_ storage.Queue  = (*Queue)(nil)
	_ storage.Queuer = (*File)(nil)
)

// NewQueue opens the file's Queue for op (storage.Queuer). A ring has one
// open Queue at a time; depth 0 or more than the ring holds is the ring's
// size.
func (f *File) NewQueue(op storage.Op, depth int) (storage.Queue, error) {
	r := f.ring
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.closed:
		return nil, fmt.Errorf("uring: queue on %s: ring closed", f.name)
	case r.broken != nil:
		return nil, r.broken
	case r.queue != nil:
		return nil, fmt.Errorf("uring: queue on %s: the ring already has an open queue (on %s)", f.name, r.queue.f.name)
	}
	if depth <= 0 || depth > r.entries {
		depth = r.entries
	}
	q := &Queue{f: f, op: op, depth: depth, reqs: make([]storage.Request, depth), st: make([]reqState, depth),
		tags: make([]int, depth), free: make([]int, depth), retry: make([]int, 0, depth), ready: make([]int, 0, depth)}
	for i := range q.free {
		q.free[i] = depth - 1 - i
		q.st[i].final = true
	}
	q.ts = syscall.NsecToTimespec(pollWait.Nanoseconds())
	r.queue, f.q = q, q
	return q, nil
}

func (q *Queue) Depth() int   { return q.depth }
func (q *Queue) Pending() int { return q.pending }

// Submit takes a slot per request and submits their SQEs.
func (q *Queue) Submit(ctx context.Context, reqs []storage.Request, tag int) error {
	return q.add(ctx, reqs, tag, true)
}

// Stage takes a slot per request and fills their SQEs; the next Reap's
// io_uring_enter (or Submit's) submits them.
func (q *Queue) Stage(ctx context.Context, reqs []storage.Request, tag int) error {
	return q.add(ctx, reqs, tag, false)
}

func (q *Queue) add(ctx context.Context, reqs []storage.Request, tag int, enter bool) error {
	f, r := q.f, q.f.ring
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case q.closed:
		return fmt.Errorf("uring: submit to a closed queue of %s", f.name)
	case r.broken != nil:
		return r.broken
	case len(reqs) > len(q.free):
		return fmt.Errorf("uring: submit %d requests to a queue of %s with %d of %d pending", len(reqs), f.name, q.pending, q.depth)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for i := range reqs {
		s := q.free[len(q.free)-1]
		q.free = q.free[:len(q.free)-1]
		q.pending++
		q.reqs[s], q.tags[s] = reqs[i], tag+i
		q.reqs[s].N, q.reqs[s].Err = 0, nil
		q.st[s] = reqState{seq: f.seq}
		f.seq++
		if err := storage.CheckAligned(Name, f.name, reqs[i].Buf, reqs[i].Off, f.align); err != nil {
			f.stats.Refused.Add(1)
			f.finish(q.reqs, q.st, s, err)
			q.ready = append(q.ready, s)
			continue
		}
		if len(reqs[i].Buf) == 0 {
			f.finish(q.reqs, q.st, s, nil)
			q.ready = append(q.ready, s)
			continue
		}
		q.retry = append(q.retry, s)
	}
	if q.push() > 0 && enter {
		_, err := r.r.Submit()
		f.stats.Calls.Add(1)
		if err != nil && !retryable(err) {
			return q.breakRing(err)
		}
		// EINTR/EAGAIN/EBUSY: the SQEs stay in the ring; Reap's enter submits them.
	}
	return nil
}

// push fills SQEs for the slots waiting for one and returns how many.
func (q *Queue) push() int {
	r := q.f.ring
	n := 0
	for ; n < len(q.retry); n++ {
		sqe := r.r.GetSQE()
		if sqe == nil {
			break
		}
		s := q.retry[n]
		q.f.prep(sqe, q.op, q.reqs, q.st, s)
		sqe.UserData = queueBit | uint64(s)
		q.inflight++
		r.inflight.Add(1)
	}
	q.retry = q.retry[:copy(q.retry, q.retry[n:])]
	return n
}

// Reap hands back completed requests, waiting for atLeast of them.
func (q *Queue) Reap(ctx context.Context, dst []storage.Done, atLeast int) ([]storage.Done, error) {
	f, r := q.f, q.f.ring
	r.mu.Lock()
	defer r.mu.Unlock()
	defer runtime.KeepAlive(q.reqs)
	if q.closed {
		return dst, fmt.Errorf("uring: reap from a closed queue of %s", f.name)
	}
	if r.broken != nil {
		return dst, r.broken
	}
	want := min(max(atLeast, 1), q.pending)
	var cancelled error
	for {
		q.reapCQEs(cancelled)
		if cancelled == nil && ctx.Err() != nil {
			cancelled = ctx.Err()
			q.cancel(cancelled)
		}
		if cancelled == nil {
			q.push()
		}
		if q.pending == 0 || (cancelled == nil && len(q.ready) >= want) || (cancelled != nil && q.inflight == 0) {
			if r.r.SQReady() > 0 { // staged or resubmitted SQEs: the device gets them before the caller works
				_, err := r.r.Submit()
				f.stats.Calls.Add(1)
				if err != nil && !retryable(err) {
					return q.handBack(dst), q.breakRing(err)
				}
			}
			return q.handBack(dst), cancelled
		}
		_, err := r.r.SubmitAndWaitTimeout(uint32(max(want-len(q.ready), 1)), &q.ts, nil)
		f.stats.Calls.Add(1)
		if err != nil && !retryable(err) && !errors.Is(err, syscall.ETIME) {
			err = q.breakRing(err)
			for s := range q.st {
				if !q.st[s].final {
					q.reqs[s].N, q.reqs[s].Err = q.st[s].done, err
					q.st[s].final = true
					q.ready = append(q.ready, s)
				}
			}
			return q.handBack(dst), err
		}
	}
}

// reapCQEs takes every completion ready without waiting.
func (q *Queue) reapCQEs(cancelled error) {
	r := q.f.ring
	n := r.r.PeekBatchCQE(r.cqes)
	for _, cqe := range r.cqes[:n] {
		ud, res := cqe.UserData, cqe.Res
		if ud == timeoutTag {
			continue
		}
		q.inflight--
		r.inflight.Add(-1)
		s := int(ud &^ queueBit)
		if ud == cancelTag || ud&queueBit == 0 || s >= q.depth {
			continue // a cancel's own completion (or not ours)
		}
		q.f.complete(q.op, q.reqs, q.st, s, res, cancelled, &q.retry)
		if q.st[s].final {
			q.ready = append(q.ready, s)
		}
	}
	r.r.CQAdvance(n)
}

// cancel finishes the slots waiting for an SQE with err and sends
// IORING_OP_ASYNC_CANCEL for every one in flight.
func (q *Queue) cancel(err error) {
	for _, s := range q.retry {
		q.f.finish(q.reqs, q.st, s, fmt.Errorf("uring: %s at %d of %s not started: %w", q.op, q.reqs[s].Off, q.f.name, err))
		q.ready = append(q.ready, s)
	}
	q.retry = q.retry[:0]
	q.inflight += q.f.cancelInFlight(q.st, queueBit)
}

// handBack appends the ready slots' requests to dst and frees the slots.
func (q *Queue) handBack(dst []storage.Done) []storage.Done {
	for _, s := range q.ready {
		dst = append(dst, storage.Done{Request: q.reqs[s], Tag: q.tags[s]})
		q.reqs[s] = storage.Request{} // keep no reference to the buffer
		q.free = append(q.free, s)
		q.pending--
	}
	q.ready = q.ready[:0]
	return dst
}

// breakRing marks the ring broken: io_uring_enter failed, so nothing more
// can be known of what is in flight, and nobody may reuse its buffers.
func (q *Queue) breakRing(err error) error {
	r := q.f.ring
	r.broken = fmt.Errorf("uring: %s %s: io_uring_enter: %w (%d requests in flight abandoned; do not reuse their buffers)", q.op, q.f.name, err, q.inflight)
	return r.broken
}

// Close cancels what is in flight and waits for every completion.
func (q *Queue) Close() error {
	f, r := q.f, q.f.ring
	r.mu.Lock()
	defer r.mu.Unlock()
	if q.closed {
		return nil
	}
	q.closed = true
	r.queue, f.q = nil, nil
	if r.broken == nil && q.inflight+len(q.retry) > 0 {
		q.reapCQEs(errQueueClosed)
		q.cancel(errQueueClosed)
		for q.inflight > 0 {
			_, err := r.r.SubmitAndWaitTimeout(uint32(q.inflight), &q.ts, nil)
			f.stats.Calls.Add(1)
			if err != nil && !retryable(err) && !errors.Is(err, syscall.ETIME) {
				return q.breakRing(err)
			}
			q.reapCQEs(errQueueClosed)
		}
	}
	clear(q.reqs)
	q.retry, q.ready, q.pending = q.retry[:0], q.ready[:0], 0
	return r.broken
}

// retryable says an io_uring_enter error leaves the ring usable.
func retryable(err error) bool {
	return errors.Is(err, syscall.EINTR) || errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EBUSY)
}
