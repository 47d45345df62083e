package arrowcheck

import (
	"encoding/binary"
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
//
// The offsets are checked in one branch-free pass (with every offset
// non-negative, a difference cannot overflow, so a negative one means a
// decrease). Then the bytes: if they are all ASCII — the common case —
// every byte starts a character and that is all; otherwise they must be
// valid UTF-8 as a whole and no value may start inside a character.
func piecesValid[T int32 | int64](offsets []T, values []byte) bool {
	first, last := offsets[0], offsets[len(offsets)-1]
	if first < 0 || last < first || int64(last) > int64(len(values)) {
		return false
	}
	var bad T
	prev := first
	for _, o := range offsets[1:] {
		bad |= o | (o - prev)
		prev = o
	}
	if bad < 0 {
		return false
	}
	v := values[first:last]
	if ascii(v) {
		return true
	}
	if !utf8.Valid(v) {
		return false
	}
	for _, o := range offsets[1 : len(offsets)-1] {
		// (the end of the last value may be the end of the bytes)
		if o < last && values[o]&0xC0 == 0x80 {
			return false
		}
	}
	return true
}

// ascii reports whether b holds only ASCII bytes, 32 bytes at a time.
func ascii(b []byte) bool {
	const hi = 0x8080808080808080
	le := binary.LittleEndian
	var acc uint64
	for len(b) >= 32 {
		acc |= le.Uint64(b) | le.Uint64(b[8:]) | le.Uint64(b[16:]) | le.Uint64(b[24:])
		b = b[32:]
	}
	for len(b) >= 8 {
		acc |= le.Uint64(b)
		b = b[8:]
	}
	for _, c := range b {
		acc |= uint64(c)
	}
	return acc&hi == 0
}
