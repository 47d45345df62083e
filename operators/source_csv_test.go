package operators

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/zflowdev/zflow/engine"
)

func csvCfg(path string) *CSVSourceConfig {
	c := CSVSourceSpec().NewConfig().(*CSVSourceConfig)
	c.Path = path
	return c
}

func TestCSVSourceTrades(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	c, schema, err := readSourceAll(t, mem, CSVSourceSpec(), csvCfg("../testdata/trades.csv"), 8)
	if err != nil {
		t.Fatal(err)
	}
	defer c.release()
	if got := schemaTypes(schema); got != "symbol:string,price:float64,qty:int64,ts:timestamp" {
		t.Errorf("inferred %s", got)
	}
	if c.rows() != 20 || len(c.recs) != 3 {
		t.Errorf("%d rows in %d batches, want 20 in 3", c.rows(), len(c.recs))
	}
	first := rowsText(c.recs[:1])[0]
	if first != `"AAPL"|195.19|200|"2024-01-02T09:30:00Z"` {
		t.Errorf("first row %s", first)
	}
}

func TestCSVSourceOptions(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		content string
		cfg     func(c *CSVSourceConfig)
		types   string
		rows    []string
	}{
		{"no header", "1;x\n2;y\n", func(c *CSVSourceConfig) { c.Header = false; c.Delimiter = ";" },
			"f0:int64,f1:string", []string{`1|"x"`, `2|"y"`}},
		{"nulls", "a,b,c\n1,NA,\n,2.5,true\n", func(c *CSVSourceConfig) { c.NullValues = []string{"", "NA"} },
			"a:int64,b:float64,c:bool", []string{`1|null|null`, `null|2.5|true`}},
		{"declared", "x,y\n1,2\n", func(c *CSVSourceConfig) {
			c.Columns = []ColumnDef{{Name: "p", Type: "float64"}, {Name: "q", Type: "int32"}}
		}, "p:float64,q:int32", []string{`1.0|2`}},
		{"types", "x,y,d\n1,2,2024-02-03\n", func(c *CSVSourceConfig) { c.Types = map[string]string{"y": "string"} },
			"x:int64,y:string,d:date32", []string{`1|"2"|"2024-02-03"`}},
		{"bom and quotes", "\xEF\xBB\xBFname,v\n\"a,\"\"b\"\"\",1\n", nil,
			"name:string,v:int64", []string{`"a,\"b\""|1`}},
		{"comment", "# c\nv\n1\n#x\n2\n", func(c *CSVSourceConfig) { c.Comment = "#" },
			"v:int64", []string{"1", "2"}},
		{"timestamps", "t\n2024-01-02 03:04:05\n2024-01-02T03:04:05.5+01:00\n", nil,
			"t:timestamp", []string{`"2024-01-02T03:04:05Z"`, `"2024-01-02T02:04:05.5Z"`}},
		{"nanos", "t\n2024-01-02T03:04:05.123456789Z\n", nil,
			"t:timestamp_ns", []string{`"2024-01-02T03:04:05.123456789Z"`}},
		{"mixed int float", "v\n1\n2.5\n", nil, "v:float64", []string{"1.0", "2.5"}},
		{"all null", "v,w\n,1\n", nil, "v:string,w:int64", []string{"null|1"}},
		{"spaces", "a , b,c\n 1 ,x , 2024-01-02\n2, y,2024-01-03 \n", nil,
			"a:int64,b:string,c:date32", []string{`1|"x "|"2024-01-02"`, `2|" y"|"2024-01-03"`}},
		{"header only", "a,b\n", nil, "a:string,b:string", nil},
	} {
		path := writeTestFile(t, dir, "f.csv", tc.content)
		cfg := csvCfg(path)
		if tc.cfg != nil {
			tc.cfg(cfg)
		}
		c, schema, err := readSourceAll(t, mem, CSVSourceSpec(), cfg, 0)
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

func TestCSVSourceStringReserve(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	var b strings.Builder
	b.WriteString("s\n")
	for range 1000 {
		b.WriteString("abcdefghij\n")
	}
	path := writeTestFile(t, t.TempDir(), "s.csv", b.String())
	c, _, err := readSourceAll(t, mem, CSVSourceSpec(), csvCfg(path), 300)
	if err != nil {
		t.Fatal(err)
	}
	defer c.release()
	if len(c.recs) != 4 || c.recs[3].NumRows() != 100 {
		t.Fatalf("%d batches", len(c.recs))
	}
	if s := c.recs[2].Column(0).(*array.String); s.Value(299) != "abcdefghij" {
		t.Fatal(s.Value(299))
	}
}

func TestCSVSourceErrors(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		content string
		cfg     func(c *CSVSourceConfig)
		compile bool   // the error comes from Build
		field   string // Build errors: the parameter
		want    string
	}{
		{"missing file", "", func(c *CSVSourceConfig) { c.Path += ".missing" }, true, "path", "no such file"},
		{"empty file", "", nil, true, "path", "is empty"},
		{"bad value", "v\n1\n2\nx3\n", func(c *CSVSourceConfig) { c.InferRows = 2 }, false, "",
			`line 4, column "v": cannot parse "x3" as int64 (the type was inferred from the first 2 rows`},
		{"ragged row", "a,b\n1,2\n3\n", nil, true, "path", "wrong number of fields"},
		{"ragged late", "a,b\n1,2\n3,4,5\n", func(c *CSVSourceConfig) { c.InferRows = 1 }, false, "", "line 3"},
		{"bare quote", "a\n\"x\n", nil, true, "path", "extraneous or missing"},
		{"bad quote late", "a\n1\nx\"y\n", func(c *CSVSourceConfig) { c.InferRows = 1 }, false, "", "bare \" in non-quoted-field"},
		{"duplicate header", "a,a\n1,2\n", nil, true, "path", `column "a" twice`},
		{"columns count", "a,b\n1,2\n", func(c *CSVSourceConfig) { c.Columns = []ColumnDef{{Name: "a", Type: "int64"}} }, true, "columns", "1 columns declared"},
		{"column type", "a\n1\n", func(c *CSVSourceConfig) { c.Columns = []ColumnDef{{Name: "a", Type: "money"}} }, true, "columns.0.type", "unknown column type"},
		{"types unknown column", "qty\n1\n", func(c *CSVSourceConfig) { c.Types = map[string]string{"qtx": "int32"} }, true, "types.qtx", `did you mean "qty"`},
		{"delimiter", "a\n", func(c *CSVSourceConfig) { c.Delimiter = "ab" }, true, "delimiter", "single character"},
		{"declared bad value", "a\n1.5\n", func(c *CSVSourceConfig) { c.Columns = []ColumnDef{{Name: "a", Type: "int32"}} }, false, "", `cannot parse "1.5" as int32`},
		{"bad timestamp", "t\n2024-01-01T00:00:00Z\nnot a time\n", func(c *CSVSourceConfig) { c.InferRows = 1 }, false, "", `cannot parse "not a time" as timestamp`},
		{"bad bool", "b\ntrue\nmaybe\n", func(c *CSVSourceConfig) { c.InferRows = 1 }, false, "", `cannot parse "maybe" as bool`},
	} {
		path := writeTestFile(t, dir, "e.csv", tc.content)
		cfg := csvCfg(path)
		if tc.cfg != nil {
			tc.cfg(cfg)
		}
		f, err := buildFactory(CSVSourceSpec(), cfg)
		if tc.compile {
			var fe *engine.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: want a compile error on %s containing %q, got %v", tc.name, tc.field, tc.want, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: compile: %v", tc.name, err)
			continue
		}
		c, _, err := readSourceAll(t, mem, CSVSourceSpec(), cfg, 0)
		c.release()
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "csv: read "+path) {
			t.Errorf("%s: want a run error containing %q, got %v", tc.name, tc.want, err)
		}
		_ = f
	}
}

// FuzzCSVSource checks that no input makes the csv source panic or leak.
func FuzzCSVSource(f *testing.F) {
	for _, s := range []string{"a,b\n1,2\n", "a\n\"x\n", "x,y\n1,2.5\ntrue,\n", "t\n2024-01-01T00:00:00Z\n", "a,b\n1\n", "\xEF\xBB\xBF\n,\n"} {
		f.Add(s, 1)
	}
	f.Fuzz(func(t *testing.T, content string, inferRows int) {
		mem := newMem()
		defer mem.AssertSize(t, 0)
		path := writeTestFile(t, t.TempDir(), "f.csv", content)
		cfg := csvCfg(path)
		cfg.InferRows = inferRows & 7
		c, _, err := readSourceAll(t, mem, CSVSourceSpec(), cfg, 3)
		if err == nil || c != nil {
			c.release()
		}
	})
}
