package expr

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
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
//
// It reports every error of the expression, not only the first: check
// records a sub-expression's *TypeError and hands its parent a poisonNode in
// its place. A parent with a poisoned operand is poisoned itself without a
// message of its own about it (no cascade), but still checks, and reports
// on, its other operands.
type checker struct {
	src    string
	schema *arrow.Schema
	cols   map[int]bool
	errs   []*TypeError
}

// poisonNode stands for a sub-expression that failed to check; its error is
// already recorded. It is never evaluated: Compile fails when one exists.
type poisonNode struct{}

func (poisonNode) dtype() arrow.DataType { return tNull }

func (poisonNode) eval(*evaluator) (value, error) {
	return value{}, errors.New("expr: evaluating an expression that failed to check (a bug)")
}

// poisoned reports whether any of ns failed to check.
func poisoned(ns ...node) bool {
	for _, n := range ns {
		if _, ok := n.(poisonNode); ok {
			return true
		}
	}
	return false
}

// report records err and returns the poison that stands for the
// sub-expression it is about.
func (c *checker) report(err *TypeError) node {
	c.errs = append(c.errs, err)
	return poisonNode{}
}

// result turns what the checker found into Compile's error: nil, the one
// *TypeError, or an ErrorList in source order.
func (c *checker) result() error {
	switch len(c.errs) {
	case 0:
		return nil
	case 1:
		return c.errs[0]
	}
	l := ErrorList(c.errs)
	sort.SliceStable(l, func(i, j int) bool { return l[i].Offset < l[j].Offset })
	return l
}

// constMem allocates constants. They live as long as the compiled program,
// outside any run's budget, so they come from the Go heap.
var constMem = memory.NewGoAllocator()

func (c *checker) text(e Expr) string {
	s, end := e.Span()
	var t string
	if 0 <= s && s <= end && end <= len(c.src) {
		// A node's span starts at its first operand, inside any parentheses
		// around that operand: take in the '(' its closing ')' needs.
		for open := parenBalance(c.src[s:end]); open < 0; open++ {
			i := strings.LastIndexByte(c.src[:s], '(')
			if i < 0 || strings.TrimSpace(c.src[i+1:s]) != "" {
				break
			}
			s = i
		}
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

// parenBalance counts the '(' in s less the ')', outside quoted strings and
// names.
func parenBalance(s string) int {
	n := 0
	var quote byte
	for i := 0; i < len(s); i++ {
		switch b := s[i]; {
		case quote != 0:
			if b == quote {
				quote = 0 // a doubled quote closes and reopens: the count is the same
			}
		case b == '\'' || b == '"':
			quote = b
		case b == '(':
			n++
		case b == ')':
			n--
		}
	}
	return n
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
	if k := castKind(n.dtype(), dt); k == "parse" || k == "time" {
		return c.foldIf(&castNode{x: n, dt: dt, src: c.text(e)}, e, n)
	}
	opts := compute.SafeCastOptions(dt)
	// An int meeting a float becomes float64 as in SQL, rounding above 2^53
	// instead of failing the batch (and skipping arrow's per-value check).
	opts.AllowFloatTruncate = classOf(n.dtype()) == clsInt && classOf(dt) == clsFloat
	cn := &callNode{fn: "cast", opts: opts, args: []node{n}, dt: dt, src: c.text(e)}
	return c.foldIf(cn, e, n)
}

// check type-checks e and returns its node. A *TypeError is recorded (see
// result) and e's node is a poisonNode; the error check returns is nil
// then, and otherwise one that ends the whole check (a nil expression).
func (c *checker) check(e Expr) (node, error) {
	n, err := c.checkNode(e)
	if err != nil {
		var te *TypeError
		if errors.As(err, &te) {
			return c.report(te), nil
		}
		return nil, err
	}
	return n, nil
}

func (c *checker) checkNode(e Expr) (node, error) {
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
		case "||":
			return c.concatOp(e)
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
	case LitDate:
		days := FloorDiv(e.Time.Unix(), secsPerDay)
		if days < math.MinInt32 || days > math.MaxInt32 {
			return nil, typeErrf(e.Start, "date %s is outside the date range", c.text(e))
		}
		return &constNode{sc: scalar.NewDate32Scalar(arrow.Date32(days))}, nil
	case LitInterval:
		return &constNode{sc: intervalScalar(e.Interval)}, nil
	case LitTimestamp, LitTimestampTZ:
		t := e.Time
		zone := ""
		if e.Kind == LitTimestampTZ {
			zone = "UTC"
		}
		if sec := t.Unix(); sec > math.MaxInt64/1_000_000-1 || sec < math.MinInt64/1_000_000+1 {
			return nil, typeErrf(e.Start, "timestamp %s is outside the microsecond range (years -290308 to 294247)", c.text(e))
		}
		if t.Nanosecond()%1000 == 0 {
			dt := &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: zone}
			return &constNode{sc: scalar.NewTimestampScalar(arrow.Timestamp(t.UnixMicro()), dt)}, nil
		}
		if y := t.Year(); y < 1678 || y > 2261 {
			return nil, typeErrf(e.Start, "timestamp %s has nanoseconds but is outside the nanosecond range (years 1678-2261)", c.text(e))
		}
		dt := &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: zone}
		return &constNode{sc: scalar.NewTimestampScalar(arrow.Timestamp(t.UnixNano()), dt)}, nil
	}
	return nil, typeErrf(e.Start, "unknown literal kind %d", e.Kind)
}

func (c *checker) unary(e *Unary) (node, error) {
	x, err := c.check(e.X)
	if err != nil || poisoned(x) {
		return x, err
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
	bad := false
	for i, s := range []Expr{e.L, e.R} {
		n, err := c.check(s)
		if err != nil {
			return nil, err
		}
		switch classOf(n.dtype()) {
		case clsBool:
		case clsNull:
			if !poisoned(n) {
				n = nullOf(tBool)
			}
		default:
			n = c.report(typeErrf(offset(s), "%s needs boolean operands, got %s", e.Op, c.desc(s, n)))
		}
		ns[i], bad = n, bad || poisoned(n)
	}
	if bad {
		return poisonNode{}, nil
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
	for i, s := range []Expr{e.L, e.R} {
		n, err := c.check(s)
		if err != nil {
			return nil, err
		}
		ns[i] = n
	}
	failed := poisoned(ns[0], ns[1])
	if !failed {
		if n, ok, err := c.timeArith(e, ns[0], ns[1]); ok {
			return n, err
		}
	}
	dt := tInt64
	bad := false
	for i, s := range []Expr{e.L, e.R} {
		n := ns[i]
		switch cls := classOf(n.dtype()); {
		case cls == clsInt || cls == clsNull:
		case cls == clsFloat:
			dt = tFloat64
		case failed && (cls == clsDate || cls == clsTimestamp || cls == clsInterval):
			// The other operand failed; this one may be right for + or -.
		case n.dtype().ID() == arrow.DECIMAL128:
			n = c.report(typeErrf(offset(s), "operator %s does not compute on decimals, got %s: CAST it AS DOUBLE", e.Op, c.desc(s, n)))
		default:
			n = c.report(typeErrf(offset(s), "operator %s needs numeric operands, got %s", e.Op, c.desc(s, n)))
		}
		ns[i], bad = n, bad || poisoned(n)
	}
	if bad {
		return poisonNode{}, nil
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
		n = &divModNode{op: e.Op[0], l: l, r: r, dt: dt, src: c.text(e)}
	}
	return c.foldIf(n, e, l, r)
}

// describeNode renders a compiled tree, for tests and debugging.
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
