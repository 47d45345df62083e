//go:build linux

package uring

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/pawelgaczynski/giouring"

	"github.com/zflowdev/zflow/io/storage"
)

// Name is the backend's registered name.
const Name = "uring"

// maxSQE is the most bytes one SQE asks for; a longer request is continued
// like a short transfer.
const maxSQE = 1 << 30

// cancelTag marks the user_data of IORING_OP_ASYNC_CANCEL SQEs; request
// SQEs carry their index in the batch plus one. timeoutTag is the
// user_data giouring gives the timeout SQE it adds on kernels without
// IORING_FEAT_EXT_ARG (before 5.11): not ours, not counted in flight.
const (
	cancelTag  = ^uint64(0) - 1
	timeoutTag = ^uint64(0)
)

// pollWait bounds one wait for completions, so a cancelled context is
// noticed within it even when no completion arrives.
const pollWait = 20 * time.Millisecond

// maxRetries bounds EAGAIN/EINTR retries of one request.
const maxRetries = 1000

func init() {
	storage.Register(storage.Spec{
		Name:    Name,
		Summary: "io_uring through giouring: batched submission, registered files and buffers, O_DIRECT, cancellation that waits for every completion",
		Probe:   Available,
		Open: func(path string, flag int, perm os.FileMode, o storage.Options) (storage.File, error) {
			return Open(path, flag, perm, o)
		},
		Writes: true,
	})
}

// File is a file read and written through a ring.
type File struct {
	ring    *Ring
	ownRing bool
	f       *os.File
	fd      int
	slot    int // registered file index, or -1
	name    string
	opts    storage.Options
	align   int
	seq     int64
	stats   storage.Counters

	q *Queue // the file's open queue, closed with it

	// per-batch scratch, reused
	st    []reqState
	queue []int
	ts    syscall.Timespec // the wait's timeout, kept here so it is not allocated per batch

	closeOnce sync.Once
	closeErr  error
}

type reqState struct {
	done    int
	attempt int
	retries int
	seq     int64
	final   bool
}

var _ storage.File = (*File)(nil)

// Open opens path on a ring of its own (Entries = opts.Depth(), SQPOLL
// when opts.SQPoll), closed with the file.
func Open(path string, flag int, perm os.FileMode, opts storage.Options) (*File, error) {
	r, err := NewRing(Config{Entries: opts.Depth(), SQPoll: opts.SQPoll})
	if err != nil {
		return nil, err
	}
	f, err := r.Open(path, flag, perm, opts)
	if err != nil {
		_ = r.Close()
		return nil, err
	}
	f.ownRing = true
	return f, nil
}

// Open opens path on r: the file's batches go through this ring (and its
// registered buffers), and its descriptor joins the registered file table
// when there is room.
func (r *Ring) Open(path string, flag int, perm os.FileMode, opts storage.Options) (*File, error) {
	if opts.Direct {
		flag |= syscall.O_DIRECT
	}
	osf, err := os.OpenFile(path, flag, perm)
	if err != nil {
		return nil, storage.OpenError(Name, path, opts.Direct, err)
	}
	f := &File{ring: r, f: osf, fd: int(osf.Fd()), name: path, opts: opts, align: 1}
	if opts.Direct {
		facts, _ := storage.Probe(path)
		f.align = storage.DirectAlign(f.fd, facts)
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		osf.Close()
		return nil, fmt.Errorf("uring: open %s: ring closed", path)
	}
	f.slot = r.addFile(f.fd)
	r.mu.Unlock()
	return f, nil
}

func (f *File) Name() string             { return f.name }
func (f *File) Align() int               { return f.align }
func (f *File) Stats() storage.Stats     { return f.stats.Snapshot() }
func (f *File) Options() storage.Options { return f.opts }

// Ring is the ring the file's requests go through.
func (f *File) Ring() *Ring { return f.ring }

// Registered says whether the file is in the ring's registered file table.
func (f *File) Registered() bool { return f.slot >= 0 }

// Size is the file's size from fstat.
func (f *File) Size() (int64, error) {
	st, err := f.f.Stat()
	if err != nil {
		return 0, fmt.Errorf("uring: stat %s: %w", f.name, err)
	}
	return st.Size(), nil
}

// Close removes the file from the ring's table, closes it, and closes the
// ring when the file owns it.
func (f *File) Close() error {
	f.closeOnce.Do(func() {
		var errs []error
		if f.q != nil {
			errs = append(errs, f.q.Close()) // cancels and waits for what is in flight
		}
		f.ring.mu.Lock()
		f.ring.removeFile(f.slot)
		f.ring.mu.Unlock()
		if err := f.f.Close(); err != nil {
			errs = append(errs, fmt.Errorf("uring: close %s: %w", f.name, err))
		}
		if f.ownRing {
			errs = append(errs, f.ring.Close())
		}
		f.closeErr = errors.Join(errs...)
	})
	return f.closeErr
}

// ReadBatch reads every request through the ring; see storage.File.
func (f *File) ReadBatch(ctx context.Context, reqs []storage.Request) error {
	return f.batch(ctx, storage.OpRead, reqs)
}

// WriteBatch writes every request through the ring.
func (f *File) WriteBatch(ctx context.Context, reqs []storage.Request) error {
	return f.batch(ctx, storage.OpWrite, reqs)
}

// batch keeps up to the ring's size of requests in flight: it fills SQEs
// from the queue, submits them and waits in one io_uring_enter for one
// completion (while requests wait for an SQE) or for every one still due
// (once all are submitted), reaps every completion ready, and puts back on the
// queue what must go again (EINTR/EAGAIN, the rest of a short transfer).
// When ctx is cancelled it stops queueing, sends IORING_OP_ASYNC_CANCEL for
// every request in flight, and still waits for every completion (cancelled
// or not) before returning: no request's buffer is handed back while the
// kernel may write it.
func (f *File) batch(ctx context.Context, op storage.Op, reqs []storage.Request) error {
	r := f.ring
	r.mu.Lock()
	defer r.mu.Unlock()
	defer runtime.KeepAlive(reqs)
	if r.closed {
		return fmt.Errorf("uring: %s %s: ring closed", op, f.name)
	}
	if r.broken != nil {
		return r.broken
	}
	if q := r.queue; q != nil && q.pending > 0 {
		return fmt.Errorf("uring: %s %s: a queue on the ring has %d requests pending (reap them first)", op, f.name, q.pending)
	}
	if cap(f.st) < len(reqs) {
		f.st = make([]reqState, len(reqs))
	}
	st := f.st[:len(reqs)]
	queue := f.queue[:0]
	for i := range reqs {
		st[i] = reqState{seq: f.seq}
		f.seq++
		reqs[i].N, reqs[i].Err = 0, nil
		if err := storage.CheckAligned(Name, f.name, reqs[i].Buf, reqs[i].Off, f.align); err != nil {
			f.stats.Refused.Add(1)
			f.finish(reqs, st, i, err)
			continue
		}
		if len(reqs[i].Buf) == 0 {
			f.finish(reqs, st, i, nil)
			continue
		}
		queue = append(queue, i)
	}
	// queue[head:] waits for an SQE; popping advances head rather than
	// reslicing, so the slice keeps its capacity for the next batch.
	head := 0
	defer func() { f.queue = queue[:0] }()
	if err := ctx.Err(); err != nil {
		for _, i := range queue {
			f.finish(reqs, st, i, fmt.Errorf("uring: %s at %d of %s not started: %w", op, reqs[i].Off, f.name, err))
		}
		return err
	}

	var (
		inflight  int
		cancelled error
		fatal     error
	)
	f.ts = syscall.NsecToTimespec(pollWait.Nanoseconds())
	for head < len(queue) || inflight > 0 {
		for cancelled == nil && head < len(queue) && inflight < r.entries {
			sqe := r.r.GetSQE()
			if sqe == nil {
				break
			}
			i := queue[head]
			head++
			f.prep(sqe, op, reqs, st, i)
			inflight++
			r.inflight.Add(1)
		}
		// With every request of the batch submitted, nothing waits for a
		// free SQE: one io_uring_enter waits for all the completions still
		// due (the batch returns only then anyway), instead of waking for
		// each (tmpfs reads complete one by one from io-wq workers: waking
		// per completion cost 0.76 io_uring_enter per 128 KiB request and
		// half of fio's bandwidth). While requests wait for an SQE, the
		// first completion frees one, so wait for one.
		wait := uint32(1)
		if cancelled == nil && head == len(queue) && inflight > 1 {
			wait = uint32(inflight)
		}
		_, err := r.r.SubmitAndWaitTimeout(wait, &f.ts, nil)
		f.stats.Calls.Add(1)
		if err != nil && !errors.Is(err, syscall.ETIME) && !errors.Is(err, syscall.EINTR) &&
			!errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EBUSY) {
			// The ring cannot submit or wait: nothing more can be known of
			// what is in flight. The ring is marked broken so nobody reuses
			// it; the caller must not reuse the buffers of this batch.
			fatal = fmt.Errorf("uring: %s %s: io_uring_enter: %w (%d requests in flight abandoned; do not reuse this batch's buffers)", op, f.name, err, inflight)
			r.broken = fatal
			break
		}
		n := r.r.PeekBatchCQE(r.cqes)
		for _, cqe := range r.cqes[:n] {
			ud, res := cqe.UserData, cqe.Res
			if ud == timeoutTag {
				continue
			}
			inflight--
			r.inflight.Add(-1)
			if ud == cancelTag || ud == 0 || ud > uint64(len(reqs)) {
				continue // a cancel's own completion (or not ours)
			}
			f.complete(op, reqs, st, int(ud-1), res, cancelled, &queue)
		}
		r.r.CQAdvance(n)
		if head == len(queue) {
			queue, head = queue[:0], 0
		}
		if cancelled == nil && ctx.Err() != nil {
			cancelled = ctx.Err()
			for _, i := range queue[head:] {
				f.finish(reqs, st, i, fmt.Errorf("uring: %s at %d of %s not started: %w", op, reqs[i].Off, f.name, cancelled))
			}
			queue, head = queue[:0], 0
			inflight += f.cancelInFlight(st, 1)
		}
	}
	if fatal != nil {
		for i := range reqs {
			if !st[i].final {
				reqs[i].N, reqs[i].Err = st[i].done, fatal
			}
		}
		return fatal
	}
	if cancelled != nil {
		return cancelled
	}
	return nil
}

// prep fills sqe for the rest of request i.
func (f *File) prep(sqe *giouring.SubmissionQueueEntry, op storage.Op, reqs []storage.Request, st []reqState, i int) {
	s := &st[i]
	buf := reqs[i].Buf[s.done:]
	n := min(len(buf), maxSQE)
	p := uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	off := uint64(reqs[i].Off + int64(s.done))
	fd := f.fd
	if f.slot >= 0 {
		fd = f.slot
	}
	if idx, ok := f.ring.fixedIndex(p, n); ok {
		if op == storage.OpWrite {
			sqe.PrepareWriteFixed(fd, p, uint32(n), off, idx)
		} else {
			sqe.PrepareReadFixed(fd, p, uint32(n), off, idx)
		}
		f.stats.Fixed.Add(1)
	} else if op == storage.OpWrite {
		sqe.PrepareWrite(fd, p, uint32(n), off)
	} else {
		sqe.PrepareRead(fd, p, uint32(n), off)
	}
	if f.slot >= 0 {
		sqe.Flags |= giouring.SqeFixedFile
	}
	sqe.UserData = uint64(i) + 1
}

// complete acts on request i's completion res.
func (f *File) complete(op storage.Op, reqs []storage.Request, st []reqState, i int, res int32, cancelled error, queue *[]int) {
	s := &st[i]
	r := &reqs[i]
	want := min(len(r.Buf)-s.done, maxSQE)
	at := r.Off + int64(s.done)
	n, err := int(res), error(nil)
	if res < 0 {
		n, err = 0, syscall.Errno(-res)
	}
	if f.opts.Fault != nil {
		n, err = f.opts.Fault(storage.Call{Op: op, Seq: s.seq, Attempt: s.attempt, Off: at, Len: want}, n, err)
	}
	s.attempt++
	switch {
	case err != nil && errors.Is(err, syscall.ECANCELED) && cancelled != nil:
		f.stats.Canceled.Add(1)
		f.finish(reqs, st, i, fmt.Errorf("uring: %s %d bytes at %d of %s cancelled: %w", op, want, at, f.name, cancelled))
	case err != nil && storage.Transient(err):
		f.stats.Retries.Add(1)
		s.retries++
		switch {
		case cancelled != nil:
			f.finish(reqs, st, i, fmt.Errorf("uring: %s %d bytes at %d of %s: %w", op, want, at, f.name, cancelled))
		case s.retries > maxRetries:
			f.finish(reqs, st, i, fmt.Errorf("uring: %s %d bytes at %d of %s: still %w after %d retries", op, want, at, f.name, err, maxRetries))
		default:
			*queue = append(*queue, i)
		}
	case err != nil:
		f.finish(reqs, st, i, fmt.Errorf("uring: %s %d bytes at %d of %s: %w", op, want, at, f.name, err))
	case n <= 0 && op == storage.OpWrite:
		f.finish(reqs, st, i, fmt.Errorf("uring: write %d bytes at %d of %s: %w", want, at, f.name, io.ErrShortWrite))
	case n <= 0:
		f.finish(reqs, st, i, io.EOF)
	default:
		s.done += min(n, want)
		switch {
		case s.done == len(r.Buf):
			f.finish(reqs, st, i, nil)
		case op == storage.OpRead && s.done%f.align != 0:
			f.finish(reqs, st, i, io.EOF) // O_DIRECT: short inside a block is the file's end
		case cancelled != nil:
			f.finish(reqs, st, i, fmt.Errorf("uring: %s at %d of %s stopped after %d bytes: %w", op, r.Off, f.name, s.done, cancelled))
		default:
			f.stats.Resubmit.Add(1)
			*queue = append(*queue, i)
		}
	}
}

// finish records request i's result.
func (f *File) finish(reqs []storage.Request, st []reqState, i int, err error) {
	st[i].final = true
	reqs[i].N, reqs[i].Err = st[i].done, err
	f.stats.Requests.Add(1)
	f.stats.Bytes.Add(int64(st[i].done))
}

// cancelInFlight queues an IORING_OP_ASYNC_CANCEL for every request in
// flight (submitted by the next io_uring_enter) and returns how many: each
// has a completion of its own to wait for. Request i's SQE carries
// user_data base+i.
func (f *File) cancelInFlight(st []reqState, base uint64) int {
	r := f.ring
	sent := 0
	for i := range st {
		if st[i].final {
			continue
		}
		sqe := r.r.GetSQE()
		for sqe == nil {
			// the submission queue is full of cancels: push them out
			_, _ = r.r.Submit()
			f.stats.Calls.Add(1)
			sqe = r.r.GetSQE()
		}
		sqe.PrepareCancel64(base+uint64(i), 0)
		sqe.UserData = cancelTag
		sent++
		r.inflight.Add(1)
	}
	return sent
}
