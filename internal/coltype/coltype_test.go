package coltype

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
)

func TestParseName(t *testing.T) {
	for _, n := range Names() {
		dt, err := Parse(n)
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		if n == "timestamp_us" {
			continue // alias of timestamp
		}
		if got := Name(dt); got != n {
			t.Errorf("Name(Parse(%q)) = %q", n, got)
		}
	}
	for alias, want := range map[string]arrow.DataType{
		"DOUBLE": arrow.PrimitiveTypes.Float64, "int": arrow.PrimitiveTypes.Int64,
		" utf8 ": arrow.BinaryTypes.String, "Timestamp": Timestamp,
	} {
		dt, err := Parse(alias)
		if err != nil || !arrow.TypeEqual(dt, want) {
			t.Errorf("Parse(%q) = %v, %v", alias, dt, err)
		}
	}
	if _, err := Parse("decimal"); err == nil {
		t.Error("unknown type accepted")
	}
	if got := Name(arrow.ListOf(arrow.PrimitiveTypes.Int8)); got != "list<item: int8, nullable>" {
		t.Errorf("Name(list) = %q", got)
	}
}
