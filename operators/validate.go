package operators

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"

	"github.com/zflowdev/zflow/internal/ascii"
)

// validateRecordFull is array.ValidateRecordFull (same checks, same
// errors) with a fast path for string columns: arrow-go checks each value
// with utf8.ValidString, one call per row, which took 85 % of the arrow
// source's time on a mapped file (the utf8 call per short value, not the
// bytes). Every slice of ASCII bytes is valid UTF-8, so a string column
// whose offsets are non-negative and non-decreasing and whose referenced
// bytes are all ASCII (checked 8 bytes at a time) is valid without a
// per-value call; anything else — non-ASCII text, a bad offset — goes
// through arrow-go's own ValidateFull, which decides and words the error.
func validateRecordFull(rec arrow.RecordBatch) error {
	for i, col := range rec.Columns() {
		if fastValidString(col) {
			continue
		}
		if err := array.ValidateFull(col); err != nil {
			return fmt.Errorf("column %d (%s): %w", i, rec.Schema().Field(i).Name, err)
		}
	}
	return nil
}

// fastValidString reports whether col is a String or LargeString array
// that ValidateFull would accept, proven by the ASCII fast path; false
// means "not proven" (another type, non-ASCII bytes or an inconsistency),
// never "invalid".
func fastValidString(col arrow.Array) bool {
	switch col.(type) {
	case *array.String, *array.LargeString:
	default:
		return false
	}
	// Validate checks the buffers' sizes and that the first and last
	// offsets lie inside the data, so the slicing below cannot panic once
	// the offsets are known to be non-negative and non-decreasing.
	if col.Len() == 0 || array.Validate(col) != nil || !nullCountMatches(col) {
		return false
	}
	switch a := col.(type) {
	case *array.String:
		return nonDecreasing(a.ValueOffsets()) && ascii.Is(a.ValueBytes())
	case *array.LargeString:
		return nonDecreasing(a.ValueOffsets()) && ascii.Is(a.ValueBytes())
	}
	return false
}

// nullCountMatches is ValidateFull's null-count check: the count the array
// carries equals the zeros of its validity bitmap (0 without one).
func nullCountMatches(col arrow.Array) bool {
	d := col.Data()
	if d.Len() == 0 {
		return true
	}
	actual := 0
	if bufs := d.Buffers(); len(bufs) > 0 && bufs[0] != nil {
		actual = d.Len() - bitutil.CountSetBits(bufs[0].Bytes(), d.Offset(), d.Len())
	}
	return d.NullN() == actual
}

// nonDecreasing reports whether offsets start at or above 0 and never
// decrease.
func nonDecreasing[T int32 | int64](offsets []T) bool {
	if len(offsets) == 0 || offsets[0] < 0 {
		return false
	}
	prev := offsets[0]
	for _, o := range offsets[1:] {
		if o < prev {
			return false
		}
		prev = o
	}
	return true
}
