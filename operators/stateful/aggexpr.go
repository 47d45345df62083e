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

// An aggregate's config compiles into an aggPlan. Each entry of
// aggregates: is an expression over aggregate calls: the calls are taken
// out of its tree (computed per group, each distinct call once however
// often it is written), each replaced by a reference to its result
// column, and what is left is compiled with package expr over a schema of
// the group_by columns and the calls' results, evaluated once per output
// batch: sum(price * qty) / sum(qty) is two sums per group and one
// division per output row.

// groupKey is one group_by item.
type groupKey struct {
	name string
	expr *expr.Compiled // over the input
	col  string         // the input column, when the key is one as it is
}

// aggCall is one aggregate function call computed per group.
type aggCall struct {
	kind   aggKind
	text   string         // canonical source, the call's identity
	arg    *expr.Compiled // over the input; nil for count(*)
	filter *expr.Compiled // FILTER (WHERE ...), over the input; nil without
	out    arrow.DataType
	q      float64 // approx_quantile's q, read through float32 as DuckDB does
}

// aggOut is one output column of aggregates:.
type aggOut struct {
	name string
	expr *expr.Compiled // over aggPlan.inner
}

type aggPlan struct {
	keys  []groupKey
	enc   *KeyEncoder
	calls []*aggCall
	outs  []aggOut
	// inner is the schema the outputs are evaluated over: the keys as
	// KeyArrays gives them back, then each call's result.
	inner  *arrow.Schema
	schema *arrow.Schema // the output: the keys, then the aggregates (perm applied)
	// perm, when set, orders the output: its column i is column perm[i]
	// of keys-then-aggregates (distinct puts the input's order back).
	perm []int
}

// groupsBy says whether every one of cols is a group key as it is in the
// input: then rows that agree on cols are in one group only if they agree
// on them, and an input partitioned by cols has each group in one part.
func (p *aggPlan) groupsBy(cols []string) bool {
	if len(cols) == 0 {
		return false
	}
	for _, c := range cols {
		if !slices.ContainsFunc(p.keys, func(k groupKey) bool { return k.col == c }) {
			return false
		}
	}
	return true
}

// callColumn names call j's column in the inner schema: a name no
// group_by item can have (a NUL cannot be written in one).
func callColumn(j int) string { return "\x00agg" + strconv.Itoa(j) }

func planAggregate(in *arrow.Schema, groupBy []string, aggs engine.OrderedMap) (*aggPlan, error) {
	p := &aggPlan{}
	var errs engine.Errors
	fieldErr := func(field string, off int, format string, args ...any) {
		errs = append(errs, &engine.FieldError{Field: field, Offset: off, Msg: fmt.Sprintf(format, args...)})
	}
	var keyTypes []arrow.DataType
	keyNames := map[string]bool{}
	for i, item := range groupBy {
		field := "group_by." + strconv.Itoa(i)
		src, alias := expr.SplitAlias(item)
		tree, err := expr.Parse(src)
		if err != nil {
			errs = append(errs, expr.FieldErrors(field, err)...)
			continue
		}
		if c := firstAggregate(tree); c != nil {
			start, _ := c.Span()
			fieldErr(field, start, "aggregate function %s is not allowed in group_by", c.Name)
			continue
		}
		c, err := expr.CompileExpr(src, tree, in)
		if err != nil {
			errs = append(errs, expr.FieldErrors(field, err)...)
			continue
		}
		name := alias
		if idx, ok := c.Column(); ok && name == "" {
			name = in.Field(idx).Name
		}
		if name == "" {
			fieldErr(field, 0, "the group_by expression %q needs a name: write it as \"%s AS name\"", strings.TrimSpace(src), strings.TrimSpace(src))
			continue
		}
		if err := KeyTypeOK(c.Type()); err != nil {
			fieldErr(field, 0, "%v", err)
			continue
		}
		if keyNames[name] {
			fieldErr(field, 0, "group_by column %q appears twice", name)
			continue
		}
		keyNames[name] = true
		gk := groupKey{name: name, expr: c}
		if idx, ok := c.Column(); ok {
			gk.col = in.Field(idx).Name
		}
		p.keys = append(p.keys, gk)
		keyTypes = append(keyTypes, c.Type())
	}
	if len(groupBy) == 0 && len(aggs) == 0 {
		fieldErr("aggregates", -1, "an aggregate needs group_by, aggregates or both")
	}
	if len(errs) > 0 {
		return nil, errs
	}
	enc, err := NewKeyEncoder(keyTypes)
	if err != nil {
		return nil, engine.Errf("group_by", "%v", err)
	}
	p.enc = enc
	var innerFields []arrow.Field
	for i, t := range enc.OutTypes() {
		innerFields = append(innerFields, arrow.Field{Name: p.keys[i].name, Type: t, Nullable: true})
	}
	// Take the calls out of each expression.
	type outTree struct {
		name, src string
		tree      expr.Expr
	}
	var trees []outTree
	seen := map[string]int{}
	for _, a := range aggs {
		field := "aggregates." + a.Key
		tree, err := expr.Parse(a.Value)
		if err != nil {
			errs = append(errs, expr.FieldErrors(field, err)...)
			continue
		}
		n := len(errs)
		rewritten := expr.Replace(tree, func(e expr.Expr) expr.Expr {
			call, ok := e.(*expr.Call)
			if !ok || !expr.IsAggregate(call.Name) {
				return nil
			}
			start, _ := call.Span()
			ref := &expr.Ident{Pos: expr.Pos{Start: start, End: call.End}, Quoted: true}
			for _, sub := range append(append([]expr.Expr{}, call.Args...), call.Filter) {
				if inner := firstAggregate(sub); inner != nil {
					s, _ := inner.Span()
					fieldErr(field, s, "aggregate function %s inside aggregate function %s: aggregates do not nest", inner.Name, call.Name)
					return ref
				}
			}
			c, fes := compileCall(a.Value, call, in)
			if len(fes) > 0 {
				errs = append(errs, fes.In(field)...)
				return ref
			}
			j, dup := seen[c.text]
			if !dup {
				j = len(p.calls)
				seen[c.text] = j
				p.calls = append(p.calls, c)
			}
			ref.Name = callColumn(j)
			return ref
		})
		if len(errs) > n {
			continue
		}
		trees = append(trees, outTree{a.Key, a.Value, rewritten})
	}
	if len(errs) > 0 {
		return nil, errs
	}
	for j, c := range p.calls {
		innerFields = append(innerFields, arrow.Field{Name: callColumn(j), Type: c.out, Nullable: true})
	}
	p.inner = arrow.NewSchema(innerFields, nil)
	// The outputs are checked over the inner schema and the input's other
	// columns, so that a column outside every aggregate is found as a
	// column (and told where it belongs) while an unknown function or
	// column is told as such.
	check := append([]arrow.Field{}, innerFields...)
	for _, f := range in.Fields() {
		if !keyNames[f.Name] && !hasFoldKey(keyNames, f.Name) {
			check = append(check, f)
		}
	}
	checkSchema := arrow.NewSchema(check, nil)
	outFields := append([]arrow.Field{}, innerFields[:len(p.keys)]...)
	for _, t := range trees {
		field := "aggregates." + t.name
		if _, err := expr.CompileExpr(t.src, t.tree, checkSchema); err != nil {
			errs = append(errs, expr.FieldErrors(field, err)...)
			continue
		}
		n := len(errs)
		// A column outside every aggregate must be a group_by column.
		expr.Walk(t.tree, func(e expr.Expr) bool {
			id, ok := e.(*expr.Ident)
			if !ok || strings.HasPrefix(id.Name, "\x00") || keyNames[id.Name] {
				return true
			}
			for k := range keyNames {
				if !id.Quoted && strings.EqualFold(k, id.Name) {
					return true
				}
			}
			if in.FieldIndices(id.Name) != nil || !id.Quoted && hasFold(in, id.Name) {
				fieldErr(field, id.Start, "column %q must be in group_by or inside an aggregate function (first(%s) takes any one value)", id.Name, id.Name)
			}
			return true
		})
		if len(errs) > n {
			continue
		}
		c, err := expr.CompileExpr(t.src, t.tree, p.inner)
		if err != nil {
			errs = append(errs, expr.FieldErrors(field, err)...)
			continue
		}
		if keyNames[t.name] {
			fieldErr(field, -1, "output column %q is also a group_by column", t.name)
			continue
		}
		p.outs = append(p.outs, aggOut{name: t.name, expr: c})
		outFields = append(outFields, arrow.Field{Name: t.name, Type: c.Type(), Nullable: true})
	}
	if len(errs) > 0 {
		return nil, errs
	}
	p.schema = arrow.NewSchema(outFields, nil)
	return p, nil
}

func hasFoldKey(keys map[string]bool, name string) bool {
	for k := range keys {
		if strings.EqualFold(k, name) {
			return true
		}
	}
	return false
}

func hasFold(s *arrow.Schema, name string) bool {
	for _, f := range s.Fields() {
		if strings.EqualFold(f.Name, name) {
			return true
		}
	}
	return false
}

// firstAggregate is the first aggregate call in e, or nil.
func firstAggregate(e expr.Expr) *expr.Call {
	var found *expr.Call
	expr.Walk(e, func(x expr.Expr) bool {
		if c, ok := x.(*expr.Call); ok && found == nil && expr.IsAggregate(c.Name) {
			found = c
		}
		return found == nil
	})
	return found
}

// fieldErrs are errors about one aggregate call, placed in a field later.
type fieldErrs []*engine.FieldError

func (f fieldErrs) In(field string) []error {
	out := make([]error, len(f))
	for i, e := range f {
		e.Field = field
		out[i] = e
	}
	return out
}

// compileCall checks one aggregate call: its function, arguments, FILTER
// and result type. Offsets are into src.
func compileCall(src string, call *expr.Call, in *arrow.Schema) (*aggCall, fieldErrs) {
	start, _ := call.Span()
	bad := func(off int, format string, args ...any) (*aggCall, fieldErrs) {
		return nil, fieldErrs{{Offset: off, Msg: fmt.Sprintf(format, args...)}}
	}
	fromExpr := func(err error) fieldErrs {
		var out fieldErrs
		for _, e := range expr.FieldErrors("", err) {
			if fe, ok := e.(*engine.FieldError); ok {
				out = append(out, fe)
			}
		}
		return out
	}
	kind, ok := aggFuncs[call.Name]
	if !ok {
		return bad(start, "aggregate function %s is not supported here", call.Name)
	}
	c := &aggCall{kind: kind, text: call.String()}
	if call.Distinct {
		if kind != aggCount {
			return bad(start, "DISTINCT is supported in count(DISTINCT x) only, not in %s", call.Name)
		}
		c.kind = aggCountDistinct
	}
	if kind == aggApproxQuantile {
		if len(call.Args) != 2 {
			return bad(start, "approx_quantile takes 2 arguments (x, q), got %d", len(call.Args))
		}
		q, ok := literalNumber(call.Args[1])
		if !ok || !(q >= 0 && q <= 1) {
			qs, _ := call.Args[1].Span()
			return bad(qs, "approx_quantile's q must be a number literal in [0, 1], not %s", call.Args[1].String())
		}
		c.q = float64(float32(q))
		call = &expr.Call{Pos: call.Pos, Name: call.Name, Args: call.Args[:1], Filter: call.Filter}
	}
	star := len(call.Args) == 1 && isStar(call.Args[0])
	switch {
	case star && kind != aggCount:
		return bad(start, "%s(*) is not a function: only count takes *", call.Name)
	case len(call.Args) != 1:
		return bad(start, "%s takes 1 argument, got %d", call.Name, len(call.Args))
	case !star:
		arg, err := expr.CompileExpr(src, call.Args[0], in)
		if err != nil {
			return nil, fromExpr(err)
		}
		c.arg = arg
	}
	var argType arrow.DataType
	if c.arg != nil {
		argType = c.arg.Type()
	}
	if argType != nil && argType.ID() == arrow.NULL {
		return bad(start, "%s of NULL: the argument has no type (CAST it)", call.Name)
	}
	if c.kind == aggCountDistinct || c.kind == aggApproxDistinct {
		if star {
			return bad(start, "%s(DISTINCT *) is not a function", call.Name)
		}
		if err := KeyTypeOK(argType); err != nil {
			return bad(start, "%s: %v", call.Name, err)
		}
	}
	if kind != aggCount {
		out, err := aggResultType(call.Name, kind, argType)
		if err != nil {
			return bad(start, "%v", err)
		}
		c.out = out
	} else {
		c.out = arrow.PrimitiveTypes.Int64
	}
	if call.Filter != nil {
		f, err := expr.CompileExpr(src, call.Filter, in)
		if err != nil {
			return nil, fromExpr(err)
		}
		if id := f.Type().ID(); id != arrow.BOOL && id != arrow.NULL {
			fs, _ := call.Filter.Span()
			return bad(fs, "FILTER (WHERE %s) must be a boolean condition, but it is %s", call.Filter.String(), f.Type())
		}
		c.filter = f
	}
	return c, nil
}

// literalNumber is the value of a number literal, negated or not.
func literalNumber(e expr.Expr) (float64, bool) {
	switch x := e.(type) {
	case *expr.Literal:
		switch x.Kind {
		case expr.LitInt:
			return float64(x.Int), true
		case expr.LitFloat:
			return x.Float, true
		}
	case *expr.Unary:
		if v, ok := literalNumber(x.X); ok && x.Op == "-" {
			return -v, true
		}
	}
	return 0, false
}

func isStar(e expr.Expr) bool {
	_, ok := e.(*expr.Star)
	return ok
}
