package operators

import (
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// TestNDJSONUnknownKeys: a key that is not a column fails the run naming
// its line when the columns were inferred (it first appeared after the
// sample), is dropped when columns: lists them (or when asked), and the
// check is not fooled by keys inside strings or nested objects, escapes,
// or objects split over reads.
func TestNDJSONUnknownKeys(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, content string
		cfg           NDJSONSourceConfig
		rows          int64
		want          string // an error containing this, or "" for none
	}{
		{"late key, inferred", "{\"a\":1}\n{\"a\":2}\n{\"a\":3,\"late\":true}\n", NDJSONSourceConfig{InferRows: 2},
			0, `f.ndjson:3: key "late" is not a column; declare columns: (the columns come from the keys of the first 2 objects), raise infer_rows`},
		{"late key, ignore", "{\"a\":1}\n{\"a\":2}\n{\"a\":3,\"late\":true}\n", NDJSONSourceConfig{InferRows: 2, UnknownKeys: "ignore"}, 3, ""},
		{"declared columns drop others", "{\"a\":1,\"b\":\"x\"}\n{\"a\":2,\"c\":[1,2]}\n",
			NDJSONSourceConfig{Columns: []ColumnDef{{Name: "a", Type: "int64"}}}, 2, ""},
		{"declared columns, error asked", "{\"a\":1,\"b\":\"x\"}\n",
			NDJSONSourceConfig{Columns: []ColumnDef{{Name: "a", Type: "int64"}}, UnknownKeys: "error"}, 0, `f.ndjson:1: key "b" is not a column; add it to columns:`},
		{"keys in strings and nesting", "{\"a\":\"\\\"zz\\\":1, {\\\"yy\\\":2}\",\"b\":{\"n\":{\"m\":1}}}\n",
			NDJSONSourceConfig{Columns: []ColumnDef{{Name: "a", Type: "string"}, {Name: "b", Type: "string"}}, UnknownKeys: "error"}, 0, "nested"},
		{"escaped key", "{\"\\u0061\":1}\n{\"a\":2}\n", NDJSONSourceConfig{InferRows: 1}, 2, ""},
		{"long file", strings.Repeat("{\"a\":1,\"b\":\"0123456789abcdef\"}\n", 100000) + "{\"a\":1,\"c\":2}\n", NDJSONSourceConfig{InferRows: 10},
			0, `f.ndjson:100001: key "c" is not a column`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			cfg := tc.cfg
			cfg.Path = writeTestFile(t, dir, "f.ndjson", tc.content)
			if cfg.UnknownKeys == "" {
				cfg.UnknownKeys = "auto"
			}
			c, _, err := readSourceAll(t, mem, NDJSONSourceSpec(), &cfg, 1000)
			if c != nil {
				defer c.release()
			}
			switch {
			case tc.want == "nested":
				// Nested values are not supported as columns; what matters is
				// that no key inside a string or an inner object was flagged.
				if err != nil && strings.Contains(err.Error(), "is not a column") {
					t.Fatalf("flagged an inner key: %v", err)
				}
			case tc.want != "":
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("want an error containing %q, got %v", tc.want, err)
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
				if c.rows() != tc.rows {
					t.Fatalf("%d rows, want %d", c.rows(), tc.rows)
				}
			}
		})
	}
}
