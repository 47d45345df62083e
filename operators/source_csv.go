package operators

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/internal/coltype"
	"github.com/zflowdev/zflow/internal/fastts"
)

// CSVSourceConfig configures the csv source.
type CSVSourceConfig struct {
	// Path is one file, glob, directory or "-", for Go callers; it comes
	// before Files. The pipeline parameter path fills Files.
	Path             string
	Files            []string          `zflow:"path" required:"true" doc:"what to read: a file, a glob (data/*.csv, data/**/*.csv), a directory (its files, recursively, in lexical order, skipping hidden and _-prefixed names), - for standard input, or a list of these; every file must have the first one's columns" example:"data/*.csv"`
	Filename         string            `zflow:"filename" doc:"add a string column naming the file each row came from: true names it filename, any other value is the column's name"`
	HivePartitioning string            `zflow:"hive_partitioning" enum:"auto,true,false" doc:"add the key=value directories between a directory or glob root and the files as columns (int64, date32 or string, inferred from the values; __HIVE_DEFAULT_PARTITION__ is null): auto does when every file has the same keys, true requires it"`
	Header           bool              `zflow:"header" doc:"the first line names the columns (else they are f0, f1, ...)"`
	Delimiter        string            `zflow:"delimiter" doc:"field separator, one character (\"\\t\" or tab for tabs)"`
	Columns          []ColumnDef       `zflow:"columns" doc:"the columns in file order, with their types; default: names from the header, types inferred from the first infer_rows rows"`
	Types            map[string]string `zflow:"types" doc:"override the inferred type of some columns, by name" example:"{qty: int32}"`
	NullValues       []string          `zflow:"null_values" doc:"field values read as null (in every column); the default, an empty string, matches an unquoted empty field only: a quoted \"\" is an empty string"`
	InferRows        int               `zflow:"infer_rows" doc:"rows sampled at compile time to infer column types"`
	Comment          string            `zflow:"comment" doc:"skip lines starting with this character"`
	LazyQuotes       bool              `zflow:"lazy_quotes" doc:"accept a quote in an unquoted field and a non-doubled quote in a quoted field"`
	BatchRows        int               `zflow:"batch_rows" doc:"rows per batch; 0 means settings.batch_rows"`
	Pushdown         bool              `zflow:"pushdown" doc:"convert only the columns the operators downstream read (the plan's columns: line); every field is still split, but the others are not parsed, so a value that does not parse as its column's type stops the run only where the column is read. false converts every column"`
	FileIO
}

// CSVSourceSpec is the spec of the csv source.
func CSVSourceSpec() engine.Spec {
	return engine.Spec{
		Name:      "csv",
		Kind:      engine.KindSource,
		Shardable: true, // by files
		Summary:   "reads a CSV file (RFC 4180), inferring column types or taking them from a column list",
		Doc: "Types are inferred at compile time from a sample of rows: int64, float64, bool (true/false), " +
			"date32 (2006-01-02), timestamp (RFC 3339 or 2006-01-02 15:04:05, with or without zone; UTC) or " +
			"string. A value that does not parse as its column's type is an error naming the line. " +
			"A timestamp with more fraction digits than its column's unit holds is an error too, unless the column " +
			"is declared with truncate: true, which drops them; a zone offset (Z, +02, +02:00, -0530) converts to UTC. " +
			"A gzip, zstd, bzip2 or xz file is read decompressed (found by its magic bytes, not its name); " +
			"a file that is not text (Parquet, Arrow, an archive, NUL bytes) is refused, saying what it looks like. " +
			"A file is parsed on settings.threads cores, cut into ranges at record ends proven by counting quotes, " +
			"its rows kept in file order; with lazy_quotes or comment it is read on one core.",
		Example: `type: csv
path: testdata/trades.csv
types: {qty: int32}`,
		NewConfig: func() any {
			return &CSVSourceConfig{Header: true, Delimiter: ",", NullValues: []string{""}, InferRows: 1000, HivePartitioning: "auto", Pushdown: true, FileIO: defaultFileIO()}
		},
		Build: buildCSVSource,
	}
}

func init() { engine.Register(CSVSourceSpec()) }

type csvFactory struct {
	cfg     CSVSourceConfig
	comma   rune
	comment rune
	files   *fileSet
	sourceColumns
	inferred bool
	stdin    []byte // the sample of standard input the types were inferred from
}

// Paths lists the files the source reads (engine.PathsConfig).
func (c *CSVSourceConfig) Paths() []string { return configFiles(sourcePaths(c.Path, c.Files)) }

// NormalizeConfig moves Path to the front of Files (engine.ConfigNormalizer).
func (c *CSVSourceConfig) NormalizeConfig() { c.Files, c.Path = sourcePaths(c.Path, c.Files), "" }

// parseDelimiter reads a delimiter parameter.
func parseDelimiter(field, s string) (rune, error) {
	switch s {
	case `\t`, "tab":
		return '\t', nil
	case "":
		return 0, engine.Errf(field, "is empty")
	}
	r, size := utf8.DecodeRuneInString(s)
	if size != len(s) || r == utf8.RuneError {
		return 0, engine.Errf(field, "must be a single character, got %q", s)
	}
	if r == '"' || r == '\r' || r == '\n' {
		return 0, engine.Errf(field, "cannot be %q", s)
	}
	return r, nil
}

func buildCSVSource(bc *engine.BuildContext, c any) (engine.Factory, error) {
	cfg := *c.(*CSVSourceConfig)
	var errs []error
	files, err := resolvePaths("csv", sourcePaths(cfg.Path, cfg.Files))
	if err != nil {
		return nil, err
	}
	if err := files.chooseIO(cfg.FileIO, ioUse{whole: false}); err != nil {
		return nil, err
	}
	if err := checkBatchRows(cfg.BatchRows); err != nil {
		errs = append(errs, err)
	}
	comma, err := parseDelimiter("delimiter", cfg.Delimiter)
	if err != nil {
		errs = append(errs, err)
	}
	var comment rune
	if cfg.Comment != "" {
		r, size := utf8.DecodeRuneInString(cfg.Comment)
		if size != len(cfg.Comment) || r == comma || r == '"' || r == '\r' || r == '\n' {
			errs = append(errs, engine.Errf("comment", "must be a single character other than the delimiter, got %q", cfg.Comment))
		}
		comment = r
	}
	if cfg.InferRows < 0 {
		errs = append(errs, engine.Errf("infer_rows", "must be ≥ 0, got %d", cfg.InferRows))
	}
	if len(cfg.Columns) > 0 && len(cfg.Types) > 0 {
		errs = append(errs, engine.Errf("types", "types overrides inferred types; with columns, give the types there"))
	}
	var declared *arrow.Schema
	if len(cfg.Columns) > 0 {
		s, err := columnsSchema("columns", cfg.Columns)
		if err != nil {
			errs = append(errs, err)
		}
		declared = s
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	f := &csvFactory{cfg: cfg, comma: comma, comment: comment, files: files}
	if files.stdin {
		if f.stdin, err = stdinTextSample(stdinOf(bc.Stdin), "csv"); err != nil {
			return nil, engine.Errf("path", "csv: %v", err)
		}
	}
	schema, names, err := f.inferSchema(declared)
	if err != nil {
		return nil, err
	}
	if declared == nil {
		f.inferred = true
		schema, err = applyTypes("types", schema, cfg.Types)
		if err != nil {
			return nil, err
		}
	}
	if err := f.checkFiles(names); err != nil {
		return nil, err
	}
	extra, err := planExtras(files, cfg.HivePartitioning, cfg.Filename, schema)
	if err != nil {
		return nil, err
	}
	f.setColumns(schema, extra)
	return f, nil
}

// TakeProjection builds arrays only for the columns named
// (engine.Projectable): the scanner still splits every field of a record,
// as it must to find where the record ends, but the other fields are not
// converted, so a bad value there does not stop the run; pushdown: false
// declines.
func (f *csvFactory) TakeProjection(cols []string) string {
	return f.takeProjection(f.cfg.Pushdown, cols, "the other fields are split but not converted")
}

// newScanner returns a scanner of input i's text (the stdin sample at
// compile time when sample is set), with a buffer no larger than a file
// needs. The caller closes the closer.
func (f *csvFactory) newScanner(ctx context.Context, i int, in io.Reader) (io.Closer, *csvScanner, string, error) {
	if f.files.stdin && in == nil {
		in = bytes.NewReader(f.stdin)
	}
	tr, name, err := openTextInput(ctx, f.files, i, in, "csv")
	if err != nil {
		return nil, nil, name, err
	}
	size := csvScanBuffer
	if n, ok := tr.Regular(); ok {
		size = int(min(max(n+1, 4096), csvScanBuffer))
	}
	return tr, newCSVScanner(tr, f.comma, f.comment, f.cfg.LazyQuotes, size), name, nil
}

// checkFiles checks the first line of every file after the first against
// the first file's: the same number of fields and, with a header, the same
// names (names, nil without a header).
func (f *csvFactory) checkFiles(names []string) error {
	for i := 1; i < f.files.inputs(); i++ {
		err := func() error {
			file, r, name, err := f.newScanner(context.Background(), i, nil)
			if err != nil {
				return engine.Errf(f.files.param(i), "csv: %v", err)
			}
			defer file.Close()
			first, err := r.next()
			if err == io.EOF {
				return nil // an empty file adds no rows
			}
			if err != nil {
				return engine.Errf(f.files.param(i), "csv: read %s: %v", name, err)
			}
			if len(first) != len(names) {
				return engine.Errf(f.files.param(i), "csv: %s has %d columns, but %s (the first file, which sets the columns) has %d: every file must have the same columns",
					name, len(first), f.files.name(0), len(names))
			}
			if !f.cfg.Header {
				return nil
			}
			for j, v := range first {
				if got := strings.TrimSpace(string(v)); got != names[j] && !(got == "" && names[j] == fmt.Sprintf("f%d", j)) {
					return engine.Errf(f.files.param(i), "csv: column %d is %q in %s but %q in %s (the first file, which sets the columns): every file must have the same columns",
						j+1, got, name, names[j], f.files.name(0))
				}
			}
			return nil
		}()
		if err != nil {
			return err
		}
	}
	return nil
}

// inferSchema reads the header and a sample of rows of the first input.
// With declared columns it only checks their number against the file. It
// also returns the header's names (f0, f1... without one).
func (f *csvFactory) inferSchema(declared *arrow.Schema) (*arrow.Schema, []string, error) {
	file, r, path, err := f.newScanner(context.Background(), 0, nil)
	if err != nil {
		return nil, nil, engine.Errf("path", "csv: %v", err)
	}
	defer file.Close()
	first, err := r.next()
	if err == io.EOF {
		if declared != nil {
			return declared, declaredNames(declared), nil
		}
		return nil, nil, engine.Errf("path", "csv: %s is empty: no header or rows to take the columns from (declare columns:)", path)
	}
	if err != nil {
		return nil, nil, engine.Errf("path", "csv: read %s: %v", path, err)
	}
	ncols := len(first)
	if declared != nil {
		if declared.NumFields() != ncols {
			what := "its first row"
			if f.cfg.Header {
				what = "its header"
			}
			return nil, nil, engine.Errf("columns", "%d columns declared, but %s has %d fields (%s)",
				declared.NumFields(), what, ncols, path)
		}
		names := declaredNames(declared)
		if f.cfg.Header {
			for i := range names {
				names[i] = strings.TrimSpace(string(first[i]))
			}
		}
		return declared, names, nil
	}
	names := make([]string, ncols)
	seen := map[string]bool{}
	for i := range names {
		names[i] = fmt.Sprintf("f%d", i)
		if f.cfg.Header {
			names[i] = strings.TrimSpace(string(first[i]))
			if names[i] == "" {
				names[i] = fmt.Sprintf("f%d", i)
			}
		}
		if seen[names[i]] {
			return nil, nil, engine.Errf("path", "csv: %s: the header names column %q twice (declare columns: to rename)", path, names[i])
		}
		seen[names[i]] = true
	}
	inf := make([]csvInference, ncols)
	for i := range inf {
		inf[i] = csvInference{canInt: true, canFloat: true, canBool: true, canDate: true, canTS: true}
	}
	nulls := newCSVNullSet(f.cfg.NullValues)
	sample := func(rec [][]byte) {
		for i, v := range rec {
			if !nulls.has(v) {
				inf[i].see(string(v))
			}
		}
	}
	if !f.cfg.Header {
		sample(first)
	}
	for n := 0; n < f.cfg.InferRows; n++ {
		rec, err := r.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, engine.Errf("path", "csv: read %s: %v", path, err)
		}
		sample(rec)
	}
	fields := make([]arrow.Field, ncols)
	for i := range fields {
		fields[i] = arrow.Field{Name: names[i], Type: inf[i].result(), Nullable: true}
	}
	return arrow.NewSchema(fields, nil), names, nil
}

// declaredNames are the names of a declared schema.
func declaredNames(s *arrow.Schema) []string {
	out := make([]string, s.NumFields())
	for i, fd := range s.Fields() {
		out[i] = fd.Name
	}
	return out
}

// csvInference narrows a column's type as sample values are seen.
type csvInference struct {
	nonNull                                   int
	canInt, canFloat, canBool, canDate, canTS bool
	nanos                                     bool
}

func (c *csvInference) see(v string) {
	c.nonNull++
	v = strings.TrimSpace(v) // " 42" is still a number
	if c.canInt {
		if _, err := strconv.ParseInt(v, 10, 64); err != nil {
			c.canInt = false
		}
	}
	if c.canFloat {
		if _, err := strconv.ParseFloat(v, 64); err != nil || strings.ContainsAny(v, "_xX") {
			c.canFloat = false
		}
	}
	if c.canBool {
		c.canBool = strings.EqualFold(v, "true") || strings.EqualFold(v, "false")
	}
	if c.canDate {
		if _, ok := fastts.Date([]byte(v)); !ok {
			if _, err := time.Parse(time.DateOnly, v); err != nil {
				c.canDate = false
			}
		}
	}
	if c.canTS {
		if _, ok := fastts.Timestamp([]byte(v), 9); ok {
			if i := strings.IndexByte(v, '.'); i >= 0 && fractionDigits(v[i+1:]) > 6 {
				c.nanos = true
			}
		} else if _, _, err := arrow.TimestampFromStringInLocation(v, arrow.Nanosecond, time.UTC); err != nil {
			c.canTS = false
		} else if i := strings.IndexByte(v, '.'); i >= 0 && fractionDigits(v[i+1:]) > 6 {
			c.nanos = true
		}
	}
}

func fractionDigits(s string) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}

func (c *csvInference) result() arrow.DataType {
	switch {
	case c.nonNull == 0:
		return arrow.BinaryTypes.String
	case c.canInt:
		return arrow.PrimitiveTypes.Int64
	case c.canFloat:
		return arrow.PrimitiveTypes.Float64
	case c.canBool:
		return arrow.FixedWidthTypes.Boolean
	case c.canDate:
		return arrow.FixedWidthTypes.Date32
	case c.canTS && c.nanos:
		return coltype.TimestampNanos
	case c.canTS:
		return coltype.Timestamp
	}
	return arrow.BinaryTypes.String
}

// csvNullSet is a small set of null spellings.
type csvNullSet struct {
	empty bool
	vals  []string
}

func newCSVNullSet(vals []string) csvNullSet {
	var s csvNullSet
	for _, v := range vals {
		if v == "" {
			s.empty = true
		} else {
			s.vals = append(s.vals, v)
		}
	}
	return s
}

// has tells whether field v reads as null. An empty field is null only
// when it was not quoted: "" is an empty string (DuckDB's rule), which is
// how the csv sink writes one, so a round trip keeps empty strings and
// nulls apart.
func (s *csvNullSet) has(v []byte) bool {
	if len(v) == 0 {
		return s.empty && !isQuotedEmpty(v)
	}
	for _, n := range s.vals {
		if n == string(v) {
			return true
		}
	}
	return false
}

func (f *csvFactory) Schema() *arrow.Schema { return f.schema }

func (f *csvFactory) Describe() string {
	return describeText(f.files.describe(), f.schema, f.inferred)
}

// DescribeIO is the plan's io line (engine.IODescriber).
func (f *csvFactory) DescribeIO() string { return f.files.describeIO() }

func (f *csvFactory) New(ic *engine.InstanceContext) (any, error) {
	fileBackend(ic, f.files.backend(0))
	return &csvSource{f: f, ic: ic}, nil
}

type csvSource struct {
	f  *csvFactory
	ic *engine.InstanceContext

	rangeBytes int // > 0: parallel ranges of this many bytes (tests cut files finely)
}

// Run reads the files one after the other, in batches of batch_rows (a
// batch holds the rows of one file).
func (s *csvSource) Run(ctx context.Context, out engine.Emitter) error {
	f := s.f
	bld := array.NewRecordBuilder(s.ic.Alloc, f.fileSchema)
	defer bld.Release()
	cols := f.newColumns(bld)
	for i := range f.files.inputs() {
		if !s.ic.Mine(i) {
			continue // another shard's file
		}
		if stop, err := s.runFile(ctx, i, bld, cols, out); stop || err != nil {
			return err
		}
	}
	return nil
}

// newColumns returns a parser per field of a record, into the builders
// of bld (made with fileSchema); a field of a column not read has none
// (csvColumn.b is nil).
func (f *csvFactory) newColumns(bld *array.RecordBuilder) []csvColumn {
	cols := make([]csvColumn, f.allFile.NumFields())
	truncate := truncatingColumns(f.cfg.Columns)
	for i := range cols {
		fl := f.allFile.Field(i)
		if k, ok := f.kept(i); ok {
			cols[i] = newCSVColumn(fl, bld.Field(k), truncate[fl.Name])
			cols[i].out = k
		} else {
			cols[i] = csvColumn{name: fl.Name, dt: fl.Type, out: -1}
		}
	}
	return cols
}

// noteBatch has each column remember the string bytes of batch (made with
// fileSchema), to reserve as much for the next.
func noteBatch(cols []csvColumn, batch arrow.RecordBatch) {
	for i := range cols {
		if cols[i].out >= 0 {
			cols[i].noteData(batch.Column(cols[i].out))
		}
	}
}

// serialReason says why a file of this source cannot be cut into ranges
// parsed in parallel, or "" if it can.
func (f *csvFactory) serialReason() string {
	switch {
	case f.cfg.LazyQuotes:
		return "lazy_quotes: a quote may be text, so counting quotes cannot prove where a record ends"
	case f.comment != 0:
		return "comment: a quote inside a comment line is not a quote, so counting quotes cannot prove where a record ends"
	}
	return ""
}

// runFile reads input i: on one goroutine, or cut into ranges parsed in
// parallel when the run has several threads and the dialect allows it
// (see text_ranges.go).
func (s *csvSource) runFile(ctx context.Context, fi int, bld *array.RecordBuilder, cols []csvColumn, out engine.Emitter) (bool, error) {
	workers := max(1, s.ic.Settings.Threads)
	if workers == 1 {
		return s.runSerial(ctx, fi, bld, cols, out)
	}
	if why := s.f.serialReason(); why != "" {
		s.ic.Logger.Info("csv: reading the file on one goroutine", "node", s.ic.Node, "path", s.f.files.name(fi), "reason", why)
		return s.runSerial(ctx, fi, bld, cols, out)
	}
	return s.runParallel(ctx, fi, workers, out)
}

// runSerial reads input i on the caller's goroutine. Values go from the
// scanner's buffer straight into the builders, whose capacity is reserved
// once per batch, so a row costs no allocation.
func (s *csvSource) runSerial(ctx context.Context, fi int, bld *array.RecordBuilder, cols []csvColumn, out engine.Emitter) (bool, error) {
	f := s.f
	fileBackend(s.ic, f.files.backend(fi))
	file, r, path, err := f.newScanner(ctx, fi, runStdin(s.ic))
	if err != nil {
		return true, fmt.Errorf("csv: %w", err)
	}
	defer file.Close()
	s.ic.CountFiles(1)
	r.fieldsPerRecord = len(cols)
	if f.cfg.Header {
		if _, err := r.next(); err != nil && err != io.EOF {
			return true, headerErr(path, err)
		}
	}
	nulls := newCSVNullSet(f.cfg.NullValues)
	batchRows := batchRowsFor(f.cfg.BatchRows, s.ic.Settings)
	for done := false; !done; {
		if err := ctx.Err(); err != nil {
			return true, err
		}
		var n int
		if n, done, err = f.readBatch(r, bld, cols, &nulls, batchRows, path); err != nil {
			return true, err
		}
		if n == 0 {
			break
		}
		batch := bld.NewRecordBatch()
		noteBatch(cols, batch)
		batch, err := f.extra.extend(s.ic.Alloc, f.schema, batch, fi)
		if err != nil {
			return true, fmt.Errorf("csv: read %s: %w", path, err)
		}
		if stop, err := emitBatch(out, batch); stop {
			return true, err
		}
	}
	return false, nil
}

func headerErr(path string, err error) error {
	return fmt.Errorf("csv: read %s: header: %w (has the file changed since compile?)", path, err)
}

// readBatch reads up to n records of r into the builders of bld (cols),
// reserving room for n rows first. It returns how many it read and
// whether r is exhausted; its error names path and the line.
func (f *csvFactory) readBatch(r *csvScanner, bld *array.RecordBuilder, cols []csvColumn, nulls *csvNullSet, n int, path string) (int, bool, error) {
	bld.Reserve(n)
	for i := range cols {
		if cols[i].b != nil {
			cols[i].reserveData()
		}
	}
	for k := 0; k < n; k++ {
		rec, err := r.next()
		if err == io.EOF {
			return k, true, nil
		}
		if err != nil {
			return k, true, fmt.Errorf("csv: read %s: %w", path, err)
		}
		for j, v := range rec {
			c := &cols[j]
			if c.b == nil {
				continue // a column nobody reads
			}
			if nulls.has(v) {
				c.b.AppendNull()
				continue
			}
			if err := c.append(v); err != nil {
				hint := ""
				if f.inferred && f.cfg.Types[c.name] == "" {
					of := ""
					if f.files.inputs() > 1 {
						of = " of " + f.files.name(0)
					}
					hint = fmt.Sprintf(" (the type was inferred from the first %d rows%s; set types: or columns:)", f.cfg.InferRows, of)
				}
				return k, true, fmt.Errorf("csv: read %s: line %d, column %q: %w%s", path, r.fieldLine(j), c.name, err, hint)
			}
		}
	}
	return n, false, nil
}
