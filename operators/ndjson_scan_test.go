package operators

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	gojson "github.com/goccy/go-json"

	"github.com/zflowdev/zflow/internal/coltype"
)

// decodeLineOld is the decoder the ndjson source used before its scanner:
// a goccy/go-json decoder per line and arrow-go's UnmarshalOne. It stays
// here as the oracle of FuzzNDJSONScan and the baseline of
// BenchmarkNDJSONDecode.
func decodeLineOld(b *array.RecordBuilder, text []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed input (decoder panicked: %v)", r)
		}
	}()
	dec := gojson.NewDecoder(bytes.NewReader(text))
	dec.UseNumber()
	if err := b.UnmarshalOne(dec); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("unexpected end of the line in a JSON object")
		}
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("more than one JSON value on the line: objects are not one per line")
	}
	return nil
}

// scanTestSchema has a column of every kind the scanner reads itself, and
// two it hands to UnmarshalOne (int32, uint8).
var scanTestSchema = arrow.NewSchema([]arrow.Field{
	{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "i", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "f", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "b", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
	{Name: "d", Type: arrow.FixedWidthTypes.Date32, Nullable: true},
	{Name: "t", Type: coltype.Timestamp, Nullable: true},
	{Name: "n", Type: &arrow.TimestampType{Unit: arrow.Microsecond}, Nullable: true},
	{Name: "ns", Type: coltype.TimestampNanos, Nullable: true},
	{Name: "x", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
	{Name: "u", Type: arrow.PrimitiveTypes.Uint8, Nullable: true},
}, nil)

// compareScan decodes the lines of content with the old decoder and the
// scanner and fails t where they disagree: on a line the old decoder read
// and that is valid JSON, the scanner must read the same row; on a line
// the old decoder refused, the scanner must refuse it too. A line that is
// not valid JSON (RFC 8259) but that the old decoder took anyway (it
// skipped missing colons and stray commas) may be refused by the scanner,
// and a number out of float64's range as the value of a key that is not a
// column, which the old decoder refused, is skipped by the scanner.
func compareScan(t *testing.T, content string) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	oldB := array.NewRecordBuilder(mem, scanTestSchema)
	defer func() { oldB.Release() }()
	newB := array.NewRecordBuilder(mem, scanTestSchema)
	defer newB.Release()
	sc := newNDJSONScanner(scanTestSchema, newB, nil, false, "f", "")
	var oldRows, newRows []string
	flush := func() {
		o, n := oldB.NewRecordBatch(), newB.NewRecordBatch()
		oldRows = append(oldRows, rowsText([]arrow.RecordBatch{o})...)
		newRows = append(newRows, rowsText([]arrow.RecordBatch{n})...)
		o.Release()
		n.Release()
	}
	for i, line := range strings.SplitAfter(content, "\n") {
		if blank([]byte(line)) {
			continue
		}
		oerr := decodeLineOld(oldB, []byte(line))
		if oerr != nil {
			// arrow-go's restore after a failed row can leave the builders
			// uneven (a panic inside goccy); start afresh.
			dropRows(oldB)
			oldB.Release()
			oldB = array.NewRecordBuilder(mem, scanTestSchema)
		}
		nerr := sc.row([]byte(line))
		if nerr != nil {
			dropRows(newB)
		}
		switch {
		case oerr != nil && strings.HasPrefix(oerr.Error(), "strconv.ParseFloat: ") && strings.HasSuffix(oerr.Error(), strconv.ErrRange.Error()) && nerr == nil:
			// goccy/go-json decoded the value of a key that is not a column
			// as a float64 (UseNumber notwithstanding) and failed on one out
			// of range; the scanner skips the value as the key asks.
			dropRows(newB)
			flush()
			continue
		case oerr != nil && nerr == nil:
			t.Fatalf("line %d %q: the old decoder refused it (%v), the scanner read it", i+1, line, oerr)
		case oerr == nil && nerr != nil && json.Valid([]byte(line)):
			t.Fatalf("line %d %q: the old decoder read it, the scanner refused it: %v", i+1, line, nerr)
		case oerr != nil || nerr != nil:
			if oerr == nil { // a line only goccy took: drop its row
				dropRows(oldB)
			}
			flush()
			continue
		}
		flush()
		if !slices.Equal(oldRows, newRows) {
			t.Fatalf("line %d %q:\n old %q\n new %q", i+1, line, oldRows[len(oldRows)-1], newRows[len(newRows)-1])
		}
	}
}

// TestNDJSONScanMatchesOld: the scanner reads what the old decoder read,
// value for value, and refuses what it refused.
func TestNDJSONScanMatchesOld(t *testing.T) {
	for _, s := range scanSeeds {
		compareScan(t, s)
	}
}

var scanSeeds = []string{
	`{"s":"a","i":1,"f":1.5,"b":true,"d":"2024-01-02","t":"2024-01-02T03:04:05Z","n":"2024-01-02T03:04:05","ns":"2024-01-02T03:04:05.123456789+02:00","x":5,"u":7}`,
	`{"s":"\u00e9\ud83d\ude00\n\t\"\\\/\b\f\r","i":-0,"f":-1e-400,"b":false,"d":19000,"t":1704067200123,"x":"12","u":"3"}`,
	`{"s":"a\ud800b","i":"12","f":"1.5","b":"T","d":"19000","t":"2024-01-02","n":"2024-01-02T03:04:05Z"}`,
	"{\"s\":\"a\xffb\xe2\x82\",\"i\":1e3,\"f\":1E+2,\"b\":1}",
	`{"i":1.0}` + "\n" + `{"i":1.5}` + "\n" + `{"i":99999999999999999999}` + "\n" + `{"f":1e400}`,
	`{"i":9223372036854775807}` + "\n" + `{"i":-9223372036854775808}` + "\n" + `{"i":9223372036854775808}`,
	`{"s":null,"i":null,"f":null,"b":null,"d":null,"t":null,"n":null,"x":null,"u":null}`,
	`{}` + "\n \t\r\n" + `{"zz":[1,{"a":[]},"x"],"s":"k"}` + "\n" + `{"zz":1,"zz":2}` + "\n" + `{"s":"a","s":"b"}`,
	`{"s":1}` + "\n" + `{"s":true}` + "\n" + `{"s":{}}` + "\n" + `{"i":[1]}` + "\n" + `{"b":2}` + "\n" + `{"b":"yes"}`,
	`{"t":"2024-01-02T03:04:05"}` + "\n" + `{"n":"2024-01-02T03:04:05+01:00"}` + "\n" + `{"t":"2024-01-02 03:04:05.1234567Z"}`,
	`{"d":"2024-02-30"}` + "\n" + `{"d":"0000-01-01"}` + "\n" + `{"x":2147483648}` + "\n" + `{"u":256}` + "\n" + `{"u":-1}`,
	`{"i":1}x` + "\n" + `{"i":1}{"i":2}` + "\n" + `{"i":01}` + "\n" + `{"i" 1}` + "\n" + `{,"i":1}` + "\n" + `{"i":1,}`,
	`{"\u0073":"q","\u0069":3}` + "\n" + `["a"]` + "\n" + `not json` + "\n" + `{"s":"\x"}` + "\n" + `{"s":"\u12"}`,
	"{\"s\":\"a\x01b\"}\n{\"s\":\"tab\tin\"}\n{\"i\":1}\r\n",
}

// FuzzNDJSONScan feeds the same lines to the old decoder and the scanner
// (see compareScan). Seeds: scanSeeds, and testdata/fuzz/FuzzNDJSONScan.
//
//	go test -run '^$' -fuzz FuzzNDJSONScan -fuzztime 60s ./operators/
func FuzzNDJSONScan(f *testing.F) {
	for _, s := range scanSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, content string) {
		compareScan(t, content)
	})
}

// writeTradesNDJSON writes rows of trades as the ndjson sink writes them
// (bench/pipelines/gen_ndjson.yaml: ts, symbol, price, qty) and returns
// the path and the file size.
func writeTradesNDJSON(tb testing.TB, dir string, rows int) (string, int64) {
	return writeTrades(tb, filepath.Join(dir, fmt.Sprintf("trades_%d.ndjson", rows)), rows, "",
		func(line []byte, ts time.Time, sym int, price float64, qty int64) []byte {
			line = append(line, `{"ts":"`...)
			line = ts.AppendFormat(line, "2006-01-02T15:04:05.000Z")
			line = fmt.Appendf(line, `","symbol":"SYM%04d","price":`, sym)
			line = strconv.AppendFloat(line, price, 'g', -1, 64)
			line = append(line, `,"qty":`...)
			line = strconv.AppendInt(line, qty, 10)
			return append(line, '}')
		})
}
