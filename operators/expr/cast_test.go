package expr

import (
	"context"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// evalText evaluates src over the test batch and returns row 0 as DuckDB
// prints it (see formatter), "NULL" for a null, and the result type.
func evalText(t *testing.T, src string, row int) (string, arrow.DataType, error) {
	t.Helper()
	mem := newMem()
	defer mem.AssertSize(t, 0)
	rec := testBatch(t, mem)
	defer rec.Release()
	c, err := Compile(src, rec.Schema())
	if err != nil {
		return "", nil, err
	}
	arr, err := c.Eval(context.Background(), mem, rec)
	if err != nil {
		return "", nil, err
	}
	defer arr.Release()
	if !arrow.TypeEqual(arr.DataType(), c.Type()) {
		t.Fatalf("%s: array type %s, Type() says %s", src, arr.DataType(), c.Type())
	}
	if arr.IsNull(row) {
		return "NULL", c.Type(), nil
	}
	if _, isNull := arr.(*array.Null); isNull {
		return "NULL", c.Type(), nil
	}
	return valueText(arr, row), c.Type(), nil
}

// Each case's want is DuckDB's answer (v1.5.6): value as CAST(... AS
// VARCHAR) prints it and the result type, or an error substring.
func TestCastDuckDB(t *testing.T) {
	tests := []struct{ src, want, typ string }{
		// A literal with a decimal point is an exact decimal, as DuckDB's
		// 2.5 is a DECIMAL: half away from zero. A DOUBLE value (with an
		// exponent, or computed) rounds half to even, as DuckDB's DOUBLE.
		{"CAST(2.5 AS INT)", "3", "int32"},
		{"CAST(-2.5 AS INTEGER)", "-3", "int32"},
		{"CAST(-0.5 AS INTEGER)", "-1", "int32"},
		{"CAST(3.5 AS INTEGER)", "4", "int32"},
		{"CAST(25e-1 AS INTEGER)", "2", "int32"},
		{"CAST(127 AS TINYINT)", "127", "int8"},
		{"CAST(-128 AS INT1)", "-128", "int8"},
		{"CAST(300 AS SMALLINT)", "300", "int16"},
		{"CAST(qty AS INT2)", "50", "int16"},
		{"CAST(qty AS BIGINT)", "50", "int64"},
		{"CAST(qty AS INT8)", "50", "int64"},
		{"CAST(qty AS LONG)", "50", "int64"},
		{"CAST(qty AS SIGNED)", "50", "int32"},
		{"CAST(255 AS UTINYINT)", "255", "uint8"},
		{"CAST(65535 AS USMALLINT)", "65535", "uint16"},
		{"CAST(abs(qty) AS UINTEGER)", "50", "uint32"},
		{"CAST('18446744073709551615' AS UBIGINT)", "18446744073709551615", "uint64"},
		{"CAST(1.5 AS FLOAT)", "1.5", "float32"},
		{"CAST(0.1 AS REAL)", "0.1", "float32"},
		{"CAST(16777217 AS FLOAT4)", "16777216.0", "float32"},
		{"CAST(qty AS DOUBLE PRECISION)", "50.0", "float64"},
		{"CAST(1e15 AS FLOAT8)", "1000000000000000.0", "float64"},
		{"CAST(1e16 AS DOUBLE)", "1e+16", "float64"},
		{"CAST(0.00001 AS DOUBLE)", "1e-05", "float64"},
		{"CAST(0.0001 AS DOUBLE)", "0.0001", "float64"},
		{"CAST(price AS VARCHAR)", "10.5", "utf8"},
		{"CAST(1e20 AS TEXT)", "1e+20", "utf8"},
		{"CAST(TRUE AS STRING)", "true", "utf8"},
		{"CAST(' 12 ' AS INT)", "12", "int32"},
		{"CAST('1.5' AS INT)", "2", "int32"},
		{"CAST('-2.5' AS BIGINT)", "-3", "int64"},
		{"CAST('1e3' AS INT)", "1000", "int32"},
		{"CAST('0x10' AS INT)", "16", "int32"},
		{"CAST('010' AS INT)", "10", "int32"},
		{"CAST('1_000' AS INT)", "1000", "int32"},
		{"CAST('+5' AS UTINYINT)", "5", "uint8"},
		{"CAST('  2.5  ' AS DOUBLE)", "2.5", "float64"},
		{"CAST('inf' AS DOUBLE)", "inf", "float64"},
		{"CAST('-inf' AS DOUBLE)", "-inf", "float64"},
		{"CAST('yes' AS BOOLEAN)", "true", "bool"},
		{"CAST('T' AS BOOL)", "true", "bool"},
		{"CAST('n' AS LOGICAL)", "false", "bool"},
		{"CAST('0' AS BOOL)", "false", "bool"},
		{"CAST(2 AS BOOLEAN)", "true", "bool"},
		{"CAST(0.5 AS BOOLEAN)", "true", "bool"},
		{"CAST(TRUE AS INT)", "1", "int32"},
		{"CAST(FALSE AS DOUBLE)", "0.0", "float64"},
		{"CAST('2024-1-5' AS DATE)", "2024-01-05", "date32"},
		{"CAST(' 2024-01-05 ' AS DATE)", "2024-01-05", "date32"},
		{"CAST('2024-01-05 10:00:00' AS DATE)", "2024-01-05", "date32"},
		{"CAST('2024-02-29' AS DATE)", "2024-02-29", "date32"},
		{"CAST('2024-01-05' AS TIMESTAMP)", "2024-01-05 00:00:00", "timestamp[us]"},
		{"CAST('2024-01-05 10:00' AS TIMESTAMP)", "2024-01-05 10:00:00", "timestamp[us]"},
		{"CAST('2024-01-05T10:00:00.123456' AS TIMESTAMP)", "2024-01-05 10:00:00.123456", "timestamp[us]"},
		{"CAST('2024-01-05 10:00:00.1234567' AS TIMESTAMP)", "2024-01-05 10:00:00.123456", "timestamp[us]"},
		{"CAST('2024-01-05 10:00:00+02:00' AS TIMESTAMP)", "2024-01-05 08:00:00", "timestamp[us]"}, // to UTC; DuckDB drops the offset (10:00)
		{"CAST('2024-01-05T00:00:00Z' AS TIMESTAMP)", "2024-01-05 00:00:00", "timestamp[us]"},
		{"CAST('2024-01-05 00:30:00-0530' AS TIMESTAMP)", "2024-01-05 06:00:00", "timestamp[us]"},
		{"CAST('2024-01-05 10:00:00-0530' AS TIMESTAMPTZ)", "2024-01-05 15:30:00+00", "timestamp[us, tz=UTC]"},
		{"CAST('2024-01-05 10:00:00+02:00' AS TIMESTAMP WITH TIME ZONE)", "2024-01-05 08:00:00+00", "timestamp[us, tz=UTC]"},
		{"CAST('2024-01-05T10:00:00.123Z' AS TIMESTAMPTZ)", "2024-01-05 10:00:00.123+00", "timestamp[us, tz=UTC]"},
		{"CAST('2024-01-05 10:00:00 UTC' AS TIMESTAMP)", "2024-01-05 10:00:00", "timestamp[us]"},
		{"CAST('2024-01-05 10:00:00.123456' AS TIMESTAMP_MS)", "2024-01-05 10:00:00.123", "timestamp[ms]"},
		{"CAST('2024-01-05 10:00:00.123456' AS TIMESTAMP_S)", "2024-01-05 10:00:00", "timestamp[s]"},
		{"CAST('2024-01-05 10:00:00.123456789' AS TIMESTAMP_NS)", "2024-01-05 10:00:00.123456789", "timestamp[ns]"},
		{"CAST(ts AS DATE)", "2024-01-01", "date32"},
		{"CAST(CAST('1969-12-31 23:00:00' AS TIMESTAMP) AS DATE)", "1969-12-31", "date32"},
		{"CAST(CAST('2024-01-05' AS DATE) AS TIMESTAMP)", "2024-01-05 00:00:00", "timestamp[us]"},
		{"CAST(CAST('1969-12-31 23:59:59.999' AS TIMESTAMP) AS TIMESTAMP_S)", "1970-01-01 00:00:00", "timestamp[s]"},
		{"CAST(CAST('2024-01-01 23:59:59.999' AS TIMESTAMP) AS TIMESTAMP_S)", "2024-01-02 00:00:00", "timestamp[s]"},
		{"CAST(CAST('2024-01-05 10:00:00+02' AS TIMESTAMPTZ) AS TIMESTAMP)", "2024-01-05 08:00:00", "timestamp[us]"},
		{"CAST(CAST('2024-01-05' AS DATE) AS VARCHAR)", "2024-01-05", "utf8"},
		{"CAST(CAST('-0001-01-05' AS DATE) AS VARCHAR)", "0002-01-05 (BC)", "utf8"},
		{"CAST(CAST('2024-01-05 10:00:00.120' AS TIMESTAMP) AS VARCHAR)", "2024-01-05 10:00:00.12", "utf8"},
		{"CAST(1.5 AS DECIMAL)", "1.500", "decimal(18, 3)"},
		{"CAST(1.25 AS DECIMAL(10,1))", "1.3", "decimal(10, 1)"},
		{"CAST(-1.25 AS NUMERIC(10, 1))", "-1.3", "decimal(10, 1)"},
		{"CAST('12.345' AS DECIMAL(5,2))", "12.35", "decimal(5, 2)"},
		{"CAST(' 12.345 ' AS DECIMAL(5,2))", "12.35", "decimal(5, 2)"},
		{"CAST(12 AS DECIMAL(5,2))", "12.00", "decimal(5, 2)"},
		{"CAST(CAST(12.345 AS DECIMAL(5,3)) AS DOUBLE)", "12.345", "float64"},
		{"CAST(CAST(12.5 AS DECIMAL(5,3)) AS INT)", "13", "int32"},
		{"CAST(CAST(-0.5 AS DECIMAL(3,1)) AS INT)", "-1", "int32"},
		{"CAST(CAST(1.5 AS DECIMAL(5,2)) AS DECIMAL(4,0))", "2", "decimal(4, 0)"},
		{"CAST(CAST(1.5 AS DECIMAL(5,2)) AS VARCHAR)", "1.50", "utf8"},
		{"CAST('1.5e2' AS DECIMAL(6,1))", "150.0", "decimal(6, 1)"},
		{"CAST(NULL AS DATE)", "NULL", "date32"},
		{"CAST(small AS TINYINT)", "5", "int8"},
	}
	for _, tt := range tests {
		got, dt, err := evalText(t, tt.src, 0)
		if err != nil {
			t.Errorf("%s: %v", tt.src, err)
			continue
		}
		if got != tt.want || dt.String() != tt.typ {
			t.Errorf("%s = %s (%s), want %s (%s)", tt.src, got, dt, tt.want, tt.typ)
		}
	}
}

func TestCastErrors(t *testing.T) {
	tests := []struct{ src, want string }{
		{"CAST(300 AS TINYINT)", "value 300 is out of range for TINYINT"},
		{"CAST(-1 AS UINTEGER)", "value -1 is out of range for UINTEGER"},
		{"CAST(1e19 AS BIGINT)", "value 1e+19 is out of range for BIGINT"},
		{"CAST(1e300 AS REAL)", "value 1e+300 is out of range for FLOAT"},
		{"CAST(qty AS TINYINT)", "value 150 is out of range for TINYINT"},
		{"CAST(qty * 1000 AS SMALLINT)", "value 50000 is out of range for SMALLINT"},
		{"CAST(small - 10 AS UTINYINT)", "value -5 is out of range for UTINYINT"},
		{"CAST('abc' AS INT)", "could not convert string 'abc' to INTEGER"},
		{"CAST('' AS INT)", "could not convert string '' to INTEGER"},
		{"CAST('256' AS UTINYINT)", "value 256 is out of range for UTINYINT"},
		{"CAST('on' AS BOOLEAN)", "could not convert string 'on' to BOOLEAN"},
		{"CAST(' true ' AS BOOLEAN)", "could not convert string ' true ' to BOOLEAN"},
		{"CAST('2024-02-30' AS DATE)", "date field value out of range"},
		{"CAST('2024-01-05 10' AS TIMESTAMP)", "could not convert string '2024-01-05 10' to TIMESTAMP"},
		{"CAST(symbol AS DATE)", "could not convert string 'AAPL' to DATE"},
		{"CAST(12.5 AS DECIMAL(2,1))", "value 12.5 is out of range for DECIMAL(2,1)"},
		{"CAST(1000 AS DECIMAL(5,2))", "value 1000 is out of range for DECIMAL(5,2)"},
		{"CAST('x1' AS DECIMAL(5,2))", "could not convert string 'x1' to DECIMAL(5,2)"},
		{"CAST(ts AS BIGINT)", "cannot cast ts (timestamp[us]) to BIGINT"},
		{"CAST(flag AS DATE)", "cannot cast flag (bool) to DATE"},
		{"CAST(name AS BOOLEAN)", "could not convert string 'Alpha' to BOOLEAN"}, // a large_utf8 column
	}
	for _, tt := range tests {
		_, _, err := evalText(t, tt.src, 0)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got error %v, want one containing %q", tt.src, err, tt.want)
		}
	}
}
