package operators

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// dump renders batches as text, a line per row, to compare two reads.
func dump(recs []arrow.RecordBatch) string {
	var b strings.Builder
	for _, r := range recs {
		for i := range int(r.NumRows()) {
			for j, c := range r.Columns() {
				if j > 0 {
					b.WriteByte(',')
				}
				b.WriteString(c.ValueStr(i))
			}
			b.WriteByte('\n')
		}
	}
	return b.String()
}

func readText(t *testing.T, kind, path string) (string, error) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	var c *collector
	var err error
	switch kind {
	case "csv":
		cfg := CSVSourceSpec().NewConfig().(*CSVSourceConfig)
		cfg.Path = path
		c, _, err = readSourceAll(t, mem, CSVSourceSpec(), cfg, 7)
	case "ndjson":
		cfg := NDJSONSourceSpec().NewConfig().(*NDJSONSourceConfig)
		cfg.Path = path
		c, _, err = readSourceAll(t, mem, NDJSONSourceSpec(), cfg, 7)
	}
	if c == nil {
		return "", err
	}
	defer c.release()
	return dump(c.recs), err
}

// TestCompressedText: csv and ndjson read gzip, zstd, bzip2 and xz inputs
// as the plain file, whatever the file is called (the codec is found by
// its magic bytes), and the same rows come out.
func TestCompressedText(t *testing.T) {
	dir := filepath.Join("testdata", "compressed")
	plainCSV, err := readText(t, "csv", filepath.Join("..", "testdata", "trades.csv"))
	if err != nil || strings.Count(plainCSV, "\n") != 20 {
		t.Fatalf("plain csv: %v\n%s", err, plainCSV)
	}
	plainJSON, err := readText(t, "ndjson", filepath.Join(dir, "trades.ndjson"))
	if err != nil || strings.Count(plainJSON, "\n") != 20 {
		t.Fatalf("plain ndjson: %v\n%s", err, plainJSON)
	}
	for _, tc := range []struct{ kind, file, want string }{
		{"csv", "trades.csv.gz", plainCSV},
		{"csv", "trades.data", plainCSV}, // zstd, under a name that says nothing
		{"csv", "trades.csv.bz2", plainCSV},
		{"csv", "trades.txt", plainCSV}, // xz
		{"ndjson", "trades.ndjson.gz", plainJSON},
		{"ndjson", "trades.ndjson.zst", plainJSON},
	} {
		t.Run(tc.file, func(t *testing.T) {
			got, err := readText(t, tc.kind, filepath.Join(dir, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("rows differ from the plain file:\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

// TestNotText: what is not text is refused at compile time, saying what it
// looks like and which source reads it; a damaged compressed file is an
// error, never fewer rows.
func TestNotText(t *testing.T) {
	dir := t.TempDir()
	csvText, err := os.ReadFile(filepath.Join("..", "testdata", "trades.csv"))
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(bytes.Repeat(csvText, 200)) // longer than one read of the sample
	zw.Close()
	gzBytes := gz.Bytes()
	corrupt := bytes.Clone(gzBytes)
	corrupt[len(corrupt)-6] ^= 0xff // the CRC32 of the trailer
	var gzParquet bytes.Buffer
	zw = gzip.NewWriter(&gzParquet)
	zw.Write([]byte("PAR1\x15\x00\x15\x02 body of a parquet file PAR1"))
	zw.Close()
	for _, tc := range []struct {
		name, kind string
		data       []byte
		want       string
	}{
		{"parquet", "csv", []byte("PAR1\x15\x04\x15\x10\x00 and more PAR1"), "looks like a Parquet file; use type: parquet"},
		{"arrow file", "csv", []byte("ARROW1\x00\x00\xff\xff\xff\xff"), "looks like an Arrow IPC file; use type: arrow"},
		{"arrow stream", "ndjson", []byte("\xff\xff\xff\xff\x10\x00\x00\x00rest"), "looks like an Arrow IPC stream; use type: arrow"},
		{"zip", "csv", []byte("PK\x03\x04\x14\x00\x00\x00"), "looks like a ZIP archive (unzip it first), not text"},
		{"nul", "csv", []byte("a,b\n1,2\n3\x004\n"), "looks like binary data (a NUL byte at offset 9), not text"},
		{"utf16", "csv", []byte("\xff\xfea\x00,\x00b\x00"), "looks like UTF-16 text (convert it to UTF-8"},
		{"gzip parquet", "csv", gzParquet.Bytes(), "looks like a Parquet file, gzip-compressed; use type: parquet"},
		{"truncated gzip", "csv", gzBytes[:len(gzBytes)/2], "unexpected EOF"},
		{"corrupt gzip", "csv", corrupt, "gzip: invalid checksum"},
		{"truncated gzip ndjson", "ndjson", gzBytes[:10], "unexpected EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name)
			if err := os.WriteFile(path, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := readText(t, tc.kind, path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want an error containing %q, got %v (rows: %q)", tc.want, err, got)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("the error does not name the file: %v", err)
			}
		})
	}
	// Text that merely starts like a magic number is still text.
	path := filepath.Join(dir, "par1.csv")
	os.WriteFile(path, []byte("PAR1,PAR2\n1,2\n"), 0o644)
	if got, err := readText(t, "csv", path); err != nil || got != "1,2\n" {
		t.Errorf("a CSV whose header starts with PAR1: %q, %v", got, err)
	}
}
