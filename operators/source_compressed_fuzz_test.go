package operators

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// FuzzCompressedText feeds the csv and ndjson sources arbitrary bytes, plain or
// wrapped in gzip or zstd (and the raw bytes may themselves look like any
// codec or format): they return rows or an error, never panic, and leak
// nothing.
//
//	go test -run '^$' -fuzz FuzzCompressedText -fuzztime 10m ./operators/
func FuzzCompressedText(f *testing.F) {
	csvText, _ := os.ReadFile(filepath.Join("..", "testdata", "trades.csv"))
	for _, seed := range [][]byte{csvText, []byte("a,b\n1,2\n"), []byte("{\"a\":1}\n{\"a\":2}\n"), []byte("PAR1\x00PAR1"), {0x1f, 0x8b, 0x08}} {
		for wrap := range byte(3) {
			f.Add(wrap, seed)
		}
	}
	dir := f.TempDir()
	zenc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, wrap byte, data []byte) {
		var in []byte
		switch wrap % 3 {
		case 0:
			in = data
		case 1:
			var b bytes.Buffer
			zw := gzip.NewWriter(&b)
			zw.Write(data)
			zw.Close()
			in = b.Bytes()
		case 2:
			in = zenc.EncodeAll(data, nil)
		}
		path := filepath.Join(dir, "in")
		if err := os.WriteFile(path, in, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, kind := range []string{"csv", "ndjson"} {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			var c *collector
			switch kind {
			case "csv":
				cfg := CSVSourceSpec().NewConfig().(*CSVSourceConfig)
				cfg.Path = path
				c, _, _ = readSourceAll(t, mem, CSVSourceSpec(), cfg, 3)
			case "ndjson":
				cfg := NDJSONSourceSpec().NewConfig().(*NDJSONSourceConfig)
				cfg.Path = path
				c, _, _ = readSourceAll(t, mem, NDJSONSourceSpec(), cfg, 3)
			}
			if c != nil {
				c.release()
			}
			mem.AssertSize(t, 0)
		}
	})
}
