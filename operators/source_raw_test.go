package operators

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/io/storage/storagetest"
)

// rawCopy runs raw source → raw sink on mem and returns what the sink wrote
// and the summary.
func rawCopy(t *testing.T, mem memory.Allocator, src *RawSourceConfig, sink *RawSinkConfig, parallel int) ([]byte, engine.Summary) {
	t.Helper()
	sum, err := runGraph(t, mem, 0,
		&engine.Node{ID: "src", Kind: engine.KindSource, Type: "raw", Config: src, Parallelism: parallel},
		&engine.Node{ID: "out", Kind: engine.KindSink, Type: "raw", Config: sink, Inputs: []string{"src"}},
	)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(sink.Path)
	if err != nil {
		t.Fatal(err)
	}
	return got, sum
}

func rawSrc(path string, mod func(*RawSourceConfig)) *RawSourceConfig {
	c := RawSourceSpec().NewConfig().(*RawSourceConfig)
	c.Path = path
	mod(c)
	return c
}

func rawSinkTo(path string, fio FileIO) *RawSinkConfig {
	c := RawSinkSpec().NewConfig().(*RawSinkConfig)
	c.Path, c.FileIO = path, fio
	return c
}

// TestRawRoundTrip copies files of odd sizes through the raw source and
// sink (records with each partial mode, whole blocks, an offset and a
// length, several batches, parallel instances), on tmpfs and on the disk,
// with and without O_DIRECT: the file written holds exactly the bytes
// expected, the source's bytes are created (or by reference to the
// mapping), and nothing is copied except what O_DIRECT bounced.
func TestRawRoundTrip(t *testing.T) {
	const rec = 37
	const size = 3000*rec + 5 // 5 bytes of a partial record at the end
	places := map[string]string{"disk": storagetest.DiskDir(t), "tmpfs": storagetest.ShmDir(t)}
	for place, dir := range places {
		path, data := storagetest.WriteFile(t, dir, "in.bin", size)
		padded := append(bytes.Clone(data), make([]byte, rec-5)...)
		fios := []FileIO{{IO: "posix"}, {IO: "auto"}}
		if place == "disk" {
			fios = append(fios, FileIO{IO: "posix", Direct: true}, FileIO{IO: "auto", Direct: true, QueueDepth: 2})
		} else {
			fios = append(fios, FileIO{IO: "mmap"})
		}
		for _, fio := range fios {
			for _, tc := range []struct {
				name     string
				mod      func(*RawSourceConfig)
				want     []byte
				parallel int
			}{
				{"drop", func(c *RawSourceConfig) { c.RecordSize, c.Partial, c.BatchRows = rec, "drop", 500 }, data[:size-5], 1},
				{"pad", func(c *RawSourceConfig) { c.RecordSize, c.Partial, c.BatchRows = rec, "pad", 700 }, padded, 1},
				{"blocks", func(c *RawSourceConfig) { c.BlockSize, c.BatchRows = 4096, 3 }, data, 1},
				{"offset-length", func(c *RawSourceConfig) { c.RecordSize, c.Offset, c.Length, c.BatchRows = rec, 1001, 100*rec, 7 }, data[1001 : 1001+100*rec], 1},
				{"parallel", func(c *RawSourceConfig) { c.BlockSize, c.Length, c.BatchRows = 1000, 111_000, 1 }, data[:111_000], 3},
			} {
				name := place + "/" + fio.IO
				if fio.Direct {
					name += "+direct"
				}
				t.Run(name+"/"+tc.name, func(t *testing.T) {
					mem := newMem()
					defer mem.AssertSize(t, 0)
					src := rawSrc(path, tc.mod)
					src.FileIO = fio
					sinkIO := fio
					if sinkIO.IO == "mmap" {
						sinkIO.IO = "auto"
					}
					out := filepath.Join(dir, "out-"+strings.ReplaceAll(t.Name(), "/", "_"))
					got, sum := rawCopy(t, mem, src, rawSinkTo(out, sinkIO), tc.parallel)
					if tc.parallel > 1 {
						got = sortedBlocks(got, 1000)
						tc.want = sortedBlocks(tc.want, 1000)
					}
					if !bytes.Equal(got, tc.want) {
						t.Fatalf("wrote %d bytes that differ from the %d expected", len(got), len(tc.want))
					}
					s, o := sum.Op("src"), sum.Op("out")
					if s.BytesCopied != 0 {
						t.Errorf("source copied %v", s.Copies)
					}
					if strings.HasPrefix(s.IO, "mmap") {
						ref := s.References[refMapped]
						if ref+s.BytesNew != s.BytesOut || (tc.name != "pad" && ref != int64(len(tc.want))) {
							t.Errorf("mmap: %d of %d bytes out by reference to the mapping, %d created", ref, s.BytesOut, s.BytesNew)
						}
					} else if s.BytesNew != s.BytesOut || s.BytesRef != 0 {
						t.Errorf("%d of %d bytes out created (references %v)", s.BytesNew, s.BytesOut, s.References)
					}
					for reason := range o.Copies {
						if reason != copyODirect || !fio.Direct {
							t.Errorf("sink copied %d bytes for %q", o.Copies[reason], reason)
						}
					}
					if b := o.Copies[copyODirect]; fio.Direct && tc.name == "blocks" && b >= 4096 {
						t.Errorf("direct: whole aligned blocks read straight into aligned buffers, yet the sink bounced %d bytes (more than the tail)", b)
					}
					if fio.Direct && (!strings.Contains(s.IO, "O_DIRECT") || !strings.Contains(o.IO, "O_DIRECT")) {
						t.Errorf("direct: true on the disk: summary says %q and %q", s.IO, o.IO)
					}
				})
			}
		}
	}
}

// sortedBlocks cuts b into blocks of n bytes and sorts them (parallel
// instances emit in any order).
func sortedBlocks(b []byte, n int) []byte {
	var parts []string
	for i := 0; i < len(b); i += n {
		parts = append(parts, string(b[i:min(i+n, len(b))]))
	}
	slices.Sort(parts)
	return []byte(strings.Join(parts, ""))
}

// recordingAlloc is an allocator that remembers the memory it handed out
// (over a real allocator), to tell where an array's buffer came from.
type recordingAlloc struct {
	memory.Allocator
	mu     sync.Mutex
	blocks [][]byte
}

func (a *recordingAlloc) Allocate(n int) []byte {
	b := a.Allocator.Allocate(n)
	a.mu.Lock()
	a.blocks = append(a.blocks, b)
	a.mu.Unlock()
	return b
}

func (a *recordingAlloc) total() (n int) {
	for _, b := range a.blocks {
		n += len(b)
	}
	return n
}

// TestRawReadsIntoTheColumn checks that the column's data buffer is the
// buffer the file was read into: it lies inside memory the instance's
// allocator gave, and the allocator gave hardly more than the bytes read
// (no second buffer to copy into), with O_DIRECT too.
func TestRawReadsIntoTheColumn(t *testing.T) {
	dir := storagetest.DiskDir(t)
	const size = 1<<20 + 333
	path, data := storagetest.WriteFile(t, dir, "in.bin", size)
	for _, direct := range []bool{false, true} {
		mem := newMem()
		rec := &recordingAlloc{Allocator: mem}
		c, _, err := readSourceAll(t, rec, RawSourceSpec(), rawSrc(path, func(c *RawSourceConfig) {
			c.RecordSize, c.Partial, c.FileIO = 1, "error", FileIO{IO: "posix", Direct: direct}
		}), 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.recs) != 1 {
			t.Fatalf("direct %v: %d batches, want 1", direct, len(c.recs))
		}
		col := c.recs[0].Column(0).(*array.FixedSizeBinary)
		buf := col.Data().Buffers()[1].Bytes()
		if !bytes.Equal(buf, data) {
			t.Errorf("direct %v: the column holds other bytes than the file", direct)
		}
		p := uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
		inside := false
		for _, b := range rec.blocks {
			lo := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
			inside = inside || (p >= lo && p+uintptr(len(buf)) <= lo+uintptr(len(b)))
		}
		if !inside {
			t.Errorf("direct %v: the column's data is not in memory the allocator gave", direct)
		}
		if extra := rec.total() - size; extra > 2*4096+64 {
			t.Errorf("direct %v: the allocator gave %d bytes for %d read: a second buffer?", direct, rec.total(), size)
		}
		c.release()
		mem.AssertSize(t, 0)
	}
}

// TestRawErrors checks the bad inputs: a file that is not a whole number
// of records (the error names the file, its size and the record size), a
// file shorter than offset + length, parameters that do not go together,
// and the sink's column choice.
func TestRawErrors(t *testing.T) {
	dir := t.TempDir()
	path, _ := storagetest.WriteFile(t, dir, "odd.bin", 1000)
	for _, tc := range []struct {
		mod  func(*RawSourceConfig)
		want []string
	}{
		{func(c *RawSourceConfig) { c.RecordSize = 64 }, []string{"path", path, "1000 bytes", "64-byte records", "40 left over", "partial"}},
		{func(c *RawSourceConfig) { c.RecordSize, c.Offset, c.Length = 8, 900, 200 }, []string{"path", path, "1000 bytes", "offset 900 + length 200"}},
		{func(c *RawSourceConfig) {}, []string{"record_size", "required"}},
		{func(c *RawSourceConfig) { c.RecordSize, c.BlockSize = 8, 8 }, []string{"block_size", "not both"}},
		{func(c *RawSourceConfig) { c.BlockSize, c.Partial = 512, "pad" }, []string{"partial", "record_size"}},
		{func(c *RawSourceConfig) { c.RecordSize, c.Offset = 8, -1 }, []string{"offset", "≥ 0"}},
		{func(c *RawSourceConfig) { c.RecordSize, c.Files = 8, []string{"-"} }, []string{"path", "standard input"}},
	} {
		cfg := rawSrc(path, tc.mod)
		if len(cfg.Files) > 0 {
			cfg.Path = ""
		}
		_, err := buildFactory(RawSourceSpec(), cfg)
		if err == nil {
			t.Errorf("%+v: no error", cfg)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not say %q", err, w)
			}
		}
	}

	two := arrow.NewSchema([]arrow.Field{{Name: "a", Type: arrow.BinaryTypes.Binary}, {Name: "b", Type: &arrow.FixedSizeBinaryType{ByteWidth: 4}}, {Name: "n", Type: arrow.PrimitiveTypes.Int64}}, nil)
	none := arrow.NewSchema([]arrow.Field{{Name: "n", Type: arrow.PrimitiveTypes.Int64}, {Name: "s", Type: arrow.BinaryTypes.String}}, nil)
	for _, tc := range []struct {
		schema *arrow.Schema
		column string
		want   []string
	}{
		{two, "", []string{"column", "2 binary columns", "a, b"}},
		{none, "", []string{"inputs", "no binary", "n int64, s utf8"}},
		{two, "n", []string{"column", `"n" is int64`, "a, b"}},
		{two, "bb", []string{"column", `no column "bb"`, `did you mean "b"`}},
	} {
		cfg := rawSinkTo(filepath.Join(dir, "o.bin"), FileIO{IO: "auto"})
		cfg.Column = tc.column
		_, err := buildFactory(RawSinkSpec(), cfg, tc.schema)
		if err == nil {
			t.Errorf("column %q: no error", tc.column)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("column %q: error %q does not say %q", tc.column, err, w)
			}
		}
	}
}

// TestRawSinkNulls checks that a null value fails the write naming the
// row, and that aborting leaves no file.
func TestRawSinkNulls(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	out := filepath.Join(t.TempDir(), "o.bin")
	schema := arrow.NewSchema([]arrow.Field{{Name: "b", Type: arrow.BinaryTypes.Binary, Nullable: true}}, nil)
	f, err := buildFactory(RawSinkSpec(), rawSinkTo(out, FileIO{IO: "auto"}), schema)
	if err != nil {
		t.Fatal(err)
	}
	op, err := f.New(testIC(mem, "out", "raw", 0))
	if err != nil {
		t.Fatal(err)
	}
	sink := op.(engine.Sink)
	b := array.NewBinaryBuilder(mem, arrow.BinaryTypes.Binary)
	b.Append([]byte("abc"))
	b.AppendNull()
	col := b.NewArray()
	b.Release()
	rec := array.NewRecordBatch(schema, []arrow.Array{col}, 2)
	col.Release()
	err = sink.Write(context.Background(), 0, rec)
	rec.Release()
	if err == nil || !strings.Contains(err.Error(), "row 1 is null") {
		t.Fatalf("nulls: %v", err)
	}
	sink.Abort()
	if ents, _ := os.ReadDir(filepath.Dir(out)); len(ents) != 0 {
		t.Errorf("an aborted sink left %d files", len(ents))
	}
}
