package expr

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// Expr is a node of the syntax tree that Parse returns. Every node knows the
// byte span of the source it was parsed from, so a later error (a type error,
// an aggregate the caller does not support) can point into the source.
//
// String renders the node as fully parenthesised source that parses back to
// the same tree.
type Expr interface {
	Span() (start, end int)
	String() string
	exprNode()
}

// Pos is the byte span [Start, End) of a node in the source.
type Pos struct{ Start, End int }

// Span returns the node's byte span in the source.
func (p Pos) Span() (start, end int) { return p.Start, p.End }

func (Pos) exprNode() {}

// Ident is a column reference: a bare identifier or a "double-quoted" one.
type Ident struct {
	Pos
	Name   string
	Quoted bool // written in double quotes: matched case-sensitively only
}

// LitKind says which field of a Literal holds its value.
type LitKind uint8

// The literal kinds.
const (
	LitNull LitKind = iota
	LitBool
	LitInt
	LitFloat
	LitString
	LitTimestamp   // TIMESTAMP '...': wall clock, zone-less
	LitTimestampTZ // TIMESTAMPTZ '...': an instant
	LitDate        // DATE '...'
	LitInterval    // INTERVAL ...
)

// Literal is a constant written in the source.
type Literal struct {
	Pos
	Kind  LitKind
	Bool  bool
	Int   int64
	Float float64
	Str   string
	Time  time.Time // LitTimestamp, LitTimestampTZ, LitDate: in UTC
	// Interval is the value of a LitInterval.
	Interval Interval
}

// Interval is a span of calendar time, as DuckDB's INTERVAL: months and
// days count on the calendar (a month from Jan 31 is Feb 29), micros is
// the exact rest.
type Interval struct {
	Months int32
	Days   int32
	Micros int64
}

// Unary is -X, +X or NOT X. Op is "-", "+" or "NOT".
type Unary struct {
	Pos
	Op string
	X  Expr
}

// Binary is L Op R. Op is one of + - * / % || = != < <= > >= AND OR; the
// spellings == and <> are normalised to = and !=.
type Binary struct {
	Pos
	Op   string
	L, R Expr
}

// In is X [NOT] IN (List...).
type In struct {
	Pos
	X    Expr
	List []Expr
	Not  bool
}

// Between is X [NOT] BETWEEN Lo AND Hi (both ends inclusive).
type Between struct {
	Pos
	X, Lo, Hi Expr
	Not       bool
}

// IsNull is X IS [NOT] NULL.
type IsNull struct {
	Pos
	X   Expr
	Not bool
}

// Like is X [NOT] LIKE Pattern [ESCAPE Escape]; Escape may be nil.
type Like struct {
	Pos
	X, Pattern, Escape Expr
	Not                bool
}

// When is one WHEN Cond THEN Then arm of a Case.
type When struct {
	Cond, Then Expr
}

// Case is CASE [Operand] WHEN ... THEN ... [ELSE Else] END. With an Operand
// (the "simple" form) each When.Cond is a value compared to it; without one
// each When.Cond is a boolean. Else may be nil.
type Case struct {
	Pos
	Operand Expr
	Whens   []When
	Else    Expr
}

// Cast is CAST(X AS Type); Type is the type name as written, lower-cased.
type Cast struct {
	Pos
	X    Expr
	Type string
}

// Call is a function call; Name is lower-cased. Filter is the condition
// of an aggregate's FILTER (WHERE cond), nil without one.
type Call struct {
	Pos
	Name     string
	Distinct bool // an aggregate's DISTINCT: count(DISTINCT x)
	Args     []Expr
	Filter   Expr
}

// keywords are reserved: a column with one of these names must be quoted.
var keywords = map[string]bool{
	"AND": true, "OR": true, "NOT": true, "IN": true, "BETWEEN": true, "IS": true,
	"NULL": true, "LIKE": true, "ESCAPE": true, "CASE": true, "WHEN": true, "THEN": true,
	"ELSE": true, "END": true, "CAST": true, "AS": true, "TRUE": true, "FALSE": true,
}

func isKeyword(s string) bool { return keywords[strings.ToUpper(s)] }

// identString renders a column name, quoting it when it would not lex back
// as the same bare identifier.
func identString(name string) string {
	if name == "" || isKeyword(name) {
		return quoteIdent(name)
	}
	for i, r := range name {
		if (i == 0 && !isIdentStart(r)) || !isIdentPart(r) {
			return quoteIdent(name)
		}
	}
	return name
}

func (e *Ident) String() string {
	if e.Quoted {
		return quoteIdent(e.Name)
	}
	return identString(e.Name)
}

func (e *Literal) String() string {
	switch e.Kind {
	case LitNull:
		return "NULL"
	case LitBool:
		if e.Bool {
			return "TRUE"
		}
		return "FALSE"
	case LitInt:
		return strconv.FormatInt(e.Int, 10)
	case LitFloat:
		return formatFloat(e.Float)
	case LitString:
		return quoteString(e.Str)
	case LitTimestamp:
		return "TIMESTAMP " + quoteString(literalTime(e.Time, true, ""))
	case LitTimestampTZ:
		return "TIMESTAMPTZ " + quoteString(literalTime(e.Time, true, "Z"))
	case LitDate:
		return "DATE " + quoteString(literalTime(e.Time, false, ""))
	case LitInterval:
		return "INTERVAL " + quoteString(e.Interval.String())
	}
	return "?"
}

// formatFloat renders f so that it lexes back as a float literal.
func formatFloat(f float64) string {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return "CAST(" + quoteString(strconv.FormatFloat(f, 'g', -1, 64)) + " AS double)"
	}
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if !strings.ContainsAny(s, ".eE") {
		s += ".0"
	}
	return s
}

func (e *Unary) String() string {
	if e.Op == "NOT" {
		return "(NOT " + e.X.String() + ")"
	}
	// -(5) must not print as -5, which parses as a negative literal.
	if l, ok := e.X.(*Literal); ok && (l.Kind == LitInt || l.Kind == LitFloat) {
		return "(" + e.Op + "(" + l.String() + "))"
	}
	return "(" + e.Op + e.X.String() + ")"
}

func (e *Binary) String() string {
	return "(" + e.L.String() + " " + e.Op + " " + e.R.String() + ")"
}

func (e *In) String() string {
	var b strings.Builder
	b.WriteString("(")
	b.WriteString(e.X.String())
	if e.Not {
		b.WriteString(" NOT")
	}
	b.WriteString(" IN (")
	for i, x := range e.List {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(x.String())
	}
	b.WriteString("))")
	return b.String()
}

func (e *Between) String() string {
	not := ""
	if e.Not {
		not = " NOT"
	}
	return "(" + e.X.String() + not + " BETWEEN " + e.Lo.String() + " AND " + e.Hi.String() + ")"
}

func (e *IsNull) String() string {
	if e.Not {
		return "(" + e.X.String() + " IS NOT NULL)"
	}
	return "(" + e.X.String() + " IS NULL)"
}

func (e *Like) String() string {
	not := ""
	if e.Not {
		not = " NOT"
	}
	s := "(" + e.X.String() + not + " LIKE " + e.Pattern.String()
	if e.Escape != nil {
		s += " ESCAPE " + e.Escape.String()
	}
	return s + ")"
}

func (e *Case) String() string {
	var b strings.Builder
	b.WriteString("CASE")
	if e.Operand != nil {
		b.WriteString(" ")
		b.WriteString(e.Operand.String())
	}
	for _, w := range e.Whens {
		b.WriteString(" WHEN ")
		b.WriteString(w.Cond.String())
		b.WriteString(" THEN ")
		b.WriteString(w.Then.String())
	}
	if e.Else != nil {
		b.WriteString(" ELSE ")
		b.WriteString(e.Else.String())
	}
	b.WriteString(" END")
	return b.String()
}

func (e *Cast) String() string {
	return "CAST(" + e.X.String() + " AS " + e.Type + ")"
}

func (e *Call) String() string {
	var b strings.Builder
	b.WriteString(e.Name)
	b.WriteString("(")
	if e.Distinct {
		b.WriteString("DISTINCT ")
	}
	for i, x := range e.Args {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(x.String())
	}
	b.WriteString(")")
	if e.Filter != nil {
		b.WriteString(" FILTER (WHERE ")
		b.WriteString(e.Filter.String())
		b.WriteString(")")
	}
	return b.String()
}

// Walk calls fn for e and then, if fn returns true, for each of e's
// children, depth first. A caller that handles some calls itself (an
// aggregate's sum(...)) uses it to find them.
func Walk(e Expr, fn func(Expr) bool) {
	if e == nil || !fn(e) {
		return
	}
	switch e := e.(type) {
	case *Unary:
		Walk(e.X, fn)
	case *Binary:
		Walk(e.L, fn)
		Walk(e.R, fn)
	case *In:
		Walk(e.X, fn)
		for _, x := range e.List {
			Walk(x, fn)
		}
	case *Between:
		Walk(e.X, fn)
		Walk(e.Lo, fn)
		Walk(e.Hi, fn)
	case *IsNull:
		Walk(e.X, fn)
	case *Like:
		Walk(e.X, fn)
		Walk(e.Pattern, fn)
		Walk(e.Escape, fn)
	case *Case:
		Walk(e.Operand, fn)
		for _, w := range e.Whens {
			Walk(w.Cond, fn)
			Walk(w.Then, fn)
		}
		Walk(e.Else, fn)
	case *Cast:
		Walk(e.X, fn)
	case *Call:
		for _, x := range e.Args {
			Walk(x, fn)
		}
		Walk(e.Filter, fn)
	}
}

// Replace returns e with every node for which fn returns a replacement
// replaced by it, looking at a node before its children (a replaced
// node's children are not visited). The nodes on the path to a
// replacement are copied; e itself is not modified. An aggregate uses it
// to turn sum(a) / sum(b) into an expression over the computed sums.
func Replace(e Expr, fn func(Expr) Expr) Expr {
	if e == nil {
		return nil
	}
	if r := fn(e); r != nil {
		return r
	}
	rep := func(x Expr) Expr { return Replace(x, fn) }
	switch e := e.(type) {
	case *Unary:
		c := *e
		c.X = rep(e.X)
		return &c
	case *Binary:
		c := *e
		c.L, c.R = rep(e.L), rep(e.R)
		return &c
	case *In:
		c := *e
		c.X = rep(e.X)
		c.List = make([]Expr, len(e.List))
		for i, x := range e.List {
			c.List[i] = rep(x)
		}
		return &c
	case *Between:
		c := *e
		c.X, c.Lo, c.Hi = rep(e.X), rep(e.Lo), rep(e.Hi)
		return &c
	case *IsNull:
		c := *e
		c.X = rep(e.X)
		return &c
	case *Like:
		c := *e
		c.X, c.Pattern, c.Escape = rep(e.X), rep(e.Pattern), rep(e.Escape)
		return &c
	case *Case:
		c := *e
		c.Operand, c.Else = rep(e.Operand), rep(e.Else)
		c.Whens = make([]When, len(e.Whens))
		for i, w := range e.Whens {
			c.Whens[i] = When{Cond: rep(w.Cond), Then: rep(w.Then)}
		}
		return &c
	case *Cast:
		c := *e
		c.X = rep(e.X)
		return &c
	case *Call:
		c := *e
		c.Args = make([]Expr, len(e.Args))
		for i, x := range e.Args {
			c.Args[i] = rep(x)
		}
		c.Filter = rep(e.Filter)
		return &c
	}
	return e
}

// literalTime renders t (UTC) as a literal parseDateTime reads back:
// [-]YYYY-MM-DD[ HH:MM:SS[.fraction]] and suffix.
func literalTime(t time.Time, clock bool, suffix string) string {
	sec := t.Unix()
	days, sod := FloorDiv(sec, secsPerDay), floorMod(sec, secsPerDay)
	y, m, d := civilFromDays(days)
	var b []byte
	if y < 0 {
		b = append(b, '-')
		y = -y
	}
	b = appendPad(b, y, 4)
	b = append(b, '-')
	b = appendPad(b, int64(m), 2)
	b = append(b, '-')
	b = appendPad(b, int64(d), 2)
	if clock {
		b = append(b, ' ')
		b = appendPad(b, sod/3600, 2)
		b = append(b, ':')
		b = appendPad(b, sod/60%60, 2)
		b = append(b, ':')
		b = appendPad(b, sod%60, 2)
		if ns := int64(t.Nanosecond()); ns != 0 {
			w := 9
			for ns%10 == 0 {
				ns /= 10
				w--
			}
			b = append(b, '.')
			b = appendPad(b, ns, w)
		}
	}
	return string(append(b, suffix...))
}
