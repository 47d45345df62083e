package operators

import (
	"context"
	"fmt"

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
}

func (s *textSink) Write(ctx context.Context, port int, in arrow.RecordBatch) error {
	if int(in.NumCols()) != s.ncols {
		return fmt.Errorf("%s: write %s: batch has %d columns, the schema %d", s.kind, s.out.path(), in.NumCols(), s.ncols)
	}
	s.ic.Ledger.Copied(s.kind+" encode", engine.BatchBytes(in))
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
