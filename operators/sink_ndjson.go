package operators

import (
	"errors"
	"io"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/internal/textenc"
	"github.com/zflowdev/zflow/io/storage"
)

// NDJSONSinkConfig configures the ndjson sink.
type NDJSONSinkConfig struct {
	Path         string   `zflow:"path" required:"true" doc:"file to write; replaced atomically when the run succeeds. - writes standard output instead, as batches arrive (not atomic: a failed run may have printed some rows; one node per pipeline)" example:"out/trades.ndjson"`
	PartitionBy  []string `zflow:"partition_by" doc:"write a Hive-partitioned directory tree instead of one file: path is a directory, and each row goes to path/col=value/.../part-N.ndjson by these columns' values (strings, integers, booleans or dates; null is __HIVE_DEFAULT_PARTITION__; every byte but letters, digits and - _ . ~ percent-encoded, as DuckDB writes them), which are not written inside the files; the tree is published as a whole when the run succeeds" example:"[day, symbol]"`
	MaxOpenFiles int      `zflow:"max_open_files" doc:"with partition_by: partition files open at once (each holds its encoder's buffers); when another is needed the least recently used is closed, and a partition that gets rows again continues in a new part file"`
	FileIO
}

// NDJSONSinkSpec is the spec of the ndjson sink.
func NDJSONSinkSpec() engine.Spec {
	return engine.Spec{
		Name:    "ndjson",
		Kind:    engine.KindSink,
		Summary: "writes one JSON object per row, one per line",
		Doc: "Keys are the column names in schema order; nulls are written as null. Timestamps and " +
			"dates are RFC 3339 strings, binary is base64, NaN and infinities are null (JSON has none). A batch " +
			"of 8192 rows or more is formatted by up to settings.threads goroutines at once and written in order.",
		Example: `type: ndjson
inputs: [trades]
path: out/trades.ndjson`,
		MinInputs: 1, MaxInputs: 1,
		NewConfig: func() any { return &NDJSONSinkConfig{MaxOpenFiles: 64, FileIO: defaultFileIO()} },
		Build:     buildNDJSONSink,
	}
}

func init() { engine.Register(NDJSONSinkSpec()) }

type ndjsonSinkFactory struct {
	cfg    NDJSONSinkConfig
	schema *arrow.Schema
	part   *partitioning   // nil unless partition_by
	out    storage.Backend // the backend the file is written through; nil for - and partition_by
}

func buildNDJSONSink(bc *engine.BuildContext, c any) (engine.Factory, error) {
	cfg := *c.(*NDJSONSinkConfig)
	var errs []error
	if err := checkPath(cfg.Path); err != nil {
		errs = append(errs, err)
	}
	schema, err := checkSinkInput(bc)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	f := &ndjsonSinkFactory{cfg: cfg, schema: schema}
	if len(cfg.PartitionBy) > 0 {
		if f.part, err = planPartitioning(schema, cfg.PartitionBy, cfg.MaxOpenFiles, cfg.Path); err != nil {
			return nil, err
		}
	}
	if f.out, err = chooseSinkIO(cfg.FileIO, cfg.Path); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *ndjsonSinkFactory) Schema() *arrow.Schema { return nil }

func (f *ndjsonSinkFactory) Describe() string {
	if f.part != nil {
		return f.part.describe(f.cfg.Path)
	}
	return f.cfg.Path
}

// DescribeIO is the plan's io line (engine.IODescriber).
func (f *ndjsonSinkFactory) DescribeIO() string {
	return describeSinkIO(f.out, f.cfg.Path)
}

func (f *ndjsonSinkFactory) New(ic *engine.InstanceContext) (any, error) {
	if f.part != nil {
		return newPartitionedSink(ic, "ndjson", f.cfg.Path, f.out, f.part, func(ic *engine.InstanceContext, w io.Writer) (partWriter, error) {
			return &textPartWriter{w: w, enc: newNDJSONEncoder(f.part.schema)}, nil
		})
	}
	out, err := newFileOut(ic, "ndjson", f.cfg.Path, f.out)
	if err != nil {
		return nil, err
	}
	return forStdout(out, &textSink{kind: "ndjson", ic: ic, out: out, enc: newNDJSONEncoder(f.schema), ncols: f.schema.NumFields(),
		newEnc: func() rowEncoder { return newNDJSONEncoder(f.schema) }}), nil
}

// ndjsonEncoder turns batches into NDJSON text. It is reused by the stdout
// sink.
type ndjsonEncoder struct {
	keys [][]byte // `{"name":` for the first column, `,"name":` after
	batchCols
	buf []byte
}

func newNDJSONEncoder(schema *arrow.Schema) *ndjsonEncoder {
	e := &ndjsonEncoder{buf: make([]byte, 0, 64<<10)}
	for i, f := range schema.Fields() {
		k := []byte{','}
		if i == 0 {
			k[0] = '{'
		}
		k = textenc.AppendJSONString(k, f.Name)
		e.keys = append(e.keys, append(k, ':'))
	}
	return e
}

func (e *ndjsonEncoder) appendRow(dst []byte, i int) []byte {
	if len(e.cols) == 0 {
		return append(dst, '{', '}', '\n')
	}
	for j := range e.cols {
		dst = append(dst, e.keys[j]...)
		dst = e.cols[j].AppendJSON(dst, i)
	}
	return append(dst, '}', '\n')
}
