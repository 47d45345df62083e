package operators

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/operators/expr"
)

// ProjectConfig is the config of the project transform.
type ProjectConfig struct {
	Columns []string          `zflow:"columns" doc:"output columns in order, each \"expression [AS name]\"; \"*\" stands for every input column not dropped; default [\"*\"]" example:"[symbol, qty AS quantity, price * qty AS notional]"`
	Drop    []string          `zflow:"drop" doc:"input columns that \"*\" leaves out"`
	Rename  map[string]string `zflow:"rename" doc:"old name: new name, applied to the output" example:"{qty: quantity}"`
}

// ProjectSpec declares project: keep, rename, drop and compute columns. An
// output column that is an input column (renamed or not) shares that
// column's buffers; only computed columns allocate.
func ProjectSpec() engine.Spec {
	return engine.Spec{
		Name: "project", Kind: engine.KindTransform, BatchLocal: true, Parallel: true, MinInputs: 1, MaxInputs: 1,
		Summary:   "keep, rename, drop and compute columns (kept columns by reference)",
		Example:   `{type: project, inputs: [trades], columns: ["*", "price * qty AS notional"], drop: [ts]}`,
		NewConfig: func() any { return &ProjectConfig{} },
		Build:     buildProject,
	}
}

func init() { engine.Register(ProjectSpec()) }

type projCol struct {
	field arrow.Field
	src   int            // input column when kept by reference, else -1
	expr  *expr.Compiled // computed columns
	reads []string       // the input columns it is made of
	star  bool           // "*" made it: it is there only if the input has it
}

func buildProject(bc *engine.BuildContext, c any) (engine.Factory, error) {
	cfg := c.(*ProjectConfig)
	in := bc.Inputs[0]
	var errs []error
	names := make([]string, in.NumFields())
	for i, f := range in.Fields() {
		names[i] = f.Name
	}
	unknown := func(field, name string) {
		msg := fmt.Sprintf("column %q does not exist", name)
		if s := engine.Suggest(name, names); s != "" {
			msg += fmt.Sprintf(", did you mean %q?", s)
		}
		errs = append(errs, engine.Errf(field, "%s", msg))
	}
	dropped := map[string]bool{}
	for i, d := range cfg.Drop {
		if in.FieldIndices(d) == nil && !bc.Narrowed { // narrowed: no one reads it
			unknown(fmt.Sprintf("drop.%d", i), d)
		}
		dropped[d] = true
	}
	items := cfg.Columns
	if len(items) == 0 {
		items = []string{"*"}
	}
	var cols []projCol
	for i, item := range items {
		field := fmt.Sprintf("columns.%d", i)
		if strings.TrimSpace(item) == "*" {
			for j, f := range in.Fields() {
				if !dropped[f.Name] {
					cols = append(cols, projCol{field: f, src: j, star: true})
				}
			}
			continue
		}
		src, alias := expr.SplitAlias(item)
		e, err := expr.Compile(src, in)
		if err != nil {
			errs = append(errs, expr.FieldErrors(field, err)...)
			continue
		}
		name := alias
		if idx, ok := e.Column(); ok {
			f := in.Field(idx)
			if name != "" {
				f.Name = name
			}
			cols = append(cols, projCol{field: f, src: idx})
			continue
		}
		if name == "" {
			name = strings.TrimSpace(src)
		}
		cols = append(cols, projCol{field: arrow.Field{Name: name, Type: e.Type(), Nullable: true}, src: -1, expr: e})
	}
	for old, nw := range cfg.Rename {
		found := false
		for k := range cols {
			if cols[k].field.Name == old {
				cols[k].field.Name = nw
				found = true
			}
		}
		if !found && !bc.Narrowed {
			unknown("rename."+old, old)
		}
	}
	seen := map[string]bool{}
	for _, c := range cols {
		if seen[c.field.Name] {
			errs = append(errs, engine.Errf("columns", "output column %q appears twice (rename one with AS)", c.field.Name))
		}
		seen[c.field.Name] = true
	}
	if len(cols) == 0 && len(errs) == 0 {
		errs = append(errs, engine.Errf("columns", "the projection keeps no column"))
	}
	if len(errs) > 0 {
		return nil, engine.Errors(errs)
	}
	fields := make([]arrow.Field, len(cols))
	for i, c := range cols {
		fields[i] = c.field
		if c.src >= 0 {
			cols[i].reads = []string{in.Field(c.src).Name}
		} else {
			cols[i].reads = c.expr.ColumnNames()
		}
	}
	md := in.Metadata()
	return &projectFactory{cols: cols, schema: arrow.NewSchema(fields, &md)}, nil
}

type projectFactory struct {
	cols   []projCol
	schema *arrow.Schema
}

func (f *projectFactory) Schema() *arrow.Schema { return f.schema }

func (f *projectFactory) Describe() string {
	parts := make([]string, len(f.cols))
	for i, c := range f.cols {
		switch {
		case c.expr != nil:
			parts[i] = c.expr.String() + " AS " + c.field.Name
		default:
			parts[i] = c.field.Name
		}
	}
	return "columns: " + strings.Join(parts, ", ")
}

// InputColumns names the input columns project reads (engine.ColumnUser):
// those of every column it lists, by reference or computed (its build
// compiles them), and of the columns "*" keeps, only those in out (nil:
// all), never what drop leaves out. A renamed column reads its old name.
func (f *projectFactory) InputColumns(_ int, out []string) []string {
	used := []string{}
	for _, c := range f.cols {
		if !c.star || out == nil || slices.Contains(out, c.field.Name) {
			used = append(used, c.reads...)
		}
	}
	return used
}

func (f *projectFactory) New(ic *engine.InstanceContext) (any, error) {
	return &project{f: f, mem: ic.Alloc, arrs: make([]arrow.Array, len(f.cols))}, nil
}

type project struct {
	f    *projectFactory
	mem  memory.Allocator
	arrs []arrow.Array // reused per batch
}

func (p *project) Process(ctx context.Context, _ int, in arrow.RecordBatch, out engine.Emitter) error {
	defer func() {
		for i, a := range p.arrs {
			if a != nil {
				a.Release()
				p.arrs[i] = nil
			}
		}
	}()
	for i, c := range p.f.cols {
		if c.src >= 0 {
			a := in.Column(c.src) // by reference: same buffers
			a.Retain()
			p.arrs[i] = a
			continue
		}
		a, err := c.expr.Eval(ctx, p.mem, in)
		if err != nil {
			return fmt.Errorf("column %q: %w", c.field.Name, err)
		}
		p.arrs[i] = a
	}
	return out.Emit(array.NewRecordBatch(p.f.schema, p.arrs, in.NumRows()))
}
