package zflow

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/zflowdev/zflow/engine"
)

// BatchFunc turns one batch into another. in is borrowed for the call. The
// batch returned is handed on downstream: a new batch (SetColumn makes
// one that shares every column but one), or in itself, which is then passed
// on by reference. mem is the operator's allocator: allocate the new
// columns from it. A BatchFunc may run in several instances at once (a
// node with parallelism), so it must not keep state between calls without
// a lock.
type BatchFunc func(mem memory.Allocator, in arrow.RecordBatch) (arrow.RecordBatch, error)

// Map declares a custom transform that applies a function to each batch,
// for Register. build is called at compile time, once per node, with the
// node's config and the schema of its one input; it returns the output
// schema (nil: the input's) and the function. An error from build is the
// node's compile error: engine.Errf("column", ...) places it at the
// parameter, file:line:col in a pipeline file.
//
// C is the config struct: its fields, tagged `zflow:"name"` (with
// `required:"true"`, `doc:"..."`, `enum:"a,b"` as for the built-in
// operators), are the operator's parameters, decoded from YAML or taken
// from a Go struct literal with the same defaults and checks, and listed by
// `zflow operators NAME`. Use struct{} for none.
//
// The operator may run with parallelism and keeps its input's order unless
// the node says ordered: false.
func Map[C any](name, summary string, build func(cfg *C, in *arrow.Schema) (*arrow.Schema, BatchFunc, error)) engine.Spec {
	return engine.Spec{
		Name: name, Kind: engine.KindTransform, Parallel: true, MinInputs: 1, MaxInputs: 1,
		Summary:   summary,
		NewConfig: func() any { return new(C) },
		Build: func(bc *engine.BuildContext, c any) (engine.Factory, error) {
			cfg, _ := c.(*C)
			if cfg == nil {
				cfg = new(C)
			}
			schema, fn, err := build(cfg, bc.Inputs[0])
			if err != nil {
				return nil, err
			}
			if fn == nil {
				return nil, fmt.Errorf("zflow: Map %q: build returned no function", name)
			}
			if schema == nil {
				schema = bc.Inputs[0]
			}
			return &mapFactory{name: name, schema: schema, fn: fn}, nil
		},
	}
}

type mapFactory struct {
	name   string
	schema *arrow.Schema
	fn     BatchFunc
}

func (f *mapFactory) Schema() *arrow.Schema { return f.schema }

func (f *mapFactory) New(ic *engine.InstanceContext) (any, error) {
	return &mapOp{f: f, mem: ic.Alloc}, nil
}

type mapOp struct {
	f   *mapFactory
	mem memory.Allocator
}

// Process applies the function and checks that its batch has the columns
// the node declared at compile time (names and types; where only
// nullability or metadata differ, the columns are rewrapped under the
// declared schema).
func (m *mapOp) Process(ctx context.Context, _ int, in arrow.RecordBatch, out engine.Emitter) error {
	b, err := m.f.fn(m.mem, in)
	if err != nil {
		return err
	}
	if b == nil {
		return fmt.Errorf("zflow: %s returned no batch", m.f.name)
	}
	if b == in {
		b.Retain()
	}
	if s := b.Schema(); !s.Equal(m.f.schema) {
		if err := sameColumns(m.f.schema, s); err != nil {
			b.Release()
			return fmt.Errorf("zflow: %s returned a batch of other columns than its schema: %w", m.f.name, err)
		}
		wrapped := array.NewRecordBatch(m.f.schema, b.Columns(), b.NumRows())
		b.Release()
		b = wrapped
	}
	return out.Emit(b)
}

func sameColumns(want, got *arrow.Schema) error {
	if want.NumFields() != got.NumFields() {
		return fmt.Errorf("%d columns, want %d", got.NumFields(), want.NumFields())
	}
	for i, w := range want.Fields() {
		if g := got.Field(i); g.Name != w.Name || !arrow.TypeEqual(g.Type, w.Type) {
			return fmt.Errorf("column %d is %s %s, want %s %s", i+1, g.Name, g.Type, w.Name, w.Type)
		}
	}
	return nil
}

// SetColumn returns a new batch with b's columns, column i replaced by
// col (the field keeps its name and takes col's type); the other columns
// are b's, shared by reference. It takes over the caller's reference to
// col; b is not changed and stays the caller's. col must have b's number
// of rows.
func SetColumn(b arrow.RecordBatch, i int, col arrow.Array) arrow.RecordBatch {
	defer col.Release()
	cols := slices.Clone(b.Columns())
	cols[i] = col
	schema := b.Schema()
	if f := schema.Field(i); !arrow.TypeEqual(f.Type, col.DataType()) {
		fields := slices.Clone(schema.Fields())
		fields[i].Type = col.DataType()
		md := schema.Metadata()
		schema = arrow.NewSchema(fields, &md)
	}
	return array.NewRecordBatch(schema, cols, b.NumRows())
}

// Column finds the column called name in schema, for a Map's build, and
// checks that its type is one of types (any type when none is given). Its
// error is placed at the parameter param (file:line:col in a pipeline
// file) and offers the closest column name.
func Column(schema *arrow.Schema, param, name string, types ...arrow.Type) (int, error) {
	idx := schema.FieldIndices(name)
	switch {
	case len(idx) == 0:
		names := make([]string, schema.NumFields())
		for i, f := range schema.Fields() {
			names[i] = f.Name
		}
		if s := engine.Suggest(name, names); s != "" {
			return -1, engine.Errf(param, "no column %q, did you mean %q?", name, s)
		}
		return -1, engine.Errf(param, "no column %q (columns: %s)", name, strings.Join(names, ", "))
	case len(idx) > 1:
		return -1, engine.Errf(param, "%d columns are called %q", len(idx), name)
	}
	f := schema.Field(idx[0])
	if len(types) > 0 && !slices.Contains(types, f.Type.ID()) {
		want := make([]string, len(types))
		for i, t := range types {
			want[i] = strings.ToLower(t.String())
		}
		return -1, engine.Errf(param, "column %q is %s, want %s", name, f.Type, strings.Join(want, " or "))
	}
	return idx[0], nil
}
