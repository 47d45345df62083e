package zflow_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"

	"github.com/zflowdev/zflow"
	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/operators"
)

type mapTestConfig struct {
	Column string `zflow:"column" required:"true" doc:"a column"`
}

// TestMap runs transforms made with zflow.Map from Go (a private
// registry, a struct-literal config) and checks what they emit, their
// compile errors and what a function that breaks its contract gets.
func TestMap(t *testing.T) {
	defer goleak.VerifyNone(t)
	gen := &operators.GenerateConfig{Rows: 10, Columns: []operators.GenerateColumn{
		{Name: "qty", Type: "int64", Sequence: true, Min: 1, Max: 10}, {Name: "sym", Type: "string", Values: []string{"a"}}}}
	// negate negates an int64 column into a float64 one: a new type.
	negate := func(cfg *mapTestConfig, in *arrow.Schema) (*arrow.Schema, zflow.BatchFunc, error) {
		i, err := zflow.Column(in, "column", cfg.Column, arrow.INT64)
		if err != nil {
			return nil, nil, err
		}
		fields := append([]arrow.Field(nil), in.Fields()...)
		fields[i].Type = arrow.PrimitiveTypes.Float64
		return arrow.NewSchema(fields, nil), func(mem memory.Allocator, b arrow.RecordBatch) (arrow.RecordBatch, error) {
			col := b.Column(i).(*array.Int64)
			out := array.NewFloat64Builder(mem)
			defer out.Release()
			for _, v := range col.Int64Values() {
				out.Append(-float64(v))
			}
			return zflow.SetColumn(b, i, out.NewArray()), nil
		}, nil
	}
	same := func(cfg *mapTestConfig, in *arrow.Schema) (*arrow.Schema, zflow.BatchFunc, error) {
		return nil, func(_ memory.Allocator, b arrow.RecordBatch) (arrow.RecordBatch, error) { return b, nil }, nil
	}
	wrong := func(cfg *mapTestConfig, in *arrow.Schema) (*arrow.Schema, zflow.BatchFunc, error) {
		return nil, func(mem memory.Allocator, b arrow.RecordBatch) (arrow.RecordBatch, error) {
			s := array.NewStringBuilder(mem)
			defer s.Release()
			s.AppendValues(make([]string, b.NumRows()), nil)
			return zflow.SetColumn(b, 0, s.NewArray()), nil
		}, nil
	}
	failing := func(cfg *mapTestConfig, in *arrow.Schema) (*arrow.Schema, zflow.BatchFunc, error) {
		return nil, func(memory.Allocator, arrow.RecordBatch) (arrow.RecordBatch, error) {
			return nil, errors.New("no luck")
		}, nil
	}
	cases := []struct {
		name   string
		build  func(*mapTestConfig, *arrow.Schema) (*arrow.Schema, zflow.BatchFunc, error)
		column string
		schema string // the node's output columns
		err    string
	}{
		{"negate", negate, "qty", "qty:float64 sym:utf8", ""},
		{"same", same, "qty", "qty:int64 sym:utf8", ""},
		{"typo", negate, "qyt", "", `column: no column "qyt", did you mean "qty"?`},
		{"type", negate, "sym", "", `column: column "sym" is utf8, want int64`},
		{"missing", negate, "", "", `missing required parameter "column"`},
		{"wrong", wrong, "qty", "", `m_wrong returned a batch of other columns than its schema: column 1 is qty utf8, want qty int64`},
		{"failing", failing, "qty", "", "no luck"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			reg := engine.NewRegistry()
			for _, s := range engine.DefaultRegistry.Specs() {
				if s.Name == "generate" || s.Name == "discard" {
					if err := reg.Register(*s); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := reg.Register(zflow.Map("m_"+c.name, "a test", c.build)); err != nil {
				t.Fatal(err)
			}
			p, err := zflow.New("map", zflow.WithRegistry(reg)).
				Source("g", "generate", gen).
				Transform("m", "m_"+c.name, &mapTestConfig{Column: c.column}, "g").
				Sink("out", "discard", nil, "m").
				Build()
			if err == nil {
				var cols []string
				for _, f := range p.Plan().Schema("m").Fields() {
					cols = append(cols, f.Name+":"+f.Type.String())
				}
				if got := strings.Join(cols, " "); c.schema != "" && got != c.schema {
					t.Errorf("schema %s, want %s", got, c.schema)
				}
				mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
				defer mem.AssertSize(t, 0)
				var sum engine.Summary
				sum, err = p.Run(context.Background(), zflow.WithAllocator(mem))
				if err == nil && sum.Op("out").RowsIn != 10 {
					t.Errorf("rows %d", sum.Op("out").RowsIn)
				}
			}
			if c.err == "" && err != nil {
				t.Fatal(err)
			}
			if c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
				t.Fatalf("got %v, want %q", err, c.err)
			}
		})
	}
}
