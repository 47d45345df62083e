package operators

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/io/storage"
)

// ParquetSinkConfig configures the parquet sink.
type ParquetSinkConfig struct {
	Path         string   `zflow:"path" required:"true" doc:"file to write; replaced atomically when the run succeeds. - writes standard output instead, as batches arrive (not atomic: a failed run may have printed some rows; one node per pipeline)" example:"out/vwap.parquet"`
	Compression  string   `zflow:"compression" doc:"page compression codec" enum:"snappy,zstd,gzip,none"`
	Level        int      `zflow:"compression_level" doc:"compression level: zstd 1-22 (default 1, as Arrow C++: the fastest encoder, whose files come out about as small as level 3's), gzip 1-9 (default 6); 0 is the codec's default; snappy and none have no levels"`
	RowGroupRows int      `zflow:"row_group_rows" doc:"rows per row group (the last one may hold fewer)"`
	Dictionary   string   `zflow:"dictionary" enum:"auto,always,never" doc:"dictionary encoding (a dictionary that grows past 1 MiB falls back to plain encoding): auto encodes string and binary columns only, where repeats are common and hashing pays; always encodes every column; never writes plain"`
	PartitionBy  []string `zflow:"partition_by" doc:"write a Hive-partitioned directory tree instead of one file: path is a directory, and each row goes to path/col=value/.../part-N.parquet by these columns' values (strings, integers, booleans or dates; null is __HIVE_DEFAULT_PARTITION__; every byte but letters, digits and - _ . ~ percent-encoded, as DuckDB writes them), which are not written inside the files; the tree is published as a whole when the run succeeds" example:"[day, symbol]"`
	MaxOpenFiles int      `zflow:"max_open_files" doc:"with partition_by: partition files open at once (each holds its encoder's buffers); when another is needed the least recently used is closed, and a partition that gets rows again continues in a new part file"`
	FileIO
}

// ParquetSinkSpec is the spec of the parquet sink.
func ParquetSinkSpec() engine.Spec {
	return engine.Spec{
		Name:    "parquet",
		Kind:    engine.KindSink,
		Summary: "writes a Parquet file",
		Doc: "The Arrow schema is stored in the file's metadata, so types such as timestamp time zones " +
			"read back unchanged. A row group is buffered in memory until it holds row_group_rows rows. " +
			"The columns of a row group are encoded and compressed concurrently, by as many goroutines at " +
			"once as the process may use CPUs, and written in order (a schema with nested columns is " +
			"encoded on one goroutine).",
		Example: `type: parquet
inputs: [vwap]
path: out/vwap.parquet
compression: zstd`,
		MinInputs: 1, MaxInputs: 1,
		NewConfig: func() any {
			return &ParquetSinkConfig{Compression: "snappy", RowGroupRows: 1 << 20, Dictionary: "auto", MaxOpenFiles: 64, FileIO: defaultFileIO()}
		},
		Build: buildParquetSink,
	}
}

func init() { engine.Register(ParquetSinkSpec()) }

type parquetSinkFactory struct {
	cfg     ParquetSinkConfig
	workers int // column encoders at once; 0 is cpuWorkers
	codec   compress.Compression
	schema  *arrow.Schema   // of the files: the input's, less the partition keys
	part    *partitioning   // nil unless partition_by
	out     storage.Backend // the backend the file is written through; nil for - and partition_by
}

func buildParquetSink(bc *engine.BuildContext, c any) (engine.Factory, error) {
	cfg := *c.(*ParquetSinkConfig)
	var errs []error
	if err := checkPath(cfg.Path); err != nil {
		errs = append(errs, err)
	}
	f := &parquetSinkFactory{cfg: cfg}
	switch cfg.Compression {
	case "snappy":
		f.codec = compress.Codecs.Snappy
	case "zstd":
		f.codec = compress.Codecs.Zstd
	case "gzip":
		f.codec = compress.Codecs.Gzip
	case "none", "":
		f.codec = compress.Codecs.Uncompressed
	default:
		errs = append(errs, engine.Errf("compression", "want snappy, zstd, gzip or none, got %q", cfg.Compression))
	}
	if err := checkCompressionLevel(cfg.Compression, cfg.Level); err != nil {
		errs = append(errs, err)
	}
	switch cfg.Dictionary {
	case "":
		f.cfg.Dictionary = "auto" // f holds its own copy of cfg
	case "auto", "always", "never":
	default:
		errs = append(errs, engine.Errf("dictionary", "want auto, always or never, got %q", cfg.Dictionary))
	}
	if cfg.RowGroupRows <= 0 {
		errs = append(errs, engine.Errf("row_group_rows", "must be > 0, got %d", cfg.RowGroupRows))
	}
	schema, err := checkSinkInput(bc)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	f.schema = schema
	if len(cfg.PartitionBy) > 0 {
		if f.part, err = planPartitioning(schema, cfg.PartitionBy, cfg.MaxOpenFiles, cfg.Path); err != nil {
			return nil, err
		}
		f.schema = f.part.schema
	}
	if f.out, err = chooseSinkIO(cfg.FileIO, cfg.Path); err != nil {
		return nil, err
	}
	// Check at compile time that every column has a Parquet mapping.
	if _, err := pqarrow.ToParquet(schema, f.writerProps(parquetScratch), pqarrow.DefaultWriterProps()); err != nil {
		return nil, engine.Errf("inputs", "parquet: cannot store schema %s: %v", schema, err)
	}
	return f, nil
}

func (f *parquetSinkFactory) writerProps(mem memory.Allocator) *parquet.WriterProperties {
	opts := []parquet.WriterProperty{
		parquet.WithAllocator(mem),
		parquet.WithCompression(f.codec),
		parquet.WithCompressionLevel(compressionLevel(f.cfg.Compression, f.cfg.Level)),
		parquet.WithMaxRowGroupLength(int64(f.cfg.RowGroupRows)),
		parquet.WithDictionaryDefault(f.cfg.Dictionary == "always"),
		parquet.WithCreatedBy("zflow"),
	}
	if f.cfg.Dictionary == "auto" {
		// Top-level string and binary columns only: numbers and timestamps
		// rarely repeat enough to pay for the hash lookups.
		for _, fl := range f.schema.Fields() {
			switch fl.Type.ID() {
			case arrow.STRING, arrow.LARGE_STRING, arrow.BINARY, arrow.LARGE_BINARY, arrow.DICTIONARY, arrow.STRING_VIEW, arrow.BINARY_VIEW:
				opts = append(opts, parquet.WithDictionaryFor(fl.Name, true))
			}
		}
	}
	return parquet.NewWriterProperties(opts...)
}

// checkCompressionLevel validates compression_level for the codec.
func checkCompressionLevel(codec string, level int) error {
	if level == 0 {
		return nil
	}
	lo, hi := 0, 0
	switch codec {
	case "zstd":
		lo, hi = 1, 22
	case "gzip":
		lo, hi = 1, 9
	default:
		return engine.Errf("compression_level", "compression %s has no levels, got %d (levels are for zstd and gzip)", codec, level)
	}
	if level < lo || level > hi {
		return engine.Errf("compression_level", "%s levels are %d to %d, got %d", codec, lo, hi, level)
	}
	return nil
}

// zstdDefaultLevel is zstd's level when compression_level is 0: 1, as in
// Arrow C++. arrow-go's own default is 3, which klauspost/compress runs
// with its "default" encoder: on the 10M-row join of bench/stateful.sh it
// took 25% longer end to end than level 1 ("fastest"), whose file came out
// 2% smaller (164.1 against 161.1 MB).
const zstdDefaultLevel = 1

// compressionLevel maps compression_level to arrow-go's: 0 is the codec's
// default (zstd's zstdDefaultLevel).
func compressionLevel(codec string, level int) int {
	switch {
	case level != 0:
		return level
	case codec == "zstd":
		return zstdDefaultLevel
	}
	return compress.DefaultCompressionLevel
}

func (f *parquetSinkFactory) Schema() *arrow.Schema { return nil }

func (f *parquetSinkFactory) Describe() string {
	if f.part != nil {
		return fmt.Sprintf("%s (%s, %d rows per row group)", f.part.describe(f.cfg.Path), f.codecLine(), f.cfg.RowGroupRows)
	}
	return fmt.Sprintf("%s (%s, %d rows per row group)", f.cfg.Path, f.codecLine(), f.cfg.RowGroupRows)
}

// codecLine is the codec and its level, for the plan.
func (f *parquetSinkFactory) codecLine() string {
	if f.cfg.Level != 0 {
		return fmt.Sprintf("%s level %d", f.cfg.Compression, f.cfg.Level)
	}
	return f.cfg.Compression
}

// encoder makes the encoder of one file written to w.
func (f *parquetSinkFactory) encoder(ic *engine.InstanceContext, w io.Writer) (parquetEncoder, error) {
	workers := f.workers
	if workers == 0 {
		workers = ic.Workers()
	}
	return newParquetEncoder(ic, f.schema, w, f.writerProps(ic.Alloc), workers)
}

// DescribeIO is the plan's io line (engine.IODescriber).
func (f *parquetSinkFactory) DescribeIO() string {
	return describeSinkIO(f.out, f.cfg.Path)
}

func (f *parquetSinkFactory) New(ic *engine.InstanceContext) (any, error) {
	if f.part != nil {
		return newPartitionedSink(ic, "parquet", f.cfg.Path, f.out, f.part, func(ic *engine.InstanceContext, w io.Writer) (partWriter, error) {
			enc, err := f.encoder(ic, w)
			if err != nil {
				return nil, err
			}
			return &parquetPartWriter{enc: enc}, nil
		})
	}
	out, err := newFileOut(ic, "parquet", f.cfg.Path, f.out)
	if err != nil {
		return nil, err
	}
	enc, err := f.encoder(ic, out)
	if err != nil {
		out.abort()
		return nil, fmt.Errorf("parquet: create %s: %w", f.cfg.Path, err)
	}
	return forStdout(out, &parquetSink{f: f, ic: ic, out: out, enc: enc}), nil
}

// parquetSink owns its encoder until Close or teardown, and its file until
// Commit or Abort.
type parquetSink struct {
	f      *parquetSinkFactory
	ic     *engine.InstanceContext
	out    *fileOut
	enc    parquetEncoder
	closed bool
}

func (s *parquetSink) Write(ctx context.Context, port int, in arrow.RecordBatch) error {
	rec, err := conformBatch(s.f.schema, in)
	if err != nil {
		return fmt.Errorf("parquet: write %s: %w", s.out.path(), err)
	}
	defer rec.Release()
	s.ic.Ledger.Copied("parquet encode", engine.BatchBytes(rec))
	if err := s.enc.write(ctx, rec); err != nil {
		return fmt.Errorf("parquet: write %s: %w", s.out.path(), err)
	}
	return nil
}

func (s *parquetSink) Close(ctx context.Context) error {
	if s.closed {
		return nil
	}
	s.closed = true
	if err := s.enc.close(ctx); err != nil {
		s.enc.abort()
		return fmt.Errorf("parquet: close %s: %w", s.out.path(), err)
	}
	return s.out.finish()
}

func (s *parquetSink) Commit() error { return s.out.commit() }

// Rollback puts back the file Commit replaced (engine.UndoableSink).
func (s *parquetSink) Rollback() error { return s.out.rollback() }

// Forget drops the file Commit replaced (engine.UndoableSink).
func (s *parquetSink) Forget() error { return s.out.forget() }

func (s *parquetSink) Abort() {
	s.teardown()
	s.out.abort()
}

// Release frees the encoder's memory and stops its goroutines if the run
// ended before Close.
func (s *parquetSink) Release() { s.teardown() }

func (s *parquetSink) teardown() {
	if !s.closed {
		s.closed = true
		s.out.discard = true
	}
	s.enc.abort() // frees the buffered row group; the output is discarded
}

// parquetPartWriter writes one file of a partitioned parquet sink.
type parquetPartWriter struct {
	enc    parquetEncoder
	closed bool
}

func (p *parquetPartWriter) write(rec arrow.RecordBatch) error {
	return p.enc.write(context.Background(), rec)
}

func (p *parquetPartWriter) finish() error {
	p.closed = true
	if err := p.enc.close(context.Background()); err != nil {
		p.enc.abort()
		return err
	}
	return nil
}

// abort frees the buffered row group and stops the encoder; the file is
// discarded.
func (p *parquetPartWriter) abort() {
	p.closed = true
	p.enc.abort()
}
