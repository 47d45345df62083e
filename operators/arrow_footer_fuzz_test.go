package operators

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// ipcFileBytes is an Arrow IPC file of n batches of one int64 column.
func ipcFileBytes(t testing.TB, n int) []byte {
	t.Helper()
	mem := memory.NewGoAllocator()
	schema := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64}}, nil)
	var buf bytes.Buffer
	w, err := ipc.NewFileWriter(&buf, ipc.WithSchema(schema), ipc.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		b := array.NewInt64Builder(mem)
		for k := range 10 * (i + 1) {
			b.Append(int64(k))
		}
		col := b.NewArray()
		rec := array.NewRecordBatch(schema, []arrow.Array{col}, int64(col.Len()))
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
		rec.Release()
		col.Release()
		b.Release()
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// The footer's blocks, as parsed, are the ones arrow-go reads: same count,
// and each one's message starts with the continuation marker.
func TestIPCFooterBlocks(t *testing.T) {
	data := ipcFileBytes(t, 5)
	blocks := ipcFooterBlocks(bytes.NewReader(data), int64(len(data)))
	r, err := ipc.NewFileReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if len(blocks) != r.NumRecords() {
		t.Fatalf("%d blocks parsed, arrow-go reads %d", len(blocks), r.NumRecords())
	}
	for i, b := range blocks {
		if binary.LittleEndian.Uint32(data[b.off:]) != 0xffffffff || b.body <= 0 || (i > 0 && b.off < blocks[i-1].end()) {
			t.Errorf("block %d: %+v", i, b)
		}
	}
	for _, cut := range []int{1, 10, 20, len(data) / 2} {
		if got := ipcFooterBlocks(bytes.NewReader(data[:len(data)-cut]), int64(len(data)-cut)); got != nil {
			t.Errorf("a file cut by %d bytes: %d blocks, want none", cut, len(got))
		}
	}
}

// FuzzFooterBlocks feeds arbitrary footers to the parser: it never
// panics, and every block it returns lies inside the file before the
// footer. Seeds: testdata/fuzz/FuzzFooterBlocks (a real footer, cut and
// flipped ones) and a real footer built here.
func FuzzFooterBlocks(f *testing.F) {
	data := ipcFileBytes(f, 3)
	flen := int(binary.LittleEndian.Uint32(data[len(data)-10:]))
	f.Add(data[len(data)-10-flen:len(data)-10], int64(len(data)-10-flen))
	f.Fuzz(func(t *testing.T, footer []byte, limit int64) {
		for _, b := range parseFooterBlocks(footer, limit) {
			if b.off < 8 || b.meta <= 0 || b.body < 0 || b.end() > limit {
				t.Fatalf("block %+v outside the file (limit %d)", b, limit)
			}
		}
	})
}
