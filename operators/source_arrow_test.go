package operators

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/zflowdev/zflow/engine"
)

func TestArrowSource(t *testing.T) {
	dir := t.TempDir()
	file := writeGenerated(t, dir, 1000, "arrow", &ArrowSinkConfig{Path: filepath.Join(dir, "g.arrow"), Format: "file"})
	stream := writeGenerated(t, dir, 1000, "arrow", &ArrowSinkConfig{Path: filepath.Join(dir, "g.arrows"), Format: "stream"})
	mem := newMem()
	defer mem.AssertSize(t, 0)

	ref, _, err := readSourceAll(t, mem, ArrowSourceSpec(), &ArrowSourceConfig{Path: file, Format: "auto", Validate: "full"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.release()
	if len(ref.recs) != 4 { // written in batches of 250
		t.Errorf("%d batches, want the 4 stored", len(ref.recs))
	}
	want := rowsText(ref.recs)

	for _, tc := range []struct {
		name string
		cfg  ArrowSourceConfig
		n    int // batches
	}{
		{"stream auto", ArrowSourceConfig{Path: stream, Format: "auto", Validate: "full"}, 4},
		{"stream forced", ArrowSourceConfig{Path: stream, Format: "stream", Validate: "none"}, 4},
		{"file forced", ArrowSourceConfig{Path: file, Format: "file", Validate: "basic"}, 4},
		{"sliced", ArrowSourceConfig{Path: file, Format: "auto", Validate: "full", BatchRows: 100}, 12},
	} {
		c, _, err := readSourceAll(t, mem, ArrowSourceSpec(), &tc.cfg, 0)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if len(c.recs) != tc.n {
			t.Errorf("%s: %d batches, want %d", tc.name, len(c.recs), tc.n)
		}
		if !slices.Equal(rowsText(c.recs), want) {
			t.Errorf("%s: values differ", tc.name)
		}
		c.release()
	}

	// A stream cannot be split across instances; a file can.
	f, _ := buildFactory(ArrowSourceSpec(), &ArrowSourceConfig{Path: stream, Format: "auto", Validate: "full"})
	ic := testIC(mem, "a", "arrow", 0)
	ic.Count = 2
	if _, err := f.New(ic); err == nil || !strings.Contains(err.Error(), "parallelism 1") {
		t.Errorf("parallel stream: %v", err)
	}
	f, _ = buildFactory(ArrowSourceSpec(), &ArrowSourceConfig{Path: file, Format: "auto", Validate: "full"})
	var got []string
	for k := range 2 {
		ic := testIC(mem, "a", "arrow", 0)
		ic.Index, ic.Count = k, 2
		op, err := f.New(ic)
		if err != nil {
			t.Fatal(err)
		}
		c := &collector{}
		if err := op.(engine.Source).Run(t.Context(), c); err != nil {
			t.Fatal(err)
		}
		got = append(got, rowsText(c.recs)...)
		c.release()
	}
	slices.Sort(got)
	sorted := slices.Sorted(slices.Values(want))
	if !slices.Equal(got, sorted) {
		t.Error("two instances read other rows")
	}
}

// writeBadOffsets writes an IPC file whose string column has offsets that
// run backwards.
func writeBadOffsets(t *testing.T, path string) {
	mem := memory.NewGoAllocator()
	offs := memory.NewBufferBytes(arrow.Int32Traits.CastToBytes([]int32{0, 4, 2, 5}))
	data := memory.NewBufferBytes([]byte("hello"))
	d := array.NewData(arrow.BinaryTypes.String, 3, []*memory.Buffer{nil, offs, data}, nil, 0, 0)
	arr := array.MakeFromData(d)
	d.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true}}, nil)
	rec := array.NewRecordBatch(schema, []arrow.Array{arr}, 3)
	arr.Release()
	defer rec.Release()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := ipc.NewFileWriter(f, ipc.WithSchema(schema), ipc.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestArrowSourceErrors(t *testing.T) {
	dir := t.TempDir()
	file := writeGenerated(t, dir, 1000, "arrow", &ArrowSinkConfig{Path: filepath.Join(dir, "g.arrow"), Format: "file"})
	stream := writeGenerated(t, dir, 1000, "arrow", &ArrowSinkConfig{Path: filepath.Join(dir, "g.arrows"), Format: "stream"})
	fdata, _ := os.ReadFile(file)
	sdata, _ := os.ReadFile(stream)
	badOffsets := filepath.Join(dir, "offsets.arrow")
	writeBadOffsets(t, badOffsets)

	mem := newMem()
	defer mem.AssertSize(t, 0)
	for _, tc := range []struct {
		name    string
		data    []byte
		path    string
		format  string
		compile bool
		want    string
	}{
		{"missing", nil, filepath.Join(dir, "none.arrow"), "auto", true, "no such file"},
		{"empty", []byte{}, "", "auto", true, "is not an Arrow IPC file or stream; it looks like an empty file"},
		{"garbage", []byte(strings.Repeat("garbage!", 64)), "", "auto", true, "is not an Arrow IPC file or stream; it looks like text; use type: csv"},
		{"parquet", []byte("PAR1\x00\x00\x15\x04 and so on PAR1"), "", "auto", true, "it looks like a Parquet file; use type: parquet"},
		{"file truncated", fdata[:len(fdata)-20], "", "auto", true, "as an IPC file"},
		{"file as stream", fdata, "", "stream", true, "as an IPC stream"},
		{"stream as file", sdata, "", "file", true, "as an IPC file"},
		{"stream truncated", sdata[:len(sdata)*2/3], "", "auto", false, "arrow: read"},
		{"bad offsets", nil, badOffsets, "auto", false, "batch 0 is malformed"},
	} {
		path := tc.path
		if tc.data != nil {
			path = writeTestFile(t, dir, "bad.arrow", string(tc.data))
		}
		cfg := &ArrowSourceConfig{Path: path, Format: tc.format, Validate: "full"}
		c, _, err := readSourceAll(t, mem, ArrowSourceSpec(), cfg, 0)
		if c != nil {
			c.release()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: want an error containing %q, got %v", tc.name, tc.want, err)
			continue
		}
		if _, ok := err.(*engine.FieldError); ok != tc.compile && !strings.Contains(err.Error(), "path:") {
			t.Errorf("%s: compile-time error %v, want compile=%v", tc.name, err, tc.compile)
		}
	}
	// validate: none passes the bad offsets through (the user asked).
	c, _, err := readSourceAll(t, mem, ArrowSourceSpec(), &ArrowSourceConfig{Path: badOffsets, Format: "auto", Validate: "none"}, 0)
	if err != nil {
		t.Errorf("validate none: %v", err)
	}
	c.release()
	// Corrupted bodies: an error or (if invisible) success, never a panic.
	// arrow-go leaks the batch's buffers when it recovers from a panic while
	// decoding one, so these runs use an unchecked allocator.
	unchecked := memory.NewGoAllocator()
	for _, data := range [][]byte{fdata, sdata} {
		for _, off := range []int{len(data) / 4, len(data) / 2} {
			bad := slices.Clone(data)
			for i := off; i < off+32; i++ {
				bad[i] = 0xFF
			}
			path := writeTestFile(t, dir, "corrupt.arrow", string(bad))
			c, _, _ := readSourceAll(t, unchecked, ArrowSourceSpec(), &ArrowSourceConfig{Path: path, Format: "auto", Validate: "full"}, 0)
			if c != nil {
				c.release()
			}
		}
	}
}
