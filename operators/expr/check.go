package expr

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/arrow/scalar"

	"github.com/zflowdev/zflow/engine"
)

// checker type-checks a syntax tree against a schema and builds the node
// tree, folding constant subtrees as it goes.
type checker struct {
	src    string
	schema *arrow.Schema
	cols   map[int]bool
}

// constMem allocates constants. They live as long as the compiled program,
// outside any run's budget, so they come from the Go heap.
var constMem = memory.NewGoAllocator()

func (c *checker) text(e Expr) string {
	s, end := e.Span()
	var t string
	if 0 <= s && s <= end && end <= len(c.src) {
		t = strings.TrimSpace(c.src[s:end])
	}
	if t == "" {
		t = e.String()
	}
	if utf8.RuneCountInString(t) > 48 {
		r := []rune(t)
		t = string(r[:45]) + "..."
	}
	return t
}

// desc renders an operand for a message: `qty (int64)`.
func (c *checker) desc(e Expr, n node) string {
	return c.text(e) + " (" + typeName(n.dtype()) + ")"
}

func offset(e Expr) int {
	s, _ := e.Span()
	return s
}

func isConst(n node) bool {
	_, ok := n.(*constNode)
	return ok
}

func isNullConst(n node) bool {
	k, ok := n.(*constNode)
	return ok && !k.sc.IsValid()
}

func nullOf(dt arrow.DataType) *constNode { return &constNode{sc: scalar.MakeNullScalar(dt)} }

// fold evaluates n if all of its inputs are constants (the caller says so by
// calling it) and returns the constant; errors point at e.
func (c *checker) fold(n node, e Expr) (node, error) {
	if isConst(n) {
		return n, nil
	}
	ev := &evaluator{ctx: compute.WithAllocator(context.Background(), constMem), mem: constMem, n: 1, fold: true}
	v, err := n.eval(ev)
	if err != nil {
		if u := errors.Unwrap(err); u != nil {
			err = u
		}
		msg := strings.TrimPrefix(err.Error(), arrow.ErrInvalid.Error()+": ")
		return nil, typeErrf(offset(e), "cannot evaluate %s: %s", c.text(e), msg)
	}
	arr, err := ev.materialize(v)
	if err != nil {
		return nil, typeErrf(offset(e), "cannot evaluate %s: %v", c.text(e), err)
	}
	defer arr.Release()
	sc, err := scalarAt(arr, 0)
	if err != nil {
		return nil, typeErrf(offset(e), "cannot evaluate %s: %v", c.text(e), err)
	}
	return &constNode{sc: sc}, nil
}

// foldIf folds n when every one of ins is a constant.
func (c *checker) foldIf(n node, e Expr, ins ...node) (node, error) {
	for _, in := range ins {
		if in != nil && !isConst(in) {
			return n, nil
		}
	}
	return c.fold(n, e)
}

// scalarAt copies row i of arr into a scalar that owns its memory.
func scalarAt(arr arrow.Array, i int) (scalar.Scalar, error) {
	if arr.IsNull(i) {
		return scalar.MakeNullScalar(arr.DataType()), nil
	}
	if s, ok := arr.(*array.String); ok {
		return scalar.NewStringScalar(strings.Clone(s.Value(i))), nil
	}
	return scalar.GetScalar(arr, i)
}

// coerce brings n to type dt, by a cast where it is not already dt.
func (c *checker) coerce(n node, dt arrow.DataType, e Expr) (node, error) {
	if arrow.TypeEqual(n.dtype(), dt) {
		return n, nil
	}
	if isNullConst(n) {
		return nullOf(dt), nil
	}
	cn := &callNode{fn: "cast", opts: compute.SafeCastOptions(dt), args: []node{n}, dt: dt, src: c.text(e)}
	return c.foldIf(cn, e, n)
}

// check type-checks e and returns its node.
func (c *checker) check(e Expr) (node, error) {
	switch e := e.(type) {
	case *Ident:
		return c.ident(e)
	case *Literal:
		return c.literal(e)
	case *Unary:
		return c.unary(e)
	case *Binary:
		switch e.Op {
		case "AND", "OR":
			return c.logic(e)
		case "+", "-", "*", "/", "%":
			return c.arith(e)
		}
		return c.compare(e)
	case *In:
		return c.in(e)
	case *Between:
		return c.between(e)
	case *IsNull:
		return c.isNull(e)
	case *Like:
		return c.like(e)
	case *Case:
		return c.caseExpr(e)
	case *Cast:
		return c.cast(e)
	case *Call:
		return c.call(e)
	case *Star:
		return nil, typeErrf(offset(e), "* is only allowed in count(*)")
	case nil:
		return nil, errors.New("expr: nil expression")
	}
	return nil, typeErrf(offset(e), "unsupported expression %s", e.String())
}

func (c *checker) ident(e *Ident) (node, error) {
	idx := c.schema.FieldIndices(e.Name)
	if len(idx) == 0 && !e.Quoted {
		for i, f := range c.schema.Fields() {
			if strings.EqualFold(f.Name, e.Name) {
				idx = append(idx, i)
			}
		}
	}
	switch len(idx) {
	case 1:
		c.cols[idx[0]] = true
		return &colNode{idx: idx[0], dt: c.schema.Field(idx[0]).Type}, nil
	case 0:
		names := make([]string, c.schema.NumFields())
		for i, f := range c.schema.Fields() {
			names[i] = f.Name
		}
		if s := engine.Suggest(e.Name, names); s != "" {
			return nil, typeErrf(e.Start, "unknown column %q, did you mean %q?", e.Name, s)
		}
		return nil, typeErrf(e.Start, "unknown column %q", e.Name)
	}
	return nil, typeErrf(e.Start, "column name %q is ambiguous: %d columns match", e.Name, len(idx))
}

func (c *checker) literal(e *Literal) (node, error) {
	switch e.Kind {
	case LitNull:
		return &constNode{sc: scalar.ScalarNull}, nil
	case LitBool:
		return &constNode{sc: scalar.NewBooleanScalar(e.Bool)}, nil
	case LitInt:
		return &constNode{sc: scalar.NewInt64Scalar(e.Int)}, nil
	case LitFloat:
		return &constNode{sc: scalar.NewFloat64Scalar(e.Float)}, nil
	case LitString:
		return &constNode{sc: scalar.NewStringScalar(e.Str)}, nil
	case LitTimestamp:
		t := e.Time
		if t.Nanosecond()%1000 == 0 {
			dt := &arrow.TimestampType{Unit: arrow.Microsecond}
			return &constNode{sc: scalar.NewTimestampScalar(arrow.Timestamp(t.UnixMicro()), dt)}, nil
		}
		if y := t.Year(); y < 1678 || y > 2261 {
			return nil, typeErrf(e.Start, "timestamp %s has nanoseconds but is outside the nanosecond range (years 1678-2261)", c.text(e))
		}
		dt := &arrow.TimestampType{Unit: arrow.Nanosecond}
		return &constNode{sc: scalar.NewTimestampScalar(arrow.Timestamp(t.UnixNano()), dt)}, nil
	}
	return nil, typeErrf(e.Start, "unknown literal kind %d", e.Kind)
}

func (c *checker) unary(e *Unary) (node, error) {
	x, err := c.check(e.X)
	if err != nil {
		return nil, err
	}
	cls := classOf(x.dtype())
	if e.Op == "NOT" {
		if cls != clsBool && cls != clsNull {
			return nil, typeErrf(offset(e.X), "NOT needs a boolean, got %s", c.desc(e.X, x))
		}
		if cls == clsNull {
			return nullOf(tBool), nil
		}
		return c.foldIf(&notNode{x: x}, e, x)
	}
	if !cls.numeric() && cls != clsNull {
		return nil, typeErrf(offset(e.X), "unary %s needs a number, got %s", e.Op, c.desc(e.X, x))
	}
	dt := canonical(x.dtype())
	if cls == clsNull {
		return nullOf(tInt64), nil
	}
	if x, err = c.coerce(x, dt, e.X); err != nil {
		return nil, err
	}
	if e.Op == "+" {
		return x, nil
	}
	return c.foldIf(&callNode{fn: "negate", args: []node{x}, dt: dt, src: c.text(e)}, e, x)
}

func (c *checker) logic(e *Binary) (node, error) {
	var ns [2]node
	for i, s := range []Expr{e.L, e.R} {
		n, err := c.check(s)
		if err != nil {
			return nil, err
		}
		switch classOf(n.dtype()) {
		case clsBool:
		case clsNull:
			n = nullOf(tBool)
		default:
			return nil, typeErrf(offset(s), "%s needs boolean operands, got %s", e.Op, c.desc(s, n))
		}
		ns[i] = n
	}
	fn := "and_kleene"
	if e.Op == "OR" {
		fn = "or_kleene"
	}
	return c.foldIf(&callNode{fn: fn, args: ns[:], dt: tBool, src: c.text(e)}, e, ns[0], ns[1])
}

var arithNames = map[string]string{"+": "add", "-": "subtract", "*": "multiply"}

func (c *checker) arith(e *Binary) (node, error) {
	var ns [2]node
	dt := tInt64
	for i, s := range []Expr{e.L, e.R} {
		n, err := c.check(s)
		if err != nil {
			return nil, err
		}
		switch classOf(n.dtype()) {
		case clsInt, clsNull:
		case clsFloat:
			dt = tFloat64
		default:
			return nil, typeErrf(offset(s), "operator %s needs numeric operands, got %s", e.Op, c.desc(s, n))
		}
		ns[i] = n
	}
	if isNullConst(ns[0]) || isNullConst(ns[1]) {
		return nullOf(dt), nil
	}
	l, err := c.coerce(ns[0], dt, e.L)
	if err != nil {
		return nil, err
	}
	r, err := c.coerce(ns[1], dt, e.R)
	if err != nil {
		return nil, err
	}
	var n node
	if fn, ok := arithNames[e.Op]; ok {
		n = &callNode{fn: fn, args: []node{l, r}, dt: dt, src: c.text(e)}
	} else {
		n = &divModNode{op: e.Op[0], l: l, r: r, dt: dt}
	}
	return c.foldIf(n, e, l, r)
}

var compareNames = map[string]string{
	"=": "equal", "!=": "not_equal", "<": "less", "<=": "less_equal", ">": "greater", ">=": "greater_equal",
}

func (c *checker) compare(e *Binary) (node, error) {
	l, err := c.check(e.L)
	if err != nil {
		return nil, err
	}
	r, err := c.check(e.R)
	if err != nil {
		return nil, err
	}
	if isNullConst(l) || isNullConst(r) {
		return nullOf(tBool), nil
	}
	ordered := e.Op != "=" && e.Op != "!="
	if _, ok := unify(l.dtype(), r.dtype(), isConst(l), isConst(r)); !ok {
		return nil, typeErrf(e.Start, "cannot compare %s with %s%s", c.desc(e.L, l), c.desc(e.R, r), timestampHint(l, r, e.L, e.R))
	}
	if ordered && classOf(l.dtype()) == clsBool {
		return nil, typeErrf(e.Start, "cannot order booleans with %s: %s and %s", e.Op, c.text(e.L), c.text(e.R))
	}
	// Bring the constant side (if any) to the column side's type.
	if isConst(l) && !isConst(r) {
		var rs []node
		if r, rs, err = c.comparable(r, e.R, []node{l}, []Expr{e.L}); err != nil {
			return nil, err
		}
		l = rs[0]
	} else {
		var ls []node
		if l, ls, err = c.comparable(l, e.L, []node{r}, []Expr{e.R}); err != nil {
			return nil, err
		}
		r = ls[0]
	}
	return c.foldIf(&callNode{fn: compareNames[e.Op], args: []node{l, r}, dt: tBool, src: c.text(e)}, e, l, r)
}

// timestampHint suggests a TIMESTAMP literal when a timestamp meets a
// string constant.
func timestampHint(l, r node, le, re Expr) string {
	var other Expr
	switch {
	case classOf(l.dtype()) == clsTimestamp:
		other = re
	case classOf(r.dtype()) == clsTimestamp:
		other = le
	default:
		return ""
	}
	if lit, ok := other.(*Literal); ok && lit.Kind == LitString {
		return "; write TIMESTAMP " + quoteString(lit.Str) + " for a timestamp"
	}
	return ""
}

// comparable brings x and every node of list (already checked to be
// comparable with x, NULLs allowed) to one type. When x is a column of a
// narrow integer or timestamp type and every element is a constant that
// converts exactly, that type is x's own, so the column is not cast per batch.
func (c *checker) comparable(x node, xe Expr, list []node, les []Expr) (node, []node, error) {
	out := make([]node, len(list))
	xdt := x.dtype()
	if xc := classOf(xdt); !isConst(x) && xdt.ID() != arrow.DICTIONARY && (xc == clsInt || xc == clsTimestamp) {
		ok := true
		for i, k := range list {
			if !isConst(k) {
				ok = false
				break
			}
			n, err := c.coerce(k, xdt, les[i])
			if err != nil {
				ok = false
				break
			}
			out[i] = n
		}
		if ok {
			return x, out, nil
		}
	}
	dt, xconst := xdt, isConst(x)
	for i, k := range list {
		var ok bool
		if dt, ok = unify(dt, k.dtype(), xconst, isConst(k)); !ok {
			return nil, nil, typeErrf(offset(les[i]), "cannot compare %s with %s", c.desc(xe, x), c.desc(les[i], k))
		}
		xconst = xconst && isConst(k)
	}
	x, err := c.coerce(x, dt, xe)
	if err != nil {
		return nil, nil, err
	}
	for i, k := range list {
		if out[i], err = c.coerce(k, dt, les[i]); err != nil {
			return nil, nil, err
		}
	}
	return x, out, nil
}

func (c *checker) in(e *In) (node, error) {
	x, err := c.check(e.X)
	if err != nil {
		return nil, err
	}
	list := make([]node, len(e.List))
	allConst := true
	for i, le := range e.List {
		if list[i], err = c.check(le); err != nil {
			return nil, err
		}
		if _, ok := unify(x.dtype(), list[i].dtype(), isConst(x), isConst(list[i])); !ok {
			return nil, typeErrf(offset(le), "cannot compare %s with %s", c.desc(e.X, x), c.desc(le, list[i]))
		}
		allConst = allConst && isConst(list[i])
	}
	if isNullConst(x) {
		return nullOf(tBool), nil
	}
	if x, list, err = c.comparable(x, e.X, list, e.List); err != nil {
		return nil, err
	}
	var n node
	// arrow-go v18.8.0's is_in does not find booleans: they take the OR path.
	if allConst && classOf(x.dtype()) != clsBool {
		set, err := valueSet(x.dtype(), list)
		if err != nil {
			return nil, typeErrf(e.Start, "cannot build the IN list: %v", err)
		}
		opts := &compute.SetOptions{ValueSet: compute.NewDatumWithoutOwning(set), NullBehavior: compute.NullMatchingInconclusive}
		n = &callNode{fn: "is_in", opts: opts, args: []node{x}, dt: tBool, src: c.text(e)}
	} else {
		n = &inListNode{x: x, list: list, src: c.text(e)}
	}
	if n, err = c.foldIf(n, e, append(list, x)...); err != nil {
		return nil, err
	}
	if e.Not {
		return c.foldIf(&notNode{x: n}, e, n)
	}
	return n, nil
}

// valueSet builds the array of an IN list's constants, of type dt.
func valueSet(dt arrow.DataType, list []node) (arrow.Array, error) {
	parts := make([]arrow.Array, 0, len(list))
	defer func() {
		for _, p := range parts {
			p.Release()
		}
	}()
	for _, k := range list {
		a, err := scalar.MakeArrayFromScalar(k.(*constNode).sc, 1, constMem)
		if err != nil {
			return nil, err
		}
		parts = append(parts, a)
	}
	return array.Concatenate(parts, constMem)
}

func (c *checker) between(e *Between) (node, error) {
	var ns [3]node
	for i, s := range []Expr{e.X, e.Lo, e.Hi} {
		n, err := c.check(s)
		if err != nil {
			return nil, err
		}
		ns[i] = n
	}
	for i, s := range []Expr{e.Lo, e.Hi} {
		if _, ok := unify(ns[0].dtype(), ns[i+1].dtype(), isConst(ns[0]), isConst(ns[i+1])); !ok {
			return nil, typeErrf(offset(s), "cannot compare %s with %s", c.desc(e.X, ns[0]), c.desc(s, ns[i+1]))
		}
	}
	if classOf(ns[0].dtype()) == clsBool {
		return nil, typeErrf(e.Start, "cannot order booleans with BETWEEN")
	}
	x, bounds, err := c.comparable(ns[0], e.X, ns[1:], []Expr{e.Lo, e.Hi})
	if err != nil {
		return nil, err
	}
	var n node = &betweenNode{x: x, lo: bounds[0], hi: bounds[1], src: c.text(e)}
	if n, err = c.foldIf(n, e, x, bounds[0], bounds[1]); err != nil {
		return nil, err
	}
	if e.Not {
		return c.foldIf(&notNode{x: n}, e, n)
	}
	return n, nil
}

func (c *checker) isNull(e *IsNull) (node, error) {
	x, err := c.check(e.X)
	if err != nil {
		return nil, err
	}
	if k, ok := x.(*constNode); ok {
		return &constNode{sc: scalar.NewBooleanScalar(k.sc.IsValid() == e.Not)}, nil
	}
	return &isNullNode{x: x, not: e.Not}, nil
}

// constString returns the value of a constant string node; null reports a
// NULL constant.
func constString(n node) (s string, null, ok bool) {
	k, isK := n.(*constNode)
	if !isK {
		return "", false, false
	}
	if !k.sc.IsValid() {
		return "", true, true
	}
	if str, isStr := k.sc.(*scalar.String); isStr {
		return string(str.Data()), false, true
	}
	return "", false, false
}

func (c *checker) like(e *Like) (node, error) {
	x, err := c.check(e.X)
	if err != nil {
		return nil, err
	}
	if cls := classOf(x.dtype()); cls != clsString && cls != clsNull {
		return nil, typeErrf(offset(e.X), "LIKE needs a string, got %s", c.desc(e.X, x))
	}
	pn, err := c.check(e.Pattern)
	if err != nil {
		return nil, err
	}
	pat, patNull, ok := constString(pn)
	if !ok {
		return nil, typeErrf(offset(e.Pattern), "LIKE pattern must be a constant string, got %s", c.desc(e.Pattern, pn))
	}
	esc := rune(-1)
	if e.Escape != nil {
		en, err := c.check(e.Escape)
		if err != nil {
			return nil, err
		}
		s, null, ok := constString(en)
		if !ok || null || utf8.RuneCountInString(s) != 1 {
			return nil, typeErrf(offset(e.Escape), "ESCAPE must be a one-character string, got %s", c.desc(e.Escape, en))
		}
		esc, _ = utf8.DecodeRuneInString(s)
	}
	if patNull || isNullConst(x) {
		return nullOf(tBool), nil
	}
	m, err := compileLike(pat, esc)
	if err != nil {
		return nil, typeErrf(offset(e.Pattern), "%v", err)
	}
	if x, err = c.coerce(x, tString, e.X); err != nil {
		return nil, err
	}
	return c.foldIf(&likeNode{x: x, m: m, not: e.Not}, e, x)
}

func (c *checker) cast(e *Cast) (node, error) {
	dt, ok := castTypes[e.Type]
	if !ok {
		return nil, typeErrf(e.Start, "unknown type %q in CAST (known: %s)", e.Type, castTypeNames())
	}
	x, err := c.check(e.X)
	if err != nil {
		return nil, err
	}
	if isNullConst(x) {
		return nullOf(dt), nil
	}
	if arrow.TypeEqual(x.dtype(), dt) {
		return x, nil
	}
	if !compute.CanCast(x.dtype(), dt) {
		return nil, typeErrf(e.Start, "cannot cast %s to %s", c.desc(e.X, x), e.Type)
	}
	if dt.ID() == arrow.STRING && formatsToString(x.dtype()) {
		return c.foldIf(&toStringNode{x: x}, e, x)
	}
	opts := compute.SafeCastOptions(dt)
	opts.AllowFloatTruncate = true // CAST(2.7 AS int) is 2
	opts.AllowTimeTruncate = true  // CAST(ns AS timestamp) drops sub-microseconds
	return c.foldIf(&callNode{fn: "cast", opts: opts, args: []node{x}, dt: dt, src: c.text(e)}, e, x)
}

// functions are the scalar functions the language knows, with their arity
// (-1: one or more).
var functions = map[string]int{"coalesce": -1, "abs": 1, "lower": 1, "upper": 1, "length": 1}

var aggregates = map[string]bool{"sum": true, "count": true, "avg": true, "min": true, "max": true, "mean": true}

func (c *checker) call(e *Call) (node, error) {
	arity, ok := functions[e.Name]
	if !ok {
		if aggregates[e.Name] {
			return nil, typeErrf(e.Start, "aggregate function %s is not allowed here", e.Name)
		}
		names := make([]string, 0, len(functions))
		for n := range functions {
			names = append(names, n)
		}
		if s := engine.Suggest(e.Name, names); s != "" {
			return nil, typeErrf(e.Start, "unknown function %q, did you mean %q?", e.Name, s)
		}
		return nil, typeErrf(e.Start, "unknown function %q", e.Name)
	}
	switch {
	case arity < 0 && len(e.Args) == 0:
		return nil, typeErrf(e.Start, "%s needs at least one argument", e.Name)
	case arity == 1 && len(e.Args) != 1:
		return nil, typeErrf(e.Start, "%s takes 1 argument, got %d", e.Name, len(e.Args))
	}
	args := make([]node, len(e.Args))
	for i, a := range e.Args {
		n, err := c.check(a)
		if err != nil {
			return nil, err
		}
		args[i] = n
	}
	if e.Name == "coalesce" {
		return c.coalesce(e, args)
	}
	x, cls := args[0], classOf(args[0].dtype())
	if e.Name == "abs" {
		if !cls.numeric() && cls != clsNull {
			return nil, typeErrf(offset(e.Args[0]), "abs needs a number, got %s", c.desc(e.Args[0], x))
		}
		if cls == clsNull {
			return nullOf(tInt64), nil
		}
		dt := canonical(x.dtype())
		x, err := c.coerce(x, dt, e.Args[0])
		if err != nil {
			return nil, err
		}
		return c.foldIf(&callNode{fn: "abs", args: []node{x}, dt: dt, src: c.text(e)}, e, x)
	}
	if cls != clsString && cls != clsNull {
		return nil, typeErrf(offset(e.Args[0]), "%s needs a string, got %s", e.Name, c.desc(e.Args[0], x))
	}
	fn := strFuncs[e.Name]
	if cls == clsNull {
		return nullOf(fn.dtype()), nil
	}
	x, err := c.coerce(x, tString, e.Args[0])
	if err != nil {
		return nil, err
	}
	return c.foldIf(&strNode{fn: fn, x: x}, e, x)
}

// results unifies the types of the result arms of a CASE or coalesce and
// coerces them; nil arms (a missing ELSE) stay nil.
func (c *checker) results(what string, ns []node, es []Expr) (arrow.DataType, error) {
	var dt arrow.DataType = tNull
	allConst := true
	for i, n := range ns {
		if n == nil {
			continue
		}
		next, ok := unify(dt, n.dtype(), allConst, isConst(n))
		if !ok {
			return nil, typeErrf(offset(es[i]), "%s %s does not match the type of the ones before it (%s)", what, c.desc(es[i], n), typeName(dt))
		}
		dt, allConst = next, allConst && isConst(n)
	}
	if dt.ID() == arrow.NULL {
		return dt, nil
	}
	for i, n := range ns {
		if n == nil {
			continue
		}
		var err error
		if ns[i], err = c.coerce(n, dt, es[i]); err != nil {
			return nil, err
		}
	}
	return dt, nil
}

func (c *checker) coalesce(e *Call, args []node) (node, error) {
	dt, err := c.results("coalesce argument", args, e.Args)
	if err != nil {
		return nil, err
	}
	if dt.ID() == arrow.NULL {
		return nullOf(tNull), nil
	}
	return c.foldIf(&chooseNode{vals: args, dt: dt}, e, args...)
}

func (c *checker) caseExpr(e *Case) (node, error) {
	n := &chooseNode{conds: make([]node, len(e.Whens)), vals: make([]node, len(e.Whens)+1)}
	ves := make([]Expr, len(e.Whens)+1)
	ces := make([]Expr, len(e.Whens))
	for i, w := range e.Whens {
		var err error
		if n.conds[i], err = c.check(w.Cond); err != nil {
			return nil, err
		}
		if n.vals[i], err = c.check(w.Then); err != nil {
			return nil, err
		}
		ves[i], ces[i] = w.Then, w.Cond
	}
	if e.Else != nil {
		var err error
		if n.vals[len(e.Whens)], err = c.check(e.Else); err != nil {
			return nil, err
		}
		ves[len(e.Whens)] = e.Else
	}
	if e.Operand != nil {
		op, err := c.check(e.Operand)
		if err != nil {
			return nil, err
		}
		for i, k := range n.conds {
			if _, ok := unify(op.dtype(), k.dtype(), isConst(op), isConst(k)); !ok {
				return nil, typeErrf(offset(ces[i]), "cannot compare %s with %s", c.desc(e.Operand, op), c.desc(ces[i], k))
			}
		}
		if n.operand, n.conds, err = c.comparable(op, e.Operand, n.conds, ces); err != nil {
			return nil, err
		}
	} else {
		for i, k := range n.conds {
			switch classOf(k.dtype()) {
			case clsBool:
			case clsNull:
				n.conds[i] = nullOf(tBool)
			default:
				return nil, typeErrf(offset(ces[i]), "WHEN needs a boolean condition, got %s", c.desc(ces[i], k))
			}
		}
	}
	dt, err := c.results("CASE result", n.vals, ves)
	if err != nil {
		return nil, err
	}
	if dt.ID() == arrow.NULL {
		return nullOf(tNull), nil
	}
	n.dt = dt
	if last := len(n.vals) - 1; n.vals[last] == nil {
		n.vals[last] = nullOf(dt)
	}
	return c.foldIf(n, e, append(append([]node{n.operand}, n.conds...), n.vals...)...)
}

// describeNode is used by tests and String to show a compiled tree.
func describeNode(n node) string {
	switch n := n.(type) {
	case *constNode:
		return fmt.Sprintf("const(%s %s)", n.sc, typeName(n.sc.DataType()))
	case *colNode:
		return fmt.Sprintf("col(%d %s)", n.idx, typeName(n.dt))
	case *callNode:
		parts := make([]string, len(n.args))
		for i, a := range n.args {
			parts[i] = describeNode(a)
		}
		name := n.fn
		if n.fn == "cast" {
			name = "cast<" + typeName(n.dt) + ">"
		}
		return name + "(" + strings.Join(parts, ", ") + ")"
	case *notNode:
		return "not(" + describeNode(n.x) + ")"
	case *isNullNode:
		if n.not {
			return "is_not_null(" + describeNode(n.x) + ")"
		}
		return "is_null(" + describeNode(n.x) + ")"
	}
	return fmt.Sprintf("%T", n)
}
