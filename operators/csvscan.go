package operators

import (
	"bytes"
	"encoding/binary"
	"encoding/csv"
	"errors"
	"io"
	"math/bits"
	"unicode/utf8"
	"unsafe"
)

// csvScanner splits RFC 4180 text into records of fields. It reads what
// encoding/csv's Reader reads, with the same options (Comma, Comment,
// LazyQuotes, FieldsPerRecord; ReuseRecord always), the same records and the
// same errors (*csv.ParseError with csv.ErrBareQuote, csv.ErrQuote or
// csv.ErrFieldCount, on the same line and column), and skips a UTF-8 byte
// order mark at the start. A differential fuzz test (FuzzCSVScan) holds it
// to that.
//
// Unlike encoding/csv it does not allocate per record: it scans a large
// read buffer (unquoted fields eight bytes at a time, the rest byte by byte)
// and returns fields as slices of that buffer, or
// of a scratch buffer for the quoted fields that needed unescaping ("" and
// \r\n inside quotes). The fields are valid until the next call to next.
//
// A record must fit in the buffer: when one runs past its end the scanner
// moves the partial record to the front, grows the buffer if the record
// fills it, reads more and scans the record again from its start.
type csvScanner struct {
	r    io.Reader
	buf  []byte
	pos  int  // buf[pos:end] is not yet scanned
	end  int  //
	eof  bool // r is exhausted: buf[pos:end] is the rest of the input
	bom  bool // the start has been checked for a byte order mark
	lazy bool

	comma    []byte // the delimiter, UTF-8 encoded
	comma0   byte   // comma[0]
	comment  []byte // the comment character, UTF-8 encoded; nil if none
	delimErr error  // the options are invalid: every next returns this

	// plain marks the bytes that do not end a run of an unquoted field;
	// quotedPlain those that do not end a run of a quoted one.
	plain, quotedPlain [256]bool
	// swar repeats each byte that is not plain in an unquoted field over
	// the eight bytes of a word (a byte twice when there are three).
	swar [4]uint64

	// fieldsPerRecord is csv.Reader.FieldsPerRecord: > 0 requires that many
	// fields per record, 0 sets it from the first record, < 0 checks nothing.
	fieldsPerRecord int

	line    int      // lines consumed so far
	fields  [][]byte // of the last record
	lines   []int    // line where each field of the last record starts
	scratch []byte   // unescaped quoted fields of the last record
}

// csvScanBuffer is the read buffer's size; it grows for a longer record.
const csvScanBuffer = 1 << 20

var errCSVInvalidDelim = errors.New("csv: invalid field or comment delimiter") // as encoding/csv's

// validCSVDelim is encoding/csv's validDelim.
func validCSVDelim(r rune) bool {
	return r != 0 && r != '"' && r != '\r' && r != '\n' && utf8.ValidRune(r) && r != utf8.RuneError
}

// newCSVScanner returns a scanner of r with buffer size bufSize (0:
// csvScanBuffer). comment 0 means none.
func newCSVScanner(r io.Reader, comma, comment rune, lazy bool, bufSize int) *csvScanner {
	if bufSize <= 0 {
		bufSize = csvScanBuffer
	}
	s := &csvScanner{r: r, buf: make([]byte, bufSize), lazy: lazy}
	if comma == comment || !validCSVDelim(comma) || (comment != 0 && !validCSVDelim(comment)) {
		s.delimErr = errCSVInvalidDelim
		return s
	}
	s.comma = utf8.AppendRune(nil, comma)
	s.comma0 = s.comma[0]
	if comment != 0 {
		s.comment = utf8.AppendRune(nil, comment)
	}
	for i := range s.plain {
		s.plain[i] = true
		s.quotedPlain[i] = true
	}
	for _, c := range []byte{s.comma0, '\n', '\r', '"'} {
		s.plain[c] = false
	}
	if lazy {
		s.plain['"'] = true // a quote inside an unquoted field is data
	}
	const lo = 0x0101010101010101
	s.swar = [4]uint64{lo * uint64(s.comma0), lo * '\n', lo * '\r', lo * '"'}
	if lazy {
		s.swar[3] = s.swar[2]
	}
	for _, c := range []byte{'\n', '\r', '"'} {
		s.quotedPlain[c] = false
	}
	return s
}

// special flags, with their high bit, the bytes of w (eight bytes of input,
// little-endian) that equal the byte repeated in sw0, sw1, sw2 or sw3
// (s.swar). Only the lowest flag is exact: a borrow may set flags above it,
// which is all a scan for the first special byte needs.
func special(w, sw0, sw1, sw2, sw3 uint64) uint64 {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	x0, x1, x2, x3 := w^sw0, w^sw1, w^sw2, w^sw3
	return ((x0 - lo) &^ x0 & hi) | ((x1 - lo) &^ x1 & hi) | ((x2 - lo) &^ x2 & hi) | ((x3 - lo) &^ x3 & hi)
}

// reset makes the scanner read data, a whole range of the input (no more
// comes after it), whose first line is lines+1. bom says whether a byte
// order mark may start it (only the input's first range). The scanner
// does not write to data, which stays the caller's.
func (s *csvScanner) reset(data []byte, lines int, bom bool) {
	s.r, s.buf, s.pos, s.end, s.eof = nil, data, 0, len(data), true
	s.bom, s.line = !bom, lines
}

// next returns the fields of the next record, valid until the next call, or
// io.EOF after the last one. The record is returned even with an
// ErrFieldCount error.
func (s *csvScanner) next() ([][]byte, error) {
	if s.delimErr != nil {
		return nil, s.delimErr
	}
	if !s.bom {
		for s.end-s.pos < 3 && !s.eof {
			if err := s.fill(); err != nil {
				return nil, err
			}
		}
		if bytes.HasPrefix(s.buf[s.pos:s.end], []byte("\xEF\xBB\xBF")) {
			s.pos += 3
		}
		s.bom = true
	}
	for {
		st, err := s.scan()
		switch st {
		case scanRecord:
			if s.fieldsPerRecord > 0 {
				if len(s.fields) != s.fieldsPerRecord {
					line := s.lines[0]
					return s.fields, &csv.ParseError{StartLine: line, Line: line, Column: 1, Err: csv.ErrFieldCount}
				}
			} else if s.fieldsPerRecord == 0 {
				s.fieldsPerRecord = len(s.fields)
			}
			return s.fields, nil
		case scanEOF:
			return nil, io.EOF
		case scanMore:
			if err := s.fill(); err != nil {
				return nil, err
			}
		default:
			return nil, err
		}
	}
}

// fieldLine is the line where field i of the last record starts.
func (s *csvScanner) fieldLine(i int) int { return s.lines[i] }

// fill moves the unscanned bytes to the front of the buffer, growing it if
// they fill it, and reads more after them.
func (s *csvScanner) fill() error {
	if s.pos > 0 {
		s.end = copy(s.buf, s.buf[s.pos:s.end])
		s.pos = 0
	}
	if s.end == len(s.buf) {
		s.buf = append(s.buf, make([]byte, len(s.buf))...)
		s.buf = s.buf[:cap(s.buf)]
	}
	for range 100 {
		n, err := s.r.Read(s.buf[s.end:])
		s.end += n
		if err == io.EOF {
			s.eof = true
			return nil
		}
		if err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
	}
	return io.ErrNoProgress
}

const (
	scanRecord = iota // s.fields holds a record
	scanEOF           // no more records
	scanMore          // the record runs past the buffer: fill and scan again
	scanError         // a parse error
)

// scan scans the record at s.pos, skipping comment and empty lines before
// it. It consumes what it scanned only when it returns a record or EOF.
func (s *csvScanner) scan() (int, error) {
	d := s.buf[s.pos:s.end]
	atEOF := s.eof
	i := 0
	// Skip comment lines and empty lines ("\n", "\r\n", a "\r" ending the
	// input), committing what was skipped.
	for {
		if i == len(d) {
			s.pos += i
			if atEOF {
				return scanEOF, nil
			}
			return scanMore, nil
		}
		c := d[i]
		if s.comment != nil && c == s.comment[0] {
			if len(d)-i < len(s.comment) && !atEOF {
				s.pos += i
				return scanMore, nil
			}
			if bytes.HasPrefix(d[i:], s.comment) {
				k := bytes.IndexByte(d[i:], '\n')
				if k < 0 {
					if !atEOF {
						s.pos += i
						return scanMore, nil
					}
					k = len(d) - i - 1
				}
				i += k + 1
				s.line++
				continue
			}
		}
		if c == '\n' {
			i++
			s.line++
			continue
		}
		if c == '\r' {
			if i+1 == len(d) {
				if !atEOF {
					s.pos += i
					return scanMore, nil
				}
				i++
				s.line++
				continue
			}
			if d[i+1] == '\n' {
				i += 2
				s.line++
				continue
			}
		}
		break
	}
	s.pos += i
	d = d[i:]
	i = 0

	recLine := s.line + 1
	cur := recLine     // the line being scanned
	lineStart := 0     // where it starts in d
	prevLineStart := 0 // where the line before it starts
	comma0, commaLen := s.comma0, len(s.comma)
	sw0, sw1, sw2, sw3 := s.swar[0], s.swar[1], s.swar[2], s.swar[3]
	s.fields, s.lines, s.scratch = s.fields[:0], s.lines[:0], s.scratch[:0]

	for {
		if i < len(d) && d[i] == '"' {
			// A quoted field: its text runs d[seg:] (after scratch[sc:] when
			// it had to be unescaped) up to the closing quote.
			s.lines = append(s.lines, cur)
			i++
			seg, sc, unescaped := i, len(s.scratch), false
			for {
				j := i
				for j < len(d) && s.quotedPlain[d[j]] {
					j++
				}
				end := j // where the text ends if the input does here
				if j == len(d) {
					if !atEOF {
						return scanMore, nil
					}
				} else {
					switch d[j] {
					case '\n':
						cur++
						prevLineStart, lineStart = lineStart, j+1
						i = j + 1
						continue
					case '\r':
						if j+1 == len(d) {
							if !atEOF {
								return scanMore, nil
							}
							break // a \r ending the input is dropped
						}
						if d[j+1] == '\n' { // \r\n reads as \n
							s.scratch = append(append(s.scratch, d[seg:j]...), '\n')
							unescaped = true
							seg, i = j+2, j+2
							cur++
							prevLineStart, lineStart = lineStart, j+2
						} else {
							i = j + 1
						}
						continue
					default: // '"'
						k := j + 1
						if k == len(d) && !atEOF {
							return scanMore, nil
						}
						if k < len(d) && d[k] == '"' { // "" reads as "
							s.scratch = append(s.scratch, d[seg:k]...)
							unescaped = true
							seg, i = k+1, k+1
							continue
						}
						if k < len(d) && d[k] == comma0 {
							if commaLen > 1 && len(d)-k < commaLen && !atEOF {
								return scanMore, nil
							}
							if commaLen == 1 || bytes.HasPrefix(d[k:], s.comma) {
								s.appendQuoted(d[seg:j], sc, unescaped)
								i = k + commaLen
								goto nextField
							}
						}
						if k == len(d) || d[k] == '\n' {
							s.appendQuoted(d[seg:j], sc, unescaped)
							return s.endRecord(k+1, cur)
						}
						if d[k] == '\r' {
							if k+1 == len(d) {
								if !atEOF {
									return scanMore, nil
								}
								s.appendQuoted(d[seg:j], sc, unescaped)
								return s.endRecord(k+1, cur)
							}
							if d[k+1] == '\n' {
								s.appendQuoted(d[seg:j], sc, unescaped)
								return s.endRecord(k+2, cur)
							}
						}
						if s.lazy { // the quote is text
							i = k
							continue
						}
						return scanError, &csv.ParseError{StartLine: recLine, Line: cur, Column: j - lineStart + 1, Err: csv.ErrQuote}
					}
				}
				// The input ends inside the quotes. encoding/csv reports the
				// position after the last line that had bytes once its \r\n
				// or final \r is dropped.
				if !s.lazy {
					line, start, n := cur, lineStart, len(d)-lineStart
					if n == 0 || (n == 1 && d[lineStart] == '\r') {
						line, start, n = cur-1, prevLineStart, lineStart-prevLineStart
					}
					if n >= 2 && d[start+n-2] == '\r' && d[start+n-1] == '\n' || start+n == len(d) && d[start+n-1] == '\r' {
						n--
					}
					return scanError, &csv.ParseError{StartLine: recLine, Line: line, Column: n + 1, Err: csv.ErrQuote}
				}
				s.appendQuoted(d[seg:end], sc, unescaped)
				return s.endRecord(len(d), cur)
			}
		}

		// An unquoted field runs to the delimiter or the end of the line.
		{
			s.lines = append(s.lines, cur)
			start := i
			j := i
			for {
				// Eight bytes at a time to the first that is not plain, then
				// byte by byte over the tail.
				for j+8 <= len(d) {
					if m := special(binary.LittleEndian.Uint64(d[j:]), sw0, sw1, sw2, sw3); m != 0 {
						j += bits.TrailingZeros64(m) >> 3
						goto stop
					}
					j += 8
				}
				for j < len(d) && s.plain[d[j]] {
					j++
				}
			stop:
				if j == len(d) {
					if !atEOF {
						return scanMore, nil
					}
					s.fields = append(s.fields, d[start:j])
					return s.endRecord(j, cur)
				}
				c := d[j]
				if c == comma0 {
					if commaLen == 1 {
						s.fields = append(s.fields, d[start:j])
						i = j + 1
						goto nextField
					}
					if len(d)-j < commaLen && !atEOF {
						return scanMore, nil
					}
					if bytes.HasPrefix(d[j:], s.comma) {
						s.fields = append(s.fields, d[start:j])
						i = j + commaLen
						goto nextField
					}
					j++
					continue
				}
				switch c {
				case '\n':
					s.fields = append(s.fields, d[start:j])
					return s.endRecord(j+1, cur)
				case '\r':
					if j+1 == len(d) {
						if !atEOF {
							return scanMore, nil
						}
						s.fields = append(s.fields, d[start:j])
						return s.endRecord(j+1, cur)
					}
					if d[j+1] == '\n' {
						s.fields = append(s.fields, d[start:j])
						return s.endRecord(j+2, cur)
					}
					j++
				default: // '"', and not lazy
					return scanError, &csv.ParseError{StartLine: recLine, Line: cur, Column: j - lineStart + 1, Err: csv.ErrBareQuote}
				}
			}
		}
	nextField:
	}
}

// quotedEmpty backs the field of a quoted empty value (""): an empty
// string, told apart from an unquoted empty field (null by default, as
// DuckDB reads it) by its data pointer.
var quotedEmpty = make([]byte, 0, 1)

// isQuotedEmpty tells whether field v was written "" in the file.
func isQuotedEmpty(v []byte) bool {
	return len(v) == 0 && cap(v) == 0 && unsafe.SliceData(v) == unsafe.SliceData(quotedEmpty)
}

// appendQuoted adds a quoted field whose text ends with tail, after
// scratch[sc:] if it was unescaped.
func (s *csvScanner) appendQuoted(tail []byte, sc int, unescaped bool) {
	if len(tail) == 0 && (!unescaped || len(s.scratch) == sc) {
		s.fields = append(s.fields, quotedEmpty[:0:0])
		return
	}
	if !unescaped {
		s.fields = append(s.fields, tail)
		return
	}
	s.scratch = append(s.scratch, tail...)
	s.fields = append(s.fields, s.scratch[sc:len(s.scratch):len(s.scratch)])
}

// endRecord consumes the record, n bytes of which the last is on line last.
func (s *csvScanner) endRecord(n, last int) (int, error) {
	s.pos += min(n, s.end-s.pos)
	s.line = last
	return scanRecord, nil
}
