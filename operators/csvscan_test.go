package operators

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

// scanAll reads src with a csvScanner (buffer bufSize, input fed through
// chunk-byte reads when chunk > 0) up to and including the first error.
func scanAll(src string, comma, comment rune, lazy bool, bufSize, chunk int) (recs [][]string, lines [][]int, err error) {
	var r io.Reader = strings.NewReader(src)
	if chunk > 0 {
		r = &chunkReader{r: r, n: chunk}
	}
	s := newCSVScanner(r, comma, comment, lazy, bufSize)
	for {
		fields, err := s.next()
		if err != nil {
			return recs, lines, err
		}
		rec := make([]string, len(fields))
		ls := make([]int, len(fields))
		for i, f := range fields {
			rec[i] = string(f)
			ls[i] = s.fieldLine(i)
		}
		recs, lines = append(recs, rec), append(lines, ls)
	}
}

// stdAll is scanAll with encoding/csv.
func stdAll(src string, comma, comment rune, lazy bool) (recs [][]string, lines [][]int, err error) {
	r := csv.NewReader(strings.NewReader(strings.TrimPrefix(src, "\xEF\xBB\xBF")))
	r.Comma, r.Comment, r.LazyQuotes = comma, comment, lazy
	for {
		rec, err := r.Read()
		if err != nil {
			return recs, lines, err
		}
		ls := make([]int, len(rec))
		for i := range rec {
			ls[i], _ = r.FieldPos(i)
		}
		recs, lines = append(recs, rec), append(lines, ls)
	}
}

// chunkReader returns at most n bytes per Read.
type chunkReader struct {
	r io.Reader
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.n)]) }

// checkScanSame fails t unless the scanner and encoding/csv agree on src.
func checkScanSame(t *testing.T, src string, comma, comment rune, lazy bool, bufSize, chunk int) {
	t.Helper()
	want, wantLines, wantErr := stdAll(src, comma, comment, lazy)
	got, gotLines, gotErr := scanAll(src, comma, comment, lazy, bufSize, chunk)
	if !slices.EqualFunc(got, want, slices.Equal) || !slices.EqualFunc(gotLines, wantLines, slices.Equal) {
		t.Fatalf("%q (comma %q, comment %q, lazy %v, buffer %d, chunk %d):\n got %q lines %v\nwant %q lines %v",
			src, comma, comment, lazy, bufSize, chunk, got, gotLines, want, wantLines)
	}
	var gpe, wpe *csv.ParseError
	if errors.As(wantErr, &wpe) {
		if !errors.As(gotErr, &gpe) || *gpe != *wpe {
			t.Fatalf("%q (comma %q, comment %q, lazy %v, buffer %d, chunk %d):\n got error %v\nwant %v",
				src, comma, comment, lazy, bufSize, chunk, gotErr, wantErr)
		}
		return
	}
	if gotErr == nil || wantErr == nil || gotErr.Error() != wantErr.Error() {
		t.Fatalf("%q (comma %q, comment %q, lazy %v, buffer %d, chunk %d):\n got error %v\nwant %v",
			src, comma, comment, lazy, bufSize, chunk, gotErr, wantErr)
	}
}

var csvScanCases = []string{
	"", "\n", "\r\n", "\r", "a", "a\n", "a\r", "a\r\n", "a,b\n1,2\n", "a,b\r\n1,2\r\n", "a,b\n1,2",
	"a,\n,b\n,\n", "\n\na\n\n\nb\n", "a\rb\n", "a\r\rb\r\n", "a\n\r", "a\n\r\r",
	`"a","b"` + "\n", `"a""b",c` + "\n", `"",""` + "\n", `""""` + "\n", `"a,b"` + "\n", "\"a\nb\",c\n", "\"a\r\nb\"\r\n",
	"\"a\n\nb\"\n", "\"a\rb\"\n", "\"\n\"\n", "x,\"a\n\"\"b\n\",y\n1,2,3\n", "\"a\"\r", "\"a\"\r\r\n",
	// errors
	"a\"b\n", "a,b\"\n", "1\n2\nx\"y\n", `"a"b` + "\n", `"a" ` + "\n", "\"a\n", "\"a", "\"a\r", "\"a\n\r", "\"a\r\n",
	"\"a\nb\n", "\"a\nb", "x,\"a\nbc\"d\n", "a,b\n1\n", "a,b\n1,2,3\n", "a\n\"b\n\n\n", "\"a\n\"\r",
	// comments
	"#c\na\n#d\nb\n", "a\n#\"unbalanced\nb\n", "#c", "#c\r\n#d\r\na", "a,#b\n", "\"#a\"\n#x\n",
	// lazy
	`a"b,c` + "\n", `"a"b"` + "\n", `"a"b",c` + "\n", `"a""` + "\n", "\"ab\"c\nd\"\n", `""a` + "\n",
	// a byte order mark
	"\xEF\xBB\xBFa,b\n1,2\n", "\xEF\xBB\xBF", "\xEF\xBB", "\xEF\xBB\xBF\"a\n",
}

func TestCSVScanMatchesEncodingCSV(t *testing.T) {
	for _, src := range csvScanCases {
		for _, lazy := range []bool{false, true} {
			for _, comma := range []rune{',', ';', '\t', 'é', '€'} {
				src := strings.NewReplacer(",", string(comma)).Replace(src)
				for _, comment := range []rune{0, '#', 'ü'} {
					for _, size := range []struct{ buf, chunk int }{{0, 0}, {1, 1}, {4, 3}, {7, 0}} {
						checkScanSame(t, src, comma, comment, lazy, size.buf, size.chunk)
					}
				}
			}
		}
	}
}

func TestCSVScanRecords(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want string // records joined by |, fields by ·
		err  string
	}{
		{"a,b\r\n\"x\"\"y\",\"1\n2\"\n", "a·b|x\"y·1\n2", ""},
		{"\"p\r\nq\",r\n", "p\nq·r", ""},
		{"a\n\n#c\nb\n", "a|#c|b", ""},
		{"a,b\n1,2,3\n", "a·b", "record on line 2: wrong number of fields"},
		{"a\nx\"y\n", "a", "parse error on line 2, column 2: bare \" in non-quoted-field"},
		{"a\n\"x\ny\n", "a", "record on line 2; parse error on line 3, column 3: extraneous or missing \" in quoted-field"},
	} {
		recs, _, err := scanAll(tc.src, ',', 0, false, 0, 0)
		var parts []string
		for _, r := range recs {
			parts = append(parts, strings.Join(r, "·"))
		}
		if got := strings.Join(parts, "|"); got != tc.want {
			t.Errorf("%q: records %q, want %q", tc.src, got, tc.want)
		}
		if tc.err == "" && err != io.EOF || tc.err != "" && (err == nil || err.Error() != tc.err) {
			t.Errorf("%q: error %v, want %q", tc.src, err, tc.err)
		}
	}
}

// TestCSVScanLongRecord grows the buffer for a record longer than it.
func TestCSVScanLongRecord(t *testing.T) {
	long := strings.Repeat("x", 10000)
	src := "a,b\n\"" + long + "\"\"\n" + long + "\"," + long + "\nc,d\n"
	for _, chunk := range []int{0, 1000} {
		checkScanSame(t, src, ',', 0, false, 16, chunk)
	}
}

// TestCSVScanReadError checks that a read error ends the scan with it.
func TestCSVScanReadError(t *testing.T) {
	boom := errors.New("boom")
	r := io.MultiReader(strings.NewReader("a,b\n1,2\n3,"), iotest.ErrReader(boom))
	s := newCSVScanner(r, ',', 0, false, 4)
	var n int
	var err error
	for err == nil {
		_, err = s.next()
		n++
	}
	if !errors.Is(err, boom) || n != 3 {
		t.Fatalf("after %d records: %v", n-1, err)
	}
}

func TestCSVScanInvalidDelim(t *testing.T) {
	for _, d := range [][2]rune{{0, 0}, {',', ','}, {'\uFFFD', 0}, {',', '\uFFFD'}} {
		if _, err := newCSVScanner(strings.NewReader("a\n"), d[0], d[1], false, 0).next(); err == nil || err.Error() != "csv: invalid field or comment delimiter" {
			t.Errorf("comma %q, comment %q: %v", d[0], d[1], err)
		}
	}
}

// TestCSVScanAllocs checks that scanning allocates nothing per record.
func TestCSVScanAllocs(t *testing.T) {
	allocs := func(rows int) float64 {
		var b bytes.Buffer
		for i := range rows {
			fmt.Fprintf(&b, "2024-01-02T09:30:00.%03dZ,SYM%04d,\"q\"\"%d\",%d\n", i%1000, i%20, i, i)
		}
		src := b.Bytes()
		return testing.AllocsPerRun(5, func() {
			s := newCSVScanner(bytes.NewReader(src), ',', 0, false, 1<<16)
			for {
				if _, err := s.next(); err != nil {
					break
				}
			}
		})
	}
	if few, many := allocs(100), allocs(50000); many != few {
		t.Errorf("%.0f allocations to scan 100 records, %.0f for 50000", few, many)
	}
}

// FuzzCSVScan checks the scanner against encoding/csv on arbitrary input,
// options and buffer sizes.
func FuzzCSVScan(f *testing.F) {
	for _, s := range csvScanCases {
		f.Add(s, uint8(0), false, uint8(0))
	}
	f.Add("a;b\n#x\n1;\"2\n\"\n", uint8(1), true, uint8(9))
	f.Fuzz(func(t *testing.T, src string, opts uint8, lazy bool, size uint8) {
		comma := []rune{',', ';', '\t', 'é'}[opts&3]
		comment := []rune{0, '#', 'ü', 0}[opts>>2&3]
		bufSize, chunk := 0, 0
		if size > 0 {
			bufSize, chunk = int(size&31)+1, int(size>>5)
		}
		checkScanSame(t, src, comma, comment, lazy, bufSize, chunk)
	})
}
