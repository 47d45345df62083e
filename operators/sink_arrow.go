package operators

import (
	"context"
	"errors"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"

	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/io/storage"
)

// ArrowSinkConfig configures the arrow sink.
type ArrowSinkConfig struct {
	Path        string `zflow:"path" required:"true" doc:"file to write; replaced atomically when the run succeeds. - writes standard output instead, as batches arrive (not atomic: a failed run may have printed some rows; one node per pipeline)" example:"out/trades.arrow"`
	Format      string `zflow:"format" doc:"IPC file (random access, with a footer) or stream" enum:"file,stream"`
	Compression string `zflow:"compression" doc:"buffer compression (readers must support it)" enum:"none,lz4,zstd"`
	FileIO
}

// ArrowSinkSpec is the spec of the arrow sink.
func ArrowSinkSpec() engine.Spec {
	return engine.Spec{
		Name:    "arrow",
		Kind:    engine.KindSink,
		Summary: "writes an Arrow IPC file or stream",
		Doc:     "Each input batch becomes one record batch in the output. With compression, a batch's buffers are compressed by up to settings.threads goroutines at once.",
		Example: `type: arrow
inputs: [trades]
path: out/trades.arrow`,
		MinInputs: 1, MaxInputs: 1,
		NewConfig: func() any { return &ArrowSinkConfig{Format: "file", Compression: "none", FileIO: defaultFileIO()} },
		Build:     buildArrowSink,
	}
}

func init() { engine.Register(ArrowSinkSpec()) }

type arrowSinkFactory struct {
	cfg    ArrowSinkConfig
	schema *arrow.Schema
	out    storage.Backend // the backend the file is written through; nil for - and partition_by
}

func buildArrowSink(bc *engine.BuildContext, c any) (engine.Factory, error) {
	cfg := *c.(*ArrowSinkConfig)
	var errs []error
	if err := checkPath(cfg.Path); err != nil {
		errs = append(errs, err)
	}
	switch cfg.Format {
	case "file", "stream":
	default:
		errs = append(errs, engine.Errf("format", "want file or stream, got %q", cfg.Format))
	}
	switch cfg.Compression {
	case "none", "", "lz4", "zstd":
	default:
		errs = append(errs, engine.Errf("compression", "want none, lz4 or zstd, got %q", cfg.Compression))
	}
	schema, err := checkSinkInput(bc)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	out, err := chooseSinkIO(cfg.FileIO, cfg.Path)
	if err != nil {
		return nil, err
	}
	return &arrowSinkFactory{cfg: cfg, schema: schema, out: out}, nil
}

func (f *arrowSinkFactory) Schema() *arrow.Schema { return nil }

func (f *arrowSinkFactory) Describe() string {
	return fmt.Sprintf("%s (IPC %s, compression %s)", f.cfg.Path, f.cfg.Format, f.cfg.Compression)
}

// ipcWriter is what ipc.Writer and ipc.FileWriter have in common.
type ipcWriter interface {
	Write(rec arrow.RecordBatch) error
	Close() error
}

// DescribeIO is the plan's io line (engine.IODescriber).
func (f *arrowSinkFactory) DescribeIO() string { return describeSinkIO(f.out, f.cfg.Path) }

func (f *arrowSinkFactory) New(ic *engine.InstanceContext) (any, error) {
	out, err := newFileOut(ic, "arrow", f.cfg.Path, f.out)
	if err != nil {
		return nil, err
	}
	opts := []ipc.Option{ipc.WithSchema(f.schema), ipc.WithAllocator(ic.Alloc)}
	switch f.cfg.Compression {
	case "lz4":
		opts = append(opts, ipc.WithLZ4())
	case "zstd":
		opts = append(opts, ipc.WithZstd())
	}
	if f.cfg.Compression == "lz4" || f.cfg.Compression == "zstd" {
		// A batch's buffers are compressed by up to settings.threads
		// goroutines at once (arrow-go writes them in order).
		opts = append(opts, ipc.WithCompressConcurrency(ic.Workers()))
	}
	var w ipcWriter
	if f.cfg.Format == "stream" {
		w = ipc.NewWriter(out, opts...)
	} else {
		fw, err := ipc.NewFileWriter(out, opts...)
		if err != nil {
			out.abort()
			return nil, fmt.Errorf("arrow: create %s: %w", f.cfg.Path, err)
		}
		w = fw
	}
	return forStdout(out, &arrowSink{f: f, ic: ic, out: out, w: w}), nil
}

// arrowSink owns its writer until Close or teardown, and its file until
// Commit or Abort.
type arrowSink struct {
	f      *arrowSinkFactory
	ic     *engine.InstanceContext
	out    *fileOut
	w      ipcWriter
	closed bool
}

func (s *arrowSink) Write(ctx context.Context, port int, in arrow.RecordBatch) error {
	rec, err := conformBatch(s.f.schema, in)
	if err != nil {
		return fmt.Errorf("arrow: write %s: %w", s.out.path(), err)
	}
	defer rec.Release()
	s.ic.Ledger.Copied("arrow ipc write", engine.BatchBytes(rec))
	if err := s.w.Write(rec); err != nil {
		return fmt.Errorf("arrow: write %s: %w", s.out.path(), err)
	}
	return nil
}

func (s *arrowSink) Close(ctx context.Context) error {
	if s.closed {
		return nil
	}
	s.closed = true
	if err := s.w.Close(); err != nil {
		return fmt.Errorf("arrow: close %s: %w", s.out.path(), err)
	}
	return s.out.finish()
}

func (s *arrowSink) Commit() error { return s.out.commit() }

// Rollback puts back the file Commit replaced (engine.UndoableSink).
func (s *arrowSink) Rollback() error { return s.out.rollback() }

// Forget drops the file Commit replaced (engine.UndoableSink).
func (s *arrowSink) Forget() error { return s.out.forget() }

func (s *arrowSink) Abort() {
	s.teardown()
	s.out.abort()
}

// Release frees the encoder if the run ended before Close.
func (s *arrowSink) Release() { s.teardown() }

func (s *arrowSink) teardown() {
	if !s.closed {
		s.closed = true
		s.out.discard = true
		s.w.Close()
	}
}
