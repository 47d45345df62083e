package operators

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/metadata"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/zflowdev/zflow/engine"
)

// This file holds the Parquet sink's encoder: one file, its row groups'
// column chunks encoded and compressed concurrently.
//
// arrow-go's file.Writer is serial per file, but a *buffered* row group
// gives each column chunk its own column writer and its own page writer,
// which encodes and compresses into a buffer of its own, with offsets
// relative to the chunk's start; the row group's Close then writes the
// chunks to the file one after the other, in column order, fixing the
// offsets in each chunk's metadata. What the column writers of one row
// group share is read-only (the writer properties, the schema) or safe for
// concurrent use (the allocator, arrow-go's pooled zstd and gzip encoders;
// snappy has no state), and page indexes and bloom filters, whose builders
// would be shared, are off. So each column gets a goroutine that writes
// its arrays, in the order they came, into its own column writer, and at
// most workers of them encode at once (a token each); the row group's
// Close, the footer and the file's bytes stay on the sink's goroutine, in
// file order. Statistics, dictionary pages and fallback, and the stored
// Arrow schema are arrow-go's own, as in pqarrow.FileWriter.
//
// pqarrow's own per-column writer is not exported; what is, WriteArrowToColumn,
// takes a leaf array with its definition and repetition levels, which for a
// column that is not nested are computed here (1 for a value, 0 for a null).
// A schema with nested columns (lists, structs, maps) goes through
// pqarrow.FileWriter on the sink's goroutine instead (parquetSerial).
//
// Memory: the open row group's encoded pages come from the props'
// allocator (the sink's account), as with pqarrow; on top, each column
// holds at most pqColumnQueue arrays waiting to be encoded, by reference
// (the producer's buffers, no copy). A row group is closed and written
// before the next one starts; meanwhile the engine's edge holds what the
// producer makes.

// pqColumnQueue is how many arrays a column may have waiting: enough for
// the columns to drift apart by a few batches (their costs differ) without
// holding much of the producer's memory.
const pqColumnQueue = 4

// parquetEncoder writes one Parquet file from record batches. Used by one
// goroutine; write and close return the first error, abort frees
// everything.
type parquetEncoder interface {
	write(ctx context.Context, rec arrow.RecordBatch) error
	close(ctx context.Context) error
	abort()
}

// newParquetEncoder returns the parallel encoder when workers > 1 and every
// column of schema is flat, else the serial one.
func newParquetEncoder(ic *engine.InstanceContext, schema *arrow.Schema, w io.Writer, props *parquet.WriterProperties, workers int) (parquetEncoder, error) {
	arrProps := pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema(), pqarrow.WithAllocator(props.Allocator()))
	if workers <= 1 || !flatSchema(schema) {
		fw, err := pqarrow.NewFileWriter(schema, w, props, arrProps)
		if err != nil {
			return nil, err
		}
		return &parquetSerial{fw: fw}, nil
	}
	return newParquetParallel(ic, schema, w, props, arrProps, workers)
}

// flatSchema reports whether every field maps to one Parquet leaf column
// with no repetition: no lists, structs or maps (extension types are
// judged by their storage).
func flatSchema(s *arrow.Schema) bool {
	for _, f := range s.Fields() {
		dt := f.Type
		if ext, ok := dt.(arrow.ExtensionType); ok {
			dt = ext.StorageType()
		}
		if _, nested := dt.(arrow.NestedType); nested {
			return false
		}
	}
	return true
}

// parquetSerial is pqarrow's writer, on the caller's goroutine.
type parquetSerial struct {
	fw     *pqarrow.FileWriter
	closed bool
}

func (p *parquetSerial) write(_ context.Context, rec arrow.RecordBatch) error {
	return p.fw.WriteBuffered(rec)
}

func (p *parquetSerial) close(context.Context) error {
	p.closed = true
	return p.fw.Close()
}

// abort frees the buffered row group; the output is discarded.
func (p *parquetSerial) abort() {
	if !p.closed {
		p.closed = true
		p.fw.Close()
	}
}

// parquetParallel encodes a file's column chunks concurrently (see the top
// of the file).
type parquetParallel struct {
	fw      *file.Writer
	maxRows int64
	rgw     file.BufferedRowGroupWriter // the open row group, nil between row groups
	rgRows  int64                       // rows sent to the open row group
	cols    []*pqColumn
	tokens  chan struct{}   // one per encoding column: at most workers at once
	flushed chan struct{}   // a column is done with its row group
	g       *engine.Group   // the columns' goroutines
	gctx    context.Context // done when a column failed
	skip    atomic.Bool     // tearing down: columns release what they get unencoded
	stopped bool            // the goroutines have ended
	closed  bool            // fw is closed
}

// pqColumn is one column's goroutine and its queue.
type pqColumn struct {
	name  string
	tasks chan pqTask
	actx  context.Context // pqarrow's write context: scratch buffers, one per goroutine
	def   []int16         // definition levels, reused
}

// pqTask is an array for a column writer, or with flush the end of its
// row group. The column goroutine owns arr and releases it.
type pqTask struct {
	cw    file.ColumnChunkWriter
	arr   arrow.Array
	flush bool
}

func newParquetParallel(ic *engine.InstanceContext, schema *arrow.Schema, w io.Writer, props *parquet.WriterProperties, arrProps pqarrow.ArrowWriterProperties, workers int) (*parquetParallel, error) {
	pqschema, err := pqarrow.ToParquet(schema, props, arrProps)
	if err != nil {
		return nil, err
	}
	if pqschema.NumColumns() != schema.NumFields() {
		return nil, fmt.Errorf("%d fields make %d Parquet columns", schema.NumFields(), pqschema.NumColumns())
	}
	// The key-value metadata pqarrow.NewFileWriter writes: the schema's
	// own, then the Arrow schema as an IPC message, base64 (for a flat
	// schema its normalisation of list element names changes nothing).
	meta := metadata.NewKeyValueMetadata()
	sm := schema.Metadata()
	for i, k := range sm.Keys() {
		meta.Append(k, sm.Values()[i])
	}
	var ser bytes.Buffer
	iw := ipc.NewWriter(&ser, ipc.WithSchema(schema), ipc.WithAllocator(props.Allocator()))
	if err := iw.Close(); err != nil {
		return nil, err
	}
	meta.Append("ARROW:schema", base64.StdEncoding.EncodeToString(ser.Bytes()))
	fw, err := file.NewParquetWriterWithError(w, pqschema.Root(), file.WithWriterProps(props), file.WithWriteMetadata(meta))
	if err != nil {
		return nil, err
	}
	p := &parquetParallel{
		fw:      fw,
		maxRows: props.MaxRowGroupLength(),
		tokens:  make(chan struct{}, workers),
		flushed: make(chan struct{}, schema.NumFields()),
		g:       ic.Group(context.Background()),
	}
	p.gctx = p.g.Context()
	for _, f := range schema.Fields() {
		c := &pqColumn{name: f.Name, tasks: make(chan pqTask, pqColumnQueue), actx: pqarrow.NewArrowWriteContext(context.Background(), &arrProps)}
		p.cols = append(p.cols, c)
		p.g.Go(func(ctx context.Context) error { return p.runColumn(ctx, c) })
	}
	return p, nil
}

// write hands each column its slice of rec, closing row groups as they
// fill. It returns once the arrays are queued, not encoded.
func (p *parquetParallel) write(ctx context.Context, rec arrow.RecordBatch) error {
	if p.stopped {
		return errors.New("write after the encoder stopped")
	}
	n := rec.NumRows()
	for off := int64(0); off < n; {
		if p.rgw == nil {
			rgw, err := p.fw.AppendBufferedRowGroupChecked()
			if err != nil {
				return err
			}
			p.rgw, p.rgRows = rgw, 0
		}
		take := min(n-off, p.maxRows-p.rgRows)
		for i, c := range p.cols {
			cw, err := p.rgw.Column(i)
			if err != nil {
				return err
			}
			var arr arrow.Array
			if off == 0 && take == n {
				arr = rec.Column(i)
				arr.Retain()
			} else {
				arr = array.NewSlice(rec.Column(i), off, off+take)
			}
			if err := p.send(ctx, c, pqTask{cw: cw, arr: arr}); err != nil {
				arr.Release()
				return err
			}
		}
		p.rgRows += take
		off += take
		if p.rgRows == p.maxRows {
			if err := p.endRowGroup(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// send queues t for c, unless a column failed or ctx ended first.
func (p *parquetParallel) send(ctx context.Context, c *pqColumn, t pqTask) error {
	select {
	case c.tasks <- t:
		return nil
	case <-p.gctx.Done():
		return p.fail(ctx)
	case <-ctx.Done():
		return p.fail(ctx)
	}
}

// endRowGroup waits for every column to finish the open row group, then
// closes it: its chunks go to the file in column order.
func (p *parquetParallel) endRowGroup(ctx context.Context) error {
	for i, c := range p.cols {
		cw, err := p.rgw.Column(i)
		if err != nil {
			return err
		}
		if err := p.send(ctx, c, pqTask{cw: cw, flush: true}); err != nil {
			return err
		}
	}
	for range p.cols {
		select {
		case <-p.flushed:
		case <-p.gctx.Done():
			return p.fail(ctx)
		case <-ctx.Done():
			return p.fail(ctx)
		}
	}
	rgw := p.rgw
	p.rgw = nil
	return rgw.Close()
}

// runColumn is column c's goroutine: it encodes what it is sent, in order,
// until its queue is closed.
func (p *parquetParallel) runColumn(ctx context.Context, c *pqColumn) error {
	for t := range c.tasks {
		if err := p.runTask(ctx, c, t); err != nil {
			return fmt.Errorf("column %q: %w", c.name, err)
		}
	}
	return nil
}

func (p *parquetParallel) runTask(ctx context.Context, c *pqColumn, t pqTask) error {
	if t.arr != nil {
		defer t.arr.Release()
	}
	if p.skip.Load() {
		return nil
	}
	select {
	case p.tokens <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-p.tokens }()
	if t.flush {
		err := flushColumnPage(t.cw)
		if err == nil {
			p.flushed <- struct{}{}
		}
		return err
	}
	var def []int16
	if t.cw.Descr().MaxDefinitionLevel() > 0 {
		c.def = defLevels(c.def, t.arr)
		def = c.def
	}
	return pqarrow.WriteArrowToColumn(c.actx, t.cw, t.arr, def, nil, true)
}

// defLevels fills buf with the definition levels of a flat optional
// column: 1 for a value, 0 for a null.
func defLevels(buf []int16, arr arrow.Array) []int16 {
	n := arr.Len()
	if cap(buf) < n {
		buf = make([]int16, n)
	}
	buf = buf[:n]
	for i := range buf {
		buf[i] = 1
	}
	if arr.NullN() > 0 {
		for i := range buf {
			if arr.IsNull(i) {
				buf[i] = 0
			}
		}
	}
	return buf
}

// flushColumnPage encodes and compresses the column's last, partly filled
// data page here, on the column's goroutine, rather than in the row
// group's Close on the sink's. Only for a column that is not dictionary
// encoded (a dictionary column's pages wait for its dictionary page, which
// Close writes first) and whose page holds values; a page that holds only
// nulls is left to Close, which flushes whatever remains.
func flushColumnPage(cw file.ColumnChunkWriter) error {
	if _, dict := cw.CurrentEncoder().(interface{ NumEntries() int }); dict {
		return nil
	}
	pw, ok := cw.(interface {
		EstimatedBufferedValueBytes() int64
		FlushCurrentPage() error
	})
	if !ok || pw.EstimatedBufferedValueBytes() == 0 {
		return nil
	}
	return pw.FlushCurrentPage()
}

// stop closes the columns' queues and waits for their goroutines; it
// returns the first column's error. Safe to call more than once.
func (p *parquetParallel) stop() error {
	if p.stopped {
		return nil
	}
	p.stopped = true
	for _, c := range p.cols {
		close(c.tasks)
	}
	err := p.g.Wait()
	for _, c := range p.cols { // what a failed column left in its queue
		for t := range c.tasks {
			if t.arr != nil {
				t.arr.Release()
			}
		}
	}
	return err
}

// fail stops the columns after one failed or ctx ended, and returns why.
func (p *parquetParallel) fail(ctx context.Context) error {
	p.skip.Store(true)
	if err := p.stop(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.New("encoder stopped")
}

// close finishes the last row group and writes the footer.
func (p *parquetParallel) close(ctx context.Context) error {
	if p.rgw != nil && p.rgRows > 0 {
		if err := p.endRowGroup(ctx); err != nil {
			return err
		}
	}
	if err := p.stop(); err != nil {
		return err
	}
	p.closed = true
	return p.fw.Close()
}

// abort stops the columns and frees the open row group's buffers (its
// bytes go to the discarded output); safe after close and more than once.
func (p *parquetParallel) abort() {
	p.skip.Store(true)
	p.stop()
	if p.closed {
		return
	}
	p.closed = true
	if p.rgw != nil {
		// Close each column writer itself: the row group's Close stops at
		// the first column with a different row count, leaving the rest
		// holding their buffers.
		for i := range p.cols {
			if cw, err := p.rgw.Column(i); err == nil {
				closeQuietly(cw.Close)
			}
		}
		p.rgw = nil
	}
	closeQuietly(p.fw.Close)
}

// closeQuietly runs a close whose result no longer matters (the output is
// being discarded); a writer left inconsistent by a failure may panic in
// it, which is not the run's error.
func closeQuietly(f func() error) {
	defer func() { _ = recover() }()
	_ = f()
}
