package operators

import (
	"fmt"
	"strings"
	"time"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/internal/coltype"
	"github.com/zflowdev/zflow/internal/fastts"
)

// Timestamps in text (csv fields, ndjson strings) are parsed into the
// column's unit. A value with more fraction digits than the unit holds
// ("2024-01-01 00:00:00.123456" into timestamp_ms) is an error by default:
// a source never silently drops digits. A column declared with
// truncate: true drops the extra digits instead (toward the past on the
// clock face: .123456 is .123), as DuckDB's casts do.

// tsScale is the number of fraction digits of unit u.
func tsScale(u arrow.TimeUnit) int { return [...]int{0, 3, 6, 9}[u&3] }

// parseTimestampText parses v as a timestamp of type dt (whose unit has
// scale fraction digits); with truncate, fraction digits past the unit are dropped, using
// scratch (which it may grow) for the shortened text.
func parseTimestampText(v []byte, dt *arrow.TimestampType, scale int, truncate bool, scratch *[]byte) (int64, error) {
	if x, ok := fastts.Timestamp(v, scale); ok {
		return x, nil
	}
	extra := excessFraction(v, scale)
	if extra.count > 0 && truncate {
		short := append((*scratch)[:0], v[:extra.start()]...)
		short = append(short, v[extra.start()+extra.n():]...)
		*scratch = short
		v = short
		if x, ok := fastts.Timestamp(v, scale); ok {
			return x, nil
		}
	}
	t, _, err := arrow.TimestampFromStringInLocation(unsafeString(v), dt.Unit, time.UTC)
	if err != nil {
		if extra.count > 0 && !truncate {
			return 0, fmt.Errorf("%s has more fraction digits than %s holds (%d); set truncate: true on the column to drop them",
				quoteText(v), coltype.Name(dt), scale)
		}
		return 0, csvParseErr(v, dt)
	}
	return int64(t), nil
}

// excessFraction returns the fraction digits of v beyond scale (count 0:
// none). The fraction is the run of digits
// after the '.' that follows the seconds (HH:MM:SS.).
func excessFraction(v []byte, scale int) excess {
	for i := 0; i+1 < len(v); i++ {
		if v[i] != '.' || i < 2 || v[i-1] < '0' || v[i-1] > '9' || v[i-2] < '0' || v[i-2] > '9' || i < 3 || v[i-3] != ':' {
			continue
		}
		j := i + 1
		for j < len(v) && v[j] >= '0' && v[j] <= '9' {
			j++
		}
		if digits := j - i - 1; digits > scale {
			return excess{pos: i + 1 + scale, count: digits - scale, dot: scale == 0}
		}
		return excess{}
	}
	return excess{}
}

// excess is the run of fraction digits a unit cannot hold; with dot, the
// unit holds none, so the '.' goes too.
type excess struct {
	pos, count int
	dot        bool
}

func (e excess) start() int {
	if e.dot {
		return e.pos - 1
	}
	return e.pos
}

func (e excess) n() int {
	if e.dot {
		return e.count + 1
	}
	return e.count
}

// quoteText quotes v for a message, cut at 64 bytes.
func quoteText(v []byte) string {
	s := string(v)
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return fmt.Sprintf("%q", s)
}

// textTimestamps returns the schema an ndjson reader reads with: schema
// with its truncating timestamp columns (names) as strings, parsed by this
// package (see parseTimestampColumns), and the indices of those columns.
// The other timestamp columns stay with arrow's reader, which also takes a
// JSON number as a count of the column's unit.
func textTimestamps(schema *arrow.Schema, names map[string]bool) (*arrow.Schema, []int) {
	if len(names) == 0 {
		return schema, nil
	}
	fields := schema.Fields()
	var idx []int
	for i, f := range fields {
		if names[f.Name] && f.Type.ID() == arrow.TIMESTAMP {
			fields[i].Type = arrow.BinaryTypes.String
			idx = append(idx, i)
		}
	}
	if idx == nil {
		return schema, nil
	}
	return arrow.NewSchema(fields, nil), idx
}

// timestampHint explains arrow's JSON reader failing on a timestamp (its
// error names neither the key nor the cause): the timestamp columns, and
// that a value finer than the unit needs truncate: true.
func timestampHint(err error, schema *arrow.Schema) string {
	if !strings.Contains(err.Error(), "arrow.Timestamp") {
		return ""
	}
	var names []string
	for _, f := range schema.Fields() {
		if f.Type.ID() == arrow.TIMESTAMP {
			names = append(names, fmt.Sprintf("%q (%s)", f.Name, coltype.Name(f.Type)))
		}
	}
	return fmt.Sprintf(" (a value of the timestamp column %s that does not parse; one with more fraction digits than its unit holds needs truncate: true on the column)",
		strings.Join(names, ", "))
}

// parseTimestampColumns parses the string columns idx of rec as the
// timestamps schema declares (truncating those named in trunc) and returns
// the batch of schema; rows is the number of records before rec, for
// messages.
func parseTimestampColumns(mem memory.Allocator, schema *arrow.Schema, rec arrow.RecordBatch, idx []int, trunc map[string]bool, rows int64) (arrow.RecordBatch, error) {
	cols := make([]arrow.Array, rec.NumCols())
	for i := range cols {
		cols[i] = rec.Column(i)
		cols[i].Retain()
	}
	release := func() {
		for _, c := range cols {
			c.Release()
		}
	}
	var scratch []byte
	for _, i := range idx {
		f := schema.Field(i)
		tt := f.Type.(*arrow.TimestampType)
		s := cols[i].(*array.String)
		b := array.NewTimestampBuilder(mem, tt)
		b.Reserve(s.Len())
		for k := 0; k < s.Len(); k++ {
			if s.IsNull(k) {
				b.UnsafeAppendBoolToBitmap(false)
				continue
			}
			v := s.Value(k)
			x, err := parseTimestampText(unsafe.Slice(unsafe.StringData(v), len(v)), tt, tsScale(tt.Unit), trunc[f.Name], &scratch)
			if err != nil {
				b.Release()
				release()
				return nil, fmt.Errorf("record %d, key %q: %w", rows+int64(k)+1, f.Name, err)
			}
			b.UnsafeAppend(arrow.Timestamp(x))
		}
		cols[i].Release()
		cols[i] = b.NewArray()
		b.Release()
	}
	out := array.NewRecordBatch(schema, cols, rec.NumRows())
	release()
	return out, nil
}
