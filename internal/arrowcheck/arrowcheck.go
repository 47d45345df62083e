package arrowcheck

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
)

// RecordFull checks every column of rec as array.ValidateRecordFull does,
// with the same errors.
func RecordFull(rec arrow.RecordBatch) error {
	for i, col := range rec.Columns() {
		if err := Full(col); err != nil {
			return fmt.Errorf("column %d (%s): %w", i, rec.Schema().Field(i).Name, err)
		}
	}
	return nil
}

// Full checks col as array.ValidateFull does.
func Full(col arrow.Array) error {
	var ok bool
	switch a := col.(type) {
	case *array.String:
		ok = fastString(a, a.ValueOffsets)
	case *array.LargeString:
		ok = fastString(a, a.ValueOffsets)
	default:
		return array.ValidateFull(col)
	}
	if ok {
		return nil
	}
	// Something is wrong: arrow-go's check says what, and where.
	if err := array.ValidateFull(col); err != nil {
		return err
	}
	return errors.New("arrowcheck: string column failed the fast check but passed arrow-go's") // a bug here
}

// fastString reports whether a (a String or LargeString) passes every
// check of array.ValidateFull: the layout (array.Validate), the null count,
// offsets non-negative and non-decreasing, and every value valid UTF-8.
// offsets is called only after the layout check, which makes it safe.
func fastString[T int32 | int64](a arrow.Array, offsets func() []T) bool {
	if array.Validate(a) != nil || !nullCountOK(a.Data()) {
		return false
	}
	if a.Len() == 0 {
		return true
	}
	var values []byte
	if b := a.Data().Buffers()[2]; b != nil {
		values = b.Bytes()
	}
	return piecesValid(offsets(), values)
}

// nullCountOK is array.ValidateFull's null count check for an array with
// a validity bitmap or none.
func nullCountOK(d arrow.ArrayData) bool {
	bufs := d.Buffers()
	if len(bufs) == 0 || bufs[0] == nil {
		return d.NullN() == 0
	}
	return d.NullN() == d.Len()-bitutil.CountSetBits(bufs[0].Bytes(), d.Offset(), d.Len())
}

// piecesValid reports whether offsets are non-negative and non-decreasing
// within values, and values[offsets[i]:offsets[i+1]] is valid UTF-8 for
// every i.
func piecesValid[T int32 | int64](offsets []T, values []byte) bool {
	first, last := offsets[0], offsets[len(offsets)-1]
	if first < 0 || last < first || int64(last) > int64(len(values)) {
		return false
	}
	prev := first
	for _, o := range offsets[1:] {
		if o < prev {
			return false
		}
		// A value may not start inside a character (the end of the last
		// value may be the end of the bytes).
		if o < last && values[o]&0xC0 == 0x80 {
			return false
		}
		prev = o
	}
	return utf8.Valid(values[first:last])
}
