package operators

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/metadata"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/internal/textin"
	"github.com/zflowdev/zflow/io/storage"
)

// ParquetSourceConfig configures the parquet source.
type ParquetSourceConfig struct {
	// Path is one file, glob or directory, for Go callers; it comes before
	// Files. The pipeline parameter path fills Files.
	Path             string
	Files            []string `zflow:"path" required:"true" doc:"what to read: a file, a glob (data/*.parquet, data/**/*.parquet), a directory (its files, recursively, in lexical order, skipping hidden and _-prefixed names, as a Hive-partitioned tree), or a list of these; every file must have the first one's columns. Not - : Parquet needs its footer, at the end of a seekable file" example:"data/**/*.parquet"`
	Filename         string   `zflow:"filename" doc:"add a string column naming the file each row came from: true names it filename, any other value is the column's name"`
	HivePartitioning string   `zflow:"hive_partitioning" enum:"auto,true,false" doc:"add the key=value directories between a directory or glob root and the files as columns (int64, date32 or string, inferred from the values; __HIVE_DEFAULT_PARTITION__ is null): auto does when every file has the same keys, true requires it"`
	Columns          []string `zflow:"columns" doc:"read only these columns, in this order (default: all)" example:"[symbol, price]"`
	BatchRows        int      `zflow:"batch_rows" doc:"rows per batch; 0 means settings.batch_rows"`
	Pushdown         bool     `zflow:"pushdown" doc:"take the condition of a filter reading only this source, and skip the row groups whose column statistics (min, max, null count) show no row can satisfy it; the plan shows the condition taken, the summary the row groups skipped. Comparisons of a column with a constant, BETWEEN, IN, IS [NOT] NULL, AND and OR are followed; a float column's maximum is not used (Parquet leaves NaN out of it). false reads every row group"`
	FileIO
}

// ParquetSourceSpec is the spec of the parquet source.
func ParquetSourceSpec() engine.Spec {
	return engine.Spec{
		Name:    "parquet",
		Kind:    engine.KindSource,
		Summary: "reads a Parquet file, row group by row group",
		Doc: "The schema comes from the file footer at compile time (the stored Arrow schema when the " +
			"writer kept one). Batches never span row groups; with parallelism N, instance i reads row " +
			"groups i, i+N, .... An instance decodes several of its row groups at once (as many as the " +
			"process may use CPUs, shared among the instances) and emits them in file order.",
		Example: `type: parquet
path: testdata/trades.parquet
columns: [symbol, price, qty]`,
		Parallel:  true,
		Shardable: true,
		NewConfig: func() any {
			return &ParquetSourceConfig{HivePartitioning: "auto", Pushdown: true, FileIO: defaultFileIO()}
		},
		Build: buildParquetSource,
	}
}

func init() { engine.Register(ParquetSourceSpec()) }

type parquetFactory struct {
	cfg     ParquetSourceConfig
	workers int // row groups decoded at once per instance; 0 is cpuWorkers
	files   *fileSet
	sourceColumns
	chosen []int // top-level field indices the columns parameter chose, in its order; nil for all
	fields []int // top-level field indices read (chosen, then projected), in output order; nil for all
	rows   int64
	groups []int            // row groups per file
	pred   engine.Predicate // a filter's condition, pushed down (TakePredicate); nil for none
	// footers are the files' footers as read at compile time, for the
	// plan's pruning count.
	footers []parquetFooter
	// dict are the string columns read as dictionaries (TakeDictionaries),
	// and plainFile the file columns as they were before.
	dict      []string
	plainFile *arrow.Schema
}

// parquetFooter is what compile keeps of a file's footer.
type parquetFooter struct {
	md       *metadata.FileMetaData
	manifest *pqarrow.SchemaManifest
}

// Paths lists the files the source reads (engine.PathsConfig).
func (c *ParquetSourceConfig) Paths() []string { return configFiles(sourcePaths(c.Path, c.Files)) }

// NormalizeConfig moves Path to the front of Files (engine.ConfigNormalizer).
func (c *ParquetSourceConfig) NormalizeConfig() { c.Files, c.Path = sourcePaths(c.Path, c.Files), "" }

// parquetScratch is the allocator for the parquet decoder's own page
// buffers. The decoder pools them and frees them through finalizers, so
// they are kept off the run's allocator; batches come from InstanceContext.Alloc.
var parquetScratch = memory.NewGoAllocator()

// openParquet opens path through the storage backend b, and its Arrow
// view; ctx is every read's context, ledger where O_DIRECT's bounces are
// counted (nil at compile time); the caller closes pf, which closes the
// file.
func openParquet(ctx context.Context, b storage.Backend, path string, mem memory.Allocator, batchRows int, ledger *engine.Ledger, dict []string) (pf *file.Reader, fr *pqarrow.FileReader, err error) {
	f, err := b.Open(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("parquet: %w", err)
	}
	r := closingReader{newReaderAt(ctx, f, ledger), f}
	defer func() {
		if r := recover(); r != nil {
			if pf != nil {
				pf.Close()
			}
			pf, fr, err = nil, nil, fmt.Errorf("parquet: open %s: malformed file (reader panicked: %v)", path, r)
		}
		if pf == nil {
			f.Close()
		}
	}()
	if err := checkParquetMagic(r, path); err != nil {
		return nil, nil, err
	}
	pf, err = file.NewParquetReader(r, file.WithReadProps(parquet.NewReaderProperties(parquetScratch)))
	if err != nil {
		return nil, nil, fmt.Errorf("parquet: open %s: %w", path, err)
	}
	props := pqarrow.ArrowReadProperties{BatchSize: int64(batchRows)}
	for _, name := range dict { // read as dictionaries (TakeDictionaries)
		if col := pf.MetaData().Schema.ColumnIndexByName(name); col >= 0 {
			props.SetReadDict(col, true)
		}
	}
	fr, err = pqarrow.NewFileReader(pf, props, mem)
	if err != nil {
		pf.Close()
		return nil, nil, fmt.Errorf("parquet: open %s: %w", path, err)
	}
	return pf, fr, nil
}

// closingReader is the ReaderAtSeeker the Parquet reader reads a file
// through; the reader's Close closes the file.
type closingReader struct {
	readerAtSeeker
	f storage.File
}

func (r closingReader) Close() error { return r.f.Close() }

// checkParquetMagic refuses a file that does not start and end with PAR1,
// saying what it looks like instead, before the decoder says something
// about its internals.
func checkParquetMagic(r readerAtSeeker, path string) error {
	size, err := r.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("parquet: %w", err)
	}
	var head, tail [4]byte
	if size >= 12 {
		if _, err := r.ReadAt(head[:], 0); err != nil {
			return fmt.Errorf("parquet: read %s: %w", path, err)
		}
		if _, err := r.ReadAt(tail[:], size-4); err != nil {
			return fmt.Errorf("parquet: read %s: %w", path, err)
		}
	}
	switch {
	case string(head[:]) == "PAR1" && string(tail[:]) == "PAR1":
		return nil
	case string(tail[:]) == "PARE":
		return fmt.Errorf("parquet: %s is an encrypted Parquet file, which zflow cannot read", path)
	}
	msg := fmt.Sprintf("parquet: %s is not a Parquet file (no PAR1 footer)", path)
	if string(head[:]) == "PAR1" {
		msg = fmt.Sprintf("parquet: %s is not a whole Parquet file: it starts with PAR1 but has no PAR1 footer (cut short?)", path)
	} else if looks, use, ok := textin.Describe(path); ok {
		msg += "; it looks like " + looks
		if use != "" {
			msg += "; use type: " + use
		}
	}
	return errors.New(msg)
}

func buildParquetSource(bc *engine.BuildContext, c any) (engine.Factory, error) {
	cfg := *c.(*ParquetSourceConfig)
	files, err := resolvePaths("parquet", sourcePaths(cfg.Path, cfg.Files))
	if err != nil {
		return nil, err
	}
	if err := files.chooseIO(cfg.FileIO, ioUse{whole: false}); err != nil {
		return nil, err
	}
	if files.stdin {
		return nil, engine.Errf("path", "parquet: cannot read standard input: a Parquet file keeps its schema and row group index in a footer at its end, so it must be a file zflow can seek in; write it to a file first, or send an Arrow IPC stream (type: arrow)")
	}
	if err := checkBatchRows(cfg.BatchRows); err != nil {
		return nil, err
	}
	f := &parquetFactory{cfg: cfg, files: files}
	var first *arrow.Schema
	for i, path := range files.files {
		full, foot, err := parquetSchema(files.param(i), files.io[i], path, batchRowsFor(cfg.BatchRows, bc.Settings))
		if err != nil {
			return nil, err
		}
		f.rows += foot.md.NumRows
		f.groups = append(f.groups, foot.md.NumRowGroups())
		f.footers = append(f.footers, foot)
		if i == 0 {
			first = full
			continue
		}
		if err := sameFileColumns(first, full); err != nil {
			return nil, engine.Errf(files.param(i), "parquet: %s and %s (the first file, which sets the columns) differ: %v; every file must have the same columns", path, files.files[0], err)
		}
	}
	fileSchema, chosen, err := selectColumns(first, cfg.Columns, files.files[0])
	if err != nil {
		return nil, err
	}
	extra, err := planExtras(files, cfg.HivePartitioning, cfg.Filename, fileSchema)
	if err != nil {
		return nil, err
	}
	f.setColumns(fileSchema, extra)
	f.chosen, f.fields = chosen, chosen
	return f, nil
}

// parquetSchema reads the schema and footer of path; errors are placed at
// param.
func parquetSchema(param string, b storage.Backend, path string, batchRows int) (*arrow.Schema, parquetFooter, error) {
	pf, fr, err := openParquet(context.Background(), b, path, parquetScratch, batchRows, nil, nil)
	if err != nil {
		return nil, parquetFooter{}, engine.Errf(param, "%v", err)
	}
	defer pf.Close()
	full, err := fr.Schema()
	if err != nil {
		return nil, parquetFooter{}, engine.Errf(param, "parquet: %s: read schema: %v", path, err)
	}
	return stripMeta(full), parquetFooter{pf.MetaData(), fr.Manifest}, nil
}

// TakeProjection reads only the columns named, the others' column chunks
// not at all (engine.Projectable); pushdown: false declines. A nested
// column is kept or dropped whole, by its top-level field.
func (f *parquetFactory) TakeProjection(cols []string) string {
	if !f.cfg.Pushdown && cols != nil {
		return ""
	}
	f.project(cols)
	f.fields = f.chosen
	if f.keep != nil {
		f.fields = make([]int, len(f.keep))
		for i, k := range f.keep {
			f.fields[i] = k
			if f.chosen != nil {
				f.fields[i] = f.chosen[k]
			}
		}
	}
	return "the other columns' chunks are neither read nor decoded"
}

// DictionaryColumns are the columns the source could read as dictionaries
// (engine.DictionarySource): the file's top-level string and binary
// columns it reads. A Parquet writer stores such columns dictionary-
// encoded unless their dictionary grows too big; read as an Arrow
// dictionary, a column is not expanded into one copy of its value per row.
func (f *parquetFactory) DictionaryColumns() []string {
	if !f.cfg.Pushdown {
		return nil
	}
	var out []string
	for _, fl := range f.fileSchema.Fields() {
		switch fl.Type.ID() {
		case arrow.STRING, arrow.BINARY, arrow.LARGE_STRING, arrow.LARGE_BINARY:
			out = append(out, fl.Name)
		}
	}
	return out
}

// TakeDictionaries reads cols as dictionary<int32, their type> from now
// on (nil: as values again) (engine.DictionarySource).
func (f *parquetFactory) TakeDictionaries(cols []string) string {
	if f.plainFile == nil {
		f.plainFile = f.allFile
	}
	var names []string
	if f.keep != nil {
		names = engine.FieldNames(f.schema)
	}
	fields := slices.Clone(f.plainFile.Fields())
	for i, fl := range fields {
		if slices.Contains(cols, fl.Name) {
			fields[i].Type = &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: fl.Type}
		}
	}
	md := f.plainFile.Metadata()
	f.allFile = arrow.NewSchema(fields, &md)
	f.project(names)
	f.dict = cols
	if cols == nil {
		return ""
	}
	return "read as dictionaries, the form the file stores them in"
}

// sameFileColumns says how got's columns differ from want's (names and
// types, in order), or nil.
func sameFileColumns(want, got *arrow.Schema) error {
	for i := range max(want.NumFields(), got.NumFields()) {
		switch {
		case i >= got.NumFields():
			return fmt.Errorf("column %q (%s) is missing", want.Field(i).Name, want.Field(i).Type)
		case i >= want.NumFields():
			return fmt.Errorf("column %q (%s) is extra", got.Field(i).Name, got.Field(i).Type)
		}
		w, g := want.Field(i), got.Field(i)
		if w.Name != g.Name {
			return fmt.Errorf("column %d is %q, not %q", i+1, g.Name, w.Name)
		}
		if !arrow.TypeEqual(w.Type, g.Type) {
			return fmt.Errorf("column %q is %s, not %s", w.Name, g.Type, w.Type)
		}
	}
	return nil
}

// selectColumns applies the columns parameter to a file's schema.
func selectColumns(full *arrow.Schema, columns []string, path string) (*arrow.Schema, []int, error) {
	if len(columns) == 0 {
		return full, nil, nil
	}
	var names []string
	for _, fl := range full.Fields() {
		names = append(names, fl.Name)
	}
	var errs []error
	var fields []arrow.Field
	var idxs []int
	seen := map[string]bool{}
	for i, name := range columns {
		p := fmt.Sprintf("columns.%d", i)
		idx := full.FieldIndices(name)
		switch {
		case seen[name]:
			errs = append(errs, engine.Errf(p, "column %q is listed twice", name))
		case len(idx) == 0:
			msg := fmt.Sprintf("no column %q in %s", name, path)
			if s := engine.Suggest(name, names); s != "" {
				msg += fmt.Sprintf(", did you mean %q?", s)
			}
			errs = append(errs, engine.Errf(p, "%s (columns: %s)", msg, strings.Join(names, ", ")))
		case len(idx) > 1:
			errs = append(errs, engine.Errf(p, "the file has %d columns named %q", len(idx), name))
		default:
			idxs = append(idxs, idx[0])
			fields = append(fields, full.Field(idx[0]))
		}
		seen[name] = true
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	return arrow.NewSchema(fields, nil), idxs, nil
}

func (f *parquetFactory) Schema() *arrow.Schema { return f.schema }

func (f *parquetFactory) Describe() string {
	groups := 0
	for _, g := range f.groups {
		groups += g
	}
	return fmt.Sprintf("%s (%d rows in %d row groups, %d columns)", f.files.describe(), f.rows, groups, f.schema.NumFields())
}

// DescribeIO is the plan's io line (engine.IODescriber).
func (f *parquetFactory) DescribeIO() string { return f.files.describeIO() }

func (f *parquetFactory) New(ic *engine.InstanceContext) (any, error) {
	fileBackend(ic, f.files.backend(0))
	return &parquetSource{f: f, ic: ic}, nil
}

type parquetSource struct {
	f  *parquetFactory
	ic *engine.InstanceContext
}

// parquetLeaves lists the leaf column indices under a manifest field.
func parquetLeaves(sf *pqarrow.SchemaField, out []int) []int {
	if sf.IsLeaf() {
		return append(out, sf.ColIndex)
	}
	for i := range sf.Children {
		out = parquetLeaves(&sf.Children[i], out)
	}
	return out
}

// Run reads the files' row groups in order; with parallelism N, instance i
// reads the row groups numbered i, i+N, ... across all the files.
func (s *parquetSource) Run(ctx context.Context, out engine.Emitter) error {
	unit := 0 // row groups seen, across files
	for fi, path := range s.f.files.files {
		n := s.f.groups[fi]
		mine := false
		for rg := range n {
			mine = mine || s.ic.Mine(unit+rg)
		}
		if mine {
			if stop, err := s.runFile(ctx, fi, path, unit, out); stop || err != nil {
				return err
			}
		}
		unit += n
	}
	return nil
}

func (s *parquetSource) runFile(ctx context.Context, fi int, path string, unit int, out engine.Emitter) (bool, error) {
	fileBackend(s.ic, s.f.files.io[fi])
	pf, fr, err := openParquet(ctx, s.f.files.io[fi], path, s.ic.Alloc, batchRowsFor(s.f.cfg.BatchRows, s.ic.Settings), s.ic.Ledger, s.f.dict)
	if err != nil {
		return true, err
	}
	defer pf.Close()
	if s.ic.Mine(unit) {
		s.ic.CountFiles(1) // counted once, by the instance that reads its first row group
	}
	var cols []int // leaf columns; nil reads all
	if s.f.fields != nil {
		for _, fi := range s.f.fields {
			if fi >= len(fr.Manifest.Fields) {
				return true, fmt.Errorf("parquet: %s: the file has changed since compile (column %d is gone)", path, fi)
			}
			cols = parquetLeaves(&fr.Manifest.Fields[fi], cols)
		}
	}
	var groups []int // this instance's row groups of the file, in order
	for rg := 0; rg < pf.NumRowGroups(); rg++ {
		if s.ic.Mine(unit+rg) && pf.MetaData().RowGroup(rg).NumRows() > 0 {
			groups = append(groups, rg)
		}
	}
	groups = s.pruneGroups(pf, fr.Manifest, groups)
	// The instances of parallelism: N share the CPUs.
	if workers := min(s.workers()/max(s.ic.Count, 1), len(groups)); workers > 1 {
		return s.readParallel(ctx, fi, path, cols, groups, workers, out)
	}
	for _, rg := range groups {
		stop, err := s.readGroup(ctx, fr, cols, fi, path, rg, func(rec arrow.RecordBatch) (bool, error) { return emitBatch(out, rec) })
		if stop || err != nil {
			return true, err
		}
	}
	return false, nil
}

// workers is how many row groups the instance decodes at once.
func (s *parquetSource) workers() int {
	if s.f.workers > 0 {
		return s.f.workers
	}
	return s.ic.Workers()
}

// readGroup decodes row group rg, handing each batch to emit, which owns
// it; emit's stop ends the reading.
func (s *parquetSource) readGroup(ctx context.Context, fr *pqarrow.FileReader, cols []int, fi int, path string, rg int, emit func(arrow.RecordBatch) (bool, error)) (stop bool, err error) {
	var rr pqarrow.RecordReader
	func() {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("malformed file (reader panicked: %v)", r)
			}
		}()
		rr, err = fr.GetRecordReader(ctx, cols, []int{rg})
	}()
	if err != nil {
		return true, fmt.Errorf("parquet: read %s: row group %d: %w", path, rg, err)
	}
	defer rr.Release()
	if err := sameColumns(s.f.fileSchema, rr.Schema()); err != nil {
		return true, fmt.Errorf("parquet: %s: the file has changed since compile: %w", path, err)
	}
	for {
		if err := ctx.Err(); err != nil {
			return true, err
		}
		ok, err := safeNext(rr.Next)
		if err != nil {
			return true, fmt.Errorf("parquet: read %s: row group %d: %w", path, rg, err)
		}
		if !ok {
			break
		}
		rec, err := conformBatch(s.f.fileSchema, rr.RecordBatch())
		if err != nil {
			return true, fmt.Errorf("parquet: read %s: row group %d: %w", path, rg, err)
		}
		if rec, err = s.f.extra.extend(s.ic.Alloc, s.f.schema, rec, fi); err != nil {
			return true, fmt.Errorf("parquet: read %s: row group %d: %w", path, rg, err)
		}
		if stop, err := emit(rec); stop {
			return true, err
		}
	}
	if err := rr.Err(); err != nil {
		return true, fmt.Errorf("parquet: read %s: row group %d: %w", path, rg, err)
	}
	return false, nil
}

// decodedGroup is a row group decoded ahead: its batches, or the error
// that stopped it. done is closed when it is complete.
type decodedGroup struct {
	recs []arrow.RecordBatch
	err  error
	done chan struct{}
}

// readParallel decodes the row groups groups of file fi with workers
// goroutines, each reading through a reader of its own (its own
// descriptor: the readers keep position and scratch buffers), and emits
// them in file order. At most workers row groups are decoded and not yet
// emitted: a worker takes a slot before it takes the next row group, and
// a slot comes back when that row group has been emitted; their batches
// come from the instance's allocator, so the operator's budget sees them.
func (s *parquetSource) readParallel(ctx context.Context, fi int, path string, cols []int, groups []int, workers int, out engine.Emitter) (bool, error) {
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g := s.ic.Group(rctx)
	gctx := g.Context()
	res := make([]decodedGroup, len(groups))
	for i := range res {
		res[i].done = make(chan struct{})
	}
	slots := make(chan struct{}, workers)
	var next atomic.Int64 // the next index into groups to decode
	batchRows := batchRowsFor(s.f.cfg.BatchRows, s.ic.Settings)
	for range workers {
		g.Go(func(ctx context.Context) error {
			var fr *pqarrow.FileReader
			for {
				select {
				case slots <- struct{}{}:
				case <-ctx.Done():
					return nil
				}
				k := int(next.Add(1) - 1)
				if k >= len(groups) {
					return nil
				}
				d := &res[k]
				if fr == nil {
					var pf *file.Reader
					pf, fr, d.err = openParquet(ctx, s.f.files.io[fi], path, s.ic.Alloc, batchRows, s.ic.Ledger, s.f.dict)
					if d.err != nil {
						close(d.done)
						return nil
					}
					defer pf.Close()
				}
				_, d.err = s.readGroup(ctx, fr, cols, fi, path, groups[k], func(rec arrow.RecordBatch) (bool, error) {
					d.recs = append(d.recs, rec)
					return false, nil
				})
				close(d.done)
				if d.err != nil {
					return nil // the emitter returns it in its turn
				}
			}
		})
	}
	stop, err := s.emitDecoded(gctx, res, slots, out)
	cancel()
	if gerr := g.Wait(); gerr != nil { // a worker panicked: that, not the cancellation it caused
		stop, err = true, gerr
	}
	for i := range res { // what was decoded and not emitted
		for _, r := range res[i].recs {
			r.Release()
		}
		res[i].recs = nil
	}
	return stop, err
}

// emitDecoded emits the decoded row groups in order, freeing a slot after
// each.
func (s *parquetSource) emitDecoded(ctx context.Context, res []decodedGroup, slots chan struct{}, out engine.Emitter) (bool, error) {
	for i := range res {
		d := &res[i]
		select {
		case <-d.done:
		case <-ctx.Done():
			return true, ctx.Err()
		}
		if d.err != nil {
			return true, d.err
		}
		recs := d.recs
		d.recs = nil
		for j, rec := range recs {
			if stop, err := emitBatch(out, rec); stop {
				for _, r := range recs[j+1:] {
					r.Release()
				}
				return true, err
			}
		}
		<-slots
	}
	return false, nil
}
