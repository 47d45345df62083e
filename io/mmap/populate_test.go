//go:build linux

package mmap_test

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"golang.org/x/sys/unix"

	"github.com/zflowdev/zflow/io/mmap"
)

// TestRecordPopulated: a record read from a mapped file has its pages
// mapped in already (MADV_POPULATE_READ), so reading it takes next to no
// page faults; touched page by page it would take one per fault-around
// window (16 pages) at least. The file is on tmpfs (/dev/shm), whose
// pages are 4 KiB here (a disk file system's large folios would hide the
// difference).
func TestRecordPopulated(t *testing.T) {
	const n = 8 << 20 // int64s: 64 MiB
	dir, err := os.MkdirTemp("/dev/shm", "zflow-mmap-test-")
	if err != nil {
		t.Skipf("no tmpfs at /dev/shm: %v", err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "big.arrow")
	writeInts(t, path, n)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	x, err := mmap.OpenIPC(path, mem)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	rec, err := x.Record(0)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()
	vals := rec.Column(0).(*array.Int64).Int64Values()
	f0 := threadFaults()
	var sum int64
	for i := 0; i < len(vals); i += 512 { // one per 4 KiB page
		sum += vals[i]
	}
	faults := threadFaults() - f0
	if pages := int64(n * 8 / 4096); faults > pages/64 {
		t.Fatalf("reading %d pages of a record took %d page faults (sum %d): its pages were not populated", pages, faults, sum)
	}
}

func threadFaults() int64 {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		panic(err)
	}
	return ru.Minflt + ru.Majflt
}

func writeInts(t *testing.T, path string, n int) {
	mem := memory.NewGoAllocator()
	schema := arrow.NewSchema([]arrow.Field{{Name: "v", Type: arrow.PrimitiveTypes.Int64}}, nil)
	b := array.NewInt64Builder(mem)
	defer b.Release()
	b.Reserve(n)
	for i := range n {
		b.UnsafeAppend(int64(i))
	}
	col := b.NewArray()
	defer col.Release()
	rec := array.NewRecordBatch(schema, []arrow.Array{col}, int64(n))
	defer rec.Release()
	w, done := createIPC(t, path, schema, mem)
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	done()
}
