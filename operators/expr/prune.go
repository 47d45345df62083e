package expr

import (
	"math"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/zflowdev/zflow/engine"
)

// Stats are what a reader knows of one column over a block of rows (a
// Parquet row group, say) before it reads them: engine.ColumnStats, so that
// a *Compiled is an engine.Predicate a filter can push to its source.
type Stats = engine.ColumnStats

// MayMatch reports whether any row of a block may make the expression
// true, given stats for the columns the reader knows (stats returns false
// for the others). It answers false only when no row can, so a reader may
// skip the block; whatever it cannot decide (a function, an operator it
// does not follow, a literal of another type than the column) counts as a
// possible match. It understands comparisons of a column with a literal
// (= != < <= > >=, either way round), BETWEEN, IN, IS [NOT] NULL, AND, OR.
func (c *Compiled) MayMatch(stats func(col int) (Stats, bool)) bool {
	if c.ast == nil {
		return true
	}
	p := pruner{schema: c.schema, stats: stats}
	return p.may(c.ast) != never
}

// Prunable reports whether MayMatch can ever answer false for the
// expression: whether it holds a condition MayMatch follows.
func (c *Compiled) Prunable() bool {
	if c.ast == nil {
		return false
	}
	// Every column all null (every comparison is NULL), then none null:
	// a condition MayMatch follows rules one of the two out.
	for _, nulls := range []int64{1, 0} {
		p := pruner{schema: c.schema, stats: func(int) (Stats, bool) { return Stats{Rows: 1, Nulls: nulls}, true }}
		if p.may(c.ast) == never {
			return true
		}
	}
	return false
}

type verdict uint8

const (
	maybe verdict = iota
	never         // no row of the block makes the expression true
)

type pruner struct {
	schema *arrow.Schema
	stats  func(col int) (Stats, bool)
}

func (p *pruner) may(e Expr) verdict {
	switch e := e.(type) {
	case *Binary:
		switch e.Op {
		case "AND":
			if p.may(e.L) == never || p.may(e.R) == never {
				return never
			}
			return maybe
		case "OR":
			if p.may(e.L) == never && p.may(e.R) == never {
				return never
			}
			return maybe
		case "=", "!=", "<", "<=", ">", ">=":
			if col, lit, ok := p.colLit(e.L, e.R); ok {
				return p.compare(col, e.Op, lit)
			}
			if col, lit, ok := p.colLit(e.R, e.L); ok {
				return p.compare(col, flip[e.Op], lit)
			}
		}
	case *Between:
		if e.Not {
			return maybe
		}
		col, ok := p.column(e.X)
		lo, ok1 := literal(e.Lo)
		hi, ok2 := literal(e.Hi)
		if ok && ok1 && ok2 && (p.compare(col, ">=", lo) == never || p.compare(col, "<=", hi) == never) {
			return never
		}
	case *In:
		col, ok := p.column(e.X)
		if e.Not || !ok || len(e.List) == 0 {
			return maybe
		}
		for _, it := range e.List {
			lit, ok := literal(it)
			if !ok || p.compare(col, "=", lit) != never {
				return maybe
			}
		}
		return never
	case *IsNull:
		col, ok := p.column(e.X)
		if !ok {
			return maybe
		}
		s, ok := p.stats(col)
		if !ok || s.Nulls < 0 {
			return maybe
		}
		if (!e.Not && s.Nulls == 0) || (e.Not && s.Nulls >= s.Rows) {
			return never
		}
	}
	return maybe
}

// flip turns "lit op col" into "col flip[op] lit".
var flip = map[string]string{"=": "=", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}

// colLit matches a column reference and a literal.
func (p *pruner) colLit(a, b Expr) (int, *Literal, bool) {
	col, ok := p.column(a)
	if !ok {
		return 0, nil, false
	}
	lit, ok := literal(b)
	return col, lit, ok
}

// column resolves a column reference as the type checker does.
func (p *pruner) column(e Expr) (int, bool) {
	id, ok := e.(*Ident)
	if !ok {
		return 0, false
	}
	idx := p.schema.FieldIndices(id.Name)
	if len(idx) == 0 && !id.Quoted {
		for i, f := range p.schema.Fields() {
			if strings.EqualFold(f.Name, id.Name) {
				idx = append(idx, i)
			}
		}
	}
	if len(idx) != 1 {
		return 0, false
	}
	return idx[0], true
}

// literal returns a constant, folding a minus sign into a number.
func literal(e Expr) (*Literal, bool) {
	switch e := e.(type) {
	case *Literal:
		return e, e.Kind != LitNull && e.Kind != LitInterval
	case *Unary:
		l, ok := e.X.(*Literal)
		if !ok || e.Op != "-" {
			return nil, false
		}
		switch l.Kind {
		case LitInt:
			if l.Int == math.MinInt64 {
				return nil, false
			}
			return &Literal{Kind: LitInt, Int: -l.Int}, true
		case LitFloat:
			return &Literal{Kind: LitFloat, Float: -l.Float}, true
		}
	}
	return nil, false
}

// compare decides "col op lit" over a block: never when no non-null value
// in [Min, Max] can satisfy it, or when every value is null.
func (p *pruner) compare(col int, op string, lit *Literal) verdict {
	s, ok := p.stats(col)
	if !ok {
		return maybe
	}
	if s.Nulls >= 0 && s.Nulls >= s.Rows {
		return never // a comparison with NULL is never true
	}
	if !s.HasMinMax {
		return maybe
	}
	lo, ok1 := cmpLit(p.schema.Field(col).Type, s.Min, lit)
	hi, ok2 := cmpLit(p.schema.Field(col).Type, s.Max, lit)
	if !ok1 || !ok2 {
		return maybe
	}
	// lo is sign(Min - lit), hi is sign(Max - lit).
	var none bool
	switch op {
	case "=":
		none = lo > 0 || hi < 0
	case "!=":
		none = lo == 0 && hi == 0
	case "<":
		none = lo >= 0
	case "<=":
		none = lo > 0
	case ">":
		none = hi <= 0
	case ">=":
		none = hi < 0
	}
	if none {
		return never
	}
	return maybe
}

// maxExact is the largest magnitude a float64 holds every integer up to.
const maxExact = 1 << 53

// cmpLit compares a statistic v of a column of type dt with a literal:
// -1, 0 or 1 as v is below, equal to or above it, and ok = false where the
// types do not meet in a way the comparison is sure of.
func cmpLit(dt arrow.DataType, v any, lit *Literal) (int, bool) {
	switch dt.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64:
		x, ok := v.(int64)
		if !ok {
			return 0, false
		}
		switch lit.Kind {
		case LitInt:
			return cmp3(x, lit.Int), true
		case LitFloat:
			if x > maxExact || x < -maxExact || math.IsNaN(lit.Float) {
				return 0, false
			}
			return cmp3(float64(x), lit.Float), true
		}
	case arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64:
		x, ok := v.(uint64)
		if !ok {
			return 0, false
		}
		switch lit.Kind {
		case LitInt:
			if lit.Int < 0 {
				return 1, true
			}
			return cmp3(x, uint64(lit.Int)), true
		case LitFloat:
			if x > maxExact || math.IsNaN(lit.Float) {
				return 0, false
			}
			return cmp3(float64(x), lit.Float), true
		}
	case arrow.FLOAT32, arrow.FLOAT64:
		x, ok := v.(float64)
		if !ok || math.IsNaN(x) {
			return 0, false
		}
		switch lit.Kind {
		case LitInt:
			if lit.Int > maxExact || lit.Int < -maxExact {
				return 0, false
			}
			return cmp3(x, float64(lit.Int)), true
		case LitFloat:
			if math.IsNaN(lit.Float) {
				return 0, false
			}
			return cmp3(x, lit.Float), true
		}
	case arrow.STRING, arrow.LARGE_STRING:
		x, ok := v.(string)
		if ok && lit.Kind == LitString {
			return strings.Compare(x, lit.Str), true
		}
	case arrow.DATE32:
		x, ok := v.(int64)
		if ok && lit.Kind == LitDate {
			return cmp3(x, lit.Time.Unix()/86400), true
		}
	case arrow.TIMESTAMP:
		x, ok := v.(int64)
		ts := dt.(*arrow.TimestampType)
		// An instant against a zoned column, a wall clock against a
		// zone-less one: both are stored as UTC values in the unit.
		if !ok || (lit.Kind != LitTimestampTZ || ts.TimeZone == "") && (lit.Kind != LitTimestamp || ts.TimeZone != "") {
			return 0, false
		}
		t := lit.Time
		var want int64
		switch ts.Unit {
		case arrow.Second:
			want = t.Unix()
			if t.Nanosecond() != 0 { // between two seconds: above the lower one
				return cmp3Frac(x, want), true
			}
		case arrow.Millisecond:
			want = t.UnixMilli()
			if t.Nanosecond()%1e6 != 0 {
				return cmp3Frac(x, want), true
			}
		case arrow.Microsecond:
			want = t.UnixMicro()
			if t.Nanosecond()%1e3 != 0 {
				return cmp3Frac(x, want), true
			}
		case arrow.Nanosecond:
			if t.Year() < 1678 || t.Year() > 2261 {
				return 0, false
			}
			want = t.UnixNano()
		}
		return cmp3(x, want), true
	}
	return 0, false
}

// cmp3Frac compares x with a literal that lies strictly between floor and
// floor+1 in the column's unit (time.Time's Unix, UnixMilli and UnixMicro
// round towards minus infinity), so that no stored value equals it.
func cmp3Frac(x, floor int64) int {
	if x <= floor {
		return -1
	}
	return 1
}

func cmp3[T int64 | uint64 | float64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
