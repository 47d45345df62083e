package operators

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"go.uber.org/goleak"

	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/internal/duckdbtest"
)

// pqAllTypes is a schema with every flat type the parquet sink writes,
// nullable and not.
func pqAllTypes() *arrow.Schema {
	utc := &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
	return arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64}, // required
		{Name: "b", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
		{Name: "i8", Type: arrow.PrimitiveTypes.Int8, Nullable: true},
		{Name: "i16", Type: arrow.PrimitiveTypes.Int16, Nullable: true},
		{Name: "i32", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
		{Name: "u8", Type: arrow.PrimitiveTypes.Uint8, Nullable: true},
		{Name: "u16", Type: arrow.PrimitiveTypes.Uint16, Nullable: true},
		{Name: "u32", Type: arrow.PrimitiveTypes.Uint32, Nullable: true},
		{Name: "u64", Type: arrow.PrimitiveTypes.Uint64, Nullable: true},
		{Name: "f32", Type: arrow.PrimitiveTypes.Float32, Nullable: true},
		{Name: "f64", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "ls", Type: arrow.BinaryTypes.LargeString, Nullable: true},
		{Name: "bin", Type: arrow.BinaryTypes.Binary, Nullable: true},
		{Name: "d", Type: arrow.FixedWidthTypes.Date32, Nullable: true},
		{Name: "ts", Type: utc, Nullable: true},
		{Name: "tsms", Type: arrow.FixedWidthTypes.Timestamp_ms, Nullable: true},
		{Name: "dec", Type: &arrow.Decimal128Type{Precision: 12, Scale: 2}, Nullable: true},
		{Name: "fsb", Type: &arrow.FixedSizeBinaryType{ByteWidth: 3}, Nullable: true},
		{Name: "dict", Type: &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}, Nullable: true},
		{Name: "allnull", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	}, nil)
}

// pqBatch makes rows rows of pqAllTypes starting at row first: every
// nullable column has nulls (at its own period), and allnull is null in
// every row.
func pqBatch(mem memory.Allocator, first, rows int) arrow.RecordBatch {
	b := array.NewRecordBuilder(mem, pqAllTypes())
	defer b.Release()
	for r := first; r < first+rows; r++ {
		for c, fb := range b.Fields() {
			if c > 0 && (r+c)%(5+c) == 0 || c == 20 {
				fb.AppendNull()
				continue
			}
			v := int64(r)*2654435761 + int64(c)
			switch fb := fb.(type) {
			case *array.Int64Builder:
				fb.Append(int64(r))
			case *array.BooleanBuilder:
				fb.Append(v%3 == 0)
			case *array.Int8Builder:
				fb.Append(int8(v))
			case *array.Int16Builder:
				fb.Append(int16(v))
			case *array.Int32Builder:
				fb.Append(int32(v))
			case *array.Uint8Builder:
				fb.Append(uint8(v))
			case *array.Uint16Builder:
				fb.Append(uint16(v))
			case *array.Uint32Builder:
				fb.Append(uint32(v))
			case *array.Uint64Builder:
				fb.Append(uint64(v))
			case *array.Float32Builder:
				fb.Append(float32(v%100000) / 7)
			case *array.Float64Builder:
				fb.Append(float64(v%1000000) / 13)
			case *array.StringBuilder:
				fb.Append(fmt.Sprintf("s%d", v%97))
			case *array.LargeStringBuilder:
				fb.Append(strings.Repeat("x", int(v%9)) + "é")
			case *array.BinaryBuilder:
				fb.Append([]byte{byte(v), 0, byte(v >> 8)})
			case *array.Date32Builder:
				fb.Append(arrow.Date32(19000 + r%1000))
			case *array.TimestampBuilder:
				fb.Append(arrow.Timestamp(1704187800000000 + int64(r)*1500))
			case *array.Decimal128Builder:
				fb.Append(decimal128.FromI64(v % 1000000000))
			case *array.FixedSizeBinaryBuilder:
				fb.Append([]byte{byte(v), byte(v >> 4), byte(r)})
			case *array.BinaryDictionaryBuilder:
				if err := fb.AppendString(fmt.Sprintf("k%d", v%13)); err != nil {
					panic(err)
				}
			default:
				panic(fmt.Sprintf("pqBatch: no value for %T", fb))
			}
		}
	}
	return b.NewRecordBatch()
}

// parquetSinkOp makes one parquet sink instance over schema with workers
// column encoders.
func parquetSinkOp(t *testing.T, mem memory.Allocator, cfg *ParquetSinkConfig, schema *arrow.Schema, workers int) engine.Sink {
	t.Helper()
	f, err := buildFactory(ParquetSinkSpec(), cfg, schema)
	if err != nil {
		t.Fatal(err)
	}
	f.(*parquetSinkFactory).workers = workers
	op, err := f.New(testIC(mem, "out", "parquet", 0))
	if err != nil {
		t.Fatal(err)
	}
	return op.(engine.Sink)
}

// abortLeavesNothing tears s down as the executor does after a failure
// (Release, then Abort) and checks that dir is empty.
func abortLeavesNothing(t *testing.T, s engine.Sink, dir string) {
	t.Helper()
	s.(engine.Releaser).Release()
	s.Abort()
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("the directory holds %v after the failed run", names)
	}
}

// writeParquetDirect drives one parquet sink instance with workers column
// encoders over batches of the given sizes, and commits; it returns the
// file's bytes.
func writeParquetDirect(t *testing.T, mem memory.Allocator, path string, cfg ParquetSinkConfig, workers int, sizes []int) []byte {
	t.Helper()
	cfg.Path = path
	s := parquetSinkOp(t, mem, &cfg, pqAllTypes(), workers)
	defer s.(engine.Releaser).Release()
	first := 0
	for _, n := range sizes {
		rec := pqBatch(mem, first, n)
		err := s.Write(context.Background(), 0, rec)
		rec.Release()
		if err != nil {
			s.Abort()
			t.Fatal(err)
		}
		first += n
	}
	if err := s.Close(context.Background()); err != nil {
		s.Abort()
		t.Fatal(err)
	}
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestParquetSinkParallel writes the same batches with one encoder
// (pqarrow's FileWriter, the reference) and with four concurrent column
// encoders, for every codec and dictionary mode, row groups ending inside
// batches: the files must be byte for byte the same, and read back (with
// the stored Arrow schema, statistics on every column chunk) equal to what
// was written.
func TestParquetSinkParallel(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := newMem()
	defer mem.AssertSize(t, 0)
	sizes := []int{500, 1, 777, 2048, 300, 0, 1500} // 5126 rows
	total := 0
	for _, n := range sizes {
		total += n
	}
	want := pqBatch(mem, 0, total)
	defer want.Release()
	dir := t.TempDir()
	for _, tc := range []struct {
		codec string
		level int
		dict  string
		rg    int
	}{
		{"snappy", 0, "auto", 700},
		{"zstd", 0, "always", 1000},
		{"zstd", 9, "never", 512},
		{"gzip", 1, "auto", 2048},
		{"none", 0, "always", 100000},
		{"zstd", 1, "auto", 97},
	} {
		name := fmt.Sprintf("%s-%d-%s-%d", tc.codec, tc.level, tc.dict, tc.rg)
		t.Run(name, func(t *testing.T) {
			cfg := ParquetSinkConfig{Compression: tc.codec, Level: tc.level, Dictionary: tc.dict, RowGroupRows: tc.rg, FileIO: defaultFileIO()}
			serial := writeParquetDirect(t, mem, filepath.Join(dir, name+"-serial.parquet"), cfg, 1, sizes)
			par := writeParquetDirect(t, mem, filepath.Join(dir, name+".parquet"), cfg, 4, sizes)
			if !bytes.Equal(serial, par) {
				t.Errorf("the parallel file (%d bytes) differs from the serial one (%d bytes)", len(par), len(serial))
			}
			pf, err := file.NewParquetReader(bytes.NewReader(par))
			if err != nil {
				t.Fatal(err)
			}
			defer pf.Close()
			if wantRG := (total + tc.rg - 1) / tc.rg; pf.NumRowGroups() != wantRG {
				t.Errorf("%d row groups, want %d", pf.NumRowGroups(), wantRG)
			}
			for rg := range min(pf.NumRowGroups(), 3) {
				for c := range pf.MetaData().Schema.NumColumns() {
					cc, err := pf.MetaData().RowGroup(rg).ColumnChunk(c)
					if err != nil {
						t.Fatal(err)
					}
					if ok, err := cc.StatsSet(); !ok || err != nil {
						t.Errorf("row group %d column %d has no statistics (%v)", rg, c, err)
					}
				}
			}
			fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 4096}, mem)
			if err != nil {
				t.Fatal(err)
			}
			tbl, err := fr.ReadTable(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			defer tbl.Release()
			if err := sameColumns(want.Schema(), tbl.Schema()); err != nil {
				t.Errorf("schema read back: %v", err)
			}
			if tz := tbl.Schema().Field(15).Type.(*arrow.TimestampType).TimeZone; tz != "UTC" {
				t.Errorf("the stored Arrow schema's time zone is lost: %q", tz)
			}
			for c := range int(want.NumCols()) {
				got, err := array.Concatenate(tbl.Column(c).Data().Chunks(), mem)
				if err != nil {
					t.Fatal(err)
				}
				if !array.Equal(got, want.Column(c)) {
					t.Errorf("column %s differs after the round trip", want.ColumnName(c))
				}
				got.Release()
			}
		})
	}
}

// TestParquetSinkDuckDB: DuckDB reads the parallel encoder's file (many
// row groups, zstd) as the same rows, in the same order, as pqarrow's.
func TestParquetSinkDuckDB(t *testing.T) {
	db := duckdbtest.Open(t)
	mem := newMem()
	defer mem.AssertSize(t, 0)
	dir := t.TempDir()
	sizes := []int{4096, 4096, 4096, 1000, 4096}
	cfg := ParquetSinkConfig{Compression: "zstd", Dictionary: "auto", RowGroupRows: 3000, FileIO: defaultFileIO()}
	serial := filepath.Join(dir, "serial.parquet")
	par := filepath.Join(dir, "parallel.parquet")
	writeParquetDirect(t, mem, serial, cfg, 1, sizes)
	writeParquetDirect(t, mem, par, cfg, 3, sizes)
	res := db.Run(t,
		"SELECT count(*), sum(id), count(s), count(allnull), min(ts), max(dec) FROM read_parquet('"+par+"')",
		"SELECT count(*), sum(id), count(s), count(allnull), min(ts), max(dec) FROM read_parquet('"+serial+"')",
		// Row by row, in file order: the n-th row of each file.
		"WITH a AS (SELECT * FROM read_parquet('"+par+"', file_row_number=true)), "+
			"b AS (SELECT * FROM read_parquet('"+serial+"', file_row_number=true)) "+
			"SELECT (SELECT count(*) FROM (SELECT * FROM a EXCEPT ALL SELECT * FROM b)) + "+
			"(SELECT count(*) FROM (SELECT * FROM b EXCEPT ALL SELECT * FROM a)) + "+
			"(SELECT count(*) FROM a WHERE id <> file_row_number)",
		"SELECT count(*) FROM parquet_metadata('"+par+"') WHERE stats_min_value IS NULL AND path_in_schema <> 'allnull'",
	)
	for i, r := range res {
		if r.Err != "" {
			t.Fatalf("statement %d: %s", i, r.Err)
		}
	}
	if g, w := res[0].Strings()[0], res[1].Strings()[0]; g != w || !strings.HasPrefix(g, "17384|") {
		t.Errorf("DuckDB's aggregates of the parallel file %s, of the serial one %s", g, w)
	}
	if n := res[2].Strings()[0]; n != "0" {
		t.Errorf("%s rows differ or are out of order", n)
	}
	if n := res[3].Strings()[0]; n != "0" {
		t.Errorf("%s column chunks without min statistics", n)
	}
}

// TestParquetSinkColumnError: an array one column's encoder refuses (a
// dictionary array with an index past its dictionary, which dictionary:
// never makes the encoder expand) fails the run with that column named,
// and nothing is left under the final name, no goroutine, no memory.
func TestParquetSinkColumnError(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := newMem()
	defer mem.AssertSize(t, 0)
	dir := t.TempDir()
	dictType := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "a", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "k", Type: dictType, Nullable: true},
		{Name: "c", Type: arrow.BinaryTypes.String, Nullable: true},
	}, nil)
	path := filepath.Join(dir, "o.parquet")
	s := parquetSinkOp(t, mem, &ParquetSinkConfig{Path: path, Compression: "zstd", Dictionary: "never", RowGroupRows: 1000, FileIO: defaultFileIO()}, schema, 2)
	batch := func(bad bool) arrow.RecordBatch {
		ab := array.NewInt64Builder(mem)
		defer ab.Release()
		ib := array.NewInt32Builder(mem)
		defer ib.Release()
		cb := array.NewStringBuilder(mem)
		defer cb.Release()
		for i := range 600 {
			ab.Append(int64(i))
			ix := int32(i % 2)
			if bad && i == 300 {
				ix = 7 // the dictionary has 2 values
			}
			ib.Append(ix)
			cb.Append("x")
		}
		vals := array.NewStringBuilder(mem)
		defer vals.Release()
		vals.AppendValues([]string{"p", "q"}, nil)
		dict, idx, a, c := vals.NewArray(), ib.NewArray(), ab.NewArray(), cb.NewArray()
		k := array.NewDictionaryArray(dictType, idx, dict)
		defer func() { dict.Release(); idx.Release(); a.Release(); c.Release(); k.Release() }()
		return array.NewRecordBatch(schema, []arrow.Array{a, k, c}, 600)
	}
	var werr error
	for i := 0; i < 20 && werr == nil; i++ {
		rec := batch(i == 2)
		werr = s.Write(context.Background(), 0, rec)
		rec.Release()
	}
	if werr == nil {
		werr = s.Close(context.Background())
	}
	if werr == nil || !strings.Contains(werr.Error(), `column "k"`) || !strings.Contains(werr.Error(), path) {
		t.Errorf("want an error naming the file and column \"k\", got %v", werr)
	}
	abortLeavesNothing(t, s, dir)
}

// TestParquetSinkCancel: the run's context ends in the middle of a row
// group, with batches queued for the columns: Write returns the context's
// error and teardown stops every goroutine and frees every buffer.
func TestParquetSinkCancel(t *testing.T) {
	defer goleak.VerifyNone(t)
	mem := newMem()
	defer mem.AssertSize(t, 0)
	dir := t.TempDir()
	path := filepath.Join(dir, "o.parquet")
	s := parquetSinkOp(t, mem, &ParquetSinkConfig{Path: path, Compression: "gzip", Level: 9, Dictionary: "auto", RowGroupRows: 1 << 20, FileIO: defaultFileIO()}, pqAllTypes(), 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var werr error
	for i := 0; i < 200 && werr == nil; i++ {
		if i == 5 {
			cancel()
		}
		rec := pqBatch(mem, i*2000, 2000)
		werr = s.Write(ctx, 0, rec)
		rec.Release()
	}
	if !errors.Is(werr, context.Canceled) {
		t.Errorf("Write after the cancellation: %v, want context.Canceled", werr)
	}
	abortLeavesNothing(t, s, dir)
}

// TestParquetSinkLevels: compression_level is checked against the codec.
func TestParquetSinkLevels(t *testing.T) {
	for _, tc := range []struct {
		codec string
		level int
		want  string
	}{
		{"zstd", 22, ""},
		{"zstd", 23, "zstd levels are 1 to 22, got 23"},
		{"zstd", -1, "zstd levels are 1 to 22, got -1"},
		{"gzip", 9, ""},
		{"gzip", 10, "gzip levels are 1 to 9, got 10"},
		{"snappy", 3, "compression snappy has no levels, got 3"},
		{"none", 1, "compression none has no levels"},
		{"snappy", 0, ""},
	} {
		_, err := buildFactory(ParquetSinkSpec(), &ParquetSinkConfig{Path: "o.parquet", Compression: tc.codec, Level: tc.level, Dictionary: "auto", RowGroupRows: 10, FileIO: defaultFileIO()}, pqAllTypes())
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s level %d: %v", tc.codec, tc.level, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s level %d: got %v, want %q", tc.codec, tc.level, err, tc.want)
		case tc.want != "" && !strings.Contains(err.Error(), "compression_level"):
			t.Errorf("%s level %d: %v does not name compression_level", tc.codec, tc.level, err)
		}
	}
}
