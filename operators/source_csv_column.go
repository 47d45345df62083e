package operators

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/zflowdev/zflow/internal/coltype"
	"github.com/zflowdev/zflow/internal/fastts"
)

// csvKind picks how a column's text is parsed.
type csvKind uint8

const (
	csvOther csvKind = iota // through the builder interface
	csvString
	csvInt64
	csvInt32
	csvFloat64
	csvTimestamp
	csvDate32
	csvBool
)

// csvColumn parses one column's text into its builder. The common types
// append with UnsafeAppend into capacity Run reserved for the batch; the
// others go through the Builder interface.
type csvColumn struct {
	name     string
	dt       arrow.DataType
	b        array.Builder
	kind     csvKind
	unit     arrow.TimeUnit
	scale    int  // fraction digits of unit, for fastts
	truncate bool // a timestamp drops fraction digits finer than unit
	tsType   *arrow.TimestampType
	lastData int // string bytes of the previous batch, to reserve
	out      int // the column's index in the batch; -1: not read (b is nil)

	str *array.BinaryBuilder // csvString
	i64 *array.Int64Builder
	i32 *array.Int32Builder
	f64 *array.Float64Builder
	ts  *array.TimestampBuilder
	d32 *array.Date32Builder
	bln *array.BooleanBuilder

	scratch []byte // decoded base64, or a timestamp shortened to its unit
}

func newCSVColumn(f arrow.Field, b array.Builder, truncate bool) csvColumn {
	c := csvColumn{name: f.Name, dt: f.Type, b: b, truncate: truncate}
	switch b := b.(type) {
	case *array.StringBuilder:
		c.kind, c.str = csvString, b.BinaryBuilder
	case *array.Int64Builder:
		c.kind, c.i64 = csvInt64, b
	case *array.Int32Builder:
		c.kind, c.i32 = csvInt32, b
	case *array.Float64Builder:
		c.kind, c.f64 = csvFloat64, b
	case *array.TimestampBuilder:
		c.kind, c.ts = csvTimestamp, b
		c.tsType = f.Type.(*arrow.TimestampType)
		c.unit = c.tsType.Unit
		c.scale = tsScale(c.unit)
	case *array.Date32Builder:
		c.kind, c.d32 = csvDate32, b
	case *array.BooleanBuilder:
		c.kind, c.bln = csvBool, b
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

func csvParseErr(v []byte, dt arrow.DataType) error {
	s := string(v)
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return fmt.Errorf("cannot parse %q as %s", s, coltype.Name(dt))
}

// unsafeString views b, which the next record overwrites, as a string for a
// parser that does not keep it: strconv copies the text into the errors it
// returns, and the time and arrow errors are dropped (csvParseErr quotes a
// copy).
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// parseInt reads a plain decimal of at most 18 digits with an optional
// sign; ok is false for anything else, which strconv then decides.
func parseInt(b []byte) (v int64, ok bool) {
	i, neg := 0, false
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		i, neg = 1, b[0] == '-'
	}
	if n := len(b) - i; n < 1 || n > 18 {
		return 0, false
	}
	for ; i < len(b); i++ {
		d := b[i] - '0'
		if d > 9 {
			return 0, false
		}
		v = v*10 + int64(d)
	}
	if neg {
		v = -v
	}
	return v, true
}

// float64pow10 holds the powers of ten a float64 holds exactly.
var float64pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// parseFloat reads a plain decimal ([+-]digits[.digits]) of at most 15
// digits; ok is false for anything else, which strconv then decides. Such a
// value is m / 10^k with m < 2^52 and k ≤ 15, both exact in a float64, so
// one division rounds it correctly (Clinger's fast path): the same bits
// strconv.ParseFloat returns, as it takes that path first for these inputs.
func parseFloat(b []byte) (float64, bool) {
	i, neg := 0, false
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		i, neg = 1, b[0] == '-'
	}
	var m uint64
	start, dot := i, -1
	for ; i < len(b); i++ {
		d := b[i] - '0'
		if d <= 9 {
			m = m*10 + uint64(d)
			continue
		}
		if b[i] != '.' || dot >= 0 {
			return 0, false
		}
		dot = i
	}
	digits := len(b) - start
	frac := 0
	if dot >= 0 {
		digits--
		frac = len(b) - dot - 1
		if frac == 0 || dot == start {
			return 0, false
		}
	}
	if digits < 1 || digits > 15 {
		return 0, false
	}
	f := float64(m)
	if neg {
		f = -f
	}
	return f / float64pow10[frac], true
}

// append parses v, which is not a null spelling, into the column. The
// builder has room for it (Run reserves a batch's rows).
func (c *csvColumn) append(v []byte) error {
	if c.kind == csvString {
		c.str.Append(v)
		return nil
	}
	if len(v) > 0 && (v[0] == ' ' || v[len(v)-1] == ' ' || v[0] == '\t' || v[len(v)-1] == '\t') {
		v = bytes.TrimSpace(v) // spaces around a number or a date are not part of it
	}
	switch c.kind {
	case csvInt64:
		x, ok := parseInt(v)
		if !ok {
			var err error
			if x, err = strconv.ParseInt(unsafeString(v), 10, 64); err != nil {
				return csvParseErr(v, c.dt)
			}
		}
		c.i64.UnsafeAppend(x)
	case csvFloat64:
		x, ok := parseFloat(v)
		if !ok {
			var err error
			x, err = strconv.ParseFloat(unsafeString(v), 64)
			if err != nil && !errors.Is(err, strconv.ErrRange) {
				return csvParseErr(v, c.dt)
			}
		}
		c.f64.UnsafeAppend(x)
	case csvTimestamp:
		x, err := parseTimestampText(v, c.tsType, c.scale, c.truncate, &c.scratch)
		if err != nil {
			return err
		}
		c.ts.UnsafeAppend(arrow.Timestamp(x))
	case csvInt32:
		x, ok := parseInt(v)
		if !ok || x != int64(int32(x)) {
			var err error
			if x, err = strconv.ParseInt(unsafeString(v), 10, 32); err != nil {
				return csvParseErr(v, c.dt)
			}
		}
		c.i32.UnsafeAppend(int32(x))
	case csvDate32:
		x, ok := fastts.Date(v)
		if !ok {
			t, err := time.Parse(time.DateOnly, unsafeString(v))
			if err != nil {
				return csvParseErr(v, c.dt)
			}
			x = int64(arrow.Date32FromTime(t))
		}
		c.d32.UnsafeAppend(arrow.Date32(x))
	case csvBool:
		x, err := strconv.ParseBool(unsafeString(v))
		if err != nil {
			return csvParseErr(v, c.dt)
		}
		c.bln.UnsafeAppend(x)
	default:
		return c.appendOther(v)
	}
	return nil
}

// appendOther parses the less common types.
func (c *csvColumn) appendOther(v []byte) error {
	s := unsafeString(v)
	switch b := c.b.(type) {
	case *array.Int8Builder:
		x, err := strconv.ParseInt(s, 10, 8)
		if err != nil {
			return csvParseErr(v, c.dt)
		}
		b.Append(int8(x))
	case *array.Int16Builder:
		x, err := strconv.ParseInt(s, 10, 16)
		if err != nil {
			return csvParseErr(v, c.dt)
		}
		b.Append(int16(x))
	case *array.Uint8Builder:
		x, err := strconv.ParseUint(s, 10, 8)
		if err != nil {
			return csvParseErr(v, c.dt)
		}
		b.Append(uint8(x))
	case *array.Uint16Builder:
		x, err := strconv.ParseUint(s, 10, 16)
		if err != nil {
			return csvParseErr(v, c.dt)
		}
		b.Append(uint16(x))
	case *array.Uint32Builder:
		x, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return csvParseErr(v, c.dt)
		}
		b.Append(uint32(x))
	case *array.Uint64Builder:
		x, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return csvParseErr(v, c.dt)
		}
		b.Append(x)
	case *array.Float32Builder:
		x, err := strconv.ParseFloat(s, 32)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return csvParseErr(v, c.dt)
		}
		b.Append(float32(x))
	case *array.BinaryBuilder:
		n := base64.StdEncoding.DecodedLen(len(v))
		if cap(c.scratch) < n {
			c.scratch = make([]byte, n)
		}
		n, err := base64.StdEncoding.Decode(c.scratch[:n], v)
		if err != nil {
			return fmt.Errorf("cannot decode %q as base64 binary", s)
		}
		b.Append(c.scratch[:n])
	default:
		return fmt.Errorf("type %s is not supported by the csv reader", c.dt)
	}
	return nil
}
