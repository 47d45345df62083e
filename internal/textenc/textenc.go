package textenc

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

type kind uint8

const (
	kOther kind = iota
	kBool
	kInt8
	kInt16
	kInt32
	kInt64
	kUint8
	kUint16
	kUint32
	kUint64
	kFloat32
	kFloat64
	kString
	kLargeString
	kBinary
	kLargeBinary
	kDate32
	kDate64
	kTimestamp
)

const (
	layoutZone   = "2006-01-02T15:04:05.999999999Z07:00"
	layoutNoZone = "2006-01-02T15:04:05.999999999"
	layoutDate   = "2006-01-02"
)

// Column formats the values of one array. The zero value is ready for
// Reset; a Column may be reused across batches without allocating.
type Column struct {
	arr  arrow.Array
	kind kind
	unit arrow.TimeUnit
	tz   string // cached zone name for loc
	loc  *time.Location
}

// Reset points c at arr (borrowed; c must not outlive it).
func (c *Column) Reset(arr arrow.Array) {
	c.arr = arr
	c.kind = kindOf(arr)
	if c.kind == kTimestamp {
		ts := arr.DataType().(*arrow.TimestampType)
		c.unit = ts.Unit
		if ts.TimeZone != c.tz || c.loc == nil {
			c.tz = ts.TimeZone
			c.loc = time.UTC
			if ts.TimeZone != "" {
				if loc, err := ts.GetZone(); err == nil && loc != nil {
					c.loc = loc
				}
			}
		}
	}
}

func kindOf(arr arrow.Array) kind {
	switch arr.(type) {
	case *array.Boolean:
		return kBool
	case *array.Int8:
		return kInt8
	case *array.Int16:
		return kInt16
	case *array.Int32:
		return kInt32
	case *array.Int64:
		return kInt64
	case *array.Uint8:
		return kUint8
	case *array.Uint16:
		return kUint16
	case *array.Uint32:
		return kUint32
	case *array.Uint64:
		return kUint64
	case *array.Float32:
		return kFloat32
	case *array.Float64:
		return kFloat64
	case *array.String:
		return kString
	case *array.LargeString:
		return kLargeString
	case *array.Binary:
		return kBinary
	case *array.LargeBinary:
		return kLargeBinary
	case *array.Date32:
		return kDate32
	case *array.Date64:
		return kDate64
	case *array.Timestamp:
		return kTimestamp
	}
	return kOther
}

// IsNull reports whether value i is null.
func (c *Column) IsNull(i int) bool { return c.arr.IsNull(i) }

// Numeric reports whether the column holds numbers (for right-aligning).
func (c *Column) Numeric() bool { return c.kind >= kInt8 && c.kind <= kFloat64 }

// Textual reports whether the column's text is free-form (strings and
// types formatted by the fallback), so that it may need quoting.
func (c *Column) Textual() bool {
	return c.kind == kString || c.kind == kLargeString || c.kind == kOther
}

// AppendText appends value i as plain text (strings unquoted and
// unescaped). Value i must not be null.
func (c *Column) AppendText(dst []byte, i int) []byte {
	switch c.kind {
	case kBool:
		return strconv.AppendBool(dst, c.arr.(*array.Boolean).Value(i))
	case kInt8:
		return strconv.AppendInt(dst, int64(c.arr.(*array.Int8).Value(i)), 10)
	case kInt16:
		return strconv.AppendInt(dst, int64(c.arr.(*array.Int16).Value(i)), 10)
	case kInt32:
		return strconv.AppendInt(dst, int64(c.arr.(*array.Int32).Value(i)), 10)
	case kInt64:
		return strconv.AppendInt(dst, c.arr.(*array.Int64).Value(i), 10)
	case kUint8:
		return strconv.AppendUint(dst, uint64(c.arr.(*array.Uint8).Value(i)), 10)
	case kUint16:
		return strconv.AppendUint(dst, uint64(c.arr.(*array.Uint16).Value(i)), 10)
	case kUint32:
		return strconv.AppendUint(dst, uint64(c.arr.(*array.Uint32).Value(i)), 10)
	case kUint64:
		return strconv.AppendUint(dst, c.arr.(*array.Uint64).Value(i), 10)
	case kFloat32:
		return AppendFloat(dst, float64(c.arr.(*array.Float32).Value(i)), 32)
	case kFloat64:
		return AppendFloat(dst, c.arr.(*array.Float64).Value(i), 64)
	case kString:
		return append(dst, c.arr.(*array.String).Value(i)...)
	case kLargeString:
		return append(dst, c.arr.(*array.LargeString).Value(i)...)
	case kBinary:
		return base64.StdEncoding.AppendEncode(dst, c.arr.(*array.Binary).Value(i))
	case kLargeBinary:
		return base64.StdEncoding.AppendEncode(dst, c.arr.(*array.LargeBinary).Value(i))
	case kDate32:
		return c.arr.(*array.Date32).Value(i).ToTime().AppendFormat(dst, layoutDate)
	case kDate64:
		return c.arr.(*array.Date64).Value(i).ToTime().AppendFormat(dst, layoutDate)
	case kTimestamp:
		t := c.arr.(*array.Timestamp).Value(i).ToTime(c.unit)
		if c.tz == "" {
			return t.AppendFormat(dst, layoutNoZone)
		}
		if c.loc != time.UTC {
			t = t.In(c.loc)
		}
		return t.AppendFormat(dst, layoutZone)
	}
	return append(dst, c.arr.ValueStr(i)...)
}

// AppendJSON appends value i as a JSON value ("null" when null).
func (c *Column) AppendJSON(dst []byte, i int) []byte {
	if c.arr.IsNull(i) {
		return append(dst, "null"...)
	}
	switch c.kind {
	case kFloat32, kFloat64:
		var f float64
		if c.kind == kFloat32 {
			f = float64(c.arr.(*array.Float32).Value(i))
		} else {
			f = c.arr.(*array.Float64).Value(i)
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return append(dst, "null"...) // JSON has no NaN or infinities
		}
		return c.AppendText(dst, i)
	case kString:
		return AppendJSONString(dst, c.arr.(*array.String).Value(i))
	case kLargeString:
		return AppendJSONString(dst, c.arr.(*array.LargeString).Value(i))
	case kBinary, kLargeBinary, kDate32, kDate64, kTimestamp:
		dst = append(dst, '"')
		dst = c.AppendText(dst, i) // no characters that need escaping
		return append(dst, '"')
	case kOther:
		b, err := json.Marshal(c.arr.GetOneForMarshal(i))
		if err != nil {
			return AppendJSONString(dst, c.arr.ValueStr(i))
		}
		return append(dst, b...)
	}
	return c.AppendText(dst, i)
}

// AppendCSV appends value i as a CSV field for delimiter delim, quoting it
// (RFC 4180) when it holds the delimiter, a quote, a line break or leading
// or trailing space, and writing an empty string as "". Nulls must be
// handled by the caller.
func (c *Column) AppendCSV(dst []byte, i int, delim byte) []byte {
	start := len(dst)
	dst = c.AppendText(dst, i)
	if len(dst) == start && c.Textual() {
		return append(dst, '"', '"')
	}
	return QuoteCSVTail(dst, start, delim)
}

// QuoteCSVTail quotes dst[start:] in place if it needs quoting as a CSV
// field for delimiter delim.
func QuoteCSVTail(dst []byte, start int, delim byte) []byte {
	field := dst[start:]
	need := len(field) > 0 && (field[0] == ' ' || field[0] == '\t' || field[len(field)-1] == ' ' || field[len(field)-1] == '\t')
	quotes := 0
	for _, b := range field {
		switch b {
		case '"':
			quotes++
			need = true
		case '\n', '\r', delim:
			need = true
		}
	}
	if !need {
		return dst
	}
	n := len(field)
	grow := 2 + quotes
	for range grow {
		dst = append(dst, 0)
	}
	// Shift right to left, doubling quotes.
	w := start + n + grow - 1
	dst[w] = '"'
	w--
	for r := start + n - 1; r >= start; r-- {
		dst[w] = dst[r]
		w--
		if dst[r] == '"' {
			dst[w] = '"'
			w--
		}
	}
	dst[w] = '"'
	return dst
}

// AppendFloat formats f the way encoding/json does, adding ".0" to
// integral values. bits is 32 or 64.
func AppendFloat(dst []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, "NaN"...)
	case math.IsInf(f, 1):
		return append(dst, "+Inf"...)
	case math.IsInf(f, -1):
		return append(dst, "-Inf"...)
	}
	start := len(dst)
	abs := math.Abs(f)
	fmtc := byte('f')
	if abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			fmtc = 'e'
		}
	}
	dst = strconv.AppendFloat(dst, f, fmtc, -1, bits)
	if fmtc == 'e' {
		// clean up e-09 to e-9, as encoding/json does
		n := len(dst)
		if n-start >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
		return dst
	}
	for _, b := range dst[start:] {
		if b == '.' {
			return dst
		}
	}
	return append(dst, '.', '0')
}

const hex = "0123456789abcdef"

// AppendJSONString appends s as a JSON string literal.
func AppendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
