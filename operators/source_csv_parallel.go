package operators

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/zflowdev/zflow/engine"
)

// csvCut is where the last record that ends in b ends: after its last
// newline outside quotes, or -1. b starts outside quotes (the input's
// start, or a cut), and in RFC 4180 every quote either opens or closes a
// quoted field or is half of a doubled quote inside one, so a position is
// inside quotes exactly when an odd number of quotes precede it in b. A
// text where that does not hold — a quote inside an unquoted field — is an
// error the serial reader reports before reaching the cut, and the range
// holding it reports the same (parsed from a proven start); what the
// ranges after it make is never emitted. lazy_quotes and comment lines
// break the rule without an error: such files are read serially
// (csvFactory.serialReason).
func csvCut(b []byte) int {
	odd := bytes.Count(b, []byte{'"'}) & 1 // at len(b)
	end := len(b)
	for {
		i := bytes.LastIndexByte(b[:end], '\n')
		if i < 0 {
			return -1
		}
		odd ^= bytes.Count(b[i+1:end], []byte{'"'}) & 1 // at i+1
		if odd == 0 {
			return i + 1
		}
		end = i
	}
}

// runParallel reads input i cut into ranges at record boundaries, parsed
// by workers goroutines, each with builders of its own, and emitted in
// file order.
func (s *csvSource) runParallel(ctx context.Context, fi, workers int, out engine.Emitter) (bool, error) {
	f := s.f
	fileBackend(s.ic, f.files.backend(fi))
	in, path, err := openTextInput(ctx, f.files, fi, runStdin(s.ic), "csv")
	if err != nil {
		return true, fmt.Errorf("csv: %w", err)
	}
	defer in.Close()
	s.ic.CountFiles(1)
	s.ic.Logger.Debug("csv: parsing in parallel", "node", s.ic.Node, "path", path, "workers", workers)
	type state struct {
		bld  *array.RecordBuilder
		cols []csvColumn
		r    *csvScanner
	}
	states := make([]state, workers)
	for w := range states {
		bld := array.NewRecordBuilder(s.ic.Alloc, f.fileSchema)
		defer bld.Release()
		r := newCSVScanner(nil, f.comma, f.comment, f.cfg.LazyQuotes, 1)
		states[w] = state{bld, f.newColumns(bld), r}
	}
	nulls := newCSVNullSet(f.cfg.NullValues)
	batchRows := batchRowsFor(f.cfg.BatchRows, s.ic.Settings)
	readErr := func(err error) error { return fmt.Errorf("csv: read %s: %w", path, err) }
	// The header is read here, not by the first range's worker: the
	// first range may hold nothing but blank lines.
	var text io.Reader = in
	lines, first := 0, true
	if f.cfg.Header {
		hs := newCSVScanner(in, f.comma, f.comment, f.cfg.LazyQuotes, 64<<10)
		hs.fieldsPerRecord = len(states[0].cols)
		if _, err := hs.next(); err != nil && err != io.EOF {
			return true, headerErr(path, err)
		}
		text = io.MultiReader(bytes.NewReader(hs.buf[hs.pos:hs.end]), in)
		lines, first = hs.line, false
	}
	rr := newRangeReader(text, s.ic.Alloc, csvCut, batchRows, s.rangeBytes)
	rr.lines, rr.first = int64(lines), first
	err = runRanges(ctx, s.ic, rr, workers, rangeRun{
		parse: func(w int, t *textRange) {
			st := states[w]
			st.r.reset(t.data, int(t.lines), t.first)
			st.r.fieldsPerRecord = len(st.cols)
			lines := bytes.Count(t.data, []byte{'\n'}) + 1
			for {
				n, done, err := f.readBatch(st.r, st.bld, st.cols, &nulls, min(batchRows, lines), path)
				if err != nil {
					dropRows(st.bld)
					t.err = err
					return
				}
				if n > 0 {
					batch := st.bld.NewRecordBatch()
					noteBatch(st.cols, batch)
					t.out = append(t.out, batch)
					t.rows += int64(n)
				}
				if done {
					return
				}
			}
		},
		emit: func(t *textRange) (bool, error) {
			extend := func(rec arrow.RecordBatch) (arrow.RecordBatch, error) {
				return f.extra.extend(s.ic.Alloc, f.schema, rec, fi)
			}
			return emitRange(out, t, extend, readErr)
		},
		readErr: readErr,
	})
	return err != nil, err
}
