package expr_test

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
)

// Random expressions for the DuckDB differential test: TestDuckDB checks
// them as it checks the corpus, reported as random:N. The generator writes
// only expressions both dialects read alike (testdata/duckdb/README.md,
// dialect notes): integer arithmetic on BIGINTs whose values cannot
// overflow (k, narrower columns cast to bigint, small literals); floats
// that stay finite and are DOUBLE in DuckDB (no DECIMAL literal, no
// float32 arithmetic, not f64 with its infinities); no integer division; no
// upper() of s (its ß); no float formatted as text. A failure is printed
// with its expression: copy it into a corpus file to keep it.

var (
	duckdbRandom = flag.Int("duckdb.random", 200, "random expressions TestDuckDB checks besides the corpus")
	duckdbSeed   = flag.Uint64("duckdb.seed", 1, "seed of TestDuckDB's random expressions")
)

// randomCorpus returns n random expressions of every result kind.
func randomCorpus(n int, seed uint64) []corpusEntry {
	g := &exprGen{r: rand.New(rand.NewPCG(seed, 0x5eed))}
	kinds := []genKind{genBool, genBool, genInt, genFloat, genString, genTime}
	out := make([]corpusEntry, n)
	for i := range out {
		out[i] = corpusEntry{file: fmt.Sprintf("random(seed %d)", seed), line: i + 1, src: g.expr(kinds[i%len(kinds)], genDepth)}
	}
	return out
}

type genKind uint8

const (
	genInt genKind = iota
	genFloat
	genString
	genTime
	genBool
)

type exprGen struct{ r *rand.Rand }

func (g *exprGen) pick(xs ...string) string { return xs[g.r.IntN(len(xs))] }

// genDepth is the depth of a generated expression's tree.
const genDepth = 3

// expr is an expression of kind k at most depth deep; at the top it is
// never a bare leaf.
func (g *exprGen) expr(k genKind, depth int) string {
	if depth <= 0 || depth < genDepth && g.r.IntN(4) == 0 {
		return g.leaf(k)
	}
	d := depth - 1
	switch k {
	case genInt:
		switch g.r.IntN(9) {
		case 0:
			return g.expr(genInt, d) + " + " + g.expr(genInt, d)
		case 1:
			return g.expr(genInt, d) + " - " + g.expr(genInt, d)
		case 2:
			return "(" + g.expr(genInt, d) + ") * " + g.smallInt()
		case 3:
			return "(" + g.expr(genInt, d) + ") % " + g.pick("3", "7", "(-5)", "1000")
		case 4:
			return "-(" + g.expr(genInt, d) + ")"
		case 5:
			return "abs(" + g.expr(genInt, d) + ")"
		case 6:
			return g.caseOf(genInt, d)
		case 7:
			return "coalesce(" + g.expr(genInt, d) + ", " + g.expr(genInt, d) + ")"
		default:
			if g.r.IntN(2) == 0 {
				return "length(lower(" + g.expr(genString, d) + "))"
			}
			return "length(" + g.expr(genString, d) + ")"
		}
	case genFloat:
		switch g.r.IntN(8) {
		case 0:
			return g.expr(genFloat, d) + " + " + g.expr(genFloat, d)
		case 1:
			return g.expr(genFloat, d) + " - " + g.expr(genFloat, d)
		case 2:
			return "(" + g.expr(genFloat, d) + ") * (" + g.expr(genFloat, d) + ")"
		case 3:
			return "(" + g.expr(genFloat, d) + ") / " + g.pick("4", "3", "(-7)", "1024")
		case 4:
			return "abs(" + g.expr(genFloat, d) + ")"
		case 5:
			return g.caseOf(genFloat, d)
		case 6:
			return "coalesce(" + g.expr(genFloat, d) + ", " + g.expr(genFloat, d) + ")"
		default:
			return "CAST(" + g.expr(genInt, d) + " AS double)"
		}
	case genString:
		switch g.r.IntN(5) {
		case 0:
			return "lower(" + g.expr(genString, d) + ")"
		case 1:
			return g.caseOf(genString, d)
		case 2:
			return "coalesce(" + g.expr(genString, d) + ", " + g.expr(genString, d) + ")"
		case 3:
			return "CAST(" + g.expr(g.pickKind(genInt, genBool, genTime), d) + " AS varchar)"
		default:
			return "upper(" + g.pick("s2", "lower(s2)", "'abc'") + ")"
		}
	case genTime:
		switch g.r.IntN(2) {
		case 0:
			return g.caseOf(genTime, d)
		default:
			return "coalesce(" + g.expr(genTime, d) + ", " + g.expr(genTime, d) + ")"
		}
	}
	// genBool
	switch g.r.IntN(11) {
	case 0, 1:
		c := g.pickKind(genInt, genFloat, genString, genTime)
		return g.expr(c, d) + " " + g.pick("=", "<>", "<", "<=", ">", ">=", "!=") + " " + g.expr(c, d)
	case 2:
		return "(" + g.expr(genBool, d) + ") AND (" + g.expr(genBool, d) + ")"
	case 3:
		return "(" + g.expr(genBool, d) + ") OR (" + g.expr(genBool, d) + ")"
	case 4:
		return "NOT (" + g.expr(genBool, d) + ")"
	case 5:
		return "(" + g.expr(g.pickKind(genInt, genFloat, genString, genTime, genBool), d) + ") IS " + g.pick("", "NOT ") + "NULL"
	case 6:
		c := g.pickKind(genInt, genString)
		items := make([]string, 1+g.r.IntN(5))
		for i := range items {
			if g.r.IntN(6) == 0 {
				items[i] = "NULL"
			} else {
				items[i] = g.leaf(c)
			}
		}
		return g.expr(c, d) + g.pick(" IN (", " NOT IN (") + strings.Join(items, ", ") + ")"
	case 7:
		c := g.pickKind(genInt, genFloat, genString, genTime)
		return g.expr(c, d) + g.pick(" BETWEEN ", " NOT BETWEEN ") + g.leaf(c) + " AND " + g.leaf(c)
	case 8:
		return g.expr(genString, d) + g.pick(" LIKE ", " NOT LIKE ") +
			g.pick("'a%'", "'%b%'", "'_'", "'%\\_%' ESCAPE '\\'", "'%,%'", "''", "'%'", "'_b%'", "'%🦆%'", "'%é%'")
	case 9:
		return g.caseOf(genBool, d)
	default:
		return "coalesce(" + g.expr(genBool, d) + ", " + g.expr(genBool, d) + ")"
	}
}

func (g *exprGen) pickKind(ks ...genKind) genKind { return ks[g.r.IntN(len(ks))] }

// caseOf is a CASE of either form whose results are of kind k.
func (g *exprGen) caseOf(k genKind, d int) string {
	var b strings.Builder
	b.WriteString("CASE")
	simple := g.r.IntN(3) == 0
	var op genKind
	if simple {
		op = g.pickKind(genInt, genString)
		b.WriteString(" " + g.expr(op, d))
	}
	for range 1 + g.r.IntN(3) {
		if simple {
			b.WriteString(" WHEN " + g.leaf(op))
		} else {
			b.WriteString(" WHEN " + g.expr(genBool, d))
		}
		b.WriteString(" THEN " + g.expr(k, d))
	}
	if g.r.IntN(3) > 0 {
		b.WriteString(" ELSE " + g.expr(k, d))
	}
	return b.String() + " END"
}

// smallInt is a literal in [-20, 20], a negative one in parentheses (so
// that "k - -5" does not become a comment).
func (g *exprGen) smallInt() string {
	if v := g.r.IntN(41) - 20; v < 0 {
		return fmt.Sprintf("(%d)", v)
	} else {
		return fmt.Sprint(v)
	}
}

func (g *exprGen) leaf(k genKind) string {
	switch k {
	case genInt:
		switch g.r.IntN(6) {
		case 0, 1:
			return "k"
		case 2:
			return g.smallInt()
		case 3:
			return "CAST(" + g.pick("i8", "i16", "i32", "u32") + " AS bigint)"
		case 4:
			return "CAST(b AS bigint)"
		default:
			return "CAST(si AS bigint) % 100000"
		}
	case genFloat:
		switch g.r.IntN(3) {
		case 0:
			return "CAST(f32 AS double)"
		case 1:
			return "CAST(" + g.pick("k", "i16") + " AS double)"
		default:
			return "CAST(" + g.pick("0.5", "-2.5", "0", "1024", "0.125") + " AS double)"
		}
	case genString:
		return g.pick("s", "s2", "s", "'abc'", "''", "'ß'", "'x'", "CAST(k AS varchar)", "'é'")
	case genTime:
		return g.pick("ts", "ts_ms", "TIMESTAMP '2024-01-02 03:04:05.123456'", "TIMESTAMP '2000-01-01'",
			"CAST(sts AS timestamp)", "ts_ms")
	}
	return g.pick("b", "b", "TRUE", "FALSE", "CAST(sb AS boolean)", "k > 0", "s IS NULL", "NULL")
}
