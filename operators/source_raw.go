package operators

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/io/raw"
)

// RawSourceConfig configures the raw source.
type RawSourceConfig struct {
	// Path is one file, glob or directory, for Go callers; it comes before
	// Files. The pipeline parameter path fills Files.
	Path       string
	Files      []string `zflow:"path" required:"true" doc:"what to read: a file, a glob (data/*.bin, data/**/*.bin), a directory (its files, recursively, in lexical order, skipping hidden and _-prefixed names), or a list of these; read one after another" example:"data/records.bin"`
	RecordSize int      `zflow:"record_size" doc:"bytes per record: each row is one record, in a fixed_size_binary(record_size) column; one of record_size and block_size is required" example:"64"`
	BlockSize  int      `zflow:"block_size" doc:"read whole blocks instead: each row is one block of this many bytes, in a binary column (the last block of a file is short)"`
	Column     string   `zflow:"column" doc:"the column's name; default record with record_size, block with block_size"`
	Offset     int64    `zflow:"offset" doc:"bytes of each file to skip before the first record"`
	Length     int64    `zflow:"length" doc:"bytes of each file to read from offset; 0 means to its end (a file shorter than offset + length is an error)"`
	Partial    string   `zflow:"partial" enum:"error,drop,pad" doc:"with record_size, when a file's bytes are not a whole number of records: error names the file, its size and the record size; drop leaves out the partial record at the end; pad completes it with zero bytes"`
	Filename   string   `zflow:"filename" doc:"add a string column naming the file each row came from: true names it filename, any other value is the column's name"`
	BatchRows  int      `zflow:"batch_rows" doc:"records (or blocks) per batch; 0 means settings.batch_rows, capped so a batch holds at most 64 MiB"`
	FileIO
}

// RawSourceSpec is the spec of the raw source.
func RawSourceSpec() engine.Spec {
	return engine.Spec{
		Name:    "raw",
		Kind:    engine.KindSource,
		Summary: "reads files as fixed-size records or whole blocks, with no format",
		Doc: "Each batch's column data is the buffer the file was read into: the backend reads straight " +
			"into memory from the run's allocator (aligned for O_DIRECT, the blocks around an unaligned " +
			"offset read and sliced off), and on io: mmap the column points into the mapping (by reference " +
			"in the copy ledger). With parallelism N, instance i reads batches i, i+N, ... of the files.",
		Example: `type: raw
path: data/records.bin
record_size: 64`,
		Parallel:  true,
		Shardable: true,
		NewConfig: func() any { return &RawSourceConfig{Partial: "error", FileIO: defaultFileIO()} },
		Build:     buildRawSource,
	}
}

func init() { engine.Register(RawSourceSpec()) }

// Paths lists the files the source reads (engine.PathsConfig).
func (c *RawSourceConfig) Paths() []string { return configFiles(sourcePaths(c.Path, c.Files)) }

// NormalizeConfig moves Path to the front of Files (engine.ConfigNormalizer).
func (c *RawSourceConfig) NormalizeConfig() { c.Files, c.Path = sourcePaths(c.Path, c.Files), "" }

// rawBatchBytes caps a batch's bytes when batch_rows is not the node's own.
const rawBatchBytes = 64 << 20

type rawFactory struct {
	cfg    RawSourceConfig
	files  *fileSet
	unit   int        // record_size or block_size
	blocks bool       // block_size: a binary column
	ranges [][2]int64 // per file: the bytes read [from, to)
	extra  *extraCols
	schema *arrow.Schema
	fileSc *arrow.Schema
}

func buildRawSource(bc *engine.BuildContext, c any) (engine.Factory, error) {
	cfg := *c.(*RawSourceConfig)
	var errs []error
	switch {
	case cfg.RecordSize < 0:
		errs = append(errs, engine.Errf("record_size", "must be > 0, got %d", cfg.RecordSize))
	case cfg.BlockSize < 0:
		errs = append(errs, engine.Errf("block_size", "must be > 0, got %d", cfg.BlockSize))
	case cfg.RecordSize > 0 && cfg.BlockSize > 0:
		errs = append(errs, engine.Errf("block_size", "give record_size or block_size, not both"))
	case cfg.RecordSize == 0 && cfg.BlockSize == 0:
		errs = append(errs, engine.Errf("record_size", "is required (or block_size, for whole blocks)"))
	case cfg.RecordSize > math.MaxInt32:
		errs = append(errs, engine.Errf("record_size", "must be at most %d, got %d", math.MaxInt32, cfg.RecordSize))
	case cfg.BlockSize > math.MaxInt32:
		errs = append(errs, engine.Errf("block_size", "must be at most %d, got %d", math.MaxInt32, cfg.BlockSize))
	}
	if cfg.Offset < 0 {
		errs = append(errs, engine.Errf("offset", "must be ≥ 0, got %d", cfg.Offset))
	}
	if cfg.Length < 0 {
		errs = append(errs, engine.Errf("length", "must be ≥ 0 (0 means to the end), got %d", cfg.Length))
	}
	switch cfg.Partial {
	case "", "error", "drop", "pad":
	default:
		errs = append(errs, engine.Errf("partial", "want error, drop or pad, got %q", cfg.Partial))
	}
	if cfg.BlockSize > 0 && cfg.Partial != "" && cfg.Partial != "error" {
		errs = append(errs, engine.Errf("partial", "applies to record_size; with block_size the last block of a file is short"))
	}
	if err := checkBatchRows(cfg.BatchRows); err != nil {
		errs = append(errs, err)
	}
	files, err := resolvePaths("raw", sourcePaths(cfg.Path, cfg.Files))
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if files.stdin {
		return nil, engine.Errf("path", "raw: - (standard input) is not supported: the raw source reads files at offsets")
	}
	if err := files.chooseIO(cfg.FileIO, ioUse{whole: cfg.Offset == 0 && cfg.Length == 0}); err != nil {
		return nil, err
	}
	f := &rawFactory{cfg: cfg, files: files, unit: cfg.RecordSize}
	var dt arrow.DataType = &arrow.FixedSizeBinaryType{ByteWidth: cfg.RecordSize}
	name := "record"
	if cfg.BlockSize > 0 {
		f.unit, f.blocks, dt, name = cfg.BlockSize, true, arrow.BinaryTypes.Binary, "block"
	}
	if cfg.Column != "" {
		name = cfg.Column
	}
	for i, path := range files.files {
		st, err := os.Stat(path)
		if err != nil {
			errs = append(errs, engine.Errf(files.param(i), "raw: %v", err))
			continue
		}
		r, err := f.span(path, st.Size())
		if err != nil {
			errs = append(errs, engine.Errf(files.param(i), "%v", err))
		}
		f.ranges = append(f.ranges, r)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	f.fileSc = arrow.NewSchema([]arrow.Field{{Name: name, Type: dt}}, nil)
	if f.extra, err = planExtras(files, "false", cfg.Filename, f.fileSc); err != nil {
		return nil, err
	}
	f.schema = f.extra.schema(f.fileSc)
	return f, nil
}

// span is the range [from, to) of a file of size bytes the source reads,
// after offset, length and partial; an error names the file, its size
// and the record size.
func (f *rawFactory) span(path string, size int64) ([2]int64, error) {
	from, to := f.cfg.Offset, size
	if f.cfg.Length > 0 {
		to = from + f.cfg.Length
	}
	if to > size || from > size {
		return [2]int64{}, fmt.Errorf("raw: %s is %d bytes, shorter than offset %d + length %d", path, size, f.cfg.Offset, max(f.cfg.Length, 0))
	}
	if f.blocks {
		return [2]int64{from, to}, nil
	}
	if rem := (to - from) % int64(f.unit); rem != 0 {
		switch f.cfg.Partial {
		case "drop":
			to -= rem
		case "pad":
		default:
			what := fmt.Sprintf("%d bytes", to-from)
			if from > 0 || to < size {
				what = fmt.Sprintf("%d bytes from offset %d", to-from, from)
			}
			return [2]int64{}, fmt.Errorf("raw: %s is %d bytes; %s are not a whole number of %d-byte records (%d left over; partial: drop or pad to read it anyway)", path, size, what, f.unit, rem)
		}
	}
	return [2]int64{from, to}, nil
}

func (f *rawFactory) Schema() *arrow.Schema { return f.schema }

func (f *rawFactory) Describe() string {
	what := fmt.Sprintf("%d-byte records", f.unit)
	if f.blocks {
		what = fmt.Sprintf("%d-byte blocks", f.unit)
	}
	return fmt.Sprintf("%s (%s)", f.files.describe(), what)
}

// DescribeIO is the plan's io line (engine.IODescriber).
func (f *rawFactory) DescribeIO() string { return f.files.describeIO() }

// rows is how many records or blocks a batch holds, and align the O_DIRECT
// alignment its byte size is rounded to (so consecutive batches read
// disjoint blocks).
func (f *rawFactory) rows(s engine.Settings, align int) int64 {
	n := int64(batchRowsFor(f.cfg.BatchRows, s))
	if f.cfg.BatchRows == 0 {
		n = min(n, max(rawBatchBytes/int64(f.unit), 1))
	}
	if f.blocks {
		n = min(n, max(math.MaxInt32/int64(f.unit), 1)) // int32 offsets
	}
	if align > 1 {
		step := int64(align) / gcd(int64(align), int64(f.unit))
		if n >= step {
			n -= n % step
		}
	}
	return n
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func (f *rawFactory) New(ic *engine.InstanceContext) (any, error) {
	fileBackend(ic, f.files.backend(0))
	return &rawSource{f: f, ic: ic}, nil
}

type rawSource struct {
	f  *rawFactory
	ic *engine.InstanceContext
}

// Run reads the files in order; with parallelism N, instance i takes the
// batches numbered i, i+N, ... across them.
func (s *rawSource) Run(ctx context.Context, out engine.Emitter) error {
	unit := 0
	for fi := range s.f.files.files {
		stop, n, err := s.runFile(ctx, fi, unit, out)
		if stop || err != nil {
			return err
		}
		unit += n
	}
	return nil
}

// runFile reads file fi, whose first batch is number unit; it returns
// the number of batches the file makes.
func (s *rawSource) runFile(ctx context.Context, fi, unit int, out engine.Emitter) (bool, int, error) {
	path := s.f.files.files[fi]
	b := s.f.files.io[fi]
	sf, err := b.Open(path, os.O_RDONLY, 0)
	if err != nil {
		return true, 0, fmt.Errorf("raw: %w", err)
	}
	defer sf.Close()
	size, err := sf.Size()
	if err != nil {
		return true, 0, fmt.Errorf("raw: %w", err)
	}
	r, err := s.f.span(path, size)
	if err != nil {
		return true, 0, fmt.Errorf("%w (it has changed since compile)", err)
	}
	if r != s.f.ranges[fi] {
		return true, 0, fmt.Errorf("raw: %s has changed since compile: %d bytes to read at %d, then %d", path, r[1]-r[0], r[0], s.f.ranges[fi][1]-s.f.ranges[fi][0])
	}
	rows := s.f.rows(s.ic.Settings, sf.Align())
	batchBytes := rows * int64(s.f.unit)
	n := int((r[1] - r[0] + batchBytes - 1) / batchBytes)
	rd := raw.NewReader(sf, s.ic.Alloc, b.Options().Depth())
	seen := false
	for k := range n {
		if !s.ic.Mine(unit + k) {
			continue
		}
		if !seen {
			seen = true
			fileBackend(s.ic, b)
		}
		if k == 0 {
			s.ic.CountFiles(1) // counted once, by the instance that reads its first batch
		}
		if err := ctx.Err(); err != nil {
			return true, n, err
		}
		off := r[0] + int64(k)*batchBytes
		want := int(min(batchBytes, r[1]-off))
		rec, err := s.batch(ctx, rd, path, off, want)
		if err != nil {
			return true, n, err
		}
		if rec, err = s.f.extra.extend(s.ic.Alloc, s.f.schema, rec, fi); err != nil {
			return true, n, fmt.Errorf("raw: read %s: %w", path, err)
		}
		if stop, err := emitBatch(out, rec); stop {
			return true, n, err
		}
	}
	return false, n, nil
}

// batch reads want bytes at off into one batch: its column's data buffer
// is the buffer the bytes were read into.
func (s *rawSource) batch(ctx context.Context, rd *raw.Reader, path string, off int64, want int) (arrow.RecordBatch, error) {
	size := want
	if !s.f.blocks {
		if rem := want % s.f.unit; rem != 0 { // partial: pad, the last record
			size += s.f.unit - rem
		}
	}
	res, err := rd.Read(ctx, off, want, size)
	if err != nil {
		return nil, err
	}
	defer res.Buf.Release()
	if res.N != want {
		return nil, fmt.Errorf("raw: %s ended at %d, inside the %d bytes to read at %d (it has changed since compile)", path, off+int64(res.N), want, off)
	}
	if res.ByRef {
		s.ic.Ledger.Referenced(refMapped, int64(res.Buf.Len()))
	}
	var data arrow.ArrayData
	if s.f.blocks {
		nb := (want + s.f.unit - 1) / s.f.unit
		offs := memory.NewResizableBuffer(s.ic.Alloc)
		offs.Resize((nb + 1) * arrow.Int32SizeBytes)
		o := arrow.Int32Traits.CastFromBytes(offs.Bytes())
		for i := range nb {
			o[i] = int32(i * s.f.unit)
		}
		o[nb] = int32(want)
		data = array.NewData(s.f.fileSc.Field(0).Type, nb, []*memory.Buffer{nil, offs, res.Buf}, nil, 0, 0)
		offs.Release()
	} else {
		data = array.NewData(s.f.fileSc.Field(0).Type, size/s.f.unit, []*memory.Buffer{nil, res.Buf}, nil, 0, 0)
	}
	defer data.Release()
	col := array.MakeFromData(data)
	defer col.Release()
	return array.NewRecordBatch(s.f.fileSc, []arrow.Array{col}, int64(col.Len())), nil
}
