package operators

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/zflowdev/zflow/buffers"
	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/internal/coltype"
	"github.com/zflowdev/zflow/internal/textin"
)

// NDJSONSourceConfig configures the ndjson source.
type NDJSONSourceConfig struct {
	// Path is one file, glob, directory or "-", for Go callers; it comes
	// before Files. The pipeline parameter path fills Files.
	Path             string
	Files            []string          `zflow:"path" required:"true" doc:"what to read, one JSON object per line: a file, a glob (data/*.ndjson, data/**/*.ndjson), a directory (its files, recursively, in lexical order, skipping hidden and _-prefixed names), - for standard input, or a list of these; the columns come from the first file" example:"logs/*.ndjson"`
	Filename         string            `zflow:"filename" doc:"add a string column naming the file each row came from: true names it filename, any other value is the column's name"`
	HivePartitioning string            `zflow:"hive_partitioning" enum:"auto,true,false" doc:"add the key=value directories between a directory or glob root and the files as columns (int64, date32 or string, inferred from the values; __HIVE_DEFAULT_PARTITION__ is null): auto does when every file has the same keys, true requires it"`
	Columns          []ColumnDef       `zflow:"columns" doc:"the columns to read, with their types; default: every key seen in the first infer_rows objects, types inferred"`
	Types            map[string]string `zflow:"types" doc:"override the inferred type of some columns, by name" example:"{qty: int32}"`
	InferRows        int               `zflow:"infer_rows" doc:"objects sampled at compile time to infer the columns"`
	// UnknownKeys says what a key that is not a column does.
	UnknownKeys string `zflow:"unknown_keys" enum:"auto,error,ignore" doc:"a key that is not a column: error (the run fails naming the line and the key), ignore (dropped), or auto: error when the columns were inferred (a key first seen after infer_rows objects), ignore when columns: lists them"`
	BatchRows   int    `zflow:"batch_rows" doc:"rows per batch; 0 means settings.batch_rows"`
	Pushdown    bool   `zflow:"pushdown" doc:"convert only the columns the operators downstream read (the plan's columns: line); the values of the other keys are checked as JSON and skipped, so a value of the wrong type stops the run only where its column is read. false converts every column"`
	FileIO
}

// NDJSONSourceSpec is the spec of the ndjson source.
func NDJSONSourceSpec() engine.Spec {
	return engine.Spec{
		Name:      "ndjson",
		Kind:      engine.KindSource,
		Shardable: true, // by files
		Summary:   "reads newline-delimited JSON objects, one row each",
		Doc: "Columns are the keys of the sampled objects in order of first appearance; types are " +
			"int64, float64 (when a key holds both), bool, date32 (\"2006-01-02\"), timestamp (RFC 3339 " +
			"strings; UTC when they carry a zone, converted from an offset such as +02:00 or -0530) or string. " +
			"A timestamp with more fraction digits than its column's unit holds fails the run, unless the column " +
			"is declared with truncate: true, which drops them (such a column takes strings only; another timestamp " +
			"column also takes a JSON number, a count of its unit). Keys missing from an object are null; a key " +
			"not among the columns fails the run naming its line (unknown_keys: auto, when the columns were inferred) " +
			"or is dropped (unknown_keys: ignore, or auto with columns: declared). Nested objects and arrays are not supported. A gzip, zstd, bzip2 or xz file is read decompressed (found by its magic bytes, not its name); a file that is not text is refused, saying what it looks like. " +
			"A line must be one JSON object (RFC 8259); a file is parsed on settings.threads cores, cut into ranges at line ends, its rows kept in file order.",
		Example: `type: ndjson
path: testdata/trades.ndjson`,
		NewConfig: func() any {
			return &NDJSONSourceConfig{InferRows: 1000, UnknownKeys: "auto", HivePartitioning: "auto", Pushdown: true, FileIO: defaultFileIO()}
		},
		Build: buildNDJSONSource,
	}
}

func init() { engine.Register(NDJSONSourceSpec()) }

type ndjsonFactory struct {
	cfg   NDJSONSourceConfig
	files *fileSet
	sourceColumns
	inferred bool
}

// Paths lists the files the source reads (engine.PathsConfig).
func (c *NDJSONSourceConfig) Paths() []string { return configFiles(sourcePaths(c.Path, c.Files)) }

// NormalizeConfig moves Path to the front of Files (engine.ConfigNormalizer).
func (c *NDJSONSourceConfig) NormalizeConfig() { c.Files, c.Path = sourcePaths(c.Path, c.Files), "" }

func buildNDJSONSource(bc *engine.BuildContext, c any) (engine.Factory, error) {
	cfg := *c.(*NDJSONSourceConfig)
	files, err := resolvePaths("ndjson", sourcePaths(cfg.Path, cfg.Files))
	if err != nil {
		return nil, err
	}
	if err := files.chooseIO(cfg.FileIO, ioUse{whole: false}); err != nil {
		return nil, err
	}
	var errs []error
	if err := checkBatchRows(cfg.BatchRows); err != nil {
		errs = append(errs, err)
	}
	if cfg.InferRows < 0 {
		errs = append(errs, engine.Errf("infer_rows", "must be ≥ 0, got %d", cfg.InferRows))
	}
	if len(cfg.Columns) > 0 && len(cfg.Types) > 0 {
		errs = append(errs, engine.Errf("types", "types overrides inferred types; with columns, give the types there"))
	}
	f := &ndjsonFactory{cfg: cfg, files: files}
	var schema *arrow.Schema
	if len(cfg.Columns) > 0 {
		s, err := columnsSchema("columns", cfg.Columns)
		if err != nil {
			errs = append(errs, err)
		}
		schema = s
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	var sample []byte
	if files.stdin {
		if sample, err = stdinTextSample(stdinOf(bc.Stdin), "ndjson"); err != nil {
			return nil, engine.Errf("path", "ndjson: %v", err)
		}
	}
	for i := range files.inputs() {
		if files.stdin {
			break
		}
		in, _, err := openTextInput(context.Background(), files, i, nil, "ndjson")
		if err != nil {
			return nil, engine.Errf("path", "ndjson: %v", err)
		}
		in.Close()
	}
	if schema == nil {
		var in io.Reader = bytes.NewReader(sample)
		if !files.stdin {
			tr, _, err := openTextInput(context.Background(), files, 0, nil, "ndjson")
			if err != nil {
				return nil, engine.Errf("path", "ndjson: %v", err)
			}
			defer tr.Close()
			in = tr
		} else if in, err = textin.OpenReader(in, "standard input", "ndjson"); err != nil {
			return nil, engine.Errf("path", "ndjson: %v", err)
		}
		s, err := inferNDJSON(in, files.name(0), cfg.InferRows)
		if err != nil {
			return nil, engine.Errf("path", "%v", err)
		}
		if s, err = applyTypes("types", s, cfg.Types); err != nil {
			return nil, err
		}
		schema, f.inferred = s, true
	}
	extra, err := planExtras(files, cfg.HivePartitioning, cfg.Filename, schema)
	if err != nil {
		return nil, err
	}
	f.setColumns(schema, extra)
	return f, nil
}

// TakeProjection builds arrays only for the columns named
// (engine.Projectable): the value of another column's key is checked as
// JSON and skipped, not converted; pushdown: false declines.
func (f *ndjsonFactory) TakeProjection(cols []string) string {
	return f.takeProjection(f.cfg.Pushdown, cols, "the other keys' values are skipped, not converted")
}

// jsonKind is what a sampled key held, from narrow to wide.
type jsonKind uint8

const (
	jNull jsonKind = iota
	jBool
	jInt
	jFloat
	jDate
	jTime   // timestamp string with a zone
	jTimeNZ // timestamp string without a zone
	jString
)

var jsonKindName = [...]string{"null", "bool", "integer", "number", "date", "timestamp", "timestamp", "string"}

type jsonInference struct {
	kind   jsonKind
	nanos  bool
	record int // where kind was first seen, for errors
}

func classifyJSON(v any) (k jsonKind, nanos bool, ok bool) {
	switch v := v.(type) {
	case nil:
		return jNull, false, true
	case bool:
		return jBool, false, true
	case json.Number:
		if _, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			return jInt, false, true
		}
		return jFloat, false, true
	case string:
		if len(v) == 10 {
			if _, err := time.Parse(time.DateOnly, v); err == nil {
				return jDate, false, true
			}
		}
		if len(v) > 10 {
			if _, zone, err := arrow.TimestampFromStringInLocation(v, arrow.Nanosecond, time.UTC); err == nil {
				nanos = false
				if i := strings.IndexByte(v, '.'); i >= 0 && fractionDigits(v[i+1:]) > 6 {
					nanos = true
				}
				if zone {
					return jTime, nanos, true
				}
				return jTimeNZ, nanos, true
			}
		}
		return jString, false, true
	}
	return 0, false, false // object or array
}

// merge widens the inferred kind with k; ok is false when no column type
// holds both.
func (j *jsonInference) merge(k jsonKind, nanos bool, record int) bool {
	if k == jNull {
		return true
	}
	j.nanos = j.nanos || nanos
	switch {
	case j.kind == jNull || j.kind == k:
		if j.kind == jNull {
			j.record = record
		}
		j.kind = k
	case (j.kind == jInt && k == jFloat) || (j.kind == jFloat && k == jInt):
		j.kind = jFloat
	case isStringKind(j.kind) && isStringKind(k):
		j.kind = jString
	default:
		return false
	}
	return true
}

func isStringKind(k jsonKind) bool { return k >= jDate }

func (j *jsonInference) dataType() arrow.DataType {
	switch j.kind {
	case jBool:
		return arrow.FixedWidthTypes.Boolean
	case jInt:
		return arrow.PrimitiveTypes.Int64
	case jFloat:
		return arrow.PrimitiveTypes.Float64
	case jDate:
		return arrow.FixedWidthTypes.Date32
	case jTime:
		if j.nanos {
			return coltype.TimestampNanos
		}
		return coltype.Timestamp
	case jTimeNZ:
		if j.nanos {
			return &arrow.TimestampType{Unit: arrow.Nanosecond}
		}
		return &arrow.TimestampType{Unit: arrow.Microsecond}
	}
	return arrow.BinaryTypes.String
}

// inferNDJSON samples up to n objects of in, named path in errors.
func inferNDJSON(in io.Reader, path string, n int) (*arrow.Schema, error) {
	dec := json.NewDecoder(in)
	dec.UseNumber()
	var names []string
	inf := map[string]*jsonInference{}
	record := 0
	for record < n {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		record++
		if err != nil {
			return nil, fmt.Errorf("ndjson: read %s: record %d: %w", path, record, err)
		}
		if d, ok := tok.(json.Delim); !ok || d != '{' {
			return nil, fmt.Errorf("ndjson: read %s: record %d: want a JSON object, got %v", path, record, tok)
		}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return nil, fmt.Errorf("ndjson: read %s: record %d: %w", path, record, err)
			}
			key, _ := kt.(string)
			var v any
			if err := dec.Decode(&v); err != nil {
				return nil, fmt.Errorf("ndjson: read %s: record %d, key %q: %w", path, record, key, err)
			}
			k, nanos, ok := classifyJSON(v)
			if !ok {
				return nil, fmt.Errorf("ndjson: %s: record %d: key %q holds a nested object or array, which the ndjson source does not support", path, record, key)
			}
			ji := inf[key]
			if ji == nil {
				ji = &jsonInference{}
				inf[key] = ji
				names = append(names, key)
			}
			prev := ji.kind
			if !ji.merge(k, nanos, record) {
				return nil, fmt.Errorf("ndjson: %s: key %q holds a %s in record %d and a %s in record %d; declare its type with types: or columns:",
					path, key, jsonKindName[prev], ji.record, jsonKindName[k], record)
			}
		}
		if _, err := dec.Token(); err != nil {
			return nil, fmt.Errorf("ndjson: read %s: record %d: %w", path, record, err)
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("ndjson: %s has no keys to take the columns from (empty file?); declare columns:", path)
	}
	fields := make([]arrow.Field, len(names))
	for i, name := range names {
		fields[i] = arrow.Field{Name: name, Type: inf[name].dataType(), Nullable: true}
	}
	return arrow.NewSchema(fields, nil), nil
}

func (f *ndjsonFactory) Schema() *arrow.Schema { return f.schema }

func (f *ndjsonFactory) Describe() string {
	return describeText(f.files.describe(), f.schema, f.inferred)
}

// DescribeIO is the plan's io line (engine.IODescriber).
func (f *ndjsonFactory) DescribeIO() string { return f.files.describeIO() }

func (f *ndjsonFactory) New(ic *engine.InstanceContext) (any, error) {
	fileBackend(ic, f.files.backend(0))
	return &ndjsonSource{f: f, ic: ic}, nil
}

type ndjsonSource struct {
	f  *ndjsonFactory
	ic *engine.InstanceContext

	rangeBytes int // > 0: ranges of this many bytes (tests cut files finely)
}

// Run reads the files one after the other (a batch holds the rows of one
// file).
func (s *ndjsonSource) Run(ctx context.Context, out engine.Emitter) error {
	for i := range s.f.files.inputs() {
		if !s.ic.Mine(i) {
			continue // another shard's file
		}
		if stop, err := s.runFile(ctx, i, out); stop || err != nil {
			return err
		}
	}
	return nil
}

func (s *ndjsonSource) runFile(ctx context.Context, fi int, out engine.Emitter) (bool, error) {
	f := s.f
	fileBackend(s.ic, f.files.backend(fi))
	in, path, err := openTextInput(ctx, f.files, fi, runStdin(s.ic), "ndjson")
	if err != nil {
		return true, fmt.Errorf("ndjson: %w", err)
	}
	defer in.Close()
	s.ic.CountFiles(1)
	batchRows := batchRowsFor(f.cfg.BatchRows, s.ic.Settings)
	unknownErr, hint := false, ""
	if p := f.cfg.UnknownKeys; p == "error" || (p != "ignore" && f.inferred) {
		of := ""
		if f.files.inputs() > 1 {
			of = " of " + f.files.name(0)
		}
		unknownErr = true
		hint = "declare columns: (the columns come from the keys of the first " + fmt.Sprint(f.cfg.InferRows) +
			" objects" + of + "), raise infer_rows, or set unknown_keys: ignore to drop such keys"
		if !f.inferred {
			hint = "add it to columns:, or set unknown_keys: ignore to drop such keys"
		}
	}
	trunc := truncatingColumns(f.cfg.Columns)
	workers := s.workers()
	if workers > 1 {
		s.ic.Logger.Debug("ndjson: parsing in parallel", "path", path, "workers", workers)
	}
	// Each worker parses with builders and a scanner of its own.
	type state struct {
		bld *array.RecordBuilder
		sc  *ndjsonScanner
	}
	states := make([]state, workers)
	for w := range states {
		bld := array.NewRecordBuilder(s.ic.Alloc, f.fileSchema)
		defer bld.Release()
		states[w] = state{bld, newNDJSONScannerOf(f.allFile, f.kept, bld, trunc, unknownErr, path, hint)}
	}
	var rows int64 // emitted from this file
	readErr := func(err error) error { return fmt.Errorf("ndjson: read %s: %w", path, err) }
	rr := newRangeReader(in, s.ic.Alloc, ndjsonCut, batchRows, s.rangeBytes)
	err = runRanges(ctx, s.ic, rr, workers, rangeRun{
		parse: func(w int, t *textRange) {
			st := states[w]
			parseNDJSONRange(st.sc, st.bld, t, batchRows)
		},
		emit: func(t *textRange) (bool, error) {
			extend := func(rec arrow.RecordBatch) (arrow.RecordBatch, error) {
				return f.extra.extend(s.ic.Alloc, f.schema, rec, fi)
			}
			rowErr := t.err
			t.err = nil
			if stop, err := emitRange(out, t, extend, readErr); stop {
				return true, err
			}
			if rowErr != nil {
				return true, ndjsonRowErr(path, rows+t.at+1, rowErr, f.allFile)
			}
			rows += t.rows
			return false, nil
		},
		readErr: readErr,
	})
	return err != nil, err
}

// ndjsonCut is where the last whole line of b ends.
func ndjsonCut(b []byte) int {
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		return i + 1
	}
	return -1
}

// workers is how many goroutines parse a file: the CPUs the run may use.
func (s *ndjsonSource) workers() int { return max(1, s.ic.Settings.Threads) }

// parseNDJSONRange parses the lines of t into batches of at most
// batchRows rows (t.out), stopping at the first error (t.err, t.at).
func parseNDJSONRange(sc *ndjsonScanner, bld *array.RecordBuilder, t *textRange, batchRows int) {
	data := t.data
	line := t.lines
	pending := 0
	flush := func() {
		rec := bld.NewRecordBatch()
		sc.noteData(rec)
		t.out = append(t.out, rec)
		t.rows += int64(pending)
		pending = 0
	}
	sc.reserve(min(batchRows, bytes.Count(data, []byte{'\n'})+1))
	for len(data) > 0 {
		text := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			text, data = data[:i+1], data[i+1:]
		} else {
			data = nil
		}
		line++
		if blank(text) {
			continue
		}
		sc.line = line
		if err := sc.row(text); err != nil {
			dropRows(bld) // the failing row's part with the rest
			t.err, t.at = ndjsonLineErr{line, err}, t.rows+int64(pending)
			return
		}
		if pending++; pending == batchRows {
			flush()
			sc.reserve(min(batchRows, bytes.Count(data, []byte{'\n'})+1))
		}
	}
	if pending > 0 {
		flush()
	}
}

// dropRows empties the builders of bld, whose columns may differ in
// length (a row failed half-way).
func dropRows(bld *array.RecordBuilder) {
	for _, b := range bld.Fields() {
		b.NewArray().Release()
	}
}

// ndjsonLineErr is a row's error and its line.
type ndjsonLineErr struct {
	line int64
	err  error
}

func (e ndjsonLineErr) Error() string { return e.err.Error() }

// ndjsonRowErr is the run's error for the failing record (the record-th
// of the file).
func ndjsonRowErr(path string, record int64, err error, schema *arrow.Schema) error {
	le := err.(ndjsonLineErr)
	var uk *UnknownKeyError
	if errors.As(le.err, &uk) {
		return fmt.Errorf("ndjson: %w", le.err)
	}
	var te *ndjsonTruncErr
	if errors.As(le.err, &te) {
		return fmt.Errorf("ndjson: read %s: record %d, %w", path, record, le.err)
	}
	return fmt.Errorf("ndjson: read %s: record %d (line %d): %w%s", path, record, le.line, le.err, timestampHint(le.err, schema))
}

// safeNext calls next, turning a panic in a third-party decoder (a bug it
// has on some malformed input) into an error; an allocation the memory
// budget refused comes back as that budget error, not as malformed input.
func safeNext(next func() bool) (ok bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			if e, isErr := r.(error); isErr && errors.Is(e, buffers.ErrBudgetExceeded) {
				ok, err = false, e // the memory budget refused the decoder, the input is fine
				return
			}
			ok, err = false, fmt.Errorf("malformed input (decoder panicked: %v)", r)
		}
	}()
	return next(), nil
}
