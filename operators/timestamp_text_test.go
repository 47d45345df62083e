package operators

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/zflowdev/zflow/engine"
)

// A timestamp finer than its column's unit fails the run naming its place,
// unless the column says truncate: true; zone offsets convert to UTC.
func TestTimestampTruncate(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	dir := t.TempDir()
	values := []string{
		"2024-01-01 00:00:00.123456", "2024-01-01T00:00:00.9999Z", "1969-12-31 23:59:59.9999",
		"2024-01-01 10:00:00.5-0530", "2024-01-01 10:00:00+02", "2024-01-01T10:00:00.1234+02:00", "2024-01-01",
	}
	wantMS := []string{
		`"2024-01-01T00:00:00.123Z"`, `"2024-01-01T00:00:00.999Z"`, `"1969-12-31T23:59:59.999Z"`,
		`"2024-01-01T15:30:00.5Z"`, `"2024-01-01T08:00:00Z"`, `"2024-01-01T08:00:00.123Z"`, `"2024-01-01T00:00:00Z"`,
	}
	wantS := []string{
		`"2024-01-01T00:00:00Z"`, `"2024-01-01T00:00:00Z"`, `"1969-12-31T23:59:59Z"`,
		`"2024-01-01T15:30:00Z"`, `"2024-01-01T08:00:00Z"`, `"2024-01-01T08:00:00Z"`, `"2024-01-01T00:00:00Z"`,
	}
	csvPath := writeTestFile(t, dir, "t.csv", "t\n"+strings.Join(values, "\n")+"\n")
	var nd strings.Builder
	for _, v := range values {
		nd.WriteString(`{"t":"` + v + "\"}\n")
	}
	ndPath := writeTestFile(t, dir, "t.ndjson", nd.String())
	for _, tc := range []struct {
		typ  string
		want []string
	}{{"timestamp_ms", wantMS}, {"timestamp_s", wantS}} {
		cols := []ColumnDef{{Name: "t", Type: tc.typ, Truncate: true}}
		for _, src := range []struct {
			name string
			spec engine.Spec
			cfg  any
		}{
			{"csv", CSVSourceSpec(), &CSVSourceConfig{Path: csvPath, Header: true, Delimiter: ",", NullValues: []string{""}, Columns: cols}},
			{"ndjson", NDJSONSourceSpec(), &NDJSONSourceConfig{Path: ndPath, Columns: cols}},
		} {
			c, _, err := readSourceAll(t, mem, src.spec, src.cfg, 3)
			if err != nil {
				t.Errorf("%s %s: %v", src.name, tc.typ, err)
				continue
			}
			if got := rowsText(c.recs); !slices.Equal(got, tc.want) {
				t.Errorf("%s %s:\n got %q\nwant %q", src.name, tc.typ, got, tc.want)
			}
			c.release()
		}
	}

	// Without truncate: an error naming the place, never a silent cut.
	cols := []ColumnDef{{Name: "t", Type: "timestamp_ms"}}
	c, _, err := readSourceAll(t, mem, CSVSourceSpec(), &CSVSourceConfig{Path: csvPath, Header: true, Delimiter: ",", NullValues: []string{""}, Columns: cols}, 0)
	c.release()
	want := `line 2, column "t": "2024-01-01 00:00:00.123456" has more fraction digits than timestamp_ms holds (3); set truncate: true on the column to drop them`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("csv without truncate: %v, want %q", err, want)
	}
	c, _, err = readSourceAll(t, mem, NDJSONSourceSpec(), &NDJSONSourceConfig{Path: ndPath, Columns: cols}, 0)
	c.release()
	want = `record 1 (line 1): json: cannot unmarshal 2024-01-01 00:00:00.123456 into Go value of type arrow.Timestamp (a value of the timestamp column "t" (timestamp_ms) that does not parse; one with more fraction digits than its unit holds needs truncate: true on the column)`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("ndjson without truncate: %v, want %q", err, want)
	}

	// A JSON number in a timestamp column (not truncating) is a count of
	// its unit, as arrow's reader takes it.
	num := writeTestFile(t, dir, "num.ndjson", `{"t":1704067200123}`+"\n")
	c, _, err = readSourceAll(t, mem, NDJSONSourceSpec(), &NDJSONSourceConfig{Path: num, Columns: cols}, 0)
	if err != nil {
		t.Errorf("ndjson number: %v", err)
	} else if got := rowsText(c.recs); !slices.Equal(got, []string{`"2024-01-01T00:00:00.123Z"`}) {
		t.Errorf("ndjson number: %q", got)
	}
	c.release()

	// A bad value in a truncating column names its record and key.
	bad := writeTestFile(t, dir, "bad.ndjson", `{"t":"2024-01-01 00:00:00.1234"}`+"\n"+`{"t":"yesterday"}`+"\n")
	c, _, err = readSourceAll(t, mem, NDJSONSourceSpec(), &NDJSONSourceConfig{Path: bad, Columns: []ColumnDef{{Name: "t", Type: "timestamp_ms", Truncate: true}}}, 0)
	c.release()
	if want := `record 2, key "t": cannot parse "yesterday" as timestamp_ms`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("ndjson bad value: %v, want %q", err, want)
	}

	// truncate on a column that is not a timestamp is a config error.
	_, err = buildFactory(CSVSourceSpec(), &CSVSourceConfig{Path: csvPath, Header: true, Delimiter: ",", Columns: []ColumnDef{{Name: "t", Type: "string", Truncate: true}}})
	var fe *engine.FieldError
	if !errors.As(err, &fe) || fe.Field != "columns.0.truncate" || !strings.Contains(err.Error(), "truncate applies to timestamp columns, not string") {
		t.Errorf("truncate on a string: %v", err)
	}
}
