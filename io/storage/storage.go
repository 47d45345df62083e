package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
)

// Request is one positional read or write of a batch: Buf is the
// caller's memory (the backend neither keeps nor frees it once the batch
// call has returned), Off the file offset. The backend fills N (bytes
// transferred) and Err. A read with N < len(Buf) has Err == io.EOF (the
// file ends inside the request) or another error; a write with
// N < len(Buf) always has an error.
type Request struct {
	Buf []byte
	Off int64
	N   int
	Err error
}

// File is an open file of a backend. ReadBatch and WriteBatch submit all
// of reqs together (as one io_uring submission, or one syscall after
// another for posix) and return when every request has its result; they
// return an error of their own only for what stops the whole batch
// (ctx cancelled, the ring broken), and then every request not completed
// carries that error too. When ReadBatch returns, the kernel holds no
// reference to any request's Buf: the caller may free or reuse them.
//
// A File is used by one goroutine at a time (a worker's file); Stats may be
// read from anywhere.
type File interface {
	ReadBatch(ctx context.Context, reqs []Request) error
	WriteBatch(ctx context.Context, reqs []Request) error
	// Size is the file's current size in bytes.
	Size() (int64, error)
	// Align is the alignment every request's buffer address, offset and
	// length must have: 1 without O_DIRECT, the logical block size (as
	// statx STATX_DIOALIGN or the device reports it) with it.
	Align() int
	// Stats counts what the file did so far.
	Stats() Stats
	// Name is the path the file was opened with.
	Name() string
	// Close releases the file; a File with a batch in progress is a bug
	// of the caller (batches are synchronous, so there is none).
	Close() error
}

// Stats counts a file's work; Stats of a closed file stays readable.
type Stats struct {
	Requests int64 // requests completed (any result)
	Bytes    int64 // bytes transferred
	Calls    int64 // syscalls (io_uring_enter for uring, pread/pwrite/preadv2 for posix)
	Retries  int64 // EINTR/EAGAIN results retried
	Resubmit int64 // short transfers continued for the rest
	Fixed    int64 // io_uring READ_FIXED/WRITE_FIXED operations (registered buffers)
	Refused  int64 // requests refused for O_DIRECT alignment
	Canceled int64 // requests cancelled in flight
}

// Counters is Stats updated atomically; backends embed it.
type Counters struct {
	Requests, Bytes, Calls, Retries, Resubmit, Fixed, Refused, Canceled atomic.Int64
}

// Snapshot reads the counters.
func (c *Counters) Snapshot() Stats {
	return Stats{
		Requests: c.Requests.Load(), Bytes: c.Bytes.Load(), Calls: c.Calls.Load(),
		Retries: c.Retries.Load(), Resubmit: c.Resubmit.Load(), Fixed: c.Fixed.Load(),
		Refused: c.Refused.Load(), Canceled: c.Canceled.Load(),
	}
}

// Options configure the files a backend opens.
type Options struct {
	// Direct opens with O_DIRECT: requests must then be aligned to
	// File.Align() (buffer address, offset and length); an unaligned one
	// is refused with ErrUnaligned (and counted in Stats.Refused), never
	// bounced in secret.
	Direct bool
	// QueueDepth is how many requests a backend keeps in flight at once
	// (io_uring's ring size; 0 means DefaultQueueDepth). auto takes
	// QueueDepth > 1 on a block device as the reason to pick uring.
	QueueDepth int
	// WholeFile says the reader will read the whole file, front to back
	// (an Arrow IPC file): on tmpfs auto then picks mmap.
	WholeFile bool
	// Write says the file will be written (a sink): auto never picks the
	// read-only mmap backend then.
	Write bool
	// SQPoll asks io_uring for a kernel thread polling the submission
	// queue (IORING_SETUP_SQPOLL); other backends ignore it.
	SQPoll bool
	// Fault, when set, sees the result of every real syscall or
	// completion (n, err) before the backend does and returns the result
	// the backend acts on: tests wrap the real file with it to inject
	// EINTR, EAGAIN, short transfers and EIO. Nil in production.
	Fault Fault
}

// DefaultQueueDepth is the queue depth when Options.QueueDepth is 0.
const DefaultQueueDepth = 32

// Depth is o.QueueDepth or DefaultQueueDepth.
func (o Options) Depth() int {
	if o.QueueDepth <= 0 {
		return DefaultQueueDepth
	}
	return o.QueueDepth
}

// Op names what a Call does.
type Op uint8

const (
	OpRead Op = iota
	OpWrite
)

func (o Op) String() string {
	if o == OpWrite {
		return "write"
	}
	return "read"
}

// Call describes one real syscall or io_uring completion for a Fault hook:
// Seq numbers the file's requests from 0 in submission order (the k-th
// request of the file's life), Attempt counts the calls made for that
// request (retries and continuations after a short transfer), Off and Len
// are the range this call asked for. A vectored call (posix's preadv2 over
// adjacent requests) serves requests Seq to Seq+Reqs-1; Reqs is 1
// otherwise (0 is read as 1).
type Call struct {
	Op      Op
	Seq     int64
	Attempt int
	Off     int64
	Len     int
	Reqs    int
}

// Covers says whether the call serves request number k.
func (c Call) Covers(k int64) bool { return k >= c.Seq && k < c.Seq+int64(max(c.Reqs, 1)) }

// Fault replaces a call's result; see Options.Fault.
type Fault func(c Call, n int, err error) (int, error)

// ErrUnaligned is the error of a request refused under O_DIRECT.
var ErrUnaligned = errors.New("request not aligned for O_DIRECT")

// CheckAligned returns nil when buf, off and len(buf) are multiples of
// align, else an error wrapping ErrUnaligned that says which is not.
func CheckAligned(backend, name string, buf []byte, off int64, align int) error {
	if align <= 1 {
		return nil
	}
	a := int64(align)
	switch {
	case off%a != 0:
		return fmt.Errorf("%s: read/write at offset %d of %s: offset is not a multiple of %d: %w", backend, off, name, align, ErrUnaligned)
	case int64(len(buf))%a != 0:
		return fmt.Errorf("%s: read/write of %d bytes at %d of %s: length is not a multiple of %d: %w", backend, len(buf), off, name, align, ErrUnaligned)
	case len(buf) > 0 && int64(addr(buf))%a != 0:
		return fmt.Errorf("%s: read/write at %d of %s: buffer address %#x is not a multiple of %d: %w", backend, off, name, addr(buf), align, ErrUnaligned)
	}
	return nil
}

// Backend opens files with the options it was selected with. Name and
// Reason say which backend this is and why it was chosen.
type Backend interface {
	Name() string
	Reason() string
	Options() Options
	// Open opens path with os.OpenFile's flag and perm (O_DIRECT is added
	// when Options.Direct).
	Open(path string, flag int, perm os.FileMode) (File, error)
}

// Reader adapts a File to io.ReaderAt, io.Seeker and io.Reader (Parquet
// reads through a ReaderAt that can also Seek: parquet.ReaderAtSeeker).
// Each ReadAt or Read is one request. ReadAt's semantics are io.ReaderAt's:
// n < len(p) comes with an error, io.EOF at the file's end; Read and Seek
// keep a position of their own (ReadAt ignores it). Under O_DIRECT the
// caller's buffers must be aligned like any request. A Reader is used by
// one goroutine at a time, like its File.
type Reader struct {
	f   File
	ctx context.Context
	pos int64
	req [1]Request
}

// NewReader returns a Reader over f; ctx is every request's context.
func NewReader(ctx context.Context, f File) *Reader { return &Reader{f: f, ctx: ctx} }

// NewReaderAt is NewReader as an io.ReaderAt.
func NewReaderAt(ctx context.Context, f File) io.ReaderAt { return NewReader(ctx, f) }

// ReadAt reads len(p) bytes at off.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("storage: read at negative offset %d of %s", off, r.f.Name())
	}
	if len(p) == 0 {
		return 0, nil
	}
	r.req[0] = Request{Buf: p, Off: off}
	if err := r.f.ReadBatch(r.ctx, r.req[:]); err != nil {
		return r.req[0].N, err
	}
	n, err := r.req[0].N, r.req[0].Err
	r.req[0] = Request{} // keep no reference to p
	return n, err
}

// Read reads from the Reader's position and advances it.
func (r *Reader) Read(p []byte) (int, error) {
	n, err := r.ReadAt(p, r.pos)
	r.pos += int64(n)
	if n > 0 && err == io.EOF {
		err = nil // io.Reader: the next Read says EOF
	}
	return n, err
}

// Seek sets the position for Read; io.SeekEnd is relative to File.Size.
func (r *Reader) Seek(offset int64, whence int) (int64, error) {
	var base int64
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		base = r.pos
	case io.SeekEnd:
		size, err := r.f.Size()
		if err != nil {
			return r.pos, err
		}
		base = size
	default:
		return r.pos, fmt.Errorf("storage: seek %s: bad whence %d", r.f.Name(), whence)
	}
	if base+offset < 0 {
		return r.pos, fmt.Errorf("storage: seek %s to %d: before the start", r.f.Name(), base+offset)
	}
	r.pos = base + offset
	return r.pos, nil
}
