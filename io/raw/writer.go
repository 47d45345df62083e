package raw

import (
	"context"
	"fmt"
	"unsafe"

	"github.com/zflowdev/zflow/io/storage"
)

// Writer writes a file front to back from the caller's memory: each Write
// submits positional requests that point into the pieces it is given, at
// increasing offsets, depth of them per batch. Under O_DIRECT what is not
// aligned goes through an aligned staging buffer (see the package doc);
// Bounced counts those bytes. Used by one goroutine at a time.
type Writer struct {
	f       storage.File
	align   int
	depth   int
	off     int64 // file offset of the next request (of stage[0] when staged)
	size    int64 // bytes given to Write so far
	reqs    []storage.Request
	stage   []byte // aligned, Chunk bytes; allocated when first needed
	staged  int
	bounced int64
	err     error // the first failure: every later call returns it
}

// NewWriter returns a Writer of f from offset 0 keeping up to depth
// requests in flight (at least 1).
func NewWriter(f storage.File, depth int) *Writer {
	depth = max(depth, 1)
	return &Writer{f: f, align: max(f.Align(), 1), depth: depth, reqs: make([]storage.Request, 0, depth)}
}

// Size is the number of bytes written (asked to be), padding aside.
func (w *Writer) Size() int64 { return w.size }

// Bounced is how many bytes were copied into the staging buffer for
// O_DIRECT's alignment.
func (w *Writer) Bounced() int64 { return w.bounced }

// Write writes the pieces back to back after what was written before.
// When it returns, no request points into them any more.
func (w *Writer) Write(ctx context.Context, pieces ...[]byte) error {
	if w.err != nil {
		return w.err
	}
	for _, p := range pieces {
		w.size += int64(len(p))
		for len(p) > 0 {
			if w.align == 1 || (len(p) >= w.align && w.staged%w.align == 0 && addrOf(p)%uintptr(w.align) == 0) {
				if w.staged > 0 { // whole blocks: write them before this piece
					if err := w.flushStage(ctx, w.staged); err != nil {
						return err
					}
				}
				n := len(p) - len(p)%w.align
				for k := 0; k < n; k += Chunk {
					if err := w.queue(ctx, p[k:min(k+Chunk, n)]); err != nil {
						return err
					}
				}
				p = p[n:]
				continue
			}
			// Bounce: copy into the staging buffer, written when full (or
			// before the next piece that can go straight, or by Finish).
			if w.stage == nil {
				w.stage = alignedBytes(Chunk, w.align)
			}
			c := copy(w.stage[w.staged:], p)
			w.staged += c
			w.bounced += int64(c)
			p = p[c:]
			if w.staged == Chunk {
				if err := w.flushStage(ctx, w.staged); err != nil {
					return err
				}
			}
		}
	}
	return w.submit(ctx)
}

// Finish writes what is staged, padding the last block with zeros under
// O_DIRECT; it reports whether it padded (the caller then truncates the
// file to Size).
func (w *Writer) Finish(ctx context.Context) (padded bool, err error) {
	if w.err != nil {
		return false, w.err
	}
	if n := w.staged; n > 0 {
		if rem := n % w.align; rem != 0 {
			clear(w.stage[n : n+w.align-rem])
			n += w.align - rem
			padded = true
		}
		if err := w.flushStage(ctx, n); err != nil {
			return false, err
		}
	}
	return padded, w.submit(ctx)
}

// flushStage writes the first n bytes of the staging buffer (a whole
// number of blocks) and frees it.
func (w *Writer) flushStage(ctx context.Context, n int) error {
	if err := w.queue(ctx, w.stage[:n]); err != nil {
		return err
	}
	if err := w.submit(ctx); err != nil { // the staging buffer is reused next
		return err
	}
	w.staged = 0
	return nil
}

// queue adds a request for b at the current offset, submitting the batch
// when it is full.
func (w *Writer) queue(ctx context.Context, b []byte) error {
	w.reqs = append(w.reqs, storage.Request{Buf: b, Off: w.off})
	w.off += int64(len(b))
	if len(w.reqs) == w.depth {
		return w.submit(ctx)
	}
	return nil
}

// submit writes the queued requests as one batch.
func (w *Writer) submit(ctx context.Context) error {
	if len(w.reqs) == 0 {
		return nil
	}
	err := w.f.WriteBatch(ctx, w.reqs)
	for i := range w.reqs {
		if err == nil && w.reqs[i].Err != nil {
			q := w.reqs[i]
			err = fmt.Errorf("raw: write %d bytes at %d of %s: %w", len(q.Buf), q.Off, w.f.Name(), q.Err)
		}
		w.reqs[i] = storage.Request{}
	}
	w.reqs = w.reqs[:0]
	if err != nil {
		w.err = err
	}
	return err
}

func addrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

// alignedBytes is n bytes whose address is a multiple of align.
func alignedBytes(n, align int) []byte {
	b := make([]byte, n+align)
	skip := 0
	if r := int(addrOf(b) % uintptr(align)); r != 0 {
		skip = align - r
	}
	return b[skip : skip+n : skip+n]
}
