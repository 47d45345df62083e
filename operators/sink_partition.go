package operators

import (
	"bytes"
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"

	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/internal/atomicfile"
	"github.com/zflowdev/zflow/internal/textenc"
	"github.com/zflowdev/zflow/io/storage"
)

// Partitioned output (partition_by on the parquet, csv and ndjson sinks):
// rows go to path/k1=v1/k2=v2/part-N.<ext>, Hive-style, as DuckDB's COPY
// ... (PARTITION_BY (k1, k2)) writes them. The key columns are not written
// inside the files (DuckDB's default); the sources' hive_partitioning reads
// them back from the directory names.
//
// Values are written as text (integers in decimal, booleans true/false,
// dates 2006-01-02, strings as they are), percent-encoded as DuckDB does:
// every byte but ASCII letters, digits and - _ . ~ becomes %XX (upper-case
// hex), so / = % spaces, control characters and non-ASCII letters never
// break a directory name, and the names are the ones DuckDB's COPY ...
// PARTITION_BY writes. A null is __HIVE_DEFAULT_PARTITION__, as Hive,
// Spark and DuckDB write it; an empty string is k= (DuckDB reads it back as
// an empty string).
//
// The whole tree is written under a temporary directory next to path
// (internal/atomicfile.Dir) and renamed into place on Commit, replacing the
// directory that was there (kept until the run has committed, so a failed
// later sink puts it back); a failed run leaves neither a partial tree under
// path nor its temporary directory.
//
// Memory and open files are bounded by max_open_files: at most that many
// partition files are open at once, each with its encoder's buffers (a
// parquet file buffers up to row_group_rows rows before it writes a row
// group). When a batch needs another one, the least recently used is closed;
// if that partition gets rows again later, they go to a new file,
// part-1, part-2, .... Input grouped or sorted by the keys writes one file
// per partition.
//
// A batch goes to its partitions as zero-copy slices, one per run of rows
// with equal keys, when its rows are grouped by key; when they are mixed
// (more runs than twice the partitions it touches) each partition's rows
// are gathered into one batch first (compute.Take from the run's
// allocator, counted as the copy "partition gather").

// partitionKeyTypes names what partition_by accepts, for errors.
const partitionKeyTypes = "strings, integers, booleans and dates"

// partitioning is a sink's partition_by, checked against its input.
type partitioning struct {
	keys    []int    // key columns in the input, in partition_by order
	names   []string // their names
	data    []int    // the other columns, written in the files
	schema  *arrow.Schema
	maxOpen int
}

// planPartitioning checks partition_by against the input schema: known
// columns, once each, of a type that has an exact text; at least one
// column left for the files.
func planPartitioning(in *arrow.Schema, keys []string, maxOpen int, path string) (*partitioning, error) {
	var errs []error
	p := &partitioning{maxOpen: maxOpen}
	if path == stdinPath {
		errs = append(errs, engine.Errf("partition_by", "partitioned output is a directory tree, which standard output (path: -) cannot hold"))
	}
	if maxOpen < 1 {
		errs = append(errs, engine.Errf("max_open_files", "must be ≥ 1, got %d", maxOpen))
	}
	var names []string
	for _, f := range in.Fields() {
		names = append(names, f.Name)
	}
	isKey := map[int]bool{}
	for i, k := range keys {
		param := fmt.Sprintf("partition_by.%d", i)
		idx := in.FieldIndices(k)
		switch {
		case len(idx) == 0:
			msg := fmt.Sprintf("no column %q in the input", k)
			if s := engine.Suggest(k, names); s != "" {
				msg += fmt.Sprintf(", did you mean %q?", s)
			}
			errs = append(errs, engine.Errf(param, "%s (columns: %s)", msg, strings.Join(names, ", ")))
			continue
		case len(idx) > 1:
			errs = append(errs, engine.Errf(param, "the input has %d columns named %q", len(idx), k))
			continue
		case isKey[idx[0]]:
			errs = append(errs, engine.Errf(param, "column %q is listed twice", k))
			continue
		}
		t := in.Field(idx[0]).Type
		switch t.ID() {
		case arrow.STRING, arrow.LARGE_STRING, arrow.BOOL, arrow.DATE32, arrow.DATE64,
			arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64, arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64:
		case arrow.FLOAT16, arrow.FLOAT32, arrow.FLOAT64:
			errs = append(errs, engine.Errf(param, "column %q is %s, which cannot be a partition key: a float's text is not an exact value to group by (partition keys are %s; cast it, or round it to an integer, in a project)", k, t, partitionKeyTypes))
			continue
		default:
			errs = append(errs, engine.Errf(param, "column %q is %s, which cannot be a partition key (partition keys are %s)", k, t, partitionKeyTypes))
			continue
		}
		isKey[idx[0]] = true
		p.keys = append(p.keys, idx[0])
		p.names = append(p.names, k)
	}
	var fields []arrow.Field
	for i, f := range in.Fields() {
		if !isKey[i] {
			p.data = append(p.data, i)
			fields = append(fields, f)
		}
	}
	if len(errs) == 0 && len(fields) == 0 {
		errs = append(errs, engine.Errf("partition_by", "every column is a partition key: the files would hold no columns"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	p.schema = arrow.NewSchema(fields, nil)
	return p, nil
}

// describe is the plan line of a partitioned sink.
func (p *partitioning) describe(path string) string {
	return fmt.Sprintf("%s/ partitioned by %s (at most %d files open)", strings.TrimSuffix(path, "/"), strings.Join(p.names, ", "), p.maxOpen)
}

// appendHiveValue appends v escaped as one directory name: every byte but
// the unreserved characters of RFC 3986 percent-encoded, as DuckDB does.
func appendHiveValue(dst, v []byte) []byte {
	const hex = "0123456789ABCDEF"
	for _, c := range v {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.', c == '~':
			dst = append(dst, c)
		default:
			dst = append(dst, '%', hex[c>>4], hex[c&15])
		}
	}
	return dst
}

// partWriter writes the files of one partition's part: rows of the data
// schema, encoded.
type partWriter interface {
	write(rec arrow.RecordBatch) error
	// finish flushes the encoder into w (the file is synced and closed by
	// the caller).
	finish() error
	// abort frees the encoder; what it wrote is discarded.
	abort()
}

// newPartWriter makes the encoder of one file over w.
type newPartWriter func(ic *engine.InstanceContext, w io.Writer) (partWriter, error)

// partState is one partition: its directory and its open file, if any.
type partState struct {
	rel       string // k1=v1/k2=v2
	next      int    // the number of its next file
	batchRows int    // its rows in the batch being written
	slot      int    // gather: its index in the batch's touched partitions
	w         partWriter
	file      *os.File      // the part file as created (its fsync and close)
	sw        *seqWriter    // its writer through the sink's backend
	elem      *list.Element // in the LRU of open partitions, while open
}

// partitionedSink writes a partitioned tree (see the top of this file). It
// is an engine.UndoableSink: Commit publishes the tree, Rollback puts the
// previous one back, Forget drops it.
type partitionedSink struct {
	kind    string // parquet, csv, ndjson: errors, the ledger, the extension
	ic      *engine.InstanceContext
	p       *partitioning
	dir     *atomicfile.Dir
	b       storage.Backend // what the part files are written through
	newW    newPartWriter
	parts   map[string]*partState
	lru     *list.List // of *partState, most recent first
	cols    []textenc.Column
	prefix  [][]byte // per key: its escaped name and "="
	scratch []byte   // a key value's text, reused
	key     []byte   // the current row's key
	prev    []byte   // the previous row's key
	// The current batch's runs of equal keys (reused): run r is rows
	// [starts[r], ends[r]) of partition runs[r]; touched lists each
	// partition once, with its rows in the batch in batchRows.
	runs         []*partState
	starts, ends []int
	touched      []*partState
	offs         []int   // gather: where each touched partition's rows go
	idxs         []int32 // gather: the row numbers, by partition
	closed       bool
}

func newPartitionedSink(ic *engine.InstanceContext, kind, path string, b storage.Backend, p *partitioning, newW newPartWriter) (*partitionedSink, error) {
	fileBackend(ic, b)
	notes, err := atomicfile.RecoverDir(path)
	if ic.Logger != nil {
		for _, n := range notes {
			ic.Logger.Warn(kind+": "+n, "path", path)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	if st, err := os.Stat(path); err == nil && !st.IsDir() {
		return nil, fmt.Errorf("%s: %s exists and is not a directory: partitioned output writes a directory tree and replaces only a directory", kind, path)
	}
	d, err := atomicfile.CreateDir(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	s := &partitionedSink{kind: kind, ic: ic, p: p, dir: d, b: b, newW: newW, parts: map[string]*partState{},
		lru: list.New(), cols: make([]textenc.Column, len(p.keys))}
	for _, name := range p.names {
		s.prefix = append(s.prefix, append(appendHiveValue(nil, []byte(name)), '='))
	}
	return s, nil
}

// appendKey appends row i's partition directory (k1=v1/k2=v2). It does not
// allocate once its buffers have grown to the longest key.
func (s *partitionedSink) appendKey(dst []byte, i int) []byte {
	for j := range s.cols {
		if j > 0 {
			dst = append(dst, '/')
		}
		dst = append(dst, s.prefix[j]...)
		c := &s.cols[j]
		if c.IsNull(i) {
			dst = append(dst, hiveDefault...)
			continue
		}
		s.scratch = c.AppendText(s.scratch[:0], i)
		dst = appendHiveValue(dst, s.scratch)
	}
	return dst
}

// Write sends the rows of in to their partitions, without the key columns.
// Rows grouped by key (input sorted or clustered by the keys, the common
// case) go as zero-copy slices of in, one per run of equal keys. When the
// keys are mixed (more runs than twice the partitions the batch touches),
// each partition's rows are gathered into one batch instead (compute.Take, a
// copy counted as "partition gather"), so that an encoder is not called once
// per row.
func (s *partitionedSink) Write(ctx context.Context, port int, in arrow.RecordBatch) error {
	n := int(in.NumRows())
	if n == 0 {
		return nil
	}
	s.ic.Ledger.Copied(s.kind+" encode", engine.BatchBytes(in))
	for j, k := range s.p.keys {
		s.cols[j].Reset(in.Column(k))
	}
	defer clear(s.cols) // drop the references to in
	// The runs of equal keys: runs[r] starts at row starts[r].
	s.runs, s.starts, s.ends = s.runs[:0], s.starts[:0], s.ends[:0]
	s.touched = s.touched[:0]
	s.prev = s.appendKey(s.prev[:0], 0)
	for i := 1; i <= n; i++ {
		if i < n {
			s.key = s.appendKey(s.key[:0], i)
			if bytes.Equal(s.key, s.prev) {
				continue
			}
		}
		ps := s.part(s.prev)
		if ps.batchRows == 0 {
			s.touched = append(s.touched, ps)
		}
		start := 0
		if len(s.starts) > 0 {
			start = s.ends[len(s.ends)-1]
		}
		ps.batchRows += i - start
		s.runs = append(s.runs, ps)
		s.starts = append(s.starts, start)
		s.ends = append(s.ends[:len(s.starts)-1], i)
		s.prev, s.key = s.key, s.prev
	}
	defer func() {
		for _, ps := range s.touched {
			ps.batchRows = 0
		}
	}()
	if len(s.runs) <= 2*len(s.touched) {
		for r, ps := range s.runs {
			if err := s.writeRows(ps, in, s.starts[r], s.ends[r], nil); err != nil {
				return err
			}
		}
		return nil
	}
	return s.gather(ctx, in)
}

// gather writes each partition the batch touches once, its rows taken out
// of in.
func (s *partitionedSink) gather(ctx context.Context, in arrow.RecordBatch) error {
	cols := make([]arrow.Array, len(s.p.data))
	for j, c := range s.p.data {
		cols[j] = in.Column(c)
	}
	data := array.NewRecordBatch(s.p.schema, cols, in.NumRows())
	defer data.Release()
	// A counting sort of the row numbers by partition: each partition's
	// rows end up contiguous in one index array, in input order.
	next := s.offs[:0]
	at := 0
	for k, ps := range s.touched {
		ps.slot = k
		next = append(next, at)
		at += ps.batchRows
	}
	s.offs = next
	if cap(s.idxs) < at {
		s.idxs = make([]int32, at)
	}
	idxs := s.idxs[:at]
	for r, ps := range s.runs {
		for i := s.starts[r]; i < s.ends[r]; i++ {
			idxs[next[ps.slot]] = int32(i)
			next[ps.slot]++
		}
	}
	ib := array.NewInt32Builder(s.ic.Alloc)
	defer ib.Release()
	ib.AppendValues(idxs, nil)
	all := ib.NewInt32Array()
	defer all.Release()
	cctx := compute.WithAllocator(ctx, s.ic.Alloc)
	dd := compute.NewDatum(data) // a datum holds a reference of its own
	defer dd.Release()
	from := 0
	for _, ps := range s.touched {
		idx := array.NewSlice(all, int64(from), int64(from+ps.batchRows))
		from += ps.batchRows
		id := compute.NewDatum(idx)
		idx.Release()
		out, err := compute.Take(cctx, *compute.DefaultTakeOptions(), dd, id)
		id.Release()
		if err != nil {
			return fmt.Errorf("%s: gather the rows of %s: %w", s.kind, ps.rel, err)
		}
		rec := out.(*compute.RecordDatum).Value
		s.ic.Ledger.Copied("partition gather", engine.BatchBytes(rec))
		err = s.writeRows(ps, nil, 0, 0, rec)
		out.Release()
		if err != nil {
			return err
		}
	}
	return nil
}

// part is the partition of key, made on first sight.
func (s *partitionedSink) part(key []byte) *partState {
	ps := s.parts[string(key)]
	if ps == nil {
		ps = &partState{rel: string(key)}
		s.parts[ps.rel] = ps
	}
	return ps
}

// writeRows writes rows [lo, hi) of in without the key columns to ps, or
// rec (of the data schema) when in is nil.
func (s *partitionedSink) writeRows(ps *partState, in arrow.RecordBatch, lo, hi int, rec arrow.RecordBatch) error {
	if ps.w == nil {
		if err := s.open(ps); err != nil {
			return err
		}
	} else {
		s.lru.MoveToFront(ps.elem)
	}
	if in != nil {
		cols := make([]arrow.Array, len(s.p.data))
		for j, c := range s.p.data {
			cols[j] = array.NewSlice(in.Column(c), int64(lo), int64(hi))
		}
		rec = array.NewRecordBatch(s.p.schema, cols, int64(hi-lo))
		for _, c := range cols {
			c.Release()
		}
		defer rec.Release()
	}
	if err := ps.w.write(rec); err != nil {
		return fmt.Errorf("%s: write %s: %w", s.kind, filepath.Join(s.dir.Path(), ps.rel), err)
	}
	return nil
}

// open opens ps's next file, closing the least recently used partition's
// first when max_open_files are open.
func (s *partitionedSink) open(ps *partState) error {
	for s.lru.Len() >= s.p.maxOpen {
		if err := s.closePart(s.lru.Back().Value.(*partState)); err != nil {
			return err
		}
	}
	dir := filepath.Join(s.dir.TempName(), filepath.FromSlash(ps.rel))
	if err := os.MkdirAll(dir, atomicfile.DirPerm); err != nil {
		return fmt.Errorf("%s: %w", s.kind, err)
	}
	name := filepath.Join(dir, fmt.Sprintf("part-%d.%s", ps.next, s.kind))
	// Created with package os (exclusively, and kept for its fsync), then
	// written through a second descriptor of the sink's backend, as a
	// single-file sink writes its temporary file.
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, atomicfile.Perm)
	if err != nil {
		return fmt.Errorf("%s: %w", s.kind, err)
	}
	bf, err := s.b.Open(name, os.O_WRONLY, 0)
	if err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", s.kind, err)
	}
	ps.next++
	s.ic.CountFiles(1)
	ps.file, ps.sw = f, newSeqWriter(context.Background(), bf, 1, partChunk)
	w, err := s.newW(s.ic, ps.sw)
	if err != nil {
		ps.sw.close()
		f.Close()
		return fmt.Errorf("%s: create %s: %w", s.kind, name, err)
	}
	ps.w = w
	ps.elem = s.lru.PushFront(ps)
	return nil
}

// partChunk is the buffer of an open part file (one per open partition,
// up to max_open_files of them).
const partChunk = 256 << 10

// closePart finishes ps's open file: encoder, buffer (the last block
// padded and cut back under O_DIRECT), fsync, close.
func (s *partitionedSink) closePart(ps *partState) error {
	s.lru.Remove(ps.elem)
	w, f, sw := ps.w, ps.file, ps.sw
	ps.w, ps.file, ps.sw, ps.elem = nil, nil, nil, nil
	err := w.finish()
	if err == nil {
		err = sw.finish()
	} else {
		sw.close()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s: close %s: %w", s.kind, f.Name(), err)
	}
	return nil
}

// Close finishes every open file; the tree stays under its temporary name.
func (s *partitionedSink) Close(ctx context.Context) error {
	if s.closed {
		return nil
	}
	s.closed = true
	for s.lru.Len() > 0 {
		if err := s.closePart(s.lru.Front().Value.(*partState)); err != nil {
			s.teardown()
			return err
		}
	}
	return nil
}

func (s *partitionedSink) Commit() error {
	if !s.closed {
		s.Abort()
		return fmt.Errorf("%s: commit %s: the output was not closed", s.kind, s.dir.Path())
	}
	if err := s.dir.Publish(); err != nil {
		return fmt.Errorf("%s: %w", s.kind, err)
	}
	return nil
}

// Rollback puts back the tree Commit replaced (engine.UndoableSink).
func (s *partitionedSink) Rollback() error { return s.dir.Rollback() }

// Forget drops the tree Commit replaced (engine.UndoableSink).
func (s *partitionedSink) Forget() error { return s.dir.Forget() }

func (s *partitionedSink) Abort() {
	s.teardown()
	s.dir.Abort()
}

// Release frees the encoders if the run ended before Close.
func (s *partitionedSink) Release() { s.teardown() }

// teardown frees what is open without finishing it.
func (s *partitionedSink) teardown() {
	s.closed = true
	for s.lru.Len() > 0 {
		ps := s.lru.Front().Value.(*partState)
		s.lru.Remove(ps.elem)
		ps.w.abort()
		ps.sw.close()
		ps.file.Close()
		ps.w, ps.file, ps.sw, ps.elem = nil, nil, nil, nil
	}
}

// textPartWriter encodes rows as csv or ndjson text.
type textPartWriter struct {
	w   io.Writer
	enc rowEncoder
	buf []byte
}

func (t *textPartWriter) write(rec arrow.RecordBatch) error {
	t.enc.reset(rec)
	defer t.enc.drop()
	buf := t.buf[:0]
	for i := range int(rec.NumRows()) {
		buf = t.enc.appendRow(buf, i)
		if len(buf) >= textFlushAt {
			if _, err := t.w.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
	}
	t.buf = buf
	_, err := t.w.Write(buf)
	return err
}

func (t *textPartWriter) finish() error { return nil }
func (t *textPartWriter) abort()        {}
