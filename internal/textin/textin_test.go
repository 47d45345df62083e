package textin

import (
	"bytes"
	"io"
	"testing"

	"github.com/klauspost/compress/gzip"
)

// pipe hides every method but Read: standard input cannot seek.
type pipe struct{ r io.Reader }

func (p pipe) Read(b []byte) (int, error) { return p.r.Read(b) }

// TestOpenReader: a stream is sniffed through a buffer, never read twice:
// compressed text comes out decompressed, what is not text is refused.
func TestOpenReader(t *testing.T) {
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write([]byte("a,b\n1,2\n"))
	w.Close()
	for _, tc := range []struct {
		name, in, want, comp, err string
	}{
		{"plain", "a,b\n1,2\n", "a,b\n1,2\n", "", ""},
		{"bom", "\xef\xbb\xbfa\n", "a\n", "", ""},
		{"gzip", gz.String(), "a,b\n1,2\n", "gzip", ""},
		{"parquet", "PAR1\x00\x00", "", "", "standard input looks like a Parquet file; use type: parquet"},
		{"empty", "", "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := OpenReader(pipe{bytes.NewReader([]byte(tc.in))}, "standard input", "csv")
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("got %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			got, err := io.ReadAll(r)
			if err != nil || string(got) != tc.want || r.Compression != tc.comp {
				t.Fatalf("got %q %q %v", got, r.Compression, err)
			}
			if _, ok := r.Regular(); ok {
				t.Error("a stream is not a regular file")
			}
		})
	}
}
