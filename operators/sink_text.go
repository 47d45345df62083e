package operators

import (
	"context"
	"fmt"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/internal/textenc"
)

// textFlushAt is the text size at which sinks hand their buffer to the writer.
const textFlushAt = 256 << 10

// batchCols holds text encoders pointed at the columns of one batch; the
// csv and ndjson encoders embed it.
type batchCols struct {
	cols []textenc.Column
}

// reset points the encoders at rec's columns.
func (b *batchCols) reset(rec arrow.RecordBatch) {
	n := int(rec.NumCols())
	if cap(b.cols) < n {
		b.cols = make([]textenc.Column, n)
	}
	b.cols = b.cols[:n]
	for j := range b.cols {
		b.cols[j].Reset(rec.Column(j))
	}
}

// drop forgets the batch given to reset.
func (b *batchCols) drop() {
	clear(b.cols)
	b.cols = b.cols[:0]
}

// rowEncoder turns the rows of a batch into lines of text.
type rowEncoder interface {
	reset(rec arrow.RecordBatch)
	drop()
	// appendRow appends row i of the batch given to reset, newline included.
	appendRow(dst []byte, i int) []byte
}

// textSink writes every row of its input as a line of text (csv, ndjson)
// to a file published on Commit.
type textSink struct {
	kind   string // "csv", "ndjson": for errors and the copy ledger
	ic     *engine.InstanceContext
	ncols  int
	out    *fileOut
	enc    rowEncoder
	buf    []byte
	closed bool

	// newEnc makes the encoders of the other workers: a batch of at least
	// 2 × parallelRows rows is cut into up to Settings.Threads runs of
	// rows, formatted at once into a buffer each and written in order.
	newEnc func() rowEncoder
	more   []worker // the workers beyond the sink's own goroutine
}

// worker is one of a text sink's formatting goroutines' state.
type worker struct {
	enc rowEncoder
	buf []byte
}

// parallelRows is the fewest rows a formatting worker is given: below it
// starting the goroutine costs more than it saves.
const parallelRows = 4096

func (s *textSink) Write(ctx context.Context, port int, in arrow.RecordBatch) error {
	if int(in.NumCols()) != s.ncols {
		return fmt.Errorf("%s: write %s: batch has %d columns, the schema %d", s.kind, s.out.path(), in.NumCols(), s.ncols)
	}
	s.ic.Ledger.Copied(s.kind+" encode", engine.BatchBytes(in))
	if k := min(s.ic.Workers(), int(in.NumRows())/parallelRows); k > 1 && s.newEnc != nil {
		return s.writeParallel(in, k)
	}
	s.enc.reset(in)
	defer s.enc.drop()
	buf := s.buf[:0]
	for i := range int(in.NumRows()) {
		buf = s.enc.appendRow(buf, i)
		if len(buf) >= textFlushAt {
			if _, err := s.out.Write(buf); err != nil {
				return fmt.Errorf("%s: write %s: %w", s.kind, s.out.path(), err)
			}
			buf = buf[:0]
		}
	}
	s.buf = buf
	if _, err := s.out.Write(buf); err != nil {
		return fmt.Errorf("%s: write %s: %w", s.kind, s.out.path(), err)
	}
	return nil
}

// writeParallel formats in's rows in k runs at once, the first on this
// goroutine, and writes them in order. Each run's text is held whole until
// it is written: at most the batch's text in all.
func (s *textSink) writeParallel(in arrow.RecordBatch, k int) error {
	for len(s.more) < k-1 {
		s.more = append(s.more, worker{enc: s.newEnc()})
	}
	n := int(in.NumRows())
	run := func(w *worker, from, to int) {
		w.enc.reset(in)
		buf := w.buf[:0]
		for i := from; i < to; i++ {
			buf = w.enc.appendRow(buf, i)
		}
		w.buf = buf
		w.enc.drop()
	}
	var wg sync.WaitGroup
	for j := 1; j < k; j++ {
		wg.Add(1)
		go func(w *worker, from, to int) {
			defer wg.Done()
			run(w, from, to)
		}(&s.more[j-1], j*n/k, (j+1)*n/k)
	}
	first := worker{enc: s.enc, buf: s.buf}
	run(&first, 0, n/k)
	s.buf = first.buf
	wg.Wait()
	if _, err := s.out.Write(s.buf); err != nil {
		return fmt.Errorf("%s: write %s: %w", s.kind, s.out.path(), err)
	}
	for j := range k - 1 {
		if _, err := s.out.Write(s.more[j].buf); err != nil {
			return fmt.Errorf("%s: write %s: %w", s.kind, s.out.path(), err)
		}
	}
	return nil
}

func (s *textSink) Close(ctx context.Context) error {
	if s.closed {
		return nil
	}
	s.closed = true
	if err := s.out.finish(); err != nil {
		return fmt.Errorf("%s: close %s: %w", s.kind, s.out.path(), err)
	}
	return nil
}

func (s *textSink) Commit() error { return s.out.commit() }

// Rollback puts back the file Commit replaced (engine.UndoableSink).
func (s *textSink) Rollback() error { return s.out.rollback() }

// Forget drops the file Commit replaced (engine.UndoableSink).
func (s *textSink) Forget() error { return s.out.forget() }

func (s *textSink) Abort() { s.out.abort() }
