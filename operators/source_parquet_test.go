package operators

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"go.uber.org/goleak"

	"github.com/zflowdev/zflow/engine"
)

// writeGenerated writes n generated rows with a sink and returns the path.
func writeGenerated(t *testing.T, dir string, n int64, sinkType string, cfg any) string {
	t.Helper()
	mem := newMem()
	defer mem.AssertSize(t, 0)
	_, err := runGraph(t, mem, 250,
		&engine.Node{ID: "gen", Kind: engine.KindSource, Type: "generate", Config: testGenConfig(n)},
		&engine.Node{ID: "out", Kind: engine.KindSink, Type: sinkType, Config: cfg, Inputs: []string{"gen"}},
	)
	if err != nil {
		t.Fatal(err)
	}
	return sinkPath(cfg)
}

func TestParquetSource(t *testing.T) {
	dir := t.TempDir()
	path := writeGenerated(t, dir, 1000, "parquet", &ParquetSinkConfig{Path: filepath.Join(dir, "g.parquet"), Compression: "snappy", RowGroupRows: 300})
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	if pf.NumRowGroups() != 4 {
		t.Errorf("row_group_rows 300 over 1000 rows made %d row groups", pf.NumRowGroups())
	}
	pf.Close()

	mem := newMem()
	defer mem.AssertSize(t, 0)
	all, _, err := readSourceAll(t, mem, ParquetSourceSpec(), &ParquetSourceConfig{Path: path}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer all.release()
	if len(all.recs) != 4 {
		t.Errorf("%d batches; batches must not span row groups", len(all.recs))
	}

	// Projection, in the order asked.
	c, schema, err := readSourceAll(t, mem, ParquetSourceSpec(), &ParquetSourceConfig{Path: path, Columns: []string{"price", "id"}}, 128)
	if err != nil {
		t.Fatal(err)
	}
	defer c.release()
	if got := schemaTypes(schema); got != "price:float64,id:int64" {
		t.Errorf("projected schema %s", got)
	}
	for _, r := range c.recs {
		if r.NumRows() > 128 {
			t.Errorf("batch of %d rows, batch_rows 128", r.NumRows())
		}
	}
	var want []string
	for _, row := range rowsText(all.recs) {
		f := strings.Split(row, "|")
		want = append(want, f[3]+"|"+f[0])
	}
	if !slices.Equal(rowsText(c.recs), want) {
		t.Error("projected values differ")
	}

	// Parallel instances split the row groups.
	f, err := buildFactory(ParquetSourceSpec(), &ParquetSourceConfig{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	var rows int64
	for k := range 3 {
		ic := testIC(mem, "p", "parquet", 0)
		ic.Index, ic.Count = k, 3
		op, _ := f.New(ic)
		col := &collector{}
		if err := op.(engine.Source).Run(t.Context(), col); err != nil {
			t.Fatal(err)
		}
		rows += col.rows()
		col.release()
	}
	if rows != 1000 {
		t.Errorf("3 instances read %d rows", rows)
	}

	// ErrStop ends the read quietly.
	op, _ := f.New(testIC(mem, "p", "parquet", 0))
	col := &collector{stopAfter: 1}
	if err := op.(engine.Source).Run(t.Context(), col); err != nil || len(col.recs) != 1 {
		t.Errorf("stop: %v, %d batches", err, len(col.recs))
	}
	col.release()
}

func TestParquetSourceErrors(t *testing.T) {
	dir := t.TempDir()
	good := writeGenerated(t, dir, 2000, "parquet", &ParquetSinkConfig{Path: filepath.Join(dir, "g.parquet"), Compression: "snappy", RowGroupRows: 1000})
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  ParquetSourceConfig
		data []byte
		want string
	}{
		{"missing", ParquetSourceConfig{Path: filepath.Join(dir, "none.parquet")}, nil, "no such file"},
		{"empty", ParquetSourceConfig{}, []byte{}, "is not a Parquet file (no PAR1 footer); it looks like an empty file"},
		{"garbage", ParquetSourceConfig{}, []byte(strings.Repeat("not parquet at all ", 20)), "is not a Parquet file (no PAR1 footer); it looks like text; use type: csv"},
		{"json", ParquetSourceConfig{}, []byte(`{"a": 1}` + "\n"), "it looks like JSON text; use type: ndjson"},
		{"gzip", ParquetSourceConfig{}, []byte("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03 more bytes"), "it looks like gzip-compressed data"},
		{"truncated", ParquetSourceConfig{}, data[:len(data)/2], "starts with PAR1 but has no PAR1 footer (cut short?)"},
		{"bad magic", ParquetSourceConfig{}, append(slices.Clone(data[:len(data)-4]), "PAR2"...), "has no PAR1 footer"},
		{"encrypted", ParquetSourceConfig{}, append(slices.Clone(data[:len(data)-4]), "PARE"...), "an encrypted Parquet file"},
		{"unknown column", ParquetSourceConfig{Columns: []string{"prise"}}, data, `did you mean "price"`},
	} {
		cfg := tc.cfg
		if tc.data != nil {
			cfg.Path = writeTestFile(t, dir, "bad.parquet", string(tc.data))
		}
		_, err := buildFactory(ParquetSourceSpec(), &cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: want an error containing %q, got %v", tc.name, tc.want, err)
		}
		var fe *engine.FieldError
		if !errors.As(err, &fe) {
			t.Errorf("%s: not a FieldError: %v", tc.name, err)
		}
	}

	// Corrupt the data pages but keep the footer: compiling works, reading
	// must fail cleanly (or, if the damage is invisible, succeed), never
	// panic or leak.
	mem := newMem()
	defer mem.AssertSize(t, 0)
	failed := 0
	for _, off := range []int{8, 100, 1000, len(data) / 3, len(data) / 2} {
		bad := slices.Clone(data)
		for i := off; i < min(off+64, len(bad)-2000); i++ {
			bad[i] ^= 0x5A
		}
		path := writeTestFile(t, dir, "corrupt.parquet", string(bad))
		c, _, err := readSourceAll(t, mem, ParquetSourceSpec(), &ParquetSourceConfig{Path: path}, 0)
		if c != nil {
			c.release()
		}
		if err != nil {
			failed++
			t.Logf("offset %d: %v", off, err)
			if !strings.Contains(err.Error(), "parquet: ") {
				t.Errorf("offset %d: error without context: %v", off, err)
			}
		}
	}
	if failed == 0 {
		t.Error("no corruption was detected")
	}
}

// readParquetWith reads the whole file set of cfg with count instances of
// workers row group decoders each, instance by instance, and returns the
// rows as text (instance 0's, then 1's, ...).
func readParquetWith(t *testing.T, mem memory.Allocator, cfg *ParquetSourceConfig, count, workers int) []string {
	t.Helper()
	f, err := buildFactory(ParquetSourceSpec(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.(*parquetFactory).workers = workers
	var rows []string
	for i := range count {
		ic := testIC(mem, "p", "parquet", 333)
		ic.Index, ic.Count = i, count
		c, err := runSource(f, ic)
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, rowsText(c.recs)...)
		c.release()
	}
	return rows
}

// TestParquetSourceParallel: decoding row groups on several goroutines
// gives the serial path's rows in its order, for one instance and for
// three (each keeping its share of the row groups), with a column subset
// and the filename column.
func TestParquetSourceParallel(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := newMem()
	defer mem.AssertSize(t, 0)
	dir := t.TempDir()
	for _, n := range []string{"a", "b"} {
		writeGenerated(t, dir, 3001, "parquet", &ParquetSinkConfig{Path: filepath.Join(dir, n+".parquet"), Compression: "zstd", RowGroupRows: 97, Dictionary: "auto"})
	}
	for _, cfg := range []ParquetSourceConfig{
		{Path: filepath.Join(dir, "*.parquet"), HivePartitioning: "auto", FileIO: defaultFileIO()},
		{Path: filepath.Join(dir, "*.parquet"), HivePartitioning: "auto", Columns: []string{"price", "sym", "id"}, Filename: "true", FileIO: defaultFileIO()},
	} {
		serial := readParquetWith(t, mem, &cfg, 1, 1)
		if len(serial) != 6002 {
			t.Fatalf("the serial path read %d rows", len(serial))
		}
		for _, run := range []struct{ count, workers int }{{1, 4}, {1, 2}, {3, 4}, {3, 1}} {
			got := readParquetWith(t, mem, &cfg, run.count, run.workers)
			if run.count == 1 {
				if !slices.Equal(got, serial) {
					t.Errorf("%d decoders: the rows or their order differ from the serial path's", run.workers)
				}
				continue
			}
			want := readParquetWith(t, mem, &cfg, run.count, 1)
			if !slices.Equal(got, want) {
				t.Errorf("%d instances of %d decoders: the rows differ from %d serial instances'", run.count, run.workers, run.count)
			}
			slices.Sort(got)
			s := slices.Clone(serial)
			slices.Sort(s)
			if !slices.Equal(got, s) {
				t.Errorf("%d instances of %d decoders: not the file's rows", run.count, run.workers)
			}
		}
	}
}

// TestParquetSourceParallelCorrupt: a row group whose data is damaged
// fails the read naming the file and that row group, after the row groups
// before it were emitted, whichever decoder reached it first.
func TestParquetSourceParallelCorrupt(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := newMem()
	defer mem.AssertSize(t, 0)
	dir := t.TempDir()
	path := writeGenerated(t, dir, 2000, "parquet", &ParquetSinkConfig{Path: filepath.Join(dir, "c.parquet"), Compression: "zstd", RowGroupRows: 100, Dictionary: "never"})
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := pf.MetaData().RowGroup(13).ColumnChunk(3) // price
	if err != nil {
		t.Fatal(err)
	}
	off, size := cc.DataPageOffset(), cc.TotalCompressedSize()
	pf.Close()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := off + size/2; i < off+size; i++ { // the page's compressed values, not its header
		data[i] ^= 0x5a
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := buildFactory(ParquetSourceSpec(), &ParquetSourceConfig{Path: path, HivePartitioning: "auto", FileIO: defaultFileIO()})
	if err != nil {
		t.Fatal(err)
	}
	for _, workers := range []int{1, 4} {
		f.(*parquetFactory).workers = workers
		c, err := runSource(f, testIC(mem, "p", "parquet", 0))
		want := "parquet: read " + path + ": row group 13: "
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%d decoders: want an error containing %q, got %v", workers, want, err)
		}
		if c.rows() != 1300 {
			t.Errorf("%d decoders: %d rows emitted before the damaged row group, want 1300", workers, c.rows())
		}
		c.release()
	}
}

// cancelAfter is an Emitter that cancels the run's context when it has
// taken n batches, and keeps taking them.
type cancelAfter struct {
	collector
	n      int
	cancel context.CancelFunc
}

func (c *cancelAfter) Emit(b arrow.RecordBatch) error {
	if len(c.recs)+1 == c.n {
		c.cancel()
	}
	return c.collector.Emit(b)
}

// TestParquetSourceParallelStop: downstream stopping (ErrStop) or the run
// being cancelled while row groups are decoded ahead ends the read with no
// goroutine left and every batch freed.
func TestParquetSourceParallelStop(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := newMem()
	defer mem.AssertSize(t, 0)
	dir := t.TempDir()
	path := writeGenerated(t, dir, 5000, "parquet", &ParquetSinkConfig{Path: filepath.Join(dir, "s.parquet"), Compression: "gzip", RowGroupRows: 200, Dictionary: "auto"})
	f, err := buildFactory(ParquetSourceSpec(), &ParquetSourceConfig{Path: path, HivePartitioning: "auto", FileIO: defaultFileIO()})
	if err != nil {
		t.Fatal(err)
	}
	f.(*parquetFactory).workers = 3
	op, err := f.New(testIC(mem, "p", "parquet", 50))
	if err != nil {
		t.Fatal(err)
	}
	col := &collector{stopAfter: 7}
	if err := op.(engine.Source).Run(t.Context(), col); err != nil || len(col.recs) != 7 {
		t.Errorf("stop: %v, %d batches", err, len(col.recs))
	}
	col.release()

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ca := &cancelAfter{n: 9, cancel: cancel}
	if err := op.(engine.Source).Run(ctx, ca); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	ca.release()
}
