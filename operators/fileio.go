package operators

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/internal/atomicfile"
	"github.com/zflowdev/zflow/internal/coltype"
	"github.com/zflowdev/zflow/io/storage"
)

// This file holds what the file sources and sinks share.

// columnTypeEnum is coltype.Names() joined, for `enum` tags (a test keeps
// them equal).
const columnTypeEnum = "bool,int8,int16,int32,int64,uint8,uint16,uint32,uint64,float32,float64,string,binary,date32,timestamp,timestamp_s,timestamp_ms,timestamp_us,timestamp_ns"

// ColumnDef declares one column of a text file (csv, ndjson) instead of
// inferring it.
type ColumnDef struct {
	Name string `zflow:"name" required:"true" doc:"column name"`
	Type string `zflow:"type" required:"true" doc:"column type" enum:"bool,int8,int16,int32,int64,uint8,uint16,uint32,uint64,float32,float64,string,binary,date32,timestamp,timestamp_s,timestamp_ms,timestamp_us,timestamp_ns"`
	// Truncate lets a timestamp column drop fraction digits its unit cannot
	// hold; without it such a value fails the run naming its place.
	Truncate bool `zflow:"truncate" doc:"a timestamp column: drop fraction digits finer than its unit (2024-01-01 00:00:00.123456 read as timestamp_ms is .123) instead of failing"`
}

// truncatingColumns returns the names of the columns declared with
// truncate: true.
func truncatingColumns(cols []ColumnDef) map[string]bool {
	var m map[string]bool
	for _, c := range cols {
		if c.Truncate {
			if m == nil {
				m = map[string]bool{}
			}
			m[c.Name] = true
		}
	}
	return m
}

// columnsSchema turns an explicit column list into a schema; errors name
// the parameter ("columns.2.type").
func columnsSchema(param string, cols []ColumnDef) (*arrow.Schema, error) {
	var errs []error
	fields := make([]arrow.Field, 0, len(cols))
	seen := map[string]bool{}
	for i, c := range cols {
		if c.Name == "" {
			errs = append(errs, engine.Errf(fmt.Sprintf("%s.%d.name", param, i), "column name is empty"))
		} else if seen[c.Name] {
			errs = append(errs, engine.Errf(fmt.Sprintf("%s.%d.name", param, i), "duplicate column %q", c.Name))
		}
		seen[c.Name] = true
		dt, err := coltype.Parse(c.Type)
		if err != nil {
			errs = append(errs, engine.Errf(fmt.Sprintf("%s.%d.type", param, i), "%v", err))
			continue
		}
		if c.Truncate && dt.ID() != arrow.TIMESTAMP {
			errs = append(errs, engine.Errf(fmt.Sprintf("%s.%d.truncate", param, i), "truncate applies to timestamp columns, not %s", c.Type))
		}
		fields = append(fields, arrow.Field{Name: c.Name, Type: dt, Nullable: true})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return arrow.NewSchema(fields, nil), nil
}

// applyTypes overrides the types of named columns of an inferred schema
// (the `types:` parameter of csv and ndjson).
func applyTypes(param string, s *arrow.Schema, types map[string]string) (*arrow.Schema, error) {
	if len(types) == 0 {
		return s, nil
	}
	fields := s.Fields()
	var errs []error
	for name, tn := range types {
		idx := s.FieldIndices(name)
		if len(idx) == 0 {
			var names []string
			for _, f := range fields {
				names = append(names, f.Name)
			}
			msg := fmt.Sprintf("no column %q in the file", name)
			if sug := engine.Suggest(name, names); sug != "" {
				msg += fmt.Sprintf(", did you mean %q?", sug)
			}
			errs = append(errs, engine.Errf(param+"."+name, "%s (columns: %s)", msg, strings.Join(names, ", ")))
			continue
		}
		dt, err := coltype.Parse(tn)
		if err != nil {
			errs = append(errs, engine.Errf(param+"."+name, "%v", err))
			continue
		}
		for _, i := range idx {
			fields[i].Type = dt
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return arrow.NewSchema(fields, nil), nil
}

// batchRowsFor is a node's rows per batch: its own batch_rows when set,
// else the pipeline's.
func batchRowsFor(own int, s engine.Settings) int {
	if own > 0 {
		return own
	}
	if s.BatchRows > 0 {
		return s.BatchRows
	}
	return engine.DefaultSettings().BatchRows
}

// checkBatchRows validates a batch_rows parameter.
func checkBatchRows(n int) error {
	if n < 0 {
		return engine.Errf("batch_rows", "must be ≥ 0 (0 means settings.batch_rows), got %d", n)
	}
	return nil
}

// emitBatch hands rec to out. stop reports that the source should return, with
// err (nil when downstream simply wants no more).
func emitBatch(out engine.Emitter, rec arrow.RecordBatch) (stop bool, err error) {
	if err := out.Emit(rec); err != nil {
		if errors.Is(err, engine.ErrStop) {
			return true, nil
		}
		return true, err
	}
	return false, nil
}

// conformBatch returns a new reference to rec carrying schema, which must have
// the same column types: batches read from a file may differ from the
// compiled schema in metadata or nullability only. The caller releases
// both rec and the result.
func conformBatch(schema *arrow.Schema, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
	if rec.Schema().Equal(schema) {
		rec.Retain()
		return rec, nil
	}
	if int(rec.NumCols()) != schema.NumFields() {
		return nil, fmt.Errorf("batch has %d columns, the schema %d", rec.NumCols(), schema.NumFields())
	}
	for i, c := range rec.Columns() {
		if !arrow.TypeEqual(c.DataType(), schema.Field(i).Type) {
			return nil, fmt.Errorf("column %d (%s) is %s, the schema says %s",
				i, schema.Field(i).Name, c.DataType(), schema.Field(i).Type)
		}
	}
	return array.NewRecordBatch(schema, rec.Columns(), rec.NumRows()), nil
}

// sameColumns reports whether two schemas have the same column names and
// types (metadata and nullability aside), and if not, the first difference.
func sameColumns(want, got *arrow.Schema) error {
	if want.NumFields() != got.NumFields() {
		return fmt.Errorf("%d columns at compile time, %d now", want.NumFields(), got.NumFields())
	}
	for i := range want.NumFields() {
		w, g := want.Field(i), got.Field(i)
		if w.Name != g.Name || !arrow.TypeEqual(w.Type, g.Type) {
			return fmt.Errorf("column %d was %s %s at compile time, is %s %s now", i, w.Name, w.Type, g.Name, g.Type)
		}
	}
	return nil
}

// stripMeta drops schema-level metadata.
func stripMeta(s *arrow.Schema) *arrow.Schema {
	if s.HasMetadata() {
		return arrow.NewSchema(s.Fields(), nil)
	}
	return s
}

// fileOut is the output file of a sink: the temporary file of an
// atomicfile, written through a storage backend (seqWriter: positional
// writes at increasing offsets through a second descriptor of the same
// file; atomicfile keeps creating, fsyncing and renaming it, and its fsync
// covers what the backend wrote, since it is the same inode). The sink writes through it, calls finish in Close, commit in
// Commit, rollback in Rollback, forget in Forget and abort in Abort: every
// file sink is an engine.UndoableSink.
type fileOut struct {
	kind     string    // operator type, for errors
	std      io.Writer // standard output, for path "-"; af is nil then
	af       *atomicfile.File
	bw       *bufio.Writer // standard output's buffer
	sw       *seqWriter    // the file's writer
	finished bool
	discard  bool // tearing down: swallow what an encoder still writes
}

const fileOutBuffer = 1 << 20

// newFileOut first cleans up after the dead runs that wrote path (their
// temporary files, and their pending commits undone: see
// atomicfile.Recover), logging what it did, then opens the temporary file.
// It fails if the cleanup fails, rather than write over a state it could
// not repair.
//
// For path "-" the output is the run's standard output (ic.Stdout): bytes
// go out as they are written, and commit, rollback and forget do nothing,
// since printed bytes cannot be taken back (see stdSink).
func newFileOut(ic *engine.InstanceContext, kind, path string, b storage.Backend) (*fileOut, error) {
	if path == stdinPath {
		fileBackend(ic, nil)
		o := &fileOut{kind: kind, std: ic.Stdout}
		if o.std == nil {
			o.std = os.Stdout
		}
		o.bw = bufio.NewWriterSize(writerFunc(o.writeFile), fileOutBuffer)
		return o, nil
	}
	notes, err := atomicfile.Recover(path)
	if ic.Logger != nil {
		for _, n := range notes {
			ic.Logger.Warn(kind+": "+n, "path", path)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	af, err := atomicfile.Create(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	bf, err := b.Open(af.TempName(), os.O_WRONLY, 0)
	if err != nil {
		af.Abort()
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	ic.CountFiles(1)
	fileBackend(ic, b)
	return &fileOut{kind: kind, af: af, sw: newSeqWriter(context.Background(), bf, b.Options().Depth(), readAheadChunk)}, nil
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func (o *fileOut) writeFile(p []byte) (int, error) {
	if o.discard {
		return len(p), nil
	}
	if o.std != nil {
		stdoutMu.Lock()
		defer stdoutMu.Unlock()
		n, err := o.std.Write(p)
		if err != nil {
			return n, fmt.Errorf("%s: write standard output: %w", o.kind, err)
		}
		return n, nil
	}
	n, err := o.sw.Write(p)
	if err != nil {
		return n, fmt.Errorf("%s: write %s: %w", o.kind, o.af.TempName(), err)
	}
	return n, nil
}

// Write buffers p for the file.
func (o *fileOut) Write(p []byte) (int, error) {
	if o.discard {
		return len(p), nil
	}
	if o.sw != nil {
		return o.writeFile(p)
	}
	return o.bw.Write(p)
}

// finish writes what is buffered; the file stays under its temporary name.
func (o *fileOut) finish() error {
	if o.sw != nil {
		if err := o.sw.finish(); err != nil {
			return fmt.Errorf("%s: write %s: %w", o.kind, o.af.TempName(), err)
		}
	} else if err := o.bw.Flush(); err != nil {
		return err
	}
	o.finished = true
	return nil
}

// commit publishes the file under its final name, keeping the file it
// replaces until forget (or putting it back on rollback).
func (o *fileOut) commit() error {
	if !o.finished {
		o.abort()
		return fmt.Errorf("%s: commit %s: the output was not closed", o.kind, o.path())
	}
	if o.std != nil {
		return nil
	}
	if err := o.af.Publish(); err != nil {
		return fmt.Errorf("%s: %w", o.kind, err)
	}
	return nil
}

// rollback undoes commit: the previous file is back under the final name,
// or none if there was none.
func (o *fileOut) rollback() error {
	if o.std != nil {
		return nil
	}
	if err := o.af.Rollback(); err != nil {
		return fmt.Errorf("%s: %w", o.kind, err)
	}
	return nil
}

// forget ends commit: the previous file is dropped.
func (o *fileOut) forget() error {
	if o.std != nil {
		return nil
	}
	if err := o.af.Forget(); err != nil {
		return fmt.Errorf("%s: %w", o.kind, err)
	}
	return nil
}

// abort removes the temporary file; safe to call more than once.
func (o *fileOut) abort() {
	o.discard = true
	if o.sw != nil {
		o.sw.close()
	}
	if o.af != nil {
		o.af.Abort()
	}
}

// path is the final name.
func (o *fileOut) path() string {
	if o.std != nil {
		return "standard output"
	}
	return o.af.Path()
}

// stdSink is a file sink writing standard output (path "-"). It hides the
// sink's Rollback and Forget: what it printed cannot be undone, so it is a
// plain sink, which the executor commits after the undoable ones. Its bytes
// go out as batches arrive; a run that fails after some were printed exits
// with an error, and the reader of the stream must heed it.
type stdSink struct{ engine.Sink }

// Release forwards to the sink's (engine.Releaser).
func (s stdSink) Release() {
	if r, ok := s.Sink.(engine.Releaser); ok {
		r.Release()
	}
}

// forStdout wraps s in a stdSink when out writes standard output.
func forStdout(out *fileOut, s engine.Sink) engine.Sink {
	if out.std != nil {
		return stdSink{s}
	}
	return s
}

// checkSinkInput checks that a file sink has one input and returns its
// schema.
func checkSinkInput(bc *engine.BuildContext) (*arrow.Schema, error) {
	if len(bc.Inputs) != 1 || bc.Inputs[0] == nil {
		return nil, engine.Errf("inputs", "needs exactly one input, got %d (use a union)", len(bc.Inputs))
	}
	return bc.Inputs[0], nil
}

// checkPath validates a required path parameter.
func checkPath(path string) error {
	if strings.TrimSpace(path) == "" {
		return engine.Errf("path", "is required")
	}
	return nil
}

// bufioReader buffers reads of r by 1 MiB.
func bufioReader(r io.Reader) *bufio.Reader { return bufio.NewReaderSize(r, 1<<20) }
