package operators

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/internal/textin"
)

// ArrowSourceConfig configures the arrow source.
type ArrowSourceConfig struct {
	Path      string `zflow:"path" required:"true" doc:"file to read: Arrow IPC file (.arrow, .feather v2) or stream (.arrows)" example:"testdata/trades.arrow"`
	Format    string `zflow:"format" doc:"auto tells the file format by its ARROW1 magic" enum:"auto,file,stream"`
	BatchRows int    `zflow:"batch_rows" doc:"split stored batches larger than this into zero-copy slices; 0 means settings.batch_rows"`
	Validate  string `zflow:"validate" doc:"check each batch read: full checks every offset (O(rows)), basic only buffer sizes, none trusts the file" enum:"full,basic,none"`
}

// ArrowSourceSpec is the spec of the arrow source.
func ArrowSourceSpec() engine.Spec {
	return engine.Spec{
		Name:    "arrow",
		Kind:    engine.KindSource,
		Summary: "reads an Arrow IPC file or stream",
		Doc: "Batches are emitted as stored (sliced, without copying, when larger than batch_rows). " +
			"With parallelism N, instance i of the file format reads batches i, i+N, ...; a stream is read " +
			"by one instance.",
		Example: `type: arrow
path: testdata/trades.arrow`,
		Parallel:  true,
		NewConfig: func() any { return &ArrowSourceConfig{Format: "auto", Validate: "full"} },
		Build:     buildArrowSource,
	}
}

func init() { engine.Register(ArrowSourceSpec()) }

type arrowFactory struct {
	cfg    ArrowSourceConfig
	stream bool
	schema *arrow.Schema
}

// arrowMagic starts and ends an Arrow IPC file.
var arrowMagic = []byte("ARROW1")

func buildArrowSource(bc *engine.BuildContext, c any) (engine.Factory, error) {
	cfg := *c.(*ArrowSourceConfig)
	if err := checkPath(cfg.Path); err != nil {
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
	f := &arrowFactory{cfg: cfg}
	osf, err := os.Open(cfg.Path)
	if err != nil {
		return nil, engine.Errf("path", "arrow: %v", err)
	}
	defer osf.Close()
	switch cfg.Format {
	case "auto":
		head := make([]byte, len(arrowMagic))
		n, _ := io.ReadFull(osf, head)
		f.stream = !bytes.Equal(head[:n], arrowMagic)
		if f.stream && !arrowStreamStart(head[:n]) {
			msg := fmt.Sprintf("arrow: %s is not an Arrow IPC file or stream", cfg.Path)
			if looks, use, ok := textin.Describe(cfg.Path); ok {
				msg += "; it looks like " + looks
				if use != "" && use != "arrow" {
					msg += "; use type: " + use
				}
			}
			return nil, engine.Errf("path", "%s", msg)
		}
		if _, err := osf.Seek(0, io.SeekStart); err != nil {
			return nil, engine.Errf("path", "arrow: %v", err)
		}
	case "stream":
		f.stream = true
	}
	schema, err := f.readSchema(osf)
	if err != nil {
		return nil, engine.Errf("path", "%v", err)
	}
	f.schema = stripMeta(schema)
	return f, nil
}

func (f *arrowFactory) kind() string {
	if f.stream {
		return "stream"
	}
	return "file"
}

func (f *arrowFactory) readSchema(osf *os.File) (*arrow.Schema, error) {
	mem := memory.NewGoAllocator() // only the schema is read
	if f.stream {
		r, err := newIPCStreamReader(osf, mem)
		if err != nil {
			return nil, fmt.Errorf("arrow: read %s as an IPC stream: %w", f.cfg.Path, err)
		}
		defer r.Release()
		return r.Schema(), nil
	}
	r, err := newIPCFileReader(osf, mem)
	if err != nil {
		return nil, fmt.Errorf("arrow: read %s as an IPC file: %w", f.cfg.Path, err)
	}
	defer r.Close()
	return r.Schema(), nil
}

// ipcLimits bounds what a message may claim to hold by the size of the
// file, so a corrupt length cannot make the reader allocate gigabytes (the
// stream reader has no limit by default; the file reader's default of 256
// MiB per batch would refuse large legitimate batches).
func ipcLimits(osf *os.File, mem memory.Allocator) []ipc.Option {
	size := int64(1 << 62)
	if st, err := osf.Stat(); err == nil && st.Mode().IsRegular() {
		size = max(st.Size(), 1)
	}
	return []ipc.Option{ipc.WithAllocator(mem), ipc.WithMetadataSizeLimit(min(size, 64<<20)), ipc.WithBodySizeLimit(size)}
}

func newIPCStreamReader(osf *os.File, mem memory.Allocator) (*ipc.Reader, error) {
	opts := ipcLimits(osf, mem)
	return ipc.NewReaderFromMessageReader(ipc.NewMessageReader(bufioReader(osf), opts...), opts...)
}

func newIPCFileReader(osf *os.File, mem memory.Allocator) (*ipc.FileReader, error) {
	return ipc.NewFileReader(osf, ipcLimits(osf, mem)...)
}

func (f *arrowFactory) Schema() *arrow.Schema { return f.schema }

func (f *arrowFactory) Describe() string {
	return fmt.Sprintf("%s (IPC %s, %d columns)", f.cfg.Path, f.kind(), f.schema.NumFields())
}

func (f *arrowFactory) New(ic *engine.InstanceContext) (any, error) {
	fileBackend(ic)
	if f.stream && ic.Count > 1 {
		return nil, fmt.Errorf("arrow: %s is an IPC stream, which one instance reads from start to end; use parallelism 1 or the file format", f.cfg.Path)
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

func (s *arrowSource) Run(ctx context.Context, out engine.Emitter) error {
	path := s.f.cfg.Path
	osf, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("arrow: %w", err)
	}
	defer osf.Close()
	if s.f.stream {
		return s.runStream(ctx, osf, out)
	}
	r, err := newIPCFileReader(osf, s.ic.Alloc)
	if err != nil {
		return fmt.Errorf("arrow: read %s: %w", path, err)
	}
	defer r.Close()
	if err := sameColumns(s.f.schema, r.Schema()); err != nil {
		return fmt.Errorf("arrow: %s: the file has changed since compile: %w", path, err)
	}
	for i := s.ic.Index; i < r.NumRecords(); i += max(s.ic.Count, 1) {
		if err := ctx.Err(); err != nil {
			return err
		}
		rec, err := r.RecordBatchAt(i)
		if err != nil {
			return fmt.Errorf("arrow: read %s: batch %d: %w", path, i, err)
		}
		if stop, err := s.emit(rec, i, out); stop {
			return err
		}
	}
	return nil
}

func (s *arrowSource) runStream(ctx context.Context, osf *os.File, out engine.Emitter) error {
	path := s.f.cfg.Path
	r, err := newIPCStreamReader(osf, s.ic.Alloc)
	if err != nil {
		return fmt.Errorf("arrow: read %s: %w", path, err)
	}
	defer r.Release()
	if err := sameColumns(s.f.schema, r.Schema()); err != nil {
		return fmt.Errorf("arrow: %s: the file has changed since compile: %w", path, err)
	}
	for i := 0; ; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		ok, err := safeNext(r.Next)
		if err == nil && !ok {
			err = r.Err()
		}
		if err != nil {
			return fmt.Errorf("arrow: read %s: batch %d: %w", path, i, err)
		}
		if !ok {
			return nil
		}
		rec := r.RecordBatch()
		rec.Retain()
		if stop, err := s.emit(rec, i, out); stop {
			return err
		}
	}
}

// emit validates rec (owned), relabels it with the compiled schema and
// emits it, in slices of at most batch_rows rows.
func (s *arrowSource) emit(rec arrow.RecordBatch, i int, out engine.Emitter) (bool, error) {
	var verr error
	switch s.f.cfg.Validate {
	case "full":
		verr = array.ValidateRecordFull(rec)
	case "basic":
		verr = array.ValidateRecord(rec)
	}
	if verr != nil {
		rec.Release()
		return true, fmt.Errorf("arrow: read %s: batch %d is malformed: %w", s.f.cfg.Path, i, verr)
	}
	b, err := conformBatch(s.f.schema, rec)
	rec.Release()
	if err != nil {
		return true, fmt.Errorf("arrow: read %s: batch %d: %w", s.f.cfg.Path, i, err)
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
