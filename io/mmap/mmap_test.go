//go:build linux

package mmap_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"

	"github.com/zflowdev/zflow/io/mmap"
	"github.com/zflowdev/zflow/io/storage"
	"github.com/zflowdev/zflow/io/storage/storagetest"
)

func open(path string, flag int, perm os.FileMode, o storage.Options) (storage.File, error) {
	return mmap.Open(path, flag, perm, o)
}

func TestConformance(t *testing.T) {
	for where, dir := range storagetest.Dirs(t) {
		t.Run(where, func(t *testing.T) { storagetest.Conformance(t, dir, open) })
	}
}

func TestRefusals(t *testing.T) {
	dir := storagetest.ShmDir(t)
	path, _ := storagetest.WriteFile(t, dir, "r.bin", 10)
	tests := []struct {
		flag int
		opts storage.Options
		want string
	}{
		{os.O_RDWR, storage.Options{}, "only reads"},
		{os.O_WRONLY | os.O_CREATE, storage.Options{}, "only reads"},
		{os.O_RDONLY, storage.Options{Direct: true}, "direct: true"},
	}
	for _, tc := range tests {
		if f, err := mmap.Open(path, tc.flag, 0, tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(flag %#x, %+v): %v, want %q", tc.flag, tc.opts, err, tc.want)
			if f != nil {
				f.Close()
			}
		}
	}
	if _, err := mmap.Open(dir, os.O_RDONLY, 0, storage.Options{}); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Open(a directory): %v", err)
	}
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o644)
	f, err := mmap.Open(empty, os.O_RDONLY, 0, storage.Options{})
	if err != nil {
		t.Fatalf("empty file: %v", err)
	}
	req := []storage.Request{{Buf: make([]byte, 4)}}
	if err := f.ReadBatch(context.Background(), req); err != nil || req[0].N != 0 || req[0].Err == nil {
		t.Errorf("read of an empty file: %v, n=%d err=%v", err, req[0].N, req[0].Err)
	}
	if err := f.WriteBatch(context.Background(), req); err == nil {
		t.Error("WriteBatch on a mapping succeeded")
	}
	f.Close()
}

// writeIPC writes an Arrow IPC file of two batches (ints with nulls,
// strings, lists, a dictionary column) and returns the batches' values as
// text, for comparison.
func writeIPC(t *testing.T, path string, dict bool) []string {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dictType := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int16, ValueType: arrow.BinaryTypes.String}
	fields := []arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "name", Type: arrow.BinaryTypes.String},
		{Name: "tags", Type: arrow.ListOf(arrow.PrimitiveTypes.Int32)},
	}
	if dict {
		fields = append(fields, arrow.Field{Name: "city", Type: dictType})
	}
	schema := arrow.NewSchema(fields, nil)
	w, done := createIPC(t, path, schema, mem)
	var want []string
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	for batch := 0; batch < 2; batch++ {
		for i := 0; i < 1000; i++ {
			v := int64(batch*1000 + i)
			if i%7 == 3 {
				b.Field(0).(*array.Int64Builder).AppendNull()
			} else {
				b.Field(0).(*array.Int64Builder).Append(v)
			}
			b.Field(1).(*array.StringBuilder).Append(strings.Repeat("x", i%13) + "-row")
			lb := b.Field(2).(*array.ListBuilder)
			lb.Append(true)
			for k := 0; k < i%4; k++ {
				lb.ValueBuilder().(*array.Int32Builder).Append(int32(i + k))
			}
			if !dict {
				continue
			}
			if err := b.Field(3).(*array.BinaryDictionaryBuilder).AppendString([]string{"oslo", "lima", "pune"}[i%3]); err != nil {
				t.Fatal(err)
			}
		}
		rec := b.NewRecordBatch()
		want = append(want, recText(rec))
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
		rec.Release()
	}
	done()
	return want
}

// createIPC creates an Arrow IPC file at path; done closes the writer and
// the file.
func createIPC(t *testing.T, path string, schema *arrow.Schema, mem memory.Allocator) (w *ipc.FileWriter, done func()) {
	t.Helper()
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err = ipc.NewFileWriter(out, ipc.WithSchema(schema), ipc.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	return w, func() {
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := out.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func recText(rec arrow.RecordBatch) string {
	var sb strings.Builder
	for i, c := range rec.Columns() {
		sb.WriteString(rec.ColumnName(i) + ": " + c.String() + "\n")
	}
	return sb.String()
}

// inside says whether b's bytes lie within m.
func inside(m, b []byte) bool {
	if len(b) == 0 {
		return true
	}
	p, base := uintptr(unsafe.Pointer(&b[0])), uintptr(unsafe.Pointer(&m[0]))
	return p >= base && p+uintptr(len(b)) <= base+uintptr(len(m))
}

// An Arrow IPC file read through the mapping: the arrays' buffers point
// into the mapping (no copy), the values equal what was written, and the
// mapping outlives the file until the last record is released.
func TestIPCZeroCopy(t *testing.T) {
	defer goleak.VerifyNone(t)
	for where, dir := range storagetest.Dirs(t) {
		t.Run(where, func(t *testing.T) { ipcCase(t, dir, false) })
		t.Run(where+"/dictionary", func(t *testing.T) { ipcCase(t, dir, true) })
	}
}

// ipcCase reads an IPC file through a mapping; with a dictionary field
// arrow-go's mapped reader cannot be used and the bodies are copied (said
// by ZeroCopy), the rest of the contract holding the same.
func ipcCase(t *testing.T, dir string, dict bool) {
	{
		{
			path := filepath.Join(dir, "batches.arrow")
			want := writeIPC(t, path, dict)
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			x, err := mmap.OpenIPC(path, mem)
			if err != nil {
				t.Fatal(err)
			}
			m := x.Mapping()
			data := m.Bytes()
			zc, why := x.ZeroCopy()
			if zc == dict {
				t.Fatalf("ZeroCopy() = %v (%s) with dictionaries %v", zc, why, dict)
			}
			if x.NumRecords() != len(want) {
				t.Fatalf("%d records, want %d", x.NumRecords(), len(want))
			}
			var recs []arrow.RecordBatch
			for i := 0; i < x.NumRecords(); i++ {
				rec, err := x.Record(i)
				if err != nil {
					t.Fatal(err)
				}
				recs = append(recs, rec)
				for c, col := range rec.Columns() {
					for b, buf := range col.Data().Buffers() {
						if zc && buf != nil && buf.Len() > 0 && !inside(data, buf.Bytes()) {
							t.Errorf("record %d column %d buffer %d was copied out of the mapping", i, c, b)
						}
					}
				}
				vals := rec.Column(2).(*array.List).ListValues().Data().Buffers()[1]
				if zc && !inside(data, vals.Bytes()) {
					t.Errorf("record %d: list values were copied", i)
				}
			}
			if err := x.Close(); err != nil {
				t.Fatal(err)
			}
			if !zc {
				// Copied records need no mapping: Close unmapped it.
				if !m.Unmapped() {
					t.Error("copy mode: mapping still mapped after Close")
				}
				for i, rec := range recs {
					if got := recText(rec); got != want[i] {
						t.Errorf("record %d differs:\n%s\nwant\n%s", i, got, want[i])
					}
					rec.Release()
				}
				return
			}
			if m.Unmapped() {
				for _, rec := range recs {
					rec.Release()
				}
				t.Fatal("mapping unmapped while records still point into it")
			}
			for i, rec := range recs {
				if got := recText(rec); got != want[i] {
					t.Errorf("record %d after Close differs:\n%s\nwant\n%s", i, got, want[i])
				}
			}
			recs[0].Release()
			if m.Unmapped() {
				t.Fatal("mapping unmapped while record 1 still points into it")
			}
			slice := recs[1].NewSlice(10, 20)
			recs[1].Release()
			if m.Unmapped() {
				t.Fatal("mapping unmapped while a slice of record 1 is held")
			}
			if got := slice.Column(1).(*array.String).Value(0); got != strings.Repeat("x", 10)+"-row" {
				t.Errorf("slice value %q", got)
			}
			slice.Release()
			if !m.Unmapped() {
				t.Error("mapping still mapped after the last record was released")
			}
		}
	}
}

// A file read through ReadBatch is a copy; Bytes is the mapping itself.
func TestBytes(t *testing.T) {
	dir := storagetest.ShmDir(t)
	path, want := storagetest.WriteFile(t, dir, "b.bin", 100000)
	f, err := mmap.Open(path, os.O_RDONLY, 0, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if string(f.Bytes()) != string(want) {
		t.Error("Bytes differ from the file")
	}
	m := f.Mapping()
	m.Retain()
	f.Close()
	if m.Unmapped() || string(m.Bytes()[:10]) != string(want[:10]) {
		t.Error("a retained mapping was unmapped by Close")
	}
	m.Release()
	if !m.Unmapped() {
		t.Error("the last Release did not unmap")
	}
}

// A file truncated under its mapping: the read past the new end is an
// error on the request, not a crash.
func TestTruncatedUnderMapping(t *testing.T) {
	dir := storagetest.ShmDir(t)
	path, want := storagetest.WriteFile(t, dir, "t.bin", 5*4096)
	f, err := mmap.Open(path, os.O_RDONLY, 0, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := os.Truncate(path, 4096); err != nil {
		t.Fatal(err)
	}
	reqs := []storage.Request{{Buf: make([]byte, 100), Off: 10}, {Buf: make([]byte, 100), Off: 3 * 4096}}
	if err := f.ReadBatch(context.Background(), reqs); err != nil {
		t.Fatal(err)
	}
	if reqs[0].Err != nil || string(reqs[0].Buf) != string(want[10:110]) {
		t.Errorf("read inside the remaining page: n=%d err=%v", reqs[0].N, reqs[0].Err)
	}
	if reqs[1].Err == nil || !strings.Contains(reqs[1].Err.Error(), "shrank") {
		t.Errorf("read past the new end: n=%d err=%v, want the file-shrank error", reqs[1].N, reqs[1].Err)
	}
}

// TestIPCPrefetch: a record prefetched (decoded ahead, its pages mapped in
// on another goroutine) is what Record returns for that index, in the
// mapping; a prefetch of another index than the one asked for is dropped;
// Close waits for a prefetch in flight and releases its record.
func TestIPCPrefetch(t *testing.T) {
	defer goleak.VerifyNone(t)
	dir := storagetest.ShmDir(t)
	path := filepath.Join(dir, "batches.arrow")
	want := writeIPC(t, path, false)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	x, err := mmap.OpenIPC(path, mem)
	if err != nil {
		t.Fatal(err)
	}
	data := x.Mapping().Bytes()
	if len(want) != 2 {
		t.Fatalf("%d records written, the test reads 2", len(want))
	}
	for _, step := range []struct{ prefetch, read int }{
		{0, 0}, // prefetched, then read
		{1, 1},
		{2, 1}, // past the last record: nothing prefetched
		{1, 0}, // another record than the one prefetched: dropped
	} {
		x.Prefetch(step.prefetch)
		i := step.read
		rec, err := x.Record(i)
		if err != nil {
			t.Fatal(err)
		}
		if got := recText(rec); got != want[i] {
			t.Errorf("record %d differs:\n%s\nwant\n%s", i, got, want[i])
		}
		if b := rec.Column(1).Data().Buffers()[2]; !inside(data, b.Bytes()) {
			t.Errorf("record %d: values copied out of the mapping", i)
		}
		rec.Release()
	}
	x.Prefetch(len(want) - 1) // in flight at Close
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	if !x.Mapping().Unmapped() {
		t.Error("a prefetched record kept the mapping after Close")
	}
}
