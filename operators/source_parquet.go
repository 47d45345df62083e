package operators

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/internal/textin"
)

// ParquetSourceConfig configures the parquet source.
type ParquetSourceConfig struct {
	Path      string   `zflow:"path" required:"true" doc:"file to read" example:"testdata/trades.parquet"`
	Columns   []string `zflow:"columns" doc:"read only these columns, in this order (default: all)" example:"[symbol, price]"`
	BatchRows int      `zflow:"batch_rows" doc:"rows per batch; 0 means settings.batch_rows"`
}

// ParquetSourceSpec is the spec of the parquet source.
func ParquetSourceSpec() engine.Spec {
	return engine.Spec{
		Name:    "parquet",
		Kind:    engine.KindSource,
		Summary: "reads a Parquet file, row group by row group",
		Doc: "The schema comes from the file footer at compile time (the stored Arrow schema when the " +
			"writer kept one). Batches never span row groups; with parallelism N, instance i reads row " +
			"groups i, i+N, ...",
		Example: `type: parquet
path: testdata/trades.parquet
columns: [symbol, price, qty]`,
		Parallel:  true,
		NewConfig: func() any { return &ParquetSourceConfig{} },
		Build:     buildParquetSource,
	}
}

func init() { engine.Register(ParquetSourceSpec()) }

type parquetFactory struct {
	cfg    ParquetSourceConfig
	schema *arrow.Schema
	fields []int // top-level field indices, in output order; nil for all
	rows   int64
	groups int
}

// parquetScratch is the allocator for the parquet decoder's own page
// buffers. The decoder pools them and frees them through finalizers, so
// they are kept off the run's allocator; batches come from InstanceContext.Alloc.
var parquetScratch = memory.NewGoAllocator()

// openParquet opens path and its Arrow view; the caller closes the file.
func openParquet(path string, mem memory.Allocator, batchRows int) (pf *file.Reader, fr *pqarrow.FileReader, err error) {
	defer func() {
		if r := recover(); r != nil {
			if pf != nil {
				pf.Close()
			}
			pf, fr, err = nil, nil, fmt.Errorf("parquet: open %s: malformed file (reader panicked: %v)", path, r)
		}
	}()
	if err := checkParquetMagic(path); err != nil {
		return nil, nil, err
	}
	pf, err = file.OpenParquetFile(path, false, file.WithReadProps(parquet.NewReaderProperties(parquetScratch)))
	if err != nil {
		return nil, nil, fmt.Errorf("parquet: open %s: %w", path, err)
	}
	fr, err = pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: int64(batchRows)}, mem)
	if err != nil {
		pf.Close()
		return nil, nil, fmt.Errorf("parquet: open %s: %w", path, err)
	}
	return pf, fr, nil
}

// checkParquetMagic refuses a file that does not start and end with PAR1,
// saying what it looks like instead, before the decoder says something
// about its internals.
func checkParquetMagic(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("parquet: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("parquet: %w", err)
	}
	var head, tail [4]byte
	if st.Size() >= 12 {
		if _, err := f.ReadAt(head[:], 0); err != nil {
			return fmt.Errorf("parquet: read %s: %w", path, err)
		}
		if _, err := f.ReadAt(tail[:], st.Size()-4); err != nil {
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
	if err := checkPath(cfg.Path); err != nil {
		return nil, err
	}
	if err := checkBatchRows(cfg.BatchRows); err != nil {
		return nil, err
	}
	pf, fr, err := openParquet(cfg.Path, parquetScratch, batchRowsFor(cfg.BatchRows, bc.Settings))
	if err != nil {
		return nil, engine.Errf("path", "%v", err)
	}
	defer pf.Close()
	full, err := fr.Schema()
	if err != nil {
		return nil, engine.Errf("path", "parquet: %s: read schema: %v", cfg.Path, err)
	}
	f := &parquetFactory{cfg: cfg, rows: pf.NumRows(), groups: pf.NumRowGroups()}
	if len(cfg.Columns) == 0 {
		f.schema = stripMeta(full)
		return f, nil
	}
	var names []string
	for _, fl := range full.Fields() {
		names = append(names, fl.Name)
	}
	var errs []error
	var fields []arrow.Field
	seen := map[string]bool{}
	for i, name := range cfg.Columns {
		p := fmt.Sprintf("columns.%d", i)
		idx := full.FieldIndices(name)
		switch {
		case seen[name]:
			errs = append(errs, engine.Errf(p, "column %q is listed twice", name))
		case len(idx) == 0:
			msg := fmt.Sprintf("no column %q in %s", name, cfg.Path)
			if s := engine.Suggest(name, names); s != "" {
				msg += fmt.Sprintf(", did you mean %q?", s)
			}
			errs = append(errs, engine.Errf(p, "%s (columns: %s)", msg, strings.Join(names, ", ")))
		case len(idx) > 1:
			errs = append(errs, engine.Errf(p, "the file has %d columns named %q", len(idx), name))
		default:
			f.fields = append(f.fields, idx[0])
			fields = append(fields, full.Field(idx[0]))
		}
		seen[name] = true
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	f.schema = arrow.NewSchema(fields, nil)
	return f, nil
}

func (f *parquetFactory) Schema() *arrow.Schema { return f.schema }

func (f *parquetFactory) Describe() string {
	return fmt.Sprintf("%s (%d rows in %d row groups, %d columns)", f.cfg.Path, f.rows, f.groups, f.schema.NumFields())
}

func (f *parquetFactory) New(ic *engine.InstanceContext) (any, error) {
	fileBackend(ic)
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

func (s *parquetSource) Run(ctx context.Context, out engine.Emitter) error {
	path := s.f.cfg.Path
	pf, fr, err := openParquet(path, s.ic.Alloc, batchRowsFor(s.f.cfg.BatchRows, s.ic.Settings))
	if err != nil {
		return err
	}
	defer pf.Close()
	var cols []int // leaf columns; nil reads all
	if s.f.fields != nil {
		for _, fi := range s.f.fields {
			if fi >= len(fr.Manifest.Fields) {
				return fmt.Errorf("parquet: %s: the file has changed since compile (column %d is gone)", path, fi)
			}
			cols = parquetLeaves(&fr.Manifest.Fields[fi], cols)
		}
	}
	for rg := s.ic.Index; rg < pf.NumRowGroups(); rg += max(s.ic.Count, 1) {
		if pf.MetaData().RowGroup(rg).NumRows() == 0 {
			continue
		}
		stop, err := s.readGroup(ctx, fr, cols, rg, out)
		if stop || err != nil {
			return err
		}
	}
	return nil
}

// readGroup emits row group rg.
func (s *parquetSource) readGroup(ctx context.Context, fr *pqarrow.FileReader, cols []int, rg int, out engine.Emitter) (stop bool, err error) {
	path := s.f.cfg.Path
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
	if err := sameColumns(s.f.schema, rr.Schema()); err != nil {
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
		rec, err := conformBatch(s.f.schema, rr.RecordBatch())
		if err != nil {
			return true, fmt.Errorf("parquet: read %s: row group %d: %w", path, rg, err)
		}
		if stop, err := emitBatch(out, rec); stop {
			return true, err
		}
	}
	if err := rr.Err(); err != nil {
		return true, fmt.Errorf("parquet: read %s: row group %d: %w", path, rg, err)
	}
	return false, nil
}
