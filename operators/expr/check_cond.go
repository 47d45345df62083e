package expr

import (
	"math"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/scalar"
)

// Type checking of CAST, function calls, coalesce and CASE.

func (c *checker) cast(e *Cast) (node, error) {
	x, err := c.check(e.X)
	if err != nil {
		return nil, err
	}
	dt, err := resolveType(e.Type)
	if err != nil {
		return nil, typeErrf(e.Start, "%v", err)
	}
	if poisoned(x) {
		return x, nil
	}
	if isNullConst(x) {
		return nullOf(dt), nil
	}
	if id := x.dtype().ID(); id == arrow.DICTIONARY || id == arrow.LARGE_STRING {
		if x, err = c.coerce(x, canonical(x.dtype()), e.X); err != nil {
			return nil, err
		}
	}
	if arrow.TypeEqual(x.dtype(), dt) {
		return x, nil
	}
	if iv, ok := constInterval(x); ok && dt.ID() == arrow.STRING {
		return &constNode{sc: scalar.NewStringScalar(iv.String())}, nil
	}
	if dt.ID() == arrow.STRING && formatsToString(x.dtype()) {
		return c.foldIf(&toStringNode{x: x}, e, x)
	}
	if v, ok := c.decimalLiteral(e.X); ok && arrow.IsInteger(dt.ID()) {
		// 2.5 is an exact decimal, as in SQL: CAST(2.5 AS INT) rounds it
		// half away from zero (3), where a DOUBLE rounds half to even.
		x = &constNode{sc: scalar.NewFloat64Scalar(math.Round(v))}
	}
	if castKind(x.dtype(), dt) != "" {
		return c.foldIf(&castNode{x: x, dt: dt, src: c.text(e)}, e, x)
	}
	if castClass(x.dtype()) != "" || castClass(dt) != "" && castClass(dt) != "string" || !compute.CanCast(x.dtype(), dt) {
		return nil, typeErrf(e.Start, "cannot cast %s to %s", c.desc(e.X, x), sqlTypeName(dt))
	}
	opts := compute.SafeCastOptions(dt)
	return c.foldIf(&callNode{fn: "cast", opts: opts, args: []node{x}, dt: dt, src: c.text(e)}, e, x)
}

// decimalLiteral reports whether e is a number literal written with a
// decimal point and no exponent (2.5, -0.1), possibly negated, and returns
// its value. SQL (DuckDB, PostgreSQL) reads such a literal as an exact
// DECIMAL, not a DOUBLE: CAST(2.5 AS INT) is 3, and float_col = 0.1
// compares with 0.1 rounded to the column's FLOAT. zflow keeps it a
// float64 constant and follows those two rules where they differ.
func (c *checker) decimalLiteral(e Expr) (float64, bool) {
	neg := false
	for {
		u, ok := e.(*Unary)
		if !ok || u.Op != "-" {
			break
		}
		neg, e = !neg, u.X
	}
	l, ok := e.(*Literal)
	if !ok || l.Kind != LitFloat {
		return 0, false
	}
	if s, end := l.Span(); 0 <= s && s <= end && end <= len(c.src) && strings.ContainsAny(c.src[s:end], "eE") {
		return 0, false // 1e3 is a DOUBLE in SQL too
	}
	if neg {
		return -l.Float, true
	}
	return l.Float, true
}

// results unifies the types of the result arms of a CASE or coalesce and
// coerces them; nil arms (a missing ELSE) stay nil. ok is false when an arm
// is poisoned or does not match (reported here, each against the type of
// the arms before it).
func (c *checker) results(what string, ns []node, es []Expr) (dt arrow.DataType, ok bool, err error) {
	dt, ok = tNull, true
	allConst := true
	for i, n := range ns {
		if n == nil {
			continue
		}
		if poisoned(n) {
			ok = false
			continue
		}
		next, fits := unify(dt, n.dtype(), allConst, isConst(n))
		if !fits {
			c.report(typeErrf(offset(es[i]), "%s %s does not match the type of the ones before it (%s)", what, c.desc(es[i], n), typeName(dt)))
			ok = false
			continue
		}
		dt, allConst = next, allConst && isConst(n)
	}
	if !ok || dt.ID() == arrow.NULL {
		return dt, ok, nil
	}
	for i, n := range ns {
		if n == nil {
			continue
		}
		if ns[i], err = c.coerce(n, dt, es[i]); err != nil {
			return nil, false, err
		}
	}
	return dt, true, nil
}

func (c *checker) coalesce(e *Call, args []node) (node, error) {
	dt, ok, err := c.results("coalesce argument", args, e.Args)
	if err != nil || !ok {
		return poisonNode{}, err
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
	var op node
	if e.Operand != nil {
		var err error
		if op, err = c.check(e.Operand); err != nil {
			return nil, err
		}
	}
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
	condsOK := true
	if op != nil {
		for i, k := range n.conds {
			if poisoned(op, k) {
				condsOK = false
				continue
			}
			if _, ok := unify(op.dtype(), k.dtype(), isConst(op), isConst(k)); !ok {
				c.report(typeErrf(offset(ces[i]), "cannot compare %s with %s", c.desc(e.Operand, op), c.desc(ces[i], k)))
				condsOK = false
			}
		}
		if condsOK {
			var err error
			if n.operand, n.conds, err = c.comparable(op, e.Operand, n.conds, ces); err != nil {
				return nil, err
			}
			if n.operand.dtype().ID() == arrow.NULL {
				// The operand and every WHEN are NULL: no WHEN matches
				// (NULL = NULL is not true), as a NULL condition does not.
				n.operand = nil
				for i := range n.conds {
					n.conds[i] = nullOf(tBool)
				}
			}
		}
	} else {
		for i, k := range n.conds {
			switch classOf(k.dtype()) {
			case clsBool:
			case clsNull:
				if poisoned(k) {
					condsOK = false
				} else {
					n.conds[i] = nullOf(tBool)
				}
			default:
				c.report(typeErrf(offset(ces[i]), "WHEN needs a boolean condition, got %s", c.desc(ces[i], k)))
				condsOK = false
			}
		}
	}
	dt, ok, err := c.results("CASE result", n.vals, ves)
	if err != nil || !ok || !condsOK {
		return poisonNode{}, err
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
