package operators

import (
	"context"
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/zflowdev/zflow/engine"
)

// UnionConfig is the config of the union transform.
type UnionConfig struct {
	ByName bool `zflow:"by_name" doc:"match columns by name (case-sensitive), not by position: the output has the first input's columns in its order, then the columns other inputs add, in order of appearance; a column an input lacks is null in its rows; differing types are widened: integers to the wider integer (an unsigned one with a signed one to a signed type twice its width; uint64 does not widen with a signed type), integers with floats and float32 with float64 to float64, timestamps of one time zone to the finest unit, string with large_string to large_string, a null-typed column to the other type"`
	// WidenToString is the escape hatch for types that do not widen.
	WidenToString bool `zflow:"widen_to_string" doc:"with by_name: a column whose types cannot be widened into one (int64 and string, say) becomes a string column holding each value's text form, instead of a compile error"`
}

// UnionSpec declares union: it merges its inputs into one stream. By
// position (the default), the inputs must have the same columns (names and
// types, in order); batches pass by reference in arrival order, and a
// column is nullable in the output if it is in any input. By name
// (by_name: true), see unionByName.
func UnionSpec() engine.Spec {
	return engine.Spec{
		Name: "union", Kind: engine.KindTransform, BatchLocal: true, Parallel: true, MinInputs: 2, MaxInputs: -1,
		Summary:   "merge inputs into one stream: by position (same schema, by reference) or by name (missing columns null, types widened)",
		Example:   "{type: union, inputs: [east, west], by_name: true}",
		NewConfig: func() any { return &UnionConfig{} },
		Build: func(bc *engine.BuildContext, c any) (engine.Factory, error) {
			cfg, _ := c.(*UnionConfig)
			if cfg == nil {
				cfg = &UnionConfig{}
			}
			if cfg.WidenToString && !cfg.ByName {
				return nil, engine.Errf("widen_to_string", "widen_to_string needs by_name: true (a union by position wants the same types)")
			}
			if cfg.ByName {
				return newUnionByName(bc, cfg.WidenToString)
			}
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
			return nil, engine.Errf(field, "input %q has %d columns (%s), %q has %d (%s); by_name: true matches columns by name",
				bc.InputIDs[i+1], s.NumFields(), colNames(s), bc.InputIDs[0], first.NumFields(), colNames(first))
		}
		for j, f := range s.Fields() {
			g := first.Field(j)
			if f.Name != g.Name || !arrow.TypeEqual(f.Type, g.Type) {
				return nil, engine.Errf(field, "column %d of input %q is %s %s, but of %q it is %s %s; by_name: true matches columns by name and widens types",
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

// InputColumns is what union passes on from every input: what its
// consumers read (engine.ColumnUser).
func (f *unionFactory) InputColumns(_ int, out []string) []string { return out }

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

// unionByName is the compiled union by name. For each input port, cols
// says where each output column comes from: the input's column at src
// (cast when cast is set), or, with src -1, nulls.
type unionByName struct {
	schema *arrow.Schema
	ports  [][]unionCol
	notes  []string // for Describe: what was filled and widened
}

type unionCol struct {
	src  int
	cast bool
}

// newUnionByName merges the inputs' schemas by column name and plans each
// input's mapping onto the result.
func newUnionByName(bc *engine.BuildContext, toString bool) (*unionByName, error) {
	type outCol struct {
		field arrow.Field
		from  int // the input whose type the column has so far
	}
	var cols []outCol
	index := map[string]int{}
	for i, s := range bc.Inputs {
		seen := map[string]bool{}
		for _, f := range s.Fields() {
			if seen[f.Name] {
				return nil, engine.Errf(fmt.Sprintf("inputs.%d", i), "input %q has two columns named %q: a union by name needs unique names", bc.InputIDs[i], f.Name)
			}
			seen[f.Name] = true
			j, ok := index[f.Name]
			if !ok {
				index[f.Name] = len(cols)
				cols = append(cols, outCol{field: f, from: i})
				continue
			}
			c := &cols[j]
			c.field.Nullable = c.field.Nullable || f.Nullable
			if arrow.TypeEqual(c.field.Type, f.Type) {
				continue
			}
			wide, ok := widenType(c.field.Type, f.Type)
			if !ok && toString {
				wide, ok = textType(c.field.Type, f.Type), true
			}
			if !ok {
				return nil, engine.Errf(fmt.Sprintf("inputs.%d", i),
					"column %q is %s in input %q but %s in input %q, which do not widen into one type (cast one side with a project, or set widen_to_string: true to union them as text)",
					f.Name, c.field.Type, bc.InputIDs[c.from], f.Type, bc.InputIDs[i])
			}
			c.field.Type, c.from = wide, i
		}
	}
	fields := make([]arrow.Field, len(cols))
	for j, c := range cols {
		fields[j] = c.field
	}
	u := &unionByName{ports: make([][]unionCol, len(bc.Inputs))}
	for i, s := range bc.Inputs {
		var missing, widened []string
		plan := make([]unionCol, len(fields))
		for j, f := range fields {
			k := s.FieldIndices(f.Name)
			if len(k) == 0 {
				plan[j] = unionCol{src: -1}
				fields[j].Nullable = true
				missing = append(missing, f.Name)
				continue
			}
			plan[j] = unionCol{src: k[0], cast: !arrow.TypeEqual(s.Field(k[0]).Type, f.Type)}
			if plan[j].cast {
				widened = append(widened, fmt.Sprintf("%s %s→%s", f.Name, s.Field(k[0]).Type, f.Type))
			}
		}
		if len(missing) > 0 {
			u.notes = append(u.notes, fmt.Sprintf("%s: null %s", bc.InputIDs[i], strings.Join(missing, ", ")))
		}
		if len(widened) > 0 {
			u.notes = append(u.notes, fmt.Sprintf("%s: cast %s", bc.InputIDs[i], strings.Join(widened, ", ")))
		}
		u.ports[i] = plan
	}
	md := bc.Inputs[0].Metadata()
	u.schema = arrow.NewSchema(fields, &md)
	return u, nil
}

func (u *unionByName) Schema() *arrow.Schema { return u.schema }

// Describe is what `zflow plan` shows: which inputs get null columns and
// which columns are cast.
func (u *unionByName) Describe() string {
	if len(u.notes) == 0 {
		return "by name"
	}
	return "by name; " + strings.Join(u.notes, "; ")
}

// InputColumns is, for every input, the columns of the same names as
// those its consumers read (engine.ColumnUser); an input without one of
// them fills it with nulls, as before.
func (u *unionByName) InputColumns(_ int, out []string) []string { return out }

func (u *unionByName) New(ic *engine.InstanceContext) (any, error) {
	return &unionNamed{f: u, mem: ic.Alloc, ledger: ic.Ledger}, nil
}

type unionNamed struct {
	f      *unionByName
	mem    memory.Allocator
	ledger *engine.Ledger
}

// Process maps one batch onto the union's schema. Columns whose type is
// already the output's pass by reference; a column an input lacks is one
// all-null array made for the batch (created bytes: a validity bitmap and
// zeroed values); a widened column is cast, and its new bytes are counted
// on the copy ledger as "union cast".
func (u *unionNamed) Process(ctx context.Context, port int, in arrow.RecordBatch, out engine.Emitter) error {
	plan := u.f.ports[port]
	n := int(in.NumRows())
	cols := make([]arrow.Array, len(plan))
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	for j, p := range plan {
		dt := u.f.schema.Field(j).Type
		switch {
		case p.src < 0:
			cols[j] = array.MakeArrayOfNull(u.mem, dt, n)
		case p.cast:
			src := in.Column(p.src)
			c, err := castColumn(u.mem, src, dt)
			if err != nil {
				return fmt.Errorf("union: column %q: %w", u.f.schema.Field(j).Name, err)
			}
			u.ledger.Copied("union cast", newBytes(c.Data(), src.Data()))
			cols[j] = c
		default:
			c := in.Column(p.src)
			c.Retain()
			cols[j] = c
		}
	}
	return out.Emit(array.NewRecordBatch(u.f.schema, cols, int64(n)))
}
