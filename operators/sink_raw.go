package operators

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/io/raw"
	"github.com/zflowdev/zflow/io/storage"
)

// RawSinkConfig configures the raw sink.
type RawSinkConfig struct {
	Path   string `zflow:"path" required:"true" doc:"file to write; replaced atomically when the run succeeds. - writes standard output instead, as batches arrive (not atomic: a failed run may have printed some values; one node per pipeline)" example:"out/records.bin"`
	Column string `zflow:"column" doc:"the binary or fixed_size_binary column whose values are written; may be left out when the input has exactly one such column"`
	FileIO
}

// RawSinkSpec is the spec of the raw sink.
func RawSinkSpec() engine.Spec {
	return engine.Spec{
		Name:    "raw",
		Kind:    engine.KindSink,
		Summary: "writes the values of a binary column back to back, with no format",
		Doc: "The values are written from the batches' own buffers (positional writes that point into " +
			"the column's data, no copy); with direct: true the blocks whose address is aligned go " +
			"straight too and the rest is bounced through an aligned buffer, counted in the copy ledger " +
			"(\"O_DIRECT alignment\"). A null value is an error.",
		Example: `type: raw
inputs: [records]
path: out/records.bin`,
		MinInputs: 1, MaxInputs: 1,
		NewConfig: func() any { return &RawSinkConfig{FileIO: defaultFileIO()} },
		Build:     buildRawSink,
	}
}

func init() { engine.Register(RawSinkSpec()) }

type rawSinkFactory struct {
	cfg RawSinkConfig
	col int
	out storage.Backend // nil for -
}

// rawColumn reports whether a column type's values are written by the raw
// sink.
func rawColumn(dt arrow.DataType) bool {
	switch dt.ID() {
	case arrow.BINARY, arrow.LARGE_BINARY, arrow.FIXED_SIZE_BINARY:
		return true
	}
	return false
}

func buildRawSink(bc *engine.BuildContext, c any) (engine.Factory, error) {
	cfg := *c.(*RawSinkConfig)
	var errs []error
	if err := checkPath(cfg.Path); err != nil {
		errs = append(errs, err)
	}
	schema, err := checkSinkInput(bc)
	if err != nil {
		errs = append(errs, err)
	}
	f := &rawSinkFactory{cfg: cfg, col: -1}
	if schema != nil {
		var cands, all, names []string
		for i, fl := range schema.Fields() {
			all = append(all, fl.Name+" "+fl.Type.String())
			names = append(names, fl.Name)
			if rawColumn(fl.Type) {
				cands = append(cands, fl.Name)
				if cfg.Column == "" && f.col < 0 {
					f.col = i
				}
			}
			if cfg.Column != "" && fl.Name == cfg.Column && f.col < 0 {
				f.col = i
			}
		}
		switch {
		case cfg.Column != "" && f.col < 0:
			msg := fmt.Sprintf("no column %q in the input", cfg.Column)
			if sug := engine.Suggest(cfg.Column, names); sug != "" {
				msg += fmt.Sprintf(", did you mean %q?", sug)
			}
			errs = append(errs, engine.Errf("column", "%s (binary columns: %s)", msg, listOrNone(cands)))
		case cfg.Column != "" && !rawColumn(schema.Field(f.col).Type):
			errs = append(errs, engine.Errf("column", "column %q is %s; the raw sink writes a binary or fixed_size_binary column (binary columns: %s)", cfg.Column, schema.Field(f.col).Type, listOrNone(cands)))
		case cfg.Column == "" && len(cands) == 0:
			errs = append(errs, engine.Errf("inputs", "the input has no binary or fixed_size_binary column for the raw sink to write (columns: %s)", strings.Join(all, ", ")))
		case cfg.Column == "" && len(cands) > 1:
			errs = append(errs, engine.Errf("column", "is required: the input has %d binary columns (%s); name the one to write", len(cands), strings.Join(cands, ", ")))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if f.out, err = chooseSinkIO(cfg.FileIO, cfg.Path); err != nil {
		return nil, err
	}
	return f, nil
}

// listOrNone is names joined by commas, or "none".
func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

func (f *rawSinkFactory) Schema() *arrow.Schema { return nil }

func (f *rawSinkFactory) Describe() string { return f.cfg.Path }

// DescribeIO is the plan's io line (engine.IODescriber).
func (f *rawSinkFactory) DescribeIO() string { return describeSinkIO(f.out, f.cfg.Path) }

func (f *rawSinkFactory) New(ic *engine.InstanceContext) (any, error) {
	out, err := newFileOut(ic, "raw", f.cfg.Path, f.out)
	if err != nil {
		return nil, err
	}
	s := &rawSink{f: f, ic: ic, out: out}
	if out.sw != nil {
		s.w = raw.NewWriter(out.sw.f, f.out.Options().Depth())
	}
	return forStdout(out, s), nil
}

// rawSink owns its file until Commit or Abort.
type rawSink struct {
	f       *rawSinkFactory
	ic      *engine.InstanceContext
	out     *fileOut
	w       *raw.Writer // the file's writer; nil for standard output
	bounced int64
	closed  bool
}

// rawValues is the bytes of a column's values, back to back (one slice:
// Arrow keeps them contiguous).
func rawValues(a arrow.Array) []byte {
	switch a := a.(type) {
	case *array.Binary:
		return a.ValueBytes()
	case *array.LargeBinary:
		return a.ValueBytes()
	case *array.FixedSizeBinary:
		w := a.DataType().(*arrow.FixedSizeBinaryType).ByteWidth
		b := a.Data().Buffers()[1]
		if b == nil {
			return nil
		}
		off := a.Data().Offset()
		return b.Bytes()[off*w : (off+a.Len())*w]
	}
	return nil
}

func (s *rawSink) Write(ctx context.Context, port int, in arrow.RecordBatch) error {
	if int(in.NumCols()) <= s.f.col || !rawColumn(in.Column(s.f.col).DataType()) {
		return fmt.Errorf("raw: write %s: batch has no binary column %d", s.out.path(), s.f.col)
	}
	col := in.Column(s.f.col)
	if col.NullN() > 0 {
		for i := range col.Len() {
			if col.IsNull(i) {
				return fmt.Errorf("raw: write %s: column %s row %d is null; a raw file has no nulls (filter them out first)", s.out.path(), in.ColumnName(s.f.col), i)
			}
		}
	}
	p := rawValues(col)
	if s.w == nil {
		s.ic.Ledger.Copied("stdout buffer", int64(len(p)))
		if _, err := s.out.Write(p); err != nil {
			return fmt.Errorf("raw: write %s: %w", s.out.path(), err)
		}
		return nil
	}
	if err := s.w.Write(ctx, p); err != nil {
		return fmt.Errorf("raw: write %s: %w", s.out.path(), err)
	}
	s.countBounced()
	return nil
}

// countBounced puts what the writer bounced since the last call in the
// copy ledger.
func (s *rawSink) countBounced() {
	if b := s.w.Bounced(); b > s.bounced {
		s.ic.Ledger.Copied(copyODirect, b-s.bounced)
		s.bounced = b
	}
}

func (s *rawSink) Close(ctx context.Context) error {
	if s.closed {
		return nil
	}
	s.closed = true
	if s.w != nil {
		padded, err := s.w.Finish(ctx)
		if err == nil && padded {
			err = os.Truncate(s.out.af.TempName(), s.w.Size())
		}
		if err != nil {
			return fmt.Errorf("raw: close %s: %w", s.out.path(), err)
		}
		s.countBounced()
	}
	if err := s.out.finish(); err != nil {
		return fmt.Errorf("raw: close %s: %w", s.out.path(), err)
	}
	return nil
}

func (s *rawSink) Commit() error { return s.out.commit() }

// Rollback puts back the file Commit replaced (engine.UndoableSink).
func (s *rawSink) Rollback() error { return s.out.rollback() }

// Forget drops the file Commit replaced (engine.UndoableSink).
func (s *rawSink) Forget() error { return s.out.forget() }

func (s *rawSink) Abort() { s.out.abort() }
