//go:build linux

package mmap

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"golang.org/x/sys/unix"

	"github.com/zflowdev/zflow/io/storage"
)

// Adopt returns rec with every buffer that points into the mapping
// replaced by a slice of the mapping's Arrow buffer (which retains the
// mapping), and every other buffer retained as it is; it releases rec.
// The caller owns the result: the mapping stays until it and every array
// taken from it are released. Nothing is copied.
//
// The pages the record spans are mapped in one madvise(MADV_POPULATE_READ)
// before it is returned: the record is about to be read (validated,
// copied, sent), and faulting a file mapping in page by page cost 20x more
// (640 MB on tmpfs: 0.2 s populated, 4.9 s touched page by page, in one
// run on the shared VM). It is a hint: a kernel without it (before 5.14)
// faults the pages in as they are touched.
func (m *Mapping) Adopt(rec arrow.RecordBatch) arrow.RecordBatch {
	out, sp := m.adopt(rec)
	m.populate(sp)
	return out
}

// adopt is Adopt without the populate: it returns the span to populate.
func (m *Mapping) adopt(rec arrow.RecordBatch) (arrow.RecordBatch, span) {
	defer rec.Release()
	cols := make([]arrow.Array, rec.NumCols())
	var sp span
	for i, c := range rec.Columns() {
		d := m.adoptData(c.Data(), &sp)
		cols[i] = array.MakeFromData(d)
		d.Release()
	}
	out := array.NewRecordBatch(rec.Schema(), cols, rec.NumRows())
	for _, c := range cols {
		c.Release()
	}
	return out, sp
}

// span is the byte range of the mapping a record's buffers cover.
type span struct{ lo, hi int }

func (s *span) add(off, n int) {
	if s.hi == 0 {
		s.lo = off
	}
	s.lo, s.hi = min(s.lo, off), max(s.hi, off+n)
}

// populate maps the pages of sp in (MADV_POPULATE_READ); advice only.
func (m *Mapping) populate(sp span) {
	if sp.hi <= sp.lo {
		return
	}
	lo := sp.lo &^ (os.Getpagesize() - 1) // madvise wants a page-aligned start
	_ = unix.Madvise(m.data[lo:min(sp.hi, len(m.data))], unix.MADV_POPULATE_READ)
}

// adoptData rebuilds d over the mapping, adding the mapped bytes it uses
// to sp; the caller releases the result.
func (m *Mapping) adoptData(d arrow.ArrayData, sp *span) *array.Data {
	bufs := make([]*memory.Buffer, len(d.Buffers()))
	for i, b := range d.Buffers() {
		if b == nil {
			continue
		}
		if off, ok := m.contains(b.Bytes()); ok {
			bufs[i] = memory.SliceBuffer(m.buf, off, b.Len())
			sp.add(off, b.Len())
		} else {
			b.Retain()
			bufs[i] = b
		}
	}
	children := make([]arrow.ArrayData, len(d.Children()))
	for i, c := range d.Children() {
		children[i] = m.adoptData(c, sp)
	}
	var out *array.Data
	dict := d.Dictionary()
	if p, ok := dict.(*array.Data); ok && p == nil {
		dict = nil // a typed nil: no dictionary
	}
	if dict != nil {
		dd := m.adoptData(dict, sp)
		out = array.NewDataWithDictionary(d.DataType(), d.Len(), bufs, d.NullN(), d.Offset(), dd)
		dd.Release()
	} else {
		out = array.NewData(d.DataType(), d.Len(), bufs, children, d.NullN(), d.Offset())
	}
	for _, b := range bufs {
		if b != nil {
			b.Release()
		}
	}
	for _, c := range children {
		c.Release()
	}
	return out
}

// IPCFile is an Arrow IPC file read through a mapping, with zero copies:
// the arrays of its records point into the mapping (see Adopt).
type IPCFile struct {
	f        *File
	r        *ipc.FileReader
	zeroCopy bool
	why      string
	ahead    *prefetch // the record Prefetch decoded, its pages being mapped in
}

// prefetch is a record decoded ahead of its turn while another thread
// maps its pages in.
type prefetch struct {
	i      int
	rec    arrow.RecordBatch
	mapped chan struct{} // closed once its pages are mapped in
}

// OpenIPC maps path and opens it as an Arrow IPC file; mem is what the
// reader allocates from (metadata, and buffers it must decompress).
func OpenIPC(path string, mem memory.Allocator) (*IPCFile, error) {
	f, err := Open(path, 0, 0, storage.Options{WholeFile: true})
	if err != nil {
		return nil, err
	}
	x := &IPCFile{f: f, zeroCopy: true}
	x.r, err = mappedReader(f.Bytes(), mem)
	if errors.Is(err, errMappedDict) {
		// Read the same mapped bytes through ReadAt: correct, but the
		// record bodies are copied into mem.
		x.zeroCopy, x.why = false, err.Error()
		x.r, err = ipc.NewFileReader(bytes.NewReader(f.Bytes()), ipc.WithAllocator(mem))
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("mmap: read %s as an Arrow IPC file: %w", path, err)
	}
	return x, nil
}

// errMappedDict is why a file with dictionaries is read with copies.
var errMappedDict = errors.New("arrow-go v18.8's NewMappedFileReader cannot read dictionary-encoded fields (it panics on a nil dictionary memo), so this file's bodies are copied")

// mappedReader is ipc.NewMappedFileReader with its panic on dictionary
// fields turned into errMappedDict.
func mappedReader(data []byte, mem memory.Allocator) (r *ipc.FileReader, err error) {
	defer func() {
		if p := recover(); p != nil {
			r, err = nil, errMappedDict
		}
	}()
	return ipc.NewMappedFileReader(data, ipc.WithAllocator(mem))
}

// ZeroCopy says whether the records' arrays point into the mapping, and if
// not, why.
func (x *IPCFile) ZeroCopy() (bool, string) { return x.zeroCopy, x.why }

// Schema is the file's schema.
func (x *IPCFile) Schema() *arrow.Schema { return x.r.Schema() }

// NumRecords is the number of record batches in the file.
func (x *IPCFile) NumRecords() int { return x.r.NumRecords() }

// Mapping is the file's mapping.
func (x *IPCFile) Mapping() *Mapping { return x.f.m }

// Record returns record batch i, its arrays pointing into the mapping;
// the caller owns it and must Release it.
func (x *IPCFile) Record(i int) (arrow.RecordBatch, error) {
	if a := x.ahead; a != nil {
		x.ahead = nil
		<-a.mapped
		if a.i == i {
			return a.rec, nil
		}
		a.rec.Release()
	}
	rec, err := x.r.RecordAt(i)
	if err != nil {
		return nil, fmt.Errorf("mmap: record %d of %s: %w", i, x.f.name, err)
	}
	return x.f.m.Adopt(rec), nil
}

// Prefetch decodes record i (its metadata: the body is not read) and maps
// its pages in on another thread, so that the caller's work on the record
// before it overlaps the page-table work for this one (on a VM where a
// page mapped in costs about what copying it does, that is most of a
// mapped read); the next Record(i) returns it. One record is prefetched
// at a time; an error is left for Record to report.
func (x *IPCFile) Prefetch(i int) {
	if x.ahead != nil || !x.zeroCopy || i < 0 || i >= x.r.NumRecords() {
		return
	}
	rec, err := x.r.RecordAt(i)
	if err != nil {
		return
	}
	out, sp := x.f.m.adopt(rec)
	a := &prefetch{i: i, rec: out, mapped: make(chan struct{})}
	x.ahead = a
	go func() {
		defer close(a.mapped)
		x.f.m.populate(sp)
	}()
}

// Close closes the reader and drops the file's reference to the mapping;
// records still held keep it mapped.
func (x *IPCFile) Close() error {
	if a := x.ahead; a != nil {
		x.ahead = nil
		<-a.mapped
		a.rec.Release()
	}
	err := x.r.Close()
	x.f.Close()
	if err != nil {
		return fmt.Errorf("mmap: close %s: %w", x.f.name, err)
	}
	return nil
}
