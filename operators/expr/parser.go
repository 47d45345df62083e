package expr

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// maxDepth bounds the height of the syntax tree (nesting and operator
// chains), so that no input can exhaust the stack of the parser, the checker
// or the evaluator.
const maxDepth = 1000

// Star is the * of count(*); it is only accepted as the single argument of a
// function call. No function of this package takes it: it is there for
// callers that parse aggregates with Parse.
type Star struct{ Pos }

func (*Star) String() string { return "*" }

// Parse parses src into a syntax tree. Errors are *SyntaxError, with a byte
// offset into src. Parse never panics.
func Parse(src string) (Expr, error) {
	p := &parser{lx: lexer{src: src}}
	if err := p.advance(); err != nil {
		return nil, err
	}
	e, err := p.parseExpr()
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tokEOF {
		return nil, p.errf("unexpected %s after the end of the expression", p.tok.describe())
	}
	return e, nil
}

// parser is a recursive-descent parser with one token of lookahead (tok) and
// a second on demand (peek).
type parser struct {
	lx    lexer
	tok   token
	depth int
}

func (p *parser) advance() error {
	t, err := p.lx.next()
	if err != nil {
		return err
	}
	p.tok = t
	return nil
}

// peek returns the token after tok without consuming anything.
func (p *parser) peek() token {
	lx := p.lx
	t, err := lx.next()
	if err != nil {
		return token{kind: tokEOF}
	}
	return t
}

func (p *parser) errf(format string, args ...any) error {
	return &SyntaxError{Offset: p.tok.pos, Msg: fmt.Sprintf(format, args...)}
}

// expect consumes the keyword or operator want, or fails naming it.
func (p *parser) expect(want, context string) error {
	if !p.tok.is(want) {
		return p.errf("expected %s%s, found %s", want, context, p.tok.describe())
	}
	return p.advance()
}

// enter counts one level of tree height; the caller must restore p.depth.
func (p *parser) enter() error {
	p.depth++
	if p.depth > maxDepth {
		return p.errf("expression is nested too deeply (more than %d levels)", maxDepth)
	}
	return nil
}

func span(l, r Expr) Pos {
	s, _ := l.Span()
	_, e := r.Span()
	return Pos{s, e}
}

func (p *parser) parseExpr() (Expr, error) {
	d := p.depth
	defer func() { p.depth = d }()
	if err := p.enter(); err != nil {
		return nil, err
	}
	return p.parseOr()
}

func (p *parser) parseOr() (Expr, error) { return p.leftAssoc(p.parseAnd, "OR") }

func (p *parser) parseAnd() (Expr, error) { return p.leftAssoc(p.parseNot, "AND") }

// leftAssoc parses next (op next)*, folding to the left: one precedence
// level of binary operators. Each operator counts one level of nesting
// (enter), given back when the level is done.
func (p *parser) leftAssoc(next func() (Expr, error), ops ...string) (Expr, error) {
	d := p.depth
	defer func() { p.depth = d }()
	l, err := next()
	for err == nil {
		op := ""
		for _, o := range ops {
			if p.tok.is(o) {
				op = o
			}
		}
		if op == "" {
			break
		}
		if err = p.enter(); err != nil {
			break
		}
		if err = p.advance(); err != nil {
			break
		}
		var r Expr
		if r, err = next(); err == nil {
			l = &Binary{Pos: span(l, r), Op: op, L: l, R: r}
		}
	}
	return l, err
}

func (p *parser) parseNot() (Expr, error) {
	if !p.tok.is("NOT") {
		return p.parseCmp()
	}
	d := p.depth
	defer func() { p.depth = d }()
	start := p.tok.pos
	if err := p.enter(); err != nil {
		return nil, err
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	x, err := p.parseNot()
	if err != nil {
		return nil, err
	}
	_, end := x.Span()
	return &Unary{Pos: Pos{start, end}, Op: "NOT", X: x}, nil
}

var cmpOps = map[string]string{"=": "=", "==": "=", "!=": "!=", "<>": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}

// parseCmp parses the comparison level: binary comparisons, IS [NOT] NULL,
// [NOT] IN, [NOT] BETWEEN and [NOT] LIKE, left-associative.
func (p *parser) parseCmp() (Expr, error) {
	d := p.depth
	defer func() { p.depth = d }()
	l, err := p.parseConcat()
	if err != nil {
		return nil, err
	}
	for {
		start, _ := l.Span()
		t := p.tok
		if t.kind == tokOp {
			op, ok := cmpOps[t.text]
			if !ok {
				return l, nil
			}
			if err := p.enter(); err != nil {
				return nil, err
			}
			if err := p.advance(); err != nil {
				return nil, err
			}
			r, err := p.parseConcat()
			if err != nil {
				return nil, err
			}
			l = &Binary{Pos: span(l, r), Op: op, L: l, R: r}
			continue
		}
		if t.is("IS") {
			if err := p.enter(); err != nil {
				return nil, err
			}
			if err := p.advance(); err != nil {
				return nil, err
			}
			not := p.tok.is("NOT")
			if not {
				if err := p.advance(); err != nil {
					return nil, err
				}
			}
			if !p.tok.is("NULL") {
				return nil, p.errf("expected NULL after IS%s, found %s", map[bool]string{true: " NOT"}[not], p.tok.describe())
			}
			end := p.tok.end
			if err := p.advance(); err != nil {
				return nil, err
			}
			l = &IsNull{Pos: Pos{start, end}, X: l, Not: not}
			continue
		}
		not := false
		if t.is("NOT") {
			if n := p.peek(); !(n.is("IN") || n.is("BETWEEN") || n.is("LIKE")) {
				return l, nil
			}
			not = true
			if err := p.advance(); err != nil {
				return nil, err
			}
		}
		switch {
		case p.tok.is("IN"):
			l, err = p.parseIn(l, not)
		case p.tok.is("BETWEEN"):
			l, err = p.parseBetween(l, not)
		case p.tok.is("LIKE"):
			l, err = p.parseLike(l, not)
		default:
			return l, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

func (p *parser) parseIn(x Expr, not bool) (Expr, error) {
	start, _ := x.Span()
	if err := p.enter(); err != nil {
		return nil, err
	}
	if err := p.advance(); err != nil { // IN
		return nil, err
	}
	if err := p.expect("(", " after IN"); err != nil {
		return nil, err
	}
	if p.tok.is(")") {
		return nil, p.errf("IN list is empty")
	}
	var list []Expr
	for {
		e, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		list = append(list, e)
		if !p.tok.is(",") {
			break
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
	}
	end := p.tok.end
	if err := p.expect(")", " to close the IN list"); err != nil {
		return nil, err
	}
	return &In{Pos: Pos{start, end}, X: x, List: list, Not: not}, nil
}

func (p *parser) parseBetween(x Expr, not bool) (Expr, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	if err := p.advance(); err != nil { // BETWEEN
		return nil, err
	}
	lo, err := p.parseConcat()
	if err != nil {
		return nil, err
	}
	if err := p.expect("AND", " in BETWEEN"); err != nil {
		return nil, err
	}
	hi, err := p.parseConcat()
	if err != nil {
		return nil, err
	}
	return &Between{Pos: span(x, hi), X: x, Lo: lo, Hi: hi, Not: not}, nil
}

func (p *parser) parseLike(x Expr, not bool) (Expr, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	if err := p.advance(); err != nil { // LIKE
		return nil, err
	}
	pat, err := p.parseConcat()
	if err != nil {
		return nil, err
	}
	l := &Like{Pos: span(x, pat), X: x, Pattern: pat, Not: not}
	if p.tok.is("ESCAPE") {
		if err := p.advance(); err != nil {
			return nil, err
		}
		esc, err := p.parseConcat()
		if err != nil {
			return nil, err
		}
		l.Escape, l.Pos = esc, span(x, esc)
	}
	return l, nil
}

// parseConcat parses the || level, between the comparisons and + and -, as
// in DuckDB and PostgreSQL: 'a' || 1 + 2 is 'a3', 'a' || 'b' = 'ab' is true.
func (p *parser) parseConcat() (Expr, error) { return p.leftAssoc(p.parseAdd, "||") }

func (p *parser) parseAdd() (Expr, error) { return p.leftAssoc(p.parseMul, "+", "-") }

func (p *parser) parseMul() (Expr, error) { return p.leftAssoc(p.parseUnary, "*", "/", "%") }

func (p *parser) parseUnary() (Expr, error) {
	if !p.tok.is("-") && !p.tok.is("+") {
		x, err := p.parsePrimary()
		if err != nil {
			return nil, err
		}
		return p.parseCasts(x)
	}
	d := p.depth
	defer func() { p.depth = d }()
	op, start := p.tok.text, p.tok.pos
	if err := p.enter(); err != nil {
		return nil, err
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	// -<number> is one literal, so that -9223372036854775808 is an int64.
	if op == "-" && (p.tok.kind == tokInt || p.tok.kind == tokFloat) {
		lit, err := p.number("-")
		if err != nil {
			return nil, err
		}
		lit.Start = start
		if err := p.advance(); err != nil {
			return nil, err
		}
		return p.parseCasts(lit)
	}
	x, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	_, end := x.Span()
	return &Unary{Pos: Pos{start, end}, Op: op, X: x}, nil
}

// number converts the current number token, with sign prefixed.
func (p *parser) number(sign string) (*Literal, error) {
	t := p.tok
	lit := &Literal{Pos: Pos{t.pos, t.end}}
	if t.kind == tokInt {
		v, err := strconv.ParseInt(sign+t.text, 10, 64)
		if err != nil {
			return nil, p.errf("integer %s%s is out of range for int64", sign, t.text)
		}
		lit.Kind, lit.Int = LitInt, v
		return lit, nil
	}
	v, err := strconv.ParseFloat(sign+t.text, 64)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) && v == 0 {
			err = nil // underflow to zero is fine
		}
	}
	if err != nil {
		return nil, p.errf("number %s%s is out of range for float64", sign, t.text)
	}
	lit.Kind, lit.Float = LitFloat, v
	return lit, nil
}

func (p *parser) parsePrimary() (Expr, error) {
	t := p.tok
	switch t.kind {
	case tokInt, tokFloat:
		lit, err := p.number("")
		if err != nil {
			return nil, err
		}
		return lit, p.advance()
	case tokString:
		return &Literal{Pos: Pos{t.pos, t.end}, Kind: LitString, Str: t.text}, p.advance()
	case tokQIdent:
		return &Ident{Pos: Pos{t.pos, t.end}, Name: t.text, Quoted: true}, p.advance()
	case tokOp:
		if t.text != "(" {
			break
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		e, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		return e, p.expect(")", " to close the ( at offset "+strconv.Itoa(t.pos))
	case tokIdent:
		switch strings.ToUpper(t.text) {
		case "NULL":
			return &Literal{Pos: Pos{t.pos, t.end}, Kind: LitNull}, p.advance()
		case "TRUE", "FALSE":
			return &Literal{Pos: Pos{t.pos, t.end}, Kind: LitBool, Bool: t.is("TRUE")}, p.advance()
		case "CASE":
			return p.parseCase()
		case "CAST":
			return p.parseCast()
		case "TIMESTAMP", "DATE", "TIMESTAMPTZ":
			if n := p.peek(); n.kind == tokString {
				return p.parseTimestamp()
			}
		case "INTERVAL":
			if n := p.peek(); n.kind == tokString || n.kind == tokInt || n.is("(") || n.is("-") {
				return p.parseInterval()
			}
		case "EXTRACT":
			if p.peek().is("(") {
				return p.parseExtract()
			}
		}
		if isKeyword(t.text) {
			return nil, p.errf("expected an expression, found %s", t.describe())
		}
		if p.peek().is("(") {
			return p.parseCall()
		}
		return &Ident{Pos: Pos{t.pos, t.end}, Name: t.text}, p.advance()
	}
	return nil, p.errf("expected an expression, found %s", t.describe())
}

func (p *parser) parseCall() (Expr, error) {
	name := p.tok
	if err := p.advance(); err != nil { // name
		return nil, err
	}
	if err := p.advance(); err != nil { // (
		return nil, err
	}
	c := &Call{Pos: Pos{Start: name.pos}, Name: strings.ToLower(name.text)}
	// count(DISTINCT x): DISTINCT is no keyword (a column may be named
	// so), but a column is followed by ")" or "," where an argument ends.
	if p.tok.kind == tokIdent && p.tok.is("DISTINCT") && !p.peek().is(")") && !p.peek().is(",") {
		c.Distinct = true
		if err := p.advance(); err != nil {
			return nil, err
		}
	}
	if p.tok.is("*") && p.peek().is(")") {
		c.Args = []Expr{&Star{Pos{p.tok.pos, p.tok.end}}}
		if err := p.advance(); err != nil {
			return nil, err
		}
	} else if !p.tok.is(")") {
		for {
			e, err := p.parseExpr()
			if err != nil {
				return nil, err
			}
			c.Args = append(c.Args, e)
			if !p.tok.is(",") {
				break
			}
			if err := p.advance(); err != nil {
				return nil, err
			}
		}
	}
	c.End = p.tok.end
	if err := p.expect(")", " to close the arguments of "+c.Name); err != nil {
		return nil, err
	}
	// An aggregate's FILTER (WHERE cond): FILTER is no keyword (a column
	// may be named so), but nothing else can follow a call's ")".
	if p.tok.kind == tokIdent && p.tok.is("FILTER") && p.peek().is("(") {
		open := p.peek().pos
		if err := p.advance(); err != nil { // FILTER
			return nil, err
		}
		if err := p.advance(); err != nil { // (
			return nil, err
		}
		if !(p.tok.kind == tokIdent && p.tok.is("WHERE")) {
			return nil, p.errf("expected WHERE after FILTER (, found %s", p.tok.describe())
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		cond, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		c.Filter = cond
		c.End = p.tok.end
		if err := p.expect(")", " to close the FILTER ( at offset "+strconv.Itoa(open)); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (p *parser) parseCase() (Expr, error) {
	start := p.tok.pos
	if err := p.advance(); err != nil { // CASE
		return nil, err
	}
	c := &Case{Pos: Pos{Start: start}}
	if p.tok.is("END") || p.tok.is("ELSE") {
		return nil, p.errf("expected WHEN in CASE, found %s", p.tok.describe())
	}
	if !p.tok.is("WHEN") {
		op, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		c.Operand = op
	}
	for p.tok.is("WHEN") {
		if err := p.advance(); err != nil {
			return nil, err
		}
		cond, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		if err := p.expect("THEN", " after WHEN"); err != nil {
			return nil, err
		}
		then, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		c.Whens = append(c.Whens, When{Cond: cond, Then: then})
	}
	if len(c.Whens) == 0 {
		return nil, p.errf("expected WHEN in CASE, found %s", p.tok.describe())
	}
	if p.tok.is("ELSE") {
		if err := p.advance(); err != nil {
			return nil, err
		}
		e, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		c.Else = e
	}
	c.End = p.tok.end
	return c, p.expect("END", " to close the CASE at offset "+strconv.Itoa(start))
}

func (p *parser) parseCast() (Expr, error) {
	start := p.tok.pos
	if err := p.advance(); err != nil { // CAST
		return nil, err
	}
	if err := p.expect("(", " after CAST"); err != nil {
		return nil, err
	}
	x, err := p.parseExpr()
	if err != nil {
		return nil, err
	}
	if err := p.expect("AS", " in CAST"); err != nil {
		return nil, err
	}
	typ, _, err := p.parseTypeName()
	if err != nil {
		return nil, err
	}
	end := p.tok.end
	if err := p.expect(")", " to close the CAST"); err != nil {
		return nil, err
	}
	return &Cast{Pos: Pos{start, end}, X: x, Type: typ}, nil
}

// parseTimestamp parses TIMESTAMP '...', TIMESTAMPTZ '...' or DATE '...'
// in DuckDB's text forms (see parseDateTime). A zone offset converts a
// TIMESTAMP or TIMESTAMPTZ to UTC (DuckDB drops it from a TIMESTAMP,
// keeping the wall clock); a DATE drops the time.
func (p *parser) parseTimestamp() (Expr, error) {
	start, kw := p.tok.pos, strings.ToUpper(p.tok.text)
	if err := p.advance(); err != nil { // TIMESTAMP
		return nil, err
	}
	s := p.tok
	dt, err := parseDateTime(s.text)
	if err != nil {
		return nil, p.errf("invalid %s %s: %v (want 'YYYY-MM-DD[ HH:MM:SS[.fraction]][Z|±HH[:MM]]')", strings.ToLower(kw), quoteString(s.text), err)
	}
	lit := &Literal{Pos: Pos{start, s.end}}
	switch kw {
	case "DATE":
		lit.Kind, lit.Time = LitDate, time.Unix(dt.days*secsPerDay, 0).UTC()
	case "TIMESTAMP":
		lit.Kind, lit.Time = LitTimestamp, time.Unix(dt.days*secsPerDay+dt.secs-dt.offset, dt.nanos).UTC()
	default:
		lit.Kind, lit.Time = LitTimestampTZ, time.Unix(dt.days*secsPerDay+dt.secs-dt.offset, dt.nanos).UTC()
	}
	return lit, p.advance()
}

// typeWords are the words that continue a multi-word type name: DOUBLE
// PRECISION, TIMESTAMP WITH[OUT] TIME ZONE.
var typeWords = map[string]bool{"precision": true, "with": true, "without": true, "time": true, "zone": true}

// parseTypeName reads the type of a CAST: one or more words, then
// optionally integer parameters in parentheses, as in DECIMAL(10, 2). It
// returns the name lower-cased and normalised ("decimal(10,2)",
// "timestamp with time zone"); the checker resolves it.
func (p *parser) parseTypeName() (name string, end int, err error) {
	if p.tok.kind != tokIdent {
		return "", 0, p.errf("expected a type name, found %s", p.tok.describe())
	}
	name, end = strings.ToLower(p.tok.text), p.tok.end
	if err := p.advance(); err != nil {
		return "", 0, err
	}
	for p.tok.kind == tokIdent && typeWords[strings.ToLower(p.tok.text)] {
		name, end = name+" "+strings.ToLower(p.tok.text), p.tok.end
		if err := p.advance(); err != nil {
			return "", 0, err
		}
	}
	if !p.tok.is("(") {
		return name, end, nil
	}
	if err := p.advance(); err != nil {
		return "", 0, err
	}
	var params []string
	for {
		if p.tok.kind != tokInt {
			return "", 0, p.errf("expected an integer type parameter, found %s", p.tok.describe())
		}
		params = append(params, p.tok.text)
		if err := p.advance(); err != nil {
			return "", 0, err
		}
		if !p.tok.is(",") {
			break
		}
		if err := p.advance(); err != nil {
			return "", 0, err
		}
	}
	end = p.tok.end
	if err := p.expect(")", " to close the type parameters"); err != nil {
		return "", 0, err
	}
	return name + "(" + strings.Join(params, ",") + ")", end, nil
}

// parseCasts parses the postfix casts x::type[::type...] (PostgreSQL's and
// DuckDB's shorthand for CAST(x AS type)), which bind tighter than any
// operator.
func (p *parser) parseCasts(x Expr) (Expr, error) {
	for p.tok.is("::") {
		if err := p.enter(); err != nil {
			return nil, err
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		typ, end, err := p.parseTypeName()
		if err != nil {
			return nil, err
		}
		start, _ := x.Span()
		x = &Cast{Pos: Pos{start, end}, X: x, Type: typ}
	}
	return x, nil
}
