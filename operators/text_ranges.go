package operators

import (
	"bytes"
	"context"
	"errors"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/buffers"
	"github.com/zflowdev/zflow/engine"
)

// A text source (csv, ndjson) parses one input on several cores this way:
// one goroutine reads the text — decompressed, after the byte order mark,
// through the storage backend the source chose — into ranges of bytes cut
// at record boundaries it can prove (rangeReader), workers parse the
// ranges into batches concurrently (each with builders of its own), and the
// source's goroutine emits every range's batches in file order. Reading is
// a pass at memchr speed over bytes that parsing then looks at byte by
// byte, so one reader keeps several parsers busy.
//
// Where a range ends is the format's business (its cut function): the
// last newline for ndjson, whose records are lines (a newline inside a JSON
// string is escaped); for csv the last newline outside quotes, which a
// count of the quotes proves, since every range starts outside quotes (see
// csvCut). A record longer than a range grows the range until it holds the
// record whole.
//
// Memory: every range's buffer comes from the operator's allocator and
// goes back to it once its range is parsed; at most 2·workers+2 ranges
// exist at once (two per worker queued or parsed, one being read, one being
// emitted), each about batch_rows records, so the source holds a bounded
// few batches' worth of text and rows beyond what it emitted.

// textRange is one range of an input: whole records.
type textRange struct {
	buf   []byte // from the allocator; nil once freed
	data  []byte // buf[:n]: the records
	first bool   // the input's first range
	lines int64  // '\n' bytes before it in the input (so its first line is lines+1)

	out  []arrow.RecordBatch // what parsing made
	rows int64               // rows in out
	err  error               // parsing failed (out holds what came before)
	at   int64               // with err: rows of the range before the failing one
	done chan struct{}       // closed when parsed (or skipped)
}

// release frees the range's buffer and batches.
func (t *textRange) release(mem memory.Allocator) {
	t.freeBuf(mem)
	for _, b := range t.out {
		b.Release()
	}
	t.out = nil
}

func (t *textRange) freeBuf(mem memory.Allocator) {
	if t.buf != nil {
		mem.Free(t.buf)
		t.buf, t.data = nil, nil
	}
}

// Range sizes: a range holds about batch_rows records once the reader has
// seen how long they are, between these bounds.
const (
	rangeFirst = 1 << 20
	rangeMin   = 64 << 10
	rangeMax   = 64 << 20
)

// rangeReader cuts an input into textRanges.
type rangeReader struct {
	r     io.Reader
	mem   memory.Allocator
	cut   func(b []byte) int // the end of the last whole record in b, or -1 if none ends in it
	rows  int                // records a range should hold (batch_rows)
	fixed int                // > 0: every range is this many bytes (tests)

	buf   []byte // the next range's buffer: buf[:n] read, not yet handed out
	n     int
	eof   bool
	first bool
	lines int64 // '\n' before buf
	bytes int64 // handed out so far, for the size estimate
}

func newRangeReader(r io.Reader, mem memory.Allocator, cut func([]byte) int, rows, fixed int) *rangeReader {
	return &rangeReader{r: r, mem: mem, cut: cut, rows: rows, fixed: fixed, first: true}
}

// target is the size of the next range.
func (r *rangeReader) target() int {
	if r.fixed > 0 {
		return r.fixed
	}
	if r.lines == 0 {
		return rangeFirst
	}
	// A little under batch_rows lines, so that a range makes one batch.
	n := r.bytes * int64(r.rows) / r.lines * 15 / 16
	return int(min(max(n, rangeMin), rangeMax))
}

// fill reads into buf[n:] until it is full or the input ends.
func (r *rangeReader) fill() error {
	for r.n < len(r.buf) && !r.eof {
		k, err := r.r.Read(r.buf[r.n:])
		r.n += k
		if err == io.EOF {
			r.eof = true
		} else if err != nil {
			return err
		}
	}
	return nil
}

// next returns the next range, which the caller releases, or io.EOF.
func (r *rangeReader) next() (*textRange, error) {
	if r.buf == nil {
		if r.eof {
			return nil, io.EOF
		}
		r.buf = buffers.AllocateUnzeroed(r.mem, r.target()) // read into before any byte is looked at, and only what was read is
	}
	for {
		if err := r.fill(); err != nil {
			r.close()
			return nil, err
		}
		end := -1
		if r.eof {
			end = r.n
		} else if end = r.cut(r.buf[:r.n]); end < 0 {
			// No record ends in the buffer: grow it.
			r.buf = r.mem.Reallocate(2*len(r.buf), r.buf)
			continue
		}
		if end == 0 && r.eof {
			r.close()
			return nil, io.EOF
		}
		t := &textRange{buf: r.buf, data: r.buf[:end], first: r.first, lines: r.lines, done: make(chan struct{})}
		r.first = false
		r.lines += int64(bytes.Count(t.data, []byte{'\n'}))
		r.bytes += int64(end)
		rest := r.n - end
		r.buf, r.n = nil, 0
		if !r.eof || rest > 0 {
			r.buf = buffers.AllocateUnzeroed(r.mem, max(r.target(), 2*rest))
			r.n = copy(r.buf, t.buf[end:end+rest])
		}
		return t, nil
	}
}

// close frees the buffer being read into.
func (r *rangeReader) close() {
	if r.buf != nil {
		r.mem.Free(r.buf)
		r.buf = nil
	}
}

// rangeRun is what runRanges needs from a format: parse turns a range
// into batches with worker w's state (workers never share one); emit hands
// a parsed range's batches on, in file order, and says whether to stop.
// emit takes every batch of t.out (Emit owns each, error or not). readErr
// wraps an error reading the input.
type rangeRun struct {
	parse   func(w int, t *textRange)
	emit    func(t *textRange) (stop bool, err error)
	readErr func(error) error
}

// runRanges reads rr to the end, parsing with workers goroutines (1: all
// on the caller's) and emitting in order. It returns when every goroutine
// it started has ended, with the first error; every range is released.
func runRanges(ctx context.Context, ic *engine.InstanceContext, rr *rangeReader, workers int, run rangeRun) error {
	mem := ic.Alloc
	defer rr.close()
	if workers <= 1 {
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			t, err := rr.next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return run.readErr(err)
			}
			run.parse(0, t)
			t.freeBuf(mem)
			stop, err := run.emit(t)
			t.out = nil // emitted: the batches are downstream's
			t.release(mem)
			if stop || err != nil {
				return err
			}
		}
	}

	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g := ic.Group(cctx)
	order := make(chan *textRange, workers)
	work := make(chan *textRange, workers)
	g.Go(func(ctx context.Context) error {
		defer close(order)
		defer close(work)
		for {
			t, err := rr.next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return run.readErr(err)
			}
			select {
			case order <- t:
			case <-ctx.Done():
				t.release(mem)
				return nil
			}
			select {
			case work <- t:
			case <-ctx.Done():
				close(t.done) // never parsed; the consumer releases it
				return nil
			}
		}
	})
	for w := range workers {
		g.Go(func(ctx context.Context) error {
			for t := range work {
				parseOne(ctx, mem, t, w, run.parse)
			}
			return nil
		})
	}

	var err error
	stopped := false
	for t := range order {
		if !stopped {
			select {
			case <-t.done:
			case <-g.Context().Done():
				stopped = true
			}
		}
		if !stopped {
			var stop bool
			stop, err = run.emit(t)
			stopped = stop || err != nil
			t.out = nil // emitted: the batches are downstream's
			if stopped {
				cancel()
			}
		}
		if stopped {
			// The goroutines may still hold t: release it after Wait.
			defer releaseLater(t, mem)
		}
		if !stopped {
			t.release(mem)
		}
	}
	werr := g.Wait()
	if err == nil && werr != nil && !errors.Is(werr, context.Canceled) {
		err = werr
	}
	if err == nil {
		err = ctx.Err()
	}
	return err
}

// releaseLater releases a range the consumer stopped waiting for, once
// the group is done with it.
func releaseLater(t *textRange, mem memory.Allocator) { t.release(mem) }

// parseOne parses t on a worker unless the run is over, frees its buffer
// and marks it done, even if parsing panics (the group reports the panic).
func parseOne(ctx context.Context, mem memory.Allocator, t *textRange, w int, parse func(int, *textRange)) {
	defer close(t.done)
	defer t.freeBuf(mem)
	if ctx.Err() == nil {
		parse(w, t)
	}
}

// emitRange hands the batches of t to out in order, each through extend
// (the source's extra columns), and then t's error, if any; errf wraps an
// error of extend. Every batch of t.out is taken, emitted or released.
func emitRange(out engine.Emitter, t *textRange, extend func(arrow.RecordBatch) (arrow.RecordBatch, error), errf func(error) error) (bool, error) {
	for i, rec := range t.out {
		rec, err := extend(rec)
		if err == nil {
			var stop bool
			if stop, err = emitBatch(out, rec); !stop {
				continue
			}
		} else {
			err = errf(err)
		}
		for _, r := range t.out[i+1:] {
			r.Release()
		}
		return true, err
	}
	t.out = nil
	return t.err != nil, t.err
}
