package stateful

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/operators/expr"
)

// DistinctConfig configures distinct.
type DistinctConfig struct {
	By []string `zflow:"by" doc:"the columns whose distinct values are kept, one row each; none: every column (SELECT DISTINCT *)" example:"[symbol]"`
}

// DistinctSpec declares distinct: one row per distinct key, the hash
// group-by of aggregate underneath (its parallel merge and its spilling).
func DistinctSpec() engine.Spec {
	return engine.Spec{
		Name: "distinct", Kind: engine.KindTransform, Parallel: true, Unordered: true, MinInputs: 1, MaxInputs: 1,
		Summary: "keep one row per distinct value of the by: columns, every column without by: (hash-based; parallel; spills over its budget)",
		Doc: "Output: the input's columns in their order, one row per distinct value of by (NULL is a value like any other), in no promised order. " +
			"Without by: every column is the key, as SELECT DISTINCT *. With by: the other columns come from the first row of the key in input order, as SELECT DISTINCT ON (by) * … ORDER BY by, input order " +
			"(first as aggregate computes it: with several instances, rows are numbered by the batch they came in). " +
			"It is an aggregate underneath: the same parallel merge by hash partition and the same spilling over its memory budget. A dictionary column comes out as its value type.",
		Example:   `{type: distinct, inputs: [trades], by: [symbol]}`,
		NewConfig: func() any { return &DistinctConfig{} },
		Build: func(bc *engine.BuildContext, c any) (engine.Factory, error) {
			cfg := c.(*DistinctConfig)
			p, err := planDistinct(bc.Inputs[0], cfg.By)
			if err != nil {
				return nil, err
			}
			if _, err := ipcOptions(bc.Settings.Spill); err != nil {
				return nil, engine.Errf("settings.spill.compression", "%v", err)
			}
			return &aggFactory{plan: p, node: bc.Node, batchRows: bc.Settings.BatchRows, spill: bc.Settings.Spill,
				runs: map[any]*aggRun{}, desc: "by: " + strings.Join(byNames(bc.Inputs[0], cfg.By), ", "), local: p.groupsBy(bc.PartitionedBy)}, nil
		},
	}
}

func init() { engine.Register(DistinctSpec()) }

func byNames(in *arrow.Schema, by []string) []string {
	if len(by) > 0 {
		return by
	}
	var names []string
	for _, f := range in.Fields() {
		names = append(names, f.Name)
	}
	return names
}

// planDistinct plans distinct as an aggregate: by as group_by, first(c)
// of every other column c, the output put back in the input's column
// order.
func planDistinct(in *arrow.Schema, by []string) (*aggPlan, error) {
	var errs engine.Errors
	seen := map[string]bool{}
	for i, name := range by {
		field := "by." + strconv.Itoa(i)
		switch {
		case len(in.FieldIndices(name)) == 0:
			errs = append(errs, engine.Errf(field, "no column %q in the input; it has %s", name, strings.Join(byNames(in, nil), ", ")))
		case seen[name]:
			errs = append(errs, engine.Errf(field, "column %q appears twice", name))
		}
		seen[name] = true
	}
	if len(errs) > 0 {
		return nil, errs
	}
	keys := byNames(in, by)
	var groupBy []string
	for _, k := range keys {
		groupBy = append(groupBy, expr.QuoteIdent(k))
	}
	var aggs engine.OrderedMap
	for _, f := range in.Fields() {
		if !slices.Contains(keys, f.Name) {
			aggs = append(aggs, engine.MapEntry{Key: f.Name, Value: "first(" + expr.QuoteIdent(f.Name) + ")"})
		}
	}
	p, err := planAggregate(in, groupBy, aggs)
	if err != nil {
		var fes engine.Errors
		if e, ok := err.(engine.Errors); ok {
			for _, fe := range e {
				fes = append(fes, engine.Errf("by", "%v", fe))
			}
			return nil, fes
		}
		return nil, fmt.Errorf("distinct: %w", err)
	}
	// Put the columns back in the input's order.
	outNames := make([]string, p.schema.NumFields())
	for i, f := range p.schema.Fields() {
		outNames[i] = f.Name
	}
	perm := make([]int, 0, in.NumFields())
	fields := make([]arrow.Field, 0, in.NumFields())
	for _, f := range in.Fields() {
		j := slices.Index(outNames, f.Name)
		perm = append(perm, j)
		fields = append(fields, p.schema.Field(j))
	}
	p.perm = perm
	p.schema = arrow.NewSchema(fields, nil)
	return p, nil
}
