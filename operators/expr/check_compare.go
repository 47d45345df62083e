package expr

import (
	"math/big"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/scalar"
)

// Type checking of comparisons and predicates: =, <, ..., IN, BETWEEN,
// IS NULL, LIKE.

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
	if poisoned(l, r) {
		return poisonNode{}, nil
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

// timestampHint adds a hint to a failed comparison: a decimal is
// compared after a cast to DOUBLE.
func timestampHint(l, r node, le, re Expr) string {
	if l.dtype().ID() == arrow.DECIMAL128 || r.dtype().ID() == arrow.DECIMAL128 {
		return "; decimals do not compute: CAST them AS DOUBLE"
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
	if xc := classOf(xdt); !isConst(x) && xdt.ID() != arrow.DICTIONARY && (xc == clsInt || xc == clsTimestamp || xc == clsDate) {
		ok := true
		for i, k := range list {
			if !isConst(k) {
				ok = false
				break
			}
			n, err := c.coerce(k, xdt, les[i])
			if err != nil || !sameInstant(k, n) {
				ok = false
				break
			}
			out[i] = n
		}
		if ok {
			return x, out, nil
		}
	}
	if xdt.ID() == arrow.FLOAT32 && !isConst(x) {
		// A FLOAT column meets decimal literals (0.1): SQL casts each
		// literal to FLOAT, so f32 = 0.1 holds where f32 was set from 0.1.
		ok := true
		for i, k := range list {
			if _, dec := c.decimalLiteral(les[i]); !dec || !isConst(k) {
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
	allConst, bad := true, poisoned(x)
	for i, le := range e.List {
		if list[i], err = c.check(le); err != nil {
			return nil, err
		}
		if poisoned(list[i]) {
			bad = true
			continue
		}
		if _, ok := unify(x.dtype(), list[i].dtype(), isConst(x), isConst(list[i])); !ok && !poisoned(x) {
			c.report(typeErrf(offset(le), "cannot compare %s with %s", c.desc(e.X, x), c.desc(le, list[i])))
			bad = true
		}
		allConst = allConst && isConst(list[i])
	}
	if bad {
		return poisonNode{}, nil
	}
	if isNullConst(x) {
		return nullOf(tBool), nil
	}
	if x, list, err = c.comparable(x, e.X, list, e.List); err != nil {
		return nil, err
	}
	var n node
	switch {
	case allConst && x.dtype().ID() == arrow.STRING && len(list) <= maxSmallIn:
		in := &inStrNode{x: x}
		strs := make([]string, 0, len(list))
		for _, k := range list {
			s, null, _ := constString(k)
			if null {
				in.hasNull = true
			} else {
				strs = append(strs, s)
			}
		}
		in.set = newStrSet(strs)
		n = in
	// arrow-go v18.8.0's is_in does not find booleans: they take the OR path.
	case allConst && classOf(x.dtype()) != clsBool:
		set, err := valueSet(x.dtype(), list)
		if err != nil {
			return nil, typeErrf(e.Start, "cannot build the IN list: %v", err)
		}
		opts := &compute.SetOptions{ValueSet: compute.NewDatumWithoutOwning(set), NullBehavior: compute.NullMatchingInconclusive}
		n = &callNode{fn: "is_in", opts: opts, args: []node{x}, dt: tBool, src: c.text(e)}
	default:
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
	if poisoned(ns[:]...) {
		return poisonNode{}, nil
	}
	bad := false
	for i, s := range []Expr{e.Lo, e.Hi} {
		if _, ok := unify(ns[0].dtype(), ns[i+1].dtype(), isConst(ns[0]), isConst(ns[i+1])); !ok {
			c.report(typeErrf(offset(s), "cannot compare %s with %s", c.desc(e.X, ns[0]), c.desc(s, ns[i+1])))
			bad = true
		}
	}
	if bad {
		return poisonNode{}, nil
	}
	if classOf(ns[0].dtype()) == clsBool {
		return nil, typeErrf(e.Start, "cannot order booleans with BETWEEN")
	}
	x, bounds, err := c.comparable(ns[0], e.X, ns[1:], []Expr{e.Lo, e.Hi})
	if err != nil {
		return nil, err
	}
	if x.dtype().ID() == arrow.NULL { // NULL BETWEEN NULL AND NULL, NOT too
		return nullOf(tBool), nil
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
	if err != nil || poisoned(x) {
		return x, err
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
		x = c.report(typeErrf(offset(e.X), "LIKE needs a string, got %s", c.desc(e.X, x)))
	}
	pn, err := c.check(e.Pattern)
	if err != nil {
		return nil, err
	}
	pat, patNull, ok := constString(pn)
	if !ok && !poisoned(pn) {
		pn = c.report(typeErrf(offset(e.Pattern), "LIKE pattern must be a constant string, got %s", c.desc(e.Pattern, pn)))
	}
	esc := rune(-1)
	if e.Escape != nil {
		en, err := c.check(e.Escape)
		if err != nil {
			return nil, err
		}
		s, null, ok := constString(en)
		switch {
		case poisoned(en):
			pn = en
		case !ok || null || utf8.RuneCountInString(s) != 1:
			pn = c.report(typeErrf(offset(e.Escape), "ESCAPE must be a one-character string, got %s", c.desc(e.Escape, en)))
		default:
			esc, _ = utf8.DecodeRuneInString(s)
		}
	}
	if poisoned(x, pn) {
		return poisonNode{}, nil
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

// sameInstant reports whether the constant b, converted from the constant
// a, still holds a's instant when both are dates or timestamps (a cast to a
// coarser unit rounds: ts_ms = TIMESTAMP '… .123456' must not compare as
// '… .123'); for other constants it is true.
func sameInstant(a, b node) bool {
	ta, oka := instant(a)
	tb, okb := instant(b)
	if !oka || !okb {
		return true
	}
	return ta.Cmp(tb) == 0
}

// instant returns the nanoseconds since the epoch of a date or timestamp
// constant; ok is false for anything else (a NULL included).
func instant(n node) (*big.Int, bool) {
	k, isConst := n.(*constNode)
	if !isConst || !k.sc.IsValid() {
		return nil, false
	}
	var v, per int64
	switch sc := k.sc.(type) {
	case *scalar.Timestamp:
		v, per = int64(sc.Value), 1_000_000_000/unitsPerSec(sc.Type.(*arrow.TimestampType).Unit)
	case *scalar.Date32:
		v, per = int64(sc.Value), secsPerDay*1_000_000_000
	case *scalar.Date64:
		v, per = int64(sc.Value), 1_000_000
	default:
		return nil, false
	}
	return new(big.Int).Mul(big.NewInt(v), big.NewInt(per)), true
}
