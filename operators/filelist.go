package operators

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/internal/textin"
	"github.com/zflowdev/zflow/io/storage"
)

// This file resolves the path parameter of the file sources (csv, ndjson,
// parquet, arrow) into the files they read, and makes the columns a source
// adds to what it reads: the file name (filename:) and Hive partition keys
// (hive_partitioning:).
//
// A path entry is one of:
//
//   - "-": standard input (alone: it cannot be mixed with files);
//   - a glob: * ? [...] match within one path element as filepath.Match
//     does, and ** as a whole element matches any number of directories
//     (data/**/*.parquet). A * or ** does not match a name starting with a
//     dot, as in a shell; the matches are sorted;
//   - a directory: every regular file under it, recursively, in lexical
//     order, skipping hidden names (.x) and names starting with _ (_SUCCESS,
//     _delta_log), files and directories alike;
//   - a file.
//
// A list takes its entries in order, each expanded as above.

// stdinPath is the path that means standard input (or output, for a sink).
const stdinPath = engine.StdPath

// sourcePaths are the path entries of a file source's config: the Go
// shorthand Path first, then the path parameter's list.
func sourcePaths(one string, list []string) []string {
	var out []string
	if one != "" {
		out = append(out, one)
	}
	return append(out, list...)
}

// fileSet is what a source's path parameter resolved to at compile time.
type fileSet struct {
	stdin bool
	files []string // the files to read, in order; empty for stdin
	// roots[i] is the directory files[i] was found under (the directory
	// given, or the fixed part of the glob), for Hive partition keys.
	roots []string
	// params[i] is the parameter files[i] came from ("path", or "path.2" in
	// a list), where an error about the file is placed.
	params []string
	// io[i] is the storage backend files[i] is read through (chooseIO).
	io []storage.Backend
}

// param is where an error about input i is placed.
func (s *fileSet) param(i int) string {
	if s.stdin || i >= len(s.params) {
		return "path"
	}
	return s.params[i]
}

func (s *fileSet) describe() string {
	switch {
	case s.stdin:
		return "standard input"
	case len(s.files) == 1:
		return s.files[0]
	}
	return fmt.Sprintf("%d files (%s ... %s)", len(s.files), s.files[0], s.files[len(s.files)-1])
}

// hasMeta tells whether p holds glob characters.
func hasMeta(p string) bool { return strings.ContainsAny(p, "*?[") }

// resolvePaths expands a path parameter. Errors name the entry: a glob that
// matches nothing, a directory with no files, a file that does not exist.
func resolvePaths(kind string, entries []string) (*fileSet, error) {
	if len(entries) == 0 {
		return nil, engine.Errf("path", "is required")
	}
	s := &fileSet{}
	var errs []error
	for i, e := range entries {
		param := "path"
		if len(entries) > 1 {
			param = fmt.Sprintf("path.%d", i)
		}
		switch {
		case strings.TrimSpace(e) == "":
			errs = append(errs, engine.Errf(param, "is empty"))
		case e == stdinPath:
			if len(entries) > 1 {
				errs = append(errs, engine.Errf(param, "%s: - (standard input) cannot be listed with other paths", kind))
				continue
			}
			s.stdin = true
		case hasMeta(e):
			files, root, err := globFiles(e)
			if err != nil {
				errs = append(errs, engine.Errf(param, "%s: %v", kind, err))
				continue
			}
			if len(files) == 0 {
				errs = append(errs, engine.Errf(param, "%s: no file matches %q", kind, e))
				continue
			}
			s.add(files, root, param)
		default:
			st, err := os.Stat(e)
			if err != nil {
				errs = append(errs, engine.Errf(param, "%s: %v", kind, err))
				continue
			}
			if !st.IsDir() {
				s.add([]string{e}, "", param)
				continue
			}
			files, err := dirFiles(e)
			if err != nil {
				errs = append(errs, engine.Errf(param, "%s: %v", kind, err))
				continue
			}
			if len(files) == 0 {
				errs = append(errs, engine.Errf(param, "%s: directory %s holds no files to read (hidden files and names starting with _ are skipped)", kind, e))
				continue
			}
			s.add(files, e, param)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

func (s *fileSet) add(files []string, root, param string) {
	for _, f := range files {
		s.files = append(s.files, f)
		s.roots = append(s.roots, root)
		s.params = append(s.params, param)
	}
}

// skipName tells whether a directory walk skips a name: hidden files and
// directories, and those starting with _ (_SUCCESS, _temporary).
func skipName(name string) bool {
	return strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")
}

// dirFiles lists the regular files under dir, recursively and sorted.
func dirFiles(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		if skipName(d.Name()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() {
			out = append(out, p)
		} else if d.Type()&fs.ModeSymlink != 0 {
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
				out = append(out, p)
			}
		}
		return nil
	})
	slices.Sort(out)
	return out, err
}

// globFiles expands pattern, with ** matching any number of directories. It
// returns the sorted regular files that match, and the fixed directory the
// pattern starts from.
func globFiles(pattern string) ([]string, string, error) {
	clean := filepath.ToSlash(filepath.Clean(pattern))
	parts := strings.Split(clean, "/")
	fixed := 0
	for fixed < len(parts) && !hasMeta(parts[fixed]) {
		fixed++
	}
	root := strings.Join(parts[:fixed], "/")
	if root == "" && strings.HasPrefix(clean, "/") {
		root = "/"
	}
	rest := parts[fixed:]
	for _, p := range rest {
		if strings.Contains(p, "**") && p != "**" {
			return nil, "", fmt.Errorf("bad pattern %q: ** must be a whole path element (dir/**/*.csv)", pattern)
		}
		if _, err := filepath.Match(p, ""); err != nil {
			return nil, "", fmt.Errorf("bad pattern %q: %v", pattern, err)
		}
	}
	start := root
	if start == "" {
		start = "."
	}
	var out []string
	var walk func(dir string, rest []string) error
	walk = func(dir string, rest []string) error {
		if len(rest) == 0 {
			return nil
		}
		ents, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // the fixed part of the pattern does not exist: no match
		}
		if err != nil {
			return err
		}
		if rest[0] == "**" {
			// ** matches zero directories: the rest here...
			if err := walk(dir, rest[1:]); err != nil {
				return err
			}
			// ...or one more, and ** again.
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), ".") || !isDir(dir, e) {
					continue
				}
				if err := walk(filepath.Join(dir, e.Name()), rest); err != nil {
					return err
				}
			}
			return nil
		}
		for _, e := range ents {
			name := e.Name()
			if strings.HasPrefix(name, ".") && !strings.HasPrefix(rest[0], ".") {
				continue
			}
			if ok, _ := filepath.Match(rest[0], name); !ok {
				continue
			}
			p := filepath.Join(dir, name)
			if len(rest) == 1 {
				if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
					out = append(out, p)
				}
				continue
			}
			if isDir(dir, e) {
				if err := walk(p, rest[1:]); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(start, rest); err != nil {
		return nil, "", err
	}
	slices.Sort(out)
	out = slices.Compact(out) // a/**/**/x can reach a file twice
	return out, root, nil
}

func isDir(dir string, e fs.DirEntry) bool {
	if e.IsDir() {
		return true
	}
	if e.Type()&fs.ModeSymlink != 0 {
		st, err := os.Stat(filepath.Join(dir, e.Name()))
		return err == nil && st.IsDir()
	}
	return false
}

// hiveDefault is how Hive, Spark and DuckDB write a NULL partition value.
const hiveDefault = "__HIVE_DEFAULT_PARTITION__"

// hivePairs returns the key=value directories of file below root, in
// order, with the values unescaped (nil for __HIVE_DEFAULT_PARTITION__).
func hivePairs(root, file string) (keys []string, vals []*string) {
	rel := file
	if root != "" {
		if r, err := filepath.Rel(root, file); err == nil {
			rel = r
		}
	}
	parts := strings.Split(filepath.ToSlash(rel), "/")
	for _, p := range parts[:len(parts)-1] {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			continue
		}
		if u, err := url.PathUnescape(v); err == nil {
			v = u
		}
		keys = append(keys, k)
		if v == hiveDefault {
			vals = append(vals, nil)
		} else {
			vals = append(vals, &v)
		}
	}
	return keys, vals
}

// extraCols are the constant columns a source appends to every batch of a
// file: Hive partition keys, then the file name.
type extraCols struct {
	fields []arrow.Field
	// values[f][c] is column c's value for file f; nil is null.
	values [][]*string
}

// planExtras works out the extra columns of a file set: hive is the
// hive_partitioning parameter (auto, true, false), filename the filename
// parameter. fileSchema is the schema read from the files, whose names the
// extra columns may not reuse.
func planExtras(s *fileSet, hive, filename string, fileSchema *arrow.Schema) (*extraCols, error) {
	x := &extraCols{values: make([][]*string, len(s.files))}
	if !s.stdin && hive != "false" && len(s.files) > 0 {
		keys0, _ := hivePairs(s.roots[0], s.files[0])
		same := len(keys0) > 0
		for i := 1; i < len(s.files) && same; i++ {
			k, _ := hivePairs(s.roots[i], s.files[i])
			same = slices.Equal(k, keys0)
		}
		switch {
		case hive == "true" && len(keys0) == 0:
			return nil, engine.Errf("hive_partitioning", "%s has no key=value directories under %s", s.files[0], orDot(s.roots[0]))
		case hive == "true" && !same:
			for i := range s.files {
				if k, _ := hivePairs(s.roots[i], s.files[i]); !slices.Equal(k, keys0) {
					return nil, engine.Errf("hive_partitioning", "%s is partitioned by %s, but %s by %s",
						s.files[0], strings.Join(keys0, "/"), s.files[i], orNone(k))
				}
			}
		}
		if same {
			for _, k := range keys0 {
				if len(fileSchema.FieldIndices(k)) > 0 {
					return nil, engine.Errf("hive_partitioning", "partition key %q is also a column of %s (turn hive_partitioning off, or drop the column)", k, s.files[0])
				}
			}
			types := make([]arrow.DataType, len(keys0))
			for c := range keys0 {
				var vals []*string
				for i := range s.files {
					_, v := hivePairs(s.roots[i], s.files[i])
					vals = append(vals, v[c])
				}
				types[c] = hiveType(vals)
			}
			for c, k := range keys0 {
				x.fields = append(x.fields, arrow.Field{Name: k, Type: types[c], Nullable: true})
			}
			for i := range s.files {
				_, v := hivePairs(s.roots[i], s.files[i])
				x.values[i] = v
			}
		}
	}
	if name := filenameColumn(filename); name != "" {
		if len(fileSchema.FieldIndices(name)) > 0 || slices.ContainsFunc(x.fields, func(f arrow.Field) bool { return f.Name == name }) {
			return nil, engine.Errf("filename", "column %q already exists; give the file name column another name (filename: source_file)", name)
		}
		x.fields = append(x.fields, arrow.Field{Name: name, Type: arrow.BinaryTypes.String, Nullable: false})
		for i := range s.files {
			f := s.files[i]
			x.values[i] = append(x.values[i], &f)
		}
		if s.stdin {
			std := stdinPath
			x.values = [][]*string{{&std}}
		}
	}
	return x, nil
}

func orDot(s string) string {
	if s == "" {
		return "."
	}
	return s
}

func orNone(k []string) string {
	if len(k) == 0 {
		return "nothing"
	}
	return strings.Join(k, "/")
}

// filenameColumn is the column the filename parameter asks for, or "".
func filenameColumn(p string) string {
	switch p {
	case "", "false":
		return ""
	case "true":
		return "filename"
	}
	return p
}

// hiveType infers a partition key's type from its values, as DuckDB's
// hive_types_autocast does: int64 if every value is an integer, date32 if
// every value is a date, else string.
func hiveType(vals []*string) arrow.DataType {
	isInt, isDate, any := true, true, false
	for _, v := range vals {
		if v == nil {
			continue
		}
		any = true
		if _, err := strconv.ParseInt(*v, 10, 64); err != nil {
			isInt = false
		}
		if _, err := time.Parse(time.DateOnly, *v); err != nil {
			isDate = false
		}
	}
	switch {
	case !any:
		return arrow.BinaryTypes.String
	case isInt:
		return arrow.PrimitiveTypes.Int64
	case isDate:
		return arrow.FixedWidthTypes.Date32
	}
	return arrow.BinaryTypes.String
}

// schema is the file schema with the extra columns after it.
func (x *extraCols) schema(file *arrow.Schema) *arrow.Schema {
	if len(x.fields) == 0 {
		return file
	}
	return arrow.NewSchema(append(slices.Clone(file.Fields()), x.fields...), nil)
}

// extend returns rec (owned) with file i's extra columns appended, under
// schema; it releases rec.
func (x *extraCols) extend(mem memory.Allocator, schema *arrow.Schema, rec arrow.RecordBatch, i int) (arrow.RecordBatch, error) {
	if len(x.fields) == 0 {
		return rec, nil
	}
	defer rec.Release()
	n := int(rec.NumRows())
	cols := slices.Clone(rec.Columns())
	var made []arrow.Array
	defer func() {
		for _, a := range made {
			a.Release()
		}
	}()
	for c, f := range x.fields {
		a, err := constArray(mem, f.Type, x.values[i][c], n)
		if err != nil {
			return nil, fmt.Errorf("column %q: %w", f.Name, err)
		}
		made = append(made, a)
		cols = append(cols, a)
	}
	return array.NewRecordBatch(schema, cols, int64(n)), nil
}

// constArray makes n copies of v (nil: null) as type dt.
func constArray(mem memory.Allocator, dt arrow.DataType, v *string, n int) (arrow.Array, error) {
	b := array.NewBuilder(mem, dt)
	defer b.Release()
	b.Reserve(n)
	if v == nil {
		b.AppendNulls(n)
		return b.NewArray(), nil
	}
	switch b := b.(type) {
	case *array.StringBuilder:
		b.ReserveData(n * len(*v))
		for range n {
			b.Append(*v)
		}
	case *array.Int64Builder:
		x, err := strconv.ParseInt(*v, 10, 64)
		if err != nil {
			return nil, err
		}
		for range n {
			b.UnsafeAppend(x)
		}
	case *array.Date32Builder:
		t, err := time.Parse(time.DateOnly, *v)
		if err != nil {
			return nil, err
		}
		d := arrow.Date32FromTime(t)
		for range n {
			b.UnsafeAppend(d)
		}
	default:
		return nil, fmt.Errorf("no constant column of type %s", dt)
	}
	return b.NewArray(), nil
}

// stdinOf is the standard input a source reads: the plan's, or os.Stdin
// where Build runs without one (operator unit tests).
func stdinOf(st *engine.Stdin) *engine.Stdin {
	if st == nil {
		return engine.NewStdin(nil)
	}
	return st
}

// runStdin is what an instance reads for "-".
func runStdin(ic *engine.InstanceContext) io.Reader {
	if ic.Stdin != nil {
		return ic.Stdin
	}
	return os.Stdin
}

// stdinTextSample is the start of standard input as text (decompressed),
// cut after its last complete line unless it is the whole input: Build
// infers a text source's columns from it without consuming standard input.
func stdinTextSample(st *engine.Stdin, kind string) ([]byte, error) {
	head, err := st.Peek(engine.StdinPeekSize)
	if err != nil && err != io.EOF {
		return nil, err
	}
	whole := err == io.EOF
	tr, err := textin.OpenReader(bytes.NewReader(head), "standard input", kind)
	if err != nil {
		return nil, err
	}
	defer tr.Close()
	text, rerr := io.ReadAll(tr)
	if rerr != nil && whole {
		return nil, fmt.Errorf("read standard input: %w", rerr)
	}
	if !whole || rerr != nil {
		if i := bytes.LastIndexByte(text, '\n'); i >= 0 {
			text = text[:i+1]
		}
	}
	return text, nil
}

// openTextInput opens file i of s as text, or standard input (in); ctx
// is every read request's context (the run's, so that cancelling it
// cancels the reads in flight).
func openTextInput(ctx context.Context, s *fileSet, i int, in io.Reader, kind string) (*textin.Reader, string, error) {
	if s.stdin {
		r, err := textin.OpenReader(in, "standard input", kind)
		return r, "standard input", err
	}
	name := s.files[i]
	f, err := s.io[i].Open(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, name, err
	}
	size, err := f.Size()
	if err != nil {
		f.Close()
		return nil, name, err
	}
	src := newSeqReader(ctx, f, s.io[i].Options().Depth())
	r, err := textin.OpenFile(src, size, name, kind, f.Close)
	return r, name, err
}

// chooseIO selects the storage backend of every file (fileSet.io).
func (s *fileSet) chooseIO(c FileIO, use ioUse) error {
	if err := c.check(); err != nil {
		return err
	}
	if s.stdin && ((c.IO != "" && c.IO != "auto") || c.Direct) {
		return engine.Errf("io", "path - reads standard input, a stream no storage backend opens; drop io: and direct:")
	}
	s.io = make([]storage.Backend, len(s.files))
	for i, f := range s.files {
		b, err := c.choose(f, use)
		if err != nil {
			return err
		}
		s.io[i] = b
	}
	return nil
}

// describeIO is the plan's io line of a source's files (engine.IODescriber).
func (s *fileSet) describeIO() string {
	if s.stdin {
		return stdioLine
	}
	return describeIO(s.io)
}

// backend is the backend of input i; nil for standard input.
func (s *fileSet) backend(i int) storage.Backend {
	if s.stdin || i >= len(s.io) {
		return nil
	}
	return s.io[i]
}

// inputs is how many inputs a file set has (standard input counts one).
func (s *fileSet) inputs() int {
	if s.stdin {
		return 1
	}
	return len(s.files)
}

// name is the name of input i in errors.
func (s *fileSet) name(i int) string {
	if s.stdin {
		return "standard input"
	}
	return s.files[i]
}

// configFiles expands path entries for the engine's checks that no sink
// writes a file a source reads: globs and directories become their files;
// an entry that cannot be expanded stays as written.
func configFiles(entries []string) []string {
	var out []string
	for _, e := range entries {
		if e == stdinPath {
			out = append(out, e)
			continue
		}
		fs, err := resolvePaths("", []string{e})
		if err != nil || len(fs.files) == 0 {
			out = append(out, e)
			continue
		}
		out = append(out, fs.files...)
	}
	return out
}
