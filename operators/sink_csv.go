package operators

import (
	"errors"
	"io"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/internal/textenc"
	"github.com/zflowdev/zflow/io/storage"
)

// CSVSinkConfig configures the csv sink.
type CSVSinkConfig struct {
	Path         string   `zflow:"path" required:"true" doc:"file to write; replaced atomically when the run succeeds. - writes standard output instead, as batches arrive (not atomic: a failed run may have printed some rows; one node per pipeline)" example:"out/trades.csv"`
	Header       bool     `zflow:"header" doc:"write the column names first"`
	Delimiter    string   `zflow:"delimiter" doc:"field separator, one ASCII character (\"\\t\" or tab for tabs)"`
	NullValue    string   `zflow:"null_value" doc:"how a null is written (an empty string value is written as \"\")"`
	PartitionBy  []string `zflow:"partition_by" doc:"write a Hive-partitioned directory tree instead of one file: path is a directory, and each row goes to path/col=value/.../part-N.csv by these columns' values (strings, integers, booleans or dates; null is __HIVE_DEFAULT_PARTITION__; every byte but letters, digits and - _ . ~ percent-encoded, as DuckDB writes them), which are not written inside the files; the tree is published as a whole when the run succeeds" example:"[day, symbol]"`
	MaxOpenFiles int      `zflow:"max_open_files" doc:"with partition_by: partition files open at once (each holds its encoder's buffers); when another is needed the least recently used is closed, and a partition that gets rows again continues in a new part file"`
	FileIO
}

// CSVSinkSpec is the spec of the csv sink.
func CSVSinkSpec() engine.Spec {
	return engine.Spec{
		Name:    "csv",
		Kind:    engine.KindSink,
		Summary: "writes a CSV file (RFC 4180)",
		Doc: "Fields holding the delimiter, quotes, line breaks or edge spaces are quoted. Floats are " +
			"written in their shortest exact form, timestamps as RFC 3339, binary as base64, so the csv " +
			"source reads the file back to the same values. A batch of 8192 rows or more is formatted by up to " +
			"settings.threads goroutines at once, each a run of its rows, and written in order (its text held " +
			"whole until then).",
		Example: `type: csv
inputs: [trades]
path: out/trades.csv`,
		MinInputs: 1, MaxInputs: 1,
		NewConfig: func() any {
			return &CSVSinkConfig{Header: true, Delimiter: ",", MaxOpenFiles: 64, FileIO: defaultFileIO()}
		},
		Build: buildCSVSink,
	}
}

func init() { engine.Register(CSVSinkSpec()) }

type csvSinkFactory struct {
	cfg    CSVSinkConfig
	delim  byte
	schema *arrow.Schema
	part   *partitioning   // nil unless partition_by
	out    storage.Backend // the backend the file is written through; nil for - and partition_by
}

func parseSinkDelimiter(s string) (byte, error) {
	r, err := parseDelimiter("delimiter", s)
	if err != nil {
		return 0, err
	}
	if r >= 0x80 {
		return 0, engine.Errf("delimiter", "must be an ASCII character, got %q", s)
	}
	return byte(r), nil
}

func buildCSVSink(bc *engine.BuildContext, c any) (engine.Factory, error) {
	cfg := *c.(*CSVSinkConfig)
	var errs []error
	if err := checkPath(cfg.Path); err != nil {
		errs = append(errs, err)
	}
	delim, err := parseSinkDelimiter(cfg.Delimiter)
	if err != nil {
		errs = append(errs, err)
	}
	schema, err := checkSinkInput(bc)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	f := &csvSinkFactory{cfg: cfg, delim: delim, schema: schema}
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

func (f *csvSinkFactory) Schema() *arrow.Schema { return nil }

func (f *csvSinkFactory) Describe() string {
	if f.part != nil {
		return f.part.describe(f.cfg.Path)
	}
	return f.cfg.Path
}

// DescribeIO is the plan's io line (engine.IODescriber).
func (f *csvSinkFactory) DescribeIO() string { return describeSinkIO(f.out, f.cfg.Path) }

func (f *csvSinkFactory) New(ic *engine.InstanceContext) (any, error) {
	if f.part != nil {
		return newPartitionedSink(ic, "csv", f.cfg.Path, f.out, f.part, func(ic *engine.InstanceContext, w io.Writer) (partWriter, error) {
			enc := newCSVEncoder(f.delim, f.cfg.NullValue)
			if f.cfg.Header {
				if _, err := w.Write(enc.appendHeader(nil, f.part.schema)); err != nil {
					return nil, err
				}
			}
			return &textPartWriter{w: w, enc: enc}, nil
		})
	}
	out, err := newFileOut(ic, "csv", f.cfg.Path, f.out)
	if err != nil {
		return nil, err
	}
	enc := newCSVEncoder(f.delim, f.cfg.NullValue)
	s := &textSink{kind: "csv", ic: ic, out: out, enc: enc, ncols: f.schema.NumFields(),
		newEnc: func() rowEncoder { return newCSVEncoder(f.delim, f.cfg.NullValue) }}
	if f.cfg.Header {
		enc.buf = enc.appendHeader(enc.buf[:0], f.schema)
		out.Write(enc.buf) // buffered; an error shows at the first flush
	}
	return forStdout(out, s), nil
}

// csvEncoder turns batches into CSV text. It is reused by the stdout sink.
type csvEncoder struct {
	delim byte
	null  string
	batchCols
	buf []byte
}

func newCSVEncoder(delim byte, null string) *csvEncoder {
	return &csvEncoder{delim: delim, null: null, buf: make([]byte, 0, 64<<10)}
}

func (e *csvEncoder) appendHeader(dst []byte, schema *arrow.Schema) []byte {
	for i, f := range schema.Fields() {
		if i > 0 {
			dst = append(dst, e.delim)
		}
		start := len(dst)
		dst = append(dst, f.Name...)
		dst = textenc.QuoteCSVTail(dst, start, e.delim)
	}
	return append(dst, '\n')
}

// appendRow appends row i of the batch given to reset.
func (e *csvEncoder) appendRow(dst []byte, i int) []byte {
	for j := range e.cols {
		if j > 0 {
			dst = append(dst, e.delim)
		}
		c := &e.cols[j]
		if c.IsNull(i) {
			dst = append(dst, e.null...)
		} else {
			dst = c.AppendCSV(dst, i, e.delim)
		}
	}
	return append(dst, '\n')
}
