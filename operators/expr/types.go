package expr

import (
	"github.com/apache/arrow-go/v18/arrow"
)

// class groups Arrow types by how the language treats them. Every operation
// works on the canonical type of a class (int64, float64, string, bool, a
// timestamp) and casts narrower inputs to it; a bare column reference keeps
// its own type.
type class uint8

const (
	clsOther     class = iota // a type the language cannot compute on
	clsNull                   // the NULL literal: fits any other class
	clsInt                    // int8 … int64, uint8 … uint64
	clsFloat                  // float32, float64
	clsString                 // utf8, large_utf8 (and dictionaries of them)
	clsBool                   // bool
	clsTimestamp              // timestamp, any unit and zone
	clsDate                   // date32, date64
	clsInterval               // month_day_nano_interval: constants only
)

func classOf(dt arrow.DataType) class {
	switch dt.ID() {
	case arrow.NULL:
		return clsNull
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64,
		arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64:
		return clsInt
	case arrow.FLOAT32, arrow.FLOAT64:
		return clsFloat
	case arrow.STRING, arrow.LARGE_STRING:
		return clsString
	case arrow.BOOL:
		return clsBool
	case arrow.TIMESTAMP:
		return clsTimestamp
	case arrow.DATE32, arrow.DATE64:
		return clsDate
	case arrow.INTERVAL_MONTH_DAY_NANO:
		return clsInterval
	case arrow.DICTIONARY:
		if c := classOf(dt.(*arrow.DictionaryType).ValueType); c != clsNull {
			return c
		}
	}
	return clsOther
}

func (c class) numeric() bool { return c == clsInt || c == clsFloat }

var (
	tInt64   = arrow.PrimitiveTypes.Int64
	tFloat64 = arrow.PrimitiveTypes.Float64
	tString  = arrow.BinaryTypes.String
	tBool    = arrow.FixedWidthTypes.Boolean
	tNull    = arrow.Null
)

// canonical returns the type operations compute on for values of dt.
func canonical(dt arrow.DataType) arrow.DataType {
	switch classOf(dt) {
	case clsInt:
		return tInt64
	case clsFloat:
		return tFloat64
	case clsString:
		return tString
	case clsBool:
		return tBool
	case clsTimestamp:
		if d, ok := dt.(*arrow.DictionaryType); ok {
			return d.ValueType
		}
		return dt
	case clsDate:
		return tDate32
	}
	return dt
}

// typeName renders dt for messages, in the language's own words.
func typeName(dt arrow.DataType) string {
	switch dt.ID() {
	case arrow.STRING:
		return "string"
	case arrow.LARGE_STRING:
		return "large_string"
	case arrow.NULL:
		return "null"
	case arrow.DICTIONARY:
		d := dt.(*arrow.DictionaryType)
		return "dictionary<" + typeName(d.ValueType) + ">"
	}
	return dt.String()
}

// finerUnit returns the finer of two time units.
func finerUnit(a, b arrow.TimeUnit) arrow.TimeUnit {
	if a > b {
		return a
	}
	return b
}

// commonTimestamp returns the timestamp type two timestamps are compared or
// merged in: the finer unit, and the zone they share. A zone-less constant
// (a TIMESTAMP literal, which is UTC) takes the other side's zone; two
// zone-aware values with different zones are instants and compare in the
// left one's zone; a zone-less column cannot meet a zone-aware one.
func commonTimestamp(a, b arrow.DataType, aConst, bConst bool) (arrow.DataType, bool) {
	ta, ok1 := canonical(a).(*arrow.TimestampType)
	tb, ok2 := canonical(b).(*arrow.TimestampType)
	if !ok1 || !ok2 {
		return nil, false
	}
	tz := ta.TimeZone
	switch {
	case ta.TimeZone == tb.TimeZone:
	case ta.TimeZone == "" && aConst:
		tz = tb.TimeZone
	case tb.TimeZone == "" && bConst:
	case ta.TimeZone != "" && tb.TimeZone != "":
	default:
		return nil, false
	}
	return &arrow.TimestampType{Unit: finerUnit(ta.Unit, tb.Unit), TimeZone: tz}, true
}

// keepUint64 is canonical, except that a uint64 (a hash) stays one.
func keepUint64(dt arrow.DataType) arrow.DataType {
	if dt.ID() == arrow.UINT64 {
		return dt
	}
	return canonical(dt)
}

// unify returns the type two values of a CASE, coalesce, IN list or
// comparison are brought to, or false when they do not mix.
func unify(a, b arrow.DataType, aConst, bConst bool) (arrow.DataType, bool) {
	ca, cb := classOf(a), classOf(b)
	switch {
	case ca == clsNull && cb == clsNull:
		return tNull, true
	case ca == clsInterval || cb == clsInterval:
		return nil, false
	case ca == clsNull:
		return keepUint64(b), cb != clsOther
	case cb == clsNull:
		return keepUint64(a), ca != clsOther
	case ca == clsInt && cb == clsInt:
		if a.ID() == arrow.UINT64 && b.ID() == arrow.UINT64 {
			// Two uint64 (hash values) meet as they are: int64 cannot
			// hold every one of them.
			return a, true
		}
		return tInt64, true
	case ca.numeric() && cb.numeric():
		return tFloat64, true
	case ca == clsTimestamp && cb == clsTimestamp:
		return commonTimestamp(a, b, aConst, bConst)
	case ca == clsDate && cb == clsTimestamp:
		// DuckDB compares a date with a timestamp as timestamps.
		return canonical(b), true
	case ca == clsTimestamp && cb == clsDate:
		return canonical(a), true
	case (ca == clsDate || ca == clsTimestamp) && cb == clsString && bConst:
		// A string constant converts to the date or timestamp at Compile
		// time (an error at its offset if it does not parse).
		return canonical(a), true
	case ca == clsString && aConst && (cb == clsDate || cb == clsTimestamp):
		return canonical(b), true
	case ca == cb && ca != clsOther:
		return canonical(a), true
	}
	return nil, false
}
