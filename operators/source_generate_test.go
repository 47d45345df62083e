package operators

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/zflowdev/zflow/engine"
)

func TestGenerateDeterministicAcrossBatchSizes(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	cfg := testGenConfig(5000)
	var want []string
	for _, br := range []int{5000, 1024, 777, 1} {
		c, schema, err := readSourceAll(t, mem, GenerateSpec(), cfg, br)
		if err != nil {
			t.Fatal(err)
		}
		if c.rows() != 5000 {
			t.Fatalf("batch %d: %d rows", br, c.rows())
		}
		if got := int(c.recs[0].NumRows()); got != min(br, 5000) {
			t.Errorf("batch_rows %d: first batch has %d rows", br, got)
		}
		if !c.recs[0].Schema().Equal(schema) {
			t.Errorf("batch schema %v != compiled %v", c.recs[0].Schema(), schema)
		}
		got := rowsText(c.recs)
		c.release()
		if want == nil {
			want = got
			continue
		}
		if !slices.Equal(got, want) {
			t.Fatalf("batch_rows %d gives different data", br)
		}
	}
	// Parallel instances split the same rows.
	f, err := buildFactory(GenerateSpec(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for k := range 3 {
		ic := testIC(mem, "g", "generate", 700)
		ic.Index, ic.Count = k, 3
		op, _ := f.New(ic)
		c := &collector{}
		if err := op.(engine.Source).Run(context.Background(), c); err != nil {
			t.Fatal(err)
		}
		got = append(got, rowsText(c.recs)...)
		c.release()
	}
	if !slices.Equal(got, want) {
		t.Fatal("parallel instances give different data")
	}
	// Another seed gives other data.
	cfg2 := testGenConfig(5000)
	cfg2.Seed = 43
	c, _, err := readSourceAll(t, mem, GenerateSpec(), cfg2, 0)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Equal(rowsText(c.recs), want) {
		t.Error("seed 43 gives the same data as seed 42")
	}
	c.release()
}

func TestGenerateValues(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	cfg := &GenerateConfig{Rows: 20000, Seed: 1, Columns: []GenerateColumn{
		{Name: "i", Type: "int64", Min: -5, Max: 5},
		{Name: "seq", Type: "int32", Min: 10, Max: 12, Sequence: true},
		{Name: "c", Type: "int64", Min: 0, Max: 100, Cardinality: 5},
		{Name: "f", Type: "float64", Min: 2, Max: 3, NullRatio: 0.25},
		{Name: "s", Type: "string", Cardinality: 1000, Prefix: "k"},
		{Name: "v", Type: "string", Values: []string{"x", "yy"}},
		{Name: "b", Type: "bool"},
		{Name: "ts", Type: "timestamp", Start: "2024-05-01T00:00:00Z", Step: time.Second},
		{Name: "n", Type: "float64", NullRatio: 1},
		{Name: "def", Type: "int64"},
	}}
	c, _, err := readSourceAll(t, mem, GenerateSpec(), cfg, 3000)
	if err != nil {
		t.Fatal(err)
	}
	defer c.release()
	ints := map[int64]bool{}
	cs := map[int64]bool{}
	strs := map[string]bool{}
	nulls, trues := 0, 0
	var row int64
	for _, r := range c.recs {
		i := r.Column(0).(*array.Int64)
		seq := r.Column(1).(*array.Int32)
		cc := r.Column(2).(*array.Int64)
		f := r.Column(3).(*array.Float64)
		s := r.Column(4).(*array.String)
		v := r.Column(5).(*array.String)
		b := r.Column(6).(*array.Boolean)
		ts := r.Column(7).(*array.Timestamp)
		n := r.Column(8)
		def := r.Column(9).(*array.Int64)
		for k := range int(r.NumRows()) {
			if x := i.Value(k); x < -5 || x > 5 {
				t.Fatalf("i = %d out of [-5, 5]", x)
			}
			ints[i.Value(k)] = true
			if want := int32(10 + row%3); seq.Value(k) != want {
				t.Fatalf("seq row %d = %d, want %d", row, seq.Value(k), want)
			}
			cs[cc.Value(k)] = true
			if f.IsNull(k) {
				nulls++
			} else if x := f.Value(k); x < 2 || x > 3 {
				t.Fatalf("f = %v out of [2, 3]", x)
			}
			strs[s.Value(k)] = true
			if x := v.Value(k); x != "x" && x != "yy" {
				t.Fatalf("v = %q", x)
			}
			if b.Value(k) {
				trues++
			}
			want := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(row) * time.Second)
			if got := ts.Value(k).ToTime(arrow.Microsecond); !got.Equal(want) {
				t.Fatalf("ts row %d = %v, want %v", row, got, want)
			}
			if !n.IsNull(k) {
				t.Fatal("null_ratio 1 gave a value")
			}
			if x := def.Value(k); x < 0 || x > 1_000_000 {
				t.Fatalf("default range: %d", x)
			}
			row++
		}
	}
	if len(ints) != 11 {
		t.Errorf("int64 [-5, 5] gave %d distinct values", len(ints))
	}
	if len(cs) != 5 {
		t.Errorf("cardinality 5 gave %d distinct values: %v", len(cs), cs)
	}
	for x := range cs {
		if x%20 != 0 {
			t.Errorf("cardinality 5 over [0, 100]: value %d is not a multiple of 20", x)
		}
	}
	if len(strs) < 990 || len(strs) > 1000 {
		t.Errorf("string cardinality 1000 gave %d distinct values", len(strs))
	}
	for s := range strs {
		if len(s) != 5 || s[0] != 'k' {
			t.Fatalf("string value %q does not look like k0042", s)
		}
	}
	if r := float64(nulls) / 20000; math.Abs(r-0.25) > 0.02 {
		t.Errorf("null ratio %.3f, want 0.25", r)
	}
	if r := float64(trues) / 20000; math.Abs(r-0.5) > 0.02 {
		t.Errorf("true ratio %.3f, want 0.5", r)
	}
}

func TestGenerateConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		col   GenerateColumn
		field string
	}{
		{GenerateColumn{Name: "x", Type: "decimal"}, "columns.0.type"},
		{GenerateColumn{Name: "", Type: "int64"}, "columns.0.name"},
		{GenerateColumn{Name: "x", Type: "int64", Min: 5, Max: 1}, "columns.0.min"},
		{GenerateColumn{Name: "x", Type: "int64", Min: 0.5, Max: 1}, "columns.0.min"},
		{GenerateColumn{Name: "x", Type: "int32", Max: 1e10}, "columns.0.min"},
		{GenerateColumn{Name: "x", Type: "int64", Max: 3, Cardinality: 10}, "columns.0.cardinality"},
		{GenerateColumn{Name: "x", Type: "float64", NullRatio: 1.5}, "columns.0.null_ratio"},
		{GenerateColumn{Name: "x", Type: "string", Min: 1}, "columns.0.min"},
		{GenerateColumn{Name: "x", Type: "int64", Values: []string{"a"}}, "columns.0.values"},
		{GenerateColumn{Name: "x", Type: "bool", Cardinality: 2}, "columns.0.cardinality"},
		{GenerateColumn{Name: "x", Type: "timestamp", Start: "yesterday"}, "columns.0.start"},
		{GenerateColumn{Name: "x", Type: "timestamp", Step: time.Nanosecond}, "columns.0.step"},
		{GenerateColumn{Name: "x", Type: "string", Values: []string{"a"}, Cardinality: 3}, "columns.0.values"},
		{GenerateColumn{Name: "x", Type: "float64", Sequence: true}, "columns.0.sequence"},
	} {
		_, err := buildFactory(GenerateSpec(), &GenerateConfig{Rows: 1, Columns: []GenerateColumn{tc.col}})
		var fe *engine.FieldError
		if !errors.As(err, &fe) {
			t.Errorf("%+v: want a FieldError, got %v", tc.col, err)
			continue
		}
		if fe.Field != tc.field {
			t.Errorf("%+v: error on %q (%v), want %q", tc.col, fe.Field, err, tc.field)
		}
	}
	_, err := buildFactory(GenerateSpec(), &GenerateConfig{Rows: -1, BatchRows: -2})
	for _, want := range []string{"rows:", "batch_rows:", "columns:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want an error on %s, got %v", want, err)
		}
	}
	_, err = buildFactory(GenerateSpec(), &GenerateConfig{Rows: 1, Columns: []GenerateColumn{{Name: "a", Type: "bool"}, {Name: "a", Type: "bool"}}})
	if err == nil || !strings.Contains(err.Error(), "duplicate column") {
		t.Errorf("duplicate column: %v", err)
	}
}

func TestGenerateStopAndCancel(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	f, err := buildFactory(GenerateSpec(), testGenConfig(10000))
	if err != nil {
		t.Fatal(err)
	}
	op, _ := f.New(testIC(mem, "g", "generate", 100))
	src := op.(engine.Source)

	c := &collector{stopAfter: 2}
	if err := src.Run(context.Background(), c); err != nil {
		t.Errorf("ErrStop: Run returned %v, want nil", err)
	}
	if len(c.recs) != 2 {
		t.Errorf("kept emitting after ErrStop: %d batches", len(c.recs))
	}
	c.release()

	boom := errors.New("boom")
	if err := src.Run(context.Background(), &collector{err: boom}); !errors.Is(err, boom) {
		t.Errorf("Emit error: Run returned %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := src.Run(ctx, &collector{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: Run returned %v", err)
	}
}

func TestGenerateEmptyAndTiny(t *testing.T) {
	mem := newMem()
	defer mem.AssertSize(t, 0)
	c, _, err := readSourceAll(t, mem, GenerateSpec(), &GenerateConfig{Rows: 0, Columns: []GenerateColumn{{Name: "a", Type: "int64"}}}, 0)
	if err != nil || len(c.recs) != 0 {
		t.Fatalf("rows 0: %v, %d batches", err, len(c.recs))
	}
	// More instances than rows.
	f, _ := buildFactory(GenerateSpec(), &GenerateConfig{Rows: 2, Columns: []GenerateColumn{{Name: "a", Type: "string"}}})
	total := int64(0)
	for k := range 5 {
		ic := testIC(mem, "g", "generate", 0)
		ic.Index, ic.Count = k, 5
		op, _ := f.New(ic)
		c := &collector{}
		if err := op.(engine.Source).Run(context.Background(), c); err != nil {
			t.Fatal(err)
		}
		total += c.rows()
		c.release()
	}
	if total != 2 {
		t.Fatalf("5 instances over 2 rows made %d rows", total)
	}
}

func BenchmarkGenerate(b *testing.B) {
	for _, br := range []int{4096, 65536} {
		b.Run(fmt.Sprintf("rows=%d/batch=%d", 1<<20, br), func(b *testing.B) {
			cfg := &GenerateConfig{Rows: 1 << 20, Seed: 1, Columns: []GenerateColumn{
				{Name: "symbol", Type: "string", Cardinality: 500},
				{Name: "price", Type: "float64", Min: 1, Max: 500},
				{Name: "qty", Type: "int64", Min: 1, Max: 1000, NullRatio: 0.01},
				{Name: "ts", Type: "timestamp"},
			}}
			f, err := buildFactory(GenerateSpec(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			mem := newMem()
			b.ReportAllocs()
			b.SetBytes(1 << 20 * (8 + 8 + 8 + 12))
			for b.Loop() {
				op, _ := f.New(testIC(mem, "g", "generate", br))
				if err := op.(engine.Source).Run(context.Background(), dropEmitter{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// dropEmitter is an Emitter that drops what it gets.
type dropEmitter struct{}

func (dropEmitter) Emit(b arrow.RecordBatch) error { b.Release(); return nil }
