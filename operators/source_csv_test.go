package operators

import (
	"context"
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
		{"crlf and quoted newlines", "s,n\r\n\"a\r\nb\",1\r\n\"say \"\"hi\"\"\",2\r\n\"\",3", nil,
			"s:string,n:int64", []string{`"a\nb"|1`, `"say \"hi\""|2`, `""|3`}},
		{"quoted empty is a string, unquoted empty is null", "s,t,n\n\"\",,1\n,\"\",2\n\"x\",\"\",\n", nil,
			"s:string,t:string,n:int64", []string{`""|null|1`, `null|""|2`, `"x"|""|null`}},
		{"lazy quotes", "s,n\na\"b,1\n\"c\"d\",2\n", func(c *CSVSourceConfig) { c.LazyQuotes = true },
			"s:string,n:int64", []string{`"a\"b"|1`, `"c\"d"|2`}},
		{"multibyte delimiter", "a€b\n1€x\n", func(c *CSVSourceConfig) { c.Delimiter = "€" },
			"a:int64,b:string", []string{`1|"x"`}},
		{"timestamp shapes", "t\n2024-01-02T03:04\n2024-01-02T03:04:05+0100\n2024-01-02 03:04:05.25-01\n2024-01-02\n1969-12-31T23:59:59.999999Z\n", nil,
			"t:timestamp", []string{`"2024-01-02T03:04:00Z"`, `"2024-01-02T02:04:05Z"`, `"2024-01-02T04:04:05.25Z"`,
				`"2024-01-02T00:00:00Z"`, `"1969-12-31T23:59:59.999999Z"`}},
		{"declared types", "a,b,c,d,e,f,g\n 7 ,2024-02-29,1e3,2024-01-02T03:04:05.123Z,T,aGk=,-0\n", func(c *CSVSourceConfig) {
			c.Columns = []ColumnDef{{Name: "a", Type: "int32"}, {Name: "b", Type: "date32"}, {Name: "c", Type: "float64"},
				{Name: "d", Type: "timestamp_ms"}, {Name: "e", Type: "bool"}, {Name: "f", Type: "binary"}, {Name: "g", Type: "int8"}}
		}, "a:int32,b:date32,c:float64,d:timestamp_ms,e:bool,f:binary,g:int8",
			[]string{`7|"2024-02-29"|1000.0|"2024-01-02T03:04:05.123Z"|true|"aGk="|0`}},
		{"na nulls", "a,b\nNA,x\n1,NA\n", func(c *CSVSourceConfig) { c.NullValues = []string{"NA"} },
			"a:int64,b:string", []string{`null|"x"`, `1|null`}},
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
		{"line after quoted newlines", "a,b\n\"x\ny\",1\nz,w\n", func(c *CSVSourceConfig) { c.InferRows = 1 }, false, "",
			`line 4, column "b": cannot parse "w" as int64`},
		{"field on a later line", "a,b\n\"x\ny\",q\n", func(c *CSVSourceConfig) {
			c.Columns = []ColumnDef{{Name: "a", Type: "string"}, {Name: "b", Type: "int64"}}
		}, false, "", `line 3, column "b": cannot parse "q" as int64`},
		{"ragged after quoted newline", "a,b\n\"x\ny\",1\n2\n", func(c *CSVSourceConfig) { c.InferRows = 1 }, false, "",
			"record on line 4: wrong number of fields"},
		{"unterminated quote late", "a\n1\n\"2\n", func(c *CSVSourceConfig) { c.InferRows = 1 }, false, "",
			`parse error on line 3, column 4: extraneous or missing " in quoted-field`},
		{"int32 overflow", "a\n1\n3000000000\n", func(c *CSVSourceConfig) { c.Types = map[string]string{"a": "int32"} }, false, "",
			`line 3, column "a": cannot parse "3000000000" as int32`},
		{"leap second", "t\n2016-12-31T23:59:59Z\n2016-12-31T23:59:60Z\n", func(c *CSVSourceConfig) { c.InferRows = 1 }, false, "",
			`line 3, column "t": cannot parse "2016-12-31T23:59:60Z" as timestamp`},
		{"bad date", "d\n2024-02-28\n2023-02-29\n", func(c *CSVSourceConfig) { c.InferRows = 1 }, false, "",
			`line 3, column "d": cannot parse "2023-02-29" as date32`},
		{"too precise", "t\n2024-01-01T00:00:00Z\n2024-01-01T00:00:00.1234567Z\n", func(c *CSVSourceConfig) { c.InferRows = 1 }, false, "",
			`line 3, column "t": "2024-01-01T00:00:00.1234567Z" has more fraction digits than timestamp holds (6); set truncate: true on the column to drop them`},
		{"bad base64", "b\n!!\n", func(c *CSVSourceConfig) { c.Columns = []ColumnDef{{Name: "b", Type: "binary"}} }, false, "",
			`line 2, column "b": cannot decode "!!" as base64 binary`},
		{"nul delimiter", "a\n", func(c *CSVSourceConfig) { c.Delimiter = "\x00" }, true, "path", "invalid field or comment delimiter"},
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

// TestCSVSourceAllocs checks that rows cost no allocation: what a run
// allocates is per batch and per file.
func TestCSVSourceAllocs(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	const rows = 50_000
	path, _ := writeTradesCSV(t, t.TempDir(), rows)
	f, err := buildFactory(CSVSourceSpec(), csvCfg(path))
	if err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(2, func() {
		op, err := f.New(testIC(mem, "src", "csv", 10_000))
		if err != nil {
			t.Fatal(err)
		}
		var e releasingEmitter
		if err := op.(engine.Source).Run(context.Background(), &e); err != nil || e.rows != rows {
			t.Fatalf("%d rows: %v", e.rows, err)
		}
	})
	if allocs > rows/50 { // about 150 a batch (builders, arrays, the checked allocator's records)
		t.Errorf("%.0f allocations to read %d rows in 5 batches", allocs, rows)
	}
}

// FuzzCSVSource checks that no input makes the csv source panic or leak.
func FuzzCSVSource(f *testing.F) {
	for _, s := range []string{"a,b\n1,2\n", "a\n\"x\n", "x,y\n1,2.5\ntrue,\n", "t\n2024-01-01T00:00:00Z\n", "a,b\n1\n", "\xEF\xBB\xBF\n,\n",
		"t,d\r\n2024-01-02T09:30:00.001Z,2024-02-29\r\n2024-01-02 09:30:00+01:00,2023-02-29\r\n", "s,n\n\"a\nb\",1\n\"c\"\"d\",2\n",
		"a,b\n1.5,-0\n1e400,+7\n", "t\n2016-12-31T23:59:60Z\n", "a\n\"x\"y\n"} {
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
