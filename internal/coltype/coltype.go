package coltype

import (
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
)

var (
	// Timestamp is the type "timestamp" names: microseconds, UTC.
	Timestamp = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
	// TimestampNanos is "timestamp_ns".
	TimestampNanos = &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "UTC"}
)

var table = []struct {
	name string
	typ  arrow.DataType
}{
	{"bool", arrow.FixedWidthTypes.Boolean},
	{"int8", arrow.PrimitiveTypes.Int8},
	{"int16", arrow.PrimitiveTypes.Int16},
	{"int32", arrow.PrimitiveTypes.Int32},
	{"int64", arrow.PrimitiveTypes.Int64},
	{"uint8", arrow.PrimitiveTypes.Uint8},
	{"uint16", arrow.PrimitiveTypes.Uint16},
	{"uint32", arrow.PrimitiveTypes.Uint32},
	{"uint64", arrow.PrimitiveTypes.Uint64},
	{"float32", arrow.PrimitiveTypes.Float32},
	{"float64", arrow.PrimitiveTypes.Float64},
	{"string", arrow.BinaryTypes.String},
	{"binary", arrow.BinaryTypes.Binary},
	{"date32", arrow.FixedWidthTypes.Date32},
	{"timestamp", Timestamp},
	{"timestamp_s", &arrow.TimestampType{Unit: arrow.Second, TimeZone: "UTC"}},
	{"timestamp_ms", &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}},
	{"timestamp_us", Timestamp},
	{"timestamp_ns", TimestampNanos},
}

// Names lists the accepted type names, in a stable order.
func Names() []string {
	out := make([]string, len(table))
	for i, t := range table {
		out[i] = t.name
	}
	return out
}

// Parse returns the type called name (case-insensitive; "double", "float",
// "int", "long", "boolean", "utf8", "text" and "varchar" are accepted as
// aliases).
func Parse(name string) (arrow.DataType, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	switch n {
	case "int", "long", "bigint":
		n = "int64"
	case "integer":
		n = "int32"
	case "double", "float":
		n = "float64"
	case "boolean":
		n = "bool"
	case "utf8", "text", "varchar":
		n = "string"
	case "date":
		n = "date32"
	}
	for _, t := range table {
		if t.name == n {
			return t.typ, nil
		}
	}
	return nil, fmt.Errorf("unknown column type %q (known: %s)", name, strings.Join(Names(), ", "))
}

// Name returns the name Parse accepts for dt, or dt's Arrow spelling when
// it has none.
func Name(dt arrow.DataType) string {
	for _, t := range table {
		if arrow.TypeEqual(t.typ, dt) {
			return t.name
		}
	}
	return dt.String()
}
