package operators

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/internal/textenc"
)

// StdoutConfig configures the stdout sink.
type StdoutConfig struct {
	Format  string `zflow:"format" doc:"table prints aligned columns once the run has succeeded; csv and ndjson stream as batches arrive" enum:"table,csv,ndjson"`
	MaxRows int    `zflow:"max_rows" doc:"table: rows to print, the rest are counted; 0 prints every row"`

	// Out is where the sink writes; nil means the run's standard output
	// (engine.RunOptions.Stdout, zflow.WithStdout; else os.Stdout). Not a
	// pipeline parameter: embedders and tests set it on the config they
	// pass in.
	Out io.Writer
}

// UsesStdio says the sink writes standard output unless Out is set
// (engine.StdioUser): a pipeline has one node writing there.
func (c *StdoutConfig) UsesStdio() (stdin, stdout bool) { return false, c.Out == nil }

// StdoutSpec is the spec of the stdout sink.
func StdoutSpec() engine.Spec {
	return engine.Spec{
		Name:    "stdout",
		Kind:    engine.KindSink,
		Summary: "prints rows to standard output",
		Example: `type: stdout
inputs: [vwap]
format: table
max_rows: 50`,
		MinInputs: 1, MaxInputs: 1,
		NewConfig: func() any { return &StdoutConfig{Format: "table", MaxRows: 20} },
		Build:     buildStdout,
	}
}

func init() { engine.Register(StdoutSpec()) }

// stdoutMu serializes writes of stdout sinks running in the same process,
// so their lines do not interleave.
var stdoutMu sync.Mutex

type stdoutFactory struct {
	cfg    StdoutConfig
	schema *arrow.Schema
}

func buildStdout(bc *engine.BuildContext, c any) (engine.Factory, error) {
	cfg := *c.(*StdoutConfig)
	var errs []error
	switch cfg.Format {
	case "table", "csv", "ndjson":
	default:
		errs = append(errs, engine.Errf("format", "want table, csv or ndjson, got %q", cfg.Format))
	}
	if cfg.MaxRows < 0 {
		errs = append(errs, engine.Errf("max_rows", "must be ≥ 0, got %d", cfg.MaxRows))
	}
	schema, err := checkSinkInput(bc)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &stdoutFactory{cfg: cfg, schema: schema}, nil
}

func (f *stdoutFactory) Schema() *arrow.Schema { return nil }

func (f *stdoutFactory) Describe() string { return f.cfg.Format }

// DescribeIO is the plan's io line (engine.IODescriber): standard output
// uses no storage backend.
func (f *stdoutFactory) DescribeIO() string { return stdioLine }

func (f *stdoutFactory) New(ic *engine.InstanceContext) (any, error) {
	fileBackend(ic, nil)
	s := &stdoutSink{f: f, ic: ic, out: f.cfg.Out}
	if s.out == nil {
		s.out = ic.Stdout
	}
	if s.out == nil {
		s.out = os.Stdout
	}
	switch f.cfg.Format {
	case "csv":
		s.csv = newCSVEncoder(',', "")
		s.csv.buf = s.csv.appendHeader(s.csv.buf, f.schema)
		s.pending = true
	case "ndjson":
		s.ndjson = newNDJSONEncoder(f.schema)
	case "table":
		s.table = &tableBuilder{schema: f.schema, max: f.cfg.MaxRows}
	}
	return s, nil
}

type stdoutSink struct {
	f       *stdoutFactory
	out     io.Writer // cfg.Out, else the run's standard output
	ic      *engine.InstanceContext
	csv     *csvEncoder
	ndjson  *ndjsonEncoder
	table   *tableBuilder
	pending bool   // csv header not yet written
	text    []byte // table: rendered by Close, printed by Commit
	cells   []textenc.Column
}

func (s *stdoutSink) write(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	stdoutMu.Lock()
	defer stdoutMu.Unlock()
	if _, err := s.out.Write(p); err != nil {
		return fmt.Errorf("stdout: write: %w", err)
	}
	return nil
}

func (s *stdoutSink) Write(ctx context.Context, port int, in arrow.RecordBatch) error {
	if int(in.NumCols()) != s.f.schema.NumFields() {
		return fmt.Errorf("stdout: batch has %d columns, the schema %d", in.NumCols(), s.f.schema.NumFields())
	}
	switch {
	case s.table != nil:
		s.table.add(in, &s.cells)
		return nil
	case s.csv != nil:
		s.ic.Ledger.Copied("stdout encode", engine.BatchBytes(in))
		e := s.csv
		if !s.pending {
			e.buf = e.buf[:0]
		}
		s.pending = false
		e.reset(in)
		defer e.drop()
		for i := range int(in.NumRows()) {
			e.buf = e.appendRow(e.buf, i)
		}
		return s.write(e.buf)
	default:
		s.ic.Ledger.Copied("stdout encode", engine.BatchBytes(in))
		e := s.ndjson
		e.buf = e.buf[:0]
		e.reset(in)
		defer e.drop()
		for i := range int(in.NumRows()) {
			e.buf = e.appendRow(e.buf, i)
		}
		return s.write(e.buf)
	}
}

func (s *stdoutSink) Close(ctx context.Context) error {
	if s.csv != nil && s.pending {
		s.pending = false
		return s.write(s.csv.buf) // the header of an empty result
	}
	if s.table != nil {
		s.text = s.table.render()
	}
	return nil
}

// Commit prints the table; csv and ndjson were printed as they came.
func (s *stdoutSink) Commit() error {
	text := s.text
	s.text = nil
	return s.write(text)
}

// Abort drops a table not yet printed; what was streamed stays printed.
func (s *stdoutSink) Abort() { s.text = nil }

// tableBuilder keeps the first max rows as text and counts the others.
type tableBuilder struct {
	schema  *arrow.Schema
	max     int
	rows    [][]string
	total   int64
	numeric []bool
	buf     []byte
}

// tableMaxCell is the widest a table cell is printed, in runes.
const tableMaxCell = 48

func (t *tableBuilder) add(rec arrow.RecordBatch, cols *[]textenc.Column) {
	n := int(rec.NumRows())
	t.total += int64(n)
	keep := n
	if t.max > 0 {
		keep = min(n, max(0, t.max-len(t.rows)))
	}
	if keep == 0 {
		return
	}
	nc := int(rec.NumCols())
	if cap(*cols) < nc {
		*cols = make([]textenc.Column, nc)
	}
	cs := (*cols)[:nc]
	defer clear(cs)
	if t.numeric == nil {
		t.numeric = make([]bool, nc)
	}
	for j := range cs {
		cs[j].Reset(rec.Column(j))
		t.numeric[j] = cs[j].Numeric()
	}
	for i := range keep {
		row := make([]string, nc)
		for j := range cs {
			if cs[j].IsNull(i) {
				row[j] = "null"
				continue
			}
			t.buf = cs[j].AppendText(t.buf[:0], i)
			row[j] = tableCell(t.buf)
		}
		t.rows = append(t.rows, row)
	}
}

// tableCell makes a printable, single-line cell of at most tableMaxCell runes.
func tableCell(b []byte) string {
	s := string(b)
	if strings.ContainsAny(s, "\n\r\t") {
		s = strings.NewReplacer("\n", `\n`, "\r", `\r`, "\t", `\t`).Replace(s)
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if utf8.RuneCountInString(s) > tableMaxCell {
		r := []rune(s)
		s = string(r[:tableMaxCell-1]) + "…"
	}
	return s
}

func (t *tableBuilder) render() []byte {
	nc := t.schema.NumFields()
	widths := make([]int, nc)
	header := make([]string, nc)
	for j, f := range t.schema.Fields() {
		header[j] = tableCell([]byte(f.Name))
		widths[j] = utf8.RuneCountInString(header[j])
	}
	for _, row := range t.rows {
		for j, c := range row {
			widths[j] = max(widths[j], utf8.RuneCountInString(c))
		}
	}
	var b bytes.Buffer
	line := func(cells []string, right func(j int) bool) {
		for j, c := range cells {
			pad := widths[j] - utf8.RuneCountInString(c)
			last := j == len(cells)-1
			if j > 0 {
				b.WriteString("  ")
			}
			if right(j) {
				b.WriteString(strings.Repeat(" ", pad))
				b.WriteString(c)
			} else {
				b.WriteString(c)
				if !last {
					b.WriteString(strings.Repeat(" ", pad))
				}
			}
		}
		b.WriteByte('\n')
	}
	isNum := func(j int) bool { return t.numeric != nil && t.numeric[j] }
	line(header, isNum)
	rule := make([]string, nc)
	for j := range rule {
		rule[j] = strings.Repeat("-", widths[j])
	}
	line(rule, func(int) bool { return false })
	for _, row := range t.rows {
		line(row, isNum)
	}
	if more := t.total - int64(len(t.rows)); more > 0 {
		noun := "rows"
		if more == 1 {
			noun = "row"
		}
		fmt.Fprintf(&b, "… %d more %s\n", more, noun)
	} else if t.total == 0 {
		b.WriteString("(no rows)\n")
	}
	return b.Bytes()
}
