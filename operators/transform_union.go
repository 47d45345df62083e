package operators

import (
	"context"
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/zflowdev/zflow/engine"
)

// UnionConfig is the config of the union transform; it has no parameters.
type UnionConfig struct{}

// UnionSpec declares union: it merges its inputs, which must have the same
// columns (names and types, in order), into one stream. Batches pass by
// reference in arrival order; a column is nullable in the output if it is in
// any input.
func UnionSpec() engine.Spec {
	return engine.Spec{
		Name: "union", Kind: engine.KindTransform, Parallel: true, MinInputs: 2, MaxInputs: -1,
		Summary:   "merge inputs with the same schema into one stream (by reference)",
		Example:   "{type: union, inputs: [east, west]}",
		NewConfig: func() any { return &UnionConfig{} },
		Build: func(bc *engine.BuildContext, _ any) (engine.Factory, error) {
			s, err := unionSchema(bc)
			if err != nil {
				return nil, err
			}
			return &unionFactory{schema: s}, nil
		},
	}
}

func init() { engine.Register(UnionSpec()) }

func unionSchema(bc *engine.BuildContext) (*arrow.Schema, error) {
	first := bc.Inputs[0]
	fields := append([]arrow.Field(nil), first.Fields()...)
	for i, s := range bc.Inputs[1:] {
		field := fmt.Sprintf("inputs.%d", i+1)
		if s.NumFields() != first.NumFields() {
			return nil, engine.Errf(field, "input %q has %d columns (%s), %q has %d (%s)",
				bc.InputIDs[i+1], s.NumFields(), colNames(s), bc.InputIDs[0], first.NumFields(), colNames(first))
		}
		for j, f := range s.Fields() {
			g := first.Field(j)
			if f.Name != g.Name || !arrow.TypeEqual(f.Type, g.Type) {
				return nil, engine.Errf(field, "column %d of input %q is %s %s, but of %q it is %s %s",
					j+1, bc.InputIDs[i+1], f.Name, f.Type, bc.InputIDs[0], g.Name, g.Type)
			}
			fields[j].Nullable = fields[j].Nullable || f.Nullable
		}
	}
	md := first.Metadata()
	return arrow.NewSchema(fields, &md), nil
}

func colNames(s *arrow.Schema) string {
	names := make([]string, s.NumFields())
	for i, f := range s.Fields() {
		names[i] = f.Name
	}
	return strings.Join(names, ", ")
}

type unionFactory struct{ schema *arrow.Schema }

func (f *unionFactory) Schema() *arrow.Schema { return f.schema }

func (f *unionFactory) New(*engine.InstanceContext) (any, error) {
	return &union{schema: f.schema}, nil
}

type union struct{ schema *arrow.Schema }

func (u *union) Process(ctx context.Context, _ int, in arrow.RecordBatch, out engine.Emitter) error {
	// Same columns; where only nullability differs, the same arrays are
	// rewrapped under the union's schema.
	b, err := conformBatch(u.schema, in)
	if err != nil {
		return err
	}
	return out.Emit(b)
}
