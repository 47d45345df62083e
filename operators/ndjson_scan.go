package operators

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	gojson "github.com/goccy/go-json" // arrow-go's UnmarshalOne takes its decoder

	"github.com/zflowdev/zflow/internal/fastts"
)

// ndjsonScanner parses the JSON object of one line straight into the
// column builders: no tokens, no interface values, no decoder per line.
// It reads the values the common column types hold — int64 from plain
// integers, float64 from numbers, bool from true/false, strings with every
// JSON escape (surrogate pairs joined, a lone surrogate or a byte that is
// not UTF-8 read as U+FFFD, as encoding/json does), date32 and timestamps
// through internal/fastts, null, missing keys (null) and keys that are not
// columns (an error or skipped, per unknown_keys).
//
// Everything else — a string in a number column, a number in a timestamp
// column, int32, uint8, float32, binary, a timestamp fastts does not read —
// is rare, and goes to arrow-go's UnmarshalOne for that one value (its
// bytes, through goccy/go-json), so that the types accept and refuse
// exactly what the decoder this scanner replaced did, with its messages. A
// differential fuzz test (FuzzNDJSONScan) holds the scanner to that.
//
// The scanner is strict where goccy/go-json's token reader was lax: a line
// must be one RFC 8259 object (goccy's Token skipped a missing colon or a
// stray comma, read 01 as 1 and \uZZZZ as NUL); such a line now fails the
// run naming its place.
type ndjsonScanner struct {
	cols  []ndjsonColumn
	index map[string]int // key → column (the first of that name)
	seen  []uint32       // per column, the row (gen) that set it
	gen   uint32

	unknownErr bool   // a key that is not a column fails (else it is skipped)
	path, hint string // for an UnknownKeyError
	unknown    []string

	scratch   []byte // a string's unescaped text
	tsScratch []byte // a timestamp cut to its unit
	line      int64  // the line being parsed, for errors
}

// ndKind picks how a column's values are read.
type ndKind uint8

const (
	ndOther ndKind = iota // through UnmarshalOne
	ndString
	ndInt64
	ndFloat64
	ndBool
	ndDate32
	ndTimestamp
	ndTruncTS // a timestamp column with truncate: true: strings only
)

type ndjsonColumn struct {
	name   string
	kind   ndKind
	b      array.Builder
	str    *array.BinaryBuilder
	i64    *array.Int64Builder
	f64    *array.Float64Builder
	bln    *array.BooleanBuilder
	d32    *array.Date32Builder
	ts     *array.TimestampBuilder
	tsType *arrow.TimestampType
	scale  int
	zoned  bool // the column's zone is UTC: a string must carry a zone (arrow's rule)
	fastTS bool // fastts can read its strings (no zone, or UTC)

	lastData int // string bytes of the previous batch, to reserve
	out      int // the column's index in the batch; -1: not read (b is nil)
}

// newNDJSONScanner returns a scanner of rows of schema into bld (built
// with schema). trunc names the timestamp columns declared truncate: true.
// With unknownErr, a key that is not a column fails with an
// UnknownKeyError naming path, its line and hint.
func newNDJSONScanner(schema *arrow.Schema, bld *array.RecordBuilder, trunc map[string]bool, unknownErr bool, path, hint string) *ndjsonScanner {
	return newNDJSONScannerOf(schema, func(i int) (int, bool) { return i, true }, bld, trunc, unknownErr, path, hint)
}

// newNDJSONScannerOf is newNDJSONScanner where only some columns of schema
// are read: kept(i) says whether column i is, and which column of bld it
// goes to. The value of a key whose column is not read is checked as JSON
// and skipped, as an unknown key's is with unknown_keys: ignore.
func newNDJSONScannerOf(schema *arrow.Schema, kept func(int) (int, bool), bld *array.RecordBuilder, trunc map[string]bool, unknownErr bool, path, hint string) *ndjsonScanner {
	s := &ndjsonScanner{
		cols:       make([]ndjsonColumn, schema.NumFields()),
		index:      make(map[string]int, schema.NumFields()),
		seen:       make([]uint32, schema.NumFields()),
		unknownErr: unknownErr, path: path, hint: hint,
	}
	for i, f := range schema.Fields() {
		if _, dup := s.index[f.Name]; !dup {
			s.index[f.Name] = i
		}
		k, read := kept(i)
		if !read {
			s.cols[i] = ndjsonColumn{name: f.Name, out: -1}
			continue
		}
		c := ndjsonColumn{name: f.Name, b: bld.Field(k), out: k}
		switch b := c.b.(type) {
		case *array.StringBuilder:
			c.kind, c.str = ndString, b.BinaryBuilder
		case *array.Int64Builder:
			c.kind, c.i64 = ndInt64, b
		case *array.Float64Builder:
			c.kind, c.f64 = ndFloat64, b
		case *array.BooleanBuilder:
			c.kind, c.bln = ndBool, b
		case *array.Date32Builder:
			c.kind, c.d32 = ndDate32, b
		case *array.TimestampBuilder:
			c.kind, c.ts = ndTimestamp, b
			c.tsType = f.Type.(*arrow.TimestampType)
			c.scale = tsScale(c.tsType.Unit)
			c.zoned = c.tsType.TimeZone != ""
			c.fastTS = c.tsType.TimeZone == "" || c.tsType.TimeZone == "UTC"
			if trunc[f.Name] {
				c.kind = ndTruncTS
			}
		}
		s.cols[i] = c
	}
	return s
}

// reserve makes room for n rows (and the string bytes of the last batch).
func (s *ndjsonScanner) reserve(n int) {
	for i := range s.cols {
		c := &s.cols[i]
		if c.b == nil {
			continue
		}
		c.b.Reserve(n)
		if c.str != nil && c.lastData > 0 {
			c.str.ReserveData(c.lastData)
		}
	}
}

// noteData remembers the string bytes of batch rec, to reserve as much for
// the next.
func (s *ndjsonScanner) noteData(rec arrow.RecordBatch) {
	for i := range s.cols {
		if s.cols[i].out < 0 {
			continue
		}
		if a, ok := rec.Column(s.cols[i].out).(*array.String); ok {
			s.cols[i].lastData = len(a.ValueBytes())
		}
	}
}

// ndjsonTruncErr is the error of a value in a truncating timestamp column,
// which names its key (the reader's message without the line, kept from
// when such columns were parsed after the batch).
type ndjsonTruncErr struct {
	key string
	err error
}

func (e *ndjsonTruncErr) Error() string { return fmt.Sprintf("key %q: %v", e.key, e.err) }
func (e *ndjsonTruncErr) Unwrap() error { return e.err }

// blank reports whether b holds only JSON whitespace.
func blank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// syntaxErr describes the byte at i of line b that is not what JSON allows.
func syntaxErr(b []byte, i int, want string) error {
	if i >= len(b) || blank(b[i:]) {
		return errors.New("unexpected end of the line in a JSON object")
	}
	return fmt.Errorf("invalid character %s at column %d, %s", quoteChar(b[i]), i+1, want)
}

func quoteChar(c byte) string {
	if c == '\'' {
		return `'\''`
	}
	if c == '"' {
		return `'"'`
	}
	if c < 0x20 || c >= 0x7f {
		return fmt.Sprintf("byte 0x%02x", c)
	}
	return "'" + string(rune(c)) + "'"
}

// row appends the object on line (one line of text, its newline included
// or not) as one row. On error the builders may hold part of the row: the
// run fails.
func (s *ndjsonScanner) row(line []byte) error {
	s.gen++
	if s.gen == 0 { // wrapped: forget every mark
		clear(s.seen)
		s.gen = 1
	}
	s.unknown = s.unknown[:0]
	i := skipWS(line, 0)
	if i >= len(line) || line[i] != '{' {
		if i < len(line) && line[i] == '[' {
			return errors.New("want a JSON object, got an array")
		}
		return syntaxErr(line, i, "want a JSON object")
	}
	i = skipWS(line, i+1)
	if i < len(line) && line[i] == '}' {
		i++
	} else {
		for {
			if i >= len(line) || line[i] != '"' {
				return syntaxErr(line, i, "want a key")
			}
			key, next, err := s.str(line, i)
			if err != nil {
				return err
			}
			i = skipWS(line, next)
			if i >= len(line) || line[i] != ':' {
				return syntaxErr(line, i, "want ':' after a key")
			}
			i = skipWS(line, i+1)
			col, known := s.index[string(key)]
			if !known {
				if err := s.unknownKey(key); err != nil {
					return err
				}
				if i, err = s.skipValue(line, i, 0); err != nil {
					return err
				}
			} else {
				if s.seen[col] == s.gen {
					return fmt.Errorf("key %s shows up twice in row to be decoded", key)
				}
				s.seen[col] = s.gen
				if s.cols[col].b == nil {
					i, err = s.skipValue(line, i, 0) // a column nobody reads
				} else {
					i, err = s.value(&s.cols[col], line, i)
				}
				if err != nil {
					return err
				}
			}
			i = skipWS(line, i)
			if i < len(line) && line[i] == ',' {
				i = skipWS(line, i+1)
				continue
			}
			if i < len(line) && line[i] == '}' {
				i++
				break
			}
			return syntaxErr(line, i, "want ',' or '}' after a value")
		}
	}
	if i = skipWS(line, i); i < len(line) {
		return errors.New("more than one JSON value on the line: objects are not one per line")
	}
	for k := range s.cols {
		if s.seen[k] != s.gen && s.cols[k].b != nil {
			s.cols[k].b.AppendNull()
		}
	}
	return nil
}

// unknownKey handles a key that is not a column.
func (s *ndjsonScanner) unknownKey(key []byte) error {
	if s.unknownErr {
		return &UnknownKeyError{Path: s.path, Line: s.line, Key: string(key), Hint: s.hint}
	}
	for _, k := range s.unknown {
		if k == string(key) {
			return fmt.Errorf("key %s shows up twice in row to be decoded", key)
		}
	}
	s.unknown = append(s.unknown, string(key))
	return nil
}

// value reads the value at line[i] into c and returns where it ends.
func (s *ndjsonScanner) value(c *ndjsonColumn, line []byte, i int) (int, error) {
	if i >= len(line) {
		return i, syntaxErr(line, i, "want a value")
	}
	switch ch := line[i]; {
	case ch == '"':
		v, next, err := s.str(line, i)
		if err != nil {
			return next, err
		}
		switch c.kind {
		case ndString:
			c.str.Append(v)
			return next, nil
		case ndDate32:
			if d, ok := fastts.Date(v); ok {
				c.d32.Append(arrow.Date32(d))
				return next, nil
			}
		case ndTimestamp:
			if c.fastTS && len(v) > 10 {
				if x, ok := fastts.Timestamp(v, c.scale); ok && hasZone(v) == c.zoned {
					c.ts.Append(arrow.Timestamp(x))
					return next, nil
				}
			}
		case ndTruncTS:
			x, err := parseTimestampText(v, c.tsType, c.scale, true, &s.tsScratch)
			if err != nil {
				return next, &ndjsonTruncErr{key: c.name, err: err}
			}
			c.ts.Append(arrow.Timestamp(x))
			return next, nil
		}
		return next, s.slow(c, line[i:next])
	case ch == '-' || (ch >= '0' && ch <= '9'):
		next, err := scanNumber(line, i)
		if err != nil {
			return next, err
		}
		v := line[i:next]
		switch c.kind {
		case ndInt64:
			if x, ok := parseInt(v); ok {
				c.i64.Append(x)
				return next, nil
			}
		case ndFloat64:
			x, ok := parseFloat(v)
			if !ok {
				var err error
				if x, err = strconv.ParseFloat(unsafeString(v), 64); err != nil {
					return next, &gojson.UnmarshalTypeError{Value: string(v), Type: reflect.TypeOf(float64(0))}
				}
			}
			c.f64.Append(x)
			return next, nil
		case ndString, ndTruncTS:
			return next, &gojson.UnmarshalTypeError{Value: string(v), Type: reflect.TypeOf("")}
		}
		return next, s.slow(c, v)
	case ch == 't' || ch == 'f':
		lit, b := "true", true
		if ch == 'f' {
			lit, b = "false", false
		}
		next := i + len(lit)
		if next > len(line) || string(line[i:next]) != lit {
			return i, syntaxErr(line, i, "want a value")
		}
		switch c.kind {
		case ndBool:
			c.bln.Append(b)
			return next, nil
		case ndString, ndTruncTS:
			return next, &gojson.UnmarshalTypeError{Value: lit, Type: reflect.TypeOf("")}
		}
		return next, s.slow(c, line[i:next])
	case ch == 'n':
		next := i + 4
		if next > len(line) || string(line[i:next]) != "null" {
			return i, syntaxErr(line, i, "want a value")
		}
		c.b.AppendNull()
		return next, nil
	case ch == '{' || ch == '[':
		return i, fmt.Errorf("key %q holds a nested object or array, which the ndjson source does not support", c.name)
	}
	return i, syntaxErr(line, i, "want a value")
}

// hasZone tells whether a timestamp fastts read carries a zone (Z or an
// offset after the seconds).
func hasZone(v []byte) bool {
	n := len(v)
	return v[n-1] == 'Z' || (n > 19 && (v[n-5] == '+' || v[n-5] == '-' || v[n-6] == '+' || v[n-6] == '-'))
}

// slow hands one value's JSON text to the builder's UnmarshalOne, the
// reader this scanner replaced, for the rare cases the scanner does not
// read itself.
func (s *ndjsonScanner) slow(c *ndjsonColumn, text []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed input (decoder panicked: %v)", r)
		}
	}()
	dec := gojson.NewDecoder(bytes.NewReader(text))
	dec.UseNumber()
	return c.b.(interface {
		UnmarshalOne(*gojson.Decoder) error
	}).UnmarshalOne(dec)
}

// scanNumber checks the JSON number at line[i] and returns where it ends.
func scanNumber(b []byte, i int) (int, error) {
	start := i
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i]-'0' <= 9 {
			i++
		}
	default:
		return i, syntaxErr(b, i, "in a number")
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for i < len(b) && b[i]-'0' <= 9 {
			i++
		}
		if i == d {
			return i, syntaxErr(b, i, "want a digit after the decimal point")
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && b[i]-'0' <= 9 {
			i++
		}
		if i == d {
			return i, syntaxErr(b, i, "want a digit in the exponent")
		}
	}
	if i < len(b) && (b[i] == '.' || b[i] == '-' || b[i] == '+' || b[i]-'0' <= 9 || b[i] == 'e' || b[i] == 'E') {
		return i, syntaxErr(b, start, fmt.Sprintf("a number %q", b[start:i+1]))
	}
	return i, nil
}

// str reads the string whose opening quote is at b[i]: its text (a slice
// of b when it has no escape and is ASCII, else of s.scratch, valid until
// the next call) and where it ends.
func (s *ndjsonScanner) str(b []byte, i int) ([]byte, int, error) {
	i++
	start := i
	for i < len(b) {
		c := b[i]
		if c == '"' {
			return b[start:i], i + 1, nil
		}
		if c == '\\' || c < 0x20 || c >= 0x80 {
			break
		}
		i++
	}
	return s.strSlow(b, start, i)
}

// strSlow reads a string that holds an escape, a byte that is not ASCII or
// a control character, from start (after the quote); b[start:i] is plain.
func (s *ndjsonScanner) strSlow(b []byte, start, i int) ([]byte, int, error) {
	out := append(s.scratch[:0], b[start:i]...)
	defer func() { s.scratch = out[:0] }() // keep what it grew to
	for i < len(b) {
		c := b[i]
		switch {
		case c == '"':
			return out, i + 1, nil
		case c < 0x20:
			return nil, i, fmt.Errorf("invalid character %s in a string at column %d", quoteChar(c), i+1)
		case c == '\\':
			if i+1 >= len(b) {
				return nil, i, errors.New("unexpected end of the line in a string")
			}
			e := b[i+1]
			i += 2
			switch e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r, ok := hex4(b, i)
				if !ok {
					return nil, i, fmt.Errorf("invalid \\u escape at column %d", i-1)
				}
				i += 4
				if utf16.IsSurrogate(r) {
					// A high surrogate followed by a low one is one rune;
					// anything else reads as U+FFFD, as encoding/json does.
					r2 := rune(-1)
					if i+6 <= len(b) && b[i] == '\\' && b[i+1] == 'u' {
						if x, ok := hex4(b, i+2); ok {
							r2 = x
						}
					}
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						i += 6
						r = dec
					} else {
						r = utf8.RuneError
					}
				}
				out = utf8.AppendRune(out, r)
			default:
				return nil, i, fmt.Errorf("invalid escape %s in a string at column %d", quoteChar(e), i-1)
			}
		case c < 0x80:
			out = append(out, c)
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				out = utf8.AppendRune(out, utf8.RuneError)
			} else {
				out = append(out, b[i:i+size]...)
			}
			i += size
		}
	}
	return nil, i, errors.New("unexpected end of the line in a string")
}

// hex4 reads the four hex digits at b[i].
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// skipValue checks the JSON value at b[i] (of a key that is not a column)
// and returns where it ends; depth bounds nesting.
func (s *ndjsonScanner) skipValue(b []byte, i, depth int) (int, error) {
	if depth > 1000 {
		return i, errors.New("values nested deeper than 1000 levels")
	}
	if i >= len(b) {
		return i, syntaxErr(b, i, "want a value")
	}
	switch c := b[i]; {
	case c == '"':
		_, next, err := s.str(b, i)
		return next, err
	case c == '-' || (c >= '0' && c <= '9'):
		return scanNumber(b, i)
	case c == 't' && bytes.HasPrefix(b[i:], []byte("true")):
		return i + 4, nil
	case c == 'f' && bytes.HasPrefix(b[i:], []byte("false")):
		return i + 5, nil
	case c == 'n' && bytes.HasPrefix(b[i:], []byte("null")):
		return i + 4, nil
	case c == '[' || c == '{':
		end := byte(']')
		if c == '{' {
			end = '}'
		}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == end {
			return i + 1, nil
		}
		for {
			var err error
			if c == '{' {
				if i >= len(b) || b[i] != '"' {
					return i, syntaxErr(b, i, "want a key")
				}
				if i, err = s.skipValue(b, i, depth+1); err != nil {
					return i, err
				}
				if i = skipWS(b, i); i >= len(b) || b[i] != ':' {
					return i, syntaxErr(b, i, "want ':' after a key")
				}
				i = skipWS(b, i+1)
			}
			if i, err = s.skipValue(b, i, depth+1); err != nil {
				return i, err
			}
			i = skipWS(b, i)
			if i < len(b) && b[i] == ',' {
				i = skipWS(b, i+1)
				continue
			}
			if i < len(b) && b[i] == end {
				return i + 1, nil
			}
			return i, syntaxErr(b, i, "want ',' or the end of the value")
		}
	}
	return i, syntaxErr(b, i, "want a value")
}
