package expr_test

import (
	"fmt"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// cell is one value of a result, in the form zflow's and DuckDB's answers
// are compared in (duckdb_test.go): any integer as int64, any float or
// decimal as float64, a timestamp as its instant, a date as its day.
type cell struct {
	kind  cellKind
	i     int64   // cellInt; cellDate: days since 1970-01-01
	f     float64 // cellFloat
	f32   bool    // cellFloat from a float32: compared to 1e-6
	s     string  // cellString
	b     bool    // cellBool
	t     time.Time
	dtype arrow.DataType
}

type cellKind uint8

const (
	cellNull cellKind = iota
	cellInt
	cellFloat
	cellString
	cellBool
	cellTime
	cellDate
	cellOther
)

// Relative tolerances of float comparisons.
const (
	tolFloat64 = 1e-9
	tolFloat32 = 1e-6
)

// cellOf returns row i of arr.
func cellOf(arr arrow.Array, i int) cell {
	c := cell{dtype: arr.DataType()}
	if arr.IsNull(i) || arr.DataType().ID() == arrow.NULL { // a null array has no bitmap: IsNull is false
		return c
	}
	switch a := arr.(type) {
	case *array.Int8:
		c.kind, c.i = cellInt, int64(a.Value(i))
	case *array.Int16:
		c.kind, c.i = cellInt, int64(a.Value(i))
	case *array.Int32:
		c.kind, c.i = cellInt, int64(a.Value(i))
	case *array.Int64:
		c.kind, c.i = cellInt, a.Value(i)
	case *array.Uint8:
		c.kind, c.i = cellInt, int64(a.Value(i))
	case *array.Uint16:
		c.kind, c.i = cellInt, int64(a.Value(i))
	case *array.Uint32:
		c.kind, c.i = cellInt, int64(a.Value(i))
	case *array.Uint64:
		if v := a.Value(i); v <= math.MaxInt64 {
			c.kind, c.i = cellInt, int64(v)
		} else {
			c.kind, c.f = cellFloat, float64(v)
		}
	case *array.Float32:
		c.kind, c.f, c.f32 = cellFloat, float64(a.Value(i)), true
	case *array.Float64:
		c.kind, c.f = cellFloat, a.Value(i)
	case *array.Decimal128:
		c.kind, c.f = cellFloat, a.Value(i).ToFloat64(a.DataType().(*arrow.Decimal128Type).Scale)
	case *array.String:
		c.kind, c.s = cellString, a.Value(i)
	case *array.LargeString:
		c.kind, c.s = cellString, a.Value(i)
	case *array.Boolean:
		c.kind, c.b = cellBool, a.Value(i)
	case *array.Timestamp:
		unit := a.DataType().(*arrow.TimestampType).Unit
		c.kind, c.t = cellTime, a.Value(i).ToTime(unit)
	case *array.Date32:
		c.kind, c.i = cellDate, int64(a.Value(i))
	case *array.Date64:
		c.kind, c.i = cellDate, int64(a.Value(i))/86_400_000
	case *array.Dictionary:
		v := cellOf(a.Dictionary(), a.GetValueIndex(i))
		v.dtype = c.dtype
		return v
	default:
		c.kind, c.s = cellOther, a.ValueStr(i)
	}
	return c
}

// equal says whether zflow's value c matches DuckDB's value d: NULL only
// NULL; integers exactly; an integer or float against a float within the
// relative tolerance (that of float32 when either is one; infinities of
// the same sign match); strings and booleans exactly; timestamps by
// instant, dates by day, and a date against a timestamp at its midnight.
func (c cell) equal(d cell) bool {
	num := func(x cell) (float64, bool) {
		switch x.kind {
		case cellInt:
			return float64(x.i), true
		case cellFloat:
			return x.f, true
		}
		return 0, false
	}
	switch {
	case c.kind == cellNull || d.kind == cellNull:
		return c.kind == d.kind
	case c.kind == cellInt && d.kind == cellInt:
		return c.i == d.i
	case c.kind == cellDate && d.kind == cellDate:
		return c.i == d.i
	case c.kind == cellTime && d.kind == cellTime:
		return c.t.Equal(d.t)
	case c.kind == cellTime && d.kind == cellDate:
		return c.t.Equal(time.Unix(d.i*86400, 0))
	case c.kind == cellDate && d.kind == cellTime:
		return d.t.Equal(time.Unix(c.i*86400, 0))
	case c.kind != d.kind && (c.kind != cellInt && c.kind != cellFloat || d.kind != cellInt && d.kind != cellFloat):
		return false
	}
	switch c.kind {
	case cellString:
		return c.s == d.s
	case cellBool:
		return c.b == d.b
	case cellOther:
		return c.s == d.s
	}
	x, _ := num(c)
	y, _ := num(d)
	tol := tolFloat64
	if c.f32 || d.f32 {
		tol = tolFloat32
	}
	return closeTo(x, y, tol)
}

// closeTo says whether x and y are equal within a relative tolerance.
func closeTo(x, y, tol float64) bool {
	switch {
	case x == y:
		return true
	case math.IsNaN(x) || math.IsNaN(y):
		return math.IsNaN(x) && math.IsNaN(y)
	case math.IsInf(x, 0) || math.IsInf(y, 0):
		return false
	}
	return math.Abs(x-y) <= tol*math.Max(math.Abs(x), math.Abs(y))
}

// same says whether two of zflow's values are identical (the whole batch
// against a slice of it): as equal, but floats bit for bit.
func (c cell) same(d cell) bool {
	if c.kind == cellFloat && d.kind == cellFloat {
		return c.f == d.f && math.Signbit(c.f) == math.Signbit(d.f) || math.IsNaN(c.f) && math.IsNaN(d.f)
	}
	return c.kind == d.kind && c.equal(d)
}

// String renders c for a failure message, with its type when that helps.
func (c cell) String() string {
	switch c.kind {
	case cellNull:
		return "NULL"
	case cellInt:
		return strconv.FormatInt(c.i, 10)
	case cellFloat:
		return strconv.FormatFloat(c.f, 'g', -1, 64) + " (" + c.dtype.String() + ")"
	case cellString:
		return strconv.Quote(c.s)
	case cellBool:
		return strconv.FormatBool(c.b)
	case cellTime:
		return c.t.UTC().Format("2006-01-02 15:04:05.999999999") + " (" + c.dtype.String() + ")"
	case cellDate:
		return time.Unix(c.i*86400, 0).UTC().Format("2006-01-02") + " (date)"
	}
	return fmt.Sprintf("%s (%s)", c.s, c.dtype)
}

func TestCellEqual(t *testing.T) {
	mk := func(kind cellKind, set func(*cell)) cell {
		c := cell{kind: kind, dtype: arrow.PrimitiveTypes.Int64}
		if set != nil {
			set(&c)
		}
		return c
	}
	i := func(v int64) cell { return mk(cellInt, func(c *cell) { c.i = v }) }
	f := func(v float64) cell { return mk(cellFloat, func(c *cell) { c.f = v }) }
	f32 := func(v float64) cell { return mk(cellFloat, func(c *cell) { c.f, c.f32 = v, true }) }
	str := func(v string) cell { return mk(cellString, func(c *cell) { c.s = v }) }
	ts := func(s string) cell {
		tm, err := time.Parse(time.DateTime, s)
		if err != nil {
			t.Fatal(err)
		}
		return mk(cellTime, func(c *cell) { c.t = tm })
	}
	date := func(days int64) cell { return mk(cellDate, func(c *cell) { c.i = days }) }
	null := mk(cellNull, nil)
	for _, tc := range []struct {
		name string
		a, b cell
		want bool
	}{
		{"null null", null, null, true},
		{"null zero", null, i(0), false},
		{"zero null", f(0), null, false},
		{"ints", i(3), i(3), true},
		{"ints differ", i(3), i(4), false},
		{"int float", i(3), f(3), true},
		{"int float near", i(1 << 53), f(1<<53 + 1), true},
		{"floats within 1e-9", f(1), f(1 + 1e-10), true},
		{"floats beyond 1e-9", f(1), f(1 + 1e-8), false},
		{"float32 within 1e-6", f32(1), f(1 + 1e-7), true},
		{"float32 beyond 1e-6", f(1), f32(1 + 1e-5), false},
		{"zero and tiny", f(0), f(1e-300), false},
		{"signed zeros", f(0), f(math.Copysign(0, -1)), true},
		{"infinities", f(math.Inf(1)), f(math.Inf(1)), true},
		{"infinities differ", f(math.Inf(1)), f(math.Inf(-1)), false},
		{"inf and max", f(math.Inf(1)), f(math.MaxFloat64), false},
		{"NaNs", f(math.NaN()), f(math.NaN()), true},
		{"NaN and zero", f(math.NaN()), f(0), false},
		{"strings", str("é"), str("é"), true},
		{"strings differ", str("é"), str("e\u0301"), false},
		{"string and int", str("3"), i(3), false},
		{"instants", ts("2024-01-02 03:04:05"), ts("2024-01-02 03:04:05"), true},
		{"instants differ", ts("2024-01-02 03:04:05"), ts("2024-01-02 03:04:06"), false},
		{"date and midnight", date(19724), ts("2024-01-02 00:00:00"), true},
		{"midnight and date", ts("2024-01-02 00:00:00"), date(19724), true},
		{"date and noon", date(19724), ts("2024-01-02 12:00:00"), false},
		{"dates", date(-1), date(-1), true},
		{"date and int", date(3), i(3), false},
	} {
		if got := tc.a.equal(tc.b); got != tc.want {
			t.Errorf("%s: %s equal %s = %v, want %v", tc.name, tc.a, tc.b, got, tc.want)
		}
	}
}
