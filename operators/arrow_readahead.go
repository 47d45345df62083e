package operators

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/buffers"
	"github.com/zflowdev/zflow/io/posix"
	"github.com/zflowdev/zflow/io/storage"
)

// readAheadBytes bounds the buffers an arrow source instance holds for
// record batches it has asked the backend for and arrow-go has not read
// yet (one batch more when a single batch is larger).
const readAheadBytes = 64 << 20

// readAheadCopyBytes is the window when the backend's reads are copies
// made by the CPU (posix: pread out of the page cache, on the queue's
// worker threads): enough for every worker to copy a block while the
// source decodes another, and small enough that the buffers come back to
// the allocator warm and stay in the arena's first extents. With 64 MiB a
// 1 GiB file on tmpfs read slower than without read-ahead (0.29 of fio's
// psync against 0.45, the median of 5 interleaved runs under load 6): the
// arena grew, and the copies went to memory touched for the first time.
const readAheadCopyBytes = 16 << 20

// readAhead keeps the next record batches an arrow source instance will
// read in flight through its backend's storage.Queue (on a file of its
// own, so arrow-go's other reads, the footer and any fallback, never wait
// behind it), each read whole (metadata and body, aligned for O_DIRECT)
// into a buffer from the operator's allocator. arrow-go then reads a
// batch through the pair readAhead hands it, an allocator and a ReaderAt:
// its metadata read is answered from the buffer (a few hundred bytes
// copied), the body's allocation gets the body's place in the buffer and
// its read is answered with no copy at all: the bytes the device wrote
// are the Arrow buffers. A batch whose read failed or came short is not
// served: arrow-go reads it through the plain reader and reports what it
// reports without read-ahead.
//
// Used by the source's goroutine, except Free, which releases a body
// from wherever its record is released.
type readAhead struct {
	ctx    context.Context
	f      storage.File
	q      storage.Queue
	mem    memory.Allocator
	ra     readerAtSeeker // arrow-go's reads that are not served
	align  int64
	blocks []ipcBlock // this instance's, in read order
	recs   []int      // their record numbers
	next   int        // the next block to submit
	win    []*raBlock // submitted, not served yet, in order (win[0] is block head)
	head   int
	held   int64    // bytes of win's buffers
	window int64    // the most bytes held (readAheadBytes, or less: see newReadAhead)
	cur    *raBlock // the block arrow-go reads now
	reqs   []storage.Request
	done   []storage.Done

	mu    sync.Mutex
	owned map[uintptr][]byte // a body handed to arrow-go → the allocation to free with it
}

type raBlock struct {
	blk    ipcBlock
	raw    []byte // the allocation from mem
	buf    []byte // file bytes [start, start+len(buf)), inside raw
	start  int64
	left   int  // requests in flight
	bad    bool // a request failed or came short
	state  int  // raMeta, raBody, raRead, raDone
	handed bool // the body went to arrow-go, which frees raw with it
}

const (
	raMeta = iota // waiting for the metadata read
	raBody        // waiting for the body's allocation
	raRead        // waiting for the body's read
	raDone
)

// newReadAhead opens path again through b and prepares to read ahead the
// blocks whose record numbers recs lists. nil (no read-ahead, no error)
// when there is nothing to read ahead or b has no queue of its own
// (storage.Queuer: io/uring's ring, io/posix's worker threads).
func newReadAhead(ctx context.Context, b storage.Backend, path string, blocks []ipcBlock, recs []int, mem memory.Allocator, ra readerAtSeeker) (*readAhead, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	f, err := b.Open(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	if _, ok := f.(storage.Queuer); !ok {
		// A backend without a queue of its own would read the window
		// synchronously at the first Reap: nothing overlaps the
		// decoding, and the blocks read ahead go cold in the CPU cache
		// before they are used. It reads each batch when asked instead.
		f.Close()
		return nil, nil
	}
	q, err := storage.NewQueue(f, storage.OpRead, b.Options().Depth())
	if err != nil {
		f.Close()
		return nil, err
	}
	mine := make([]ipcBlock, len(recs))
	for i, r := range recs {
		mine[i] = blocks[r]
	}
	win := int64(readAheadBytes)
	if _, ok := q.(*posix.Queue); ok {
		win = readAheadCopyBytes
	}
	return &readAhead{ctx: ctx, f: f, q: q, mem: mem, ra: ra, align: int64(f.Align()), blocks: mine, recs: recs,
		window: win, owned: map[uintptr][]byte{}}, nil
}

// fill submits blocks while the window has room: its bytes under
// readAheadBytes (at least one block) and its requests under the queue's
// depth.
func (r *readAhead) fill() error {
	for r.next < len(r.blocks) {
		blk := r.blocks[r.next]
		start := blk.off &^ (r.align - 1)
		end := (blk.end() + r.align - 1) &^ (r.align - 1)
		n := end - start
		chunk := int64(readAheadChunk)
		depth := int64(r.q.Depth())
		if n > chunk*depth { // one block never needs more requests than the queue holds
			chunk = ((n+depth-1)/depth + r.align - 1) &^ (r.align - 1)
		}
		nreq := int((n + chunk - 1) / chunk)
		if len(r.win) > 0 && (r.held+n > r.window || r.q.Pending()+nreq > r.q.Depth()) {
			return nil
		}
		// The body's allocation is rounded up to 64 bytes (arrow-go's
		// ResizableBuffer): the buffer covers that too.
		bodyAt := blk.off + int64(blk.meta) - start
		size := max(n, bodyAt+roundUp64(blk.body))
		raw := r.allocate(int(size + r.align))
		skip := int64(0)
		if m := int64(uintptr(unsafe.Pointer(unsafe.SliceData(raw)))) % r.align; m != 0 {
			skip = r.align - m
		}
		rb := &raBlock{blk: blk, raw: raw, buf: raw[skip : skip+size], start: start, left: nreq}
		clear(rb.buf[n:]) // the body's padding past the file's bytes: the read writes [0, n)
		r.reqs = r.reqs[:0]
		for o := int64(0); o < n; o += chunk {
			r.reqs = append(r.reqs, storage.Request{Buf: rb.buf[o:min(o+chunk, n)], Off: start + o})
		}
		err := r.q.Submit(r.ctx, r.reqs, r.next<<tagShift) // tags next<<tagShift + i: the block is tag>>tagShift
		clear(r.reqs)
		if err != nil {
			r.mem.Free(raw)
			return err
		}
		r.win = append(r.win, rb)
		r.held += int64(len(raw))
		r.next++
	}
	return nil
}

// allocate is a buffer for a block from the operator's allocator, not
// cleared when the allocator can skip that (buffers.Unzeroed): the read
// overwrites it whole — the block's bytes [0, n), and fill clears the
// rest — and a block whose read failed or came short is never served.
func (r *readAhead) allocate(n int) []byte { return buffers.AllocateUnzeroed(r.mem, n) }

// tagShift leaves room in a request's tag for its index within its block
// (at most the queue's depth, at most 4096 for io_uring).
const tagShift = 13

func roundUp64(n int64) int64 { return (n + 63) &^ 63 }

// serve makes the block of record rec the one arrow-go reads next,
// waiting for its requests; false when rec is not the next block of this
// instance (then nothing is served).
func (r *readAhead) serve(rec int) (bool, error) {
	r.finish()
	if r.head >= len(r.recs) || r.recs[r.head] != rec {
		return false, nil
	}
	if err := r.fill(); err != nil {
		return false, err
	}
	for r.win[0].left > 0 {
		var err error
		r.done, err = r.q.Reap(r.ctx, r.done[:0], 1)
		for _, d := range r.done {
			b := r.win[d.Tag>>tagShift-r.head]
			b.left--
			// A request may end short at the file's end (O_DIRECT rounds
			// up): what the block needs must be there.
			if d.Err != nil && !errors.Is(d.Err, io.EOF) || d.Off+int64(d.N) < min(d.Off+int64(len(d.Buf)), b.blk.end()) {
				b.bad = true
			}
		}
		clear(r.done)
		if err != nil {
			return false, err
		}
	}
	r.cur, r.win = r.win[0], r.win[1:]
	r.held -= int64(len(r.cur.raw))
	r.head++
	return true, r.fill()
}

// finish ends the current block: its buffer goes back to the allocator
// unless arrow-go has the body (it frees it with the body).
func (r *readAhead) finish() {
	if r.cur != nil && !r.cur.handed {
		r.mem.Free(r.cur.raw)
	}
	r.cur = nil
}

// Close cancels the reads in flight, waits for them, and frees every
// buffer not handed to arrow-go.
func (r *readAhead) Close() error {
	r.finish()
	err := r.q.Close()
	for _, b := range r.win {
		r.mem.Free(b.raw)
	}
	r.win = nil
	return errors.Join(err, r.f.Close())
}

// ReadAt answers arrow-go's read of the current block's metadata and body
// from the read-ahead buffer, and sends any other read to the plain reader.
func (r *readAhead) ReadAt(p []byte, off int64) (int, error) {
	if b := r.cur; b != nil && !b.bad && len(p) > 0 {
		switch {
		case b.state == raMeta && off == b.blk.off && len(p) == int(b.blk.meta):
			b.state = raBody
			if b.blk.body == 0 {
				b.state = raDone
			}
			return copy(p, b.buf[off-b.start:]), nil
		case b.state == raRead && off == b.blk.off+int64(b.blk.meta) && int64(len(p)) == b.blk.body &&
			unsafe.SliceData(p) == unsafe.SliceData(b.buf[off-b.start:]):
			b.state = raDone
			return len(p), nil // the device wrote these bytes in place
		}
	}
	return r.ra.ReadAt(p, off)
}

func (r *readAhead) Read(p []byte) (int, error)                { return r.ra.Read(p) }
func (r *readAhead) Seek(off int64, whence int) (int64, error) { return r.ra.Seek(off, whence) }

// alloc is the allocator of the pair: give it to arrow-go's file reader.
func (r *readAhead) alloc() memory.Allocator { return raAlloc{r} }

// bodyOf is b's body and what follows it in the buffer.
func (r *readAhead) bodyOf(b *raBlock) []byte { return b.buf[b.blk.off+int64(b.blk.meta)-b.start:] }

func addrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

// raAlloc is the allocator arrow-go's file reader gets: the current
// block's body allocation is its place in the read-ahead buffer; every
// other allocation is the operator's allocator's.
type raAlloc struct{ r *readAhead }

func (a raAlloc) Allocate(n int) []byte {
	r := a.r
	if b := r.cur; b != nil && !b.bad && b.state == raBody && int64(n) == roundUp64(b.blk.body) {
		b.state, b.handed = raRead, true
		body := r.bodyOf(b)[:n:n]
		r.mu.Lock()
		r.owned[addrOf(body)] = b.raw
		r.mu.Unlock()
		return body
	}
	return r.mem.Allocate(n)
}

func (a raAlloc) Free(b []byte) {
	r := a.r
	r.mu.Lock()
	raw, ok := r.owned[addrOf(b)]
	delete(r.owned, addrOf(b))
	r.mu.Unlock()
	if ok {
		b = raw
	}
	r.mem.Free(b)
}

func (a raAlloc) Reallocate(size int, b []byte) []byte {
	r := a.r
	r.mu.Lock()
	_, ok := r.owned[addrOf(b)]
	r.mu.Unlock()
	if !ok {
		return r.mem.Reallocate(size, b)
	}
	nb := r.mem.Allocate(size)
	copy(nb, b)
	a.Free(b)
	return nb
}
