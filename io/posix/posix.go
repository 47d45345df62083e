package posix

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/zflowdev/zflow/io/storage"
)

// Name is the backend's registered name.
const Name = "posix"

// maxRetries bounds EINTR/EAGAIN retries of one call: a regular file never
// returns EAGAIN forever, so more than this is a broken file, not a race.
const maxRetries = 1000

func init() {
	storage.Register(storage.Spec{
		Name:    Name,
		Summary: "pread/pwrite, one request after another; EINTR retried, short transfers continued, O_DIRECT",
		Open: func(path string, flag int, perm os.FileMode, o storage.Options) (storage.File, error) {
			return Open(path, flag, perm, o)
		},
		Writes: true,
	})
}

// File is a file read and written with pread/pwrite.
type File struct {
	f     *os.File
	name  string
	opts  storage.Options
	align int
	seq   int64 // the next request's number (Fault's Call.Seq)
	stats storage.Counters
	iov   []iovec // scratch for the batches' vectored calls
	q     *Queue  // the open Queue, if any

	closeOnce sync.Once
	closeErr  error
}

var _ storage.File = (*File)(nil)

// Open opens path (flag and perm as os.OpenFile; O_DIRECT added when
// opts.Direct).
func Open(path string, flag int, perm os.FileMode, opts storage.Options) (*File, error) {
	if opts.Direct {
		if storage.ODirect == 0 {
			return nil, fmt.Errorf("posix: open %s: direct: true needs O_DIRECT, which this platform lacks", path)
		}
		flag |= storage.ODirect
	}
	f, err := os.OpenFile(path, flag, perm)
	if err != nil {
		return nil, storage.OpenError(Name, path, opts.Direct, err)
	}
	pf := &File{f: f, name: path, opts: opts, align: 1}
	if opts.Direct {
		facts, _ := storage.Probe(path)
		pf.align = storage.DirectAlign(int(f.Fd()), facts)
	}
	return pf, nil
}

func (f *File) Name() string             { return f.name }
func (f *File) Align() int               { return f.align }
func (f *File) Stats() storage.Stats     { return f.stats.Snapshot() }
func (f *File) Options() storage.Options { return f.opts }

// Size is the file's size from fstat.
func (f *File) Size() (int64, error) {
	st, err := f.f.Stat()
	if err != nil {
		return 0, fmt.Errorf("posix: stat %s: %w", f.name, err)
	}
	return st.Size(), nil
}

// Close closes the file (once; later calls return the first result),
// after closing its open Queue (which waits for the reads in flight).
func (f *File) Close() error {
	f.closeOnce.Do(func() {
		if f.q != nil {
			f.q.Close()
		}
		if err := f.f.Close(); err != nil {
			f.closeErr = fmt.Errorf("posix: close %s: %w", f.name, err)
		}
	})
	return f.closeErr
}

// ReadBatch reads each request with pread, in order, checking ctx between
// requests.
func (f *File) ReadBatch(ctx context.Context, reqs []storage.Request) error {
	return f.batch(ctx, storage.OpRead, reqs)
}

// WriteBatch writes each request with pwrite, in order.
func (f *File) WriteBatch(ctx context.Context, reqs []storage.Request) error {
	return f.batch(ctx, storage.OpWrite, reqs)
}

func (f *File) batch(ctx context.Context, op storage.Op, reqs []storage.Request) error {
	if f.q != nil && f.q.pending > 0 {
		return fmt.Errorf("posix: %s batch on %s while its queue has %d requests pending", op, f.name, f.q.pending)
	}
	return f.serve(ctx, op, reqs, f.nextSeq(len(reqs)), &f.iov)
}

// serve runs reqs, numbered seq, seq+1, ... for the Fault hook, with iov
// as the vectored calls' scratch: the batches' own, or a queue worker's
// (serve touches nothing else of f but its atomic counters, so workers
// run it at once).
func (f *File) serve(ctx context.Context, op storage.Op, reqs []storage.Request, seq int64, iov *[]iovec) error {
	for i := 0; i < len(reqs); {
		if err := ctx.Err(); err != nil {
			for j := i; j < len(reqs); j++ {
				reqs[j].N, reqs[j].Err = 0, fmt.Errorf("posix: %s at %d of %s not started: %w", op, reqs[j].Off, f.name, err)
			}
			return err
		}
		j := f.run(reqs, i)
		if j-i > 1 {
			f.vector(op, reqs[i:j], seq+int64(i), iov)
		} else {
			r := &reqs[i]
			r.N, r.Err = f.one(op, r.Buf, r.Off, seq+int64(i), 0)
		}
		for k := i; k < j; k++ {
			f.stats.Requests.Add(1)
			f.stats.Bytes.Add(int64(reqs[k].N))
		}
		i = j
	}
	return nil
}

func (f *File) nextSeq(n int) int64 {
	s := f.seq
	f.seq += int64(n)
	return s
}

// run is the end of the run of requests from i on that one vectored call
// can serve: each starts where the previous ends, none is empty or
// unaligned, at most maxVec of them (1 where this platform has no
// preadv2).
func (f *File) run(reqs []storage.Request, i int) int {
	j := i + 1
	if maxVec <= 1 || len(reqs[i].Buf) == 0 || storage.CheckAligned(Name, f.name, reqs[i].Buf, reqs[i].Off, f.align) != nil {
		return j
	}
	for j < len(reqs) && j-i < maxVec {
		prev, r := &reqs[j-1], &reqs[j]
		if len(r.Buf) == 0 || r.Off != prev.Off+int64(len(prev.Buf)) ||
			storage.CheckAligned(Name, f.name, r.Buf, r.Off, f.align) != nil {
			break
		}
		j++
	}
	return j
}

// vector serves adjacent requests with one preadv2/pwritev2 (the kernel
// fills the buffers in turn): EINTR/EAGAIN retried; after a short
// transfer, the request it ended in and those after it continue one by
// one; after an error, each request is done on its own, so the error
// lands on the request it belongs to.
func (f *File) vector(op storage.Op, rs []storage.Request, seq int64, iov *[]iovec) {
	total := 0
	for i := range rs {
		total += len(rs[i].Buf)
	}
	var n int
	var err error
	for attempt, retries := 0, 0; ; attempt++ {
		n, err = f.vcall(op, rs, rs[0].Off, iov)
		f.stats.Calls.Add(1)
		if f.opts.Fault != nil {
			n, err = f.opts.Fault(storage.Call{Op: op, Seq: seq, Attempt: attempt, Off: rs[0].Off, Len: total, Reqs: len(rs)}, n, err)
		}
		if err != nil && storage.Transient(err) && retries < maxRetries {
			f.stats.Retries.Add(1)
			retries++
			continue
		}
		break
	}
	if err != nil {
		for i := range rs {
			rs[i].N, rs[i].Err = f.one(op, rs[i].Buf, rs[i].Off, seq+int64(i), 0)
		}
		return
	}
	for i := range rs {
		r := &rs[i]
		take := min(n, len(r.Buf))
		n -= take
		if take == len(r.Buf) {
			r.N, r.Err = take, nil
			continue
		}
		if take > 0 {
			f.stats.Resubmit.Add(1)
		}
		r.N, r.Err = f.one(op, r.Buf, r.Off, seq+int64(i), take)
	}
}

// one transfers buf at off from done on: EINTR/EAGAIN retried, a short
// transfer continued for the rest, until done, the file's end (reads:
// io.EOF) or an error. seq is the request's number for the Fault hook.
func (f *File) one(op storage.Op, buf []byte, off int64, seq int64, done int) (int, error) {
	if err := storage.CheckAligned(Name, f.name, buf, off, f.align); err != nil {
		f.stats.Refused.Add(1)
		return 0, err
	}
	if done%f.align != 0 && op == storage.OpRead {
		return done, io.EOF // O_DIRECT: short inside a block is the file's end
	}
	attempt, retries := 0, 0
	for done < len(buf) {
		at := off + int64(done)
		n, err := f.call(op, buf[done:], at)
		f.stats.Calls.Add(1)
		if f.opts.Fault != nil {
			n, err = f.opts.Fault(storage.Call{Op: op, Seq: seq, Attempt: attempt, Off: at, Len: len(buf) - done}, n, err)
		}
		attempt++
		if err != nil && storage.Transient(err) {
			f.stats.Retries.Add(1)
			if retries++; retries > maxRetries {
				return done, fmt.Errorf("posix: %s %d bytes at %d of %s: still %w after %d retries", op, len(buf)-done, at, f.name, err, maxRetries)
			}
			continue
		}
		if err != nil {
			return done, fmt.Errorf("posix: %s %d bytes at %d of %s: %w", op, len(buf)-done, at, f.name, err)
		}
		if n <= 0 {
			if op == storage.OpWrite {
				return done, fmt.Errorf("posix: write %d bytes at %d of %s: %w", len(buf)-done, at, f.name, io.ErrShortWrite)
			}
			return done, io.EOF
		}
		done += n
		if done < len(buf) {
			f.stats.Resubmit.Add(1)
			if op == storage.OpRead && done%f.align != 0 {
				return done, io.EOF // O_DIRECT: a short read inside a block is the file's end
			}
		}
	}
	return done, nil
}
