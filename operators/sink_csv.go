package operators

import (
	"errors"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/internal/textenc"
)

// CSVSinkConfig configures the csv sink.
type CSVSinkConfig struct {
	Path      string `zflow:"path" required:"true" doc:"file to write; replaced atomically when the run succeeds. - writes standard output instead, as batches arrive (not atomic: a failed run may have printed some rows; one node per pipeline)" example:"out/trades.csv"`
	Header    bool   `zflow:"header" doc:"write the column names first"`
	Delimiter string `zflow:"delimiter" doc:"field separator, one ASCII character (\"\\t\" or tab for tabs)"`
	NullValue string `zflow:"null_value" doc:"how a null is written (an empty string value is written as \"\")"`
}

// CSVSinkSpec is the spec of the csv sink.
func CSVSinkSpec() engine.Spec {
	return engine.Spec{
		Name:    "csv",
		Kind:    engine.KindSink,
		Summary: "writes a CSV file (RFC 4180)",
		Doc: "Fields holding the delimiter, quotes, line breaks or edge spaces are quoted. Floats are " +
			"written in their shortest exact form, timestamps as RFC 3339, binary as base64, so the csv " +
			"source reads the file back to the same values.",
		Example: `type: csv
inputs: [trades]
path: out/trades.csv`,
		MinInputs: 1, MaxInputs: 1,
		NewConfig: func() any { return &CSVSinkConfig{Header: true, Delimiter: ","} },
		Build:     buildCSVSink,
	}
}

func init() { engine.Register(CSVSinkSpec()) }

type csvSinkFactory struct {
	cfg    CSVSinkConfig
	delim  byte
	schema *arrow.Schema
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
	return &csvSinkFactory{cfg: cfg, delim: delim, schema: schema}, nil
}

func (f *csvSinkFactory) Schema() *arrow.Schema { return nil }

func (f *csvSinkFactory) Describe() string { return f.cfg.Path }

func (f *csvSinkFactory) New(ic *engine.InstanceContext) (any, error) {
	fileBackend(ic)
	out, err := newFileOut(ic, "csv", f.cfg.Path)
	if err != nil {
		return nil, err
	}
	enc := newCSVEncoder(f.delim, f.cfg.NullValue)
	s := &textSink{kind: "csv", ic: ic, out: out, enc: enc, ncols: f.schema.NumFields()}
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
