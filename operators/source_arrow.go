package operators

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/internal/textin"
	"github.com/zflowdev/zflow/io/storage"
)

// ArrowSourceConfig configures the arrow source.
type ArrowSourceConfig struct {
	// Path is one file, glob, directory or "-", for Go callers; it comes
	// before Files. The pipeline parameter path fills Files.
	Path             string
	Files            []string `zflow:"path" required:"true" doc:"what to read, Arrow IPC files (.arrow, .feather v2) or streams (.arrows): a file, a glob (data/*.arrow, data/**/*.arrow), a directory (its files, recursively, in lexical order, skipping hidden and _-prefixed names), - for an IPC stream on standard input, or a list of these; every file must have the first one's columns" example:"testdata/trades.arrow"`
	Filename         string   `zflow:"filename" doc:"add a string column naming the file each row came from: true names it filename, any other value is the column's name"`
	HivePartitioning string   `zflow:"hive_partitioning" enum:"auto,true,false" doc:"add the key=value directories between a directory or glob root and the files as columns (int64, date32 or string, inferred from the values; __HIVE_DEFAULT_PARTITION__ is null): auto does when every file has the same keys, true requires it"`
	Format           string   `zflow:"format" doc:"auto tells the file format by its ARROW1 magic" enum:"auto,file,stream"`
	BatchRows        int      `zflow:"batch_rows" doc:"split stored batches larger than this into zero-copy slices; 0 means settings.batch_rows"`
	Validate         string   `zflow:"validate" doc:"check each batch read: full checks every offset (O(rows)), basic only buffer sizes, none trusts the file" enum:"full,basic,none"`
	Pushdown         bool     `zflow:"pushdown" doc:"pass on only the columns the operators downstream read (the plan's columns: line): the others are not validated (arrow-go's IPC reader has no field selection: the body is still read whole). false passes every column"`
	FileIO
}

// ArrowSourceSpec is the spec of the arrow source.
func ArrowSourceSpec() engine.Spec {
	return engine.Spec{
		Name:    "arrow",
		Kind:    engine.KindSource,
		Summary: "reads an Arrow IPC file or stream",
		Doc: "Batches are emitted as stored (sliced, without copying, when larger than batch_rows). " +
			"With parallelism N, instance i of the file format reads batches i, i+N, ...; a stream is read " +
			"by one instance. Through io: uring and io: posix a file's batches are read ahead: the next ones this instance reads " +
			"are kept in flight (io_uring's queue, or posix's worker threads), each read straight into the buffer that becomes its Arrow body " +
			"(at most queue_depth requests and 64 MiB per instance with uring, 16 MiB with posix, from the operator's memory).",
		Example: `type: arrow
path: testdata/trades.arrow`,
		Parallel:  true,
		Shardable: true,
		NewConfig: func() any {
			return &ArrowSourceConfig{Format: "auto", Validate: "full", HivePartitioning: "auto", Pushdown: true, FileIO: defaultFileIO()}
		},
		Build: buildArrowSource,
	}
}

func init() { engine.Register(ArrowSourceSpec()) }

type arrowFactory struct {
	cfg     ArrowSourceConfig
	files   *fileSet
	stream  []bool // per input: an IPC stream (else the file format)
	batches []int  // per input: batches of a file-format input; 1 for a stream
	sourceColumns
}

// Paths lists the files the source reads (engine.PathsConfig).
func (c *ArrowSourceConfig) Paths() []string { return configFiles(sourcePaths(c.Path, c.Files)) }

// NormalizeConfig moves Path to the front of Files (engine.ConfigNormalizer).
func (c *ArrowSourceConfig) NormalizeConfig() { c.Files, c.Path = sourcePaths(c.Path, c.Files), "" }

// arrowMagic starts and ends an Arrow IPC file.
var arrowMagic = []byte("ARROW1")

func buildArrowSource(bc *engine.BuildContext, c any) (engine.Factory, error) {
	cfg := *c.(*ArrowSourceConfig)
	files, err := resolvePaths("arrow", sourcePaths(cfg.Path, cfg.Files))
	if err != nil {
		return nil, err
	}
	if err := files.chooseIO(cfg.FileIO, ioUse{whole: true}); err != nil {
		return nil, err
	}
	var errs []error
	if err := checkBatchRows(cfg.BatchRows); err != nil {
		errs = append(errs, err)
	}
	switch cfg.Format {
	case "auto", "file", "stream":
	default:
		errs = append(errs, engine.Errf("format", "want auto, file or stream, got %q", cfg.Format))
	}
	switch cfg.Validate {
	case "full", "basic", "none":
	default:
		errs = append(errs, engine.Errf("validate", "want full, basic or none, got %q", cfg.Validate))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	f := &arrowFactory{cfg: cfg, files: files}
	var fileSchema *arrow.Schema
	if files.stdin {
		schema, err := stdinArrowSchema(stdinOf(bc.Stdin), cfg.Format)
		if err != nil {
			return nil, engine.Errf("path", "%v", err)
		}
		f.stream, f.batches, fileSchema = []bool{true}, []int{1}, stripMeta(schema)
	}
	for i, path := range files.files {
		schema, stream, n, err := arrowFileSchema(files.param(i), files.io[i], path, cfg.Format)
		if err != nil {
			return nil, err
		}
		f.stream, f.batches = append(f.stream, stream), append(f.batches, n)
		schema = stripMeta(schema)
		if i == 0 {
			fileSchema = schema
			continue
		}
		if err := sameFileColumns(fileSchema, schema); err != nil {
			return nil, engine.Errf(files.param(i), "arrow: %s and %s (the first file, which sets the columns) differ: %v; every file must have the same columns", path, files.files[0], err)
		}
	}
	extra, err := planExtras(files, cfg.HivePartitioning, cfg.Filename, fileSchema)
	if err != nil {
		return nil, err
	}
	f.setColumns(fileSchema, extra)
	return f, nil
}

// TakeProjection emits only the columns named (engine.Projectable); the
// others are neither validated nor passed on. arrow-go's IPC readers have
// no field selection: a batch's body is still read whole (one read; through
// mmap, prefetched whole) and a compressed body decompressed whole, so the
// saving is the validation (validate: full is O(rows) per column) and the
// memory the others would hold downstream; pushdown: false declines.
func (f *arrowFactory) TakeProjection(cols []string) string {
	return f.takeProjection(f.cfg.Pushdown, cols, "the other columns are neither validated nor passed on (the IPC body is still read whole)")
}

// stdinArrowSchema reads the schema message at the start of an IPC stream
// on standard input, without consuming it.
func stdinArrowSchema(st *engine.Stdin, format string) (*arrow.Schema, error) {
	head, err := st.Peek(engine.StdinPeekSize)
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("arrow: %w", err)
	}
	if format == "file" || bytes.HasPrefix(head, arrowMagic) {
		return nil, fmt.Errorf("arrow: standard input holds an Arrow IPC file, whose footer needs a file zflow can seek in; send an IPC stream (the arrow sink's format: stream) or write it to a file")
	}
	if format == "auto" && !arrowStreamStart(head) {
		msg := "arrow: standard input is not an Arrow IPC stream"
		if len(head) == 0 {
			msg += " (it is empty)"
		}
		return nil, errors.New(msg)
	}
	r, err := ipc.NewReader(bytes.NewReader(head), ipc.WithAllocator(memory.NewGoAllocator()))
	if err != nil {
		return nil, fmt.Errorf("arrow: read standard input as an IPC stream: %w", err)
	}
	defer r.Release()
	return r.Schema(), nil
}

// arrowFileSchema reads the schema of the IPC file or stream at path
// through the backend b, and tells which it is and how many batches a
// file holds; errors are placed at param.
func arrowFileSchema(param string, b storage.Backend, path, format string) (*arrow.Schema, bool, int, error) {
	sf, err := b.Open(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, false, 0, engine.Errf(param, "arrow: %v", err)
	}
	defer sf.Close()
	size, err := sf.Size()
	if err != nil {
		return nil, false, 0, engine.Errf(param, "arrow: %v", err)
	}
	ra := newReaderAt(context.Background(), sf, nil)
	stream := format == "stream"
	if format == "auto" {
		head := make([]byte, len(arrowMagic))
		n, _ := ra.ReadAt(head, 0)
		stream = !bytes.Equal(head[:n], arrowMagic)
		if stream && !arrowStreamStart(head[:n]) {
			msg := fmt.Sprintf("arrow: %s is not an Arrow IPC file or stream", path)
			if looks, use, ok := textin.Describe(path); ok {
				msg += "; it looks like " + looks
				if use != "" && use != "arrow" {
					msg += "; use type: " + use
				}
			}
			return nil, false, 0, engine.Errf(param, "%s", msg)
		}
	}
	mem := memory.NewGoAllocator() // only the schema is read
	if stream {
		r, err := newIPCStreamReader(newSeqReader(context.Background(), sf, b.Options().Depth()), size, mem)
		if err != nil {
			return nil, false, 0, engine.Errf(param, "arrow: read %s as an IPC stream: %v", path, err)
		}
		defer r.Release()
		return r.Schema(), true, 1, nil
	}
	r, err := newIPCFileReader(ra, size, mem)
	if err != nil {
		return nil, false, 0, engine.Errf(param, "arrow: read %s as an IPC file: %v", path, err)
	}
	defer r.Close()
	return r.Schema(), false, r.NumRecords(), nil
}

// ipcLimits bounds what a message may claim to hold by the size of the
// file, so a corrupt length cannot make the reader allocate gigabytes (the
// stream reader has no limit by default; the file reader's default of 256
// MiB per batch would refuse large legitimate batches).
// size is the file's size, 0 when unknown (standard input).
func ipcLimits(size int64, mem memory.Allocator) []ipc.Option {
	if size <= 0 {
		size = 1 << 62
	}
	return []ipc.Option{ipc.WithAllocator(mem), ipc.WithMetadataSizeLimit(min(size, 64<<20)), ipc.WithBodySizeLimit(size)}
}

func newIPCStreamReader(in io.Reader, size int64, mem memory.Allocator) (*ipc.Reader, error) {
	opts := ipcLimits(size, mem)
	return ipc.NewReaderFromMessageReader(ipc.NewMessageReader(bufioReader(in), opts...), opts...)
}

func newIPCFileReader(r readerAtSeeker, size int64, mem memory.Allocator) (*ipc.FileReader, error) {
	return ipc.NewFileReader(r, ipcLimits(size, mem)...)
}

func (f *arrowFactory) Schema() *arrow.Schema { return f.schema }

func (f *arrowFactory) Describe() string {
	kind := "file"
	if slices.Contains(f.stream, true) {
		kind = "stream"
		if slices.Contains(f.stream, false) {
			kind = "files and streams"
		}
	}
	return fmt.Sprintf("%s (IPC %s, %d columns)", f.files.describe(), kind, f.schema.NumFields())
}

// DescribeIO is the plan's io line (engine.IODescriber).
func (f *arrowFactory) DescribeIO() string { return f.files.describeIO() }

func (f *arrowFactory) New(ic *engine.InstanceContext) (any, error) {
	fileBackend(ic, f.files.backend(0))
	if len(f.stream) == 1 && f.stream[0] && ic.Count > 1 {
		return nil, fmt.Errorf("arrow: %s is an IPC stream, which one instance reads from start to end; use parallelism 1 or the file format", f.files.name(0))
	}
	return &arrowSource{f: f, ic: ic}, nil
}

// arrowStreamStart tells whether head can start an Arrow IPC stream: the
// continuation marker, or (streams written before Arrow 0.15) a positive
// little-endian length of the first message's metadata.
func arrowStreamStart(head []byte) bool {
	if len(head) < 4 {
		return false
	}
	if bytes.Equal(head[:4], []byte{0xff, 0xff, 0xff, 0xff}) {
		return true
	}
	n := int32(uint32(head[0]) | uint32(head[1])<<8 | uint32(head[2])<<16 | uint32(head[3])<<24)
	return n > 0 && n < 1<<24 && head[3] == 0
}

type arrowSource struct {
	f  *arrowFactory
	ic *engine.InstanceContext
}

// Run reads the inputs in order. With parallelism N, instance i takes the
// units numbered i, i+N, ... across the inputs: a unit is a batch of a
// file-format input, or a whole stream.
func (s *arrowSource) Run(ctx context.Context, out engine.Emitter) error {
	unit := 0
	for fi := range s.f.files.inputs() {
		n := s.f.batches[fi]
		mine := false
		for k := range n {
			mine = mine || s.ic.Mine(unit+k)
		}
		if mine {
			if stop, err := s.runInput(ctx, fi, unit, out); stop || err != nil {
				return err
			}
		}
		unit += n
	}
	return nil
}

func (s *arrowSource) runInput(ctx context.Context, fi, unit int, out engine.Emitter) (bool, error) {
	path := s.f.files.name(fi)
	if s.ic.Mine(unit) {
		s.ic.CountFiles(1) // counted once, by the instance that reads its first unit
	}
	if s.f.files.stdin {
		return s.runStream(ctx, runStdin(s.ic), 0, fi, out)
	}
	b := s.f.files.io[fi]
	fileBackend(s.ic, b)
	if b.Name() == "mmap" && !s.f.stream[fi] {
		return s.runMapped(ctx, fi, unit, out)
	}
	sf, err := b.Open(path, os.O_RDONLY, 0)
	if err != nil {
		return true, fmt.Errorf("arrow: %w", err)
	}
	defer sf.Close()
	size, err := sf.Size()
	if err != nil {
		return true, fmt.Errorf("arrow: %w", err)
	}
	if s.f.stream[fi] {
		return s.runStream(ctx, newSeqReader(ctx, sf, b.Options().Depth()), size, fi, out)
	}
	return s.runFile(ctx, newReaderAt(ctx, sf, s.ic.Ledger), size, fi, unit, out, b)
}

// runFile reads this instance's batches of an IPC file through ra; with
// b (a backend, not the mapped path) it reads them ahead (readAhead)
// when the footer lists them and b has a queue of its own.
func (s *arrowSource) runFile(ctx context.Context, ra readerAtSeeker, size int64, fi, unit int, out engine.Emitter, b storage.Backend) (stop bool, err error) {
	path := s.f.files.name(fi)
	rd, mem := ra, s.ic.Alloc
	var pre *readAhead
	var blocks []ipcBlock
	if b != nil {
		blocks = ipcFooterBlocks(ra, size)
	}
	if blocks != nil {
		var recs []int
		for i := range blocks {
			if s.ic.Mine(unit + i) {
				recs = append(recs, i)
			}
		}
		if pre, err = newReadAhead(ctx, b, path, blocks, recs, s.ic.Alloc, ra); err != nil {
			return true, fmt.Errorf("arrow: read ahead in %s: %w", path, err)
		}
		if pre != nil {
			// Close cancels what is in flight and waits for it; an error
			// here (the ring could not be drained) is the run's.
			defer func() {
				if cerr := pre.Close(); cerr != nil && err == nil {
					stop, err = true, fmt.Errorf("arrow: read ahead in %s: %w", path, cerr)
				}
			}()
			rd, mem = pre, pre.alloc()
		}
	}
	r, err := newIPCFileReader(rd, size, mem)
	if err != nil {
		return true, fmt.Errorf("arrow: read %s: %w", path, err)
	}
	defer r.Close()
	if pre != nil && r.NumRecords() != len(blocks) {
		pre.recs = nil // arrow-go counts other batches than our parse: serve none
	}
	if err := sameColumns(s.f.allFile, r.Schema()); err != nil {
		return true, fmt.Errorf("arrow: %s: the file has changed since compile: %w", path, err)
	}
	for i := 0; i < r.NumRecords(); i++ {
		if !s.ic.Mine(unit + i) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return true, err
		}
		if pre != nil {
			if _, err := pre.serve(i); err != nil {
				return true, fmt.Errorf("arrow: read %s: batch %d: %w", path, i, err)
			}
		}
		rec, err := r.RecordBatchAt(i)
		if err != nil {
			return true, fmt.Errorf("arrow: read %s: batch %d: %w", path, i, err)
		}
		if stop, err := s.emit(rec, fi, i, out); stop {
			return true, err
		}
	}
	return false, nil
}

func (s *arrowSource) runStream(ctx context.Context, in io.Reader, size int64, fi int, out engine.Emitter) (bool, error) {
	path := s.f.files.name(fi)
	r, err := newIPCStreamReader(in, size, s.ic.Alloc)
	if err != nil {
		return true, fmt.Errorf("arrow: read %s: %w", path, err)
	}
	defer r.Release()
	if err := sameColumns(s.f.allFile, r.Schema()); err != nil {
		return true, fmt.Errorf("arrow: %s: the file has changed since compile: %w", path, err)
	}
	for i := 0; ; i++ {
		if err := ctx.Err(); err != nil {
			return true, err
		}
		ok, err := safeNext(r.Next)
		if err == nil && !ok {
			err = r.Err()
		}
		if err != nil {
			return true, fmt.Errorf("arrow: read %s: batch %d: %w", path, i, err)
		}
		if !ok {
			return false, nil
		}
		rec := r.RecordBatch()
		rec.Retain()
		if stop, err := s.emit(rec, fi, i, out); stop {
			return true, err
		}
	}
}

// emit validates rec (owned), relabels it with the compiled schema and
// emits it, in slices of at most batch_rows rows.
func (s *arrowSource) emit(rec arrow.RecordBatch, fi, i int, out engine.Emitter) (bool, error) {
	path := s.f.files.name(fi)
	if keep := s.f.keep; keep != nil {
		cols := make([]arrow.Array, len(keep))
		fields := make([]arrow.Field, len(keep))
		for k, c := range keep {
			if c >= int(rec.NumCols()) {
				rec.Release()
				return true, fmt.Errorf("arrow: read %s: batch %d has %d columns, not %d", path, i, rec.NumCols(), s.f.allFile.NumFields())
			}
			cols[k], fields[k] = rec.Column(c), rec.Schema().Field(c)
		}
		narrow := array.NewRecordBatch(arrow.NewSchema(fields, nil), cols, rec.NumRows())
		rec.Release()
		rec = narrow
	}
	if verr := validateBatch(s.f.cfg.Validate, rec); verr != nil {
		rec.Release()
		return true, fmt.Errorf("arrow: read %s: batch %d is malformed: %w", path, i, verr)
	}
	b, err := conformBatch(s.f.fileSchema, rec)
	rec.Release()
	if err != nil {
		return true, fmt.Errorf("arrow: read %s: batch %d: %w", path, i, err)
	}
	if b, err = s.f.extra.extend(s.ic.Alloc, s.f.schema, b, fi); err != nil {
		return true, fmt.Errorf("arrow: read %s: batch %d: %w", path, i, err)
	}
	br := int64(batchRowsFor(s.f.cfg.BatchRows, s.ic.Settings))
	if b.NumRows() <= br {
		return emitBatch(out, b)
	}
	defer b.Release()
	for lo := int64(0); lo < b.NumRows(); lo += br {
		if stop, err := emitBatch(out, b.NewSlice(lo, min(lo+br, b.NumRows()))); stop {
			return true, err
		}
	}
	return false, nil
}
