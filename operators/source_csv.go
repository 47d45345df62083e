package operators

import (
	"context"
	"encoding/base64"
	"encoding/csv"
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
)

// CSVSourceConfig configures the csv source.
type CSVSourceConfig struct {
	Path       string            `zflow:"path" required:"true" doc:"file to read" example:"testdata/trades.csv"`
	Header     bool              `zflow:"header" doc:"the first line names the columns (else they are f0, f1, ...)"`
	Delimiter  string            `zflow:"delimiter" doc:"field separator, one character (\"\\t\" or tab for tabs)"`
	Columns    []ColumnDef       `zflow:"columns" doc:"the columns in file order, with their types; default: names from the header, types inferred from the first infer_rows rows"`
	Types      map[string]string `zflow:"types" doc:"override the inferred type of some columns, by name" example:"{qty: int32}"`
	NullValues []string          `zflow:"null_values" doc:"field values read as null (in every column)"`
	InferRows  int               `zflow:"infer_rows" doc:"rows sampled at compile time to infer column types"`
	Comment    string            `zflow:"comment" doc:"skip lines starting with this character"`
	LazyQuotes bool              `zflow:"lazy_quotes" doc:"accept a quote in an unquoted field and a non-doubled quote in a quoted field"`
	BatchRows  int               `zflow:"batch_rows" doc:"rows per batch; 0 means settings.batch_rows"`
}

// CSVSourceSpec is the spec of the csv source.
func CSVSourceSpec() engine.Spec {
	return engine.Spec{
		Name:    "csv",
		Kind:    engine.KindSource,
		Summary: "reads a CSV file (RFC 4180), inferring column types or taking them from a column list",
		Doc: "Types are inferred at compile time from a sample of rows: int64, float64, bool (true/false), " +
			"date32 (2006-01-02), timestamp (RFC 3339 or 2006-01-02 15:04:05, with or without zone; UTC) or " +
			"string. A value that does not parse as its column's type is an error naming the line.",
		Example: `type: csv
path: testdata/trades.csv
types: {qty: int32}`,
		NewConfig: func() any {
			return &CSVSourceConfig{Header: true, Delimiter: ",", NullValues: []string{""}, InferRows: 1000}
		},
		Build: buildCSVSource,
	}
}

func init() { engine.Register(CSVSourceSpec()) }

type csvFactory struct {
	cfg      CSVSourceConfig
	comma    rune
	comment  rune
	schema   *arrow.Schema
	inferred bool
}

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
	if err := checkPath(cfg.Path); err != nil {
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
	f := &csvFactory{cfg: cfg, comma: comma, comment: comment}
	schema, err := f.inferSchema(declared)
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
	f.schema = schema
	return f, nil
}

func (f *csvFactory) newReader(r io.Reader) *csv.Reader {
	cr := csv.NewReader(r)
	cr.Comma = f.comma
	cr.Comment = f.comment
	cr.LazyQuotes = f.cfg.LazyQuotes
	cr.ReuseRecord = true
	return cr
}

// inferSchema reads the header and a sample of rows. With declared
// columns it only checks their number against the file.
func (f *csvFactory) inferSchema(declared *arrow.Schema) (*arrow.Schema, error) {
	file, br, err := openText(f.cfg.Path)
	if err != nil {
		return nil, engine.Errf("path", "csv: %v", err)
	}
	defer file.Close()
	r := f.newReader(br)
	first, err := r.Read()
	if err == io.EOF {
		if declared != nil {
			return declared, nil
		}
		return nil, engine.Errf("path", "csv: %s is empty: no header or rows to take the columns from (declare columns:)", f.cfg.Path)
	}
	if err != nil {
		return nil, engine.Errf("path", "csv: read %s: %v", f.cfg.Path, err)
	}
	ncols := len(first)
	if declared != nil {
		if declared.NumFields() != ncols {
			what := "its first row"
			if f.cfg.Header {
				what = "its header"
			}
			return nil, engine.Errf("columns", "%d columns declared, but %s has %d fields (%s)",
				declared.NumFields(), what, ncols, f.cfg.Path)
		}
		return declared, nil
	}
	names := make([]string, ncols)
	seen := map[string]bool{}
	for i := range names {
		names[i] = fmt.Sprintf("f%d", i)
		if f.cfg.Header {
			names[i] = strings.TrimSpace(first[i])
			if names[i] == "" {
				names[i] = fmt.Sprintf("f%d", i)
			}
		}
		if seen[names[i]] {
			return nil, engine.Errf("path", "csv: %s: the header names column %q twice (declare columns: to rename)", f.cfg.Path, names[i])
		}
		seen[names[i]] = true
	}
	inf := make([]csvInference, ncols)
	for i := range inf {
		inf[i] = csvInference{canInt: true, canFloat: true, canBool: true, canDate: true, canTS: true}
	}
	nulls := newCSVNullSet(f.cfg.NullValues)
	sample := func(rec []string) {
		for i, v := range rec {
			if !nulls.has(v) {
				inf[i].see(v)
			}
		}
	}
	if !f.cfg.Header {
		sample(first)
	}
	for n := 0; n < f.cfg.InferRows; n++ {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, engine.Errf("path", "csv: read %s: %v", f.cfg.Path, err)
		}
		sample(rec)
	}
	fields := make([]arrow.Field, ncols)
	for i := range fields {
		fields[i] = arrow.Field{Name: names[i], Type: inf[i].result(), Nullable: true}
	}
	return arrow.NewSchema(fields, nil), nil
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
		if _, err := time.Parse(time.DateOnly, v); err != nil {
			c.canDate = false
		}
	}
	if c.canTS {
		if _, _, err := arrow.TimestampFromStringInLocation(v, arrow.Nanosecond, time.UTC); err != nil {
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

func (s *csvNullSet) has(v string) bool {
	if len(v) == 0 {
		return s.empty
	}
	for _, n := range s.vals {
		if n == v {
			return true
		}
	}
	return false
}

func (f *csvFactory) Schema() *arrow.Schema { return f.schema }

func (f *csvFactory) Describe() string {
	how := "declared columns"
	if f.inferred {
		how = "inferred types"
	}
	return fmt.Sprintf("%s (%d columns, %s)", f.cfg.Path, f.schema.NumFields(), how)
}

func (f *csvFactory) New(ic *engine.InstanceContext) (any, error) {
	return &csvSource{f: f, ic: ic}, nil
}

type csvSource struct {
	f  *csvFactory
	ic *engine.InstanceContext
}

func (s *csvSource) Run(ctx context.Context, out engine.Emitter) error {
	f := s.f
	path := f.cfg.Path
	file, br, err := openText(path)
	if err != nil {
		return fmt.Errorf("csv: %w", err)
	}
	defer file.Close()
	r := f.newReader(br)
	ncols := f.schema.NumFields()
	r.FieldsPerRecord = ncols
	if f.cfg.Header {
		if _, err := r.Read(); err != nil && err != io.EOF {
			return fmt.Errorf("csv: read %s: header: %w (has the file changed since compile?)", path, err)
		}
	}
	bld := array.NewRecordBuilder(s.ic.Alloc, f.schema)
	defer bld.Release()
	cols := make([]csvColumn, ncols)
	for i := range cols {
		cols[i] = newCSVColumn(f.schema.Field(i), bld.Field(i))
	}
	nulls := newCSVNullSet(f.cfg.NullValues)
	batchRows := batchRowsFor(f.cfg.BatchRows, s.ic.Settings)
	for done := false; !done; {
		if err := ctx.Err(); err != nil {
			return err
		}
		bld.Reserve(batchRows)
		for i := range cols {
			cols[i].reserveData()
		}
		n := 0
		for n < batchRows {
			rec, err := r.Read()
			if err == io.EOF {
				done = true
				break
			}
			if err != nil {
				return fmt.Errorf("csv: read %s: %w", path, err)
			}
			for j, v := range rec {
				if nulls.has(v) {
					cols[j].b.AppendNull()
					continue
				}
				if err := cols[j].append(v); err != nil {
					line, _ := r.FieldPos(j)
					hint := ""
					if f.inferred && f.cfg.Types[cols[j].name] == "" {
						hint = fmt.Sprintf(" (the type was inferred from the first %d rows; set types: or columns:)", f.cfg.InferRows)
					}
					return fmt.Errorf("csv: read %s: line %d, column %q: %w%s", path, line, cols[j].name, err, hint)
				}
			}
			n++
		}
		if n == 0 {
			break
		}
		batch := bld.NewRecordBatch()
		for i := range cols {
			cols[i].noteData(batch.Column(i))
		}
		if stop, err := emitBatch(out, batch); stop {
			return err
		}
	}
	return nil
}

// csvColumn parses one column's text into its builder.
type csvColumn struct {
	name     string
	dt       arrow.DataType
	b        array.Builder
	unit     arrow.TimeUnit
	lastData int // string bytes of the previous batch, to reserve
}

func newCSVColumn(f arrow.Field, b array.Builder) csvColumn {
	c := csvColumn{name: f.Name, dt: f.Type, b: b}
	if ts, ok := f.Type.(*arrow.TimestampType); ok {
		c.unit = ts.Unit
	}
	return c
}

func (c *csvColumn) reserveData() {
	if c.lastData > 0 {
		switch b := c.b.(type) {
		case *array.StringBuilder:
			b.ReserveData(c.lastData)
		case *array.BinaryBuilder:
			b.ReserveData(c.lastData)
		}
	}
}

func (c *csvColumn) noteData(a arrow.Array) {
	switch a := a.(type) {
	case *array.String:
		c.lastData = len(a.ValueBytes())
	case *array.Binary:
		c.lastData = len(a.ValueBytes())
	}
}

func csvParseErr(v string, dt arrow.DataType) error {
	if len(v) > 64 {
		v = v[:64] + "…"
	}
	return fmt.Errorf("cannot parse %q as %s", v, coltype.Name(dt))
}

func (c *csvColumn) append(v string) error {
	if b, ok := c.b.(*array.StringBuilder); ok {
		b.Append(v)
		return nil
	}
	if len(v) > 0 && (v[0] == ' ' || v[len(v)-1] == ' ' || v[0] == '\t' || v[len(v)-1] == '\t') {
		v = strings.TrimSpace(v) // spaces around a number or a date are not part of it
	}
	switch b := c.b.(type) {
	case *array.Int64Builder:
		x, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return csvParseErr(v, c.dt)
		}
		b.Append(x)
	case *array.Float64Builder:
		x, err := strconv.ParseFloat(v, 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return csvParseErr(v, c.dt)
		}
		b.Append(x)
	case *array.Int32Builder:
		x, err := strconv.ParseInt(v, 10, 32)
		if err != nil {
			return csvParseErr(v, c.dt)
		}
		b.Append(int32(x))
	case *array.BooleanBuilder:
		x, err := strconv.ParseBool(v)
		if err != nil {
			return csvParseErr(v, c.dt)
		}
		b.Append(x)
	case *array.TimestampBuilder:
		t, _, err := arrow.TimestampFromStringInLocation(v, c.unit, time.UTC)
		if err != nil {
			return csvParseErr(v, c.dt)
		}
		b.Append(t)
	case *array.Date32Builder:
		t, err := time.Parse(time.DateOnly, v)
		if err != nil {
			return csvParseErr(v, c.dt)
		}
		b.Append(arrow.Date32FromTime(t))
	case *array.Int8Builder:
		x, err := strconv.ParseInt(v, 10, 8)
		if err != nil {
			return csvParseErr(v, c.dt)
		}
		b.Append(int8(x))
	case *array.Int16Builder:
		x, err := strconv.ParseInt(v, 10, 16)
		if err != nil {
			return csvParseErr(v, c.dt)
		}
		b.Append(int16(x))
	case *array.Uint8Builder:
		x, err := strconv.ParseUint(v, 10, 8)
		if err != nil {
			return csvParseErr(v, c.dt)
		}
		b.Append(uint8(x))
	case *array.Uint16Builder:
		x, err := strconv.ParseUint(v, 10, 16)
		if err != nil {
			return csvParseErr(v, c.dt)
		}
		b.Append(uint16(x))
	case *array.Uint32Builder:
		x, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return csvParseErr(v, c.dt)
		}
		b.Append(uint32(x))
	case *array.Uint64Builder:
		x, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return csvParseErr(v, c.dt)
		}
		b.Append(x)
	case *array.Float32Builder:
		x, err := strconv.ParseFloat(v, 32)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return csvParseErr(v, c.dt)
		}
		b.Append(float32(x))
	case *array.BinaryBuilder:
		x, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return fmt.Errorf("cannot decode %q as base64 binary", v)
		}
		b.Append(x)
	default:
		return fmt.Errorf("type %s is not supported by the csv reader", c.dt)
	}
	return nil
}
