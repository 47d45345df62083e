package operators

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/zflowdev/zflow/engine"
)

func TestNDJSONSource(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		content string
		cfg     NDJSONSourceConfig
		types   string
		rows    []string
	}{
		{"infer", `{"s":"a","i":1,"f":1.5,"b":true,"t":"2024-01-02T03:04:05Z","d":"2024-01-02","n":"2024-01-02T03:04:05"}
{"i":2,"f":2,"extra":{"x":1}}

{"s":null,"i":-3,"f":null,"b":false}
`, NDJSONSourceConfig{InferRows: 100},
			"s:string,i:int64,f:float64,b:bool,t:timestamp,d:date32,n:timestamp[us],extra:string",
			nil},
		{"declared", "{\"a\":1,\"b\":\"x\"}\n{\"b\":\"y\"}\n", NDJSONSourceConfig{Columns: []ColumnDef{{Name: "b", Type: "string"}, {Name: "a", Type: "int32"}}},
			"b:string,a:int32", []string{`"x"|1`, `"y"|null`}},
		{"types", "{\"a\":1}\n{\"a\":2}\n", NDJSONSourceConfig{InferRows: 10, Types: map[string]string{"a": "float64"}},
			"a:float64", []string{"1.0", "2.0"}},
		{"int then float", "{\"a\":1}\n{\"a\":2.5}\n", NDJSONSourceConfig{InferRows: 10},
			"a:float64", []string{"1.0", "2.5"}},
		{"ts and text", "{\"a\":\"2024-01-02T03:04:05Z\"}\n{\"a\":\"hello\"}\n", NDJSONSourceConfig{InferRows: 10},
			"a:string", []string{`"2024-01-02T03:04:05Z"`, `"hello"`}},
		{"ignores keys past the sample when asked", "{\"a\":1}\n{\"a\":2,\"b\":3}\n", NDJSONSourceConfig{InferRows: 1, UnknownKeys: "ignore"},
			"a:int64", []string{"1", "2"}},
	} {
		if tc.name == "infer" {
			// The nested key fails inference; declare columns for the rest instead.
			path := writeTestFile(t, dir, "f.ndjson", tc.content)
			tc.cfg.Path = path
			_, err := buildFactory(NDJSONSourceSpec(), &tc.cfg)
			if err == nil || !strings.Contains(err.Error(), `key "extra" holds a nested object`) {
				t.Errorf("nested: %v", err)
			}
			tc.content = strings.ReplaceAll(tc.content, `,"extra":{"x":1}`, "")
			tc.types = strings.TrimSuffix(tc.types, ",extra:string")
			tc.rows = []string{
				`"a"|1|1.5|true|"2024-01-02T03:04:05Z"|"2024-01-02"|"2024-01-02T03:04:05"`,
				`null|2|2.0|null|null|null|null`,
				`null|-3|null|false|null|null|null`,
			}
		}
		path := writeTestFile(t, dir, "f.ndjson", tc.content)
		tc.cfg.Path = path
		c, schema, err := readSourceAll(t, mem, NDJSONSourceSpec(), &tc.cfg, 2)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got := schemaTypes(schema); got != tc.types {
			t.Errorf("%s: schema %s, want %s", tc.name, got, tc.types)
		}
		if got := rowsText(c.recs); !slices.Equal(got, tc.rows) {
			t.Errorf("%s: rows\n got %q\nwant %q", tc.name, got, tc.rows)
		}
		c.release()
	}
}

func TestNDJSONSourceErrors(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		content string
		cfg     NDJSONSourceConfig
		compile bool
		want    string
	}{
		{"empty", "", NDJSONSourceConfig{InferRows: 10}, true, "no keys"},
		{"not an object", "[1,2]\n", NDJSONSourceConfig{InferRows: 10}, true, "record 1: want a JSON object"},
		{"broken json", "{\"a\":1}\n{\"a\":\n", NDJSONSourceConfig{InferRows: 10}, true, "record 2"},
		{"conflict", "{\"a\":1}\n{\"a\":\"x\"}\n", NDJSONSourceConfig{InferRows: 10}, true, `key "a" holds a integer in record 1 and a string in record 2`},
		{"bad value late", "{\"a\":1}\n{\"a\":2}\n{\"a\":\"x\"}\n", NDJSONSourceConfig{InferRows: 1}, false, "record 3"},
		{"broken late", "{\"a\":1}\n{\"a\":2}\n{\"a\":3\n", NDJSONSourceConfig{InferRows: 1}, false, "record 3"},
		{"garbage late", "{\"a\":1}\nnot json\n", NDJSONSourceConfig{InferRows: 1}, false, "record 2"},
		{"two on a line", "{\"a\":1}\n{\"a\":2}{\"a\":3}\n", NDJSONSourceConfig{InferRows: 1}, false, "not one per line"},
		{"nested late", "{\"a\":1}\n{\"a\":[1]}\n", NDJSONSourceConfig{InferRows: 1}, false, "record 2"},
		{"missing", "", NDJSONSourceConfig{Path: "/nonexistent/x.ndjson"}, true, "no such file"},
	} {
		path := tc.cfg.Path
		if path == "" {
			path = writeTestFile(t, dir, "e.ndjson", tc.content)
		}
		tc.cfg.Path = path
		_, err := buildFactory(NDJSONSourceSpec(), &tc.cfg)
		if tc.compile {
			var fe *engine.FieldError
			if !errors.As(err, &fe) || fe.Field != "path" || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: want a compile error containing %q, got %v", tc.name, tc.want, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: compile: %v", tc.name, err)
			continue
		}
		c, _, err := readSourceAll(t, mem, NDJSONSourceSpec(), &tc.cfg, 0)
		c.release()
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "ndjson: read "+path) {
			t.Errorf("%s: want a run error containing %q, got %v", tc.name, tc.want, err)
		}
	}
}

func FuzzNDJSONSource(f *testing.F) {
	for _, s := range []string{"{\"a\":1}\n", "{\"a\":1}\n{\"a\":\"x\"}\n", "{\"t\":\"2024-01-01T00:00:00Z\",\"b\":true}\n{", "[]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, content string) {
		mem := newMem()
		defer mem.AssertSize(t, 0)
		path := writeTestFile(t, t.TempDir(), "f.ndjson", "{\"a\":1,\"b\":\"s\",\"c\":1.5}\n"+content)
		c, _, err := readSourceAll(t, mem, NDJSONSourceSpec(), &NDJSONSourceConfig{Path: path, InferRows: 1}, 2)
		if err == nil || c != nil {
			c.release()
		}
	})
}
