package expr

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/zflowdev/zflow/engine"
)

// The type names of CAST, with DuckDB's meanings: INT is a 32-bit INTEGER,
// FLOAT a 32-bit REAL, INT8 a BIGINT (PostgreSQL counts bytes), and
// zflow's own Arrow-style names (int32, int64, float64, uint8...) keep
// their Arrow meaning.

var (
	tDate32      = arrow.FixedWidthTypes.Date32
	tTimestampUS = &arrow.TimestampType{Unit: arrow.Microsecond}
	tTimestampTZ = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
)

// castTypes maps the (lower-case, single-spaced) type names CAST accepts to
// Arrow types. DECIMAL and NUMERIC take (p[, s]) and are resolved by
// resolveType; VARCHAR(n) and CHAR(n) drop their length as DuckDB does.
var castTypes = map[string]arrow.DataType{
	"tinyint": arrow.PrimitiveTypes.Int8, "int1": arrow.PrimitiveTypes.Int8,
	"smallint": arrow.PrimitiveTypes.Int16, "int2": arrow.PrimitiveTypes.Int16, "short": arrow.PrimitiveTypes.Int16,
	"int16":   arrow.PrimitiveTypes.Int16,
	"integer": arrow.PrimitiveTypes.Int32, "int": arrow.PrimitiveTypes.Int32, "int4": arrow.PrimitiveTypes.Int32,
	"signed": arrow.PrimitiveTypes.Int32, "int32": arrow.PrimitiveTypes.Int32,
	"bigint": tInt64, "int8": tInt64, "long": tInt64, "int64": tInt64,
	"utinyint": arrow.PrimitiveTypes.Uint8, "uint8": arrow.PrimitiveTypes.Uint8,
	"usmallint": arrow.PrimitiveTypes.Uint16, "uint16": arrow.PrimitiveTypes.Uint16,
	"uinteger": arrow.PrimitiveTypes.Uint32, "uint32": arrow.PrimitiveTypes.Uint32,
	"ubigint": arrow.PrimitiveTypes.Uint64, "uint64": arrow.PrimitiveTypes.Uint64,
	"real": arrow.PrimitiveTypes.Float32, "float": arrow.PrimitiveTypes.Float32, "float4": arrow.PrimitiveTypes.Float32,
	"float32": arrow.PrimitiveTypes.Float32,
	"double":  tFloat64, "double precision": tFloat64, "float8": tFloat64, "float64": tFloat64,
	"varchar": tString, "text": tString, "string": tString, "char": tString, "bpchar": tString,
	"bool": tBool, "boolean": tBool, "logical": tBool,
	"date":      tDate32,
	"timestamp": tTimestampUS, "datetime": tTimestampUS, "timestamp_us": tTimestampUS,
	"timestamp without time zone": tTimestampUS,
	"timestamp_ms":                &arrow.TimestampType{Unit: arrow.Millisecond},
	"timestamp_s":                 &arrow.TimestampType{Unit: arrow.Second},
	"timestamp_ns":                &arrow.TimestampType{Unit: arrow.Nanosecond},
	"timestamptz":                 tTimestampTZ, "timestamp with time zone": tTimestampTZ,
	"decimal": &arrow.Decimal128Type{Precision: 18, Scale: 3},
	"numeric": &arrow.Decimal128Type{Precision: 18, Scale: 3},
}

// typeParams are the type names that take parameters in parentheses.
var typeParams = map[string]bool{"decimal": true, "numeric": true, "varchar": true, "char": true, "bpchar": true}

// mainTypeNames are the names an unknown type's message lists: one per
// type, DuckDB's own.
const mainTypeNames = "TINYINT, SMALLINT, INTEGER, BIGINT, UTINYINT, USMALLINT, UINTEGER, UBIGINT, " +
	"FLOAT, DOUBLE, DECIMAL(p, s), VARCHAR, BOOLEAN, DATE, TIMESTAMP, TIMESTAMP_S, TIMESTAMP_MS, TIMESTAMP_NS, TIMESTAMPTZ"

func castTypeNames() []string {
	names := make([]string, 0, len(castTypes))
	for n := range castTypes {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// resolveType returns the Arrow type of a CAST type name as the parser
// normalised it ("decimal(10,2)", "timestamp with time zone").
func resolveType(name string) (arrow.DataType, error) {
	base, params, hasParams := strings.Cut(name, "(")
	if !hasParams {
		if dt, ok := castTypes[name]; ok {
			return dt, nil
		}
		if sug := engine.Suggest(name, castTypeNames()); sug != "" {
			return nil, fmt.Errorf("unknown type %q in CAST, did you mean %q?", name, sug)
		}
		return nil, fmt.Errorf("unknown type %q in CAST (known: %s)", name, mainTypeNames)
	}
	if !typeParams[base] {
		return nil, fmt.Errorf("type %s takes no parameters", strings.ToUpper(base))
	}
	var ps []int
	for _, p := range strings.Split(strings.TrimSuffix(params, ")"), ",") {
		v, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil {
			return nil, fmt.Errorf("type %s: parameter %q is not an integer", strings.ToUpper(base), p)
		}
		ps = append(ps, v)
	}
	if base != "decimal" && base != "numeric" {
		if len(ps) != 1 || ps[0] < 1 {
			return nil, fmt.Errorf("type %s takes one positive length", strings.ToUpper(base))
		}
		return tString, nil
	}
	if len(ps) > 2 {
		return nil, fmt.Errorf("DECIMAL takes a precision and a scale, got %d parameters", len(ps))
	}
	p, s := ps[0], 0
	if len(ps) == 2 {
		s = ps[1]
	}
	if p < 1 || p > 38 {
		return nil, fmt.Errorf("DECIMAL precision must be between 1 and 38, got %d", p)
	}
	if s < 0 || s > p {
		return nil, fmt.Errorf("DECIMAL scale must be between 0 and the precision %d, got %d", p, s)
	}
	return &arrow.Decimal128Type{Precision: int32(p), Scale: int32(s)}, nil
}

// SQLTypeName is dt's DuckDB name, as a CAST names it (a join casts its
// keys to a common type with one).
func SQLTypeName(dt arrow.DataType) string { return sqlTypeName(dt) }

// sqlTypeName renders dt by its DuckDB name, for the messages of casts.
func sqlTypeName(dt arrow.DataType) string {
	switch dt.ID() {
	case arrow.INT8:
		return "TINYINT"
	case arrow.INT16:
		return "SMALLINT"
	case arrow.INT32:
		return "INTEGER"
	case arrow.INT64:
		return "BIGINT"
	case arrow.UINT8:
		return "UTINYINT"
	case arrow.UINT16:
		return "USMALLINT"
	case arrow.UINT32:
		return "UINTEGER"
	case arrow.UINT64:
		return "UBIGINT"
	case arrow.FLOAT32:
		return "FLOAT"
	case arrow.FLOAT64:
		return "DOUBLE"
	case arrow.STRING, arrow.LARGE_STRING:
		return "VARCHAR"
	case arrow.BOOL:
		return "BOOLEAN"
	case arrow.DATE32, arrow.DATE64:
		return "DATE"
	case arrow.DECIMAL128:
		d := dt.(*arrow.Decimal128Type)
		return fmt.Sprintf("DECIMAL(%d,%d)", d.Precision, d.Scale)
	case arrow.TIMESTAMP:
		t := dt.(*arrow.TimestampType)
		if t.TimeZone != "" {
			return "TIMESTAMP WITH TIME ZONE"
		}
		switch t.Unit {
		case arrow.Second:
			return "TIMESTAMP_S"
		case arrow.Millisecond:
			return "TIMESTAMP_MS"
		case arrow.Nanosecond:
			return "TIMESTAMP_NS"
		}
		return "TIMESTAMP"
	}
	return strings.ToUpper(typeName(dt))
}
